"""Questions of sheet 02 (loss functions): each accepts the reference and a correct
answer written differently, rejects typical wrong answers; the solution sheet passes
and the unfilled exercise sheet is "not attempted"."""

from __future__ import annotations

from typing import Callable, Dict

import torch

from course_lib.check import evaluate
from question_suite import QuestionSuite

SHEET = "02_losses"
FUNCS = {
    "02.1": "mse",
    "02.2": "mse_grad",
    "02.3": "bce_with_logits",
    "02.4": "log_softmax",
    "02.5": "cross_entropy",
    "02.6": "cross_entropy_grad",
}


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


CORRECT: Dict[str, Callable] = {
    "02.1": mse_alt,
    "02.2": mse_grad_alt,
    "02.3": bce_alt,
    "02.4": log_softmax_alt,
    "02.5": cross_entropy_alt,
    "02.6": cross_entropy_grad_alt,
}


# --- typical wrong answers ---------------------------------------------------------------
def _naive_log_softmax(z):
    return torch.log(torch.exp(z) / torch.exp(z).sum(dim=1, keepdim=True))


def _global_max_log_softmax(z):
    s = z - z.max()
    return s - torch.log(torch.exp(s).sum(dim=1, keepdim=True))


def _stable_logp(z):
    return z - torch.logsumexp(z, dim=1, keepdim=True)


WRONG = {
    "02.1": {
        "sum instead of mean": lambda p, t: ((p - t) ** 2).sum(),
        "absolute instead of squared error": lambda p, t: (p - t).abs().mean(),
        "mean over the last axis only": lambda p, t: ((p - t) ** 2).mean(dim=-1),
        "divides by the first axis N": lambda p, t: ((p - t) ** 2).sum() / p.shape[0],
    },
    "02.2": {
        "forgets the factor 2": lambda p, t: (p - t) / p.numel(),
        "wrong sign": lambda p, t: 2 * (t - p) / p.numel(),
        "divides by N instead of M": lambda p, t: 2 * (p - t) / p.shape[0],
    },
    "02.3": {
        "sigmoid, then log (overflows)": lambda z, y: (-(y * torch.log(torch.sigmoid(z)) + (1 - y) * torch.log(1 - torch.sigmoid(z)))).mean(),
        "sum instead of mean": lambda z, y: (z.clamp(min=0) - z * y + torch.log1p(torch.exp(-z.abs()))).sum(),
        "naive log(1 + exp(-z))": lambda z, y: ((1 - y) * z + torch.log(1 + torch.exp(-z))).mean(),
    },
    "02.4": {
        "no max subtraction": _naive_log_softmax,
        "subtracts the max of the whole tensor": _global_max_log_softmax,
        "normalises over the wrong axis": lambda z: z - torch.logsumexp(z, dim=0, keepdim=True),
    },
    "02.5": {
        "sum instead of mean": lambda z, y: -_stable_logp(z)[torch.arange(z.shape[0]), y].sum(),
        "no max subtraction": lambda z, y: -_naive_log_softmax(z)[torch.arange(z.shape[0]), y].mean(),
        "forgets the minus sign": lambda z, y: _stable_logp(z)[torch.arange(z.shape[0]), y].mean(),
        "averages over N * C entries": lambda z, y: -(
            _stable_logp(z) * torch.nn.functional.one_hot(y, z.shape[1]).to(z.dtype)
        ).mean(),
    },
    "02.6": {
        "forgets the 1/N": lambda z, y: torch.softmax(z, 1) - torch.nn.functional.one_hot(y, z.shape[1]).to(z.dtype),
        "onehot - softmax (wrong sign)": lambda z, y: (torch.nn.functional.one_hot(y, z.shape[1]).to(z.dtype) - torch.softmax(z, 1)) / z.shape[0],
        "softmax only": lambda z, y: torch.softmax(z, 1) / z.shape[0],
    },
}


def test_unstable_answers_are_reported_as_overflow():
    res = evaluate("02.4", _naive_log_softmax)
    assert "NaN" in res.message or "infinite" in res.message


class TestQuestions(QuestionSuite):
    """Accepts the reference and CORRECT, rejects WRONG; solutions pass, exercises are not attempted."""


def test_the_closing_demo_trains_with_the_students_or_the_reference_functions(solution_sheet, exercise_sheet):
    for ns in (solution_sheet, exercise_sheet):
        Z = ns["X"] @ ns["W"].T + ns["b"]
        assert float(ns["ce"](Z, ns["y"])) < 0.2
