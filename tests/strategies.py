"""Hypothesis strategies for special values and unusual dtypes.

Used by ``tests/test_special_values.py`` to compare ``course_lib`` with PyTorch where
hand-written numerics usually go wrong:

* :func:`floats` - float64 numbers, about half of them special: NaN, +inf, -inf, -0.0,
  0.0, the largest and smallest magnitudes (1e300, 5e-324), the rest ordinary;
* :func:`float_tensors` - float64 tensors of such numbers, with empty (size-0) and
  size-1 dimensions among the shapes;
* :func:`int_tensors` - integer tensors of every integer dtype torch has (``INT_DTYPES``:
  uint8, int8, int16, int32, int64 and the newer uint16/32/64, which support few operations).

Shapes stay small (sides 0..3) so that a test of 30 examples takes well under a second.
"""

from __future__ import annotations

import math
from typing import Optional, Sequence, Tuple, Union

import numpy as np
import torch
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

#: the values every float test should see
SPECIAL = (math.nan, math.inf, -math.inf, -0.0, 0.0, 1e300, -1e300, 5e-324)
#: every integer dtype of torch; the last three exist since torch 2.3 and support few operations
INT_DTYPES = (torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64) + tuple(
    getattr(torch, name) for name in ("uint16", "uint32", "uint64") if hasattr(torch, name)
)
#: the dtypes PyTorch accepts as class indices in ``F.cross_entropy`` / ``nll_loss``
TORCH_CLASS_INDEX_DTYPES = (torch.int64, torch.uint8)

_NUMPY_INT = {
    torch.uint8: np.uint8, torch.int8: np.int8, torch.int16: np.int16, torch.int32: np.int32,
    torch.int64: np.int64,
}
for _name in ("uint16", "uint32", "uint64"):
    if hasattr(torch, _name):
        _NUMPY_INT[getattr(torch, _name)] = getattr(np, _name)

ShapeArg = Union[None, Tuple[int, ...], st.SearchStrategy]


def floats(special: bool = True, ordinary: Tuple[float, float] = (-10.0, 10.0),
           values: Sequence[float] = SPECIAL) -> st.SearchStrategy[float]:
    """A float64: with ``special`` one of ``values`` about half the time, otherwise a finite
    float in ``ordinary`` (default [-10, 10])."""
    finite = st.floats(*ordinary, allow_nan=False, allow_infinity=False, width=64)
    return st.one_of(st.sampled_from(tuple(values)), finite) if special else finite


def shapes(min_dims: int = 1, max_dims: int = 3, min_side: int = 0, max_side: int = 3) -> st.SearchStrategy[Tuple[int, ...]]:
    """Tensor shapes whose sides include 0 (empty) and 1 unless ``min_side`` excludes them."""
    return hnp.array_shapes(min_dims=min_dims, max_dims=max_dims, min_side=min_side, max_side=max_side)


def _shape(shape: ShapeArg) -> st.SearchStrategy:
    if shape is None:
        return shapes()
    if isinstance(shape, st.SearchStrategy):
        return shape
    return st.just(tuple(shape))


def float_tensors(shape: ShapeArg = None, special: bool = True, ordinary: Tuple[float, float] = (-10.0, 10.0),
                  values: Sequence[float] = SPECIAL) -> st.SearchStrategy[torch.Tensor]:
    """float64 tensors of ``shape`` (a tuple, a strategy, or None for :func:`shapes`) whose
    entries come from :func:`floats`."""
    elements = floats(special, ordinary, values)
    return _shape(shape).flatmap(
        lambda s: hnp.arrays(np.float64, s, elements=elements).map(lambda a: torch.from_numpy(a.copy()))
    )


def int_tensors(shape: ShapeArg = None, dtypes: Sequence[torch.dtype] = INT_DTYPES,
                min_value: Optional[int] = None, max_value: Optional[int] = None) -> st.SearchStrategy[torch.Tensor]:
    """Integer tensors of one of ``dtypes`` (default: every integer dtype) and ``shape``;
    entries in ``[min_value, max_value]`` clipped to the dtype's range (default: the whole range)."""

    def build(dtype: torch.dtype) -> st.SearchStrategy[torch.Tensor]:
        np_dtype = _NUMPY_INT[dtype]
        info = np.iinfo(np_dtype)
        lo = info.min if min_value is None else max(int(info.min), min_value)
        hi = info.max if max_value is None else min(int(info.max), max_value)
        if lo > hi:  # e.g. negative values only, for an unsigned dtype: use its smallest value
            lo = hi = int(info.min)
        elements = st.integers(int(lo), int(hi))
        return _shape(shape).flatmap(
            lambda s: hnp.arrays(np_dtype, s, elements=elements).map(lambda a: torch.from_numpy(a.copy()))
        )

    return st.sampled_from(tuple(dtypes)).flatmap(build)
