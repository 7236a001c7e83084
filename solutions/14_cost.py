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
# # 14 · Exercises: what a large model costs
#
# Student sheet: <a href="https://colab.research.google.com/github/nn-from-scratch/course/blob/main/exercises/14_cost.ipynb" target="_parent"><img src="https://colab.research.google.com/assets/colab-badge.svg" alt="Open In Colab"/></a>
# · with solutions: [solutions/14_cost.ipynb](https://colab.research.google.com/github/nn-from-scratch/course/blob/main/solutions/14_cost.ipynb)
#
# Four exercises on the lecture `notebooks/14_cost.ipynb`, all back-of-the-envelope arithmetic
# that decides whether a model can be trained at all: the **parameters** of a GPT-shaped
# configuration (derived from the architecture, then weighed against `numel()`), the **days** a
# training run takes, the **bytes** that training with an optimizer holds, and the
# **compute-optimal** split of a budget between parameters and data.
#
# Replace each `raise NotImplementedError(...)` with your code and run the `check(...)` cell below
# it: it compares your function with the course's reference (`course_lib.cost`) on several
# configurations, from every size equal to 1 to GPT-3's, and reports the first mismatch. When
# your answer looks like a typical mistake, the check names it and says which idea it gets wrong;
# each further failure shows one more hint, and `hint("14.2")` (with any question's number) asks
# for the next hint without running the check. Use plain Python arithmetic, not `course_lib.cost`:
# the point is to derive the formulas yourself. At the end, your functions are applied to real
# configurations and your parameter count is compared with the course's GPT built on the `meta`
# device.

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

# %% [markdown]
# ## 14.1 Count the parameters of a GPT (2 points)
#
# The course's GPT (chapter 13) and GPT-2 (Radford et al., 2019) share one shape. With vocabulary
# $V$, context $C$, width $E$ and $L$ layers, the model is, from the token ids to the logits:
#
# * a token embedding table $(V, E)$ and a learned position table $(C, E)$;
# * $L$ pre-norm blocks, each: a layer norm over $E$ features (a gain and a shift), causal
#   multi-head self-attention (a linear layer $E \to 3E$ giving $q, k, v$, the heads, then a
#   linear **output projection** $E \to E$), a second layer norm, and an MLP $E \to 4E \to E$
#   (two linear layers with GELU between). Every linear layer of a block has a bias;
# * a final layer norm, and an **output head** $E \to V$ without bias. When `tied` is true, the
#   head reuses the token embedding table (Press and Wolf, 2017, "Using the Output Embedding to
#   Improve Language Models", EACL): one tensor serves both, as in GPT-2.
#
# The number of heads splits $E$ into $h$ slices of width $E/h$ and adds no parameter. **Derive**
# the number of parameters (what `sum(p.numel() for p in model.parameters())` reports, a shared
# tensor counted once) and return it as an `int`.

# %%
def gpt_param_count(vocab_size: int, context: int, embed_dim: int, num_layers: int, tied: bool) -> int:
    """The number of parameters of a GPT-2-shaped model (V, C, E, L; head tied or not)."""
    ### BEGIN SOLUTION 14.1
    V, C, E, L = vocab_size, context, embed_dim, num_layers
    attention = (E * 3 * E + 3 * E) + (E * E + E)  # q, k, v and the output projection
    mlp = (E * 4 * E + 4 * E) + (4 * E * E + E)
    block = 2 * (2 * E) + attention + mlp  # two layer norms
    head = 0 if tied else V * E
    return V * E + C * E + L * block + 2 * E + head
    ### END SOLUTION


# %%
check("14.1", gpt_param_count)

# %% [markdown]
# ## 14.2 How long does a training run take? (2 points)
#
# A matrix product of a $(1, a)$ row with an $(a, b)$ weight matrix costs $a b$ multiply-adds,
# **2 FLOPs** each; summed over the layers, the forward pass of one token through a model of $N$
# parameters costs about $2N$ FLOPs (attention over the context adds a term that is small for
# large models). The backward pass computes, for every linear layer, two products of the same
# size as the forward one: the gradient with respect to its input and the one with respect to
# its weights. Kaplan et al. (2020, "Scaling Laws for Neural Language Models", arXiv:2001.08361)
# use this count to estimate training compute.
#
# A run trains a model of `n_params` parameters on `n_tokens` tokens with `n_devices`
# accelerators, each with a peak speed of `peak_flops` FLOP/s, of which a fraction
# `utilisation` $\in (0, 1]$ (the *model FLOPs utilisation*) goes into the model's arithmetic.
# **Derive** the number of days the run takes (a `float`; a day has 86,400 s).

# %%
def training_days(n_params: float, n_tokens: float, n_devices: int, peak_flops: float, utilisation: float) -> float:
    """Days to train n_params parameters on n_tokens tokens with n_devices at peak_flops x utilisation."""
    ### BEGIN SOLUTION 14.2
    total_flops = (2 + 4) * n_params * n_tokens  # forward 2N per token, backward twice the forward
    sustained = n_devices * peak_flops * utilisation  # FLOP/s really spent on the model
    return total_flops / sustained / 86_400
    ### END SOLUTION


# %%
check("14.2", training_days)

# %% [markdown]
# ## 14.3 The memory of training with an optimizer (2 points)
#
# Before a single activation is stored, training holds per parameter: its **weight** and its
# **gradient**, both in the training format of `dtype_bytes` bytes (8 for float64, 4 for
# float32, 2 for bfloat16 or float16); the **optimizer's states**, always in float32 (4 bytes
# each): none for plain SGD (`"sgd"`), one velocity for SGD with momentum (`"momentum"`), the two
# running moments $m$ and $v$ for Adam (`"adam"`, chapter 04); and, in **mixed precision**
# (`dtype_bytes < 4`), a float32 **master copy** of the weights that the optimizer updates, since
# small updates would round away in 16 bits (Micikevicius et al., 2018, "Mixed Precision
# Training"). This is the accounting of Rajbhandari et al. (2020, "ZeRO: Memory
# Optimizations Toward Training Trillion Parameter Models", SC20). Return the number of bytes
# (an `int` or a `float`) for `n_params` parameters.

# %%
def training_memory_bytes(n_params: int, dtype_bytes: int, optimizer: str) -> int:
    """Bytes of weights, gradients, optimizer states and (mixed precision) master weights."""
    ### BEGIN SOLUTION 14.3
    states = {"sgd": 0, "momentum": 1, "adam": 2}[optimizer]
    master = 4 if dtype_bytes < 4 else 0
    per_parameter = 2 * dtype_bytes + 4 * states + master  # weight + gradient, states, master copy
    return n_params * per_parameter
    ### END SOLUTION


# %%
check("14.3", training_memory_bytes)

# %% [markdown]
# ## 14.4 The compute-optimal model for a budget (2 points)
#
# A budget of $C$ FLOPs can train a large model on few tokens or a small one on many. Hoffmann
# et al. (2022, "Training Compute-Optimal Large Language Models", arXiv:2203.15556) trained over
# 400 models and found that parameters and tokens should grow in equal proportion with the
# budget; their 70-billion-parameter Chinchilla, trained on 1.4 trillion tokens, about **20
# tokens per parameter**, outperformed the 280-billion-parameter Gopher trained with the same
# compute. Take both rules as exact: $C = 6 N D$ and $D = 20 N$. **Derive** the compute-optimal
# $(N, D)$ for `compute_flops` and return the pair of floats `(n_params, n_tokens)`.

# %%
def chinchilla_optimal(compute_flops: float) -> tuple:
    """(n_params, n_tokens) with 6 N D = compute_flops and D = 20 N."""
    ### BEGIN SOLUTION 14.4
    n_params = (compute_flops / 120) ** 0.5  # 6 N (20 N) = 120 N^2
    return n_params, 20 * n_params
    ### END SOLUTION


# %%
check("14.4", chinchilla_optimal)

# %% [markdown]
# ## Putting them to work
#
# Your count (or the reference's, while yours does not pass) next to `numel()` of the course's
# `course_lib.gpt.GPT`, built on the `meta` device (shapes without storage, so even GPT-3's 175
# billion parameters cost no memory). The configurations are `course_lib.cost`'s presets of
# GPT-2 small and XL (Radford et al., 2019) and GPT-3 175B (Brown et al., 2020,
# arXiv:2005.14165), with the head tied to the token table as in those models, and GPT-2 small
# once more with a separate head.

# %%
from course_lib import cost
from course_lib.gpt import GPT

count = use("14.1", gpt_param_count)
weighed = {}
for cfg, tied in ((cost.GPT2_SMALL, True), (cost.GPT2_SMALL, False), (cost.GPT2_XL, True), (cost.GPT3_175B, True)):
    with torch.device("meta"):
        model = GPT(cfg.vocab_size, cfg.context, cfg.embed_dim, cfg.num_heads, cfg.num_layers, tie_embeddings=tied)
    n_model = sum(p.numel() for p in model.parameters())
    n_formula = count(cfg.vocab_size, cfg.context, cfg.embed_dim, cfg.num_layers, tied)
    weighed[(cfg.name, tied)] = (n_formula, n_model)
    print(f"{cfg.name:12s} {'tied  ' if tied else 'untied'}: formula {n_formula:>15,}  numel() {n_model:>15,}  "
          f"equal: {n_formula == n_model}")

# %% [markdown]
# What the other three say about a GPT-2-small-sized model, a 7-billion-parameter one, and
# Chinchilla's own budget: the days on a cluster, the bytes before activations, and the
# compute-optimal split. The device numbers are round figures chosen for the example (a peak of
# $10^{15}$ FLOP/s of 16-bit arithmetic per device, 40 % utilisation), not a measurement.

# %%
days, train_bytes, optimal = use("14.2", training_days), use("14.3", training_memory_bytes), use("14.4", chinchilla_optimal)
for n_params, n_tokens, devices in ((124_439_808, 10e9, 8), (7e9, 1e12, 512), (70e9, 1.4e12, 2048)):
    d = days(n_params, n_tokens, devices, 1e15, 0.4)
    gib = train_bytes(int(n_params), 2, "adam") / 2**30
    print(f"N = {n_params:.3g}, D = {n_tokens:.3g}: {d:8.2f} days on {devices:4d} devices; "
          f"{gib:9.1f} GiB for weights, gradients, Adam and master weights (bfloat16)")
chinchilla_budget = 6 * 70e9 * 1.4e12
n_opt, d_opt = optimal(chinchilla_budget)
print(f"C = {chinchilla_budget:.3g} FLOPs: compute-optimal N = {n_opt:.3g}, D = {d_opt:.3g} tokens")
