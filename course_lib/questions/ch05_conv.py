"""Questions of sheet 05_convolution: output size, conv2d with loops, im2col, the two gradients (the
input gradient with stride), each with its typical mistakes (misconceptions) and hint tiers."""

from __future__ import annotations

from typing import Any, Callable, List, Optional, Tuple

import torch
import torch.nn.functional as F

from course_lib import conv
from course_lib.questions import Case, Misconception, Question, randn

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
        Case("28x28 input, 5x5 kernel, padding 2 (the size is kept)", (28, 5), {"stride": 1, "padding": 2, "dilation": 1}),
        Case("2x2 window, stride 2 (halves the size)", (28, 2), {"stride": 2, "padding": 0, "dilation": 1}),
        Case("stride 2 with a remainder: size 8, kernel 3", (8, 3), {"stride": 2, "padding": 0, "dilation": 1}),
        Case("dilation 3: a 3-tap kernel with gaps of 3 pixels", (12, 3), {"stride": 1, "padding": 0, "dilation": 3}),
        Case("kernel as large as the input", (5, 5), {"stride": 1, "padding": 0, "dilation": 1}),
        Case("all at once: size 11, kernel 3, stride 3, padding 2, dilation 2", (11, 3), {"stride": 3, "padding": 2, "dilation": 2}),
        Case("1x1 kernel, defaults for stride, padding and dilation", (6, 1), {}),
    ]
    if hidden:
        cases += [
            Case("28x28 input, 3x3 kernel, padding 1", (28, 3), {"stride": 1, "padding": 1, "dilation": 1}),
            Case("dilation 2 and stride 2", (10, 3), {"stride": 2, "padding": 0, "dilation": 2}),
        ]
        while len(cases) < 19:
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


# --- 05.5 gradient with respect to the input, with stride ----------------------------------------
def _grad_input_case(gen: torch.Generator, label: str, n: int, c_in: int, c_out: int, hw: Tuple[int, int],
                     kernel: Tuple[int, int], stride: int, padding: int) -> Case:
    out = [conv.conv_output_size(h, k, stride, padding) for h, k in zip(hw, kernel)]
    return Case(label, (randn(gen, n, c_out, *out), randn(gen, c_out, c_in, *kernel), hw),
                {"stride": stride, "padding": padding})


def _grad_input_cases(gen: torch.Generator, hidden: bool) -> List[Case]:
    cases = [
        _grad_input_case(gen, "one channel, 3x3 kernel on a 5x5 input, stride 1", 1, 1, 1, (5, 5), (3, 3), 1, 0),
        _grad_input_case(gen, "2 channels in, 3 out, 2x2 kernel, stride 1", 1, 2, 3, (4, 5), (2, 2), 1, 0),
        _grad_input_case(gen, "batch of 2, padding 1, stride 1", 2, 2, 2, (4, 4), (3, 3), 1, 1),
        _grad_input_case(gen, "stride 2, 3x3 kernel on 7x7: neighbouring windows share a row", 1, 2, 2, (7, 7), (3, 3), 2, 0),
        _grad_input_case(gen, "stride 2 on a 6x6 input: the last row and column are never read", 2, 1, 2, (6, 6), (3, 3), 2, 0),
        _grad_input_case(gen, "stride 3 > kernel 2, padding 1, 8x7 input", 1, 2, 1, (8, 7), (2, 2), 3, 1),
        _grad_input_case(gen, "stride 2, padding 1, 2x3 kernel, 5x6 input", 2, 2, 3, (5, 6), (2, 3), 2, 1),
    ]
    if hidden:
        cases += [
            _grad_input_case(gen, "stride 2, padding 2, 3x3 kernel, 9x8 input", 1, 1, 2, (9, 8), (3, 3), 2, 2),
            _grad_input_case(gen, "stride 3, 3x2 kernel, 10x11 input", 2, 2, 2, (10, 11), (3, 2), 3, 0),
        ]
        for i in range(10):
            n, c_in, c_out, hw, kernel, stride, padding = _random_conv(gen)
            cases.append(_grad_input_case(gen, f"random #{i + 1}", n, c_in, c_out, hw, kernel, stride, padding))
    return cases


# --- typical mistakes, each computing the wrong variant with the reference's signature ----------
def _size_missing_plus_one(size, kernel_size, stride=1, padding=0, dilation=1):
    return (size + 2 * padding - dilation * (kernel_size - 1) - 1) // stride


def _size_dilation_ignored(size, kernel_size, stride=1, padding=0, dilation=1):
    return (size + 2 * padding - kernel_size) // stride + 1


def _size_span_dk(size, kernel_size, stride=1, padding=0, dilation=1):
    return (size + 2 * padding - dilation * kernel_size) // stride + 1


def _size_ceil(size, kernel_size, stride=1, padding=0, dilation=1):
    return -(-(size + 2 * padding - dilation * (kernel_size - 1) - 1) // stride) + 1


def _size_one_side(size, kernel_size, stride=1, padding=0, dilation=1):
    return (size + padding - dilation * (kernel_size - 1) - 1) // stride + 1


def _conv2d_flipped(x, weight, bias=None, stride=1, padding=0):
    return F.conv2d(x, weight.flip(2, 3), bias, stride=stride, padding=padding)


def _conv2d_no_padding(x, weight, bias=None, stride=1, padding=0):
    return F.conv2d(x, weight, bias, stride=stride)


def _conv2d_no_stride(x, weight, bias=None, stride=1, padding=0):
    return F.conv2d(x, weight, bias, padding=padding)


def _conv2d_no_bias(x, weight, bias=None, stride=1, padding=0):
    return F.conv2d(x, weight, None, stride=stride, padding=padding)


def _patches(x: torch.Tensor, kernel_size, stride: int, padding: int) -> torch.Tensor:
    """(N, C, H_out, W_out, kH, kW): every window of the zero-padded x."""
    kH, kW = kernel_size
    return F.pad(x, (padding,) * 4).unfold(2, kH, stride).unfold(3, kW, stride)


def _im2col_permuted(order: Tuple[int, ...], transposed: bool = False) -> Callable[..., torch.Tensor]:
    """im2col whose axes (N, C, H_out, W_out, kH, kW) are arranged in ``order`` before flattening."""
    def im2col(x, kernel_size, stride=1, padding=0):
        p = _patches(x, kernel_size, stride, padding)
        n, c, h_out, w_out, kH, kW = p.shape
        rows, cols = (h_out * w_out, c * kH * kW) if transposed else (c * kH * kW, h_out * w_out)
        return p.permute(*order).reshape(n, rows, cols)
    return im2col


def _xp(x: torch.Tensor, padding: int, top_left: bool = False) -> torch.Tensor:
    """x zero-padded by ``padding`` on all sides (``top_left``: the 2p zeros all after the image)."""
    p = padding
    return F.pad(x, (0, 2 * p, 0, 2 * p) if top_left else (p, p, p, p))


def _grad_weight_from(grad_out, xp, kernel_size, stride, step=None):
    """sum over n, i, j of grad_out[n, o, i, j] * window (i, j) of xp, windows starting at ``step``*i."""
    s = stride if step is None else step
    kH, kW = kernel_size
    H_out, W_out = grad_out.shape[2:]
    win = xp.unfold(2, kH, s).unfold(3, kW, s)[:, :, :H_out, :W_out]  # (N, C_in, H_out, W_out, kH, kW)
    return torch.einsum("noij,ncijuv->ocuv", grad_out, win)


def _gw_sample0(grad_out, x, kernel_size, stride=1, padding=0):
    return _grad_weight_from(grad_out[:1], _xp(x[:1], padding), kernel_size, stride)


def _gw_mean(grad_out, x, kernel_size, stride=1, padding=0):
    return _grad_weight_from(grad_out, _xp(x, padding), kernel_size, stride) / x.shape[0]


def _gw_flipped(grad_out, x, kernel_size, stride=1, padding=0):
    return _grad_weight_from(grad_out, _xp(x, padding), kernel_size, stride).flip(2, 3)


def _gw_no_stride(grad_out, x, kernel_size, stride=1, padding=0):
    return _grad_weight_from(grad_out, _xp(x, padding), kernel_size, stride, step=1)


def _gw_pad_after(grad_out, x, kernel_size, stride=1, padding=0):
    return _grad_weight_from(grad_out, _xp(x, padding, top_left=True), kernel_size, stride)


def _grad_input_padded(grad_out, weight, input_size, stride, padding, step=None):
    """The gradient for the padded input, (N, C_in, H + 2p, W + 2p), windows starting at ``step``*i."""
    s = stride if step is None else step
    H, W = input_size
    N, _, H_out, W_out = grad_out.shape
    _, C_in, kH, kW = weight.shape
    grad = grad_out.new_zeros(N, C_in, H + 2 * padding, W + 2 * padding)
    for i in range(H_out):
        for j in range(W_out):
            grad[:, :, s * i:s * i + kH, s * j:s * j + kW] += torch.einsum("no,ocuv->ncuv", grad_out[:, :, i, j], weight)
    return grad


def _crop(grad_xp: torch.Tensor, input_size, padding: int) -> torch.Tensor:
    H, W = input_size
    return grad_xp[:, :, padding:padding + H, padding:padding + W]


def _gi_no_stride(grad_out, weight, input_size, stride=1, padding=0):
    return _crop(_grad_input_padded(grad_out, weight, input_size, stride, padding, step=1), input_size, padding)


def _gi_not_flipped(grad_out, weight, input_size, stride=1, padding=0):
    """Correlate the stride-dilated, fully padded grad_out with the kernel as it is (not reversed)."""
    _, _, kH, kW = weight.shape
    H_out, W_out = grad_out.shape[2:]
    g = grad_out.new_zeros(*grad_out.shape[:2], stride * (H_out - 1) + 1, stride * (W_out - 1) + 1)
    g[:, :, ::stride, ::stride] = grad_out
    full = F.conv2d(F.pad(g, (kW - 1, kW - 1, kH - 1, kH - 1)), weight.transpose(0, 1))
    H, W = input_size
    full = F.pad(full, (0, W + 2 * padding - full.shape[3], 0, H + 2 * padding - full.shape[2]))
    return _crop(full, input_size, padding)


def _gi_padding_kept(grad_out, weight, input_size, stride=1, padding=0):
    return _grad_input_padded(grad_out, weight, input_size, stride, padding)


def _gi_one_side(grad_out, weight, input_size, stride=1, padding=0):
    return _grad_input_padded(grad_out, weight, input_size, stride, padding)[:, :, 2 * padding:, 2 * padding:]


def _gi_size_from_grad_out(grad_out, weight, input_size, stride=1, padding=0):
    size = tuple(stride * (o - 1) + k - 2 * padding for o, k in zip(grad_out.shape[2:], weight.shape[2:]))
    return conv.conv2d_grad_input(grad_out, weight, size, stride=stride, padding=padding)


def _conv2d_grad_input(grad_out: torch.Tensor, weight: torch.Tensor, input_size: Tuple[int, int], stride: int = 1,
                       padding: int = 0) -> torch.Tensor:
    """The reference of 05.5: :func:`course_lib.conv.conv2d_grad_input` with the sheet's signature
    (grad_out (N, C_out, H_out, W_out), weight (C_out, C_in, kH, kW), input_size (H, W) -> (N, C_in, H, W))."""
    return conv.conv2d_grad_input(grad_out, weight, input_size, stride=stride, padding=padding)


WHY_STRIDE = ("The stride is how far the window moves between neighbouring outputs: output (i, j) reads the window "
              "that starts s*i rows and s*j columns into the padded input, not i and j.")

QUESTIONS = [
    Question(
        id="05.1", sheet=SHEET, title="Output size of a convolution", func_name="conv_output_size", points=1,
        reference=conv.conv_output_size, make_cases=_size_cases, call=_size_call, kind="derive",
        hints=(
            "Count the positions where the window can start: the first at 0, then every `stride` pixels, as long as "
            "the kernel's last tap still falls inside the padded input.",
            "Three lengths decide it: the padded input (the input plus padding at both ends), the pixels the dilated "
            "kernel covers from its first tap to its last (k taps have k - 1 gaps of `dilation` pixels), and the step.",
            "The last valid start is the padded length minus the covered length; integer division by the stride "
            "counts the moves after the first position, and the first position counts too.",
        ),
        misconceptions=(
            Misconception("missing + 1", "Counting window positions is a fencepost count: the distance the window "
                          "can travel divided by the step counts the moves, and the starting position comes on top.",
                          _size_missing_plus_one),
            Misconception("dilation ignored", "With dilation the taps are spread apart, so the kernel covers more "
                          "pixels than it has taps and fits in fewer positions.", _size_dilation_ignored),
            Misconception("span counted as dilation * kernel_size", "k taps have only k - 1 gaps between them, so a "
                          "dilated kernel covers fewer pixels than dilation times its number of taps.", _size_span_dk),
            Misconception("ceil instead of floor", "A window that would stick out of the padded input is not computed "
                          "at all: the leftover pixels at the end are never read, so the count rounds down.", _size_ceil),
            Misconception("padding on one side only", "Padding adds its zeros at both ends of the axis, so the padded "
                          "input is longer by twice the padding.", _size_one_side),
        ),
    ),
    Question(
        id="05.2", sheet=SHEET, title="conv2d forward with loops", func_name="conv2d", points=2,
        reference=conv.conv2d, make_cases=_conv2d_cases,
        hints=(
            "Every output value is the weighted sum of one window of the zero-padded input, over all input channels, "
            "with the weights of one output channel, plus that channel's bias.",
            "Pad x to (N, C_in, H + 2p, W + 2p). The window of output (i, j) is (N, C_in, kH, kW) and starts at row "
            "stride*i, column stride*j; one output channel's kernel weight[o] is (C_in, kH, kW).",
            "Multiply the window by weight[o] elementwise (the kernel as stored, not flipped) and sum over the last "
            "three axes; that fills y[:, o, i, j] for the whole batch at once. Add the bias, shaped to broadcast over "
            "(N, C_out, H_out, W_out), only when it is not None.",
        ),
        misconceptions=(
            Misconception("flipped kernel (a true convolution)", "Deep-learning convolution layers compute a "
                          "cross-correlation: the kernel is laid over the window as it is stored. Flipping it gives "
                          "the mathematical convolution, a different result for a kernel that is not symmetric.",
                          _conv2d_flipped),
            Misconception("padding ignored", "Padding is part of the layer: the zeros around the image give windows "
                          "near the border, which changes both the output size and the border values.",
                          _conv2d_no_padding),
            Misconception("stride ignored", WHY_STRIDE + " A larger stride also gives fewer outputs.", _conv2d_no_stride),
            Misconception("bias ignored", "Each output channel has its own learned offset, added at every position; "
                          "a layer without it is a different layer.", _conv2d_no_bias),
        ),
    ),
    Question(
        id="05.3", sheet=SHEET, title="im2col: receptive fields as columns", func_name="im2col", points=2,
        reference=conv.im2col, make_cases=_im2col_cases,
        hints=(
            "Each receptive field (one window, all channels) becomes one column, so that the convolution turns into "
            "one product of the flattened weights (C_out, C_in*kH*kW) with this matrix.",
            "Pad first. For output (i, j) the window is (N, C, kH, kW); flattened per sample it has C*kH*kW entries. "
            "Output positions go in row-major order, so the column index is i*W_out + j.",
            "Collect the H_out*W_out flattened windows, each (N, C*kH*kW), in a list in row-major order and stack "
            "them along a new last axis.",
        ),
        misconceptions=(
            Misconception("layout transposed: (N, L, C*kH*kW)", "The layout is fixed by the product that follows: the "
                          "flattened weights (C_out, C*kH*kW) multiply from the left, so every receptive field must be a "
                          "column, not a row.", _im2col_permuted((0, 2, 3, 1, 4, 5), transposed=True)),
            Misconception("rows ordered (u, v, c) instead of (c, u, v)", "The rows must follow the order in which a "
                          "weight (C_out, C_in, kH, kW) flattens: channel slowest, then kernel row, then kernel column; "
                          "any other order pairs weights with the wrong pixels.", _im2col_permuted((0, 4, 5, 1, 2, 3))),
            Misconception("kernel rows and columns swapped (v before u)", "Within a channel the window flattens row by "
                          "row, like a (kH, kW) block in memory; reading it column by column pairs the weights with "
                          "the wrong pixels.", _im2col_permuted((0, 1, 5, 4, 2, 3))),
            Misconception("columns ordered column-major over the output (j before i)", "The product is reshaped into "
                          "the (H_out, W_out) map row by row, so the columns must run along a row of outputs first; "
                          "going down the columns first transposes the map.", _im2col_permuted((0, 1, 4, 5, 3, 2))),
        ),
    ),
    Question(
        id="05.4", sheet=SHEET, title="Gradient of conv2d with respect to the weight", func_name="conv2d_grad_weight",
        points=2, reference=conv.conv2d_grad_weight, make_cases=_grad_weight_cases, kind="derive",
        hints=(
            "Ask which outputs a single weight W[o, c, u, v] touched: it multiplied one pixel in every window, for "
            "every sample and every output position of channel o. The chain rule adds up all those paths.",
            "The result has the weight's shape (C_out, C_in, kH, kW). For output (i, j), grad_out[:, :, i, j] is "
            "(N, C_out) and its window of the padded x is (N, C_in, kH, kW), starting at stride*i, stride*j.",
            "For each (i, j), an outer product over the channel axes of those two tensors, summed over the batch "
            "axis, is that position's (C_out, C_in, kH, kW) contribution; accumulate it with +=.",
        ),
        misconceptions=(
            Misconception("no sum over the batch (sample 0 only)", "The same weights are used for every sample, so "
                          "every sample's contribution to the loss adds to their gradient.", _gw_sample0),
            Misconception("mean over the batch instead of the sum", "Any averaging over the batch already happened in "
                          "the loss and is inside grad_out; the chain rule only adds contributions, it does not divide "
                          "again.", _gw_mean),
            Misconception("flipped (a convolution instead of a correlation)", "Weight tap (u, v) multiplied the pixel "
                          "at offset (u, v) of every window, so its gradient collects those same pixels in the same "
                          "orientation.", _gw_flipped),
            Misconception("stride ignored", WHY_STRIDE + " The gradient must use the pixels each output actually "
                          "read.", _gw_no_stride),
            Misconception("padding only after the image", "Padding puts zeros before the first row and column as well "
                          "as after the last, so the image starts `padding` pixels into the padded input and every tap "
                          "meets the pixel that lies that far in.", _gw_pad_after),
        ),
    ),
    Question(
        id="05.5", sheet=SHEET, title="Gradient of conv2d with respect to the input, with stride",
        func_name="conv2d_grad_input", points=3, reference=_conv2d_grad_input, make_cases=_grad_input_cases,
        kind="derive",
        hints=(
            "Follow each output backwards: it was computed from one window of the padded input, so its upstream "
            "gradient, times each weight, flows back to exactly the pixels that window read. A pixel read by several "
            "windows collects the sum.",
            "Accumulate into a buffer shaped like the padded input, (N, C_in, H + 2p, W + 2p), with (H, W) taken from "
            "input_size: with a stride, several input sizes give the same output size. The window of output (i, j) "
            "starts at row stride*i, column stride*j. Drop the padding at the end.",
            "For each (i, j): grad_out[:, :, i, j] is (N, C_out) and weight is (C_out, C_in, kH, kW); broadcast them "
            "against each other, sum over the C_out axis and add (+=) the (N, C_in, kH, kW) block at that window.",
        ),
        misconceptions=(
            Misconception("stride ignored", WHY_STRIDE + " Its gradient must go back to the pixels it read.",
                          _gi_no_stride),
            Misconception("kernel not flipped", "Output i reaches input i + u through tap u, so seen from an input "
                          "pixel, tap u points back to an earlier output: gathering the gradient per input pixel runs "
                          "over the kernel in reverse order.", _gi_not_flipped),
            Misconception("padding not removed", "The padding zeros are constants the layer creates, not inputs: their "
                          "gradient goes nowhere, and the result must have the input's shape.", _gi_padding_kept),
            Misconception("padding removed from one side only", "The padding surrounds the image on all four sides, so "
                          "the input's pixels sit in the middle of the padded buffer, not in its bottom-right corner.",
                          _gi_one_side),
            Misconception("input size recomputed from grad_out", "With a stride, rows and columns left over at the end "
                          "are never read by any window; they are still part of the input, with gradient zero, so the "
                          "input's size cannot be recovered from the output's.", _gi_size_from_grad_out),
        ),
    ),
]
