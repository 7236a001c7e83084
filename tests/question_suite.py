"""The checks every exercise sheet's questions pass.

A ``tests/test_questions_chNN.py`` module defines

* ``SHEET``: the sheet's name, e.g. ``"05_convolution"``;
* ``CORRECT``: ``{question id: a correct answer written differently from the reference}``;

and one class ``class TestQuestions(QuestionSuite): pass``. The typical mistakes
live in the registry (``Question.misconceptions``), beside the hint tiers.
``tests/conftest.py`` parametrises the suite's tests over the sheet's question ids
(and misconceptions) from the registry, so a question added to the sheet is tested
without editing this file, and a question without a correct alternative, two
misconceptions or two hint tiers fails.
The fixtures ``solution_sheet`` and ``exercise_sheet`` (the namespaces after
running each sheet's code cells) come from ``tests/conftest.py`` too, for the
chapter's own extra tests.
"""

from __future__ import annotations

import re
from types import ModuleType
from typing import List

import pytest

from course_lib import questions
from course_lib.assign import make_exercise
from course_lib.check import FAILED, NOT_ATTEMPTED, PASSED, evaluate

MIN_MISTAKES = 2
MIN_CODE_CHARS = 12  # solution lines shorter than this (``return x``) may appear in prose by chance


def solution_lines(sheet: str, qid: str) -> List[str]:
    """The code lines of question ``qid``'s solution region in ``solutions/<sheet>.py``,
    whitespace removed, comments and docstrings dropped, at least MIN_CODE_CHARS long."""
    from helpers import ROOT

    text = (ROOT / "solutions" / f"{sheet}.py").read_text(encoding="utf-8")
    _, regions = make_exercise(text, sheet)
    lines = text.split("\n")
    out = []
    for r in regions:
        if r.qid != qid:
            continue
        for line in lines[r.begin: r.end - 1]:
            code = line.split("#", 1)[0].strip()
            if not code or code.startswith(("\"\"\"", "\'\'\'")):
                continue
            squeezed = re.sub(r"\s+", "", code)
            if len(squeezed) >= MIN_CODE_CHARS:
                out.append(squeezed)
    return out


def question_ids(module: ModuleType) -> list:
    """The ids of the module's sheet, in registry order."""
    return [q.id for q in questions.for_sheet(module.SHEET)]


class QuestionSuite:
    """Generic tests of one sheet; subclass it as ``TestQuestions`` in the chapter's module."""

    question_suite = True  # recognised by pytest_generate_tests in tests/conftest.py

    def test_sheet_has_these_questions(self, request: pytest.FixtureRequest) -> None:
        module = request.module
        ids = question_ids(module)
        assert ids, f"no questions registered for sheet {module.SHEET!r}"
        assert sorted(module.CORRECT) == ids, f"CORRECT covers {sorted(module.CORRECT)}, the sheet has {ids}"
        assert not hasattr(module, "WRONG"), "typical mistakes belong in the registry (Question.misconceptions), not in the test module"
        for q in questions.for_sheet(module.SHEET):
            public, hidden = q.cases(), q.cases(hidden=True)
            if q.kind in questions.NUMBER_KINDS:  # a measured or predicted value: one case may be all there is
                assert 1 <= len(public) <= 8, f"{q.id}: {len(public)} public cases (1 to 8 expected)"
                continue
            assert 4 <= len(public) <= 8, f"{q.id}: {len(public)} public cases (4 to 8 expected)"
            assert len(hidden) > len(public) or {c.label for c in hidden} != {c.label for c in public}, (
                f"{q.id}: the hidden cases add nothing to the public ones")
        kinds = {q.kind for q in questions.for_sheet(module.SHEET)}
        assert kinds - {"implement"}, (
            f"sheet {module.SHEET}: every question is 'implement'; at least one must be derived, investigated, "
            f"debugged or predicted (Question.kind)")

    def test_each_question_has_misconceptions_and_hint_tiers(self, request: pytest.FixtureRequest) -> None:
        for q in questions.for_sheet(request.module.SHEET):
            names = [m.name for m in q.misconceptions]
            assert len(names) >= MIN_MISTAKES, f"{q.id}: {len(names)} misconception(s), at least {MIN_MISTAKES} expected"
            assert len(set(names)) == len(names), f"{q.id}: misconception names repeat: {names}"
            for m in q.misconceptions:
                assert callable(m.wrong) and m.wrong is not q.reference, (q.id, m.name)
                assert len(m.why.split()) >= 6, f"{q.id} {m.name!r}: explain the idea it gets wrong in a sentence"
            assert 2 <= len(q.hints) <= 3, f"{q.id}: {len(q.hints)} hint tier(s), 2 or 3 expected (idea, shapes, near-code)"
            assert len(set(q.hints)) == len(q.hints), f"{q.id}: hint tiers repeat"

    def test_hints_and_explanations_never_give_the_solution(self, request: pytest.FixtureRequest, qid: str) -> None:
        q = questions.get(qid)
        code = solution_lines(request.module.SHEET, qid)
        assert code, f"{qid}: no solution region found in solutions/{request.module.SHEET}.py"
        texts = list(q.hints) + [m.why for m in q.misconceptions]
        for text in texts:
            squeezed = re.sub(r"\s+", "", text)
            for line in code:
                assert line not in squeezed, f"{qid}: a hint or explanation contains the solution's line {line!r}: {text!r}"

    def test_reference_and_a_different_correct_answer_pass(self, request: pytest.FixtureRequest, qid: str) -> None:
        q = questions.get(qid)
        alternative = request.module.CORRECT[qid]
        assert alternative is not q.reference, f"{qid}: CORRECT must be written differently, not the reference itself"
        for fn in (q.reference, alternative):
            for hidden in (False, True):
                res = evaluate(qid, fn, hidden=hidden)
                assert res.status == PASSED, (qid, getattr(fn, "__name__", fn), hidden, res.message)
                assert res.misconception is None

    def test_typical_mistake_fails_and_is_named(self, qid: str, mistake: str) -> None:
        m = questions.get(qid).misconception(mistake)
        for hidden in (False, True):  # the student's feedback, then the grader's cases
            res = evaluate(qid, m.wrong, hidden=hidden)
            assert res.status == FAILED, f"{qid} accepted the typical mistake {mistake!r} (hidden={hidden}): {res.message}"
            assert res.passed < res.total and "Hint 1 of" in res.message
            assert res.misconception == mistake, (
                f"{qid}: the mistake {mistake!r} was diagnosed as {res.misconception!r} (hidden={hidden}); "
                f"two misconceptions that give the same outputs cannot be told apart: make the cases separate them")
            assert f"This looks like {mistake}" in res.message

    def test_solution_sheet_passes_and_exercise_sheet_is_not_attempted(self, qid: str, solution_sheet: dict,
                                                                      exercise_sheet: dict) -> None:
        name = questions.get(qid).func_name
        assert evaluate(qid, solution_sheet[name]).status == PASSED
        assert evaluate(qid, solution_sheet[name], hidden=True).status == PASSED
        assert evaluate(qid, exercise_sheet[name]).status == NOT_ATTEMPTED
