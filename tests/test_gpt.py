"""course_lib.gpt: the GPT against a PyTorch reference built from nn.TransformerEncoderLayer
(forward and backward, float64), the KV cache, the decoding filters and generation."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from course_lib import attention, gpt, text


def _reference_logits(model: gpt.GPT, ids: torch.Tensor) -> torch.Tensor:
    """The same network from PyTorch modules: nn.TransformerEncoderLayer (pre-norm, exact GELU,
    dropout 0, causal mask), nn.LayerNorm, F.linear, with the model's own tensors."""
    E, h = model.embed_dim, model.num_heads
    T = ids.shape[1]
    x = model.tok_emb.weight[ids] + model.pos_emb.weight[:T]
    mask = torch.nn.Transformer.generate_square_subsequent_mask(T, dtype=x.dtype)
    for block in model.blocks:
        layer = torch.nn.TransformerEncoderLayer(E, h, dim_feedforward=block.fc1.out_features, dropout=0.0,
                                                 activation="gelu", batch_first=True, norm_first=True,
                                                 dtype=x.dtype)
        # the block's own parameters replace the layer's (so gradients flow to them)
        for name, tensor in (("self_attn.in_proj_weight", block.qkv.weight), ("self_attn.in_proj_bias", block.qkv.bias),
                             ("self_attn.out_proj.weight", block.proj.weight), ("self_attn.out_proj.bias", block.proj.bias),
                             ("linear1.weight", block.fc1.weight), ("linear1.bias", block.fc1.bias),
                             ("linear2.weight", block.fc2.weight), ("linear2.bias", block.fc2.bias),
                             ("norm1.weight", block.ln1.weight), ("norm1.bias", block.ln1.bias),
                             ("norm2.weight", block.ln2.weight), ("norm2.bias", block.ln2.bias)):
            owner, attr = layer, name
            while "." in attr:
                head, attr = attr.split(".", 1)
                owner = getattr(owner, head)
            delattr(owner, attr)
            setattr(owner, attr, tensor)
        x = layer(x, src_mask=mask, is_causal=True)
    x = F.layer_norm(x, (E,), model.ln_f.weight, model.ln_f.bias, 1e-5)
    return F.linear(x, model.head.weight)


def _model(V=7, C=6, E=8, h=2, L=2, seed=0) -> gpt.GPT:
    torch.manual_seed(seed)
    m = gpt.GPT(V, C, E, h, L).double()
    with torch.no_grad():  # non-trivial norms and biases
        for name, p in m.named_parameters():
            if "ln" in name or "bias" in name:
                p.add_(0.3 * torch.randn_like(p))
            else:
                p.mul_(20)
    return m.eval()


@settings(max_examples=12)
@given(B=st.integers(1, 3), T=st.integers(1, 5), heads_dim=st.sampled_from([(1, 1), (1, 3), (2, 2), (3, 1)]),
       L=st.integers(1, 2), V=st.integers(1, 5), seed=st.integers(0, 10))
def test_gpt_equals_torch_forward_backward(B, T, heads_dim, L, V, seed):
    h, d = heads_dim
    m = _model(V=V, C=5, E=h * d, h=h, L=L, seed=seed)
    ids = torch.randint(0, V, (B, T), generator=torch.Generator().manual_seed(seed))
    ours, cache = m(ids)
    ref = _reference_logits(m, ids)
    assert ours.shape == (B, T, V) and len(cache) == L and cache[0][0].shape == (B, h, T, d)
    torch.testing.assert_close(ours, ref, atol=1e-10, rtol=0)
    w = torch.randn(ours.shape, dtype=torch.float64)
    params = list(m.parameters())
    g_ours = torch.autograd.grad((ours * w).sum(), params, allow_unused=True)
    g_ref = torch.autograd.grad((ref * w).sum(), params, allow_unused=True)
    for (name, _), a, b in zip(m.named_parameters(), g_ours, g_ref):
        if a is None or b is None:
            assert a is None and b is None or name.startswith("pos_emb"), name
            continue
        torch.testing.assert_close(a, b, atol=1e-10, rtol=0, msg=name)


@pytest.mark.parametrize("prefix", [1, 3, 5])
def test_cached_forward_equals_full_forward(prefix):
    m = _model(C=8)
    ids = torch.randint(0, 7, (2, 8), generator=torch.Generator().manual_seed(1))
    full, _ = m(ids)
    logits, cache = m(ids[:, :prefix])
    parts = [logits]
    for t in range(prefix, 8):
        step, cache = m(ids[:, t:t + 1], cache)
        parts.append(step)
    torch.testing.assert_close(torch.cat(parts, dim=1), full, atol=1e-10, rtol=0)
    # several new tokens at once through the cache (lower-right mask inside the chunk)
    _, cache = m(ids[:, :prefix])
    chunk, _ = m(ids[:, prefix:], cache)
    torch.testing.assert_close(chunk, full[:, prefix:], atol=1e-10, rtol=0)


@pytest.mark.parametrize("kwargs", [dict(temperature=0), dict(temperature=1.0), dict(temperature=0.7, top_k=3),
                                    dict(temperature=1.3, top_p=0.8)])
def test_generate_cached_equals_uncached(kwargs):
    m = _model(C=6)
    prompt = torch.tensor([[1, 2], [3, 4]])
    n = 9  # runs past the context of 6
    a = gpt.generate(m, prompt, n, use_cache=True, generator=torch.Generator().manual_seed(0), **kwargs)
    b = gpt.generate(m, prompt, n, use_cache=False, generator=torch.Generator().manual_seed(0), **kwargs)
    assert a.shape == (2, 2 + n) and a.dtype == torch.long
    assert torch.equal(a, b)
    assert torch.equal(a[:, :2], prompt)


def test_generate_unbatched_greedy_is_argmax():
    m = _model(C=6)
    out = gpt.generate(m, torch.tensor([1, 2]), 3, temperature=0)
    assert out.shape == (5,)
    logits, _ = m(out[None, :-1])
    assert torch.equal(out[2:], logits[0, 1:].argmax(-1))


def test_decoding_pitfall_is_causal_top_left():
    """One query against S keys: torch's is_causal=True lets it see key 0 only (top-left); the
    lower-right mask gives the last row of the full causal attention."""
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(1, 2, 5, 4, generator=g, dtype=torch.float64) for _ in range(3))
    full = F.scaled_dot_product_attention(q, k, v, is_causal=True)[:, :, -1:]
    wrong = F.scaled_dot_product_attention(q[:, :, -1:], k, v, is_causal=True)
    torch.testing.assert_close(wrong, v[:, :, :1])  # only the first key/value
    right = F.scaled_dot_product_attention(q[:, :, -1:], k, v, attn_mask=attention.causal_mask(1, 5))
    torch.testing.assert_close(right, full, atol=1e-12, rtol=0)
    assert (wrong - full).abs().max() > 0.1


# --- filters -------------------------------------------------------------------------------
def _top_p_reference(row: list, p: float) -> set:
    probs = torch.softmax(torch.tensor(row, dtype=torch.float64), 0).tolist()
    order = sorted(range(len(row)), key=lambda i: -probs[i])
    kept, total = set(), 0.0
    for i in order:
        kept.add(i)
        total += probs[i]
        if total >= p - 1e-12:
            break
    return kept


@given(V=st.integers(1, 8), k=st.integers(1, 9), seed=st.integers(0, 1000))
def test_top_k_filter(V, k, seed):
    logits = torch.randn(3, V, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    out = gpt.top_k_filter(logits, k)
    kept = torch.isfinite(out)
    assert torch.equal(kept.sum(-1), torch.full((3,), min(k, V)))
    assert torch.equal(out[kept], logits[kept])
    top = torch.topk(logits, min(k, V), dim=-1).indices
    assert kept.gather(-1, top).all()


def test_top_k_keeps_ties():
    out = gpt.top_k_filter(torch.tensor([1.0, 3.0, 3.0, 0.0]), 1)
    assert torch.isfinite(out).tolist() == [False, True, True, False]


@given(V=st.integers(1, 8), p=st.floats(0.01, 1.0), seed=st.integers(0, 1000))
def test_top_p_filter_matches_definition(V, p, seed):
    logits = 2 * torch.randn(V, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    out = gpt.top_p_filter(logits, p)
    kept = {i for i in range(V) if math.isfinite(out[i])}
    assert kept == _top_p_reference(logits.tolist(), p)
    assert torch.equal(out[list(kept)], logits[list(kept)])


def test_top_p_keeps_the_token_that_crosses_p():
    logits = torch.log(torch.tensor([0.5, 0.3, 0.15, 0.05]))
    assert torch.isfinite(gpt.top_p_filter(logits, 0.6)).tolist() == [True, True, False, False]
    assert torch.isfinite(gpt.top_p_filter(logits, 0.5)).tolist() == [True, False, False, False]
    assert torch.isfinite(gpt.top_p_filter(logits, 0.01)).tolist() == [True, False, False, False]
    assert torch.isfinite(gpt.top_p_filter(logits, 1.0)).all()
    batched = gpt.top_p_filter(torch.stack([logits, logits.flip(0)]), 0.6)
    assert torch.isfinite(batched).tolist() == [[True, True, False, False], [False, False, True, True]]


def test_next_token_probs():
    logits = torch.tensor([[1.0, 2.0, 2.0, -1.0]], dtype=torch.float64)
    assert gpt.next_token_probs(logits, 0).tolist() == [[0.0, 1.0, 0.0, 0.0]]
    torch.testing.assert_close(gpt.next_token_probs(logits, 2.0), torch.softmax(logits / 2, -1))
    p = gpt.next_token_probs(logits, 1.0, top_k=2)
    torch.testing.assert_close(p, torch.tensor([[0.0, 0.5, 0.5, 0.0]], dtype=torch.float64))
    p = gpt.next_token_probs(logits, 1.0, top_p=0.3)
    assert p[0, 1] == 1.0


@pytest.mark.parametrize("call, message", [
    (lambda: gpt.top_k_filter(torch.zeros(3), 0), "top_k_filter: k should be an int >= 1, got 0"),
    (lambda: gpt.top_k_filter(torch.zeros(3, dtype=torch.long), 1), "top_k_filter: logits should be a floating"),
    (lambda: gpt.top_k_filter(torch.tensor([0.0, math.nan]), 1), "top_k_filter: logits should not contain NaN"),
    (lambda: gpt.top_p_filter(torch.zeros(3), 0.0), "top_p_filter: p should be a number in (0, 1], got 0.0"),
    (lambda: gpt.top_p_filter(torch.tensor([0.0, math.inf]), 0.5), "top_p_filter: logits should not contain +inf"),
    (lambda: gpt.next_token_probs(torch.zeros(3), -1.0), "next_token_probs: temperature should be a finite"),
    (lambda: gpt.GPT(5, 0), "GPT: context should be an int >= 1, got 0"),
    (lambda: _model(C=4)(torch.zeros(1, 5, dtype=torch.long)), "GPT.forward: start_pos + T should be <= context = 4"),
    (lambda: _model()(torch.zeros(1, 2)), "GPT.forward: ids should be an integer tensor"),
    (lambda: _model(V=7)(torch.tensor([[7]])), "GPT.forward: ids should lie in 0..6, got values in 7..7"),
    (lambda: gpt.generate(_model(), torch.zeros(0, dtype=torch.long), 2), "generate: ids should have shape"),
    (lambda: gpt.generate(_model(), torch.zeros(2, dtype=torch.long), -1), "generate: n should be an int >= 0"),
])
def test_errors(call, message):
    with pytest.raises((ValueError, TypeError, KeyError)) as info:
        call()
    assert message in str(info.value)


def test_start_pos_must_follow_the_cache():
    m = _model(C=6)
    _, cache = m(torch.tensor([[1, 2]]))
    with pytest.raises(ValueError, match="start_pos should equal the cached length 2"):
        m(torch.tensor([[3]]), cache, start_pos=0)
    logits, _ = m(torch.tensor([[3]]), start_pos=2)  # without a cache: position 2, no context
    assert logits.shape == (1, 1, 7)


def test_float32_and_integer_ids_dtypes():
    m = gpt.GPT(5, 4, 8, 2, 1)
    for dtype in (torch.int32, torch.uint8, torch.int64):
        logits, _ = m(torch.tensor([[1, 2]], dtype=dtype))
        assert logits.dtype == torch.float32


def test_train_gpt_short_run():
    torch.manual_seed(0)
    ids = torch.arange(400) % 5  # a periodic text: easy to learn
    m = gpt.GPT(5, 8, 16, 2, 1)
    h = gpt.train_gpt(m, ids[:300], ids[300:], steps=30, batch=8, context=8, lr=1e-2, seed=0, progress=False)
    assert set(h) == {"train_loss", "val_steps", "val_loss", "seconds"}
    assert len(h["train_loss"]) == 30 and h["val_steps"][-1] == 30
    assert h["val_loss"][-1] < 0.5 * math.log(5)
    with pytest.raises(ValueError, match="train_gpt: context should be <= the model's context 8, got 9"):
        gpt.train_gpt(m, ids, ids, steps=1, batch=1, context=9, lr=1e-3, progress=False)
    # the loss is the one of course_lib.text.evaluate_nats (comparable with chapter 10)
    assert h["val_loss"][-1] == pytest.approx(text.evaluate_nats(m, ids[300:], 8, max_chars=100))


def test_sampling_explorer():
    from course_lib.widgets.sampling import SamplingExplorer

    vocab = text.CharVocab(list("abcdefg"))
    m = _model(V=7, C=6).float()
    ex = SamplingExplorer(m, vocab.encode, vocab.decode, prompts=("ab", "gfe"), n=5, shown=7)
    assert "OK" in ex.self_check()
    ex.set_state(temperature=1.0, top_k=3, top_p=1.0)
    heights = [b.get_height() for b in ex.bars]
    assert sum(h > 0 for h in heights) == 3 and abs(sum(heights) - 1) < 1e-6
    ex.set_state(top_k=0, temperature=0.0)
    assert [b.get_height() for b in ex.bars][0] == 1.0  # greedy: all mass on the most likely token
    # the batched, precomputed continuations: greedy equals generate(); filtered rows draw allowed tokens
    cont = ex.continuation("ab", 0.0, 0, 1.0)
    assert len(cont) == 4  # up to the context of 6
    assert "ab" + cont == vocab.decode(gpt.generate(m, vocab.encode("ab"), 4, temperature=0))
    assert "gfe" + ex.continuation("gfe", 0.0, 3, 0.5) == vocab.decode(gpt.generate(m, vocab.encode("gfe"), 3, temperature=0))
    first = vocab.encode("ab")
    logits, _ = m(first[None])
    allowed = gpt.next_token_probs(logits[0, -1].double(), 1.0, top_k=3) > 0
    for seed in range(5):
        ex2 = SamplingExplorer(m, vocab.encode, vocab.decode, prompts=("ab",), n=1, seed=seed)
        assert allowed[vocab.index[ex2.continuation("ab", 1.0, 3, 1.0)]]


@given(seed=st.integers(0, 1000))
def test_explorer_batched_sampling_stays_in_the_support(seed):
    from course_lib.widgets.sampling import _sample_rows

    g = torch.Generator().manual_seed(seed)
    logits = 3 * torch.randn(6, 9, generator=g, dtype=torch.float64)
    temps = torch.tensor([0.0, 0.5, 1.0, 1.0, 2.0, 1.0], dtype=torch.float64)
    ks = torch.tensor([0, 0, 3, 0, 2, 1])
    ps = torch.tensor([1.0, 0.9, 1.0, 0.5, 0.8, 1.0], dtype=torch.float64)
    tokens = _sample_rows(logits, temps, ks, ps, g)
    for r in range(6):
        probs = gpt.next_token_probs(logits[r], float(temps[r]), int(ks[r]) or None,
                                     None if ps[r] >= 1 else float(ps[r]))
        assert probs[tokens[r]] > 0


def test_chapter_13_quotes_chapter_10s_lstm_run():
    """Chapter 13 compares its GPT with chapter 10's char LSTM without re-training it: the settings
    and the validation loss it quotes (``CH10_LSTM``) must be the ones chapter 10 runs and records."""
    import ast
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    ch10 = (root / "notebooks" / "10_gates.py").read_text()
    quoted = re.search(r"^CH10_LSTM = (\{.*?\})", (root / "notebooks" / "13_gpt.py").read_text(), re.M | re.S)
    assert quoted, "notebooks/13_gpt.py should define CH10_LSTM = {...}"
    ch13 = ast.literal_eval(quoted.group(1))
    model = re.search(r"char_lstm = text\.CharModel\(vocab\.size, (.*?)\)\n", ch10)
    call = re.search(r"text\.train_char_model\(char_lstm, train_ids, val_ids, (.*?)\)\n", ch10, re.S)
    assert model and call, "notebooks/10_gates.py no longer trains char_lstm as chapter 13 expects"
    args = dict(re.findall(r"(\w+)=([\w.\"]+)", model.group(1) + ", " + call.group(1)))
    ch10_settings = {k: ast.literal_eval(v) for k, v in args.items() if k not in ("title",)}
    for key in ("hidden", "embed", "cell", "steps", "batch", "seq_len", "lr", "eval_chars"):
        assert ch13[key] == ch10_settings[key], f"CH10_LSTM[{key!r}] = {ch13[key]!r}, chapter 10 uses {ch10_settings[key]!r}"
    bench = (root / "docs" / "benchmarks.md").read_text()
    row = re.search(r"10_gates\.ipynb` \| char LSTM: validation loss \(first 10,000 characters\) \| ([\d.]+) nats/char",
                    bench)
    if row is None:
        pytest.skip("docs/benchmarks.md has no recorded chapter 10 validation loss")
    assert ch13["val_nats"] == float(row.group(1)), "update CH10_LSTM['val_nats'] to chapter 10's recorded figure"
