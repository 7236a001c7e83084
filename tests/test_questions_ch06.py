"""Questions of sheet 06_pooling: each accepts the reference and a differently written
correct answer, rejects typical wrong answers; the solution sheet passes, the unfilled
exercise sheet is "not attempted" and still runs to the end on the references."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from course_lib import questions
from course_lib.check import evaluate
from question_suite import QuestionSuite

SHEET = "06_pooling"
IDS = ["06.1", "06.2", "06.3", "06.4"]  # the pooling functions; 06.5 takes an image size
INF = float("inf")


def _geometry(x, k, stride, padding):
    s = k if stride is None else stride
    H, W = x.shape[2:]
    return s, (H + 2 * padding - k) // s + 1, (W + 2 * padding - k) // s + 1


# --- correct answers written differently from the reference -----------------------------
def max_pool_unfold(x, kernel_size, stride=None, padding=0):
    k, p = kernel_size, padding
    s = k if stride is None else stride
    windows = F.pad(x, (p, p, p, p), value=-INF).unfold(2, k, s).unfold(3, k, s)  # (N, C, Ho, Wo, k, k)
    return windows.amax(dim=(-2, -1))


def max_pool_backward_claims(grad_out, x, kernel_size, stride=None, padding=0):
    """Visit the k*k window offsets in row-major order; the first offset holding the maximum claims the gradient."""
    k, p = kernel_size, padding
    s, Ho, Wo = _geometry(x, k, stride, p)
    xp = F.pad(x, (p, p, p, p), value=-INF)
    y = max_pool_unfold(x, k, stride, p)
    grad = torch.zeros_like(xp)
    taken = torch.zeros_like(y, dtype=torch.bool)
    for a in range(k):
        for b in range(k):
            view = xp[:, :, a:a + s * (Ho - 1) + 1:s, b:b + s * (Wo - 1) + 1:s]  # offset (a, b) of every window
            wins = (view == y) & ~taken
            grad[:, :, a:a + s * (Ho - 1) + 1:s, b:b + s * (Wo - 1) + 1:s] += torch.where(wins, grad_out, 0.0)
            taken |= wins
    return grad[:, :, p:p + x.shape[2], p:p + x.shape[3]]


def avg_pool_unfold(x, kernel_size, stride=None, padding=0, count_include_pad=True):
    k, p = kernel_size, padding
    s = k if stride is None else stride
    total = F.pad(x, (p, p, p, p)).unfold(2, k, s).unfold(3, k, s).sum(dim=(-2, -1))
    if count_include_pad:
        return total / k**2
    ones = F.pad(torch.ones_like(x[:1, :1]), (p, p, p, p)).unfold(2, k, s).unfold(3, k, s).sum(dim=(-2, -1))
    return total / ones


def _divisors(x, k, s, p, count_include_pad):
    """(Ho, Wo): k*k, or the number of real elements of each window."""
    H, W = x.shape[2:]
    counts = avg_pool_unfold(torch.ones(1, 1, H, W, dtype=x.dtype), k, s, p, True)[0, 0] * (k * k)
    return torch.full_like(counts, float(k * k)) if count_include_pad else counts


def avg_pool_backward_transposed_conv(grad_out, x, kernel_size, stride=None, padding=0, count_include_pad=True):
    """The gradient of a sum over windows is a transposed convolution with a kernel of ones."""
    k, p = kernel_size, padding
    s, Ho, Wo = _geometry(x, k, stride, p)
    N, C, H, W = x.shape
    divisor = _divisors(x, k, s, p, count_include_pad)
    ones = torch.ones(1, 1, k, k, dtype=x.dtype)
    extra = ((H + 2 * p - k) % s, (W + 2 * p - k) % s)  # rows/columns no window reaches
    g = (grad_out / divisor).reshape(N * C, 1, Ho, Wo)
    return F.conv_transpose2d(g, ones, stride=s, padding=p, output_padding=extra).reshape(N, C, H, W)


def lenet_features_by_layers(height, width):
    """Run the layers' shapes on the meta device: no memory, no arithmetic."""
    layers = torch.nn.Sequential(torch.nn.Conv2d(3, 6, 5), torch.nn.MaxPool2d(2, 2), torch.nn.Conv2d(6, 16, 5),
                                 torch.nn.MaxPool2d(2, 2)).to("meta")
    return layers(torch.empty(1, 3, height, width, device="meta")).numel()


CORRECT = {"06.1": max_pool_unfold, "06.2": max_pool_backward_claims, "06.3": avg_pool_unfold,
           "06.4": avg_pool_backward_transposed_conv, "06.5": lenet_features_by_layers}


def wrong(qid, name):
    """The registered misconception ``name`` of question ``qid``."""
    return questions.get(qid).misconception(name).wrong


class TestQuestions(QuestionSuite):
    """Accepts the reference and CORRECT, names every misconception; solutions pass, exercises are not attempted."""


def test_public_cases_cover_the_edge_cases():
    for qid in IDS:
        labels = " | ".join(c.label for c in questions.get(qid).cases())
        assert "padding=1" in labels and "stride=1" in labels and "stride=3" in labels, qid
    assert "ties" in " ".join(c.label for c in questions.get("06.2").cases())
    assert "stride=default" in " ".join(c.label for c in questions.get("06.1").cases())


def test_failure_messages_point_at_the_problem():
    msg = evaluate("06.1", wrong("06.1", "stride defaults to 1")).message
    assert "case 1 of 6 (kernel_size=2, stride=default (= k)" in msg and "expected (1, 1, 2, 2) float64, got (1, 1, 3, 3)" in msg
    msg = evaluate("06.2", wrong("06.2", "last maximum for ties")).message
    assert "case 3 of 6" in msg and "ties: all values equal" in msg
    msg = evaluate("06.2", wrong("06.2", "overwrite instead of add")).message
    assert "case 2 of 6" in msg and "max of all 9 windows" in msg
    msg = evaluate("06.3", wrong("06.3", "divides by the real elements even with count_include_pad=True")).message
    assert "count_include_pad=True" in msg
    msg = evaluate("06.5", wrong("06.5", "convolutions keep the size")).message
    assert "case 1 of 6 (32x32" in msg and "This looks like convolutions keep the size" in msg


def test_the_talent_articles_size_is_right_for_32x32_only_among_the_public_cases():
    sizes = {c.args: questions.get("06.5").reference(*c.args) for c in questions.get("06.5").cases()}
    assert sizes[(32, 32)] == 16 * 5 * 5 and sizes[(28, 28)] == 16 * 4 * 4
    assert [hw for hw, n in sizes.items() if n == 400] == [(32, 32), (33, 33)]


def test_derivations_are_not_printed_on_the_sheet():
    from helpers import ROOT

    text = (ROOT / "exercises" / f"{SHEET}.py").read_text(encoding="utf-8")
    for qid, func in (("06.2", "def max_pool2d_backward"), ("06.4", "def avg_pool2d_backward")):
        prompt = text[text.index(f"## {qid}"):text.index(func)]
        assert "\\sum" not in prompt and "\\frac{1}{d" not in prompt, f"{qid} prints the gradient it asks for"


@pytest.mark.parametrize("sheet", ["solution_sheet", "exercise_sheet"])
def test_the_last_cell_trains_through_the_students_or_the_reference_pooling(sheet, request):
    ns = request.getfixturevalue(sheet)
    assert ns["accuracy"]["max"] > 0.9 and ns["accuracy"]["avg"] > 0.9
    assert ns["conv"].weight.grad is not None and float(ns["conv"].weight.grad.abs().sum()) > 0


@pytest.mark.parametrize("sheet", ["solution_sheet", "exercise_sheet"])
def test_the_measured_sizes_match_the_prediction(sheet, request):
    ns = request.getfixturevalue(sheet)
    assert ns["measured"] == {hw: questions.get("06.5").reference(*hw) for hw in ns["measured"]}
    assert ns["rows"] == 16  # 25 images of 256 features regrouped into rows of 400
