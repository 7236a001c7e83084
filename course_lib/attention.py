"""Scaled dot-product attention and multi-head attention from scratch (chapter 11).

Shapes: ``B`` batch, ``L`` query length, ``S`` key length, ``E`` model width, ``h`` heads,
``d = E / h`` the width of one head.

* :func:`scaled_dot_product_attention` - ``softmax(q k^T * scale + mask) v``, the semantics of
  ``torch.nn.functional.scaled_dot_product_attention``: a **bool** mask entry ``True`` means the
  key *takes part*, a float mask is *added* to the scores, ``is_causal`` is a top-left aligned
  lower triangle. Returns the output and the weights.
* :func:`causal_mask` - the bool (L, S) causal mask, lower-right (decoding) or top-left aligned.
* :func:`split_heads` / :func:`merge_heads` - (B, T, E) <-> (B, h, T, d): view *then* transpose.
* :func:`multi_head_attention` - ``nn.MultiheadAttention``'s forward with its parameters
  (packed ``in_proj_weight``, ``out_proj``); its masks use the *opposite* bool polarity
  (``True`` = masked), as the module's do.
* :func:`mha_params` - the parameters of an ``nn.MultiheadAttention``, named like its state_dict.

Fully masked rows (a query that may attend to no key), as measured with torch 2.13 on CPU:
``F.scaled_dot_product_attention`` returns a **zero** output row (and zero gradients), and so does
:func:`scaled_dot_product_attention` (its weights row is zero too). ``nn.MultiheadAttention``
returns **NaN** for such a row when ``need_weights=True`` (it runs a plain softmax) and a zero
attention row when ``need_weights=False`` (it calls SDPA), so its output row is ``out_proj.bias``;
its inference fast path (eval, no grad, self-attention, biases on) returns NaN again;
:func:`multi_head_attention` does the same as the module's autograd path in both cases.
"""

from __future__ import annotations

import math
from typing import Dict, Optional, Tuple

import torch
from torch import Tensor

from course_lib.validate import ShapeError

Params = Dict[str, Tensor]
ALIGNS = ("lower_right", "top_left")
MHA_KEYS = ("in_proj_weight", "in_proj_bias", "out_proj.weight", "out_proj.bias")


# --- checks ------------------------------------------------------------------------------
def _floating(fn: str, name: str, x: object, min_dim: int = 2) -> Tensor:
    if not isinstance(x, torch.Tensor):
        raise ShapeError(f"{fn}: {name} should be a torch.Tensor, got {type(x).__name__}")
    if not x.is_floating_point():
        raise ShapeError(f"{fn}: {name} should be a floating-point tensor (float32 or float64), got dtype {x.dtype}")
    if x.dim() < min_dim:
        raise ShapeError(f"{fn}: {name} should have at least {min_dim} dimensions, got shape {tuple(x.shape)}")
    return x


def _check_qkv(fn: str, q: Tensor, k: Tensor, v: Tensor) -> None:
    for name, t in (("q", q), ("k", k), ("v", v)):
        _floating(fn, name, t)
    if not (q.dtype == k.dtype == v.dtype):
        raise ShapeError(f"{fn}: q, k and v should have one dtype, got {q.dtype}, {k.dtype}, {v.dtype}")
    if q.shape[-1] != k.shape[-1]:
        raise ShapeError(f"{fn}: q (..., L, d) and k (..., S, d) should have the same last size d, "
                         f"got q {tuple(q.shape)} and k {tuple(k.shape)}")
    if k.shape[-2] != v.shape[-2]:
        raise ShapeError(f"{fn}: k (..., S, d) and v (..., S, d_v) should have the same length S, "
                         f"got k {tuple(k.shape)} and v {tuple(v.shape)}")


def _mask_to_additive(fn: str, name: str, mask: Tensor, dtype: torch.dtype, masked_is_true: bool) -> Tensor:
    """A bool or float mask as an additive float mask of ``dtype`` (0 or -inf for bool masks)."""
    if not isinstance(mask, torch.Tensor):
        raise ShapeError(f"{fn}: {name} should be a torch.Tensor or None, got {type(mask).__name__}")
    if mask.dtype == torch.bool:
        drop = mask if masked_is_true else ~mask
        return torch.zeros(mask.shape, dtype=dtype, device=mask.device).masked_fill(drop, -math.inf)
    if mask.is_floating_point():
        return mask.to(dtype)
    meaning = "True = masked" if masked_is_true else "True = takes part"
    raise ShapeError(f"{fn}: {name} should be a bool tensor ({meaning}) or a float tensor added to the scores, "
                     f"got dtype {mask.dtype}")


# --- scaled dot-product attention ----------------------------------------------------------
def causal_mask(L: int, S: Optional[int] = None, align: str = "lower_right",
                device: Optional[torch.device] = None) -> Tensor:
    """The bool causal mask (L, S), ``True`` = takes part (SDPA's polarity).

    ``align="lower_right"``: query ``i`` sees keys ``j <= i + (S - L)``, i.e. the last query sees
    every key (what decoding with a cache needs). ``align="top_left"``: query ``i`` sees keys
    ``j <= i`` (what ``is_causal=True`` does). For ``L == S`` both are the same lower triangle.
    Invert it (``~mask``) for ``nn.MultiheadAttention``, where ``True`` means masked.
    """
    fn = "causal_mask"
    S = L if S is None else S
    for name, n in (("L", L), ("S", S)):
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise ValueError(f"{fn}: {name} should be an int >= 0, got {n!r}")
    if align not in ALIGNS:
        raise ValueError(f"{fn}: align should be one of {ALIGNS}, got {align!r}")
    offset = S - L if align == "lower_right" else 0
    return torch.ones(L, S, dtype=torch.bool, device=device).tril(diagonal=offset)


def _weights(scores: Tensor, safe: bool) -> Tensor:
    """Softmax over the keys (last axis). ``safe``: a row whose scores are all -inf gets zero
    weights (and zero gradient), as torch's SDPA does; otherwise it gets NaN, as a plain softmax."""
    if not safe:
        return torch.softmax(scores, dim=-1)
    dead = torch.isneginf(scores).all(dim=-1, keepdim=True)
    if not bool(dead.any()):
        return torch.softmax(scores, dim=-1)
    return torch.softmax(scores.masked_fill(dead, 0.0), dim=-1).masked_fill(dead, 0.0)


def scaled_dot_product_attention(q: Tensor, k: Tensor, v: Tensor, attn_mask: Optional[Tensor] = None,
                                 is_causal: bool = False, scale: Optional[float] = None) -> Tuple[Tensor, Tensor]:
    r"""Attention ``softmax(q k^T * scale + M) v`` with the semantics of F.scaled_dot_product_attention.

    q (..., L, d), k (..., S, d), v (..., S, d_v); leading dimensions broadcast.
    ``attn_mask`` broadcastable to (..., L, S): bool ``True`` = takes part, float = added to the
    scores. ``is_causal``: the top-left aligned causal mask (:func:`causal_mask` with
    ``align="top_left"``); setting both is refused (torch documents it as an error).
    ``scale`` defaults to :math:`1/\sqrt{d}`.
    Returns ``(out (..., L, d_v), weights (..., L, S))``; a fully masked row gives zeros in both,
    as torch's SDPA.
    """
    fn = "scaled_dot_product_attention"
    _check_qkv(fn, q, k, v)
    if is_causal and attn_mask is not None:
        raise ValueError(f"{fn}: give either attn_mask or is_causal=True, not both (as torch documents)")
    d = q.shape[-1]
    scale = 1.0 / math.sqrt(d) if scale is None else float(scale)
    scores = (q @ k.transpose(-2, -1)) * scale                                    # (..., L, S)
    if is_causal:
        mask = causal_mask(q.shape[-2], k.shape[-2], align="top_left", device=q.device)
        scores = scores + _mask_to_additive(fn, "attn_mask", mask, q.dtype, masked_is_true=False)
    elif attn_mask is not None:
        scores = scores + _mask_to_additive(fn, "attn_mask", attn_mask, q.dtype, masked_is_true=False)
    weights = _weights(scores, safe=True)
    return weights @ v, weights


# --- heads -------------------------------------------------------------------------------
def split_heads(x: Tensor, num_heads: int) -> Tensor:
    """(B, T, E) -> (B, h, T, d) with d = E / h: ``view(B, T, h, d)`` then ``transpose(1, 2)``.

    The view cuts each token's E features into h slices of d; the transpose puts the heads before
    time. ``x.view(B, h, T, d)`` alone has the right shape but mixes positions into each head.
    """
    fn = "split_heads"
    _floating(fn, "x", x, 3)
    if x.dim() != 3:
        raise ShapeError(f"{fn}: x should have 3 dimensions (B, T, E), got shape {tuple(x.shape)}")
    if isinstance(num_heads, bool) or not isinstance(num_heads, int) or num_heads < 1:
        raise ValueError(f"{fn}: num_heads should be an int >= 1, got {num_heads!r}")
    B, T, E = x.shape
    if E % num_heads:
        raise ShapeError(f"{fn}: the width E = {E} of x (B, T, E) should be divisible by num_heads = {num_heads}")
    return x.view(B, T, num_heads, E // num_heads).transpose(1, 2)


def merge_heads(x: Tensor) -> Tensor:
    """(B, h, T, d) -> (B, T, E = h d): ``transpose(1, 2)`` then ``reshape`` (the concatenation of heads)."""
    fn = "merge_heads"
    _floating(fn, "x", x, 4)
    if x.dim() != 4:
        raise ShapeError(f"{fn}: x should have 4 dimensions (B, h, T, d), got shape {tuple(x.shape)}")
    B, h, T, d = x.shape
    return x.transpose(1, 2).reshape(B, T, h * d)


# --- multi-head attention ------------------------------------------------------------------
def mha_params(module: torch.nn.Module) -> Params:
    """The parameters of an ``nn.MultiheadAttention`` (its own tensors, so gradients reach it), named
    like its state_dict: in_proj_weight (3E, E), in_proj_bias (3E,), out_proj.weight (E, E),
    out_proj.bias (E,); the biases are absent when the module has ``bias=False``."""
    fn = "mha_params"
    if not isinstance(module, torch.nn.MultiheadAttention):
        raise TypeError(f"{fn}: module should be an nn.MultiheadAttention, got {type(module).__name__}")
    if not module._qkv_same_embed_dim or module.bias_k is not None or module.add_zero_attn:
        raise ValueError(f"{fn}: only the packed layout is implemented (kdim = vdim = embed_dim, "
                         f"add_bias_kv=False, add_zero_attn=False)")
    return {name: p for name, p in module.named_parameters() if name in MHA_KEYS}


def _check_params(fn: str, params: Params, E: int, dtype: torch.dtype) -> None:
    if not isinstance(params, dict):
        raise TypeError(f"{fn}: params should be a dict named like nn.MultiheadAttention's state_dict, "
                        f"got {type(params).__name__}")
    extra = sorted(set(params) - set(MHA_KEYS))
    if extra:
        raise ValueError(f"{fn}: params has {extra}; only {list(MHA_KEYS)} are implemented "
                         f"(the packed layout without bias_k/bias_v)")
    shapes = {"in_proj_weight": (3 * E, E), "in_proj_bias": (3 * E,), "out_proj.weight": (E, E), "out_proj.bias": (E,)}
    for name in ("in_proj_weight", "out_proj.weight"):
        if name not in params:
            raise ValueError(f"{fn}: params lacks {name!r}")
    for name, t in params.items():
        if t is None:
            continue
        _floating(fn, f"params[{name!r}]", t, 1)
        if tuple(t.shape) != shapes[name]:
            raise ShapeError(f"{fn}: params[{name!r}] should have shape {shapes[name]} (E = {E} from query), "
                             f"got {tuple(t.shape)}")
        if t.dtype != dtype:
            raise ShapeError(f"{fn}: params[{name!r}] should have the dtype of query ({dtype}), got {t.dtype}")


def _linear(x: Tensor, W: Tensor, b: Optional[Tensor]) -> Tensor:
    y = x @ W.T
    return y if b is None else y + b


def multi_head_attention(query: Tensor, key: Tensor, value: Tensor, params: Params, num_heads: int,
                         key_padding_mask: Optional[Tensor] = None, attn_mask: Optional[Tensor] = None,
                         need_weights: bool = True, average_attn_weights: bool = True, batch_first: bool = False,
                         is_causal: bool = False) -> Tuple[Tensor, Optional[Tensor]]:
    r"""The forward of ``nn.MultiheadAttention`` (no dropout) with its ``params``.

    query (L, B, E), key (S, B, E), value (S, B, E) (``batch_first``: (B, L, E), ...; unbatched:
    (L, E), (S, E), (S, E)). With :math:`W_q, W_k, W_v` the three (E, E) blocks of
    ``in_proj_weight``: :math:`Q = X_q W_q^T + b_q` (B, L, E), split into h heads (B, h, L, d),
    :math:`A = \mathrm{softmax}(Q K^T/\sqrt{d} + M)` (B, h, L, S), :math:`O = A V` merged to
    (B, L, E), then ``out_proj``. Masks in the **module's** polarity: bool ``True`` = masked,
    float = added; ``key_padding_mask`` (B, S), ``attn_mask`` (L, S) or (B*h, L, S).
    ``is_causal`` is only a hint, as in torch: ``attn_mask`` must then be given (and is used).
    Returns ``(out, weights)``: weights (B, L, S) averaged over heads, (B, h, L, S) with
    ``average_attn_weights=False``, None unless ``need_weights``. A fully masked row gives NaN
    with ``need_weights=True``; without, its attention row is zero and its output row is
    ``out_proj.bias``, as the module's autograd path.
    """
    fn = "multi_head_attention"
    for name, t in (("query", query), ("key", key), ("value", value)):
        _floating(fn, name, t)
    if isinstance(num_heads, bool) or not isinstance(num_heads, int) or num_heads < 1:
        raise ValueError(f"{fn}: num_heads should be an int >= 1, got {num_heads!r}")
    if is_causal and attn_mask is None:
        raise ValueError(f"{fn}: is_causal=True is only a hint (as in nn.MultiheadAttention): give the causal "
                         f"attn_mask too, e.g. ~causal_mask(L) (True = masked)")
    unbatched = query.dim() == 2
    want = 2 if unbatched else 3
    layout = "(L, E)" if unbatched else ("(B, L, E)" if batch_first else "(L, B, E)")
    for name, t in (("query", query), ("key", key), ("value", value)):
        if t.dim() != want:
            raise ShapeError(f"{fn}: {name} should have {want} dimensions {layout} like query, got shape {tuple(t.shape)}")
    if unbatched:
        query, key, value = query.unsqueeze(0), key.unsqueeze(0), value.unsqueeze(0)
        if key_padding_mask is not None:
            key_padding_mask = key_padding_mask.unsqueeze(0)
    elif not batch_first:
        query, key, value = query.transpose(0, 1), key.transpose(0, 1), value.transpose(0, 1)
    B, L, E = query.shape
    S = key.shape[1]
    if key.shape != (B, S, E) or value.shape != (B, S, E):
        raise ShapeError(f"{fn}: key and value should both have shape (B, S, E) = ({B}, S, {E}) in batch-first "
                         f"order, got key {tuple(key.shape)} and value {tuple(value.shape)}")
    if E % num_heads:
        raise ShapeError(f"{fn}: embed_dim E = {E} should be divisible by num_heads = {num_heads}")
    dtype, h, d = query.dtype, num_heads, E // num_heads
    _check_params(fn, params, E, dtype)
    W_q, W_k, W_v = params["in_proj_weight"].chunk(3)
    b = params.get("in_proj_bias")
    b_q, b_k, b_v = (None, None, None) if b is None else b.chunk(3)
    Q = split_heads(_linear(query, W_q, b_q), h)                                   # (B, h, L, d)
    K = split_heads(_linear(key, W_k, b_k), h)                                     # (B, h, S, d)
    V = split_heads(_linear(value, W_v, b_v), h)                                   # (B, h, S, d)
    M = torch.zeros((), dtype=dtype, device=query.device)
    if attn_mask is not None:
        am = _mask_to_additive(fn, "attn_mask", attn_mask, dtype, masked_is_true=True)
        if am.shape == (L, S):
            M = M + am
        elif am.shape == (B * h, L, S):
            M = M + am.view(B, h, L, S)
        else:
            raise ShapeError(f"{fn}: attn_mask should have shape (L, S) = ({L}, {S}) or (B*h, L, S) = "
                             f"({B * h}, {L}, {S}), got {tuple(attn_mask.shape)}")
    if key_padding_mask is not None:
        kpm = _mask_to_additive(fn, "key_padding_mask", key_padding_mask, dtype, masked_is_true=True)
        if kpm.shape != (B, S):
            raise ShapeError(f"{fn}: key_padding_mask should have shape (B, S) = ({B}, {S}), got "
                             f"{tuple(key_padding_mask.shape)}")
        M = M + kpm.view(B, 1, 1, S)
    scores = (Q @ K.transpose(-2, -1)) / math.sqrt(d) + M                          # (B, h, L, S)
    A = _weights(scores, safe=not need_weights)
    out = _linear(merge_heads(A @ V), params["out_proj.weight"], params.get("out_proj.bias"))  # (B, L, E)
    weights = None
    if need_weights:
        weights = A.mean(dim=1) if average_attn_weights else A
    if unbatched:
        return out.squeeze(0), (None if weights is None else weights.squeeze(0))
    return (out if batch_first else out.transpose(0, 1)), weights
