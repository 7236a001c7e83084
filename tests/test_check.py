"""The in-notebook check: verdicts for every way a student's function can go wrong.
It never raises, never prints the reference's values, and `use` falls back."""

from __future__ import annotations

import threading

import pytest
import torch

from course_lib import check as C
from course_lib import questions as registry
from course_lib.questions import Case, Question


def _reference(x: torch.Tensor, k: float = 2.0) -> torch.Tensor:
    return x * k


def _cases(gen: torch.Generator, hidden: bool) -> list[Case]:
    shapes = [(3, 2), (1, 1), (0, 4)] + ([(5, 7), (2, 3, 4)] if hidden else [])
    return [Case(f"shape {s}", (torch.randn(*s, generator=gen, dtype=torch.float64),), {"k": 3.0}) for s in shapes]


Q = Question("99.1", "99_test", "scale", "scale", 3, _reference, _cases, "multiply every entry by k")


@pytest.fixture(autouse=True)
def registered():
    registry._load()
    registry._REGISTRY[Q.id] = Q
    yield
    registry._REGISTRY.pop(Q.id, None)


def verdict(func, **kw):
    return C.evaluate("99.1", func, **kw)


def test_correct_answers_pass_with_full_points():
    for f in (lambda x, k=2.0: x * k, lambda x, k=2.0: torch.mul(k, x), lambda x, k=2.0: sum([x] * int(k))):
        res = verdict(f)
        assert res.status == C.PASSED and res.points == 3 and res.passed == res.total == 3


def test_not_attempted():
    def stub(x, k=2.0):
        raise NotImplementedError("Exercise 99.1")

    assert verdict(stub).status == C.NOT_ATTEMPTED
    assert verdict(None).status == C.NOT_ATTEMPTED


@pytest.mark.parametrize(
    "func, expected",
    [
        (lambda x, k=2.0: x * 2, "max abs error"),  # ignores k
        (lambda x, k=2.0: (x * k).float(), "got (3, 2) float32"),
        (lambda x, k=2.0: (x * k).T, "got (2, 3) float64"),
        (lambda x, k=2.0: None, "forget to `return`"),
        (lambda x, k=2.0: x / 0 * 0, "NaN"),
        (lambda x, k=2.0: x * k + float("inf"), "infinite"),
        (lambda x, k=2.0: [x * k, x], "expected 1 output(s), got 2"),
        (lambda x, k=2.0: {"y": x * k}, "expected a torch.Tensor"),
        (lambda x, k=2.0: 1 / 0, "ZeroDivisionError"),
        (lambda x: x * 3, "TypeError"),
    ],
)
def test_wrong_answers_fail_with_a_specific_message(func, expected):
    res = verdict(func)
    assert res.status == C.FAILED and res.points < 3
    assert expected in res.message
    assert "case 1 of 3" in res.message and "arg0: (3, 2) float64" in res.message
    assert "Hint: multiply every entry by k" in res.message


def test_partial_credit_per_case():
    res = verdict(lambda x, k=2.0: x * k if x.numel() != 1 else x)
    assert res.status == C.FAILED and res.passed == 2 and res.points == pytest.approx(2.0)


def test_timeout_is_a_verdict_not_a_hang():
    def forever(x, k=2.0):
        while True:
            try:
                pass
            except Exception:  # a student's catch-all must not swallow the time limit
                pass

    res = verdict(forever, timeout=0.3)
    assert res.status == C.FAILED and "did not finish within 0.3 s" in res.message


def test_in_place_edits_do_not_corrupt_the_reference():
    def sneaky(x, k=2.0):
        x.mul_(k)
        return x

    assert verdict(sneaky).status == C.PASSED  # the student's copy is private
    cases = Q.cases()
    assert verdict(lambda x, k=2.0: x * k).status == C.PASSED
    assert all(torch.equal(a.args[0], b.args[0]) for a, b in zip(cases, Q.cases()))


def test_tensor_subclass_with_lying_eq_is_rejected():
    class Liar(torch.Tensor):
        def __eq__(self, other):  # noqa: D105
            return True

    res = verdict(lambda x, k=2.0: torch.zeros(3).as_subclass(Liar))
    assert res.status == C.FAILED and "subclass" in res.message


def test_hidden_cases_differ_from_public_ones():
    public, hidden = Q.cases(), Q.cases(hidden=True)
    assert len(hidden) > len(public)
    assert not torch.equal(public[0].args[0], hidden[0].args[0])
    res = verdict(lambda x, k=2.0: x * k if x.dim() == 2 else x, hidden=True)
    assert res.status == C.FAILED and res.total == 5


def test_check_prints_and_never_raises_nor_reveals(capsys):
    secret = Q.cases()[0].args[0] * 3
    C.check("99.1", lambda x, k=2.0: x * 2)
    C.check("99.1", "not a function")
    C.check("nope", None)
    out = capsys.readouterr().out
    assert out.count("❌") == 3 and "no question 'nope'" in out
    assert f"{float(secret.flatten()[0]):.4f}" not in out


def test_check_works_off_the_main_thread():
    res = []
    t = threading.Thread(target=lambda: res.append(verdict(lambda x, k=2.0: x * k)))
    t.start()
    t.join(30)
    assert res and res[0].status == C.PASSED


def test_use_falls_back_to_the_reference(capsys):
    def stub(x, k=2.0):
        raise NotImplementedError

    mine = lambda x, k=2.0: x * k  # noqa: E731
    assert C.use("99.1", stub) is _reference
    assert C.use("99.1", mine) is mine
    out = capsys.readouterr().out
    assert "Using the course_lib reference" in out and "Using your `scale`" in out


def test_registry_rejects_unknown_ids_clearly():
    with pytest.raises(KeyError, match="no question '00.0'"):
        registry.get("00.0")


def test_every_registered_question_passes_its_own_reference():
    for q in registry.all_questions():
        for hidden in (False, True):
            res = C.evaluate(q.id, q.reference, hidden=hidden)
            assert res.status == C.PASSED, f"{q.id}: {res.message}"
            assert res.total >= 3, f"{q.id}: too few cases"
