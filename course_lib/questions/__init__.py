"""The question registry: every graded exercise question, in one place.

A :class:`Question` says which function the student writes (``func_name``), how
many points it is worth, how to generate inputs (:attr:`Question.make_cases`),
the reference implementation from ``course_lib``, the tolerance, two or three
hint tiers (idea -> shapes -> near-code nudge, never the answer) and the typical
mistakes (:class:`Misconception`: a function computing the wrong variant plus the
idea it gets wrong). The in-notebook :func:`course_lib.check.check`, the batch
grader and the tests all read questions from here, so a question and what can go
wrong with it are defined exactly once.

Questions are declared per chapter in modules ``chNN_*.py`` of this package,
each with a module-level list ``QUESTIONS``. Importing this package does not
import them; :func:`get` and :func:`all_questions` do, on first use.
"""

from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Tuple

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


KINDS = ("implement", "derive", "investigate", "debug", "predict")
"""What a question asks for: ``implement`` a function whose maths the sheet states;
``derive`` a result the sheet does not print (a gradient, a formula) and implement it;
``investigate`` by measuring or experimenting and answer with a number; ``debug`` a
given listing (find and fix the bug); ``predict`` a shape or value before running."""

NUMBER_KINDS = ("investigate", "predict")
"""Kinds whose answer may be a single value (one case, a function without arguments)."""


@dataclass(frozen=True)
class Misconception:
    """A typical wrong answer to a question and the idea behind it.

    ``name`` is a short label ("sum instead of mean"); ``why`` explains the idea the
    mistake gets wrong, in words, without giving the fix in code; ``wrong`` computes
    the wrong variant with the reference's signature. When a student's output matches
    ``wrong``'s on the failing cases, the check says "This looks like <name>: <why>".
    """

    name: str
    why: str
    wrong: Callable[..., Any]


@dataclass(frozen=True)
class Question:
    """A graded question.

    ``make_cases(gen, hidden)`` returns the inputs: with ``hidden=False`` the
    public cases used by the in-notebook check, with ``hidden=True`` more cases
    for the grader. ``call(func, case)`` runs a function on a case and returns
    its output (tensors, numbers, or tuples of them). The student's output must
    match ``call(reference, case)`` within ``atol``/``rtol``.

    ``kind`` says what the question asks for (see :data:`KINDS`). ``hints`` are two or three tiers, shown one more per failed attempt: the idea,
    then the shapes, then a near-code nudge; none gives the answer. ``misconceptions``
    are the typical wrong answers (at least two), recognised by name in feedback.
    """

    id: str
    sheet: str
    title: str
    func_name: str
    points: int
    reference: Callable[..., Any]
    make_cases: Callable[[torch.Generator, bool], List[Case]]
    hints: Tuple[str, ...]
    misconceptions: Tuple[Misconception, ...] = ()
    kind: str = "implement"
    atol: float = 1e-10
    rtol: float = 1e-7
    call: Callable[[Callable[..., Any], Case], Any] = default_call
    public_seed: int = 0
    hidden_seed: int = 1234

    def __post_init__(self) -> None:
        if isinstance(self.hints, str) or not self.hints or not all(isinstance(h, str) and h for h in self.hints):
            raise TypeError(f"question {self.id}: hints must be a non-empty tuple of strings (tiers), got {self.hints!r}")
        if self.kind not in KINDS:
            raise ValueError(f"question {self.id}: kind must be one of {KINDS}, got {self.kind!r}")
        object.__setattr__(self, "hints", tuple(self.hints))
        object.__setattr__(self, "misconceptions", tuple(self.misconceptions))

    @property
    def hint(self) -> str:
        """The first hint tier (the one the grader's feedback shows)."""
        return self.hints[0]

    def misconception(self, name: str) -> Misconception:
        """The registered misconception called ``name``; a clear KeyError otherwise."""
        for m in self.misconceptions:
            if m.name == name:
                return m
        known = ", ".join(repr(m.name) for m in self.misconceptions) or "none"
        raise KeyError(f"question {self.id} has no misconception {name!r}; known: {known}")

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
