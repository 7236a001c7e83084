"""course_lib.rnn against torch.nn.RNN/RNNCell and autograd (float64), and the gradient-flow explorer."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from course_lib import rnn as R
from course_lib.validate import ShapeError

F64 = torch.float64
TOL = 1e-10


def _maxdiff(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).detach().abs().max()) if a.numel() else 0.0


def _torch_rnn(I: int, H: int, layers: int, bias: bool, nonlinearity: str, batch_first: bool, seed: int) -> torch.nn.RNN:
    torch.manual_seed(seed)
    m = torch.nn.RNN(I, H, num_layers=layers, bias=bias, nonlinearity=nonlinearity, batch_first=batch_first).to(F64)
    with torch.no_grad():  # larger weights than the default: the tanh leaves its linear regime
        for p in m.parameters():
            p.mul_(3.0)
    return m


# --- the cell ------------------------------------------------------------------------------
@given(B=st.integers(1, 3), I=st.integers(1, 3), H=st.integers(1, 3), bias=st.booleans(),
       nonlinearity=st.sampled_from(["tanh", "relu"]), seed=st.integers(0, 2**16))
def test_rnn_cell_equals_rnncell_forward_and_backward(B, I, H, bias, nonlinearity, seed):
    torch.manual_seed(seed)
    cell = torch.nn.RNNCell(I, H, bias=bias, nonlinearity=nonlinearity).to(F64)
    x = torch.randn(B, I, dtype=F64, requires_grad=True)
    h = torch.randn(B, H, dtype=F64, requires_grad=True)
    ref = cell(x, h)
    ours = R.rnn_cell(x, h, cell.weight_ih, cell.weight_hh, cell.bias_ih if bias else None,
                      cell.bias_hh if bias else None, nonlinearity=nonlinearity)
    assert _maxdiff(ours, ref) < TOL
    w = torch.randn(B, H, dtype=F64)
    inputs = [x, h, *cell.parameters()]
    g_ref = torch.autograd.grad((ref * w).sum(), inputs)
    g_ours = torch.autograd.grad((ours * w).sum(), inputs)
    for a, b in zip(g_ours, g_ref):
        assert _maxdiff(a, b) < TOL


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, 1e300])
def test_rnn_cell_special_values_like_torch(value):
    torch.manual_seed(0)
    cell = torch.nn.RNNCell(2, 3).to(F64)
    x = torch.tensor([[value, 0.5], [0.1, -0.2]], dtype=F64)
    h = torch.zeros(2, 3, dtype=F64)
    ref = cell(x, h).detach()
    ours = R.rnn_cell(x, h, cell.weight_ih, cell.weight_hh, cell.bias_ih, cell.bias_hh).detach()
    assert torch.allclose(ours, ref, atol=TOL, rtol=0, equal_nan=True)


def test_rnn_cell_float32_matches_torch():
    torch.manual_seed(0)
    cell = torch.nn.RNNCell(4, 5)
    x, h = torch.randn(3, 4), torch.randn(3, 5)
    ours = R.rnn_cell(x, h, cell.weight_ih, cell.weight_hh, cell.bias_ih, cell.bias_hh)
    assert ours.dtype == torch.float32 and _maxdiff(ours, cell(x, h)) < 1e-6


def test_rnn_cell_errors_name_function_expected_and_received():
    W_ih, W_hh = torch.zeros(3, 2, dtype=F64), torch.zeros(3, 3, dtype=F64)
    with pytest.raises(ShapeError, match=r"rnn_cell: W_ih should have shape \(H, I\), got \(3, 2\).*I should be 4"):
        R.rnn_cell(torch.zeros(1, 4, dtype=F64), torch.zeros(1, 3, dtype=F64), W_ih, W_hh)
    with pytest.raises(ShapeError, match=r"rnn_cell: h should have shape \(B, H\), got \(2, 3\)"):
        R.rnn_cell(torch.zeros(1, 2, dtype=F64), torch.zeros(2, 3, dtype=F64), W_ih, W_hh)
    with pytest.raises(ShapeError, match="rnn_cell: x should be a floating-point tensor, got dtype torch.int64"):
        R.rnn_cell(torch.zeros(1, 2, dtype=torch.long), torch.zeros(1, 3, dtype=F64), W_ih, W_hh)
    with pytest.raises(ShapeError, match="rnn_cell: all tensors should have the same dtype"):
        R.rnn_cell(torch.zeros(1, 2), torch.zeros(1, 3, dtype=F64), W_ih, W_hh)
    with pytest.raises(ShapeError, match=r"rnn_cell: b_hh should have shape \(H,\)"):
        R.rnn_cell(torch.zeros(1, 2, dtype=F64), torch.zeros(1, 3, dtype=F64), W_ih, W_hh, None, torch.zeros(2, dtype=F64))
    with pytest.raises(ValueError, match="rnn_cell: nonlinearity should be 'tanh' or 'relu', got 'sigmoid'"):
        R.rnn_cell(torch.zeros(1, 2, dtype=F64), torch.zeros(1, 3, dtype=F64), W_ih, W_hh, nonlinearity="sigmoid")


# --- the layer -----------------------------------------------------------------------------
@given(T=st.integers(1, 4), B=st.integers(1, 3), I=st.integers(1, 3), H=st.integers(1, 3),
       layers=st.integers(1, 3), bias=st.booleans(), nonlinearity=st.sampled_from(["tanh", "relu"]),
       batch_first=st.booleans(), with_h0=st.booleans(), seed=st.integers(0, 2**16))
def test_rnn_equals_nn_rnn_forward_and_backward(T, B, I, H, layers, bias, nonlinearity, batch_first, with_h0, seed):
    m = _torch_rnn(I, H, layers, bias, nonlinearity, batch_first, seed)
    x = torch.randn(*((B, T, I) if batch_first else (T, B, I)), dtype=F64, requires_grad=True)
    h0 = torch.randn(layers, B, H, dtype=F64, requires_grad=True) if with_h0 else None
    ref_out, ref_hn = m(x, h0)
    out, hn = R.rnn(x, R.rnn_params(m), h0, num_layers=layers, batch_first=batch_first, nonlinearity=nonlinearity)
    assert out.shape == ref_out.shape and hn.shape == ref_hn.shape
    assert _maxdiff(out, ref_out) < TOL and _maxdiff(hn, ref_hn) < TOL
    w_out, w_hn = torch.randn_like(out), torch.randn_like(hn)
    inputs = [x, *m.parameters()] + ([h0] if with_h0 else [])
    g_ref = torch.autograd.grad((ref_out * w_out).sum() + (ref_hn * w_hn).sum(), inputs)
    g_ours = torch.autograd.grad((out * w_out).sum() + (hn * w_hn).sum(), inputs)
    for a, b in zip(g_ours, g_ref):
        assert _maxdiff(a, b) < TOL


def test_rnn_params_names_and_identity():
    m = torch.nn.RNN(2, 3, num_layers=2)
    p = R.rnn_params(m)
    assert list(p) == ["weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0",
                       "weight_ih_l1", "weight_hh_l1", "bias_ih_l1", "bias_hh_l1"]
    assert p["weight_ih_l0"] is m.weight_ih_l0
    assert list(R.rnn_params(torch.nn.LSTM(2, 3)))[0] == "weight_ih_l0"
    with pytest.raises(TypeError, match="rnn_params: module should be a torch.nn.Module, got dict"):
        R.rnn_params({})


def test_rnn_errors():
    m = torch.nn.RNN(2, 3, num_layers=2).to(F64)
    p = R.rnn_params(m)
    x = torch.zeros(4, 1, 2, dtype=F64)
    with pytest.raises(KeyError, match=r"rnn: params is missing \['weight_hh_l2', 'weight_ih_l2'\] for num_layers=3"):
        R.rnn(x, p, num_layers=3)
    with pytest.raises(ShapeError, match=r"rnn: h0 should have shape \(2, B, H\), got \(1, 1, 3\)"):
        R.rnn(x, p, torch.zeros(1, 1, 3, dtype=F64), num_layers=2)
    with pytest.raises(ShapeError, match=r"rnn: h0 should have shape \(2, B, H\), got \(2, 4, 3\).*B should be 1"):
        R.rnn(x, p, torch.zeros(2, 4, 3, dtype=F64), num_layers=2)
    with pytest.raises(ShapeError, match=r"rnn: x should have 3 dimension\(s\) \(T, B, I\), got 2"):
        R.rnn(torch.zeros(4, 2, dtype=F64), p, num_layers=2)
    with pytest.raises(ShapeError, match="rnn: x should hold at least one time step"):
        R.rnn(torch.zeros(0, 1, 2, dtype=F64), p, num_layers=2)
    with pytest.raises(ShapeError, match=r"rnn: weight_ih_l0 should have shape \(3, 5\), got \(3, 2\)"):
        R.rnn(torch.zeros(4, 1, 5, dtype=F64), p, num_layers=2)
    with pytest.raises(ShapeError, match="rnn: x should be a floating-point tensor, got dtype torch.int32"):
        R.rnn(torch.zeros(4, 1, 2, dtype=torch.int32), p, num_layers=2)
    with pytest.raises(ValueError, match="rnn: num_layers should be an int >= 1, got 0"):
        R.rnn(x, p, num_layers=0)


def test_rnn_nan_propagates_like_torch():
    m = _torch_rnn(2, 3, 2, True, "tanh", False, 0)
    x = torch.randn(4, 2, 2, dtype=F64)
    x[1, 0, 0] = math.nan
    ref, _ = m(x)
    ours, _ = R.rnn(x, R.rnn_params(m), num_layers=2)
    assert torch.equal(ours.isnan(), ref.isnan()) and ours.isnan().any()
    assert torch.allclose(ours, ref, atol=TOL, rtol=0, equal_nan=True)


# --- BPTT by hand --------------------------------------------------------------------------
@given(T=st.integers(1, 6), B=st.integers(1, 3), I=st.integers(1, 3), H=st.integers(1, 3),
       truncate=st.one_of(st.none(), st.integers(1, 7)), with_dhn=st.booleans(), seed=st.integers(0, 2**16))
def test_bptt_equals_autograd(T, B, I, H, truncate, with_dhn, seed):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(T, B, I, dtype=F64, generator=gen, requires_grad=True)
    W_ih = torch.randn(H, I, dtype=F64, generator=gen, requires_grad=True)
    W_hh = (1.5 * torch.randn(H, H, dtype=F64, generator=gen)).requires_grad_()
    b = torch.randn(H, dtype=F64, generator=gen, requires_grad=True)
    h0 = torch.randn(B, H, dtype=F64, generator=gen, requires_grad=True)
    hs = R.rnn_forward_states(x, W_ih, W_hh, b, h0, truncate=truncate)
    for h in hs:
        h.retain_grad()
    dout = torch.randn(T, B, H, dtype=F64, generator=gen)
    dh_n = torch.randn(B, H, dtype=F64, generator=gen) if with_dhn else None
    loss = (hs[1:] * dout).sum() + ((hs[-1] * dh_n).sum() if with_dhn else 0)
    g = torch.autograd.grad(loss, [W_ih, W_hh, b, x, h0])
    ours = R.bptt(x.detach(), hs.detach(), dout, W_ih.detach(), W_hh.detach(), truncate=truncate, dh_n=dh_n)
    for key, ref in zip(["dW_ih", "dW_hh", "db", "dx", "dh0"], g):
        assert _maxdiff(ours[key], ref) < TOL, key
    # the per-step gradients: autograd again, one state at a time (hs is stacked, so use the unstacked path)
    if truncate is None:
        states = [h0]
        for t in range(T):
            states.append(R.rnn_cell(x[t], states[-1], W_ih, W_hh, b))
        total = sum((s * d).sum() for s, d in zip(states[1:], dout)) + ((states[-1] * dh_n).sum() if with_dhn else 0)
        per_step = torch.autograd.grad(total, states[1:])
        for t in range(T):
            assert _maxdiff(ours["dh"][t], per_step[t]) < TOL


def test_truncation_drops_long_range_terms():
    gen = torch.Generator().manual_seed(0)
    T, B, I, H = 12, 2, 2, 4
    x, W_ih = torch.randn(T, B, I, dtype=F64, generator=gen), torch.randn(H, I, dtype=F64, generator=gen)
    W_hh = R.recurrent_matrix(H, 0.9, generator=gen)
    hs = R.rnn_forward_states(x, W_ih, W_hh).detach()
    dout = torch.zeros(T, B, H, dtype=F64)
    dout[-1] = 1.0  # a loss on the last output only
    full = R.bptt(x, hs, dout, W_ih, W_hh)
    for k in (1, 3, 5):
        cut = R.bptt(x, hs, dout, W_ih, W_hh, truncate=k)
        start = ((T - 1) // k) * k  # the last chunk starts after this many steps
        assert torch.count_nonzero(cut["dx"][:start]) == 0  # no gradient reaches earlier inputs
        assert _maxdiff(cut["dx"][start:], full["dx"][start:]) < TOL
        assert _maxdiff(cut["dW_hh"], full["dW_hh"]) > 1e-6
    assert _maxdiff(R.bptt(x, hs, dout, W_ih, W_hh, truncate=T)["dW_hh"], full["dW_hh"]) == 0


def test_bptt_errors():
    x, hs = torch.zeros(3, 1, 2, dtype=F64), torch.zeros(3, 1, 4, dtype=F64)
    W_ih, W_hh = torch.zeros(4, 2, dtype=F64), torch.zeros(4, 4, dtype=F64)
    with pytest.raises(ShapeError, match=r"bptt: hs should have shape \(4, B, H\), got \(3, 1, 4\)"):
        R.bptt(x, hs, torch.zeros(3, 1, 4, dtype=F64), W_ih, W_hh)
    with pytest.raises(ValueError, match="bptt: truncate should be an int >= 1, got 0"):
        R.bptt(x, torch.zeros(4, 1, 4, dtype=F64), torch.zeros(3, 1, 4, dtype=F64), W_ih, W_hh, truncate=0)


# --- vanishing and exploding gradients -----------------------------------------------------
@pytest.mark.parametrize("radius", [0.5, 0.9, 1.0, 1.5])
def test_recurrent_matrix_radius_and_norm(radius):
    gen = torch.Generator().manual_seed(1)
    W = R.recurrent_matrix(6, radius, generator=gen)
    assert abs(R.spectral_radius(W) - radius) < 1e-10
    assert abs(float(torch.linalg.matrix_norm(W, 2)) - radius) < 1e-10
    G = R.recurrent_matrix(6, radius, kind="gaussian", generator=gen)
    assert abs(R.spectral_radius(G) - radius) < 1e-10
    assert float(torch.linalg.matrix_norm(G, 2)) >= radius - 1e-12


@pytest.mark.parametrize("radius", [0.5, 0.9, 1.3])
def test_gradient_norm_bound(radius):
    """||dL/dh_t|| <= ||W_hh||_2^(T-t) ||dL/dh_T||, since |tanh'| <= 1."""
    gen = torch.Generator().manual_seed(0)
    T, H = 30, 8
    x, W_ih = torch.randn(T, 2, 3, dtype=F64, generator=gen), torch.randn(H, 3, dtype=F64, generator=gen)
    W_hh = R.recurrent_matrix(H, radius, generator=gen)
    norms = R.gradient_norms_over_time(x, W_ih, W_hh)
    assert norms.shape == (T,) and abs(float(norms[-1]) - 1) < 1e-12
    bound = radius ** torch.arange(T - 1, -1, -1, dtype=F64)
    assert bool((norms <= bound * (1 + 1e-9)).all())


def test_recurrent_matrix_errors():
    with pytest.raises(ValueError, match="recurrent_matrix: kind should be 'orthogonal' or 'gaussian', got 'x'"):
        R.recurrent_matrix(3, 1.0, kind="x")
    with pytest.raises(ValueError, match="recurrent_matrix: radius should be a number >= 0, got -1"):
        R.recurrent_matrix(3, -1)


# --- the explorer --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def explorer():
    from course_lib.widgets.rnn import GradientFlowExplorer

    return GradientFlowExplorer()


def test_explorer_self_check_and_controls(explorer):
    assert "OK" in explorer.self_check()
    for name in explorer.controls:
        assert "OK" in explorer.self_check(name)


def test_explorer_curves_follow_the_radius(explorer):
    small = explorer.curves(radius=0.5, length=50)
    large = explorer.curves(radius=1.0, length=50)
    assert small["rnn"].shape == (50,)
    assert float(small["rnn"][0]) < float(large["rnn"][0])
    assert float(small["rnn"][0]) <= 0.5 ** 49 * (1 + 1e-9)


def test_explorer_batched_measurement_equals_plain_loops(explorer):
    """The explorer's vmapped computation equals one plain run of rnn.gradient_norms_over_time
    and of autograd through gates.lstm_cell, for one radius, forget bias and length."""
    from course_lib.gates import lstm_cell
    from course_lib.widgets.rnn import weights

    radius, fb, T, H = 1.2, 1.0, 40, explorer.hidden
    x, W_ih, Q, W_ih4, Q4 = weights(H, 4, explorer.max_length, 0)
    cur = explorer.curves(radius, T, fb)
    rnn_ref = R.gradient_norms_over_time(x[:T], W_ih, radius * Q)
    assert _maxdiff(cur["rnn"], rnn_ref) < 1e-12 * max(1.0, float(rnn_ref.max()))
    b = torch.zeros(4 * H, dtype=F64)
    b[H:2 * H] = fb
    h = torch.zeros(1, H, dtype=F64, requires_grad=True)
    c = torch.zeros(1, H, dtype=F64)
    hs = []
    for t in range(T):
        h, c = lstm_cell(x[t], h, c, W_ih4, radius * Q4, b)
        hs.append(h)
    grads = torch.autograd.grad(hs[-1].sum() * H**-0.5, hs)
    lstm_ref = torch.stack([g.norm() for g in grads])
    assert float(((cur["lstm"] - lstm_ref).abs() / lstm_ref).max()) < 1e-9


def test_shape_report_spells_out_recurrent_tuples_and_errors():
    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lstm = torch.nn.LSTM(3, 4, 2, batch_first=True)
            self.fc = torch.nn.Linear(4, 2)

        def forward(self, x):
            out, _ = self.lstm(x, (torch.zeros(2, 1, 4), torch.zeros(2, 1, 4)))
            return self.fc(out[:, -1])

    ok = R.shape_report(Net(), torch.zeros(1, 5, 3))
    assert "((1, 5, 4), ((2, 1, 4), (2, 1, 4)))" in ok and "(1, 2)" in ok
    bad = R.shape_report(Net(), torch.zeros(4, 5, 3))
    assert "!! the forward pass failed after the input: RuntimeError" in bad
    assert R.describe_shapes((torch.zeros(2), [torch.zeros(1, 3)], 5)) == "((2,), ((1, 3)), int)"
