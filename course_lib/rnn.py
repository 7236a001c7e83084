"""A vanilla (Elman) recurrent network from scratch, and backpropagation through time by hand.

Conventions follow PyTorch's ``nn.RNN`` (parameters named ``weight_ih_l{k}``,
``weight_hh_l{k}``, ``bias_ih_l{k}``, ``bias_hh_l{k}``)::

    x_t:  (B, I)    the input at step t          h_{t-1}: (B, H)  the previous state
    W_ih: (H, I)    input-to-hidden weights       W_hh:    (H, H)  hidden-to-hidden weights
    b_ih, b_hh: (H,)

    h_t = tanh(x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh)          (or relu)

A layer applies the cell for t = 1..T with the same weights; a stack of
``num_layers`` layers feeds the outputs (h_1..h_T) of layer k as the inputs of
layer k+1. Sequences are ``(T, B, I)``, or ``(B, T, I)`` with ``batch_first=True``.

Backpropagation through time (:func:`bptt`) walks the steps backwards with
``a_t = x_t W_ih^T + h_{t-1} W_hh^T + b`` and ``h_t = tanh(a_t)``::

    g_t  = dout_t + (dL/dh_t from step t+1)        total gradient at h_t, (B, H)
    da_t = g_t * (1 - h_t^2)                       (B, H)
    dW_ih += da_t^T x_t,  dW_hh += da_t^T h_{t-1},  db += sum_b da_t
    dx_t = da_t W_ih,  (dL/dh_{t-1} from step t) = da_t W_hh

so ``dL/dh_t`` contains the product of Jacobians ``prod_k diag(1 - h_k^2) W_hh``,
whose norm is at most ``||W_hh||_2^(T - t)``: the vanishing/exploding-gradient story.
"""

from __future__ import annotations

from typing import Dict, List, Optional, Tuple

import torch

from course_lib.validate import ShapeError, expect, same_dtype

_NONLINEARITIES = ("tanh", "relu")


def _nonlinearity(fn: str, nonlinearity: object) -> str:
    if nonlinearity not in _NONLINEARITIES:
        raise ValueError(f"{fn}: nonlinearity should be 'tanh' or 'relu', got {nonlinearity!r}")
    return nonlinearity  # type: ignore[return-value]


def _int(fn: str, name: str, value: object, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{fn}: {name} should be an int >= {minimum}, got {value!r}")
    return value


def rnn_cell(
    x: torch.Tensor,
    h: torch.Tensor,
    W_ih: torch.Tensor,
    W_hh: torch.Tensor,
    b_ih: Optional[torch.Tensor] = None,
    b_hh: Optional[torch.Tensor] = None,
    nonlinearity: str = "tanh",
) -> torch.Tensor:
    """One step of a vanilla RNN, as ``nn.RNNCell``.

    ``x`` (B, I), ``h`` (B, H), ``W_ih`` (H, I), ``W_hh`` (H, H), ``b_ih``/``b_hh`` (H,) or None.
    Returns ``h' = tanh(x W_ih^T + b_ih + h W_hh^T + b_hh)`` of shape (B, H) (relu with
    ``nonlinearity="relu"``). Floating-point tensors of one dtype only.
    """
    fn = "rnn_cell"
    act = _nonlinearity(fn, nonlinearity)
    dims = expect(fn, "x", x, ("B", "I"), floating=True)
    dims = expect(fn, "W_ih", W_ih, ("H", "I"), dims, floating=True)
    dims = expect(fn, "h", h, ("B", "H"), dims, floating=True)
    expect(fn, "W_hh", W_hh, ("H", "H"), dims, floating=True)
    tensors = {"x": x, "h": h, "W_ih": W_ih, "W_hh": W_hh}
    for name, b in (("b_ih", b_ih), ("b_hh", b_hh)):
        if b is not None:
            expect(fn, name, b, ("H",), dims, floating=True)
            tensors[name] = b
    same_dtype(fn, **tensors)
    a = x @ W_ih.T + h @ W_hh.T
    if b_ih is not None:
        a = a + b_ih
    if b_hh is not None:
        a = a + b_hh
    return torch.tanh(a) if act == "tanh" else torch.relu(a)


def rnn_params(module: torch.nn.Module) -> Dict[str, torch.Tensor]:
    """The parameters of ``nn.RNN``/``nn.LSTM``/``nn.GRU`` as ``{name: tensor}``
    (``weight_ih_l0``, ``weight_hh_l0``, ``bias_ih_l0``, ``bias_hh_l0``, ``..._l1``...).

    The tensors are the module's own (not copies), so gradients flow back to it.
    """
    if not isinstance(module, torch.nn.Module):
        raise TypeError(f"rnn_params: module should be a torch.nn.Module, got {type(module).__name__}")
    return dict(module.named_parameters())


def rnn(
    x: torch.Tensor,
    params: Dict[str, torch.Tensor],
    h0: Optional[torch.Tensor] = None,
    num_layers: int = 1,
    batch_first: bool = False,
    nonlinearity: str = "tanh",
) -> Tuple[torch.Tensor, torch.Tensor]:
    """A (multi-layer, unidirectional) vanilla RNN, as ``nn.RNN``.

    ``x`` (T, B, I), or (B, T, I) with ``batch_first=True``; ``params`` named like nn.RNN's
    (``weight_ih_l{k}`` (H, I or H), ``weight_hh_l{k}`` (H, H), optional ``bias_ih_l{k}``,
    ``bias_hh_l{k}`` (H,)); ``h0`` (num_layers, B, H) or None (zeros).
    Returns ``output`` (T, B, H) (or (B, T, H)): the last layer's h_1..h_T, and ``h_n``
    (num_layers, B, H): every layer's last state (not batch-first, as in PyTorch).
    """
    fn = "rnn"
    act = _nonlinearity(fn, nonlinearity)
    num_layers = _int(fn, "num_layers", num_layers, 1)
    if not isinstance(params, dict):
        raise TypeError(f"rnn: params should be a dict of tensors named like nn.RNN's, got {type(params).__name__}")
    layout = ("B", "T", "I") if batch_first else ("T", "B", "I")
    dims = expect(fn, "x", x, layout, floating=True)
    seq = x.transpose(0, 1) if batch_first else x  # (T, B, I)
    expected = {f"{w}_l{k}" for k in range(num_layers) for w in ("weight_ih", "weight_hh")}
    missing = sorted(expected - set(params))
    if missing:
        raise KeyError(f"rnn: params is missing {missing} for num_layers={num_layers}; got keys {sorted(params)}")
    if dims["T"] == 0:
        raise ShapeError(f"rnn: x should hold at least one time step, got shape {tuple(x.shape)}")
    dims = expect(fn, "weight_hh_l0", params["weight_hh_l0"], ("H", "H"), dims, floating=True)
    H = dims["H"]
    if h0 is not None:
        expect(fn, "h0", h0, (num_layers, "B", "H"), dims, floating=True)
        same_dtype(fn, x=x, h0=h0)
    layer_in = seq
    last_states: List[torch.Tensor] = []
    for k in range(num_layers):
        W_ih, W_hh = params[f"weight_ih_l{k}"], params[f"weight_hh_l{k}"]
        b_ih, b_hh = params.get(f"bias_ih_l{k}"), params.get(f"bias_hh_l{k}")
        in_size = layer_in.shape[2]
        expect(fn, f"weight_ih_l{k}", W_ih, (H, in_size), floating=True)
        h = h0[k] if h0 is not None else torch.zeros(dims["B"], H, dtype=x.dtype, device=x.device)
        outs = []
        for t in range(layer_in.shape[0]):
            h = rnn_cell(layer_in[t], h, W_ih, W_hh, b_ih, b_hh, nonlinearity=act)
            outs.append(h)
        layer_in = torch.stack(outs)  # (T, B, H)
        last_states.append(h)
    output = layer_in.transpose(0, 1) if batch_first else layer_in
    return output, torch.stack(last_states)


def rnn_forward_states(
    x: torch.Tensor,
    W_ih: torch.Tensor,
    W_hh: torch.Tensor,
    b: Optional[torch.Tensor] = None,
    h0: Optional[torch.Tensor] = None,
    truncate: Optional[int] = None,
) -> torch.Tensor:
    """All states of one tanh layer, ``hs`` (T+1, B, H) with ``hs[0] = h0`` (zeros if None):
    the input :func:`bptt` expects. ``x`` (T, B, I); ``b`` (H,) is ``b_ih + b_hh``.

    With ``truncate=k`` the state is detached (cut from the autograd graph) after every k
    steps: autograd then computes exactly the truncated gradient of ``bptt(..., truncate=k)``.
    """
    fn = "rnn_forward_states"
    dims = expect(fn, "x", x, ("T", "B", "I"), floating=True)
    dims = expect(fn, "W_ih", W_ih, ("H", "I"), dims, floating=True)
    expect(fn, "W_hh", W_hh, ("H", "H"), dims, floating=True)
    if truncate is not None:
        _int(fn, "truncate", truncate, 1)
    h = torch.zeros(dims["B"], dims["H"], dtype=x.dtype, device=x.device) if h0 is None else h0
    hs = [h]
    for t in range(dims["T"]):
        if truncate is not None and t > 0 and t % truncate == 0:
            h = h.detach()
        h = rnn_cell(x[t], h, W_ih, W_hh, b)
        hs.append(h)
    return torch.stack(hs)


def bptt(
    x: torch.Tensor,
    hs: torch.Tensor,
    dout: torch.Tensor,
    W_ih: torch.Tensor,
    W_hh: torch.Tensor,
    truncate: Optional[int] = None,
    dh_n: Optional[torch.Tensor] = None,
) -> Dict[str, object]:
    """Backpropagation through time for one tanh layer, written by hand (no autograd).

    ``x`` (T, B, I) the inputs; ``hs`` (T+1, B, H) the states with ``hs[0] = h0`` and
    ``hs[t] = h_t`` (see :func:`rnn_forward_states`); ``dout`` (T, B, H) the gradient of the
    loss with respect to each output h_1..h_T *directly* (e.g. from a per-step loss);
    ``dh_n`` (B, H) optional extra gradient on the last state.

    ``truncate=k``: truncated BPTT in chunks of k steps. The gradient flowing from h_t back
    into h_{t-1} is dropped whenever t-1 is a multiple of k (t-1 = k, 2k, ...), i.e. the state
    is treated as a constant at chunk boundaries, exactly what ``h.detach()`` every k steps
    does. Each loss term then reaches back at most to the start of its chunk.

    Returns a dict: ``dW_ih`` (H, I), ``dW_hh`` (H, H), ``db`` (H,) (the gradient of both
    b_ih and b_hh), ``dx`` (T, B, I), ``dh0`` (B, H), and ``dh``: a list of T tensors (B, H),
    ``dh[t-1]`` = the total dL/dh_t for t = 1..T.
    """
    fn = "bptt"
    dims = expect(fn, "x", x, ("T", "B", "I"), floating=True)
    dims = expect(fn, "W_ih", W_ih, ("H", "I"), dims, floating=True)
    expect(fn, "W_hh", W_hh, ("H", "H"), dims, floating=True)
    T = dims["T"]
    expect(fn, "hs", hs, (T + 1, "B", "H"), dims, floating=True)
    expect(fn, "dout", dout, (T, "B", "H"), dims, floating=True)
    tensors = {"x": x, "hs": hs, "dout": dout, "W_ih": W_ih, "W_hh": W_hh}
    if dh_n is not None:
        expect(fn, "dh_n", dh_n, ("B", "H"), dims, floating=True)
        tensors["dh_n"] = dh_n
    same_dtype(fn, **tensors)
    if truncate is not None:
        _int(fn, "truncate", truncate, 1)
    with torch.no_grad():
        dW_ih, dW_hh, db = W_ih.new_zeros(W_ih.shape), W_hh.new_zeros(W_hh.shape), W_hh.new_zeros(dims["H"])
        dx: List[torch.Tensor] = [x[0]] * T
        dh: List[torch.Tensor] = [hs[0]] * T
        carry = torch.zeros_like(hs[0]) if dh_n is None else dh_n  # dL/dh_T from "after" T
        for t in range(T, 0, -1):  # t = T..1; state h_t = hs[t], input x_t = x[t-1]
            g = dout[t - 1] + carry  # the total dL/dh_t
            dh[t - 1] = g
            da = g * (1 - hs[t] * hs[t])  # through tanh: dL/da_t, (B, H)
            dW_ih = dW_ih + da.T @ x[t - 1]
            dW_hh = dW_hh + da.T @ hs[t - 1]
            db = db + da.sum(0)
            dx[t - 1] = da @ W_ih
            carry = da @ W_hh  # dL/dh_{t-1} through step t
            if truncate is not None and (t - 1) % truncate == 0 and t - 1 > 0:
                carry = torch.zeros_like(carry)  # chunk boundary: h_{t-1} is treated as a constant
        dh0 = carry
    return {"dW_ih": dW_ih, "dW_hh": dW_hh, "db": db, "dx": torch.stack(dx), "dh0": dh0, "dh": dh}


# --- vanishing and exploding gradients ---------------------------------------------------
def spectral_radius(W: torch.Tensor) -> float:
    """``max |eigenvalue|`` of a square matrix ``W`` (n, n)."""
    expect("spectral_radius", "W", W, ("n", "n"), floating=True)
    return float(torch.linalg.eigvals(W.detach().double()).abs().max())


def recurrent_matrix(
    H: int, radius: float, kind: str = "orthogonal", generator: Optional[torch.Generator] = None,
    dtype: torch.dtype = torch.float64,
) -> torch.Tensor:
    """A random (H, H) matrix with spectral radius ``radius``.

    ``kind="orthogonal"``: ``radius * Q`` with Q orthogonal (QR of a Gaussian matrix), so every
    singular value, and hence the spectral norm ||W||_2, equals ``radius`` too.
    ``kind="gaussian"``: a Gaussian matrix rescaled to the radius; it is not normal, so its
    spectral norm is larger than its spectral radius.
    """
    fn = "recurrent_matrix"
    _int(fn, "H", H, 1)
    if isinstance(radius, bool) or not isinstance(radius, (int, float)) or not radius >= 0:
        raise ValueError(f"{fn}: radius should be a number >= 0, got {radius!r}")
    G = torch.randn(H, H, generator=generator, dtype=torch.float64)
    if kind == "orthogonal":
        Q, R = torch.linalg.qr(G)
        W = Q * torch.sign(torch.diagonal(R))  # a uniformly distributed orthogonal matrix
    elif kind == "gaussian":
        W = G / torch.linalg.eigvals(G).abs().max()
    else:
        raise ValueError(f"{fn}: kind should be 'orthogonal' or 'gaussian', got {kind!r}")
    return (radius * W).to(dtype)


def gradient_norms_over_time(
    x: torch.Tensor,
    W_ih: torch.Tensor,
    W_hh: torch.Tensor,
    b: Optional[torch.Tensor] = None,
    h0: Optional[torch.Tensor] = None,
    dh_T: Optional[torch.Tensor] = None,
) -> torch.Tensor:
    """``||dL/dh_t||`` for t = 1..T, shape (T,), for a loss on the last state only.

    ``x`` (T, B, I); the loss is ``L = sum(dh_T * h_T)`` (``dh_T`` (B, H), default all ones
    divided by sqrt(B*H), so that ``||dL/dh_T|| = 1``). Norms are Frobenius over (B, H).
    Computed with :func:`bptt`, so ``dL/dh_t = dL/dh_T * prod_{k=t+1}^{T} diag(1-h_k^2) W_hh``.
    """
    hs = rnn_forward_states(x, W_ih, W_hh, b, h0).detach()
    T, B, H = hs.shape[0] - 1, hs.shape[1], hs.shape[2]
    if dh_T is None:
        dh_T = torch.full((B, H), (B * H) ** -0.5, dtype=x.dtype, device=x.device)
    dout = torch.zeros(T, B, H, dtype=x.dtype, device=x.device)
    grads = bptt(x, hs, dout, W_ih, W_hh, dh_n=dh_T)
    return torch.stack([g.norm() for g in grads["dh"]])  # type: ignore[union-attr]


# --- shapes ------------------------------------------------------------------------------
def describe_shapes(value: object) -> str:
    """The shape of a tensor, or of every tensor in a (nested) tuple/list, e.g.
    ``(4, 10, 50), (1, 4, 50)`` for what ``nn.RNN`` returns; other values by type name."""
    if isinstance(value, torch.Tensor):
        return str(tuple(value.shape))
    if isinstance(value, (tuple, list)):
        return "(" + ", ".join(describe_shapes(v) for v in value) + ")"
    return type(value).__name__


def shape_report(model: torch.nn.Module, x: torch.Tensor) -> str:
    """Chapter 07's shape table (forward hooks on every leaf module), with the tuples that
    recurrent layers return spelled out: ``nn.RNN`` gives ``(output, h_n)``, ``nn.LSTM``
    ``(output, (h_n, c_n))``. If the forward pass fails, the error follows the last layer that ran."""
    from course_lib.cnn import _Recorder

    error = None
    with _Recorder(model) as rec, torch.no_grad():
        try:
            model(x)
        except Exception as exc:  # the point is to show it
            error = f"{type(exc).__name__}: {exc}"
    modules = dict(model.named_modules())
    width = max([len("input")] + [len(n) for n, _ in rec.records])
    lines = [f"{'input':<{width}}  {'':<44}  {tuple(x.shape)}"]
    for name, value in rec.records:
        layer = repr(modules[name]).replace("\n", " ")
        layer = layer if len(layer) <= 44 else layer[:41] + "..."
        lines.append(f"{name:<{width}}  {layer:<44}  {describe_shapes(value)}")
    if error is not None:
        last = rec.records[-1][0] if rec.records else "the input"
        lines.append(f"!! the forward pass failed after {last}: {error}")
    return "\n".join(lines)
