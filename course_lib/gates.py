"""Gated recurrent cells from scratch: the LSTM and the GRU, cells and multi-layer layers.

Conventions are PyTorch's (``nn.LSTM``, ``nn.GRU``), so that the parameters of a torch
module can be passed in unchanged (``dict(module.named_parameters())``)::

    x:   (B, I)  one time step of a batch          h, c: (B, H)  hidden and cell state
    LSTM W_ih (4H, I), W_hh (4H, H), b_ih, b_hh (4H,): row blocks i, f, g, o
    GRU  W_ih (3H, I), W_hh (3H, H), b_ih, b_hh (3H,): row blocks r, z, n

LSTM (Hochreiter & Schmidhuber 1997, with the forget gate of Gers, Schmidhuber & Cummins 2000)::

    [a_i, a_f, a_g, a_o] = x W_ih^T + b_ih + h W_hh^T + b_hh          (B, 4H), split in 4
    i, f, o = sigmoid(a_i), sigmoid(a_f), sigmoid(a_o);  g = tanh(a_g)
    c' = f * c + i * g;   h' = o * tanh(c')

GRU (Cho et al. 2014) in PyTorch's form, ``reset="pytorch"``::

    r = sigmoid(W_ir x + b_ir + W_hr h + b_hr);  z = sigmoid(W_iz x + b_iz + W_hz h + b_hz)
    n = tanh(W_in x + b_in + r * (W_hn h + b_hn))          # reset AFTER the hidden matmul
    h' = (1 - z) * n + z * h

and in the paper's form, ``reset="paper"``: ``n = tanh(W_in x + b_in + W_hn (r * h) + b_hn)``.

A layer runs the cell over time; layer ``l > 0`` reads the hidden states of layer ``l - 1``.
Parameters are named like torch's: ``weight_ih_l0``, ``weight_hh_l0``, ``bias_ih_l0``,
``bias_hh_l0``, ``..._l1``. Bidirectional layers, projections and dropout between layers
are not implemented (a clear error says so).
"""

from __future__ import annotations

import math
from typing import Dict, List, Optional, Tuple

import torch

from course_lib.validate import ShapeError, expect, same_dtype

Tensor = torch.Tensor
Params = Dict[str, Tensor]
RESETS = ("pytorch", "paper")
_GATES = {"lstm": 4, "gru": 3}


# --- validation ---------------------------------------------------------------------------
def _check_cell(fn: str, gates: int, x: Tensor, h: Tensor, W_ih: Tensor, W_hh: Tensor,
                b_ih: Optional[Tensor], b_hh: Optional[Tensor], c: Optional[Tensor] = None) -> int:
    """Validate one cell step; return H."""
    dims = expect(fn, "x", x, ("B", "I"), floating=True)
    dims = expect(fn, "h", h, ("B", "H"), dims, floating=True)
    if c is not None:
        dims = expect(fn, "c", c, ("B", "H"), dims, floating=True)
    H = dims["H"]
    spec = f"{gates}H"
    dims[spec] = gates * H
    dims = expect(fn, "W_ih", W_ih, (spec, "I"), dims, floating=True)
    dims = expect(fn, "W_hh", W_hh, (spec, "H"), dims, floating=True)
    tensors = {"x": x, "h": h, "W_ih": W_ih, "W_hh": W_hh}
    if c is not None:
        tensors["c"] = c
    for name, b in (("b_ih", b_ih), ("b_hh", b_hh)):
        if b is not None:
            expect(fn, name, b, (spec,), dims, floating=True)
            tensors[name] = b
    same_dtype(fn, **tensors)
    return H


def _check_reset(fn: str, reset: str) -> None:
    if reset not in RESETS:
        raise ValueError(f"{fn}: reset should be one of {RESETS}, got {reset!r}")


def _affine(x: Tensor, W: Tensor, b: Optional[Tensor]) -> Tensor:
    """x W^T + b: (B, D) @ (G, D)^T -> (B, G)."""
    y = x @ W.T
    return y if b is None else y + b


# --- cells --------------------------------------------------------------------------------
def lstm_gates(x: Tensor, h: Tensor, W_ih: Tensor, W_hh: Tensor, b_ih: Optional[Tensor] = None,
               b_hh: Optional[Tensor] = None) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
    """The four LSTM gate activations (i, f, g, o), each (B, H); i, f, o in (0, 1), g in (-1, 1)."""
    _check_cell("lstm_gates", 4, x, h, W_ih, W_hh, b_ih, b_hh)
    return _lstm_gates(x, h, W_ih, W_hh, b_ih, b_hh)


def _lstm_gates(x, h, W_ih, W_hh, b_ih, b_hh):
    a = _affine(x, W_ih, b_ih) + _affine(h, W_hh, b_hh)  # (B, 4H)
    a_i, a_f, a_g, a_o = a.chunk(4, dim=1)
    return torch.sigmoid(a_i), torch.sigmoid(a_f), torch.tanh(a_g), torch.sigmoid(a_o)


def lstm_cell(x: Tensor, h: Tensor, c: Tensor, W_ih: Tensor, W_hh: Tensor, b_ih: Optional[Tensor] = None,
              b_hh: Optional[Tensor] = None) -> Tuple[Tensor, Tensor]:
    """One LSTM step, equal to ``torch.nn.LSTMCell``.

    x (B, I), h (B, H), c (B, H), W_ih (4H, I), W_hh (4H, H), b_ih, b_hh (4H,) or None
    -> (h', c'), each (B, H), with ``c' = f*c + i*g`` and ``h' = o*tanh(c')`` (gate order i, f, g, o).
    """
    _check_cell("lstm_cell", 4, x, h, W_ih, W_hh, b_ih, b_hh, c=c)
    return _lstm_cell(x, h, c, W_ih, W_hh, b_ih, b_hh)


def _lstm_cell(x, h, c, W_ih, W_hh, b_ih, b_hh):
    i, f, g, o = _lstm_gates(x, h, W_ih, W_hh, b_ih, b_hh)
    c_new = f * c + i * g  # the additive path: dc'/dc = f, no matrix, no squashing
    return o * torch.tanh(c_new), c_new


def gru_gates(x: Tensor, h: Tensor, W_ih: Tensor, W_hh: Tensor, b_ih: Optional[Tensor] = None,
              b_hh: Optional[Tensor] = None, reset: str = "pytorch") -> Tuple[Tensor, Tensor, Tensor]:
    """The GRU's reset gate r, update gate z and candidate n, each (B, H) (see :func:`gru_cell`)."""
    _check_reset("gru_gates", reset)
    _check_cell("gru_gates", 3, x, h, W_ih, W_hh, b_ih, b_hh)
    return _gru_gates(x, h, W_ih, W_hh, b_ih, b_hh, reset)


def _gru_gates(x, h, W_ih, W_hh, b_ih, b_hh, reset):
    xr, xz, xn = _affine(x, W_ih, b_ih).chunk(3, dim=1)  # (B, H) each
    H = h.shape[1]
    Wr, Wz, Wn = W_hh[:H], W_hh[H:2 * H], W_hh[2 * H:]
    br, bz, bn = (None, None, None) if b_hh is None else b_hh.chunk(3)
    r = torch.sigmoid(xr + _affine(h, Wr, br))
    z = torch.sigmoid(xz + _affine(h, Wz, bz))
    if reset == "pytorch":
        n = torch.tanh(xn + r * _affine(h, Wn, bn))  # r * (W_hn h + b_hn)
    else:
        n = torch.tanh(xn + _affine(r * h, Wn, bn))  # W_hn (r * h) + b_hn   (Cho et al. 2014)
    return r, z, n


def gru_cell(x: Tensor, h: Tensor, W_ih: Tensor, W_hh: Tensor, b_ih: Optional[Tensor] = None,
             b_hh: Optional[Tensor] = None, reset: str = "pytorch") -> Tensor:
    """One GRU step; with ``reset="pytorch"`` equal to ``torch.nn.GRUCell``.

    x (B, I), h (B, H), W_ih (3H, I), W_hh (3H, H), b_ih, b_hh (3H,) or None -> h' (B, H)
    with ``h' = (1 - z)*n + z*h`` (gate order r, z, n). ``reset="pytorch"``:
    ``n = tanh(W_in x + b_in + r*(W_hn h + b_hn))``; ``reset="paper"`` (Cho et al. 2014):
    ``n = tanh(W_in x + b_in + W_hn (r*h) + b_hn)``.
    """
    _check_reset("gru_cell", reset)
    _check_cell("gru_cell", 3, x, h, W_ih, W_hh, b_ih, b_hh)
    return _gru_cell(x, h, W_ih, W_hh, b_ih, b_hh, reset)


def _gru_cell(x, h, W_ih, W_hh, b_ih, b_hh, reset):
    r, z, n = _gru_gates(x, h, W_ih, W_hh, b_ih, b_hh, reset)
    return (1 - z) * n + z * h


# --- layers -------------------------------------------------------------------------------
def _layer_params(fn: str, kind: str, params: Params, num_layers: int, input_size: int,
                  dtype: torch.dtype) -> List[Tuple[Tensor, Tensor, Optional[Tensor], Optional[Tensor]]]:
    """Check ``params`` against torch's naming; return (W_ih, W_hh, b_ih, b_hh) per layer."""
    if isinstance(num_layers, bool) or not isinstance(num_layers, int) or num_layers < 1:
        raise ValueError(f"{fn}: num_layers should be an int >= 1, got {num_layers!r}")
    if not isinstance(params, dict):
        raise TypeError(f"{fn}: params should be a dict of tensors named like nn.{kind.upper()}'s "
                        f"(e.g. dict(module.named_parameters())), got {type(params).__name__}")
    unsupported = [k for k in params if k.endswith("_reverse") or k.startswith("weight_hr")]
    if unsupported:
        raise ValueError(f"{fn}: bidirectional layers and projections (proj_size) are not implemented; "
                         f"params has {unsupported}")
    names = {f"{w}_l{l}" for l in range(num_layers) for w in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")}
    extra = sorted(set(params) - names)
    if extra:
        raise ValueError(f"{fn}: params has {extra}, not parameters of a {num_layers}-layer "
                         f"nn.{kind.upper()} (is num_layers={num_layers} right?)")
    gates = _GATES[kind]
    layers = []
    size = input_size
    for l in range(num_layers):
        missing = [k for k in (f"weight_ih_l{l}", f"weight_hh_l{l}") if k not in params]
        if missing:
            raise ValueError(f"{fn}: params lacks {missing} for num_layers={num_layers}")
        W_ih, W_hh = params[f"weight_ih_l{l}"], params[f"weight_hh_l{l}"]
        b_ih, b_hh = params.get(f"bias_ih_l{l}"), params.get(f"bias_hh_l{l}")
        if (b_ih is None) != (b_hh is None):
            raise ValueError(f"{fn}: layer {l} should have both biases (bias_ih_l{l}, bias_hh_l{l}) or neither")
        dims = expect(fn, f"weight_hh_l{l}", W_hh, (None, "H"), floating=True)
        H = dims["H"]
        spec = f"{gates}H"
        dims[spec] = gates * H
        expect(fn, f"weight_hh_l{l}", W_hh, (spec, "H"), dims)
        expect(fn, f"weight_ih_l{l}", W_ih, (spec, size), dims, floating=True)
        tensors = {f"weight_ih_l{l}": W_ih, f"weight_hh_l{l}": W_hh}
        for name, b in ((f"bias_ih_l{l}", b_ih), (f"bias_hh_l{l}", b_hh)):
            if b is not None:
                expect(fn, name, b, (spec,), dims, floating=True)
                tensors[name] = b
        for name, t in tensors.items():
            if t.dtype != dtype:
                raise ShapeError(f"{fn}: {name} should have the dtype of x ({dtype}), got {t.dtype}")
        if l > 0 and H != layers[0][1].shape[1]:
            raise ShapeError(f"{fn}: every layer should have the same hidden size; layer 0 has "
                             f"{layers[0][1].shape[1]}, layer {l} has {H}")
        layers.append((W_ih, W_hh, b_ih, b_hh))
        size = H
    return layers


def _prepare(fn: str, x: Tensor, batch_first: bool) -> Tuple[Tensor, bool]:
    """x as (T, B, I) and whether it came unbatched, (T, I)."""
    expect(fn, "x", x, floating=True)
    if x.dim() == 2:
        if x.shape[0] == 0:
            raise ShapeError(f"{fn}: the sequence length T should be >= 1 (as in torch), got x of shape {tuple(x.shape)}")
        return x[:, None], True
    if x.dim() != 3:
        layout = "(B, T, I)" if batch_first else "(T, B, I)"
        raise ShapeError(f"{fn}: x should have 3 dimensions {layout} or 2 (T, I) for one unbatched sequence, "
                         f"got {x.dim()}: shape {tuple(x.shape)}")
    xs = x.transpose(0, 1) if batch_first else x
    if xs.shape[0] == 0:
        raise ShapeError(f"{fn}: the sequence length T should be >= 1 (as in torch), got x of shape {tuple(x.shape)}")
    return xs, False


def _state(fn: str, name: str, s: Optional[Tensor], L: int, B: int, H: int, x: Tensor, unbatched: bool) -> Tensor:
    if s is None:
        return x.new_zeros(L, B, H)
    if unbatched:
        expect(fn, name, s, (L, H), floating=True)
        s = s[:, None]
    else:
        expect(fn, name, s, (L, B, H), floating=True)
    same_dtype(fn, x=x, **{name: s})
    return s


def _finish(out: Tensor, states: List[Tensor], unbatched: bool, batch_first: bool) -> Tuple[Tensor, List[Tensor]]:
    if unbatched:
        return out[:, 0], [s[:, 0] for s in states]
    return (out.transpose(0, 1) if batch_first else out), states


def lstm(x: Tensor, params: Params, state: Optional[Tuple[Tensor, Tensor]] = None, num_layers: int = 1,
         batch_first: bool = False) -> Tuple[Tensor, Tuple[Tensor, Tensor]]:
    """A multi-layer LSTM over a sequence, equal to ``torch.nn.LSTM`` with the same parameters.

    x (T, B, I), or (B, T, I) with ``batch_first``, or (T, I) unbatched; params named like
    nn.LSTM's; state ``(h_0, c_0)`` each (L, B, H) ((L, H) unbatched) or None for zeros
    -> (output (T, B, H) / (B, T, H) / (T, H): the last layer's h_t for every t, (h_n, c_n) each (L, B, H)).
    """
    fn = "lstm"
    xs, unbatched = _prepare(fn, x, batch_first)
    layers = _layer_params(fn, "lstm", params, num_layers, xs.shape[2], xs.dtype)
    T, B, H = xs.shape[0], xs.shape[1], layers[0][1].shape[1]
    if state is not None and not (isinstance(state, (tuple, list)) and len(state) == 2):
        raise ValueError(f"{fn}: state should be a pair (h_0, c_0) or None, got {type(state).__name__}")
    h0 = _state(fn, "h_0", None if state is None else state[0], num_layers, B, H, xs, unbatched)
    c0 = _state(fn, "c_0", None if state is None else state[1], num_layers, B, H, xs, unbatched)
    inp, h_n, c_n = xs, [], []
    for l, (W_ih, W_hh, b_ih, b_hh) in enumerate(layers):
        h, c, outs = h0[l], c0[l], []
        for t in range(T):
            h, c = _lstm_cell(inp[t], h, c, W_ih, W_hh, b_ih, b_hh)
            outs.append(h)
        inp = torch.stack(outs) if outs else xs.new_zeros(0, B, H)
        h_n.append(h)
        c_n.append(c)
    out, (hn, cn) = _finish(inp, [torch.stack(h_n), torch.stack(c_n)], unbatched, batch_first)
    return out, (hn, cn)


def gru(x: Tensor, params: Params, h0: Optional[Tensor] = None, num_layers: int = 1, batch_first: bool = False,
        reset: str = "pytorch") -> Tuple[Tensor, Tensor]:
    """A multi-layer GRU over a sequence; with ``reset="pytorch"`` equal to ``torch.nn.GRU``.

    x (T, B, I), or (B, T, I) with ``batch_first``, or (T, I) unbatched; params named like
    nn.GRU's; h0 (L, B, H) ((L, H) unbatched) or None for zeros
    -> (output (T, B, H) / (B, T, H) / (T, H), h_n (L, B, H)).
    """
    fn = "gru"
    _check_reset(fn, reset)
    xs, unbatched = _prepare(fn, x, batch_first)
    layers = _layer_params(fn, "gru", params, num_layers, xs.shape[2], xs.dtype)
    T, B, H = xs.shape[0], xs.shape[1], layers[0][1].shape[1]
    h_init = _state(fn, "h0", h0, num_layers, B, H, xs, unbatched)
    inp, h_n = xs, []
    for l, (W_ih, W_hh, b_ih, b_hh) in enumerate(layers):
        h, outs = h_init[l], []
        for t in range(T):
            h = _gru_cell(inp[t], h, W_ih, W_hh, b_ih, b_hh, reset)
            outs.append(h)
        inp = torch.stack(outs) if outs else xs.new_zeros(0, B, H)
        h_n.append(h)
    out, (hn,) = _finish(inp, [torch.stack(h_n)], unbatched, batch_first)
    return out, hn


# --- parameters and traces ----------------------------------------------------------------
def gate_params(cell: str, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                generator: Optional[torch.Generator] = None, dtype: torch.dtype = torch.float32) -> Params:
    """Random parameters named like nn.LSTM's / nn.GRU's (``cell`` "lstm" or "gru"), drawn like torch's
    default: every entry uniform in [-1/sqrt(H), 1/sqrt(H)]. Shapes: weight_ih_l0 (G*H, I),
    weight_ih_l{l>0} (G*H, H), weight_hh_l* (G*H, H), bias_* (G*H,), with G = 4 (LSTM) or 3 (GRU)."""
    fn = "gate_params"
    if cell not in _GATES:
        raise ValueError(f"{fn}: cell should be 'lstm' or 'gru', got {cell!r}")
    for name, v in (("input_size", input_size), ("hidden_size", hidden_size), ("num_layers", num_layers)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{fn}: {name} should be an int >= 1, got {v!r}")
    G, H, k = _GATES[cell], hidden_size, 1.0 / math.sqrt(hidden_size)

    def u(*shape: int) -> Tensor:
        return (torch.rand(*shape, generator=generator, dtype=torch.float64) * 2 - 1).mul_(k).to(dtype)

    params: Params = {}
    for l in range(num_layers):
        params[f"weight_ih_l{l}"] = u(G * H, input_size if l == 0 else H)
        params[f"weight_hh_l{l}"] = u(G * H, H)
        if bias:
            params[f"bias_ih_l{l}"] = u(G * H)
            params[f"bias_hh_l{l}"] = u(G * H)
    return params


def _trace_input(fn: str, x: Tensor, params: Params, kind: str, layer: int) -> Tuple[Tensor, list]:
    expect(fn, "x", x, ("T", "I"), floating=True)
    if isinstance(layer, bool) or not isinstance(layer, int) or layer < 0:
        raise ValueError(f"{fn}: layer should be an int >= 0, got {layer!r}")
    num_layers = 1 + max((int(k.rsplit("_l", 1)[1]) for k in params if "_l" in k), default=0) \
        if isinstance(params, dict) else 1
    if layer >= num_layers:
        raise ValueError(f"{fn}: layer={layer}, but params has {num_layers} layer(s)")
    layers = _layer_params(fn, kind, params, num_layers, x.shape[1], x.dtype)
    return x, layers


@torch.no_grad()
def lstm_trace(x: Tensor, params: Params, layer: int = 0) -> Dict[str, Tensor]:
    """Everything an LSTM layer computes on one sequence, for plots.

    x (T, I) one sequence, params named like nn.LSTM's (any number of layers; zero initial state)
    -> dict of (T, H) tensors for layer ``layer``: gates "i", "f", "g", "o", cell state "c", hidden "h".
    """
    x, layers = _trace_input("lstm_trace", x, params, "lstm", layer)
    inp = x
    for l, (W_ih, W_hh, b_ih, b_hh) in enumerate(layers[:layer + 1]):
        H = W_hh.shape[1]
        h, c = x.new_zeros(1, H), x.new_zeros(1, H)
        rec: Dict[str, list] = {k: [] for k in "ifgoch"}
        for t in range(x.shape[0]):
            i, f, g, o = _lstm_gates(inp[t:t + 1], h, W_ih, W_hh, b_ih, b_hh)
            c = f * c + i * g
            h = o * torch.tanh(c)
            for k, v in zip("ifgoch", (i, f, g, o, c, h)):
                rec[k].append(v[0])
        out = {k: torch.stack(v) if v else x.new_zeros(0, H) for k, v in rec.items()}
        inp = out["h"]
    return out


@torch.no_grad()
def gru_trace(x: Tensor, params: Params, layer: int = 0, reset: str = "pytorch") -> Dict[str, Tensor]:
    """Everything a GRU layer computes on one sequence, for plots.

    x (T, I) one sequence, params named like nn.GRU's (zero initial state) -> dict of (T, H) tensors
    for layer ``layer``: reset gate "r", update gate "z", candidate "n", hidden "h".
    """
    _check_reset("gru_trace", reset)
    x, layers = _trace_input("gru_trace", x, params, "gru", layer)
    inp = x
    for W_ih, W_hh, b_ih, b_hh in layers[:layer + 1]:
        H = W_hh.shape[1]
        h = x.new_zeros(1, H)
        rec: Dict[str, list] = {k: [] for k in "rznh"}
        for t in range(x.shape[0]):
            r, z, n = _gru_gates(inp[t:t + 1], h, W_ih, W_hh, b_ih, b_hh, reset)
            h = (1 - z) * n + z * h
            for k, v in zip("rznh", (r, z, n, h)):
                rec[k].append(v[0])
        out = {k: torch.stack(v) if v else x.new_zeros(0, H) for k, v in rec.items()}
        inp = out["h"]
    return out


# --- gradients over time ------------------------------------------------------------------
def gradient_norms_over_time(x: Tensor, params: Params, cell: str = "lstm") -> Dict[str, Tensor]:
    """``||dL/dh_t||`` (and for the LSTM ``||dL/dc_t||``) for t = 1..T, each (T,), for a loss on
    the last hidden state only, as :func:`course_lib.rnn.gradient_norms_over_time` measures it
    for the vanilla RNN: ``L = sum(h_T) / sqrt(B*H)``, so that ``||dL/dh_T|| = 1``.

    x (T, B, I); params of a one-layer nn.LSTM / nn.GRU (``cell``); zero initial state.
    Gradients by autograd through :func:`lstm_cell` / :func:`gru_cell`; norms over (B, H).
    ``dL/dc_t`` is the total derivative: it includes the path through ``h_t = o_t * tanh(c_t)``.
    """
    fn = "gradient_norms_over_time"
    if cell not in _GATES:
        raise ValueError(f"{fn}: cell should be 'lstm' or 'gru', got {cell!r}")
    expect(fn, "x", x, ("T", "B", "I"), floating=True)
    if x.shape[0] == 0:
        raise ShapeError(f"{fn}: the sequence length T should be >= 1, got x of shape {tuple(x.shape)}")
    ((W_ih, W_hh, b_ih, b_hh),) = _layer_params(fn, cell, params, 1, x.shape[2], x.dtype)
    W_ih, W_hh = W_ih.detach(), W_hh.detach()
    b_ih = None if b_ih is None else b_ih.detach()
    b_hh = None if b_hh is None else b_hh.detach()
    B, H = x.shape[1], W_hh.shape[1]
    with torch.enable_grad():
        # zero initial states as leaves, so that every later h_t and c_t is a node of one graph
        h = x.new_zeros(B, H).requires_grad_(True)
        c = x.new_zeros(B, H).requires_grad_(True)
        hs, cs = [], []
        for t in range(x.shape[0]):
            if cell == "lstm":
                h, c = _lstm_cell(x[t].detach(), h, c, W_ih, W_hh, b_ih, b_hh)
                c.retain_grad()  # dL/dc_t in full, including the path through h_t = o_t * tanh(c_t)
                cs.append(c)
            else:
                h = _gru_cell(x[t].detach(), h, W_ih, W_hh, b_ih, b_hh, "pytorch")
            h.retain_grad()
            hs.append(h)
        (h.sum() / math.sqrt(B * H)).backward()
    zero = x.new_zeros(())
    out = {"h": torch.stack([t.grad.norm() if t.grad is not None else zero for t in hs])}
    if cell == "lstm":
        out["c"] = torch.stack([t.grad.norm() if t.grad is not None else zero for t in cs])
    return out
