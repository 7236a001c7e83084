"""Questions of sheet 04_optimization: each accepts the reference and a differently written
correct answer, rejects typical wrong answers; the solution sheet passes, the unfilled
exercise sheet is "not attempted" and still runs to the end on the references."""

from __future__ import annotations

import math

import pytest
import torch

from course_lib import optim
from course_lib.check import evaluate
from question_suite import QuestionSuite

SHEET = "04_optimization"
IDS = ["04.1", "04.2", "04.3", "04.4", "04.5"]


# --- correct answers written differently from the reference -----------------------------
def gd_add(param, grad, lr):
    return torch.add(param, grad, alpha=-lr)


def sgd_torch_style(param, grad, buf, lr, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False):
    g = grad.add(param, alpha=weight_decay)
    buf = g.clone() if buf is None else buf.mul(momentum).add(g, alpha=1 - dampening)
    direction = g.add(buf, alpha=momentum) if nesterov else buf
    return param.add(direction, alpha=-lr), buf


def adam_torch_style(param, grad, m, v, t, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0):
    g = grad.add(param, alpha=weight_decay) if weight_decay else grad
    m = m.lerp(g, 1 - beta1)
    v = v.mul(beta2).addcmul(g, g, value=1 - beta2)
    step_size = lr / (1 - beta1**t)
    denom = v.sqrt() / math.sqrt(1 - beta2**t) + eps
    return param.addcdiv(m, denom, value=-step_size), m, v


def schedule_cos_squared(step, total_steps, base_lr, warmup_steps=0, min_lr=0.0):
    if step < warmup_steps:
        return (step + 1) * base_lr / warmup_steps
    p = min(step - warmup_steps, total_steps - warmup_steps) / (total_steps - warmup_steps)
    return min_lr + (base_lr - min_lr) * math.cos(math.pi * p / 2) ** 2  # (1 + cos x) / 2 = cos^2(x / 2)


def train_step_zero_grad_late(model, loss_fn, optimizer, X, y):
    loss = loss_fn(model(X), y)
    optimizer.zero_grad()  # still before backward: fine
    loss.backward()
    optimizer.step()
    return float(loss.detach())


CORRECT = {"04.1": gd_add, "04.2": sgd_torch_style, "04.3": adam_torch_style, "04.4": schedule_cos_squared,
           "04.5": train_step_zero_grad_late}


# --- typical mistakes -----------------------------------------------------------------
def sgd_dampened_first_buffer(param, grad, buf, lr, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False):
    g = grad + weight_decay * param
    buf = (1 - dampening) * g if buf is None else momentum * buf + (1 - dampening) * g  # buffer from zeros
    return param - lr * (g + momentum * buf if nesterov else buf), buf


def sgd_ignores_nesterov(param, grad, buf, lr, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False):
    return sgd_torch_style(param, grad, buf, lr, momentum, dampening, weight_decay, nesterov=False)


def sgd_decay_after_momentum(param, grad, buf, lr, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False):
    buf = grad if buf is None else momentum * buf + (1 - dampening) * grad
    d = grad + momentum * buf if nesterov else buf
    return param - lr * (d + weight_decay * param), buf


def sgd_lr_in_velocity(param, grad, buf, lr, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False):
    g = grad + weight_decay * param
    velocity = lr * g if buf is None else momentum * buf + lr * g  # Sutskever-style velocity
    return param - (lr * g + momentum * velocity if nesterov else velocity), velocity


def _adam(param, grad, m, v, t, lr, beta1, beta2, eps, weight_decay, *, correct=True, t_shift=0, eps_inside=False,
          decoupled=False, return_hats=False):
    g = grad if decoupled else grad + weight_decay * param
    m = beta1 * m + (1 - beta1) * g
    v = beta2 * v + (1 - beta2) * g * g
    m_hat = m / (1 - beta1 ** (t + t_shift)) if correct else m
    v_hat = v / (1 - beta2 ** (t + t_shift)) if correct else v
    denom = torch.sqrt(v_hat + eps) if eps_inside else torch.sqrt(v_hat) + eps
    new = param - lr * m_hat / denom
    if decoupled:
        new = new - lr * weight_decay * param
    return (new, m_hat, v_hat) if return_hats else (new, m, v)


def adam_variant(**kind):
    def adam(param, grad, m, v, t, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0):
        return _adam(param, grad, m, v, t, lr, beta1, beta2, eps, weight_decay, **kind)

    return adam


def schedule_variant(kind):
    def schedule(step, total_steps, base_lr, warmup_steps=0, min_lr=0.0):
        if step < warmup_steps:
            return base_lr * (step if kind == "warm-up from 0" else step + 1) / warmup_steps
        if kind == "cosine counts from step 0":
            p = min(1.0, step / total_steps)
        elif kind == "no clamp after total_steps":
            p = (step - warmup_steps) / (total_steps - warmup_steps)
        else:
            p = min(1.0, (step - warmup_steps) / (total_steps - warmup_steps))
        low = 0.0 if kind == "forgets min_lr" else min_lr
        return low + (base_lr - low) * (1 + math.cos(math.pi * p)) / 2

    return schedule


def train_step_no_zero_grad(model, loss_fn, optimizer, X, y):
    loss = loss_fn(model(X), y)
    loss.backward()
    optimizer.step()
    return loss.item()


def train_step_step_before_backward(model, loss_fn, optimizer, X, y):
    optimizer.zero_grad()
    loss = loss_fn(model(X), y)
    optimizer.step()
    loss.backward()
    return loss.item()


def train_step_loss_after_update(model, loss_fn, optimizer, X, y):
    optimizer.zero_grad()
    loss_fn(model(X), y).backward()
    optimizer.step()
    with torch.no_grad():
        return loss_fn(model(X), y).item()


def train_step_zero_grad_before_step(model, loss_fn, optimizer, X, y):
    loss = loss_fn(model(X), y)
    loss.backward()
    optimizer.zero_grad()
    optimizer.step()
    return loss.item()


WRONG = {
    "04.1": {
        "gradient ascent": lambda param, grad, lr: param + lr * grad,
        "forgot the learning rate": lambda param, grad, lr: param - grad,
        "steps by the sign only": lambda param, grad, lr: param - lr * grad.sign(),
    },
    "04.2": {
        "first buffer dampened (started from zeros)": sgd_dampened_first_buffer,
        "ignores nesterov": sgd_ignores_nesterov,
        "weight decay added after the momentum": sgd_decay_after_momentum,
        "learning rate inside the velocity": sgd_lr_in_velocity,
    },
    "04.3": {
        "no bias correction": adam_variant(correct=False),
        "t starting at 0 (corrects with t + 1)": adam_variant(t_shift=1),
        "t off by one the other way (t - 1)": adam_variant(t_shift=-1),
        "eps inside the square root": adam_variant(eps_inside=True),
        "decoupled weight decay (AdamW)": adam_variant(decoupled=True),
        "returns the bias-corrected moments": adam_variant(return_hats=True),
    },
    "04.4": {kind: schedule_variant(kind) for kind in
             ["warm-up from 0", "cosine counts from step 0", "no clamp after total_steps", "forgets min_lr"]},
    "04.5": {
        "no zero_grad: gradients accumulate": train_step_no_zero_grad,
        "step before backward": train_step_step_before_backward,
        "returns the loss after the update": train_step_loss_after_update,
        "zero_grad between backward and step": train_step_zero_grad_before_step,
    },
}


class TestQuestions(QuestionSuite):
    """Accepts the reference and CORRECT, rejects WRONG; solutions pass, exercises are not attempted."""


def test_failure_messages_point_at_the_problem():
    msg = evaluate("04.3", WRONG["04.3"]["t starting at 0 (corrects with t + 1)"]).message
    assert "case 1 of 7 (first step t=1" in msg and "output 0" in msg
    msg = evaluate("04.2", WRONG["04.2"]["first buffer dampened (started from zeros)"]).message
    assert "dampening=0.5" in msg
    msg = evaluate("04.5", WRONG["04.5"]["no zero_grad: gradients accumulate"]).message
    assert "output 0: 1 of 3 value(s) differ" in msg  # the first loss is right, the later ones are not
    msg = evaluate("04.1", lambda param, grad, lr: None).message
    assert "forget to `return`" in msg


@pytest.mark.parametrize("sheet", ["solution_sheet", "exercise_sheet"])
def test_the_last_cell_trains_with_the_students_or_the_reference_functions(sheet, request):
    ns = request.getfixturevalue(sheet)
    assert ns["accuracy"] > 0.95 and ns["loss"] < 0.2
    last_lr = optim.warmup_cosine_lr(ns["steps"] - 1, ns["steps"], 0.05, warmup_steps=10, min_lr=0.001)
    assert ns["opt"].t == ns["steps"] and ns["opt"].lr == pytest.approx(last_lr)  # the schedule ran to its end
