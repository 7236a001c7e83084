"""Positional information for attention: sinusoidal encodings, learned tables and rotary embeddings.

Shapes: T positions, E model width, d the width of one head (even for RoPE).

Sinusoidal encoding (Vaswani et al. 2017, section 3.5), for position ``p`` and ``i = 0 .. E/2 - 1``::

    omega_i     = base^(-2i / E)
    PE[p, 2i]   = sin(p * omega_i)          PE: (T, E)
    PE[p, 2i+1] = cos(p * omega_i)

Rotary embedding, RoPE (Su et al. 2021, RoFormer, arXiv:2104.09864): rotate each pair of
coordinates of a query or key at position ``p`` by the angle ``p * theta_i`` with
``theta_i = base^(-2i / d)``, ``i = 0 .. d/2 - 1``. Then for a query at ``m`` and a key at ``n``,
``<R_m q, R_n k> = <q, R_(n - m) k>``: the score depends on the positions only through ``n - m``.
Two layouts pair the coordinates differently:

* rotate-half (``interleaved=False``): pair ``(j, j + d/2)``::

      x1, x2 = x[..., :d/2], x[..., d/2:]
      out = cat(x1 cos - x2 sin, x2 cos + x1 sin)

* interleaved (``interleaved=True``, the paper's formula): pair ``(2i, 2i + 1)``::

      out[..., 2i]   = x[..., 2i] cos - x[..., 2i+1] sin
      out[..., 2i+1] = x[..., 2i+1] cos + x[..., 2i] sin

They equal ``torch.onnx.ops.rotary_embedding(..., interleaved=False / True)`` with the same
caches (checked in ``tests/test_position.py``) and differ from each other by a fixed
permutation of the head dimensions.
"""

from __future__ import annotations

from typing import Optional, Tuple

import torch

from course_lib.validate import ShapeError, expect

Tensor = torch.Tensor

__all__ = ["sinusoidal_encoding", "rope_angles", "rope", "interleave_permutation", "cosine_similarity_matrix"]


def _positive_int(fn: str, name: str, v: object, minimum: int = 1) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or v < minimum:
        raise ValueError(f"{fn}: {name} should be an int >= {minimum}, got {v!r}")
    return v


def _check_base(fn: str, base: float) -> float:
    if isinstance(base, bool) or not isinstance(base, (int, float)) or not base > 1.0 or base == float("inf"):
        raise ValueError(f"{fn}: base should be a finite number > 1, got {base!r}")
    return float(base)


def sinusoidal_encoding(T: int, E: int, base: float = 10000.0, dtype: torch.dtype = torch.float32) -> Tensor:
    """The sinusoidal table of Vaswani et al. (2017): (T, E), sin on even, cos on odd dims.

    ``PE[p, 2i] = sin(p / base^(2i/E))``, ``PE[p, 2i+1] = cos(p / base^(2i/E))``. An odd E keeps
    the sine of the last frequency in the last column. Computed in float64, returned in ``dtype``.
    """
    fn = "sinusoidal_encoding"
    _positive_int(fn, "T", T, 0)
    _positive_int(fn, "E", E)
    base = _check_base(fn, base)
    if not (isinstance(dtype, torch.dtype) and dtype.is_floating_point):
        raise ShapeError(f"{fn}: dtype should be a floating dtype, got {dtype}")
    pos = torch.arange(T, dtype=torch.float64)[:, None]  # (T, 1)
    omega = base ** (-torch.arange(0, E, 2, dtype=torch.float64) / E)  # (ceil(E/2),)
    angles = pos * omega  # (T, ceil(E/2))
    pe = torch.empty(T, E, dtype=torch.float64)
    pe[:, 0::2] = torch.sin(angles)
    pe[:, 1::2] = torch.cos(angles[:, : E // 2])
    return pe.to(dtype)


def rope_angles(positions: Tensor, d: int, base: float = 10000.0, dtype: torch.dtype = torch.float64
                ) -> Tuple[Tensor, Tensor]:
    """cos and sin of the RoPE angles ``p * base^(-2i/d)``: positions (...,) -> two (..., d/2) tensors.

    These are the ``cos_cache`` / ``sin_cache`` of ``torch.onnx.ops.rotary_embedding`` when
    positions = ``arange(max_position)``.
    """
    fn = "rope_angles"
    expect(fn, "positions", positions)
    if positions.dtype == torch.bool or positions.is_complex():
        raise ShapeError(f"{fn}: positions should be an integer or floating tensor, got dtype {positions.dtype}")
    _positive_int(fn, "d", d, 2)
    if d % 2:
        raise ValueError(f"{fn}: d should be even (coordinates are rotated in pairs), got {d}")
    base = _check_base(fn, base)
    theta = base ** (-torch.arange(0, d, 2, dtype=torch.float64, device=positions.device) / d)  # (d/2,)
    angles = positions.to(torch.float64)[..., None] * theta  # (..., d/2)
    return torch.cos(angles).to(dtype), torch.sin(angles).to(dtype)


def rope(x: Tensor, positions: Optional[Tensor] = None, base: float = 10000.0, interleaved: bool = False) -> Tensor:
    """Rotary position embedding of queries or keys: x (..., T, d) -> same shape and dtype.

    ``positions``: None (``0 .. T-1``) or an integer/floating tensor broadcastable to (..., T),
    e.g. (T,) or (B, 1, T) for a batch of offsets. ``interleaved=False``: rotate-half layout,
    pairs ``(j, j + d/2)``; ``True``: pairs ``(2i, 2i + 1)``. d must be even.
    """
    fn = "rope"
    expect(fn, "x", x, floating=True)
    if x.dim() < 2:
        raise ShapeError(f"{fn}: x should have shape (..., T, d), got {tuple(x.shape)}")
    T, d = int(x.shape[-2]), int(x.shape[-1])
    if d % 2 or d == 0:
        raise ShapeError(f"{fn}: the last dim d of x should be even and > 0 (pairs are rotated), got shape "
                         f"{tuple(x.shape)}")
    if positions is None:
        positions = torch.arange(T, device=x.device)
    else:
        expect(fn, "positions", positions)
        if positions.dim() == 0 or positions.shape[-1] != T:
            raise ShapeError(f"{fn}: positions should have shape (..., T) with T={T} (from x), "
                             f"got {tuple(positions.shape)}")
    cos, sin = rope_angles(positions, d, base, dtype=x.dtype)  # (..., T, d/2)
    if interleaved:
        x1, x2 = x[..., 0::2], x[..., 1::2]  # pairs (2i, 2i+1)
        out = torch.stack((x1 * cos - x2 * sin, x2 * cos + x1 * sin), dim=-1)  # (..., T, d/2, 2)
        return out.flatten(-2)
    x1, x2 = x[..., : d // 2], x[..., d // 2:]  # pairs (j, j + d/2)
    return torch.cat((x1 * cos - x2 * sin, x2 * cos + x1 * sin), dim=-1)


def interleave_permutation(d: int) -> Tensor:
    """The index ``perm`` (d,) with ``rope(x[..., perm], interleaved=True)[..., inv] ==
    rope(x, interleaved=False)``: perm = (0, d/2, 1, d/2 + 1, ...) puts pair (j, j + d/2) at (2j, 2j+1)."""
    _positive_int("interleave_permutation", "d", d, 2)
    if d % 2:
        raise ValueError(f"interleave_permutation: d should be even, got {d}")
    half = torch.arange(d // 2)
    return torch.stack((half, half + d // 2), dim=-1).flatten()


def cosine_similarity_matrix(P: Tensor) -> Tensor:
    """Cosine similarity of every pair of rows: P (T, E) -> (T, T); a zero row gives 0, not NaN."""
    expect("cosine_similarity_matrix", "P", P, ("T", "E"), floating=True)
    n = P.norm(dim=1, keepdim=True)
    U = P / torch.where(n > 0, n, torch.ones_like(n))
    return U @ U.T
