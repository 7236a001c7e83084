"""Questions of sheet 13_gpt: each accepts the reference and a differently written correct
answer, rejects typical wrong answers by name; the solution sheet passes, the unfilled exercise
sheet is "not attempted" and still runs to the end on the references."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from course_lib import gpt, questions
from course_lib.check import evaluate
from course_lib.questions import ch13_gpt
from question_suite import QuestionSuite

SHEET = "13_gpt"
IDS = ["13.1", "13.2", "13.3", "13.4", "13.5"]
F64 = torch.float64


# --- correct answers written differently from the reference -----------------------------
def top_k_by_sorting(logits, k):
    """The k-th value from a full descending sort; torch.where with the comparison reversed."""
    threshold = logits.sort(dim=-1, descending=True).values[..., k - 1: k]
    return torch.where(logits < threshold, torch.tensor(-math.inf, dtype=logits.dtype), logits)


def top_p_from_the_tail(logits, p):
    """Hugging Face's formulation: sort ascending, drop the tail whose total is at most 1 - p."""
    values, order = logits.sort(dim=-1)
    tail = values.softmax(dim=-1).cumsum(dim=-1)  # mass of each token and of those below it
    drop_sorted = tail <= 1 - p
    drop = drop_sorted.gather(-1, order.argsort(dim=-1))
    return logits.masked_fill(drop, -math.inf)


def attend_with_torch_sdpa(q, k, v, cache=None):
    """torch's own SDPA with a boolean lower-right mask built from position indices."""
    if cache is not None:
        k, v = torch.cat([cache[0], k], dim=2), torch.cat([cache[1], v], dim=2)
    T, S = q.shape[2], k.shape[2]
    query_pos = torch.arange(S - T, S).unsqueeze(1)  # absolute positions of the new queries
    allowed = torch.arange(S).unsqueeze(0) <= query_pos  # (T, S), True = takes part
    return F.scaled_dot_product_attention(q, k, v, attn_mask=allowed), (k, v)


def cache_bytes_per_head(num_layers, batch, length, embed_dim, num_heads, bytes_per_value):
    """A sum over layers, the two tensors and the heads of B * T * d values each."""
    d = embed_dim // num_heads
    return sum(batch * length * d * bytes_per_value for _ in range(num_layers) for _ in "kv" for _ in range(num_heads))


def decode_prompt_token_by_token(model, ids, n):
    """Feeds even the prompt one token at a time through the cache, then decodes."""
    cache, chosen, step_logits = None, [], []
    with torch.no_grad():
        for t in range(ids.shape[1]):
            logits, cache = model(ids[:, t: t + 1], kv_cache=cache, start_pos=t)
        for _ in range(n):
            last = logits[:, -1]
            token = last.argmax(dim=-1, keepdim=True)
            chosen.append(token)
            step_logits.append(last)
            if len(chosen) < n:
                logits, cache = model(token, kv_cache=cache)
    return torch.cat(chosen, dim=1), torch.stack(step_logits, dim=1)


CORRECT = {"13.1": top_k_by_sorting, "13.2": top_p_from_the_tail, "13.3": attend_with_torch_sdpa,
           "13.4": cache_bytes_per_head, "13.5": decode_prompt_token_by_token}


def wrong(qid, name):
    return questions.get(qid).misconception(name).wrong


class TestQuestions(QuestionSuite):
    """Accepts the reference and CORRECT, rejects the registered misconceptions by name;
    solutions pass, exercises are not attempted."""


def test_sheet_ids_and_kinds():
    qs = questions.for_sheet(SHEET)
    assert [q.id for q in qs] == IDS
    assert {q.id: q.kind for q in qs} == {"13.1": "implement", "13.2": "implement", "13.3": "implement",
                                          "13.4": "predict", "13.5": "debug"}


def test_the_filter_references_are_the_librarys():
    z = torch.log(torch.tensor([[0.5, 0.3, 0.2], [0.1, 0.6, 0.3]], dtype=F64))
    for qid, fn, arg in (("13.1", gpt.top_k_filter, 2), ("13.2", gpt.top_p_filter, 0.6)):
        torch.testing.assert_close(questions.get(qid).reference(z, arg), fn(z, arg), rtol=0, atol=0)
    kept = torch.isfinite(ch13_gpt.top_p_reference(z, 0.6))  # 0.5 < 0.6 <= 0.8: the crossing token is kept
    assert kept.tolist() == [[True, True, False], [False, True, False]]
    assert torch.isfinite(ch13_gpt.top_p_reference(z, 0.4)).sum(-1).tolist() == [1, 1]  # never empty
    assert torch.isinf(wrong("13.2", "top-p that drops the token crossing the threshold")(z, 0.4)).all()


def test_the_cache_step_matches_torch_and_the_library_block():
    """On every case the reference equals torch's SDPA with a lower-right causal mask; the
    top-left mask differs visibly whenever something is cached and more than one key exists."""
    q = questions.get("13.3")
    for case in q.cases() + q.cases(hidden=True):
        out, (K, V) = q.reference(*case.args)
        want, _ = attend_with_torch_sdpa(*case.args)
        torch.testing.assert_close(out, want, rtol=0, atol=1e-12)
        cache = case.args[3]
        assert K.shape[2] == case.args[1].shape[2] + (0 if cache is None else cache[0].shape[2])
        if cache is not None and K.shape[2] > 1:
            gap = (wrong("13.3", "the causal mask aligned top-left with a cache")(*case.args)[0] - out).abs().max()
            assert gap > 1e-3, case.label


@pytest.mark.parametrize("L, B, T, E, h, dtype", [(2, 1, 7, 8, 2, torch.float32), (1, 3, 1, 4, 1, F64),
                                                   (3, 2, 5, 12, 3, torch.float16)])
def test_the_predicted_cache_size_is_what_the_gpt_stores(L, B, T, E, h, dtype):
    torch.manual_seed(0)
    model = gpt.GPT(vocab_size=9, context=8, embed_dim=E, num_heads=h, num_layers=L).to(dtype).eval()
    with torch.no_grad():
        _, cache = model(torch.randint(0, 9, (B, T)))
    weighed = sum(k.nbytes + v.nbytes for k, v in cache)
    assert ch13_gpt.kv_cache_bytes(L, B, T, E, h, torch.finfo(dtype).bits // 8) == weighed
    with pytest.raises(ValueError, match="kv_cache_bytes: embed_dim should be divisible by num_heads, got 10 and 3"):
        ch13_gpt.kv_cache_bytes(1, 1, 1, 10, 3, 4)


def test_the_decoding_reference_is_the_librarys_greedy_generate():
    q = questions.get("13.5")
    for case in q.cases():
        model, (ids, n) = ch13_gpt.decode_model(case), case.args[6:]
        tokens, _ = q.reference(model, ids, n)
        for use_cache in (True, False):
            assert torch.equal(gpt.generate(model, ids, n, temperature=0, use_cache=use_cache)[:, ids.shape[1]:], tokens)


def test_failure_messages_point_at_the_problem():
    msg = evaluate("13.2", wrong("13.2", "top-p that drops the token crossing the threshold")).message
    assert "case 1 of 5" in msg and "This looks like top-p that drops the token crossing the threshold" in msg
    msg = evaluate("13.3", wrong("13.3", "the causal mask aligned top-left with a cache")).message
    assert "case 1 of 5 (one decoding step" in msg and "output 0:" in msg
    msg = evaluate("13.4", lambda *a: 1234.5).message
    assert "the value differs" in msg
    msg = evaluate("13.5", wrong("13.5", "the returned cache thrown away")).message
    assert "case 1 of 4" in msg and "This looks like the returned cache thrown away" in msg


def test_the_sheets_buggy_listing_is_the_registered_one(solution_sheet):
    res = evaluate("13.5", solution_sheet["buggy_greedy_decode"])
    assert res.misconception == "both planted bugs left in", res.message


@pytest.mark.parametrize("sheet", ["solution_sheet", "exercise_sheet"])
def test_the_last_cells_run_with_the_students_or_the_reference_functions(sheet, request):
    ns = request.getfixturevalue(sheet)
    assert ns["cache_error"] < 1e-12
    assert ns["weighed"] == ns["predict_bytes"](3, 2, 20, 32, 4, 4) == 30720
    assert ns["same_tokens"] is True
    peaked, flat = ns["nucleus_sizes"]["peaked"], ns["nucleus_sizes"]["flat"]
    assert all(peaked[p] < flat[p] for p in peaked) and list(flat.values()) == sorted(flat.values())
