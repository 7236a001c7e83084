"""Questions of sheet 08_training: each accepts the reference and a differently written
correct answer (PyTorch's own functions or autograd), rejects typical wrong answers by name;
the solution sheet passes, the unfilled exercise sheet is "not attempted" and still runs to
the end on the references."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from course_lib import questions
from course_lib.check import evaluate
from course_lib.questions import ch08_training
from question_suite import QuestionSuite

SHEET = "08_training"
IDS = ["08.1", "08.2", "08.3", "08.4", "08.5", "08.6"]


# --- correct answers written differently from the reference -----------------------------
def kaiming_from_a_slice(shape):
    """fan_in is the number of entries of one output's slice of the weight."""
    return math.sqrt(2 / torch.empty(tuple(shape))[0].numel())


def batch_norm_torch(x, gamma, beta, running_mean, running_var, training, eps=1e-5):
    return F.batch_norm(x, running_mean.clone(), running_var.clone(), gamma, beta, training, eps=eps)


def running_stats_torch(x, running_mean, running_var, momentum=0.1):
    mean, var = running_mean.clone(), running_var.clone()
    F.batch_norm(x, mean, var, training=True, momentum=momentum)
    return mean, var


def batch_norm_backward_autograd(dy, x, gamma, eps=1e-5):
    x, gamma = x.clone().requires_grad_(), gamma.clone().requires_grad_()
    beta = torch.zeros_like(gamma, requires_grad=True)
    y = F.batch_norm(x, None, None, gamma, beta, training=True, eps=eps)
    return torch.autograd.grad(y, (x, gamma, beta), dy)


def std_ratio_through_logs(depth, width, scheme):
    """The variance factor per step, from the weights' variance, summed in log space."""
    bound = 1 / math.sqrt(width)
    var_w = {"pytorch": (2 * bound) ** 2 / 12, "xavier": 1 / width, "kaiming": 2 / width}[scheme]
    return math.exp(0.5 * (depth - 1) * math.log(width * var_w / 2))


def clip_torch(grads, max_norm):
    params = [torch.nn.Parameter(g.clone()) for g in grads]
    for q, g in zip(params, grads):
        q.grad = g.clone()
    total = torch.nn.utils.clip_grad_norm_(params, max_norm)
    return [q.grad for q in params], float(total)


CORRECT = {"08.1": kaiming_from_a_slice, "08.2": batch_norm_torch, "08.3": running_stats_torch,
           "08.4": batch_norm_backward_autograd, "08.5": std_ratio_through_logs, "08.6": clip_torch}


def wrong(qid, name):
    return questions.get(qid).misconception(name).wrong


class TestQuestions(QuestionSuite):
    """Accepts the reference and CORRECT, rejects the registered misconceptions by name;
    solutions pass, exercises are not attempted."""


def test_sheet_ids_and_kinds():
    qs = questions.for_sheet(SHEET)
    assert [q.id for q in qs] == IDS
    assert {q.id: q.kind for q in qs} == {"08.1": "derive", "08.2": "implement", "08.3": "debug",
                                          "08.4": "derive", "08.5": "predict", "08.6": "implement"}


def test_failure_messages_point_at_the_problem():
    msg = evaluate("08.2", wrong("08.2", "evaluation with batch statistics")).message
    assert "passed 5 of 8" in msg and "case 2 of 8 (evaluation" in msg
    msg = evaluate("08.3", wrong("08.3", "momentum weighting reversed")).message
    assert "This looks like momentum weighting reversed" in msg and "output 0" in msg
    msg = evaluate("08.4", wrong("08.4", "dgamma without the normalised input")).message
    assert "output 1" in msg  # dx is right, dgamma is not
    msg = evaluate("08.6", wrong("08.6", "scaling up when below max_norm")).message
    assert "case 2 of 6 (global norm 0.5 < max_norm=1" in msg
    msg = evaluate("08.5", wrong("08.5", "one step too many")).message
    assert "This looks like one step too many" in msg and "a single layer" in msg
    msg = evaluate("08.1", lambda shape: None).message
    assert "forget to `return`" in msg


def test_the_kaiming_std_keeps_the_variance_through_relu_layers():
    """The derivation's claim, measured: Var(W relu(z)) = Var(z) on average for the derived std."""
    gen = torch.Generator().manual_seed(0)
    z = torch.randn(4000, 300, generator=gen, dtype=torch.float64)
    ratios = []
    for _ in range(5):
        W = torch.randn(300, 300, generator=gen, dtype=torch.float64) * ch08_training.kaiming_std_reference((300, 300))
        ratios.append(float((torch.relu(z) @ W.T).pow(2).mean() / z.pow(2).mean()))
    assert sum(ratios) / len(ratios) == pytest.approx(1.0, abs=0.05)


@pytest.mark.parametrize("scheme", ["pytorch", "xavier", "kaiming"])
def test_the_predicted_std_ratio_is_what_a_relu_layer_does_on_average(scheme):
    """08.5's prediction, measured: one step multiplies E[z^2] by the square of the per-step factor."""
    gen = torch.Generator().manual_seed(0)
    width = 200
    z = torch.randn(2000, width, generator=gen, dtype=torch.float64)
    predicted = ch08_training.std_ratio_reference(2, width, scheme) ** 2
    ratios = []
    for _ in range(5):
        layer = torch.nn.Linear(width, width, bias=False, dtype=torch.float64)
        with torch.no_grad():
            if scheme == "pytorch":  # what nn.Linear.reset_parameters draws, from our generator
                torch.nn.init.kaiming_uniform_(layer.weight, a=math.sqrt(5), generator=gen)
            elif scheme == "xavier":
                torch.nn.init.xavier_normal_(layer.weight, generator=gen)
            elif scheme == "kaiming":
                torch.nn.init.kaiming_normal_(layer.weight, nonlinearity="relu", generator=gen)
            ratios.append(float(layer(torch.relu(z)).pow(2).mean() / z.pow(2).mean()))
    assert sum(ratios) / len(ratios) == pytest.approx(predicted, rel=0.05)


def test_the_sheets_listing_is_the_registered_one(solution_sheet):
    """08.3 debugs the registered listing (the misconception "the listing unchanged")."""
    q = questions.get("08.3")
    for case in q.cases() + q.cases(hidden=True):
        got = q.call(solution_sheet["update_running_stats_buggy"], case)
        want = q.call(ch08_training.update_running_stats_listing, case)
        for g, w in zip(got, want):
            torch.testing.assert_close(g, w, rtol=0, atol=0)


@pytest.mark.parametrize("sheet", ["solution_sheet", "exercise_sheet"])
def test_the_last_cell_trains_with_the_students_or_the_reference_functions(sheet, request):
    ns = request.getfixturevalue(sheet)
    assert ns["losses"][0] == pytest.approx(math.log(10), abs=0.1)  # near-uniform first predictions
    assert ns["test_accuracy"] > 0.9 and ns["accuracy"](ns["splits"].X_val, ns["splits"].y_val) > 0.9
    assert 0 < ns["clipped_steps"] < ns["steps"]  # clipping acted on some steps, not all
    assert not torch.equal(ns["running_var"], torch.ones_like(ns["running_var"]))  # the running estimates moved
