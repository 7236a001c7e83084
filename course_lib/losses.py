"""Loss functions from scratch: forward value and gradient, matching PyTorch.

A loss turns a prediction and a target into one number that says how wrong the
prediction is. Every loss here has a ``*_backward`` twin that returns the
gradient of the loss with respect to the prediction (the first argument), the
quantity backpropagation starts from.

``reduction`` works as in ``torch.nn.functional``:

* ``"none"``: one loss per element (per sample for :func:`cross_entropy`);
* ``"sum"``: their sum, a scalar of shape ``()``;
* ``"mean"``: their mean, a scalar. For :func:`mse_loss` and the binary
  cross-entropies this divides by the number of elements ``M``; for
  :func:`cross_entropy` it divides by the batch size ``N``.

Each backward function takes an optional ``grad_output``, the gradient of some
later quantity with respect to the loss (shape ``()`` for ``"mean"``/``"sum"``,
the shape of the unreduced loss for ``"none"``; default: ones). The result is
what ``torch.autograd`` would put in ``pred.grad`` after ``loss.backward(grad_output)``.

Special values give what PyTorch gives (``tests/test_special_values.py`` compares every
function on NaN, ±inf, -0.0, empty tensors and every integer dtype): NaN and inf
propagate, a ``"mean"`` over no elements is 0/0 = NaN. Where PyTorch refuses an input,
these functions raise a clear error: probabilities or binary targets that are NaN or
outside [0, 1], class indices that are not torch.long or torch.uint8 or not in 0..C-1.
"""

from __future__ import annotations

from typing import Optional

import torch

from course_lib.layers import log_softmax, sigmoid, softmax
from course_lib.validate import ShapeError, expect, same_dtype, same_shape

REDUCTIONS = ("mean", "sum", "none")

#: PyTorch clamps each log in :func:`binary_cross_entropy` at this value, so
#: a probability of exactly 0 for the true label costs 100, not infinity.
LOG_CLAMP = -100.0
#: PyTorch's gradient of :func:`binary_cross_entropy` divides by ``max(p(1-p), EPS)``
#: with EPS = 1e-12 rounded to float32 (9.99999996e-13), whatever the tensor's dtype.
BCE_GRAD_EPS = 9.999999960041972e-13
#: The dtypes PyTorch's ``F.cross_entropy`` accepts for class indices (torch.long and
#: torch.uint8); it refuses int8, int16, int32, uint16/32/64, bool and floats, and so do we.
CLASS_INDEX_DTYPES = (torch.int64, torch.uint8)


# --- shared helpers -----------------------------------------------------------------
def _check_reduction(fn: str, reduction: str) -> None:
    if reduction not in REDUCTIONS:
        raise ValueError(f"{fn}: reduction should be 'mean', 'sum' or 'none', got {reduction!r}")


def _check_pair(fn: str, a_name: str, a: torch.Tensor, b_name: str, b: torch.Tensor) -> None:
    """Both floating-point tensors of one shape and one dtype."""
    expect(fn, a_name, a, floating=True)
    expect(fn, b_name, b, floating=True)
    same_shape(fn, a_name, a, b_name, b)
    same_dtype(fn, **{a_name: a, b_name: b})


def _reduce(loss: torch.Tensor, reduction: str, count: int) -> torch.Tensor:
    """Apply ``reduction`` to the per-element ``loss``; ``"mean"`` divides by ``count``."""
    if reduction == "none":
        return loss
    total = loss.sum()
    return total / count if reduction == "mean" else total


def _upstream(fn: str, grad_output: Optional[torch.Tensor], loss_shape: torch.Size, reduction: str, count: int, like: torch.Tensor) -> torch.Tensor:
    """The factor every per-element derivative is multiplied by: ``grad_output``
    (checked against the loss's shape), divided by ``count`` for ``"mean"``."""
    shape = tuple(loss_shape) if reduction == "none" else ()
    if grad_output is None:
        g = torch.ones(shape, dtype=like.dtype, device=like.device)
    else:
        expect(fn, "grad_output", grad_output, shape, floating=True)
        g = grad_output
    return g / count if reduction == "mean" else g


def _check_class_indices(fn: str, target: torch.Tensor, num_classes: int, logits_shape: Optional[tuple] = None) -> torch.Tensor:
    """Class indices (N,) of dtype torch.long or torch.uint8 with values in 0..C-1; returned as torch.long.

    (A uint8 tensor used as an index is a boolean *mask* in PyTorch, hence the conversion.)"""
    if target.dtype not in CLASS_INDEX_DTYPES:
        raise ShapeError(
            f"{fn}: class indices should have dtype torch.long (int64) or torch.uint8, the two PyTorch "
            f"accepts, got {target.dtype}; use target.long()"
        )
    target = target.long()
    bad = (target < 0) | (target >= num_classes)
    if bool(bad.any()):
        i = int(bad.nonzero()[0, 0])
        what = f"logits of shape {logits_shape}" if logits_shape is not None else f"num_classes = {num_classes}"
        extra = " (-100 is PyTorch's default ignore_index, which this function does not support)" if int(target[i]) == -100 else ""
        raise ShapeError(
            f"{fn}: target[{i}] = {int(target[i])} is not a class index for {what}: "
            f"class indices must lie in 0..{num_classes - 1} (C = {num_classes}){extra}"
        )
    return target


def one_hot(target: torch.Tensor, num_classes: int, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """Class indices ``target`` (N,) -> one-hot rows (N, C): row ``i`` is 1 at column ``target[i]``.

    ``target`` has dtype torch.long or torch.uint8 (others are refused with a ShapeError) and values
    in 0..C-1 with C = ``num_classes``; a negative or too large index is refused (``F.one_hot``
    refuses them as well; it takes torch.long only).
    """
    expect("one_hot", "target", target, (None,), integer=True)
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 0:
        raise ValueError(f"one_hot: num_classes should be an int >= 0, got {num_classes!r}")
    target = _check_class_indices("one_hot", target, num_classes)
    out = torch.zeros(target.shape[0], num_classes, dtype=dtype, device=target.device)
    out[torch.arange(target.shape[0], device=target.device), target] = 1
    return out


# --- mean squared error -------------------------------------------------------------
def mse_loss(pred: torch.Tensor, target: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """Squared error ``(pred - target)**2`` per element, reduced.

    pred, target: the same shape (any), floating point. Returns shape ``()``,
    or the shape of ``pred`` for ``reduction="none"``. ``"mean"`` divides by
    ``M = pred.numel()``.
    """
    _check_reduction("mse_loss", reduction)
    _check_pair("mse_loss", "pred", pred, "target", target)
    return _reduce((pred - target) ** 2, reduction, pred.numel())


def mse_loss_backward(pred: torch.Tensor, target: torch.Tensor, reduction: str = "mean", grad_output: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Gradient of :func:`mse_loss` w.r.t. ``pred``: ``2 (pred - target) / M`` for "mean".

    Returns a tensor of the shape of ``pred``.
    """
    _check_reduction("mse_loss_backward", reduction)
    _check_pair("mse_loss_backward", "pred", pred, "target", target)
    g = _upstream("mse_loss_backward", grad_output, pred.shape, reduction, pred.numel(), pred)
    return 2 * (pred - target) * g


# --- binary cross-entropy on probabilities ------------------------------------------
def _check_probabilities(fn: str, p: torch.Tensor, target: torch.Tensor) -> None:
    """Every entry of ``p`` and of ``target`` in [0, 1]; NaN is refused too, as PyTorch does."""
    for name, t in (("p", p), ("target", target)):
        if t.numel() and bool(t.isnan().any()):
            where = tuple(int(i) for i in t.isnan().nonzero()[0])
            raise ValueError(f"{fn}: {name} should hold probabilities in [0, 1], got NaN at index {where}")
        if t.numel() and bool(((t < 0) | (t > 1)).any()):
            hint = " (pass logits to binary_cross_entropy_with_logits instead)" if name == "p" else ""
            raise ValueError(f"{fn}: {name} should hold probabilities in [0, 1], got values from {float(t.min()):g} to {float(t.max()):g}{hint}")


def binary_cross_entropy(p: torch.Tensor, target: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """Binary cross-entropy ``-(y log p + (1 - y) log(1 - p))`` per element, reduced.

    p: predicted probabilities in [0, 1]; target y: the same shape, values in [0, 1].
    NaN or a value outside [0, 1] in either raises a ValueError, as PyTorch refuses them.
    As in PyTorch, each log is clamped at :data:`LOG_CLAMP` (-100) so
    that ``p = 0`` or ``p = 1`` gives a finite loss (at most 100 per element).
    Returns shape ``()``, or the shape of ``p`` for ``reduction="none"``.
    """
    _check_reduction("binary_cross_entropy", reduction)
    _check_pair("binary_cross_entropy", "p", p, "target", target)
    _check_probabilities("binary_cross_entropy", p, target)
    log_p = torch.log(p).clamp(min=LOG_CLAMP)
    log_1mp = torch.log1p(-p).clamp(min=LOG_CLAMP)
    loss = -(target * log_p + (1 - target) * log_1mp)
    return _reduce(loss, reduction, p.numel())


def binary_cross_entropy_backward(p: torch.Tensor, target: torch.Tensor, reduction: str = "mean", grad_output: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Gradient of :func:`binary_cross_entropy` w.r.t. ``p``, as PyTorch computes it:
    ``(p - y) / max(p (1 - p), eps)`` with ``eps`` about 1e-12 (:data:`BCE_GRAD_EPS`),
    divided by ``M`` for "mean".

    (Exactly at a clamped log the true derivative is 0; PyTorch, and this
    function, use the formula above everywhere.) Returns the shape of ``p``. Refuses
    NaN and values outside [0, 1] in ``p`` or ``target`` as :func:`binary_cross_entropy` does.
    """
    _check_reduction("binary_cross_entropy_backward", reduction)
    _check_pair("binary_cross_entropy_backward", "p", p, "target", target)
    _check_probabilities("binary_cross_entropy_backward", p, target)
    g = _upstream("binary_cross_entropy_backward", grad_output, p.shape, reduction, p.numel(), p)
    return (p - target) / ((1 - p) * p).clamp(min=BCE_GRAD_EPS) * g


# --- binary cross-entropy on logits -------------------------------------------------
def binary_cross_entropy_with_logits(logits: torch.Tensor, target: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """Binary cross-entropy of ``p = sigmoid(z)``, computed from the logit ``z`` stably:
    ``max(z, 0) - z y + log(1 + exp(-|z|))`` per element, reduced.

    logits z, target y: the same shape (any). Returns shape ``()``, or the
    shape of ``logits`` for ``reduction="none"``.
    """
    _check_reduction("binary_cross_entropy_with_logits", reduction)
    _check_pair("binary_cross_entropy_with_logits", "logits", logits, "target", target)
    z = logits
    loss = z.clamp(min=0) - z * target + torch.log1p(torch.exp(-z.abs()))
    return _reduce(loss, reduction, z.numel())


def binary_cross_entropy_with_logits_backward(logits: torch.Tensor, target: torch.Tensor, reduction: str = "mean", grad_output: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Gradient of :func:`binary_cross_entropy_with_logits` w.r.t. the logits:
    ``sigmoid(z) - y``, divided by ``M`` for "mean". Returns the shape of ``logits``."""
    _check_reduction("binary_cross_entropy_with_logits_backward", reduction)
    _check_pair("binary_cross_entropy_with_logits_backward", "logits", logits, "target", target)
    g = _upstream("binary_cross_entropy_with_logits_backward", grad_output, logits.shape, reduction, logits.numel(), logits)
    return (sigmoid(logits) - target) * g


# --- cross-entropy over C classes ---------------------------------------------------
def _check_cross_entropy(fn: str, logits: torch.Tensor, target: torch.Tensor) -> bool:
    """Validate the arguments; return True for probability targets (N, C),
    False for class indices (N,)."""
    dims = expect(fn, "logits", logits, ("N", "C"), floating=True)
    n, c = dims["N"], dims["C"]
    expect(fn, "target", target)
    if target.dim() == 2:
        expect(fn, "target", target, ("N", "C"), dims, floating=True)
        same_dtype(fn, logits=logits, target=target)
        return True
    if target.dim() != 1:
        raise ShapeError(
            f"{fn}: target should be class indices of shape (N,) = ({n},) with an integer dtype, "
            f"or class probabilities of shape (N, C) = ({n}, {c}); got shape {tuple(target.shape)}"
        )
    expect(fn, "target", target, ("N",), dims)
    if target.is_floating_point() or target.dtype == torch.bool or target.is_complex():
        raise ShapeError(
            f"{fn}: target of shape ({n},) holds class indices and should have an integer dtype "
            f"(torch.long), got {target.dtype}; use target.long(), or pass probabilities of shape (N, C) = ({n}, {c})"
        )
    _check_class_indices(fn, target, c, tuple(logits.shape))
    return False


def cross_entropy(logits: torch.Tensor, target: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """Softmax cross-entropy from logits, ``-log softmax(z_i)[y_i]`` per sample, reduced.

    logits z: (N, C). target: class indices (N,) with values in 0..C-1 and dtype
    torch.long or torch.uint8 (the two PyTorch accepts; other dtypes, negative indices,
    including PyTorch's ``ignore_index`` -100, and indices >= C raise a ShapeError), or class
    probabilities (N, C), which give ``-sum_c y_ic log softmax(z_i)_c``. Uses a stable
    log-softmax (max subtraction), so logits of ±1000 are fine. Returns shape ``()``, or (N,)
    for ``reduction="none"``; ``"mean"`` divides by N (N = 0 gives 0/0 = NaN, as in PyTorch).

    Special values behave as in PyTorch: a row of logits with NaN or +inf, or all -inf,
    has a NaN loss (its log-softmax is NaN).
    """
    _check_reduction("cross_entropy", reduction)
    soft = _check_cross_entropy("cross_entropy", logits, target)
    n = logits.shape[0]
    logp = log_softmax(logits, dim=-1)  # (N, C)
    if soft:
        loss = -(target * logp).sum(dim=-1)  # (N,)
    else:
        loss = -logp[torch.arange(n, device=logits.device), target.long()]  # (N,)
    return _reduce(loss, reduction, n)


def cross_entropy_backward(logits: torch.Tensor, target: torch.Tensor, reduction: str = "mean", grad_output: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Gradient of :func:`cross_entropy` w.r.t. the logits, shape (N, C):
    ``(softmax(z) - onehot(y)) / N`` for "mean".

    For probability targets the row is ``softmax(z_i) * sum_c y_ic - y_i``
    (the same thing when each row of y sums to 1).
    """
    _check_reduction("cross_entropy_backward", reduction)
    soft = _check_cross_entropy("cross_entropy_backward", logits, target)
    n, c = logits.shape
    p = softmax(logits, dim=-1)  # (N, C)
    if soft:
        grad = p * target.sum(dim=-1, keepdim=True) - target
    else:
        grad = p - one_hot(target, c, dtype=logits.dtype).to(logits.device)
    g = _upstream("cross_entropy_backward", grad_output, torch.Size([n]), reduction, n, logits)
    return grad * (g.unsqueeze(-1) if reduction == "none" else g)
