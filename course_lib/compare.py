"""Compare a from-scratch result with PyTorch's, in one line a notebook can show."""

from __future__ import annotations

from typing import Sequence, Union

import torch

Tensors = Union[torch.Tensor, Sequence[torch.Tensor]]


def max_abs_diff(ours: Tensors, ref: Tensors) -> float:
    """Largest absolute difference over all tensors (shapes must match)."""
    ours_t = [ours] if isinstance(ours, torch.Tensor) else list(ours)
    ref_t = [ref] if isinstance(ref, torch.Tensor) else list(ref)
    if len(ours_t) != len(ref_t):
        raise ValueError(f"max_abs_diff: got {len(ours_t)} tensors but {len(ref_t)} reference tensors")
    worst = 0.0
    for i, (a, b) in enumerate(zip(ours_t, ref_t)):
        if a.shape != b.shape:
            raise ValueError(f"max_abs_diff: tensor {i} has shape {tuple(a.shape)}, reference has {tuple(b.shape)}")
        if a.numel():
            worst = max(worst, float((a.detach().double() - b.detach().double()).abs().max()))
    return worst


def compare(name: str, ours: Tensors, ref: Tensors, atol: float = 1e-10) -> float:
    """Print ``name: max |ours - torch| = 1.1e-16 (tolerance 1e-10) OK`` and return the
    difference; raise ``AssertionError`` if it exceeds ``atol`` (or is NaN)."""
    diff = max_abs_diff(ours, ref)
    ok = diff <= atol
    print(f"{name}: max |ours - torch| = {diff:.2e} (tolerance {atol:.0e}) {'OK' if ok else 'MISMATCH'}")
    if not ok:
        raise AssertionError(f"{name}: from-scratch result differs from PyTorch by {diff:.3e} > {atol:.0e}")
    return diff
