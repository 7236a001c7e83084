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
# # 13 · Exercises: decoding a small GPT
#
# Student sheet: <a href="https://colab.research.google.com/github/nn-from-scratch/course/blob/main/exercises/13_gpt.ipynb" target="_parent"><img src="https://colab.research.google.com/assets/colab-badge.svg" alt="Open In Colab"/></a>
# · with solutions: [solutions/13_gpt.ipynb](https://colab.research.google.com/github/nn-from-scratch/course/blob/main/solutions/13_gpt.ipynb)
#
# Five exercises on the lecture `notebooks/13_gpt.ipynb`, all about turning a trained language
# model into text: the **top-k** and **top-p** (nucleus) filters that decide which tokens may be
# sampled, one attention step with a **key/value cache**, a **prediction** (how many bytes the
# cache of a model takes, before measuring it), and a **debugging** question: a greedy decoding
# loop with a cache that runs without an error and still produces the wrong text.
#
# Replace each `raise NotImplementedError(...)` with your code and run the `check(...)` cell below
# it: it compares your function with the course's reference on several inputs (a single
# distribution, a batch, k = 1, a peaked distribution, an empty cache, one head of width 1) and
# reports the first mismatch. When your answer looks like a typical mistake, the check names it
# and says which idea it gets wrong; each further failure shows one more hint, and `hint("13.2")`
# (with any question's number) asks for the next hint without running the check. Use plain
# tensor operations (`torch.topk`, `torch.sort`, `torch.cumsum`, `scatter`, `@`, `softmax`), not
# `course_lib.gpt` or `course_lib.attention`: the point is to write them yourself. Tensors are
# `float64`. At the end, your functions decode from a small `course_lib.gpt.GPT` next to the
# library's own decoder.

# %% tags=["setup"]
# Setup. On Colab this installs course_lib from the course repository (Colab keeps its own
# torch and ipywidgets); everywhere else it does nothing.
import sys

if "google.colab" in sys.modules:
    get_ipython().run_line_magic("pip", "install --quiet git+https://github.com/nn-from-scratch/course")

# %%
import math

import torch

from course_lib.check import check, hint, use
from course_lib.device import seed_everything

seed_everything(0)
torch.set_num_threads(1)  # small tensors: one thread is faster

# %% [markdown]
# ## 13.1 Top-k filtering (1 point)
#
# A language model gives logits $z \in \mathbb{R}^{V}$ for the next token, one row per sequence:
# `logits` has shape $(\dots, V)$. **Top-k sampling** draws only among the $k$ tokens with the
# largest logits of each row. Write the filter that prepares it: with $\tau_k$ the $k$-th largest
# entry of the row,
#
# $$\operatorname{top}_k(z)_j = \begin{cases} z_j & z_j \ge \tau_k \\ -\infty & \text{otherwise,}
# \end{cases}$$
#
# so that $\operatorname{softmax}(\operatorname{top}_k(z))$ puts probability exactly 0 on every
# other token. Return a tensor of the shape of `logits`; $1 \le k \le V$, and $k = V$ keeps every
# token. (Ties with $\tau_k$ are kept; the check's logits have none.)

# %%
def top_k_filter(logits: torch.Tensor, k: int) -> torch.Tensor:
    """logits (..., V) -> (..., V): the k largest entries of each row kept, the others -inf."""
    raise NotImplementedError("Exercise 13.1: replace this line with your code")


# %%
check("13.1", top_k_filter)

# %% [markdown]
# ## 13.2 Top-p (nucleus) filtering (2 points)
#
# A fixed $k$ is too many tokens where the model is sure and too few where it is not. **Nucleus
# sampling** (Holtzman, Buys, Du, Forbes and Choi, "The Curious Case of Neural Text
# Degeneration", ICLR 2020, arXiv:1904.09751) keeps instead the smallest set of most likely
# tokens whose total probability reaches $p$. With $\pi = \operatorname{softmax}(z)$ sorted in
# decreasing order, $\pi_{(1)} \ge \pi_{(2)} \ge \dots \ge \pi_{(V)}$, the nucleus is the first
# $m$ tokens of that order, with
#
# $$m = \min\Big\{\, m' : \sum_{i=1}^{m'} \pi_{(i)} \ge p \Big\},$$
#
# so the token whose probability makes the running total cross $p$ **belongs to the nucleus**,
# and the nucleus is never empty (when the most likely token alone has probability $\ge p$, it is
# the whole nucleus). Return the logits with every token outside the nucleus set to $-\infty$,
# the kept logits unchanged, in the original order of the vocabulary; $0 < p < 1$.

# %%
def top_p_filter(logits: torch.Tensor, p: float) -> torch.Tensor:
    """logits (..., V) -> (..., V): the nucleus of each row (smallest most-likely set with mass
    >= p, the crossing token included) kept, the others -inf."""
    raise NotImplementedError("Exercise 13.2: replace this line with your code")


# %%
check("13.2", top_p_filter)

# %% [markdown]
# How many tokens each filter keeps on a peaked and on a flat distribution over $V = 50$ tokens
# (logits $z_j = -j/\beta$, $j = 0, \dots, 49$): top-k keeps $k$ whatever the model believes,
# the nucleus adapts to it.

# %%
k_filter, p_filter = use("13.1", top_k_filter), use("13.2", top_p_filter)
ranks = torch.arange(50, dtype=torch.float64)
nucleus_sizes = {}
for name, beta in (("peaked", 2.0), ("flat", 20.0)):
    z = -ranks / beta
    top_prob = float(torch.softmax(z, -1)[0])
    nucleus_sizes[name] = {p: int(torch.isfinite(p_filter(z, p)).sum()) for p in (0.5, 0.9, 0.99)}
    print(f"{name:6s} (top token {top_prob:.2f}): top-k keeps {int(torch.isfinite(k_filter(z, 10)).sum())} "
          f"(k = 10); top-p keeps " + ", ".join(f"{n} (p = {p})" for p, n in nucleus_sizes[name].items()))

# %% [markdown]
# ## 13.3 One attention step with a KV cache (2 points)
#
# A GPT generates one token at a time. Recomputing the keys and values of the whole sequence at
# every step repeats work: the keys and values of the past positions do not change, so a
# decoder keeps them in a **KV cache** and computes $q, k, v$ for the new positions only.
#
# Write one causal attention step with a cache. The $T$ new positions bring
# $q, k, v \in \mathbb{R}^{B\times h\times T\times d}$ (batch, heads, positions, head width);
# `cache` is `None` (nothing processed yet) or a pair `(k_past, v_past)` of shape
# $(B, h, P, d)$ for the $P$ positions already processed. Append the new keys and values to the
# cached ones along the positions, $K = [K_{\text{past}}; k]$, $V = [V_{\text{past}}; v]$ with
# $S = P + T$ rows, and attend:
#
# $$\operatorname{out} = \operatorname{softmax}\!\Big(\frac{q K^\top}{\sqrt{d}} + M\Big) V
# \in \mathbb{R}^{B\times h\times T\times d}, \qquad
# M_{ij} = \begin{cases} 0 & j \le P + i \\ -\infty & \text{otherwise,} \end{cases}
# \quad i = 0..T-1,\ j = 0..S-1,$$
#
# the softmax over the keys (the last axis). New query $i$ stands at position $P + i$ of the
# sequence, so it sees every cached position and the new ones up to itself: the causal mask
# aligned to the **lower-right** corner of the $(T, S)$ score matrix. Return
# `(out, (K, V))`: the output and the cache for the next step.

# %%
def attend_with_cache(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, cache=None):
    """q, k, v (B, h, T, d) for T new positions; cache None or (k_past, v_past), each (B, h, P, d)
    -> (out (B, h, T, d), (keys, values) each (B, h, P + T, d))."""
    raise NotImplementedError("Exercise 13.3: replace this line with your code")


# %%
check("13.3", attend_with_cache)

# %% [markdown]
# Decoding with the cache must give what attention over the whole sequence gives. Below, your
# function processes a sequence of 7 positions as a prompt of 3 and then one position at a time;
# the reference is one causal attention over all 7 positions at once.

# %%
attend = use("13.3", attend_with_cache)
gen = torch.Generator().manual_seed(1)
q_all, k_all, v_all = (torch.randn(2, 4, 7, 8, generator=gen, dtype=torch.float64) for _ in range(3))
future_all = torch.ones(7, 7, dtype=torch.bool).triu(1)
full = torch.softmax((q_all @ k_all.transpose(2, 3) / math.sqrt(8)).masked_fill(future_all, -math.inf), -1) @ v_all
pieces, kv = [], None
for start, stop in ((0, 3), (3, 4), (4, 5), (5, 6), (6, 7)):
    out, kv = attend(q_all[:, :, start:stop], k_all[:, :, start:stop], v_all[:, :, start:stop], kv)
    pieces.append(out)
cache_error = float((torch.cat(pieces, dim=2) - full).abs().max())
print(f"prompt of 3, then 4 single steps: max |cached - full| = {cache_error:.1e}; cache now {tuple(kv[0].shape)}")

# %% [markdown]
# ## 13.4 Predict the memory of a KV cache (1 point)
#
# In a GPT with `num_layers` blocks, model width $E$ (`embed_dim`) and $h$ heads of width
# $d = E/h$, each block's attention caches the keys and the values of every processed position
# of every sequence of the batch, in the model's number format (`bytes_per_value`: 4 for
# float32, 2 for float16 and bfloat16). **Before building anything**, derive how many bytes the
# cache holds after `length` positions, for a batch of `batch` sequences, and return that number
# (an `int`). The cell after the check builds a GPT and weighs its real cache. For scale:
# GPT-2 small (Radford et al., 2019) has 12 layers, $E = 768$, 12 heads and a context of 1024
# tokens.

# %%
def kv_cache_bytes(num_layers: int, batch: int, length: int, embed_dim: int, num_heads: int,
                   bytes_per_value: int) -> int:
    """The bytes of a decoder's KV cache after `length` positions of `batch` sequences."""
    raise NotImplementedError("Exercise 13.4: replace this line with your code")


# %%
check("13.4", kv_cache_bytes)

# %% [markdown]
# The cache of a real `course_lib.gpt.GPT` (3 layers, $E = 32$, 4 heads, float32) after a prompt
# of 20 tokens in a batch of 2, weighed, next to your prediction (or the reference's), and what
# the formula says for GPT-2 small at its full context.

# %%
from course_lib.gpt import GPT

predict_bytes = use("13.4", kv_cache_bytes)
seed_everything(0)
gpt = GPT(vocab_size=40, context=32, embed_dim=32, num_heads=4, num_layers=3).eval()
with torch.no_grad():
    _, prompt_cache = gpt(torch.randint(0, 40, (2, 20)))
weighed = sum(k.nbytes + v.nbytes for k, v in prompt_cache)
print(f"GPT(3 layers, E=32, 4 heads), B=2, T=20: cache of {weighed} bytes weighed, "
      f"{predict_bytes(3, 2, 20, 32, 4, 4)} predicted; one layer's keys {tuple(prompt_cache[0][0].shape)}")
gpt2_mib = predict_bytes(12, 1, 1024, 768, 12, 2) / 2**20
print(f"GPT-2 small, one sequence of 1024 tokens in float16: {gpt2_mib:.0f} MiB of cache")

# %% [markdown]
# ## 13.5 Debug a greedy decoding loop with a KV cache (2 points)
#
# `course_lib.gpt.GPT` is called as `model(ids, kv_cache=None)` with `ids` of shape $(B, T)$ and
# returns `(logits, cache)`: logits $(B, T, V)$, one next-token distribution per position fed,
# and the cache after these positions (a list with one `(k, v)` pair per layer). With a cache it
# places the new tokens right after the cached ones. A colleague wrote this greedy decoder; it
# runs without an error, yet its text differs from what running the model on the whole
# sequence at every step produces:

# %%
def buggy_greedy_decode(model, ids, n):
    """ids (B, T0) -> (n new ids (B, n), the logits they were chosen from (B, n, V))."""
    chosen, step_logits = [], []
    with torch.no_grad():
        logits, cache = model(ids)  # the prompt
        for step in range(n):
            if step > 0:
                logits, _ = model(chosen[-1], kv_cache=cache)  # the previous new token
            last = logits[:, 0]
            chosen.append(last.argmax(dim=-1, keepdim=True))
            step_logits.append(last)
    return torch.cat(chosen, dim=1), torch.stack(step_logits, dim=1)


# %% [markdown]
# Find the bugs (printing the shapes of `logits` and of the cache's tensors at each step helps)
# and write the repaired `greedy_decode` with the same signature and outputs: the $n$ chosen
# tokens $(B, n)$ and, for each, the logits $(B, n, V)$ it was the `argmax` of. Keep the cache:
# each step must feed the model one token. The check compares your logits with those of a
# decoder that reruns the model on the whole sequence at every step, on small GPTs in float64.

# %%
def greedy_decode(model, ids, n):
    """ids (B, T0) -> (n new ids (B, n), the logits they were chosen from (B, n, V)), with a KV cache."""
    raise NotImplementedError("Exercise 13.5: replace this line with your code")


# %%
check("13.5", greedy_decode)

# %% [markdown]
# ## Putting them to work
#
# Your decoder (or the reference's, while yours does not pass) next to the library's greedy
# `course_lib.gpt.generate(..., temperature=0)`, with and without the cache, on the GPT of 13.4;
# then your filters choose the sampling distribution of one step: the number of tokens each
# leaves to the sampler. The GPT is untrained, so its logits are nearly equal (its weights start
# at a standard deviation of 0.02); the last step divides them by a temperature of 0.05 first.

# %%
from course_lib import gpt as gpt_lib

decode = use("13.5", greedy_decode)
prompt = torch.randint(0, 40, (2, 5), generator=torch.Generator().manual_seed(2))
mine, mine_logits = decode(gpt, prompt, 8)
library = {cache: gpt_lib.generate(gpt, prompt, 8, temperature=0, use_cache=cache)[:, 5:] for cache in (True, False)}
same_tokens = all(torch.equal(mine, tokens) for tokens in library.values())
print(f"8 greedy tokens for 2 prompts: yours {mine.tolist()}; equal to generate with and without the cache: {same_tokens}")
last_logits = mine_logits[:, -1] / 0.05  # a sharper distribution: temperature 0.05
kept = {"top-k, k = 5": k_filter(last_logits, 5), "top-p, p = 0.9": p_filter(last_logits, 0.9)}
for name, filtered in kept.items():
    print(f"{name}: tokens left to sample from per prompt {torch.isfinite(filtered).sum(-1).tolist()}")
