"""Questions of sheet 04_optimization: optimiser steps, a schedule, debugging a training step
and measuring the largest stable learning rate.

Each question carries its hint tiers and the typical mistakes (misconceptions) that
:func:`course_lib.check.check` recognises by name.
"""

from __future__ import annotations

import math
from typing import Any, Callable, List

import torch

from course_lib import optim, train
from course_lib.questions import Case, Misconception, Question, randn, rand

SHEET = "04_optimization"
F64 = torch.float64


def _shapes(gen: torch.Generator, count: int) -> List[tuple]:
    out = []
    for _ in range(count):
        rank = int(torch.randint(1, 4, (1,), generator=gen))
        out.append(tuple(int(s) for s in torch.randint(1, 6, (rank,), generator=gen)))
    return out


# --- 04.1 gradient descent ------------------------------------------------------------
def _gd_cases(gen: torch.Generator, hidden: bool) -> List[Case]:
    cases = [
        Case("vector (3,), lr=0.1", (randn(gen, 3), randn(gen, 3), 0.1)),
        Case("matrix (2, 4), lr=0.5", (randn(gen, 2, 4), randn(gen, 2, 4), 0.5)),
        Case("lr=0: nothing moves", (randn(gen, 3), randn(gen, 3), 0.0)),
        Case("zero gradient: nothing moves", (randn(gen, 2, 2), torch.zeros(2, 2, dtype=F64), 0.3)),
        Case("a single number (1,), lr=1", (randn(gen, 1), randn(gen, 1), 1.0)),
    ]
    if hidden:
        for shape in _shapes(gen, 6):
            lr = float(10 ** (-3 * float(rand(gen, 1))))
            cases.append(Case(f"shape {shape}, lr={lr:.3g}", (randn(gen, *shape), randn(gen, *shape), lr)))
    return cases


# --- 04.2 SGD with momentum -----------------------------------------------------------
def _sgd_cases(gen: torch.Generator, hidden: bool) -> List[Case]:
    def case(label: str, shape: tuple, first: bool, **hyper: Any) -> Case:
        buf = None if first else randn(gen, *shape)
        return Case(label, (randn(gen, *shape), randn(gen, *shape), buf, hyper.pop("lr", 0.1)), hyper)

    cases = [
        case("first step (buf is None), momentum=0.9", (4,), True, momentum=0.9),
        case("later step, momentum=0.9", (4,), False, momentum=0.9),
        case("later step, momentum=0.5, dampening=0.5", (2, 3), False, momentum=0.5, dampening=0.5),
        case("first step, dampening=0.5 (the first buffer is the gradient)", (3,), True, momentum=0.9, dampening=0.5),
        case("weight_decay=0.1", (2, 2), False, momentum=0.9, weight_decay=0.1),
        case("Nesterov, first step", (3,), True, momentum=0.9, nesterov=True),
        case("Nesterov, later step, weight_decay=0.01", (2, 3), False, momentum=0.8, nesterov=True, weight_decay=0.01),
    ]
    if hidden:
        for i, shape in enumerate(_shapes(gen, 8)):
            mu = float(0.05 + 0.9 * rand(gen, 1))
            nesterov = i % 2 == 0
            hyper = dict(lr=float(0.01 + rand(gen, 1)), momentum=mu, nesterov=nesterov, weight_decay=0.05 * (i % 3))
            if not nesterov:
                hyper["dampening"] = 0.25 * (i % 4)
            cases.append(case(f"shape {shape}, {hyper}", shape, i % 3 == 0, **hyper))
    return cases


# --- 04.3 Adam ------------------------------------------------------------------------
def _adam_cases(gen: torch.Generator, hidden: bool) -> List[Case]:
    def case(label: str, shape: tuple, t: int, **hyper: Any) -> Case:
        if t == 1:
            m, v = torch.zeros(shape, dtype=F64), torch.zeros(shape, dtype=F64)
        else:
            m, v = 0.1 * randn(gen, *shape), 0.1 * rand(gen, *shape)
        return Case(label, (randn(gen, *shape), randn(gen, *shape), m, v, t), hyper)

    cases = [
        case("first step t=1 (m, v zero), defaults", (4,), 1),
        case("step t=5, lr=0.01", (2, 3), 5, lr=0.01),
        case("step t=2, beta1=0.8, beta2=0.99", (3,), 2, lr=0.1, beta1=0.8, beta2=0.99),
        case("large eps=0.1 (where does eps go?)", (2, 2), 3, lr=0.1, eps=0.1),
        case("weight_decay=0.1 (L2 added to the gradient)", (3,), 4, lr=0.05, weight_decay=0.1),
        case("late step t=1000 (bias correction ~ 1 for m)", (3,), 1000, lr=0.01),
        case("beta1=0 (no momentum)", (2,), 3, lr=0.1, beta1=0.0),
    ]
    if hidden:
        for i, shape in enumerate(_shapes(gen, 8)):
            t = [1, 2, 3, 10, 50, 400, 7, 1][i]
            hyper = dict(lr=float(0.001 + 0.1 * rand(gen, 1)), beta1=float(0.5 + 0.45 * rand(gen, 1)),
                         beta2=float(0.9 + 0.099 * rand(gen, 1)), eps=[1e-8, 1e-3][i % 2], weight_decay=0.02 * (i % 3))
            cases.append(case(f"shape {shape}, t={t}", shape, t, **hyper))
    return cases


# --- 04.4 learning-rate schedule ------------------------------------------------------
def _schedule_call(func: Callable[..., Any], case: Case) -> torch.Tensor:
    """Evaluate the schedule at every step 0 .. total_steps + 2; a tensor of learning rates."""
    total = case.args[0]
    return torch.tensor([float(func(step, *case.args, **case.kwargs)) for step in range(total + 3)], dtype=F64)


def _schedule_cases(gen: torch.Generator, hidden: bool) -> List[Case]:
    cases = [
        Case("total_steps=20, warmup_steps=5", (20, 0.1), {"warmup_steps": 5}),
        Case("no warm-up (pure cosine), total_steps=10", (10, 1.0), {}),
        Case("min_lr=0.01", (12, 0.5), {"warmup_steps": 3, "min_lr": 0.01}),
        Case("warmup_steps=1", (8, 0.2), {"warmup_steps": 1, "min_lr": 0.02}),
        Case("short: total_steps=2, warmup_steps=1", (2, 1.0), {"warmup_steps": 1}),
    ]
    if hidden:
        for _ in range(6):
            total = int(torch.randint(2, 60, (1,), generator=gen))
            warm = int(torch.randint(0, total, (1,), generator=gen))
            base = float(rand(gen, 1))
            cases.append(Case(f"total_steps={total}, warmup_steps={warm}", (total, base), {"warmup_steps": warm, "min_lr": base * float(rand(gen, 1)) / 10}))
    return cases


# --- 04.5 one training step -----------------------------------------------------------
def _train_call(func: Callable[..., Any], case: Case) -> tuple:
    """Build a small float64 MLP and an SGD-with-momentum optimiser, call ``func`` three
    times on the same batch; return the three losses and the final parameters."""
    X, y = case.args
    seed, hidden, k, lr = (case.kwargs[key] for key in ("seed", "hidden", "classes", "lr"))
    gen = torch.Generator().manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(X.shape[1], hidden), torch.nn.Tanh(), torch.nn.Linear(hidden, k)).to(F64)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(0.5 * torch.randn(p.shape, generator=gen, dtype=F64))
    opt = optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    losses = [float(func(model, torch.nn.functional.cross_entropy, opt, X, y)) for _ in range(3)]
    return (torch.tensor(losses, dtype=F64), *[p.detach().clone() for p in model.parameters()])


def _train_cases(gen: torch.Generator, hidden: bool) -> List[Case]:
    def case(n: int, d: int, k: int, h: int, lr: float, seed: int) -> Case:
        X = randn(gen, n, d)
        y = torch.arange(n) % k  # every class present
        return Case(f"batch of {n}, {d} features, {k} classes, hidden {h}, lr={lr}", (X, y), {"seed": seed, "hidden": h, "classes": k, "lr": lr})

    cases = [case(8, 2, 2, 4, 0.1, 0), case(16, 3, 3, 5, 0.5, 1), case(1, 2, 2, 3, 0.1, 2), case(12, 4, 4, 6, 0.05, 3)]
    if hidden:
        cases += [case(int(n), 2 + i % 3, 2 + i % 4, 3 + i, 0.2, 10 + i) for i, n in enumerate(torch.randint(4, 40, (4,), generator=gen))]
    return cases



# --- misconceptions of 04.2 to 04.5 ----------------------------------------------------
def _sgd(param, grad, buf, lr, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False, *,
         damp_first=False, nesterov_ok=True, decay_first=True, lr_in_velocity=False):
    """torch's SGD step with the given mistakes (see the misconceptions of 04.2)."""
    g = grad + weight_decay * param if decay_first else grad
    nesterov = nesterov and nesterov_ok
    if lr_in_velocity:
        velocity = lr * g if buf is None else momentum * buf + lr * g
        return param - (lr * g + momentum * velocity if nesterov else velocity), velocity
    if buf is None:
        buf = (1 - dampening) * g if damp_first else g
    else:
        buf = momentum * buf + (1 - dampening) * g
    direction = g + momentum * buf if nesterov else buf
    if not decay_first:
        direction = direction + weight_decay * param
    return param - lr * direction, buf


def _sgd_variant(**mistake: Any) -> Callable[..., Any]:
    def sgd(param, grad, buf, lr, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False):
        return _sgd(param, grad, buf, lr, momentum, dampening, weight_decay, nesterov, **mistake)

    return sgd


def _adam_variant(*, correct: bool = True, t_shift: int = 0, eps_inside: bool = False, decoupled: bool = False,
                  return_hats: bool = False) -> Callable[..., Any]:
    """An Adam step with the given mistake (see the misconceptions of 04.3)."""

    def adam(param, grad, m, v, t, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0):
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

    return adam


def _schedule_variant(kind: str) -> Callable[..., float]:
    """The warm-up + cosine schedule with the mistake ``kind`` (see the misconceptions of 04.4)."""

    def schedule(step, total_steps, base_lr, warmup_steps=0, min_lr=0.0):
        if step < warmup_steps:
            return base_lr * (step if kind == "warm-up from 0" else step + 1) / warmup_steps
        if kind == "cosine from step 0":
            p = min(1.0, step / total_steps)
        elif kind == "no clamp":
            p = (step - warmup_steps) / (total_steps - warmup_steps)
        else:
            p = min(1.0, (step - warmup_steps) / (total_steps - warmup_steps))
        low = 0.0 if kind == "no min_lr" else min_lr
        return low + (base_lr - low) * (1 + math.cos(math.pi * p)) / 2

    return schedule


def train_step_listing(model, loss_fn, optimizer, X, y):
    """The buggy training step of sheet 04 (question 04.5), as printed there."""
    probs = torch.softmax(model(X), dim=1)  # the model's class probabilities
    loss = loss_fn(probs, y)
    loss.backward()
    optimizer.step()
    return loss.item()


def _train_softmax_kept(model, loss_fn, optimizer, X, y):
    optimizer.zero_grad()
    loss = loss_fn(torch.softmax(model(X), dim=1), y)
    loss.backward()
    optimizer.step()
    return loss.item()


def _train_no_zero_grad(model, loss_fn, optimizer, X, y):
    loss = loss_fn(model(X), y)
    loss.backward()
    optimizer.step()
    return loss.item()


def _train_zero_grad_before_step(model, loss_fn, optimizer, X, y):
    loss = loss_fn(model(X), y)
    loss.backward()
    optimizer.zero_grad()
    optimizer.step()
    return loss.item()


def _train_loss_after_update(model, loss_fn, optimizer, X, y):
    optimizer.zero_grad()
    loss_fn(model(X), y).backward()
    optimizer.step()
    with torch.no_grad():
        return loss_fn(model(X), y).item()


# --- 04.6 the largest stable learning rate ------------------------------------------------
QUADRATIC_A = ((5.0, 2.0), (2.0, 2.0))
"""The symmetric matrix A of the loss f(theta) = 1/2 theta^T A theta in sheet 04 (question 04.6)."""


def _curvatures() -> torch.Tensor:
    """The eigenvalues of A, ascending (1 and 6): the curvatures along A's eigenvectors."""
    return torch.linalg.eigvalsh(torch.tensor(QUADRATIC_A, dtype=F64))


def largest_stable_lr_reference() -> float:
    """The learning rate above which gradient descent on 1/2 theta^T A theta diverges: 2 / lambda_max(A)."""
    return 2.0 / float(_curvatures()[-1])


def _number_cases(gen: torch.Generator, hidden: bool) -> List[Case]:
    return [Case("the quadratic of the sheet", ())]


def _number_call(func: Callable[..., Any], case: Case) -> float:
    """A measured answer: any real number (a float, an int, a one-element tensor)."""
    return float(func())


QUESTIONS = [
    Question(
        id="04.1", sheet=SHEET, title="One gradient-descent step", func_name="gd_step", points=1,
        reference=optim.gd_step, make_cases=_gd_cases, kind="implement",
        hints=(
            "Move the parameters a small step in the direction in which the loss falls fastest: against the gradient.",
            "param and grad have the same shape, lr is a float; the result is a new tensor of that shape "
            "(leave param as it is).",
            "One subtraction, with the gradient scaled by the learning rate: no loop, no in-place operation.",
        ),
        misconceptions=(
            Misconception(
                "gradient ascent",
                "The gradient points uphill, towards larger loss; a descent step moves the opposite way.",
                lambda param, grad, lr: param + lr * grad,
            ),
            Misconception(
                "the learning rate left out",
                "The gradient's size depends on the loss's scale, not on how far it is safe to move; the learning "
                "rate sets the step, and without it a steep loss throws the parameters past the minimum.",
                lambda param, grad, lr: param - grad,
            ),
            Misconception(
                "a step by the gradient's sign only",
                "Gradient descent moves in proportion to the gradient, so its steps shrink where the loss flattens "
                "near a minimum; steps of fixed length per coordinate never do.",
                lambda param, grad, lr: param - lr * grad.sign(),
            ),
        ),
    ),
    Question(
        id="04.2", sheet=SHEET, title="SGD with momentum (torch's rules)", func_name="sgd_step", points=2,
        reference=optim.sgd_step, make_cases=_sgd_cases, kind="implement",
        hints=(
            "Apply the four numbered rules in order: the buffer is a running memory of past gradients, and "
            "Nesterov looks one momentum step ahead.",
            "param, grad and buf share one shape; buf is None only on the first step. Weight decay changes the "
            "gradient before anything else uses it. Return the new parameter and the new buffer.",
            "Branch on whether buf is None to build the buffer, then on nesterov to choose the direction; the "
            "learning rate multiplies only the final direction.",
        ),
        misconceptions=(
            Misconception(
                "first buffer dampened (started from zeros)",
                "PyTorch starts the momentum buffer at the first gradient itself; starting from zeros and dampening "
                "makes the early steps too short, an effect that fades only over many steps.",
                _sgd_variant(damp_first=True),
            ),
            Misconception(
                "Nesterov ignored",
                "Nesterov momentum looks ahead: its direction combines the current gradient with the momentum "
                "applied once more, so it differs from plain momentum on every step.",
                _sgd_variant(nesterov_ok=False),
            ),
            Misconception(
                "weight decay added after the momentum",
                "In torch's SGD weight decay is part of the gradient (an L2 penalty): it enters the buffer and is "
                "smoothed by momentum like every other part of the gradient.",
                _sgd_variant(decay_first=False),
            ),
            Misconception(
                "learning rate inside the velocity",
                "PyTorch's buffer accumulates gradients and the learning rate scales only the final direction; a "
                "velocity that already contains the learning rate is a different quantity, so the same buffer "
                "means a different step.",
                _sgd_variant(lr_in_velocity=True),
            ),
        ),
    ),
    Question(
        id="04.3", sheet=SHEET, title="One Adam step: derive the bias correction", func_name="adam_step", points=2,
        reference=optim.adam_step, make_cases=_adam_cases, kind="derive",
        hints=(
            "The moments start at zero, so early on they are dragged towards zero. Suppose every gradient so far "
            "was the same g: what is m after t steps, as a multiple of g? That multiple is what to divide by.",
            "Unrolled, m_t is (1 - beta1) times a geometric sum of t powers of beta1, times g; v_t is the same "
            "with beta2 and g squared. The factors depend on t, and t = 1 on the first step.",
            "Update m and v, divide each by its factor (elementwise), take the square root of the corrected v only, "
            "add eps after the root, and return the uncorrected m and v for the next step.",
        ),
        misconceptions=(
            Misconception(
                "no bias correction",
                "m and v start at zero, so in the first steps they underestimate the gradient's moments, v far more "
                "than m; without a correction the first steps are several times too long.",
                _adam_variant(correct=False),
            ),
            Misconception(
                "t starting at 0 (corrects with t + 1)",
                "After the first step the moments contain exactly one gradient, and the correction must match the "
                "number of gradients they contain; counting one more undercorrects every step.",
                _adam_variant(t_shift=1),
            ),
            Misconception(
                "t off by one the other way (t - 1)",
                "After the first step the moments contain one gradient; correcting as if they held one fewer "
                "overcorrects, and on the very first step divides by zero.",
                _adam_variant(t_shift=-1),
            ),
            Misconception(
                "eps inside the square root",
                "eps only keeps the denominator away from zero; under the root it acts like its square root, a much "
                "larger number that shortens the steps of coordinates with small gradients.",
                _adam_variant(eps_inside=True),
            ),
            Misconception(
                "decoupled weight decay (AdamW)",
                "Adam's weight_decay adds the L2 term to the gradient, so it passes through the moments and is "
                "rescaled per coordinate; shrinking the weights directly is AdamW, a different optimiser.",
                _adam_variant(decoupled=True),
            ),
            Misconception(
                "returns the bias-corrected moments",
                "The corrected moments serve only this step's update; the running moments must stay uncorrected, or "
                "the next step would correct them a second time.",
                _adam_variant(return_hats=True),
            ),
        ),
    ),
    Question(
        id="04.4", sheet=SHEET, title="Warm-up plus cosine learning-rate schedule", func_name="warmup_cosine_lr", points=1,
        reference=optim.warmup_cosine_lr, make_cases=_schedule_cases, call=_schedule_call, kind="implement",
        hints=(
            "Two phases: a linear ramp up to base_lr during the warm-up, then half a period of a cosine from "
            "base_lr down to min_lr; after total_steps the rate stays at min_lr.",
            "Steps count from 0, and the ramp's first value is base_lr / W, not 0. The cosine's progress runs from "
            "0 at step W to 1 at step T, and never beyond 1.",
            "Map cos(pi * progress), which runs from 1 to -1, onto the interval from base_lr to min_lr; measure "
            "progress from the end of the warm-up and cap it with min(1.0, ...).",
        ),
        misconceptions=(
            Misconception(
                "warm-up from 0",
                "Steps count from 0 and step 0 already updates the weights; a ramp that starts at zero wastes that "
                "step and reaches base_lr one step late.",
                _schedule_variant("warm-up from 0"),
            ),
            Misconception(
                "cosine counted from step 0",
                "The cosine spans only the steps after the warm-up; measuring its progress from step 0 starts it "
                "part-way down, so the rate drops abruptly when the warm-up ends.",
                _schedule_variant("cosine from step 0"),
            ),
            Misconception(
                "no clamp after total_steps",
                "Past total_steps the schedule should stay at its floor; a cosine that keeps going turns around and "
                "the learning rate climbs back up.",
                _schedule_variant("no clamp"),
            ),
            Misconception(
                "min_lr forgotten",
                "The half cosine is scaled between base_lr and min_lr: min_lr is the floor the rate decays to, not "
                "an offset that can be dropped.",
                _schedule_variant("no min_lr"),
            ),
        ),
    ),
    Question(
        id="04.5", sheet=SHEET, title="Find and fix the bugs in a training step", func_name="train_step", points=2,
        reference=train.train_step, make_cases=_train_cases, call=_train_call, kind="debug",
        hints=(
            "Ask of each line what a training step needs: the gradient of THIS batch's loss, computed from what "
            "the loss function expects as input, and then one update along it.",
            "What does the loss function (cross_entropy) expect as its first argument: raw scores or "
            "probabilities? And what is already in each parameter's .grad when backward() runs a second time?",
            "A correct step makes four calls in a fixed order: clear the gradients, forward pass and loss on the "
            "model's raw output, backward, update; it returns the loss value from before the update.",
        ),
        misconceptions=(
            Misconception(
                "the listing unchanged",
                "Both bugs are still there: one changes what the loss measures, the other which gradient each "
                "update follows.",
                train_step_listing,
            ),
            Misconception(
                "softmax before the cross-entropy",
                "cross_entropy takes raw scores (logits) and applies a log-softmax itself; feeding it probabilities "
                "normalises twice, so the loss can never approach 0 and its gradients are squashed.",
                _train_softmax_kept,
            ),
            Misconception(
                "no zero_grad: gradients accumulate",
                "backward() adds into .grad; without clearing it, each update follows the sum of all gradients "
                "computed so far instead of the current batch's gradient.",
                _train_no_zero_grad,
            ),
            Misconception(
                "zero_grad between backward and step",
                "Clearing the gradients after backward() throws away the gradient just computed, so the optimiser "
                "has nothing to follow and the weights never move.",
                _train_zero_grad_before_step,
            ),
            Misconception(
                "returns the loss after the update",
                "The loss to report is the one the gradient was computed from; evaluating it again after the update "
                "costs a second forward pass and describes different weights.",
                _train_loss_after_update,
            ),
        ),
    ),
    Question(
        id="04.6", sheet=SHEET, title="Measure the largest stable learning rate", func_name="largest_stable_lr",
        points=1, reference=largest_stable_lr_reference, make_cases=_number_cases, call=_number_call,
        kind="investigate", atol=0.0, rtol=0.01,
        hints=(
            "Experiment: run gradient descent for a few hundred steps at one learning rate and ask whether theta "
            "ended closer to the minimum than it started. The answer switches from yes to no at one rate: "
            "find it by bisection.",
            "theta has 2 entries and the gradient of the loss is A theta. Start the bisection from an interval "
            "whose small end converges and whose large end diverges; each halving halves the uncertainty, so "
            "20 of them are plenty for 1%.",
            "Then compare with the lecture's one-dimensional rule for a / 2 * theta^2: along which direction does "
            "this quadratic look like a parabola with the largest a? torch.linalg.eigvalsh(A) lists A's curvatures.",
        ),
        misconceptions=(
            Misconception(
                "the fastest rate, not the limit",
                "At 1 / lambda_max the steepest direction is solved in a single step, but larger rates still "
                "converge: they overshoot and oscillate with shrinking amplitude, up to the stability limit.",
                lambda: 1.0 / float(_curvatures()[-1]),
            ),
            Misconception(
                "curvature read off the diagonal",
                "A's diagonal holds the curvature along the coordinate axes, but this quadratic is rotated: its "
                "steepest direction is an eigenvector of A, with a curvature larger than any diagonal entry.",
                lambda: 2.0 / max(QUADRATIC_A[0][0], QUADRATIC_A[1][1]),
            ),
            Misconception(
                "the flattest direction decides",
                "Every direction must shrink for gradient descent to converge; the direction with the LARGEST "
                "curvature is the first to overshoot and blow up, so it sets the limit.",
                lambda: 2.0 / float(_curvatures()[0]),
            ),
        ),
    ),
]
