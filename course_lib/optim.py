"""Optimisers from scratch: gradient descent, momentum, Nesterov, Adam.

Two layers, both following ``torch.optim`` exactly:

* pure functional single steps (:func:`gd_step`, :func:`sgd_step`,
  :func:`adam_step`, :func:`amsgrad_step`): they take the current parameter,
  its gradient and the optimiser's state and *return* new tensors, changing
  nothing in place. They work on ``torch`` tensors and, with the same code, on
  NumPy arrays (the optimiser explorer uses NumPy for speed);
* classes :class:`SGD` and :class:`Adam` with the ``torch.optim`` interface
  (``step()``, ``zero_grad()``, ``state``) that call those steps for every
  parameter.

Plus a learning-rate schedule, :func:`warmup_cosine_lr`.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Dict, Iterable, List, Optional, Tuple, Union

import numpy as np
import torch

from course_lib.validate import ShapeError, expect

Array = Union[torch.Tensor, np.ndarray]


# --- validation -----------------------------------------------------------------------
def _check_arrays(fn: str, param: Array, **others: Optional[Array]) -> None:
    """``param`` is a floating tensor (or NumPy array); every other array (``None``
    allowed) has the same kind, dtype and shape as ``param``."""
    if isinstance(param, np.ndarray):
        if param.dtype.kind != "f":
            raise ShapeError(f"{fn}: param should be a floating-point array, got dtype {param.dtype}")
    else:
        expect(fn, "param", param, floating=True)
    for name, x in others.items():
        if x is None:
            continue
        if type(x) is not type(param) and not (isinstance(x, torch.Tensor) and isinstance(param, torch.Tensor)):
            raise ShapeError(f"{fn}: {name} should be a {type(param).__name__} like param, got {type(x).__name__}")
        if tuple(x.shape) != tuple(param.shape):
            raise ShapeError(
                f"{fn}: {name} should have the shape of param {tuple(param.shape)}, got {tuple(x.shape)}"
            )
        if x.dtype != param.dtype:
            raise ShapeError(f"{fn}: {name} should have the dtype of param ({param.dtype}), got {x.dtype}")


def _check_sgd_hyper(fn: str, lr: float, momentum: float, dampening: float, weight_decay: float, nesterov: bool) -> None:
    if not lr >= 0.0:
        raise ValueError(f"{fn}: invalid learning rate lr={lr}: it must be >= 0")
    if not momentum >= 0.0:
        raise ValueError(f"{fn}: invalid momentum={momentum}: it must be >= 0")
    if not weight_decay >= 0.0:
        raise ValueError(f"{fn}: invalid weight_decay={weight_decay}: it must be >= 0")
    if nesterov and (momentum <= 0 or dampening != 0):
        raise ValueError(
            f"{fn}: nesterov=True needs momentum > 0 and dampening = 0, "
            f"got momentum={momentum}, dampening={dampening}"
        )


def _check_adam_hyper(fn: str, lr: float, beta1: float, beta2: float, eps: float, weight_decay: float) -> None:
    if not lr >= 0.0:
        raise ValueError(f"{fn}: invalid learning rate lr={lr}: it must be >= 0")
    for name, beta in (("beta1", beta1), ("beta2", beta2)):
        if not 0.0 <= beta < 1.0:
            raise ValueError(f"{fn}: invalid {name}={beta}: betas must lie in [0, 1)")
    if not eps >= 0.0:
        raise ValueError(f"{fn}: invalid eps={eps}: it must be >= 0")
    if not weight_decay >= 0.0:
        raise ValueError(f"{fn}: invalid weight_decay={weight_decay}: it must be >= 0")


def _check_step_number(fn: str, t: int) -> None:
    if isinstance(t, bool) or not isinstance(t, (int, np.integer)) or t < 1:
        raise ValueError(f"{fn}: the step number t counts from 1 (the first step is t=1), got t={t!r}")


# --- functional steps -----------------------------------------------------------------
def gd_step(param: Array, grad: Array, lr: float) -> Array:
    """One step of plain gradient descent, ``param - lr * grad``.

    param, grad: same shape (any). Returns the new parameter (same shape).
    """
    _check_arrays("gd_step", param, grad=grad)
    if not lr >= 0.0:
        raise ValueError(f"gd_step: invalid learning rate lr={lr}: it must be >= 0")
    return param - lr * grad


def sgd_step(
    param: Array,
    grad: Array,
    buf: Optional[Array],
    lr: float,
    momentum: float = 0.0,
    dampening: float = 0.0,
    weight_decay: float = 0.0,
    nesterov: bool = False,
) -> Tuple[Array, Optional[Array]]:
    """One step of ``torch.optim.SGD``: returns ``(new_param, new_buf)``.

    param, grad, buf: same shape; ``buf`` is the momentum buffer, ``None`` before
    the first step (and always ``None`` when ``momentum == 0``)::

        g   = grad + weight_decay * param
        buf = g                                      (first step)
        buf = momentum * buf + (1 - dampening) * g   (later steps)
        d   = g + momentum * buf   if nesterov else  buf   (d = g if momentum == 0)
        new_param = param - lr * d
    """
    _check_arrays("sgd_step", param, grad=grad, buf=buf)
    _check_sgd_hyper("sgd_step", lr, momentum, dampening, weight_decay, nesterov)
    g = grad + weight_decay * param if weight_decay != 0 else grad
    if momentum == 0:
        return param - lr * g, None
    if buf is None:
        buf = g  # torch's first step: the buffer starts as the gradient itself
    else:
        buf = momentum * buf + (1 - dampening) * g
    d = g + momentum * buf if nesterov else buf
    return param - lr * d, buf


def adam_step(
    param: Array,
    grad: Array,
    m: Array,
    v: Array,
    t: int,
    lr: float = 1e-3,
    beta1: float = 0.9,
    beta2: float = 0.999,
    eps: float = 1e-8,
    weight_decay: float = 0.0,
) -> Tuple[Array, Array, Array]:
    """One step of ``torch.optim.Adam``: returns ``(new_param, new_m, new_v)``.

    param, grad, m, v: same shape; ``m``/``v`` are the running first/second
    moments (zeros before the first step); ``t`` is the number of this step,
    1 for the first::

        g     = grad + weight_decay * param
        m     = beta1 * m + (1 - beta1) * g
        v     = beta2 * v + (1 - beta2) * g * g
        m_hat = m / (1 - beta1 ** t)
        v_hat = v / (1 - beta2 ** t)
        new_param = param - lr * m_hat / (sqrt(v_hat) + eps)
    """
    _check_arrays("adam_step", param, grad=grad, m=m, v=v)
    _check_step_number("adam_step", t)
    _check_adam_hyper("adam_step", lr, beta1, beta2, eps, weight_decay)
    g = grad + weight_decay * param if weight_decay != 0 else grad
    m = beta1 * m + (1 - beta1) * g
    v = beta2 * v + (1 - beta2) * g * g
    m_hat = m / (1 - beta1**t)
    v_hat = v / (1 - beta2**t)
    return param - lr * m_hat / (v_hat**0.5 + eps), m, v


def amsgrad_step(
    param: Array,
    grad: Array,
    m: Array,
    v: Array,
    v_max: Array,
    t: int,
    lr: float = 1e-3,
    beta1: float = 0.9,
    beta2: float = 0.999,
    eps: float = 1e-8,
    weight_decay: float = 0.0,
) -> Tuple[Array, Array, Array, Array]:
    """One step of ``torch.optim.Adam(amsgrad=True)``: returns ``(new_param, m, v, v_max)``.

    As :func:`adam_step`, but the denominator uses the running maximum of ``v``
    (all arrays the same shape; ``v_max`` starts at zeros)::

        v_max = max(v_max, v)
        new_param = param - lr * m_hat / (sqrt(v_max / (1 - beta2 ** t)) + eps)
    """
    _check_arrays("amsgrad_step", param, grad=grad, m=m, v=v, v_max=v_max)
    _check_step_number("amsgrad_step", t)
    _check_adam_hyper("amsgrad_step", lr, beta1, beta2, eps, weight_decay)
    g = grad + weight_decay * param if weight_decay != 0 else grad
    m = beta1 * m + (1 - beta1) * g
    v = beta2 * v + (1 - beta2) * g * g
    v_max = torch.maximum(v_max, v) if isinstance(v, torch.Tensor) else np.maximum(v_max, v)
    m_hat = m / (1 - beta1**t)
    v_hat = v_max / (1 - beta2**t)
    return param - lr * m_hat / (v_hat**0.5 + eps), m, v, v_max


# --- the torch.optim interface --------------------------------------------------------
class Optimizer:
    """Base class: holds the parameters and a ``state`` dict per parameter.

    Subclasses implement :meth:`update`, which returns the new value of one
    parameter from its current value, its gradient and its state.
    """

    def __init__(self, params: Iterable[torch.Tensor]) -> None:
        name = type(self).__name__
        if isinstance(params, torch.Tensor):
            raise TypeError(f"{name}: params should be an iterable of tensors (e.g. model.parameters()), got one tensor; wrap it in a list")
        self.params: List[torch.Tensor] = list(params)
        if not self.params:
            raise ValueError(f"{name}: got an empty parameter list")
        for i, p in enumerate(self.params):
            expect(name, f"params[{i}]", p, floating=True)
            if not p.is_leaf:
                raise ValueError(f"{name}: params[{i}] is not a leaf tensor (it was computed from others); optimise the tensors you created")
        #: per-parameter state, keyed by the parameter tensor (like ``torch.optim``)
        self.state: Dict[torch.Tensor, Dict[str, Any]] = {}

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Forget the gradients: set ``p.grad = None`` (torch's default) or fill them with zeros."""
        for p in self.params:
            if p.grad is None:
                continue
            if set_to_none:
                p.grad = None
            else:
                p.grad.detach_()
                p.grad.zero_()

    def update(self, param: torch.Tensor, grad: torch.Tensor, state: Dict[str, Any]) -> torch.Tensor:
        """Return the new value of ``param``; may change ``state``."""
        raise NotImplementedError

    @torch.no_grad()
    def step(self, closure: Optional[Callable[[], Any]] = None) -> Any:
        """Update every parameter that has a gradient; parameters with ``grad is None`` are skipped.

        ``closure`` (optional) re-evaluates the loss and returns it, as in torch.
        """
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for p in self.params:
            if p.grad is None:
                continue
            state = self.state.setdefault(p, {})
            p.copy_(self.update(p.detach(), p.grad.detach().clone(), state))
        return loss

    def __repr__(self) -> str:
        hyper = ", ".join(f"{k}={v}" for k, v in vars(self).items() if k not in ("params", "state"))
        return f"{type(self).__name__}({len(self.params)} tensors, {hyper})"


class SGD(Optimizer):
    """``torch.optim.SGD``: gradient descent with optional momentum, Nesterov and L2 weight decay.

    Each step applies :func:`sgd_step` to every parameter; ``state[p]["momentum_buffer"]``
    holds the buffer (``None`` when ``momentum == 0``).
    """

    def __init__(
        self,
        params: Iterable[torch.Tensor],
        lr: float,
        momentum: float = 0.0,
        dampening: float = 0.0,
        weight_decay: float = 0.0,
        nesterov: bool = False,
    ) -> None:
        _check_sgd_hyper("SGD", lr, momentum, dampening, weight_decay, nesterov)
        super().__init__(params)
        self.lr, self.momentum, self.dampening = lr, momentum, dampening
        self.weight_decay, self.nesterov = weight_decay, nesterov

    def update(self, param: torch.Tensor, grad: torch.Tensor, state: Dict[str, Any]) -> torch.Tensor:
        new, state["momentum_buffer"] = sgd_step(
            param, grad, state.get("momentum_buffer"), self.lr,
            self.momentum, self.dampening, self.weight_decay, self.nesterov,
        )
        return new


class Adam(Optimizer):
    """``torch.optim.Adam`` (weight decay as L2 added to the gradient, like torch's Adam, not AdamW).

    Each step applies :func:`adam_step` (or :func:`amsgrad_step`) to every parameter;
    ``state[p]`` holds ``step`` (an int), ``exp_avg`` (m), ``exp_avg_sq`` (v) and,
    with ``amsgrad=True``, ``max_exp_avg_sq``.
    """

    def __init__(
        self,
        params: Iterable[torch.Tensor],
        lr: float = 1e-3,
        betas: Tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        amsgrad: bool = False,
    ) -> None:
        if len(betas) != 2:
            raise ValueError(f"Adam: betas should be a pair (beta1, beta2), got {betas!r}")
        _check_adam_hyper("Adam", lr, betas[0], betas[1], eps, weight_decay)
        super().__init__(params)
        self.lr, self.betas, self.eps = lr, tuple(betas), eps
        self.weight_decay, self.amsgrad = weight_decay, amsgrad

    def update(self, param: torch.Tensor, grad: torch.Tensor, state: Dict[str, Any]) -> torch.Tensor:
        if not state:
            state["step"] = 0
            state["exp_avg"] = torch.zeros_like(param)
            state["exp_avg_sq"] = torch.zeros_like(param)
            if self.amsgrad:
                state["max_exp_avg_sq"] = torch.zeros_like(param)
        state["step"] += 1
        (beta1, beta2), t = self.betas, state["step"]
        if self.amsgrad:
            new, state["exp_avg"], state["exp_avg_sq"], state["max_exp_avg_sq"] = amsgrad_step(
                param, grad, state["exp_avg"], state["exp_avg_sq"], state["max_exp_avg_sq"], t,
                self.lr, beta1, beta2, self.eps, self.weight_decay,
            )
        else:
            new, state["exp_avg"], state["exp_avg_sq"] = adam_step(
                param, grad, state["exp_avg"], state["exp_avg_sq"], t,
                self.lr, beta1, beta2, self.eps, self.weight_decay,
            )
        return new


# --- learning-rate schedule -----------------------------------------------------------
def warmup_cosine_lr(step: int, total_steps: int, base_lr: float, warmup_steps: int = 0, min_lr: float = 0.0) -> float:
    """The learning rate of step ``step`` (counted from 0): linear warm-up, then cosine decay.

    ::

        step <  W:  lr = base_lr * (step + 1) / W
        step >= W:  p  = min(1, (step - W) / (total_steps - W))
                    lr = min_lr + (base_lr - min_lr) * (1 + cos(pi * p)) / 2

    with ``W = warmup_steps``; after ``total_steps`` the rate stays at ``min_lr``.
    """
    if not (isinstance(total_steps, (int, np.integer)) and isinstance(warmup_steps, (int, np.integer)) and 0 <= warmup_steps < total_steps):
        raise ValueError(
            f"warmup_cosine_lr: need integers 0 <= warmup_steps < total_steps, got warmup_steps={warmup_steps!r}, total_steps={total_steps!r}"
        )
    if not (isinstance(step, (int, np.integer)) and step >= 0):
        raise ValueError(f"warmup_cosine_lr: step counts from 0, got {step!r}")
    if step < warmup_steps:
        return base_lr * (step + 1) / warmup_steps
    progress = min(1.0, (step - warmup_steps) / (total_steps - warmup_steps))
    return min_lr + (base_lr - min_lr) * (1 + math.cos(math.pi * progress)) / 2
