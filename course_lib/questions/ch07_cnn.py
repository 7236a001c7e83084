"""Questions of chapter 07 · A CNN end to end (sheet ``07_cnn``): the confusion matrix,
precision/recall/F1 with zero_division, macro/micro/weighted averages, and repairing the
flatten size of the source article's CNN."""

from __future__ import annotations

from typing import Any, Callable, List, Tuple

import torch

from course_lib import cnn, metrics
from course_lib.questions import Case, Question

SHEET = "07_cnn"


def _labels(gen: torch.Generator, n: int, k: int, accuracy: float = 0.6, true_classes: Any = None,
            pred_classes: Any = None) -> Tuple[torch.Tensor, torch.Tensor]:
    """y_true, y_pred (n,) in 0..k-1; each drawn from the allowed classes; about ``accuracy`` right."""
    allowed_true = torch.tensor(true_classes if true_classes is not None else range(k))
    allowed_pred = torch.tensor(pred_classes if pred_classes is not None else range(k))
    y_true = allowed_true[torch.randint(len(allowed_true), (n,), generator=gen)]
    y_pred = allowed_pred[torch.randint(len(allowed_pred), (n,), generator=gen)]
    right = (torch.rand(n, generator=gen) < accuracy) & torch.isin(y_true, allowed_pred)
    return y_true, torch.where(right, y_true, y_pred)


def _random_cases(gen: torch.Generator, count: int, zero_division: bool = False) -> List[Case]:
    cases = []
    for i in range(count):
        k = int(torch.randint(2, 11, (1,), generator=gen))
        n = int(torch.randint(1, 80, (1,), generator=gen))
        missing = torch.randperm(k, generator=gen)[: i % 3].tolist()  # 0, 1 or 2 classes missing somewhere
        present = [c for c in range(k) if c not in missing] or [0]
        if i % 2:
            y_true, y_pred = _labels(gen, n, k, 0.7, true_classes=present)
        else:
            y_true, y_pred = _labels(gen, n, k, 0.5, pred_classes=present)
        kwargs = {"zero_division": float(i % 2)} if zero_division else {}
        cases.append(Case(f"random: {n} samples, {k} classes, classes {missing} missing from y_{'true' if i % 2 else 'pred'}",
                          (y_true, y_pred, k), kwargs))
    return cases


# --- 07.1 the confusion matrix --------------------------------------------------------------------
def _cm_cases(gen: torch.Generator, hidden: bool) -> List[Case]:
    t = torch.tensor
    cases = [
        Case("3 classes, 10 samples", (*_labels(gen, 10, 3), 3)),
        Case("every prediction wrong, not symmetric", (t([0, 0, 0, 1, 2]), t([1, 1, 2, 0, 0]), 3)),
        Case("class 1 never occurs (num_classes=3)", (t([0, 2, 2, 0, 2]), t([0, 2, 0, 0, 2]), 3)),
        Case("the last class never occurs (num_classes=4)", (t([0, 1, 2, 1, 0, 2]), t([0, 1, 1, 1, 2, 2]), 4)),
        Case("all predictions right", (t([2, 0, 1, 1, 0]), t([2, 0, 1, 1, 0]), 3)),
        Case("a single sample, 2 classes", (t([1]), t([0]), 2)),
    ]
    if hidden:
        cases += _random_cases(gen, 8)
    return cases


# --- 07.2 precision, recall, F1 per class ---------------------------------------------------------
def _prf_cases(gen: torch.Generator, hidden: bool) -> List[Case]:
    t = torch.tensor
    cases = [
        Case("4 classes, each one true and predicted, zero_division=0", (t([0, 1, 2, 3, 0, 1, 2, 3, 3]), t([0, 1, 2, 3, 1, 1, 3, 3, 0]), 4), {"zero_division": 0.0}),
        Case("class 2 never predicted (precision 0/0), zero_division=0", (t([0, 1, 2, 2, 1]), t([0, 1, 1, 0, 1]), 3), {"zero_division": 0.0}),
        Case("class 0 never true (recall 0/0), zero_division=1", (t([1, 1, 2, 2]), t([0, 1, 2, 2]), 3), {"zero_division": 1.0}),
        Case("class 3 neither true nor predicted (F1 0/0), zero_division=1", (t([0, 1, 2, 0]), t([0, 2, 2, 1]), 4), {"zero_division": 1.0}),
        Case("class 1 true and predicted but never right (P = R = 0), zero_division=1", (t([0, 1, 1, 0]), t([1, 0, 0, 0]), 2), {"zero_division": 1.0}),
        Case("binary, 12 samples, zero_division=0", (*_labels(gen, 12, 2), 2), {"zero_division": 0.0}),
    ]
    if hidden:
        cases += _random_cases(gen, 8, zero_division=True)
    return cases


# --- 07.3 macro, micro and weighted F1 ------------------------------------------------------------
def f1_averages(y_true: torch.Tensor, y_pred: torch.Tensor, num_classes: int) -> Tuple[float, float, float]:
    """(macro F1, micro F1, weighted F1) over the classes 0..num_classes-1, zero_division=0."""
    return tuple(metrics.precision_recall_f1(y_true, y_pred, num_classes, average=a)[2]  # type: ignore[return-value]
                 for a in ("macro", "micro", "weighted"))


def _avg_cases(gen: torch.Generator, hidden: bool) -> List[Case]:
    t = torch.tensor
    big = t([0] * 8 + [1, 1, 2, 2])  # class 0 is frequent and easy, classes 1 and 2 rare and hard
    cases = [
        Case("imbalanced: 8 of class 0, 2 of class 1, 2 of class 2", (big, t([0] * 8 + [1, 0, 0, 2]), 3)),
        Case("one rare class always missed", (t([0, 0, 0, 0, 0, 1]), t([0, 0, 0, 0, 0, 0]), 2)),
        Case("precision and recall differ per class", (t([0, 1, 2, 0, 1, 2, 0, 1]), t([0, 0, 2, 0, 1, 1, 0, 2]), 3)),
        Case("class 3 neither true nor predicted (its F1 counts as 0 in the macro average)", (t([0, 1, 2, 1, 0]), t([0, 1, 2, 2, 0]), 4)),
        Case("4 classes, 20 samples", (*_labels(gen, 20, 4, 0.5), 4)),
    ]
    if hidden:
        cases += _random_cases(gen, 8)
    return cases


# --- 07.4 repair the article's CNN ----------------------------------------------------------------
def _call_make_cnn(func: Callable[..., Any], case: Case) -> Tuple[torch.Tensor, torch.Tensor]:
    """Build the student's model for (C, (H, W)), run it on a batch (N, C, H, W); return the
    output's shape and the number of parameters (which depends on the flatten size)."""
    channels, hw, batch = case.args
    model = func(channels, hw)
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"make_cnn should return a torch.nn.Module, got {type(model).__name__}")
    x = torch.randn(batch, channels, *hw, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        out = model(x)
    params = sum(p.numel() for p in model.parameters())  # after the forward pass (a lazy layer is then sized)
    return torch.tensor(list(out.shape)), torch.tensor(params)


def _cnn_cases(gen: torch.Generator, hidden: bool) -> List[Case]:
    cases = [
        Case("1 x 28 x 28 (MNIST size, the article's input), batch 2", (1, (28, 28), 2)),
        Case("1 x 28 x 28, batch 25 (where view(-1, 64*5*5) silently makes 49 rows)", (1, (28, 28), 25)),
        Case("3 x 32 x 32 (colour images), batch 2", (3, (32, 32), 2)),
        Case("1 x 20 x 20 (the one size for which 64*5*5 is right), batch 3", (1, (20, 20), 3)),
        Case("1 x 8 x 8 (the course's digits), batch 4", (1, (8, 8), 4)),
        Case("2 x 30 x 18 (not square: 7 x 4 after two poolings), batch 2", (2, (30, 18), 2)),
        Case("1 x 7 x 7 (pooling rounds down: 7 -> 3 -> 1), batch 1", (1, (7, 7), 1)),
    ]
    if hidden:
        for _ in range(7):
            c = int(torch.randint(1, 4, (1,), generator=gen))
            h, w = (int(v) for v in torch.randint(4, 41, (2,), generator=gen))
            n = int(torch.randint(1, 6, (1,), generator=gen))
            cases.append(Case(f"{c} x {h} x {w}, batch {n}", (c, (h, w), n)))
    return cases


QUESTIONS = [
    Question(
        id="07.1", sheet=SHEET, title="The confusion matrix", func_name="confusion_matrix", points=1,
        reference=metrics.confusion_matrix, make_cases=_cm_cases,
        hint="Rows are the true class, columns the predicted class: C[y_true[n], y_pred[n]] += 1 for every sample n. "
        "The matrix is num_classes x num_classes even when a class never occurs, and its dtype is torch.long.",
    ),
    Question(
        id="07.2", sheet=SHEET, title="Precision, recall and F1 per class", func_name="precision_recall_f1", points=2,
        reference=metrics.precision_recall_f1, make_cases=_prf_cases,
        hint="Per class k: precision = TP / (number predicted as k), recall = TP / (number truly k), "
        "F1 = 2 TP / (predicted + true). Where a denominator is 0, use zero_division, never NaN. "
        "2PR/(P+R) is 0/0 when P = R = 0 although F1 is 0 there. Return float64 tensors (K,).",
    ),
    Question(
        id="07.3", sheet=SHEET, title="Macro, micro and weighted F1", func_name="f1_averages", points=2,
        reference=f1_averages, make_cases=_avg_cases,
        hint="macro: the mean of the K per-class F1 scores (every class counts once, also an absent one with F1 = 0); "
        "micro: F1 of the counts summed over classes (= the accuracy here); weighted: the per-class F1 averaged "
        "with weights = each class's number of TRUE samples. Average the F1 scores, not P and R.",
    ),
    Question(
        id="07.4", sheet=SHEET, title="Repair the article's CNN for any input size", func_name="make_cnn", points=2,
        reference=cnn.make_cnn, make_cases=_cnn_cases, call=_call_make_cnn,
        hint="Padding 1 keeps a 3x3 convolution's size; each 2x2 pooling halves it, rounding down: H -> H // 2 -> "
        "H // 2 // 2, likewise W. fc1 then has 64 * H' * W' inputs; flatten with torch.flatten(x, 1) so that the "
        "batch dimension is never changed.",
    ),
]
