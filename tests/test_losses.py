"""course_lib.losses against torch.nn.functional: forward values and gradients
(via torch.autograd) in float64, every reduction, random shapes, extreme logits."""

from __future__ import annotations

import sys
from typing import Tuple

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st

from course_lib import losses
from course_lib.validate import ShapeError

DT = torch.float64
REDUCTIONS = st.sampled_from(["mean", "sum", "none"])
SHAPES = st.lists(st.integers(1, 5), min_size=0, max_size=3).map(tuple)
SEEDS = st.integers(0, 2**31 - 1)
SCALES = st.sampled_from([1.0, 10.0, 1000.0])


def close(ours: torch.Tensor, ref: torch.Tensor, rtol: float = 1e-12, atol: float = 1e-12) -> None:
    assert ours.shape == ref.shape and ours.dtype == ref.dtype
    torch.testing.assert_close(ours, ref, rtol=rtol, atol=atol)


def torch_grad(fn, x: torch.Tensor, reduction: str, gen: torch.Generator, *args) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Loss, a random upstream gradient and torch's gradient w.r.t. ``x``."""
    x = x.clone().requires_grad_(True)
    loss = fn(x, *args, reduction=reduction)
    g = torch.randn(loss.shape, generator=gen, dtype=DT)
    loss.backward(g)
    return loss.detach(), g, x.grad


# --- MSE -------------------------------------------------------------------------------
@given(shape=SHAPES, seed=SEEDS, reduction=REDUCTIONS)
def test_mse_matches_torch(shape, seed, reduction):
    gen = torch.Generator().manual_seed(seed)
    pred, target = torch.randn(shape, generator=gen, dtype=DT), torch.randn(shape, generator=gen, dtype=DT)
    ref, g, ref_grad = torch_grad(F.mse_loss, pred, reduction, gen, target)
    close(losses.mse_loss(pred, target, reduction), ref)
    close(losses.mse_loss_backward(pred, target, reduction, grad_output=g), ref_grad)


@given(shape=SHAPES, seed=SEEDS)
def test_mse_default_is_mean_and_gradient_formula(shape, seed):
    gen = torch.Generator().manual_seed(seed)
    pred, target = torch.randn(shape, generator=gen, dtype=DT), torch.randn(shape, generator=gen, dtype=DT)
    close(losses.mse_loss(pred, target), ((pred - target) ** 2).mean())
    close(losses.mse_loss_backward(pred, target), 2 * (pred - target) / pred.numel())


# --- BCE on probabilities ---------------------------------------------------------------
def probabilities(shape, gen: torch.Generator) -> torch.Tensor:
    """Random probabilities with some exact 0s and 1s and some values within 1e-30 of them."""
    p = torch.rand(shape, generator=gen, dtype=DT)
    pick = torch.rand(shape, generator=gen)
    p = torch.where(pick < 0.1, torch.zeros_like(p), p)
    p = torch.where((pick >= 0.1) & (pick < 0.2), torch.ones_like(p), p)
    return torch.where((pick >= 0.2) & (pick < 0.25), torch.full_like(p, 1e-60), p)


@given(shape=SHAPES, seed=SEEDS, reduction=REDUCTIONS, hard=st.booleans())
def test_bce_matches_torch_including_clamp(shape, seed, reduction, hard):
    gen = torch.Generator().manual_seed(seed)
    p = probabilities(shape, gen)
    target = torch.rand(shape, generator=gen, dtype=DT)
    if hard:
        target = target.round()
    ref, g, ref_grad = torch_grad(F.binary_cross_entropy, p, reduction, gen, target)
    close(losses.binary_cross_entropy(p, target, reduction), ref)
    close(losses.binary_cross_entropy_backward(p, target, reduction, grad_output=g), ref_grad, rtol=1e-10)


def test_bce_clamp_values():
    p = torch.tensor([0.0, 1.0, 0.5], dtype=DT)
    y = torch.tensor([1.0, 0.0, 1.0], dtype=DT)
    loss = losses.binary_cross_entropy(p, y, reduction="none")
    assert torch.isfinite(loss).all()
    close(loss, torch.tensor([100.0, 100.0, -torch.log(torch.tensor(0.5, dtype=DT)).item()], dtype=DT))


# --- BCE on logits ----------------------------------------------------------------------
@given(shape=SHAPES, seed=SEEDS, reduction=REDUCTIONS, scale=SCALES, hard=st.booleans())
def test_bce_with_logits_matches_torch(shape, seed, reduction, scale, hard):
    gen = torch.Generator().manual_seed(seed)
    z = torch.randn(shape, generator=gen, dtype=DT) * scale
    target = torch.rand(shape, generator=gen, dtype=DT)
    if hard:
        target = target.round()
    ref, g, ref_grad = torch_grad(F.binary_cross_entropy_with_logits, z, reduction, gen, target)
    ours = losses.binary_cross_entropy_with_logits(z, target, reduction)
    assert torch.isfinite(ours).all()
    close(ours, ref, rtol=1e-12, atol=1e-10)
    close(losses.binary_cross_entropy_with_logits_backward(z, target, reduction, grad_output=g), ref_grad)


def test_bce_with_logits_extreme():
    z = torch.tensor([1000.0, -1000.0, 1000.0, -1000.0], dtype=DT)
    y = torch.tensor([0.0, 1.0, 1.0, 0.0], dtype=DT)
    close(losses.binary_cross_entropy_with_logits(z, y, "none"), torch.tensor([1000.0, 1000.0, 0.0, 0.0], dtype=DT))
    close(losses.binary_cross_entropy_with_logits_backward(z, y, "none"), torch.tensor([1.0, -1.0, 0.0, 0.0], dtype=DT))


# --- cross-entropy ----------------------------------------------------------------------
@given(n=st.integers(1, 6), c=st.integers(1, 6), seed=SEEDS, reduction=REDUCTIONS, scale=SCALES)
def test_cross_entropy_class_indices_matches_torch(n, c, seed, reduction, scale):
    gen = torch.Generator().manual_seed(seed)
    z = torch.randn(n, c, generator=gen, dtype=DT) * scale
    y = torch.randint(0, c, (n,), generator=gen)
    ref, g, ref_grad = torch_grad(F.cross_entropy, z, reduction, gen, y)
    ours = losses.cross_entropy(z, y, reduction)
    assert torch.isfinite(ours).all()
    close(ours, ref, rtol=1e-12, atol=1e-10)
    close(losses.cross_entropy_backward(z, y, reduction, grad_output=g), ref_grad)


@given(n=st.integers(1, 6), c=st.integers(1, 6), seed=SEEDS, reduction=REDUCTIONS, scale=SCALES, normalised=st.booleans())
def test_cross_entropy_probability_targets_matches_torch(n, c, seed, reduction, scale, normalised):
    gen = torch.Generator().manual_seed(seed)
    z = torch.randn(n, c, generator=gen, dtype=DT) * scale
    t = torch.rand(n, c, generator=gen, dtype=DT)
    if normalised:
        t = t / t.sum(dim=1, keepdim=True)
    ref, g, ref_grad = torch_grad(F.cross_entropy, z, reduction, gen, t)
    close(losses.cross_entropy(z, t, reduction), ref, rtol=1e-12, atol=1e-10)
    close(losses.cross_entropy_backward(z, t, reduction, grad_output=g), ref_grad, rtol=1e-12, atol=1e-10)


@given(n=st.integers(1, 6), c=st.integers(2, 6), seed=SEEDS)
def test_cross_entropy_gradient_is_softmax_minus_onehot_over_n(n, c, seed):
    gen = torch.Generator().manual_seed(seed)
    z = torch.randn(n, c, generator=gen, dtype=DT)
    y = torch.randint(0, c, (n,), generator=gen)
    expected = (torch.softmax(z, dim=1) - F.one_hot(y, c).to(DT)) / n
    close(losses.cross_entropy_backward(z, y), expected)
    close(losses.one_hot(y, c), F.one_hot(y, c).to(DT))


def test_cross_entropy_extreme_logits():
    z = torch.tensor([[1000.0, 0.0, -1000.0], [-1000.0, -1000.0, -1000.0], [1000.0, 1000.0, -1000.0]], dtype=DT)
    y = torch.tensor([2, 1, 0])
    ours = losses.cross_entropy(z, y, "none")
    close(ours, torch.tensor([2000.0, torch.log(torch.tensor(3.0, dtype=DT)).item(), torch.log(torch.tensor(2.0, dtype=DT)).item()], dtype=DT))
    grad = losses.cross_entropy_backward(z, y)
    assert torch.isfinite(grad).all()
    close(grad, torch.autograd.functional.jacobian(lambda x: F.cross_entropy(x, y), z))


# --- bad input --------------------------------------------------------------------------
def test_cross_entropy_target_errors_name_function_and_shapes():
    z = torch.zeros(4, 3, dtype=DT)
    with pytest.raises(ShapeError, match=r"cross_entropy: target should have shape \(N\,\).*got \(5,\)"):
        losses.cross_entropy(z, torch.zeros(5, dtype=torch.long))
    with pytest.raises(ShapeError, match=r"cross_entropy: target of shape \(4,\).*integer dtype.*torch.float64"):
        losses.cross_entropy(z, torch.zeros(4, dtype=DT))
    with pytest.raises(ShapeError, match=r"cross_entropy_backward: target\[1\] = 3 .*\(4, 3\).*0\.\.2"):
        losses.cross_entropy_backward(z, torch.tensor([0, 3, 1, 2]))
    with pytest.raises(ShapeError, match=r"target\[0\] = -1"):
        losses.cross_entropy(z, torch.tensor([-1, 0, 1, 2]))
    with pytest.raises(ShapeError, match=r"cross_entropy: target should have shape \(N, C\).*got \(4, 2\)"):
        losses.cross_entropy(z, torch.zeros(4, 2, dtype=DT))
    with pytest.raises(ShapeError, match=r"cross_entropy: target should be class indices.*got shape \(4, 3, 1\)"):
        losses.cross_entropy(z, torch.zeros(4, 3, 1, dtype=DT))
    with pytest.raises(ShapeError, match=r"cross_entropy: logits should have 2 dimension\(s\) \(N, C\), got 1"):
        losses.cross_entropy(torch.zeros(3, dtype=DT), torch.tensor([0]))


def test_shape_dtype_and_reduction_errors():
    a = torch.zeros(2, 3, dtype=DT)
    with pytest.raises(ShapeError, match=r"mse_loss: pred and target should have the same shape, got \(2, 3\) and \(3, 2\)"):
        losses.mse_loss(a, torch.zeros(3, 2, dtype=DT))
    with pytest.raises(ShapeError, match=r"mse_loss_backward: target should be a floating-point tensor"):
        losses.mse_loss_backward(a, torch.zeros(2, 3, dtype=torch.long))
    with pytest.raises(ShapeError, match=r"binary_cross_entropy_with_logits: .*same dtype"):
        losses.binary_cross_entropy_with_logits(a, torch.zeros(2, 3, dtype=torch.float32))
    with pytest.raises(ShapeError, match=r"binary_cross_entropy: p should be a torch.Tensor, got list"):
        losses.binary_cross_entropy([0.5], torch.zeros(1, dtype=DT))
    with pytest.raises(ShapeError, match=r"mse_loss_backward: grad_output should have 0 dimension"):
        losses.mse_loss_backward(a, a, "mean", grad_output=torch.ones(2, 3, dtype=DT))
    with pytest.raises(ShapeError, match=r"cross_entropy_backward: grad_output should have shape \(2,\)"):
        losses.cross_entropy_backward(a, torch.tensor([0, 1]), "none", grad_output=torch.ones(3, dtype=DT))
    with pytest.raises(ValueError, match=r"mse_loss: reduction should be 'mean', 'sum' or 'none', got 'avg'"):
        losses.mse_loss(a, a, reduction="avg")
    with pytest.raises(ValueError, match=r"binary_cross_entropy: p should hold probabilities in \[0, 1\]"):
        losses.binary_cross_entropy(torch.tensor([1.5], dtype=DT), torch.tensor([1.0], dtype=DT))


def test_import_does_not_load_matplotlib():
    import subprocess

    code = "import sys, course_lib.losses; assert 'matplotlib' not in sys.modules and 'ipywidgets' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


# --- widgets ----------------------------------------------------------------------------
def test_cross_entropy_explorer_state_and_frames():
    from course_lib.widgets.loss import CrossEntropyExplorer

    ex = CrossEntropyExplorer()
    ex.set_state(z0=1.0, z1=-0.5, z2=2.0, target=2)
    z = torch.tensor([[1.0, -0.5, 2.0]], dtype=DT)
    close(ex.loss, F.cross_entropy(z, torch.tensor([2])))
    close(ex.grad, torch.softmax(z, 1)[0] - torch.tensor([0.0, 0.0, 1.0], dtype=DT))
    heights = [b.get_height() for b in ex.bars[2]]
    assert heights == pytest.approx(ex.grad.tolist())
    assert "OK" in ex.self_check()
    assert "OK" in ex.self_check("target")


def test_prediction_loss_explorer_state_and_frames():
    from course_lib.widgets.loss import PredictionLossExplorer

    ex = PredictionLossExplorer()
    ex.set_state(prediction=0.2, target=1.0)
    assert ex.values["mse"] == pytest.approx(0.64)
    assert ex.values["bce"] == pytest.approx(-torch.log(torch.tensor(0.2)).item())
    assert ex.values["dbce"] == pytest.approx(-0.8 / 0.16)
    assert "OK" in ex.self_check()
    assert "OK" in ex.self_check("target")
