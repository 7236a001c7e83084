"""Input validation with error messages that teach.

Every public ``course_lib`` function checks its tensor arguments with
:func:`expect` so that a wrong shape or dtype is reported as, for example::

    linear_forward: W should have shape (D_out, D_in) = (?, 3), got (3, 4)
    (D_in is 3 from x)

A dimension spec is a tuple whose entries are ints (exact sizes), strings
(named sizes that must agree across arguments) or ``None`` (any size).
"""

from __future__ import annotations

from typing import Any, Dict, Optional, Sequence, Union

import torch

Dim = Union[int, str, None]


class ShapeError(ValueError):
    """A tensor argument has the wrong shape, dtype or type."""


def _fmt_spec(spec: Sequence[Dim]) -> str:
    inner = ", ".join("*" if d is None else str(d) for d in spec)
    return f"({inner},)" if len(spec) == 1 else f"({inner})"


def _fmt_shape(shape: Sequence[int]) -> str:
    shape = tuple(shape)
    return str(shape)


def expect(
    fn: str,
    name: str,
    x: Any,
    spec: Optional[Sequence[Dim]] = None,
    dims: Optional[Dict[str, int]] = None,
    *,
    floating: bool = False,
    integer: bool = False,
) -> Dict[str, int]:
    """Check that argument ``name`` of function ``fn`` is a tensor matching ``spec``.

    ``dims`` maps dimension names already fixed by earlier arguments to sizes; the
    returned dict is ``dims`` extended with the names bound by ``x``. Raises
    :class:`ShapeError` naming ``fn``, the expected and the received shape.
    """
    dims = dict(dims or {})
    if not isinstance(x, torch.Tensor):
        raise ShapeError(f"{fn}: {name} should be a torch.Tensor, got {type(x).__name__}")
    if floating and not x.is_floating_point():
        raise ShapeError(f"{fn}: {name} should be a floating-point tensor, got dtype {x.dtype}")
    if integer and (x.is_floating_point() or x.is_complex() or x.dtype == torch.bool):
        raise ShapeError(f"{fn}: {name} should be an integer tensor (e.g. torch.long), got dtype {x.dtype}")
    if spec is None:
        return dims
    spec = tuple(spec)
    if x.dim() != len(spec):
        raise ShapeError(
            f"{fn}: {name} should have {len(spec)} dimension(s) {_fmt_spec(spec)}, "
            f"got {x.dim()}: shape {_fmt_shape(x.shape)}"
        )
    for axis, (want, got) in enumerate(zip(spec, x.shape)):
        if want is None:
            continue
        if isinstance(want, int):
            if got != want:
                raise ShapeError(
                    f"{fn}: {name} should have shape {_fmt_spec(spec)}, got {_fmt_shape(x.shape)} "
                    f"(axis {axis} should be {want})"
                )
        elif want in dims:
            if got != dims[want]:
                known = ", ".join(f"{k}={v}" for k, v in dims.items())
                raise ShapeError(
                    f"{fn}: {name} should have shape {_fmt_spec(spec)}, got {_fmt_shape(x.shape)} "
                    f"({want} should be {dims[want]}; known sizes: {known})"
                )
        else:
            dims[want] = int(got)
    return dims


def same_shape(fn: str, name_a: str, a: torch.Tensor, name_b: str, b: torch.Tensor) -> None:
    """Raise :class:`ShapeError` unless tensors ``a`` and ``b`` have the same shape."""
    expect(fn, name_a, a)
    expect(fn, name_b, b)
    if a.shape != b.shape:
        raise ShapeError(
            f"{fn}: {name_a} and {name_b} should have the same shape, "
            f"got {_fmt_shape(a.shape)} and {_fmt_shape(b.shape)}"
        )


def same_dtype(fn: str, **tensors: torch.Tensor) -> None:
    """Raise :class:`ShapeError` unless all given tensors share one dtype."""
    dtypes = {name: t.dtype for name, t in tensors.items()}
    if len(set(dtypes.values())) > 1:
        listing = ", ".join(f"{n}: {d}" for n, d in dtypes.items())
        raise ShapeError(f"{fn}: all tensors should have the same dtype, got {listing}")
