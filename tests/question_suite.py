"""The checks every exercise sheet's questions pass.

A ``tests/test_questions_chNN.py`` module defines

* ``SHEET``: the sheet's name, e.g. ``"05_convolution"``;
* ``CORRECT``: ``{question id: a correct answer written differently from the reference}``;
* ``WRONG``: ``{question id: {label: a typical wrong answer}}``, at least two per question;

and one class ``class TestQuestions(QuestionSuite): pass``. ``tests/conftest.py``
parametrises the suite's tests over the sheet's question ids (and mistakes) from
the registry, so a question added to the sheet is tested without editing this
file, and a question without a correct alternative or two mistakes fails.
The fixtures ``solution_sheet`` and ``exercise_sheet`` (the namespaces after
running each sheet's code cells) come from ``tests/conftest.py`` too, for the
chapter's own extra tests.
"""

from __future__ import annotations

from types import ModuleType

import pytest

from course_lib import questions
from course_lib.check import FAILED, NOT_ATTEMPTED, PASSED, evaluate

MIN_MISTAKES = 2


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
        assert sorted(module.WRONG) == ids, f"WRONG covers {sorted(module.WRONG)}, the sheet has {ids}"
        for q in questions.for_sheet(module.SHEET):
            public, hidden = q.cases(), q.cases(hidden=True)
            assert 4 <= len(public) <= 8, f"{q.id}: {len(public)} public cases (4 to 8 expected)"
            assert len(hidden) > len(public) or {c.label for c in hidden} != {c.label for c in public}, (
                f"{q.id}: the hidden cases add nothing to the public ones")

    def test_each_question_has_typical_mistakes(self, request: pytest.FixtureRequest) -> None:
        for qid in question_ids(request.module):
            mistakes = request.module.WRONG.get(qid, {})
            assert len(mistakes) >= MIN_MISTAKES, f"{qid}: {len(mistakes)} typical mistake(s), at least {MIN_MISTAKES} expected"

    def test_reference_and_a_different_correct_answer_pass(self, request: pytest.FixtureRequest, qid: str) -> None:
        q = questions.get(qid)
        alternative = request.module.CORRECT[qid]
        assert alternative is not q.reference, f"{qid}: CORRECT must be written differently, not the reference itself"
        for fn in (q.reference, alternative):
            for hidden in (False, True):
                res = evaluate(qid, fn, hidden=hidden)
                assert res.status == PASSED, (qid, getattr(fn, "__name__", fn), hidden, res.message)

    def test_typical_mistake_fails(self, request: pytest.FixtureRequest, qid: str, mistake: str) -> None:
        for hidden in (False, True):  # the student's feedback, then the grader's cases
            res = evaluate(qid, request.module.WRONG[qid][mistake], hidden=hidden)
            assert res.status == FAILED, f"{qid} accepted the typical mistake {mistake!r} (hidden={hidden}): {res.message}"
            assert res.passed < res.total and "Hint:" in res.message

    def test_solution_sheet_passes_and_exercise_sheet_is_not_attempted(self, qid: str, solution_sheet: dict,
                                                                      exercise_sheet: dict) -> None:
        name = questions.get(qid).func_name
        assert evaluate(qid, solution_sheet[name]).status == PASSED
        assert evaluate(qid, solution_sheet[name], hidden=True).status == PASSED
        assert evaluate(qid, exercise_sheet[name]).status == NOT_ATTEMPTED
