"""course_lib.norm against PyTorch in float64: batch norm (train and eval, running statistics,
momentum, 1-D/2-D/3-D inputs) and layer norm, forward, autograd backward and the hand-written
backward, the modules against nn.BatchNorm1d/2d and nn.LayerNorm, special values and errors."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st

from course_lib import norm
from course_lib.validate import ShapeError
from tests.strategies import float_tensors

DT = torch.float64
TOL = dict(rtol=1e-10, atol=1e-10)


@st.composite
def bn_configs(draw):
    """(N, C, *spatial) with size-1 sides, a mode, momentum, eps, affine or not, a seed."""
    n = draw(st.integers(1, 4))
    c = draw(st.integers(1, 3))
    spatial = tuple(draw(st.lists(st.integers(1, 3), min_size=0, max_size=2)))
    return dict(
        shape=(n, c) + spatial, training=draw(st.booleans()), momentum=draw(st.sampled_from([0.0, 0.1, 0.37, 1.0])),
        eps=draw(st.sampled_from([1e-5, 1e-3, 0.5])), affine=draw(st.booleans()), seed=draw(st.integers(0, 2**31 - 1)),
    )


def _values_per_channel(shape) -> int:
    return math.prod(shape) // shape[1]


def _make(cfg):
    gen = torch.Generator().manual_seed(cfg["seed"])
    C = cfg["shape"][1]
    x = (3 * torch.randn(cfg["shape"], generator=gen, dtype=DT) + 1).requires_grad_()
    w = torch.randn(C, generator=gen, dtype=DT).requires_grad_() if cfg["affine"] else None
    b = torch.randn(C, generator=gen, dtype=DT).requires_grad_() if cfg["affine"] else None
    rm = torch.randn(C, generator=gen, dtype=DT)
    rv = torch.rand(C, generator=gen, dtype=DT) + 0.5
    dy = torch.randn(cfg["shape"], generator=gen, dtype=DT)
    return x, w, b, rm, rv, dy


@given(cfg=bn_configs())
def test_batch_norm_forward_backward_and_running_stats_match_torch(cfg):
    x, w, b, rm, rv, dy = _make(cfg)
    rm_t, rv_t = rm.clone(), rv.clone()
    args = dict(training=cfg["training"], momentum=cfg["momentum"], eps=cfg["eps"])
    if cfg["training"] and _values_per_channel(cfg["shape"]) == 1:
        with pytest.raises(ValueError, match="more than 1 value per channel"):
            F.batch_norm(x, rm_t, rv_t, w, b, **args)
        with pytest.raises(ValueError, match="batch_norm: training needs more than 1 value per channel"):
            norm.batch_norm(x, rm, rv, w, b, **args)
        return
    ours = norm.batch_norm(x, rm, rv, w, b, **args)
    ref = F.batch_norm(x, rm_t, rv_t, w, b, **args)
    torch.testing.assert_close(ours, ref, **TOL)
    torch.testing.assert_close(rm, rm_t, **TOL)  # running statistics updated alike (unchanged in eval)
    torch.testing.assert_close(rv, rv_t, **TOL)
    leaves = [t for t in (x, w, b) if t is not None]
    g_ours = torch.autograd.grad(ours, leaves, dy)
    g_ref = torch.autograd.grad(ref, leaves, dy)
    for a, r in zip(g_ours, g_ref):
        torch.testing.assert_close(a, r, **TOL)
    if cfg["training"]:
        dx, dw, db = norm.batch_norm_backward(dy, x.detach(), None if w is None else w.detach(), cfg["eps"])
        torch.testing.assert_close(dx, g_ref[0], **TOL)
        if w is not None:
            torch.testing.assert_close(dw, g_ref[1], **TOL)
            torch.testing.assert_close(db, g_ref[2], **TOL)


def test_running_variance_is_unbiased_and_normalisation_biased():
    x = torch.tensor([[1.0], [2.0], [4.0]], dtype=DT)  # one channel, m = 3
    rm, rv = torch.zeros(1, dtype=DT), torch.ones(1, dtype=DT)
    y = norm.batch_norm(x, rm, rv, training=True, momentum=1.0, eps=0.0)
    torch.testing.assert_close(rv, x.var(unbiased=True).reshape(1), **TOL)
    torch.testing.assert_close(y, (x - x.mean()) / x.var(unbiased=False).sqrt(), **TOL)
    torch.testing.assert_close(rm, x.mean().reshape(1), **TOL)


def test_running_stats_none_in_training_and_required_in_eval():
    x = torch.randn(5, 3, dtype=DT)
    torch.testing.assert_close(norm.batch_norm(x, None, None, training=True), F.batch_norm(x, None, None, training=True), **TOL)
    with pytest.raises(ValueError, match="batch_norm: evaluation mode .* needs running_mean and running_var"):
        norm.batch_norm(x, None, None, training=False)


@pytest.mark.parametrize("ours_cls,ref_cls,shape", [
    (norm.BatchNorm, torch.nn.BatchNorm1d, (6, 3)),
    (norm.BatchNorm, torch.nn.BatchNorm1d, (4, 3, 5)),
    (norm.BatchNorm, torch.nn.BatchNorm2d, (2, 3, 4, 4)),
])
def test_batch_norm_module_matches_nn_over_steps_then_eval(ours_cls, ref_cls, shape):
    gen = torch.Generator().manual_seed(0)
    ours, ref = ours_cls(3, momentum=0.2, dtype=DT), ref_cls(3, momentum=0.2, dtype=DT)
    with torch.no_grad():
        for m in (ours, ref):
            m.weight.copy_(torch.linspace(0.5, 2.0, 3, dtype=DT))
            m.bias.copy_(torch.linspace(-1.0, 1.0, 3, dtype=DT))
    for _ in range(3):
        x = torch.randn(shape, generator=gen, dtype=DT) * 2 + 1
        torch.testing.assert_close(ours(x), ref(x), **TOL)
    for name in ("running_mean", "running_var", "num_batches_tracked"):
        torch.testing.assert_close(getattr(ours, name), getattr(ref, name), **TOL)
    ours.eval(), ref.eval()
    x = torch.randn(shape, generator=gen, dtype=DT).requires_grad_()
    y_o, y_r = ours(x), ref(x)
    torch.testing.assert_close(y_o, y_r, **TOL)
    torch.testing.assert_close(torch.autograd.grad(y_o.sum(), x)[0], torch.autograd.grad(y_r.sum(), x)[0], **TOL)
    assert "3, eps=1e-05, momentum=0.2" in repr(ours)


@st.composite
def ln_configs(draw):
    lead = tuple(draw(st.lists(st.integers(1, 3), min_size=0, max_size=2)))
    normed = tuple(draw(st.lists(st.integers(1, 4), min_size=1, max_size=2)))
    return dict(lead=lead, normed=normed, affine=draw(st.sampled_from(["none", "weight", "both"])),
                as_int=draw(st.booleans()), eps=draw(st.sampled_from([1e-5, 0.1])), seed=draw(st.integers(0, 2**31 - 1)))


@given(cfg=ln_configs())
def test_layer_norm_forward_and_backward_match_torch(cfg):
    gen = torch.Generator().manual_seed(cfg["seed"])
    shape = cfg["lead"] + cfg["normed"]
    ns = cfg["normed"][0] if cfg["as_int"] and len(cfg["normed"]) == 1 else cfg["normed"]
    x = (2 * torch.randn(shape, generator=gen, dtype=DT) - 1).requires_grad_()
    w = torch.randn(cfg["normed"], generator=gen, dtype=DT).requires_grad_() if cfg["affine"] != "none" else None
    b = torch.randn(cfg["normed"], generator=gen, dtype=DT).requires_grad_() if cfg["affine"] == "both" else None
    dy = torch.randn(shape, generator=gen, dtype=DT)
    ours = norm.layer_norm(x, ns, w, b, cfg["eps"])
    ref = F.layer_norm(x, cfg["normed"], w, b, cfg["eps"])
    torch.testing.assert_close(ours, ref, **TOL)
    leaves = [t for t in (x, w, b) if t is not None]
    g_ref = torch.autograd.grad(ref, leaves, dy)
    for a, r in zip(torch.autograd.grad(ours, leaves, dy), g_ref):
        torch.testing.assert_close(a, r, **TOL)
    dx, dw, db = norm.layer_norm_backward(dy, x.detach(), ns, None if w is None else w.detach(), cfg["eps"])
    torch.testing.assert_close(dx, g_ref[0], **TOL)
    if w is not None:
        torch.testing.assert_close(dw, g_ref[1], **TOL)
    if b is not None:
        torch.testing.assert_close(db, g_ref[2], **TOL)


def test_layer_norm_module_matches_nn():
    x = torch.randn(2, 3, 4, dtype=DT)
    ours, ref = norm.LayerNorm((3, 4), dtype=DT), torch.nn.LayerNorm((3, 4), dtype=DT)
    torch.testing.assert_close(ours(x), ref(x), **TOL)
    ours.eval()
    torch.testing.assert_close(ours(x), ref(x), **TOL)  # no train/eval difference


# special values: NaN and +-inf as torch (moderate magnitudes: with entries near 1e300 the
# sums overflow and torch's own results, e.g. 1.4e285 for a constant channel of 1e300, are artefacts)
SPECIAL_MODERATE = (math.nan, math.inf, -math.inf, -0.0, 0.0, 5e-324)


@given(x=float_tensors(st.tuples(st.integers(2, 4), st.integers(1, 3)), values=SPECIAL_MODERATE), training=st.booleans())
def test_batch_norm_special_values_like_torch(x, training):
    rm, rv = torch.zeros(x.shape[1], dtype=DT), torch.ones(x.shape[1], dtype=DT)
    rm_t, rv_t = rm.clone(), rv.clone()
    ours = norm.batch_norm(x, rm, rv, training=training)
    ref = F.batch_norm(x, rm_t, rv_t, training=training)
    torch.testing.assert_close(ours, ref, equal_nan=True, **TOL)
    torch.testing.assert_close(rm, rm_t, equal_nan=True, **TOL)
    torch.testing.assert_close(rv, rv_t, equal_nan=True, **TOL)


@given(x=float_tensors(st.tuples(st.integers(1, 3), st.integers(1, 4)), values=SPECIAL_MODERATE))
def test_layer_norm_special_values_like_torch(x):
    torch.testing.assert_close(norm.layer_norm(x, x.shape[-1]), F.layer_norm(x, x.shape[-1:]), equal_nan=True, **TOL)


def test_float32_works():
    x = torch.randn(8, 3)
    torch.testing.assert_close(norm.batch_norm(x, None, None, training=True), F.batch_norm(x, None, None, training=True))
    torch.testing.assert_close(norm.layer_norm(x, 3), F.layer_norm(x, (3,)))


@pytest.mark.parametrize("call,message", [
    (lambda: norm.batch_norm(torch.ones(4, 3, dtype=torch.long), None, None, training=True),
     "batch_norm: x should be a floating-point tensor, got dtype torch.int64"),
    (lambda: norm.batch_norm(torch.ones(4), None, None, training=True), r"batch_norm: x should have shape \(N, C\)"),
    (lambda: norm.batch_norm(torch.ones(4, 3), torch.zeros(2), torch.ones(3), training=False),
     r"batch_norm: running_mean should have shape \(3,\), got \(2,\)"),
    (lambda: norm.batch_norm(torch.ones(4, 3), torch.zeros(3, dtype=DT), torch.ones(3), training=False),
     "batch_norm: running_mean should have the dtype of x"),
    (lambda: norm.batch_norm(torch.ones(4, 3), None, None, training=True, momentum=1.5), "batch_norm: momentum should lie in"),
    (lambda: norm.batch_norm_backward(torch.ones(4, 2), torch.ones(4, 3)), "batch_norm_backward: dy and x should have the same shape"),
    (lambda: norm.layer_norm(torch.ones(2, 3), (4,)), r"layer_norm: the last 1 dim\(s\) of x should be normalized_shape \(4,\)"),
    (lambda: norm.layer_norm(torch.ones(2, 3), 3, torch.ones(4)), r"layer_norm: weight should have shape \(3,\)"),
    (lambda: norm.layer_norm(torch.ones(2, 3, dtype=torch.int32), 3), "layer_norm: x should be a floating-point tensor"),
    (lambda: norm.layer_norm_backward(torch.ones(2, 3), torch.ones(2, 3), ()), "layer_norm_backward: normalized_shape should be"),
    (lambda: norm.BatchNorm(0), "BatchNorm: num_features should be a positive int"),
])
def test_errors_name_the_function_and_what_was_expected(call, message):
    with pytest.raises(ValueError, match=message):  # ShapeError is a ValueError
        call()


def test_torch_refuses_integer_batch_norm_too():
    with pytest.raises(RuntimeError):
        F.batch_norm(torch.ones(4, 3, dtype=torch.long), None, None, training=True)
    assert issubclass(ShapeError, ValueError)


def test_batch_norm_explorer_trace_is_batch_norms_running_update():
    from course_lib.widgets.init import BatchNormExplorer

    ex = BatchNormExplorer()
    for unbiased in (True, False):
        trace = ex.trace(batch=3, momentum=0.2, steps=6, unbiased=unbiased)
        rm, rv = torch.zeros(1, dtype=DT), torch.ones(1, dtype=DT)
        for k in range(6):
            x = ex.stream[k, :3].reshape(3, 1)
            if unbiased:
                norm.batch_norm(x, rm, rv, training=True, momentum=0.2)
            else:
                rm, rv = 0.8 * rm + 0.2 * x.mean(), 0.8 * rv + 0.2 * x.var(unbiased=False)
            assert float(rm) == pytest.approx(trace["run_mean"][k], rel=1e-12)
            assert float(rv) == pytest.approx(trace["run_var"][k], rel=1e-12)
