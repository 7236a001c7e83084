"""Instant feedback on exercise questions.

``check("01.2", softmax)`` runs the student's function on the question's public
cases, compares each output with the ``course_lib`` reference and prints one
verdict: passed, not attempted, or failed. A failure names the misconception the
answer shows when its outputs match one registered with the question ("This looks
like <name>: <why>"), then the first mismatch (which case, the input shapes,
expected vs received shape/dtype, max abs error) and the hints: the first tier on
the first failure, one more tier on each further failure of the same question in
this kernel (or on :func:`hint`). It never raises and never prints the
reference's values, so "Run All" always reaches the end of a sheet.

The pieces (:func:`run_case`, :func:`to_plain`, :func:`compare`) are separate
so the batch grader can run the student's code in one process and compare in
another.
"""

from __future__ import annotations

import copy
import signal
import threading
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import torch

from course_lib import questions as registry
from course_lib.questions import Case, Misconception, Question

PASSED, FAILED, NOT_ATTEMPTED = "passed", "failed", "not attempted"


class CaseTimeout(BaseException):
    """Raised inside a student's function that runs past its time limit.

    A ``BaseException`` so that a student's ``except Exception`` cannot swallow it.
    """


class NotPlainData(TypeError):
    """A function returned something that is not tensors, numbers or tuples of them."""


@dataclass
class Result:
    """The verdict on one question."""

    qid: str
    status: str  # PASSED, FAILED or NOT_ATTEMPTED
    passed: int
    total: int
    points: float
    max_points: int
    message: str
    misconception: Optional[str] = None  # the name of the misconception the answer shows, if one matched

    @property
    def ok(self) -> bool:
        return self.status == PASSED


# --- plain data ---------------------------------------------------------------------
def to_plain(output: Any, where: str = "output") -> Tuple[torch.Tensor, ...]:
    """Flatten ``output`` into a tuple of detached CPU tensors.

    Accepts tensors, Python numbers, NumPy arrays and (nested) tuples/lists of
    them. Anything else raises :class:`NotPlainData` with a readable message.
    """
    if output is None:
        raise NotPlainData(f"{where} is None: did the function forget to `return` its result?")
    if isinstance(output, torch.Tensor):
        if type(output) is not torch.Tensor and not isinstance(output, torch.nn.Parameter):
            raise NotPlainData(f"{where} is a {type(output).__name__}, a tensor subclass; return a plain torch.Tensor")
        return (output.detach().cpu().clone(),)
    if isinstance(output, bool):
        return (torch.tensor(output),)
    if isinstance(output, (int, float)) and type(output) in (int, float):
        return (torch.tensor(output, dtype=torch.float64 if isinstance(output, float) else torch.int64),)
    if isinstance(output, (tuple, list)) and type(output) in (tuple, list):
        parts: List[torch.Tensor] = []
        for i, item in enumerate(output):
            parts.extend(to_plain(item, f"{where}[{i}]"))
        return tuple(parts)
    try:
        import numpy as np

        if type(output) is np.ndarray:
            if output.dtype == object:
                raise NotPlainData(f"{where} is a NumPy array of Python objects; return numbers")
            return (torch.from_numpy(output.copy()),)
        if isinstance(output, np.generic):
            return (torch.from_numpy(np.asarray(output).copy()),)
    except ImportError:  # pragma: no cover
        pass
    raise NotPlainData(f"{where} is a {type(output).__name__}; expected a torch.Tensor, a number or a tuple of them")


def describe(t: torch.Tensor) -> str:
    """``(4, 3) float64`` for a tensor."""
    return f"{tuple(t.shape)} {str(t.dtype).replace('torch.', '')}"


def describe_inputs(case: Case, values: bool = True) -> str:
    """A short description of a case's inputs: shapes for tensors, values for scalars
    (with ``values=False`` only their type, as the grader's feedback must not reveal hidden inputs)."""
    parts = []
    inputs = list(case.args) + list(case.kwargs.values())
    names = [f"arg{i}" for i in range(len(case.args))] + list(case.kwargs)
    for name, value in zip(names, inputs):
        if isinstance(value, torch.Tensor):
            parts.append(f"{name}: {describe(value)}")
        elif values and (isinstance(value, (int, float, bool, str)) or value is None):
            parts.append(f"{name}={value!r}")
        else:
            parts.append(f"{name}: {type(value).__name__}")
    return ", ".join(parts)


def compare(expected: Sequence[torch.Tensor], got: Sequence[torch.Tensor], atol: float, rtol: float) -> Optional[str]:
    """Return ``None`` if ``got`` matches ``expected``, else a message that describes
    the first difference without revealing the expected values."""
    if len(got) != len(expected):
        return f"expected {len(expected)} output(s), got {len(got)}"
    for i, (e, g) in enumerate(zip(expected, got)):
        name = "output" if len(expected) == 1 else f"output {i}"
        if tuple(g.shape) != tuple(e.shape) or g.dtype != e.dtype:
            return f"{name}: expected {describe(e)}, got {describe(g)}"
        if e.is_floating_point() or e.is_complex():
            e_nan, g_nan = torch.isnan(e), torch.isnan(g)
            if (g_nan & ~e_nan).any():
                return f"{name}: {int((g_nan & ~e_nan).sum())} value(s) are NaN (overflow or 0/0?)"
            g_inf = torch.isinf(g) & ~torch.isinf(e)
            if g_inf.any():
                return f"{name}: {int(g_inf.sum())} value(s) are infinite (overflow?)"
            ok = torch.isclose(g, e, rtol=rtol, atol=atol, equal_nan=True)
            if not bool(ok.all()) and e.numel() == 1:  # the error's size would give the expected value away
                return f"{name}: the value differs from the expected one by more than the tolerance (atol={atol:g}, rtol={rtol:g})"
            if not bool(ok.all()):
                diff = (g - e).abs()
                diff = torch.where(torch.isfinite(diff), diff, torch.zeros_like(diff))
                return (
                    f"{name}: {int((~ok).sum())} of {ok.numel()} value(s) differ, "
                    f"max abs error {float(diff.max()):.3g} (tolerance atol={atol:g}, rtol={rtol:g})"
                )
        elif not torch.equal(e, g):
            if e.numel() == 1:
                return f"{name}: the value differs from the expected one"
            return f"{name}: {int((e != g).sum())} of {e.numel()} value(s) differ"
    return None


# --- running with a time limit ------------------------------------------------------
def _with_time_limit(fn: Callable[[], Any], seconds: float) -> Any:
    """Run ``fn()``, raising :class:`CaseTimeout` after ``seconds`` (Unix main thread);
    elsewhere the call runs without a limit."""
    usable = hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()
    if not usable or seconds <= 0:
        return fn()

    def on_alarm(signum: int, frame: Any) -> None:
        raise CaseTimeout()

    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        return fn()
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def run_case(question: Question, func: Callable[..., Any], case: Case, timeout: float = 5.0) -> Tuple[torch.Tensor, ...]:
    """Run ``func`` on a deep copy of ``case`` (so in-place edits cannot leak) and
    return its output as plain tensors. Exceptions propagate to the caller."""
    private = copy.deepcopy(case)
    return to_plain(_with_time_limit(lambda: question.call(func, private), timeout))


def diagnose(question: Question, failing: Sequence[Tuple[Case, Tuple[torch.Tensor, ...]]]) -> Optional[Misconception]:
    """The first registered misconception whose outputs match the student's ``got`` on
    every failing case in ``failing`` (pairs of case and the student's plain output),
    within the question's tolerance; ``None`` when none does or nothing failed by value.

    A misconception that raises on a case does not match it. Only cases the student
    got wrong are passed in, so a correct answer can never be diagnosed.
    """
    if not failing:
        return None
    for m in question.misconceptions:
        for case, got in failing:
            try:
                wrong = run_case(question, m.wrong, case, timeout=0)
            except Exception:
                break
            if compare(wrong, got, question.atol, question.rtol) is not None:
                break
        else:
            return m
    return None


def misconception_text(m: Misconception) -> str:
    """``This looks like <name>: <why>`` for a feedback message."""
    return f"This looks like {m.name}: {m.why}"


def hints_text(question: Question, tiers: int, indent: str = "   ") -> str:
    """The first ``tiers`` hint tiers of ``question`` (at least one), one per line."""
    shown = question.hints[: max(1, min(tiers, len(question.hints)))]
    total = len(question.hints)
    return "\n".join(f"{indent}Hint {i} of {total}: {h}" for i, h in enumerate(shown, 1))


def _status_line(q: Question, res: Result) -> str:
    icon = {PASSED: "✅", FAILED: "❌", NOT_ATTEMPTED: "⏳"}[res.status]
    return f"{icon} {q.id} {q.title} ({q.func_name}): {res.message}"


def evaluate(qid: str, func: Any, *, hidden: bool = False, seed: Optional[int] = None, timeout: float = 5.0,
             hint_tiers: int = 1) -> Result:
    """Evaluate ``func`` on question ``qid``; never raises for anything the function does.

    A failure's message names the matching misconception (if any), the first mismatch
    and the first ``hint_tiers`` hint tiers."""
    q = registry.get(qid)
    cases = q.cases(hidden=hidden, seed=seed)
    n = len(cases)

    def result(status: str, passed: int, message: str) -> Result:
        return Result(q.id, status, passed, n, q.points * passed / n if n else 0.0, q.points, message)

    if func is None:
        return result(NOT_ATTEMPTED, 0, f"not attempted yet: define `{q.func_name}` and run its cell.")
    if not callable(func):
        return result(FAILED, 0, f"`{q.func_name}` should be a function, got a {type(func).__name__}.")
    passed, first_failure = 0, None
    failing: List[Tuple[Case, Tuple[torch.Tensor, ...]]] = []  # wrong values, for the diagnosis
    for i, case in enumerate(cases, 1):
        expected = run_case(q, q.reference, case, timeout=0)
        where = f"case {i} of {n} ({case.label}; inputs {describe_inputs(case)})"
        try:
            got = run_case(q, func, case, timeout=timeout)
        except NotImplementedError:
            if passed == 0 and first_failure is None:
                return result(NOT_ATTEMPTED, 0, "not attempted yet: replace `raise NotImplementedError(...)` with your code.")
            problem = "raised NotImplementedError"
        except CaseTimeout:
            problem = f"did not finish within {timeout:g} s (an endless loop?)"
            first_failure = first_failure or f"{where}: {problem}"
            break  # the remaining cases would most likely time out too
        except NotPlainData as err:
            problem = str(err)
        except RecursionError:
            problem = "raised RecursionError (a function that calls itself forever?)"
        except Exception as err:  # the student's own error: report it, do not raise
            problem = f"raised {type(err).__name__}: {err}"
        else:
            problem = compare(expected, got, q.atol, q.rtol)
            if problem is not None:
                failing.append((case, got))
        if problem is None:
            passed += 1
        elif first_failure is None:
            first_failure = f"{where}: {problem}"
    if first_failure is None:
        return result(PASSED, passed, f"passed all {n} cases ({q.points} point{'s' if q.points != 1 else ''}).")
    found = diagnose(q, failing)
    named = f"\n   {misconception_text(found)}" if found else ""
    res = result(FAILED, passed, f"passed {passed} of {n} cases.{named}\n   First mismatch: {first_failure}\n{hints_text(q, hint_tiers)}")
    res.misconception = found.name if found else None
    return res


_FAILED_CHECKS: Dict[str, int] = {}  # failed checks per question in this kernel: how many hint tiers to show


def check(qid: str, func: Any = None, *, timeout: float = 5.0) -> None:
    """Print the verdict of :func:`evaluate` for the student's ``func``. Never raises
    for anything the student's function does."""
    try:
        q = registry.get(qid)
    except KeyError as err:
        print(f"❌ {err.args[0]}")
        return
    res = evaluate(qid, func, timeout=timeout, hint_tiers=_FAILED_CHECKS.get(q.id, 0) + 1)
    if res.status == FAILED:
        _FAILED_CHECKS[q.id] = min(_FAILED_CHECKS.get(q.id, 0) + 1, len(q.hints))
    print(_status_line(q, res))


def hint(qid: str) -> None:
    """Print the hints of question ``qid`` shown so far plus the next tier (idea, then
    shapes, then a near-code nudge). Never raises."""
    try:
        q = registry.get(qid)
    except KeyError as err:
        print(f"❌ {err.args[0]}")
        return
    shown = min(_FAILED_CHECKS.get(q.id, 0) + 1, len(q.hints))
    _FAILED_CHECKS[q.id] = shown
    more = "" if shown < len(q.hints) else "\n   (that was the last tier: reread the lecture's section, then try again)"
    print(f"💡 {q.id} {q.title} ({q.func_name}):\n{hints_text(q, shown)}{more}")


def use(qid: str, func: Any = None) -> Callable[..., Any]:
    """Return the student's ``func`` if it passes question ``qid``, else the
    ``course_lib`` reference, saying so, so later cells keep working."""
    q = registry.get(qid)
    res = evaluate(qid, func)
    if res.ok:
        print(f"Using your `{q.func_name}`.")
        return func
    ref = q.reference
    print(f"Using the course_lib reference `{ref.__module__}.{getattr(ref, '__qualname__', ref.__name__)}` because your `{q.func_name}` is {res.status} yet.")
    return ref
