"""Questions of sheet 13_gpt: top-k and top-p (nucleus) filtering of next-token logits, one
attention step with a key/value cache, a prediction (the memory a KV cache takes), and a
debugging question: a greedy decoding loop over ``course_lib.gpt.GPT`` with two planted bugs.

Each question carries its hint tiers and the typical mistakes (misconceptions) that
:func:`course_lib.check.check` recognises by name. The references come from
``course_lib.gpt`` and ``course_lib.attention``, imported when a reference first runs (so
importing the registry stays light).
"""

from __future__ import annotations

import copy
import math
from functools import lru_cache
from typing import Any, Callable, List, Optional, Tuple

import torch

from course_lib.questions import Case, Misconception, Question, randn

SHEET = "13_gpt"
F64 = torch.float64


# --- 13.1 top-k filtering ----------------------------------------------------------------------
def top_k_reference(logits: torch.Tensor, k: int) -> torch.Tensor:
    """The reference of 13.1: :func:`course_lib.gpt.top_k_filter`."""
    from course_lib.gpt import top_k_filter

    return top_k_filter(logits, k)


def _top_k_cases(gen: torch.Generator, hidden: bool) -> List[Case]:
    cases = [
        Case("batch of 3, V=8, k=3", (randn(gen, 3, 8, scale=2.0), 3)),
        Case("one distribution (V,) = (10,), k=4", (randn(gen, 10, scale=2.0), 4)),
        Case("k=1: greedy, batch of 2, V=6", (randn(gen, 2, 6, scale=2.0), 1)),
        Case("k=V keeps everything, batch of 2, V=5", (randn(gen, 2, 5), 5)),
        Case("(B, T, V) = (2, 3, 7), k=2", (randn(gen, 2, 3, 7, scale=3.0), 2)),
    ]
    if hidden:
        for i in range(7):
            B, V = 1 + i % 3, 2 + 3 * i
            k = 1 + (5 * i) % V
            cases.append(Case(f"batch of {B}, V={V}, k={k}", (randn(gen, B, V, scale=1.0 + i), k)))
    return cases


def _top_k_smallest(logits: torch.Tensor, k: int) -> torch.Tensor:
    threshold = logits.topk(k, dim=-1, largest=False).values[..., -1:]
    return logits.masked_fill(logits > threshold, float("-inf"))


def _top_k_zero(logits: torch.Tensor, k: int) -> torch.Tensor:
    threshold = logits.topk(k, dim=-1).values[..., -1:]
    return logits.masked_fill(logits < threshold, 0.0)


def _top_k_whole_batch(logits: torch.Tensor, k: int) -> torch.Tensor:
    threshold = logits.flatten().topk(k).values[-1]
    return logits.masked_fill(logits < threshold, float("-inf"))


# --- 13.2 top-p (nucleus) filtering --------------------------------------------------------------
def top_p_reference(logits: torch.Tensor, p: float) -> torch.Tensor:
    """The reference of 13.2: :func:`course_lib.gpt.top_p_filter`."""
    from course_lib.gpt import top_p_filter

    return top_p_filter(logits, p)


def _peaked(gen: torch.Generator, *shape: int) -> torch.Tensor:
    """Logits whose most likely token alone has most of the probability (about 0.9)."""
    z = randn(gen, *shape, scale=0.3)
    return z + 5.0 * torch.nn.functional.one_hot(torch.zeros(shape[:-1], dtype=torch.long), shape[-1]).to(F64)


def _top_p_cases(gen: torch.Generator, hidden: bool) -> List[Case]:
    cases = [
        Case("batch of 3, V=8, p=0.9", (randn(gen, 3, 8, scale=2.0), 0.9)),
        Case("one distribution (V,) = (10,), p=0.5", (randn(gen, 10, scale=2.0), 0.5)),
        Case("peaked: the top token alone crosses p=0.6, batch of 2, V=6", (_peaked(gen, 2, 6), 0.6)),
        Case("(B, T, V) = (2, 3, 7), p=0.75", (randn(gen, 2, 3, 7, scale=1.5), 0.75)),
        Case("flat logits, batch of 2, V=5, p=0.3", (randn(gen, 2, 5, scale=0.2), 0.3)),
    ]
    if hidden:
        for i in range(7):
            B, V = 1 + i % 3, 3 + 3 * i
            p = (0.2, 0.45, 0.7, 0.85, 0.95, 0.55, 0.35)[i]
            logits = _peaked(gen, B, V) if i == 3 else randn(gen, B, V, scale=0.5 + i / 2)
            cases.append(Case(f"batch of {B}, V={V}, p={p}", (logits, p)))
    return cases


def _top_p_variant(ascending: bool = False, strict: bool = False, on_logits: bool = False) -> Callable[..., torch.Tensor]:
    """A nucleus filter with the given mistakes (see the misconceptions of 13.2)."""
    def wrong(logits: torch.Tensor, p: float) -> torch.Tensor:
        values, order = logits.sort(dim=-1, descending=not ascending)
        mass = values if on_logits else values.softmax(dim=-1)
        after = mass.cumsum(dim=-1)
        keep_sorted = after <= p if strict else after - mass < p
        keep = torch.zeros_like(keep_sorted).scatter(-1, order, keep_sorted)
        return logits.masked_fill(~keep, float("-inf"))
    return wrong


# --- 13.3 one attention step with a KV cache -----------------------------------------------------
def attend_with_cache_reference(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                                cache: Optional[Tuple[torch.Tensor, torch.Tensor]] = None):
    """The reference of 13.3, from :mod:`course_lib.attention`: append the new keys and values
    (B, h, T, d) to the cache (B, h, P, d) along the time axis and attend from the T new queries to
    all P + T keys with a lower-right causal mask. Returns (out (B, h, T, d_v), (keys, values))."""
    from course_lib.attention import causal_mask, scaled_dot_product_attention

    if cache is not None:
        k, v = torch.cat([cache[0], k], dim=-2), torch.cat([cache[1], v], dim=-2)
    mask = causal_mask(q.shape[-2], k.shape[-2], align="lower_right", device=q.device)
    out, _ = scaled_dot_product_attention(q, k, v, attn_mask=mask)
    return out, (k, v)


def _kv_args(gen: torch.Generator, B: int, h: int, T: int, P: Optional[int], d: int, scale: float = 1.0) -> tuple:
    q, k, v = (randn(gen, B, h, T, d, scale=scale) for _ in range(3))
    cache = None if P is None else (randn(gen, B, h, P, d, scale=scale), randn(gen, B, h, P, d, scale=scale))
    return (q, k, v, cache)


def _kv_cases(gen: torch.Generator, hidden: bool) -> List[Case]:
    cases = [
        Case("one decoding step: B=2, h=2, T=1 new, P=4 cached, d=3", _kv_args(gen, 2, 2, 1, 4, 3)),
        Case("the prompt: cache None, B=1, h=2, T=4, d=2", _kv_args(gen, 1, 2, 4, None, 2)),
        Case("a chunk of new tokens: B=2, h=1, T=3 new, P=2 cached, d=4", _kv_args(gen, 2, 1, 3, 2, 4)),
        Case("one head of width 1: B=1, h=1, T=1 new, P=1 cached, d=1", _kv_args(gen, 1, 1, 1, 1, 1, scale=2.0)),
        Case("large scores: B=1, h=3, T=2 new, P=5 cached, d=8", _kv_args(gen, 1, 3, 2, 5, 8, scale=2.0)),
    ]
    if hidden:
        for i in range(7):
            B, h, T, P, d = 1 + i % 2, 1 + i % 3, 1 + i % 4, (None if i == 4 else 1 + (3 * i) % 6), 1 + (2 * i) % 7
            cases.append(Case(f"B={B}, h={h}, T={T} new, P={P} cached, d={d}",
                              _kv_args(gen, B, h, T, P, d, scale=(0.5, 1.0, 2.0)[i % 3])))
    return cases


def _kv_variant(align: str = "lower_right", scaled: bool = True, softmax_dim: int = -1) -> Callable[..., tuple]:
    """An attention step with a cache with the given mistakes (see the misconceptions of 13.3)."""
    def wrong(q, k, v, cache=None):
        if cache is not None:
            k, v = torch.cat([cache[0], k], dim=-2), torch.cat([cache[1], v], dim=-2)
        T, S = q.shape[-2], k.shape[-2]
        allowed = torch.ones(T, S, dtype=torch.bool).tril(S - T if align == "lower_right" else 0)
        scores = q @ k.transpose(-2, -1)
        if scaled:
            scores = scores / math.sqrt(q.shape[-1])
        weights = scores.masked_fill(~allowed, float("-inf")).softmax(dim=softmax_dim)
        return weights @ v, (k, v)
    return wrong


# --- 13.4 predict the size of a KV cache ---------------------------------------------------------
def kv_cache_bytes(num_layers: int, batch: int, length: int, embed_dim: int, num_heads: int,
                   bytes_per_value: int) -> int:
    """The reference of 13.4: the bytes of the keys and values that a decoder-only Transformer
    (``course_lib.gpt.GPT``: every layer caches k and v of shape (B, h, T, E / h)) holds after
    ``length`` positions: 2 tensors x layers x B x h x T x (E / h) values. Checked against the
    caches GPT returns in tests/test_questions_ch13.py."""
    if embed_dim % num_heads:
        raise ValueError(f"kv_cache_bytes: embed_dim should be divisible by num_heads, got {embed_dim} and {num_heads}")
    per_layer = 2 * batch * num_heads * length * (embed_dim // num_heads)
    return num_layers * per_layer * bytes_per_value


def _kv_bytes_call(func: Callable[..., Any], case: Case) -> float:
    """The student's count as a float, so that 1234 and 1234.0 count alike."""
    return float(func(*case.args, **case.kwargs))


def _kv_bytes_cases(gen: torch.Generator, hidden: bool) -> List[Case]:
    cases = [
        Case("this chapter's GPT: 2 layers, B=1, T=128, E=64, 4 heads, float32", (2, 1, 128, 64, 4, 4)),
        Case("GPT-2 small: 12 layers, B=1, T=1024, E=768, 12 heads, float16", (12, 1, 1024, 768, 12, 2)),
        Case("a batch of 8: 6 layers, T=512, E=512, 8 heads, float32", (6, 8, 512, 512, 8, 4)),
        Case("one head: 3 layers, B=2, T=10, E=16, 1 head, float64", (3, 2, 10, 16, 1, 8)),
        Case("one layer: B=4, T=256, E=256, 4 heads, bfloat16", (1, 4, 256, 256, 4, 2)),
    ]
    if hidden:
        for i in range(8):
            h = (1, 2, 4, 8, 12, 16, 3, 5)[i]
            L, B, T = 1 + (5 * i) % 24, 1 + i % 5, int(torch.randint(1, 4097, (1,), generator=gen))
            cases.append(Case(f"{L} layers, B={B}, T={T}, E={64 * h}, {h} heads", (L, B, T, 64 * h, h, (2, 4, 8)[i % 3])))
    return cases


def _kv_bytes_variant(tensors: int = 2, heads_multiply: bool = False, layers: bool = True) -> Callable[..., int]:
    """A cache-size formula with the given mistakes (see the misconceptions of 13.4)."""
    def wrong(num_layers, batch, length, embed_dim, num_heads, bytes_per_value):
        width = embed_dim * (num_heads if heads_multiply else 1)
        return tensors * (num_layers if layers else 1) * batch * length * width * bytes_per_value
    return wrong


# --- 13.5 debug a greedy decoding loop with a cache ----------------------------------------------
def greedy_reference(model: torch.nn.Module, ids: torch.Tensor, n: int) -> tuple:
    """The reference of 13.5, without a cache: at every step run ``model`` on the whole sequence so
    far and pick the most likely next token. ids (B, T0) -> (new ids (B, n), logits (B, n, V) the
    new tokens were chosen from)."""
    chosen, step_logits = [], []
    with torch.no_grad():
        for _ in range(n):
            logits, _ = model(ids)
            last = logits[:, -1]
            token = last.argmax(dim=-1, keepdim=True)
            chosen.append(token)
            step_logits.append(last)
            ids = torch.cat([ids, token], dim=1)
    return torch.cat(chosen, dim=1), torch.stack(step_logits, dim=1)


def _decode_variant(first_position: bool, drop_cache: bool) -> Callable[..., tuple]:
    """The listing of 13.5 with one or both of its bugs (see the misconceptions of 13.5)."""
    def wrong(model, ids, n):
        chosen, step_logits = [], []
        with torch.no_grad():
            logits, cache = model(ids)
            for step in range(n):
                if step > 0:
                    logits, new_cache = model(chosen[-1], kv_cache=cache)
                    if not drop_cache:
                        cache = new_cache
                last = logits[:, 0] if first_position else logits[:, -1]
                chosen.append(last.argmax(dim=-1, keepdim=True))
                step_logits.append(last)
        return torch.cat(chosen, dim=1), torch.stack(step_logits, dim=1)
    return wrong


def small_gpt(gen: torch.Generator, vocab_size: int, context: int, embed_dim: int, num_heads: int,
              num_layers: int) -> torch.nn.Module:
    """A ``course_lib.gpt.GPT`` in float64, eval mode, every parameter redrawn from ``gen``
    (N(0, 0.5^2), LayerNorm gains near 1), so its logits depend visibly on positions and context."""
    from course_lib.gpt import GPT

    model = GPT(vocab_size, context, embed_dim=embed_dim, num_heads=num_heads, num_layers=num_layers).to(F64).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            draw = torch.randn(p.shape, generator=gen, dtype=F64)
            is_gain = p.dim() == 1 and ("norm" in name or "ln" in name) and name.endswith("weight")
            p.copy_(1.0 + 0.1 * draw if is_gain else 0.5 * draw)
    return model


def decode_model(case: Case) -> torch.nn.Module:
    """The GPT of a 13.5 case: its args are plain data (the sizes and a seed, then ids and n),
    so that the batch grader can pass them to its sandbox; the model is built from them here."""
    return copy.deepcopy(_built_model(*case.args[:6]))


@lru_cache(maxsize=16)
def _built_model(V: int, context: int, E: int, h: int, L: int, seed: int) -> torch.nn.Module:
    return small_gpt(torch.Generator().manual_seed(seed), V, context, E, h, L)


def _decode_call(func: Callable[..., Any], case: Case) -> Any:
    """Build the case's GPT and call ``func(model, ids, n)``."""
    ids, n = case.args[6:]
    return func(decode_model(case), ids, n)


def _decode_cases(gen: torch.Generator, hidden: bool) -> List[Case]:
    specs = [("B=2, prompt of 3, 5 new tokens; V=11, E=8, 2 heads, 2 layers", 11, 16, 8, 2, 2, 2, 3, 5),
             ("B=1, prompt of 1, 4 new tokens; V=7, E=4, 1 head, 1 layer", 7, 8, 4, 1, 1, 1, 1, 4),
             ("B=3, prompt of 4, 3 new tokens; V=13, E=12, 3 heads, 2 layers", 13, 10, 12, 3, 2, 3, 4, 3),
             ("B=1, prompt of 2, 6 new tokens; V=9, E=8, 4 heads, 3 layers", 9, 8, 8, 4, 3, 1, 2, 6)]
    if hidden:
        specs += [(f"B={B}, prompt of {T0}, {n} new tokens; V={V}, E={E}, {h} heads, {L} layers", V, T0 + n, E, h, L, B, T0, n)
                  for V, E, h, L, B, T0, n in ((5, 6, 2, 1, 2, 2, 4), (17, 16, 4, 2, 1, 5, 3), (8, 9, 3, 2, 2, 1, 5))]
    cases = []
    for label, V, context, E, h, L, B, T0, n in specs:
        seed = int(torch.randint(0, 2**31 - 1, (1,), generator=gen))
        ids = torch.randint(0, V, (B, T0), generator=gen)
        cases.append(Case(label, (V, context, E, h, L, seed, ids, n)))
    return cases


QUESTIONS = [
    Question(
        id="13.1", sheet=SHEET, title="Top-k filtering", func_name="top_k_filter", points=1,
        reference=top_k_reference, make_cases=_top_k_cases, kind="implement",
        hints=(
            "Top-k sampling draws only among the k most likely tokens of each distribution: the others must "
            "get probability exactly 0 after the softmax, and the kept logits stay as they are.",
            "logits has shape (..., V): every row along the last axis is its own distribution and keeps its own "
            "k tokens; the result has the shape of the logits. exp(-inf) = 0, while exp(0) = 1.",
            "The k-th largest value of each row (torch.topk along dim=-1, keeping the dimension) is a threshold; "
            "entries below it are replaced (masked_fill or torch.where).",
        ),
        misconceptions=(
            Misconception(
                "the k smallest logits kept",
                "The filter keeps the k most likely tokens, those with the largest logits; keeping the least "
                "likely ones makes the sampler emit the tokens the model considers worst.",
                _top_k_smallest,
            ),
            Misconception(
                "dropped logits set to zero",
                "A logit of 0 is not a zero probability: after the softmax it weighs exp(0) = 1 like any other "
                "logit. Only minus infinity turns into probability 0.",
                _top_k_zero,
            ),
            Misconception(
                "k counted over the whole batch",
                "Each row is the next-token distribution of a different sequence, and each keeps its own k "
                "tokens; one threshold over the whole tensor lets a confident row starve the others.",
                _top_k_whole_batch,
            ),
        ),
    ),
    Question(
        id="13.2", sheet=SHEET, title="Top-p (nucleus) filtering", func_name="top_p_filter", points=2,
        reference=top_p_reference, make_cases=_top_p_cases, kind="implement",
        hints=(
            "The nucleus is the smallest set of most likely tokens whose probabilities add up to at least p; "
            "it therefore includes the token whose probability makes the running total cross p, so it is "
            "never empty.",
            "Work on probabilities (a softmax along the last axis), sorted from most to least likely, with "
            "their running sum (cumsum); keep a token when the mass of the tokens ranked above it is still "
            "below p. The sort's indices say where each kept token sits in the original order.",
            "Build a boolean keep-mask in sorted order, send it back with scatter (or index with the argsort "
            "of the order), and replace the logits outside the nucleus by minus infinity.",
        ),
        misconceptions=(
            Misconception(
                "top-p that drops the token crossing the threshold",
                "Keeping only tokens whose running total stays at or below p leaves less than p of the mass, and "
                "an empty set when the top token alone exceeds p; the nucleus of Holtzman et al. is the smallest "
                "set that reaches p, so the crossing token belongs to it.",
                _top_p_variant(strict=True),
            ),
            Misconception(
                "the nucleus grown from the least likely tokens",
                "The running total must start at the most likely token: the nucleus is the head of the "
                "distribution, and the unreliable tail is what it cuts away.",
                _top_p_variant(ascending=True),
            ),
            Misconception(
                "the running total taken over the logits",
                "p is a probability mass, so the running total adds probabilities (after a softmax), not logits, "
                "which can be negative and do not sum to 1.",
                _top_p_variant(on_logits=True),
            ),
        ),
    ),
    Question(
        id="13.3", sheet=SHEET, title="One attention step with a KV cache", func_name="attend_with_cache",
        points=2, reference=attend_with_cache_reference, make_cases=_kv_cases, kind="implement",
        hints=(
            "The cache holds the keys and values of the positions already processed; the new positions add "
            "theirs, and each new query may look at every cached position and at the new ones up to itself.",
            "Concatenate along the time axis (dim=-2) to get S = P + T keys; the scores are (B, h, T, S), and "
            "new query i sits at absolute position P + i, so it sees keys 0 .. P + i: the causal mask aligned "
            "to the lower-right corner, not the upper-left one.",
            "torch.ones(T, S, dtype=torch.bool).tril(diagonal) with the right diagonal offset gives the "
            "allowed entries; scale the scores by the square root of the key width, fill the forbidden ones "
            "with minus infinity, softmax over the keys.",
        ),
        misconceptions=(
            Misconception(
                "the causal mask aligned top-left with a cache",
                "With P cached positions the new queries are the last T of the sequence, so the mask's diagonal "
                "ends in the lower-right corner; aligned top-left (as is_causal does for T < S) a single new "
                "token attends to the first position only.",
                _kv_variant(align="top_left"),
            ),
            Misconception(
                "no 1/sqrt(d_k)",
                "Scaled dot-product attention divides the scores by the square root of the key width, which keeps "
                "their variance near 1 whatever d is; without it the softmax saturates as d grows.",
                _kv_variant(scaled=False),
            ),
            Misconception(
                "softmax over the wrong axis",
                "Each query distributes its attention over the keys, so the weights of one query (a row of the "
                "(T, S) score matrix) sum to 1; normalising along the queries mixes different positions.",
                _kv_variant(softmax_dim=-2),
            ),
        ),
    ),
    Question(
        id="13.4", sheet=SHEET, title="Predict the memory of a KV cache", func_name="kv_cache_bytes", points=1,
        reference=kv_cache_bytes, make_cases=_kv_bytes_cases, call=_kv_bytes_call, kind="predict", rtol=0.0,
        atol=0.5,
        hints=(
            "Count what every layer stores for every position of every sequence of the batch: the tensors "
            "its attention needs again at the next step, no more.",
            "In one layer the cache is a pair of tensors of shape (B, h, T, d) with d = E / h; the bytes "
            "are the number of values times bytes_per_value.",
            "Write the number of values of one layer's pair as a product of the sizes and see which size "
            "cancels; then count the layers.",
        ),
        misconceptions=(
            Misconception(
                "only the keys counted",
                "Attention needs the values of the past positions as much as their keys: the weighted sum at "
                "every step reads all of them, so the cache holds two tensors per layer.",
                _kv_bytes_variant(tensors=1),
            ),
            Misconception(
                "every head caching the full width",
                "Multi-head attention splits the model width E into h heads of width E / h, so the heads together "
                "store E numbers per position and per tensor, whatever h is.",
                _kv_bytes_variant(heads_multiply=True),
            ),
            Misconception(
                "one layer's cache only",
                "Every Transformer block has its own attention with its own keys and values of the past, so each "
                "layer keeps its own cache.",
                _kv_bytes_variant(layers=False),
            ),
        ),
    ),
    Question(
        id="13.5", sheet=SHEET, title="Debug a greedy decoding loop with a KV cache", func_name="greedy_decode",
        points=2, reference=greedy_reference, make_cases=_decode_cases, call=_decode_call, kind="debug",
        atol=1e-9,
        hints=(
            "The cached loop must produce exactly the logits that running the model on the whole sequence would: "
            "after each call, the model knows the earlier positions only through the cache you hand it, and "
            "the next token is predicted by the last position it has seen.",
            "The logits have shape (B, T, V), one next-token distribution per position fed; the prompt call "
            "feeds T0 positions, each later call one. Each call returns a cache one position longer than the "
            "one it was given, each layer's keys of shape (B, h, T_past, d).",
            "Print, at every step, which position's logits the listing reads and the length of the cache it "
            "passes to the model (dimension 2 of the first layer's keys); compare both with the length of "
            "the sequence so far.",
        ),
        misconceptions=(
            Misconception(
                "the prompt's first position read",
                "The logits at position t predict the token after position t, so the next token after the "
                "prompt comes from the prompt's last position; the first position predicts the prompt's own "
                "second token.",
                _decode_variant(first_position=True, drop_cache=False),
            ),
            Misconception(
                "the returned cache thrown away",
                "The cache the model returns holds the keys and values of the token just fed; without it the next "
                "step attends to the prompt only, forgets every generated token and places the new one right "
                "after the prompt.",
                _decode_variant(first_position=False, drop_cache=True),
            ),
            Misconception(
                "both planted bugs left in",
                "The listing has two independent bugs, one in which logits it reads and one in the cache it keeps; "
                "fixing either alone still changes the chosen tokens or their logits.",
                _decode_variant(first_position=True, drop_cache=True),
            ),
        ),
    ),
]
