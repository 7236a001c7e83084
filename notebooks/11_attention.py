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
# # 11 · Attention
#
# <a href="https://colab.research.google.com/github/nn-from-scratch/course/blob/main/notebooks/11_attention.ipynb" target="_parent"><img src="https://colab.research.google.com/assets/colab-badge.svg" alt="Open In Colab"/></a>
#
# The recurrent networks of chapters 09 and 10 read a sequence one step at a time and squeeze
# everything they have seen into one state vector; information from step $t$ reaches step
# $T$ only through $T - t$ applications of the recurrence. **Attention** lets every position read
# every other position *directly*: each query position computes a weighted average of the
# value vectors of all key positions, with weights given by a softmax of query–key similarities.
# Bahdanau, Cho and Bengio (2014) introduced it to let a translation decoder look back at the
# encoder's states; Vaswani et al. (2017) built the Transformer from attention alone. This chapter
# builds scaled dot-product attention and multi-head attention from scratch, checks them against
# `F.scaled_dot_product_attention` and `nn.MultiheadAttention` (forward and backward, in
# float64), measures why the scores are divided by $\sqrt{d_k}$, treats masks (including a
# polarity trap between the two PyTorch APIs and the rows that nothing may attend to), and looks
# at the attention maps of a small model trained to reverse sequences.

# %% tags=["setup"]
# Setup. On Colab this installs course_lib from the course repository (Colab keeps its own
# torch and ipywidgets); everywhere else it does nothing.
import sys

if "google.colab" in sys.modules:
    get_ipython().run_line_magic("pip", "install --quiet git+https://github.com/nn-from-scratch/course")

# %%
import math
import time

import matplotlib.pyplot as plt
import torch
import torch.nn as nn
import torch.nn.functional as F

from course_lib import attention as att
from course_lib.compare import compare
from course_lib.device import seed_everything
from course_lib.show import record, show_source
from course_lib.widgets.attention import AttentionExplorer, reversal_batch, train_reversal

gen = seed_everything(0)
torch.set_num_threads(1)  # small tensors: one thread is fastest, and the numbers are reproducible
NOTEBOOK_START = time.perf_counter()
DT = torch.float64

# %% [markdown]
# ## 1. Scaled dot-product attention
#
# Take $L$ queries, $S$ keys and $S$ values, stored as rows: $Q \in \mathbb{R}^{L\times d}$,
# $K \in \mathbb{R}^{S\times d}$, $V \in \mathbb{R}^{S\times d_v}$ (any leading batch and head
# dimensions ride along). Query $i$ scores key $j$ by the dot product $q_i \cdot k_j$; a softmax
# over the keys turns the scores of one query into weights that are positive and sum to one; the
# output of query $i$ is the weighted average of the values:
#
# $$Z = \frac{Q K^\top}{\sqrt{d}} + M \in \mathbb{R}^{L\times S},\qquad
#   A = \operatorname{softmax}_{\text{row}}(Z) \in \mathbb{R}^{L\times S},\qquad
#   O = A V \in \mathbb{R}^{L\times d_v},$$
#
# where $A_{ij} = e^{Z_{ij}} / \sum_{j'} e^{Z_{ij'}}$ (softmax over the **key** axis, the last
# one) and $M$ is a mask: $0$ where key $j$ may be read by query $i$ and $-\infty$ where it may
# not. The factor $1/\sqrt{d}$ (the paper writes $d_k$) is section 2's topic. The library's
# version returns the weights too, so that we can look at them:

# %%
show_source(att.scaled_dot_product_attention)

# %% [markdown]
# Against `F.scaled_dot_product_attention` in float64, on batch 2, 3 heads, $L = 4$ queries,
# $S = 6$ keys, $d = 5$, $d_v = 3$: the output and the gradients of $Q$, $K$ and $V$ for a
# random upstream gradient.

# %%
q = torch.randn(2, 3, 4, 5, dtype=DT, generator=gen, requires_grad=True)
k = torch.randn(2, 3, 6, 5, dtype=DT, generator=gen, requires_grad=True)
v = torch.randn(2, 3, 6, 3, dtype=DT, generator=gen, requires_grad=True)
up = torch.randn(2, 3, 4, 3, dtype=DT, generator=gen)
ours, weights = att.scaled_dot_product_attention(q, k, v)
ref = F.scaled_dot_product_attention(q, k, v)
print("weights", tuple(weights.shape), "rows sum to 1:", torch.allclose(weights.sum(-1), torch.ones(2, 3, 4, dtype=DT)))
err_sdpa = compare("SDPA output", ours, ref)
g_ours = torch.autograd.grad((ours * up).sum(), (q, k, v))
g_ref = torch.autograd.grad((ref * up).sum(), (q, k, v))
err_sdpa = max(err_sdpa, compare("SDPA gradients of Q, K, V", g_ours, g_ref))
record("attention vs F.scaled_dot_product_attention, float64, forward and backward", err_sdpa, "", ".1e")

# %% [markdown]
# ## 2. Why divide by $\sqrt{d}$
#
# If the $d$ entries of $q$ and $k$ are independent with mean 0 and variance 1, then
# $q\cdot k = \sum_{m=1}^{d} q_m k_m$ is a sum of $d$ independent terms of mean 0 and variance
# $\mathbb{E}[q_m^2]\,\mathbb{E}[k_m^2] = 1$, so $\operatorname{Var}(q\cdot k) = d$ (this is the
# argument of Vaswani et al., section 3.2.1). Measured on 20,000 pairs per width:

# %%
print(f"{'d':>5} {'Var(q.k)':>9} {'Var(q.k/sqrt d)':>16}")
for d in (4, 16, 64, 256):
    qs = torch.randn(20_000, d, generator=gen)
    ks = torch.randn(20_000, d, generator=gen)
    dots = (qs * ks).sum(-1)
    print(f"{d:>5} {dots.var().item():>9.1f} {(dots / math.sqrt(d)).var().item():>16.3f}")
    if d == 256:
        record("variance of q.k for d = 256, unit-variance entries", dots.var().item(), "", ".0f")

# %% [markdown]
# Scores with standard deviation $\sqrt{d}$ push the softmax into saturation: for $d = 256$ the
# scores of one query have standard deviation 16, so neighbouring scores differ by many units,
# the largest weight takes almost everything and the others are exponentially small. A saturated softmax also has a vanishing Jacobian:
# $\partial A_i / \partial Z_j = A_i(\delta_{ij} - A_j)$ (one row of weights $A$ and scores $Z$) is close to zero when one $A_i$ is close
# to 1 and the rest close to 0, so the scores (and $W_q$, $W_k$ behind them) barely learn. We
# measure, for $S = 16$ keys and 2,000 random queries, the mean largest weight and the mean norm
# of the softmax Jacobian, with and without the scaling:

# %%
def softmax_stats(scores):
    """Mean largest weight and mean Frobenius norm of the softmax Jacobian diag(a) - a a^T, per row."""
    a = torch.softmax(scores, dim=-1)                                   # (N, S)
    jac = torch.diag_embed(a) - a[:, :, None] * a[:, None, :]           # (N, S, S)
    return a.max(-1).values.mean().item(), jac.flatten(1).norm(dim=1).mean().item()


S_KEYS = 16
print(f"{'d':>5} {'max weight (raw)':>17} {'|J| (raw)':>10} {'max weight (scaled)':>20} {'|J| (scaled)':>13}")
for d in (4, 16, 64, 256):
    qs = torch.randn(2_000, 1, d, generator=gen)
    ks = torch.randn(2_000, S_KEYS, d, generator=gen)
    raw = (qs @ ks.transpose(1, 2))[:, 0]                                 # (N, S)
    m_raw, j_raw = softmax_stats(raw)
    m_sc, j_sc = softmax_stats(raw / math.sqrt(d))
    print(f"{d:>5} {m_raw:>17.3f} {j_raw:>10.3f} {m_sc:>20.3f} {j_sc:>13.3f}")
record("d = 256, 16 keys: mean largest softmax weight without 1/sqrt(d)", m_raw, "", ".3f")
record("d = 256, 16 keys: mean softmax Jacobian norm without / with 1/sqrt(d)", j_raw / j_sc, "x", ".2f")

# %% [markdown]
# With the scaling, the statistics of the softmax no longer depend on $d$: every row of the
# table's right half is about the same. Without it, the largest weight approaches 1 as $d$ grows
# and the Jacobian shrinks, which is exactly the regime in which learning stalls.
#
# ## 3. Masks
#
# A mask decides which keys each query may read. Two are everywhere:
#
# * the **causal** mask of a language model: query $i$ may read keys $j \le i$ only, so that the
#   prediction at position $i$ does not see the future. When there are fewer queries than keys
#   (decoding with cached keys, chapter 13), the mask must be aligned at the **lower right**:
#   query $i$ of $L$ sees keys $j \le i + (S - L)$. `is_causal=True` of
#   `F.scaled_dot_product_attention` aligns it at the **top left** ($j \le i$), which is right
#   only for $L = S$;
# * the **padding** mask: sequences of different lengths are padded to one length in a batch,
#   and no query may read a padding position.

# %%
show_source(att.causal_mask)

# %%
print("lower right, L = 2, S = 5 (the last query sees every key):\n", att.causal_mask(2, 5).int())
print("top left (what is_causal=True does):\n", att.causal_mask(2, 5, align="top_left").int())

# %% [markdown]
# ### The polarity trap
#
# PyTorch has two conventions for a **boolean** mask, and they are opposite:
#
# | API | `True` means |
# |---|---|
# | `F.scaled_dot_product_attention(attn_mask=...)` | the key **takes part** |
# | `nn.MultiheadAttention(attn_mask=..., key_padding_mask=...)` | the key is **masked** |
#
# (A float mask is added to the scores in both.) A mask written for one and passed to the other
# has the right shape and dtype, so nothing complains: the result is silently wrong. Here is a
# causal mask built for `nn.MultiheadAttention` (`True` above the diagonal = masked) passed to
# `F.scaled_dot_product_attention`:

# %%
x = torch.randn(1, 5, 4, dtype=DT, generator=gen)
mha_style = torch.triu(torch.ones(5, 5, dtype=torch.bool), diagonal=1)          # True = masked
right = F.scaled_dot_product_attention(x, x, x, is_causal=True)
wrong = F.scaled_dot_product_attention(x, x, x, attn_mask=mha_style)            # no error, no warning
print("max |wrong - right| =", f"{(wrong - right).abs().max().item():.3f}")
print("NaN in the wrong output:", wrong.isnan().any().item(),
      " | last row (every key masked there) =", wrong[0, -1].tolist())
_, w_wrong = att.scaled_dot_product_attention(x, x, x, attn_mask=mha_style)
print("weights the wrong mask gives (query 0 now reads only the FUTURE):\n", w_wrong[0].numpy().round(2))

# %% [markdown]
# The inverted mask lets each query read only the *future* (and lets the last query read
# nothing). The output has the right shape and contains no NaN: a model trained with it would
# simply learn to cheat. The fix is one `~`: `F.scaled_dot_product_attention(..., attn_mask=~mha_style)`.
#
# ### Fully masked rows
#
# A query that may read *no* key (in the inverted mask above, the last one; in practice, a sequence
# that is all padding, or a left-padded sequence under a causal mask, whose first queries see only
# padding keys) has all scores $-\infty$, and
# $\operatorname{softmax}$ of a row of $-\infty$ is $0/0$. What PyTorch returns depends on the
# path, measured here (torch version printed):

# %%
mha = nn.MultiheadAttention(4, 2, batch_first=True).to(DT)
xb = torch.randn(2, 3, 4, dtype=DT, generator=gen)
pad_all = torch.tensor([[False, False, True], [True, True, True]])      # sequence 1: every key is padding
keep_none = torch.ones(3, 3, dtype=torch.bool)
keep_none[1] = False                                                    # SDPA: query 1 may read nothing


def row_state(t):
    return "NaN" if t.isnan().all() else ("zeros" if (t == 0).all() else "values")


print("torch", torch.__version__)
print("F.scaled_dot_product_attention, row 1:", row_state(F.scaled_dot_product_attention(xb, xb, xb, attn_mask=keep_none)[:, 1]))
print("course_lib scaled_dot_product_attention, row 1:",
      row_state(att.scaled_dot_product_attention(xb, xb, xb, attn_mask=keep_none)[0][:, 1]))
for need in (True, False):
    o_mod = mha(xb, xb, xb, key_padding_mask=pad_all, need_weights=need)[0][1]
    o_lib = att.multi_head_attention(xb, xb, xb, att.mha_params(mha), 2, key_padding_mask=pad_all,
                                     need_weights=need, batch_first=True)[0][1]
    print(f"nn.MultiheadAttention need_weights={need}: {row_state(o_mod)};  course_lib: {row_state(o_lib)}")
mha.eval()
with torch.inference_mode():
    o_fast = mha(xb, xb, xb, key_padding_mask=pad_all, need_weights=False)[0][1]
print("nn.MultiheadAttention, eval + inference_mode (the fast path), need_weights=False:", row_state(o_fast))

# %% [markdown]
# So with this torch version `F.scaled_dot_product_attention` returns a zero row (and zero
# gradients) for a query that may read nothing, while `nn.MultiheadAttention` returns NaN when it
# computes the weights (`need_weights=True`, the default) and on its inference fast path, and a
# zero attention row when training without weights (it then calls SDPA), which `out_proj` turns
# into its bias $b_o$ (zero at initialisation, hence "zeros" above). The library does the same as PyTorch's
# autograd paths, and its tests check it; a test is the right place for such a fact, since it is a
# property of a torch version, not of attention. In a model, the robust fix is not to create such
# rows (pad on the right, never batch an empty sequence); a padding query's output is ignored by
# the loss anyway.
#
# ## 4. Multi-head attention
#
# One softmax per query mixes the values with one set of weights. **Multi-head** attention runs
# $h$ attentions side by side on $h$ slices of width $d = E/h$ of the model width $E$, so that
# different heads can attend to different positions for different reasons. With
# $X \in \mathbb{R}^{B\times T\times E}$ and `nn.MultiheadAttention`'s parameters (the three
# $E\times E$ blocks $W_q, W_k, W_v$ packed in `in_proj_weight` $\in\mathbb{R}^{3E\times E}$,
# and `out_proj` $W_o \in \mathbb{R}^{E\times E}$):
#
# $$\underbrace{X W_q^\top + b_q}_{B\times T\times E}
# \xrightarrow{\text{view}} B\times T\times h\times d
# \xrightarrow{\text{transpose}(1,2)} \underbrace{Q}_{B\times h\times T\times d},\quad
# O_{\text{heads}} = \operatorname{softmax}\!\Big(\frac{QK^\top}{\sqrt d} + M\Big)V
#   \in \mathbb{R}^{B\times h\times T\times d},$$
#
# then the heads are concatenated back ($B\times h\times T\times d \to B\times T\times h d$) and
# projected: $\operatorname{out} = \operatorname{concat}(O_{\text{heads}})W_o^\top + b_o$.

# %%
show_source(att.split_heads, att.merge_heads)

# %% [markdown]
# **Why view then transpose.** `x.view(B, T, h, d)` cuts each token's $E$ features into $h$
# consecutive slices, one per head; the transpose only reorders the axes. `x.view(B, h, T, d)`
# gives the same shape in one step, but it cuts the *flattened* (T·E) memory of a sequence into
# $h$ chunks: head 0 then receives the first $T/h$ *tokens*' full feature vectors, chopped into
# rows of $d$. A check where every feature of token $t$ equals $t$:

# %%
B, T, E, h = 1, 4, 6, 2
tokens = torch.arange(T, dtype=DT).repeat_interleave(E).view(B, T, E)   # features of token t are all t
print("view then transpose, head 0 (row t should be all t):\n", att.split_heads(tokens, h)[0, 0])
print("view alone, head 0:\n", tokens.view(B, h, T, E // h)[0, 0])

# %% [markdown]
# With `view` alone, "position 1" of head 0 holds the second half of token 0's features, and
# positions 2–3 hold token 1: the heads no longer correspond to positions, yet the shapes are
# right and nothing fails. The shapes at every step of the library's multi-head attention:

# %%
show_source(att.multi_head_attention)

# %%
B, L, S, E, h = 2, 3, 5, 8, 2
mha = nn.MultiheadAttention(E, h, batch_first=True).to(DT)
xq = torch.randn(B, L, E, dtype=DT, generator=gen, requires_grad=True)
xkv = torch.randn(B, S, E, dtype=DT, generator=gen, requires_grad=True)
Wq, Wk, Wv = mha.in_proj_weight.chunk(3)
Q = att.split_heads(xq @ Wq.T, h)
print(f"X_q {tuple(xq.shape)} -> Q {tuple((xq @ Wq.T).shape)} -> heads {tuple(Q.shape)} -> scores "
      f"{tuple((Q @ att.split_heads(xkv @ Wk.T, h).transpose(-2, -1)).shape)} -> merged "
      f"{tuple(att.merge_heads(Q).shape)}")
padding = torch.tensor([[False] * S, [False, False, False, True, True]])   # sequence 1 has 3 real keys
params = att.mha_params(mha)
ours, w_ours = att.multi_head_attention(xq, xkv, xkv, params, h, key_padding_mask=padding, batch_first=True)
ref, w_ref = mha(xq, xkv, xkv, key_padding_mask=padding)
up = torch.randn(B, L, E, dtype=DT, generator=gen)
leaves = (xq, xkv, *mha.parameters())
err_mha = compare("multi-head attention output", ours, ref)
err_mha = max(err_mha, compare("head-averaged weights (B, L, S)", w_ours, w_ref))
err_mha = max(err_mha, compare("gradients of inputs, in_proj and out_proj",
                               torch.autograd.grad((ours * up).sum(), leaves),
                               torch.autograd.grad((ref * up).sum(), leaves)))
record("multi-head attention vs nn.MultiheadAttention, float64, forward and backward", err_mha, "", ".1e")
print("weights of the padding keys of sequence 1:", w_ours[1, :, 3:].abs().max().item())

# %% [markdown]
# The tests (`tests/test_attention.py`) repeat both comparisons on hypothesis-drawn shapes,
# with $L = S = 1$, one head, batch 1, bool and float masks of both kinds, `batch_first` both
# ways, unbatched inputs, and fully masked rows.
#
# ## 5. What trained heads do
#
# Attention weights are easiest to read on a task whose solution is known. The task: reverse a
# sequence of 3 to 8 digits. Position 0 holds a length token `n=k`, positions $1..k$ the digits,
# the rest padding `_`; the target at position $i \in 1..k$ is the digit at position $k + 1 - i$.
# The model (`ReversalModel`) is two layers of residual two-head self-attention
# ($E = 32$) over token embeddings plus learned position embeddings, and a linear read-out: no MLP,
# no layer norm (chapter 12 adds both, and discusses position encodings). Training uses the
# padding mask; the data are generated, so every batch is fresh, and the accuracy below is
# measured on 1,000 sequences drawn from a separate random generator (long sequences are new to
# the model; the 1,000 possible three-digit ones were mostly seen in training).

# %%
model, info = train_reversal(steps=200, seed=0)
record("reversal model: training time, 200 Adam steps of 64 sequences", info["seconds"], "s", ".1f")
record("reversal model: accuracy on 1,000 fresh sequences", info["accuracy"], "", ".3f")
fig, ax = plt.subplots(figsize=(5, 2.4))
ax.semilogy(info["loss"])
ax.set_xlabel("step")
ax.set_ylabel("cross-entropy (nats)")
ax.set_title("training loss of the reversal model")
plt.show()

# %% [markdown]
# The explorer recomputes the trained model with `course_lib.attention.multi_head_attention`
# for four test sequences and all four mask settings. Pick a layer, a head and a query; the
# boxed row of the map is the query's weights, drawn as bars on the right; below are the input,
# the model's prediction (`!` marks a wrong digit) and the target. Things to look for: in layer 1
# the weights form an anti-diagonal (query $i$ reads key $k + 1 - i$, exactly the digit it has to
# output); turning the **padding mask** off lets queries read padding positions the model never
# saw during training; turning the **causal mask** on hides the second half of the sequence from
# the first half, and reversal becomes impossible there.

# %%
explorer = AttentionExplorer(model)
explorer

# %%
acc = {(c, p): sum(explorer.traces[(s, c, p)][2] for s in explorer.inputs) / len(explorer.inputs)
       for c in (False, True) for p in (False, True)}
for (c, p), a in acc.items():
    print(f"causal mask {'on ' if c else 'off'}, padding mask {'on ' if p else 'off'}: "
          f"digits right on the {len(explorer.inputs)} examples {a:.0%}")

# %% [markdown]
# The anti-diagonal, measured on 200 test sequences: the layer-1 weight (averaged over heads)
# that each digit query puts on the key it must copy; and the digits right when the causal mask,
# never used in training, is switched on.

# %%
xs, ys, pads = reversal_batch(200, torch.Generator().manual_seed(7))
on_target, right = [], {False: [], True: []}
for x_i, y_i in zip(xs, ys):
    n = int((y_i != -100).sum())
    for causal in (False, True):
        ws, logits = model.trace(x_i, causal=causal)
        right[causal] += (logits[1:n + 1].argmax(-1) == y_i[1:n + 1]).tolist()
        if not causal:
            w1 = ws[1].mean(0)                                           # (T, T), heads averaged
            on_target += [w1[i, n + 1 - i].item() for i in range(1, n + 1)]
record("layer 1: mean weight on the digit to copy (200 test sequences)", sum(on_target) / len(on_target), "", ".2f")
record("reversal model: digits right, padding mask (200 test sequences)", sum(right[False]) / len(right[False]), "", ".2f")
record("reversal model: digits right with a causal mask it was not trained with (200 test sequences)",
       sum(right[True]) / len(right[True]), "", ".2f")
print(f"step of the explorer: {explorer.time_step() * 1000:.0f} ms;  notebook so far "
      f"{time.perf_counter() - NOTEBOOK_START:.1f} s")

# %% [markdown]
# ## Summary
#
# * Attention: $O = \operatorname{softmax}(QK^\top/\sqrt{d} + M)\,V$, softmax over the keys;
#   each output row is a weighted average of the values. Equal to PyTorch's to rounding error in
#   float64, forward and backward (the maximum errors are printed in sections 1 and 4).
# * $\operatorname{Var}(q\cdot k) = d$ for unit-variance entries; without $1/\sqrt{d}$ the
#   softmax saturates as $d$ grows and its Jacobian vanishes.
# * Masks: causal (lower-right aligned when there are fewer queries than keys) and padding. A
#   boolean `True` means *takes part* in `F.scaled_dot_product_attention` and *masked* in
#   `nn.MultiheadAttention`; the wrong one runs without error and gives a wrong result.
# * A query that may read no key: zeros from SDPA, NaN from `nn.MultiheadAttention` when it
#   returns weights (torch version printed above). Avoid such rows.
# * Heads: `view(B, T, h, d)` then `transpose(1, 2)`; `view(B, h, T, d)` alone has the right
#   shape and mixes positions. Concatenate with `transpose` + `reshape`, then `out_proj`.
# * A trained two-layer attention model reverses sequences with anti-diagonal heads in its second
#   layer, which the explorer shows; a causal mask hides from the first half of the sequence the
#   digits it must output, and the accuracy drops (measured on 200 test sequences above).
#
# ## Exercises
#
# Open `exercises/11_attention.ipynb`.
#
# ## References
#
# * D. Bahdanau, K. Cho, Y. Bengio. *Neural machine translation by jointly learning to align and
#   translate.* ICLR 2015, arXiv:1409.0473 (2014).
# * A. Vaswani, N. Shazeer, N. Parmar, J. Uszkoreit, L. Jones, A. N. Gomez, Ł. Kaiser,
#   I. Polosukhin. *Attention is all you need.* NIPS 2017, arXiv:1706.03762. (Scaled dot-product
#   and multi-head attention; section 3.2.1 gives the variance argument for $1/\sqrt{d_k}$.)
# * PyTorch documentation: `torch.nn.functional.scaled_dot_product_attention` and
#   `torch.nn.MultiheadAttention` (the mask conventions followed here).

# %%
print(explorer.self_check())
