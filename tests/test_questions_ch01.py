"""Questions of sheet 01_forward: each accepts the reference and a differently written
correct answer, rejects typical wrong answers; the solution sheet passes, the
unfilled exercise sheet is "not attempted"."""

from __future__ import annotations

import pytest
import torch

from course_lib import questions
from course_lib.check import FAILED, NOT_ATTEMPTED, PASSED, evaluate
from helpers import ROOT, run_sheet

IDS = ["01.1", "01.2", "01.3", "01.4", "01.5"]


# --- correct answers written differently from the reference -----------------------------
def linear_einsum(x, W, b):
    return torch.einsum("nk,jk->nj", x, W) + b


def relu_clamp(x):
    return x.clamp(min=0)


def sigmoid_tanh(x):
    return 0.5 * (1 + torch.tanh(x / 2))


def softmax_logsumexp(logits):
    return torch.exp(logits - torch.logsumexp(logits, dim=-1, keepdim=True))


def mlp_loop(x, params):
    outs, a = [x], x
    for W, b in params[:-1]:
        z = torch.addmm(b, a, W.t())
        outs += [z, torch.relu(z)]
        a = outs[-1]
    W, b = params[-1]
    return outs + [a @ W.T + b]


CORRECT = {"01.1": linear_einsum, "01.2": relu_clamp, "01.3": sigmoid_tanh, "01.4": softmax_logsumexp, "01.5": mlp_loop}


# --- typical mistakes -----------------------------------------------------------------
def mlp_relu_on_logits(x, params):
    outs, a = [x], x
    for W, b in params:
        z = a @ W.T + b
        a = torch.relu(z)
        outs += [z, a]
    return outs  # also appends ReLU(z_L) at the end


def mlp_relu_everywhere(x, params):
    outs, a = [x], x
    for i, (W, b) in enumerate(params):
        z = a @ W.T + b
        outs.append(torch.relu(z) if i == len(params) - 1 else z)
        if i < len(params) - 1:
            a = torch.relu(z)
            outs.append(a)
    return outs


def mlp_logits_only(x, params):
    a = x
    for i, (W, b) in enumerate(params):
        a = a @ W.T + b
        if i < len(params) - 1:
            a = torch.relu(a)
    return a


WRONG = {
    "01.1": {
        "no transpose": lambda x, W, b: x @ W + b,
        "forgot the bias": lambda x, W, b: x @ W.T,
        "bias subtracted": lambda x, W, b: x @ W.T - b,
    },
    "01.2": {
        "returns the 0/1 mask (the derivative)": lambda x: (x > 0).to(x.dtype),
        "clamps the wrong side": lambda x: x.clamp(max=0),
        "leaky ReLU": lambda x: torch.where(x > 0, x, 0.01 * x),
        "converts to float64": lambda x: x.double().clamp(min=0),
    },
    "01.3": {
        "exp(x) / (1 + exp(x)) overflows": lambda x: torch.exp(x) / (1 + torch.exp(x)),
        "sign error": lambda x: 1 / (1 + torch.exp(x)),
        "tanh instead": lambda x: torch.tanh(x),
    },
    "01.4": {
        "no max subtraction": lambda z: torch.exp(z) / torch.exp(z).sum(-1, keepdim=True),
        "global max instead of per row": lambda z: torch.exp(z - z.max()) / torch.exp(z - z.max()).sum(-1, keepdim=True),
        "normalised over the wrong axis": lambda z: torch.softmax(z, dim=0),
        "forgot to normalise": lambda z: torch.exp(z - z.max(-1, keepdim=True).values),
    },
    "01.5": {
        "ReLU on the logits too": mlp_relu_everywhere,
        "keeps the last activation in the list": mlp_relu_on_logits,
        "returns only the logits": mlp_logits_only,
        "no transpose": lambda x, params: [x] + [x @ params[0][0] + params[0][1]],
    },
}


@pytest.fixture(scope="module")
def solution_sheet():
    return run_sheet(ROOT / "solutions" / "01_forward.py")


@pytest.fixture(scope="module")
def exercise_sheet():
    return run_sheet(ROOT / "exercises" / "01_forward.py")


def test_sheet_has_its_questions():
    qs = questions.for_sheet("01_forward")
    assert [q.id for q in qs] == IDS
    for q in qs:
        public, hidden = q.cases(), q.cases(hidden=True)
        assert 4 <= len(public) <= 8, q.id
        assert len(hidden) > len(public) or {c.label for c in hidden} != {c.label for c in public}, q.id


@pytest.mark.parametrize("qid", IDS)
def test_reference_and_a_different_correct_answer_pass(qid):
    q = questions.get(qid)
    for fn in (q.reference, CORRECT[qid]):
        for hidden in (False, True):
            res = evaluate(qid, fn, hidden=hidden)
            assert res.status == PASSED, (qid, fn.__name__, hidden, res.message)


@pytest.mark.parametrize("qid, name", [(qid, name) for qid in IDS for name in WRONG[qid]])
def test_typical_mistakes_fail(qid, name):
    res = evaluate(qid, WRONG[qid][name])
    assert res.status == FAILED, (qid, name, res.message)
    assert "Hint:" in res.message


def test_failure_messages_are_specific():
    msg = evaluate("01.4", WRONG["01.4"]["no max subtraction"]).message
    assert "NaN" in msg and "+-1000" in msg
    msg = evaluate("01.5", mlp_logits_only).message
    assert "expected 6 output(s), got 1" in msg
    msg = evaluate("01.2", WRONG["01.2"]["converts to float64"]).message
    assert "expected (3, 5) float32, got (3, 5) float64" in msg


@pytest.mark.parametrize("qid", IDS)
def test_solution_sheet_passes_and_exercise_sheet_is_not_attempted(qid, solution_sheet, exercise_sheet):
    name = questions.get(qid).func_name
    assert evaluate(qid, solution_sheet[name]).status == PASSED
    assert evaluate(qid, solution_sheet[name], hidden=True).status == PASSED
    assert evaluate(qid, exercise_sheet[name]).status == NOT_ATTEMPTED


def test_fallback_cell_of_the_exercise_sheet_uses_the_reference(exercise_sheet):
    # the last cell ran with the references: probabilities of 3 points over 2 classes
    p = exercise_sheet["p"]
    assert p.shape == (3, 2)
    torch.testing.assert_close(p.sum(-1), torch.ones(3, dtype=torch.float64))
