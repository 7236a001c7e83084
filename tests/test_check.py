"""The in-notebook check: verdicts for every way a student's function can go wrong.
It never raises, never prints the reference's values, names the misconception an
answer shows, gives one more hint tier per failed attempt, and `use` falls back."""

from __future__ import annotations

import threading

import pytest
import torch

from course_lib import check as C
from course_lib import questions as registry
from course_lib.questions import Case, Misconception, Question


def _reference(x: torch.Tensor, k: float = 2.0) -> torch.Tensor:
    return x * k


def _cases(gen: torch.Generator, hidden: bool) -> list[Case]:
    shapes = [(3, 2), (1, 1), (0, 4)] + ([(5, 7), (2, 3, 4)] if hidden else [])
    return [Case(f"shape {s}", (torch.randn(*s, generator=gen, dtype=torch.float64),), {"k": 3.0}) for s in shapes]


def _fails_on_empty(x: torch.Tensor, k: float = 2.0) -> torch.Tensor:
    if x.numel() == 0:
        raise ValueError("a misconception that cannot handle empty input")
    return x * k + 1


HINTS = ("multiply every entry by k", "the output has the input's shape", "one multiplication by the scalar k")
MISCONCEPTIONS = (
    Misconception("k ignored", "the factor is an argument, not a constant of the function; it changes per call.",
                  lambda x, k=2.0: x * 2),
    Misconception("adds instead of multiplying", "scaling stretches every entry; adding k shifts them all instead.",
                  lambda x, k=2.0: x + k),
    Misconception("crashes on empty", "this one raises on some inputs and so can never match there.", _fails_on_empty),
)
Q = Question("99.1", "99_test", "scale", "scale", 3, _reference, _cases, HINTS, MISCONCEPTIONS)


@pytest.fixture(autouse=True)
def registered():
    registry._load()
    registry._REGISTRY[Q.id] = Q
    C._FAILED_CHECKS.clear()
    yield
    registry._REGISTRY.pop(Q.id, None)
    C._FAILED_CHECKS.clear()


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
    assert "Hint 1 of 3: multiply every entry by k" in res.message and "Hint 2 of 3" not in res.message


def test_a_registered_misconception_is_named_with_its_idea():
    res = verdict(lambda x, k=2.0: 2 * x)  # written differently from the registered wrong variant
    assert res.status == C.FAILED and res.misconception == "k ignored"
    assert "This looks like k ignored: the factor is an argument" in res.message
    assert "First mismatch: case 1 of 3" in res.message  # the mismatch report is still there
    res = verdict(lambda x, k=2.0: x + k, hidden=True)  # the grader's cases too
    assert res.misconception == "adds instead of multiplying"


def test_no_misconception_is_named_when_none_explains_every_failing_case():
    for func in (
        lambda x, k=2.0: x * k + 0.5,  # wrong in its own way
        lambda x, k=2.0: x * 2 if x.shape == (3, 2) else x + k,  # one mistake here, another there
        # matches the misconception that raises on the empty case everywhere else; it cannot match there
        lambda x, k=2.0: x * k + 1 if x.numel() else torch.ones(1, dtype=x.dtype),
    ):
        res = verdict(func)
        assert res.status == C.FAILED and res.misconception is None and "This looks like" not in res.message


def test_a_misconception_is_only_judged_on_the_failing_cases():
    # k ignored shows only where it matters; cases the answer gets right do not count against the diagnosis
    res = verdict(lambda x, k=2.0: x * 2 if x.shape == (3, 2) else x * k)
    assert res.passed == 2 and res.misconception == "k ignored"


def test_a_correct_answer_is_never_diagnosed():
    for func in (lambda x, k=2.0: x * k, lambda x, k=2.0: torch.mul(x, k)):
        res = verdict(func)
        assert res.status == C.PASSED and res.misconception is None and "This looks like" not in res.message


def test_hint_tiers_grow_one_per_failed_check_and_with_hint(capsys):
    wrong = lambda x, k=2.0: x - k  # noqa: E731
    C.check("99.1", wrong)
    first = capsys.readouterr().out
    assert "Hint 1 of 3" in first and "Hint 2 of 3" not in first
    C.check("99.1", wrong)
    second = capsys.readouterr().out
    assert "Hint 1 of 3" in second and "Hint 2 of 3: the output has" in second and "Hint 3 of 3" not in second
    C.hint("99.1")
    third = capsys.readouterr().out
    assert "Hint 3 of 3: one multiplication" in third and "last tier" in third
    C.check("99.1", wrong)
    C.hint("99.1")
    C.hint("nope")
    out = capsys.readouterr().out
    assert out.count("Hint 3 of 3") == 2 and "Hint 4" not in out and "no question 'nope'" in out


def test_passing_does_not_use_up_hint_tiers(capsys):
    C.check("99.1", lambda x, k=2.0: x * k)
    C.check("99.1", lambda x, k=2.0: x * 2)
    out = capsys.readouterr().out
    assert "✅" in out and "Hint 1 of 3" in out and "Hint 2 of 3" not in out


def test_question_declarations_are_validated():
    with pytest.raises(TypeError, match="hints must be a non-empty tuple"):
        Question("99.2", "99_test", "t", "f", 1, _reference, _cases, "one string, not tiers")
    with pytest.raises(ValueError, match="kind must be one of"):
        Question("99.2", "99_test", "t", "f", 1, _reference, _cases, HINTS, kind="transcribe")
    with pytest.raises(KeyError, match="no misconception 'other'"):
        Q.misconception("other")


def test_a_single_value_is_never_given_away_by_the_size_of_its_error():
    expected = (torch.tensor(375.0, dtype=torch.float64),)
    for got in (torch.tensor(0.0, dtype=torch.float64), torch.tensor([2.5], dtype=torch.float64).reshape(())):
        message = C.compare(expected, (got,), atol=1e-10, rtol=1e-7)
        assert "differs from the expected one" in message and "375" not in message and "372.5" not in message
    message = C.compare((torch.tensor(7),), (torch.tensor(5),), atol=0, rtol=0)
    assert message == "output: the value differs from the expected one"
    assert "max abs error" in C.compare((torch.zeros(2),), (torch.ones(2),), atol=0, rtol=0)  # tensors keep the size


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
            assert res.total >= (1 if q.kind in registry.NUMBER_KINDS else 3), f"{q.id}: too few cases"
