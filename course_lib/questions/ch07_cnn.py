"""Questions of chapter 07 · A CNN end to end (sheet ``07_cnn``): the confusion matrix,
precision/recall/F1 with zero_division, macro/micro/weighted averages, debugging the
employment article's CNN for any input size, predicting what its ``view(-1, 64 * 5 * 5)``
does to a batch, and debugging a model selection that uses the test set. Each question
carries its typical mistakes (misconceptions) and two or three hint tiers."""

from __future__ import annotations

import math
from typing import Any, Callable, List, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from course_lib import cnn, metrics
from course_lib.conv import conv_output_size
from course_lib.questions import Case, Misconception, Question

SHEET = "07_cnn"
LISTING_FLAT = 64 * 5 * 5  # the flatten size the employment article's listing types in


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


def _counts(y_true: torch.Tensor, y_pred: torch.Tensor, k: int) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(TP, predicted, true) per class, float64 (k,), for the misconceptions below."""
    cm = metrics.confusion_matrix(y_true, y_pred, k).double()
    return cm.diag(), cm.sum(0), cm.sum(1)


# --- 07.1 the confusion matrix --------------------------------------------------------------------
def _cm_cases(gen: torch.Generator, hidden: bool) -> List[Case]:
    t = torch.tensor
    cases = [
        Case("3 classes, 10 samples", (*_labels(gen, 10, 3), 3)),
        Case("every prediction wrong, not symmetric", (t([0, 0, 0, 1, 2]), t([1, 1, 2, 0, 0]), 3)),
        Case("class 1 never occurs (num_classes=3)", (t([0, 2, 2, 0, 2]), t([0, 2, 0, 0, 2]), 3)),
        Case("the last class never occurs (num_classes=4)", (t([0, 1, 2, 1, 0, 2]), t([0, 1, 1, 1, 2, 2]), 4)),
        Case("classes 1 and 3 never occur (num_classes=4)", (t([0, 2, 2, 0]), t([2, 2, 0, 0]), 4)),
        Case("all predictions right", (t([2, 0, 1, 1, 0]), t([2, 0, 1, 1, 0]), 3)),
        Case("a single sample, 2 classes", (t([1]), t([0]), 2)),
    ]
    if hidden:
        cases += _random_cases(gen, 8)
    return cases


def _cm_transposed(y_true, y_pred, num_classes):
    return metrics.confusion_matrix(y_pred, y_true, num_classes)


def _cm_classes_from_data(y_true, y_pred, num_classes):
    labels = torch.unique(torch.cat([y_true, y_pred]))  # a class that never occurs loses its row and column
    index = {int(c): i for i, c in enumerate(labels)}
    cm = torch.zeros(len(labels), len(labels), dtype=torch.long)
    for t, p in zip(y_true.tolist(), y_pred.tolist()):
        cm[index[t], index[p]] += 1
    return cm


def _cm_max_plus_one(y_true, y_pred, num_classes):
    return metrics.confusion_matrix(y_true, y_pred, int(max(y_true.max(), y_pred.max())) + 1)


def _cm_float(y_true, y_pred, num_classes):
    return metrics.confusion_matrix(y_true, y_pred, num_classes).double()


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


def _prf_swapped(y_true, y_pred, num_classes, zero_division=0.0):
    p, r, f = metrics.precision_recall_f1(y_true, y_pred, num_classes, zero_division=zero_division)
    return r, p, f


def _prf_nan(y_true, y_pred, num_classes, zero_division=0.0):
    tp, predicted, true = _counts(y_true, y_pred, num_classes)
    return tp / predicted, tp / true, 2 * tp / (predicted + true)


def _prf_zero_division_ignored(y_true, y_pred, num_classes, zero_division=0.0):
    return metrics.precision_recall_f1(y_true, y_pred, num_classes, zero_division=0.0)


def _prf_harmonic_of_substituted(y_true, y_pred, num_classes, zero_division=0.0):
    p, r, _ = metrics.precision_recall_f1(y_true, y_pred, num_classes, zero_division=zero_division)
    return p, r, 2 * p * r / (p + r)  # 0/0 = NaN where P = R = 0


def _prf_arithmetic_mean(y_true, y_pred, num_classes, zero_division=0.0):
    p, r, _ = metrics.precision_recall_f1(y_true, y_pred, num_classes, zero_division=zero_division)
    return p, r, (p + r) / 2


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


def _avg_swapped(y_true, y_pred, num_classes):
    macro, micro, weighted = f1_averages(y_true, y_pred, num_classes)
    return micro, macro, weighted


def _avg_f1_of_macro_pr(y_true, y_pred, num_classes):
    mp, mr, _ = metrics.precision_recall_f1(y_true, y_pred, num_classes, average="macro")
    _, micro, weighted = f1_averages(y_true, y_pred, num_classes)
    return (2 * mp * mr / (mp + mr) if mp + mr else 0.0), micro, weighted


def _avg_weighted_by_predictions(y_true, y_pred, num_classes):
    f1 = metrics.precision_recall_f1(y_true, y_pred, num_classes)[2]
    w = torch.bincount(y_pred, minlength=num_classes).double()
    macro, micro, _ = f1_averages(y_true, y_pred, num_classes)
    return macro, micro, float((f1 * w).sum() / w.sum())


def _avg_over_present_classes(y_true, y_pred, num_classes):
    f1 = metrics.precision_recall_f1(y_true, y_pred, num_classes)[2]
    present = torch.bincount(torch.cat([y_true, y_pred]), minlength=num_classes) > 0
    _, micro, weighted = f1_averages(y_true, y_pred, num_classes)
    return float(f1[present].mean()), micro, weighted


# --- 07.4 debug the employment article's CNN ------------------------------------------------------
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
        Case("1 x 28 x 28 (MNIST size), batch 2", (1, (28, 28), 2)),
        Case("1 x 28 x 28, batch 25", (1, (28, 28), 25)),
        Case("3 x 32 x 32 (colour images), batch 2", (3, (32, 32), 2)),
        Case("1 x 20 x 20, batch 3", (1, (20, 20), 3)),
        Case("1 x 8 x 8 (the course's digits), batch 4", (1, (8, 8), 4)),
        Case("2 x 30 x 18 (not square), batch 2", (2, (30, 18), 2)),
        Case("1 x 7 x 7, batch 1", (1, (7, 7), 1)),
        Case("1 x 30 x 30, batch 64", (1, (30, 30), 64)),
    ]
    if hidden:
        cases.append(Case("1 x 16 x 16, batch 100", (1, (16, 16), 100)))
        for _ in range(7):
            c = int(torch.randint(1, 4, (1,), generator=gen))
            h, w = (int(v) for v in torch.randint(4, 41, (2,), generator=gen))
            n = int(torch.randint(1, 6, (1,), generator=gen))
            cases.append(Case(f"{c} x {h} x {w}, batch {n}", (c, (h, w), n)))
    return cases


class _ListingCNN(nn.Module):
    """The employment article's CNN with ``in_channels`` inputs and a given flatten size, still
    flattening with ``view(-1, flat)``; ``pools=1`` drops the second pooling from the forward pass."""

    def __init__(self, in_channels: int, flat: int, pools: int = 2) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 32, 3, padding=1)
        self.conv2 = nn.Conv2d(32, 64, 3, padding=1)
        self.pool = nn.MaxPool2d(2, 2)
        self.fc1 = nn.Linear(flat, 128)
        self.fc2 = nn.Linear(128, 10)
        self.flat, self.pools = flat, pools

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(F.relu(self.conv1(x)))
        x = F.relu(self.conv2(x))
        if self.pools == 2:
            x = self.pool(x)
        x = x.view(-1, self.flat)
        return self.fc2(F.relu(self.fc1(x)))


def _cnn_listing_size(in_channels, input_hw):
    return _ListingCNN(in_channels, LISTING_FLAT)


def _cnn_one_pooling_in_size(in_channels, input_hw):
    h, w = input_hw
    return _ListingCNN(in_channels, 64 * (h // 2) * (w // 2))


def _cnn_one_pooling_everywhere(in_channels, input_hw):
    h, w = input_hw
    return _ListingCNN(in_channels, 64 * (h // 2) * (w // 2), pools=1)


def _cnn_rounded(in_channels, input_hw):
    h, w = input_hw
    return _ListingCNN(in_channels, 64 * round(h / 4) * round(w / 4))


# --- 07.5 predict: what view(-1, 64 * 5 * 5) does to a batch --------------------------------------
def _side_after_blocks(size: int) -> int:
    """One side of the image after the listing's two blocks (conv 3x3 padding 1, max-pool 2x2 stride 2)."""
    for _ in range(2):
        size = conv_output_size(conv_output_size(size, 3, padding=1), 2, stride=2)
    return size


def _listing_rows(batch: int, input_hw: Tuple[int, int]) -> int:
    """Rows of the output of the employment article's CNN as printed (fc1 = Linear(64 * 5 * 5, 128),
    ``x.view(-1, 64 * 5 * 5)``) on a batch (batch, 1, H, W), input_hw = (H, W) with H, W >= 4;
    0 where its forward pass raises. ``view`` keeps only the number of values: it makes
    ``batch * 64 * H' * W' / 1600`` rows when that divides evenly, and fails otherwise."""
    h, w = input_hw
    values = batch * 64 * _side_after_blocks(h) * _side_after_blocks(w)
    return values // LISTING_FLAT if values % LISTING_FLAT == 0 else 0


def _rows_from(values: int) -> int:
    return values // LISTING_FLAT if values > 0 and values % LISTING_FLAT == 0 else 0


def _rows_batch_kept(batch, input_hw):
    h, w = input_hw
    return batch if 64 * _side_after_blocks(h) * _side_after_blocks(w) == LISTING_FLAT else 0


def _rows_padding_ignored(batch, input_hw):
    sides = []
    for size in input_hw:
        for _ in range(2):
            size = (size - 2) // 2  # a 3x3 convolution taken to remove a border, then the pooling
        sides.append(size)
    return _rows_from(batch * 64 * sides[0] * sides[1]) if min(sides) > 0 else 0


def _rows_pooling_rounds_up(batch, input_hw):
    h, w = (math.ceil(math.ceil(s / 2) / 2) for s in input_hw)
    return _rows_from(batch * 64 * h * w)


def _rows_channels_left_out(batch, input_hw):
    h, w = input_hw
    return _rows_from(batch * _side_after_blocks(h) * _side_after_blocks(w))


def _rows_cases(gen: torch.Generator, hidden: bool) -> List[Case]:
    cases = [
        Case("batch (2, 1, 28, 28)", (2, (28, 28))),
        Case("batch (25, 1, 28, 28)", (25, (28, 28))),
        Case("batch (3, 1, 20, 20)", (3, (20, 20))),
        Case("batch (4, 1, 18, 18)", (4, (18, 18))),
        Case("batch (64, 1, 20, 20)", (64, (20, 20))),
        Case("batch (100, 1, 16, 16)", (100, (16, 16))),
        Case("batch (5, 1, 23, 21)", (5, (23, 21))),
    ]
    if hidden:
        cases += [Case("batch (1, 1, 4, 4)", (1, (4, 4))), Case("batch (36, 1, 12, 30)", (36, (12, 30)))]
        for _ in range(8):
            n = int(torch.randint(1, 130, (1,), generator=gen))
            h, w = (int(v) for v in torch.randint(4, 41, (2,), generator=gen))
            cases.append(Case(f"batch ({n}, 1, {h}, {w})", (n, (h, w))))
    return cases


# --- 07.6 debug: which data may choose the model? -------------------------------------------------
def _choose_epoch(train_acc: torch.Tensor, val_acc: torch.Tensor, test_acc: torch.Tensor) -> Tuple[int, float]:
    """Per-epoch accuracies (E,) -> (the epoch whose weights to keep, the accuracy to report):
    the epoch with the best validation accuracy (the earliest on a tie), and the test
    accuracy of that epoch. The test set plays no part in the choice."""
    best = int(torch.nonzero(val_acc == val_acc.max())[0])
    return best, float(test_acc[best])


def _epoch_on_test(train_acc, val_acc, test_acc):
    best = int(torch.nonzero(test_acc == test_acc.max())[0])
    return best, float(test_acc[best])


def _epoch_val_reported(train_acc, val_acc, test_acc):
    best = int(torch.nonzero(val_acc == val_acc.max())[0])
    return best, float(val_acc[best])


def _epoch_on_train(train_acc, val_acc, test_acc):
    best = int(torch.nonzero(train_acc == train_acc.max())[0])
    return best, float(test_acc[best])


def _epoch_best_test_reported(train_acc, val_acc, test_acc):
    best = int(torch.nonzero(val_acc == val_acc.max())[0])
    return best, float(test_acc.max())


def _run(gen: torch.Generator, epochs: int, n_val: int, n_test: int) -> Tuple[torch.Tensor, ...]:
    """Plausible accuracy curves of one training run: training accuracy rising to 1, validation
    and test rising, then drifting; each a multiple of 1 / (its number of images)."""
    e = torch.arange(1, epochs + 1, dtype=torch.float64)
    rate = 0.3 + torch.rand(1, generator=gen, dtype=torch.float64)
    train = 1 - 0.5 * torch.exp(-rate * 1.5 * e)
    level = 0.9 - 0.4 * torch.exp(-rate * e) - 0.004 * torch.rand(1, generator=gen, dtype=torch.float64) * e
    val = level + 0.02 * torch.randn(epochs, generator=gen, dtype=torch.float64)
    test = level + 0.02 * torch.randn(epochs, generator=gen, dtype=torch.float64)
    return tuple((v.clamp(0, 1) * n).round() / n for v, n in ((train, 1000), (val, n_val), (test, n_test)))


def _epoch_cases(gen: torch.Generator, hidden: bool) -> List[Case]:
    t = lambda values: torch.tensor(values, dtype=torch.float64)  # noqa: E731
    cases = [
        Case("6 epochs: validation and test peak at different epochs",
             (t([0.82, 0.93, 0.97, 0.99, 1.0, 1.0]), t([0.80, 0.90, 0.95, 0.96, 0.95, 0.94]), t([0.81, 0.89, 0.94, 0.95, 0.97, 0.93]))),
        Case("4 epochs: two epochs tie for the best validation accuracy",
             (t([0.90, 0.97, 0.99, 1.0]), t([0.90, 0.95, 0.95, 0.93]), t([0.91, 0.94, 0.96, 0.95]))),
        Case("5 epochs: overfitting, validation best after epoch 2 while training accuracy still rises",
             (t([0.85, 0.92, 0.96, 0.98, 0.99]), t([0.84, 0.88, 0.87, 0.86, 0.85]), t([0.83, 0.86, 0.87, 0.85, 0.84]))),
        Case("3 epochs: the first epoch is the best on validation",
             (t([0.70, 0.80, 0.90]), t([0.75, 0.74, 0.73]), t([0.72, 0.74, 0.71]))),
        Case("1 epoch", (t([0.6]), t([0.55]), t([0.5]))),
    ]
    if hidden:
        for i in range(8):
            epochs = int(torch.randint(2, 21, (1,), generator=gen))
            n_val, n_test = (40, 60) if i % 2 else (270, 450)
            cases.append(Case(f"{epochs} epochs, {n_val} validation and {n_test} test images", _run(gen, epochs, n_val, n_test)))
    return cases


QUESTIONS = [
    Question(
        id="07.1", sheet=SHEET, title="The confusion matrix", func_name="confusion_matrix", points=1,
        reference=metrics.confusion_matrix, make_cases=_cm_cases, kind="implement",
        hints=(
            "Every sample adds exactly one to one cell: the row of its true class and the column of its predicted "
            "class. The size of the matrix comes from num_classes, not from the labels you happen to see.",
            "Inputs: two (N,) long tensors of labels; output: a (num_classes, num_classes) long tensor whose entries "
            "sum to N; row i sums to the number of samples of true class i, column j to the number predicted as j.",
            "Start from a zero integer matrix and add one per sample at [true label, predicted label]; or, without a "
            "loop, encode each pair as the single number true * K + predicted, count those numbers with "
            "torch.bincount (minlength K * K) and reshape.",
        ),
        misconceptions=(
            Misconception("rows and columns transposed",
                          "Row i collects the samples whose TRUE class is i, and the columns say what the model "
                          "predicted for them; swapped, every row sum counts predictions, and precision and recall "
                          "later trade places.", _cm_transposed),
            Misconception("classes taken from the data",
                          "The number of classes belongs to the task, not to one sample of labels: a class that "
                          "happens not to occur still needs its empty row and column, or the positions of the "
                          "classes after it shift.", _cm_classes_from_data),
            Misconception("num_classes ignored: largest label + 1",
                          "The largest label seen is not the number of classes: when the last classes never occur "
                          "in this sample, the matrix comes out too small.", _cm_max_plus_one),
            Misconception("float counts",
                          "The entries of a confusion matrix count samples, so they are whole numbers; a "
                          "floating-point matrix hides that and no longer matches the integer counts it is compared "
                          "with.", _cm_float),
        ),
    ),
    Question(
        id="07.2", sheet=SHEET, title="Precision, recall and F1 per class", func_name="precision_recall_f1", points=2,
        reference=metrics.precision_recall_f1, make_cases=_prf_cases, kind="implement",
        hints=(
            "Precision of class k looks at everything the model predicted as k (a column of the confusion matrix), "
            "recall at everything that truly is k (a row). Rewrite the harmonic mean 2 / (1/precision + 1/recall) "
            "with counts only: in that form it is 0/0 only for a class that is neither predicted nor present.",
            "From the (K, K) confusion matrix you need three (K,) vectors: its diagonal (true positives), its column "
            "sums (predicted as k) and its row sums (truly k). Each result is a float64 (K,) vector; zero_division "
            "fills exactly the entries whose denominator is 0.",
            "Convert the counts to float64, divide where the denominator is positive and put zero_division elsewhere "
            "with torch.where (clamp the denominator to at least 1 first, so that the branch not taken holds no "
            "NaN). F1 has twice the true positives on top; its bottom is the sum of two of your vectors.",
        ),
        misconceptions=(
            Misconception("precision and recall swapped",
                          "Precision asks how many of the model's predictions of k are right (a column of the "
                          "confusion matrix); recall asks how many of the true k it finds (a row). Exchanged, false "
                          "positives and false negatives trade places.", _prf_swapped),
            Misconception("NaN instead of zero_division",
                          "A class that is never predicted or never present makes a ratio of counts 0/0, which has no "
                          "value; the metric needs a stated convention there, and a NaN would spread into every "
                          "average.", _prf_nan),
            Misconception("zero_division ignored (always 0)",
                          "zero_division is the caller's convention for undefined ratios: a class that is never "
                          "predicted has made no wrong prediction, and some evaluations score that 1 rather than 0, "
                          "so the value must follow the argument.", _prf_zero_division_ignored),
            Misconception("F1 as 2PR/(P+R): NaN where P = R = 0",
                          "When a class is predicted and present but never right, precision and recall are both 0 "
                          "and so is F1, yet the product-over-sum form divides 0 by 0. As a ratio of counts F1 is "
                          "undefined only when the class is neither predicted nor present.", _prf_harmonic_of_substituted),
            Misconception("F1 as the arithmetic mean of precision and recall",
                          "F1 is the harmonic mean, which the smaller of precision and recall dominates; an "
                          "arithmetic mean lets a high precision hide a poor recall (one correct prediction of a "
                          "class would already score at least 0.5).", _prf_arithmetic_mean),
        ),
    ),
    Question(
        id="07.3", sheet=SHEET, title="Macro, micro and weighted F1", func_name="f1_averages", points=2,
        reference=f1_averages, make_cases=_avg_cases, kind="implement",
        hints=(
            "Three ways to make one number out of K per-class scores: weigh every class equally, weigh each class by "
            "how many samples truly belong to it, or pool the counts of all classes first and compute a single F1 "
            "from the pooled counts.",
            "The per-class F1 is a (K,) vector (07.2 with zero_division 0), the support a (K,) vector of true counts "
            "that sums to N. Pooled over the classes, the total predicted and the total true are both N: what does "
            "the pooled F1 reduce to?",
            "macro: the plain mean over all K entries, absent classes included; weighted: the sum of F1 times support "
            "divided by N; micro: compare y_true and y_pred elementwise. Return Python floats (float(...) or .item()).",
        ),
        misconceptions=(
            Misconception("macro and micro mixed up",
                          "Macro gives every class the same weight, so a rare class that is always missed pulls it "
                          "down; micro pools all samples first and is dominated by the frequent classes. They answer "
                          "different questions.", _avg_swapped),
            Misconception("macro F1 as the F1 of macro precision and macro recall",
                          "Macro F1 averages the per-class F1 scores; the harmonic mean of the averaged precision and "
                          "the averaged recall is a different number, because a harmonic mean of averages is not an "
                          "average of harmonic means.", _avg_f1_of_macro_pr),
            Misconception("weighted by predicted counts instead of true counts",
                          "The weighted average weighs each class by its support, the number of samples that truly "
                          "belong to it; weighing by how often the model predicts a class lets the model's own "
                          "mistakes decide how much each class counts.", _avg_weighted_by_predictions),
            Misconception("macro over the classes that occur only",
                          "The macro average runs over all K classes of the task: dropping a class that happens to be "
                          "neither present nor predicted changes the divisor, so scores of different samples are no "
                          "longer comparable.", _avg_over_present_classes),
        ),
    ),
    Question(
        id="07.4", sheet=SHEET, title="Debug the employment article's CNN for any input size", func_name="make_cnn",
        points=2, reference=cnn.make_cnn, make_cases=_cnn_cases, call=_call_make_cnn, kind="debug",
        hints=(
            "Follow the height and width of the feature maps through the layers: which layers change them, and how? "
            "The first linear layer must receive exactly the number of values one image has after the last pooling, "
            "and the reshape before it must never move values from one image to another.",
            "Input (N, C, H, W); after the two blocks the maps are (N, 64, H', W'), with H' and W' from chapter 05's "
            "output-size formula applied layer by layer; fc1 needs 64 * H' * W' inputs, and the output is (N, 10) "
            "for every N.",
            "Compute H' and W' with course_lib.conv.conv_output_size (kernel 3, padding 1 for a convolution; kernel 2, "
            "stride 2 for a pooling), or run a zero batch through the convolutional part once and read off its size; "
            "flatten all dimensions but dimension 0 (torch.flatten with start_dim 1, or nn.Flatten).",
        ),
        misconceptions=(
            Misconception("64 * 5 * 5 kept for every input size",
                          "The number of values per image after the last pooling depends on the input's height and "
                          "width; a constant is right for one input size only, and view(-1, ...) then regroups the "
                          "values of several images instead of failing.", _cnn_listing_size),
            Misconception("one pooling left out of the size",
                          "Each pooling halves the height and the width (rounding down), so each divides the flattened "
                          "size by about four; counting one pooling too few makes fc1 about four times too wide, and "
                          "the reshape then merges images.", _cnn_one_pooling_in_size),
            Misconception("one pooling left out of the size and the forward pass",
                          "The listing has two pooling steps; dropping one keeps the shapes consistent but builds a "
                          "different network, whose first linear layer has about four times as many weights.",
                          _cnn_one_pooling_everywhere),
            Misconception("sizes rounded instead of floored",
                          "A 2x2 pooling with stride 2 uses complete windows only: an odd last row or column is "
                          "dropped, so sizes are rounded down, never to the nearest integer.", _cnn_rounded),
        ),
    ),
    Question(
        id="07.5", sheet=SHEET, title="Predict what view(-1, 64 * 5 * 5) does to a batch", func_name="listing_rows",
        points=1, reference=_listing_rows, make_cases=_rows_cases, kind="predict",
        hints=(
            "Follow one image's height and width through the layers, then count how many values the whole batch "
            "holds just before the reshape. view(-1, n) does not know what a batch is: it only needs the total to be "
            "a multiple of n.",
            "Input (N, 1, H, W); after two blocks of (conv 3x3, padding 1, stride 1) and (max-pool 2x2, stride 2) the "
            "maps are (N, 64, H', W'); the reshape asks for rows of 64 * 5 * 5 = 1600 values, and fc1 accepts any "
            "number of such rows.",
            "Compute H' and W' in integer arithmetic (chapter 05's formula, or course_lib.conv.conv_output_size), "
            "multiply out the batch's total number of values, and let its remainder modulo 1600 decide between an "
            "error (answer 0) and a number of rows.",
        ),
        misconceptions=(
            Misconception("view(-1, n) keeps the batch",
                          "-1 does not mean 'the batch': view keeps only the total number of values and infers that "
                          "dimension from it, so a wrong n can silently regroup the values of several images into a "
                          "different number of rows.", _rows_batch_kept),
            Misconception("padding ignored",
                          "Padding 1 adds a border of one pixel on each side, so a 3x3 convolution with padding 1 and "
                          "stride 1 keeps the height and the width; only the poolings shrink the maps here.",
                          _rows_padding_ignored),
            Misconception("pooling rounds up",
                          "Max-pooling with a 2x2 window and stride 2 uses complete windows only: an odd last row or "
                          "column is dropped, so each pooling rounds the size down.", _rows_pooling_rounds_up),
            Misconception("channels left out of the count",
                          "After conv2 every image is 64 feature maps, not one: the flattened vector has one value per "
                          "channel and position, so the number of channels multiplies the number of values.",
                          _rows_channels_left_out),
        ),
    ),
    Question(
        id="07.6", sheet=SHEET, title="Debug a model selection: which data may choose?", func_name="choose_epoch",
        points=1, reference=_choose_epoch, make_cases=_epoch_cases, kind="debug",
        hints=(
            "Each data set has one job: the training set fits the weights, the validation set makes choices such as "
            "the epoch, and the test set measures the final choice, once. Which line of the listing gives a job to "
            "the wrong set?",
            "Inputs: three float64 tensors (E,), one accuracy per epoch. Output: an int in 0..E-1 (the epoch whose "
            "weights are kept) and a float (the accuracy you would announce for new images).",
            "Scan for the largest value of the one curve that is allowed to choose (a strict > keeps the earliest "
            "epoch, as torch.argmax does), then read the curve that measures at that index; one of the three curves "
            "is not needed at all.",
        ),
        misconceptions=(
            Misconception("epoch chosen on the test set",
                          "The test set may play no part in any decision: once it picks the epoch, the reported number "
                          "is the best of several tries on the same images and overestimates the accuracy on new "
                          "ones.", _epoch_on_test),
            Misconception("validation accuracy reported",
                          "The validation set chose the epoch, so its score at that epoch is the largest of several "
                          "noisy numbers and biased upwards; only data the choice never saw gives an honest "
                          "estimate.", _epoch_val_reported),
            Misconception("epoch chosen on the training accuracy",
                          "Training accuracy keeps rising while the network memorises its training images; it cannot "
                          "show when the network stops improving on images it has not seen.", _epoch_on_train),
            Misconception("best test accuracy over the epochs reported",
                          "Announcing the best test accuracy over the epochs is a choice made with the test set again, "
                          "whatever chose the weights; the honest number belongs to the weights actually kept.",
                          _epoch_best_test_reported),
        ),
    ),
]
