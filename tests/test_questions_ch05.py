"""Questions of sheet 05_convolution: each accepts the reference and a differently written
correct answer, rejects typical wrong answers; the solution sheet passes, the unfilled
exercise sheet is "not attempted" and still runs to the end on the references."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from course_lib.check import FAILED, PASSED, evaluate
from question_suite import QuestionSuite

SHEET = "05_convolution"
IDS = ["05.1", "05.2", "05.3", "05.4", "05.5"]


# --- correct answers written differently from the reference -----------------------------
def size_by_counting(size, kernel_size, stride=1, padding=0, dilation=1):
    span = dilation * (kernel_size - 1) + 1
    return len(range(0, size + 2 * padding - span + 1, stride))  # the window starts that fit


def conv2d_shift_and_add(x, weight, bias=None, stride=1, padding=0):
    """Loop over the kernel taps instead of the output positions."""
    kH, kW = weight.shape[2:]
    xp = F.pad(x, (padding, padding, padding, padding))
    H_out = math.floor((xp.shape[2] - kH) / stride) + 1
    W_out = math.floor((xp.shape[3] - kW) / stride) + 1
    y = torch.zeros(x.shape[0], weight.shape[0], H_out, W_out, dtype=x.dtype)
    for u in range(kH):
        for v in range(kW):
            shifted = xp[:, :, u:u + stride * (H_out - 1) + 1:stride, v:v + stride * (W_out - 1) + 1:stride]
            y += torch.einsum("nchw,oc->nohw", shifted, weight[:, :, u, v])
    return y if bias is None else y + bias[:, None, None]


def im2col_tensor_unfold(x, kernel_size, stride=1, padding=0):
    kH, kW = kernel_size
    xp = F.pad(x, (padding,) * 4)
    patches = xp.unfold(2, kH, stride).unfold(3, kW, stride)  # (N, C, H_out, W_out, kH, kW)
    n, c, h_out, w_out = patches.shape[:4]
    return patches.permute(0, 1, 4, 5, 2, 3).reshape(n, c * kH * kW, h_out * w_out)


def grad_weight_unfold_einsum(grad_out, x, kernel_size, stride=1, padding=0):
    cols = F.unfold(x, kernel_size, padding=padding, stride=stride)  # (N, C_in*kH*kW, L)
    grad = torch.einsum("nol,nkl->ok", grad_out.flatten(2), cols)
    return grad.reshape(grad_out.shape[1], x.shape[1], *kernel_size)


def grad_input_transposed_conv(grad_out, weight, padding=0):
    return F.conv_transpose2d(grad_out, weight, padding=padding)


CORRECT = {"05.1": size_by_counting, "05.2": conv2d_shift_and_add, "05.3": im2col_tensor_unfold,
           "05.4": grad_weight_unfold_einsum, "05.5": grad_input_transposed_conv}


# --- typical mistakes -----------------------------------------------------------------
def conv2d_variant(kind):
    def conv2d(x, weight, bias=None, stride=1, padding=0):
        w = weight.flip(2, 3) if kind == "flipped kernel (a true convolution)" else weight
        s = 1 if kind == "stride ignored" else stride
        p = 0 if kind == "padding ignored" else padding
        b = None if kind == "bias ignored" else bias
        return F.conv2d(x, w, b, stride=s, padding=p)

    return conv2d


def im2col_variant(kind):
    def im2col(x, kernel_size, stride=1, padding=0):
        kH, kW = kernel_size
        patches = F.pad(x, (padding,) * 4).unfold(2, kH, stride).unfold(3, kW, stride)  # (N, C, Ho, Wo, kH, kW)
        n, c, h_out, w_out = patches.shape[:4]
        if kind == "layout transposed: (N, L, C*kH*kW)":
            return patches.permute(0, 2, 3, 1, 4, 5).reshape(n, h_out * w_out, c * kH * kW)
        if kind == "rows ordered (u, v, c) instead of (c, u, v)":
            return patches.permute(0, 4, 5, 1, 2, 3).reshape(n, c * kH * kW, h_out * w_out)
        if kind == "kernel rows and columns swapped (v before u)":
            return patches.permute(0, 1, 5, 4, 2, 3).reshape(n, c * kH * kW, h_out * w_out)
        # "columns ordered column-major over the output (j before i)"
        return patches.permute(0, 1, 4, 5, 3, 2).reshape(n, c * kH * kW, h_out * w_out)

    return im2col


def grad_weight_variant(kind):
    def grad_weight(grad_out, x, kernel_size, stride=1, padding=0):
        if kind == "no sum over the batch (sample 0 only)":
            grad_out, x = grad_out[:1], x[:1]
        g = grad_weight_unfold_einsum(grad_out, x, kernel_size, stride, 0 if kind == "padding ignored" else padding)
        if kind == "mean over the batch instead of the sum":
            g = g / x.shape[0]
        if kind == "flipped (a convolution instead of a correlation)":
            g = g.flip(2, 3)
        return g

    return grad_weight


def grad_input_variant(kind):
    def grad_input(grad_out, weight, padding=0):
        if kind == "kernel not flipped":
            k = weight.shape[2:]
            full = F.pad(grad_out, (k[1] - 1, k[1] - 1, k[0] - 1, k[0] - 1))
            g = F.conv2d(full, weight.transpose(0, 1))  # correlation with the unflipped kernel
            h, w = g.shape[2] - 2 * padding, g.shape[3] - 2 * padding
            return g[:, :, padding:padding + h, padding:padding + w]
        if kind == "padding not removed":
            return F.conv_transpose2d(grad_out, weight)
        # "padding removed from one side only"
        g = F.conv_transpose2d(grad_out, weight)
        return g[:, :, 2 * padding:, 2 * padding:]

    return grad_input


WRONG = {
    "05.1": {
        "missing + 1": lambda size, kernel_size, stride=1, padding=0, dilation=1: (size + 2 * padding - dilation * (kernel_size - 1) - 1) // stride,
        "dilation ignored": lambda size, kernel_size, stride=1, padding=0, dilation=1: (size + 2 * padding - kernel_size) // stride + 1,
        "ceil instead of floor": lambda size, kernel_size, stride=1, padding=0, dilation=1: math.ceil((size + 2 * padding - dilation * (kernel_size - 1) - 1) / stride) + 1,
        "padding on one side only": lambda size, kernel_size, stride=1, padding=0, dilation=1: (size + padding - dilation * (kernel_size - 1) - 1) // stride + 1,
    },
    "05.2": {kind: conv2d_variant(kind) for kind in
             ["flipped kernel (a true convolution)", "padding ignored", "stride ignored", "bias ignored"]},
    "05.3": {kind: im2col_variant(kind) for kind in
             ["layout transposed: (N, L, C*kH*kW)", "rows ordered (u, v, c) instead of (c, u, v)",
              "kernel rows and columns swapped (v before u)", "columns ordered column-major over the output (j before i)"]},
    "05.4": {kind: grad_weight_variant(kind) for kind in
             ["no sum over the batch (sample 0 only)", "mean over the batch instead of the sum",
              "flipped (a convolution instead of a correlation)", "padding ignored"]},
    "05.5": {kind: grad_input_variant(kind) for kind in
             ["kernel not flipped", "padding not removed", "padding removed from one side only"]},
}


class TestQuestions(QuestionSuite):
    """Accepts the reference and CORRECT, rejects WRONG; solutions pass, exercises are not attempted."""


def test_float_sizes_count_but_wrong_values_do_not():
    assert evaluate("05.1", lambda *a, **k: float(CORRECT["05.1"](*a, **k))).status == PASSED
    assert evaluate("05.1", lambda *a, **k: CORRECT["05.1"](*a, **k) + 0.5).status == FAILED


def test_failure_messages_point_at_the_problem():
    msg = evaluate("05.1", WRONG["05.1"]["dilation ignored"]).message
    assert "passed 5 of 7" in msg and "case 4 of 7 (dilation 2" in msg
    msg = evaluate("05.2", WRONG["05.2"]["padding ignored"]).message
    assert "case 3 of 7 (padding=1" in msg and "expected (1, 2, 4, 4) float64, got (1, 2, 2, 2) float64" in msg
    msg = evaluate("05.3", WRONG["05.3"]["rows ordered (u, v, c) instead of (c, u, v)"]).message
    assert "case 2 of 6 (3 channels" in msg
    msg = evaluate("05.4", WRONG["05.4"]["no sum over the batch (sample 0 only)"]).message
    assert "case 2 of 6 (batch of 3" in msg
    msg = evaluate("05.5", lambda grad_out, weight, padding=0: None).message
    assert "forget to `return`" in msg


@pytest.mark.parametrize("sheet", ["solution_sheet", "exercise_sheet"])
def test_the_last_cell_learns_the_sobel_kernel(sheet, request):
    ns = request.getfixturevalue(sheet)
    assert all(float(err) < 1e-12 for err in ns["errors"].values()), ns["errors"]
    torch.testing.assert_close(ns["kernel"], ns["sobel_x"], atol=1e-4, rtol=0)
    assert ns["loss"] < 1e-10
