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
# Six short functions, the ones the lecture `notebooks/02_losses.ipynb` builds: the mean squared
# error and its gradient, the binary cross-entropy computed from logits, a numerically stable
# log-softmax, the cross-entropy and its gradient. Replace each `raise NotImplementedError(...)`
# with your code and run the `check(...)` cell below it: it compares your function with the
# course's reference on several inputs, including nasty ones (logits of ±1000), and tells you the
# first mismatch. Use plain tensor operations (`+`, `*`, `.sum`, `.mean`, `.max`, `torch.exp`,
# `torch.log`, `torch.log1p`, indexing), not `torch.nn.functional` or `course_lib.losses`: the point
# is to write them yourself. All inputs are `float64`.

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
# ## 02.1 Mean squared error
#
# For a prediction $\hat y$ and a target $y$ of the same shape with $M$ elements in total,
#
# $$L = \frac{1}{M} \sum_{i=1}^{M} (\hat y_i - y_i)^2 .$$
#
# Return a scalar tensor (shape `()`). The tensors may have any shape: average over **all**
# elements, not over one axis.

# %%
def mse(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared error. pred, target: the same shape (any) -> shape ()."""
    raise NotImplementedError("Exercise 02.1: replace this line with your code")


# %%
check("02.1", mse)

# %% [markdown]
# ## 02.2 Its gradient
#
# Differentiate $L$ with respect to each prediction: only the $i$-th term depends on $\hat y_i$, so
#
# $$\frac{\partial L}{\partial \hat y_i} = \frac{2}{M} (\hat y_i - y_i).$$
#
# Return a tensor of the same shape as `pred`.

# %%
def mse_grad(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """dL/dpred of the mean squared error. pred, target: the same shape -> that shape."""
    raise NotImplementedError("Exercise 02.2: replace this line with your code")


# %%
check("02.2", mse_grad)

# %% [markdown]
# ## 02.3 Binary cross-entropy from logits
#
# A binary classifier outputs a logit $z$; its probability for class 1 is $p = \sigma(z) =
# 1/(1+e^{-z})$. The binary cross-entropy $-y\log p - (1-y)\log(1-p)$ rewritten in terms of $z$ is
#
# $$\ell(z, y) = \max(z, 0) - z\,y + \log\!\left(1 + e^{-|z|}\right),$$
#
# which never overflows ($e^{-|z|} \le 1$). Computing $\sigma(z)$ first and then the logs fails
# for large $|z|$: $\sigma(40)$ rounds to exactly $1$ in float64, and $\log(1 - 1) = -\infty$.
# Return the **mean** of $\ell$ over all elements (shape `()`). `torch.log1p(x)` computes
# $\log(1+x)$ accurately for small $x$.

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
# log-softmax of row $i$ is $\log \mathrm{softmax}(z_i)_c = z_{ic} - \log \sum_{j} e^{z_{ij}}$. With
# $m_i = \max_j z_{ij}$ the same quantity is
#
# $$\log \mathrm{softmax}(z_i)_c = z_{ic} - m_i - \log \sum_{j=1}^{C} e^{z_{ij} - m_i},$$
#
# where every exponent is $\le 0$ and the sum is $\ge 1$: no overflow, no $\log 0$. Subtract the
# maximum **of each row** (`keepdim=True` keeps the shape $(N, 1)$ for broadcasting). Return
# shape $(N, C)$.

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
# cross-entropy averages minus the log-probability of the true class:
#
# $$L = -\frac{1}{N} \sum_{i=1}^{N} \log \mathrm{softmax}(z_i)_{y_i}.$$
#
# `logp[torch.arange(N), target]` picks entry $(i, y_i)$ of every row. Use your `log_softmax` (or
# the reference, if yours does not pass yet: `use` picks whichever works).

# %%
log_softmax_ok = use("02.4", log_softmax)


def cross_entropy(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy. logits: (N, C), target: (N,) class indices -> shape ()."""
    raise NotImplementedError("Exercise 02.5: replace this line with your code")


# %%
check("02.5", cross_entropy)

# %% [markdown]
# ## 02.6 The gradient of the cross-entropy
#
# Writing $p_i = \mathrm{softmax}(z_i)$, the derivative of $-\log p_{i y_i}$ with respect to
# $z_{ic}$ is $p_{ic} - [c = y_i]$. With the factor $1/N$ of the mean,
#
# $$\frac{\partial L}{\partial Z} = \frac{1}{N}\left(\mathrm{softmax}(Z) - \mathrm{onehot}(y)\right)
# \in \mathbb{R}^{N \times C}.$$
#
# Compute the softmax stably (e.g. as `exp` of a stable log-softmax) and subtract 1 at each
# true class.

# %%
def cross_entropy_grad(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """dL/dlogits of the mean cross-entropy. logits: (N, C), target: (N,) -> (N, C)."""
    raise NotImplementedError("Exercise 02.6: replace this line with your code")


# %%
check("02.6", cross_entropy_grad)

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
