"""Questions of sheet 01_forward: each accepts the reference and a differently written
correct answer, rejects typical wrong answers; the solution sheet passes, the
unfilled exercise sheet is "not attempted"."""

from __future__ import annotations

import torch

from course_lib import questions
from course_lib.check import evaluate
from question_suite import QuestionSuite

SHEET = "01_forward"


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


def count_parameters_closed_form(sizes):
    # every layer has D_in * D_out weights and D_out biases: sum of D_out * (D_in + 1)
    d = torch.tensor(sizes)
    return int((d[1:] * (d[:-1] + 1)).sum())


def variance_ratio_other_seed():
    # the same measurement with nn.Linear itself, another seed and float64: within tolerance
    gen = torch.Generator().manual_seed(123)
    torch.manual_seed(123)
    first, second = torch.nn.Linear(1000, 1000).double(), torch.nn.Linear(1000, 1000).double()
    with torch.no_grad():
        z1 = first(torch.randn(1000, 1000, generator=gen, dtype=torch.float64))
        z2 = second(torch.relu(z1))
    return torch.var(z2) / torch.var(z1)  # a 0-d tensor is accepted as the number


CORRECT = {
    "01.1": linear_einsum,
    "01.2": relu_clamp,
    "01.3": sigmoid_tanh,
    "01.4": softmax_logsumexp,
    "01.5": mlp_loop,
    "01.6": count_parameters_closed_form,
    "01.7": variance_ratio_other_seed,
}


def mistake(qid: str, name: str):
    return questions.get(qid).misconception(name).wrong


class TestQuestions(QuestionSuite):
    """Accepts the reference and CORRECT, names every registered misconception; solutions pass, exercises are not attempted."""


def test_failure_messages_are_specific():
    msg = evaluate("01.4", mistake("01.4", "no max subtraction")).message
    assert "NaN" in msg and "+-1000" in msg
    msg = evaluate("01.5", mistake("01.5", "returns only the logits")).message
    assert "expected 6 output(s), got 1" in msg
    msg = evaluate("01.2", mistake("01.2", "converts to float64")).message
    assert "expected (3, 5) float32, got (3, 5) float64" in msg


def test_the_measurement_is_what_the_theory_predicts():
    # Var(w) = 1/(3D) for U(-1/sqrt(D), 1/sqrt(D)); each layer multiplies the variance by about D Var(w) = 1/3,
    # and ReLU passes half of the second moment: Var(Z_2)/Var(Z_1) ~ 1/6 (plus a small bias term).
    q = questions.get("01.7")
    measured = [q.reference(seed=s) for s in range(3)]
    assert all(abs(m - 1 / 6) < 0.01 for m in measured), measured
    assert max(measured) - min(measured) < q.atol, "the tolerance must cover the spread between seeds"


def test_a_wrong_measurement_is_named_and_a_vector_is_refused():
    res = evaluate("01.7", lambda: 1.0)
    assert res.misconception == "assumes the default initialisation preserves the variance"
    res = evaluate("01.7", lambda: torch.ones(3))
    assert res.status == "failed" and "expected one number" in res.message


def test_fallback_cell_of_the_exercise_sheet_uses_the_reference(exercise_sheet):
    # the last cell ran with the references: probabilities of 3 points over 2 classes
    p = exercise_sheet["p"]
    assert p.shape == (3, 2)
    torch.testing.assert_close(p.sum(-1), torch.ones(3, dtype=torch.float64))
