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
# # 14 · What a large model costs
#
# <a href="https://colab.research.google.com/github/nn-from-scratch/course/blob/main/notebooks/14_cost.ipynb" target="_parent"><img src="https://colab.research.google.com/assets/colab-badge.svg" alt="Open In Colab"/></a>
#
# Both source articles describe the era of large models offered as a service and say that these
# models are expensive in compute, parameters and data, without putting numbers on it. This chapter
# puts numbers on it, and checks each one. The GPT of chapter 13 has the same architecture as GPT-2
# and GPT-3, only smaller. From its shapes we derive how many **parameters** a model has, how many
# **floating-point operations** (FLOPs) a token costs to process and to train on, how much **memory**
# training and generation need (weights, gradients, optimiser states, activations, the KV cache), and
# how many **training tokens** a compute budget should buy. Every formula is checked against
# PyTorch: parameter counts against `numel()` of models built on the `meta` device (shapes without
# storage, so a 175-billion-parameter model costs no memory), FLOPs against PyTorch's FLOP counter,
# and memory against the tensors PyTorch actually holds. We then reproduce GPT-3's published
# training compute from its size and its data, and close with what this means for people: skills,
# jobs, compute cost, privacy and interpretability.

# %% tags=["setup"]
# Setup. On Colab this installs course_lib from the course repository (Colab keeps its own
# torch and ipywidgets); everywhere else it does nothing.
import sys

if "google.colab" in sys.modules:
    get_ipython().run_line_magic("pip", "install --quiet git+https://github.com/nn-from-scratch/course")

# %%
import dataclasses
import time

import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from course_lib import cost, gpt
from course_lib.compare import compare
from course_lib.device import seed_everything
from course_lib.show import record, show_source
from course_lib.widgets.cost import CostExplorer

gen = seed_everything(0)
torch.set_num_threads(1)  # small models: one thread, reproducible timings
NOTEBOOK_START = time.perf_counter()

# %% [markdown]
# ## 1. Parameters from the architecture
#
# A GPT with vocabulary $V$, context $C$, width $E$, $L$ blocks and an MLP of width $F = 4E$ has
# these weight matrices (chapter 13, section 2): a token embedding $W_{\text{tok}} \in \mathbb{R}^{V\times E}$
# and a position table $W_{\text{pos}} \in \mathbb{R}^{C\times E}$; per block, the query, key and
# value projections $W_{qkv} \in \mathbb{R}^{3E\times E}$ and the output projection
# $W_o \in \mathbb{R}^{E\times E}$, the MLP's $W_1 \in \mathbb{R}^{F\times E}$ and
# $W_2 \in \mathbb{R}^{E\times F}$, two layer norms; a final layer norm; and the head
# $W_{\text{head}} \in \mathbb{R}^{V\times E}$. With biases ($\beta = 1$, or $0$ without) this gives
#
# $$N = \underbrace{VE}_{\text{embedding}} + \underbrace{CE}_{\text{position}}
#   + L\big(\underbrace{4E^2 + 4\beta E}_{\text{attention}} + \underbrace{2FE + \beta(F + E)}_{\text{MLP}}\big)
#   + \underbrace{(2L + 1)(1 + \beta)E}_{\text{norms}} + \underbrace{VE}_{\text{head, unless tied}}.$$
#
# With $F = 4E$ a block has $12E^2$ weights (plus $O(E)$), so for large $E$,
# $N \approx 12 L E^2$: the parameters grow with depth and with the **square** of the width.
# GPT-2 **ties** the head to the token embedding: one matrix $W \in \mathbb{R}^{V\times E}$ turns
# token ids into vectors ($W[x]$) and vectors into logits ($h W^\top$). The course's GPT has
# that option (`tie_embeddings=True`: `head.weight` *is* `tok_emb.weight`, so `parameters()` lists it
# once). Forgetting the tie counts the $VE$ matrix twice; forgetting the head altogether (in an
# untied model) counts it not at all.

# %%
show_source(cost.param_count)

# %% [markdown]
# `cost.build_on_meta` builds the course's own `gpt.GPT` on PyTorch's `meta` device: every tensor
# has its shape and dtype but no storage. Counting its parameters therefore costs nothing, even for
# GPT-3. The configurations (`cost.PRESETS`) are GPT-2 small and XL (Radford et al., 2019: the
# configurations of the released checkpoints, $V = 50{,}257$, $C = 1{,}024$) and two of GPT-3's eight
# sizes (Brown et al., 2020, Table 2.1: $C = 2{,}048$; "GPT-3 6.7B", the 7-billion-class one, and
# the 175-billion-parameter "GPT-3").

# %%
print(f"{'model':12s}{'L':>4s}{'E':>7s}{'h':>4s}{'formula':>17s}{'numel on meta':>17s}  embeddings share")
formulas, numels = [], []
for cfg in cost.PRESETS.values():
    parts = cost.param_count(cfg)
    meta_model = cost.build_on_meta(cfg)
    n_meta = cost.numel(meta_model)
    formulas.append(parts["total"])
    numels.append(n_meta)
    print(f"{cfg.name:12s}{cfg.num_layers:4d}{cfg.embed_dim:7d}{cfg.num_heads:4d}{parts['total']:17,d}{n_meta:17,d}"
          f"  {(parts['embedding'] + parts['position']) / parts['total']:6.1%}")
    record(f"parameters: {cfg.name} (formula = numel on the meta device)", parts["total"], "", ",d")
print("device of the GPT-3 175B parameters:", next(meta_model.parameters()).device,
      "- bytes allocated: 0")
print("GPT-2 small by part:", cost.param_count(cost.GPT2_SMALL))
compare("parameters: formula vs numel() on the meta device, 4 configurations",
        torch.tensor(formulas, dtype=torch.float64), torch.tensor(numels, dtype=torch.float64), atol=0)

# %%
no_bias = dataclasses.replace(cost.GPT2_SMALL, bias=False)
n_bias, n_no_bias = cost.param_count(cost.GPT2_SMALL)["total"], cost.param_count(no_bias)["total"]
L_, E_, F_ = no_bias.num_layers, no_bias.embed_dim, no_bias.ff_dim
print(f"GPT-2 small with biases (as released): {n_bias:,}; without any bias: {n_no_bias:,} "
      f"(numel on meta {cost.numel(cost.build_on_meta(no_bias)):,})")
print(f"difference {n_bias - n_no_bias:,} = L(4E + F + E) + (2L + 1)E = {L_ * (4 * E_ + F_ + E_) + (2 * L_ + 1) * E_:,}")
seed_everything(0)
tied = gpt.GPT(96, context=64, embed_dim=64, num_heads=4, num_layers=2, tie_embeddings=True)
untied = gpt.GPT(96, context=64, embed_dim=64, num_heads=4, num_layers=2)
print(f"chapter 13's size, tied head: {cost.numel(tied):,} parameters; untied: {cost.numel(untied):,} "
      f"(difference V*E = {96 * 64:,}); head.weight is tok_emb.weight: {tied.head.weight is tied.tok_emb.weight}")

# %% [markdown]
# The formula equals `numel()` exactly on every configuration (`tests/test_cost.py` also checks it
# part by part on random small configurations). Two counts circulate for GPT-2 small, both printed
# above: **124,439,808** is the model as released, with the biases of every linear layer and layer
# norm (the count of the released checkpoint); **124,337,664** is the same model without any bias
# (`bias=False`, a common option in re-implementations). They differ by exactly the
# $L(4E + F + E) + (2L+1)E$ bias entries. The embeddings are almost a third of GPT-2 small but a
# fraction of a percent of GPT-3 175B: at scale, $12LE^2$ is the model. GPT-3's two counts come out
# at about 6.66 and 174.6 billion, which the paper rounds to 6.7 B and 175 B.

# %% [markdown]
# ## 2. Compute: FLOPs per token
#
# A matrix product $XW^\top$ with $X \in \mathbb{R}^{T\times E_{in}}$, $W \in \mathbb{R}^{E_{out}\times E_{in}}$
# costs $T \cdot E_{out} \cdot E_{in}$ multiply-adds, **2 FLOPs each**. Per token, every weight of a
# matrix product is used once, so the weights cost $2$ FLOPs per weight. Attention adds two products
# whose size depends on the sequence length $T$ rather than on a weight: the scores
# $QK^\top \in \mathbb{R}^{T\times T}$ per head and the weighted sum of the values, each $2TE$
# FLOPs per token and layer when all $T\times T$ scores are computed (as `course_lib.attention`
# does, masking afterwards). The forward FLOPs per token are then
#
# $$c_{\text{fwd}}(T) = 2\big(L(4E^2 + 2FE) + EV\big) + 4LTE \;\approx\; 2N + 4LTE,$$
#
# where the head counts even when tied (the matrix is shared, the product is not), embedding lookups
# cost nothing, and biases, norms, softmax and GELU ($O(E)$ per token) are left out. The backward
# pass computes two products per forward product, the gradient with respect to the input
# ($\partial \ell/\partial X = \partial \ell/\partial Y\, W$) and with respect to the weight
# ($\partial \ell/\partial W = (\partial \ell/\partial Y)^\top X$), each as expensive as the forward
# one: training costs $3 c_{\text{fwd}}$, hence **$\approx 6N$ FLOPs per training token** and
# $6ND$ for $D$ tokens.

# %%
show_source(cost.flops_per_token)

# %% [markdown]
# PyTorch's `torch.utils.flop_counter.FlopCounterMode` counts the FLOPs of every matrix product a
# computation runs. We count the course's GPT at chapter 13's sizes ($E = 64$, 4 heads, 2 blocks,
# $C = 64$) with a vocabulary of $V = 96$ (chapter 13's character vocabulary has about a hundred
# symbols; the exact number depends on the Python version), on a batch of 16 windows of 64 tokens,
# forward and forward + backward:

# %%
small_cfg = cost.TransformerConfig(96, 64, 64, 2, 4, tied_embeddings=False, name="chapter 13 size")
seed_everything(0)
small = gpt.GPT(96, context=64, embed_dim=64, num_heads=4, num_layers=2)
B, T = 16, 64
ids = torch.randint(0, 96, (B, T), generator=gen)
with FlopCounterMode(display=False) as fwd_counter:
    small(ids)
with FlopCounterMode(display=False) as train_counter:
    small(ids)[0].sum().backward()
fwd_formula = B * T * cost.flops_per_token(small_cfg, T)
compare("FLOPs: formula vs FlopCounterMode, forward and forward + backward",
        torch.tensor([fwd_formula, B * T * cost.flops_per_token(small_cfg, T, training=True)], dtype=torch.float64),
        torch.tensor([fwd_counter.get_total_flops(), train_counter.get_total_flops()], dtype=torch.float64), atol=0)
record("FLOP counter / formula, forward (chapter 13 size, B=16, T=64)",
       fwd_counter.get_total_flops() / fwd_formula, "", ".4f")
record("FLOP counter: forward + backward / forward", train_counter.get_total_flops() / fwd_counter.get_total_flops(),
       "", ".3f")
n_small = cost.numel(small)
print(f"2N per token = {2 * n_small:,}; counted forward per token = {fwd_counter.get_total_flops() / (B * T):,.0f} "
      f"(the rest: attention 4LTE = {4 * small_cfg.num_layers * T * small_cfg.embed_dim:,}, minus embeddings, biases and norms, which 2N counts "
      f"but no product uses)")

# %% [markdown]
# The formula is exact (ratio 1), and the backward pass costs exactly twice the forward. One trap:
# the counter sees attention only because the course computes it with explicit matrix products. On
# the CPU, PyTorch's fused `F.scaled_dot_product_attention` is counted as **zero** FLOPs (as measured
# on this version), so a FLOP count of a model that calls it would silently omit attention:

# %%
q = k = v = torch.randn(1, 4, 64, 16, generator=gen)
with FlopCounterMode(display=False) as sdpa_counter:
    F.scaled_dot_product_attention(q, k, v, is_causal=True)
with FlopCounterMode(display=False) as explicit_counter:
    torch.softmax(q @ k.transpose(-2, -1) / 4.0, dim=-1) @ v
print(f"torch {torch.__version__}: counted FLOPs of F.scaled_dot_product_attention on the CPU = "
      f"{sdpa_counter.get_total_flops():,}; the same with explicit products = {explicit_counter.get_total_flops():,} "
      f"(= 2 x 2 x 4 heads x 64 x 64 x 16)")

# %% [markdown]
# How much does the attention term matter? Its share of the forward FLOPs is $4LTE / c_{\text{fwd}}$,
# at most $4LTE/(24LE^2) = T/(6E)$ (less, since the head adds $2EV$): small when the width is large
# compared with the context. Printed below, with the ratio of the $2N$ approximation to the exact
# forward count:

# %%
for cfg, T_ in [(small_cfg, 64), (cost.GPT2_SMALL, 1024), (cost.GPT3_6_7B, 2048), (cost.GPT3_175B, 2048)]:
    c = cost.flops_per_token(cfg, T_)
    print(f"{cfg.name:16s} T = {T_:5d}: {c:.3e} FLOPs per token forward; attention {4 * cfg.num_layers * T_ * cfg.embed_dim / c:5.1%}; "
          f"2N / forward = {2 * cost.param_count(cfg)['total'] / c:.3f}")

# %% [markdown]
# ### GPT-3's training compute, from $N$ and $D$
#
# Brown et al. (2020) trained GPT-3 175B on 300 billion tokens and report its training compute as
# $3.14\cdot 10^{23}$ FLOPs (their Table D.1, where it is also given as 3,640 petaflop/s-days).
# From the parameter count above and $6ND$:

# %%
n_gpt3 = cost.param_count(cost.GPT3_175B)["total"]
D_GPT3, PUBLISHED = 300e9, 3.14e23
six_nd = cost.training_flops(n_gpt3, D_GPT3)
with_attention = cost.flops_per_token(cost.GPT3_175B, 2048, training=True) * D_GPT3
record("GPT-3 175B: 6ND with N from the formula, D = 300 B tokens", six_nd, "FLOPs", ".3e")
record("GPT-3 175B: relative difference of 6ND from the published 3.14e23", six_nd / PUBLISHED - 1, "", "+.2%")
record("GPT-3 175B: with the attention term (T = 2048)", with_attention, "FLOPs", ".3e")
print(f"3,640 petaflop/s-days = {3640 * 1e15 * 86400:.3e} FLOPs")

# %% [markdown]
# $6ND$ reproduces the published figure to a fraction of a percent (printed above), so the paper's
# number is this same approximation; counting attention over full 2,048-token windows would add a
# few percent more. To give the number a scale, we measure how fast *this* machine trains the small
# model (one CPU thread; forward, backward and an Adam step), in FLOPs per second from the formula:

# %%
opt = torch.optim.Adam(small.parameters(), lr=1e-3)
train_flops_per_step = B * T * cost.flops_per_token(small_cfg, T, training=True)
times = []
for _ in range(6):
    t0 = time.perf_counter()
    logits, _ = small(ids)
    loss = F.cross_entropy(logits.reshape(-1, 96), ids.reshape(-1))
    opt.zero_grad()
    loss.backward()
    opt.step()
    times.append(time.perf_counter() - t0)
step_s = sorted(times)[len(times) // 2]
cpu_flops = record("this machine: training throughput of the small GPT, one thread", train_flops_per_step / step_s / 1e9,
                   "GFLOP/s", ".2f") * 1e9
record("GPT-3's 3.14e23 FLOPs at that rate", PUBLISHED / cpu_flops / (365.25 * 86400), "years", ",.0f")

# %% [markdown]
# ## 3. Memory
#
# Training with Adam holds, per parameter: the weight, its gradient, and Adam's two running
# averages $m$ and $v$ (chapter 04). In **mixed precision** the weights and gradients are 16-bit
# (2 bytes), while Adam's states and a master copy of the weights stay 32-bit, so that small
# updates are not rounded away: $2 + 2 + 4 + 4 + 4 = 16$ bytes per parameter, before activations.
# Generation needs only the weights (2 bytes per parameter in 16 bits) and the KV cache.

# %%
show_source(cost.memory_bytes)

# %% [markdown]
# What PyTorch actually holds for the small GPT after one Adam step in float32 (weights,
# gradients, and the optimiser's `exp_avg` and `exp_avg_sq` tensors), against the formula with
# 4-byte numbers and no master copy:

# %%
held = {
    "weights": sum(p.numel() * p.element_size() for p in small.parameters()),
    "gradients": sum(p.grad.numel() * p.grad.element_size() for p in small.parameters()),
    "optimizer": sum(t.numel() * t.element_size() for s in opt.state.values()
                     for key, t in s.items() if key in ("exp_avg", "exp_avg_sq")),
}
predicted = cost.memory_bytes(small_cfg, dtype_bytes=4, state_bytes=4, master_weights=False)
for key in held:
    print(f"{key:10s}: PyTorch holds {held[key]:>10,d} bytes, formula {predicted[key]:>12,.0f}")
compare("bytes: formula vs what torch.optim.Adam holds (weights, gradients, m and v)",
        torch.tensor([predicted[k] for k in held], dtype=torch.float64),
        torch.tensor([held[k] for k in held], dtype=torch.float64), atol=0)
steps = sum(t.numel() * t.element_size() for s in opt.state.values() for key, t in s.items() if key == "step")
print(f"(Adam also keeps a one-number 'step' tensor per parameter tensor: {steps} bytes in all)")

# %% [markdown]
# **Activations** are the intermediate tensors the forward pass saves for the backward pass. Their
# size depends on the implementation, not only on the architecture, so we count what the course's
# GPT saves, operation by operation (`cost.activation_bytes`), and check the count against
# `torch.autograd.graph.saved_tensors_hooks`, which sees every tensor autograd saves
# (`cost.saved_activation_bytes`, each storage once, parameters excluded). Per layer the count is
# $(12E + 4F)BT + 2BT + hBT^2$ numbers: linear in the batch and the depth, **quadratic** in the
# sequence length through the attention weights.

# %%
show_source(cost.activation_bytes)

# %%
saved, formulas = [], []
for T_ in (16, 32, 64):
    saved.append(cost.saved_activation_bytes(small, ids[:, :T_].contiguous()))
    formulas.append(cost.activation_bytes(small_cfg, B, T_, dtype_bytes=4))
    weights_bytes = small_cfg.num_layers * small_cfg.num_heads * B * T_ * T_ * 4  # L h B T^2 numbers
    print(f"B = {B}, T = {T_:2d}: saved tensors {saved[-1]:>10,d} bytes, formula {formulas[-1]:>10,d}, "
          f"attention weights {weights_bytes / formulas[-1]:5.1%} of it")
compare("activation bytes: formula vs autograd's saved tensors, T = 16, 32, 64",
        torch.tensor(formulas, dtype=torch.float64), torch.tensor(saved, dtype=torch.float64), atol=0)
record("small GPT: saved activations for B=16, T=64 / weights", cost.activation_bytes(small_cfg, B, 64, 4)
       / held["weights"], "x", ".2f")

# %% [markdown]
# For this tiny model the activations of one batch of 16 × 64 tokens are tens of times the
# weights (printed above). For the large models, in 16-bit mixed precision with Adam, with the
# activations of one sequence of the full context (the course's implementation, 2 bytes per number):

# %%
print(f"{'model':12s}{'generation (weights)':>22s}{'training states':>17s}{'act./sequence':>15s}{'bytes/param':>13s}")
for cfg in cost.PRESETS.values():
    m_train = cost.memory_bytes(cfg, dtype_bytes=2, batch=1, seq_len=cfg.context)
    m_infer = cost.memory_bytes(cfg, dtype_bytes=2, training=False)
    states = m_train["total"] - m_train["activations"]
    print(f"{cfg.name:12s}{m_infer['total'] / 1e9:19.1f} GB{states / 1e9:14.1f} GB{m_train['activations'] / 1e9:12.1f} GB"
          f"{states / cost.param_count(cfg)['total']:13.0f}")
record("GPT-3 175B: training states in mixed precision with Adam",
       cost.memory_bytes(cost.GPT3_175B)["total"] / 1e12, "TB", ".2f")

# %% [markdown]
# GPT-3's training states alone are a few terabytes, far beyond one accelerator: they must be
# split over many devices (chapter 16 shows how data parallelism replicates them and how sharding
# splits them). The activations per sequence here assume the course's implementation, with no
# recomputation; large-scale training recomputes some of them in the backward pass to save memory.
#
# ### The KV cache
#
# Chapter 13's cache keeps, per layer, $K, V \in \mathbb{R}^{B\times h\times T\times d}$ with
# $hd = E$: $2LBTE$ numbers, i.e. $2LE$ numbers **per token** of every sequence being generated.
# Checked against the cache tensors of `course_lib.gpt` after a prompt of 40 tokens:

# %%
with torch.no_grad():
    _, cache = small(ids[:3, :40])
cache_bytes = sum(t.numel() * t.element_size() for kv in cache for t in kv)
print(f"cache tensors: {len(cache)} layers x (k, v) of shape {tuple(cache[0][0].shape)}: {cache_bytes:,} bytes; "
      f"formula 2 L B T E x 4 = {cost.kv_cache_bytes(small_cfg, 40, batch=3, dtype_bytes=4):,}")
compare("KV-cache bytes: formula vs course_lib.gpt's cache tensors",
        torch.tensor(float(cost.kv_cache_bytes(small_cfg, 40, batch=3, dtype_bytes=4)), dtype=torch.float64),
        torch.tensor(float(cache_bytes), dtype=torch.float64), atol=0)
for cfg in cost.PRESETS.values():
    per_token = cost.kv_cache_bytes(cfg, 1)
    full = cost.kv_cache_bytes(cfg, cfg.context)
    print(f"{cfg.name:12s}: {per_token / 1e6:6.3f} MB per token in 16 bits; a full context of {cfg.context:,} tokens: "
          f"{full / 1e9:6.2f} GB = {full / cost.memory_bytes(cfg, training=False)['weights']:.1%} of the weights")
record("GPT-3 175B: KV cache per token (16-bit)", cost.kv_cache_bytes(cost.GPT3_175B, 1) / 1e6, "MB", ".2f")

# %% [markdown]
# One sequence's cache is small next to the weights, but a server generates for many users at once:
# the cache grows with batch × context and, with enough long sequences, outgrows the weights
# (divide the weights by one full context's cache in the table above). Serving (chapter 15) has to
# budget memory for it.
#
# ## 4. Data: tokens per parameter
#
# For a fixed compute budget $C \approx 6ND$, one can train a larger model on fewer tokens or a
# smaller one on more. Hoffmann et al. (2022) trained over 400 models and found that the
# compute-optimal model size and number of tokens should grow in equal proportion: doubling the
# model calls for doubling the data. Their "Chinchilla" (70 B parameters, 1.4 T tokens, i.e. 20 tokens
# per parameter) used the same compute as their 280 B-parameter Gopher and outperformed it. We use
# the rule of thumb $D \approx 20N$, with two stated assumptions: $C = 6ND$ (no attention term) and
# their fitted ratio holds outside the range of their experiments. Then
# $N_{\text{opt}} = \sqrt{C/120}$ and $D_{\text{opt}} = 20 N_{\text{opt}}$:

# %%
show_source(cost.chinchilla_optimal)

# %%
n_opt, d_opt = cost.chinchilla_optimal(PUBLISHED)
record("GPT-3 175B: training tokens per parameter", D_GPT3 / n_gpt3, "", ".2f")
record("compute-optimal size for GPT-3's budget (D = 20 N)", n_opt / 1e9, "B parameters", ".1f")
record("compute-optimal tokens for GPT-3's budget", d_opt / 1e12, "T tokens", ".2f")
print(f"compared with GPT-3: {n_opt / n_gpt3:.2f} x the parameters, {d_opt / D_GPT3:.2f} x the tokens")
print(f"chapter 13's GPT: {250 * 16 * 64:,} training characters / {n_small:,} parameters (V = 96) = "
      f"{250 * 16 * 64 / n_small:.1f} per parameter")
for name, n_params in [("GPT-2 small", cost.param_count(cost.GPT2_SMALL)["total"]), ("chapter 13's GPT", n_small)]:
    print(f"{name}: 20 tokens per parameter = {20 * n_params:,.0f} tokens")

# %% [markdown]
# By this rule GPT-3 had about 1.7 tokens per parameter; its budget would have bought a model about
# 0.3 times its size trained on about 3.4 times the tokens (ratios printed above). The rule minimises
# training compute only: a smaller model is also cheaper at every generated token ($\approx 2N$
# FLOPs, section 2), a reason to train a model that will serve many requests on more than 20 tokens
# per parameter. Chapter 13's GPT saw 250 steps × 16 windows × 64 = 256,000 training characters,
# about two per parameter of a model of its size (printed above).
#
# ## 5. Explore: a cost calculator
#
# The explorer combines the formulas: a model, a number of training tokens and the hardware (peak
# FLOP/s per device, the fraction of it the training actually achieves, the *model FLOPs
# utilisation*, the number of devices and a price per device-hour, all assumptions you set) give
# the training time and cost, the memory per device and the KV cache. The defaults (100 TFLOP/s,
# 40 % utilisation, 1,024 devices, 2 per device-hour) are round numbers to play with, not the
# specification of any product. Things to try:
#
# * GPT-3 175B on 300 B tokens: note the days and the cost, then double the devices: time halves,
#   cost stays (the same device-hours). Halve the utilisation: both double.
# * Tick "shard": the weights, gradients and Adam states per device fall by the number of devices;
#   the activations do not. Replicated, even 16,384 devices each need the full training state.
# * Move the tokens until "tokens per parameter" reaches 20 for GPT-2 small, then for GPT-3.
# * Raise the context from 2,048 to 32,768: the KV cache grows 16-fold, the activations of one
#   sequence more than that (the attention weights grow as $T^2$).

# %%
explorer = CostExplorer()
explorer

# %%
step_ms = 1000 * explorer.time_step(repeats=5)
print(f"explorer: one step {step_ms:.0f} ms; notebook so far {time.perf_counter() - NOTEBOOK_START:.1f} s")

# %% [markdown]
# ## 6. What the source articles ask beyond the engineering
#
# The talent article asks which skills the era of models as a service demands and names as its
# challenges the cost of compute, of training time and of data; the employment article names
# compute, data privacy and interpretability, and says that large models may raise productivity but
# also make some jobs disappear. Here is what this course can say with evidence. Statements marked
# *opinion* are the authors' view, not a finding.
#
# **Compute cost.** Measured above: GPT-3's training took about $3\cdot 10^{23}$ FLOPs, which one
# thread of this machine's CPU would need the number of years printed in section 2 to compute, and its
# training state is terabytes. The cost is set by arithmetic anyone can do ($6ND$, bytes per
# parameter, utilisation), which also says where it can be cut: fewer parameters trained on more
# data (section 4), lower precision, sharding (chapter 16), batching and caching at serving time
# (chapter 15). Patterson et al. (2021) estimated the energy and emissions of training several large
# models, GPT-3 among them, and found that the choice of model, data centre and processor can change
# the carbon footprint by up to roughly 100–1000×, so they ask papers to report energy use.
#
# **Jobs.** Eloundou, Manning, Mishkin and Rock (2023) rated the tasks of US occupations for
# *exposure* to language models (whether access to a model could cut the time a task takes by at
# least half at the same quality). They estimate that about 80 % of US workers have at least 10 % of their tasks exposed and
# about 19 % at least half, with higher exposure for higher-wage jobs; exposure is not job loss, and
# they make no prediction of timelines. Nothing in this course measures employment. *Opinion:* the
# employment article's "it is complicated" is the honest summary; exposure studies tell us which
# tasks change, not how many people lose or gain work.
#
# **Data privacy.** Carlini et al. (2021) extracted hundreds of verbatim training sequences from
# GPT-2 by querying it, including names, phone numbers and e-mail addresses that appeared in a
# single training document, and found larger models more vulnerable. A model is a compressed,
# partly recoverable copy of its training data; what goes in can come out. The course trains only on
# text that ships with Python and downloads nothing.
#
# **Interpretability.** Every operation of these models can be written down and checked, as this
# course does; that is not the same as knowing *why* a trained model produces a given output.
# Attention weights can be plotted (chapter 11's explorer; chapter 17 does it for a real pretrained
# model), but a weight tells where a head reads from, not what the model concludes. *Opinion:* this
# remains an open research problem; an engineer should say so rather than present a heat map as an
# explanation.
#
# **Skills.** *Opinion*, informed by what the chapters needed: the skills that matter are the ones
# this course practises. Reading a model's shapes and deriving its cost (this chapter); checking an
# implementation against a reference instead of trusting it (every chapter); keeping training,
# validation and test data apart and reporting one honest number; measuring before claiming (the
# KV cache's gain in chapter 13 was modest at a short context and grew with the context); and serving and scaling with
# ordinary, well-kept tools (chapters 15 and 16). Building these models is a minority job; knowing
# what they cost and where they fail is useful to everyone who buys them as a service.

# %% [markdown]
# ## Summary
#
# * Parameters follow from the shapes: with biases and $F = 4E$, $N = VE + CE + L(12E^2 + 13E) + 2E$
#   (plus $VE$ for an untied head), $\approx 12LE^2$ at scale; the formula equals `numel()` on the meta device for
#   GPT-2 small (124,439,808; 124,337,664 without biases), GPT-2 XL, GPT-3 6.7B and 175B.
#   Tied embeddings count the $V\times E$ matrix once.
# * Forward FLOPs per token are $2(L(4E^2 + 2FE) + EV) + 4LTE \approx 2N$ plus attention; the
#   backward pass costs twice the forward, so training costs $\approx 6N$ per token. Both equal
#   PyTorch's FLOP counter exactly on the course's GPT (which computes attention with explicit
#   products; the counter sees CPU `scaled_dot_product_attention` as 0 FLOPs).
# * $6ND$ reproduces GPT-3's published $3.14\cdot 10^{23}$ FLOPs to a fraction of a percent.
# * Training with Adam in mixed precision holds 16 bytes per parameter plus activations, which grow
#   with batch, depth and the square of the context; the formulas equal what PyTorch holds. The KV
#   cache is $2LE$ numbers per token per sequence.
# * Compute-optimal training (Hoffmann et al., 2022) uses about 20 tokens per parameter, assuming
#   $C = 6ND$; GPT-3 used 1.7.
#
# ## Exercises
#
# Open `exercises/14_cost.ipynb`.
#
# ## References
#
# * A. Radford, J. Wu, R. Child, D. Luan, D. Amodei, I. Sutskever. *Language models are
#   unsupervised multitask learners.* OpenAI report (2019). (GPT-2.)
# * T. Brown, B. Mann, N. Ryder, M. Subbiah, J. Kaplan, P. Dhariwal, et al. *Language models are
#   few-shot learners.* NeurIPS 2020, arXiv:2005.14165. (GPT-3: Table 2.1 sizes, Table D.1 compute.)
# * J. Hoffmann, S. Borgeaud, A. Mensch, et al. *Training compute-optimal large language models.*
#   2022, arXiv:2203.15556. (Chinchilla.)
# * D. Patterson, J. Gonzalez, Q. Le, C. Liang, L.-M. Munguia, D. Rothchild, D. So, M. Texier,
#   J. Dean. *Carbon emissions and large neural network training.* 2021, arXiv:2104.10350.
# * T. Eloundou, S. Manning, P. Mishkin, D. Rock. *GPTs are GPTs: an early look at the labor market
#   impact potential of large language models.* 2023, arXiv:2303.10130.
# * N. Carlini, F. Tramèr, E. Wallace, M. Jagielski, A. Herbert-Voss, K. Lee, A. Roberts, T. Brown,
#   D. Song, Ú. Erlingsson, A. Oprea, C. Raffel. *Extracting training data from large language
#   models.* USENIX Security 2021, arXiv:2012.07805.
# * PyTorch documentation: `torch.utils.flop_counter.FlopCounterMode`, the `meta` device,
#   `torch.autograd.graph.saved_tensors_hooks`.

# %%
print(explorer.self_check())
