"""The Transformer block from scratch: GELU, the feed-forward block, the encoder layer
(post-norm and pre-norm) and a pre-norm decoder-only block with a KV cache.

Shapes: B batch, T sequence length, E model width, h heads, d = E / h, F the feed-forward width.

GELU (Hendrycks & Gimpel 2016, arXiv:1606.08415), exact and with PyTorch's tanh approximation::

    gelu(x)      = x * Phi(x) = x/2 * (1 + erf(x / sqrt(2)))
    gelu_tanh(x) = x/2 * (1 + tanh(sqrt(2/pi) * (x + 0.044715 x^3)))

Feed-forward block, applied to every position independently::

    ff(x) = act(x W1^T + b1) W2^T + b2          x (..., E), W1 (F, E), W2 (E, F)

Encoder layer (Vaswani et al. 2017), with ``sa`` the multi-head self-attention::

    post-norm (norm_first=False):  x = LN1(x + sa(x));       x = LN2(x + ff(x))
    pre-norm  (norm_first=True):   x = x + sa(LN1(x));       x = x + ff(LN2(x))

Parameters are named like ``nn.TransformerEncoderLayer``'s state_dict, so
``dict(layer.named_parameters())`` can be passed unchanged; :func:`encoder_layer` equals the
module in eval mode (or with dropout 0), forward and backward (``tests/test_transformer.py``).
"""

from __future__ import annotations

import math
from typing import Dict, Optional, Tuple

import torch

from course_lib.validate import ShapeError, expect

Tensor = torch.Tensor
Params = Dict[str, Tensor]
ACTIVATIONS = ("relu", "gelu")
GELU_APPROX = ("none", "tanh")

__all__ = ["gelu", "feed_forward", "encoder_layer", "encoder_params", "Block"]


# --- GELU and the feed-forward block -----------------------------------------------------
def gelu(x: Tensor, approximate: str = "none") -> Tensor:
    """GELU, equal to ``torch.nn.functional.gelu(x, approximate=...)``; x (*) -> like x.

    ``"none"``: ``x * Phi(x) = x/2 (1 + erf(x/sqrt 2))``; ``"tanh"``:
    ``x/2 (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))``.
    """
    expect("gelu", "x", x, floating=True)
    if approximate not in GELU_APPROX:
        raise ValueError(f"gelu: approximate should be one of {GELU_APPROX}, got {approximate!r}")
    if approximate == "none":
        return 0.5 * x * (1.0 + torch.erf(x * (1.0 / math.sqrt(2.0))))
    inner = math.sqrt(2.0 / math.pi) * (x + 0.044715 * x * x * x)
    return 0.5 * x * (1.0 + torch.tanh(inner))


def _activation(fn: str, activation: str):
    if activation == "relu":
        return torch.relu
    if activation == "gelu":
        return gelu
    raise ValueError(f"{fn}: activation should be one of {ACTIVATIONS}, got {activation!r}")


def feed_forward(x: Tensor, W1: Tensor, b1: Optional[Tensor], W2: Tensor, b2: Optional[Tensor],
                 activation: str = "relu") -> Tensor:
    """The position-wise feed-forward block ``act(x W1^T + b1) W2^T + b2``.

    x (..., E), W1 (F, E), b1 (F,) or None, W2 (E, F), b2 (E,) or None -> (..., E).
    """
    fn = "feed_forward"
    act = _activation(fn, activation)
    expect(fn, "x", x, floating=True)
    if x.dim() < 1:
        raise ShapeError(f"{fn}: x should have shape (..., E), got a 0-d tensor")
    dims = {"E": int(x.shape[-1])}
    dims = expect(fn, "W1", W1, ("F", "E"), dims, floating=True)
    dims = expect(fn, "W2", W2, ("E", "F"), dims, floating=True)
    if b1 is not None:
        expect(fn, "b1", b1, ("F",), dims, floating=True)
    if b2 is not None:
        expect(fn, "b2", b2, ("E",), dims, floating=True)
    for name, t in (("W1", W1), ("b1", b1), ("W2", W2), ("b2", b2)):
        if t is not None and t.dtype != x.dtype:
            raise ShapeError(f"{fn}: {name} should have the dtype of x ({x.dtype}), got {t.dtype}")
    hidden = act(torch.nn.functional.linear(x, W1, b1))  # (..., F)
    return torch.nn.functional.linear(hidden, W2, b2)  # (..., E)


# --- the encoder layer ---------------------------------------------------------------------
_ENCODER_KEYS = ("self_attn.in_proj_weight", "self_attn.out_proj.weight", "linear1.weight", "linear2.weight",
                 "norm1.weight", "norm2.weight")


def encoder_params(module: torch.nn.Module) -> Params:
    """The parameters of an ``nn.TransformerEncoderLayer`` by state_dict name (its own tensors)."""
    return dict(module.named_parameters())


def encoder_layer(x: Tensor, params: Params, nhead: int, norm_first: bool = False, activation: str = "relu",
                  src_mask: Optional[Tensor] = None, src_key_padding_mask: Optional[Tensor] = None,
                  batch_first: bool = False, eps: float = 1e-5) -> Tensor:
    """One Transformer encoder layer, equal to ``nn.TransformerEncoderLayer`` in eval mode.

    x: (T, B, E), or (B, T, E) with ``batch_first``; params named like the module's state_dict
    (``self_attn.in_proj_weight`` (3E, E), ``self_attn.in_proj_bias`` (3E,),
    ``self_attn.out_proj.weight`` (E, E), ``self_attn.out_proj.bias`` (E,), ``linear1.weight`` (F, E),
    ``linear1.bias`` (F,), ``linear2.weight`` (E, F), ``linear2.bias`` (E,), ``norm1.weight``,
    ``norm1.bias``, ``norm2.weight``, ``norm2.bias`` (E,)); masks in nn.MultiheadAttention's
    polarity (bool ``True`` = masked): ``src_mask`` (T, T) or (B*h, T, T),
    ``src_key_padding_mask`` (B, T). Returns a tensor shaped like x.

    post-norm: ``x = LN1(x + sa(x)); x = LN2(x + ff(x))``; pre-norm (``norm_first``):
    ``x = x + sa(LN1(x)); x = x + ff(LN2(x))``.

    A query whose keys are all masked gets a zero attention output (the module's autograd path, which
    calls SDPA, does the same); torch 2.13's no-grad inference fast path returns NaN for it instead.
    """
    fn = "encoder_layer"
    from course_lib import attention
    from course_lib.norm import layer_norm

    _activation(fn, activation)  # validates the name; feed_forward applies it
    expect(fn, "x", x, ("B", "T", "E") if batch_first else ("T", "B", "E"), floating=True)
    if not isinstance(params, dict):
        raise TypeError(f"{fn}: params should be a dict named like nn.TransformerEncoderLayer's state_dict, "
                        f"got {type(params).__name__}")
    missing = [k for k in _ENCODER_KEYS if k not in params]
    if missing:
        raise KeyError(f"{fn}: params lacks {missing}; expected nn.TransformerEncoderLayer's names, "
                       f"got {sorted(params)}")
    E = int(x.shape[-1])
    if isinstance(nhead, bool) or not isinstance(nhead, int) or nhead < 1 or E % nhead:
        raise ValueError(f"{fn}: nhead should be a positive int dividing E={E}, got {nhead!r}")
    p = params.get
    attn = {k[len("self_attn."):]: v for k, v in params.items() if k.startswith("self_attn.")}

    def sa(u: Tensor) -> Tensor:
        out, _ = attention.multi_head_attention(u, u, u, attn, nhead, key_padding_mask=src_key_padding_mask,
                                                attn_mask=src_mask, need_weights=False, batch_first=batch_first)
        return out

    def ff(u: Tensor) -> Tensor:
        return feed_forward(u, params["linear1.weight"], p("linear1.bias"), params["linear2.weight"],
                            p("linear2.bias"), activation)

    def ln1(u: Tensor) -> Tensor:
        return layer_norm(u, (E,), params["norm1.weight"], p("norm1.bias"), eps)

    def ln2(u: Tensor) -> Tensor:
        return layer_norm(u, (E,), params["norm2.weight"], p("norm2.bias"), eps)

    if norm_first:
        x = x + sa(ln1(x))
        return x + ff(ln2(x))
    x = ln1(x + sa(x))
    return ln2(x + ff(x))


# --- a decoder-only block --------------------------------------------------------------------
class Block(torch.nn.Module):
    """A pre-norm decoder-only Transformer block (GPT-2 style), from course_lib pieces::

        x = x + proj(causal_attention(LN1(x)))       (B, T, E)
        x = x + W2 gelu(W1 LN2(x))                   hidden width ff_mult * E

    Attention uses :func:`course_lib.attention.scaled_dot_product_attention` with a
    lower-right causal mask (no ``nn.MultiheadAttention``). ``forward(x, kv_cache)`` returns
    ``(y, (k, v))`` with k, v (B, h, T_past + T, d), the cache for the next call; with a cache,
    the T new positions attend to the T_past cached keys and to the new keys up to their own.
    """

    def __init__(self, embed_dim: int, num_heads: int, ff_mult: int = 4, dropout: float = 0.0) -> None:
        super().__init__()
        for name, v in (("embed_dim", embed_dim), ("num_heads", num_heads), ("ff_mult", ff_mult)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"Block: {name} should be a positive int, got {v!r}")
        if embed_dim % num_heads:
            raise ValueError(f"Block: embed_dim ({embed_dim}) should be divisible by num_heads ({num_heads})")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"Block: dropout should lie in [0, 1), got {dropout!r}")
        from course_lib.norm import LayerNorm

        self.embed_dim, self.num_heads, self.head_dim = embed_dim, num_heads, embed_dim // num_heads
        self.ln1 = LayerNorm(embed_dim)
        self.qkv = torch.nn.Linear(embed_dim, 3 * embed_dim)  # (3E, E): rows q, k, v
        self.proj = torch.nn.Linear(embed_dim, embed_dim)
        self.ln2 = LayerNorm(embed_dim)
        self.fc1 = torch.nn.Linear(embed_dim, ff_mult * embed_dim)
        self.fc2 = torch.nn.Linear(ff_mult * embed_dim, embed_dim)
        self.dropout = torch.nn.Dropout(dropout)

    def attend(self, x: Tensor, kv_cache: Optional[Tuple[Tensor, Tensor]] = None
               ) -> Tuple[Tensor, Tuple[Tensor, Tensor], Tensor]:
        """Causal self-attention of normalised x (B, T, E) -> (out (B, T, E), (k, v), weights (B, h, T, S))."""
        from course_lib import attention

        h = self.num_heads
        q, k, v = self.qkv(x).split(self.embed_dim, dim=-1)  # (B, T, E) each
        q, k, v = (attention.split_heads(t, h) for t in (q, k, v))  # (B, h, T, d)
        if kv_cache is not None:
            k = torch.cat([kv_cache[0], k], dim=2)  # (B, h, T_past + T, d)
            v = torch.cat([kv_cache[1], v], dim=2)
        T, S = q.shape[2], k.shape[2]
        mask = attention.causal_mask(T, S, align="lower_right", device=x.device)  # (T, S), True = takes part
        out, weights = attention.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        return self.proj(attention.merge_heads(out)), (k, v), weights

    def forward(self, x: Tensor, kv_cache: Optional[Tuple[Tensor, Tensor]] = None
                ) -> Tuple[Tensor, Tuple[Tensor, Tensor]]:
        """x (B, T, E), kv_cache None or (k, v) each (B, h, T_past, d) -> (y (B, T, E), (k, v))."""
        fn = "Block.forward"
        expect(fn, "x", x, ("B", "T", self.embed_dim), floating=True)
        if kv_cache is not None:
            if not (isinstance(kv_cache, tuple) and len(kv_cache) == 2):
                raise ShapeError(f"{fn}: kv_cache should be None or a tuple (k, v), got {type(kv_cache).__name__}")
            spec = (int(x.shape[0]), self.num_heads, None, self.head_dim)
            expect(fn, "kv_cache[0]", kv_cache[0], spec)
            expect(fn, "kv_cache[1]", kv_cache[1], spec)
            if kv_cache[0].shape != kv_cache[1].shape:
                raise ShapeError(f"{fn}: cached k and v should have the same shape, got "
                                 f"{tuple(kv_cache[0].shape)} and {tuple(kv_cache[1].shape)}")
        a, cache, _ = self.attend(self.ln1(x), kv_cache)
        x = x + self.dropout(a)
        m = self.fc2(gelu(self.fc1(self.ln2(x))))
        return x + self.dropout(m), cache
