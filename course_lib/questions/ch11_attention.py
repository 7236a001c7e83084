"""Questions of sheet 11_attention: scaled dot-product attention with a boolean mask, splitting
the model width into heads, a causal mask in both alignments, a derivation (the variance of a
scaled attention score) and a debugging exercise (a multi-head self-attention listing with
three bugs).

Each question carries its hint tiers and the typical mistakes (misconceptions) that
:func:`course_lib.check.check` recognises by name. The references are
:mod:`course_lib.attention`'s functions.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Dict, List, Optional

import torch

from course_lib import attention
from course_lib.questions import Case, Misconception, Question, randn, rand

SHEET = "11_attention"
F64 = torch.float64


# --- 11.1 scaled dot-product attention with a mask ------------------------------------------------
# The reference is course_lib.attention.scaled_dot_product_attention(q, k, v, attn_mask), called with
# the mask as its fourth positional argument: a bool mask in its polarity (True = takes part).


def _mixed_mask(gen: torch.Generator, *shape: int) -> torch.Tensor:
    """A random boolean mask of ``shape`` (..., L, S), S >= 2, in which every row has at least one
    True (takes part) and one False (masked): finite in both polarities."""
    mask = rand(gen, *shape) < 0.5
    order = torch.argsort(rand(gen, *shape), dim=-1)
    mask.scatter_(-1, order[..., :1], True)
    mask.scatter_(-1, order[..., 1:2], False)
    return mask


def _attention_args(gen: torch.Generator, batch: tuple, L: int, S: int, d: int, d_v: int,
                    mask: Optional[str] = None, scale: float = 1.0) -> tuple:
    """q (*batch, L, d), k (*batch, S, d), v (*batch, S, d_v) and a mask: None, "LS" (L, S)
    broadcast over the batch, "full" (*batch, L, S), or "causal" (L, S) lower triangle."""
    q, k, v = randn(gen, *batch, L, d, scale=scale), randn(gen, *batch, S, d, scale=scale), randn(gen, *batch, S, d_v)
    if mask is None:
        return (q, k, v, None)
    if mask == "causal":
        return (q, k, v, torch.ones(L, S, dtype=torch.bool).tril())
    return (q, k, v, _mixed_mask(gen, L, S) if mask == "LS" else _mixed_mask(gen, *batch, L, S))


def _attention_cases(gen: torch.Generator, hidden: bool) -> List[Case]:
    cases = [
        Case("B=2, L=3, S=4, d=2, d_v=3, no mask", _attention_args(gen, (2,), 3, 4, 2, 3)),
        Case("batch (2, 3), L=S=4, d=8: one mask (L, S) for all", _attention_args(gen, (2, 3), 4, 4, 8, 2, "LS")),
        Case("one query: B=2, L=1, S=5, d=4, mask (L, S)", _attention_args(gen, (2,), 1, 5, 4, 3, "LS")),
        Case("unbatched, d=1: L=2, S=3, no mask", _attention_args(gen, (), 2, 3, 1, 2)),
        Case("a mask per batch element (B, L, S): B=3, L=3, S=6, d=16, large scores",
             _attention_args(gen, (3,), 3, 6, 16, 4, "full", scale=2.0)),
        Case("causal mask (lower triangle, True = takes part): B=1, L=S=5, d=4", _attention_args(gen, (1,), 5, 5, 4, 4, "causal")),
    ]
    if hidden:
        for i in range(8):
            L, S, d, d_v = (int(s) for s in torch.randint(1, 7, (4,), generator=gen))
            S = max(S, 2)
            batch = ((), (2,), (2, 2), (1,))[i % 4]
            kind = (None, "LS", "full", "causal")[i % 4]
            if kind == "causal":
                S = L = max(L, 2)
            args = _attention_args(gen, batch, L, S, d, d_v, kind, scale=(0.5, 1.0, 3.0)[i % 3])
            cases.append(Case(f"batch {batch}, L={L}, S={S}, d={d}, d_v={d_v}, mask {kind}", args))
    return cases


def _attention_variant(scale: str = "sqrt", axis: int = -1, invert: bool = False,
                       mask_after: bool = False) -> Callable[..., tuple]:
    """Attention with the given mistakes (see the misconceptions of 11.1)."""
    def wrong(q, k, v, mask=None):
        d = q.shape[-1]
        scores = (q @ k.transpose(-2, -1)) / {"sqrt": math.sqrt(d), "none": 1.0, "d": float(d)}[scale]
        keep = None if mask is None else (~mask if invert else mask)
        if keep is not None and not mask_after:
            scores = scores.masked_fill(~keep, float("-inf"))
        weights = torch.softmax(scores, dim=axis)
        if keep is not None and mask_after:
            weights = weights * keep
        return weights @ v, weights
    return wrong


# --- 11.2 split the model width into heads ----------------------------------------------------------
# The reference is course_lib.attention.split_heads(x, num_heads): (B, T, E) -> (B, h, T, E/h).


def _split_cases(gen: torch.Generator, hidden: bool) -> List[Case]:
    cases = [
        Case("B=2, T=3, E=8, h=2", (randn(gen, 2, 3, 8), 2)),
        Case("B=1, T=5, E=6, h=3", (randn(gen, 1, 5, 6), 3)),
        Case("one head: B=2, T=4, E=4, h=1", (randn(gen, 2, 4, 4), 1)),
        Case("one token: B=3, T=1, E=6, h=2", (randn(gen, 3, 1, 6), 2)),
        Case("B=2, T=4, E=12, h=4 (T = h)", (randn(gen, 2, 4, 12), 4)),
        Case("one dimension per head: B=2, T=3, E=4, h=4", (randn(gen, 2, 3, 4), 4)),
    ]
    if hidden:
        for _ in range(8):
            B, T, h, d = (int(s) for s in torch.randint(1, 6, (4,), generator=gen))
            cases.append(Case(f"B={B}, T={T}, E={h * d}, h={h}", (randn(gen, B, T, h * d), h)))
    return cases


def _split_view_alone(x, num_heads):
    B, T, E = x.shape
    return x.reshape(B, num_heads, T, E // num_heads)


def _split_interleaved(x, num_heads):
    B, T, E = x.shape
    return x.reshape(B, T, E // num_heads, num_heads).permute(0, 3, 1, 2)


def _split_no_transpose(x, num_heads):
    B, T, E = x.shape
    return x.reshape(B, T, num_heads, E // num_heads)


# --- 11.3 a causal mask in both alignments ----------------------------------------------------------
# The reference is course_lib.attention.causal_mask(L, S, align): bool (L, S), True = takes part.


def _mask_cases(gen: torch.Generator, hidden: bool) -> List[Case]:
    cases = [
        Case("L=S=4, top_left", (4, 4, "top_left")),
        Case("L=S=4, lower_right", (4, 4, "lower_right")),
        Case("2 new queries, 5 keys (a KV cache): L=2, S=5, lower_right", (2, 5, "lower_right")),
        Case("one decoding query: L=1, S=6, lower_right", (1, 6, "lower_right")),
        Case("one query, top-left as is_causal=True: L=1, S=6, top_left", (1, 6, "top_left")),
        Case("L=3, S=5, top_left", (3, 5, "top_left")),
        Case("more queries than keys: L=5, S=3, lower_right", (5, 3, "lower_right")),
        Case("L=S=1, top_left", (1, 1, "top_left")),
    ]
    if hidden:
        for i in range(10):
            L, S = (int(s) for s in torch.randint(1, 9, (2,), generator=gen))
            align = ("lower_right", "top_left")[i % 2]
            cases.append(Case(f"L={L}, S={S}, {align}", (L, S, align)))
    return cases


def _mask_variant(offset: str = "right", invert: bool = False, strict: bool = False) -> Callable[..., torch.Tensor]:
    """A causal mask with the given mistakes (see the misconceptions of 11.3). ``offset``: "right"
    the correct diagonal for each alignment, "zero" always top-left, "minus" lower-right with L - S."""
    def wrong(L, S, align):
        if align == "top_left" or offset == "zero":
            diagonal = 0
        else:
            diagonal = S - L if offset == "right" else L - S
        keep = torch.ones(L, S, dtype=torch.bool).tril(diagonal - int(strict))
        return ~keep if invert else keep
    return wrong


# --- 11.4 derive the variance of an attention score -------------------------------------------------
def score_variance(d_k: int, var_q: float, var_k: float, scale: float) -> float:
    """The reference of 11.4: Var(scale * q . k) for independent q, k in R^{d_k} with independent
    zero-mean entries of variances var_q and var_k: scale^2 * d_k * var_q * var_k."""
    return scale ** 2 * d_k * var_q * var_k


def _variance_call(func: Callable[..., Any], case: Case) -> float:
    """The student's variance as a float (a number or a one-element tensor)."""
    return float(func(*case.args, **case.kwargs))


def _variance_cases(gen: torch.Generator, hidden: bool) -> List[Case]:
    cases = [
        Case("d_k=64, unit variances, no scaling", (64, 1.0, 1.0, 1.0)),
        Case("d_k=64, unit variances, scale 1/sqrt(64)", (64, 1.0, 1.0, 1 / 8)),
        Case("d_k=16, var_q=2, var_k=0.5, scale 1/4", (16, 2.0, 0.5, 0.25)),
        Case("d_k=1, var_q=3, var_k=2, scale 1", (1, 3.0, 2.0, 1.0)),
        Case("d_k=512, var_q=0.1, var_k=0.2, scale 1/sqrt(512)", (512, 0.1, 0.2, 1 / math.sqrt(512))),
        Case("d_k=8, var_q=1, var_k=4, scale 2", (8, 1.0, 4.0, 2.0)),
    ]
    if hidden:
        for _ in range(8):
            d_k = int(torch.randint(1, 1025, (1,), generator=gen))
            var_q, var_k = (float(v) for v in 0.1 + 3 * rand(gen, 2))
            scale = float(1 / math.sqrt(d_k) * (0.5 + rand(gen, 1)))
            cases.append(Case(f"d_k={d_k}, var_q={var_q:.3g}, var_k={var_k:.3g}, scale={scale:.3g}",
                              (d_k, var_q, var_k, scale)))
    return cases


def _variance_scale_once(d_k, var_q, var_k, scale):
    return scale * d_k * var_q * var_k


def _variance_added(d_k, var_q, var_k, scale):
    return scale ** 2 * d_k * (var_q + var_k)


def _variance_sqrt_dk(d_k, var_q, var_k, scale):
    return scale ** 2 * math.sqrt(d_k) * var_q * var_k


# --- 11.5 debug a multi-head self-attention -----------------------------------------------------------
def self_attention_reference(x: torch.Tensor, params: Dict[str, torch.Tensor], num_heads: int,
                             causal: bool) -> torch.Tensor:
    """The reference of 11.5: :func:`course_lib.attention.multi_head_attention` as self-attention,
    batch first, with a causal mask in nn.MultiheadAttention's polarity (True = masked) when
    ``causal``. x (B, T, E) -> (B, T, E)."""
    T = x.shape[1]
    mask = ~attention.causal_mask(T, T, align="top_left") if causal else None
    out, _ = attention.multi_head_attention(x, x, x, params, num_heads, attn_mask=mask, need_weights=False,
                                            batch_first=True)
    return out


MHA_NAMES = ("in_proj_weight", "in_proj_bias", "out_proj.weight", "out_proj.bias")
"""The parameters of nn.MultiheadAttention (its state_dict's names), in the order a case stores them."""


def mha_case_params(gen: torch.Generator, E: int) -> tuple:
    """Random parameters of nn.MultiheadAttention(E, h) in the order of MHA_NAMES, float64: a tuple,
    as the grader's sandbox passes tensors, tuples and numbers but no dicts (see :func:`_self_attention_call`)."""
    s = 1.5 / math.sqrt(E)
    return (randn(gen, 3 * E, E, scale=s), randn(gen, 3 * E, scale=0.1), randn(gen, E, E, scale=s), randn(gen, E, scale=0.1))


def self_attention_args(case: Case) -> tuple:
    """The call's arguments of a case of 11.5: (x, params as a dict named like the state_dict, num_heads, causal)."""
    x, params, num_heads, causal = case.args
    return (x, dict(zip(MHA_NAMES, params)), num_heads, causal)


def _self_attention_call(func: Callable[..., Any], case: Case) -> Any:
    """Call ``func(x, params, num_heads, causal)`` with the case's parameters as a dict."""
    return func(*self_attention_args(case))


def _self_attention_cases(gen: torch.Generator, hidden: bool) -> List[Case]:
    def case(label: str, B: int, T: int, E: int, h: int, causal: bool) -> Case:
        return Case(label, (randn(gen, B, T, E), mha_case_params(gen, E), h, causal))

    cases = [
        case("B=2, T=4, E=8, h=2, causal", 2, 4, 8, 2, True),
        case("B=1, T=5, E=6, h=3, causal", 1, 5, 6, 3, True),
        case("B=3, T=3, E=4, h=2, not causal", 3, 3, 4, 2, False),
        case("one token: B=2, T=1, E=4, h=2, causal", 2, 1, 4, 2, True),
        case("B=2, T=6, E=8, h=4, causal", 2, 6, 8, 4, True),
        case("one head: B=2, T=4, E=6, h=1, causal", 2, 4, 6, 1, True),
    ]
    if hidden:
        for i in range(8):
            B, T, h, d = (int(s) for s in torch.randint(1, 6, (4,), generator=gen))
            cases.append(case(f"B={B}, T={T}, E={h * d}, h={h}, causal={i % 3 != 0}", B, T, h * d, h, i % 3 != 0))
    return cases


def buggy_self_attention(x: torch.Tensor, params: Dict[str, torch.Tensor], num_heads: int, causal: bool,
                         view_alone: bool = True, inverted_mask: bool = True, scaled_twice: bool = True) -> torch.Tensor:
    """The listing of 11.5 with its bugs switched on (all three by default): heads split with view
    alone, a mask in nn.MultiheadAttention's polarity given to F.scaled_dot_product_attention, and
    the queries divided by sqrt(d) before a function that divides the scores by sqrt(d) itself."""
    import torch.nn.functional as F

    B, T, E = x.shape
    d = E // num_heads
    q, k, v = (x @ params["in_proj_weight"].T + params["in_proj_bias"]).chunk(3, dim=-1)
    if view_alone:
        q, k, v = (t.reshape(B, num_heads, T, d) for t in (q, k, v))
    else:
        q, k, v = (t.reshape(B, T, num_heads, d).transpose(1, 2) for t in (q, k, v))
    if scaled_twice:
        q = q / math.sqrt(d)
    mask = None
    if causal:
        masked = torch.ones(T, T, dtype=torch.bool).triu(1)
        mask = masked if inverted_mask else ~masked
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    out = out.transpose(1, 2).reshape(B, T, E)
    return out @ params["out_proj.weight"].T + params["out_proj.bias"]


def _one_bug(**bugs: bool) -> Callable[..., torch.Tensor]:
    settings = {"view_alone": False, "inverted_mask": False, "scaled_twice": False, **bugs}

    def wrong(x, params, num_heads, causal):
        return buggy_self_attention(x, params, num_heads, causal, **settings)
    return wrong


QUESTIONS = [
    Question(
        id="11.1", sheet=SHEET, title="Scaled dot-product attention with a mask", func_name="attention", points=2,
        reference=attention.scaled_dot_product_attention, make_cases=_attention_cases, kind="implement",
        hints=(
            "Each query scores every key by a dot product; the scores are scaled so that their spread does not "
            "grow with the width d, turned into one probability distribution over the KEYS per query, and the "
            "values are averaged with those probabilities. A masked key gets probability exactly 0.",
            "scores = q times k transposed over the last two axes: (..., L, S), one row per query, one column per "
            "key. The weights have the same shape and each row sums to 1; out = weights times v is (..., L, d_v). "
            "The mask (L, S) or (..., L, S) broadcasts against the scores.",
            "Masking happens BEFORE the normalisation: give the scores of the keys whose mask entry is False a "
            "value whose exponential is 0 (masked_fill with minus infinity), then normalise along dim=-1. Here "
            "True means the key takes part, as in F.scaled_dot_product_attention.",
        ),
        misconceptions=(
            Misconception(
                "no 1/sqrt(d_k)",
                "With independent unit-variance entries a dot product of width d has variance d, so unscaled scores "
                "spread out as the width grows and the softmax saturates on one key, with vanishing gradients; "
                "dividing by the square root of d brings the variance back to 1.",
                _attention_variant(scale="none"),
            ),
            Misconception(
                "scores divided by d_k",
                "The standard deviation of a width-d dot product grows like the square root of d, not like d; "
                "dividing by d over-corrects and makes the attention flatter and flatter as the width grows.",
                _attention_variant(scale="d"),
            ),
            Misconception(
                "softmax over the wrong axis",
                "Each query distributes one unit of attention over the keys, so the weights of a row (one query, "
                "all keys: the last axis) sum to 1; normalising a column makes the queries compete for each key "
                "instead, and a single query then gives every key the weight 1.",
                _attention_variant(axis=-2),
            ),
            Misconception(
                "the inverted mask",
                "In F.scaled_dot_product_attention a boolean True means the key takes part; in "
                "nn.MultiheadAttention it means masked. Reading the mask in the other polarity keeps exactly the "
                "keys that should be hidden: no error, a silently wrong result.",
                _attention_variant(invert=True),
            ),
            Misconception(
                "mask applied after the softmax",
                "Zeroing the weights of masked keys after normalising leaves rows that sum to less than 1; the "
                "masked keys still took their share of the probability. Masking must act on the scores.",
                _attention_variant(mask_after=True),
            ),
        ),
    ),
    Question(
        id="11.2", sheet=SHEET, title="Split the model width into heads", func_name="split_heads", points=1,
        reference=attention.split_heads, make_cases=_split_cases, kind="implement",
        hints=(
            "Head j owns the j-th block of d = E/h consecutive features of every token; after the split each head "
            "must see the whole sequence of its own block, so the head axis has to come before the sequence axis.",
            "(B, T, E) -> (B, T, h, d) separates the blocks inside each token without moving any number; then "
            "the head and sequence axes swap to give (B, h, T, d).",
            "A reshape only re-reads the numbers in memory order, so asking for (B, h, T, d) in one step cuts "
            "the memory into the wrong pieces; reshape to the token-major shape first, then swap axes 1 and 2.",
        ),
        misconceptions=(
            Misconception(
                "heads split with view alone",
                "Viewing (B, T, E) directly as (B, h, T, d) re-reads the memory in order, so 'head 0' gets the "
                "first T*d numbers: whole tokens' features, mixed across positions. The shape is right and "
                "nothing raises, but a head no longer sees one block of every token.",
                _split_view_alone,
            ),
            Misconception(
                "heads from interleaved dimensions",
                "Reshaping the width as (d, h) gives head j the features j, j + h, j + 2h, ...: a strided set, "
                "not the block of d consecutive features that nn.MultiheadAttention's weights assign to it.",
                _split_interleaved,
            ),
            Misconception(
                "sequence and head axes not swapped",
                "(B, T, h, d) has the right blocks, but attention multiplies the last two axes: with the "
                "sequence axis before the head axis it would mix heads, not positions.",
                _split_no_transpose,
            ),
        ),
    ),
    Question(
        id="11.3", sheet=SHEET, title="A causal mask in both alignments", func_name="causal_mask", points=1,
        reference=attention.causal_mask, make_cases=_mask_cases, kind="implement",
        hints=(
            "A query may attend to every key at its own position or earlier. With S > L the queries are the "
            "LAST L positions of the sequence (lower-right, as when decoding with a cache); top-left alignment, "
            "what is_causal=True does, numbers the queries from position 0 instead.",
            "The result is a (L, S) tensor of dtype torch.bool, True where the query takes part; query i sits "
            "at position i (top_left) or i + S - L (lower_right), key j at position j.",
            "Both masks are lower triangles of an all-True (L, S) matrix; they differ only in which diagonal "
            "is the last one kept (see the diagonal argument of torch.tril).",
        ),
        misconceptions=(
            Misconception(
                "the inverted mask",
                "True here means takes part, the polarity of F.scaled_dot_product_attention; the upper triangle "
                "is nn.MultiheadAttention's polarity (True = masked), and passing it to the other function "
                "silently lets every query see only the future.",
                _mask_variant(invert=True),
            ),
            Misconception(
                "top-left where lower-right is asked",
                "With fewer queries than keys the queries are the newest positions; a triangle started at the "
                "top-left corner lets the one new query of a decoding step see only key 0.",
                _mask_variant(offset="zero"),
            ),
            Misconception(
                "the diagonal offset with the wrong sign",
                "Query i sits at position i + S - L among S keys, so the last key it sees is S - L places to the "
                "right of the main diagonal; an offset of L - S moves the triangle the other way.",
                _mask_variant(offset="minus"),
            ),
            Misconception(
                "the diagonal excluded",
                "Causal means no FUTURE positions: a query attends to its own position too. Without the diagonal "
                "the first query has no key at all.",
                _mask_variant(strict=True),
            ),
        ),
    ),
    Question(
        id="11.4", sheet=SHEET, title="Derive the variance of a scaled attention score", func_name="score_variance",
        points=1, reference=score_variance, make_cases=_variance_cases, call=_variance_call, kind="derive",
        hints=(
            "The score is a sum of d_k products of independent zero-mean numbers: the variance of a sum of "
            "independent terms is the sum of their variances, and a constant factor comes out of a variance squared.",
            "For independent zero-mean X and Y, E[XY] = 0 and Var(XY) = E[X^2] E[Y^2]; there are d_k such terms.",
            "Write Var(c * sum_i q_i k_i) in three steps: the factor c, the sum over i, one product. Check "
            "with d_k = 1, c = 1: the answer is the product of the two variances.",
        ),
        misconceptions=(
            Misconception(
                "scale not squared",
                "Multiplying a random number by c multiplies its standard deviation by c and its variance by c^2.",
                _variance_scale_once,
            ),
            Misconception(
                "variances added",
                "The variance of a PRODUCT of independent zero-mean numbers is the product of their variances; "
                "adding applies to sums.",
                _variance_added,
            ),
            Misconception(
                "sqrt(d_k) terms",
                "The standard deviation of the sum grows like sqrt(d_k), so its variance grows like d_k: "
                "variances of independent terms add up.",
                _variance_sqrt_dk,
            ),
        ),
    ),
    Question(
        id="11.5", sheet=SHEET, title="Debug a multi-head self-attention", func_name="self_attention", points=2,
        reference=self_attention_reference, make_cases=_self_attention_cases, call=_self_attention_call,
        kind="debug",
        hints=(
            "The listing has three independent bugs, none of which raises: one in how the heads are formed, one "
            "in what the mask means to the function that receives it, one in how often the scores are scaled. "
            "Compare each line with what nn.MultiheadAttention does.",
            "Print shapes and intermediate results on a tiny input: one head (h = 1) hides the first bug, "
            "causal=False hides the second (a single token with causal=True shows it plainly: what is left of "
            "its output?), d = 1 hides the third. Compare with "
            "nn.MultiheadAttention(E, h, batch_first=True) given the same parameters.",
            "Read the documentation of torch.nn.functional.scaled_dot_product_attention for two things: what a "
            "boolean True in attn_mask means and which scale it applies by default. Then look at how q, k, v "
            "get their head axis.",
        ),
        misconceptions=(
            Misconception(
                "the listing as given",
                "All three bugs are still there: the heads, the mask polarity and the double scaling. Each gives "
                "a silently wrong result, which is why the listing ran without an error.",
                buggy_self_attention,
            ),
            Misconception(
                "heads split with view alone",
                "Viewing (B, T, E) directly as (B, h, T, d) mixes positions inside a head; the split must first "
                "separate the heads inside each token and then move the head axis before the sequence axis.",
                _one_bug(view_alone=True),
            ),
            Misconception(
                "the inverted mask",
                "F.scaled_dot_product_attention reads a boolean True as takes part; the upper triangle is the "
                "mask of nn.MultiheadAttention (True = masked). Passed as it is, each query sees only the future.",
                _one_bug(inverted_mask=True),
            ),
            Misconception(
                "scores scaled twice",
                "F.scaled_dot_product_attention already divides the scores by sqrt(d); dividing the queries too "
                "makes the distributions flatter than nn.MultiheadAttention's.",
                _one_bug(scaled_twice=True),
            ),
        ),
    ),
]
