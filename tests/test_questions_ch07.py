"""Questions of sheet 07_cnn: each accepts the reference and a differently written correct
answer, rejects typical wrong answers; the solution sheet passes, the unfilled exercise sheet
is "not attempted" and still runs to the end on the references."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from course_lib import questions
from course_lib.check import PASSED, evaluate
from question_suite import QuestionSuite

SHEET = "07_cnn"
IDS = ["07.1", "07.2", "07.3", "07.4"]


# --- correct answers written differently from the reference ---------------------------------------
def cm_one_hot(y_true, y_pred, num_classes):
    return F.one_hot(y_true, num_classes).T @ F.one_hot(y_pred, num_classes)


def prf_loops(y_true, y_pred, num_classes, zero_division=0.0):
    p, r, f = [], [], []
    for k in range(num_classes):
        tp = int(((y_true == k) & (y_pred == k)).sum())
        predicted, true = int((y_pred == k).sum()), int((y_true == k).sum())
        p.append(tp / predicted if predicted else zero_division)
        r.append(tp / true if true else zero_division)
        f.append(2 * tp / (predicted + true) if predicted + true else zero_division)
    return tuple(torch.tensor(v, dtype=torch.float64) for v in (p, r, f))


def averages_from_counts(y_true, y_pred, num_classes):
    f1 = prf_loops(y_true, y_pred, num_classes)[2]
    weights = torch.tensor([float((y_true == k).sum()) for k in range(num_classes)], dtype=torch.float64)
    tp = float((y_true == y_pred).sum())
    micro = 2 * tp / (2 * len(y_true))  # F1 of the summed counts
    return math.fsum(f1.tolist()) / num_classes, micro, float(f1 @ weights / weights.sum())


def make_cnn_lazy(in_channels, input_hw):
    """Sizes fc1 on the first batch (nn.LazyLinear) instead of computing it."""
    return nn.Sequential(
        nn.Conv2d(in_channels, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.LazyLinear(128), nn.ReLU(), nn.Linear(128, 10),
    )


def make_cnn_dummy_pass(in_channels, input_hw):
    """Measures the flatten size with a dummy forward pass."""
    features = nn.Sequential(nn.Conv2d(in_channels, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2, 2),
                             nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2, 2))
    with torch.no_grad():
        flat = features(torch.zeros(1, in_channels, *input_hw)).numel()
    return nn.Sequential(features, nn.Flatten(), nn.Linear(flat, 128), nn.ReLU(), nn.Linear(128, 10))


CORRECT = {"07.1": cm_one_hot, "07.2": prf_loops, "07.3": averages_from_counts, "07.4": make_cnn_lazy}


# --- typical mistakes -----------------------------------------------------------------------------
def cm_transposed(y_true, y_pred, num_classes):
    return cm_one_hot(y_pred, y_true, num_classes)


def cm_classes_from_data(y_true, y_pred, num_classes):
    labels = torch.unique(torch.cat([y_true, y_pred]))  # a missing class shrinks the matrix
    index = {int(c): i for i, c in enumerate(labels)}
    cm = torch.zeros(len(labels), len(labels), dtype=torch.long)
    for t, p in zip(y_true.tolist(), y_pred.tolist()):
        cm[index[t], index[p]] += 1
    return cm


def cm_max_plus_one(y_true, y_pred, num_classes):
    return cm_one_hot(y_true, y_pred, int(max(y_true.max(), y_pred.max())) + 1)


def cm_float(y_true, y_pred, num_classes):
    return F.one_hot(y_true, num_classes).T.double() @ F.one_hot(y_pred, num_classes).double()


def prf_swapped(y_true, y_pred, num_classes, zero_division=0.0):
    p, r, f = prf_loops(y_true, y_pred, num_classes, zero_division)
    return r, p, f


def prf_nan(y_true, y_pred, num_classes, zero_division=0.0):
    cm = cm_one_hot(y_true, y_pred, num_classes).double()
    tp, predicted, true = cm.diag(), cm.sum(0), cm.sum(1)
    return tp / predicted, tp / true, 2 * tp / (predicted + true)


def prf_ignores_zero_division(y_true, y_pred, num_classes, zero_division=0.0):
    return prf_loops(y_true, y_pred, num_classes, 0.0)


def prf_harmonic_of_substituted(y_true, y_pred, num_classes, zero_division=0.0):
    p, r, _ = prf_loops(y_true, y_pred, num_classes, zero_division)
    return p, r, 2 * p * r / (p + r)  # 0/0 = NaN where P = R = 0


def averages_swapped(y_true, y_pred, num_classes):
    macro, micro, weighted = averages_from_counts(y_true, y_pred, num_classes)
    return micro, macro, weighted


def averages_f1_of_macro_pr(y_true, y_pred, num_classes):
    p, r, _ = prf_loops(y_true, y_pred, num_classes)
    mp, mr = float(p.mean()), float(r.mean())
    _, micro, weighted = averages_from_counts(y_true, y_pred, num_classes)
    return (2 * mp * mr / (mp + mr) if mp + mr else 0.0), micro, weighted


def averages_weighted_by_predictions(y_true, y_pred, num_classes):
    f1 = prf_loops(y_true, y_pred, num_classes)[2]
    w = torch.bincount(y_pred, minlength=num_classes).double()
    macro, micro, _ = averages_from_counts(y_true, y_pred, num_classes)
    return macro, micro, float((f1 * w).sum() / w.sum())


def averages_over_present_classes(y_true, y_pred, num_classes):
    f1 = prf_loops(y_true, y_pred, num_classes)[2]
    present = torch.bincount(torch.cat([y_true, y_pred]), minlength=num_classes) > 0
    _, micro, weighted = averages_from_counts(y_true, y_pred, num_classes)
    return float(f1[present].mean()), micro, weighted


class ListingCNN(nn.Module):
    def __init__(self, in_channels, flat, pools=2):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 32, 3, padding=1)
        self.conv2 = nn.Conv2d(32, 64, 3, padding=1)
        self.pool = nn.MaxPool2d(2, 2)
        self.fc1 = nn.Linear(flat, 128)
        self.fc2 = nn.Linear(128, 10)
        self.flat, self.pools = flat, pools

    def forward(self, x):
        x = self.pool(F.relu(self.conv1(x)))
        x = F.relu(self.conv2(x))
        if self.pools == 2:
            x = self.pool(x)
        x = x.view(-1, self.flat)
        return self.fc2(F.relu(self.fc1(x)))


WRONG = {
    "07.1": {
        "rows and columns transposed": cm_transposed,
        "classes taken from the data (a missing class shrinks it)": cm_classes_from_data,
        "num_classes ignored: max label + 1": cm_max_plus_one,
        "float counts": cm_float,
    },
    "07.2": {
        "precision and recall swapped": prf_swapped,
        "NaN instead of zero_division": prf_nan,
        "zero_division ignored (always 0)": prf_ignores_zero_division,
        "F1 as 2PR/(P+R): NaN where P = R = 0": prf_harmonic_of_substituted,
    },
    "07.3": {
        "macro and micro mixed up": averages_swapped,
        "macro F1 as the F1 of macro P and macro R": averages_f1_of_macro_pr,
        "weighted by predicted counts instead of true counts": averages_weighted_by_predictions,
        "macro over the classes that occur only": averages_over_present_classes,
    },
    "07.4": {
        "64 * 5 * 5 hard-coded": lambda c, hw: ListingCNN(c, 64 * 5 * 5),
        "one pooling forgotten in the size": lambda c, hw: ListingCNN(c, 64 * (hw[0] // 2) * (hw[1] // 2)),
        "one pooling forgotten in size and forward": lambda c, hw: ListingCNN(c, 64 * (hw[0] // 2) * (hw[1] // 2), pools=1),
        "sizes rounded instead of floored": lambda c, hw: ListingCNN(c, 64 * round(hw[0] / 4) * round(hw[1] / 4)),
        "returns the output, not the module": lambda c, hw: make_cnn_dummy_pass(c, hw)(torch.zeros(1, c, *hw)),
    },
}


class TestQuestions(QuestionSuite):
    """Accepts the reference and CORRECT, rejects WRONG; solutions pass, exercises are not attempted."""


def test_another_correct_cnn_passes():
    assert evaluate("07.4", make_cnn_dummy_pass, hidden=True).status == PASSED


def test_failure_messages_point_at_the_problem():
    msg = evaluate("07.1", cm_classes_from_data).message
    assert "class 1 never occurs" in msg and "expected (3, 3) int64, got (2, 2) int64" in msg
    msg = evaluate("07.1", cm_float).message
    assert "int64, got (3, 3) float64" in msg
    msg = evaluate("07.2", prf_nan).message
    assert "NaN" in msg
    msg = evaluate("07.4", WRONG["07.4"]["64 * 5 * 5 hard-coded"]).message
    assert "case 1 of 7 (1 x 28 x 28" in msg and "raised RuntimeError" in msg
    # the batch-25 case: view(-1, 64 * 5 * 5) happily returns 49 rows
    q = questions.get("07.4")
    from course_lib.check import run_case

    shape, _ = run_case(q, WRONG["07.4"]["64 * 5 * 5 hard-coded"], q.cases()[1])
    assert shape.tolist() == [49, 10]
    msg = evaluate("07.4", WRONG["07.4"]["returns the output, not the module"]).message
    assert "should return a torch.nn.Module" in msg


@pytest.mark.parametrize("sheet", ["solution_sheet", "exercise_sheet"])
def test_the_last_cell_evaluates_a_trained_cnn(sheet, request):
    ns = request.getfixturevalue(sheet)
    assert ns["micro"] > 0.95 and ns["macro"] > 0.95
    assert ns["cm"].shape == (10, 10) and int(ns["cm"].sum()) == 450
    assert ns["micro"] == pytest.approx(float(ns["cm"].diag().sum()) / 450)
