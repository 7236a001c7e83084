"""course_lib.transformer against PyTorch in float64: gelu (both forms, special values), the
feed-forward block, the encoder layer against nn.TransformerEncoderLayer (norm_first, relu/gelu,
batch_first, masks, sequence length 1, one head) forward and backward, and the decoder-only Block
(causality, KV cache equal to the full pass, a reference built on F.scaled_dot_product_attention);
every error message."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st

from course_lib import transformer
from course_lib.validate import ShapeError
from strategies import float_tensors

DT = torch.float64
TOL = dict(rtol=1e-10, atol=1e-10)


def _close(a, b, **kw):
    assert a.shape == b.shape and a.dtype == b.dtype, (a.shape, b.shape, a.dtype, b.dtype)
    torch.testing.assert_close(a, b, **(kw or TOL))


# --- gelu and the feed-forward block ---------------------------------------------------------
@given(x=float_tensors(), approximate=st.sampled_from(["none", "tanh"]))
def test_gelu_equals_torch_including_special_values(x, approximate):
    torch.testing.assert_close(transformer.gelu(x, approximate), F.gelu(x, approximate=approximate),
                               equal_nan=True, **TOL)


@given(x=float_tensors(special=False), approximate=st.sampled_from(["none", "tanh"]))
def test_gelu_backward_equals_torch(x, approximate):
    x = x.clone().requires_grad_(True)
    g1, = torch.autograd.grad(transformer.gelu(x, approximate).sum(), x)
    g2, = torch.autograd.grad(F.gelu(x, approximate=approximate).sum(), x)
    _close(g1, g2)


def test_gelu_errors():
    with pytest.raises(ShapeError, match="gelu: x should be a floating-point tensor, got dtype torch.int64"):
        transformer.gelu(torch.tensor([1, 2]))
    with pytest.raises(ValueError, match=r"gelu: approximate should be one of \('none', 'tanh'\), got 'erf'"):
        transformer.gelu(torch.ones(2), "erf")


@given(shape=st.sampled_from([(1,), (2, 1), (1, 3), (2, 3)]), E=st.integers(1, 3), Fw=st.integers(1, 4),
       act=st.sampled_from(["relu", "gelu"]), bias=st.booleans(), seed=st.integers(0, 2**31 - 1))
def test_feed_forward_equals_linear_act_linear(shape, E, Fw, act, bias, seed):
    torch.manual_seed(seed)
    l1, l2 = torch.nn.Linear(E, Fw, bias=bias).double(), torch.nn.Linear(Fw, E, bias=bias).double()
    x = torch.randn(*shape, E, dtype=DT, requires_grad=True)
    ref = l2((torch.relu if act == "relu" else F.gelu)(l1(x)))
    ours = transformer.feed_forward(x, l1.weight, l1.bias, l2.weight, l2.bias, act)
    _close(ours, ref)
    leaves = [x, *l1.parameters(), *l2.parameters()]
    for a, b in zip(torch.autograd.grad(ours.sum(), leaves), torch.autograd.grad(ref.sum(), leaves)):
        _close(a, b)


def test_feed_forward_errors():
    x, W1, W2 = torch.ones(2, 3), torch.ones(4, 3), torch.ones(3, 4)
    with pytest.raises(ShapeError, match=r"feed_forward: W1 should have shape \(F, E\), got \(4, 2\)"):
        transformer.feed_forward(x, torch.ones(4, 2), None, W2, None)
    with pytest.raises(ShapeError, match=r"feed_forward: W2 should have shape \(E, F\), got \(3, 5\)"):
        transformer.feed_forward(x, W1, None, torch.ones(3, 5), None)
    with pytest.raises(ValueError, match="feed_forward: activation should be one of"):
        transformer.feed_forward(x, W1, None, W2, None, "tanh")
    with pytest.raises(ShapeError, match="feed_forward: W1 should have the dtype of x"):
        transformer.feed_forward(x, W1.double(), None, W2, None)


# --- the encoder layer against nn.TransformerEncoderLayer --------------------------------------
@st.composite
def layer_configs(draw):
    h = draw(st.integers(1, 2))
    return dict(T=draw(st.integers(1, 4)), B=draw(st.integers(1, 3)), h=h, E=h * draw(st.integers(1, 3)),
                Fw=draw(st.integers(1, 5)), norm_first=draw(st.booleans()),
                activation=draw(st.sampled_from(["relu", "gelu"])), batch_first=draw(st.booleans()),
                mask=draw(st.sampled_from(["none", "causal", "padding", "both"])),
                seed=draw(st.integers(0, 2**31 - 1)))


def _torch_layer(cfg):
    torch.manual_seed(cfg["seed"])
    layer = torch.nn.TransformerEncoderLayer(cfg["E"], cfg["h"], dim_feedforward=cfg["Fw"], dropout=0.0,
                                             activation=cfg["activation"], batch_first=cfg["batch_first"],
                                             norm_first=cfg["norm_first"]).double()
    with torch.no_grad():  # non-trivial LayerNorm affine parameters
        for p in (layer.norm1.weight, layer.norm1.bias, layer.norm2.weight, layer.norm2.bias):
            p.add_(0.3 * torch.randn(p.shape, dtype=DT))
    return layer.eval()


def _masks(cfg, gen):
    T, B = cfg["T"], cfg["B"]
    src_mask = pad = None
    if cfg["mask"] in ("causal", "both"):
        src_mask = torch.ones(T, T, dtype=torch.bool).triu(1)  # True = masked (nn.MultiheadAttention's polarity)
    if cfg["mask"] in ("padding", "both"):
        lengths = torch.randint(1, T + 1, (B,), generator=gen)  # at least one real token: no fully masked row
        pad = torch.arange(T)[None, :] >= lengths[:, None]
    return src_mask, pad


@given(cfg=layer_configs())
def test_encoder_layer_equals_nn_transformer_encoder_layer_forward_and_backward(cfg):
    layer = _torch_layer(cfg)
    gen = torch.Generator().manual_seed(cfg["seed"])
    T, B, E = cfg["T"], cfg["B"], cfg["E"]
    x = torch.randn(*((B, T, E) if cfg["batch_first"] else (T, B, E)), generator=gen, dtype=DT, requires_grad=True)
    src_mask, pad = _masks(cfg, gen)
    ref = layer(x, src_mask=src_mask, src_key_padding_mask=pad)
    ours = transformer.encoder_layer(x, transformer.encoder_params(layer), cfg["h"], norm_first=cfg["norm_first"],
                                     activation=cfg["activation"], src_mask=src_mask, src_key_padding_mask=pad,
                                     batch_first=cfg["batch_first"])
    _close(ours, ref)
    up = torch.randn(ours.shape, generator=gen, dtype=DT)
    leaves = [x, *layer.parameters()]
    for a, b in zip(torch.autograd.grad((ours * up).sum(), leaves), torch.autograd.grad((ref * up).sum(), leaves)):
        _close(a, b)


@pytest.mark.parametrize("norm_first", [False, True])
def test_encoder_layer_fully_padded_sequence_and_nan(norm_first):
    """A sequence whose every key is padding: the module's autograd path (SDPA) gives a zero attention
    output, so the row is the residual path alone, and so does ours; torch's no-grad inference fast path
    returns NaN instead (documented in encoder_layer). A NaN in the input spreads as in torch."""
    torch.manual_seed(0)
    layer = torch.nn.TransformerEncoderLayer(4, 2, 8, dropout=0.0, batch_first=True, norm_first=norm_first).double().eval()
    params = transformer.encoder_params(layer)
    x = torch.randn(2, 3, 4, dtype=DT, requires_grad=True)
    pad = torch.tensor([[False, False, True], [True, True, True]])
    ref = layer(x, src_key_padding_mask=pad)
    ours = transformer.encoder_layer(x, params, 2, norm_first=norm_first, src_key_padding_mask=pad, batch_first=True)
    _close(ours, ref)
    assert torch.isfinite(ours).all()
    with torch.no_grad():
        assert layer(x, src_key_padding_mask=pad)[1].isnan().all()  # the fast path: if this changes, update the docs
    xn = x.detach().clone()
    xn[0, 1, 2] = math.nan
    got = transformer.encoder_layer(xn, params, 2, norm_first=norm_first, batch_first=True)
    want = layer(xn.requires_grad_(True))
    torch.testing.assert_close(got, want, equal_nan=True, **TOL)


def test_encoder_layer_float32():
    torch.manual_seed(0)
    layer = torch.nn.TransformerEncoderLayer(8, 2, 16, dropout=0.0).eval()
    x = torch.randn(5, 2, 8, requires_grad=True)
    ours = transformer.encoder_layer(x, transformer.encoder_params(layer), 2)
    assert ours.dtype == torch.float32
    torch.testing.assert_close(ours, layer(x), rtol=1e-5, atol=1e-5)


def test_encoder_layer_errors():
    layer = torch.nn.TransformerEncoderLayer(4, 2, dim_feedforward=8, dropout=0.0)
    params = transformer.encoder_params(layer)
    x = torch.randn(3, 2, 4)
    with pytest.raises(ValueError, match="encoder_layer: nhead should be a positive int dividing E=4, got 3"):
        transformer.encoder_layer(x, params, 3)
    with pytest.raises(KeyError, match=r"encoder_layer: params lacks \['linear1.weight'\]"):
        transformer.encoder_layer(x, {k: v for k, v in params.items() if k != "linear1.weight"}, 2)
    with pytest.raises(ShapeError, match=r"encoder_layer: x should have 3 dimension\(s\) \(T, B, E\), got 2"):
        transformer.encoder_layer(torch.randn(3, 4), params, 2)
    with pytest.raises(ValueError, match="encoder_layer: activation should be one of"):
        transformer.encoder_layer(x, params, 2, activation="silu")


# --- the decoder-only block ---------------------------------------------------------------------
@pytest.fixture(scope="module")
def block():
    torch.manual_seed(0)
    b = transformer.Block(8, 2).double().eval()
    with torch.no_grad():
        for p in (b.ln1.weight, b.ln1.bias, b.ln2.weight, b.ln2.bias):
            p.add_(0.3 * torch.randn(p.shape, dtype=DT))
    return b


def _reference_block(b, x):
    """The same block written with torch's own pieces: F.layer_norm, F.scaled_dot_product_attention(is_causal)."""
    B, T, E = x.shape
    h, d = b.num_heads, b.head_dim
    u = F.layer_norm(x, (E,), b.ln1.weight, b.ln1.bias)
    q, k, v = b.qkv(u).split(E, dim=-1)
    q, k, v = (t.view(B, T, h, d).transpose(1, 2) for t in (q, k, v))
    a = F.scaled_dot_product_attention(q, k, v, is_causal=True).transpose(1, 2).reshape(B, T, E)
    x = x + b.proj(a)
    return x + b.fc2(F.gelu(b.fc1(F.layer_norm(x, (E,), b.ln2.weight, b.ln2.bias))))


@given(B=st.integers(1, 2), T=st.integers(1, 5), seed=st.integers(0, 2**31 - 1))
def test_block_equals_a_reference_with_torch_sdpa_forward_and_backward(block, B, T, seed):
    x = torch.randn(B, T, 8, generator=torch.Generator().manual_seed(seed), dtype=DT, requires_grad=True)
    y, (k, v) = block(x)
    ref = _reference_block(block, x)
    _close(y, ref)
    assert k.shape == v.shape == (B, 2, T, 4)
    leaves = [x, *block.parameters()]
    for a, b in zip(torch.autograd.grad(y.sum(), leaves), torch.autograd.grad(ref.sum(), leaves)):
        _close(a, b)


def test_block_is_causal(block):
    x = torch.randn(1, 6, 8, dtype=DT)
    x2 = x.clone()
    x2[:, 4:] += 1.0
    y, _ = block(x)
    y2, _ = block(x2)
    _close(y[:, :4], y2[:, :4])
    assert (y[:, 4:] - y2[:, 4:]).abs().max() > 1e-3


@pytest.mark.parametrize("chunks", [(1, 1, 1, 1, 1), (3, 2), (2, 1, 2)])
def test_block_kv_cache_equals_the_full_pass(block, chunks):
    """With a cache the new positions attend to past + new keys with a lower-right causal mask."""
    x = torch.randn(2, sum(chunks), 8, dtype=DT)
    full, _ = block(x)
    cache, outs, t = None, [], 0
    for c in chunks:
        y, cache = block(x[:, t:t + c], kv_cache=cache)
        outs.append(y)
        t += c
    _close(torch.cat(outs, dim=1), full)
    assert cache[0].shape == (2, 2, sum(chunks), 4)


def test_block_errors(block):
    with pytest.raises(ValueError, match=r"Block: embed_dim \(6\) should be divisible by num_heads \(4\)"):
        transformer.Block(6, 4)
    with pytest.raises(ValueError, match="Block: dropout should lie in"):
        transformer.Block(4, 2, dropout=1.0)
    with pytest.raises(ShapeError, match=r"Block.forward: x should have shape \(B, T, 8\), got \(1, 2, 4\)"):
        block(torch.randn(1, 2, 4, dtype=DT))
    with pytest.raises(ShapeError, match=r"Block.forward: kv_cache\[0\] should have shape \(1, 2, \*, 4\)"):
        block(torch.randn(1, 2, 8, dtype=DT), kv_cache=(torch.randn(1, 2, 3, 2), torch.randn(1, 2, 3, 2)))
    with pytest.raises(ShapeError, match="Block.forward: kv_cache should be None or a tuple"):
        block(torch.randn(1, 2, 8, dtype=DT), kv_cache=[1, 2])


def test_block_dropout_only_in_training():
    torch.manual_seed(0)
    b = transformer.Block(4, 1, dropout=0.5)
    x = torch.randn(1, 3, 4)
    b.eval()
    _close(b(x)[0], b(x)[0], rtol=0, atol=0)
    b.train()
    assert not torch.equal(b(x)[0], b(x)[0])
    assert math.isfinite(b(x)[0].sum().item())
