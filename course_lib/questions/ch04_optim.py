"""Questions of sheet 04_optimization: optimiser steps, a schedule, a training step."""

from __future__ import annotations

from typing import Any, Callable, List

import torch

from course_lib import optim, train
from course_lib.questions import Case, Question, randn, rand

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


QUESTIONS = [
    Question(
        id="04.1", sheet=SHEET, title="One gradient-descent step", func_name="gd_step", points=1,
        reference=optim.gd_step, make_cases=_gd_cases,
        hint="Step against the gradient: new = param - lr * grad. Return a new tensor of param's shape.",
    ),
    Question(
        id="04.2", sheet=SHEET, title="SGD with momentum (torch's rules)", func_name="sgd_step", points=2,
        reference=optim.sgd_step, make_cases=_sgd_cases,
        hint="Add weight_decay * param to the gradient first. On the first step (buf is None) the buffer is "
        "the gradient itself (no dampening); later buf = momentum * buf + (1 - dampening) * g. "
        "Nesterov steps along g + momentum * buf, plain momentum along buf.",
    ),
    Question(
        id="04.3", sheet=SHEET, title="One Adam step with bias correction", func_name="adam_step", points=2,
        reference=optim.adam_step, make_cases=_adam_cases,
        hint="t is 1 on the first step: divide m by (1 - beta1**t) and v by (1 - beta2**t); "
        "eps goes outside the square root: lr * m_hat / (sqrt(v_hat) + eps). Return (param, m, v).",
    ),
    Question(
        id="04.4", sheet=SHEET, title="Warm-up plus cosine learning-rate schedule", func_name="warmup_cosine_lr", points=1,
        reference=optim.warmup_cosine_lr, make_cases=_schedule_cases, call=_schedule_call,
        hint="Warm-up: base_lr * (step + 1) / warmup_steps, so step 0 is not 0. Then the cosine's progress "
        "counts from the end of the warm-up, (step - W) / (total_steps - W), capped at 1; it decays to min_lr.",
    ),
    Question(
        id="04.5", sheet=SHEET, title="One training step", func_name="train_step", points=2,
        reference=train.train_step, make_cases=_train_cases, call=_train_call,
        hint="zero_grad, forward + loss, backward, step, in this order; return the loss computed before the "
        "update as a Python float (loss.item()).",
    ),
]
