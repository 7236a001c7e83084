"""The question registry: every graded exercise question, in one place.

A :class:`Question` says which function the student writes (``func_name``), how
many points it is worth, how to generate inputs (:attr:`Question.make_cases`),
the reference implementation from ``course_lib``, the tolerance and a hint. The
in-notebook :func:`course_lib.check.check` and the batch grader both read
questions from here, so a question is defined exactly once.

Questions are declared per chapter in modules ``chNN_*.py`` of this package,
each with a module-level list ``QUESTIONS``. Importing this package does not
import them; :func:`get` and :func:`all_questions` do, on first use.
"""

from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional

import torch


@dataclass(frozen=True)
class Case:
    """One input to a question: a label for messages and the call's arguments."""

    label: str
    args: tuple
    kwargs: Dict[str, Any] = field(default_factory=dict)


def randn(gen: torch.Generator, *shape: int, scale: float = 1.0, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """Standard-normal inputs of ``shape`` (empty: a 0-d tensor) drawn from ``gen`` in float64, times ``scale``, as ``dtype``."""
    return (torch.randn(shape, generator=gen, dtype=torch.float64) * scale).to(dtype)


def rand(gen: torch.Generator, *shape: int) -> torch.Tensor:
    """Uniform [0, 1) float64 inputs of ``shape`` drawn from ``gen``."""
    return torch.rand(shape, generator=gen, dtype=torch.float64)


def default_call(func: Callable[..., Any], case: Case) -> Any:
    """Call ``func(*case.args, **case.kwargs)``; the result is compared with the reference's."""
    return func(*case.args, **case.kwargs)


@dataclass(frozen=True)
class Question:
    """A graded question.

    ``make_cases(gen, hidden)`` returns the inputs: with ``hidden=False`` the
    public cases used by the in-notebook check, with ``hidden=True`` more cases
    for the grader. ``call(func, case)`` runs a function on a case and returns
    its output (tensors, numbers, or tuples of them). The student's output must
    match ``call(reference, case)`` within ``atol``/``rtol``.
    """

    id: str
    sheet: str
    title: str
    func_name: str
    points: int
    reference: Callable[..., Any]
    make_cases: Callable[[torch.Generator, bool], List[Case]]
    hint: str
    atol: float = 1e-10
    rtol: float = 1e-7
    call: Callable[[Callable[..., Any], Case], Any] = default_call
    public_seed: int = 0
    hidden_seed: int = 1234

    def cases(self, hidden: bool = False, seed: Optional[int] = None) -> List[Case]:
        """Generate this question's cases (public or hidden) from a seeded generator."""
        if seed is None:
            seed = self.hidden_seed if hidden else self.public_seed
        gen = torch.Generator().manual_seed(seed)
        return self.make_cases(gen, hidden)


_REGISTRY: Dict[str, Question] = {}
_LOADED = False


def _load() -> None:
    global _LOADED
    if _LOADED:
        return
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name.startswith("ch"):
            module = importlib.import_module(f"{__name__}.{info.name}")
            for q in getattr(module, "QUESTIONS", []):
                if q.id in _REGISTRY and _REGISTRY[q.id] is not q:
                    raise ValueError(f"duplicate question id {q.id!r} in {info.name}")
                _REGISTRY[q.id] = q
    _LOADED = True


def all_questions() -> List[Question]:
    """Every registered question, ordered by id."""
    _load()
    return [_REGISTRY[k] for k in sorted(_REGISTRY)]


def get(qid: str) -> Question:
    """The question with id ``qid`` (e.g. ``"01.2"``); a clear KeyError otherwise."""
    _load()
    try:
        return _REGISTRY[qid]
    except KeyError:
        known = ", ".join(sorted(_REGISTRY)) or "none"
        raise KeyError(f"no question {qid!r}; known questions: {known}") from None


def for_sheet(sheet: str) -> List[Question]:
    """The questions of one sheet (e.g. ``"01_forward"``), ordered by id."""
    return [q for q in all_questions() if q.sheet == sheet]
