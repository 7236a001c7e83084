"""Weight initialisation and what it does to signals through depth.

A fully connected layer ``z = h W^T`` with ``W`` of shape ``(fan_out, fan_in)`` and
independent zero-mean entries of variance ``s^2`` gives, for inputs with second moment
``E[h^2]``::

    Var(z) = fan_in * s^2 * E[h^2]

so the scale of the signal is multiplied by ``sqrt(fan_in) * s * (activation factor)`` in
every layer. The schemes of :func:`init_std` choose ``s``:

=========  ==============================================  =============================
scheme     std ``s``                                        source
=========  ==============================================  =============================
naive      ``0.01``                                         a fixed small number
xavier     ``gain * sqrt(2 / (fan_in + fan_out))``          Glorot & Bengio (2010)
kaiming    ``gain / sqrt(fan_in)``                          He et al. (2015), fan-in mode
pytorch    ``1 / sqrt(3 fan_in)``  (U(-1/sqrt(fan_in), .))  ``nn.Linear``'s default
=========  ==============================================  =============================

with ``gain`` as :func:`torch.nn.init.calculate_gain` (linear/sigmoid 1, tanh 5/3,
relu sqrt 2). :func:`depth_statistics` measures the activation scale and the weight
gradients layer by layer in a deep bias-free MLP.
"""

from __future__ import annotations

import math
from typing import Dict, List, Optional

import torch

__all__ = ["SCHEMES", "NONLINEARITIES", "gain", "init_std", "init_weight", "depth_statistics"]

SCHEMES = ("naive", "xavier", "kaiming", "pytorch")
NONLINEARITIES = ("linear", "sigmoid", "tanh", "relu")


def gain(nonlinearity: str) -> float:
    """The gain of :func:`torch.nn.init.calculate_gain`: 1 for ``linear`` and ``sigmoid``,
    5/3 for ``tanh``, sqrt(2) for ``relu``."""
    gains = {"linear": 1.0, "sigmoid": 1.0, "tanh": 5.0 / 3.0, "relu": math.sqrt(2.0)}
    if nonlinearity not in gains:
        raise ValueError(f"gain: nonlinearity should be one of {sorted(gains)}, got {nonlinearity!r}")
    return gains[nonlinearity]


def _check_fans(fn: str, **fans: int) -> None:
    for name, value in fans.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{fn}: {name} should be a positive int, got {value!r}")


def init_std(fan_in: int, fan_out: int, scheme: str, nonlinearity: str = "relu") -> float:
    """Standard deviation of the weights of a ``(fan_out, fan_in)`` layer under ``scheme``.

    ``naive``: 0.01; ``xavier``: gain * sqrt(2 / (fan_in + fan_out)); ``kaiming``:
    gain / sqrt(fan_in); ``pytorch``: the std of nn.Linear's default
    U(-1/sqrt(fan_in), 1/sqrt(fan_in)), which is 1 / sqrt(3 fan_in) whatever the
    nonlinearity.
    """
    _check_fans("init_std", fan_in=fan_in, fan_out=fan_out)
    if scheme not in SCHEMES:
        raise ValueError(f"init_std: scheme should be one of {list(SCHEMES)}, got {scheme!r}")
    g = gain(nonlinearity)
    if scheme == "naive":
        return 0.01
    if scheme == "xavier":
        return g * math.sqrt(2.0 / (fan_in + fan_out))
    if scheme == "kaiming":
        return g / math.sqrt(fan_in)
    return 1.0 / math.sqrt(3.0 * fan_in)  # pytorch: bound b = 1/sqrt(fan_in), std of U(-b, b) = b/sqrt(3)


def init_weight(
    fan_out: int,
    fan_in: int,
    scheme: str,
    nonlinearity: str = "relu",
    generator: Optional[torch.Generator] = None,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """A weight matrix of shape ``(fan_out, fan_in)`` (the layout of ``nn.Linear.weight``).

    ``naive``, ``xavier`` and ``kaiming`` draw from N(0, init_std^2) (the same draws as
    ``torch.nn.init.normal_``, ``xavier_normal_`` and ``kaiming_normal_`` with the same
    generator); ``pytorch`` draws from U(-1/sqrt(fan_in), 1/sqrt(fan_in)) like
    ``nn.Linear.reset_parameters``.
    """
    _check_fans("init_weight", fan_out=fan_out, fan_in=fan_in)
    if not dtype.is_floating_point:
        raise ValueError(f"init_weight: dtype should be a floating-point dtype, got {dtype}")
    std = init_std(fan_in, fan_out, scheme, nonlinearity)
    w = torch.empty(fan_out, fan_in, dtype=dtype)
    if scheme == "pytorch":
        bound = 1.0 / math.sqrt(fan_in)
        return w.uniform_(-bound, bound, generator=generator)
    return w.normal_(0.0, std, generator=generator)


def _act(nonlinearity: str, z: torch.Tensor) -> torch.Tensor:
    if nonlinearity == "relu":
        return torch.relu(z)
    if nonlinearity == "tanh":
        return torch.tanh(z)
    if nonlinearity == "sigmoid":
        return torch.sigmoid(z)
    return z


def _act_grad(nonlinearity: str, z: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
    """Derivative of the activation at ``z`` (``h`` is the activation's output)."""
    if nonlinearity == "relu":
        return (z > 0).to(z.dtype)
    if nonlinearity == "tanh":
        return 1.0 - h * h
    if nonlinearity == "sigmoid":
        return h * (1.0 - h)
    return torch.ones_like(z)


def depth_statistics(
    depth: int,
    width: int,
    scheme: str,
    nonlinearity: str,
    batch: int = 256,
    seed: int = 0,
    dtype: torch.dtype = torch.float32,
    gain_nonlinearity: Optional[str] = None,
) -> Dict[str, object]:
    """Forward and backward statistics of a bias-free MLP of ``depth`` layers ``width -> width``.

    Input ``x`` (batch, width) ~ N(0, 1); layer l computes ``z_l = h_{l-1} W_l^T`` and
    ``h_l = act(z_l)`` with ``W_l`` (width, width) from :func:`init_weight`. The loss is the
    fixed quadratic ``L = sum((h_depth - y)^2) / (2 batch)`` with targets ``y`` ~ N(0, 1)
    (batch, width). The backward pass is written out (``delta_l = dL/dz_l``)::

        delta_depth = (h_depth - y) / batch * act'(z_depth)
        dL/dW_l     = delta_l^T h_{l-1}                      (width, width)
        delta_{l-1} = (delta_l W_l) * act'(z_{l-1})

    ``gain_nonlinearity`` (default: ``nonlinearity``) names the activation whose gain the
    initialisation uses: ``"linear"`` gives Glorot & Bengio's Xavier (gain 1) under a ReLU.
    Draws ``x``, then ``y``, then ``W_1, W_2, ...`` from one generator seeded with ``seed``,
    so a deeper network shares its first layers with a shallower one.

    Returns a dict of per-layer lists (index 0 is layer 1): ``activation_std`` (std of
    ``h_l``), ``preactivation_std`` (std of ``z_l``), ``activations`` (``h_l``, tensors
    (batch, width), for histograms), ``gradient_norm`` (Frobenius norm of dL/dW_l), plus
    ``input_std`` and ``loss``.
    """
    fn = "depth_statistics"
    _check_fans(fn, depth=depth, width=width, batch=batch)
    if scheme not in SCHEMES:
        raise ValueError(f"{fn}: scheme should be one of {list(SCHEMES)}, got {scheme!r}")
    if nonlinearity not in NONLINEARITIES:
        raise ValueError(f"{fn}: nonlinearity should be one of {list(NONLINEARITIES)}, got {nonlinearity!r}")
    init_nl = nonlinearity if gain_nonlinearity is None else gain_nonlinearity
    gain(init_nl)  # validates the name
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, width, generator=gen, dtype=dtype)
    y = torch.randn(batch, width, generator=gen, dtype=dtype)
    weights = [init_weight(width, width, scheme, init_nl, gen, dtype) for _ in range(depth)]
    hs: List[torch.Tensor] = [x]
    zs: List[torch.Tensor] = []
    for W in weights:
        z = hs[-1] @ W.T
        zs.append(z)
        hs.append(_act(nonlinearity, z))
    out = hs[-1]
    loss = float(((out - y) ** 2).sum() / (2 * batch))
    grads: List[float] = [0.0] * depth
    delta = (out - y) / batch * _act_grad(nonlinearity, zs[-1], out)
    for layer in range(depth - 1, -1, -1):
        grads[layer] = float(torch.linalg.vector_norm(delta.T @ hs[layer]))
        if layer > 0:
            delta = (delta @ weights[layer]) * _act_grad(nonlinearity, zs[layer - 1], hs[layer])
    return {
        "activation_std": [float(h.std(correction=0)) for h in hs[1:]],
        "preactivation_std": [float(z.std(correction=0)) for z in zs],
        "activations": hs[1:],
        "gradient_norm": grads,
        "input_std": float(x.std(correction=0)),
        "loss": loss,
    }
