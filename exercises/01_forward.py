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
# Five short functions, the ones the lecture `notebooks/01_forward.ipynb` builds: a linear layer,
# ReLU, a sigmoid that never overflows, a stable softmax and the forward pass of a whole MLP.
# Replace each `raise NotImplementedError(...)` with your code and run the `check(...)` cell below
# it: it compares your function with the course's reference on several inputs, edge cases
# included (one example, one class, logits of ±1000), and tells you the first mismatch. Use plain
# tensor operations (`@`, `+`, `*`, `.T`, `.sum`, `.max`, `torch.exp`, `torch.where`, indexing),
# not `torch.nn.functional` or `course_lib.layers`: the point is to write them yourself. Inputs
# are `float64` unless a case says otherwise; keep the input's dtype.

# %% tags=["setup"]
# Setup. On Colab this installs course_lib from the course repository (Colab keeps its own
# torch and ipywidgets); everywhere else it does nothing.
import sys

if "google.colab" in sys.modules:
    get_ipython().run_line_magic("pip", "install --quiet git+https://github.com/nn-from-scratch/course")

# %%
import torch

from course_lib.check import check, use
from course_lib.device import seed_everything

seed_everything(0)

# %% [markdown]
# ## 01.1 A linear layer
#
# A batch of $N$ inputs $X \in \mathbb{R}^{N \times D_{in}}$ goes through a layer with weights
# $W \in \mathbb{R}^{D_{out} \times D_{in}}$ (one row per output neuron, as in `nn.Linear`) and
# bias $b \in \mathbb{R}^{D_{out}}$:
#
# $$Y = X W^\top + b \in \mathbb{R}^{N \times D_{out}}, \qquad Y_{nj} = \sum_{k=1}^{D_{in}} X_{nk} W_{jk} + b_j .$$
#
# The bias is added to every row (broadcasting).

# %%
def linear_forward(x: torch.Tensor, W: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """y = x W^T + b. x: (N, D_in), W: (D_out, D_in), b: (D_out,) -> (N, D_out)."""
    raise NotImplementedError("Exercise 01.1: replace this line with your code")


# %%
check("01.1", linear_forward)

# %% [markdown]
# ## 01.2 ReLU
#
# $$\mathrm{ReLU}(x) = \max(0, x), \text{ elementwise.}$$
#
# The input may have any shape; return the same shape **and dtype** (one case is `float32`).

# %%
def relu(x: torch.Tensor) -> torch.Tensor:
    """max(0, x) elementwise. x: any shape -> same shape and dtype."""
    raise NotImplementedError("Exercise 01.2: replace this line with your code")


# %%
check("01.2", relu)

# %% [markdown]
# ## 01.3 A sigmoid that never overflows
#
# $$\sigma(x) = \frac{1}{1 + e^{-x}} = \frac{e^{x}}{1 + e^{x}} .$$
#
# Both forms are equal in exact arithmetic, but in floating point $e^{x}$ overflows to `inf` for
# $x > 709.78$ (float64), and `inf / inf` is `NaN`. Write $e = e^{-|x|} \in (0, 1]$: then
# $\sigma(x) = \frac{1}{1+e}$ for $x \ge 0$ and $\sigma(x) = \frac{e}{1+e}$ for $x < 0$, and no
# exponent is ever positive. Any shape; keep the dtype.

# %%
def sigmoid(x: torch.Tensor) -> torch.Tensor:
    """1 / (1 + exp(-x)) elementwise, finite for every finite x. x: any shape -> same shape."""
    raise NotImplementedError("Exercise 01.3: replace this line with your code")


# %%
check("01.3", sigmoid)

# %% [markdown]
# ## 01.4 A stable softmax
#
# For logits $z \in \mathbb{R}^{C}$ (one score per class),
#
# $$\mathrm{softmax}(z)_c = \frac{e^{z_c}}{\sum_{j=1}^{C} e^{z_j}} = \frac{e^{z_c - m}}{\sum_{j=1}^{C} e^{z_j - m}}, \qquad m = \max_j z_j .$$
#
# The second form is the same number (multiply top and bottom by $e^{-m}$), but every exponent is
# $\le 0$, so logits of $1000$ no longer overflow. The input may be a single vector $(C,)$, a batch
# $(N, C)$ or more: apply softmax along the **last** axis and subtract the maximum **of each row**
# (`dim=-1, keepdim=True`), not of the whole tensor.

# %%
def softmax(logits: torch.Tensor) -> torch.Tensor:
    """Softmax over the last axis. logits: (..., C) -> (..., C), rows sum to 1."""
    raise NotImplementedError("Exercise 01.4: replace this line with your code")


# %%
check("01.4", softmax)

# %% [markdown]
# ## 01.5 The forward pass of an MLP
#
# An MLP with $L$ layers has parameters $(W_1, b_1), \dots, (W_L, b_L)$ with
# $W_l \in \mathbb{R}^{D_l \times D_{l-1}}$ and $b_l \in \mathbb{R}^{D_l}$. Starting from
# $A_0 = X \in \mathbb{R}^{N \times D_0}$,
#
# $$Z_l = A_{l-1} W_l^\top + b_l \in \mathbb{R}^{N \times D_l}, \qquad A_l = \mathrm{ReLU}(Z_l) \quad (l < L),$$
#
# and the last layer has **no** activation: $Z_L$ are the logits. Return the list of every
# intermediate result, $[X, Z_1, A_1, Z_2, A_2, \dots, Z_L]$ (length $2L$). With a single layer
# that is just $[X, Z_1]$. You may call your `linear_forward` and `relu` from above.

# %%
def mlp_forward(x: torch.Tensor, params: list) -> list:
    """x: (N, D_0); params: [(W_1, b_1), ..., (W_L, b_L)] -> [x, z_1, a_1, ..., z_L]."""
    raise NotImplementedError("Exercise 01.5: replace this line with your code")


# %%
check("01.5", mlp_forward)

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
