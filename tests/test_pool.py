"""course_lib.pool against torch.nn.functional.max_pool2d / avg_pool2d: forward values,
indices and gradients (via torch.autograd) in float64 on random shapes, kernels,
strides and paddings; ties; clear errors; the chapter's explorers."""

from __future__ import annotations

import sys

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st

from course_lib import pool
from course_lib.validate import ShapeError

DT = torch.float64
SEEDS = st.integers(0, 2**31 - 1)


def close(ours: torch.Tensor, ref: torch.Tensor, atol: float = 1e-12) -> None:
    assert ours.shape == ref.shape and ours.dtype == ref.dtype, (ours.shape, ref.shape, ours.dtype, ref.dtype)
    torch.testing.assert_close(ours, ref, rtol=0, atol=atol)


@st.composite
def setups(draw):
    """(x, kwargs) for a random valid pooling: kernel/stride/padding as ints or pairs,
    4-D or 3-D x, Gaussian or small-integer values (many ties)."""
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    ph, pw = draw(st.integers(0, kh // 2)), draw(st.integers(0, kw // 2))
    H, W = draw(st.integers(max(1, kh - 2 * ph), 9)), draw(st.integers(max(1, kw - 2 * pw), 9))
    kernel = kh if kh == kw and draw(st.booleans()) else (kh, kw)
    padding = ph if ph == pw and draw(st.booleans()) else (ph, pw)
    stride = draw(st.one_of(st.none(), st.integers(1, 4), st.tuples(st.integers(1, 4), st.integers(1, 4))))
    shape = (draw(st.integers(1, 3)), draw(st.integers(1, 3)), H, W)
    if draw(st.booleans()):
        shape = shape[1:]  # (C, H, W)
    gen = torch.Generator().manual_seed(draw(SEEDS))
    if draw(st.booleans()):
        x = torch.randn(shape, generator=gen, dtype=DT)
    else:
        x = torch.randint(0, 3, shape, generator=gen).to(DT)  # integer values: ties everywhere
    return x, dict(kernel_size=kernel, stride=stride, padding=padding)


def torch_backward(fn, x: torch.Tensor, gen: torch.Generator, **kwargs):
    """Output, a random upstream gradient and torch's gradient w.r.t. x."""
    x = x.clone().requires_grad_(True)
    y = fn(x, **kwargs)
    g = torch.randn(y.shape, generator=gen, dtype=DT)
    y.backward(g)
    return y.detach(), g, x.grad


# --- max pooling ------------------------------------------------------------------------
@given(setup=setups(), seed=SEEDS)
def test_max_pool_forward_indices_and_backward_match_torch(setup, seed):
    x, kw = setup
    y_ref, idx_ref = F.max_pool2d(x, return_indices=True, **kw)
    y, idx = pool.max_pool2d(x, return_indices=True, **kw)
    close(y, y_ref, atol=0)
    assert idx.dtype == idx_ref.dtype and torch.equal(idx, idx_ref)
    close(pool.max_pool2d(x, **kw), y_ref, atol=0)
    _, g, grad_ref = torch_backward(F.max_pool2d, x, torch.Generator().manual_seed(seed), **kw)
    close(pool.max_pool2d_backward(g, x, **kw), grad_ref)


def test_max_pool_ties_go_to_the_first_maximum_and_overlaps_add_up():
    # all equal: every window's first element (row-major) wins
    x = torch.ones(1, 1, 3, 3, dtype=DT)
    y, idx = pool.max_pool2d(x, 2, 1, return_indices=True)
    assert idx.tolist() == [[[[0, 1], [3, 4]]]] == F.max_pool2d(x, 2, 1, return_indices=True)[1].tolist()
    g = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]], dtype=DT)
    close(pool.max_pool2d_backward(g, x, 2, 1), torch.tensor([[[[1.0, 2.0, 0.0], [3.0, 4.0, 0.0], [0.0, 0.0, 0.0]]]], dtype=DT))
    # one large centre value is the maximum of all four overlapping windows: it receives the sum
    x = torch.tensor([[[[0.0, 1.0, 0.0], [1.0, 5.0, 1.0], [0.0, 1.0, 0.0]]]], dtype=DT)
    expected = torch.zeros(1, 1, 3, 3, dtype=DT)
    expected[0, 0, 1, 1] = 10.0
    close(pool.max_pool2d_backward(g, x, 2, 1), expected)
    # a tie inside a window: [3, 3] in the first row goes to the left one, as in torch
    x = torch.tensor([[[[1.0, 3.0, 3.0], [3.0, 0.0, 1.0], [2.0, 3.0, 3.0]]]], dtype=DT)
    ref = x.clone().requires_grad_(True)
    F.max_pool2d(ref, 2, 1).backward(g)
    close(pool.max_pool2d_backward(g, x, 2, 1), ref.grad)
    assert pool.max_pool2d(x, 2, 1, return_indices=True)[1].tolist() == [[[[1, 1], [3, 7]]]]


def test_max_pool_infinite_inputs_and_padding_match_torch():
    x = torch.tensor([[[[-float("inf"), -float("inf"), 2.0], [-float("inf"), -float("inf"), -float("inf")]]]], dtype=DT)
    for k, s, p in [(2, 1, 1), (3, 2, 1), (2, 2, 0)]:
        y_ref, idx_ref = F.max_pool2d(x, k, s, p, return_indices=True)
        y, idx = pool.max_pool2d(x, k, s, p, return_indices=True)
        close(y, y_ref, atol=0)
        assert torch.equal(idx, idx_ref), (k, s, p)  # never an index into the padding


def test_nan_propagates_as_in_torch_with_the_same_index():
    nan = float("nan")
    x = torch.tensor([[[[1.0, nan, 3.0, nan], [0.0, 5.0, nan, 2.0]]]], dtype=DT)
    y, idx = pool.max_pool2d(x, 2, return_indices=True)
    y_ref, idx_ref = F.max_pool2d(x, 2, return_indices=True)
    assert torch.isnan(y).all() and torch.isnan(y_ref).all()
    assert idx.tolist() == idx_ref.tolist() == [[[[1, 6]]]]  # the last NaN of each window, as torch
    g = torch.tensor([[[[10.0, 20.0]]]], dtype=DT)
    assert pool.max_pool2d_backward(g, x, 2)[0, 0].tolist() == [[0.0, 10.0, 0.0, 0.0], [0.0, 0.0, 20.0, 0.0]]


def test_gradient_of_max_pool_is_zero_except_at_the_maxima():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, 8, 8, generator=gen, dtype=DT)
    g = torch.ones(2, 3, 4, 4, dtype=DT)
    grad = pool.max_pool2d_backward(g, x, 2)
    assert int((grad != 0).sum()) == 2 * 3 * 16 and float(grad.sum()) == 2 * 3 * 16


# --- average pooling --------------------------------------------------------------------
@given(setup=setups(), seed=SEEDS, count_include_pad=st.booleans())
def test_avg_pool_forward_and_backward_match_torch(setup, seed, count_include_pad):
    x, kw = setup
    kw["count_include_pad"] = count_include_pad
    y_ref, g, grad_ref = torch_backward(F.avg_pool2d, x, torch.Generator().manual_seed(seed), **kw)
    close(pool.avg_pool2d(x, **kw), y_ref)
    close(pool.avg_pool2d_backward(g, x, **kw), grad_ref)


def test_avg_pool_padding_divisor():
    x = torch.ones(1, 1, 2, 2, dtype=DT)
    # kernel 2, padding 1, stride 2: each window holds one real 1 and three padding zeros
    close(pool.avg_pool2d(x, 2, 2, 1), torch.full((1, 1, 2, 2), 0.25, dtype=DT))
    close(pool.avg_pool2d(x, 2, 2, 1, count_include_pad=False), torch.ones(1, 1, 2, 2, dtype=DT))
    close(pool.avg_pool2d_backward(torch.ones(1, 1, 2, 2, dtype=DT), x, 2, 2, 1), torch.full((1, 1, 2, 2), 0.25, dtype=DT))


def test_global_average_pooling():
    x = torch.randn(2, 3, 5, 4, dtype=DT)
    close(pool.global_avg_pool2d(x), F.adaptive_avg_pool2d(x, 1).reshape(2, 3))
    close(pool.global_avg_pool2d(x), pool.avg_pool2d(x, (5, 4)).reshape(2, 3))
    with pytest.raises(ShapeError, match=r"global_avg_pool2d: x should have 4 dimension"):
        pool.global_avg_pool2d(x[0])


# --- from scratch -------------------------------------------------------------------------
def test_library_does_not_call_torch_pooling(monkeypatch):
    def forbidden(*args, **kwargs):
        raise AssertionError("course_lib.pool called a torch pooling/unfold function")

    for name in ("max_pool2d", "max_pool2d_with_indices", "avg_pool2d", "unfold", "adaptive_avg_pool2d"):
        monkeypatch.setattr(F, name, forbidden)
    for name in ("max_pool2d", "max_pool2d_with_indices", "avg_pool2d"):
        if hasattr(torch, name):
            monkeypatch.setattr(torch, name, forbidden)
    monkeypatch.setattr(torch._C._nn, "avg_pool2d", forbidden)
    monkeypatch.setattr(torch._C._nn, "max_pool2d_with_indices", forbidden)
    x = torch.randn(1, 2, 5, 5, dtype=DT)
    g = torch.ones(1, 2, 3, 3, dtype=DT)
    pool.max_pool2d(x, 3, 2, 1, return_indices=True)
    pool.max_pool2d_backward(g, x, 3, 2, 1)
    pool.avg_pool2d(x, 3, 2, 1)
    pool.avg_pool2d_backward(g, x, 3, 2, 1)
    with pytest.raises(AssertionError, match="called a torch pooling"):  # the patch is in force
        F.max_pool2d(x, 2)


def test_import_does_not_load_matplotlib():
    import subprocess

    code = "import sys, course_lib.pool; assert 'matplotlib' not in sys.modules and 'ipywidgets' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


# --- bad input ----------------------------------------------------------------------------
def test_errors_name_the_function_and_the_values():
    x = torch.zeros(1, 1, 4, 4, dtype=DT)
    with pytest.raises(ValueError, match=r"max_pool2d: kernel_size \(5, 5\) is larger than the padded input .* \(4, 4\)"):
        pool.max_pool2d(x, 5)
    with pytest.raises(ValueError, match=r"avg_pool2d: kernel_size \(3, 7\) is larger than the padded input .* \(6, 6\)"):
        pool.avg_pool2d(x, (3, 7), padding=1)
    with pytest.raises(ValueError, match=r"max_pool2d: padding should be at most half the kernel size .* got padding=\(2, 2\) for kernel_size=\(3, 3\)"):
        pool.max_pool2d(x, 3, padding=2)
    with pytest.raises(ValueError, match=r"avg_pool2d_backward: padding should be at most half"):
        pool.avg_pool2d_backward(torch.zeros(1, 1, 5, 5, dtype=DT), x, 1, padding=(0, 1))
    with pytest.raises(ShapeError, match=r"max_pool2d: x should have 4 dimensions \(N, C, H, W\) or 3 \(C, H, W\), got 2: shape \(4, 4\)"):
        pool.max_pool2d(x[0, 0], 2)
    with pytest.raises(ShapeError, match=r"avg_pool2d: x should have 4 dimensions .* got 5"):
        pool.avg_pool2d(x[None], 2)
    with pytest.raises(ShapeError, match=r"max_pool2d: x should be a torch.Tensor, got list"):
        pool.max_pool2d([[1.0]], 1)
    with pytest.raises(ShapeError, match=r"avg_pool2d: x should be a floating-point tensor, got dtype torch.int64"):
        pool.avg_pool2d(torch.zeros(1, 1, 2, 2, dtype=torch.long), 2)
    with pytest.raises(ShapeError, match=r"max_pool2d: x should not be empty"):
        pool.max_pool2d(torch.zeros(0, 1, 2, 2, dtype=DT), 2)
    for bad in (0, (2, 0), (2, 2, 2), 1.5, True, "2"):
        with pytest.raises(ValueError, match=r"max_pool2d: kernel_size should be an int >= 1 or a pair of them, got"):
            pool.max_pool2d(x, bad)
    with pytest.raises(ValueError, match=r"avg_pool2d: stride should be an int >= 1 or a pair of them, got 0"):
        pool.avg_pool2d(x, 2, 0)
    with pytest.raises(ValueError, match=r"max_pool2d: padding should be an int >= 0 or a pair of them, got -1"):
        pool.max_pool2d(x, 2, 1, -1)
    with pytest.raises(ValueError, match=r"max_pool2d: ceil_mode=True is not supported"):
        pool.max_pool2d(x, 2, ceil_mode=True)
    with pytest.raises(ValueError, match=r"avg_pool2d_backward: dilation is not supported here .* got dilation=2"):
        pool.avg_pool2d_backward(torch.zeros(1, 1, 2, 2, dtype=DT), x, 2, dilation=2)


def test_backward_checks_grad_out():
    x = torch.zeros(2, 3, 6, 6, dtype=DT)
    with pytest.raises(ShapeError, match=r"max_pool2d_backward: grad_out should have shape \(2, 3, 3, 3\), got \(2, 3, 2, 2\)"):
        pool.max_pool2d_backward(torch.zeros(2, 3, 2, 2, dtype=DT), x, 2)
    with pytest.raises(ShapeError, match=r"avg_pool2d_backward: grad_out should have 3 dimension\(s\) \(3, 2, 2\), got 4"):
        pool.avg_pool2d_backward(torch.zeros(1, 3, 2, 2, dtype=DT), x[0], 3)
    with pytest.raises(ShapeError, match=r"max_pool2d_backward: all tensors should have the same dtype, got grad_out: torch.float32, x: torch.float64"):
        pool.max_pool2d_backward(torch.zeros(2, 3, 3, 3), x, 2)
    with pytest.raises(ShapeError, match=r"avg_pool2d_backward: grad_out should be a torch.Tensor, got NoneType"):
        pool.avg_pool2d_backward(None, x, 2)


# --- explorers ------------------------------------------------------------------------------
def test_digit_maps_are_digits_and_their_sobel_edges():
    from course_lib.widgets.pool import digit_maps

    maps = digit_maps()
    assert maps["pixels"].shape == maps["edges"].shape == (10, 8, 8)
    sobel = torch.tensor([[[[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]]]], dtype=DT)
    close(maps["edges"], F.relu(F.conv2d(maps["pixels"][:, None], sobel, padding=1))[:, 0])


def test_pooling_explorer_shows_what_the_library_computes():
    from course_lib.widgets.pool import PoolingExplorer

    ex = PoolingExplorer()
    ex.set_state(source="edges", digit=5, kernel=3, stride=2, padding=1, mode="max")
    x = ex.maps["edges"][5][None, None]
    y, idx = F.max_pool2d(x, 3, 2, 1, return_indices=True)
    close(ex.result["y"], y[0, 0], atol=0)
    assert len(ex.boxes.get_segments()) == y.numel() == 16
    flat = torch.unique(idx)
    dots = torch.tensor(ex.dots.get_offsets().tolist())
    assert dots.tolist() == torch.stack([flat % 8, flat // 8], dim=1).double().tolist()
    assert "H_out = floor((8+2*1-3)/2)+1 = 4" in ex.info.get_text() and "Padding counts as -inf" in ex.legend.get_text()
    ex.set_state(mode="avg")
    close(ex.result["y"], F.avg_pool2d(x, 3, 2, 1)[0, 0])
    assert len(ex.dots.get_offsets()) == 0
    ex.set_state(kernel=1, padding=2)  # PyTorch's rule: padding <= kernel // 2
    assert ex.result["padding"] == 0 and "(p=2 > k//2: not allowed)" in ex.info.get_text()
    assert "OK" in ex.self_check()
    # the 50 ms step budget is measured by `make bench` (docs/benchmarks.md), not asserted on a shared machine


def test_pool_gradient_explorer_routes_like_autograd():
    from course_lib.widgets.pool import PoolGradientExplorer

    ex = PoolGradientExplorer()
    for mode, fn in (("max", F.max_pool2d), ("avg", F.avg_pool2d)):
        for kernel, stride, cell in ((2, 1, 7), (3, 2, 3), (4, 4, 9)):
            ex.set_state(mode=mode, kernel=kernel, stride=stride, upstream="one", cell=cell)
            x = ex.x[None, None].clone().requires_grad_(True)
            y = fn(x, kernel, stride)
            g = torch.zeros_like(y)
            ho, wo = y.shape[-2:]
            i, j = divmod(min(cell, ho * wo - 1), wo)
            g[0, 0, i, j] = 1.0
            y.backward(g)
            close(ex.grad, x.grad[0, 0])
            close(ex.y, y.detach()[0, 0])
            ex.set_state(upstream="all")
            x.grad = None
            fn(x, kernel, stride).backward(torch.ones_like(y))
            close(ex.grad, x.grad[0, 0])
    ex.set_state(mode="max", kernel=2, stride=1, upstream="all")
    assert float(ex.grad.sum()) == 25.0  # one unit of gradient per output cell
    assert "OK" in ex.self_check()
    ex.set_state(upstream="one", cell=0)
    assert "OK" in ex.self_check("cell")
