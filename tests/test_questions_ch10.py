"""Questions of sheet 10_gates: each accepts the reference and a differently written correct
answer, rejects typical wrong answers by name; the solution sheet passes, the unfilled exercise
sheet is "not attempted" and still runs to the end on the references."""

from __future__ import annotations

import math

import pytest
import torch

from course_lib import questions, text
from course_lib.check import evaluate
from course_lib.questions import ch10_gates
from question_suite import QuestionSuite

SHEET = "10_gates"
IDS = ["10.1", "10.2", "10.3", "10.4", "10.5"]
F64 = torch.float64


# --- correct answers written differently from the reference -----------------------------
def lstm_by_weight_blocks(x, h, c, W_ih, W_hh, b_ih=None, b_hh=None):
    """One matmul per gate with the weights' row blocks, biases as zeros when absent."""
    H = h.shape[1]
    b = torch.zeros(4 * H, dtype=x.dtype) if b_ih is None else b_ih + b_hh
    pre = [x @ W_ih[k * H:(k + 1) * H].T + h @ W_hh[k * H:(k + 1) * H].T + b[k * H:(k + 1) * H] for k in range(4)]
    i, f, o = (1 / (1 + torch.exp(-pre[k])) for k in (0, 1, 3))
    g = 2 / (1 + torch.exp(-2 * pre[2])) - 1  # tanh written with the logistic function
    c_new = torch.addcmul(f * c, i, g)
    return o * torch.tanh(c_new), c_new


def gru_by_weight_blocks(x, h, W_ih, W_hh, b_ih=None, b_hh=None):
    """PyTorch's GRU with the weights split first, the mix written as a lerp."""
    W_ir, W_iz, W_in = W_ih.split(h.shape[1])
    W_hr, W_hz, W_hn = W_hh.split(h.shape[1])
    zero = torch.zeros(3 * h.shape[1], dtype=x.dtype)
    b_ir, b_iz, b_in = (zero if b_ih is None else b_ih).split(h.shape[1])
    b_hr, b_hz, b_hn = (zero if b_hh is None else b_hh).split(h.shape[1])
    r = torch.sigmoid(torch.addmm(b_ir, x, W_ir.T) + torch.addmm(b_hr, h, W_hr.T))
    z = torch.sigmoid(torch.addmm(b_iz, x, W_iz.T) + torch.addmm(b_hz, h, W_hz.T))
    n = torch.tanh(torch.addmm(b_in, x, W_in.T) + r * torch.addmm(b_hn, h, W_hn.T))
    return torch.lerp(n, h, z)


def count_closed_form(cell, input_size, hidden_size, num_layers=1, bidirectional=False):
    """G H (I + H + 2) per direction for the first layer, G H (D H + H + 2) for each later one."""
    G, H, D = {"rnn": 1, "gru": 3, "lstm": 4}[cell], hidden_size, 1 + int(bidirectional)
    return D * G * H * (input_size + H + 2) + (num_layers - 1) * D * G * H * (D * H + H + 2)


def temperature_log_softmax(logits, temperature):
    return torch.log_softmax(logits / temperature, dim=-1).exp()


def forget_bias_by_secant():
    """dc_T/dc_0 by a central finite difference through nn.LSTMCell, its root by the secant method."""
    cell = torch.nn.LSTMCell(1, 1, dtype=F64)
    params = {k.removesuffix("_l0"): v for k, v in ch10_gates.forget_params(0.0).items()}
    x = torch.sin(torch.arange(50, dtype=F64))

    def c_last(b, c0):
        with torch.no_grad():
            for name, value in params.items():
                getattr(cell, name).copy_(value)
            cell.bias_ih[1] = cell.bias_hh[1] = b
            h, c = torch.zeros(1, 1, dtype=F64), torch.full((1, 1), c0, dtype=F64)
            for x_t in x:
                h, c = cell(x_t.view(1, 1), (h, c))
        return float(c)

    def excess(b):
        return (c_last(b, 1e-6) - c_last(b, -1e-6)) / 2e-6 - 0.5

    a, b = 2.0, 3.0
    for _ in range(30):
        fa, fb = excess(a), excess(b)
        if abs(fb) < 1e-9 or fb == fa:
            break
        a, b = b, b - fb * (b - a) / (fb - fa)
    return b


CORRECT = {"10.1": lstm_by_weight_blocks, "10.2": gru_by_weight_blocks, "10.3": count_closed_form,
           "10.4": temperature_log_softmax, "10.5": forget_bias_by_secant}


def wrong(qid, name):
    return questions.get(qid).misconception(name).wrong


class TestQuestions(QuestionSuite):
    """Accepts the reference and CORRECT, rejects the registered misconceptions by name;
    solutions pass, exercises are not attempted."""


def test_sheet_ids_and_kinds():
    qs = questions.for_sheet(SHEET)
    assert [q.id for q in qs] == IDS
    assert {q.id: q.kind for q in qs} == {"10.1": "implement", "10.2": "implement", "10.3": "predict",
                                          "10.4": "implement", "10.5": "investigate"}


@pytest.mark.parametrize("qid, torch_cell", [("10.1", torch.nn.LSTMCell), ("10.2", torch.nn.GRUCell)])
def test_the_cases_are_in_torchs_convention(qid, torch_cell):
    """The reference agrees with torch's own cell on every public and hidden case."""
    q = questions.get(qid)
    for case in q.cases() + q.cases(hidden=True):
        x, h, *rest = case.args
        W_ih, W_hh, b_ih, b_hh = rest[-4:]
        cell = torch_cell(x.shape[1], h.shape[1], bias=b_ih is not None, dtype=F64)
        with torch.no_grad():
            cell.weight_ih.copy_(W_ih)
            cell.weight_hh.copy_(W_hh)
            if b_ih is not None:
                cell.bias_ih.copy_(b_ih)
                cell.bias_hh.copy_(b_hh)
            want = cell(x, (h, rest[0])) if qid == "10.1" else cell(x, h)
        got = q.reference(*case.args)
        for g, w in zip(got if qid == "10.1" else (got,), want if qid == "10.1" else (want,)):
            torch.testing.assert_close(g, w, rtol=0, atol=1e-12)


def test_the_reset_placements_differ_visibly():
    """Cho's placement is a different function on every public case, not a rounding difference."""
    q = questions.get("10.2")
    for case in q.cases():
        gap = (q.reference(*case.args) - wrong("10.2", "Cho's reset placement (the paper's GRU)")(*case.args)).abs().max()
        assert gap > 1e-3, case.label


def test_parameter_count_reference_matches_built_modules():
    for cell, module in (("rnn", torch.nn.RNN), ("gru", torch.nn.GRU), ("lstm", torch.nn.LSTM)):
        m = module(7, 5, num_layers=3, bidirectional=True)
        assert ch10_gates.parameter_count(cell, 7, 5, 3, True) == sum(p.numel() for p in m.parameters())
    with pytest.raises(ValueError, match="parameter_count: cell should be one of"):
        ch10_gates.parameter_count("transformer", 1, 1)


def test_temperature_probs_validates_and_limits():
    """The reference of 10.4 is the shared course_lib.text.temperature_probs (chapters 09 and 10)."""
    assert questions.get("10.4").reference is text.temperature_probs
    z = torch.tensor([[3.0, 1.0, -2.0]], dtype=F64)
    with pytest.raises(ValueError, match="temperature_probs: temperature should be a finite number > 0, got 0"):
        text.temperature_probs(z, 0)
    with pytest.raises(TypeError, match="temperature_probs: logits should be a floating-point tensor"):
        text.temperature_probs(torch.tensor([1, 2]), 1.0)
    torch.testing.assert_close(text.temperature_probs(z, 1e-3), torch.tensor([[1.0, 0.0, 0.0]], dtype=F64))
    torch.testing.assert_close(text.temperature_probs(z, 1e6), torch.full((1, 3), 1 / 3, dtype=F64), rtol=0, atol=1e-5)
    assert text.temperature_probs(z.float(), 0.5).dtype == torch.float32


def test_the_measured_gradient_rises_with_the_bias_and_crosses_half_once():
    grid = torch.linspace(-5, 15, 41).tolist()
    values = [ch10_gates.cell_gradient(b) for b in grid]
    assert all(a < b for a, b in zip(values, values[1:]))
    assert values[0] < 0.5 < values[-1]
    b = ch10_gates.forget_bias_reference()
    assert ch10_gates.cell_gradient(b) == pytest.approx(0.5, abs=1e-6)
    assert 2.3 < b < 2.6  # measured 2.456; constant gates would say 2.136, one bias alone 4.41
    assert abs(ch10_gates._forget_constant_gate() / b - 1) > 0.1
    assert abs(ch10_gates._forget_one_bias() / b - 1) > 0.5


def test_failure_messages_point_at_the_problem():
    msg = evaluate("10.4", wrong("10.4", "exp without subtracting the maximum")).message
    assert "case 4 of 6" in msg and "NaN" in msg and "This looks like exp without subtracting the maximum" in msg
    msg = evaluate("10.2", wrong("10.2", "Cho's reset placement (the paper's GRU)")).message
    assert "case 1 of 5 (B=3, I=2, H=4" in msg and "This looks like Cho's reset placement" in msg
    msg = evaluate("10.1", wrong("10.1", "h = o * c without tanh")).message
    assert "output 0:" in msg  # h is wrong, c is right
    msg = evaluate("10.3", lambda *a, **k: 1234.5).message
    assert "the value differs" in msg


def test_the_sheets_lstm_and_inputs_are_the_registered_ones(solution_sheet):
    params = solution_sheet["PARAMS"]
    assert sorted(params) == sorted(ch10_gates.FORGET_PARAMS)
    for name, value in ch10_gates.FORGET_PARAMS.items():
        torch.testing.assert_close(params[name], torch.tensor(value, dtype=F64), rtol=0, atol=0)
    torch.testing.assert_close(solution_sheet["x_seq"], ch10_gates.forget_inputs(), rtol=0, atol=0)


@pytest.mark.parametrize("sheet", ["solution_sheet", "exercise_sheet"])
def test_the_last_cell_runs_layers_with_the_students_or_the_reference_cells(sheet, request):
    ns = request.getfixturevalue(sheet)
    assert set(ns["errors"]) == {"lstm", "gru"} and max(ns["errors"].values()) < 1e-12
    entropies = [ns["entropies"][T] for T in sorted(ns["entropies"])]
    assert all(a < b for a, b in zip(entropies, entropies[1:])) and entropies[-1] < math.log(8)
    assert ns["b_half"] == pytest.approx(ch10_gates.forget_bias_reference(), rel=0.01)
