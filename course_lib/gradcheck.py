"""Check gradients with finite differences.

A backward pass written by hand is easy to get subtly wrong (a transpose, a
missing sum over the batch). The derivative's definition gives an independent
check: for a scalar function f of a tensor x, nudge one entry at a time,

    df/dx_i ~ (f(x + eps e_i) - f(x - eps e_i)) / (2 eps)        (central difference)

whose error shrinks like eps^2 (the one-sided (f(x + eps e_i) - f(x)) / eps only
like eps). It costs two evaluations of f per entry, so it is a test, not a way
to train. Always in float64: in float32 the rounding error ~1e-7 / eps swamps it.
"""

from __future__ import annotations

from typing import Any, Callable, List, Sequence, Tuple, Union

import torch

from course_lib.validate import ShapeError, expect, same_shape

Tensors = Union[torch.Tensor, Sequence[torch.Tensor]]


class GradcheckError(AssertionError):
    """An analytic gradient disagrees with the finite-difference estimate."""


def _scalar(fn: str, value: Any) -> float:
    if isinstance(value, torch.Tensor):
        if value.numel() != 1:
            raise ShapeError(f"{fn}: f should return a scalar (one number), got a tensor of shape {tuple(value.shape)}")
        return float(value.item())
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    raise ShapeError(f"{fn}: f should return a scalar (a number or a one-element tensor), got {type(value).__name__}")


def _unravel(i: int, shape: Tuple[int, ...]) -> Tuple[int, ...]:
    """The index tuple of entry ``i`` of a tensor of ``shape`` in row-major order."""
    where = []
    for size in reversed(shape):
        where.append(i % size)
        i //= size
    return tuple(reversed(where))


def numerical_grad(f: Callable[[torch.Tensor], Any], x: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Central-difference estimate of the gradient of the scalar ``f`` at ``x``.

    x: any shape, floating point (computed in float64)  ->  grad: same shape as x, float64,
    ``grad[i] = (f(x + eps e_i) - f(x - eps e_i)) / (2 eps)``. ``x`` is not modified.
    """
    expect("numerical_grad", "x", x, floating=True)
    if not eps > 0:
        raise ValueError(f"numerical_grad: eps should be a small positive number, got {eps}")
    x = x.detach().to(torch.float64).clone()
    grad = torch.zeros_like(x)
    flat, gflat = x.view(-1), grad.view(-1)  # views: writing flat[i] changes x
    for i in range(flat.numel()):
        old = flat[i].item()
        flat[i] = old + eps
        f_plus = _scalar("numerical_grad", f(x))
        flat[i] = old - eps
        f_minus = _scalar("numerical_grad", f(x))
        flat[i] = old  # restore before the next entry
        gflat[i] = (f_plus - f_minus) / (2 * eps)
    return grad


def _as_list(fn: str, name: str, xs: Tensors) -> List[torch.Tensor]:
    items = [xs] if isinstance(xs, torch.Tensor) else list(xs)
    for i, t in enumerate(items):
        expect(fn, f"{name}[{i}]", t, floating=True)
    return items


def gradcheck(
    f: Callable[..., Any],
    inputs: Tensors,
    analytic: Tensors,
    eps: float = 1e-6,
    atol: float = 1e-6,
    rtol: float = 1e-5,
) -> float:
    """Compare ``analytic`` gradients of the scalar ``f(*inputs)`` with central differences.

    inputs: a tensor or a list of tensors; analytic: one gradient per input, same shapes.
    Every entry must satisfy ``|a - n| <= atol + rtol |n|`` (a: analytic, n: numerical),
    otherwise :class:`GradcheckError` says which input and entry is wrong. A NaN or infinite
    entry in either always fails: finite differences cannot confirm it (``inf - inf`` is NaN,
    and a comparison with NaN is false, which would otherwise let it pass). Returns the
    largest relative error ``|a - n| / max(|a|, |n|, atol)`` over all entries.
    """
    xs = _as_list("gradcheck", "inputs", inputs)
    gs = _as_list("gradcheck", "analytic", analytic)
    if len(xs) != len(gs):
        raise ShapeError(f"gradcheck: got {len(xs)} input(s) but {len(gs)} analytic gradient(s); give one per input")
    for k, (x, g) in enumerate(zip(xs, gs)):
        same_shape("gradcheck", f"inputs[{k}]", x, f"analytic[{k}]", g)
    worst = 0.0
    for k, (x, g) in enumerate(zip(xs, gs)):

        def f_k(t: torch.Tensor, k: int = k) -> Any:  # f as a function of input k alone
            return f(*xs[:k], t, *xs[k + 1 :])

        n = numerical_grad(f_k, x, eps)
        a = g.detach().to(torch.float64)
        diff = (a - n).abs()
        if diff.numel():
            rel = diff / torch.maximum(torch.maximum(a.abs(), n.abs()), torch.tensor(atol, dtype=torch.float64))
            worst = max(worst, float(rel.max()))
        nonfinite = ~torch.isfinite(a) | ~torch.isfinite(n)
        bad = (diff > atol + rtol * n.abs()) | nonfinite
        if bool(bad.any()):
            score = torch.where(nonfinite, torch.full_like(diff, float("inf")), diff - atol - rtol * n.abs())
            i = int(torch.argmax(score.reshape(-1)))
            where = _unravel(i, tuple(x.shape))
            raise GradcheckError(
                f"gradcheck: the gradient of input {k} (shape {tuple(x.shape)}) is wrong at index {where}: "
                f"analytic {a.reshape(-1)[i].item():.6g}, numerical {n.reshape(-1)[i].item():.6g} "
                f"({int(bad.sum())} of {x.numel()} entries off; max relative error {worst:.3g}, "
                f"allowed |a - n| <= {atol:g} + {rtol:g}·|n|)"
            )
    return worst
