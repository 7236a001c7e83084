"""Questions of exercise sheet 02 (loss functions): MSE and its gradient, binary
cross-entropy from logits, a stable log-softmax, cross-entropy and its gradient.

Every case is float64. Cases with logits of ±1000 (and rows of very different
size) catch the classic numerically unstable answers, which return inf or nan.
"""

from __future__ import annotations

from typing import List

import torch

from course_lib import layers, losses
from course_lib.questions import Case, Question, randn

SHEET = "02_losses"
DT = torch.float64


def _pairs(gen: torch.Generator, hidden: bool) -> List[Case]:
    """(pred, target) pairs of one shape for the MSE questions."""
    x = randn(gen, 3, 4)
    cases = [
        Case("a vector, N = 5", (randn(gen, 5), randn(gen, 5))),
        Case("a 3 x 4 matrix", (randn(gen, 3, 4), randn(gen, 3, 4))),
        Case("a single number, shape (1,)", (randn(gen, 1), randn(gen, 1))),
        Case("perfect prediction (pred == target)", (x, x.clone())),
        Case("a batch of 2 x 3 x 2", (randn(gen, 2, 3, 2, scale=10.0), randn(gen, 2, 3, 2))),
    ]
    if hidden:
        for shape in [(7,), (1, 9), (6, 2), (2, 2, 5), (4, 1, 3)]:
            cases.append(Case(f"random shape {shape}", (randn(gen, *shape, scale=3.0), randn(gen, *shape))))
    return cases


def _bce_cases(gen: torch.Generator, hidden: bool) -> List[Case]:
    big = torch.tensor([1000.0, -1000.0, 50.0, -50.0], dtype=DT)
    cases = [
        Case("4 logits, 0/1 targets", (randn(gen, 4), torch.tensor([1.0, 0.0, 1.0, 0.0], dtype=DT))),
        Case("a 3 x 2 matrix, soft targets", (randn(gen, 3, 2, scale=2.0), torch.rand(3, 2, generator=gen, dtype=DT))),
        Case("huge logits, wrong labels (loss 1000)", (big, torch.tensor([0.0, 1.0, 0.0, 1.0], dtype=DT))),
        Case("huge logits, right labels (loss ~0)", (big, torch.tensor([1.0, 0.0, 1.0, 0.0], dtype=DT))),
        Case("a single logit 0 (p = 1/2)", (torch.zeros(1, dtype=DT), torch.ones(1, dtype=DT))),
    ]
    if hidden:
        for shape, scale in [((8,), 5.0), ((3, 3), 40.0), ((2, 5), 800.0), ((1, 6), 1.0)]:
            z = randn(gen, *shape, scale=scale)
            cases.append(Case(f"random {shape}, scale {scale:g}", (z, torch.rand(*shape, generator=gen, dtype=DT).round())))
    return cases


def _logit_rows(gen: torch.Generator, hidden: bool) -> List[torch.Tensor]:
    """Logit matrices (N, C), including the ones that break unstable code."""
    rows = [
        randn(gen, 4, 3),
        randn(gen, 2, 5, scale=5.0),
        torch.tensor([[1000.0, 0.0, -1000.0], [-1000.0, -1000.0, -1000.0]], dtype=DT),
        torch.tensor([[1000.0, 999.0, 998.0], [-1000.0, -1001.0, -999.0]], dtype=DT),
        randn(gen, 1, 4),
    ]
    if hidden:
        rows += [
            randn(gen, 6, 2, scale=30.0),
            randn(gen, 3, 7),
            randn(gen, 5, 4, scale=600.0),
            torch.zeros(2, 3, dtype=DT),
        ]
    return rows


def _log_softmax_cases(gen: torch.Generator, hidden: bool) -> List[Case]:
    labels = ["4 x 3 logits", "2 x 5 logits", "logits of ±1000", "rows near +1000 and -1000", "one row (N = 1)"]
    rows = _logit_rows(gen, hidden)
    cases = [Case(labels[i] if i < len(labels) else f"random {tuple(z.shape)}", (z,)) for i, z in enumerate(rows)]
    cases.append(Case("one class (C = 1)", (randn(gen, 3, 1),)))
    return cases


def _cross_entropy_cases(gen: torch.Generator, hidden: bool) -> List[Case]:
    labels = ["4 x 3 logits", "2 x 5 logits", "logits of ±1000", "rows near +1000 and -1000", "one sample (N = 1)"]
    cases = []
    for i, z in enumerate(_logit_rows(gen, hidden)):
        n, c = z.shape
        if i == 2:
            y = torch.tensor([2, 0])  # the true class gets logit -1000 in row 0: loss 2000
        else:
            y = torch.randint(0, c, (n,), generator=gen)
        cases.append(Case(labels[i] if i < len(labels) else f"random {tuple(z.shape)}", (z, y)))
    return cases


QUESTIONS = [
    Question(
        id="02.1",
        sheet=SHEET,
        title="mean squared error",
        func_name="mse",
        points=1,
        reference=losses.mse_loss,
        make_cases=_pairs,
        hint="square the differences, then average over ALL elements (M = pred.numel()), giving a scalar of shape ().",
    ),
    Question(
        id="02.2",
        sheet=SHEET,
        title="gradient of the mean squared error",
        func_name="mse_grad",
        points=1,
        reference=losses.mse_loss_backward,
        make_cases=_pairs,
        hint="dL/dpred = 2 (pred - target) / M with M = pred.numel(); keep the factor 2 and the shape of pred.",
    ),
    Question(
        id="02.3",
        sheet=SHEET,
        title="binary cross-entropy from logits, stable",
        func_name="bce_with_logits",
        points=1,
        reference=losses.binary_cross_entropy_with_logits,
        make_cases=_bce_cases,
        hint="never compute sigmoid and then log: use max(z, 0) - z * y + log(1 + exp(-|z|)) (torch.log1p), then the mean.",
    ),
    Question(
        id="02.4",
        sheet=SHEET,
        title="stable log-softmax",
        func_name="log_softmax",
        points=1,
        reference=layers.log_softmax,
        make_cases=_log_softmax_cases,
        hint="per row: m = max of the row (keepdim=True); log_softmax = z - m - log(sum(exp(z - m))) along dim=1.",
    ),
    Question(
        id="02.5",
        sheet=SHEET,
        title="cross-entropy from logits",
        func_name="cross_entropy",
        points=1,
        reference=losses.cross_entropy,
        make_cases=_cross_entropy_cases,
        hint="take a stable log-softmax, pick the true class's entry in each row (logp[torch.arange(N), target]), negate, average over N.",
    ),
    Question(
        id="02.6",
        sheet=SHEET,
        title="gradient of the cross-entropy",
        func_name="cross_entropy_grad",
        points=1,
        reference=losses.cross_entropy_backward,
        make_cases=_cross_entropy_cases,
        hint="dL/dz = (softmax(z) - onehot(target)) / N: a stable softmax per row, subtract 1 at the true class, divide by N.",
    ),
]
