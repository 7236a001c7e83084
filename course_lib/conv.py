"""2-D convolution from scratch: output size, naive loops, im2col, backward pass.

Conventions follow PyTorch's ``F.conv2d`` (which, like every deep-learning
library, computes a *cross-correlation*: the kernel is not flipped)::

    x:      (N, C_in, H, W)                 a batch of images
    weight: (C_out, C_in / groups, kH, kW)  one kernel per output channel
    bias:   (C_out,) or None
    y:      (N, C_out, H_out, W_out)

    y[n, o, i, j] = bias[o] + sum_{c, u, v} weight[o, c, u, v] * x[n, g*C_g + c, s*i + d*u - p, s*j + d*v - p]

where ``s``, ``p``, ``d`` are stride, padding and dilation (per axis), ``g = o //
(C_out / groups)`` is the group of output channel ``o``, ``C_g = C_in / groups``,
and ``x`` is zero outside the image. ``stride``, ``padding`` and ``dilation``
are an int or a pair ``(along H, along W)``.
"""

from __future__ import annotations

from typing import Optional, Sequence, Tuple, Union

import torch

from course_lib.validate import ShapeError, expect, same_dtype

Pair = Union[int, Tuple[int, int]]


# --- arguments ---------------------------------------------------------------------------
def _int(fn: str, name: str, value: object, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{fn}: {name} should be an int >= {minimum}, got {value!r}")
    return value


def _pair(fn: str, name: str, value: object, minimum: int) -> Tuple[int, int]:
    """``value`` as ``(along H, along W)``; an int is used for both axes."""
    if isinstance(value, (tuple, list)) and len(value) == 2:
        pair = tuple(value)
    elif isinstance(value, Sequence) and not isinstance(value, str):
        raise ValueError(f"{fn}: {name} should be an int or a pair of ints >= {minimum}, got {value!r}")
    else:
        pair = (value, value)
    for v in pair:
        if isinstance(v, bool) or not isinstance(v, int) or v < minimum:
            raise ValueError(f"{fn}: {name} should be an int or a pair of ints >= {minimum}, got {value!r}")
    return pair  # type: ignore[return-value]


def conv_output_size(size: int, kernel_size: int, stride: int = 1, padding: int = 0, dilation: int = 1) -> int:
    """Output length of a convolution (or pooling) along one axis:

    ``floor((size + 2*padding - dilation*(kernel_size-1) - 1) / stride) + 1``.

    Raises ValueError, naming every argument, when one is invalid (size, kernel_size,
    stride, dilation >= 1 and padding >= 0 are required) or when the dilated kernel,
    which spans ``dilation*(kernel_size-1) + 1`` pixels, is larger than the padded input.
    """
    args = f"size={size!r}, kernel_size={kernel_size!r}, stride={stride!r}, padding={padding!r}, dilation={dilation!r}"
    for name, value, minimum in (("size", size, 1), ("kernel_size", kernel_size, 1), ("stride", stride, 1),
                                 ("padding", padding, 0), ("dilation", dilation, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise ValueError(f"conv_output_size: {name} should be an int >= {minimum}; got {args}")
    span = dilation * (kernel_size - 1) + 1
    if size + 2 * padding < span:
        raise ValueError(
            f"conv_output_size: the dilated kernel spans dilation*(kernel_size-1)+1 = {span} pixels, more than "
            f"the padded input size+2*padding = {size + 2 * padding}, so the output would be empty; got {args}"
        )
    return (size + 2 * padding - span) // stride + 1


def receptive_field(layers: Sequence[Tuple[int, int, int]]) -> int:
    """Receptive field of one output pixel of a stack of convolutions, in input pixels along one axis.

    ``layers``: one ``(kernel_size, stride, dilation)`` per layer, from the input up. With the
    jump ``J`` (input pixels between neighbouring outputs of a layer; J = 1 at the input):
    ``r = 1``, then per layer ``r += dilation * (kernel_size - 1) * J`` and ``J *= stride``.
    """
    r, jump = 1, 1
    for i, layer in enumerate(layers):
        if not (isinstance(layer, (tuple, list)) and len(layer) == 3):
            raise ValueError(f"receptive_field: layer {i} should be (kernel_size, stride, dilation), got {layer!r}")
        k, s, d = (_int("receptive_field", f"layer {i}: {name}", v, 1) for name, v in zip(("kernel_size", "stride", "dilation"), layer))
        r += d * (k - 1) * jump
        jump *= s
    return r


def _output_hw(fn: str, hw: Tuple[int, int], kernel: Tuple[int, int], stride: Tuple[int, int],
               padding: Tuple[int, int], dilation: Tuple[int, int]) -> Tuple[int, int]:
    """(H_out, W_out); a ShapeError naming ``fn`` when the kernel does not fit."""
    span = tuple(d * (k - 1) + 1 for k, d in zip(kernel, dilation))
    padded = tuple(h + 2 * p for h, p in zip(hw, padding))
    if any(sp > pd for sp, pd in zip(span, padded)):
        raise ShapeError(
            f"{fn}: the kernel {tuple(kernel)} with dilation {tuple(dilation)} spans {span} pixels, larger than "
            f"the padded input {padded} = input {tuple(hw)} + 2 * padding {tuple(padding)}"
        )
    return tuple(conv_output_size(h, k, s, p, d) for h, k, s, p, d in zip(hw, kernel, stride, padding, dilation))  # type: ignore[return-value]


def _check_conv(fn: str, x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor], stride: Pair,
                padding: Pair, dilation: Pair, groups: int) -> Tuple[Tuple[int, int], ...]:
    """Validate the arguments of a convolution; return (stride, padding, dilation, out_hw)."""
    expect(fn, "x", x, ("N", "C_in", "H", "W"), floating=True)
    expect(fn, "weight", weight, ("C_out", "C_in/groups", "kH", "kW"), floating=True)
    same_dtype(fn, x=x, weight=weight)
    groups = _int(fn, "groups", groups, 1)
    c_in, c_out = x.shape[1], weight.shape[0]
    if c_in % groups or c_out % groups:
        raise ValueError(f"{fn}: groups={groups} must divide both C_in={c_in} (from x) and C_out={c_out} (from weight)")
    if weight.shape[1] * groups != c_in:
        raise ShapeError(
            f"{fn}: weight should have shape (C_out, C_in/groups, kH, kW) = (*, {c_in // groups}, *, *) for x with "
            f"C_in={c_in} and groups={groups}, got {tuple(weight.shape)}"
        )
    if bias is not None:
        expect(fn, "bias", bias, (c_out,), floating=True)
        same_dtype(fn, x=x, bias=bias)
    s, p, d = _pair(fn, "stride", stride, 1), _pair(fn, "padding", padding, 0), _pair(fn, "dilation", dilation, 1)
    out_hw = _output_hw(fn, tuple(x.shape[2:]), tuple(weight.shape[2:]), s, p, d)
    return s, p, d, out_hw


def pad2d(x: torch.Tensor, padding: Tuple[int, int], value: float = 0.0) -> torch.Tensor:
    """Pad the last two axes with ``value`` (0 for a convolution, -inf for max pooling):
    (..., H, W) -> (..., H + 2 p_h, W + 2 p_w). Without padding, ``x`` itself."""
    ph, pw = padding
    if ph == 0 and pw == 0:
        return x
    out = x.new_full((*x.shape[:-2], x.shape[-2] + 2 * ph, x.shape[-1] + 2 * pw), value)
    out[..., ph:ph + x.shape[-2], pw:pw + x.shape[-1]] = x
    return out


# --- cross-correlation vs convolution (one channel, "valid" mode) ------------------------
def correlate2d(image: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """Cross-correlation, valid mode: ``out[i, j] = sum_{u,v} kernel[u, v] image[i+u, j+v]``.

    image: (H, W), kernel: (kH, kW)  ->  (H - kH + 1, W - kW + 1).
    """
    expect("correlate2d", "image", image, ("H", "W"), floating=True)
    expect("correlate2d", "kernel", kernel, ("kH", "kW"), floating=True)
    same_dtype("correlate2d", image=image, kernel=kernel)
    (kh, kw), (h, w) = kernel.shape, image.shape
    if kh > h or kw > w:
        raise ShapeError(f"correlate2d: kernel {tuple(kernel.shape)} is larger than image {tuple(image.shape)}")
    out = image.new_zeros(h - kh + 1, w - kw + 1)
    for u in range(kh):  # shift the image under each kernel entry and add
        for v in range(kw):
            out += kernel[u, v] * image[u:u + h - kh + 1, v:v + w - kw + 1]
    return out


def convolve2d(image: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """Convolution (the mathematical one), valid mode: correlation with the kernel flipped
    in both axes, ``out[i, j] = sum_{u,v} kernel[kH-1-u, kW-1-v] image[i+u, j+v]``.

    image: (H, W), kernel: (kH, kW)  ->  (H - kH + 1, W - kW + 1).
    """
    expect("convolve2d", "kernel", kernel, ("kH", "kW"), floating=True)
    return correlate2d(image, kernel.flip(0, 1))


# --- forward: loops ----------------------------------------------------------------------
def conv2d_naive(x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor] = None, stride: Pair = 1,
                 padding: Pair = 0, dilation: Pair = 1, groups: int = 1) -> torch.Tensor:
    """2-D convolution with a Python loop over the output positions (for teaching; slow).

    x: (N, C_in, H, W), weight: (C_out, C_in/groups, kH, kW), bias: (C_out,) or None
    -> (N, C_out, H_out, W_out).
    """
    (sh, sw), padding, (dh, dw), (h_out, w_out) = _check_conv("conv2d_naive", x, weight, bias, stride, padding, dilation, groups)
    xp = pad2d(x, padding)  # (N, C_in, H + 2 p_h, W + 2 p_w)
    c_out, c_g, kh, kw = weight.shape
    o_g = c_out // groups
    y = x.new_zeros(x.shape[0], c_out, h_out, w_out)
    for i in range(h_out):
        for j in range(w_out):
            # the receptive field of output (i, j): rows s*i + d*u, columns s*j + d*v
            window = xp[:, :, sh * i: sh * i + dh * (kh - 1) + 1: dh, sw * j: sw * j + dw * (kw - 1) + 1: dw]
            for g in range(groups):  # (N, C_g, kH, kW) window against the group's (O_g, C_g, kH, kW) kernels
                win = window[:, g * c_g:(g + 1) * c_g]
                ker = weight[g * o_g:(g + 1) * o_g]
                y[:, g * o_g:(g + 1) * o_g, i, j] = (win[:, None] * ker[None]).sum(dim=(2, 3, 4))
    if bias is not None:
        y = y + bias[:, None, None]
    return y


# --- forward: im2col + one matrix product ------------------------------------------------
def im2col(x: torch.Tensor, kernel_size: Pair, stride: Pair = 1, padding: Pair = 0, dilation: Pair = 1) -> torch.Tensor:
    """Every receptive field as a column (the layout of ``F.unfold``).

    x: (N, C, H, W) -> cols: (N, C*kH*kW, L) with L = H_out*W_out; row ``c*kH*kW + u*kW + v``
    of column ``i*W_out + j`` is ``x_padded[n, c, s_h*i + d_h*u, s_w*j + d_w*v]``.
    """
    fn = "im2col"
    expect(fn, "x", x, ("N", "C", "H", "W"), floating=True)
    k, s = _pair(fn, "kernel_size", kernel_size, 1), _pair(fn, "stride", stride, 1)
    p, d = _pair(fn, "padding", padding, 0), _pair(fn, "dilation", dilation, 1)
    h_out, w_out = _output_hw(fn, tuple(x.shape[2:]), k, s, p, d)
    xp = pad2d(x, p).contiguous()
    n, c = x.shape[:2]
    sn, sc, sh, sw = xp.stride()
    # a strided *view* (no copy): axes (N, C, kH, kW, H_out, W_out)
    patches = xp.as_strided((n, c, k[0], k[1], h_out, w_out),
                            (sn, sc, d[0] * sh, d[1] * sw, s[0] * sh, s[1] * sw))
    return patches.reshape(n, c * k[0] * k[1], h_out * w_out)  # the one copy


def col2im(cols: torch.Tensor, output_size: Pair, kernel_size: Pair, stride: Pair = 1, padding: Pair = 0,
           dilation: Pair = 1) -> torch.Tensor:
    """The adjoint of :func:`im2col` (``F.fold``): add every column back onto the pixels it came from.

    cols: (N, C*kH*kW, L), output_size (H, W) -> (N, C, H, W). Pixels in several receptive
    fields receive the sum of their entries; pixels in none (and the padding) get nothing.
    """
    fn = "col2im"
    expect(fn, "cols", cols, ("N", "C*kH*kW", "L"), floating=True)
    hw, k = _pair(fn, "output_size", output_size, 1), _pair(fn, "kernel_size", kernel_size, 1)
    s, p, d = _pair(fn, "stride", stride, 1), _pair(fn, "padding", padding, 0), _pair(fn, "dilation", dilation, 1)
    h_out, w_out = _output_hw(fn, hw, k, s, p, d)
    n, rows, length = cols.shape
    if rows % (k[0] * k[1]) or length != h_out * w_out:
        raise ShapeError(
            f"col2im: cols should have shape (N, C*kH*kW, L) with kH*kW = {k[0] * k[1]} and L = H_out*W_out = "
            f"{h_out}*{w_out} = {h_out * w_out} for output_size {hw}, got {tuple(cols.shape)}"
        )
    c = rows // (k[0] * k[1])
    blocks = cols.reshape(n, c, k[0], k[1], h_out, w_out)
    xp = cols.new_zeros(n, c, hw[0] + 2 * p[0], hw[1] + 2 * p[1])
    for u in range(k[0]):  # kernel entry (u, v) touched the pixels s*i + d*u, s*j + d*v
        for v in range(k[1]):
            rows_uv = slice(d[0] * u, d[0] * u + s[0] * (h_out - 1) + 1, s[0])
            cols_uv = slice(d[1] * v, d[1] * v + s[1] * (w_out - 1) + 1, s[1])
            xp[:, :, rows_uv, cols_uv] += blocks[:, :, u, v]
    return xp[:, :, p[0]:p[0] + hw[0], p[1]:p[1] + hw[1]]


def conv2d(x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor] = None, stride: Pair = 1,
           padding: Pair = 0, dilation: Pair = 1, groups: int = 1) -> torch.Tensor:
    """2-D convolution as im2col + one (batched) matrix product.

    x: (N, C_in, H, W), weight: (C_out, C_in/groups, kH, kW), bias: (C_out,) or None
    -> (N, C_out, H_out, W_out). Per group g: Y_g (O_g, L) = W_g (O_g, C_g*kH*kW) @ cols_g (C_g*kH*kW, L).
    """
    s, p, d, (h_out, w_out) = _check_conv("conv2d", x, weight, bias, stride, padding, dilation, groups)
    n, c_out = x.shape[0], weight.shape[0]
    cols = im2col(x, tuple(weight.shape[2:]), s, p, d)  # (N, C_in*kH*kW, L)
    if groups == 1:
        y = torch.matmul(weight.reshape(c_out, -1), cols)  # (C_out, K) @ (N, K, L) -> (N, C_out, L)
    else:
        w_g = weight.reshape(groups, c_out // groups, -1)  # (G, O_g, K_g)
        y = torch.matmul(w_g, cols.reshape(n, groups, -1, cols.shape[-1]))  # (N, G, O_g, L)
    y = y.reshape(n, c_out, h_out, w_out)
    if bias is not None:
        y = y + bias[:, None, None]
    return y


# --- backward: two more convolutions -----------------------------------------------------
def _dilate(t: torch.Tensor, stride: Tuple[int, int]) -> torch.Tensor:
    """Insert ``s - 1`` zeros between neighbouring pixels: (..., h, w) -> (..., s_h (h-1)+1, s_w (w-1)+1)."""
    sh, sw = stride
    if sh == 1 and sw == 1:
        return t
    h, w = t.shape[-2:]
    out = t.new_zeros(*t.shape[:-2], sh * (h - 1) + 1, sw * (w - 1) + 1)
    out[..., ::sh, ::sw] = t
    return out


def _check_grad_out(fn: str, grad_out: torch.Tensor, name: str, other: torch.Tensor, groups: int) -> int:
    """Validate grad_out (N, C_out, H_out, W_out), the tensor ``name`` (weight or x) and groups."""
    expect(fn, "grad_out", grad_out, ("N", "C_out", "H_out", "W_out"), floating=True)
    spec = ("C_out", "C_in/groups", "kH", "kW") if name == "weight" else ("N", "C_in", "H", "W")
    expect(fn, name, other, spec, floating=True)
    same_dtype(fn, **{"grad_out": grad_out, name: other})
    return _int(fn, "groups", groups, 1)


def conv2d_grad_input(grad_out: torch.Tensor, weight: torch.Tensor, input_size: Optional[Pair] = None,
                      stride: Pair = 1, padding: Pair = 0, dilation: Pair = 1, groups: int = 1) -> torch.Tensor:
    """Gradient of :func:`conv2d` with respect to its input, as a *transposed* convolution.

    grad_out: (N, C_out, H_out, W_out), weight: (C_out, C_in/groups, kH, kW), input_size (H, W)
    -> grad_x: (N, C_in, H, W). Without input_size, H = s (H_out - 1) + d (kH - 1) + 1 - 2p, the
    smallest input that gives H_out (no stride remainder); likewise W. It is a full convolution (padding d*(k-1)) of grad_out, dilated
    by the stride (s-1 zeros between pixels), with the kernel flipped in both axes and its
    in/out channels swapped. The result is the gradient for the padded input, except its last
    ``r`` rows/columns: the stride remainder that no window reached, whose gradient is 0.
    Dropping the padding gives grad_x.

    Special values: that convolution also multiplies the kernel by the zeros it pads and
    inserts, and ``0 * inf`` is NaN where PyTorch has no such product. So when ``weight``
    holds NaN or inf, grad_x is computed instead as ``col2im(W^T grad_out)`` (the adjoint of
    :func:`im2col`, the same sum without the extra zeros), which gives PyTorch's values.
    """
    fn = "conv2d_grad_input"
    groups = _check_grad_out(fn, grad_out, "weight", weight, groups)
    c_out, c_g, kh, kw = weight.shape
    if c_out % groups:
        raise ValueError(f"{fn}: groups={groups} must divide C_out={c_out} (from weight)")
    s, p, d = _pair(fn, "stride", stride, 1), _pair(fn, "padding", padding, 0), _pair(fn, "dilation", dilation, 1)
    if input_size is None:
        input_size = tuple(si * (n - 1) + di * (k - 1) + 1 - 2 * pi
                           for si, n, di, k, pi in zip(s, grad_out.shape[2:], d, (kh, kw), p))
        if min(input_size) < 1:
            raise ValueError(f"{fn}: padding {p} is too large for grad_out {tuple(grad_out.shape)} and kernel {(kh, kw)}: "
                             f"the input would have size {input_size}; pass input_size")
    hw = _pair(fn, "input_size", input_size, 1)
    h_out, w_out = _output_hw(fn, hw, (kh, kw), s, p, d)
    expect(fn, "grad_out", grad_out, (None, c_out, h_out, w_out))
    o_g, c_in = c_out // groups, c_g * groups
    if not bool(torch.isfinite(weight).all()):
        # dL/dcols = W^T G per group, (N, G * C_g*kH*kW, L); col2im adds it back onto the pixels
        w_t = weight.reshape(groups, o_g, c_g * kh * kw).transpose(1, 2)  # (G, C_g*kH*kW, O_g)
        grad_cols = torch.matmul(w_t, grad_out.reshape(grad_out.shape[0], groups, o_g, h_out * w_out))
        return col2im(grad_cols.reshape(grad_out.shape[0], c_in * kh * kw, h_out * w_out), hw, (kh, kw), s, p, d)
    # weight'[c, o] = weight[o, c] flipped, group by group: (C_in, C_out/groups, kH, kW)
    w_flip = weight.flip(2, 3).reshape(groups, o_g, c_g, kh, kw).transpose(1, 2).reshape(c_in, o_g, kh, kw)
    full = (d[0] * (kh - 1), d[1] * (kw - 1))
    grad_xp = conv2d(_dilate(grad_out, s), w_flip, None, 1, full, d, groups)  # (N, C_in, Hp - r_h, Wp - r_w)
    hp, wp = hw[0] + 2 * p[0], hw[1] + 2 * p[1]
    grad_xp = torch.nn.functional.pad(grad_xp, (0, wp - grad_xp.shape[3], 0, hp - grad_xp.shape[2]))  # remainder: 0
    return grad_xp[:, :, p[0]:p[0] + hw[0], p[1]:p[1] + hw[1]]


def conv2d_grad_weight(grad_out: torch.Tensor, x: torch.Tensor, kernel_size: Pair, stride: Pair = 1,
                       padding: Pair = 0, dilation: Pair = 1, groups: int = 1) -> torch.Tensor:
    """Gradient of :func:`conv2d` with respect to its weight: the correlation of x with grad_out,

    ``grad_w[o, c, u, v] = sum_{n, i, j} grad_out[n, o, i, j] x_padded[n, g*C_g + c, s*i + d*u, s*j + d*v]``.

    grad_out: (N, C_out, H_out, W_out), x: (N, C_in, H, W), kernel_size (kH, kW)
    -> grad_w: (C_out, C_in/groups, kH, kW). Computed as one convolution with batch and channel
    axes swapped (the sum over n becomes the sum over input channels), grad_out as the kernel,
    dilation = stride and stride = dilation; its output is cut to (kH, kW) (rows beyond come
    from the stride remainder).
    """
    fn = "conv2d_grad_weight"
    groups = _check_grad_out(fn, grad_out, "x", x, groups)
    n, c_in, h, w = x.shape
    c_out = grad_out.shape[1]
    if c_in % groups or c_out % groups:
        raise ValueError(f"{fn}: groups={groups} must divide both C_in={c_in} (from x) and C_out={c_out} (from grad_out)")
    k = _pair(fn, "kernel_size", kernel_size, 1)
    s, p, d = _pair(fn, "stride", stride, 1), _pair(fn, "padding", padding, 0), _pair(fn, "dilation", dilation, 1)
    h_out, w_out = _output_hw(fn, (h, w), k, s, p, d)
    expect(fn, "grad_out", grad_out, (n, c_out, h_out, w_out))
    c_g, o_g = c_in // groups, c_out // groups
    # "images" x_t: (C_g, G*N, H, W), one per input channel; "kernels" g_t: (C_out, N, H_out, W_out)
    x_t = x.reshape(n, groups, c_g, h, w).permute(2, 1, 0, 3, 4).reshape(c_g, groups * n, h, w)
    g_t = grad_out.reshape(n, groups, o_g, h_out, w_out).permute(1, 2, 0, 3, 4).reshape(c_out, n, h_out, w_out)
    grad_w = conv2d(x_t, g_t, None, d, p, s, groups)  # (C_g, C_out, >= kH, >= kW)
    return grad_w[:, :, :k[0], :k[1]].transpose(0, 1).contiguous()


def conv2d_backward(grad_out: torch.Tensor, x: torch.Tensor, weight: torch.Tensor, stride: Pair = 1,
                    padding: Pair = 0, dilation: Pair = 1, groups: int = 1
                    ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Gradients of :func:`conv2d` given ``grad_out = dL/dy``, each computed by a convolution.

    grad_out: (N, C_out, H_out, W_out), x: (N, C_in, H, W), weight: (C_out, C_in/groups, kH, kW)
    -> grad_x (N, C_in, H, W) (:func:`conv2d_grad_input`), grad_w (C_out, C_in/groups, kH, kW)
    (:func:`conv2d_grad_weight`) and grad_b = grad_out summed over batch and positions (C_out,).
    """
    fn = "conv2d_backward"
    s, p, d, out_hw = _check_conv(fn, x, weight, None, stride, padding, dilation, groups)
    expect(fn, "grad_out", grad_out, (x.shape[0], weight.shape[0], *out_hw), floating=True)
    same_dtype(fn, grad_out=grad_out, x=x)
    grad_x = conv2d_grad_input(grad_out, weight, tuple(x.shape[2:]), s, p, d, groups)
    grad_w = conv2d_grad_weight(grad_out, x, tuple(weight.shape[2:]), s, p, d, groups)
    return grad_x, grad_w, grad_out.sum(dim=(0, 2, 3))


# --- as a PyTorch layer --------------------------------------------------------------------
class Conv2dFunction(torch.autograd.Function):
    """:func:`conv2d` forward and :func:`conv2d_backward` backward, as an autograd function."""

    @staticmethod
    def forward(ctx, x, weight, bias, stride, padding, dilation, groups):  # type: ignore[override]
        ctx.save_for_backward(x, weight)
        ctx.conf = (stride, padding, dilation, groups, bias is not None)
        return conv2d(x, weight, bias, stride, padding, dilation, groups)

    @staticmethod
    def backward(ctx, grad_out):  # type: ignore[override]
        x, weight = ctx.saved_tensors
        stride, padding, dilation, groups, has_bias = ctx.conf
        grad_x, grad_w, grad_b = conv2d_backward(grad_out.contiguous(), x, weight, stride, padding, dilation, groups)
        return grad_x, grad_w, grad_b if has_bias else None, None, None, None, None


class Conv2d(torch.nn.Module):
    """A drop-in for ``nn.Conv2d`` built on :func:`conv2d` and :func:`conv2d_backward`.

    Same parameters (``weight`` (C_out, C_in/groups, kH, kW), ``bias`` (C_out,)) and the same
    default initialisation as ``nn.Conv2d``. Input (N, C_in, H, W) -> (N, C_out, H_out, W_out).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: Pair, stride: Pair = 1, padding: Pair = 0,
                 dilation: Pair = 1, groups: int = 1, bias: bool = True) -> None:
        super().__init__()
        ref = torch.nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias)
        self.weight = ref.weight
        self.bias = ref.bias
        self.stride, self.padding, self.dilation, self.groups = ref.stride, ref.padding, ref.dilation, groups

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return Conv2dFunction.apply(x, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups)
