"""Questions of sheet 02 (loss functions): each accepts the reference and a correct
answer written differently, rejects typical wrong answers; the solution sheet passes
and the unfilled exercise sheet is "not attempted"."""

from __future__ import annotations

from typing import Callable, Dict

import torch

from course_lib import questions
from course_lib.check import evaluate
from question_suite import QuestionSuite

SHEET = "02_losses"


# --- correct answers written differently from the reference ----------------------------
def mse_alt(p, t):
    d = (p - t).flatten()
    return torch.dot(d, d) / d.numel()


def mse_grad_alt(p, t):
    return (p - t) * (2.0 / p.numel())


def bce_alt(z, y):
    # (1 - y) z + softplus(-z), softplus written with logaddexp
    return ((1 - y) * z + torch.logaddexp(torch.zeros_like(z), -z)).mean()


def log_softmax_alt(z):
    return z - torch.logsumexp(z, dim=1, keepdim=True)


def cross_entropy_alt(z, y):
    picked = z.gather(1, y.unsqueeze(1)).squeeze(1)  # z[i, y_i]
    return (torch.logsumexp(z, dim=1) - picked).mean()


def cross_entropy_grad_alt(z, y):
    p = torch.softmax(z, dim=1)
    onehot = torch.nn.functional.one_hot(y, z.shape[1]).to(z.dtype)
    return (p - onehot) / z.shape[0]


def bce_grad_alt(z, y):
    # sigmoid(z) = exp(-softplus(-z)), written with logaddexp; the mean puts 1/M on every element
    p = torch.exp(-torch.logaddexp(torch.zeros_like(z), -z))
    return (p - y) / z.numel()


CORRECT: Dict[str, Callable] = {
    "02.1": mse_alt,
    "02.2": mse_grad_alt,
    "02.3": bce_alt,
    "02.4": log_softmax_alt,
    "02.5": cross_entropy_alt,
    "02.6": cross_entropy_grad_alt,
    "02.7": bce_grad_alt,
}


def test_unstable_answers_are_reported_as_overflow():
    res = evaluate("02.4", questions.get("02.4").misconception("no max subtraction").wrong)
    assert "NaN" in res.message or "infinite" in res.message


def test_derive_questions_do_not_print_their_result():
    # the prompts of the derived gradients state the task, not the formula
    from helpers import ROOT

    text = (ROOT / "solutions" / f"{SHEET}.py").read_text(encoding="utf-8")
    prompts = {qid: text.split(f"## {qid}", 1)[1].split("# %%", 1)[0] for qid in ("02.2", "02.6", "02.7")}
    assert "2}{M}" not in prompts["02.2"] and "onehot" not in prompts["02.6"]
    assert "sigma(z) -" not in prompts["02.7"] and "\\sigma(z_i) -" not in prompts["02.7"]
    for qid in prompts:
        assert questions.get(qid).kind == "derive"


class TestQuestions(QuestionSuite):
    """Accepts the reference and CORRECT, names every registered misconception; solutions pass, exercises are not attempted."""


def test_the_closing_demo_trains_with_the_students_or_the_reference_functions(solution_sheet, exercise_sheet):
    for ns in (solution_sheet, exercise_sheet):
        Z = ns["X"] @ ns["W"].T + ns["b"]
        assert float(ns["ce"](Z, ns["y"])) < 0.2
