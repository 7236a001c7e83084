# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 11 · Exercises: attention
#
# Student sheet: <a href="https://colab.research.google.com/github/nn-from-scratch/course/blob/main/exercises/11_attention.ipynb" target="_parent"><img src="https://colab.research.google.com/assets/colab-badge.svg" alt="Open In Colab"/></a>
# · with solutions: [solutions/11_attention.ipynb](https://colab.research.google.com/github/nn-from-scratch/course/blob/main/solutions/11_attention.ipynb)
#
# Five exercises on the lecture `notebooks/11_attention.ipynb`: scaled dot-product attention with
# a boolean mask, splitting the model width into heads, a causal mask in both alignments (the
# top-left one of `is_causal=True` and the lower-right one that decoding with a cache needs), a
# **derivation** (the variance of an attention score, and why it is divided by $\sqrt{d_k}$), and
# a **debugging** exercise: a multi-head self-attention listing that runs without an error and is
# wrong in three places.
#
# Replace each `raise NotImplementedError(...)` with your code and run the `check(...)` cell below
# it: it compares your function with the course's reference on several inputs (one query, one
# head, one token, width 1, masks) and reports the first mismatch. When your answer looks like a
# typical mistake, the check names it and says which idea it gets wrong; each further failure
# shows one more hint, and `hint("11.2")` (with any question's number) asks for the next hint
# without running the check. Use plain tensor operations (`@`, `torch.softmax`, `.reshape`,
# `.transpose`, `.masked_fill`, `torch.tril`), not `course_lib.attention`; in 11.1 not
# `F.scaled_dot_product_attention` either: the point is to write attention yourself. All tensors
# are `float64`. At the end, your functions assemble a multi-head attention that is compared with
# `nn.MultiheadAttention`.

# %% tags=["setup"]
# Setup. On Colab this installs course_lib from the course repository (Colab keeps its own
# torch and ipywidgets); everywhere else it does nothing.
import sys

if "google.colab" in sys.modules:
    get_ipython().run_line_magic("pip", "install --quiet git+https://github.com/nn-from-scratch/course")

# %%
import math

import torch
import torch.nn.functional as F

from course_lib.check import check, hint, use
from course_lib.device import seed_everything

seed_everything(0)
torch.set_num_threads(1)  # small tensors: one thread is faster

# %% [markdown]
# ## 11.1 Scaled dot-product attention with a mask (2 points)
#
# Queries $Q \in \mathbb{R}^{\dots\times L\times d}$, keys $K \in \mathbb{R}^{\dots\times S\times d}$
# and values $V \in \mathbb{R}^{\dots\times S\times d_v}$ ($\dots$: any batch axes, possibly none).
# The scores, the weights and the output are
#
# $$A = \frac{Q K^\top}{\sqrt{d}} \in \mathbb{R}^{\dots\times L\times S},\qquad
# W_{ij} = \frac{\exp A_{ij}}{\sum_{j'=1}^{S} \exp A_{ij'}},\qquad
# O = W V \in \mathbb{R}^{\dots\times L\times d_v},$$
#
# where $K^\top$ transposes the last two axes. A boolean `mask` of shape $(L, S)$ or
# $(\dots, L, S)$ (it broadcasts against $A$) says which keys each query may attend to, in the
# polarity of `F.scaled_dot_product_attention`: **`True` = takes part**. A key with `False` gets
# the weight exactly 0 and the remaining weights of the row still sum to 1:
# $A_{ij} \leftarrow -\infty$ where the mask is `False`, before the softmax. `mask` may be `None`
# (no masking). In every case each query keeps at least one key. Return `(out, weights)`.

# %%
def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask=None):
    """Scaled dot-product attention. q (..., L, d), k (..., S, d), v (..., S, d_v), mask bool
    (L, S) or (..., L, S) with True = takes part, or None -> (out (..., L, d_v), weights (..., L, S))."""
    raise NotImplementedError("Exercise 11.1: replace this line with your code")


# %%
check("11.1", attention)

# %% [markdown]
# Your function (or the reference) next to PyTorch's fused `F.scaled_dot_product_attention`, with
# a causal mask in each polarity. The upper triangle is what `nn.MultiheadAttention` calls a causal
# mask (`True` = masked); handed to `F.scaled_dot_product_attention`, which reads `True` as
# "takes part", it raises nothing and lets each query see only the future.

# %%
attend = use("11.1", attention)
q, k, v = (torch.randn(2, 5, 4, dtype=torch.float64) for _ in range(3))
takes_part = torch.ones(5, 5, dtype=torch.bool).tril()  # F.scaled_dot_product_attention's polarity
masked = torch.ones(5, 5, dtype=torch.bool).triu(1)  # nn.MultiheadAttention's polarity
out, weights = attend(q, k, v, takes_part)
sdpa_error = float((out - F.scaled_dot_product_attention(q, k, v, attn_mask=takes_part)).abs().max())
trap_gap = float((F.scaled_dot_product_attention(q, k, v, attn_mask=masked) - out).abs().max())
print(f"max |yours - F.scaled_dot_product_attention| = {sdpa_error:.2e}; rows of the weights sum to "
      f"{float(weights.sum(-1).min()):.6f}..{float(weights.sum(-1).max()):.6f}")
print(f"the same call with the triu mask: no error, max difference {trap_gap:.2f}")

# %% [markdown]
# ## 11.2 Split the model width into heads (1 point)
#
# Multi-head attention with $h$ heads gives head $j$ the block of $d = E / h$ consecutive features
# $x_{b,t,\,jd:(j+1)d}$ of every token ($j = 0, \dots, h-1$), as the rows of
# `nn.MultiheadAttention`'s weights are laid out. Write `split_heads(x, num_heads)` that turns
# $x \in \mathbb{R}^{B\times T\times E}$ into $y \in \mathbb{R}^{B\times h\times T\times d}$ with
#
# $$y_{b,j,t,i} = x_{b,t,\,jd + i},\qquad i = 0, \dots, d - 1,$$
#
# so that each head holds the whole sequence of its own block. ($E$ is a multiple of $h$.)

# %%
def split_heads(x: torch.Tensor, num_heads: int) -> torch.Tensor:
    """(B, T, E) -> (B, h, T, d) with d = E / h; head j holds features j*d .. (j+1)*d - 1."""
    raise NotImplementedError("Exercise 11.2: replace this line with your code")


# %%
check("11.2", split_heads)

# %% [markdown]
# The split is undone by the transposition back and a reshape (`merge_heads`). A split done with a
# single `view` also has the right shape and also round-trips exactly through its own inverse, which
# is why nothing flags it: the tokens 0 and 1, their 4 features numbered 0..3 and 10..13, split into
# two heads.

# %%
split = use("11.2", split_heads)
tokens = torch.tensor([[[0.0, 1, 2, 3], [10, 11, 12, 13]]], dtype=torch.float64)  # (B, T, E) = (1, 2, 4)
print("split_heads, head 0:", split(tokens, 2)[0, 0].tolist(), " head 1:", split(tokens, 2)[0, 1].tolist())
print("view alone,  head 0:", tokens.view(1, 2, 2, 2)[0, 0].tolist(), " head 1:", tokens.view(1, 2, 2, 2)[0, 1].tolist())
round_trip = float((split(tokens, 2).transpose(1, 2).reshape(1, 2, 4) - tokens).abs().max())
view_round_trip = float((tokens.view(1, 2, 2, 2).reshape(1, 2, 4) - tokens).abs().max())
print(f"max |merge(split(x)) - x| = {round_trip}; the view alone and its inverse view: {view_round_trip}")

# %% [markdown]
# ## 11.3 A causal mask in both alignments (1 point)
#
# $L$ queries attend to $S$ keys at positions $0, \dots, S - 1$. A causal mask lets a query at
# position $p$ attend to the keys at positions $j \le p$, itself included. The alignment says
# where the queries sit:
#
# * `"top_left"`: query $i$ is at position $p = i$ (what `is_causal=True` does in
#   `F.scaled_dot_product_attention`);
# * `"lower_right"`: the queries are the **last** $L$ positions, query $i$ at $p = i + S - L$ (a
#   decoding step with a cache of $S - L$ earlier keys).
#
# Return the boolean $(L, S)$ mask with $M_{ij} = $ `True` when query $i$ may attend to key $j$
# ($j \le p$), in `F.scaled_dot_product_attention`'s polarity. With $L = S$ both alignments give
# the same mask. With $L > S$ under `"lower_right"` the first $L - S$ queries see no key at all.

# %%
def causal_mask(L: int, S: int, align: str) -> torch.Tensor:
    """Bool (L, S), True where query i may attend to key j; align "top_left" or "lower_right"."""
    raise NotImplementedError("Exercise 11.3: replace this line with your code")


# %%
check("11.3", causal_mask)

# %% [markdown]
# One decoding step with a cache: the newest token is query 0 of $L = 1$, and there are $S = 6$ keys.
# With `is_causal=True` PyTorch aligns the triangle top-left, so the new token attends to the first
# key only; the lower-right mask lets it see all six. Both masks for $L = 2$, $S = 5$ and the
# difference they make to one decoding step:

# %%
make_mask = use("11.3", causal_mask)
for align in ("top_left", "lower_right"):
    print(f"{align:>11}:", ["".join("x" if keep else "." for keep in row) for row in make_mask(2, 5, align).tolist()])
q1, k6, v6 = torch.randn(1, 1, 4, dtype=torch.float64), torch.randn(1, 6, 4, dtype=torch.float64), torch.randn(1, 6, 4, dtype=torch.float64)
is_causal_out = F.scaled_dot_product_attention(q1, k6, v6, is_causal=True)
top_left_out = F.scaled_dot_product_attention(q1, k6, v6, attn_mask=make_mask(1, 6, "top_left"))
full_out = F.scaled_dot_product_attention(q1, k6, v6)
print(f"one query, 6 keys: is_causal=True equals the top-left mask to {float((is_causal_out - top_left_out).abs().max()):.1e}, "
      f"equals v[0] to {float((is_causal_out - v6[:, :1]).abs().max()):.1e}, and differs from the lower-right "
      f"(= no mask) output by {float((is_causal_out - full_out).abs().max()):.2f}")

# %% [markdown]
# ## 11.4 Derive the variance of a scaled attention score (1 point)
#
# Let $q, k \in \mathbb{R}^{d_k}$ be independent, with independent zero-mean entries,
# $\operatorname{Var} q_i = \sigma_q^2$ and $\operatorname{Var} k_i = \sigma_k^2$. **Derive**
#
# $$\operatorname{Var}\Big(c \sum_{i=1}^{d_k} q_i k_i\Big)$$
#
# for a constant scale $c$, as a function of $d_k$, $\sigma_q^2$ (`var_q`), $\sigma_k^2$ (`var_k`)
# and $c$ (`scale`), and return it (a number). Then read off what $c = 1/\sqrt{d_k}$ does. The cell
# after the check measures it.

# %%
def score_variance(d_k: int, var_q: float, var_k: float, scale: float) -> float:
    """Var(scale * q . k) for independent zero-mean entries with variances var_q and var_k."""
    raise NotImplementedError("Exercise 11.4: replace this line with your code")


# %%
check("11.4", score_variance)

# %% [markdown]
# The derivation against 4,000 sampled pairs with unit variances, and what it does to attention:
# for a query over 16 keys, the largest softmax weight with and without the scale (mean over 500
# queries).
# Without it the distribution collapses onto one key as the width grows, and the softmax's
# gradient, $W_{ij}(\delta_{jj'} - W_{ij'})$, vanishes with it.

# %%
predict_var = use("11.4", score_variance)
sampler = torch.Generator().manual_seed(0)
collapse = {}
for d_k in (4, 64, 512):
    qs = torch.randn(4000, d_k, generator=sampler, dtype=torch.float64)
    ks = torch.randn(4000, d_k, generator=sampler, dtype=torch.float64)
    measured = float((qs * ks).sum(-1).var())
    keys = torch.randn(500, 16, d_k, generator=sampler, dtype=torch.float64)
    raw = (keys @ qs[:500, :, None]).squeeze(-1)  # (500, 16): 500 queries, each against its 16 keys
    collapse[d_k] = (float(torch.softmax(raw, -1).amax(-1).mean()), float(torch.softmax(raw / math.sqrt(d_k), -1).amax(-1).mean()))
    print(f"d_k = {d_k:3d}: Var(q.k) measured {measured:7.2f}, derived {predict_var(d_k, 1.0, 1.0, 1.0):7.2f}; "
          f"mean largest weight of 16: unscaled {collapse[d_k][0]:.3f}, scaled {collapse[d_k][1]:.3f}")

# %% [markdown]
# ## 11.5 Debug a multi-head self-attention (2 points)
#
# The listing below is meant to compute `nn.MultiheadAttention(E, num_heads, batch_first=True)`'s
# self-attention output, $x \in \mathbb{R}^{B\times T\times E} \to \mathbb{R}^{B\times T\times E}$,
# with that module's parameters (`params`, named like its `state_dict`: `in_proj_weight` $(3E, E)$
# stacking the query, key and value projections, `in_proj_bias` $(3E,)$, `out_proj.weight`
# $(E, E)$, `out_proj.bias` $(E,)$), and, when `causal` is true, a causal mask: token $t$ attends
# to the tokens $0, \dots, t$. It runs without an error and returns the right shape, and it has
# **three bugs**. Find them (the cell after the listing compares it with the module) and write the
# corrected function `self_attention`. You may use `F.scaled_dot_product_attention`.

# %%
def buggy_self_attention(x, params, num_heads, causal):
    B, T, E = x.shape
    d = E // num_heads
    q, k, v = (x @ params["in_proj_weight"].T + params["in_proj_bias"]).chunk(3, dim=-1)  # (B, T, E) each
    q, k, v = (t.reshape(B, num_heads, T, d) for t in (q, k, v))  # (B, h, T, d)
    q = q / math.sqrt(d)  # the scale of scaled dot-product attention
    mask = torch.triu(torch.ones(T, T, dtype=torch.bool), diagonal=1) if causal else None  # causal
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)  # (B, h, T, d)
    out = out.transpose(1, 2).reshape(B, T, E)  # heads concatenated
    return out @ params["out_proj.weight"].T + params["out_proj.bias"]


def compare_with_module(fn, E: int = 8, num_heads: int = 2, T: int = 5) -> float:
    """max |fn - nn.MultiheadAttention| on a random batch, with the module's own parameters."""
    mha = torch.nn.MultiheadAttention(E, num_heads, batch_first=True, dtype=torch.float64)
    params = {name: p.detach() for name, p in mha.state_dict().items()}
    x = torch.randn(2, T, E, dtype=torch.float64)
    causal = torch.ones(T, T, dtype=torch.bool).triu(1)  # the module's polarity: True = masked
    with torch.no_grad():
        expected, _ = mha(x, x, x, attn_mask=causal, need_weights=False)
    return float((fn(x, params, num_heads, True) - expected).abs().max())


print(f"the listing as given: max |listing - nn.MultiheadAttention| = {compare_with_module(buggy_self_attention):.3f}")


# %%
def self_attention(x: torch.Tensor, params: dict, num_heads: int, causal: bool) -> torch.Tensor:
    """nn.MultiheadAttention's self-attention, batch first: x (B, T, E) -> (B, T, E)."""
    raise NotImplementedError("Exercise 11.5: replace this line with your code")


# %%
check("11.5", self_attention)

# %% [markdown]
# ## Putting them to work
#
# Your `attention`, `split_heads` and `causal_mask` (or the references, where yours do not pass
# yet) assemble a causal multi-head self-attention: project, split, attend, merge, project. It is
# compared with `nn.MultiheadAttention` on random weights, and with your corrected listing.

# %%
fixed = use("11.5", self_attention)


def assembled(x, params, num_heads, causal):
    """Project with in_proj, split into heads, attend (lower-right = top-left here: L = S), merge, project."""
    B, T, E = x.shape
    q, k, v = (x @ params["in_proj_weight"].T + params["in_proj_bias"]).chunk(3, dim=-1)
    q, k, v = (split(t, num_heads) for t in (q, k, v))  # (B, h, T, d)
    out, _ = attend(q, k, v, make_mask(T, T, "lower_right") if causal else None)
    out = out.transpose(1, 2).reshape(B, T, E)  # merge the heads: (B, T, E)
    return out @ params["out_proj.weight"].T + params["out_proj.bias"]


torch.manual_seed(0)
errors = {"assembled": compare_with_module(assembled, E=12, num_heads=3, T=6),
          "self_attention": compare_with_module(fixed, E=12, num_heads=3, T=6)}
for name, error in errors.items():
    print(f"{name:>15}: max |yours - nn.MultiheadAttention| = {error:.2e} (B=2, T=6, E=12, h=3, causal)")
