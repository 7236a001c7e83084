"""Questions of sheet 12_transformer: each accepts the reference and a differently written correct
answer, rejects typical wrong answers by name; the solution sheet passes, the unfilled exercise
sheet is "not attempted" and still runs to the end on the references."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from course_lib import questions
from course_lib.check import evaluate
from course_lib.questions import ch12_transformer
from question_suite import QuestionSuite

SHEET = "12_transformer"
IDS = ["12.1", "12.2", "12.3", "12.4", "12.5"]
F64 = torch.float64


# --- correct answers written differently from the reference -----------------------------
def sinusoidal_by_polar(T, E, base=10000.0):
    """Each pair as the unit complex number exp(i p w): its (imaginary, real) parts are (sin, cos)."""
    rates = torch.tensor([base ** (-2 * i / E) for i in range(E // 2)], dtype=F64)
    angles = torch.outer(torch.arange(T, dtype=F64), rates)
    pairs = torch.view_as_real(torch.polar(torch.ones_like(angles), angles))  # (T, E/2, 2): cos, sin
    return pairs.flip(-1).reshape(T, E)


def rope_by_complex(x, positions):
    """The halves as the real and imaginary parts of d/2 complex numbers, multiplied by exp(i theta)."""
    d = x.shape[-1]
    z = torch.complex(x[..., : d // 2], x[..., d // 2:])
    theta = positions.double()[:, None] / 10000.0 ** (torch.arange(d // 2, dtype=F64) * 2 / d)
    turned = z * torch.polar(torch.ones_like(theta), theta)
    return torch.cat((turned.real, turned.imag), dim=-1)


def layer_norm_backward_by_autograd(dy, x, weight, eps=1e-5):
    x, weight = x.clone().requires_grad_(), weight.clone().requires_grad_()
    bias = torch.zeros_like(weight, requires_grad=True)
    y = F.layer_norm(x, x.shape[-1:], weight, bias, eps)
    return torch.autograd.grad(y, (x, weight, bias), dy)


def block_by_torch_module(x, params, num_heads):
    E, F_ = x.shape[-1], params["linear1.weight"].shape[0]
    layer = torch.nn.TransformerEncoderLayer(E, num_heads, F_, dropout=0.0, activation="gelu", batch_first=True,
                                             norm_first=True, dtype=F64).eval()
    layer.load_state_dict(params)
    with torch.no_grad():
        return layer(x, src_mask=torch.nn.Transformer.generate_square_subsequent_mask(x.shape[1], dtype=F64))


def count_by_shapes(d_model, nhead, dim_feedforward, bias=True):
    E, F_ = d_model, dim_feedforward
    shapes = [(3 * E, E), (E, E), (F_, E), (E, F_), (E,), (E,)]
    if bias:
        shapes += [(3 * E,), (E,), (F_,), (E,), (E,), (E,)]
    return sum(math.prod(s) for s in shapes)


CORRECT = {"12.1": sinusoidal_by_polar, "12.2": rope_by_complex, "12.3": layer_norm_backward_by_autograd,
           "12.4": block_by_torch_module, "12.5": count_by_shapes}


def wrong(qid, name):
    return questions.get(qid).misconception(name).wrong


class TestQuestions(QuestionSuite):
    """Accepts the reference and CORRECT, rejects the registered misconceptions by name;
    solutions pass, exercises are not attempted."""


def test_sheet_ids_and_kinds():
    qs = questions.for_sheet(SHEET)
    assert [q.id for q in qs] == IDS
    assert {q.id: q.kind for q in qs} == {"12.1": "implement", "12.2": "implement", "12.3": "derive",
                                          "12.4": "debug", "12.5": "predict"}


def test_the_references_are_the_librarys():
    from course_lib import norm, position, transformer

    src = {q.id: q.reference.__code__.co_names for q in questions.for_sheet(SHEET) if q.id != "12.5"}
    assert "sinusoidal_encoding" in src["12.1"] and "rope" in src["12.2"]
    assert "layer_norm_backward" in src["12.3"] and "encoder_layer" in src["12.4"]
    assert position and norm and transformer


def test_the_block_listing_of_the_sheet_has_exactly_the_three_registered_bugs(solution_sheet):
    """The sheet's buggy_block is the variant with all three bugs; the reference is torch's layer."""
    q = questions.get("12.4")
    all_bugs = ch12_transformer._block_variant(view_alone=True, scaled=False, post_norm=True)
    for case in q.cases() + q.cases(hidden=True):
        torch.testing.assert_close(q.call(solution_sheet["buggy_block"], case), q.call(all_bugs, case), rtol=0, atol=1e-12)
        torch.testing.assert_close(q.call(q.reference, case), q.call(block_by_torch_module, case), rtol=0, atol=1e-12)
    assert evaluate("12.4", solution_sheet["buggy_block"]).status == "failed"


def test_the_count_reference_matches_a_built_module():
    layer = torch.nn.TransformerEncoderLayer(12, 3, 20)
    assert ch12_transformer.encoder_layer_parameter_count(12, 3, 20) == sum(p.numel() for p in layer.parameters()) == 1184
    assert ch12_transformer.encoder_layer_parameter_count(12, 3, 20, bias=False) == 4 * 144 + 2 * 240 + 24


def test_failure_messages_point_at_the_problem():
    msg = evaluate("12.2", wrong("12.2", "positions ignored: counting from 0")).message
    assert "case 2 of 6 (x (1, 4, 6): one head, positions 7..10" in msg
    assert "This looks like positions ignored: counting from 0" in msg
    msg = evaluate("12.3", wrong("12.3", "weight gradient from x instead of the normalised x")).message
    assert "output 1:" in msg  # dx is right, dweight is wrong
    msg = evaluate("12.4", wrong("12.4", "heads split with view alone")).message
    assert "This looks like heads split with view alone" in msg and "Hint 1 of 3" in msg
    msg = evaluate("12.5", lambda *a, **k: 1234.5).message
    assert "the value differs" in msg


@pytest.mark.parametrize("sheet", ["solution_sheet", "exercise_sheet"])
def test_the_measurements_run_with_the_students_or_the_reference_functions(sheet, request):
    ns = request.getfixturevalue(sheet)
    assert max(ns["same_offset"]) - min(ns["same_offset"]) < 1e-10
    assert max(ns["ln_errors"].values()) < 1e-12
    assert ns["block_error"] < 1e-12 and ns["buggy_error"] > 0.1 and ns["leak"] == 0.0
    assert ns["counts"][(512, 8, 2048)] == ns["counts"][(512, 1, 2048)] == 3152384
