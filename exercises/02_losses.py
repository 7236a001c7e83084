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
# # 02 · Exercises: loss functions
#
# Student sheet: <a href="https://colab.research.google.com/github/nn-from-scratch/course/blob/main/exercises/02_losses.ipynb" target="_parent"><img src="https://colab.research.google.com/assets/colab-badge.svg" alt="Open In Colab"/></a>
# · with solutions: [solutions/02_losses.ipynb](https://colab.research.google.com/github/nn-from-scratch/course/blob/main/solutions/02_losses.ipynb)
#
# Seven questions on the lecture `notebooks/02_losses.ipynb`: the mean squared error, the binary
# cross-entropy from logits, a numerically stable log-softmax and the cross-entropy, and the
# gradients of three of them. The gradients (02.2, 02.6, 02.7) and the stable binary cross-entropy
# (02.3) are yours to **derive**: the sheet states the loss, the shapes and what you may use, not
# the result. Work on paper first.
#
# Replace each `raise NotImplementedError(...)` with your code and run the `check(...)` cell below
# it: it compares your function with the course's reference on several inputs, including nasty ones
# (logits of ±1000). When an answer fails, it names the typical mistake it looks like (if it
# recognises one), shows the first mismatch and a hint; each further failed check shows one more
# hint tier, from the idea to a near-code nudge. `hint("02.6")` shows the next tier at any time.
# Use plain tensor operations (`+`, `*`, `.sum`, `.mean`, `.max`, `torch.exp`, `torch.log`,
# `torch.log1p`, indexing), not `torch.nn.functional`, autograd or `course_lib.losses`: the point
# is to write them yourself. All inputs are `float64`.

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
# ## 02.1 Mean squared error
#
# For a prediction $\hat y$ and a target $y$ of the same shape with $M$ elements in total,
#
# $$L = \frac{1}{M} \sum_{i=1}^{M} (\hat y_i - y_i)^2 .$$
#
# The tensors may have any shape; return one number, a tensor of shape `()`.

# %%
def mse(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared error. pred, target: the same shape (any) -> shape ()."""
    raise NotImplementedError("Exercise 02.1: replace this line with your code")


# %%
check("02.1", mse)

# %% [markdown]
# ## 02.2 Derive its gradient
#
# Derive $\partial L / \partial \hat y_i$ for the loss of 02.1, on paper, for every element $i$, and
# implement it. Return a tensor of the same shape as `pred`. Use only tensor arithmetic (no
# autograd); the check compares your result with the exact derivative.

# %%
def mse_grad(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """dL/dpred of the mean squared error. pred, target: the same shape -> that shape."""
    raise NotImplementedError("Exercise 02.2: replace this line with your code")


# %%
check("02.2", mse_grad)

# %% [markdown]
# ## 02.3 Binary cross-entropy from logits: derive a stable form
#
# A binary classifier outputs a logit $z \in \mathbb{R}$; its probability for class 1 is
# $p = \sigma(z) = 1/(1+e^{-z})$, and the binary cross-entropy of a target $y \in [0, 1]$ is
#
# $$\ell(z, y) = -y \log p - (1 - y) \log(1 - p).$$
#
# Computed this way it fails for large $|z|$: $\sigma(40)$ rounds to exactly $1$ in float64, so
# $\log(1 - p) = \log 0$. Rewrite $\ell$ as an expression in $z$ and $y$ alone, with no $\sigma$,
# in which no exponent is ever positive and no logarithm ever receives 0, and implement it. You may
# use `torch.exp`, `torch.log1p` ($\log(1+x)$, accurate for small $x$), `.abs()`, `.clamp` and
# arithmetic. Return the **mean** of $\ell$ over all elements (shape `()`).

# %%
def bce_with_logits(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean binary cross-entropy of sigmoid(logits). logits, target: the same shape -> shape ()."""
    raise NotImplementedError("Exercise 02.3: replace this line with your code")


# %%
check("02.3", bce_with_logits)

# %% [markdown]
# ## 02.4 A stable log-softmax
#
# For logits $Z \in \mathbb{R}^{N \times C}$ (one row per sample, one column per class), the
# log-softmax of row $i$ is
#
# $$\log \mathrm{softmax}(z_i)_c = z_{ic} - \log \sum_{j=1}^{C} e^{z_{ij}} .$$
#
# Implement it so that rows such as $(1000, 0, -1000)$ and $(-1000, -1000, -1000)$ give finite
# results: neither `exp` may overflow nor `log` receive 0. (As in sheet 01's softmax, shifting a
# row by a constant is the key.) Return shape $(N, C)$.

# %%
def log_softmax(logits: torch.Tensor) -> torch.Tensor:
    """Row-wise log-softmax. logits: (N, C) -> (N, C)."""
    raise NotImplementedError("Exercise 02.4: replace this line with your code")


# %%
check("02.4", log_softmax)

# %% [markdown]
# ## 02.5 Cross-entropy
#
# With class indices $y \in \{0, \dots, C-1\}^N$ (a `torch.long` tensor of shape $(N,)$), the
# cross-entropy averages minus the log-probability of each sample's true class:
#
# $$L = -\frac{1}{N} \sum_{i=1}^{N} \log \mathrm{softmax}(z_i)_{y_i}.$$
#
# The difficulty is to pick, without a Python loop, exactly one entry per row: entry $y_i$ of row
# $i$. Use your `log_softmax` (the cell below takes yours if it passes 02.4, the reference
# otherwise, and says which).

# %%
log_softmax_ok = use("02.4", log_softmax)


def cross_entropy(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy. logits: (N, C), target: (N,) class indices -> shape ()."""
    raise NotImplementedError("Exercise 02.5: replace this line with your code")


# %%
check("02.5", cross_entropy)

# %% [markdown]
# ## 02.6 Derive the gradient of the cross-entropy
#
# Derive $\partial L / \partial Z \in \mathbb{R}^{N \times C}$ for the loss $L$ of 02.5, on paper:
# start from one sample's loss written with the log-sum-exp, differentiate with respect to one
# logit $z_{ic}$, treat the true class $c = y_i$ and the others separately, then combine them and
# account for the mean. Implement the result with tensor operations (no autograd); compute any
# softmax stably (logits of $\pm 1000$ occur).

# %%
def cross_entropy_grad(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """dL/dlogits of the mean cross-entropy. logits: (N, C), target: (N,) -> (N, C)."""
    raise NotImplementedError("Exercise 02.6: replace this line with your code")


# %%
check("02.6", cross_entropy_grad)

# %% [markdown]
# ## 02.7 Derive the gradient of the binary cross-entropy
#
# Derive $\partial L / \partial z_i$ for the mean binary cross-entropy $L$ of 02.3, for every
# logit $z_i$, on paper, and implement it. Return a tensor of the shape of `logits`. It must stay
# finite for logits of $\pm 1000$. Once it passes, compare it with your answer to 02.6: what do the
# two gradients have in common?

# %%
def bce_with_logits_grad(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """dL/dlogits of the mean binary cross-entropy. logits, target: the same shape -> that shape."""
    raise NotImplementedError("Exercise 02.7: replace this line with your code")


# %%
check("02.7", bce_with_logits_grad)

# %% [markdown]
# ## Putting them to work
#
# A loss and its gradient are all that gradient descent needs. Below, your `cross_entropy` and
# `cross_entropy_grad` (or the reference, where yours does not pass yet) train a linear
# classifier $Z = X W^\top + b$ on three clouds of 2-D points. By the chain rule through
# $Z = XW^\top + b$, $\partial L/\partial W = (\partial L/\partial Z)^\top X$ and $\partial
# L/\partial b = \sum_i (\partial L/\partial Z)_i$ (chapter 03 derives this in general). The loss
# should fall from $\log 3 \approx 1.099$ (uniform guessing) towards 0.

# %%
ce = use("02.5", cross_entropy)
ce_grad = use("02.6", cross_entropy_grad)

gen = torch.Generator().manual_seed(0)
centres = torch.tensor([[2.0, 0.0], [-1.0, 1.7], [-1.0, -1.7]], dtype=torch.float64)
y = torch.arange(3).repeat_interleave(50)  # (150,) class indices
X = centres[y] + 0.6 * torch.randn(150, 2, generator=gen, dtype=torch.float64)  # (150, 2)
W = torch.zeros(3, 2, dtype=torch.float64)
b = torch.zeros(3, dtype=torch.float64)
for step in range(101):
    Z = X @ W.T + b  # (150, 3) logits
    dZ = ce_grad(Z, y)  # (150, 3)
    if step % 25 == 0:
        accuracy = (Z.argmax(dim=1) == y).double().mean()
        print(f"step {step:3d}  loss {float(ce(Z, y)):.4f}  accuracy {float(accuracy):.2f}")
    W -= 0.5 * dZ.T @ X  # gradient descent, learning rate 0.5
    b -= 0.5 * dZ.sum(dim=0)

# %% [markdown]
# That is a whole classifier trained with the two functions you wrote. The next chapter computes
# gradients like $\partial L/\partial W$ automatically, for any network: backpropagation.
