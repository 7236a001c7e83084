"""course_lib.conv against torch.nn.functional in float64: forward (loops and im2col),
im2col/col2im against F.unfold/F.fold, the backward pass against autograd, on random
shapes, strides, paddings, dilations and groups; and every error message."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st

from course_lib import conv
from course_lib.validate import ShapeError

DT = torch.float64
TOL = dict(rtol=1e-10, atol=1e-10)


@st.composite
def configs(draw, max_groups: int = 3):
    """A valid convolution: shapes, hyper-parameters (ints or pairs) and a seed."""
    groups = draw(st.integers(1, max_groups))
    c_in, c_out = groups * draw(st.integers(1, 3)), groups * draw(st.integers(1, 3))
    kernel = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    padding = (draw(st.integers(0, 2)), draw(st.integers(0, 2)))
    dilation = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    size = []
    for k, p, d in zip(kernel, padding, dilation):
        smallest = max(1, d * (k - 1) + 1 - 2 * p)  # the padded input must hold the dilated kernel
        size.append(smallest + draw(st.integers(0, 6)))

    def maybe_int(pair):  # exercise both spellings: an int when both entries agree
        return pair[0] if pair[0] == pair[1] and draw(st.booleans()) else pair

    return dict(
        n=draw(st.integers(1, 3)), c_in=c_in, c_out=c_out, hw=tuple(size), kernel=kernel, groups=groups,
        stride=maybe_int(stride), padding=maybe_int(padding), dilation=maybe_int(dilation),
        bias=draw(st.booleans()), seed=draw(st.integers(0, 2**31 - 1)),
    )


def make(cfg):
    gen = torch.Generator().manual_seed(cfg["seed"])
    x = torch.randn(cfg["n"], cfg["c_in"], *cfg["hw"], generator=gen, dtype=DT)
    w = torch.randn(cfg["c_out"], cfg["c_in"] // cfg["groups"], *cfg["kernel"], generator=gen, dtype=DT)
    b = torch.randn(cfg["c_out"], generator=gen, dtype=DT) if cfg["bias"] else None
    hyper = dict(stride=cfg["stride"], padding=cfg["padding"], dilation=cfg["dilation"], groups=cfg["groups"])
    return x, w, b, hyper, gen


def close(ours: torch.Tensor, ref: torch.Tensor) -> None:
    assert ours.shape == ref.shape and ours.dtype == ref.dtype
    torch.testing.assert_close(ours, ref, **TOL)


# --- forward ----------------------------------------------------------------------------------
@given(cfg=configs())
def test_forward_naive_and_vectorised_match_torch(cfg):
    x, w, b, hyper, _ = make(cfg)
    ref = F.conv2d(x, w, b, **hyper)
    close(conv.conv2d(x, w, b, **hyper), ref)
    close(conv.conv2d_naive(x, w, b, **hyper), ref)


@given(cfg=configs(max_groups=1))
def test_im2col_is_unfold_and_col2im_is_fold(cfg):
    x, w, _, hyper, gen = make(cfg)
    k, s, p, d = cfg["kernel"], hyper["stride"], hyper["padding"], hyper["dilation"]
    cols = conv.im2col(x, k, s, p, d)
    close(cols, F.unfold(x, k, dilation=d, padding=p, stride=s))
    c = torch.randn(cols.shape, generator=gen, dtype=DT)
    folded = conv.col2im(c, cfg["hw"], k, s, p, d)
    close(folded, F.fold(c, cfg["hw"], k, dilation=d, padding=p, stride=s))
    # adjoint: <im2col(x), c> = <x, col2im(c)>
    torch.testing.assert_close((cols * c).sum(), (x * folded).sum(), **TOL)


@given(cfg=configs())
def test_output_size_formula_matches_torch(cfg):
    x, w, b, hyper, _ = make(cfg)
    out = F.conv2d(x, w, b, **hyper)
    pair = lambda v: v if isinstance(v, tuple) else (v, v)  # noqa: E731
    s, p, d = pair(hyper["stride"]), pair(hyper["padding"]), pair(hyper["dilation"])
    for axis in range(2):
        assert conv.conv_output_size(cfg["hw"][axis], cfg["kernel"][axis], s[axis], p[axis], d[axis]) == out.shape[2 + axis]


@given(size=st.integers(1, 40), k=st.integers(1, 9), s=st.integers(1, 5), p=st.integers(0, 4), d=st.integers(1, 4))
def test_output_size_formula_everywhere(size, k, s, p, d):
    span = d * (k - 1) + 1
    if size + 2 * p < span:
        with pytest.raises(ValueError, match="conv_output_size"):
            conv.conv_output_size(size, k, s, p, d)
        return
    out = conv.conv_output_size(size, k, s, p, d)
    positions = list(range(0, size + 2 * p - span + 1, s))  # window starts that fit, counted one by one
    assert out == len(positions) >= 1


def test_float32_keeps_its_dtype_and_matches():
    gen = torch.Generator().manual_seed(0)
    x, w, b = torch.randn(2, 3, 9, 9, generator=gen), torch.randn(4, 3, 3, 3, generator=gen), torch.randn(4, generator=gen)
    y = conv.conv2d(x, w, b, stride=2, padding=1)
    assert y.dtype == torch.float32
    torch.testing.assert_close(y, F.conv2d(x, w, b, stride=2, padding=1), rtol=1e-5, atol=1e-5)


def test_library_does_not_call_torch_convolution(monkeypatch):
    def forbidden(*args, **kwargs):
        raise AssertionError("course_lib.conv must not call torch's convolution")

    gen = torch.Generator().manual_seed(1)
    x, w = torch.randn(2, 4, 6, 7, generator=gen, dtype=DT), torch.randn(6, 2, 3, 2, generator=gen, dtype=DT)
    ref = F.conv2d(x, w, None, 2, 1, 1, 2)
    y = ref.clone().requires_grad_()
    xr, wr = x.clone().requires_grad_(), w.clone().requires_grad_()
    F.conv2d(xr, wr, None, 2, 1, 1, 2).backward(torch.ones_like(ref))
    for name in ("conv2d", "unfold", "fold", "conv_transpose2d"):
        monkeypatch.setattr(F, name, forbidden)
    monkeypatch.setattr(torch, "conv2d", forbidden)
    close(conv.conv2d(x, w, None, 2, 1, 1, 2), ref)
    gx, gw, _ = conv.conv2d_backward(torch.ones_like(y), x, w, 2, 1, 1, 2)
    close(gx, xr.grad)
    close(gw, wr.grad)


# --- backward ---------------------------------------------------------------------------------
@given(cfg=configs())
def test_backward_matches_autograd(cfg):
    x, w, b, hyper, gen = make(cfg)
    xr, wr = x.clone().requires_grad_(), w.clone().requires_grad_()
    br = None if b is None else b.clone().requires_grad_()
    y = F.conv2d(xr, wr, br, **hyper)
    g = torch.randn(y.shape, generator=gen, dtype=DT)
    y.backward(g)
    grad_x, grad_w, grad_b = conv.conv2d_backward(g, x, w, **hyper)
    close(grad_x, xr.grad)
    close(grad_w, wr.grad)
    close(grad_b, br.grad if br is not None else g.sum(dim=(0, 2, 3)))


@given(cfg=configs())
def test_gradient_functions_match_torch_nn_grad_and_conv_transpose(cfg):
    x, w, _, hyper, gen = make(cfg)
    g = torch.randn(F.conv2d(x, w, **hyper).shape, generator=gen, dtype=DT)
    close(conv.conv2d_grad_input(g, w, cfg["hw"], **hyper), torch.nn.grad.conv2d_input(x.shape, w, g, **hyper))
    close(conv.conv2d_grad_weight(g, x, cfg["kernel"], **hyper), torch.nn.grad.conv2d_weight(x, w.shape, g, **hyper))
    # without input_size: the smallest input, as conv_transpose2d with output_padding=0 gives it
    try:
        ref = F.conv_transpose2d(g, w, None, hyper["stride"], hyper["padding"], 0, hyper["groups"], hyper["dilation"])
    except RuntimeError:  # the padding eats the whole input: both refuse
        with pytest.raises(ValueError, match="conv2d_grad_input: padding .* is too large"):
            conv.conv2d_grad_input(g, w, **hyper)
    else:
        close(conv.conv2d_grad_input(g, w, **hyper), ref)


def test_backward_stride_remainder_rows_get_zero_gradient():
    # H = 6, kernel 3, stride 2: windows start at rows 0 and 2, so row 5 is never read
    x, w = torch.randn(1, 1, 6, 6, dtype=DT), torch.randn(1, 1, 3, 3, dtype=DT)
    grad_x, _, _ = conv.conv2d_backward(torch.ones(1, 1, 2, 2, dtype=DT), x, w, stride=2)
    assert grad_x.shape == x.shape
    assert torch.all(grad_x[..., 5, :] == 0) and torch.all(grad_x[..., :, 5] == 0)
    assert grad_x[..., :5, :5].abs().sum() > 0


def test_conv2d_module_gradcheck_and_matches_nn_conv2d():
    torch.manual_seed(0)
    ours = conv.Conv2d(4, 6, (3, 2), stride=(2, 1), padding=1, dilation=(1, 2), groups=2).double()
    ref = torch.nn.Conv2d(4, 6, (3, 2), stride=(2, 1), padding=1, dilation=(1, 2), groups=2).double()
    with torch.no_grad():
        ref.weight.copy_(ours.weight)
        ref.bias.copy_(ours.bias)
    x = torch.randn(2, 4, 7, 6, dtype=DT, requires_grad=True)
    close(ours(x), ref(x))
    fn = lambda x, w, b: conv.Conv2dFunction.apply(x, w, b, (2, 1), 1, (1, 2), 2)  # noqa: E731
    assert torch.autograd.gradcheck(fn, (x, ours.weight.detach().clone().requires_grad_(), ours.bias.detach().clone().requires_grad_()))
    nobias = conv.Conv2d(3, 2, 3, bias=False).double()
    assert nobias.bias is None
    xb = torch.randn(1, 3, 5, 5, dtype=DT, requires_grad=True)
    nobias(xb).sum().backward()
    assert xb.grad is not None and nobias.weight.grad is not None


# --- cross-correlation vs convolution ---------------------------------------------------------
@given(h=st.integers(1, 7), w=st.integers(1, 7), kh=st.integers(1, 4), kw=st.integers(1, 4), seed=st.integers(0, 2**31 - 1))
def test_correlate_is_torch_conv_and_convolve_flips(h, w, kh, kw, seed):
    gen = torch.Generator().manual_seed(seed)
    image, kernel = torch.randn(h + kh - 1, w + kw - 1, generator=gen, dtype=DT), torch.randn(kh, kw, generator=gen, dtype=DT)
    close(conv.correlate2d(image, kernel), F.conv2d(image[None, None], kernel[None, None])[0, 0])
    close(conv.convolve2d(image, kernel), conv.correlate2d(image, kernel.flip(0, 1)))
    import scipy.signal

    close(conv.convolve2d(image, kernel), torch.from_numpy(scipy.signal.convolve2d(image.numpy(), kernel.numpy(), mode="valid")))


def test_convolve_differs_from_correlate_for_an_asymmetric_kernel():
    image = torch.arange(16, dtype=DT).reshape(4, 4) ** 2
    kernel = torch.tensor([[1.0, 0.0], [0.0, -1.0]], dtype=DT)
    assert not torch.allclose(conv.convolve2d(image, kernel), conv.correlate2d(image, kernel))
    close(conv.convolve2d(image, kernel), -conv.correlate2d(image, kernel))  # this kernel flips to its negative


# --- errors -----------------------------------------------------------------------------------
X, W = torch.randn(2, 4, 5, 5, dtype=DT), torch.randn(6, 4, 3, 3, dtype=DT)
FORWARD = [conv.conv2d, conv.conv2d_naive]


@pytest.mark.parametrize("fn", FORWARD, ids=lambda f: f.__name__)
@pytest.mark.parametrize(
    "args, kwargs, pattern",
    [
        ((torch.randn(4, 5, 5, dtype=DT), W), {}, r"x should have 4 dimension\(s\) \(N, C_in, H, W\), got 3: shape \(4, 5, 5\)"),
        ((X, torch.randn(6, 3, 3, 3, dtype=DT)), {}, r"weight should have shape \(C_out, C_in/groups, kH, kW\) = \(\*, 4, \*, \*\) .*C_in=4 and groups=1, got \(6, 3, 3, 3\)"),
        ((X, torch.randn(6, 2, 3, 3, dtype=DT)), {"groups": 3}, r"groups=3 must divide both C_in=4 .* and C_out=6"),
        ((X, torch.randn(6, 4, 3, 3, dtype=DT)), {"groups": 2}, r"\(\*, 2, \*, \*\) for x with C_in=4 and groups=2, got \(6, 4, 3, 3\)"),
        ((X, W, torch.randn(5, dtype=DT)), {}, r"bias should have shape \(6,\), got \(5,\)"),
        ((X, torch.randn(6, 4, 7, 3, dtype=DT)), {"padding": 0}, r"kernel \(7, 3\) with dilation \(1, 1\) spans \(7, 3\) pixels, larger than the padded input \(5, 5\)"),
        ((X, W), {"dilation": 3}, r"spans \(7, 7\) pixels, larger than the padded input \(5, 5\)"),
        ((X, W), {"stride": 0}, r"stride should be an int or a pair of ints >= 1, got 0"),
        ((X, W), {"dilation": (1, 0)}, r"dilation should be an int or a pair of ints >= 1, got \(1, 0\)"),
        ((X, W), {"padding": -1}, r"padding should be an int or a pair of ints >= 0, got -1"),
        ((X, W), {"stride": (1, 2, 3)}, r"stride should be an int or a pair"),
        ((X, W), {"groups": 0}, r"groups should be an int >= 1, got 0"),
        ((X.float(), W), {}, r"all tensors should have the same dtype"),
        ((X.long(), W), {}, r"x should be a floating-point tensor"),
    ],
)
def test_forward_errors_name_function_and_shapes(fn, args, kwargs, pattern):
    with pytest.raises(ValueError, match=pattern) as err:
        fn(*args, **kwargs)
    assert str(err.value).startswith(fn.__name__)


def test_shape_errors_are_shape_errors():
    with pytest.raises(ShapeError):
        conv.conv2d(X, torch.randn(6, 3, 3, 3, dtype=DT))
    with pytest.raises(ShapeError):
        conv.conv2d(X, torch.randn(6, 4, 9, 9, dtype=DT))


@pytest.mark.parametrize(
    "call, pattern",
    [
        (lambda: conv.im2col(torch.randn(5, 5, dtype=DT), 3), r"im2col: x should have 4 dimension"),
        (lambda: conv.im2col(X, 6), r"im2col: the kernel \(6, 6\) .* larger than the padded input \(5, 5\)"),
        (lambda: conv.im2col(X, 3, stride=0), r"im2col: stride should be"),
        (lambda: conv.im2col(X, 0), r"im2col: kernel_size should be"),
        (lambda: conv.col2im(torch.randn(2, 10, 9, dtype=DT), (5, 5), 3), r"col2im: cols should have shape \(N, C\*kH\*kW, L\) with kH\*kW = 9 and L = H_out\*W_out = 3\*3 = 9 .* got \(2, 10, 9\)"),
        (lambda: conv.col2im(torch.randn(2, 9, 8, dtype=DT), (5, 5), 3), r"col2im: .*got \(2, 9, 8\)"),
        (lambda: conv.col2im(torch.randn(9, 9, dtype=DT), (5, 5), 3), r"col2im: cols should have 3 dimension"),
        (lambda: conv.conv2d_backward(torch.randn(2, 6, 4, 4, dtype=DT), X, W), r"conv2d_backward: grad_out should have shape \(2, 6, 3, 3\), got \(2, 6, 4, 4\)"),
        (lambda: conv.conv2d_backward(torch.randn(2, 6, 3, 3, dtype=DT), X, W, groups=2), r"conv2d_backward: weight should have shape"),
        (lambda: conv.conv2d_grad_input(torch.randn(2, 6, 4, 4, dtype=DT), W, (5, 5)), r"conv2d_grad_input: grad_out should have shape \(\*, 6, 3, 3\), got \(2, 6, 4, 4\)"),
        (lambda: conv.conv2d_grad_input(torch.randn(2, 5, 3, 3, dtype=DT), W, (5, 5)), r"conv2d_grad_input: grad_out should have shape \(\*, 6, 3, 3\), got \(2, 5, 3, 3\)"),
        (lambda: conv.conv2d_grad_input(torch.randn(1, 6, 1, 1, dtype=DT), W, padding=2), r"conv2d_grad_input: padding \(2, 2\) is too large for grad_out \(1, 6, 1, 1\) and kernel \(3, 3\)"),
        (lambda: conv.conv2d_grad_input(torch.randn(2, 6, 3, 3, dtype=DT), W, (5, 5), groups=4), r"conv2d_grad_input: groups=4 must divide C_out=6"),
        (lambda: conv.conv2d_grad_weight(torch.randn(3, 6, 3, 3, dtype=DT), X, (3, 3)), r"conv2d_grad_weight: grad_out should have shape \(2, 6, 3, 3\), got \(3, 6, 3, 3\)"),
        (lambda: conv.conv2d_grad_weight(torch.randn(2, 6, 3, 3, dtype=DT), X, (3, 3), groups=4), r"conv2d_grad_weight: groups=4 must divide both C_in=4 .* and C_out=6"),
        (lambda: conv.conv2d_grad_weight(torch.randn(2, 6, 3, 3, dtype=DT), X.float(), (3, 3)), r"conv2d_grad_weight: all tensors should have the same dtype"),
        (lambda: conv.correlate2d(torch.randn(2, 2, dtype=DT), torch.randn(3, 3, dtype=DT)), r"correlate2d: kernel \(3, 3\) is larger than image \(2, 2\)"),
        (lambda: conv.correlate2d(torch.randn(1, 4, 4, dtype=DT), torch.randn(3, 3, dtype=DT)), r"correlate2d: image should have 2 dimension"),
        (lambda: conv.convolve2d(torch.randn(4, 4, dtype=DT), torch.randn(3, dtype=DT)), r"convolve2d: kernel should have 2 dimension"),
    ],
)
def test_other_errors(call, pattern):
    with pytest.raises(ValueError, match=pattern):
        call()


@pytest.mark.parametrize(
    "args, bad",
    [
        ((0, 3), "size"), ((5, 0), "kernel_size"), ((5, 3, 0), "stride"), ((5, 3, 1, -1), "padding"),
        ((5, 3, 1, 0, 0), "dilation"), ((5.0, 3), "size"), ((True, 3), "size"),
    ],
)
def test_output_size_rejects_bad_arguments_naming_all_of_them(args, bad):
    with pytest.raises(ValueError) as err:
        conv.conv_output_size(*args)
    msg = str(err.value)
    assert msg.startswith(f"conv_output_size: {bad} should be")
    assert all(name in msg for name in ("size=", "kernel_size=", "stride=", "padding=", "dilation="))


def test_output_size_too_small_names_the_span():
    with pytest.raises(ValueError, match=r"spans dilation\*\(kernel_size-1\)\+1 = 5 pixels, more than the padded input size\+2\*padding = 4.*size=4, kernel_size=3, stride=1, padding=0, dilation=2"):
        conv.conv_output_size(4, 3, dilation=2)
    assert conv.conv_output_size(5, 3, dilation=2) == 1
    assert conv.conv_output_size(28, 3, padding=1) == 28 and conv.conv_output_size(28, 2, stride=2) == 14
    assert conv.conv_output_size(7, 3, stride=2) == 3 and conv.conv_output_size(8, 3, stride=2) == 3


# --- receptive field ----------------------------------------------------------------------------
@given(layers=st.lists(st.tuples(st.integers(1, 4), st.integers(1, 3), st.integers(1, 3)), min_size=1, max_size=4))
def test_receptive_field_is_what_the_gradient_reaches(layers):
    """Backpropagate from one output pixel through all-ones kernels; the nonzero input span is the field."""
    r = conv.receptive_field(layers)
    x = torch.zeros(1, 1, 1, r + 40, dtype=DT, requires_grad=True)
    y = x
    for k, s, d in layers:
        y = F.conv2d(y, torch.ones(1, 1, 1, k, dtype=DT), stride=(1, s), dilation=(1, d))
    assert y.shape[-1] >= 1
    y[0, 0, 0, 0].backward()
    reached = torch.nonzero(x.grad[0, 0, 0]).squeeze(1)
    assert int(reached.max() - reached.min()) + 1 == r


def test_receptive_field_examples_and_errors():
    assert conv.receptive_field([(3, 1, 1)] * 3) == 7
    assert conv.receptive_field([(3, 2, 1), (3, 1, 1)]) == 7
    assert conv.receptive_field([(3, 1, 1), (3, 1, 2), (3, 1, 4)]) == 15
    assert conv.receptive_field([]) == 1
    with pytest.raises(ValueError, match=r"receptive_field: layer 1 should be \(kernel_size, stride, dilation\), got \(3, 1\)"):
        conv.receptive_field([(3, 1, 1), (3, 1)])
    with pytest.raises(ValueError, match=r"receptive_field: layer 0: stride should be an int >= 1, got 0"):
        conv.receptive_field([(3, 0, 1)])
