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
# Five exercises on the backward pass, the pieces the lecture `notebooks/03_backprop.ipynb`
# builds: multiplication and `tanh` for the scalar `Value` with their backward steps, the backward
# pass of a linear layer, a numerical gradient by central differences, and the backward pass of
# softmax. Replace each `raise NotImplementedError(...)` with your code and run the `check(...)`
# cell below it: it compares your function with the course's reference on several inputs, edge
# cases included (a value used twice, a batch of one, a single class), and tells you the first
# mismatch. Later cells use your function if it passes, or the reference otherwise, so the whole
# sheet always runs. Write the operations yourself (plain Python `math` and tensor operations
# such as `@`, `.T`, `.sum`), not with `Value`'s own operators, `torch.autograd` or
# `course_lib.layers`. All tensors are `float64`.

# %% tags=["setup"]
# Setup. On Colab this installs course_lib from the course repository (Colab keeps its own
# torch and ipywidgets); everywhere else it does nothing.
import sys

if "google.colab" in sys.modules:
    get_ipython().run_line_magic("pip", "install --quiet git+https://github.com/nn-from-scratch/course")

# %%
import math

import torch

from course_lib.check import check, use
from course_lib.device import seed_everything
from course_lib.engine import Value

seed_everything(0)

# %% [markdown]
# ## 03.1 · Multiplication of two Values (2 points)
#
# A `Value` stores `data`, `grad`, its inputs `_prev`, an operation name `_op` and a function
# `_backward` that applies the chain rule for that operation. For $c = a\,b$ the local
# derivatives are $\partial c/\partial a = b$ and $\partial c/\partial b = a$, so the backward
# step is
#
# $$\text{grad}(a) \mathrel{+}= b \cdot \text{grad}(c), \qquad \text{grad}(b) \mathrel{+}= a \cdot \text{grad}(c).$$
#
# Write `value_mul(a, b)` **without** using `Value`'s own `*`: create the output with
# `Value(data, (a, b), "*")`, define its `_backward` and return it. Use `+=`: in `x * x` both
# inputs are the same object and both contributions must be added. (The check builds
# `loss = 1.5 * out + a` around your operation and compares `out.data`, `a.grad`, `b.grad`.)

# %%
def value_mul(a: Value, b: Value) -> Value:
    """Return the Value a * b whose _backward adds b * out.grad to a.grad and a * out.grad to b.grad."""
    ### BEGIN SOLUTION 03.1
    out = Value(a.data * b.data, (a, b), "*")

    def _backward() -> None:
        a.grad += b.data * out.grad
        b.grad += a.data * out.grad

    out._backward = _backward
    return out
    ### END SOLUTION


# %%
check("03.1", value_mul)

# %% [markdown]
# With your operation, $\frac{d}{dx}(x \cdot x) = 2x$ comes out by itself, because both
# contributions are added:

# %%
mul = use("03.1", value_mul)
x = Value(3.0, label="x")
y = mul(x, x)
y.backward()
print(f"y = x * x = {y.data}, dy/dx = {x.grad} (2x = {2 * x.data})")

# %% [markdown]
# ## 03.2 · tanh of a Value (2 points)
#
# $t = \tanh(a)$ has the local derivative $\frac{dt}{da} = 1 - \tanh^2(a) = 1 - t^2$: written
# with the **output** $t$, which the forward pass has already computed. Write `value_tanh(a)`
# returning a new `Value` with inputs `(a,)`, op `"tanh"` and the right `_backward`.
# (The check uses `loss = -2 * t + a`, so `out.grad` is not 1 and `a` is used twice.)

# %%
def value_tanh(a: Value) -> Value:
    """Return the Value tanh(a) whose _backward adds (1 - tanh(a)**2) * out.grad to a.grad."""
    ### BEGIN SOLUTION 03.2
    t = math.tanh(a.data)
    out = Value(t, (a,), "tanh")

    def _backward() -> None:
        a.grad += (1.0 - t * t) * out.grad

    out._backward = _backward
    return out
    ### END SOLUTION


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
# ## 03.3 · The backward pass of a linear layer (2 points)
#
# A linear layer computes $Y = X W^\top + b$ with $X \in \mathbb{R}^{N\times D_{in}}$,
# $W \in \mathbb{R}^{D_{out}\times D_{in}}$, $b \in \mathbb{R}^{D_{out}}$ and
# $Y \in \mathbb{R}^{N\times D_{out}}$. Given the upstream gradient
# $dY = \partial L/\partial Y \in \mathbb{R}^{N\times D_{out}}$, return
#
# $$dX = dY\,W \;(N\times D_{in}), \qquad dW = dY^\top X \;(D_{out}\times D_{in}), \qquad db = \textstyle\sum_{n} dY_{n,:} \;(D_{out}).$$
#
# Each gradient has the shape of the tensor it belongs to: a quick first test of any answer.

# %%
def linear_backward(dy: torch.Tensor, x: torch.Tensor, W: torch.Tensor):
    """dy: (N, D_out), x: (N, D_in), W: (D_out, D_in) -> (dx (N, D_in), dW (D_out, D_in), db (D_out,))."""
    ### BEGIN SOLUTION 03.3
    dx = dy @ W
    dW = dy.T @ x
    db = dy.sum(dim=0)
    return dx, dW, db
    ### END SOLUTION


# %%
check("03.3", linear_backward)

# %% [markdown]
# ## 03.4 · Numerical gradient by central differences (2 points)
#
# For a function $f$ of a tensor $x$ that returns one number, estimate every partial
# derivative with the **central difference**
#
# $$\frac{\partial f}{\partial x_i} \approx \frac{f(x + \varepsilon e_i) - f(x - \varepsilon e_i)}{2\varepsilon},$$
#
# where $e_i$ is 1 at entry $i$ and 0 elsewhere. Return a float64 tensor shaped like `x`, use
# the `eps` you are given, and leave `x` unchanged (work on a copy). `f` may return a
# one-element tensor or a Python float: `float(f(...))` handles both. Hint: `x.reshape(-1)`
# of a contiguous copy is a view, so writing into it changes the copy.

# %%
def numerical_grad(f, x: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Central-difference gradient of the scalar function f at x; x: any shape -> same shape, float64."""
    ### BEGIN SOLUTION 03.4
    x = x.detach().to(torch.float64).clone()
    grad = torch.zeros_like(x)
    flat, gflat = x.reshape(-1), grad.reshape(-1)
    for i in range(flat.numel()):
        old = flat[i].item()
        flat[i] = old + eps
        f_plus = float(f(x))
        flat[i] = old - eps
        f_minus = float(f(x))
        flat[i] = old
        gflat[i] = (f_plus - f_minus) / (2 * eps)
    return grad
    ### END SOLUTION


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
# ## 03.5 · The backward pass of softmax (2 points)
#
# $y = \operatorname{softmax}(x)$ along `dim`: $y_j = e^{x_j} / \sum_k e^{x_k}$. Each output
# depends on every input, with Jacobian $\partial y_j/\partial x_i = y_j(\delta_{ij} - y_i)$.
# Multiplying by the upstream gradient $dy$ gives, for every slice along `dim`,
#
# $$dx_i = \sum_j dy_j\, y_j (\delta_{ij} - y_i) = y_i \Big(dy_i - \sum_j dy_j\, y_j\Big).$$
#
# Write `softmax_backward(dy, y, dim=-1)` from the **output** `y` (same shape as `dy`).

# %%
def softmax_backward(dy: torch.Tensor, y: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """dy, y = softmax(x, dim): same shape (any) -> dx: same shape."""
    ### BEGIN SOLUTION 03.5
    return y * (dy - (dy * y).sum(dim=dim, keepdim=True))
    ### END SOLUTION


# %%
check("03.5", softmax_backward)

# %% [markdown]
# Finally, check your softmax backward with your numerical gradient: for
# $L = \sum_j dy_j\,\operatorname{softmax}(x)_j$ the gradient with respect to $x$ is exactly
# `softmax_backward(dy, softmax(x))`.

# %%
sbackward = use("03.5", softmax_backward)
x = torch.randn(3, 4, dtype=torch.float64)
dy = torch.randn(3, 4, dtype=torch.float64)
analytic = sbackward(dy, torch.softmax(x, dim=-1))
num = ngrad(lambda z: (dy * torch.softmax(z, dim=-1)).sum(), x)
print("max |analytic - numerical| =", f"{(analytic - num).abs().max().item():.2e}")
