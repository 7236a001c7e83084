"""Questions of exercise sheet 02 (loss functions): MSE and its gradient, binary
cross-entropy from logits and its gradient, a stable log-softmax, cross-entropy and
its gradient. Each question carries its typical mistakes (:class:`Misconception`)
and two or three hint tiers.

Every case is float64. Cases with logits of ±1000 (and rows of very different
size) catch the classic numerically unstable answers, which return inf or nan.
"""

from __future__ import annotations

from typing import List

import torch

from course_lib import layers, losses
from course_lib.questions import Case, Misconception, Question, randn

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


# --- typical mistakes ---------------------------------------------------------------------
def _onehot(y: torch.Tensor, c: int, like: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.one_hot(y, c).to(like.dtype)


def _naive_log_softmax(z: torch.Tensor) -> torch.Tensor:
    return torch.log(torch.exp(z) / torch.exp(z).sum(dim=1, keepdim=True))


def _global_max_log_softmax(z: torch.Tensor) -> torch.Tensor:
    s = z - z.max()
    return s - torch.log(torch.exp(s).sum(dim=1, keepdim=True))


def _stable_logp(z: torch.Tensor) -> torch.Tensor:
    return z - torch.logsumexp(z, dim=1, keepdim=True)


def _softplus(x: torch.Tensor) -> torch.Tensor:
    """log(1 + exp(x)) without overflow."""
    return x.clamp(min=0) + torch.log1p(torch.exp(-x.abs()))


_MEAN_WHY = ("The loss is an average over the elements; a sum grows with the batch size, so the size of a "
             "gradient step, and the learning rate that suits it, would change with the batch.")

QUESTIONS = [
    Question(
        id="02.1",
        sheet=SHEET,
        title="mean squared error",
        func_name="mse",
        points=1,
        reference=losses.mse_loss,
        make_cases=_pairs,
        hints=(
            "The error of each element is squared, so over- and under-shooting both cost, and large errors "
            "cost more; the loss is the average of these squares.",
            "pred and target have the same shape, any number of axes, M elements in all; the answer is one "
            "number, a tensor of shape (), whatever the input's shape.",
            "Square the elementwise difference, then reduce over every element at once (a reduction called "
            "without a dim argument).",
        ),
        misconceptions=(
            Misconception("sum instead of mean", _MEAN_WHY, lambda p, t: ((p - t) ** 2).sum()),
            Misconception(
                "absolute instead of squared error",
                "The mean absolute error is a different loss: it penalises errors linearly, while the squared "
                "error grows with the square and is the one whose gradient is proportional to the error.",
                lambda p, t: (p - t).abs().mean(),
            ),
            Misconception(
                "mean over the last axis only",
                "A loss is one number to minimise; averaging over one axis leaves a tensor of per-row losses, "
                "which has no single direction of steepest descent.",
                lambda p, t: ((p - t) ** 2).mean(dim=-1),
            ),
            Misconception(
                "divides by the first axis N",
                "The average is over all M elements, not over the N rows: dividing by N makes the loss grow "
                "with the number of columns.",
                lambda p, t: ((p - t) ** 2).sum() / p.shape[0],
            ),
        ),
    ),
    Question(
        id="02.2",
        sheet=SHEET,
        title="gradient of the mean squared error",
        func_name="mse_grad",
        kind="derive",
        points=1,
        reference=losses.mse_loss_backward,
        make_cases=_pairs,
        hints=(
            "Only one term of the sum depends on a given prediction; differentiate that term (the chain rule "
            "through the square) and do not forget the factor in front of the sum.",
            "The gradient has one entry per prediction, so it has the shape of pred; M is the number of "
            "elements of pred, not its first dimension.",
            "Write the derivative of (p_i - y_i)^2 / M with respect to p_i on paper, then apply it to all "
            "elements at once; numel() gives M.",
        ),
        misconceptions=(
            Misconception(
                "forgets the factor 2",
                "The derivative of a square u^2 is 2u: the exponent comes down as a factor, and dropping it "
                "halves every gradient.",
                lambda p, t: (p - t) / p.numel(),
            ),
            Misconception(
                "wrong sign",
                "The loss grows when a prediction moves further above its target, so the derivative with respect "
                "to the prediction is positive there; the opposite sign points uphill.",
                lambda p, t: 2 * (t - p) / p.numel(),
            ),
            Misconception(
                "divides by N instead of M",
                "The loss averages over all M elements, so each element's term carries a factor 1/M; the number "
                "of rows N is only M when the tensor is a vector.",
                lambda p, t: 2 * (p - t) / p.shape[0],
            ),
            Misconception(
                "the gradient of the sum",
                "The mean carries a factor 1/M that survives differentiation; without it the gradient is that of "
                "the summed loss and grows with the number of elements.",
                lambda p, t: 2 * (p - t),
            ),
        ),
    ),
    Question(
        id="02.3",
        sheet=SHEET,
        title="binary cross-entropy from logits, stable",
        func_name="bce_with_logits",
        kind="derive",
        points=2,
        reference=losses.binary_cross_entropy_with_logits,
        make_cases=_bce_cases,
        hints=(
            "Write log p and log(1 - p) in terms of z before computing anything: both are minus a 'softplus', "
            "log(1 + exp(.)), of z or of -z, and a softplus can be evaluated without ever exponentiating a "
            "large positive number.",
            "log(1 - sigma(z)) = -z + log sigma(z); and log(1 + exp(u)) = max(u, 0) + log(1 + exp(-|u|)) for any u. "
            "Work elementwise on tensors of one shape, then average over all M elements to shape ().",
            "torch.log1p(t) is log(1 + t), accurate for small t; clamp(min=0) gives max(., 0); exp only ever "
            "of minus an absolute value.",
        ),
        misconceptions=(
            Misconception(
                "sigmoid, then log (overflows)",
                "sigmoid(40) rounds to exactly 1 in float64, so log(1 - p) is log 0 = -inf: the probability "
                "must never be formed explicitly; the logs have to be rewritten in terms of the logit.",
                lambda z, y: (-(y * torch.log(torch.sigmoid(z)) + (1 - y) * torch.log(1 - torch.sigmoid(z)))).mean(),
            ),
            Misconception("sum instead of mean", _MEAN_WHY, lambda z, y: (z.clamp(min=0) - z * y + torch.log1p(torch.exp(-z.abs()))).sum()),
            Misconception(
                "naive log(1 + exp(-z))",
                "log(1 + exp(-z)) is right in exact arithmetic, but exp(-z) is inf for z below -709.78: the "
                "softplus needs the split into max(u, 0) plus a term whose exponent is never positive.",
                lambda z, y: ((1 - y) * z + torch.log(1 + torch.exp(-z))).mean(),
            ),
            Misconception(
                "only the positive-class term",
                "Binary cross-entropy scores both outcomes: -log p when the target is 1 and -log(1 - p) when it "
                "is 0; keeping only the first term never penalises a confident wrong 'yes'.",
                lambda z, y: (y * _softplus(-z)).mean(),
            ),
        ),
    ),
    Question(
        id="02.4",
        sheet=SHEET,
        title="stable log-softmax",
        func_name="log_softmax",
        points=1,
        reference=layers.log_softmax,
        make_cases=_log_softmax_cases,
        hints=(
            "The log of a softmax is the logit minus the log of a sum of exponentials; subtracting the same "
            "constant from a whole row changes neither, and the row's maximum makes every exponent <= 0.",
            "logits are (N, C); the shift and the log-sum are one number per row, kept as (N, 1) so they "
            "broadcast against the row; the result is (N, C).",
            "Reduce along dim=1 with keepdim=True (.max(...).values, then .sum of the shifted exponentials); "
            "never take the log of a softmax you computed first.",
        ),
        misconceptions=(
            Misconception(
                "no max subtraction",
                "exp(1000) overflows to inf, and a row of exp(-1000) underflows to 0, giving log 0: the "
                "log-sum-exp needs every exponent shifted to <= 0 by the row's maximum.",
                _naive_log_softmax,
            ),
            Misconception(
                "subtracts the max of the whole tensor",
                "The shift must be per row: a row far below the global maximum still underflows to a sum of 0 "
                "and a log of -inf.",
                _global_max_log_softmax,
            ),
            Misconception(
                "normalises over the wrong axis",
                "Each sample's probabilities are over its C classes, along the row; normalising along the batch "
                "axis compares different samples' scores for one class.",
                lambda z: z - torch.logsumexp(z, dim=0, keepdim=True),
            ),
            Misconception(
                "forgets the log of the sum",
                "Subtracting the maximum only shifts the logits; it is the log of the sum of exponentials that "
                "normalises them, so that the exponentials of the result sum to 1.",
                lambda z: z - z.max(dim=1, keepdim=True).values,
            ),
        ),
    ),
    Question(
        id="02.5",
        sheet=SHEET,
        title="cross-entropy from logits",
        func_name="cross_entropy",
        points=1,
        reference=losses.cross_entropy,
        make_cases=_cross_entropy_cases,
        hints=(
            "The loss of one sample is minus the log-probability the model gives to its true class; the loss "
            "of the batch is the average over the samples.",
            "log-probabilities are (N, C), target is (N,) with one class index per row: you need exactly N "
            "numbers, the entry at (i, target[i]) for each row i, not a whole column.",
            "Pick one entry per row with two index tensors, one listing the rows 0..N-1 and one the columns "
            "(target), or with gather along dim 1; then negate and average.",
        ),
        misconceptions=(
            Misconception("sum instead of mean", _MEAN_WHY, lambda z, y: -_stable_logp(z)[torch.arange(z.shape[0]), y].sum()),
            Misconception(
                "no max subtraction",
                "The log of a softmax computed first breaks on large logits: exp overflows to inf or a whole row "
                "underflows to 0; the log-probabilities must come from a stable log-softmax.",
                lambda z, y: -_naive_log_softmax(z)[torch.arange(z.shape[0]), y].mean(),
            ),
            Misconception(
                "forgets the minus sign",
                "Log-probabilities are <= 0 and a good model makes them close to 0; the loss to minimise is their "
                "negative, which is >= 0 and small when the true class is likely.",
                lambda z, y: _stable_logp(z)[torch.arange(z.shape[0]), y].mean(),
            ),
            Misconception(
                "averages over N * C entries",
                "Only the true class's log-probability enters each sample's loss; multiplying by a one-hot mask "
                "is fine, but the average is over the N samples, not over all N * C entries.",
                lambda z, y: -(_stable_logp(z) * _onehot(y, z.shape[1], z)).mean(),
            ),
            Misconception(
                "picks the target column of every row",
                "Indexing with the targets alone selects whole columns, N entries for each of the N rows; each "
                "sample must be paired with its own target, one entry per row.",
                lambda z, y: -_stable_logp(z)[:, y].mean(),
            ),
        ),
    ),
    Question(
        id="02.6",
        sheet=SHEET,
        title="gradient of the cross-entropy",
        func_name="cross_entropy_grad",
        kind="derive",
        points=2,
        reference=losses.cross_entropy_backward,
        make_cases=_cross_entropy_cases,
        hints=(
            "Differentiate one sample's loss, minus z_y plus the log-sum-exp of its row, with respect to one "
            "logit z_c; the two cases c = y and c != y combine into one expression. Then account for the mean.",
            "The gradient has the shape of the logits, (N, C); row i depends only on row i of the logits and on "
            "target[i], and every entry carries the factor of the average over the N samples.",
            "The derivative of the log-sum-exp of a row is that row's softmax (compute it stably); the true class "
            "gets an extra term, which you can subtract with the same row/column indexing as in 02.5.",
        ),
        misconceptions=(
            Misconception(
                "forgets the 1/N",
                "The loss is the mean over N samples, so each sample's gradient is scaled by 1/N; without it the "
                "step size grows with the batch size.",
                lambda z, y: torch.softmax(z, 1) - _onehot(y, z.shape[1], z),
            ),
            Misconception(
                "onehot - softmax (wrong sign)",
                "Increasing the true class's logit lowers the loss, so the derivative there is negative and the "
                "other classes' are positive; the flipped sign makes gradient descent climb.",
                lambda z, y: (_onehot(y, z.shape[1], z) - torch.softmax(z, 1)) / z.shape[0],
            ),
            Misconception(
                "softmax only",
                "The loss has two parts: the log-sum-exp, whose derivative is the softmax, and minus the true "
                "class's logit, whose derivative is -1 at that class only; dropping it ignores the target.",
                lambda z, y: torch.softmax(z, 1) / z.shape[0],
            ),
            Misconception(
                "softmax over the batch axis",
                "Each sample's log-sum-exp runs over its own C classes, so its derivative is a softmax along "
                "the row; normalising along the batch axis mixes different samples.",
                lambda z, y: (torch.softmax(z, 0) - _onehot(y, z.shape[1], z)) / z.shape[0],
            ),
        ),
    ),
    Question(
        id="02.7",
        sheet=SHEET,
        title="gradient of the binary cross-entropy from logits",
        func_name="bce_with_logits_grad",
        kind="derive",
        points=2,
        reference=losses.binary_cross_entropy_with_logits_backward,
        make_cases=_bce_cases,
        hints=(
            "Differentiate the stable form of one element's loss with respect to its logit z (or the "
            "original form with p = sigmoid(z) and the chain rule); the derivative of the sigmoid cancels "
            "against the logs, and the result is strikingly simple.",
            "The gradient has the shape of the logits, one entry per element; the mean over M elements puts a "
            "factor 1/M on every entry. Useful facts: d/dz log(1 + exp(z)) = sigmoid(z), and sigmoid'(z) = "
            "sigmoid(z)(1 - sigmoid(z)).",
            "Compare the result with the gradient of the cross-entropy (02.6) for C classes; a stable sigmoid "
            "(torch.sigmoid or yours from sheet 01) and numel() are all you need.",
        ),
        misconceptions=(
            Misconception(
                "forgets the 1/M",
                "The loss is the mean over M elements, so each element's derivative carries a factor 1/M; "
                "without it the gradient is that of the summed loss.",
                lambda z, y: torch.sigmoid(z) - y,
            ),
            Misconception(
                "wrong sign",
                "When the target is 0, a larger logit means a larger loss, so the derivative is positive; the "
                "flipped sign points uphill.",
                lambda z, y: (y - torch.sigmoid(z)) / z.numel(),
            ),
            Misconception(
                "an extra sigmoid-derivative factor",
                "The chain rule through the sigmoid contributes sigmoid'(z) = p(1 - p), but the derivative of the "
                "loss with respect to p has p(1 - p) in its denominator, so the factor cancels; keeping it gives a "
                "gradient that vanishes for confident wrong answers, exactly when learning is most needed.",
                lambda z, y: (torch.sigmoid(z) - y) * torch.sigmoid(z) * (1 - torch.sigmoid(z)) / z.numel(),
            ),
            Misconception(
                "treats the logit as the probability",
                "The model's probability is sigmoid(z), not z: the logit can be any real number, and the error "
                "that drives the gradient is the probability minus the target.",
                lambda z, y: (z - y) / z.numel(),
            ),
        ),
    ),
]
