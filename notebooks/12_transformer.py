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
# # 12 · Positional encoding and the Transformer block
#
# <a href="https://colab.research.google.com/github/nn-from-scratch/course/blob/main/notebooks/12_transformer.ipynb" target="_parent"><img src="https://colab.research.google.com/assets/colab-badge.svg" alt="Open In Colab"/></a>
#
# Chapter 11 built attention: every query mixes the values of all keys with weights that depend
# only on query–key dot products. Nothing in that computation knows *where* a token stands: shuffle
# the tokens and the outputs are shuffled the same way. This chapter first shows that property, then
# gives the network positions in the three ways in use today: the **sinusoidal encoding** of
# Vaswani et al. (2017), a **learned** position table (GPT-2 and the model of chapter 13) and
# **rotary embeddings** (RoPE, Su et al. 2021), whose attention scores depend only on the offset
# between two positions. The second half assembles the **Transformer block** around attention:
# layer norm, GELU, the feed-forward network and residual connections, in the post-norm order of the
# original paper and the pre-norm order of modern models. Our encoder layer equals
# `nn.TransformerEncoderLayer` forward and backward in float64, and a decoder-only block with a KV
# cache becomes the building brick of the GPT in chapter 13. Finally we run the two source articles'
# Transformer listings and repair them one bug at a time.

# %% tags=["setup"]
# Setup. On Colab this installs course_lib from the course repository (Colab keeps its own
# torch and ipywidgets); everywhere else it does nothing.
import sys

if "google.colab" in sys.modules:
    get_ipython().run_line_magic("pip", "install --quiet git+https://github.com/nn-from-scratch/course")

# %%
import math
import time
import warnings

import matplotlib.pyplot as plt
import torch
import torch.nn as nn
import torch.nn.functional as F

from course_lib import attention, position, transformer
from course_lib.compare import compare
from course_lib.device import seed_everything
from course_lib.show import record, show_source
from course_lib.widgets.position import PositionExplorer

gen = seed_everything(0)
torch.set_num_threads(1)  # small tensors: one thread is fastest, and the numbers are reproducible
DT = torch.float64
NOTEBOOK_START = time.perf_counter()

# %% [markdown]
# ## 1. Attention does not know the order of its inputs
#
# Take self-attention on $X \in \mathbb{R}^{T\times E}$ (one sequence), with projections
# $Q = XW_q^\top$, $K = XW_k^\top$, $V = XW_v^\top$ (the biases of `nn.MultiheadAttention`, added to
# every row alike, change nothing below and are left out) and output
# $A(X) = \operatorname{softmax}(QK^\top/\sqrt{d})\,V\,W_o^\top \in \mathbb{R}^{T\times E}$. Let
# $P \in \{0,1\}^{T\times T}$ be a permutation matrix that reorders the tokens. Then
# $Q' = PQ$, $K' = PK$, $V' = PV$, the score matrix becomes $P\,QK^\top P^\top$ (rows *and*
# columns reordered), the row-wise softmax commutes with both reorderings, and
#
# $$A(PX) = P\,\operatorname{softmax}(QK^\top/\sqrt d)\,P^\top P\,V W_o^\top = P\,A(X).$$
#
# Self-attention is **permutation-equivariant**: "dog bites man" and "man bites dog" produce the same
# set of output vectors, only listed in another order. The position-wise feed-forward network and
# layer norm act on each token separately, so a whole Transformer encoder without positional
# information or a causal mask is equivariant too (a causal mask is itself positional information). We check it with `attention.multi_head_attention` (chapter 11) and the
# weights of an `nn.MultiheadAttention`, then add a sinusoidal encoding (section 2), which breaks it.

# %%
E, T, H = 16, 7, 4
mha = nn.MultiheadAttention(E, H, batch_first=True, dtype=DT)
params = attention.mha_params(mha)
x = torch.randn(1, T, E, dtype=DT, generator=gen)
perm = torch.randperm(T, generator=gen)


def self_attend(u: torch.Tensor) -> torch.Tensor:
    return attention.multi_head_attention(u, u, u, params, H, batch_first=True, need_weights=False)[0]


out = self_attend(x)
print("permutation:", perm.tolist())
print(f"max |A(PX) - P A(X)|             = {(self_attend(x[:, perm]) - out[:, perm]).abs().max():.2e}")
pe = position.sinusoidal_encoding(T, E, dtype=DT)
out_pe = self_attend(x + pe)
print(f"with positions: max |A(PX + PE) - P A(X + PE)| = {(self_attend(x[:, perm] + pe) - out_pe[:, perm]).abs().max():.2e}")

# %% [markdown]
# The first difference is rounding error: reordering the input only reorders the output. With the
# positions added the two differ at order 1: the same token now produces a different output at a
# different place.
#
# ## 2. Sinusoidal encodings
#
# Vaswani et al. (2017, section 3.5) add to the token embeddings a fixed table
# $\mathrm{PE} \in \mathbb{R}^{T\times E}$. For position $p$ and $i = 0, \dots, E/2 - 1$, with the
# frequencies $\omega_i = 10000^{-2i/E}$ (a geometric sequence from 1 down to about $10^{-4}$
# radians per position):
#
# $$\mathrm{PE}_{p,\,2i} = \sin(p\,\omega_i), \qquad \mathrm{PE}_{p,\,2i+1} = \cos(p\,\omega_i).$$
#
# Each pair of columns is a point on the unit circle turning at its own speed: the first pair turns
# once every $2\pi \approx 6.3$ positions, the last (for large $E$) nearly once every $2\pi \cdot 10^4$ positions. The
# table is defined for any $p$, so it does not limit the sequence length. Two properties follow from
# the angle-addition formulas and are measured below:
#
# * **Shifts are linear maps.** For every offset $k$ there is a block-diagonal rotation
#   $M_k \in \mathbb{R}^{E\times E}$, with blocks
#   $\begin{pmatrix}\cos k\omega_i & \sin k\omega_i\\ -\sin k\omega_i & \cos k\omega_i\end{pmatrix}$
#   acting on $(\sin, \cos)$ pairs, such that $\mathrm{PE}_{p+k} = M_k\,\mathrm{PE}_p$ for *every* $p$;
#   the paper's motivation was that relative positions are then easy to attend to.
# * **Dot products depend on the offset only:**
#   $\mathrm{PE}_p \cdot \mathrm{PE}_{p+k} = \sum_i \cos(k\,\omega_i)$, the same for every $p$.

# %%
show_source(position.sinusoidal_encoding)

# %%
T_pe, E_pe = 128, 64
pe = position.sinusoidal_encoding(T_pe, E_pe, dtype=DT)
omega = 10000.0 ** (-torch.arange(0, E_pe, 2, dtype=DT) / E_pe)
k = 5
c, s = torch.cos(k * omega), torch.sin(k * omega)
M = torch.zeros(E_pe, E_pe, dtype=DT)  # acts on (sin, cos) pairs: sin(a+b) = sin a cos b + cos a sin b, ...
M[0::2, 0::2], M[0::2, 1::2] = torch.diag(c), torch.diag(s)
M[1::2, 0::2], M[1::2, 1::2] = torch.diag(-s), torch.diag(c)
print(f"max over p of |PE[p+{k}] - M_{k} PE[p]|        = {(pe[k:] - pe[:-k] @ M.T).abs().max():.2e}")
dots = (pe[:-k] * pe[k:]).sum(dim=1)
print(f"PE[p] . PE[p+{k}] over p: min {dots.min():.12f}, max {dots.max():.12f}; "
      f"sum_i cos({k} w_i) = {torch.cos(k * omega).sum():.12f}")

sim = position.cosine_similarity_matrix(pe)
print(f"cosine similarity of two positions: min over all pairs {sim.min():.3f}")

fig, axes = plt.subplots(1, 2, figsize=(10, 3.3))
im = axes[0].imshow(pe.numpy(), aspect="auto", cmap="RdBu_r", vmin=-1, vmax=1)
axes[0].set(xlabel="dimension j", ylabel="position p", title=f"sinusoidal table, T={T_pe}, E={E_pe}")
fig.colorbar(im, ax=axes[0])
for m in (0, 40, 100):
    axes[1].plot(torch.arange(T_pe) - m, sim[m].numpy(), label=f"m = {m}")
axes[1].set(xlabel="offset n - m", ylabel="cosine similarity of PE[m], PE[n]", title="similarity vs distance")
axes[1].legend()
fig.tight_layout()
plt.show()

# %% [markdown]
# The three curves lie on top of each other where they overlap: the similarity of two positions is
# a function of their distance only, falls off over the first few positions and, over these 128
# positions, stays positive (the slow, low-frequency columns keep contributing almost 1 each; the
# minimum is printed above the figure). Nothing in this table is
# learned; the model learns to *use* it through its projections.
#
# ## 3. Learned position embeddings
#
# The alternative is a trainable table $P \in \mathbb{R}^{T_{\max}\times E}$, one row per position,
# added to the token embeddings: `nn.Embedding(T_max, E)` indexed by `arange(T)`. GPT-2 does this,
# and so does the GPT of chapter 13. It can represent any per-position pattern the data call for,
# at the price of $T_{\max} E$ parameters and a hard limit: there is no row for position $T_{\max}$.
# At initialisation the rows are independent $\mathcal N(0, 1)$ vectors, so two different positions
# are nearly orthogonal and no notion of distance exists until training creates one.

# %%
T_max = 32
learned = nn.Embedding(T_max, E_pe, dtype=DT)
sim_learned = position.cosine_similarity_matrix(learned.weight.detach())
off_diag = sim_learned[~torch.eye(T_max, dtype=torch.bool)]
print(f"untrained table: cosine similarity of distinct positions, mean {off_diag.mean():+.3f}, "
      f"max |.| {off_diag.abs().max():.3f}")
try:
    learned(torch.arange(T_max + 1))
except IndexError as err:
    print(f"position {T_max} of a {T_max}-row table -> IndexError: {err}")

# %% [markdown]
# ## 4. Rotary position embeddings (RoPE)
#
# Instead of *adding* a vector to the input, RoPE *rotates* every query and key by an angle
# proportional to its position, inside each attention layer (Su et al. 2021). Split the head
# dimension $d$ into $d/2$ pairs, pair $i$ turning at $\theta_i = 10000^{-2i/d}$; the rotation of a
# vector at position $p$ is the block-diagonal $R_p = \operatorname{diag}(R(p\theta_0), \dots,
# R(p\theta_{d/2-1}))$ with $R(\alpha) = \begin{pmatrix}\cos\alpha & -\sin\alpha\\ \sin\alpha &
# \cos\alpha\end{pmatrix}$. Because $R_m^\top R_n = R_{n-m}$, the score of a query at $m$ and a key at
# $n$ is
#
# $$\langle R_m q, R_n k\rangle = q^\top R_m^\top R_n k = q^\top R_{n-m}\,k:$$
#
# it depends on the two positions **only through $n - m$**, and the vectors' norms are unchanged. The
# values are not rotated. Two layouts of the pairs are in use; applying one to weights trained with
# the other computes a different function without any error (the difference is measured below):
#
# * **interleaved**, the paper's formula: pairs $(2i, 2i+1)$,
#   $y_{2i} = x_{2i}\cos p\theta_i - x_{2i+1}\sin p\theta_i$,
#   $y_{2i+1} = x_{2i+1}\cos p\theta_i + x_{2i}\sin p\theta_i$;
# * **rotate-half**: pairs $(j, j + d/2)$, i.e. with
#   $x = [x_1 \,|\, x_2]$ (halves of width $d/2$),
#   $y = [x_1 \odot \cos - x_2 \odot \sin \;|\; x_2 \odot \cos + x_1 \odot \sin]$.
#
# Both are the same rotation after a fixed permutation of the $d$ coordinates. PyTorch has no RoPE
# layer in `torch.nn`, but `torch.onnx.ops.rotary_embedding` (the ONNX `RotaryEmbedding` operator,
# run eagerly) implements both layouts from caches of $\cos$ and $\sin$; we compare with it.

# %%
show_source(position.rope)

# %%
B_r, h_r, T_r, d_r = 2, 3, 9, 8
xq = torch.randn(B_r, h_r, T_r, d_r, dtype=DT, generator=gen)
cos_cache, sin_cache = position.rope_angles(torch.arange(T_r), d_r)  # (T, d/2) each
pos_ids = torch.arange(T_r).expand(B_r, T_r)
if hasattr(torch.onnx, "ops") and hasattr(torch.onnx.ops, "rotary_embedding"):
    for interleaved in (False, True):
        ref = torch.onnx.ops.rotary_embedding(xq, cos_cache, sin_cache, pos_ids, interleaved=interleaved)
        compare(f"rope(interleaved={interleaved}) vs torch.onnx.ops.rotary_embedding",
                position.rope(xq, interleaved=interleaved), ref)
else:
    print("torch.onnx.ops.rotary_embedding is not available in this torch version; tests/test_position.py checks it")
perm_d = position.interleave_permutation(d_r)
print("pair (j, j + d/2) of rotate-half sits at (2j, 2j+1) of interleaved: perm =", perm_d.tolist())
same = position.rope(xq[..., perm_d], interleaved=True)[..., torch.argsort(perm_d)]
print(f"max |rotate-half - permuted interleaved| = {(same - position.rope(xq)).abs().max():.2e}; "
      f"without the permutation: {(position.rope(xq, interleaved=True) - position.rope(xq)).abs().max():.2f}")

# %% [markdown]
# Now the relative-position property. For one query vector $q$ and one key vector $k$ we place them
# at every pair of positions $(m, n)$, $0 \le m, n < 64$, and at the same pairs shifted by 1,000
# positions, and compare the score matrices; then we check that a score is constant along every
# diagonal $n - m = \text{const}$.

# %%
d_h, T_s = 32, 64
q1, k1 = torch.randn(2, d_h, dtype=DT, generator=gen)
positions = torch.arange(T_s)


def rope_scores(offset: int, interleaved: bool) -> torch.Tensor:
    """S[m, n] = <R_(m+offset) q, R_(n+offset) k> for m, n in 0..T_s-1: (T_s, T_s)."""
    rq = position.rope(q1.expand(T_s, d_h), positions + offset, interleaved=interleaved)
    rk = position.rope(k1.expand(T_s, d_h), positions + offset, interleaved=interleaved)
    return rq @ rk.T


for interleaved in (False, True):
    S0, S1 = rope_scores(0, interleaved), rope_scores(1000, interleaved)
    spread = max(torch.diagonal(S0, offset=j).std().item() for j in range(-T_s + 2, T_s - 1))
    print(f"interleaved={interleaved!s:5}: max |S(m,n) - S(m+1000, n+1000)| = {(S0 - S1).abs().max():.2e}; "
          f"largest std along a diagonal n - m = const: {spread:.2e}; score range {S0.min():.2f} .. {S0.max():.2f}")
norms = position.rope(xq).norm(dim=-1) - xq.norm(dim=-1)
print(f"norms preserved: max |  |R x| - |x|  | = {norms.abs().max():.2e}")

# %% [markdown]
# Both layouts give scores that are functions of $n - m$ alone, up to rounding, even 1,000 positions
# further along. With the sinusoidal *additive* encoding the score
# $(x_m + \mathrm{PE}_m)^\top W_q^\top W_k (x_n + \mathrm{PE}_n)$ contains the cross terms
# $x_m^\top W_q^\top W_k \mathrm{PE}_n$ that depend on absolute positions; RoPE has no such terms.
#
# ## 5. Explorer: encodings and the similarity of positions
#
# Choose the encoding, the base of the frequencies and a position $m$. Left: the table (for RoPE,
# $\cos(p\,\theta_i)$ of every pair). Right: how similar position $m$ looks to every position $n$,
# as a function of $n - m$: cosine similarity of table rows for the additive encodings, and for
# RoPE the normalised score $\langle R_m q, R_n q\rangle / \lVert q\rVert^2$ of one vector with itself.
# Moving $m$ leaves the sinusoidal and RoPE curves unchanged apart from their range (they depend
# on $n - m$ only); a smaller base makes all frequencies faster and the similarity oscillate sooner.
# The learned table is untrained here (no structure); chapter 13 trains one, and
# `PositionExplorer(learned=...)` accepts any (T, E) table, e.g. a trained model's.

# %%
explorer = PositionExplorer()
explorer

# %%
record("PositionExplorer: one step", explorer.time_step() * 1000, "ms", ".1f")

# %% [markdown]
# ## 6. The pieces of the block: layer norm, GELU, feed-forward, residuals
#
# A Transformer layer alternates two sublayers, each wrapped in a residual connection and a layer
# norm. With $X \in \mathbb{R}^{B\times T\times E}$:
#
# * **Layer norm** (chapter 08) normalises each token's vector over its $E$ features,
#   $\mathrm{LN}(x) = \gamma \odot (x - \mu)/\sqrt{\sigma^2 + \epsilon} + \beta$ with
#   $\mu, \sigma^2$ the mean and (biased) variance of $x \in \mathbb{R}^E$ and
#   $\gamma, \beta \in \mathbb{R}^E$; it does not mix tokens or examples (`course_lib.norm.layer_norm`).
# * **Feed-forward network**, applied to every token separately, width $F$ (usually $4E$):
#   $\mathrm{FF}(x) = \phi(x W_1^\top + b_1)\,W_2^\top + b_2$ with $W_1 \in \mathbb{R}^{F\times E}$,
#   $W_2 \in \mathbb{R}^{E\times F}$; $\phi$ is ReLU in the original Transformer (Vaswani et al.,
#   eq. 2) and **GELU** in the GPT of chapter 13.
# * **GELU** (Hendrycks & Gimpel 2016) weights its input by the probability that a standard normal
#   variable is smaller: $\mathrm{GELU}(x) = x\,\Phi(x) = \tfrac{x}{2}\bigl(1 + \operatorname{erf}(x/\sqrt2)\bigr)$;
#   a tanh approximation, $\tfrac{x}{2}\bigl(1 + \tanh(\sqrt{2/\pi}\,(x + 0.044715\,x^3))\bigr)$, is
#   `approximate="tanh"` in PyTorch. Unlike ReLU it is smooth and slightly negative for $x < 0$
#   (minimum about $-0.17$).
# * **Residual connections** add each sublayer's input to its output, $x + f(x)$, so that the
#   Jacobian of a layer is $I + \partial f/\partial x$: an identity path for the gradient through
#   any depth.

# %%
show_source(transformer.gelu, transformer.feed_forward)

# %%
xs = torch.linspace(-4, 4, 801, dtype=DT, requires_grad=True)
for approx in ("none", "tanh"):
    ours_g = transformer.gelu(xs, approx)
    ref_g = F.gelu(xs, approximate=approx)
    compare(f"gelu(approximate={approx!r}) value and derivative on [-4, 4]",
            [ours_g, torch.autograd.grad(ours_g.sum(), xs)[0]], [ref_g, torch.autograd.grad(ref_g.sum(), xs)[0]])
g_exact = transformer.gelu(xs.detach())
print(f"GELU minimum {g_exact.min():.4f} at x = {xs[g_exact.argmin()]:.2f}; "
      f"max |exact - tanh approximation| = {(g_exact - transformer.gelu(xs.detach(), 'tanh')).abs().max():.1e}")

# %% [markdown]
# ### Post-norm and pre-norm
#
# The original Transformer puts the layer norm **after** each residual addition (post-norm); the
# alternative puts it **before** the sublayer, inside the residual branch (pre-norm, "Pre-LN" in
# Xiong et al. 2020), and adds a final layer norm after the last block:
#
# $$\text{post-norm:}\quad X \leftarrow \mathrm{LN}_1\bigl(X + \mathrm{SA}(X)\bigr),\qquad X \leftarrow \mathrm{LN}_2\bigl(X + \mathrm{FF}(X)\bigr)$$
#
# $$\text{pre-norm:}\quad X \leftarrow X + \mathrm{SA}\bigl(\mathrm{LN}_1(X)\bigr),\qquad X \leftarrow X + \mathrm{FF}\bigl(\mathrm{LN}_2(X)\bigr)$$
#
# In pre-norm the residual stream $X$ is never normalised, so the identity path runs untouched from
# the input to the final layer norm. Xiong et al. (2020) show with mean-field arguments that at
# initialisation the expected gradients of the parameters near the output are large in post-norm
# Transformers, which makes a learning-rate warm-up necessary, while pre-norm gradients are
# well-behaved, and they train pre-norm models without warm-up. We measure the gradient norm of
# the last and the first layer's $W_2$ at initialisation in stacks of 2, 6 and 24 layers of
# `nn.TransformerEncoderLayer` ($E = 32$, 4 heads, $F = 64$, a random linear loss).

# %%
def gradient_norms(depth: int, norm_first: bool) -> tuple:
    torch.manual_seed(0)
    layers = nn.ModuleList(nn.TransformerEncoderLayer(32, 4, 64, dropout=0.0, batch_first=True, norm_first=norm_first)
                           for _ in range(depth))
    u = torch.randn(8, 16, 32, generator=torch.Generator().manual_seed(1))
    for layer in layers:
        u = layer(u)
    if norm_first:
        u = F.layer_norm(u, (32,))  # the final layer norm of a pre-norm stack
    weights = torch.randn(u.shape, generator=torch.Generator().manual_seed(2))
    ((u * weights).sum() / math.sqrt(u.numel())).backward()
    return layers[-1].linear2.weight.grad.norm().item(), layers[0].linear2.weight.grad.norm().item()


print("depth | post-norm |grad W2| last, first | pre-norm |grad W2| last, first")
for depth in (2, 6, 24):
    post, pre = gradient_norms(depth, False), gradient_norms(depth, True)
    print(f"{depth:5d} | {post[0]:10.2f} {post[1]:8.2f}        | {pre[0]:9.2f} {pre[1]:8.2f}")

# %% [markdown]
# In this measurement the post-norm stack's last-layer gradient stays at about the same size as
# the stack deepens, while the pre-norm stack's last-layer gradient shrinks with depth (roughly
# halved at 24 layers): the direction Xiong et al. predict, here on one random initialisation of a
# small model, not a proof. Which order trains better also depends on warm-up and learning rate;
# the GPT of chapter 13 uses pre-norm.
#
# ## 7. An encoder layer equal to `nn.TransformerEncoderLayer`
#
# `transformer.encoder_layer` takes the parameters by the names of `nn.TransformerEncoderLayer`'s
# state dict (`self_attn.in_proj_weight` $(3E, E)$, `self_attn.out_proj.weight` $(E, E)$,
# `linear1.weight` $(F, E)$, `linear2.weight` $(E, F)$, `norm1.weight` $(E,)$, ...), so a module's own
# tensors can be passed in. Its self-attention is chapter 11's `multi_head_attention`; masks use
# the module's polarity (bool `True` = masked). Dropout is left out: we compare with the module in
# evaluation mode, where dropout is the identity.

# %%
show_source(transformer.encoder_layer)

# %%
worst = {"forward": 0.0, "backward": 0.0}
B_e, T_e, E_e, h_e = 3, 6, 8, 2
pad_mask = torch.tensor([[False] * 6, [False] * 4 + [True] * 2, [False] * 2 + [True] * 4])  # (B, T): True = padding
causal = torch.ones(T_e, T_e, dtype=torch.bool).triu(1)  # True = masked: key after query
for norm_first in (False, True):
    for activation in ("relu", "gelu"):
        torch.manual_seed(3)
        layer = nn.TransformerEncoderLayer(E_e, h_e, dim_feedforward=16, dropout=0.1, activation=activation,
                                           norm_first=norm_first, batch_first=True, dtype=DT).eval()
        with torch.no_grad():  # move the layer norms away from (1, 0) so that they are really tested
            for p in (layer.norm1.weight, layer.norm1.bias, layer.norm2.weight, layer.norm2.bias):
                p.add_(0.3 * torch.randn(p.shape, dtype=DT))
        xe = torch.randn(B_e, T_e, E_e, dtype=DT, requires_grad=True)
        ref = layer(xe, src_mask=causal, src_key_padding_mask=pad_mask)
        ours = transformer.encoder_layer(xe, transformer.encoder_params(layer), h_e, norm_first=norm_first,
                                         activation=activation, src_mask=causal, src_key_padding_mask=pad_mask,
                                         batch_first=True)
        up = torch.randn(ours.shape, dtype=DT)
        leaves = [xe, *layer.parameters()]
        name = f"norm_first={norm_first!s:5}, {activation}"
        worst["forward"] = max(worst["forward"], compare(f"{name}: output", ours, ref))
        worst["backward"] = max(worst["backward"], compare(
            f"{name}: grads of x and {len(leaves) - 1} parameters",
            torch.autograd.grad((ours * up).sum(), leaves), torch.autograd.grad((ref * up).sum(), leaves)))
record("encoder layer vs nn.TransformerEncoderLayer: max forward error (float64)", worst["forward"], "", ".1e")
record("encoder layer vs nn.TransformerEncoderLayer: max backward error (float64)", worst["backward"], "", ".1e")

# %% [markdown]
# Four configurations, with a causal mask and padded sequences, agree with PyTorch to rounding
# error in the output and in the gradients of the input and all twelve parameter tensors
# (`tests/test_transformer.py` repeats this on random shapes down to one token, one head and width 1).
#
# ## 8. A decoder-only block
#
# A GPT-style model stacks **pre-norm blocks with causal self-attention**: token $t$ may attend to
# tokens $\le t$ only, so the model can be trained to predict every next token of a sequence at
# once. `transformer.Block(E, h)` holds the packed projection $W_{qkv} \in \mathbb{R}^{3E\times E}$,
# the output projection $W_o \in \mathbb{R}^{E\times E}$, two layer norms and a GELU MLP of width
# $4E$; per block that is $12E^2 + 13E$ parameters. `forward(x, kv_cache)` also returns the keys and
# values it computed, $(B, h, T, d)$ each. Passed back in, the cache lets the next call process only
# new tokens: their queries attend to the cached keys and to the new keys up to their own
# position, a **lower-right** aligned causal mask (chapter 11 showed why `is_causal=True`, aligned
# top-left, is wrong there). Chapter 13 builds the GPT from these blocks.

# %%
show_source(transformer.Block.attend, transformer.Block.forward)

# %%
E_b = 32
block = transformer.Block(E_b, 4).double().eval()
n_params = sum(p.numel() for p in block.parameters())
print(f"parameters: {n_params:,}; 12 E^2 + 13 E = {12 * E_b**2 + 13 * E_b:,}")
xb = torch.randn(2, 10, E_b, dtype=DT)
full, (k_all, v_all) = block(xb)
changed = xb.clone()
changed[:, 6:] = torch.randn(2, 4, E_b, dtype=DT)  # change the future of position 5
print(f"causal: change tokens 6..9 -> max change of outputs 0..5 = {(block(changed)[0][:, :6] - full[:, :6]).abs().max():.1e}, "
      f"of outputs 6..9 = {(block(changed)[0][:, 6:] - full[:, 6:]).abs().max():.2f}")
y_prefix, cache = block(xb[:, :7])
steps = [y_prefix]
for t in range(7, 10):  # one token at a time, with the cache
    y_t, cache = block(xb[:, t:t + 1], kv_cache=cache)
    steps.append(y_t)
compare("7 tokens, then 3 single-token steps with the KV cache vs one full pass", torch.cat(steps, 1), full)
print("cache shapes (B, h, T, d):", tuple(cache[0].shape), tuple(cache[1].shape))

# %% [markdown]
# ## 9. The source articles' Transformer listings
#
# The talent article prints this Transformer in its section 4.4 ("implementing a Transformer model
# with PyTorch"), indentation lost as in all its listings (comments: "define the Transformer model",
# "create an instance", "define the loss function", "define the optimiser", "train the Transformer"):
#
# ```text
# class Net(nn.Module):
# def __init__(self, ntoken, nhead, num_layers, nhid):
# super(Net, self).__init__()
# self.token_embedding = nn.Embedding(ntoken, nhid)
# self.pos_embedding = nn.Parameter(torch.zeros(1, ntoken, nhid))
# self.encoder = nn.TransformerEncoderLayer(nhead, nhid)
# self.transformer_encoder = nn.TransformerEncoder(self.encoder, num_layers)
# self.decoder = nn.Linear(nhid, ntoken)
# def forward(self, src):
# src_mask = torch.zeros(1, len(src), len(src))
# src = src * src_mask
# src = self.token_embedding(src) + self.pos_embedding
# src = self.transformer_encoder(src, src_mask)
# output = self.decoder(src)
# return output
# # 创建变压器实例
# ntoken = 10000
# nhead = 8
# num_layers = 6
# nhid = 512
# net = Net(ntoken, nhead, num_layers, nhid)
# ```
#
# followed by the same `for data, target in dataloader` loop as its other listings, with a
# `dataloader` it never defines (chapter 04). We restore the indentation, execute it in a fresh
# namespace as in chapters 07 and 09, and fix one bug at a time; `attempt` prints the error instead
# of stopping the notebook.

# %%
LISTING_TALENT = """
import torch
import torch.nn as nn
class Net(nn.Module):
    def __init__(self, ntoken, nhead, num_layers, nhid):
        super(Net, self).__init__()
        self.token_embedding = nn.Embedding(ntoken, nhid)
        self.pos_embedding = nn.Parameter(torch.zeros(1, ntoken, nhid))
        self.encoder = nn.TransformerEncoderLayer(nhead, nhid)
        self.transformer_encoder = nn.TransformerEncoder(self.encoder, num_layers)
        self.decoder = nn.Linear(nhid, ntoken)
    def forward(self, src):
        src_mask = torch.zeros(1, len(src), len(src))
        src = src * src_mask
        src = self.token_embedding(src) + self.pos_embedding
        src = self.transformer_encoder(src, src_mask)
        output = self.decoder(src)
        return output
"""


# nn.TransformerEncoder warns that its nested-tensor fast path needs batch_first=True: true, and the
# subject of bug 4 below; we silence the repeated warning and show the consequence instead.
warnings.filterwarnings("ignore", message="enable_nested_tensor is True")


def build(source: str, *args) -> nn.Module:
    """Execute a listing in a fresh namespace and instantiate its class `Net` (or the first nn.Module)."""
    namespace = {}
    exec(source, namespace)
    cls = namespace.get("Net") or next(v for v in namespace.values()
                                       if isinstance(v, type) and issubclass(v, nn.Module) and v.__module__ == "builtins")
    torch.manual_seed(0)
    return cls(*args)


def attempt(call):
    """Run ``call()``; print the shape of its result or the error it raised."""
    try:
        out = call()
    except Exception as err:
        message = str(err).strip().splitlines()[0] if str(err).strip() else ""
        print(f"  -> {type(err).__name__}: {message}")
        return None
    print(f"  -> ran, output shape {tuple(out.shape)}" if hasattr(out, "shape") else "  -> ran")
    return out


print("as printed, with the article's sizes (ntoken=10000, nhead=8, num_layers=6, nhid=512):")
_ = attempt(lambda: build(LISTING_TALENT, 10000, 8, 6, 512))

# %% [markdown]
# **Bug 1: the arguments of `nn.TransformerEncoderLayer` are swapped.** Its signature is
# `TransformerEncoderLayer(d_model, nhead, dim_feedforward=2048, ...)`: the listing asks for a model
# width of 8 split into 512 heads, and the attention refuses because 8 is not divisible by 512. The
# fix is `nn.TransformerEncoderLayer(nhid, nhead)`. To run the rest quickly we continue with a small
# configuration of the same shape: vocabulary 50, 2 heads, 2 layers, width 16, and a batch of 4
# sequences of 10 token ids, $(B, T)$, batch first, as the $(1, \cdot, \text{nhid})$ position table
# implies.

# %%
step1 = LISTING_TALENT.replace("nn.TransformerEncoderLayer(nhead, nhid)", "nn.TransformerEncoderLayer(nhid, nhead)")
NTOK, NHEAD, NLAYERS, NHID = 50, 2, 2, 16
ids = torch.randint(0, NTOK, (4, 10), generator=gen)  # (B, T)
print("bug 1 fixed, ids (4, 10):")
_ = attempt(lambda: build(step1, NTOK, NHEAD, NLAYERS, NHID)(ids))
ids_square = torch.randint(0, NTOK, (4, 4), generator=gen)
mask_demo = torch.zeros(1, len(ids_square), len(ids_square))
print("what `src * src_mask` gives when the shapes happen to broadcast, ids (4, 4):",
      (ids_square * mask_demo).dtype, tuple((ids_square * mask_demo).shape), "all zero:", bool((ids_square * mask_demo == 0).all()))
_ = attempt(lambda: build(step1, NTOK, NHEAD, NLAYERS, NHID)(ids_square))

# %% [markdown]
# **Bug 2: the token ids are multiplied by an all-zero "mask".** `src_mask` is `zeros(1, B, B)`
# (`len(src)` is the batch size), and `src * src_mask` either fails to broadcast against the
# $(B, T)$ ids, as above, or, when it broadcasts, turns every id into the float 0: the embedding
# then refuses float indices, and had it accepted them, every token would have become token 0. An
# attention mask belongs inside attention, never on the inputs. Fix: delete the line.

# %%
step2 = step1.replace("        src = src * src_mask\n", "")
print("bug 2 fixed, ids (4, 10):")
_ = attempt(lambda: build(step2, NTOK, NHEAD, NLAYERS, NHID)(ids))

# %% [markdown]
# **Bug 3: the position table is sized by the vocabulary.** `torch.zeros(1, ntoken, nhid)` has one
# row per *token type* (50 here, 10,000 in the article), but positions index the *sequence*: the
# sum with the $(B, T, E)$ token embeddings only broadcasts when $T$ equals the vocabulary size.
# Fix: one row per position up to a context length, and take the first $T$ rows:
# `nn.Parameter(torch.zeros(1, context, nhid))` and `self.pos_embedding[:, :src.size(1)]`.

# %%
CONTEXT = 32
step3 = (step2.replace("def __init__(self, ntoken, nhead, num_layers, nhid):",
                       "def __init__(self, ntoken, nhead, num_layers, nhid, context=32):")
              .replace("torch.zeros(1, ntoken, nhid)", "torch.zeros(1, context, nhid)")
              .replace("+ self.pos_embedding\n", "+ self.pos_embedding[:, :src.size(1)]\n"))
print("bug 3 fixed, ids (4, 10):")
_ = attempt(lambda: build(step3, NTOK, NHEAD, NLAYERS, NHID)(ids))

# %% [markdown]
# **Bug 4: the mask has the wrong shape and means nothing; the layer is not batch first.** The
# zero tensor is now passed as the attention mask. A float mask is *added* to the scores, so an
# all-zero mask masks nothing; its shape $(1, B, B)$ is accepted by neither form the module knows,
# $(T, T)$ or $(B\cdot h, T, T)$. The expected shape $(20, 4, 4)$ in the message gives away a second
# bug: without `batch_first=True`, `nn.TransformerEncoderLayer` reads its input as $(T, B, E)$, so
# the $(4, 10, 16)$ tensor is taken as 4 time steps of 10 sequences ($10 \times 2$ heads $= 20$). Repair the mask first: for a language model it is
# the causal mask of the sequence length, $(T, T)$ with $-\infty$ above the diagonal
# (`nn.Transformer.generate_square_subsequent_mask`).

# %%
step4a = step3.replace("src_mask = torch.zeros(1, len(src), len(src))",
                       "src_mask = nn.Transformer.generate_square_subsequent_mask(src.size(1))")
print("causal (T, T) mask, still without batch_first:")
_ = attempt(lambda: build(step4a, NTOK, NHEAD, NLAYERS, NHID)(ids))
step4 = step4a.replace("nn.TransformerEncoderLayer(nhid, nhead)", "nn.TransformerEncoderLayer(nhid, nhead, batch_first=True)")
print("and batch_first=True:")
net_fixed = build(step4, NTOK, NHEAD, NLAYERS, NHID).eval()
logits = attempt(lambda: net_fixed(ids))

# %% [markdown]
# The missing `batch_first` is the dangerous one, because without a mask nothing fails: attention
# then runs *across the batch*, mixing different sequences, while each sequence's own tokens never
# see each other. We show it on the listing with bugs 1–3 fixed and the mask removed: change
# sequence 1 and watch the output of sequence 0.

# %%
def batch_leak(source: str) -> float:
    model = build(source, NTOK, NHEAD, NLAYERS, NHID).eval()
    other = ids.clone()
    other[1] = torch.randint(0, NTOK, (10,), generator=gen)  # change sequence 1 only
    with torch.no_grad():
        return (model(other)[0] - model(ids)[0]).abs().max().item()


no_mask = step3.replace("src = self.transformer_encoder(src, src_mask)", "src = self.transformer_encoder(src)")
print(f"no mask, default layout: change sequence 1 -> output of sequence 0 moves by {batch_leak(no_mask):.3f}")
print(f"no mask, batch_first=True: change sequence 1 -> output of sequence 0 moves by "
      f"{batch_leak(no_mask.replace('(nhid, nhead)', '(nhid, nhead, batch_first=True)')):.1e}")
targets = torch.roll(ids, -1, dims=1)  # a placeholder next-token target, to show the loss's shapes
print(f"repaired listing: logits {tuple(logits.shape)}; cross-entropy needs (B, V, T) or (B*T, V): "
      f"{F.cross_entropy(logits.transpose(1, 2), targets).item():.3f} nats vs ln(V) = {math.log(NTOK):.3f} at initialisation")

# %% [markdown]
# The repaired listing is a small causal language model: embeddings plus a learned position
# table, a post-norm encoder stack with a causal mask (PyTorch's default `norm_first=False`), and a
# linear head. Two remarks remain that are not bugs: a zero-initialised position table is allowed
# (it is learned; GPT-2 initialises it randomly), and the article's `CrossEntropyLoss` needs the
# logits as $(B, V, T)$ (or flattened to $(B\cdot T, V)$), not the $(B, T, V)$ the model returns.
#
# The employment article's listing (its section 4.3, "implementing a Transformer with PyTorch") is
# an encoder–decoder:
#
# ```text
# class Transformer(nn.Module):
# def __init__(self, ntoken, nhead, nhid, num_encoder_layers, num_decoder_layers, dropout=0.1):
# super().__init__()
# self.model_type = 'Transformer'
# self.src_mask = None
# self.pos_encoder = PositionalEncoding(ntoken, dropout)
# encoder_layers = [EncoderLayer(ntoken, nhead, nhid, dropout) for _ in range(num_encoder_layers)]
# self.encoder = Encoder(encoder_layers, ntoken)
# decoder_layers = [DecoderLayer(ntoken, nhead, nhid, dropout) for _ in range(num_decoder_layers)]
# self.decoder = Decoder(decoder_layers, ntoken)
# self.fc_out = nn.Linear(nhid, ntoken)
# def forward(self, src, trg, src_mask=None, trg_padding_mask=None, lookup_pos=None):
# # src = self.pos_encoder(src, lookup_pos)
# # trg = self.pos_encoder(trg, lookup_pos)
# memory = self.encoder(src, src_mask)
# output = self.decoder(memory, trg, trg_padding_mask)
# output = self.fc_out(output)
# return output
# ```

# %%
LISTING_EMPLOYMENT = """
import torch
import torch.nn as nn
import torch.nn.functional as F
class Transformer(nn.Module):
    def __init__(self, ntoken, nhead, nhid, num_encoder_layers, num_decoder_layers, dropout=0.1):
        super().__init__()
        self.model_type = 'Transformer'
        self.src_mask = None
        self.pos_encoder = PositionalEncoding(ntoken, dropout)
        encoder_layers = [EncoderLayer(ntoken, nhead, nhid, dropout) for _ in range(num_encoder_layers)]
        self.encoder = Encoder(encoder_layers, ntoken)
        decoder_layers = [DecoderLayer(ntoken, nhead, nhid, dropout) for _ in range(num_decoder_layers)]
        self.decoder = Decoder(decoder_layers, ntoken)
        self.fc_out = nn.Linear(nhid, ntoken)
"""
print("as printed:")
_ = attempt(lambda: build(LISTING_EMPLOYMENT, NTOK, NHEAD, NHID, 2, 2))
print("names it uses that torch.nn defines:",
      {name: hasattr(nn, name) for name in ("PositionalEncoding", "EncoderLayer", "Encoder", "DecoderLayer", "Decoder")})

# %% [markdown]
# **The employment article's classes are never defined.** `PositionalEncoding`, `EncoderLayer`,
# `Encoder`, `DecoderLayer` and `Decoder` are neither defined nor imported, and `torch.nn` has none
# of them (its classes are `nn.TransformerEncoderLayer`, `nn.TransformerEncoder`,
# `nn.TransformerDecoderLayer`, `nn.TransformerDecoder`); the first one reached raises `NameError`.
# Supplying them does not finish the job, because the listing's sizes do not fit together: the
# vocabulary size `ntoken` is passed where a model width belongs, while the output layer expects
# width `nhid`; there is no token embedding at all, and the positional encoding is commented out of
# `forward`; the decoder is called as `decoder(memory, trg, ...)`, the reverse of PyTorch's
# `decoder(tgt, memory)`. A minimal repair with PyTorch's classes and this chapter's sinusoidal table:
# embeddings of width `d_model`, positions added, encoder and decoder batch first, a causal mask on
# the target, and the head from `d_model` to the vocabulary.

# %%
class RepairedTransformer(nn.Module):
    """The employment article's encoder-decoder, with the undefined classes replaced by torch.nn's."""

    def __init__(self, ntoken: int, nhead: int, d_model: int, nhid: int, num_encoder_layers: int,
                 num_decoder_layers: int, dropout: float = 0.1, context: int = 64) -> None:
        super().__init__()
        self.embed = nn.Embedding(ntoken, d_model)
        self.register_buffer("pe", position.sinusoidal_encoding(context, d_model))  # (context, d_model)
        self.drop = nn.Dropout(dropout)
        enc = nn.TransformerEncoderLayer(d_model, nhead, nhid, dropout, batch_first=True)
        dec = nn.TransformerDecoderLayer(d_model, nhead, nhid, dropout, batch_first=True)
        self.encoder = nn.TransformerEncoder(enc, num_encoder_layers, enable_nested_tensor=False)
        self.decoder = nn.TransformerDecoder(dec, num_decoder_layers)
        self.fc_out = nn.Linear(d_model, ntoken)

    def embed_positions(self, ids: torch.Tensor) -> torch.Tensor:  # (B, T) -> (B, T, d_model)
        return self.drop(self.embed(ids) * math.sqrt(self.embed.embedding_dim) + self.pe[: ids.size(1)])

    def forward(self, src: torch.Tensor, trg: torch.Tensor, src_padding_mask=None, trg_padding_mask=None):
        memory = self.encoder(self.embed_positions(src), src_key_padding_mask=src_padding_mask)
        causal_trg = nn.Transformer.generate_square_subsequent_mask(trg.size(1))
        out = self.decoder(self.embed_positions(trg), memory, tgt_mask=causal_trg,
                           tgt_key_padding_mask=trg_padding_mask, memory_key_padding_mask=src_padding_mask)
        return self.fc_out(out)  # (B, T_trg, ntoken)


torch.manual_seed(0)
seq2seq = RepairedTransformer(NTOK, NHEAD, NHID, 4 * NHID, 2, 2).double().eval()  # float64: a leak would stand out above rounding
src_ids, trg_ids = torch.randint(0, NTOK, (4, 12), generator=gen), torch.randint(0, NTOK, (4, 9), generator=gen)
out_ids = attempt(lambda: seq2seq(src_ids, trg_ids))
trg_changed = trg_ids.clone()
trg_changed[:, 5:] = (trg_changed[:, 5:] + 1) % NTOK
with torch.no_grad():
    leak = (seq2seq(src_ids, trg_changed)[:, :5] - out_ids[:, :5]).abs().max().item()
print(f"causal decoder: changing target tokens 5..8 moves outputs 0..4 by {leak:.1e}")

# %% [markdown]
# The $\sqrt{d_{\text{model}}}$ scaling of the embeddings follows Vaswani et al. (section 3.4); the
# rest is PyTorch's documented API. Built from the course's own pieces, the encoder layers could be
# `transformer.encoder_layer` (section 7).

# %%
elapsed = time.perf_counter() - NOTEBOOK_START
record("notebook 12: run time", elapsed, "s", ".1f")

# %% [markdown]
# ## Summary
#
# * Self-attention, the feed-forward network and layer norm are permutation-equivariant:
#   reordering the tokens reorders the outputs (measured: equal to rounding error). Positions must be
#   injected.
# * The sinusoidal table $\mathrm{PE}_{p,2i} = \sin(p\,\omega_i)$, $\mathrm{PE}_{p,2i+1} = \cos(p\,\omega_i)$
#   turns a shift by $k$ into one fixed rotation $M_k$ and makes $\mathrm{PE}_p\cdot\mathrm{PE}_{p+k}$ a
#   function of $k$ only; a learned table is flexible but has no row beyond its context length and no
#   notion of distance before training.
# * RoPE rotates queries and keys by position-dependent angles, so scores depend on $n - m$ only
#   (measured to rounding error, also 1,000 positions later). Rotate-half and interleaved layouts differ
#   by a permutation of the head dimensions; ours match `torch.onnx.ops.rotary_embedding` in both.
# * A Transformer layer is attention and a feed-forward network (ReLU or GELU), each with a residual
#   connection and a layer norm, after the addition (post-norm) or inside the branch (pre-norm).
#   Our encoder layer equals `nn.TransformerEncoderLayer` in all four configurations, forward and
#   backward, in float64.
# * The decoder-only `Block` is pre-norm with causal attention and a KV cache; processing tokens one at a
#   time with the cache gives the full pass's result.
# * The talent article's Transformer needs five repairs (swapped constructor arguments, ids
#   multiplied by a zero "mask", a position table sized by the vocabulary, a meaningless mask, the
#   missing `batch_first`, which without a mask silently mixes the sequences of a batch); the
#   employment article's builds on five classes that exist nowhere.
#
# ## Exercises
#
# Open `exercises/12_transformer.ipynb`: write the sinusoidal table and RoPE in the rotate-half
# layout (the checks recognise sines and cosines in two halves, the exponent $i/E$, adjacent pairs
# where rotate-half is asked, positions counted from 0 after a KV cache), derive the backward pass
# of layer norm, debug a pre-norm block with three bugs (heads split with `view` alone, no
# $1/\sqrt{d_k}$, post-norm where pre-norm is asked), and predict the parameter count of
# `nn.TransformerEncoderLayer` from the weight shapes before building it.
#
# ## References
#
# * A. Vaswani, N. Shazeer, N. Parmar, J. Uszkoreit, L. Jones, A. N. Gomez, Ł. Kaiser, I. Polosukhin.
#   *Attention is all you need.* NeurIPS 2017, arXiv:1706.03762. (Sinusoidal encoding, section 3.5;
#   the post-norm encoder layer.)
# * J. Su, Y. Lu, S. Pan, A. Murtadha, B. Wen, Y. Liu. *RoFormer: Enhanced Transformer with rotary
#   position embedding.* arXiv:2104.09864 (2021).
# * R. Xiong, Y. Yang, D. He, K. Zheng, S. Zheng, C. Xing, H. Zhang, Y. Lan, L. Wang, T.-Y. Liu.
#   *On layer normalization in the Transformer architecture.* ICML 2020, arXiv:2002.04745.
# * D. Hendrycks, K. Gimpel. *Gaussian error linear units (GELUs).* arXiv:1606.08415 (2016).
# * PyTorch documentation: `torch.nn.TransformerEncoderLayer`, `torch.nn.MultiheadAttention`,
#   `torch.onnx.ops.rotary_embedding` (the ONNX `RotaryEmbedding` operator).

# %%
print(explorer.self_check())
