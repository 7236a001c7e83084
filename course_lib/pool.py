"""2-D max and average pooling from scratch, forward and backward, matching PyTorch.

Conventions follow ``torch.nn.functional.max_pool2d`` / ``avg_pool2d``. The input
``x`` has shape ``(N, C, H, W)`` (or ``(C, H, W)``, treated as ``N = 1``); each of
the ``N * C`` planes is pooled on its own. ``kernel_size``, ``stride`` and
``padding`` are an int or a pair ``(for H, for W)``; ``stride`` defaults to
``kernel_size`` and, as in PyTorch, ``padding`` may be at most half the kernel
(``padding <= kernel_size // 2``). The output has shape ``(N, C, H_out, W_out)``
with ``H_out = floor((H + 2*padding - kernel_size) / stride) + 1`` (the
convolution formula, :func:`course_lib.conv.conv_output_size`), likewise for W.

Not supported: ``ceil_mode=True`` and ``dilation != 1`` (a clear ValueError).
Each ``*_backward`` function returns ``dL/dx`` (shape of ``x``) for an upstream
gradient ``grad_out = dL/dy`` (shape of the output).
"""

from __future__ import annotations

from typing import Tuple, Union

import torch

from course_lib.conv import conv_output_size, pad2d
from course_lib.validate import ShapeError, expect, same_dtype

IntPair = Union[int, Tuple[int, int]]
Pair = Tuple[int, int]


# --- arguments ---------------------------------------------------------------------
def _pair(fn: str, name: str, value: IntPair, minimum: int) -> Pair:
    """An int or a pair of ints (each >= minimum) as a pair ``(for H, for W)``."""
    pair = tuple(value) if isinstance(value, (tuple, list)) else (value, value)
    if len(pair) != 2 or any(isinstance(v, bool) or not isinstance(v, int) or v < minimum for v in pair):
        raise ValueError(f"{fn}: {name} should be an int >= {minimum} or a pair of them, got {value!r}")
    return pair  # type: ignore[return-value]


def _plane_input(fn: str, x: torch.Tensor) -> torch.Tensor:
    """Check ``x`` and return it as (N, C, H, W) (a (C, H, W) input gets N = 1)."""
    expect(fn, "x", x, floating=True)
    if x.dim() not in (3, 4):
        raise ShapeError(f"{fn}: x should have 4 dimensions (N, C, H, W) or 3 (C, H, W), got {x.dim()}: shape {tuple(x.shape)}")
    if x.numel() == 0:
        raise ShapeError(f"{fn}: x should not be empty, got shape {tuple(x.shape)}")
    return x if x.dim() == 4 else x.unsqueeze(0)


def pool_geometry(fn: str, x: torch.Tensor, kernel_size: IntPair, stride: IntPair | None, padding: IntPair,
                  ceil_mode: bool = False, dilation: IntPair = 1) -> Tuple[Pair, Pair, Pair, Pair]:
    """Validate the pooling arguments for ``x`` (N, C, H, W); return
    ``(kernel, stride, padding, (H_out, W_out))``, each a pair (for H, for W)."""
    if ceil_mode:
        raise ValueError(f"{fn}: ceil_mode=True is not supported here (only floor, PyTorch's default), got ceil_mode={ceil_mode!r}")
    if _pair(fn, "dilation", dilation, 1) != (1, 1):
        raise ValueError(f"{fn}: dilation is not supported here (only dilation=1), got dilation={dilation!r}")
    k = _pair(fn, "kernel_size", kernel_size, 1)
    s = k if stride is None else _pair(fn, "stride", stride, 1)
    p = _pair(fn, "padding", padding, 0)
    if p[0] > k[0] // 2 or p[1] > k[1] // 2:
        raise ValueError(f"{fn}: padding should be at most half the kernel size (padding <= kernel_size // 2), "
                         f"got padding={p} for kernel_size={k}")
    H, W = x.shape[-2:]
    if H + 2 * p[0] < k[0] or W + 2 * p[1] < k[1]:
        raise ValueError(f"{fn}: kernel_size {k} is larger than the padded input (H + 2*padding, W + 2*padding) = "
                         f"({H + 2 * p[0]}, {W + 2 * p[1]}) for x of shape {tuple(x.shape)}")
    out = (conv_output_size(H, k[0], s[0], p[0]), conv_output_size(W, k[1], s[1], p[1]))
    return k, s, p, out


def _check_grad_out(fn: str, grad_out: torch.Tensor, x: torch.Tensor, x4: torch.Tensor, out: Pair) -> torch.Tensor:
    """``grad_out`` must have the output's shape (3-D for a 3-D x); return it as 4-D."""
    N, C = x4.shape[:2]
    spec = (C, *out) if x.dim() == 3 else (N, C, *out)
    expect(fn, "grad_out", grad_out, spec, floating=True)
    same_dtype(fn, grad_out=grad_out, x=x)
    return grad_out if x.dim() == 4 else grad_out.unsqueeze(0)


# --- windows -----------------------------------------------------------------------
def windows(x: torch.Tensor, kernel: Pair, stride: Pair, padding: Pair, value: float) -> torch.Tensor:
    """All pooling windows of x (N, C, H, W) padded with ``value``:
    (N, C, H_out, W_out, k_h, k_w), window (i, j) starting at padded row i*s_h, column j*s_w.
    ``Tensor.unfold`` returns a view of the padded planes: overlapping windows share memory."""
    xp = pad2d(x, padding, value)
    return xp.unfold(2, kernel[0], stride[0]).unfold(3, kernel[1], stride[1])


# --- max pooling -------------------------------------------------------------------
def max_pool2d(x: torch.Tensor, kernel_size: IntPair, stride: IntPair | None = None, padding: IntPair = 0,
               return_indices: bool = False, *, ceil_mode: bool = False,
               dilation: IntPair = 1) -> torch.Tensor | Tuple[torch.Tensor, torch.Tensor]:
    """Max pooling: the largest value of each window (padding counts as -inf).

    x: (N, C, H, W) or (C, H, W) -> y: (N, C, H_out, W_out) (or (C, H_out, W_out)).
    With ``return_indices=True`` also the position of each maximum as PyTorch gives
    it, a flat index ``row * W + column`` into the input plane (int64, y's shape).
    Ties go to the first maximum in row-major window order, as in PyTorch. A window
    holding NaN gives NaN and, as in PyTorch, the index of its *last* NaN (PyTorch's loop
    takes every NaN it meets as the new maximum); a window of -inf points at its first element.
    """
    fn = "max_pool2d"
    x4 = _plane_input(fn, x)
    k, s, p, (Ho, Wo) = pool_geometry(fn, x4, kernel_size, stride, padding, ceil_mode, dilation)
    win = windows(x4, k, s, p, float("-inf")).flatten(-2)  # (N, C, H_out, W_out, k_h * k_w)
    y = win.amax(dim=-1)  # (N, C, H_out, W_out)
    if not return_indices:
        return y.reshape(x.shape[:-2] + y.shape[-2:])
    # place a * k_w + b of the maximum in its window: the first real (non-padding) element,
    # in row-major order, that equals the maximum; in a window with NaN, the last NaN
    real = windows(torch.ones(1, 1, *x4.shape[-2:]), k, s, p, 0.0).flatten(-2).to(x.device) > 0
    is_max = win == y.unsqueeze(-1)
    pos = (is_max & real).to(torch.uint8).argmax(dim=-1)  # argmax returns the first of equal values
    nan = win.isnan()  # (padding is -inf, never NaN)
    last_nan = nan.shape[-1] - 1 - nan.flip(-1).to(torch.uint8).argmax(dim=-1)
    pos = torch.where(nan.any(dim=-1), last_nan, pos)
    rows = torch.arange(Ho, device=x.device).view(Ho, 1) * s[0] - p[0] + pos // k[1]  # input row of the max
    cols = torch.arange(Wo, device=x.device).view(1, Wo) * s[1] - p[1] + pos % k[1]  # input column
    indices = rows * x4.shape[-1] + cols  # flat index into the H x W plane
    return y.reshape(x.shape[:-2] + y.shape[-2:]), indices.reshape(x.shape[:-2] + y.shape[-2:])


def max_pool2d_backward(grad_out: torch.Tensor, x: torch.Tensor, kernel_size: IntPair, stride: IntPair | None = None,
                        padding: IntPair = 0, *, ceil_mode: bool = False, dilation: IntPair = 1) -> torch.Tensor:
    """Gradient of max pooling: each window's upstream gradient goes to its (first)
    maximum; an element that is the maximum of several windows receives the sum.

    grad_out: (N, C, H_out, W_out), x: (N, C, H, W) -> dL/dx: (N, C, H, W)
    (3-D grad_out and x work too).
    """
    fn = "max_pool2d_backward"
    x4 = _plane_input(fn, x)
    _, _, _, out = pool_geometry(fn, x4, kernel_size, stride, padding, ceil_mode, dilation)
    g4 = _check_grad_out(fn, grad_out, x, x4, out)
    _, indices = max_pool2d(x4, kernel_size, stride, padding, return_indices=True)
    N, C, H, W = x4.shape
    grad = torch.zeros(N, C, H * W, dtype=x.dtype, device=x.device)
    grad.scatter_add_(2, indices.reshape(N, C, -1), g4.reshape(N, C, -1))  # grad[n, c, idx] += g
    return grad.reshape(x.shape)


# --- average pooling ---------------------------------------------------------------
def _divisors(x4: torch.Tensor, k: Pair, s: Pair, p: Pair, count_include_pad: bool) -> torch.Tensor | float:
    """What each window's sum is divided by: k_h * k_w, or (count_include_pad=False)
    the number of real, non-padding elements in the window, (H_out, W_out)."""
    if count_include_pad:
        return float(k[0] * k[1])
    ones = torch.ones(1, 1, *x4.shape[-2:], dtype=x4.dtype, device=x4.device)
    return windows(ones, k, s, p, 0.0).sum(dim=(-2, -1))[0, 0]


def avg_pool2d(x: torch.Tensor, kernel_size: IntPair, stride: IntPair | None = None, padding: IntPair = 0,
               count_include_pad: bool = True, *, ceil_mode: bool = False, dilation: IntPair = 1) -> torch.Tensor:
    """Average pooling: the mean of each window (padding counts as 0).

    x: (N, C, H, W) or (C, H, W) -> y: (N, C, H_out, W_out) (or (C, H_out, W_out)).
    The window sum is divided by k_h * k_w (``count_include_pad=True``, PyTorch's
    default) or by the number of non-padding elements in the window.
    """
    fn = "avg_pool2d"
    x4 = _plane_input(fn, x)
    k, s, p, _ = pool_geometry(fn, x4, kernel_size, stride, padding, ceil_mode, dilation)
    y = windows(x4, k, s, p, 0.0).sum(dim=(-2, -1)) / _divisors(x4, k, s, p, count_include_pad)
    return y.reshape(x.shape[:-2] + y.shape[-2:])  # (C, H_out, W_out) for a 3-D x


def avg_pool2d_backward(grad_out: torch.Tensor, x: torch.Tensor, kernel_size: IntPair, stride: IntPair | None = None,
                        padding: IntPair = 0, count_include_pad: bool = True, *, ceil_mode: bool = False,
                        dilation: IntPair = 1) -> torch.Tensor:
    """Gradient of average pooling: each window's upstream gradient, divided by the
    window's divisor, is added to every element of the window; padding is cut off.

    grad_out: (N, C, H_out, W_out), x: (N, C, H, W) -> dL/dx: (N, C, H, W)
    (3-D grad_out and x work too). Only x's shape is used, not its values.
    """
    fn = "avg_pool2d_backward"
    x4 = _plane_input(fn, x)
    k, s, p, (Ho, Wo) = pool_geometry(fn, x4, kernel_size, stride, padding, ceil_mode, dilation)
    g4 = _check_grad_out(fn, grad_out, x, x4, (Ho, Wo)) / _divisors(x4, k, s, p, count_include_pad)
    N, C, H, W = x4.shape
    grad = torch.zeros(N, C, H + 2 * p[0], W + 2 * p[1], dtype=x.dtype, device=x.device)
    for a in range(k[0]):  # window offset (a, b): output cell (i, j) reads padded (i*s_h + a, j*s_w + b)
        for b in range(k[1]):
            grad[:, :, a:a + s[0] * (Ho - 1) + 1:s[0], b:b + s[1] * (Wo - 1) + 1:s[1]] += g4
    return grad[:, :, p[0]:p[0] + H, p[1]:p[1] + W].reshape(x.shape)


def global_avg_pool2d(x: torch.Tensor) -> torch.Tensor:
    """Global average pooling: the mean of each whole plane, x (N, C, H, W) -> (N, C).
    The same as ``avg_pool2d(x, (H, W))`` reshaped to (N, C)."""
    expect("global_avg_pool2d", "x", x, ("N", "C", "H", "W"), floating=True)
    return x.mean(dim=(-2, -1))
