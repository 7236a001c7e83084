"""Questions of sheet 11_attention: each accepts the reference and a differently written correct
answer and names its registered misconceptions; the solution sheet passes, the unfilled exercise
sheet is "not attempted" and still runs to the end on the references."""

from __future__ import annotations

import math
import warnings

import pytest
import torch
import torch.nn.functional as F
from torch.nn.attention.bias import causal_lower_right

from course_lib import attention, questions
from course_lib.check import evaluate
from course_lib.questions import ch11_attention
from question_suite import QuestionSuite

SHEET = "11_attention"
IDS = ["11.1", "11.2", "11.3", "11.4", "11.5"]
F64 = torch.float64


# --- correct answers written differently from the reference -----------------------------
def attention_by_einsum(q, k, v, mask=None):
    """Scores with einsum, the scale on the keys, masking by an additive float mask, log-softmax."""
    scores = torch.einsum("...ld,...sd->...ls", q, k * q.shape[-1] ** -0.5)
    if mask is not None:
        scores = scores + torch.zeros_like(mask, dtype=q.dtype).masked_fill(mask.logical_not(), -math.inf)
    weights = torch.log_softmax(scores, dim=-1).exp()
    return torch.einsum("...ls,...sd->...ld", weights, v), weights


def split_by_chunks(x, num_heads):
    """One chunk of the width per head, stacked on a new axis 1."""
    return torch.stack(x.chunk(num_heads, dim=-1), dim=1)


def mask_by_positions(L, S, align):
    """Compare the positions: query i at i (+ S - L when lower-right), key j at j."""
    query_pos = torch.arange(L)[:, None] + (S - L if align == "lower_right" else 0)
    return torch.arange(S)[None, :] <= query_pos


def variance_by_standard_deviation(d_k, var_q, var_k, scale):
    std = abs(scale) * math.sqrt(d_k) * math.sqrt(var_q) * math.sqrt(var_k)
    return torch.tensor(std, dtype=F64) ** 2


def self_attention_by_module(x, params, num_heads, causal):
    """nn.MultiheadAttention itself, loaded with the case's parameters."""
    E = x.shape[-1]
    mha = torch.nn.MultiheadAttention(E, num_heads, batch_first=True, dtype=x.dtype)
    mha.load_state_dict(params)
    T = x.shape[1]
    mask = torch.ones(T, T, dtype=torch.bool).triu(1) if causal else None
    with torch.no_grad():
        return mha(x, x, x, attn_mask=mask, need_weights=False)[0]


CORRECT = {"11.1": attention_by_einsum, "11.2": split_by_chunks, "11.3": mask_by_positions,
           "11.4": variance_by_standard_deviation, "11.5": self_attention_by_module}


def wrong(qid, name):
    return questions.get(qid).misconception(name).wrong


class TestQuestions(QuestionSuite):
    """Accepts the reference and CORRECT, rejects the registered misconceptions by name;
    solutions pass, exercises are not attempted."""


def test_sheet_ids_kinds_and_references():
    qs = questions.for_sheet(SHEET)
    assert [q.id for q in qs] == IDS
    assert {q.id: q.kind for q in qs} == {"11.1": "implement", "11.2": "implement", "11.3": "implement",
                                          "11.4": "derive", "11.5": "debug"}
    assert questions.get("11.1").reference is attention.scaled_dot_product_attention
    assert questions.get("11.2").reference is attention.split_heads
    assert questions.get("11.3").reference is attention.causal_mask


def _cases(qid):
    q = questions.get(qid)
    return q, q.cases() + q.cases(hidden=True)


def test_attention_cases_agree_with_torch():
    """The reference equals F.scaled_dot_product_attention (same mask polarity) on every case, and
    no case has a query that may attend to no key (in either polarity where the case says so)."""
    q, cases = _cases("11.1")
    for case in cases:
        qq, k, v, mask = case.args
        out, weights = q.reference(*case.args)
        torch.testing.assert_close(out, F.scaled_dot_product_attention(qq, k, v, attn_mask=mask), rtol=0, atol=1e-12)
        torch.testing.assert_close(weights.sum(-1), torch.ones_like(weights.sum(-1)), rtol=0, atol=1e-12)
        if mask is not None:
            assert mask.any(-1).all(), case.label


def test_split_cases_agree_with_the_module_layout():
    """Head j of the reference is the j-th row block of nn.MultiheadAttention's projections."""
    q, cases = _cases("11.2")
    for case in cases:
        x, h = case.args
        d = x.shape[-1] // h
        y = q.reference(x, h)
        assert y.shape == (x.shape[0], h, x.shape[1], d)
        for j in range(h):
            torch.testing.assert_close(y[:, j], x[..., j * d:(j + 1) * d], rtol=0, atol=0)


def test_mask_cases_agree_with_torch():
    """lower_right is torch's causal_lower_right; top_left is what is_causal=True computes."""
    q, cases = _cases("11.3")
    for case in cases:
        L, S, align = case.args
        got = q.reference(L, S, align)
        assert got.dtype == torch.bool and got.shape == (L, S)
        if align == "lower_right":
            with warnings.catch_warnings():  # "will produce NaNs when seq_len_q > seq_len_kv": the empty rows
                warnings.simplefilter("ignore", UserWarning)
                want = causal_lower_right(L, S)._materialize()
        else:
            want = torch.ones(L, S, dtype=torch.bool).tril()
            qq, k, v = (torch.randn(1, n, 3, dtype=F64) for n in (L, S, S))
            torch.testing.assert_close(F.scaled_dot_product_attention(qq, k, v, attn_mask=got),
                                       F.scaled_dot_product_attention(qq, k, v, is_causal=True), rtol=0, atol=1e-12)
        assert torch.equal(got, want), case.label


def test_the_derived_variance_matches_sampling():
    gen = torch.Generator().manual_seed(0)
    for d_k, var_q, var_k, scale in ((64, 1.0, 1.0, 1.0), (64, 1.0, 1.0, 0.125), (16, 2.0, 0.5, 0.3)):
        qs = torch.randn(20000, d_k, generator=gen, dtype=F64) * math.sqrt(var_q)
        ks = torch.randn(20000, d_k, generator=gen, dtype=F64) * math.sqrt(var_k)
        measured = float((scale * (qs * ks).sum(-1)).var())
        assert measured == pytest.approx(ch11_attention.score_variance(d_k, var_q, var_k, scale), rel=0.05)


def test_self_attention_cases_agree_with_the_module():
    q, cases = _cases("11.5")
    for case in cases:
        args = ch11_attention.self_attention_args(case)
        torch.testing.assert_close(q.reference(*args), self_attention_by_module(*args), rtol=0, atol=1e-12)


def test_each_bug_of_the_listing_changes_the_result():
    """Every bug alone is visible on the public cases it can affect (not a rounding difference)."""
    q = questions.get("11.5")
    for name in ("heads split with view alone", "the inverted mask", "scores scaled twice"):
        args = [ch11_attention.self_attention_args(c) for c in q.cases()]
        gaps = [float((q.reference(*a) - wrong("11.5", name)(*a)).abs().max()) for a in args]
        assert max(gaps) > 0.05, (name, gaps)


def test_failure_messages_point_at_the_problem():
    msg = evaluate("11.1", wrong("11.1", "the inverted mask")).message
    assert "This looks like the inverted mask" in msg and "case 2 of 6" in msg
    msg = evaluate("11.3", wrong("11.3", "top-left where lower-right is asked")).message
    assert "case 3 of 8 (2 new queries, 5 keys" in msg and "This looks like top-left where lower-right is asked" in msg
    msg = evaluate("11.2", wrong("11.2", "sequence and head axes not swapped")).message
    assert "expected (2, 2, 3, 4) float64, got (2, 3, 2, 4) float64" in msg
    msg = evaluate("11.4", lambda *a: 1234.5).message
    assert "the value differs" in msg


@pytest.mark.parametrize("sheet", ["solution_sheet", "exercise_sheet"])
def test_the_last_cells_run_with_the_students_or_the_reference_functions(sheet, request):
    ns = request.getfixturevalue(sheet)
    assert max(ns["errors"].values()) < 1e-12 and ns["sdpa_error"] < 1e-12
    assert ns["trap_gap"] > 0.1  # the triu mask given to SDPA: silently wrong
    assert ns["compare_with_module"](ns["buggy_self_attention"]) > 0.05
    for d_k, (unscaled, scaled) in ns["collapse"].items():
        assert unscaled > scaled
    assert ns["collapse"][512][0] > 0.9 and ns["collapse"][512][1] < 0.5
