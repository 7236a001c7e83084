"""course_lib.init: gains and standard deviations against torch.nn.init, the drawn weights
against torch's initialisers (same generator, same numbers), the hand-written backward of
depth_statistics against autograd, the variance laws through depth, and the errors."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from course_lib import init

DT = torch.float64


@pytest.mark.parametrize("nl", init.NONLINEARITIES)
def test_gain_is_torch_calculate_gain(nl):
    assert init.gain(nl) == pytest.approx(torch.nn.init.calculate_gain(nl), rel=1e-15)


@given(fan_in=st.integers(1, 500), fan_out=st.integers(1, 500), nl=st.sampled_from(init.NONLINEARITIES))
def test_init_std_formulas(fan_in, fan_out, nl):
    g = torch.nn.init.calculate_gain(nl)
    assert init.init_std(fan_in, fan_out, "naive", nl) == 0.01
    assert init.init_std(fan_in, fan_out, "xavier", nl) == pytest.approx(g * math.sqrt(2 / (fan_in + fan_out)))
    assert init.init_std(fan_in, fan_out, "kaiming", nl) == pytest.approx(g / math.sqrt(fan_in))
    # nn.Linear's default: U(-1/sqrt(fan_in), 1/sqrt(fan_in)), whose std is the bound over sqrt(3)
    assert init.init_std(fan_in, fan_out, "pytorch", nl) == pytest.approx(1 / math.sqrt(3 * fan_in))


@pytest.mark.parametrize("fan_out,fan_in", [(1, 1), (3, 7), (64, 32)])
@pytest.mark.parametrize("nl", ["tanh", "relu", "linear"])
def test_init_weight_draws_what_torch_init_draws(fan_out, fan_in, nl):
    def pair():
        return torch.Generator().manual_seed(11), torch.empty(fan_out, fan_in, dtype=DT)

    g, w = pair()
    torch.nn.init.xavier_normal_(w, gain=torch.nn.init.calculate_gain(nl), generator=g)
    torch.testing.assert_close(init.init_weight(fan_out, fan_in, "xavier", nl, torch.Generator().manual_seed(11), DT), w, rtol=1e-14, atol=0)
    g, w = pair()
    torch.nn.init.kaiming_normal_(w, nonlinearity=nl, generator=g)
    torch.testing.assert_close(init.init_weight(fan_out, fan_in, "kaiming", nl, torch.Generator().manual_seed(11), DT), w, rtol=1e-14, atol=0)
    g, w = pair()
    torch.nn.init.normal_(w, 0.0, 0.01, generator=g)
    torch.testing.assert_close(init.init_weight(fan_out, fan_in, "naive", nl, torch.Generator().manual_seed(11), DT), w, rtol=1e-14, atol=0)
    g, w = pair()
    torch.nn.init.kaiming_uniform_(w, a=math.sqrt(5), generator=g)  # what nn.Linear.reset_parameters does
    torch.testing.assert_close(init.init_weight(fan_out, fan_in, "pytorch", nl, torch.Generator().manual_seed(11), DT), w, rtol=1e-14, atol=0)


def test_nn_linear_default_std_is_one_over_sqrt_3_fan_in():
    torch.manual_seed(0)
    w = torch.nn.Linear(400, 500).weight.detach().double()
    assert float(w.abs().max()) <= 1 / math.sqrt(400)
    assert float(w.std()) == pytest.approx(init.init_std(400, 500, "pytorch"), rel=0.01)


def _autograd_stats(depth, width, scheme, nl, batch, seed):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, width, generator=gen, dtype=DT)
    y = torch.randn(batch, width, generator=gen, dtype=DT)
    ws = [init.init_weight(width, width, scheme, nl, gen, DT).requires_grad_() for _ in range(depth)]
    act = {"relu": torch.relu, "tanh": torch.tanh, "sigmoid": torch.sigmoid, "linear": lambda z: z}[nl]
    h = x
    for w in ws:
        h = act(h @ w.T)
    loss = ((h - y) ** 2).sum() / (2 * batch)
    return float(loss.detach()), [float(g.norm()) for g in torch.autograd.grad(loss, ws)]


@given(depth=st.integers(1, 5), width=st.integers(1, 6), batch=st.integers(1, 5),
       scheme=st.sampled_from(init.SCHEMES), nl=st.sampled_from(init.NONLINEARITIES), seed=st.integers(0, 1000))
def test_depth_statistics_backward_equals_autograd(depth, width, batch, scheme, nl, seed):
    stats = init.depth_statistics(depth, width, scheme, nl, batch=batch, seed=seed, dtype=DT)
    loss, norms = _autograd_stats(depth, width, scheme, nl, batch, seed)
    assert stats["loss"] == pytest.approx(loss, rel=1e-12, abs=1e-300)
    assert stats["gradient_norm"] == pytest.approx(norms, rel=1e-10, abs=1e-300)
    assert len(stats["activation_std"]) == len(stats["activations"]) == depth
    assert stats["activations"][0].shape == (batch, width)


@pytest.fixture(scope="module")
def deep():
    return {(s, nl): init.depth_statistics(10, 256, s, nl, batch=256, seed=0)
            for s in init.SCHEMES for nl in ("tanh", "relu")}


def test_kaiming_keeps_relu_preactivations_at_unit_scale(deep):
    std = deep[("kaiming", "relu")]["preactivation_std"]
    assert all(0.6 < s < 1.6 for s in std), std


def test_pytorch_default_shrinks_relu_signal_by_about_sqrt6_per_layer(deep):
    std = deep[("pytorch", "relu")]["preactivation_std"]
    ratios = [b / a for a, b in zip(std, std[1:])]
    assert all(abs(r - 1 / math.sqrt(6)) < 0.08 for r in ratios), ratios


def test_naive_init_vanishes(deep):
    for nl in ("tanh", "relu"):
        assert deep[("naive", nl)]["activation_std"][-1] < 1e-6


@pytest.mark.parametrize("call,message", [
    (lambda: init.init_std(0, 3, "xavier"), "init_std: fan_in should be a positive int, got 0"),
    (lambda: init.init_std(3, 3, "he"), r"init_std: scheme should be one of \['naive', 'xavier', 'kaiming', 'pytorch'\], got 'he'"),
    (lambda: init.init_std(3, 3, "kaiming", "gelu"), "gain: nonlinearity should be one of"),
    (lambda: init.init_weight(3, 3, "kaiming", dtype=torch.long), "init_weight: dtype should be a floating-point dtype"),
    (lambda: init.depth_statistics(0, 3, "kaiming", "relu"), "depth_statistics: depth should be a positive int"),
    (lambda: init.depth_statistics(2, 3, "kaiming", "softmax"), "depth_statistics: nonlinearity should be one of"),
])
def test_errors(call, message):
    with pytest.raises(ValueError, match=message):
        call()
