"""Questions of sheet 01_forward: each accepts the reference and a differently written
correct answer, rejects typical wrong answers; the solution sheet passes, the
unfilled exercise sheet is "not attempted"."""

from __future__ import annotations

import torch

from course_lib.check import evaluate
from question_suite import QuestionSuite

SHEET = "01_forward"
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


class TestQuestions(QuestionSuite):
    """Accepts the reference and CORRECT, rejects WRONG; solutions pass, exercises are not attempted."""


def test_failure_messages_are_specific():
    msg = evaluate("01.4", WRONG["01.4"]["no max subtraction"]).message
    assert "NaN" in msg and "+-1000" in msg
    msg = evaluate("01.5", mlp_logits_only).message
    assert "expected 6 output(s), got 1" in msg
    msg = evaluate("01.2", WRONG["01.2"]["converts to float64"]).message
    assert "expected (3, 5) float32, got (3, 5) float64" in msg


def test_fallback_cell_of_the_exercise_sheet_uses_the_reference(exercise_sheet):
    # the last cell ran with the references: probabilities of 3 points over 2 classes
    p = exercise_sheet["p"]
    assert p.shape == (3, 2)
    torch.testing.assert_close(p.sum(-1), torch.ones(3, dtype=torch.float64))
