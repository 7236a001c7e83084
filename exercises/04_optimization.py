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
# # 04 · Exercises: optimisation and training
#
# Student sheet: <a href="https://colab.research.google.com/github/nn-from-scratch/course/blob/main/exercises/04_optimization.ipynb" target="_parent"><img src="https://colab.research.google.com/assets/colab-badge.svg" alt="Open In Colab"/></a>
# · with solutions: [solutions/04_optimization.ipynb](https://colab.research.google.com/github/nn-from-scratch/course/blob/main/solutions/04_optimization.ipynb)
#
# Six exercises on the lecture `notebooks/04_optimization.ipynb`: one step of gradient descent, one
# step of PyTorch's SGD with momentum, one step of Adam whose **bias correction you derive**, a
# learning-rate schedule, a training step with **two bugs to find and fix**, and a **measurement**:
# the largest learning rate at which gradient descent still converges on a given quadratic.
#
# Replace each `raise NotImplementedError(...)` with your code and run the `check(...)` cell below
# it: it compares your function with the course's reference on several inputs and tells you the
# first mismatch. When your answer looks like a typical mistake, the check names it and says which
# idea it gets wrong; each further failure shows one more hint, and `hint("04.3")` (with any
# question's number) asks for the next hint without running the check. Write the update rules with
# plain tensor arithmetic (`+`, `*`, `/`, `**`, `torch.sqrt`), not with `torch.optim` or
# `course_lib.optim`: the point is to write them yourself. **Return new tensors; do not modify the
# arguments in place.** All tensors are `float64`. At the end, your functions train a small
# network together.

# %% tags=["setup"]
# Setup. On Colab this installs course_lib from the course repository (Colab keeps its own
# torch and ipywidgets); everywhere else it does nothing.
import sys

if "google.colab" in sys.modules:
    get_ipython().run_line_magic("pip", "install --quiet git+https://github.com/nn-from-scratch/course")

# %%
import math

import torch

from course_lib import data
from course_lib.check import check, hint, use
from course_lib.device import seed_everything

seed_everything(0)
torch.set_num_threads(1)  # tiny tensors: one thread is faster

# %% [markdown]
# ## 04.1 One gradient-descent step (1 point)
#
# Write one step of gradient descent: given a parameter tensor $\theta$, the gradient
# $g = \nabla L(\theta)$ of the same shape and a learning rate $\eta$, return the parameters after
# the step.

# %%
def gd_step(param: torch.Tensor, grad: torch.Tensor, lr: float) -> torch.Tensor:
    """One gradient-descent step. param, grad: the same shape (any) -> that shape."""
    raise NotImplementedError("Exercise 04.1: replace this line with your code")


# %%
check("04.1", gd_step)

# %% [markdown]
# ## 04.2 SGD with momentum, as PyTorch does it (2 points)
#
# `torch.optim.SGD(params, lr, momentum, dampening, weight_decay, nesterov)` updates each
# parameter with a momentum buffer $b$ (same shape as $\theta$) like this:
#
# 1. weight decay: $g \leftarrow g + \lambda\, \theta$ (skip when $\lambda = 0$);
# 2. buffer: on the first step (`buf is None`) $b = g$, **without** the dampening factor; later
#    $b \leftarrow \mu\, b + (1 - \tau)\, g$;
# 3. direction: $d = g + \mu\, b$ with Nesterov, $d = b$ without;
# 4. $\theta_{\text{new}} = \theta - \eta\, d$.
#
# Return the pair `(new_param, new_buf)`. Every case here has `momentum > 0`.

# %%
def sgd_step(param: torch.Tensor, grad: torch.Tensor, buf, lr: float, momentum: float = 0.0,
             dampening: float = 0.0, weight_decay: float = 0.0, nesterov: bool = False):
    """One step of torch.optim.SGD with momentum. param, grad, buf: the same shape (buf may be
    None on the first step) -> (new_param, new_buf), both of that shape."""
    raise NotImplementedError("Exercise 04.2: replace this line with your code")


# %%
check("04.2", sgd_step)

# %% [markdown]
# ## 04.3 One Adam step: derive the bias correction (2 points)
#
# Adam keeps two running averages per parameter, $m$ of the gradients and $v$ of their squares,
# both **zero before the first step**. At step $t$ ($t = 1$ on the first step), with gradient $g$:
#
# $$g \leftarrow g + \lambda\,\theta, \qquad
# m_t = \beta_1 m_{t-1} + (1-\beta_1)\, g, \qquad
# v_t = \beta_2 v_{t-1} + (1-\beta_2)\, g \odot g, \qquad
# \theta_{\text{new}} = \theta - \eta\, \frac{\hat m_t}{\sqrt{\hat v_t} + \epsilon} .$$
#
# Because they start at zero, $m_t$ and $v_t$ are too small in the first steps. $\hat m_t$ and
# $\hat v_t$ correct that by dividing each by a factor that depends on $t$ and $\beta$.
# **Derive the factors**: suppose every gradient so far was the same $g$ and write $m_t$ as a
# multiple of $g$ (and $v_t$ as a multiple of $g \odot g$); the corrected values should be $g$ and
# $g \odot g$ exactly. Then write `adam_step`, returning `(new_param, new_m, new_v)` with the
# moments $m_t, v_t$ **without** correction (the next step continues from them).

# %%
def adam_step(param: torch.Tensor, grad: torch.Tensor, m: torch.Tensor, v: torch.Tensor, t: int,
              lr: float = 1e-3, beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-8,
              weight_decay: float = 0.0):
    """One step of torch.optim.Adam. param, grad, m, v: the same shape; t >= 1
    -> (new_param, new_m, new_v), all of that shape."""
    raise NotImplementedError("Exercise 04.3: replace this line with your code")


# %%
check("04.3", adam_step)

# %% [markdown]
# ## 04.4 Warm-up, then cosine decay (1 point)
#
# A training run has $T$ steps (`total_steps`), numbered $s = 0, 1, 2, \dots$, and $W$ warm-up
# steps (`warmup_steps`, $0 \le W < T$). The schedule:
#
# * during the warm-up ($s < W$) the rate rises linearly: step $s$ uses the fraction $(s+1)/W$
#   of `base_lr`, so the first step is not wasted and step $W-1$ reaches `base_lr`;
# * from step $W$ to step $T$ it follows half a period of a cosine, from `base_lr` at $s = W$
#   down to `min_lr` at $s = T$;
# * after step $T$ it stays at `min_lr`.
#
# Write the formula for the cosine part yourself and return a Python float. The check evaluates
# your function at every step $0, \dots, T+2$.

# %%
def warmup_cosine_lr(step: int, total_steps: int, base_lr: float, warmup_steps: int = 0, min_lr: float = 0.0) -> float:
    """The learning rate of step `step` (from 0): linear warm-up over warmup_steps, then a half
    cosine from base_lr down to min_lr at total_steps, constant afterwards."""
    raise NotImplementedError("Exercise 04.4: replace this line with your code")


# %%
check("04.4", warmup_cosine_lr)

# %% [markdown]
# ## 04.5 Find and fix the bugs in a training step (2 points)
#
# `train_step(model, loss_fn, optimizer, X, y)` should do one optimisation step on the batch
# `(X, y)` and return the batch loss **before** the update as a Python float. `model` returns raw
# class scores (logits), `loss_fn` is `torch.nn.functional.cross_entropy`, and `optimizer` has
# `zero_grad()` and `step()` (a `torch.optim` one or one of `course_lib.optim`). Here is a
# version that runs without an error but has **two bugs**. The cell trains a small network on the
# two-moons data with it: watch the loss it reports and the accuracy, and compare them with the
# same run after the check below, which uses your corrected version.

# %%
def train_step_buggy(model, loss_fn, optimizer, X: torch.Tensor, y: torch.Tensor) -> float:
    probs = torch.softmax(model(X), dim=1)  # the model's class probabilities
    loss = loss_fn(probs, y)
    loss.backward()
    optimizer.step()
    return loss.item()


def try_train_step(step_fn, steps: int = 200) -> None:
    """Train a fresh 2-16-2 tanh network on 200 moons with SGD (lr 0.1, momentum 0.9) using step_fn."""
    from course_lib import optim

    Xm, ym = data.moons(200, noise=0.1, dtype=torch.float64)
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(2, 16), torch.nn.Tanh(), torch.nn.Linear(16, 2)).to(torch.float64)
    sgd = optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
    for s in range(steps):
        reported = step_fn(net, torch.nn.functional.cross_entropy, sgd, Xm, ym)
        if s % 50 == 0 or s == steps - 1:
            with torch.no_grad():
                acc = float((net(Xm).argmax(dim=1) == ym).double().mean())
            print(f"step {s:3d}  reported loss {reported:.3f}  accuracy {acc:.3f}")


try_train_step(train_step_buggy)

# %% [markdown]
# Write the corrected `train_step`. The check calls it three times in a row on a small network
# and compares the three losses and the final weights.

# %%
def train_step(model, loss_fn, optimizer, X: torch.Tensor, y: torch.Tensor) -> float:
    """One optimisation step on the batch (X, y); returns the batch loss before the update."""
    raise NotImplementedError("Exercise 04.5: replace this line with your code")


# %%
check("04.5", train_step)

# %% [markdown]
# The same training run with your corrected step (or the reference, if yours does not pass yet):

# %%
try_train_step(use("04.5", train_step))

# %% [markdown]
# ## 04.6 Measure the largest stable learning rate (1 point)
#
# Gradient descent on the quadratic loss
#
# $$f(\theta) = \tfrac12\, \theta^\top A\, \theta, \qquad \nabla f(\theta) = A\,\theta, \qquad \theta \in \mathbb{R}^2,$$
#
# with the matrix `A` below converges to the minimum $\theta = 0$ for small learning rates and
# diverges for large ones. **Find the boundary by experiment**, to within 1%: run gradient descent
# (your `gd_step`) from $\theta_0 = (1, 1)$ at different learning rates and search for the rate
# where the behaviour changes. Return it as a number from `largest_stable_lr()` (the function may
# run your experiment, or return the number you found). Then explain the number with the lecture's
# one-dimensional rule: which direction of this two-dimensional quadratic limits the rate?

# %%
A = torch.tensor([[5.0, 2.0], [2.0, 2.0]], dtype=torch.float64)
theta0 = torch.tensor([1.0, 1.0], dtype=torch.float64)
step = use("04.1", gd_step)


def quadratic_grad(theta: torch.Tensor) -> torch.Tensor:
    """The gradient A theta of f(theta) = 1/2 theta^T A theta."""
    return A @ theta


# %%
def largest_stable_lr() -> float:
    """The learning rate above which gradient descent on f diverges (within 1%)."""
    raise NotImplementedError("Exercise 04.6: replace this line with your code")


# %%
check("04.6", largest_stable_lr)

# %% [markdown]
# ## Putting them to work
#
# Your `adam_step` becomes a real optimiser in a few lines: keep $m$, $v$ and $t$ per parameter
# and apply the step in `step()`. Together with your schedule and your `train_step` (or the
# references, where yours do not pass yet) it trains a small network on the two-moons data.
# The loss should fall from about 0.8 (a network that guesses) to below 0.1, and the accuracy
# rise above 0.95.

# %%
adam = use("04.3", adam_step)
schedule = use("04.4", warmup_cosine_lr)
step_fn = use("04.5", train_step)


class MyAdam:
    """A minimal Adam optimiser built on an adam_step function."""

    def __init__(self, params, lr: float) -> None:
        self.params, self.lr, self.t = list(params), lr, 0
        self.m = [torch.zeros_like(p) for p in self.params]
        self.v = [torch.zeros_like(p) for p in self.params]

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    @torch.no_grad()
    def step(self) -> None:
        self.t += 1
        for i, p in enumerate(self.params):
            new, self.m[i], self.v[i] = adam(p.detach(), p.grad, self.m[i], self.v[i], self.t, lr=self.lr)
            p.copy_(new)


X, y = data.moons(200, noise=0.1, dtype=torch.float64)
torch.manual_seed(0)
model = torch.nn.Sequential(torch.nn.Linear(2, 16), torch.nn.Tanh(), torch.nn.Linear(16, 2)).to(torch.float64)
opt = MyAdam(model.parameters(), lr=0.05)
steps = 200
for s in range(steps):
    opt.lr = schedule(s, steps, 0.05, warmup_steps=10, min_lr=0.001)
    loss = step_fn(model, torch.nn.functional.cross_entropy, opt, X, y)
    if s % 50 == 0 or s == steps - 1:
        with torch.no_grad():
            accuracy = float((model(X).argmax(dim=1) == y).double().mean())
        print(f"step {s:3d}  lr {opt.lr:.4f}  loss {loss:.4f}  accuracy {accuracy:.3f}")

# %% [markdown]
# Two hundred steps of your own optimiser, schedule and training step. `course_lib.optim.Adam`
# is the same idea with PyTorch's interface (`state`, `zero_grad(set_to_none=...)`, AMSGrad).
