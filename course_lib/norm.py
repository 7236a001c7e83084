"""Batch normalisation and layer normalisation, forward and hand-written backward.

Batch norm (Ioffe & Szegedy, 2015) normalises each channel ``c`` over the batch (and the
spatial positions): for ``x`` of shape (N, C), (N, C, L) or (N, C, H, W), with ``m`` the number
of values per channel (N, N L or N H W)::

    mu_c    = mean of x[:, c, ...]                        (C,)
    var_c   = mean of (x[:, c, ...] - mu_c)^2             (C,)  biased: divides by m
    xhat    = (x - mu) / sqrt(var + eps)                  like x
    y       = weight * xhat + bias                        like x

In training it normalises with the batch statistics and updates the running estimates in
place with the *unbiased* variance ``var * m / (m - 1)``::

    running_mean <- (1 - momentum) * running_mean + momentum * mu
    running_var  <- (1 - momentum) * running_var  + momentum * var * m / (m - 1)

In evaluation it uses the running estimates instead of the batch statistics. Layer norm
(Ba, Kiros & Hinton, 2016) normalises each sample over its last dimensions
(``normalized_shape``) and behaves the same in training and evaluation.

Everything here equals ``torch.nn.functional.batch_norm`` / ``layer_norm`` and
``nn.BatchNorm1d/2d`` / ``nn.LayerNorm`` (checked in ``tests/test_norm.py``).
"""

from __future__ import annotations

from typing import Optional, Sequence, Tuple, Union

import torch

from course_lib.validate import ShapeError, expect, same_shape

__all__ = [
    "batch_norm",
    "batch_norm_backward",
    "layer_norm",
    "layer_norm_backward",
    "BatchNorm",
    "LayerNorm",
]

Shape = Union[int, Sequence[int]]


# --- validation -----------------------------------------------------------------------
def _check_x(fn: str, x: torch.Tensor) -> int:
    """x is floating with at least 2 dims (N, C, ...); returns C."""
    expect(fn, "x", x, floating=True)
    if x.dim() < 2:
        raise ShapeError(f"{fn}: x should have shape (N, C) or (N, C, *spatial), got {tuple(x.shape)}")
    return int(x.shape[1])


def _check_channel(fn: str, name: str, t: Optional[torch.Tensor], C: int, x: torch.Tensor) -> None:
    if t is None:
        return
    expect(fn, name, t, (C,), floating=True)
    if t.dtype != x.dtype:
        raise ShapeError(f"{fn}: {name} should have the dtype of x ({x.dtype}), got {t.dtype}")


def _check_eps(fn: str, eps: float) -> None:
    if not eps >= 0.0:
        raise ValueError(f"{fn}: eps should be >= 0, got {eps}")


def _reduce_dims(x: torch.Tensor) -> Tuple[int, ...]:
    """All dimensions but the channel dimension 1."""
    return (0,) + tuple(range(2, x.dim()))


def _channel_view(t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """A (C,) tensor shaped (1, C, 1, ...) to broadcast against x."""
    return t.reshape((1, -1) + (1,) * (x.dim() - 2))


# --- batch norm -----------------------------------------------------------------------
def batch_norm(
    x: torch.Tensor,
    running_mean: Optional[torch.Tensor],
    running_var: Optional[torch.Tensor],
    weight: Optional[torch.Tensor] = None,
    bias: Optional[torch.Tensor] = None,
    training: bool = False,
    momentum: float = 0.1,
    eps: float = 1e-5,
) -> torch.Tensor:
    """Batch normalisation with the semantics of ``torch.nn.functional.batch_norm``.

    x: (N, C) or (N, C, L) or (N, C, H, W) (any number of trailing dims); running_mean,
    running_var, weight, bias: (C,) or ``None``. Returns y, shaped like x.

    ``training=True``: normalise with the batch mean and the *biased* batch variance; if
    the running tensors are given, update them in place (momentum, *unbiased* variance).
    ``training=False``: normalise with ``running_mean`` and ``running_var`` (required).
    """
    fn = "batch_norm"
    C = _check_x(fn, x)
    for name, t in (("running_mean", running_mean), ("running_var", running_var), ("weight", weight), ("bias", bias)):
        _check_channel(fn, name, t, C, x)
    _check_eps(fn, eps)
    if not 0.0 <= momentum <= 1.0:
        raise ValueError(f"{fn}: momentum should lie in [0, 1], got {momentum}")
    dims = _reduce_dims(x)
    if training:
        m = x.numel() // C if C else 0
        if m <= 1:
            raise ValueError(
                f"{fn}: training needs more than 1 value per channel to estimate a variance, "
                f"got input shape {tuple(x.shape)} (as torch: 'Expected more than 1 value per channel')"
            )
        mean = x.mean(dim=dims)
        var = ((x - _channel_view(mean, x)) ** 2).mean(dim=dims)  # biased: / m
        with torch.no_grad():
            if running_mean is not None:
                running_mean.mul_(1.0 - momentum).add_(momentum * mean.detach())
            if running_var is not None:
                running_var.mul_(1.0 - momentum).add_(momentum * var.detach() * (m / (m - 1)))  # unbiased
    else:
        if running_mean is None or running_var is None:
            raise ValueError(f"{fn}: evaluation mode (training=False) needs running_mean and running_var, got None")
        mean, var = running_mean, running_var
    y = (x - _channel_view(mean, x)) * _channel_view(torch.rsqrt(var + eps), x)
    if weight is not None:
        y = y * _channel_view(weight, x)
    if bias is not None:
        y = y + _channel_view(bias, x)
    return y


def batch_norm_backward(
    dy: torch.Tensor,
    x: torch.Tensor,
    weight: Optional[torch.Tensor] = None,
    eps: float = 1e-5,
) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Hand-derived backward of training-mode batch norm: returns ``(dx, dweight, dbias)``.

    dy, x: (N, C, *spatial); weight: (C,) or ``None`` (= ones). With ``m`` values per
    channel, ``s = 1 / sqrt(var + eps)`` (C,) and sums over every dim but C::

        dbias   = sum(dy)                                           (C,)
        dweight = sum(dy * xhat)                                    (C,)
        dx      = weight * s / m * (m * dy - sum(dy) - xhat * sum(dy * xhat))   like x

    ``dweight`` and ``dbias`` are returned even when ``weight`` is ``None`` (the gradients
    a weight of ones and a bias of zeros would receive).
    """
    fn = "batch_norm_backward"
    C = _check_x(fn, x)
    expect(fn, "dy", dy, floating=True)
    same_shape(fn, "dy", dy, "x", x)
    if dy.dtype != x.dtype:
        raise ShapeError(f"{fn}: dy should have the dtype of x ({x.dtype}), got {dy.dtype}")
    _check_channel(fn, "weight", weight, C, x)
    _check_eps(fn, eps)
    dims = _reduce_dims(x)
    m = x.numel() // C if C else 0
    if m <= 1:
        raise ValueError(f"{fn}: training-mode batch norm needs more than 1 value per channel, got x {tuple(x.shape)}")
    mean = x.mean(dim=dims)
    var = ((x - _channel_view(mean, x)) ** 2).mean(dim=dims)
    s = torch.rsqrt(var + eps)
    xhat = (x - _channel_view(mean, x)) * _channel_view(s, x)
    dbias = dy.sum(dim=dims)
    dweight = (dy * xhat).sum(dim=dims)
    scale = s if weight is None else weight * s
    dx = _channel_view(scale / m, x) * (m * dy - _channel_view(dbias, x) - xhat * _channel_view(dweight, x))
    return dx, dweight, dbias


# --- layer norm -----------------------------------------------------------------------
def _normalized_dims(fn: str, x: torch.Tensor, normalized_shape: Shape) -> Tuple[Tuple[int, ...], Tuple[int, ...]]:
    """Check ``normalized_shape`` against the trailing dims of x; return (shape, dims)."""
    shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
    if not shape or not all(isinstance(s, int) and not isinstance(s, bool) for s in shape):
        raise ValueError(f"{fn}: normalized_shape should be an int or a non-empty tuple of ints, got {normalized_shape!r}")
    k = len(shape)
    if x.dim() < k or tuple(x.shape[-k:]) != shape:
        raise ShapeError(
            f"{fn}: the last {k} dim(s) of x should be normalized_shape {shape}, got x of shape {tuple(x.shape)}"
        )
    return shape, tuple(range(x.dim() - k, x.dim()))


def _check_affine(fn: str, name: str, t: Optional[torch.Tensor], shape: Tuple[int, ...], x: torch.Tensor) -> None:
    if t is None:
        return
    expect(fn, name, t, shape, floating=True)
    if t.dtype != x.dtype:
        raise ShapeError(f"{fn}: {name} should have the dtype of x ({x.dtype}), got {t.dtype}")


def layer_norm(
    x: torch.Tensor,
    normalized_shape: Shape,
    weight: Optional[torch.Tensor] = None,
    bias: Optional[torch.Tensor] = None,
    eps: float = 1e-5,
) -> torch.Tensor:
    """Layer normalisation with the semantics of ``torch.nn.functional.layer_norm``.

    x: (*, *normalized_shape); weight, bias: normalized_shape or ``None``. Each sample is
    normalised over its last ``len(normalized_shape)`` dims with the biased variance::

        y = (x - mean) / sqrt(var + eps) * weight + bias        like x
    """
    fn = "layer_norm"
    expect(fn, "x", x, floating=True)
    shape, dims = _normalized_dims(fn, x, normalized_shape)
    _check_affine(fn, "weight", weight, shape, x)
    _check_affine(fn, "bias", bias, shape, x)
    _check_eps(fn, eps)
    mean = x.mean(dim=dims, keepdim=True)
    var = ((x - mean) ** 2).mean(dim=dims, keepdim=True)
    y = (x - mean) * torch.rsqrt(var + eps)
    if weight is not None:
        y = y * weight
    if bias is not None:
        y = y + bias
    return y


def layer_norm_backward(
    dy: torch.Tensor,
    x: torch.Tensor,
    normalized_shape: Shape,
    weight: Optional[torch.Tensor] = None,
    eps: float = 1e-5,
) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Hand-derived backward of :func:`layer_norm`: returns ``(dx, dweight, dbias)``.

    dy, x: (*, *normalized_shape); weight: normalized_shape or ``None`` (= ones). With
    ``d`` values per sample, ``s = 1 / sqrt(var + eps)`` per sample, ``g = dy * weight``
    and means over the normalised dims::

        dx      = s * (g - mean(g) - xhat * mean(g * xhat))       like x
        dweight = sum over the leading dims of dy * xhat          normalized_shape
        dbias   = sum over the leading dims of dy                 normalized_shape
    """
    fn = "layer_norm_backward"
    expect(fn, "x", x, floating=True)
    expect(fn, "dy", dy, floating=True)
    same_shape(fn, "dy", dy, "x", x)
    if dy.dtype != x.dtype:
        raise ShapeError(f"{fn}: dy should have the dtype of x ({x.dtype}), got {dy.dtype}")
    shape, dims = _normalized_dims(fn, x, normalized_shape)
    _check_affine(fn, "weight", weight, shape, x)
    _check_eps(fn, eps)
    mean = x.mean(dim=dims, keepdim=True)
    var = ((x - mean) ** 2).mean(dim=dims, keepdim=True)
    s = torch.rsqrt(var + eps)
    xhat = (x - mean) * s
    g = dy if weight is None else dy * weight
    dx = s * (g - g.mean(dim=dims, keepdim=True) - xhat * (g * xhat).mean(dim=dims, keepdim=True))
    lead = tuple(range(x.dim() - len(shape)))
    dweight = (dy * xhat).sum(dim=lead) if lead else dy * xhat
    dbias = dy.sum(dim=lead) if lead else dy.clone()
    return dx, dweight, dbias


# --- modules ----------------------------------------------------------------------------
class BatchNorm(torch.nn.Module):
    """Batch norm as a module, like ``nn.BatchNorm1d/2d`` (affine, running statistics).

    ``train()``: batch statistics, running estimates updated; ``eval()``: running estimates.
    Parameters ``weight`` (ones) and ``bias`` (zeros), buffers ``running_mean`` (zeros),
    ``running_var`` (ones) and ``num_batches_tracked``, all (C,) except the last.
    """

    def __init__(self, num_features: int, momentum: float = 0.1, eps: float = 1e-5,
                 dtype: torch.dtype = torch.float32) -> None:
        super().__init__()
        if isinstance(num_features, bool) or not isinstance(num_features, int) or num_features < 1:
            raise ValueError(f"BatchNorm: num_features should be a positive int, got {num_features!r}")
        self.num_features, self.momentum, self.eps = num_features, momentum, eps
        self.weight = torch.nn.Parameter(torch.ones(num_features, dtype=dtype))
        self.bias = torch.nn.Parameter(torch.zeros(num_features, dtype=dtype))
        self.register_buffer("running_mean", torch.zeros(num_features, dtype=dtype))
        self.register_buffer("running_var", torch.ones(num_features, dtype=dtype))
        self.register_buffer("num_batches_tracked", torch.tensor(0, dtype=torch.long))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (N, C, *spatial) -> like x."""
        if self.training:
            self.num_batches_tracked += 1
        return batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias,
                          training=self.training, momentum=self.momentum, eps=self.eps)

    def extra_repr(self) -> str:
        return f"{self.num_features}, eps={self.eps}, momentum={self.momentum}"


class LayerNorm(torch.nn.Module):
    """Layer norm as a module, like ``nn.LayerNorm`` (weight ones, bias zeros)."""

    def __init__(self, normalized_shape: Shape, eps: float = 1e-5, dtype: torch.dtype = torch.float32) -> None:
        super().__init__()
        shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
        self.normalized_shape, self.eps = shape, eps
        self.weight = torch.nn.Parameter(torch.ones(shape, dtype=dtype))
        self.bias = torch.nn.Parameter(torch.zeros(shape, dtype=dtype))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (*, *normalized_shape) -> like x."""
        return layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)

    def extra_repr(self) -> str:
        return f"{self.normalized_shape}, eps={self.eps}"
