"""course_lib.optim against torch.optim (float64), and the optimiser explorer."""

from __future__ import annotations

import math
from typing import Any, Callable, Dict, List

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from course_lib import optim
from course_lib.validate import ShapeError

F64 = torch.float64

SGD_CONFIGS: List[Dict[str, Any]] = [
    dict(lr=0.1),
    dict(lr=0.05, momentum=0.9),
    dict(lr=0.05, momentum=0.9, nesterov=True),
    dict(lr=0.1, momentum=0.5, dampening=0.3, weight_decay=0.1),
    dict(lr=0.01, momentum=0.95, nesterov=True, weight_decay=0.01),
]
ADAM_CONFIGS: List[Dict[str, Any]] = [
    dict(lr=1e-2),
    dict(lr=0.05, betas=(0.8, 0.99), weight_decay=0.1),
    dict(lr=0.01, amsgrad=True),
    dict(lr=0.1, eps=1e-3, weight_decay=0.01, amsgrad=True),
    dict(lr=0.003, betas=(0.0, 0.5)),
]


def _max_trajectory_gap(make_ours: Callable, make_ref: Callable, shapes: List[List[int]], seed: int, steps: int = 100) -> float:
    """Run both optimisers for ``steps`` steps on parameters of the given shapes with the
    gradient of sum(c * log cosh(p - t)) + 0.05 * |p|^2, i.e. g = c * tanh(p - t) + 0.1 * p;
    return the largest difference between the final parameters."""
    gen = torch.Generator().manual_seed(seed)
    init = [torch.randn(shape, generator=gen, dtype=F64) for shape in shapes]
    targets = [torch.randn(shape, generator=gen, dtype=F64) for shape in shapes]
    scales = [torch.rand(shape, generator=gen, dtype=F64) * 3 for shape in shapes]
    finals = []
    for make in (make_ours, make_ref):
        params = [p.clone().requires_grad_() for p in init]
        opt = make(params)
        for _ in range(steps):
            opt.zero_grad()
            with torch.no_grad():
                for p, t, c in zip(params, targets, scales):
                    p.grad = c * torch.tanh(p - t) + 0.1 * p
            opt.step()
        finals.append([p.detach() for p in params])
    assert all(torch.isfinite(p).all() for p in finals[1])
    return max(float((a - b).abs().max()) for a, b in zip(*finals))


def _mlp_gap(make_ours: Callable, make_ref: Callable, seed: int = 1, steps: int = 100) -> float:
    """The same, training a small MLP (W1 (3,4), b1 (4,), W2 (4,2), a 0-d scale) with autograd."""
    gen = torch.Generator().manual_seed(seed)
    X, Y = torch.randn(7, 3, generator=gen, dtype=F64), torch.randn(7, 2, generator=gen, dtype=F64)
    init = [torch.randn(3, 4, generator=gen, dtype=F64), torch.randn(4, generator=gen, dtype=F64),
            torch.randn(4, 2, generator=gen, dtype=F64), torch.tensor(1.0, dtype=F64)]
    finals = []
    for make in (make_ours, make_ref):
        W1, b1, W2, s = params = [p.clone().requires_grad_() for p in init]
        opt = make(params)
        for _ in range(steps):
            opt.zero_grad()
            ((s * torch.tanh(X @ W1 + b1) @ W2 - Y) ** 2).mean().backward()
            opt.step()
        finals.append([p.detach() for p in params])
    return max(float((a - b).abs().max()) for a, b in zip(*finals))


CONFIGS = [(optim.SGD, torch.optim.SGD, c) for c in SGD_CONFIGS] + [(optim.Adam, torch.optim.Adam, c) for c in ADAM_CONFIGS]
CONFIG_IDS = [f"SGD{c}" for c in SGD_CONFIGS] + [f"Adam{c}" for c in ADAM_CONFIGS]
shapes = st.lists(st.lists(st.integers(1, 4), min_size=0, max_size=3), min_size=1, max_size=3)


@given(shapes=shapes, seed=st.integers(0, 10_000), which=st.sampled_from(CONFIGS))
def test_optimisers_match_torch_over_100_steps(shapes: List[List[int]], seed: int, which: Any) -> None:
    ours, ref, config = which
    gap = _max_trajectory_gap(lambda p: ours(p, **config), lambda p: ref(p, **config), shapes, seed)
    assert gap < 1e-9, (ours.__name__, config, gap)


@pytest.mark.parametrize("ours, ref, config", CONFIGS, ids=CONFIG_IDS)
def test_every_configuration_trains_an_mlp_like_torch(ours: Any, ref: Any, config: Dict[str, Any]) -> None:
    assert _mlp_gap(lambda p: ours(p, **config), lambda p: ref(p, **config)) < 1e-9


def test_state_and_zero_grad_follow_torch() -> None:
    w = torch.randn(3, dtype=F64, requires_grad=True)
    unused = torch.randn(2, dtype=F64, requires_grad=True)  # never gets a gradient: skipped
    opt = optim.Adam([w, unused], lr=0.1)
    for _ in range(3):
        opt.zero_grad()
        (w ** 2).sum().backward()
        opt.step()
    assert opt.state[w]["step"] == 3 and set(opt.state[w]) == {"step", "exp_avg", "exp_avg_sq"}
    assert unused not in opt.state and unused.grad is None
    opt.zero_grad()
    assert w.grad is None  # torch's default: set_to_none
    (w ** 2).sum().backward()
    opt.zero_grad(set_to_none=False)
    assert w.grad is not None and torch.equal(w.grad, torch.zeros(3, dtype=F64))
    sgd = optim.SGD([w], lr=0.1)
    (w ** 2).sum().backward()
    sgd.step()
    assert sgd.state[w]["momentum_buffer"] is None


def test_momentum_buffer_does_not_alias_the_gradient() -> None:
    w = torch.ones(2, dtype=F64, requires_grad=True)
    opt = optim.SGD([w], lr=0.1, momentum=0.9)
    w.sum().backward()
    opt.step()
    opt.zero_grad(set_to_none=False)  # zeroes p.grad in place
    assert torch.equal(opt.state[w]["momentum_buffer"], torch.ones(2, dtype=F64))


def test_step_with_closure_returns_the_loss() -> None:
    w = torch.tensor([1.0, -2.0], dtype=F64, requires_grad=True)
    opt = optim.SGD([w], lr=0.25)

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = (w ** 2).sum()
        loss.backward()
        return loss

    loss = opt.step(closure)
    assert float(loss.detach()) == 5.0
    assert torch.equal(w.detach(), torch.tensor([0.5, -1.0], dtype=F64))


# --- functional steps ---------------------------------------------------------------------
@given(shape=st.lists(st.integers(1, 4), min_size=0, max_size=3), seed=st.integers(0, 1000))
def test_functional_steps_match_one_torch_step(shape: List[int], seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    p0 = torch.randn(shape, generator=gen, dtype=F64)
    g = torch.randn(shape, generator=gen, dtype=F64)
    # gradient descent = torch SGD without momentum
    p = p0.clone().requires_grad_()
    p.grad = g.clone()
    torch.optim.SGD([p], lr=0.3).step()
    assert torch.allclose(optim.gd_step(p0, g, 0.3), p.detach(), rtol=0, atol=1e-14)
    # Adam's first step from zero moments
    p = p0.clone().requires_grad_()
    p.grad = g.clone()
    torch.optim.Adam([p], lr=0.1, weight_decay=0.05).step()
    zeros = torch.zeros_like(p0)
    new, m, v = optim.adam_step(p0, g, zeros, zeros, 1, lr=0.1, weight_decay=0.05)
    assert torch.allclose(new, p.detach(), rtol=0, atol=1e-14)


def test_adam_first_step_moves_every_coordinate_by_about_lr() -> None:
    """With m_hat = g and v_hat = g^2 on step 1, the first step is lr * sign(g) (up to eps)."""
    g = torch.tensor([1e-3, -5.0, 200.0], dtype=F64)
    new, m, v = optim.adam_step(torch.zeros(3, dtype=F64), g, torch.zeros(3, dtype=F64), torch.zeros(3, dtype=F64), 1, lr=0.01)
    assert torch.allclose(new, -0.01 * g.sign(), atol=1e-7)
    assert torch.allclose(m, 0.1 * g) and torch.allclose(v, 0.001 * g * g)


def test_sgd_step_first_buffer_is_the_gradient_even_with_dampening() -> None:
    g = torch.tensor([1.0, -2.0], dtype=F64)
    new, buf = optim.sgd_step(torch.zeros(2, dtype=F64), g, None, 0.1, momentum=0.9, dampening=0.5)
    assert torch.equal(buf, g) and torch.allclose(new, -0.1 * g)
    new, buf = optim.sgd_step(new, g, buf, 0.1, momentum=0.9, dampening=0.5)
    assert torch.allclose(buf, 0.9 * g + 0.5 * g)


@pytest.mark.parametrize("step", ["gd", "sgd", "nesterov", "adam", "amsgrad"])
def test_numpy_arrays_give_the_same_numbers_as_tensors(step: str) -> None:
    gen = torch.Generator().manual_seed(3)
    p, g, a, b = (torch.randn(2, 3, generator=gen, dtype=F64) for _ in range(4))
    b = b.abs()
    calls = {
        "gd": lambda p, g, a, b: optim.gd_step(p, g, 0.1),
        "sgd": lambda p, g, a, b: optim.sgd_step(p, g, a, 0.1, momentum=0.9, dampening=0.1, weight_decay=0.01),
        "nesterov": lambda p, g, a, b: optim.sgd_step(p, g, a, 0.1, momentum=0.9, nesterov=True),
        "adam": lambda p, g, a, b: optim.adam_step(p, g, a, b, 4, lr=0.1, weight_decay=0.1),
        "amsgrad": lambda p, g, a, b: optim.amsgrad_step(p, g, a, b, 2 * b, 4, lr=0.1),
    }
    ours_t = calls[step](p, g, a, b)
    ours_n = calls[step](p.numpy(), g.numpy(), a.numpy(), b.numpy())
    ours_t = ours_t if isinstance(ours_t, tuple) else (ours_t,)
    ours_n = ours_n if isinstance(ours_n, tuple) else (ours_n,)
    for t_out, n_out in zip(ours_t, ours_n):
        assert isinstance(n_out, np.ndarray)
        np.testing.assert_allclose(n_out, t_out.numpy(), rtol=0, atol=1e-14)


# --- bad input --------------------------------------------------------------------------
@pytest.mark.parametrize(
    "make, message",
    [
        (lambda p: optim.SGD(p, lr=-0.1), "invalid learning rate lr=-0.1"),
        (lambda p: optim.SGD(p, lr=0.1, momentum=-0.5), "invalid momentum"),
        (lambda p: optim.SGD(p, lr=0.1, nesterov=True), "nesterov=True needs momentum > 0"),
        (lambda p: optim.SGD(p, lr=0.1, momentum=0.9, dampening=0.1, nesterov=True), "dampening = 0"),
        (lambda p: optim.SGD(p, lr=0.1, weight_decay=-1), "invalid weight_decay"),
        (lambda p: optim.Adam(p, lr=-1e-3), "invalid learning rate"),
        (lambda p: optim.Adam(p, betas=(1.0, 0.999)), "beta1=1.0: betas must lie in [0, 1)"),
        (lambda p: optim.Adam(p, betas=(0.9, -0.1)), "beta2=-0.1"),
        (lambda p: optim.Adam(p, eps=-1e-8), "invalid eps"),
        (lambda p: optim.Adam(p, betas=(0.9,)), "betas should be a pair"),
        (lambda p: optim.SGD([], lr=0.1), "empty parameter list"),
    ],
)
def test_bad_hyper_parameters_raise_value_error(make: Callable, message: str) -> None:
    with pytest.raises(ValueError) as info:
        make([torch.zeros(2, requires_grad=True)])
    assert message in str(info.value)


def test_functional_steps_check_hyper_parameters_and_step_number() -> None:
    z = torch.zeros(3, dtype=F64)
    with pytest.raises(ValueError, match="t counts from 1"):
        optim.adam_step(z, z, z, z, 0)
    with pytest.raises(ValueError, match="betas must lie in"):
        optim.adam_step(z, z, z, z, 1, beta2=1.0)
    with pytest.raises(ValueError, match="nesterov=True needs momentum > 0"):
        optim.sgd_step(z, z, None, 0.1, nesterov=True)
    with pytest.raises(ValueError, match="invalid learning rate"):
        optim.gd_step(z, z, -1.0)


def test_wrong_shapes_and_dtypes_raise_shape_error() -> None:
    with pytest.raises(ShapeError, match=r"gd_step: grad should have the shape of param \(3,\), got \(4,\)"):
        optim.gd_step(torch.zeros(3), torch.zeros(4), 0.1)
    with pytest.raises(ShapeError, match=r"sgd_step: buf should have the shape of param \(2, 3\), got \(3, 2\)"):
        optim.sgd_step(torch.zeros(2, 3), torch.zeros(2, 3), torch.zeros(3, 2), 0.1, momentum=0.9)
    with pytest.raises(ShapeError, match="adam_step: param should be a floating-point tensor"):
        optim.adam_step(torch.zeros(3, dtype=torch.long), torch.zeros(3), torch.zeros(3), torch.zeros(3), 1)
    with pytest.raises(ShapeError, match="adam_step: v should have the dtype of param"):
        optim.adam_step(torch.zeros(3, dtype=F64), torch.zeros(3, dtype=F64), torch.zeros(3, dtype=F64), torch.zeros(3), 1)
    with pytest.raises(ShapeError, match="should be a ndarray like param, got Tensor"):
        optim.gd_step(np.zeros(3), torch.zeros(3), 0.1)
    with pytest.raises(ShapeError, match=r"SGD: params\[1\] should be a floating-point tensor"):
        optim.SGD([torch.zeros(2, requires_grad=True), torch.zeros(2, dtype=torch.long)], lr=0.1)
    with pytest.raises(TypeError, match="wrap it in a list"):
        optim.SGD(torch.zeros(2, requires_grad=True), lr=0.1)


# --- learning-rate schedule -------------------------------------------------------------
def _torch_schedule(total: int, warm: int, base: float, min_lr: float) -> List[float]:
    """Learning rates of steps 0..total from torch: LinearLR (1/W -> 1) for W steps, then CosineAnnealingLR."""
    p = torch.zeros(1, requires_grad=True)
    opt = torch.optim.SGD([p], lr=base)
    cosine = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total - warm, eta_min=min_lr)
    sched: Any = cosine
    if warm:
        linear = torch.optim.lr_scheduler.LinearLR(opt, start_factor=1 / warm, end_factor=1.0, total_iters=max(warm - 1, 1))
        sched = torch.optim.lr_scheduler.SequentialLR(opt, [linear, cosine], milestones=[warm])
    lrs = []
    for _ in range(total + 1):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return lrs


@pytest.mark.filterwarnings("ignore::UserWarning")
@given(total=st.integers(2, 60), warm_frac=st.floats(0, 0.99), min_frac=st.floats(0, 0.5))
def test_warmup_cosine_matches_torch_schedulers(total: int, warm_frac: float, min_frac: float) -> None:
    base, warm = 0.3, int(warm_frac * total)
    min_lr = base * min_frac
    for step, torch_lr in enumerate(_torch_schedule(total, warm, base, min_lr)):
        assert math.isclose(optim.warmup_cosine_lr(step, total, base, warm, min_lr), torch_lr, rel_tol=1e-9, abs_tol=1e-15)
    # after total_steps ours stays at min_lr (torch's cosine would rise again)
    assert optim.warmup_cosine_lr(total + 5, total, base, warm, min_lr) == min_lr


def test_warmup_cosine_against_stepping_torch_cosine() -> None:
    base, total, min_lr = 0.5, 30, 0.01
    p = torch.zeros(1, requires_grad=True)
    opt = torch.optim.SGD([p], lr=base)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total, eta_min=min_lr)
    for step in range(total + 1):
        assert math.isclose(optim.warmup_cosine_lr(step, total, base, 0, min_lr), opt.param_groups[0]["lr"], rel_tol=1e-9)
        opt.step()
        sched.step()


def test_warmup_cosine_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="warmup_steps < total_steps"):
        optim.warmup_cosine_lr(0, 10, 0.1, warmup_steps=10)
    with pytest.raises(ValueError, match="step counts from 0"):
        optim.warmup_cosine_lr(-1, 10, 0.1)


# --- the explorer -----------------------------------------------------------------------
@pytest.mark.parametrize("surface", ["Rosenbrock", "saddle", "ill-conditioned quadratic"])
@pytest.mark.parametrize("method", ["GD", "momentum", "Nesterov", "Adam"])
def test_explorer_trajectories_match_torch_optim_with_autograd(surface: str, method: str) -> None:
    """The widget's NumPy trajectory = torch.optim on the same surface with autograd gradients
    (which also checks each surface's hand-written gradient)."""
    from course_lib.widgets.optim import SURFACES, trajectory

    s = SURFACES[surface]
    lr, beta, steps = (s.adam_lr if method == "Adam" else s.lr), 0.8, 60
    ours = trajectory(s, method, lr, beta, steps)
    p = torch.tensor(s.start, dtype=F64, requires_grad=True)
    if method == "Adam":
        opt = torch.optim.Adam([p], lr=lr, betas=(beta, 0.999))
    else:
        opt = torch.optim.SGD([p], lr=lr, momentum=0.0 if method == "GD" else beta, nesterov=method == "Nesterov")
    ref = [p.detach().clone()]
    for _ in range(steps):
        opt.zero_grad()
        s.f(p[0], p[1]).backward()
        opt.step()
        ref.append(p.detach().clone())
    np.testing.assert_allclose(ours, torch.stack(ref).numpy(), rtol=1e-9, atol=1e-9)


def test_explorer_trajectory_stops_when_it_diverges() -> None:
    from course_lib.widgets.optim import SURFACES, trajectory

    path = trajectory(SURFACES["ill-conditioned quadratic"], "GD", lr=0.2, beta=0.0, steps=100)  # lr > 2/25
    assert np.isnan(path[-1]).all() and np.isfinite(path[:5]).all()
    with pytest.raises(ValueError, match="method should be one of"):
        trajectory(SURFACES["saddle"], "RMSprop", 0.1, 0.9)


def test_explorer_widget_self_check_and_state() -> None:
    import ipywidgets as widgets

    from course_lib.widgets.optim import SURFACES, OptimizerExplorer

    e = OptimizerExplorer()
    core = (widgets.Dropdown, widgets.IntSlider, widgets.FloatSlider, widgets.FloatLogSlider, widgets.Checkbox)
    assert all(isinstance(c, core) for c in e.controls.values())
    assert "OK" in e.self_check()
    before = e.image.value
    e.controls["surface"].value = "saddle"  # resets both learning rates to the surface's defaults
    assert e.state()["lr"] == pytest.approx(SURFACES["saddle"].lr) and e.state()["adam_lr"] == pytest.approx(SURFACES["saddle"].adam_lr)
    assert e.image.value != before
    e.set_state(steps=300, beta=0.0)  # Nesterov without momentum is plain GD
    assert e.final_gap["Nesterov"] == e.final_gap["GD"]
    e.controls["Adam"].value = False
    assert set(e.final_gap) == {"GD", "momentum", "Nesterov"}


def test_explorer_switching_surfaces_back_gives_the_same_picture_as_a_fresh_one() -> None:
    """Each surface's static background is cached: coming back to it must not change the image."""
    from course_lib.widgets.optim import OptimizerExplorer

    e = OptimizerExplorer()
    for surface in ["saddle", "ill-conditioned quadratic", "saddle"]:
        e.controls["surface"].value = surface
    e.controls["beta"].value = 0.8
    fresh = OptimizerExplorer("saddle")
    fresh.set_state(**{k: v for k, v in e.state().items() if k != "surface"})
    assert fresh.state() == e.state() and fresh.image.value == e.image.value
