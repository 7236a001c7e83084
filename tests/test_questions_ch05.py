"""Questions of sheet 05_convolution: each accepts the reference and a differently written
correct answer, rejects typical wrong answers; the solution sheet passes, the unfilled
exercise sheet is "not attempted" and still runs to the end on the references."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from course_lib import questions
from course_lib.check import FAILED, PASSED, evaluate
from question_suite import QuestionSuite

SHEET = "05_convolution"
IDS = ["05.1", "05.2", "05.3", "05.4", "05.5"]


def wrong(qid, name):
    """The registered misconception ``name`` of question ``qid``."""
    return questions.get(qid).misconception(name).wrong


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


def grad_input_transposed_conv(grad_out, weight, input_size, stride=1, padding=0):
    """A transposed convolution; output_padding restores the rows and columns no window read."""
    extra = tuple(h + 2 * padding - (stride * (o - 1) + k) for h, o, k in zip(input_size, grad_out.shape[2:], weight.shape[2:]))
    return F.conv_transpose2d(grad_out, weight, stride=stride, padding=padding, output_padding=extra)


CORRECT = {"05.1": size_by_counting, "05.2": conv2d_shift_and_add, "05.3": im2col_tensor_unfold,
           "05.4": grad_weight_unfold_einsum, "05.5": grad_input_transposed_conv}


class TestQuestions(QuestionSuite):
    """Accepts the reference and CORRECT, names every misconception; solutions pass, exercises are not attempted."""


def test_float_sizes_count_but_wrong_values_do_not():
    assert evaluate("05.1", lambda *a, **k: float(CORRECT["05.1"](*a, **k))).status == PASSED
    assert evaluate("05.1", lambda *a, **k: CORRECT["05.1"](*a, **k) + 0.5).status == FAILED


def test_failure_messages_point_at_the_problem():
    msg = evaluate("05.1", wrong("05.1", "dilation ignored")).message
    assert "passed 5 of 7" in msg and "case 4 of 7 (dilation 3" in msg
    msg = evaluate("05.2", wrong("05.2", "padding ignored")).message
    assert "case 3 of 7 (padding=1" in msg and "expected (1, 2, 4, 4) float64, got (1, 2, 2, 2) float64" in msg
    msg = evaluate("05.3", wrong("05.3", "rows ordered (u, v, c) instead of (c, u, v)")).message
    assert "case 2 of 6 (3 channels" in msg
    msg = evaluate("05.4", wrong("05.4", "no sum over the batch (sample 0 only)")).message
    assert "case 2 of 6 (batch of 3" in msg
    msg = evaluate("05.5", lambda grad_out, weight, input_size, stride=1, padding=0: None).message
    assert "forget to `return`" in msg


def test_05_5_includes_stride_and_a_stride_remainder():
    cases = questions.get("05.5").cases()
    assert {c.kwargs["stride"] for c in cases} >= {1, 2, 3}
    remainders = [c for c in cases if any((h + 2 * c.kwargs["padding"] - k) % c.kwargs["stride"]
                                          for h, k in zip(c.args[2], c.args[1].shape[2:]))]
    assert remainders, "05.5 needs a public case whose last rows are read by no window"
    msg = evaluate("05.5", wrong("05.5", "stride ignored")).message
    assert "This looks like stride ignored" in msg


def test_derivations_are_not_printed_on_the_sheet():
    from helpers import ROOT

    text = (ROOT / "exercises" / f"{SHEET}.py").read_text(encoding="utf-8")
    prompt = lambda qid, nxt: text[text.index(f"## {qid}"):text.index(nxt)]
    assert "\\rfloor" not in prompt("05.1", "def conv_output_size")
    for qid, func in (("05.4", "def conv2d_grad_weight"), ("05.5", "def conv2d_grad_input")):
        assert "\\sum" not in prompt(qid, func), f"{qid} prints the gradient it asks for"


@pytest.mark.parametrize("sheet", ["solution_sheet", "exercise_sheet"])
def test_the_last_cell_learns_the_sobel_kernel(sheet, request):
    ns = request.getfixturevalue(sheet)
    assert all(float(err) < 1e-12 for err in ns["errors"].values()), ns["errors"]
    torch.testing.assert_close(ns["kernel"], ns["sobel_x"], atol=1e-4, rtol=0)
    assert ns["loss"] < 1e-10
