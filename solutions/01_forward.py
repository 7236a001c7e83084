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
# # 01 · Exercises: forward propagation
#
# Student sheet: <a href="https://colab.research.google.com/github/nn-from-scratch/course/blob/main/exercises/01_forward.ipynb" target="_parent"><img src="https://colab.research.google.com/assets/colab-badge.svg" alt="Open In Colab"/></a>
# · with solutions: [solutions/01_forward.ipynb](https://colab.research.google.com/github/nn-from-scratch/course/blob/main/solutions/01_forward.ipynb)
#
# Seven questions on the lecture `notebooks/01_forward.ipynb`. Five build its pieces yourself: a
# linear layer, ReLU, a sigmoid that never overflows, a stable softmax and the forward pass of a
# whole MLP. Two ask you to think first: derive how many parameters an MLP has (01.6), and measure
# how PyTorch's default initialisation changes the scale of activations from one layer to the next
# (01.7).
#
# Replace each `raise NotImplementedError(...)` with your code and run the `check(...)` cell below
# it: it compares your function with the course's reference on several inputs, edge cases
# included (one example, one class, logits of ±1000). When an answer fails, it names the typical
# mistake it looks like (if it recognises one), shows the first mismatch and a hint; each further
# failed check shows one more hint tier, from the idea to a near-code nudge. `hint("01.4")` shows
# the next tier at any time. For 01.1–01.6 use plain tensor operations (`@`, `+`, `*`, `.T`,
# `.sum`, `.max`, `torch.exp`, `torch.where`, indexing), not `torch.nn.functional` or
# `course_lib.layers`: the point is to write them yourself. Inputs are `float64` unless a case says
# otherwise; keep the input's dtype.

# %% tags=["setup"]
# Setup. On Colab this installs course_lib from the course repository (Colab keeps its own
# torch and ipywidgets); everywhere else it does nothing.
import sys

if "google.colab" in sys.modules:
    get_ipython().run_line_magic("pip", "install --quiet git+https://github.com/nn-from-scratch/course")

# %%
import torch

from course_lib.check import check, hint, use
from course_lib.device import seed_everything

seed_everything(0)

# %% [markdown]
# ## 01.1 A linear layer
#
# A batch of $N$ inputs $X \in \mathbb{R}^{N \times D_{in}}$, one example per row, goes through a
# layer with $D_{out}$ output neurons. As in `nn.Linear`, the weights $W \in \mathbb{R}^{D_{out}
# \times D_{in}}$ hold **one row per output neuron**, and neuron $j$ adds its own bias $b_j$:
#
# $$Y_{nj} = \sum_{k=1}^{D_{in}} X_{nk} W_{jk} + b_j, \qquad Y \in \mathbb{R}^{N \times D_{out}} .$$
#
# Write this for the whole batch at once, without a Python loop, as one matrix expression.

# %%
def linear_forward(x: torch.Tensor, W: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """One affine layer. x: (N, D_in), W: (D_out, D_in), b: (D_out,) -> (N, D_out)."""
    ### BEGIN SOLUTION 01.1
    return x @ W.T + b
    ### END SOLUTION


# %%
check("01.1", linear_forward)

# %% [markdown]
# ## 01.2 ReLU
#
# $\mathrm{ReLU}(x) = \max(0, x)$, elementwise. The input may have any shape; return the same shape
# **and dtype** (one case is `float32`).

# %%
def relu(x: torch.Tensor) -> torch.Tensor:
    """max(0, x) elementwise. x: any shape -> same shape and dtype."""
    ### BEGIN SOLUTION 01.2
    return torch.where(x > 0, x, torch.zeros_like(x))
    ### END SOLUTION


# %%
check("01.2", relu)

# %% [markdown]
# ## 01.3 A sigmoid that never overflows
#
# $$\sigma(x) = \frac{1}{1 + e^{-x}} .$$
#
# In float64, $e^{x}$ overflows to `inf` for $x > 709.78$, and a formula that then divides `inf` by
# `inf` returns `NaN`. Write $\sigma$ so that **no exponent is ever positive**, for every finite $x$,
# including $x = \pm 1000$. The lecture's section on activations shows one way; try to find it
# before you look. Any shape; keep the dtype. Do not call `torch.sigmoid`.

# %%
def sigmoid(x: torch.Tensor) -> torch.Tensor:
    """1 / (1 + exp(-x)) elementwise, finite for every finite x. x: any shape -> same shape."""
    ### BEGIN SOLUTION 01.3
    e = torch.exp(-x.abs())
    return torch.where(x >= 0, 1 / (1 + e), e / (1 + e))
    ### END SOLUTION


# %%
check("01.3", sigmoid)

# %% [markdown]
# ## 01.4 A stable softmax
#
# For logits $z \in \mathbb{R}^{C}$, one score per class,
# $\mathrm{softmax}(z)_c = e^{z_c} / \sum_{j=1}^{C} e^{z_j}$.
#
# First convince yourself, on paper, that subtracting the same number from every logit leaves the
# softmax unchanged. Then use that freedom so that logits of $\pm 1000$ give finite probabilities.
# The input may be one vector $(C,)$, a batch $(N, C)$ or more axes $(\dots, C)$: the classes are
# always along the **last** axis, and every row is a separate example.

# %%
def softmax(logits: torch.Tensor) -> torch.Tensor:
    """Softmax over the last axis. logits: (..., C) -> (..., C), rows sum to 1."""
    ### BEGIN SOLUTION 01.4
    shifted = logits - logits.max(dim=-1, keepdim=True).values
    e = torch.exp(shifted)
    return e / e.sum(dim=-1, keepdim=True)
    ### END SOLUTION


# %%
check("01.4", softmax)

# %% [markdown]
# ## 01.5 The forward pass of an MLP
#
# An MLP with $L$ layers has parameters $(W_1, b_1), \dots, (W_L, b_L)$, with
# $W_l \in \mathbb{R}^{D_l \times D_{l-1}}$ and $b_l \in \mathbb{R}^{D_l}$. Starting from
# $A_0 = X \in \mathbb{R}^{N \times D_0}$, each layer applies an affine map giving the
# pre-activation $Z_l$; every layer **except the last** then applies ReLU, giving $A_l$. The last
# layer's $Z_L$ are the logits.
#
# Return the list of every intermediate result, $[X, Z_1, A_1, Z_2, A_2, \dots, Z_L]$: the backward
# pass of chapter 03 needs all of them. Before you write code, say how long the list is for $L$
# layers and what shape each entry has. You may call your `linear_forward` and `relu` from above.

# %%
def mlp_forward(x: torch.Tensor, params: list) -> list:
    """x: (N, D_0); params: [(W_1, b_1), ..., (W_L, b_L)] -> [x, z_1, a_1, ..., z_L]."""
    ### BEGIN SOLUTION 01.5
    outs = [x]
    a = x
    for l, (W, b) in enumerate(params):
        z = a @ W.T + b
        outs.append(z)
        if l < len(params) - 1:
            a = z.clamp(min=0)
            outs.append(a)
    return outs
    ### END SOLUTION


# %%
check("01.5", mlp_forward)

# %% [markdown]
# ## 01.6 How many parameters?
#
# An MLP is described by its layer sizes $[D_0, D_1, \dots, D_L]$: $D_0$ inputs, then the width of
# each layer. Derive how many trainable numbers (weights and biases) such a network has, as a
# formula in the $D_l$, and implement it. Use the shapes of 01.5; do not build the network. Return a
# Python `int`.

# %%
def count_parameters(sizes: list) -> int:
    """The number of weights and biases of an MLP with layer sizes [D_0, ..., D_L] -> int."""
    ### BEGIN SOLUTION 01.6
    total = 0
    for d_in, d_out in zip(sizes[:-1], sizes[1:]):
        total += d_out * d_in + d_out
    return total
    ### END SOLUTION


# %%
check("01.6", count_parameters)

# %% [markdown]
# ## 01.7 Measure it: does the default initialisation keep the scale?
#
# `nn.Linear` starts from random weights and biases. If each layer shrank (or grew) the scale of
# its outputs by a constant factor, a deep network would multiply that factor many times over.
# Measure the factor for PyTorch's **default** initialisation:
#
# * two `torch.nn.Linear(1000, 1000)` layers, created with their default initialisation;
# * a batch $X$ of $1000$ inputs with standard-normal entries, shape $(1000, 1000)$;
# * $Z_1$ = the first layer applied to $X$, $A_1 = \mathrm{ReLU}(Z_1)$, $Z_2$ = the second layer
#   applied to $A_1$.
#
# Return the ratio $\mathrm{Var}(Z_2) / \mathrm{Var}(Z_1)$, the variance taken over all entries, as
# a Python `float`. The check accepts any measurement within $0.015$ of the course's own (the exact
# value depends on the random draw). Before you run it, guess: above 1, about 1, or below 1?

# %%
def variance_ratio() -> float:
    """Var(Z_2) / Var(Z_1) for two default nn.Linear(1000, 1000) layers with ReLU between -> float."""
    ### BEGIN SOLUTION 01.7
    torch.manual_seed(0)
    layer1, layer2 = torch.nn.Linear(1000, 1000), torch.nn.Linear(1000, 1000)
    with torch.no_grad():
        X = torch.randn(1000, 1000)
        Z1 = layer1(X)
        Z2 = layer2(torch.relu(Z1))
    return float(Z2.var() / Z1.var())
    ### END SOLUTION


# %%
check("01.7", variance_ratio)

# %% [markdown]
# Once your measurement passes, explain the number: what is the variance of one weight drawn
# uniformly from $[-1/\sqrt{D}, 1/\sqrt{D}]$, what does a sum of $D$ such products do to a variance,
# and what does ReLU do to the second moment that reaches the next layer? Chapter 08 (*Training deep
# networks*, planned) comes back to initialisations designed to keep the scale.

# %% [markdown]
# ## Putting it together
#
# A 2-4-3-2 network with random weights classifies three points. The cell uses your functions if
# they pass their checks and the course's reference otherwise (it says which), so it runs either
# way. The last line compares with PyTorch's `nn.Sequential` holding the same weights.

# %%
from course_lib.layers import init_mlp

forward = use("01.5", mlp_forward)
probabilities = use("01.4", softmax)

params = init_mlp([2, 4, 3, 2], generator=torch.Generator().manual_seed(0))
points = torch.tensor([[0.0, 0.0], [1.0, -1.0], [-2.0, 0.5]], dtype=torch.float64)
p = probabilities(forward(points, params)[-1])
print("class probabilities (one row per point):\n", p)

net = torch.nn.Sequential(torch.nn.Linear(2, 4), torch.nn.ReLU(), torch.nn.Linear(4, 3), torch.nn.ReLU(), torch.nn.Linear(3, 2)).double()
with torch.no_grad():
    for module, (W, b) in zip([net[0], net[2], net[4]], params):
        module.weight.copy_(W)
        module.bias.copy_(b)
    print("max |ours - PyTorch| =", float((p - torch.softmax(net(points), dim=-1)).abs().max()))
