"""Questions of sheet 07_cnn: each accepts the reference and a differently written correct
answer and names its registered misconceptions; the solution sheet passes, the unfilled
exercise sheet is "not attempted" and still runs to the end on the references."""

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


def rows_by_running_the_listing(batch, input_hw):
    """Runs the employment article's listing as printed on a zero batch and counts the rows."""
    listing = nn.Sequential(nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2, 2),
                            nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2, 2))
    with torch.no_grad():
        maps = listing(torch.zeros(batch, 1, *input_hw))
    try:
        return maps.view(-1, 64 * 5 * 5).shape[0]
    except RuntimeError:
        return 0


def choose_epoch_argmax(train_acc, val_acc, test_acc):
    epoch = torch.argmax(val_acc)  # documented: the first of several maxima
    return epoch, test_acc[epoch]  # 0-d tensors count as numbers


CORRECT = {"07.1": cm_one_hot, "07.2": prf_loops, "07.3": averages_from_counts, "07.4": make_cnn_lazy,
           "07.5": rows_by_running_the_listing, "07.6": choose_epoch_argmax}


def returns_the_output(in_channels, input_hw):
    """Not a misconception the check can name (it never returns a module): its own clear message."""
    return make_cnn_dummy_pass(in_channels, input_hw)(torch.zeros(1, in_channels, *input_hw))


def wrong(qid, name):
    return questions.get(qid).misconception(name).wrong


class TestQuestions(QuestionSuite):
    """Accepts the reference and CORRECT, names every registered misconception; solutions pass,
    exercises are not attempted."""


def test_another_correct_cnn_passes():
    assert evaluate("07.4", make_cnn_dummy_pass, hidden=True).status == PASSED


def test_failure_messages_point_at_the_problem():
    msg = evaluate("07.1", wrong("07.1", "classes taken from the data")).message
    assert "class 1 never occurs" in msg and "expected (3, 3) int64, got (2, 2) int64" in msg
    msg = evaluate("07.1", wrong("07.1", "float counts")).message
    assert "int64, got (3, 3) float64" in msg
    msg = evaluate("07.2", wrong("07.2", "NaN instead of zero_division")).message
    assert "NaN" in msg
    hard_coded = wrong("07.4", "64 * 5 * 5 kept for every input size")
    msg = evaluate("07.4", hard_coded).message
    assert "case 1 of 8 (1 x 28 x 28" in msg and "raised RuntimeError" in msg
    # the batch-25 case: view(-1, 64 * 5 * 5) happily returns 49 rows
    q = questions.get("07.4")
    from course_lib.check import run_case

    shape, _ = run_case(q, hard_coded, q.cases()[1])
    assert shape.tolist() == [49, 10]
    msg = evaluate("07.4", returns_the_output).message
    assert "should return a torch.nn.Module" in msg


def test_the_listing_prediction_matches_pytorch_on_the_lecture_example():
    """25 images of 28 x 28 become 49 rows (the lecture's example); 2 images make view raise."""
    q = questions.get("07.5")
    assert q.reference(25, (28, 28)) == rows_by_running_the_listing(25, (28, 28)) == 49
    assert q.reference(2, (28, 28)) == rows_by_running_the_listing(2, (28, 28)) == 0


def test_choosing_with_the_test_set_announces_too_much():
    q = questions.get("07.6")
    res = evaluate("07.6", wrong("07.6", "epoch chosen on the test set"))
    assert "This looks like epoch chosen on the test set: The test set may play no part" in res.message
    for name in ("epoch chosen on the test set", "best test accuracy over the epochs reported"):
        for case in q.cases(hidden=True):  # never lower than the honest number, on every case
            assert wrong("07.6", name)(*case.args)[1] >= q.reference(*case.args)[1]


@pytest.mark.parametrize("sheet", ["solution_sheet", "exercise_sheet"])
def test_the_last_cell_evaluates_a_trained_cnn(sheet, request):
    ns = request.getfixturevalue(sheet)
    assert ns["micro"] > 0.95 and ns["macro"] > 0.95
    assert ns["cm"].shape == (10, 10) and int(ns["cm"].sum()) == 450
    assert ns["micro"] == pytest.approx(float(ns["cm"].diag().sum()) / 450)
    assert 0 <= ns["kept"] < 6 and ns["announced"] == pytest.approx(ns["micro"])  # test accuracy of the kept weights
