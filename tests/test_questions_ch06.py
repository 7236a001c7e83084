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
IDS = ["06.1", "06.2", "06.3", "06.4"]
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


CORRECT = {"06.1": max_pool_unfold, "06.2": max_pool_backward_claims, "06.3": avg_pool_unfold,
           "06.4": avg_pool_backward_transposed_conv}


# --- typical mistakes -----------------------------------------------------------------
def max_pool_variant(stride_default_1=False, average=False, zero_padding=False, no_plus_one=False):
    def wrong(x, kernel_size, stride=None, padding=0):
        k, p = kernel_size, padding
        s = (1 if stride_default_1 else k) if stride is None else stride
        fill = 0.0 if zero_padding else -INF
        if average:
            return avg_pool_unfold(x, k, s, p)
        y = F.pad(x, (p, p, p, p), value=fill).unfold(2, k, s).unfold(3, k, s).amax(dim=(-2, -1))
        return y[:, :, :-1, :-1] if no_plus_one else y

    return wrong


def max_backward_variant(kind):
    def wrong(grad_out, x, kernel_size, stride=None, padding=0):
        k, p = kernel_size, padding
        s, Ho, Wo = _geometry(x, k, stride, p)
        N, C, H, W = x.shape
        xp = F.pad(x, (p, p, p, p), value=-INF)
        grad = torch.zeros_like(xp)
        for i in range(Ho):
            for j in range(Wo):
                rows, cols = slice(i * s, i * s + k), slice(j * s, j * s + k)
                window = xp[:, :, rows, cols]
                g = grad_out[:, :, i, j, None, None]
                if kind == "every element of the window":
                    grad[:, :, rows, cols] += g.expand(N, C, k, k)
                    continue
                flat = window.reshape(N, C, k * k)
                if kind == "every tied maximum":
                    mask = (flat == flat.amax(dim=2, keepdim=True)).to(x.dtype)
                else:
                    if kind == "last maximum for ties":
                        first = k * k - 1 - flat.flip(2).argmax(dim=2, keepdim=True)
                    else:
                        first = flat.argmax(dim=2, keepdim=True)
                    mask = torch.zeros_like(flat).scatter_(2, first, 1.0)
                routed = mask.reshape(N, C, k, k) * g
                if kind == "overwrite instead of add":
                    region = grad[:, :, rows, cols]
                    grad[:, :, rows, cols] = torch.where(routed != 0, routed, region)
                else:
                    grad[:, :, rows, cols] += routed
        if kind == "padding not cut off":
            return grad
        return grad[:, :, p:p + H, p:p + W]

    return wrong


def avg_pool_variant(kind):
    def wrong(x, kernel_size, stride=None, padding=0, count_include_pad=True):
        k, p = kernel_size, padding
        if kind == "stride defaults to 1":
            stride = 1 if stride is None else stride
        if kind == "divides by the real elements even with count_include_pad=True":
            count_include_pad = False
        if kind == "always divides by k*k":
            count_include_pad = True
        if kind == "output size rounded up":
            s = k if stride is None else stride
            H, W = x.shape[2:]
            Ho, Wo = -(-(H + 2 * p - k) // s) + 1, -(-(W + 2 * p - k) // s) + 1
            xp = F.pad(x, (p, p, p, p + s), value=0.0)  # room for the extra windows
            xp = F.pad(xp.transpose(2, 3), (0, s)).transpose(2, 3)
            return xp.unfold(2, k, s).unfold(3, k, s)[:, :, :Ho, :Wo].mean(dim=(-2, -1))
        return avg_pool_unfold(x, k, stride, p, count_include_pad)

    return wrong


def avg_backward_variant(kind):
    def wrong(grad_out, x, kernel_size, stride=None, padding=0, count_include_pad=True):
        k, p = kernel_size, padding
        if kind == "forgets to divide":
            return avg_pool_backward_transposed_conv(grad_out * k * k, x, k, stride, p, True)
        if kind == "always divides by k*k":
            return avg_pool_backward_transposed_conv(grad_out, x, k, stride, p, True)
        if kind == "overwrite instead of add":
            s, Ho, Wo = _geometry(x, k, stride, p)
            N, C, H, W = x.shape
            grad = torch.zeros(N, C, H + 2 * p, W + 2 * p, dtype=x.dtype)
            divisor = _divisors(x, k, s, p, count_include_pad)
            for i in range(Ho):
                for j in range(Wo):
                    grad[:, :, i * s:i * s + k, j * s:j * s + k] = (grad_out[:, :, i, j] / divisor[i, j])[:, :, None, None]
            return grad[:, :, p:p + H, p:p + W]
        if kind == "stride defaults to 1":
            return avg_pool_backward_transposed_conv(grad_out, x, k, 1 if stride is None else stride, p, count_include_pad)
        raise AssertionError(kind)

    return wrong


WRONG = {
    "06.1": {
        "stride defaults to 1": max_pool_variant(stride_default_1=True),
        "average instead of max": max_pool_variant(average=True),
        "pads with 0 instead of -inf": max_pool_variant(zero_padding=True),
        "output size without the + 1": max_pool_variant(no_plus_one=True),
    },
    "06.2": {kind: max_backward_variant(kind) for kind in [
        "every element of the window", "overwrite instead of add", "last maximum for ties",
        "every tied maximum", "padding not cut off"]},
    "06.3": {kind: avg_pool_variant(kind) for kind in [
        "divides by the real elements even with count_include_pad=True", "always divides by k*k",
        "output size rounded up", "stride defaults to 1"]},
    "06.4": {kind: avg_backward_variant(kind) for kind in [
        "forgets to divide", "always divides by k*k", "overwrite instead of add", "stride defaults to 1"]},
}


class TestQuestions(QuestionSuite):
    """Accepts the reference and CORRECT, rejects WRONG; solutions pass, exercises are not attempted."""


def test_public_cases_cover_the_edge_cases():
    for qid in IDS:
        labels = " | ".join(c.label for c in questions.get(qid).cases())
        assert "padding=1" in labels and "stride=1" in labels and "stride=3" in labels, qid
    assert "ties" in " ".join(c.label for c in questions.get("06.2").cases())
    assert "stride=default" in " ".join(c.label for c in questions.get("06.1").cases())


def test_failure_messages_point_at_the_problem():
    msg = evaluate("06.1", WRONG["06.1"]["stride defaults to 1"]).message
    assert "case 1 of 6 (kernel_size=2, stride=default (= k)" in msg and "expected (1, 1, 2, 2) float64, got (1, 1, 3, 3)" in msg
    msg = evaluate("06.2", WRONG["06.2"]["last maximum for ties"]).message
    assert "case 3 of 6" in msg and "ties: all values equal" in msg
    msg = evaluate("06.2", WRONG["06.2"]["overwrite instead of add"]).message
    assert "case 2 of 6" in msg and "max of all 9 windows" in msg
    msg = evaluate("06.3", WRONG["06.3"]["divides by the real elements even with count_include_pad=True"]).message
    assert "count_include_pad=True" in msg


@pytest.mark.parametrize("sheet", ["solution_sheet", "exercise_sheet"])
def test_the_last_cell_trains_through_the_students_or_the_reference_pooling(sheet, request):
    ns = request.getfixturevalue(sheet)
    assert ns["accuracy"]["max"] > 0.9 and ns["accuracy"]["avg"] > 0.9
    assert ns["conv"].weight.grad is not None and float(ns["conv"].weight.grad.abs().sum()) > 0
