"""Chapter 03 questions: each accepts the reference and a differently written correct
answer, rejects typical wrong answers, and the sheets are graded as expected."""

from __future__ import annotations

import math

import torch

from course_lib import questions
from course_lib.check import evaluate
from course_lib.engine import Value
from question_suite import QuestionSuite

SHEET = "03_backprop"
QIDS = ["03.1", "03.2", "03.3", "03.4", "03.5", "03.6"]


def status(qid, fn, hidden=False):
    return evaluate(qid, fn, hidden=hidden).status


# --- 03.1 value_mul --------------------------------------------------------------------
def mul_via_local_grads(a, b):  # correct, written differently: local derivatives stored up front
    out = Value(a.data * b.data, (a, b), "*")
    da, db = b.data, a.data

    def back():
        for v, d in ((a, da), (b, db)):
            v.grad = v.grad + d * out.grad

    out._backward = back
    return out


# --- 03.2 value_tanh -------------------------------------------------------------------
def tanh_from_exp(a):  # correct: composed of Value operations, autograd does the rest
    e = (a * 2).exp() if a.data < 20 else None
    if e is None:
        return a.tanh()
    return (e - 1) / (e + 1)


def tanh_returns_float(a):
    return math.tanh(a.data)


# --- 03.3 linear_backward --------------------------------------------------------------
def linear_einsum(dy, x, W):
    return torch.einsum("no,oi->ni", dy, W), torch.einsum("no,ni->oi", dy, x), torch.einsum("no->o", dy)


# --- 03.4 numerical_grad ---------------------------------------------------------------
def numgrad_loop_copies(f, x, eps=1e-6):  # correct: a fresh copy per evaluation
    x = x.to(torch.float64)
    out = torch.empty_like(x)
    for idx in range(x.numel()):
        e = torch.zeros(x.numel(), dtype=torch.float64)
        e[idx] = eps
        e = e.reshape(x.shape)
        out.reshape(-1)[idx] = (float(f(x + e)) - float(f(x - e))) / (2 * eps)
    return out.reshape(x.shape) if out.is_contiguous() else out


# --- 03.5 softmax_backward -------------------------------------------------------------
def softmax_jacobian(dy, y, dim=-1):  # correct: the full Jacobian, slice by slice
    yd, dyd = y.movedim(dim, -1), dy.movedim(dim, -1)
    jac = torch.diag_embed(yd) - yd.unsqueeze(-1) * yd.unsqueeze(-2)  # (..., C, C), symmetric
    dx = (jac @ dyd.unsqueeze(-1)).squeeze(-1)
    return dx.movedim(-1, dim)


# --- 03.6 mlp_backward -----------------------------------------------------------------
def mlp_by_autograd(X, y, W1, b1, W2, b2):  # correct: let autograd differentiate the loss
    params = [p.detach().clone().requires_grad_(True) for p in (W1, b1, W2, b2)]
    logits = torch.tanh(X @ params[0].T + params[1]) @ params[2].T + params[3]
    torch.nn.functional.cross_entropy(logits, y).backward()
    return tuple(p.grad for p in params)


CORRECT = {
    "03.1": mul_via_local_grads,
    "03.2": tanh_from_exp,
    "03.3": linear_einsum,
    "03.4": numgrad_loop_copies,
    "03.5": softmax_jacobian,
    "03.6": mlp_by_autograd,
}
def test_failure_messages_are_helpful():
    msg = evaluate("03.3", questions.get("03.3").misconception("bias gradient not summed over the batch").wrong).message
    assert "output 2: expected (" in msg and "got (" in msg
    assert "This looks like bias gradient not summed over the batch" in msg
    msg = evaluate("03.2", tanh_returns_float).message
    assert "should return a Value, got float" in msg


def test_sheet_ids_and_kinds():
    qs = questions.for_sheet(SHEET)
    assert [q.id for q in qs] == QIDS
    assert {q.id: q.kind for q in qs} == {"03.1": "implement", "03.2": "derive", "03.3": "derive",
                                          "03.4": "implement", "03.5": "derive", "03.6": "debug"}


def test_the_sheets_buggy_listing_is_the_registered_one(solution_sheet):
    """03.6: the listing students debug is the registered misconception "the listing unchanged",
    its two bugs are the two other misconceptions, and the sheet's loss is the one the reference differentiates."""
    q = questions.get("03.6")
    listing = q.misconception("the listing unchanged").wrong
    for case in q.cases() + q.cases(hidden=True):
        for got, want in zip(solution_sheet["mlp_backward_buggy"](*case.args), listing(*case.args)):
            torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12)
        for got, want in zip(mlp_by_autograd(*case.args), q.reference(*case.args)):
            torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12)
    X, y, *params = q.cases()[0].args
    loss = solution_sheet["mlp_loss"](X, y, *params)
    logits = torch.tanh(X @ params[0].T + params[1]) @ params[2].T + params[3]
    torch.testing.assert_close(loss, torch.nn.functional.cross_entropy(logits, y))


def test_buggy_listing_is_caught_only_where_its_bugs_show():
    """With N = 1 the missing 1/N is invisible; the public cases include one such batch."""
    res = evaluate("03.6", questions.get("03.6").misconception("sum instead of mean over the batch").wrong)
    assert 0 < res.passed < res.total


class TestQuestions(QuestionSuite):
    """Accepts the reference and CORRECT, rejects the registered misconceptions by name;
    solutions pass, exercises are not attempted."""
