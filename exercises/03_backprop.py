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
# # 03 · Exercises: backpropagation
#
# Student sheet: <a href="https://colab.research.google.com/github/nn-from-scratch/course/blob/main/exercises/03_backprop.ipynb" target="_parent"><img src="https://colab.research.google.com/assets/colab-badge.svg" alt="Open In Colab"/></a>
# · with solutions: [solutions/03_backprop.ipynb](https://colab.research.google.com/github/nn-from-scratch/course/blob/main/solutions/03_backprop.ipynb)
#
# Six exercises on the backward pass, built on the lecture `notebooks/03_backprop.ipynb`. You
# write multiplication and `tanh` for the scalar `Value` with their backward steps, **derive** the
# backward passes of a linear layer and of softmax, write a numerical gradient, and then use it to
# **find and fix two bugs** in a hand-written backward pass of a small network.
#
# Replace each `raise NotImplementedError(...)` with your code and run the `check(...)` cell
# below it: it compares your function with the course's reference on several inputs, edge cases
# included (a value used twice, a batch of one, a single class). When your answer looks like a
# typical mistake, the check names it and says which idea it gets wrong; each further failure
# shows one more hint, and `hint("03.3")` (with any question's number) asks for the next hint
# without running the check. Later cells use your function if it passes, or the reference
# otherwise, so the whole sheet always runs. Write the operations yourself (plain Python `math`
# and tensor operations such as `@`, `.T`, `.sum`), not with `Value`'s own operators,
# `torch.autograd` or `course_lib.layers`. All tensors are `float64`.

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
from course_lib.engine import Value

seed_everything(0)

# %% [markdown]
# ## 03.1 · Multiplication of two Values (2 points)
#
# A `Value` stores `data`, `grad`, its inputs `_prev`, an operation name `_op` and a function
# `_backward`. `backward()` sets the output's `grad` to 1 and calls the `_backward` of every node,
# from the output towards the inputs, after all the nodes that use it. Each `_backward` applies
# the chain rule for its own operation: for every input $u$ of an output $c$,
#
# $$\text{grad}(u) \mathrel{+}= \frac{\partial c}{\partial u}\cdot \text{grad}(c).$$
#
# Write `value_mul(a, b)` for $c = a\,b$ **without** using `Value`'s own `*`: create the output
# with `Value(data, (a, b), "*")`, give it a `_backward` (a function without arguments) and
# return it. The check builds `loss = 1.5 * out + a` around your operation, also for `x * x`
# where both inputs are the same object, and compares `out.data`, `a.grad` and `b.grad`.

# %%
def value_mul(a: Value, b: Value) -> Value:
    """Return the Value a * b, connected to a and b, with the backward step of a product."""
    raise NotImplementedError("Exercise 03.1: replace this line with your code")


# %%
check("03.1", value_mul)

# %% [markdown]
# With your operation, $\frac{d}{dx}(x \cdot x) = 2x$ comes out by itself: both uses of $x$
# contribute.

# %%
mul = use("03.1", value_mul)
x = Value(3.0, label="x")
y = mul(x, x)
y.backward()
print(f"y = x * x = {y.data}, dy/dx = {x.grad} (2x = {2 * x.data})")

# %% [markdown]
# ## 03.2 · tanh of a Value: derive its backward step (2 points)
#
# $$t = \tanh(a) = \frac{e^{a} - e^{-a}}{e^{a} + e^{-a}}.$$
#
# Derive $dt/da$ on paper and write it in terms of the **output** $t$, which the forward pass
# computes anyway. Then write `value_tanh(a)` returning a new `Value` with inputs `(a,)`, op
# `"tanh"` and the backward step your derivative gives. You may use `math.tanh` for the forward
# value. (The check uses `loss = -2 * t + a`, so `out.grad` is not 1 and `a` is used twice.)

# %%
def value_tanh(a: Value) -> Value:
    """Return the Value tanh(a), connected to a, with the backward step you derived."""
    raise NotImplementedError("Exercise 03.2: replace this line with your code")


# %%
check("03.2", value_tanh)

# %% [markdown]
# A neuron $o = \tanh(x_1 w_1 + x_2 w_2 + b)$ with your two operations, compared with PyTorch:

# %%
vtanh = use("03.2", value_tanh)
inputs = {"x1": 2.0, "w1": -1.5, "x2": 0.5, "w2": 1.0, "b": 3.2}
v = {k: Value(d, label=k) for k, d in inputs.items()}
o = vtanh(mul(v["x1"], v["w1"]) + mul(v["x2"], v["w2"]) + v["b"])
o.backward()
t = {k: torch.tensor(d, dtype=torch.float64, requires_grad=True) for k, d in inputs.items()}
torch.tanh(t["x1"] * t["w1"] + t["x2"] * t["w2"] + t["b"]).backward()
for k in inputs:
    print(f"d o / d {k:2} = {v[k].grad:+.6f}   torch: {t[k].grad.item():+.6f}")

# %% [markdown]
# ## 03.3 · Derive the backward pass of a linear layer (2 points)
#
# A linear layer computes $Y = X W^\top + b$ with $X \in \mathbb{R}^{N\times D_{in}}$,
# $W \in \mathbb{R}^{D_{out}\times D_{in}}$, $b \in \mathbb{R}^{D_{out}}$ (added to every row) and
# $Y \in \mathbb{R}^{N\times D_{out}}$. You are given the upstream gradient
# $dY = \partial L/\partial Y$, of shape $N\times D_{out}$. Derive $dX$, $dW$ and $db$, the
# gradients of $L$ with respect to $X$, $W$ and $b$: start from one entry $Y_{nj}$ and apply the
# chain rule, then write each result with matrix operations. Return them in this order; each has
# the shape of the tensor it belongs to. Use `@`, `.T` and `.sum`, no loops.

# %%
def linear_backward(dy: torch.Tensor, x: torch.Tensor, W: torch.Tensor):
    """dy: (N, D_out), x: (N, D_in), W: (D_out, D_in) -> (dx (N, D_in), dW (D_out, D_in), db (D_out,))."""
    raise NotImplementedError("Exercise 03.3: replace this line with your code")


# %%
check("03.3", linear_backward)

# %% [markdown]
# ## 03.4 · Numerical gradient by central differences (2 points)
#
# For a function $f$ of a tensor $x$ that returns one number, estimate every partial
# derivative with the **central difference** of the lecture,
#
# $$\frac{\partial f}{\partial x_i} \approx \frac{f(x + \varepsilon e_i) - f(x - \varepsilon e_i)}{2\varepsilon},$$
#
# where $e_i$ is 1 at entry $i$ and 0 elsewhere. Return a float64 tensor shaped like `x` (any
# shape, also 0-d), use the `eps` you are given, and leave `x` unchanged. `f` may return a
# one-element tensor or a Python float. You will need this function in 03.6.

# %%
def numerical_grad(f, x: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Central-difference gradient of the scalar function f at x; x: any shape -> same shape, float64."""
    raise NotImplementedError("Exercise 03.4: replace this line with your code")


# %%
check("03.4", numerical_grad)

# %% [markdown]
# Your numerical gradient against PyTorch's autograd for $f(x) = \sum_i \sin(x_i)\,x_i^2$:

# %%
ngrad = use("03.4", numerical_grad)
x = torch.randn(2, 3, dtype=torch.float64)
xr = x.clone().requires_grad_(True)
(torch.sin(xr) * xr**2).sum().backward()
num = ngrad(lambda z: (torch.sin(z) * z**2).sum(), x)
print("max |numerical - autograd| =", f"{(num - xr.grad).abs().max().item():.2e}")

# %% [markdown]
# ## 03.5 · Derive the backward pass of softmax (2 points)
#
# $y = \operatorname{softmax}(x)$ along `dim`: within every slice along that dimension,
# $y_j = e^{x_j} / \sum_k e^{x_k}$. Given the upstream gradient $dy = \partial L/\partial y$,
# derive $dx = \partial L/\partial x$. Every $y_j$ depends on every $x_i$ of its slice, so start
# from $\partial y_j / \partial x_i$ (two cases: $j = i$ and $j \ne i$), apply the chain rule, and
# simplify until the result needs only `y` and `dy`, not `x`.
#
# Write `softmax_backward(dy, y, dim=-1)`: `dy` and `y` have the same shape (any rank) and the
# result has that shape too. Build no $C\times C$ matrix: elementwise operations and sums suffice.

# %%
def softmax_backward(dy: torch.Tensor, y: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """dy, y = softmax(x, dim): same shape (any) -> dx: same shape."""
    raise NotImplementedError("Exercise 03.5: replace this line with your code")


# %%
check("03.5", softmax_backward)

# %% [markdown]
# Check your softmax backward with your numerical gradient: for
# $L = \sum_j dy_j\,\operatorname{softmax}(x)_j$ the gradient with respect to $x$ is exactly
# `softmax_backward(dy, softmax(x))`.

# %%
sbackward = use("03.5", softmax_backward)
x = torch.randn(3, 4, dtype=torch.float64)
dy = torch.randn(3, 4, dtype=torch.float64)
analytic = sbackward(dy, torch.softmax(x, dim=-1))
num = ngrad(lambda z: (dy * torch.softmax(z, dim=-1)).sum(), x)
print("max |analytic - numerical| =", f"{(analytic - num).abs().max().item():.2e}")

# %% [markdown]
# ## 03.6 · Find and fix the bugs in a backward pass (2 points)
#
# A two-layer network classifies $N$ inputs $X$ $(N\times D)$ into $C$ classes:
#
# $$z = X W_1^\top + b_1, \quad h = \tanh(z) \;(N\times H), \qquad \text{logits} = h W_2^\top + b_2 \;(N\times C),
# \qquad L = \frac1N \sum_{n} -\log \operatorname{softmax}(\text{logits}_n)_{y_n},$$
#
# with integer labels $y$ $(N,)$, $W_1$ $(H\times D)$, $b_1$ $(H,)$, $W_2$ $(C\times H)$ and
# $b_2$ $(C,)$. Someone wrote its backward pass by hand. It runs and every shape is right,
# but **two lines are wrong**. Find them with `ngrad` (your `numerical_grad`, or the reference
# if yours does not pass yet), not by staring: compare each of the four gradients with a
# numerical one, then look at the lines that feed the wrong ones.

# %%
def mlp_loss(X, y, W1, b1, W2, b2):
    """The mean cross-entropy L of the network above (a 0-d tensor)."""
    logits = torch.tanh(X @ W1.T + b1) @ W2.T + b2
    return -torch.log_softmax(logits, dim=1)[torch.arange(len(y)), y].mean()


def mlp_backward_buggy(X, y, W1, b1, W2, b2):
    """(dW1, db1, dW2, db2) of mlp_loss, by hand. Two lines are wrong."""
    z = X @ W1.T + b1  # (N, H)
    h = torch.tanh(z)  # (N, H)
    logits = h @ W2.T + b2  # (N, C)
    p = torch.softmax(logits, dim=1)  # (N, C)
    dlogits = p.clone()
    dlogits[torch.arange(len(y)), y] -= 1.0  # dL/dlogits
    dW2 = dlogits.T @ h  # (C, H)
    db2 = dlogits.sum(dim=0)  # (C,)
    dh = dlogits @ W2  # (N, H)
    dz = dh * (1.0 - z**2)  # through tanh
    dW1 = dz.T @ X  # (H, D)
    db1 = dz.sum(dim=0)  # (H,)
    return dW1, db1, dW2, db2


# A small batch to investigate with; change it as you like (try N = 1 too).
gen = torch.Generator().manual_seed(3)
N, D, H, C = 6, 3, 4, 3
X6 = torch.randn(N, D, generator=gen, dtype=torch.float64)
y6 = torch.randint(0, C, (N,), generator=gen)
params6 = [torch.randn(*s, generator=gen, dtype=torch.float64) for s in ((H, D), (H,), (C, H), (C,))]
for name, g in zip(("dW1", "db1", "dW2", "db2"), mlp_backward_buggy(X6, y6, *params6)):
    print(f"{name}: shape {tuple(g.shape)}")

# %% [markdown]
# Write the corrected function (same signature, same outputs in the same order). Say in a
# sentence, for yourself, what each bug was and why the shapes could not reveal it.

# %%
def mlp_backward(X, y, W1, b1, W2, b2):
    """The corrected backward pass: (dW1 (H, D), db1 (H,), dW2 (C, H), db2 (C,)) of mlp_loss."""
    raise NotImplementedError("Exercise 03.6: replace this line with your code")


# %%
check("03.6", mlp_backward)

# %% [markdown]
# Your corrected gradients (or the reference's) against numerical ones, parameter by parameter:

# %%
fixed = use("03.6", mlp_backward)
for i, (name, g) in enumerate(zip(("dW1", "db1", "dW2", "db2"), fixed(X6, y6, *params6))):
    def loss_of(p, i=i):
        ps = list(params6)
        ps[i] = p
        return mlp_loss(X6, y6, *ps)

    gap = (g - ngrad(loss_of, params6[i])).abs().max().item()
    print(f"{name}: max |analytic - numerical| = {gap:.1e}")
