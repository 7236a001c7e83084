"""course_lib.gates against torch.nn.LSTM / GRU (and the Cell modules) in float64: forward and
backward on hypothesis shapes (batch 1, sequence length 1, hidden 1 included), multi-layer,
batch_first, unbatched input, optional states, no biases; the GRU's two reset placements;
NaN/inf behaviour; the traces; every error message; the explorer."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from course_lib import gates
from course_lib.validate import ShapeError

DT = torch.float64
TOL = dict(rtol=1e-10, atol=1e-10)


@st.composite
def configs(draw):
    return dict(
        T=draw(st.integers(1, 4)), B=draw(st.integers(1, 3)), I=draw(st.integers(1, 3)), H=draw(st.integers(1, 3)),
        L=draw(st.integers(1, 2)), batch_first=draw(st.booleans()), bias=draw(st.booleans()),
        state=draw(st.booleans()), unbatched=draw(st.booleans()), seed=draw(st.integers(0, 2**31 - 1)),
    )


def _module(kind: str, cfg) -> torch.nn.Module:
    torch.manual_seed(cfg["seed"])
    cls = torch.nn.LSTM if kind == "lstm" else torch.nn.GRU
    return cls(cfg["I"], cfg["H"], num_layers=cfg["L"], bias=cfg["bias"], batch_first=cfg["batch_first"]).to(DT)


def _inputs(cfg, n_states: int):
    gen = torch.Generator().manual_seed(cfg["seed"])
    T, B, I, H, L = cfg["T"], cfg["B"], cfg["I"], cfg["H"], cfg["L"]
    if cfg["unbatched"]:
        shape, sshape = (T, I), (L, H)
    else:
        shape, sshape = ((B, T, I) if cfg["batch_first"] else (T, B, I)), (L, B, H)
    x = torch.randn(*shape, generator=gen, dtype=DT)
    states = [torch.randn(*sshape, generator=gen, dtype=DT) for _ in range(n_states)] if cfg["state"] else None
    return x, states, gen


def _grads(outputs, upstream, leaves):
    loss = sum((o * u).sum() for o, u in zip(outputs, upstream))
    return torch.autograd.grad(loss, leaves, allow_unused=True)


def _close(a, b):
    assert a.shape == b.shape and a.dtype == b.dtype, (a.shape, b.shape, a.dtype, b.dtype)
    torch.testing.assert_close(a, b, **TOL)


# --- layers against torch: forward and backward ----------------------------------------------
@given(cfg=configs())
def test_lstm_matches_nn_lstm_forward_and_backward(cfg):
    m = _module("lstm", cfg)
    x, states, gen = _inputs(cfg, 2)
    x.requires_grad_(True)
    leaves = [x] + ([s.requires_grad_(True) for s in states] if states else []) + list(m.parameters())
    ref_out, (ref_h, ref_c) = m(x, tuple(states) if states else None)
    params = dict(m.named_parameters())
    out, (h, c) = gates.lstm(x, params, tuple(states) if states else None, num_layers=cfg["L"],
                             batch_first=cfg["batch_first"])
    for a, b in ((out, ref_out), (h, ref_h), (c, ref_c)):
        _close(a, b)
    upstream = [torch.randn(t.shape, generator=gen, dtype=DT) for t in (out, h, c)]
    for a, b in zip(_grads((out, h, c), upstream, leaves), _grads((ref_out, ref_h, ref_c), upstream, leaves)):
        _close(a, b)


@given(cfg=configs())
def test_gru_matches_nn_gru_forward_and_backward(cfg):
    m = _module("gru", cfg)
    x, states, gen = _inputs(cfg, 1)
    x.requires_grad_(True)
    leaves = [x] + ([s.requires_grad_(True) for s in states] if states else []) + list(m.parameters())
    h0 = states[0] if states else None
    ref_out, ref_h = m(x, h0)
    out, h = gates.gru(x, dict(m.named_parameters()), h0, num_layers=cfg["L"], batch_first=cfg["batch_first"])
    _close(out, ref_out)
    _close(h, ref_h)
    upstream = [torch.randn(t.shape, generator=gen, dtype=DT) for t in (out, h)]
    for a, b in zip(_grads((out, h), upstream, leaves), _grads((ref_out, ref_h), upstream, leaves)):
        _close(a, b)


# --- cells ----------------------------------------------------------------------------------
@given(B=st.integers(1, 3), I=st.integers(1, 3), H=st.integers(1, 3), bias=st.booleans(), seed=st.integers(0, 2**31 - 1))
def test_cells_match_lstmcell_and_grucell(B, I, H, bias, seed):
    torch.manual_seed(seed)
    lc, gc = torch.nn.LSTMCell(I, H, bias=bias).to(DT), torch.nn.GRUCell(I, H, bias=bias).to(DT)
    x, h, c = (torch.randn(B, n, dtype=DT, requires_grad=True) for n in (I, H, H))
    up = torch.randn(2, B, H, dtype=DT)
    for cell, ours, args in ((lc, gates.lstm_cell, (x, h, c)), (gc, gates.gru_cell, (x, h))):
        w = (cell.weight_ih, cell.weight_hh, cell.bias_ih, cell.bias_hh)
        got = ours(*args, *w)
        ref = cell(x, (h, c)) if cell is lc else cell(x, h)
        got, ref = (got, ref) if isinstance(got, tuple) else ((got,), (ref,))
        leaves = [*args, *cell.parameters()]
        for a, b in zip(got, ref):
            _close(a, b)
        for a, b in zip(_grads(got, up, leaves), _grads(ref, up, leaves)):
            _close(a, b)


def test_lstm_cell_equations_and_gate_order():
    """c' = f*c + i*g, h' = o*tanh(c') with the row blocks in the order i, f, g, o: saturate one gate
    at a time through its bias and watch the effect the equations predict."""
    H, I = 2, 3
    x, h, c = torch.randn(1, I, dtype=DT), torch.randn(1, H, dtype=DT), torch.randn(1, H, dtype=DT)
    W_ih, W_hh = torch.zeros(4 * H, I, dtype=DT), torch.zeros(4 * H, H, dtype=DT)

    def with_bias(i, f, g, o):
        b = torch.tensor([i] * H + [f] * H + [g] * H + [o] * H, dtype=DT)
        return gates.lstm_cell(x, h, c, W_ih, W_hh, b, None)

    big = 50.0
    h1, c1 = with_bias(-big, big, 0.0, big)  # input closed, forget open: c' = c, h' = tanh(c)
    _close(c1, c)
    _close(h1, torch.tanh(c))
    h2, c2 = with_bias(big, -big, big, -big)  # forget closed, input open, g = 1, output closed
    _close(c2, torch.ones_like(c))
    assert h2.abs().max() < 1e-20


def test_gru_reset_placements_differ_and_torch_uses_pytorch_form():
    torch.manual_seed(0)
    m = torch.nn.GRU(4, 8).to(DT)
    p = dict(m.named_parameters())
    x = torch.randn(6, 3, 4, dtype=DT)
    ref, _ = m(x)
    ours, _ = gates.gru(x, p)
    paper, _ = gates.gru(x, p, reset="paper")
    _close(ours, ref)
    assert (paper - ref).abs().max() > 1e-2  # the placements differ by far more than rounding


def test_gru_paper_form_is_chos_equation():
    """Cho et al. 2014: n = tanh(W x + U (r*h)); with r = 1 both placements agree."""
    gen = torch.Generator().manual_seed(1)
    B, I, H = 2, 3, 4
    x, h = torch.randn(B, I, generator=gen, dtype=DT), torch.randn(B, H, generator=gen, dtype=DT)
    W_ih, W_hh = torch.randn(3 * H, I, generator=gen, dtype=DT), torch.randn(3 * H, H, generator=gen, dtype=DT)
    b_ih, b_hh = torch.randn(3 * H, generator=gen, dtype=DT), torch.randn(3 * H, generator=gen, dtype=DT)
    Wr, Wz, Wn = W_ih.split(H)
    Ur, Uz, Un = W_hh.split(H)
    br, bz, bn = (b_ih + b_hh).split(H)
    r = torch.sigmoid(x @ Wr.T + h @ Ur.T + br)
    z = torch.sigmoid(x @ Wz.T + h @ Uz.T + bz)
    n = torch.tanh(x @ Wn.T + b_ih[2 * H:] + (r * h) @ Un.T + b_hh[2 * H:])
    _close(gates.gru_cell(x, h, W_ih, W_hh, b_ih, b_hh, reset="paper"), (1 - z) * n + z * h)
    b_open = b_hh.clone()
    b_open[:H] = 100.0  # r = 1
    _close(gates.gru_cell(x, h, W_ih, W_hh, b_ih, b_open, reset="paper"),
           gates.gru_cell(x, h, W_ih, W_hh, b_ih, b_open, reset="pytorch"))
    r, z, n = gates.gru_gates(x, h, W_ih, W_hh, b_ih, b_hh)
    _close((1 - z) * n + z * h, gates.gru_cell(x, h, W_ih, W_hh, b_ih, b_hh))


def test_float32_keeps_dtype_and_matches():
    torch.manual_seed(0)
    for cls, fn in ((torch.nn.LSTM, gates.lstm), (torch.nn.GRU, gates.gru)):
        m = cls(3, 5, num_layers=2)
        x = torch.randn(7, 2, 3)
        ref, ours = m(x)[0], fn(x, dict(m.named_parameters()), num_layers=2)[0]
        assert ours.dtype == torch.float32
        torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf"), 1e300])
def test_special_values_as_torch(value):
    torch.manual_seed(0)
    for cls, fn in ((torch.nn.LSTM, gates.lstm), (torch.nn.GRU, gates.gru)):
        m = cls(2, 3).to(DT)
        x = torch.randn(4, 2, 2, dtype=DT)
        x[1, 0, 0] = value
        ref = m(x)[0]
        ours = fn(x, dict(m.named_parameters()))[0]
        assert torch.equal(ours.isnan(), ref.isnan())
        torch.testing.assert_close(ours, ref, equal_nan=True, **TOL)


# --- the additive path -----------------------------------------------------------------------
def test_cell_state_gradient_is_product_of_forget_gates_without_recurrent_weights():
    """With W_hh = 0 the only path from c_0 to c_T is c_t = f_t * c_{t-1} + ...: dc_T/dc_0 = prod_t f_t."""
    gen = torch.Generator().manual_seed(2)
    T, I, H = 6, 2, 3
    p = gates.gate_params("lstm", I, H, generator=gen, dtype=DT)
    p["weight_hh_l0"] = torch.zeros_like(p["weight_hh_l0"])
    x = torch.randn(T, 1, I, generator=gen, dtype=DT)
    c0 = torch.randn(1, 1, H, dtype=DT, requires_grad=True)
    _, (_, cT) = gates.lstm(x, p, (torch.zeros(1, 1, H, dtype=DT), c0))
    (g,) = torch.autograd.grad(cT.sum(), c0)
    f = gates.lstm_trace(x[:, 0], p)["f"]
    _close(g[0, 0], f.prod(dim=0))


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_gradient_norms_over_time_match_torch_restarted_from_each_state(cell):
    """dL/dh_t is the gradient of L with respect to the initial hidden state of nn.LSTM / nn.GRU
    restarted at step t from (h_t, c_t) on the remaining inputs; for the LSTM, the total dL/dc_t
    adds the path through h_t = o_t tanh(c_t) to the restarted run's gradient for c."""
    torch.manual_seed(4)
    T, B, I, H = 5, 2, 2, 3
    m = (torch.nn.LSTM if cell == "lstm" else torch.nn.GRU)(I, H).to(DT)
    x = torch.randn(T, B, I, dtype=DT)
    got = gates.gradient_norms_over_time(x, dict(m.named_parameters()), cell=cell)
    assert got["h"].shape == (T,) and got["h"][-1].item() == pytest.approx(1.0, abs=1e-12)
    p = {k: v.detach() for k, v in m.named_parameters()}
    if cell == "lstm":
        trace = [gates.lstm_trace(x[:, b], p) for b in range(B)]
        hs = torch.stack([tr["h"] for tr in trace], 1)
        cs = torch.stack([tr["c"] for tr in trace], 1)
        os = torch.stack([tr["o"] for tr in trace], 1)
    else:
        hs = gates.gru(x, p)[0].detach()
    for t in range(T):
        h0 = hs[t][None].clone().requires_grad_(True)
        if t == T - 1:
            dh = torch.full((B, H), (B * H) ** -0.5, dtype=DT)
            dc_state = torch.zeros(B, H, dtype=DT)
        elif cell == "lstm":
            c0 = cs[t][None].clone().requires_grad_(True)
            out, _ = m(x[t + 1:], (h0, c0))
            dh, dc_state = (g[0] for g in torch.autograd.grad(out[-1].sum() / (B * H) ** 0.5, (h0, c0)))
        else:
            out, _ = m(x[t + 1:], h0)
            (dh,) = (g[0] for g in torch.autograd.grad(out[-1].sum() / (B * H) ** 0.5, (h0,)))
        torch.testing.assert_close(got["h"][t], dh.norm(), **TOL)
        if cell == "lstm":
            dc = dc_state + dh * os[t] * (1 - torch.tanh(cs[t]) ** 2)
            torch.testing.assert_close(got["c"][t], dc.norm(), **TOL)


# --- parameters and traces ------------------------------------------------------------------
def test_gate_params_have_torchs_names_shapes_and_range():
    for cell, cls in (("lstm", torch.nn.LSTM), ("gru", torch.nn.GRU)):
        for bias in (True, False):
            p = gates.gate_params(cell, 3, 4, num_layers=2, bias=bias, generator=torch.Generator().manual_seed(0))
            ref = dict(cls(3, 4, num_layers=2, bias=bias).named_parameters())
            assert {k: v.shape for k, v in p.items()} == {k: v.shape for k, v in ref.items()}
            assert all(v.abs().max() <= 0.5 and v.dtype == torch.float32 for v in p.values())


def test_traces_agree_with_the_layers():
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(5, 2, generator=gen, dtype=DT)
    p = gates.gate_params("lstm", 2, 3, num_layers=2, generator=gen, dtype=DT)
    out, (h_n, c_n) = gates.lstm(x[:, None], p, num_layers=2)
    tr0, tr1 = gates.lstm_trace(x, p), gates.lstm_trace(x, p, layer=1)
    assert set(tr0) == set("ifgoch") and all(v.shape == (5, 3) for v in tr0.values())
    _close(tr1["h"], out[:, 0])
    _close(tr0["c"][-1], c_n[0, 0])
    _close(tr1["c"][-1], c_n[1, 0])
    for k in "ifo":
        assert ((tr0[k] > 0) & (tr0[k] < 1)).all()
    _close(tr0["c"][1:], tr0["f"][1:] * tr0["c"][:-1] + tr0["i"][1:] * tr0["g"][1:])
    pg = gates.gate_params("gru", 2, 3, num_layers=2, generator=gen, dtype=DT)
    out, _ = gates.gru(x, pg, num_layers=2)
    for reset in gates.RESETS:
        trg = gates.gru_trace(x, pg, layer=1, reset=reset)
        assert set(trg) == set("rznh")
        _close(trg["h"], gates.gru(x, pg, num_layers=2, reset=reset)[0])


# --- errors ---------------------------------------------------------------------------------
def _p(cell="lstm", I=3, H=4, L=1, **kw):
    return gates.gate_params(cell, I, H, num_layers=L, dtype=DT, generator=torch.Generator().manual_seed(0), **kw)


X = torch.zeros(5, 2, 3, dtype=DT)
H2 = torch.zeros(2, 4, dtype=DT)
W16x3, W16x4 = torch.zeros(16, 3, dtype=DT), torch.zeros(16, 4, dtype=DT)


@pytest.mark.parametrize("call, pattern", [
    (lambda: gates.lstm(X.long(), _p()), r"lstm: x should be a floating-point tensor, got dtype torch.int64"),
    (lambda: gates.lstm(X.float(), _p()), r"lstm: weight_ih_l0 should have the dtype of x \(torch.float32\), got torch.float64"),
    (lambda: gates.lstm(torch.zeros(5, 2, 2, dtype=DT), _p()), r"lstm: weight_ih_l0 should have shape \(4H, 2\)"),
    (lambda: gates.lstm(torch.zeros(5, 2, 3, 1, dtype=DT), _p()), r"lstm: x should have 3 dimensions \(T, B, I\)"),
    (lambda: gates.lstm(torch.zeros(2, 0, 3, dtype=DT), _p(), batch_first=True), r"lstm: the sequence length T should be >= 1"),
    (lambda: gates.lstm(X, _p(L=2)), r"lstm: params has \['bias_hh_l1', .*num_layers=1"),
    (lambda: gates.lstm(X, _p(), num_layers=2), r"lstm: params lacks \['weight_ih_l1', 'weight_hh_l1'\]"),
    (lambda: gates.lstm(X, _p(), num_layers=0), r"lstm: num_layers should be an int >= 1, got 0"),
    (lambda: gates.lstm(X, _p("gru")), r"lstm: weight_hh_l0 should have shape \(4H, H\)"),
    (lambda: gates.lstm(X, {**_p(), "weight_ih_l0_reverse": W16x3}), r"lstm: bidirectional layers and projections"),
    (lambda: gates.lstm(X, list(_p().values())), r"lstm: params should be a dict"),
    (lambda: gates.lstm(X, _p(), state=torch.zeros(1, 2, 4, dtype=DT)), r"lstm: state should be a pair \(h_0, c_0\)"),
    (lambda: gates.lstm(X, _p(), state=(torch.zeros(1, 3, 4, dtype=DT),) * 2), r"lstm: h_0 should have shape \(1, 2, 4\)"),
    (lambda: gates.lstm(X, {k: v for k, v in _p().items() if k != "bias_hh_l0"}), r"lstm: layer 0 should have both biases"),
    (lambda: gates.gru(X, _p("gru"), reset="cho"), r"gru: reset should be one of \('pytorch', 'paper'\), got 'cho'"),
    (lambda: gates.gru(X, _p("gru"), h0=torch.zeros(1, 2, 4)), r"gru: all tensors should have the same dtype"),
    (lambda: gates.lstm_cell(X[0], H2, H2, W16x4, W16x4), r"lstm_cell: W_ih should have shape \(4H, I\), got \(16, 4\) \(I should be 3"),
    (lambda: gates.lstm_cell(X[0], H2, H2[:1], W16x3, W16x4), r"lstm_cell: c should have shape \(B, H\)"),
    (lambda: gates.lstm_cell(X[0].int(), H2, H2, W16x3, W16x4), r"lstm_cell: x should be a floating-point tensor"),
    (lambda: gates.gru_cell(X[0], H2, W16x3, W16x4), r"gru_cell: W_ih should have shape \(3H, I\)"),
    (lambda: gates.gru_cell(X[0], H2, W16x3[:12], W16x4[:12], reset="Cho"), r"gru_cell: reset should be one of"),
    (lambda: gates.lstm_trace(X, _p()), r"lstm_trace: x should have 2 dimension\(s\) \(T, I\)"),
    (lambda: gates.lstm_trace(X[:, 0], _p(), layer=1), r"lstm_trace: layer=1, but params has 1 layer"),
    (lambda: gates.gate_params("rnn", 1, 1), r"gate_params: cell should be 'lstm' or 'gru', got 'rnn'"),
    (lambda: gates.gate_params("gru", 1, 0), r"gate_params: hidden_size should be an int >= 1, got 0"),
])
def test_errors_name_function_expected_and_received(call, pattern):
    with pytest.raises((ValueError, TypeError), match=pattern):
        call()


def test_shape_errors_are_shape_errors_and_torch_refuses_the_same():
    with pytest.raises(ShapeError):
        gates.lstm(X.long(), _p())
    with pytest.raises((RuntimeError, ValueError)):  # torch refuses integer input too
        torch.nn.LSTM(3, 4)(X.long())
    with pytest.raises(RuntimeError):  # and an empty sequence
        torch.nn.LSTM(3, 4).to(DT)(X[:0])


# --- explorer -------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def explorer():
    from course_lib.widgets.gates import GateExplorer

    return GateExplorer()


def test_explorer_controls_are_core_widgets_and_every_control_redraws(explorer):
    import ipywidgets as widgets

    core = (widgets.Dropdown, widgets.IntSlider, widgets.ToggleButtons, widgets.Checkbox)
    assert all(isinstance(c, core) for c in explorer.controls.values())
    for name in explorer.controls:
        assert "OK" in explorer.self_check(name)


def test_explorer_shows_the_trace_of_the_chosen_sequence_and_unit(explorer):
    name = list(explorer.traces)[1]
    explorer.set_state(sequence=name, unit=2)
    trace, shown = explorer.trace(), explorer.shown()
    assert set(shown) == {"i", "f", "o", "c"}
    for k, v in shown.items():
        assert torch.equal(torch.as_tensor(v), trace[k][:, 2])
    assert explorer.im_state.get_array()[0, :len(shown["c"])].tolist() == shown["c"].tolist()
