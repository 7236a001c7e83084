"""course_lib.cost: parameter counts against numel() on the meta device and GPT-2's published counts,
FLOPs against torch.utils.flop_counter, saved activations against autograd's saved tensors, the KV
cache against course_lib.gpt's cache tensors, Adam's memory against torch.optim.Adam's state, the
tied head of course_lib.gpt.GPT against an untied copy, and the error messages."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.utils.flop_counter import FlopCounterMode

from course_lib import cost, gpt


@st.composite
def configs(draw, tied=None, bias=None, positions=None):
    h = draw(st.integers(1, 3))
    E = h * draw(st.integers(1, 4))
    return cost.TransformerConfig(
        vocab_size=draw(st.integers(1, 9)), context=draw(st.integers(1, 8)), embed_dim=E,
        num_layers=draw(st.integers(1, 3)), num_heads=h, ff_mult=draw(st.integers(1, 4)),
        tied_embeddings=draw(st.booleans()) if tied is None else tied,
        bias=draw(st.booleans()) if bias is None else bias,
        learned_positions=draw(st.booleans()) if positions is None else positions)


def _gpt(cfg: cost.TransformerConfig, seed: int = 0, dtype=torch.float32) -> gpt.GPT:
    torch.manual_seed(seed)
    return gpt.GPT(cfg.vocab_size, cfg.context, cfg.embed_dim, cfg.num_heads, cfg.num_layers, ff_mult=cfg.ff_mult,
                   tie_embeddings=cfg.tied_embeddings).to(dtype)


# --- parameters --------------------------------------------------------------------------------
# GPT-2 XL and GPT-3 175B (48 and 96 blocks) are built by the lecture; here the two cheap presets.
@pytest.mark.parametrize("cfg", [cost.GPT2_SMALL, cost.GPT3_6_7B], ids=["GPT-2 small", "GPT-3 6.7B"])
def test_presets_formula_equals_numel_on_meta(cfg):
    model = cost.build_on_meta(cfg)
    assert all(p.device.type == "meta" for p in model.parameters())
    assert cost.numel(model) == cost.param_count(cfg)["total"]


def test_gpt2_counts_are_the_published_ones():
    # with biases, as released (= numel() of Hugging Face's GPT2LMHeadModel for the gpt2 checkpoint)
    assert cost.param_count(cost.GPT2_SMALL)["total"] == 124_439_808
    assert cost.param_count(dataclasses.replace(cost.GPT2_SMALL, bias=False))["total"] == 124_337_664
    assert cost.param_count(cost.GPT2_XL)["total"] == 1_557_611_200
    assert abs(cost.param_count(cost.GPT3_175B)["total"] / 175e9 - 1) < 0.01


@settings(max_examples=8)
@given(configs())
def test_formula_equals_numel_by_part(cfg):
    model = cost.build_on_meta(cfg)
    parts = cost.param_count(cfg)
    assert cost.numel(model) == parts["total"] == sum(v for k, v in parts.items() if k != "total")

    def count(*keys):
        return sum(p.numel() for n, p in model.named_parameters() if any(k in n for k in keys))

    assert count("tok_emb") == parts["embedding"]
    assert count("pos_emb") == parts["position"]
    assert count(".qkv.", ".proj.") == parts["attention"]
    assert count(".fc1.", ".fc2.") == parts["mlp"]
    assert count("ln1", "ln2", "ln_f") == parts["norm"]
    assert count("head") == parts["head"]  # a tied head is listed once, under tok_emb
    assert (model.head.weight is model.tok_emb.weight) == cfg.tied_embeddings


def test_meta_model_without_learned_positions_or_biases_runs():
    cfg = cost.TransformerConfig(7, 5, 4, 2, 2, bias=False, learned_positions=False)
    model = cost.build_on_meta(cfg).to_empty(device="cpu")  # storage (uninitialised) for a tiny model
    for p in model.parameters():
        torch.nn.init.normal_(p)
    logits, _ = model(torch.zeros(2, 5, dtype=torch.long))
    assert logits.shape == (2, 5, 7) and torch.isfinite(logits).all()


# --- the tied head of course_lib.gpt.GPT -------------------------------------------------------
@settings(max_examples=6)
@given(cfg=configs(tied=True), B=st.integers(1, 2), seed=st.integers(0, 5))
def test_tied_head_equals_untied_copy_forward_and_backward(cfg, B, seed):
    tied = _gpt(cfg, seed, torch.float64)
    untied = gpt.GPT(cfg.vocab_size, cfg.context, cfg.embed_dim, cfg.num_heads, cfg.num_layers,
                     ff_mult=cfg.ff_mult).double()
    untied.load_state_dict({k: v for k, v in tied.state_dict().items()}, strict=True)
    assert tied.head.weight is tied.tok_emb.weight
    assert cost.numel(untied) - cost.numel(tied) == cfg.vocab_size * cfg.embed_dim
    ids = torch.randint(0, cfg.vocab_size, (B, cfg.context), generator=torch.Generator().manual_seed(seed))
    out_t, out_u = tied(ids)[0], untied(ids)[0]
    torch.testing.assert_close(out_t, out_u, rtol=0, atol=1e-12)
    w = torch.randn(out_t.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(seed + 1))
    (out_t * w).sum().backward()
    (out_u * w).sum().backward()
    torch.testing.assert_close(tied.tok_emb.weight.grad, untied.tok_emb.weight.grad + untied.head.weight.grad,
                               rtol=1e-10, atol=1e-12)


def test_tie_embeddings_must_be_bool():
    with pytest.raises(TypeError, match="GPT: tie_embeddings should be a bool"):
        gpt.GPT(5, 4, 4, 2, 1, tie_embeddings=1)


# --- FLOPs -------------------------------------------------------------------------------------
@settings(max_examples=6)
@given(cfg=configs(), B=st.integers(1, 3), data=st.data())
def test_flops_equal_the_flop_counter_forward_and_training(cfg, B, data):
    T = data.draw(st.integers(1, cfg.context))
    model = _gpt(cfg)
    ids = torch.randint(0, cfg.vocab_size, (B, T))
    with FlopCounterMode(display=False) as forward:
        model(ids)
    with FlopCounterMode(display=False) as both:
        model(ids)[0].sum().backward()
    assert forward.get_total_flops() == B * T * cost.flops_per_token(cfg, T)
    assert both.get_total_flops() == B * T * cost.flops_per_token(cfg, T, training=True)


def test_six_n_d_and_gpt3_published_compute():
    assert cost.training_flops(2, 3) == 36
    n = cost.param_count(cost.GPT3_175B)["total"]
    # Brown et al. 2020 (arXiv:2005.14165), Table D.1: 3.14e23 FLOPs for GPT-3 175B on 300 B tokens
    assert abs(cost.training_flops(n, 300e9) / 3.14e23 - 1) < 0.01
    # per token, 6N is the training cost without the attention term
    ratio = cost.flops_per_token(cost.GPT3_175B, 2048, training=True) / (6 * n)
    assert 1.0 < ratio < 1.1


# --- memory ------------------------------------------------------------------------------------
@settings(max_examples=6)
@given(cfg=configs(bias=True, positions=True), B=st.integers(1, 3), data=st.data(),
       dtype=st.sampled_from([torch.float32, torch.float64]))
def test_activation_formula_equals_saved_tensors(cfg, B, data, dtype):
    T = data.draw(st.integers(1, cfg.context))
    model = _gpt(cfg, dtype=dtype)
    ids = torch.randint(0, cfg.vocab_size, (B, T))
    b = torch.finfo(dtype).bits // 8
    assert cost.saved_activation_bytes(model, ids) == cost.activation_bytes(cfg, B, T, dtype_bytes=b)


def test_adam_memory_equals_what_torch_holds():
    cfg = cost.TransformerConfig(13, 8, 8, 2, 2, tied_embeddings=False)
    model = _gpt(cfg)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    model(torch.randint(0, 13, (2, 8)))[0].sum().backward()
    opt.step()
    held = {
        "weights": sum(p.numel() * p.element_size() for p in model.parameters()),
        "gradients": sum(p.grad.numel() * p.grad.element_size() for p in model.parameters()),
        "optimizer": sum(t.numel() * t.element_size() for s in opt.state.values()
                         for k, t in s.items() if k in ("exp_avg", "exp_avg_sq")),
    }
    predicted = cost.memory_bytes(cfg, dtype_bytes=4, state_bytes=4, optimizer="adam")
    for k in held:
        assert held[k] == predicted[k], k
    assert predicted["master"] == 0 and predicted["activations"] == 0


def test_mixed_precision_adam_is_16_bytes_per_parameter():
    m = cost.memory_bytes(1000, dtype_bytes=2)
    assert (m["weights"], m["gradients"], m["optimizer"], m["master"], m["total"]) == (2000, 2000, 8000, 4000, 16000)
    assert cost.memory_bytes(1000, training=False)["total"] == 2000
    assert cost.memory_bytes(1000, dtype_bytes=4, optimizer="sgd")["total"] == 8000
    cfg = cost.TransformerConfig(13, 8, 8, 2, 2)
    with_act = cost.memory_bytes(cfg, dtype_bytes=4, batch=3, seq_len=5)
    assert with_act["activations"] == cost.activation_bytes(cfg, 3, 5, 4) > 0


@settings(max_examples=6)
@given(cfg=configs(), B=st.integers(1, 3), data=st.data(), dtype=st.sampled_from([torch.float32, torch.float64]))
def test_kv_cache_bytes_equal_the_cache_tensors(cfg, B, data, dtype):
    T = data.draw(st.integers(1, cfg.context))
    model = _gpt(cfg, dtype=dtype)
    with torch.no_grad():
        _, cache = model(torch.randint(0, cfg.vocab_size, (B, T)))
    held = sum(t.numel() * t.element_size() for kv in cache for t in kv)
    assert held == cost.kv_cache_bytes(cfg, T, batch=B, dtype_bytes=torch.finfo(dtype).bits // 8)


# --- data, time, money -------------------------------------------------------------------------
def test_chinchilla_optimal():
    n, d = cost.chinchilla_optimal(6 * 70e9 * 1.4e12)  # Chinchilla: 70 B parameters, 1.4 T tokens
    assert math.isclose(n, 70e9, rel_tol=1e-12) and math.isclose(d, 1.4e12, rel_tol=1e-12)
    n, d = cost.chinchilla_optimal(1e21, tokens_per_param=10)
    assert math.isclose(6 * n * d, 1e21, rel_tol=1e-12) and math.isclose(d, 10 * n, rel_tol=1e-12)


def test_training_time_and_cost():
    assert cost.training_time_s(1e18, 10, 1e15, 0.5) == pytest.approx(200.0)
    assert cost.training_cost(3.6e18 * 2, 1, 1e15, 1.0, 3.0) == pytest.approx(6.0)  # 2 h x 1 device x 3
    assert cost.training_time_s(0, 1, 1e12, 1.0) == 0


# --- errors ------------------------------------------------------------------------------------
@pytest.mark.parametrize("call, exc, message", [
    (lambda: cost.TransformerConfig(0, 8, 8, 1, 1), ValueError, r"TransformerConfig: vocab_size should be an int >= 1, got 0"),
    (lambda: cost.TransformerConfig(5, 8, 8, 1, 3), ValueError, r"TransformerConfig: embed_dim \(8\) should be divisible"),
    (lambda: cost.TransformerConfig(5, 8, 8, 1, 1, bias="yes"), TypeError, r"TransformerConfig: bias should be a bool"),
    (lambda: cost.TransformerConfig(5, 8, 8.0, 1, 1), ValueError, r"embed_dim should be an int >= 1, got 8.0"),
    (lambda: cost.param_count({"vocab_size": 5}), TypeError, r"param_count: cfg should be a TransformerConfig, got dict"),
    (lambda: cost.flops_per_token(cost.GPT2_SMALL, 0), ValueError, r"flops_per_token: seq_len should be an int >= 1, got 0"),
    (lambda: cost.flops_per_token(cost.GPT2_SMALL, 8, training=1), TypeError, r"training should be a bool"),
    (lambda: cost.training_flops(math.nan, 1), ValueError, r"training_flops: n_params should be a finite number > 0, got nan"),
    (lambda: cost.training_flops(1, math.inf), ValueError, r"training_flops: n_tokens should be a finite number > 0, got inf"),
    (lambda: cost.training_flops(True, 1), ValueError, r"n_params should be a finite number"),
    (lambda: cost.memory_bytes(1e6, optimizer="lion"), ValueError, r"memory_bytes: optimizer should be one of"),
    (lambda: cost.memory_bytes(1e6, seq_len=8), ValueError, r"memory_bytes: activations need the architecture"),
    (lambda: cost.memory_bytes(-5), ValueError, r"memory_bytes: cfg_or_n_params .* should be a finite number > 0, got -5"),
    (lambda: cost.kv_cache_bytes(cost.GPT2_SMALL, 8, dtype_bytes=0), ValueError, r"kv_cache_bytes: dtype_bytes should be an int >= 1, got 0"),
    (lambda: cost.chinchilla_optimal(-1.0), ValueError, r"chinchilla_optimal: compute_flops should be a finite number > 0, got -1.0"),
    (lambda: cost.training_time_s(1e20, 8, 1e15, 1.5), ValueError, r"training_time_s: utilisation should lie in \(0, 1\], got 1.5"),
    (lambda: cost.training_time_s(1e20, 0, 1e15, 0.5), ValueError, r"training_time_s: n_devices should be an int >= 1, got 0"),
    (lambda: cost.training_cost(1e20, 1, 1e15, 0.5, -2), ValueError, r"training_cost: price_per_device_hour should be a finite number >= 0"),
])
def test_errors_name_function_expected_and_received(call, exc, message):
    with pytest.raises(exc, match=message):
        call()


def test_kv_cache_of_zero_tokens_is_zero_bytes():
    assert cost.kv_cache_bytes(cost.GPT2_SMALL, 0) == 0
    assert cost.kv_cache_bytes(cost.GPT2_SMALL, 1) == 2 * 12 * 768 * 2  # 36,864 bytes per token in 16 bits
