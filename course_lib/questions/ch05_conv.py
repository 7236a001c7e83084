"""Questions of sheet 05_convolution: output size, conv2d with loops, im2col, the two gradients."""

from __future__ import annotations

from typing import Any, Callable, List, Optional, Tuple

import torch

from course_lib import conv
from course_lib.questions import Case, Question, randn

SHEET = "05_convolution"
F64 = torch.float64


def _int(gen: torch.Generator, lo: int, hi: int) -> int:
    """A random int in [lo, hi]."""
    return int(torch.randint(lo, hi + 1, (1,), generator=gen))


def _random_conv(gen: torch.Generator, strided: bool = True) -> Tuple[int, int, int, Tuple[int, int], Tuple[int, int], int, int]:
    """Random small sizes that fit: (N, C_in, C_out, (H, W), (kH, kW), stride, padding)."""
    n, c_in, c_out = _int(gen, 1, 3), _int(gen, 1, 3), _int(gen, 1, 3)
    kernel = (_int(gen, 1, 3), _int(gen, 1, 3))
    stride = _int(gen, 1, 3) if strided else 1
    padding = _int(gen, 0, 2)
    hw = tuple(max(1, k - 2 * padding) + _int(gen, 0, 5) for k in kernel)
    return n, c_in, c_out, hw, kernel, stride, padding  # type: ignore[return-value]


# --- 05.1 output size ---------------------------------------------------------------------
def _size_call(func: Callable[..., Any], case: Case) -> float:
    """The student's size as a float, so that 14 and 14.0 count alike (14.5 does not)."""
    return float(func(*case.args, **case.kwargs))


def _size_cases(gen: torch.Generator, hidden: bool) -> List[Case]:
    cases = [
        Case("28x28 input, 3x3 kernel, padding 1 (the size is kept)", (28, 3), {"stride": 1, "padding": 1, "dilation": 1}),
        Case("2x2 window, stride 2 (halves the size)", (28, 2), {"stride": 2, "padding": 0, "dilation": 1}),
        Case("stride 2 with a remainder: size 8, kernel 3", (8, 3), {"stride": 2, "padding": 0, "dilation": 1}),
        Case("dilation 2: the kernel spans 5 pixels", (10, 3), {"stride": 1, "padding": 0, "dilation": 2}),
        Case("kernel as large as the input", (5, 5), {"stride": 1, "padding": 0, "dilation": 1}),
        Case("all at once: size 11, kernel 3, stride 3, padding 2, dilation 2", (11, 3), {"stride": 3, "padding": 2, "dilation": 2}),
        Case("1x1 kernel, defaults for stride, padding and dilation", (6, 1), {}),
    ]
    if hidden:
        while len(cases) < 17:
            k, s, p, d = _int(gen, 1, 7), _int(gen, 1, 4), _int(gen, 0, 3), _int(gen, 1, 3)
            size = max(1, d * (k - 1) + 1 - 2 * p) + _int(gen, 0, 30)
            cases.append(Case(f"size {size}, kernel {k}, stride {s}, padding {p}, dilation {d}", (size, k),
                              {"stride": s, "padding": p, "dilation": d}))
    return cases


# --- 05.2 conv2d with loops ----------------------------------------------------------------
def _conv_case(gen: torch.Generator, label: str, n: int, c_in: int, c_out: int, hw: Tuple[int, int],
               kernel: Tuple[int, int], stride: int, padding: int, bias: bool = True) -> Case:
    x, w = randn(gen, n, c_in, *hw), randn(gen, c_out, c_in, *kernel)
    b: Optional[torch.Tensor] = randn(gen, c_out) if bias else None
    return Case(label, (x, w, b), {"stride": stride, "padding": padding})


def _conv2d_cases(gen: torch.Generator, hidden: bool) -> List[Case]:
    cases = [
        _conv_case(gen, "one 1-channel 5x5 image, 3x3 kernel, no bias", 1, 1, 1, (5, 5), (3, 3), 1, 0, bias=False),
        _conv_case(gen, "batch of 2, 3 channels in, 4 out, with bias", 2, 3, 4, (5, 6), (3, 3), 1, 0),
        _conv_case(gen, "padding=1 (zeros around the image)", 1, 2, 2, (4, 4), (3, 3), 1, 1),
        _conv_case(gen, "stride=2 on a 6x6 input (the last row is left over)", 2, 1, 3, (6, 6), (3, 3), 2, 0),
        _conv_case(gen, "stride=2 and padding=1, 2x3 kernel, 5x7 input", 1, 2, 3, (5, 7), (2, 3), 2, 1),
        _conv_case(gen, "1x1 kernel (mixes the channels only)", 2, 3, 2, (3, 4), (1, 1), 1, 0),
        _conv_case(gen, "kernel as large as the input: a 1x1 output", 3, 2, 2, (3, 3), (3, 3), 1, 0),
    ]
    if hidden:
        for i in range(10):
            n, c_in, c_out, hw, kernel, stride, padding = _random_conv(gen)
            cases.append(_conv_case(gen, f"random #{i + 1}", n, c_in, c_out, hw, kernel, stride, padding, bias=i % 3 != 0))
    return cases


# --- 05.3 im2col ----------------------------------------------------------------------------
def _im2col_case(gen: torch.Generator, label: str, n: int, c: int, hw: Tuple[int, int], kernel: Tuple[int, int],
                 stride: int, padding: int) -> Case:
    return Case(label, (randn(gen, n, c, *hw), kernel), {"stride": stride, "padding": padding})


def _im2col_cases(gen: torch.Generator, hidden: bool) -> List[Case]:
    cases = [
        _im2col_case(gen, "one channel 4x4, 2x2 kernel", 1, 1, (4, 4), (2, 2), 1, 0),
        _im2col_case(gen, "3 channels (rows ordered by channel, then u, then v)", 1, 3, (4, 5), (2, 2), 1, 0),
        _im2col_case(gen, "batch of 2, padding 1", 2, 2, (3, 3), (3, 3), 1, 1),
        _im2col_case(gen, "stride 2", 1, 2, (5, 5), (3, 3), 2, 0),
        _im2col_case(gen, "2x3 kernel on a 5x6 input, stride 2, padding 1", 2, 2, (5, 6), (2, 3), 2, 1),
        _im2col_case(gen, "kernel as large as the input: one column", 2, 2, (3, 2), (3, 2), 1, 0),
    ]
    if hidden:
        for i in range(10):
            n, c, _, hw, kernel, stride, padding = _random_conv(gen)
            cases.append(_im2col_case(gen, f"random #{i + 1}", n, c, hw, kernel, stride, padding))
    return cases


# --- 05.4 gradient with respect to the weight ------------------------------------------------
def _grad_weight_case(gen: torch.Generator, label: str, n: int, c_in: int, c_out: int, hw: Tuple[int, int],
                      kernel: Tuple[int, int], stride: int, padding: int) -> Case:
    x = randn(gen, n, c_in, *hw)
    out = [conv.conv_output_size(h, k, stride, padding) for h, k in zip(hw, kernel)]
    return Case(label, (randn(gen, n, c_out, *out), x, kernel), {"stride": stride, "padding": padding})


def _grad_weight_cases(gen: torch.Generator, hidden: bool) -> List[Case]:
    cases = [
        _grad_weight_case(gen, "one sample, one channel, 3x3 kernel on 5x5", 1, 1, 1, (5, 5), (3, 3), 1, 0),
        _grad_weight_case(gen, "batch of 3 (sum over the batch)", 3, 1, 1, (4, 4), (2, 2), 1, 0),
        _grad_weight_case(gen, "2 channels in, 3 out, batch of 2", 2, 2, 3, (4, 5), (3, 3), 1, 0),
        _grad_weight_case(gen, "padding 1", 2, 2, 2, (4, 4), (3, 3), 1, 1),
        _grad_weight_case(gen, "stride 2 on a 6x6 input (a remainder row)", 2, 1, 2, (6, 6), (3, 3), 2, 0),
        _grad_weight_case(gen, "3x2 kernel, stride 2, padding 1", 2, 2, 1, (5, 4), (3, 2), 2, 1),
    ]
    if hidden:
        for i in range(10):
            n, c_in, c_out, hw, kernel, stride, padding = _random_conv(gen)
            cases.append(_grad_weight_case(gen, f"random #{i + 1}", n, c_in, c_out, hw, kernel, stride, padding))
    return cases


# --- 05.5 gradient with respect to the input --------------------------------------------------
def _grad_input_case(gen: torch.Generator, label: str, n: int, c_in: int, c_out: int, out: Tuple[int, int],
                     kernel: Tuple[int, int], padding: int) -> Case:
    return Case(label, (randn(gen, n, c_out, *out), randn(gen, c_out, c_in, *kernel)), {"padding": padding})


def _grad_input_cases(gen: torch.Generator, hidden: bool) -> List[Case]:
    cases = [
        _grad_input_case(gen, "one channel, 3x3 kernel, 3x3 grad_out (input 5x5)", 1, 1, 1, (3, 3), (3, 3), 0),
        _grad_input_case(gen, "2 channels in, 3 out", 1, 2, 3, (3, 4), (2, 2), 0),
        _grad_input_case(gen, "batch of 2, padding 1", 2, 2, 2, (4, 4), (3, 3), 1),
        _grad_input_case(gen, "2x3 kernel", 2, 1, 2, (3, 3), (2, 3), 0),
        _grad_input_case(gen, "1x1 kernel", 2, 3, 2, (2, 3), (1, 1), 0),
        _grad_input_case(gen, "padding 2 with a 3x3 kernel (input smaller than grad_out)", 1, 2, 1, (5, 5), (3, 3), 2),
    ]
    if hidden:
        for i in range(10):
            n, c_in, c_out, _, kernel, _, _ = _random_conv(gen, strided=False)
            padding = _int(gen, 0, min(kernel) - 1)
            out = (_int(gen, 1, 6), _int(gen, 1, 6))
            out = tuple(max(o, 2 * padding) for o in out)  # keep the input at least 1 pixel
            cases.append(_grad_input_case(gen, f"random #{i + 1}", n, c_in, c_out, out, kernel, padding))  # type: ignore[arg-type]
    return cases


QUESTIONS = [
    Question(
        id="05.1", sheet=SHEET, title="Output size of a convolution", func_name="conv_output_size", points=1,
        reference=conv.conv_output_size, make_cases=_size_cases, call=_size_call,
        hint="floor((size + 2*padding - dilation*(kernel_size - 1) - 1) / stride) + 1: the dilated kernel spans "
        "dilation*(kernel_size-1)+1 pixels, and the first window counts too (the + 1). Use // for the floor.",
    ),
    Question(
        id="05.2", sheet=SHEET, title="conv2d forward with loops", func_name="conv2d", points=2,
        reference=conv.conv2d, make_cases=_conv2d_cases,
        hint="Zero-pad x by `padding` on all four sides first. Output (i, j) reads the window starting at row "
        "stride*i, column stride*j; multiply it elementwise with the kernel as it is (deep learning does not "
        "flip it), sum over channels and kernel positions, add bias[o] unless bias is None.",
    ),
    Question(
        id="05.3", sheet=SHEET, title="im2col: receptive fields as columns", func_name="im2col", points=2,
        reference=conv.im2col, make_cases=_im2col_cases,
        hint="The result has shape (N, C*kH*kW, H_out*W_out), like F.unfold: column i*W_out + j is the window of "
        "output (i, j), flattened in the order (channel, row u, column v), i.e. window.reshape(N, -1).",
    ),
    Question(
        id="05.4", sheet=SHEET, title="Gradient of conv2d with respect to the weight", func_name="conv2d_grad_weight", points=2,
        reference=conv.conv2d_grad_weight, make_cases=_grad_weight_cases,
        hint="grad_w[o, c, u, v] = sum over n, i, j of grad_out[n, o, i, j] * x_padded[n, c, stride*i + u, stride*j + v]: "
        "sum over the whole batch, do not flip anything, and the result has the weight's shape (C_out, C_in, kH, kW).",
    ),
    Question(
        id="05.5", sheet=SHEET, title="Gradient of conv2d with respect to the input", func_name="conv2d_grad_input", points=2,
        reference=conv.conv2d_grad_input, make_cases=_grad_input_cases,
        hint="Every output (i, j) sends grad_out[n, o, i, j] * weight[o, c, u, v] back to x_padded[n, c, i + u, j + v]; "
        "accumulate that (or convolve the zero-padded grad_out with the kernel flipped in both axes and its two channel "
        "axes swapped), then cut `padding` pixels off every side. Input size: H_out + kH - 1 - 2*padding.",
    ),
]
