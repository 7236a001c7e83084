"""Regularisation and training hygiene: dropout, gradient clipping, decoupled weight
decay (AdamW), data augmentation for 8x8 digits, early stopping.

* :func:`dropout`: inverted dropout (Srivastava et al., 2014, with the rescaling moved to
  training time), equal to ``torch.nn.functional.dropout`` given the same mask;
* :func:`clip_grad_norm`: equal to ``torch.nn.utils.clip_grad_norm_`` (its ``1e-6``, inf
  norm, non-finite norms), but returns clipped copies instead of changing grads in place;
* :func:`adamw_step` / :class:`AdamW`: Adam with decoupled weight decay (Loshchilov &
  Hutter, 2019), equal to ``torch.optim.AdamW``;
* :func:`shift_images`: translate flat 8x8 digits by whole pixels (zeros shifted in);
* :class:`EarlyStopping`: stop when the validation loss stops improving, keep the best state.
"""

from __future__ import annotations

import copy
import math
from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch

from course_lib.optim import Adam, _check_adam_hyper, _check_arrays, _check_step_number, adam_step
from course_lib.validate import ShapeError, expect

__all__ = ["dropout", "clip_grad_norm", "adamw_step", "AdamW", "shift_images", "random_shifts", "EarlyStopping"]


# --- dropout --------------------------------------------------------------------------
def dropout(
    x: torch.Tensor,
    p: float,
    training: bool = True,
    mask: Optional[torch.Tensor] = None,
    generator: Optional[torch.Generator] = None,
) -> torch.Tensor:
    """Inverted dropout: ``y = x * (mask / (1 - p))`` in training, ``y = x`` in evaluation.

    x: any shape, floating. ``mask`` (bool or 0/1, broadcastable to x) marks the *kept*
    units; without it each unit is kept independently with probability ``1 - p``, drawn
    like torch (``bernoulli_(1 - p)``: with ``generator`` seeded ``s`` this is the mask
    ``F.dropout`` draws after ``torch.manual_seed(s)``). Dividing by ``1 - p`` keeps
    ``E[y] = x``, so evaluation needs no rescaling. ``p = 1`` gives ``x * 0`` like torch.
    """
    fn = "dropout"
    expect(fn, "x", x, floating=True)
    if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0.0 <= p <= 1.0:
        raise ValueError(f"{fn}: p is the probability of dropping a unit and should lie in [0, 1], got {p!r}")
    if not training:
        return x
    if mask is not None:
        expect(fn, "mask", mask)
        try:
            torch.broadcast_shapes(mask.shape, x.shape)
        except RuntimeError:
            raise ShapeError(f"{fn}: mask should broadcast to x's shape {tuple(x.shape)}, got {tuple(mask.shape)}") from None
        if mask.dtype != torch.bool and not bool(((mask == 0) | (mask == 1)).all()):
            raise ValueError(f"{fn}: mask should hold only 0 and 1 (1 = kept), got other values")
        keep = mask.to(x.dtype)
    else:
        keep = torch.empty_like(x).bernoulli_(1.0 - p, generator=generator) if 0.0 < p < 1.0 else None
    if p == 1.0:
        return x * torch.zeros_like(x)
    if keep is None:  # p == 0 and no mask: every unit kept
        return x * 1.0
    return x * (keep / (1.0 - p))


# --- gradient clipping ----------------------------------------------------------------
def clip_grad_norm(
    grads: Sequence[torch.Tensor],
    max_norm: float,
    norm_type: float = 2.0,
    error_if_nonfinite: bool = False,
) -> Tuple[List[torch.Tensor], float]:
    """Clip gradients by their total norm, like ``torch.nn.utils.clip_grad_norm_``.

    grads: tensors of any shapes. Returns ``(clipped copies, total norm before clipping)``::

        total = || (||g_1||_p, ..., ||g_k||_p) ||_p       (p = inf: the largest |entry|)
        coef  = min(max_norm / (total + 1e-6), 1)
        g_i  <- coef * g_i

    The ``1e-6`` means a gradient whose norm is exactly ``max_norm`` is still scaled down a
    little. A non-finite total (an inf or NaN entry) gives ``coef = 0`` (inf) or NaN: every
    gradient becomes 0 or NaN, as in torch with ``error_if_nonfinite=False``; with ``True``
    a ``RuntimeError`` is raised instead. An empty list gives ``([], 0.0)``.
    """
    fn = "clip_grad_norm"
    if isinstance(grads, torch.Tensor):
        grads = [grads]
    grads = list(grads)
    for i, g in enumerate(grads):
        expect(fn, f"grads[{i}]", g, floating=True)
    norm_type = float(norm_type)
    if not (norm_type > 0 or math.isinf(norm_type)):
        raise ValueError(f"{fn}: norm_type should be positive or inf, got {norm_type}")
    max_norm = float(max_norm)
    if not grads:
        return [], 0.0
    if math.isinf(norm_type):
        for i, g in enumerate(grads):
            if g.numel() == 0:
                raise ValueError(
                    f"{fn}: the inf norm of an empty gradient (grads[{i}], shape {tuple(g.shape)}) is undefined "
                    "(a max over nothing); torch refuses it too"
                )
    norms = [torch.linalg.vector_norm(g, norm_type) for g in grads]
    total = torch.linalg.vector_norm(torch.stack(norms), norm_type)
    if error_if_nonfinite and not bool(torch.isfinite(total)):
        raise RuntimeError(
            f"{fn}: the total norm of order {norm_type} of the gradients is non-finite ({float(total)}), "
            "so it cannot be clipped; pass error_if_nonfinite=False to scale by it anyway"
        )
    coef = torch.clamp(max_norm / (total + 1e-6), max=1.0)
    return [g * coef for g in grads], float(total)


# --- decoupled weight decay -----------------------------------------------------------
def adamw_step(
    param: torch.Tensor,
    grad: torch.Tensor,
    m: torch.Tensor,
    v: torch.Tensor,
    t: int,
    lr: float = 1e-3,
    beta1: float = 0.9,
    beta2: float = 0.999,
    eps: float = 1e-8,
    weight_decay: float = 1e-2,
) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One step of ``torch.optim.AdamW``: returns ``(new_param, new_m, new_v)``.

    All tensors the same shape. The decay acts on the parameter directly, *not* through
    the gradient, so it is not divided by ``sqrt(v_hat)`` like an L2 term in Adam::

        param = param * (1 - lr * weight_decay)
        then the Adam step of :func:`course_lib.optim.adam_step` with the plain gradient
    """
    _check_arrays("adamw_step", param, grad=grad, m=m, v=v)
    _check_step_number("adamw_step", t)
    _check_adam_hyper("adamw_step", lr, beta1, beta2, eps, weight_decay)
    decayed = param * (1 - lr * weight_decay)
    return adam_step(decayed, grad, m, v, t, lr, beta1, beta2, eps, 0.0)


class AdamW(Adam):
    """``torch.optim.AdamW`` (decoupled weight decay, default 0.01): :func:`adamw_step` per parameter."""

    def __init__(self, params: Any, lr: float = 1e-3, betas: Tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 1e-2) -> None:
        super().__init__(params, lr, betas, eps, weight_decay)

    def update(self, param: torch.Tensor, grad: torch.Tensor, state: Dict[str, Any]) -> torch.Tensor:
        if not state:
            state["step"] = 0
            state["exp_avg"] = torch.zeros_like(param)
            state["exp_avg_sq"] = torch.zeros_like(param)
        state["step"] += 1
        beta1, beta2 = self.betas
        new, state["exp_avg"], state["exp_avg_sq"] = adamw_step(
            param, grad, state["exp_avg"], state["exp_avg_sq"], state["step"],
            self.lr, beta1, beta2, self.eps, self.weight_decay,
        )
        return new


# --- data augmentation ----------------------------------------------------------------
def shift_images(X: torch.Tensor, dx: int, dy: int) -> torch.Tensor:
    """Translate flat 8x8 digits by whole pixels: ``dx > 0`` right, ``dy > 0`` down.

    X: (N, 64) (rows of 8 pixels). Pixels shifted out are lost, zeros (blank paper) come in;
    a shift of 8 or more leaves a blank image. Returns (N, 64), a new tensor. The work is
    done by chapter 07's :func:`course_lib.cnn.shift_images` (note its order: ``dy, dx``).
    """
    fn = "shift_images"
    expect(fn, "X", X, (None, 64))
    for name, d in (("dx", dx), ("dy", dy)):
        if isinstance(d, bool) or not isinstance(d, int):
            raise ValueError(f"{fn}: {name} should be an int (pixels), got {d!r}")
    if abs(dx) >= 8 or abs(dy) >= 8:
        return torch.zeros_like(X)
    from course_lib.cnn import shift_images as shift_8x8

    return shift_8x8(X, dy, dx).reshape(X.shape[0], 64)


def random_shifts(X: torch.Tensor, generator: torch.Generator, max_shift: int = 1) -> torch.Tensor:
    """Each image of X (N, 64) shifted by its own random (dx, dy) in [-max_shift, max_shift]^2
    (drawn from ``generator``; (0, 0) included). Returns (N, 64)."""
    expect("random_shifts", "X", X, (None, 64))
    if isinstance(max_shift, bool) or not isinstance(max_shift, int) or not 0 <= max_shift <= 7:
        raise ValueError(f"random_shifts: max_shift should be an int in 0..7, got {max_shift!r}")
    k = 2 * max_shift + 1
    shifts = torch.randint(0, k * k, (X.shape[0],), generator=generator)
    out = torch.empty_like(X)
    for code in range(k * k):
        rows = (shifts == code).nonzero().flatten()
        if rows.numel():
            out[rows] = shift_images(X[rows], code % k - max_shift, code // k - max_shift)
    return out


# --- early stopping -------------------------------------------------------------------
class EarlyStopping:
    """Stop training when the validation loss has not improved for ``patience`` checks.

    ``step(val_loss, model=None)`` returns ``True`` when training should stop. An improvement
    is a loss below ``best - min_delta``; on each improvement the model's ``state_dict`` is
    copied into ``best_state`` (restore it with ``model.load_state_dict(stopper.best_state)``).
    """

    def __init__(self, patience: int = 10, min_delta: float = 0.0) -> None:
        if isinstance(patience, bool) or not isinstance(patience, int) or patience < 1:
            raise ValueError(f"EarlyStopping: patience should be a positive int, got {patience!r}")
        if not min_delta >= 0:
            raise ValueError(f"EarlyStopping: min_delta should be >= 0, got {min_delta!r}")
        self.patience, self.min_delta = patience, float(min_delta)
        self.best = math.inf
        self.best_step = -1
        self.steps = 0
        self.bad = 0
        self.best_state: Optional[Dict[str, torch.Tensor]] = None

    def step(self, val_loss: float, model: Optional[torch.nn.Module] = None) -> bool:
        """Record one validation loss; ``True`` means stop (no improvement for ``patience`` checks)."""
        val_loss = float(val_loss)
        if val_loss < self.best - self.min_delta:
            self.best, self.best_step, self.bad = val_loss, self.steps, 0
            if model is not None:
                self.best_state = copy.deepcopy(model.state_dict())
        else:
            self.bad += 1
        self.steps += 1
        return self.bad >= self.patience

    def __repr__(self) -> str:
        return f"EarlyStopping(patience={self.patience}, best={self.best:.4g} at check {self.best_step})"
