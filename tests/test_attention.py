"""course_lib.attention against F.scaled_dot_product_attention and nn.MultiheadAttention in float64:
forward and backward on hypothesis shapes (L = S = 1, one head, batch 1), bool and float masks in
both polarities, fully masked rows (torch's behaviour measured and matched), the heads, every error
message, and the explorer."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st

from course_lib import attention as att
from course_lib.validate import ShapeError

DT = torch.float64
TOL = dict(rtol=1e-10, atol=1e-10)


def _close(a, b):
    assert a.shape == b.shape and a.dtype == b.dtype, (a.shape, b.shape, a.dtype, b.dtype)
    torch.testing.assert_close(a, b, **TOL, equal_nan=True)


def _grads(out, upstream, leaves):
    return torch.autograd.grad((out * upstream).sum(), leaves, allow_unused=True)


@st.composite
def sdpa_cases(draw):
    return dict(B=draw(st.integers(1, 2)), h=draw(st.integers(1, 2)), L=draw(st.integers(1, 4)),
                S=draw(st.integers(1, 4)), d=draw(st.integers(1, 3)), dv=draw(st.integers(1, 3)),
                mask=draw(st.sampled_from(["none", "bool", "float", "causal"])),
                dead=draw(st.booleans()), scale=draw(st.sampled_from([None, 0.5])),
                seed=draw(st.integers(0, 2**31 - 1)))


@given(c=sdpa_cases())
def test_sdpa_matches_torch_forward_and_backward(c):
    gen = torch.Generator().manual_seed(c["seed"])
    B, h, L, S = c["B"], c["h"], c["L"], c["S"]
    q = torch.randn(B, h, L, c["d"], generator=gen, dtype=DT, requires_grad=True)
    k = torch.randn(B, h, S, c["d"], generator=gen, dtype=DT, requires_grad=True)
    v = torch.randn(B, h, S, c["dv"], generator=gen, dtype=DT, requires_grad=True)
    kw = dict(scale=c["scale"])
    if c["mask"] == "bool":
        m = torch.rand(B, 1, L, S, generator=gen) < 0.6
        if c["dead"]:
            m[..., 0, :] = False                      # query 0 may attend to nothing
        kw["attn_mask"] = m
    elif c["mask"] == "float":
        m = torch.randn(L, S, generator=gen, dtype=DT)
        if c["dead"]:
            m[0] = -math.inf
        kw["attn_mask"] = m
    elif c["mask"] == "causal":
        kw["is_causal"] = True
    ref = F.scaled_dot_product_attention(q, k, v, **kw)
    out, w = att.scaled_dot_product_attention(q, k, v, **kw)
    _close(out, ref)
    assert w.shape == (B, h, L, S)
    up = torch.randn(out.shape, generator=gen, dtype=DT)
    for a, b in zip(_grads(out, up, (q, k, v)), _grads(ref, up, (q, k, v))):
        _close(a, b)


def test_fully_masked_row_is_zero_like_torch():
    q, k, v = (torch.randn(1, 3, 2, dtype=DT, requires_grad=True) for _ in range(3))
    m = torch.ones(3, 3, dtype=torch.bool)
    m[1] = False
    ref = F.scaled_dot_product_attention(q, k, v, attn_mask=m)
    out, w = att.scaled_dot_product_attention(q, k, v, attn_mask=m)
    assert torch.equal(ref[0, 1], torch.zeros(2, dtype=DT)) and torch.equal(out[0, 1], ref[0, 1])
    assert torch.equal(w[0, 1], torch.zeros(3, dtype=DT))
    g = torch.autograd.grad(out.sum(), q)[0]
    assert torch.isfinite(g).all() and torch.equal(g[0, 1], torch.zeros(2, dtype=DT))


def test_nan_input_propagates_like_torch():
    q, k, v = (torch.randn(1, 3, 2, dtype=DT) for _ in range(3))
    q[0, 0, 0] = math.nan
    ref = F.scaled_dot_product_attention(q, k, v)
    out, _ = att.scaled_dot_product_attention(q, k, v)
    _close(out, ref)
    assert out[0, 0].isnan().all() and not out[0, 1:].isnan().any()


def test_float32_and_bool_mask_polarity_trap():
    q, k, v = (torch.randn(2, 4, 3) for _ in range(3))
    keep = att.causal_mask(4)
    right, _ = att.scaled_dot_product_attention(q, k, v, attn_mask=keep)
    torch.testing.assert_close(right, F.scaled_dot_product_attention(q, k, v, is_causal=True))
    wrong, _ = att.scaled_dot_product_attention(q, k, v, attn_mask=~keep)  # MHA polarity: runs, wrong
    assert right.dtype == torch.float32 and not torch.allclose(right[:, :3], wrong[:, :3])


def test_causal_mask_alignments():
    assert torch.equal(att.causal_mask(3), torch.ones(3, 3, dtype=torch.bool).tril())
    lr, tl = att.causal_mask(1, 4), att.causal_mask(1, 4, align="top_left")
    assert lr.tolist() == [[True] * 4] and tl.tolist() == [[True, False, False, False]]
    assert torch.equal(att.causal_mask(2, 5, "top_left"),
                       torch.ones(2, 5, dtype=torch.bool).tril())
    q, k, v = torch.randn(1, 2, 3, dtype=DT), torch.randn(1, 5, 3, dtype=DT), torch.randn(1, 5, 3, dtype=DT)
    _close(att.scaled_dot_product_attention(q, k, v, attn_mask=att.causal_mask(2, 5, "top_left"))[0],
           F.scaled_dot_product_attention(q, k, v, is_causal=True))


@given(B=st.integers(1, 3), T=st.integers(1, 4), h=st.integers(1, 3), d=st.integers(1, 3))
def test_split_merge_heads(B, T, h, d):
    x = torch.randn(B, T, h * d, dtype=DT)
    s = att.split_heads(x, h)
    assert s.shape == (B, h, T, d)
    for t in range(T):
        for j in range(h):
            assert torch.equal(s[:, j, t], x[:, t, j * d:(j + 1) * d])
    assert torch.equal(att.merge_heads(s), x)


def test_view_alone_mixes_positions():
    B, T, h, d = 1, 3, 2, 2
    x = torch.arange(T, dtype=DT).repeat_interleave(h * d).view(B, T, h * d)   # feature = position
    good, bad = att.split_heads(x, h), x.view(B, h, T, d)
    assert all(set(good[0, j, t].tolist()) == {t} for j in range(h) for t in range(T))
    assert not all(set(bad[0, j, t].tolist()) == {t} for j in range(h) for t in range(T))


@st.composite
def mha_cases(draw):
    h = draw(st.integers(1, 2))
    return dict(B=draw(st.integers(1, 2)), L=draw(st.integers(1, 3)), S=draw(st.integers(1, 3)), h=h,
                E=h * draw(st.integers(1, 2)), bias=draw(st.booleans()), batch_first=draw(st.booleans()),
                kpm=draw(st.sampled_from(["none", "bool", "float"])),
                am=draw(st.sampled_from(["none", "bool2", "float3"])), dead=draw(st.booleans()),
                need=draw(st.booleans()), avg=draw(st.booleans()), unbatched=draw(st.booleans()),
                seed=draw(st.integers(0, 2**31 - 1)))


@pytest.mark.filterwarnings("ignore:Support for mismatched key_padding_mask")
@given(c=mha_cases())
def test_mha_matches_module_forward_and_backward(c):
    torch.manual_seed(c["seed"])
    B, L, S, E, h = c["B"], c["L"], c["S"], c["E"], c["h"]
    m = torch.nn.MultiheadAttention(E, h, bias=c["bias"], batch_first=c["batch_first"]).to(DT)
    gen = torch.Generator().manual_seed(c["seed"])
    if c["unbatched"]:
        B, shp = 1, (lambda n: (n, E))
    else:
        shp = (lambda n: (B, n, E)) if c["batch_first"] else (lambda n: (n, B, E))
    q = torch.randn(shp(L), generator=gen, dtype=DT, requires_grad=True)
    k = torch.randn(shp(S), generator=gen, dtype=DT, requires_grad=True)
    v = torch.randn(shp(S), generator=gen, dtype=DT, requires_grad=True)
    kw = dict(need_weights=c["need"], average_attn_weights=c["avg"])
    if c["kpm"] != "none":
        kpm = torch.rand(B, S, generator=gen) < 0.3
        if c["dead"]:
            kpm[0] = True                               # every key of sequence 0 is padding
        kpm = kpm if c["kpm"] == "bool" else torch.zeros(B, S, dtype=DT).masked_fill(kpm, -math.inf)
        kw["key_padding_mask"] = kpm[0] if c["unbatched"] else kpm
    if c["am"] == "bool2":
        kw["attn_mask"] = torch.rand(L, S, generator=gen) < 0.3
        if c["kpm"] == "float":
            kw["attn_mask"] = torch.zeros(L, S, dtype=DT).masked_fill(kw["attn_mask"], -math.inf)
    elif c["am"] == "float3":
        kw["attn_mask"] = torch.randn(B * h, L, S, generator=gen, dtype=DT)
        if c["unbatched"]:
            kw["attn_mask"] = kw["attn_mask"][:h]
    ref_out, ref_w = m(q, k, v, **kw)
    out, w = att.multi_head_attention(q, k, v, att.mha_params(m), h, batch_first=c["batch_first"], **kw)
    _close(out, ref_out)
    if c["need"]:
        _close(w, ref_w)
    else:
        assert w is None and ref_w is None
    up = torch.randn(out.shape, generator=gen, dtype=DT)
    leaves = (q, k, v, *m.parameters())
    for a, b in zip(_grads(out, up, leaves), _grads(ref_out, up, leaves)):
        if a is None or b is None:
            assert a is None and b is None
        else:
            _close(a, b)


def test_mha_fully_masked_rows_nan_with_weights_zero_without():
    m = torch.nn.MultiheadAttention(4, 2, batch_first=True).to(DT)
    x = torch.randn(2, 3, 4, dtype=DT)
    kpm = torch.zeros(2, 3, dtype=torch.bool)
    kpm[1] = True
    p = att.mha_params(m)
    out, w = att.multi_head_attention(x, x, x, p, 2, key_padding_mask=kpm, batch_first=True)
    assert out[1].isnan().all() and w[1].isnan().all() and not out[0].isnan().any()
    assert m(x, x, x, key_padding_mask=kpm)[0][1].isnan().all()
    out, _ = att.multi_head_attention(x, x, x, p, 2, key_padding_mask=kpm, batch_first=True, need_weights=False)
    ref, _ = m(x, x, x, key_padding_mask=kpm, need_weights=False)
    _close(out, ref)
    assert torch.equal(out[1], m.out_proj.bias.detach().expand(3, 4))   # zero attention row -> b_o
    m.eval()
    with torch.inference_mode():                                          # the fast path: NaN again
        assert m(x, x, x, key_padding_mask=kpm, need_weights=False)[0][1].isnan().all()


def test_mha_is_causal_is_a_hint():
    m = torch.nn.MultiheadAttention(4, 1).to(DT)
    x = torch.randn(3, 1, 4, dtype=DT)
    masked = ~att.causal_mask(3)
    _close(att.multi_head_attention(x, x, x, att.mha_params(m), 1, attn_mask=masked, is_causal=True)[0],
           m(x, x, x, attn_mask=masked, is_causal=True)[0])
    with pytest.raises(ValueError, match="is_causal=True is only a hint"):
        att.multi_head_attention(x, x, x, att.mha_params(m), 1, is_causal=True)


@pytest.mark.parametrize("call, error, pattern", [
    (lambda: att.scaled_dot_product_attention(torch.ones(2, 3, dtype=torch.long), torch.ones(2, 3), torch.ones(2, 3)),
     ShapeError, r"scaled_dot_product_attention: q should be a floating-point tensor .*got dtype torch.int64"),
    (lambda: att.scaled_dot_product_attention(torch.ones(2, 3), torch.ones(2, 4), torch.ones(2, 3)),
     ShapeError, r"same last size d, got q \(2, 3\) and k \(2, 4\)"),
    (lambda: att.scaled_dot_product_attention(torch.ones(2, 3), torch.ones(2, 3), torch.ones(4, 3)),
     ShapeError, r"same length S"),
    (lambda: att.scaled_dot_product_attention(torch.ones(2, 3), torch.ones(2, 3), torch.ones(2, 3),
                                              attn_mask=torch.ones(2, 2, dtype=torch.long)),
     ShapeError, r"attn_mask should be a bool tensor \(True = takes part\).*got dtype torch.int64"),
    (lambda: att.scaled_dot_product_attention(torch.ones(2, 3), torch.ones(2, 3), torch.ones(2, 3),
                                              attn_mask=torch.ones(2, 2, dtype=torch.bool), is_causal=True),
     ValueError, r"not both"),
    (lambda: att.scaled_dot_product_attention(torch.ones(3), torch.ones(2, 3), torch.ones(2, 3)),
     ShapeError, r"q should have at least 2 dimensions"),
    (lambda: att.causal_mask(3, align="upper"), ValueError, r"causal_mask: align should be one of"),
    (lambda: att.causal_mask(-1), ValueError, r"causal_mask: L should be an int >= 0"),
    (lambda: att.split_heads(torch.ones(1, 2, 5), 2), ShapeError, r"split_heads: the width E = 5"),
    (lambda: att.split_heads(torch.ones(2, 6), 2), ShapeError, r"split_heads: x should have at least 3"),
    (lambda: att.split_heads(torch.ones(1, 2, 4), 0), ValueError, r"num_heads should be an int >= 1"),
    (lambda: att.merge_heads(torch.ones(1, 2, 4)), ShapeError, r"merge_heads: x should have at least 4"),
    (lambda: att.mha_params(torch.nn.Linear(2, 2)), TypeError, r"mha_params: module should be an nn.MultiheadAttention"),
    (lambda: att.mha_params(torch.nn.MultiheadAttention(4, 1, kdim=2)), ValueError, r"packed layout"),
    (lambda: att.multi_head_attention(torch.ones(3, 1, 4), torch.ones(3, 1, 4), torch.ones(3, 1, 4),
                                      {"in_proj_weight": torch.ones(12, 4), "out_proj.weight": torch.ones(3, 3)}, 1),
     ShapeError, r"params\['out_proj.weight'\] should have shape \(4, 4\)"),
    (lambda: att.multi_head_attention(torch.ones(3, 1, 4), torch.ones(3, 1, 4), torch.ones(3, 1, 4),
                                      {"in_proj_weight": torch.ones(12, 4), "out_proj.weight": torch.ones(4, 4),
                                       "bias_k": torch.ones(1, 1, 4)}, 1), ValueError, r"params has \['bias_k'\]"),
    (lambda: att.multi_head_attention(torch.ones(3, 1, 4), torch.ones(3, 1, 4), torch.ones(3, 1, 4),
                                      att.mha_params(torch.nn.MultiheadAttention(4, 1)), 3),
     ShapeError, r"embed_dim E = 4 should be divisible by num_heads = 3"),
    (lambda: att.multi_head_attention(torch.ones(3, 2, 4), torch.ones(3, 2, 4), torch.ones(3, 2, 4),
                                      att.mha_params(torch.nn.MultiheadAttention(4, 1)), 1,
                                      key_padding_mask=torch.zeros(3, 2, dtype=torch.bool)),
     ShapeError, r"key_padding_mask should have shape \(B, S\) = \(2, 3\), got \(3, 2\)"),
    (lambda: att.multi_head_attention(torch.ones(3, 2, 4), torch.ones(3, 2, 4), torch.ones(3, 2, 4),
                                      att.mha_params(torch.nn.MultiheadAttention(4, 1)), 1,
                                      attn_mask=torch.zeros(2, 3, dtype=torch.bool)),
     ShapeError, r"attn_mask should have shape \(L, S\) = \(3, 3\)"),
    (lambda: att.multi_head_attention(torch.ones(3, 2, 4), torch.ones(3, 2, 4), torch.ones(3, 2, 4),
                                      att.mha_params(torch.nn.MultiheadAttention(4, 1).double()), 1),
     ShapeError, r"should have the dtype of query \(torch.float32\)"),
])
def test_error_messages(call, error, pattern):
    with pytest.raises(error, match=pattern):
        call()


# --- the explorer and its model ------------------------------------------------------------
@pytest.fixture(scope="module")
def explorer():
    from course_lib.widgets.attention import AttentionExplorer, train_reversal

    model, info = train_reversal(steps=5)
    assert len(info["loss"]) == 5 and 0.0 <= info["accuracy"] <= 1.0
    return AttentionExplorer(model, examples=1)


def test_reversal_batch_targets_are_the_reversed_digits():
    from course_lib.widgets.attention import LEN0, PAD, reversal_batch

    x, y, pad = reversal_batch(50, torch.Generator().manual_seed(0))
    for xi, yi, pi in zip(x, y, pad):
        n = int(xi[0]) - LEN0 + 1
        assert torch.equal(pi, xi == PAD) and int((~pi).sum()) == n + 1
        assert yi[1:n + 1].tolist() == xi[1:n + 1].flip(0).tolist() and (yi[n + 1:] == -100).all()


def test_model_trace_equals_the_module_forward(explorer):
    from course_lib.widgets.attention import PAD, reversal_batch

    x, _, pad = reversal_batch(3, torch.Generator().manual_seed(1))
    with torch.no_grad():
        ref = explorer.model(x, pad)
    for i in range(3):
        ws, logits = explorer.model.trace(x[i])
        torch.testing.assert_close(logits, ref[i], rtol=1e-5, atol=1e-5)
        assert len(ws) == 2 and ws[0].shape == (2, 9, 9)
        assert torch.allclose(ws[1].sum(-1), torch.ones(2, 9)) and (ws[1][:, :, x[i] == PAD] == 0).all()
    ws, _ = explorer.model.trace(x[0], causal=True)
    assert (ws[0].triu(1) == 0).all()


def test_explorer_steps_and_masks_change_the_picture(explorer):
    print(explorer.self_check())
    before = explorer.image.value
    explorer.set_state(causal=not explorer.controls["causal"].value)
    assert explorer.image.value != before
    w = explorer.weights()
    assert w.shape == (9, 9)
    for name in ("layer", "head", "padding", "sequence"):
        explorer.step(name)


def test_explorer_rejects_bad_arguments():
    from course_lib.widgets.attention import AttentionExplorer

    with pytest.raises(TypeError, match="AttentionExplorer: model should be a ReversalModel"):
        AttentionExplorer(torch.nn.Linear(2, 2))


# --- the explorer on attention maps computed elsewhere (chapter 17's MiniLM) -----------------------
def _fake_maps(T: int, layers: int = 2, heads: int = 3, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(heads, T, T, generator=g).softmax(-1) for _ in range(layers)]


def test_explorer_from_attentions_shows_the_given_maps():
    from course_lib.widgets.attention import AttentionExplorer

    tokens = ["[CLS]", "the", "cat", "sat", "[SEP]"]
    maps = _fake_maps(5)
    ex = AttentionExplorer.from_examples({"one": (tokens, maps), "two": (["[CLS]", "hi", "[SEP]"], _fake_maps(3, seed=1))})
    assert set(ex.controls) == {"sequence", "layer", "head", "query"}
    assert (ex.controls["layer"].max, ex.controls["head"].max, ex.controls["query"].max) == (1, 2, 4)
    ex.set_state(layer=1, head=2)
    assert ex.weights().shape == (5, 5) and torch.equal(torch.from_numpy(ex.weights()), maps[1][2])
    print(ex.self_check())
    for name in ("query", "layer", "head", "sequence"):
        frames, before = ex.frames, ex.image.value
        ex.step(name)
        assert ex.frames == frames + 1 and ex.image.value != before, name
    ex.set_state(sequence="two", query=4)              # beyond the shorter sentence: its last token
    assert ex.weights().shape == (3, 3) and "query '[SEP]'" in ex.caption_bar.get_text()
    one = AttentionExplorer.from_attentions(tokens, torch.stack(maps))   # (L, h, T, T) accepted too
    assert one.weights(1, 2).shape == (5, 5) and one.self_check().endswith("OK")


@pytest.mark.parametrize("examples, error, pattern", [
    ({}, ValueError, "from_examples: expected a non-empty dict"),
    ({"s": (["a", "b"], _fake_maps(3))}, ValueError, r"should be L >= 1 tensors \(h, T, T\) with T = 2 tokens"),
    ({"s": ("ab", _fake_maps(2))}, TypeError, "tokens of 's' should be a list of str"),
    ({"s": (["a", "b"], [torch.full((1, 2, 2), float("nan"))])}, ValueError, "finite floating-point weights"),
    ({"s": (["a", "b"], _fake_maps(2)), "t": (["a", "b"], _fake_maps(2, heads=4))}, ValueError,
     r"same \(layers, heads\) = \(2, 3\), got \(2, 4\)"),
])
def test_explorer_from_examples_rejects_bad_maps(examples, error, pattern):
    from course_lib.widgets.attention import AttentionExplorer

    with pytest.raises(error, match=pattern):
        AttentionExplorer.from_examples(examples)


def test_head_profile_finds_the_planted_patterns():
    from course_lib.widgets.attention import head_profile

    tokens = ["[CLS]", "a", "b", "c", "[SEP]"]
    T = len(tokens)
    prev = torch.zeros(T, T)
    prev[0, 0] = 1.0
    prev[torch.arange(1, T), torch.arange(T - 1)] = 1.0          # every query reads the token before it
    sep = torch.zeros(T, T)
    sep[:, -1] = 1.0                                               # every query reads [SEP]
    uniform = torch.full((T, T), 1.0 / T)
    prof = head_profile([torch.stack([prev, sep, uniform])], tokens)
    assert set(prof) == {"previous", "same", "next", "[CLS]", "[SEP]"} and prof["previous"].shape == (1, 3)
    torch.testing.assert_close(prof["previous"][0], torch.tensor([1.0, 0.0, 0.2], dtype=torch.float64))
    torch.testing.assert_close(prof["[SEP]"][0], torch.tensor([0.0, 1.0, 0.2], dtype=torch.float64))
    torch.testing.assert_close(prof["[CLS]"][0], torch.tensor([0.4, 0.0, 0.2], dtype=torch.float64))
    torch.testing.assert_close(prof["same"][0], torch.tensor([0.2, 0.2, 0.2], dtype=torch.float64))
    torch.testing.assert_close(prof["next"][0], torch.tensor([0.0, 0.25, 0.2], dtype=torch.float64))
    with pytest.raises(ValueError, match=r"head_profile: expected attentions \(L, h, T, T\) with T = 5"):
        head_profile(torch.zeros(1, 1, 4, 4), tokens)
