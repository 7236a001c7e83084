"""course_lib.regularize against PyTorch: dropout (torch's own mask, eval mode, p = 0 and 1,
special values), clip_grad_norm against clip_grad_norm_ (norm types, the 1e-6, non-finite
gradients, error_if_nonfinite), AdamW against torch.optim.AdamW, the digit shifts and early stopping."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st

from course_lib import regularize as reg
from tests.strategies import float_tensors, shapes

DT = torch.float64
TOL = dict(rtol=1e-10, atol=1e-10)
PS = st.sampled_from([0.0, 0.1, 0.5, 0.9, 1.0])


def torch_mask(shape, p, seed):
    """torch's own dropout mask: run F.dropout on ones after seeding the global generator."""
    torch.manual_seed(seed)
    return F.dropout(torch.ones(shape, dtype=DT), p, training=True) != 0


@given(x=float_tensors(shapes(min_side=1)), p=PS, seed=st.integers(0, 2**31 - 1))
def test_dropout_equals_torch_with_the_same_mask(x, p, seed):
    torch.manual_seed(seed)
    ref = F.dropout(x, p, training=True)
    ours_mask = reg.dropout(x, p, mask=torch_mask(x.shape, p, seed)) if p < 1 else reg.dropout(x, p)
    ours_gen = reg.dropout(x, p, generator=torch.Generator().manual_seed(seed))
    torch.testing.assert_close(ours_mask, ref, equal_nan=True, **TOL)
    torch.testing.assert_close(ours_gen, ref, equal_nan=True, **TOL)  # same draws as torch's bernoulli_(1 - p)


@given(x=float_tensors(shapes(min_side=1)), p=PS)
def test_dropout_eval_is_identity_like_nn_dropout(x, p):
    layer = torch.nn.Dropout(p).eval()
    torch.testing.assert_close(reg.dropout(x, p, training=False), layer(x), equal_nan=True, rtol=0, atol=0)


def test_dropout_backward_and_module():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(5, 7, generator=gen, dtype=DT, requires_grad=True)
    mask = torch_mask(x.shape, 0.3, 4)
    torch.manual_seed(4)
    ref = torch.nn.Dropout(0.3)(x)
    ours = reg.dropout(x, 0.3, mask=mask)
    torch.testing.assert_close(ours, ref, **TOL)
    dy = torch.randn(5, 7, generator=gen, dtype=DT)
    g_ours = torch.autograd.grad(ours, x, dy)[0]
    torch.testing.assert_close(g_ours, torch.autograd.grad(ref, x, dy)[0], **TOL)
    torch.testing.assert_close(g_ours, dy * mask / 0.7, **TOL)


def test_dropout_keeps_the_mean():
    x = torch.ones(200_000, dtype=DT)
    y = reg.dropout(x, 0.25, generator=torch.Generator().manual_seed(0))
    assert float(y.mean()) == pytest.approx(1.0, abs=0.01)
    assert set(y.unique().tolist()) == {0.0, 1 / 0.75}


def test_dropout_mask_broadcasts_and_is_checked():
    x = torch.arange(6.0).reshape(2, 3)
    torch.testing.assert_close(reg.dropout(x, 0.5, mask=torch.tensor([1, 0, 1])), x * torch.tensor([2.0, 0.0, 2.0]))
    with pytest.raises(ValueError, match=r"dropout: mask should broadcast to x's shape \(2, 3\), got \(2,\)"):
        reg.dropout(x, 0.5, mask=torch.ones(2))
    with pytest.raises(ValueError, match="dropout: mask should hold only 0 and 1"):
        reg.dropout(x, 0.5, mask=torch.full((2, 3), 2.0))
    with pytest.raises(ValueError, match="dropout: p is the probability of dropping a unit and should lie in"):
        reg.dropout(x, 1.5)
    with pytest.raises(ValueError, match="dropout: x should be a floating-point tensor"):
        reg.dropout(torch.ones(3, dtype=torch.long), 0.5)


# --- clipping -----------------------------------------------------------------------
grad_lists = st.lists(float_tensors(shapes(min_side=0, max_dims=2)), min_size=1, max_size=3)
NORM_TYPES = st.sampled_from([2.0, 1.0, 3.0, math.inf])


def torch_clip(grads, max_norm, norm_type, error_if_nonfinite=False):
    params = [torch.zeros_like(g, requires_grad=True) for g in grads]
    for p, g in zip(params, grads):
        p.grad = g.clone()
    total = torch.nn.utils.clip_grad_norm_(params, max_norm, norm_type, error_if_nonfinite=error_if_nonfinite)
    return [p.grad for p in params], float(total)


@given(grads=grad_lists, max_norm=st.sampled_from([0.0, 0.5, 1.0, 1e3]), norm_type=NORM_TYPES)
def test_clip_grad_norm_equals_torch_including_special_values(grads, max_norm, norm_type):
    if math.isinf(norm_type) and any(g.numel() == 0 for g in grads):
        with pytest.raises(RuntimeError, match="infinity norm on an empty tensor"):
            torch_clip(grads, max_norm, norm_type)
        with pytest.raises(ValueError, match=r"clip_grad_norm: the inf norm of an empty gradient \(grads\[\d\]"):
            reg.clip_grad_norm(grads, max_norm, norm_type)
        return
    ref, ref_total = torch_clip(grads, max_norm, norm_type)
    ours, total = reg.clip_grad_norm(grads, max_norm, norm_type)
    assert total == pytest.approx(ref_total, rel=1e-12, nan_ok=True) or (math.isinf(total) and total == ref_total)
    for a, r in zip(ours, ref):
        torch.testing.assert_close(a, r, equal_nan=True, **TOL)
    for a, g in zip(ours, grads):
        assert a is not g  # copies: the inputs are left alone


def test_clip_grad_norm_scales_a_norm_equal_to_max_norm_by_the_1e6():
    g = [torch.tensor([3.0, 4.0], dtype=DT)]  # norm exactly 5
    (clipped,), total = reg.clip_grad_norm(g, 5.0)
    assert total == 5.0
    torch.testing.assert_close(clipped, g[0] * 5.0 / (5.0 + 1e-6), rtol=0, atol=0)
    torch.testing.assert_close(clipped, torch_clip(g, 5.0, 2.0)[0][0], rtol=0, atol=0)


def test_clip_grad_norm_non_finite():
    grads = [torch.tensor([1.0, math.inf], dtype=DT), torch.tensor([2.0], dtype=DT)]
    (a, b), total = reg.clip_grad_norm(grads, 1.0)
    assert total == math.inf and math.isnan(float(a[1])) and float(a[0]) == 0.0 and float(b[0]) == 0.0
    with pytest.raises(RuntimeError, match="clip_grad_norm: the total norm of order 2.0 of the gradients is non-finite"):
        reg.clip_grad_norm(grads, 1.0, error_if_nonfinite=True)
    with pytest.raises(RuntimeError, match="non-finite"):
        torch_clip(grads, 1.0, 2.0, error_if_nonfinite=True)


def test_clip_grad_norm_edge_cases_and_errors():
    assert reg.clip_grad_norm([], 1.0) == ([], 0.0)
    assert float(torch.nn.utils.clip_grad_norm_([], 1.0)) == 0.0
    x = torch.ones(3)  # float32 works and keeps its dtype
    (y,), _ = reg.clip_grad_norm([x], 1.0)
    assert y.dtype == torch.float32
    torch.testing.assert_close(y, torch_clip([x], 1.0, 2.0)[0][0], rtol=0, atol=0)
    with pytest.raises(ValueError, match=r"clip_grad_norm: grads\[1\] should be a floating-point tensor"):
        reg.clip_grad_norm([torch.ones(2), torch.ones(2, dtype=torch.long)], 1.0)
    with pytest.raises(ValueError, match="clip_grad_norm: norm_type should be positive or inf"):
        reg.clip_grad_norm([torch.ones(2)], 1.0, norm_type=0)


# --- AdamW --------------------------------------------------------------------------
@given(shape=shapes(min_side=1), wd=st.sampled_from([0.0, 0.01, 0.5]), lr=st.sampled_from([1e-3, 0.1]), seed=st.integers(0, 1000))
def test_adamw_step_equals_torch_over_three_steps(shape, wd, lr, seed):
    gen = torch.Generator().manual_seed(seed)
    p_ref = torch.randn(shape, generator=gen, dtype=DT, requires_grad=True)
    opt = torch.optim.AdamW([p_ref], lr=lr, weight_decay=wd)
    p, m, v = p_ref.detach().clone(), torch.zeros(shape, dtype=DT), torch.zeros(shape, dtype=DT)
    for t in (1, 2, 3):
        g = torch.randn(shape, generator=gen, dtype=DT)
        p_ref.grad = g.clone()
        opt.step()
        p, m, v = reg.adamw_step(p, g, m, v, t, lr=lr, weight_decay=wd)
        torch.testing.assert_close(p, p_ref.detach(), **TOL)


def test_adamw_class_equals_torch_and_differs_from_adam_l2():
    gen = torch.Generator().manual_seed(0)
    w0 = torch.randn(4, 3, generator=gen, dtype=DT)
    grads = [torch.randn(4, 3, generator=gen, dtype=DT) for _ in range(3)]
    ours, ref, l2 = (w0.clone().requires_grad_() for _ in range(3))
    o1, o2 = reg.AdamW([ours], lr=0.1, weight_decay=0.3), torch.optim.AdamW([ref], lr=0.1, weight_decay=0.3)
    o3 = torch.optim.Adam([l2], lr=0.1, weight_decay=0.3)
    for g in grads:
        for p, o in ((ours, o1), (ref, o2), (l2, o3)):
            p.grad = g.clone()
            o.step()
    torch.testing.assert_close(ours, ref, **TOL)
    assert float((ours - l2).detach().abs().max()) > 1e-3


# --- augmentation and early stopping ----------------------------------------------------
@given(dx=st.integers(-9, 9), dy=st.integers(-9, 9), n=st.integers(0, 3))
def test_shift_images_is_a_masked_roll(dx, dy, n):
    X = torch.arange(1.0, n * 64 + 1).reshape(n, 64)
    out = reg.shift_images(X, dx, dy).reshape(n, 8, 8)
    rows, cols = torch.arange(8).reshape(8, 1), torch.arange(8).reshape(1, 8)
    inside = (rows - dy >= 0) & (rows - dy < 8) & (cols - dx >= 0) & (cols - dx < 8)
    expected = torch.roll(X.reshape(n, 8, 8), shifts=(dy, dx), dims=(1, 2)) * inside if abs(dx) < 8 and abs(dy) < 8 else torch.zeros(n, 8, 8)
    torch.testing.assert_close(out, expected)


def test_random_shifts_and_errors():
    X = torch.rand(50, 64, generator=torch.Generator().manual_seed(0))
    Y = reg.random_shifts(X, torch.Generator().manual_seed(1), max_shift=1)
    assert Y.shape == X.shape and not torch.equal(X, Y)
    with pytest.raises(ValueError, match=r"shift_images: X should have 2 dimension\(s\) \(\*, 64\), got 3"):
        reg.shift_images(torch.ones(3, 8, 8), 1, 0)
    with pytest.raises(ValueError, match="shift_images: dx should be an int"):
        reg.shift_images(torch.ones(3, 64), 0.5, 0)


def test_early_stopping_keeps_the_best_state():
    model = torch.nn.Linear(2, 1)
    stopper = reg.EarlyStopping(patience=2)
    losses = [1.0, 0.5, 0.6, 0.4, 0.45, 0.41]
    stops = []
    for i, loss in enumerate(losses):
        with torch.no_grad():
            model.bias.fill_(float(i))
        stops.append(stopper.step(loss, model))
    assert stops == [False, False, False, False, False, True]
    assert stopper.best == 0.4 and stopper.best_step == 3
    assert float(stopper.best_state["bias"]) == 3.0
    with pytest.raises(ValueError, match="EarlyStopping: patience should be a positive int"):
        reg.EarlyStopping(patience=0)
