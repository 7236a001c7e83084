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
# # 12 · Exercises: positions and the Transformer block
#
# Student sheet: <a href="https://colab.research.google.com/github/nn-from-scratch/course/blob/main/exercises/12_transformer.ipynb" target="_parent"><img src="https://colab.research.google.com/assets/colab-badge.svg" alt="Open In Colab"/></a>
# · with solutions: [solutions/12_transformer.ipynb](https://colab.research.google.com/github/nn-from-scratch/course/blob/main/solutions/12_transformer.ipynb)
#
# Five exercises on the lecture `notebooks/12_transformer.ipynb`: the sinusoidal position table,
# rotary position embedding (RoPE) in the rotate-half layout, a **derivation** (the backward pass of
# layer norm), a **debugging** exercise (a pre-norm Transformer block with three bugs) and a
# **prediction** (how many parameters `nn.TransformerEncoderLayer` has, before building it).
#
# Replace each `raise NotImplementedError(...)` with your code and run the `check(...)` cell below
# it: it compares your function with the course's reference on several inputs (one position, one
# head, one feature, positions that do not start at 0) and reports the first mismatch. When your
# answer looks like a typical mistake, the check names it and says which idea it gets wrong; each
# further failure shows one more hint, and `hint("12.2")` (with any question's number) asks for the
# next hint without running the check. Use plain tensor operations, not `course_lib.position`,
# `course_lib.norm`, `course_lib.transformer`, `torch.nn.TransformerEncoderLayer` or autograd inside
# your answers: the point is to write them yourself. All tensors are `float64`.

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
# ## 12.1 The sinusoidal position table (1 point)
#
# Vaswani et al. ("Attention Is All You Need", NeurIPS 2017, arXiv:1706.03762) add to the token
# embeddings a fixed table $P \in \mathbb{R}^{T\times E}$ ($E$ even): for positions
# $p = 0, \dots, T-1$ and pairs $i = 0, \dots, E/2 - 1$,
#
# $$P_{p,\,2i} = \sin\!\big(p\,\omega_i\big),\qquad P_{p,\,2i+1} = \cos\!\big(p\,\omega_i\big),\qquad
# \omega_i = \text{base}^{-2i/E},$$
#
# with $\text{base} = 10000$ by default. Return $P$ as a $(T, E)$ `float64` tensor.

# %%
def sinusoidal_encoding(T: int, E: int, base: float = 10000.0) -> torch.Tensor:
    """The sinusoidal position table: (T, E) float64, sine in the even and cosine in the odd columns."""
    ### BEGIN SOLUTION 12.1
    positions = torch.arange(T, dtype=torch.float64)[:, None]  # (T, 1)
    rates = torch.exp(-math.log(base) * torch.arange(0, E, 2, dtype=torch.float64) / E)  # (E/2,)
    table = torch.empty(T, E, dtype=torch.float64)
    table[:, 0::2] = torch.sin(positions * rates)
    table[:, 1::2] = torch.cos(positions * rates)
    return table
    ### END SOLUTION


# %%
check("12.1", sinusoidal_encoding)

# %% [markdown]
# Each pair of columns is a point on a circle turning at rate $\omega_i$, so the dot product of two
# rows, $P_p \cdot P_{p+k} = \sum_i \cos(k\,\omega_i)$, depends on the offset $k$ only, not on $p$.
# Measured on your table (or the reference) with $T = 200$, $E = 64$:

# %%
table = use("12.1", sinusoidal_encoding)(200, 64)
for k in (0, 1, 10, 100):
    dots = (table[: 200 - k] * table[k:]).sum(dim=1)  # P_p . P_{p+k} for every p
    print(f"offset k = {k:3d}: P_p . P_(p+k) over all p in [{float(dots.min()):.6f}, {float(dots.max()):.6f}]")

# %% [markdown]
# ## 12.2 Rotary position embedding, rotate-half layout (2 points)
#
# RoPE (Su et al., "RoFormer: Enhanced Transformer with Rotary Position Embedding", arXiv:2104.09864)
# rotates queries and keys instead of adding a table. For $x \in \mathbb{R}^{\dots\times T\times d}$
# ($d$ even) and integer positions $p_t$, $t = 0, \dots, T-1$, split the last axis into halves
# $a = x_{\dots,:d/2}$ and $b = x_{\dots,d/2:}$ (the **rotate-half** layout of the GPT-NeoX and Llama models in Hugging Face transformers,
# `torch.onnx.ops.rotary_embedding(interleaved=False)`: dimension $j$ is paired with $j + d/2$).
# With $\theta_{t,j} = p_t\,10000^{-2j/d}$ for $j = 0, \dots, d/2 - 1$,
#
# $$\text{rope}(x)_{\dots,t,j} = a_{t,j}\cos\theta_{t,j} - b_{t,j}\sin\theta_{t,j},\qquad
# \text{rope}(x)_{\dots,t,j+d/2} = a_{t,j}\sin\theta_{t,j} + b_{t,j}\cos\theta_{t,j}.$$
#
# `positions` is an integer tensor of shape $(T,)$, the same for every leading index; it need not
# start at 0 (a chunk decoded after a KV cache of 7 tokens has positions $7, 8, \dots$). Return a
# tensor shaped like `x`.

# %%
def rope(x: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """Rotary position embedding, rotate-half layout, base 10000: x (..., T, d), positions (T,) -> (..., T, d)."""
    ### BEGIN SOLUTION 12.2
    d = x.shape[-1]
    rates = 10000.0 ** (-torch.arange(0, d, 2, dtype=torch.float64) / d)  # (d/2,)
    angles = positions.to(torch.float64)[:, None] * rates  # (T, d/2)
    cos, sin = torch.cos(angles), torch.sin(angles)
    a, b = x[..., : d // 2], x[..., d // 2:]
    return torch.cat((a * cos - b * sin, a * sin + b * cos), dim=-1)
    ### END SOLUTION


# %%
check("12.2", rope)

# %% [markdown]
# Why rotate: a rotation by $\theta_m$ followed by the transpose of one by $\theta_n$ is a rotation by
# $\theta_m - \theta_n$, so the score between a query at position $m$ and a key at position $n$
# depends on $m - n$ only. Below, the same query and key are placed at pairs of positions with the
# same offset $m - n = 3$, and at pairs with different offsets.

# %%
rope_fn = use("12.2", rope)
q_vec, k_vec = torch.randn(1, 32, dtype=torch.float64), torch.randn(1, 32, dtype=torch.float64)


def rotated_score(m: int, n: int) -> float:
    """The dot product of q placed at position m and k placed at position n."""
    return float(rope_fn(q_vec, torch.tensor([m])) @ rope_fn(k_vec, torch.tensor([n])).T)


same_offset = [rotated_score(n + 3, n) for n in (0, 5, 50, 500)]
print("offset 3 at n = 0, 5, 50, 500:", ", ".join(f"{s:.10f}" for s in same_offset))
print("offsets 0, 1, 3, 10 at n = 5:   ", ", ".join(f"{rotated_score(5 + k, 5):.10f}" for k in (0, 1, 3, 10)))

# %% [markdown]
# ## 12.3 Derive the backward pass of layer norm (3 points)
#
# Layer norm (Ba, Kiros & Hinton, "Layer Normalization", arXiv:1607.06450) normalises each row of
# $E$ features of $x \in \mathbb{R}^{\dots\times E}$ and rescales it with a learned weight
# $\gamma \in \mathbb{R}^{E}$ and bias $\beta \in \mathbb{R}^{E}$:
#
# $$\mu = \frac{1}{E}\sum_{k} x_k,\quad \sigma^2 = \frac{1}{E}\sum_k (x_k - \mu)^2,\quad
# s = \frac{1}{\sqrt{\sigma^2 + \varepsilon}},\quad \hat{x}_k = (x_k - \mu)\,s,\quad
# y_k = \gamma_k \hat{x}_k + \beta_k$$
#
# (the variance divides by $E$, as `F.layer_norm` does). Given the upstream gradient
# $\mathrm{d}y = \partial L/\partial y$ shaped like $x$, **derive** and return
# $(\partial L/\partial x,\ \partial L/\partial \gamma,\ \partial L/\partial \beta)$: the first
# shaped like $x$, the other two $(E,)$, summed over every leading dimension. Do not call autograd:
# the point is the formula (the cell after the check compares yours with autograd). Remember that
# $\mu$ and $\sigma^2$ are functions of $x$.

# %%
def layer_norm_backward(dy: torch.Tensor, x: torch.Tensor, weight: torch.Tensor, eps: float = 1e-5):
    """The gradients of layer norm over the last axis: dy, x (..., E), weight (E,) -> (dx, dweight, dbias)."""
    ### BEGIN SOLUTION 12.3
    centred = x - x.mean(dim=-1, keepdim=True)
    s = 1 / torch.sqrt(centred.pow(2).mean(dim=-1, keepdim=True) + eps)
    xhat = centred * s
    g = dy * weight
    dx = s * (g - g.mean(dim=-1, keepdim=True) - xhat * (g * xhat).mean(dim=-1, keepdim=True))
    leading = tuple(range(x.dim() - 1))
    return dx, (dy * xhat).sum(dim=leading), dy.sum(dim=leading)
    ### END SOLUTION


# %%
check("12.3", layer_norm_backward)

# %% [markdown]
# Your formula (or the reference) against autograd through `F.layer_norm`, on a batch of
# $(B, T, E) = (4, 10, 32)$ activations:

# %%
ln_backward = use("12.3", layer_norm_backward)
x_ln = torch.randn(4, 10, 32, dtype=torch.float64, requires_grad=True)
w_ln = torch.randn(32, dtype=torch.float64, requires_grad=True)
b_ln = torch.randn(32, dtype=torch.float64, requires_grad=True)
dy_ln = torch.randn(4, 10, 32, dtype=torch.float64)
F.layer_norm(x_ln, (32,), w_ln, b_ln, 1e-5).backward(dy_ln)
mine = ln_backward(dy_ln, x_ln.detach(), w_ln.detach())
ln_errors = {name: float((a - b.grad).abs().max()) for name, a, b in zip(("dx", "dweight", "dbias"), mine, (x_ln, w_ln, b_ln))}
print("max |yours - autograd|:", ", ".join(f"{k} {v:.1e}" for k, v in ln_errors.items()))
print(f"every row of dx sums to 0 (the mean's path): max |row sum| = {float(mine[0].sum(dim=-1).abs().max()):.1e}")

# %% [markdown]
# ## 12.4 Debug a pre-norm Transformer block (3 points)
#
# A **pre-norm** block with causal self-attention (the block of GPT-2 and of the lecture) maps
# $x \in \mathbb{R}^{B\times T\times E}$ to
#
# $$u = x + \mathrm{MHA}\big(\mathrm{LN}_1(x)\big),\qquad y = u + \mathrm{FF}\big(\mathrm{LN}_2(u)\big),\qquad
# \mathrm{FF}(z) = \mathrm{GELU}(z W_1^\top + b_1)\,W_2^\top + b_2,$$
#
# with $W_1 \in \mathbb{R}^{F\times E}$, $W_2 \in \mathbb{R}^{E\times F}$ and exact GELU. Multi-head
# attention with $h$ heads of width $d = E/h$ projects $Q = zW_q^\top + b_q$ (and $K$, $V$ likewise,
# $(B, T, E)$ each), gives head $k$ the features $kd, \dots, (k+1)d - 1$ of every token, computes
# per head
#
# $$\mathrm{softmax}\!\Big(\frac{Q_k K_k^\top}{\sqrt{d}} + M\Big) V_k \in \mathbb{R}^{T\times d},\qquad
# M_{ij} = \begin{cases}0 & j \le i\\ -\infty & j > i\end{cases},$$
#
# concatenates the heads back to $(B, T, E)$ and applies the output projection
# $W_o \in \mathbb{R}^{E\times E}$, $b_o$. The parameters are named like the state_dict of
# `nn.TransformerEncoderLayer(E, h, F, dropout=0.0, activation="gelu", batch_first=True,
# norm_first=True)` ($W_q, W_k, W_v$ stacked in `self_attn.in_proj_weight` $(3E, E)$), and the block
# equals that module called with `src_mask` = the causal mask (`True` = masked).
#
# The listing below was meant to compute this block; it runs without error, but it has **three
# bugs**. Find them and write the corrected block as `pre_norm_block`. (Copying the listing into
# your answer and fixing it is the intended way.)

# %%
def buggy_block(x: torch.Tensor, params: dict, num_heads: int) -> torch.Tensor:
    """Meant to be a pre-norm block with causal self-attention: x (B, T, E) -> (B, T, E). Three bugs."""
    B, T, E = x.shape
    d = E // num_heads
    W_q, W_k, W_v = params["self_attn.in_proj_weight"].chunk(3)
    b_q, b_k, b_v = params["self_attn.in_proj_bias"].chunk(3)
    future = torch.ones(T, T, dtype=torch.bool).triu(1)  # True: the key comes after the query

    def norm(u, name):
        return F.layer_norm(u, (E,), params[name + ".weight"], params[name + ".bias"], eps=1e-5)

    def heads(t):  # (B, T, E) -> (B, h, T, d)
        return t.view(B, num_heads, T, d)

    def attention(u):
        q, k, v = heads(u @ W_q.T + b_q), heads(u @ W_k.T + b_k), heads(u @ W_v.T + b_v)
        scores = (q @ k.transpose(-2, -1)).masked_fill(future, float("-inf"))
        out = (torch.softmax(scores, dim=-1) @ v).view(B, T, E)
        return out @ params["self_attn.out_proj.weight"].T + params["self_attn.out_proj.bias"]

    def feed_forward(u):
        inner = F.gelu(u @ params["linear1.weight"].T + params["linear1.bias"])
        return inner @ params["linear2.weight"].T + params["linear2.bias"]

    x = norm(x + attention(x), "norm1")
    return norm(x + feed_forward(x), "norm2")


# %%
def pre_norm_block(x: torch.Tensor, params: dict, num_heads: int) -> torch.Tensor:
    """A pre-norm block with causal self-attention and exact GELU: x (B, T, E) -> (B, T, E)."""
    ### BEGIN SOLUTION 12.4
    B, T, E = x.shape
    d = E // num_heads
    W_q, W_k, W_v = params["self_attn.in_proj_weight"].chunk(3)
    b_q, b_k, b_v = params["self_attn.in_proj_bias"].chunk(3)
    future = torch.ones(T, T, dtype=torch.bool).triu(1)

    def norm(u, name):
        return F.layer_norm(u, (E,), params[name + ".weight"], params[name + ".bias"], eps=1e-5)

    def heads(t):  # (B, T, E) -> (B, T, h, d) -> (B, h, T, d)
        return t.view(B, T, num_heads, d).transpose(1, 2)

    def attention(u):
        q, k, v = heads(u @ W_q.T + b_q), heads(u @ W_k.T + b_k), heads(u @ W_v.T + b_v)
        scores = (q @ k.transpose(-2, -1) / math.sqrt(d)).masked_fill(future, float("-inf"))
        out = (torch.softmax(scores, dim=-1) @ v).transpose(1, 2).reshape(B, T, E)
        return out @ params["self_attn.out_proj.weight"].T + params["self_attn.out_proj.bias"]

    def feed_forward(u):
        inner = F.gelu(u @ params["linear1.weight"].T + params["linear1.bias"])
        return inner @ params["linear2.weight"].T + params["linear2.bias"]

    x = x + attention(norm(x, "norm1"))
    return x + feed_forward(norm(x, "norm2"))
    ### END SOLUTION


# %%
check("12.4", pre_norm_block)

# %% [markdown]
# Your block (or the reference), the listing and PyTorch's own layer on the same input, and the
# causality your block should have: changing the last token must leave every earlier output as it was.

# %%
block_fn = use("12.4", pre_norm_block)
E_b, h_b, T_b = 16, 4, 7
layer = torch.nn.TransformerEncoderLayer(E_b, h_b, 4 * E_b, dropout=0.0, activation="gelu", batch_first=True,
                                         norm_first=True, dtype=torch.float64).eval()
block_params = {name: p.detach() for name, p in layer.named_parameters()}
x_b = torch.randn(2, T_b, E_b, dtype=torch.float64)
with torch.no_grad():
    expected_b = layer(x_b, src_mask=torch.ones(T_b, T_b, dtype=torch.bool).triu(1))
block_error = float((block_fn(x_b, block_params, h_b) - expected_b).abs().max())
buggy_error = float((buggy_block(x_b, block_params, h_b) - expected_b).abs().max())
x_changed = x_b.clone()
x_changed[:, -1] += 1.0
leak = float((block_fn(x_changed, block_params, h_b) - block_fn(x_b, block_params, h_b))[:, :-1].abs().max())
print(f"max |block - nn.TransformerEncoderLayer| = {block_error:.1e}; the listing's = {buggy_error:.2f}")
print(f"changing the last token moves earlier outputs by at most {leak:.1e}")

# %% [markdown]
# ## 12.5 Predict the parameters of a Transformer layer (1 point)
#
# How many parameters does `nn.TransformerEncoderLayer(d_model, nhead, dim_feedforward, bias=...)`
# have? **Derive the count from the shapes** in 12.4 ($E$ = `d_model`, $F$ = `dim_feedforward`),
# without building a module, and write it as a function of the four arguments. With `bias=False`
# neither the linear maps nor the layer norms have a bias; the layer norms keep their weights. The
# cell after the check counts the real modules, including the base model of Vaswani et al.
# ($E = 512$, $h = 8$, $F = 2048$).

# %%
def encoder_layer_parameter_count(d_model: int, nhead: int, dim_feedforward: int, bias: bool = True) -> int:
    """The number of parameters of nn.TransformerEncoderLayer(d_model, nhead, dim_feedforward, bias=bias)."""
    ### BEGIN SOLUTION 12.5
    E, F_ = d_model, dim_feedforward
    weights = 4 * E * E + 2 * E * F_ + 2 * E  # in_proj, out_proj, linear1, linear2, two norm scales
    biases = 3 * E + E + F_ + E + 2 * E if bias else 0
    return weights + biases
    ### END SOLUTION


# %%
check("12.5", encoder_layer_parameter_count)

# %% [markdown]
# The real modules, counted (your prediction, or the reference if yours does not pass yet): the
# count does not depend on the number of heads, and two thirds of it is the feed-forward block when
# $F = 4E$.

# %%
predict_layer = use("12.5", encoder_layer_parameter_count)
counts = {}
for args, kw in (((512, 8, 2048), {}), ((512, 1, 2048), {}), ((768, 12, 3072), {"bias": False})):
    module = torch.nn.TransformerEncoderLayer(*args, **kw, device="meta")
    counts[args] = sum(p.numel() for p in module.parameters())
    ff_share = (module.linear1.weight.numel() + module.linear2.weight.numel()) / counts[args]
    print(f"nn.TransformerEncoderLayer{args} {kw}: {counts[args]:9,d} parameters, predicted "
          f"{predict_layer(*args, **kw):9,d}; feed-forward weights {ff_share:.1%}")
