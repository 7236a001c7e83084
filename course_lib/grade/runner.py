"""Grade a batch of submissions: hidden cases, sandboxed runs, scores, gradebook.

Scoring: each question is worth its registry points; a student earns
``points * passed_cases / total_cases`` (partial credit per test case), where the
cases are the question's hidden cases plus any instructor cases from ``--tests``.
A case passes when every output the child saved equals the reference answer the
grader computed itself, within the question's tolerance.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import queue
import runpy
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import torch

from course_lib import questions as registry
from course_lib.check import compare, diagnose, hints_text, misconception_text, to_plain
from course_lib.grade import gradebook, sandbox
from course_lib.grade.redact import describe_shapes, error_text, mismatch_text
from course_lib.grade.submission import Submission, UnreadableNotebook, cells_from_bytes, digest, read_notebook
from course_lib.grade.untrusted_files import MAX_NPY_BYTES, load_npy, remove_tree
from course_lib.questions import Case, Question


@dataclass
class Plan:
    """Everything that is the same for every submission of a batch."""

    sheet: str
    questions: List[Question]
    cases: List[List[Case]]
    expected: List[List[Tuple[torch.Tensor, ...]]]
    limits: sandbox.Limits
    hide: List[Path]
    fingerprint: str = ""


def instructor_cases(tests_dir: Optional[Path], sheet: str) -> Dict[str, List[Case]]:
    """Extra cases from ``TESTS/<sheet>.py``: a function ``extra_cases(qid, gen) -> list[Case]``."""
    if tests_dir is None:
        return {}
    path = Path(tests_dir) / f"{sheet}.py"
    if not path.exists():
        return {}
    module = runpy.run_path(str(path))
    make = module.get("extra_cases")
    if not callable(make):
        raise ValueError(f"{path}: define extra_cases(qid, gen) returning a list of Case")
    extra = {}
    for q in registry.for_sheet(sheet):
        gen = torch.Generator().manual_seed(int(hashlib.sha256(q.id.encode()).hexdigest()[:8], 16))
        extra[q.id] = list(make(q.id, gen) or [])
    return extra


def make_plan(sheet: str, limits: sandbox.Limits, tests_dir: Optional[Path], hide: Sequence[Path]) -> Plan:
    """Hidden cases and reference answers for ``sheet``, computed once in this process."""
    questions = registry.for_sheet(sheet)
    if not questions:
        known = sorted({q.sheet for q in registry.all_questions()})
        raise ValueError(f"no questions for sheet {sheet!r}; known sheets: {', '.join(known)}")
    extra = instructor_cases(tests_dir, sheet)
    cases = [q.cases(hidden=True) + extra.get(q.id, []) for q in questions]
    expected = [[to_plain(q.call(q.reference, copy.deepcopy(c))) for c in qc] for q, qc in zip(questions, cases)]
    h = hashlib.sha256(json.dumps([sheet, [(q.id, q.points) for q in questions], asdict(limits)]).encode())
    for per_q in expected:
        for outs in per_q:
            for t in outs:
                h.update(t.contiguous().numpy().tobytes())
    return Plan(sheet, questions, cases, expected, limits, list(hide), h.hexdigest()[:16])


def _load_npy(path: Path) -> torch.Tensor:
    """An output the child saved, read without trusting it (see :mod:`~course_lib.grade.untrusted_files`)."""
    return torch.from_numpy(load_npy(path, MAX_NPY_BYTES))


def _cleanup(run: sandbox.ChildRun) -> None:
    """Remove the child's folders; never raises, whatever the child left there (a
    3,000-level folder chain included: the fallback removal is iterative)."""
    try:
        sandbox.cleanup(run)
    except Exception:  # e.g. RecursionError from a recursive removal
        pass
    base = run.extra.get("base")
    if base is not None and os.path.lexists(base):
        try:
            remove_tree(base)
        except OSError:
            pass


def _diagnose_quietly(q: Question, failing: List[Tuple[Case, Tuple[torch.Tensor, ...]]]) -> Any:
    """:func:`course_lib.check.diagnose` in the grader's own process on plain data the child
    wrote: only the registry's functions run here. Any trouble means "no diagnosis"."""
    try:
        return diagnose(q, failing)
    except Exception:
        return None


def score(plan: Plan, run: sandbox.ChildRun) -> List[Dict[str, Any]]:
    """Per-question points from what the child wrote, judged against the plan's references."""
    entries: Dict[Tuple[int, int], Dict[str, Any]] = {}
    for e in run.entries:
        if e.get("event") == "case" and isinstance(e.get("q"), int) and isinstance(e.get("c"), int):
            entries[(e["q"], e["c"])] = e
    results = []
    for qi, q in enumerate(plan.questions):
        n = len(plan.cases[qi])
        passed, first, kinds = 0, None, set()
        failing: List[Tuple[Case, Tuple[torch.Tensor, ...]]] = []  # wrong values, for naming the misconception
        for ci in range(n):
            e = entries.get((qi, ci))
            if e is None:
                problem, kind = "not run: the submission stopped before this case", "not run"
            elif e.get("missing"):
                problem, kind = f"`{q.func_name}` is not defined (or not a function)", "missing"
            elif e.get("not_attempted"):
                problem, kind = "raised NotImplementedError (not attempted)", "not attempted"
            elif "error" in e:
                problem, kind = error_text(e["error"]), "error"
            else:
                kind = "compared"
                try:
                    count = int(e.get("n", -1))
                    if not 0 < count <= 16:
                        raise ValueError("bad output count")
                    got = tuple(_load_npy(run.out_dir / f"{qi}_{ci}_{k}.npy") for k in range(count))
                    problem = compare(plan.expected[qi][ci], got, q.atol, q.rtol)
                    if problem is not None:
                        problem = mismatch_text(problem)
                        failing.append((plan.cases[qi][ci], got))
                except (OSError, ValueError, TypeError) as err:
                    problem = f"its output could not be read back as plain numbers ({type(err).__name__})"
            kinds.add(kind)
            if problem is None:
                passed += 1
            elif first is None:
                label = plan.cases[qi][ci].label
                first = f"case {ci + 1} of {n} ({label}; inputs {describe_shapes(plan.cases[qi][ci])}): {problem}"
        if kinds <= {"missing", "not attempted"}:
            status = "not attempted"
            feedback = f"Not attempted: `{q.func_name}` was missing or still raised NotImplementedError."
        elif passed == n:
            status, feedback = "passed", f"All {n} cases passed."
        else:
            status = "failed"
            found = _diagnose_quietly(q, failing)
            named = f"\n\n{misconception_text(found)}" if found else ""
            feedback = f"Passed {passed} of {n} cases.{named}\n\nFirst mismatch: {first}\n\n{hints_text(q, 1, indent='')}"
        results.append(
            {
                "id": q.id,
                "title": q.title,
                "points": round(q.points * passed / n, 4) if n else 0.0,
                "max_points": q.points,
                "passed": passed,
                "total": n,
                "status": status,
                "feedback": feedback,
            }
        )
    return results


def classify(run: sandbox.ChildRun, questions: List[Dict[str, Any]]) -> Tuple[str, str]:
    """The submission's status and a one-line message, from what the grader observed."""
    errors = " ".join(str(e.get("error", "")) for e in run.entries) + run.stderr_tail
    rc = run.returncode
    if run.timed_out or rc == -9 and run.seconds >= run_limit(run) or rc == -24:  # -24: SIGXCPU
        return "timeout", f"stopped after {run.seconds:.0f} s (time limit); cases that finished before still count"
    if "time limit" in errors or "did not finish within" in errors:
        return "timeout", "a cell or a function ran past its time limit and was stopped; the rest was graded"
    if rc == -25 or run.output_capped:  # SIGXFSZ
        return "output limit", "wrote more output than allowed; cases that finished before still count"
    if "MemoryError" in errors or "not enough memory" in errors or "can't allocate memory" in errors or rc == -9:
        return "memory limit", "ran out of its memory limit somewhere; other questions are graded normally"
    if not any(e.get("event") == "done" for e in run.entries) or rc not in (0, None):
        cells = [e for e in run.entries if e.get("event") == "cell"]
        detail = f" (last cell error: {error_text(cells[-1].get('error'))})" if cells else ""
        return "crashed", f"the notebook stopped the grader's run early (exit code {rc}){detail}"[:300]
    if all(q["status"] == "not attempted" for q in questions):
        return "not attempted", "no question attempted"
    cell_errors = [e for e in run.entries if e.get("event") == "cell"]
    note = f"{len(cell_errors)} cell(s) raised errors" if cell_errors else ""
    return "ok", note


MAX_RETRIES = 2


def _run_with_retries(plan: Plan, cells: List[str], slot: int) -> Tuple[sandbox.ChildRun, Optional[str], str]:
    """Run the child; if it dies (timeout, crash, limit) inside a cell or a question,
    run it again without that cell or question, at most MAX_RETRIES times, so the
    rest of the notebook is still graded. Returns the last run and, when a retry
    happened, the status and message of the first failure."""
    skip_cells: List[int] = []
    skip_questions: List[int] = []
    first: Optional[Tuple[str, str]] = None
    for attempt in range(MAX_RETRIES + 1):
        run = sandbox.run(cells, plan.questions, plan.cases, plan.limits, plan.hide, slot=slot,
                          skip_cells=skip_cells, skip_questions=skip_questions)
        run.extra["timeout"] = plan.limits.timeout
        if any(e.get("event") == "done" for e in run.entries) or attempt == MAX_RETRIES:
            break
        starts = [e for e in run.entries if e.get("event") in ("cell-start", "q-start")]
        if not starts:
            break
        last = starts[-1]
        status, message = classify(run, [])
        if last["event"] == "cell-start" and isinstance(last.get("cell"), int):
            where = f"cell {last['cell'] + 1}"
            skip_cells.append(last["cell"])
        elif isinstance(last.get("q"), int):
            where = f"question {plan.questions[last['q']].id}" if 0 <= last["q"] < len(plan.questions) else "a question"
            skip_questions.append(last["q"])
        else:
            break
        if first is None:
            first = (status, f"{where} stopped the run ({status}); it was skipped and the rest graded")
        else:
            first = (first[0], first[1] + f"; then {where} ({status})")
        _cleanup(run)
    if first is None:
        return run, None, ""
    return run, first[0], first[1]


def run_limit(run: sandbox.ChildRun) -> float:
    return float(run.extra.get("timeout", 0.0)) or 1e9


def grade_one(plan: Plan, sub: Submission, slot: int) -> Dict[str, Any]:
    """Grade one submission; never raises (an internal problem becomes status 'crashed')."""
    base = {
        "version": gradebook.RESULT_VERSION,
        "student": sub.student,
        "sheet": plan.sheet,
        "submission": str(sub.path),
        "config": plan.fingerprint,
        "max": float(sum(q.points for q in plan.questions)),
    }
    empty = [
        {"id": q.id, "title": q.title, "points": 0.0, "max_points": q.points, "passed": 0, "total": len(c), "status": "not graded", "feedback": "Not graded: see the status."}
        for q, c in zip(plan.questions, plan.cases)
    ]
    start = time.monotonic()
    try:
        data, base["sha256"] = read_notebook(sub.path)
        cells = cells_from_bytes(data)
        del data
    except (OSError, UnreadableNotebook) as err:
        refused = {"sha256": base.get("sha256") or _safe_digest(sub.path), "status": "unreadable notebook"}
        return {**base, **refused, "message": str(err)[:300], "score": 0.0, "questions": empty, "seconds": 0.0, "sandbox": "", "peak_rss_mb": 0.0}
    try:
        run, status, message = _run_with_retries(plan, cells, slot)
        try:
            questions = score(plan, run)
            if status is None:
                status, message = classify(run, questions)
        finally:
            _cleanup(run)
    except Exception as err:  # a grader bug must not stop the batch
        return {**base, "status": "crashed", "message": f"internal grader error: {type(err).__name__}: {err}"[:300], "score": 0.0, "questions": empty, "seconds": time.monotonic() - start, "sandbox": "", "peak_rss_mb": 0.0}
    total = round(sum(q["points"] for q in questions), 4)
    return {
        **base,
        "status": status,
        "message": message,
        "score": total,
        "questions": questions,
        "seconds": round(time.monotonic() - start, 3),
        "sandbox": run.sandbox,
        "peak_rss_mb": round(run.peak_rss_mb, 1),
    }


@dataclass
class BatchSummary:
    graded: int = 0
    skipped: int = 0
    problems: int = 0
    statuses: Dict[str, int] = field(default_factory=dict)
    mean: float = 0.0
    max: float = 0.0
    results: List[Dict[str, Any]] = field(default_factory=list)

    def line(self) -> str:
        counts = ", ".join(f"{n} {s}" for s, n in sorted(self.statuses.items()))
        return (
            f"graded {self.graded}, skipped {self.skipped} already graded, "
            f"{self.problems} could not be graded ({counts}); mean score {self.mean:.2f} / {self.max:g}"
        )


def grade_batch(
    plan: Plan,
    submissions: List[Submission],
    out: Path,
    jobs: int = 1,
    force: bool = False,
    progress: bool = True,
    duplicates: Optional[Mapping[str, Sequence[Path]]] = None,
) -> BatchSummary:
    """Grade every submission (resuming: results already on disk for the same file and
    plan are kept unless ``force``), then write the gradebook and feedback.

    ``duplicates`` (student id -> files, from :func:`~course_lib.grade.submission.discover_all`)
    are not graded: each gets a gradebook row with status ``duplicate id`` naming its files.
    """
    out.mkdir(parents=True, exist_ok=True)
    summary = BatchSummary(max=float(sum(q.points for q in plan.questions)))
    todo: List[Submission] = []
    done: Dict[str, Dict[str, Any]] = {}
    for sub in submissions:
        old = None if force else gradebook.read_result(out, sub.student)
        if old and old.get("config") == plan.fingerprint and old.get("sha256") == _safe_digest(sub.path):
            done[sub.student] = old
            summary.skipped += 1
        else:
            todo.append(sub)
    slots: "queue.Queue[int]" = queue.Queue()
    for i in range(max(1, jobs)):
        slots.put(i)

    def task(sub: Submission) -> Dict[str, Any]:
        slot = slots.get()
        try:
            res = grade_one(plan, sub, slot)
        finally:
            slots.put(slot)
        gradebook.write_result(out, res)
        gradebook.write_feedback(out, res)
        return res

    from tqdm.auto import tqdm

    # the fork server (torch imported once) stays up for the next batch of this process; `course grade`
    # stops it when it ends, and so does interpreter exit (forkserver.close)
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool, tqdm(total=len(todo), unit="submission", disable=not progress) as bar:
        futures = [pool.submit(task, sub) for sub in todo]
        for fut in as_completed(futures):
            res = fut.result()
            done[res["student"]] = res
            summary.graded += 1
            bar.set_postfix_str(f"{res['student']}: {res['status']}", refresh=False)
            bar.update()
    results = [done[s.student] for s in submissions]
    for res in results:
        if not (out / "feedback" / f"{res['student']}.md").exists():
            gradebook.write_feedback(out, res)
    results += [gradebook.duplicate_row(plan.sheet, [q.id for q in plan.questions], summary.max, sid, files)
                for sid, files in sorted((duplicates or {}).items())]
    for res in results:
        summary.statuses[res["status"]] = summary.statuses.get(res["status"], 0) + 1
        summary.problems += res["status"] in gradebook.PROBLEM_STATUSES
    gradebook.write_gradebook(out, [q.id for q in plan.questions], results)
    summary.mean = sum(r["score"] for r in results) / len(results) if results else 0.0
    summary.results = results
    return summary


def _safe_digest(path: Path) -> str:
    try:
        return digest(path)
    except OSError:
        return ""
