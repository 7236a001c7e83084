"""Questions of sheet 12_transformer: the sinusoidal position table, rotary position embedding
(RoPE) in the rotate-half layout, the backward pass of layer norm (derived), a pre-norm
Transformer block to debug, and a prediction: the parameter count of ``nn.TransformerEncoderLayer``.

Each question carries its hint tiers and the typical mistakes (misconceptions) that
:func:`course_lib.check.check` recognises by name. The references are the library's
(:mod:`course_lib.position`, :mod:`course_lib.norm`, :mod:`course_lib.transformer`); the wrong
variants below are written here, one mistake each.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Dict, List

import torch
import torch.nn.functional as F

from course_lib import norm, position, transformer
from course_lib.questions import Case, Misconception, Question, randn

SHEET = "12_transformer"
F64 = torch.float64
BASE = 10000.0


# --- 12.1 the sinusoidal table -----------------------------------------------------------------
def sinusoidal_reference(T: int, E: int, base: float = BASE) -> torch.Tensor:
    """The reference of 12.1: :func:`course_lib.position.sinusoidal_encoding` in float64, (T, E)."""
    return position.sinusoidal_encoding(T, E, base=base, dtype=F64)


def _sin_cases(gen: torch.Generator, hidden: bool) -> List[Case]:
    cases = [
        Case("T=6, E=8", (6, 8)),
        Case("one position: T=1, E=4", (1, 4)),
        Case("one pair of dims: T=5, E=2", (5, 2)),
        Case("T=50, E=16", (50, 16)),
        Case("base 100: T=10, E=6", (10, 6), {"base": 100.0}),
    ]
    if hidden:
        for i in range(6):
            T, half = (int(s) for s in torch.randint(1, 40, (2,), generator=gen))
            kw = {"base": [100.0, 10000.0, 500.0][i % 3]} if i % 2 else {}
            cases.append(Case(f"T={T}, E={2 * half}" + (f", base {kw['base']:g}" if kw else ""), (T, 2 * half), kw))
    return cases


def _sin_variant(halves: bool = False, exponent_per_dim: bool = False, swapped: bool = False) -> Callable[..., torch.Tensor]:
    """A sinusoidal table with the given mistake (see the misconceptions of 12.1)."""
    def wrong(T, E, base=BASE):
        p = torch.arange(T, dtype=F64)[:, None]
        i = torch.arange(E // 2, dtype=F64)
        angle = p * base ** (-(i if exponent_per_dim else 2 * i) / E)  # (T, E/2)
        first, second = (torch.cos(angle), torch.sin(angle)) if swapped else (torch.sin(angle), torch.cos(angle))
        if halves:
            return torch.cat((first, second), dim=1)
        return torch.stack((first, second), dim=-1).reshape(T, E)
    return wrong


# --- 12.2 RoPE, rotate-half --------------------------------------------------------------------
def rope_reference(x: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """The reference of 12.2: :func:`course_lib.position.rope` in the rotate-half layout, base 10000."""
    return position.rope(x, positions=positions, base=BASE, interleaved=False)


def _rope_cases(gen: torch.Generator, hidden: bool) -> List[Case]:
    def case(label: str, shape: tuple, start: int) -> Case:
        T = shape[-2]
        return Case(f"{label}, positions {start}..{start + T - 1}", (randn(gen, *shape), torch.arange(start, start + T)))

    cases = [
        case("x (2, 3, 5, 8) = (B, h, T, d)", (2, 3, 5, 8), 0),
        case("x (1, 4, 6): one head", (1, 4, 6), 7),
        case("one position: x (2, 1, 4)", (2, 1, 4), 3),
        case("one pair: x (3, 2) = (T, d)", (3, 2), 0),
        case("x (2, 2, 7, 16)", (2, 2, 7, 16), 100),
    ]
    cases.append(Case("unsorted positions (5, 1, 9, 2), x (1, 4, 6)",
                      (randn(gen, 1, 4, 6), torch.tensor([5, 1, 9, 2]))))
    if hidden:
        for i in range(6):
            B, T, half = (int(s) for s in torch.randint(1, 7, (3,), generator=gen))
            start = int(torch.randint(0, 50, (1,), generator=gen)) if i % 3 else 0
            cases.append(case(f"x ({B}, {T}, {2 * half})", (B, T, 2 * half), start))
    return cases


def _rope_variant(interleaved: bool = False, sign: float = 1.0, from_zero: bool = False) -> Callable[..., torch.Tensor]:
    """RoPE with the given mistake (see the misconceptions of 12.2)."""
    def wrong(x, positions):
        T, d = x.shape[-2], x.shape[-1]
        p = torch.arange(T, dtype=F64) if from_zero else positions.to(F64)
        angle = sign * p[:, None] * BASE ** (-torch.arange(0, d, 2, dtype=F64) / d)  # (T, d/2)
        cos, sin = torch.cos(angle), torch.sin(angle)
        if interleaved:
            a, b = x[..., 0::2], x[..., 1::2]
            return torch.stack((a * cos - b * sin, b * cos + a * sin), dim=-1).flatten(-2)
        a, b = x[..., : d // 2], x[..., d // 2:]
        return torch.cat((a * cos - b * sin, b * cos + a * sin), dim=-1)
    return wrong


# --- 12.3 layer norm backward --------------------------------------------------------------------
def layer_norm_backward_reference(dy: torch.Tensor, x: torch.Tensor, weight: torch.Tensor, eps: float = 1e-5):
    """The reference of 12.3: :func:`course_lib.norm.layer_norm_backward` over the last dimension."""
    return norm.layer_norm_backward(dy, x, x.shape[-1], weight, eps)


def _ln_cases(gen: torch.Generator, hidden: bool) -> List[Case]:
    def case(label: str, shape: tuple, offset: float = 0.0, scale: float = 1.0, **kw: Any) -> Case:
        x = randn(gen, *shape, scale=scale) + offset
        dy, w = randn(gen, *shape), 1 + 0.5 * randn(gen, shape[-1])
        return Case(label, (dy, x, w), kw)

    cases = [
        case("x (4, 6) = (N, E)", (4, 6)),
        case("x (2, 3, 5) = (B, T, E)", (2, 3, 5)),
        case("one sample: x (1, 8)", (1, 8)),
        case("x far from 0: (3, 4) + 100", (3, 4), offset=100.0),
        case("two features, eps=0.1: x (5, 2)", (5, 2), eps=0.1),
        case("one feature: x (3, 1) (var = 0)", (3, 1)),
    ]
    if hidden:
        for i in range(6):
            B, T, E = (int(s) for s in torch.randint(1, 7, (3,), generator=gen))
            cases.append(case(f"x ({B}, {T}, {E + 1})", (B, T, E + 1), offset=float(i), scale=[0.5, 1.0, 3.0][i % 3]))
    return cases


def _ln_variant(stats_constant: bool = False, var_constant: bool = False, weight_from_x: bool = False):
    """A layer-norm backward with the given mistake (see the misconceptions of 12.3)."""
    def wrong(dy, x, weight, eps=1e-5):
        mean = x.mean(dim=-1, keepdim=True)
        s = torch.rsqrt(((x - mean) ** 2).mean(dim=-1, keepdim=True) + eps)
        xhat = (x - mean) * s
        g = dy * weight
        if stats_constant:
            dx = g * s
        elif var_constant:
            dx = s * (g - g.mean(dim=-1, keepdim=True))
        else:
            dx = s * (g - g.mean(dim=-1, keepdim=True) - xhat * (g * xhat).mean(dim=-1, keepdim=True))
        lead = tuple(range(x.dim() - 1))
        dweight = (dy * (x if weight_from_x else xhat)).sum(dim=lead)
        return dx, dweight, dy.sum(dim=lead)
    return wrong


# --- 12.4 debug a pre-norm block -----------------------------------------------------------------
BLOCK_KEYS = ("self_attn.in_proj_weight", "self_attn.in_proj_bias", "self_attn.out_proj.weight",
              "self_attn.out_proj.bias", "linear1.weight", "linear1.bias", "linear2.weight", "linear2.bias",
              "norm1.weight", "norm1.bias", "norm2.weight", "norm2.bias")
"""The parameters of 12.4, named like nn.TransformerEncoderLayer's state_dict."""


def causal_block_mask(T: int) -> torch.Tensor:
    """(T, T) bool, True = masked (nn.MultiheadAttention's polarity): key j > query i is hidden."""
    return torch.ones(T, T, dtype=torch.bool).triu(1)


def pre_norm_block_reference(x: torch.Tensor, params: Dict[str, torch.Tensor], num_heads: int) -> torch.Tensor:
    """The reference of 12.4: a pre-norm block with causal self-attention and exact GELU, x (B, T, E)
    -> (B, T, E): :func:`course_lib.transformer.encoder_layer` with ``norm_first=True``, equal to
    ``nn.TransformerEncoderLayer(E, h, F, dropout=0, activation="gelu", batch_first=True,
    norm_first=True)`` called with the causal mask."""
    return transformer.encoder_layer(x, params, num_heads, norm_first=True, activation="gelu",
                                     src_mask=causal_block_mask(x.shape[1]), batch_first=True)


def block_params(gen: torch.Generator, E: int, F_: int) -> Dict[str, torch.Tensor]:
    """Random float64 parameters of a block of width E and feed-forward width F_ (names: BLOCK_KEYS)."""
    shapes = {"self_attn.in_proj_weight": (3 * E, E), "self_attn.in_proj_bias": (3 * E,),
              "self_attn.out_proj.weight": (E, E), "self_attn.out_proj.bias": (E,),
              "linear1.weight": (F_, E), "linear1.bias": (F_,), "linear2.weight": (E, F_), "linear2.bias": (E,),
              "norm1.weight": (E,), "norm1.bias": (E,), "norm2.weight": (E,), "norm2.bias": (E,)}
    params = {}
    for name, shape in shapes.items():
        if name.endswith("weight") and len(shape) == 2:
            params[name] = randn(gen, *shape, scale=1.5 / math.sqrt(shape[1]))
        elif name.startswith("norm") and name.endswith("weight"):
            params[name] = 1 + 0.3 * randn(gen, *shape)
        else:
            params[name] = 0.3 * randn(gen, *shape)
    return params


def _block_cases(gen: torch.Generator, hidden: bool) -> List[Case]:
    def case(B: int, T: int, E: int, h: int, F_: int, label: str = "") -> Case:
        params = block_params(gen, E, F_)  # the grader passes tensors and tuples only: _block_call makes the dict
        return Case(f"B={B}, T={T}, E={E}, {h} head(s), F={F_}{label}",
                    (randn(gen, B, T, E, scale=2.0) + 0.5, tuple(params[k] for k in BLOCK_KEYS), h))

    cases = [
        case(2, 5, 8, 2, 32),
        case(1, 4, 6, 3, 12),
        case(1, 1, 4, 1, 8, ": one position, one head"),
        case(3, 3, 4, 4, 16, ": d = 1"),
        case(2, 6, 12, 3, 24),
    ]
    if hidden:
        for _ in range(6):
            B, T, h, d = (int(s) for s in torch.randint(1, 5, (4,), generator=gen))
            cases.append(case(B, T + 1, h * d, h, 4 * h * d))
    return cases


def _block_call(func: Callable[..., Any], case: Case) -> torch.Tensor:
    """Call ``func(x, params, num_heads)`` with the case's parameter tuple as the dict named by BLOCK_KEYS."""
    x, values, num_heads = case.args
    return func(x, dict(zip(BLOCK_KEYS, values)), num_heads)


def _block_variant(view_alone: bool = False, scaled: bool = True, post_norm: bool = False) -> Callable[..., torch.Tensor]:
    """The block of 12.4 with the given bugs (all three: the sheet's ``buggy_block``)."""
    def block(x, params, num_heads):
        B, T, E = x.shape
        h, d = num_heads, E // num_heads

        def ln(u, name):
            return F.layer_norm(u, (E,), params[f"{name}.weight"], params[f"{name}.bias"], 1e-5)

        def split(t):  # (B, T, E) -> (B, h, T, d)
            return t.reshape(B, h, T, d) if view_alone else t.reshape(B, T, h, d).transpose(1, 2)

        def attend(u):
            W_q, W_k, W_v = params["self_attn.in_proj_weight"].chunk(3)
            b_q, b_k, b_v = params["self_attn.in_proj_bias"].chunk(3)
            q, k, v = split(u @ W_q.T + b_q), split(u @ W_k.T + b_k), split(u @ W_v.T + b_v)
            scores = q @ k.transpose(-2, -1)
            if scaled:
                scores = scores / math.sqrt(d)
            scores = scores.masked_fill(causal_block_mask(T), float("-inf"))
            out = torch.softmax(scores, dim=-1) @ v  # (B, h, T, d)
            out = out.reshape(B, T, E) if view_alone else out.transpose(1, 2).reshape(B, T, E)
            return out @ params["self_attn.out_proj.weight"].T + params["self_attn.out_proj.bias"]

        def ff(u):
            hidden_ = F.gelu(u @ params["linear1.weight"].T + params["linear1.bias"])
            return hidden_ @ params["linear2.weight"].T + params["linear2.bias"]

        if post_norm:
            x = ln(x + attend(x), "norm1")
            return ln(x + ff(x), "norm2")
        x = x + attend(ln(x, "norm1"))
        return x + ff(ln(x, "norm2"))
    return block


# --- 12.5 predict the parameter count ----------------------------------------------------------
def encoder_layer_parameter_count(d_model: int, nhead: int, dim_feedforward: int, bias: bool = True) -> int:
    """The reference of 12.5: the parameters of ``nn.TransformerEncoderLayer(d_model, nhead,
    dim_feedforward, bias=bias)``, counted on torch's own module built on the ``meta`` device."""
    layer = torch.nn.TransformerEncoderLayer(d_model, nhead, dim_feedforward, bias=bias, device="meta")
    return sum(p.numel() for p in layer.parameters())


def _count_call(func: Callable[..., Any], case: Case) -> float:
    """The student's count as a float, so that 1234 and 1234.0 count alike (1234.5 does not)."""
    return float(func(*case.args, **case.kwargs))


def _count_cases(gen: torch.Generator, hidden: bool) -> List[Case]:
    cases = [
        Case("nn.TransformerEncoderLayer(512, 8, 2048): the base model of Vaswani et al.", (512, 8, 2048)),
        Case("nn.TransformerEncoderLayer(64, 4, 256)", (64, 4, 256)),
        Case("nn.TransformerEncoderLayer(6, 1, 10): one head", (6, 1, 10)),
        Case("nn.TransformerEncoderLayer(32, 2, 128, bias=False)", (32, 2, 128), {"bias": False}),
        Case("nn.TransformerEncoderLayer(1, 1, 1)", (1, 1, 1)),
        Case("nn.TransformerEncoderLayer(768, 12, 3072, bias=False)", (768, 12, 3072), {"bias": False}),
    ]
    if hidden:
        for i in range(8):
            h, d, F_ = (int(s) for s in torch.randint(1, 65, (3,), generator=gen))
            kw = {"bias": False} if i % 3 == 2 else {}
            cases.append(Case(f"nn.TransformerEncoderLayer({h * d}, {h}, {F_}{', bias=False' if kw else ''})",
                              (h * d, h, F_), kw))
    return cases


def _count_variant(per_head: bool = False, norms: bool = True, biases: bool = True, out_proj: bool = True):
    """A closed-form count with the given mistake (see the misconceptions of 12.5)."""
    def wrong(d_model, nhead, dim_feedforward, bias=True):
        E, F_ = d_model, dim_feedforward
        b = bias and biases
        copies = nhead if per_head else 1
        total = copies * 3 * (E * E + (E if b else 0))  # q, k, v
        total += (E * E + (E if b else 0)) if out_proj else 0
        total += E * F_ + F_ * E + ((F_ + E) if b else 0)  # linear1, linear2
        total += 2 * (E + (E if b else 0)) if norms else 0  # norm1, norm2
        return total
    return wrong


QUESTIONS = [
    Question(
        id="12.1", sheet=SHEET, title="The sinusoidal position table", func_name="sinusoidal_encoding", points=1,
        reference=sinusoidal_reference, make_cases=_sin_cases, kind="implement",
        hints=(
            "Each pair of dimensions is one clock: a sine and a cosine of the same angle, which grows with the "
            "position at a rate that falls geometrically from pair to pair, from 1 down to about 1/base.",
            "Build a (T, 1) column of positions and an (E/2,) row of rates; their product broadcasts to the (T, E/2) "
            "angles. Pair i fills columns 2i and 2i + 1 of the (T, E) result.",
            "The rate of pair i is base raised to minus (2i / E), with i = 0 .. E/2 - 1. Write the sines into the even "
            "columns with a slice of step 2 starting at 0, the cosines with one starting at 1.",
        ),
        misconceptions=(
            Misconception(
                "sin and cos in two halves",
                "Vaswani et al. interleave the two: column 2i holds the sine and column 2i + 1 the cosine of the same "
                "angle, so each adjacent pair is one rotating point; putting all sines first is a permutation of the "
                "columns, a different table.",
                _sin_variant(halves=True),
            ),
            Misconception(
                "exponent i/E instead of 2i/E",
                "The exponent counts dimensions, and pair i starts at dimension 2i, so the rates go from 1 to about "
                "1/base across the whole width; with i/E they only reach 1/sqrt(base), and the slow clocks are missing.",
                _sin_variant(exponent_per_dim=True),
            ),
            Misconception(
                "cos on even dimensions, sin on odd",
                "At position 0 every sine is 0 and every cosine is 1; the paper puts the sine in the even columns, "
                "so row 0 of the table reads 0, 1, 0, 1, ...",
                _sin_variant(swapped=True),
            ),
        ),
    ),
    Question(
        id="12.2", sheet=SHEET, title="Rotary position embedding, rotate-half layout", func_name="rope", points=2,
        reference=rope_reference, make_cases=_rope_cases, kind="implement",
        hints=(
            "RoPE turns each pair of coordinates of a query or key by an angle proportional to its position, a "
            "different rate per pair; a rotation keeps lengths, and the dot product of two rotated vectors then "
            "depends only on the difference of their positions.",
            "x is (..., T, d): the two halves x[..., :d/2] and x[..., d/2:] are the two coordinates of d/2 pairs. "
            "The angles are (T, d/2): one position per row from `positions`, one rate per pair.",
            "For pair j with coordinates (a, b) and angle t, the rotated pair is (a cos t - b sin t, a sin t + b cos t); "
            "the rate of pair j is 10000 raised to minus (2j / d). Concatenate the two new halves along the last axis.",
        ),
        misconceptions=(
            Misconception(
                "adjacent pairs where rotate-half is asked",
                "The rotate-half layout (Hugging Face's GPT-NeoX and Llama, torch.onnx.ops.rotary_embedding(interleaved=False)) pairs "
                "dimension j with dimension j + d/2; pairing neighbours (2i, 2i + 1) is the paper's interleaved "
                "layout, which is the same rotation applied to permuted coordinates.",
                _rope_variant(interleaved=True),
            ),
            Misconception(
                "rotation in the wrong direction",
                "A positive angle turns the pair (a, b) counter-clockwise, so the first coordinate loses b sin t and "
                "the second gains a sin t; flipping both signs rotates by minus the angle.",
                _rope_variant(sign=-1.0),
            ),
            Misconception(
                "positions ignored: counting from 0",
                "The angle uses the token's actual position; with a KV cache, a chunk of new tokens starts at the "
                "length of the cache, not at 0, and positions need not even be sorted.",
                _rope_variant(from_zero=True),
            ),
        ),
    ),
    Question(
        id="12.3", sheet=SHEET, title="Derive the backward pass of layer norm", func_name="layer_norm_backward",
        points=3, reference=layer_norm_backward_reference, make_cases=_ln_cases, kind="derive",
        hints=(
            "Every input of a row reaches every output of that row three ways: directly, through the row's mean "
            "and through its variance. The chain rule needs all three paths.",
            "Per row of E features, write s = 1 / sqrt(var + eps), xhat = (x - mean) s and g = dy * weight, all shaped "
            "like x. dx is shaped like x; dweight and dbias are (E,), summed over every leading dimension.",
            "Differentiate xhat with respect to x, treating mean and var as functions of x (d var / d x_k = "
            "2 (x_k - mean) / E), and collect the terms: dx is s times g corrected by two row means, one from "
            "each path through the statistics. Each correction is the component of g that the normalisation "
            "cannot pass on; work out which two directions of a row those are.",
        ),
        misconceptions=(
            Misconception(
                "mean and variance treated as constants",
                "The mean and the variance are computed from the same row of x, so moving one input moves both; "
                "dropping those paths leaves only the direct term, and the gradient no longer sums to zero over a row.",
                _ln_variant(stats_constant=True),
            ),
            Misconception(
                "variance treated as a constant",
                "The variance depends on x as well as the mean; its path removes from the gradient the component "
                "along xhat (a uniform rescaling of a row does not change the output).",
                _ln_variant(var_constant=True),
            ),
            Misconception(
                "weight gradient from x instead of the normalised x",
                "The weight multiplies the normalised row, xhat, not the raw input; its gradient sums dy times what "
                "it multiplied, over every leading dimension.",
                _ln_variant(weight_from_x=True),
            ),
        ),
    ),
    Question(
        id="12.4", sheet=SHEET, title="Debug a pre-norm Transformer block", func_name="pre_norm_block", points=3,
        reference=pre_norm_block_reference, make_cases=_block_cases, call=_block_call, kind="debug",
        hints=(
            "The listing has three bugs: one in how the heads are formed (and merged back), one in how the scores "
            "are scaled, one in where the layer norms sit. Compare each line with the block's formulas.",
            "x (B, T, E) must become (B, h, T, d) with head k reading features k d .. (k + 1) d - 1 of every token; "
            "print the shapes and check which axis the causal mask lands on. In a pre-norm block the residual "
            "stream itself is never normalised.",
            "Split into (B, T, h, d) first and then swap two axes (and the reverse to merge); divide the scores "
            "by the square root of the head width; normalise the input of each sublayer, not the sum.",
        ),
        misconceptions=(
            Misconception(
                "heads split with view alone",
                "A view (or reshape) of (B, T, E) to (B, h, T, d) keeps the memory order, so a 'head' gets a "
                "contiguous run of T * d numbers spanning several tokens, and the causal mask then hides the wrong "
                "entries; the head axis must come out of E and then move before T.",
                _block_variant(view_alone=True),
            ),
            Misconception(
                "no 1/sqrt(d_k)",
                "The dot product of two d-dimensional vectors with unit-variance entries has variance d; without "
                "the scale the softmax saturates as the head grows and its gradients vanish.",
                _block_variant(scaled=False),
            ),
            Misconception(
                "post-norm where pre-norm is asked",
                "A pre-norm block normalises each sublayer's input and adds its output to an unnormalised residual "
                "stream; normalising after the addition (the original Transformer's post-norm) is a different "
                "function and trains differently in deep stacks.",
                _block_variant(post_norm=True),
            ),
        ),
    ),
    Question(
        id="12.5", sheet=SHEET, title="Predict the parameters of a Transformer layer",
        func_name="encoder_layer_parameter_count", points=1, reference=encoder_layer_parameter_count,
        make_cases=_count_cases, call=_count_call, kind="predict",
        hints=(
            "List the layer's weight tensors: the attention's input projection for queries, keys and values, its "
            "output projection, the two linear maps of the feed-forward block, and the two layer norms.",
            "The heads share one (3E, E) input projection, each head reading d = E / h of its rows, so the count "
            "does not depend on h. With bias=False, no linear map and no layer norm has a bias.",
            "Add the shapes: (3E, E) and (E, E) for attention, (F, E) and (E, F) for the feed-forward block, and "
            "vectors of length 3E, E, F, E and four of length E for the biases and the norms' scales and shifts.",
        ),
        misconceptions=(
            Misconception(
                "every head with its own E x E projections",
                "Multi-head attention splits one E-wide projection into h heads of width E / h; the heads share the "
                "parameter budget, so the count does not grow with h.",
                _count_variant(per_head=True),
            ),
            Misconception(
                "layer norms not counted",
                "Each of the two layer norms has a learned scale (and, with bias=True, a shift) of length E per "
                "layer norm.",
                _count_variant(norms=False),
            ),
            Misconception(
                "biases not counted",
                "With bias=True (the default) every linear map and both layer norms carry a bias vector: the "
                "attention's 3E and E, the feed-forward block's F and E, the norms' 2E.",
                _count_variant(biases=False),
            ),
            Misconception(
                "the output projection not counted",
                "After the heads are concatenated, multi-head attention applies one more (E, E) linear map with "
                "its bias, out_proj, which mixes the heads.",
                _count_variant(out_proj=False),
            ),
        ),
    ),
]
