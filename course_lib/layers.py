"""Forward (and local backward) computations of the basic layers, from scratch.

Conventions follow PyTorch's ``nn.Linear``: a batch of ``N`` inputs is a matrix
``x`` of shape ``(N, D_in)``, a weight matrix ``W`` has shape ``(D_out, D_in)``
(one row per output neuron) and a bias ``b`` has shape ``(D_out,)``::

    y = x @ W.T + b          # (N, D_out)

Each ``*_backward`` function takes the upstream gradient ``dy = dL/dy`` (same
shape as the layer's output) and returns the gradient(s) with respect to the
layer's input(s). The elementwise activations and the softmaxes work on tensors
of any shape.

Special values give what PyTorch gives (checked in ``tests/test_special_values.py``):
``relu`` keeps NaN, :func:`logsumexp` of a fully masked (all -inf) slice is -inf, a
softmax over a slice holding NaN or +inf, or all -inf, is NaN, and an empty ``dim`` is allowed.
"""

from __future__ import annotations

from typing import Callable, List, Optional, Sequence, Tuple

import torch

from course_lib.validate import ShapeError, expect, same_dtype, same_shape

Params = List[Tuple[torch.Tensor, torch.Tensor]]

ACTIVATIONS = ("relu", "sigmoid", "tanh")


# --- linear layer ---------------------------------------------------------------------
def linear_forward(x: torch.Tensor, W: torch.Tensor, b: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Affine layer ``y = x W^T + b``.

    x: (N, D_in), W: (D_out, D_in), b: (D_out,) or None  ->  y: (N, D_out).
    """
    dims = expect("linear_forward", "x", x, ("N", "D_in"), floating=True)
    dims = expect("linear_forward", "W", W, ("D_out", "D_in"), dims, floating=True)
    same_dtype("linear_forward", x=x, W=W)
    y = x @ W.T
    if b is not None:
        expect("linear_forward", "b", b, ("D_out",), dims, floating=True)
        same_dtype("linear_forward", x=x, b=b)
        y = y + b  # broadcast (D_out,) over the N rows
    return y


def linear_backward(
    dy: torch.Tensor, x: torch.Tensor, W: torch.Tensor
) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Gradients of ``y = x W^T + b`` given ``dy = dL/dy``.

    dy: (N, D_out), x: (N, D_in), W: (D_out, D_in)  ->
    dx = dy W: (N, D_in), dW = dy^T x: (D_out, D_in), db = sum_n dy: (D_out,).
    """
    dims = expect("linear_backward", "x", x, ("N", "D_in"), floating=True)
    dims = expect("linear_backward", "W", W, ("D_out", "D_in"), dims, floating=True)
    expect("linear_backward", "dy", dy, ("N", "D_out"), dims, floating=True)
    same_dtype("linear_backward", dy=dy, x=x, W=W)
    dx = dy @ W
    dW = dy.T @ x
    db = dy.sum(dim=0)
    return dx, dW, db


# --- elementwise activations ----------------------------------------------------------
def relu(x: torch.Tensor) -> torch.Tensor:
    """ReLU, ``max(0, x)`` elementwise. x: any shape -> same shape.

    Only negative entries become 0, so NaN stays NaN (and -0.0 stays -0.0), as in PyTorch;
    ``torch.where(x > 0, x, 0)`` would quietly turn NaN into 0 and hide a diverged network.
    """
    expect("relu", "x", x, floating=True)
    return torch.where(x < 0, torch.zeros_like(x), x)


def relu_backward(dy: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Gradient of ReLU: ``dx = 0 where x <= 0, else dy`` (0 at x = 0, as in PyTorch).

    At x = NaN the gradient passes through (``NaN <= 0`` is false), as PyTorch's does.
    dy, x: same shape (any) -> dx: same shape.
    """
    expect("relu_backward", "dy", dy, floating=True)
    expect("relu_backward", "x", x, floating=True)
    same_shape("relu_backward", "dy", dy, "x", x)
    return torch.where(x <= 0, torch.zeros_like(dy), dy)


def sigmoid(x: torch.Tensor) -> torch.Tensor:
    """Logistic sigmoid ``1 / (1 + exp(-x))`` elementwise, without overflow.

    With ``e = exp(-|x|)`` (always in (0, 1]): ``1 / (1 + e)`` for x >= 0 and
    ``e / (1 + e)`` for x < 0. x: any shape -> same shape.
    """
    expect("sigmoid", "x", x, floating=True)
    e = torch.exp(-x.abs())
    return torch.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def sigmoid_backward(dy: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Gradient of the sigmoid from its output ``y = sigmoid(x)``: ``dx = dy * y (1 - y)``.

    dy, y: same shape (any) -> dx: same shape.
    """
    expect("sigmoid_backward", "dy", dy, floating=True)
    expect("sigmoid_backward", "y", y, floating=True)
    same_shape("sigmoid_backward", "dy", dy, "y", y)
    return dy * y * (1.0 - y)


def tanh(x: torch.Tensor) -> torch.Tensor:
    """Hyperbolic tangent elementwise, without overflow.

    ``tanh(x) = sign(x) (1 - e) / (1 + e)`` with ``e = exp(-2|x|)``; ``1 - e`` is
    computed as ``-expm1(-2|x|)`` to stay accurate for tiny x. x: any shape -> same shape.
    """
    expect("tanh", "x", x, floating=True)
    m = torch.expm1(-2.0 * x.abs())  # e - 1, in (-1, 0]
    return torch.sign(x) * (-m) / (2.0 + m)


def tanh_backward(dy: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Gradient of tanh from its output ``y = tanh(x)``: ``dx = dy * (1 - y^2)``.

    dy, y: same shape (any) -> dx: same shape.
    """
    expect("tanh_backward", "dy", dy, floating=True)
    expect("tanh_backward", "y", y, floating=True)
    same_shape("tanh_backward", "dy", dy, "y", y)
    return dy * (1.0 - y * y)


# --- softmax --------------------------------------------------------------------------
def _check_dim(fn: str, x: torch.Tensor, dim: int) -> None:
    if not isinstance(dim, int) or isinstance(dim, bool):
        raise ShapeError(f"{fn}: dim should be an int, got {type(dim).__name__}")
    if x.dim() == 0 or not -x.dim() <= dim < x.dim():
        raise ShapeError(f"{fn}: dim={dim} is out of range for a tensor of shape {tuple(x.shape)}")


def softmax(x: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """Softmax along ``dim``: ``exp(x - m) / sum(exp(x - m))`` with ``m = max(x)``.

    Subtracting the maximum leaves the result unchanged but keeps every
    exponent <= 0, so logits of +-1000 neither overflow nor give NaN.
    x: any shape -> same shape; entries along ``dim`` are positive and sum to 1.
    As in PyTorch, a slice along ``dim`` holding NaN or +inf, or all -inf, gives NaN
    (``inf - inf``), and an empty ``dim`` gives an empty result.
    """
    expect("softmax", "x", x, floating=True)
    _check_dim("softmax", x, dim)
    if x.shape[dim] == 0:
        return x.clone()
    z = x - x.amax(dim=dim, keepdim=True)
    e = torch.exp(z)
    return e / e.sum(dim=dim, keepdim=True)


def softmax_backward(dy: torch.Tensor, y: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """Gradient of softmax from its output ``y = softmax(x, dim)``:
    ``dx = y * (dy - sum(dy * y, dim, keepdim))``.

    dy, y: same shape (any) -> dx: same shape.
    """
    expect("softmax_backward", "dy", dy, floating=True)
    expect("softmax_backward", "y", y, floating=True)
    same_shape("softmax_backward", "dy", dy, "y", y)
    _check_dim("softmax_backward", y, dim)
    return y * (dy - (dy * y).sum(dim=dim, keepdim=True))


def logsumexp(x: torch.Tensor, dim: int = -1, keepdim: bool = False) -> torch.Tensor:
    """``log(sum(exp(x), dim))`` computed stably as ``m + log(sum(exp(x - m)))``, ``m = max(x)``.

    x: any shape -> shape of x without ``dim`` (or with size 1 there if ``keepdim``).

    Special values, as in PyTorch: where the maximum is infinite, ``m = 0`` is used instead
    (``x - m`` would be ``inf - inf = NaN``), so a slice that is all -inf (a fully masked
    row of attention scores) gives -inf = log 0, and one holding +inf gives +inf. A slice
    holding NaN gives NaN; an empty ``dim`` gives -inf (the log of an empty sum).
    """
    expect("logsumexp", "x", x, floating=True)
    _check_dim("logsumexp", x, dim)
    if x.shape[dim] == 0:
        m = x.sum(dim=dim, keepdim=True)  # zeros of the reduced shape: log(0) = -inf below
    else:
        m = x.amax(dim=dim, keepdim=True)
        m = torch.where(torch.isinf(m), torch.zeros_like(m), m)
    out = m + torch.log(torch.exp(x - m).sum(dim=dim, keepdim=True))
    return out if keepdim else out.squeeze(dim)


def log_softmax(x: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """Log of the softmax along ``dim``: ``x - logsumexp(x, dim)``, computed as
    ``(x - m) - log(sum(exp(x - m)))`` with ``m = max(x)`` (stable for large |x|).

    x: any shape -> same shape. As in PyTorch, a slice along ``dim`` holding NaN or +inf,
    or all -inf, gives NaN throughout (here ``m`` is not replaced as in :func:`logsumexp`),
    and an empty ``dim`` gives an empty result.
    """
    expect("log_softmax", "x", x, floating=True)
    _check_dim("log_softmax", x, dim)
    if x.shape[dim] == 0:
        return x.clone()
    z = x - x.amax(dim=dim, keepdim=True)
    return z - torch.log(torch.exp(z).sum(dim=dim, keepdim=True))


def log_softmax_backward(dy: torch.Tensor, y: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """Gradient of log-softmax from its output ``y = log_softmax(x, dim)``:
    ``dx = dy - exp(y) * sum(dy, dim, keepdim)``.

    dy, y: same shape (any) -> dx: same shape.
    """
    expect("log_softmax_backward", "dy", dy, floating=True)
    expect("log_softmax_backward", "y", y, floating=True)
    same_shape("log_softmax_backward", "dy", dy, "y", y)
    _check_dim("log_softmax_backward", y, dim)
    return dy - torch.exp(y) * dy.sum(dim=dim, keepdim=True)


# --- a multi-layer perceptron ---------------------------------------------------------
def activation_fn(name: str) -> Callable[[torch.Tensor], torch.Tensor]:
    """The elementwise activation called ``name`` (``"relu"``, ``"sigmoid"`` or ``"tanh"``)."""
    table = {"relu": relu, "sigmoid": sigmoid, "tanh": tanh}
    if name not in table:
        raise ValueError(f"unknown activation {name!r}; choose one of {', '.join(ACTIVATIONS)}")
    return table[name]


def mlp_forward(x: torch.Tensor, params: Sequence[Tuple[torch.Tensor, torch.Tensor]], activation: str = "relu") -> List[torch.Tensor]:
    """Forward pass of an MLP, keeping every intermediate result.

    x: (N, D_0); params: ``[(W_1, b_1), ..., (W_L, b_L)]`` with W_l: (D_l, D_{l-1}),
    b_l: (D_l,). Hidden layers compute ``z_l = a_{l-1} W_l^T + b_l`` and
    ``a_l = activation(z_l)``; the last layer has no activation. Returns
    ``[x, z_1, a_1, ..., z_{L-1}, a_{L-1}, z_L]`` (length 2L); z_L: (N, D_L) are the logits.
    """
    act = activation_fn(activation)
    expect("mlp_forward", "x", x, ("N", "D_0"), floating=True)
    if len(params) == 0:
        raise ShapeError("mlp_forward: params should hold at least one (W, b) pair, got none")
    outs = [x]
    a = x
    for l, pair in enumerate(params, start=1):
        if not isinstance(pair, (tuple, list)) or len(pair) != 2:
            raise ShapeError(f"mlp_forward: params[{l - 1}] should be a pair (W_{l}, b_{l}), got {type(pair).__name__}")
        W, b = pair
        dims = {"D_prev": a.shape[1]}
        dims = expect("mlp_forward", f"W_{l}", W, ("D_l", "D_prev"), dims, floating=True)
        expect("mlp_forward", f"b_{l}", b, ("D_l",), dims, floating=True)
        z = linear_forward(a, W, b)
        outs.append(z)
        if l < len(params):
            a = act(z)
            outs.append(a)
    return outs


def init_mlp(
    sizes: Sequence[int],
    generator: Optional[torch.Generator] = None,
    dtype: torch.dtype = torch.float64,
) -> Params:
    """Random parameters for an MLP with layer sizes ``[D_0, D_1, ..., D_L]``.

    The same distribution as ``nn.Linear``'s default initialisation: every entry
    of W_l: (D_l, D_{l-1}) and b_l: (D_l,) is drawn uniformly from
    ``[-1/sqrt(D_{l-1}), 1/sqrt(D_{l-1})]``. Returns ``[(W_1, b_1), ..., (W_L, b_L)]``.
    """
    sizes = [int(s) for s in sizes]
    if len(sizes) < 2 or any(s <= 0 for s in sizes):
        raise ValueError(f"init_mlp: sizes should list at least two positive layer sizes, got {sizes}")
    params: Params = []
    for d_in, d_out in zip(sizes[:-1], sizes[1:]):
        bound = 1.0 / d_in**0.5
        W = (torch.rand(d_out, d_in, generator=generator, dtype=dtype) * 2 - 1) * bound
        b = (torch.rand(d_out, generator=generator, dtype=dtype) * 2 - 1) * bound
        params.append((W, b))
    return params
