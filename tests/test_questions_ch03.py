"""Chapter 03 questions: each accepts the reference and a differently written correct
answer, rejects typical wrong answers, and the sheets are graded as expected."""

from __future__ import annotations

import math

import torch

from course_lib.check import evaluate
from course_lib.engine import Value
from question_suite import QuestionSuite

SHEET = "03_backprop"
QIDS = ["03.1", "03.2", "03.3", "03.4", "03.5"]


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


def mul_overwrites(a, b):  # `=` instead of `+=`
    out = Value(a.data * b.data, (a, b), "*")

    def back():
        a.grad = b.data * out.grad
        b.grad = a.data * out.grad

    out._backward = back
    return out


def mul_swapped(a, b):  # each input gets its own value instead of the other factor
    out = Value(a.data * b.data, (a, b), "*")

    def back():
        a.grad += a.data * out.grad
        b.grad += b.data * out.grad

    out._backward = back
    return out


def mul_forgets_out_grad(a, b):
    out = Value(a.data * b.data, (a, b), "*")

    def back():
        a.grad += b.data
        b.grad += a.data

    out._backward = back
    return out


def mul_without_children(a, b):  # the graph is cut: backward never reaches a and b
    return Value(a.data * b.data)


# --- 03.2 value_tanh -------------------------------------------------------------------
def tanh_from_exp(a):  # correct: composed of Value operations, autograd does the rest
    e = (a * 2).exp() if a.data < 20 else None
    if e is None:
        return a.tanh()
    return (e - 1) / (e + 1)


def tanh_input_derivative(a):  # 1 - a^2 instead of 1 - t^2
    t = math.tanh(a.data)
    out = Value(t, (a,), "tanh")
    out._backward = lambda: setattr(a, "grad", a.grad + (1 - a.data**2) * out.grad)
    return out


def tanh_overwrites(a):
    t = math.tanh(a.data)
    out = Value(t, (a,), "tanh")
    out._backward = lambda: setattr(a, "grad", (1 - t * t) * out.grad)
    return out


def tanh_forgets_out_grad(a):
    t = math.tanh(a.data)
    out = Value(t, (a,), "tanh")
    out._backward = lambda: setattr(a, "grad", a.grad + (1 - t * t))
    return out


def tanh_returns_float(a):
    return math.tanh(a.data)


# --- 03.3 linear_backward --------------------------------------------------------------
def linear_einsum(dy, x, W):
    return torch.einsum("no,oi->ni", dy, W), torch.einsum("no,ni->oi", dy, x), torch.einsum("no->o", dy)


def linear_transposed_dW(dy, x, W):
    return dy @ W, x.T @ dy, dy.sum(0)


def linear_db_not_summed(dy, x, W):
    return dy @ W, dy.T @ x, dy


def linear_db_mean(dy, x, W):
    return dy @ W, dy.T @ x, dy.mean(0)


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


def numgrad_forward(f, x, eps=1e-6):
    x = x.clone()
    g = torch.zeros_like(x)
    f0 = float(f(x))
    for i in range(x.numel()):
        xp = x.clone()
        xp.view(-1)[i] += eps
        g.view(-1)[i] = (float(f(xp)) - f0) / eps
    return g


def numgrad_no_half(f, x, eps=1e-6):
    x = x.clone()
    g = torch.zeros_like(x)
    for i in range(x.numel()):
        xp, xm = x.clone(), x.clone()
        xp.view(-1)[i] += eps
        xm.view(-1)[i] -= eps
        g.view(-1)[i] = (float(f(xp)) - float(f(xm))) / eps
    return g


def numgrad_ignores_eps(f, x, eps=1e-6):
    return numgrad_loop_copies(f, x, 1e-6)


def numgrad_autograd(f, x, eps=1e-6):  # the exact gradient is not what was asked
    x = x.detach().clone().requires_grad_(True)
    y = f(x)
    if not isinstance(y, torch.Tensor):
        raise TypeError("f returned a Python float")
    y.backward()
    return x.grad


# --- 03.5 softmax_backward -------------------------------------------------------------
def softmax_jacobian(dy, y, dim=-1):  # correct: the full Jacobian, slice by slice
    yd, dyd = y.movedim(dim, -1), dy.movedim(dim, -1)
    jac = torch.diag_embed(yd) - yd.unsqueeze(-1) * yd.unsqueeze(-2)  # (..., C, C), symmetric
    dx = (jac @ dyd.unsqueeze(-1)).squeeze(-1)
    return dx.movedim(-1, dim)


def softmax_diagonal_only(dy, y, dim=-1):
    return dy * y * (1 - y)


def softmax_last_dim_always(dy, y, dim=-1):
    return y * (dy - (dy * y).sum(dim=-1, keepdim=True))


def softmax_no_y_factor(dy, y, dim=-1):
    return dy - (dy * y).sum(dim=dim, keepdim=True)


CORRECT = {
    "03.1": mul_via_local_grads,
    "03.2": tanh_from_exp,
    "03.3": linear_einsum,
    "03.4": numgrad_loop_copies,
    "03.5": softmax_jacobian,
}
WRONG = {
    "03.1": {"mul_overwrites": mul_overwrites, "mul_swapped": mul_swapped, "mul_forgets_out_grad": mul_forgets_out_grad, "mul_without_children": mul_without_children},
    "03.2": {"tanh_input_derivative": tanh_input_derivative, "tanh_overwrites": tanh_overwrites, "tanh_forgets_out_grad": tanh_forgets_out_grad, "tanh_returns_float": tanh_returns_float},
    "03.3": {"linear_transposed_dW": linear_transposed_dW, "linear_db_not_summed": linear_db_not_summed, "linear_db_mean": linear_db_mean},
    "03.4": {"numgrad_forward": numgrad_forward, "numgrad_no_half": numgrad_no_half, "numgrad_ignores_eps": numgrad_ignores_eps, "numgrad_autograd": numgrad_autograd},
    "03.5": {"softmax_diagonal_only": softmax_diagonal_only, "softmax_last_dim_always": softmax_last_dim_always, "softmax_no_y_factor": softmax_no_y_factor},
}


def test_failure_messages_are_helpful():
    msg = evaluate("03.3", linear_db_not_summed).message
    assert "output 2: expected (" in msg and "got (" in msg
    msg = evaluate("03.2", tanh_returns_float).message
    assert "should return a Value, got float" in msg


class TestQuestions(QuestionSuite):
    """Accepts the reference and CORRECT, rejects WRONG; solutions pass, exercises are not attempted."""
