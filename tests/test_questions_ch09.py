"""Questions of sheet 09_rnn: each accepts the reference and a differently written correct
answer and names its registered misconceptions; the solution sheet passes, the unfilled
exercise sheet is "not attempted" and still runs to the end on the references."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from course_lib import questions, rnn
from course_lib.check import PASSED, evaluate, run_case
from course_lib.questions import ch09_rnn
from question_suite import QuestionSuite

SHEET = "09_rnn"
IDS = ["09.1", "09.2", "09.3", "09.4", "09.5", "09.6"]


# --- correct answers written differently from the reference ---------------------------------------
def step_linear(x, h, W_ih, W_hh, b_ih, b_hh):
    return torch.tanh(F.linear(x, W_ih, b_ih) + F.linear(h, W_hh, b_hh))


def layer_with_nn_rnn(x, W_ih, W_hh, b_ih, b_hh, h0=None, batch_first=False):
    """PyTorch's own nn.RNN, loaded with the case's weights."""
    module = nn.RNN(W_ih.shape[1], W_ih.shape[0], batch_first=batch_first).double()
    module.load_state_dict({"weight_ih_l0": W_ih, "weight_hh_l0": W_hh, "bias_ih_l0": b_ih, "bias_hh_l0": b_hh})
    with torch.no_grad():
        return module(x, h0)


def bptt_autograd(x, h0, W_ih, W_hh, b, G):
    h0, W_hh = h0.clone().requires_grad_(True), W_hh.clone().requires_grad_(True)
    h = h0
    for t in range(2):
        h = torch.tanh(x[t] @ W_ih.T + h @ W_hh.T + b)
    return torch.autograd.grad((G * h).sum(), (W_hh, h0))


class _NoH0(nn.Module):
    def __init__(self, input_size, hidden_size, output_size):
        super().__init__()
        self.fc = nn.Linear(hidden_size, output_size)  # created first: the check sets parameters by name
        self.rnn = nn.RNN(input_size, hidden_size, batch_first=True)

    def forward(self, x):
        _, h_n = self.rnn(x)  # no h0: zeros of the right batch, dtype and device
        return self.fc(h_n[-1])


def ratio_measured(r, k):
    """Measures the ratio with autograd on a linear recurrence with W_hh = r Q."""
    W = rnn.recurrent_matrix(6, float(r), generator=torch.Generator().manual_seed(3))
    h_start = torch.randn(2, 6, dtype=torch.float64, requires_grad=True)
    h = h_start
    for _ in range(k):
        h = h @ W.T + 0.1
    g = torch.randn(2, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    (grad,) = torch.autograd.grad((g * h).sum(), h_start)
    return torch.tensor(float(grad.norm() / g.norm()), dtype=torch.float32)


def count_by_formula(input_size, hidden_size, num_layers, bias=True):
    sizes = [input_size] + [hidden_size] * (num_layers - 1)
    return sum(hidden_size * (i + hidden_size) + (2 * hidden_size if bias else 0) for i in sizes)


CORRECT = {"09.1": step_linear, "09.2": layer_with_nn_rnn, "09.3": bptt_autograd, "09.4": _NoH0,
           "09.5": ratio_measured, "09.6": count_by_formula}


def wrong(qid, name):
    return questions.get(qid).misconception(name).wrong


class TestQuestions(QuestionSuite):
    """Accepts the reference and CORRECT, names every registered misconception; solutions pass,
    exercises are not attempted."""


def test_sheet_ids_and_kinds():
    assert [q.id for q in questions.for_sheet(SHEET)] == IDS
    assert {q.id: q.kind for q in questions.for_sheet(SHEET)} == {
        "09.1": "implement", "09.2": "implement", "09.3": "derive", "09.4": "debug", "09.5": "predict", "09.6": "predict"}


def test_references_match_pytorch():
    """09.1 equals nn.RNNCell, 09.3 equals autograd, 09.6 equals a real module's count (hidden cases)."""
    for case in questions.get("09.1").cases(hidden=True):
        x, h, W_ih, W_hh, b_ih, b_hh = case.args
        cell = nn.RNNCell(x.shape[1], h.shape[1]).double()
        cell.load_state_dict({"weight_ih": W_ih, "weight_hh": W_hh, "bias_ih": b_ih, "bias_hh": b_hh})
        with torch.no_grad():
            torch.testing.assert_close(rnn.rnn_cell(*case.args), cell(x, h), rtol=0, atol=1e-12)
    for case in questions.get("09.3").cases(hidden=True):
        for mine, auto in zip(ch09_rnn.bptt_two_steps_reference(*case.args), bptt_autograd(*case.args)):
            torch.testing.assert_close(mine, auto, rtol=0, atol=1e-10)
    assert ch09_rnn.rnn_param_count_reference(100, 50, 2) == sum(p.numel() for p in nn.RNN(100, 50, 2).parameters()) == 12700


def test_failure_messages_point_at_the_problem():
    msg = evaluate("09.1", wrong("09.1", "weights not transposed")).message
    assert "raised RuntimeError" in msg and "This looks like weights not transposed" in msg
    msg = evaluate("09.2", wrong("09.2", "only the last state returned as the output")).message
    assert "output 0: expected (3, 2, 5) float64, got (2, 5) float64" in msg
    msg = evaluate("09.2", wrong("09.2", "h_n made batch-first")).message
    assert "batch_first x (B=2, T=4, I=3)" in msg and "output 1: expected (1, 2, 5) float64, got (2, 1, 5)" in msg


def test_the_listing_fails_for_batches_above_one_and_is_reported(solution_sheet):
    """The article's listing, given its missing attribute, runs on a batch of 1 only; the check
    reports its AttributeError, and a renamed network gets a clear message."""
    listing = solution_sheet["ArticleRNN"]
    net = listing(3, 4, 2)
    net.hidden_size = 4
    assert net(torch.randn(1, 5, 3)).shape == (1, 2)
    with pytest.raises(RuntimeError, match=r"Expected hidden size \(1, 4, 4\), got \[1, 1, 4\]"):
        net(torch.randn(4, 5, 3))
    msg = evaluate("09.4", listing).message
    assert "raised AttributeError" in msg and "hidden_size" in msg

    def renamed(i, h, o):
        return nn.Sequential(nn.RNN(i, h, batch_first=True), nn.Linear(h, o))

    assert "keep the listing's layers" in evaluate("09.4", renamed).message
    second = evaluate("09.4", wrong("09.4", "state carried across batches")).message
    assert "output 1" in second and "output 0:" not in second  # the first batch is right, the second is not


def test_the_sheets_comparisons_with_pytorch_and_autograd(solution_sheet):
    ns = solution_sheet
    torch.testing.assert_close(ns["got"], ns["want"], rtol=0, atol=1e-12)  # 09.2 vs nn.RNN
    torch.testing.assert_close(ns["mine_W"], ns["auto_W"], rtol=0, atol=1e-12)  # 09.3 vs autograd
    torch.testing.assert_close(ns["mine_h0"], ns["auto_h0"], rtol=0, atol=1e-12)
    assert ns["measured"] == pytest.approx([1.1, 1.1**10, 1.1**29], rel=1e-9)  # 09.5 measured for r = 1.1


def test_the_last_cell_trains_and_reproduces_nn_rnn(solution_sheet, exercise_sheet):
    for ns in (solution_sheet, exercise_sheet):
        assert ns["test_accuracy"] > 0.9 > ns["majority"]
        assert ns["layer_difference"] < 1e-5
        assert ns["count"](1, 16, 1) == sum(p.numel() for p in ns["net"].rnn.parameters()) == 304
