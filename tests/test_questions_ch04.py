"""Questions of sheet 04_optimization: each accepts the reference and a differently written
correct answer, rejects typical wrong answers; the solution sheet passes, the unfilled
exercise sheet is "not attempted" and still runs to the end on the references."""

from __future__ import annotations

import math

import pytest
import torch

from course_lib import optim, questions
from course_lib.questions import ch04_optim
from course_lib.check import evaluate
from question_suite import QuestionSuite

SHEET = "04_optimization"
IDS = ["04.1", "04.2", "04.3", "04.4", "04.5", "04.6"]


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


def stable_lr_by_hand():
    """2 / lambda_max from the characteristic polynomial of the sheet's 2 x 2 matrix A."""
    (a, b), (_, d) = ch04_optim.QUADRATIC_A
    lam_max = (a + d) / 2 + math.sqrt(((a - d) / 2) ** 2 + b * b)
    return torch.tensor(2 / lam_max, dtype=torch.float32)  # any real number is accepted


CORRECT = {"04.1": gd_add, "04.2": sgd_torch_style, "04.3": adam_torch_style, "04.4": schedule_cos_squared,
           "04.5": train_step_zero_grad_late, "04.6": stable_lr_by_hand}


def wrong(qid, name):
    return questions.get(qid).misconception(name).wrong



class TestQuestions(QuestionSuite):
    """Accepts the reference and CORRECT, rejects the registered misconceptions by name;
    solutions pass, exercises are not attempted."""


def test_failure_messages_point_at_the_problem():
    msg = evaluate("04.3", wrong("04.3", "t starting at 0 (corrects with t + 1)")).message
    assert "case 1 of 7 (first step t=1" in msg and "output 0" in msg
    assert "This looks like t starting at 0" in msg
    msg = evaluate("04.2", wrong("04.2", "first buffer dampened (started from zeros)")).message
    assert "dampening=0.5" in msg
    msg = evaluate("04.5", wrong("04.5", "no zero_grad: gradients accumulate")).message
    assert "output 0: 1 of 3 value(s) differ" in msg  # the first loss is right, the later ones are not
    msg = evaluate("04.1", lambda param, grad, lr: None).message
    assert "forget to `return`" in msg


def test_sheet_ids_and_kinds():
    qs = questions.for_sheet(SHEET)
    assert [q.id for q in qs] == IDS
    assert {q.id: q.kind for q in qs} == {"04.1": "implement", "04.2": "implement", "04.3": "derive",
                                          "04.4": "implement", "04.5": "debug", "04.6": "investigate"}


def test_the_sheets_listing_and_quadratic_are_the_registered_ones(solution_sheet):
    """04.5 debugs the registered listing; 04.6 measures on the registry's matrix."""
    q = questions.get("04.5")
    for case in q.cases():
        got = q.call(solution_sheet["train_step_buggy"], case)
        want = q.call(wrong("04.5", "the listing unchanged"), case)
        for g, w in zip(got, want):
            torch.testing.assert_close(g, w, rtol=0, atol=0)
    A = torch.tensor(ch04_optim.QUADRATIC_A, dtype=torch.float64)
    assert torch.equal(solution_sheet["A"], A)
    assert torch.linalg.eigvalsh(A).tolist() == pytest.approx([1.0, 6.0])


def test_the_measured_stable_lr_is_close_to_the_theory(solution_sheet):
    measured = solution_sheet["largest_stable_lr"]()
    assert measured == pytest.approx(1 / 3, rel=1e-3)


@pytest.mark.parametrize("sheet", ["solution_sheet", "exercise_sheet"])
def test_the_last_cell_trains_with_the_students_or_the_reference_functions(sheet, request):
    ns = request.getfixturevalue(sheet)
    assert ns["accuracy"] > 0.95 and ns["loss"] < 0.2
    last_lr = optim.warmup_cosine_lr(ns["steps"] - 1, ns["steps"], 0.05, warmup_steps=10, min_lr=0.001)
    assert ns["opt"].t == ns["steps"] and ns["opt"].lr == pytest.approx(last_lr)  # the schedule ran to its end
