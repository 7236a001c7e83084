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
# # 03 · Backpropagation
#
# <a href="https://colab.research.google.com/github/nn-from-scratch/course/blob/main/notebooks/03_backprop.ipynb" target="_parent"><img src="https://colab.research.google.com/assets/colab-badge.svg" alt="Open In Colab"/></a>
#
# Training a network means nudging each of its parameters in the direction that lowers the loss,
# so we need the derivative of one number, the loss $L$, with respect to every parameter, often
# millions of them. Perturbing the parameters one at a time would cost two forward passes *per
# parameter*. **Backpropagation** gets all the derivatives at once, in one backward sweep that
# costs about as much as the forward pass: it applies the chain rule to the graph of elementary
# operations the forward pass went through, from the loss back to the inputs. In this chapter we
# write a complete automatic-differentiation engine for scalars in about a hundred lines, watch
# it work node by node, then derive the backward pass of a layer of tensors by hand and check it
# against PyTorch's autograd and against finite differences.

# %% tags=["setup"]
# Setup. On Colab this installs course_lib from the course repository (Colab keeps its own
# torch and ipywidgets); everywhere else it does nothing.
import sys

if "google.colab" in sys.modules:
    get_ipython().run_line_magic("pip", "install --quiet git+https://github.com/nn-from-scratch/course")

# %%
import math

import matplotlib.pyplot as plt
import torch

from course_lib import layers
from course_lib.compare import compare
from course_lib.device import seed_everything
from course_lib.engine import Value, topological_order, zero_grad
from course_lib.gradcheck import GradcheckError, gradcheck, numerical_grad
from course_lib.graph import draw_graph
from course_lib.show import show_source

gen = seed_everything(0)
torch.set_printoptions(precision=4, sci_mode=False)
DT = torch.float64  # we compare with PyTorch in float64: agreement to ~1e-15 means "correct"

# %% [markdown]
# ## 1. Computational graphs and the chain rule
#
# Any formula a computer evaluates is a sequence of elementary operations. Take one neuron
# (chapter 01) with two inputs:
#
# $$o = \tanh(n), \qquad n = s + b, \qquad s = x_1 w_1 + x_2 w_2 .$$
#
# Drawn as a **computational graph**, every intermediate number ($x_1 w_1$, $x_2 w_2$, $s$, $n$,
# $o$) is a node whose arrows come from the inputs of the operation that made it. The inputs and
# parameters ($x_1, w_1, x_2, w_2, b$) are the **leaves**.
#
# **The chain rule.** If $L$ depends on a node $v$ only through one node $u$ that uses it, then
#
# $$\frac{\partial L}{\partial v} = \frac{\partial L}{\partial u}\,\frac{\partial u}{\partial v}.$$
#
# If $v$ is used by several nodes $u_1, \dots, u_k$ (its **consumers**), a small change of $v$
# reaches $L$ along every one of them, and the contributions add up (the multivariable chain rule):
#
# $$\frac{\partial L}{\partial v} = \sum_{c=1}^{k} \frac{\partial L}{\partial u_c}\,\frac{\partial u_c}{\partial v}.$$
#
# Write $\bar v = \partial L / \partial v$ for the **gradient** of node $v$ (the `grad` of a
# `Value` below). Then $\bar v = \sum_c \bar u_c\, \partial u_c / \partial v$: the gradient of a
# node is the gradients of its consumers times the **local derivatives** $\partial u_c/\partial v$.
# A local derivative depends only on one operation and on numbers the forward pass has already
# computed:
#
# | operation $u$ | local derivative(s) |
# |---|---|
# | $a + b$ | $\partial u/\partial a = 1,\ \partial u/\partial b = 1$ |
# | $a \cdot b$ | $\partial u/\partial a = b,\ \partial u/\partial b = a$ |
# | $a^k$ ($k$ a number) | $k\,a^{k-1}$ |
# | $e^a$ | $e^a = u$ |
# | $\log a$ ($a > 0$) | $1/a$ |
# | $\tanh a$ | $1 - \tanh^2 a = 1 - u^2$ |
# | $\operatorname{relu}(a) = \max(0, a)$ | $1$ if $a > 0$, else $0$ |
# | $\sigma(a) = 1/(1+e^{-a})$ | $\sigma(a)\,(1 - \sigma(a)) = u(1-u)$ |
#
# **The backward pass.** Start with $\bar L = \partial L/\partial L = 1$ and visit the nodes in
# **reverse topological order**, outputs before inputs, so that every consumer of $v$ is finished
# before $v$ itself. Each node's local derivatives are used exactly once, so the whole backward
# pass costs a small constant times the forward pass, however many leaves there are. This is
# **reverse-mode automatic differentiation**, first described by Linnainmaa (in his 1970 master's
# thesis, in Finnish; in English in 1976). Applied to neural networks it is called
# **backpropagation**: Werbos (1982) applied it to them, and Rumelhart, Hinton and Williams (1986)
# made it widely known by showing that it lets the hidden units of a network learn useful
# internal representations.
#
# For the neuron: $\bar o = 1$; $\bar n = \bar o\,(1 - o^2)$; an addition passes its gradient on
# unchanged, so $\bar s = \bar b = \bar n$ and $\overline{x_1 w_1} = \overline{x_2 w_2} = \bar s$;
# a product sends each input the *other* factor: $\bar w_1 = \overline{x_1 w_1}\,x_1$ and
# $\bar x_1 = \overline{x_1 w_1}\,w_1$. By hand, with numbers:

# %%
x1, w1, x2, w2, b = 2.0, -1.5, 0.5, 1.0, 3.2
s = x1 * w1 + x2 * w2
n = s + b
o = math.tanh(n)
n_bar = 1.0 * (1 - o**2)  # o_bar = 1
s_bar = b_bar = n_bar
print(f"forward:  s = {s:.4f}, n = {n:.4f}, o = {o:.4f}")
print(f"backward: n_bar = {n_bar:.4f}, b_bar = {b_bar:.4f}, w1_bar = {s_bar * x1:.4f}, x1_bar = {s_bar * w1:.4f}, "
      f"w2_bar = {s_bar * x2:.4f}, x2_bar = {s_bar * w2:.4f}")

# %% [markdown]
# ## 2. A scalar autograd engine
#
# `course_lib.engine.Value` does this bookkeeping automatically, in the style of Andrej
# Karpathy's *micrograd*. A `Value` holds a number `data`, its gradient `grad`, the values it was
# computed from (`_prev`), the name of the operation (`_op`) and a function `_backward` that
# applies the chain rule for that one operation. Here are addition and multiplication: the
# forward result is computed at once, and `_backward` is stored for later.

# %%
show_source(Value.__add__, Value.__mul__)

# %% [markdown]
# Note the `+=`: `_backward` **adds** its contribution $\bar u \cdot \partial u/\partial v$ to
# `v.grad`, which implements the sum over consumers. Subtraction and division need no backward
# code of their own: $a - b = a + (-1)\cdot b$ and $a / b = a \cdot b^{-1}$, built from `+`, `*`
# and `**`, whose backward passes already exist. Division only adds a guard: a divisor of 0 (or
# one so small that $b^{-1}$ overflows) raises a clear `ZeroDivisionError` instead of the inf or
# NaN PyTorch would return.

# %%
show_source(Value.__pow__, Value.__sub__, Value.__truediv__)

# %% [markdown]
# The one-input functions share a helper, `_unary`, that takes the output and its local
# derivative, both computed in the forward pass:

# %%
show_source(Value._unary, Value.tanh, Value.sigmoid)

# %% [markdown]
# `backward()` sorts the graph so that each value comes after all its inputs, seeds
# $\bar L = 1$ and calls every node's `_backward` in reverse order. The sort is a depth-first
# search with an explicit stack instead of recursion, so a graph that is thousands of operations
# deep does not hit Python's recursion limit (about 1,000 nested calls).

# %%
show_source(topological_order, Value.backward)

# %% [markdown]
# Now the neuron with `Value`s. After `o.backward()`, every leaf's `grad` is
# $\partial o / \partial \text{leaf}$, the same numbers as by hand above:

# %%
def neuron(x1, w1, x2, w2, b):
    """o = tanh(x1*w1 + x2*w2 + b); works for Values and for torch tensors alike."""
    return (x1 * w1 + x2 * w2 + b).tanh()


names = ["x1", "w1", "x2", "w2", "b"]
numbers = [2.0, -1.5, 0.5, 1.0, 3.2]
leaves = [Value(v, label=name) for v, name in zip(numbers, names)]
o = neuron(*leaves)
o.label = "o"
o.backward()
for leaf in leaves:
    print(leaf)

# %% [markdown]
# `draw_graph` (`course_lib.graph`, matplotlib only) draws the graph: each box shows a value
# and its gradient, each circle an operation. Inputs are on the left, the output on the right.

# %%
draw_graph(o);

# %% [markdown]
# **Check against PyTorch.** The same function on float64 tensors with `requires_grad=True`;
# PyTorch's autograd records the same kind of graph and `backward()` fills each leaf's `.grad`.

# %%
t_leaves = [torch.tensor(v, dtype=DT, requires_grad=True) for v in numbers]
t_o = neuron(*t_leaves)
t_o.backward()
compare("neuron output o", torch.tensor(o.data, dtype=DT), t_o.detach())
compare("d o / d leaves", torch.tensor([v.grad for v in leaves], dtype=DT), torch.stack([t.grad for t in t_leaves]));

# %% [markdown]
# A less friendly expression uses every operation of the engine (division, powers, `exp`, `log`,
# `sigmoid`, `relu`) and reuses `a` and `c` several times:
#
# $$L = \frac{\log(1 + e^{ab})}{c} + \sigma(a - c)\, a^2 + \operatorname{relu}(b \cdot c) - \frac{2}{c^3}.$$

# %%
def messy(a, b, c):
    return (1 + (a * b).exp()).log() / c + (a - c).sigmoid() * a**2 + (b * c).relu() - 2 / c**3


abc = [0.7, -1.3, 2.1]
vals = [Value(v) for v in abc]
L = messy(*vals)
L.backward()
t_abc = [torch.tensor(v, dtype=DT, requires_grad=True) for v in abc]
t_L = messy(*t_abc)
t_L.backward()
compare("messy L", torch.tensor(L.data, dtype=DT), t_L.detach())
compare("messy dL/d(a, b, c)", torch.tensor([v.grad for v in vals], dtype=DT), torch.stack([t.grad for t in t_abc]));

# %% [markdown]
# And a deep graph: 5,000 repeated multiplications, far deeper than a recursive sort could
# handle. $y = x \cdot 0.9998^{5000}$, so $dy/dx = 0.9998^{5000} \approx e^{-1}$.

# %%
x = Value(1.0)
y = x
for _ in range(5_000):
    y = y * 0.9998
y.backward()
print(f"{len(topological_order(y))} nodes; dy/dx = {x.grad:.6f}, 0.9998**5000 = {0.9998**5000:.6f}")
compare("deep chain dy/dx", torch.tensor(x.grad, dtype=DT), torch.tensor(0.9998**5000, dtype=DT), atol=1e-10);

# %% [markdown]
# ## 3. Watch the backward pass
#
# Move the **backward step** slider. Step 1 seeds the output's gradient with 1; every further
# step finishes one node in reverse topological order (orange), shows the local derivative(s)
# and the chain-rule product that give its gradient, and outlines the consumers it came from
# (blue). Nodes not reached yet show `grad ?`. Choose the second expression to see a value used
# twice: `x` feeds both `x·y` and `q + x`, so its gradient is a **sum** of two products, and
# `f·f` uses `f` for both factors, so its local derivative is $2f$.

# %%
from course_lib.widgets.backprop import BackpropExplorer

explorer = BackpropExplorer()
explorer

# %% [markdown]
# The explorer's state is plain Python. For instance, after all steps, the gradient in each box:

# %%
explorer.set_state(step=len(explorer.steps))
print(explorer.shown_grads)
explorer.set_state(step=0)

# %% [markdown]
# ## 4. Gradients accumulate: `+=` and `zero_grad`
#
# Because every `_backward` *adds* to `grad`, a value used twice collects both contributions:
# for $y = x \cdot x$ the two inputs of the product are the same object and
# $dy/dx = x + x = 2x$. Had `_backward` written `grad = ...`, the second contribution would
# overwrite the first and the result would be $x$, silently wrong.

# %%
x = Value(3.0)
y = x * x
y.backward()
print(f"y = x*x at x = 3: dy/dx = {x.grad} (2x = 6)")

# %% [markdown]
# The same addition also runs *across* calls: a leaf's `grad` is never reset by `backward()`
# (only the inner nodes are), exactly like PyTorch's `.grad`. Calling `backward()` twice doubles
# the leaves' gradients. This is deliberate (PyTorch uses it to sum gradients over several small
# batches before one update), but it means a training loop must reset the gradients before each
# backward pass: `zero_grad(params)` here, `optimizer.zero_grad()` in PyTorch.

# %%
a, w = Value(1.5), Value(-2.0)
loss = (a * w + a).tanh()
loss.backward()
first = w.grad
loss.backward()  # forgot to reset: the new gradient is added to the old one
print(f"after one backward: dL/dw = {first:.6f}; after two: {w.grad:.6f}")

ta, tw = torch.tensor(1.5, dtype=DT, requires_grad=True), torch.tensor(-2.0, dtype=DT, requires_grad=True)
t_loss = torch.tanh(ta * tw + ta)
t_loss.backward(retain_graph=True)
t_loss.backward()
compare("two backward calls, like torch", torch.tensor([a.grad, w.grad], dtype=DT), torch.stack([ta.grad, tw.grad]))

zero_grad([a, w])
loss.backward()
print(f"after zero_grad and one backward: dL/dw = {w.grad:.6f}")

# %% [markdown]
# ## 5. From scalars to tensors: a linear layer and a ReLU by hand
#
# A scalar graph of a real network would have millions of nodes. Instead, frameworks treat a
# whole matrix operation as one node, with a backward rule written in matrix form. Take a batch
# of $N$ inputs $X \in \mathbb{R}^{N\times D_{in}}$, a linear layer with
# $W \in \mathbb{R}^{D_{out}\times D_{in}}$ and $b \in \mathbb{R}^{D_{out}}$, a ReLU and a
# squared-error loss against targets $T \in \mathbb{R}^{N\times D_{out}}$:
#
# $$Z = X W^\top + b \;(N\times D_{out}), \qquad A = \operatorname{relu}(Z) \;(N\times D_{out}), \qquad L = \tfrac12 \sum_{n,j} (A_{nj} - T_{nj})^2 .$$
#
# Write $dA = \partial L/\partial A$ and so on; each has the shape of its tensor. Backwards:
#
# * loss: $dA = A - T$ $\;(N\times D_{out})$;
# * ReLU, elementwise: $dZ = dA \odot \mathbf{1}[Z > 0]$ $\;(N\times D_{out})$;
# * linear layer. From $Z_{nj} = \sum_k X_{nk} W_{jk} + b_j$, the chain rule sums over every
#   $Z_{nj}$ that an entry influences:
#
# $$\frac{\partial L}{\partial W_{jk}} = \sum_{n} dZ_{nj}\, X_{nk} \;\Rightarrow\; dW = dZ^\top X \;(D_{out}\times D_{in}),$$
# $$\frac{\partial L}{\partial X_{nk}} = \sum_{j} dZ_{nj}\, W_{jk} \;\Rightarrow\; dX = dZ\, W \;(N\times D_{in}),$$
# $$\frac{\partial L}{\partial b_{j}} = \sum_{n} dZ_{nj} \;\Rightarrow\; db = \textstyle\sum_n dZ_{n,:} \;(D_{out}).$$
#
# A useful sanity check: the only way to combine $dZ$ $(N\times D_{out})$ and $X$
# $(N\times D_{in})$ into the shape of $W$ $(D_{out}\times D_{in})$ is $dZ^\top X$; and $b$ is
# added to every row, so its gradient sums over the batch. The functions in `course_lib.layers`
# (chapter 01) implement exactly these rules:

# %%
show_source(layers.linear_backward, layers.relu_backward)

# %%
N, D_in, D_out = 4, 3, 5
X = torch.randn(N, D_in, generator=gen, dtype=DT)
W = torch.randn(D_out, D_in, generator=gen, dtype=DT)
bias = torch.randn(D_out, generator=gen, dtype=DT)
T = torch.randn(N, D_out, generator=gen, dtype=DT)


def layer_loss(X, W, bias):
    """L = 1/2 * sum((relu(X W^T + b) - T)^2), a scalar."""
    A = layers.relu(layers.linear_forward(X, W, bias))
    return 0.5 * ((A - T) ** 2).sum()


# forward, keeping what the backward pass needs
Z = layers.linear_forward(X, W, bias)
A = layers.relu(Z)
# backward, by hand
dA = A - T
dZ = layers.relu_backward(dA, Z)
dX, dW, db = layers.linear_backward(dZ, X, W)
print("shapes: dX", tuple(dX.shape), "dW", tuple(dW.shape), "db", tuple(db.shape))

# %% [markdown]
# The same loss through PyTorch's autograd:

# %%
Xt, Wt, bt = (t.clone().requires_grad_(True) for t in (X, W, bias))
t_loss = 0.5 * ((torch.relu(Xt @ Wt.T + bt) - T) ** 2).sum()
t_loss.backward()
compare("dL/dX", dX, Xt.grad)
compare("dL/dW", dW, Wt.grad)
compare("dL/db", db, bt.grad);

# %% [markdown]
# ## 6. Checking gradients with finite differences
#
# Autograd is one reference; the *definition* of the derivative is another, which needs no
# library at all. For a scalar function $f$ of a tensor $x$, nudge one entry at a time by a small
# $\varepsilon$ in both directions (the **central difference**):
#
# $$\frac{\partial f}{\partial x_i} \approx \frac{f(x + \varepsilon e_i) - f(x - \varepsilon e_i)}{2\varepsilon},$$
#
# where $e_i$ is 1 at entry $i$ and 0 elsewhere. A Taylor expansion shows its error shrinks like
# $\varepsilon^2$, against only $\varepsilon$ for the one-sided $\big(f(x + \varepsilon e_i) - f(x)\big)/\varepsilon$.
# It needs two evaluations of $f$ per entry: far too slow for training, just right for a test.

# %%
show_source(numerical_grad)

# %% [markdown]
# `gradcheck` compares analytic gradients with these estimates, entry by entry: it fails unless
# $|a_i - n_i| \le \text{atol} + \text{rtol}\,|n_i|$ everywhere ($a$ analytic, $n$ numerical)
# and returns the largest relative error $|a_i - n_i| / \max(|a_i|, |n_i|, \text{atol})$.
# Our hand-written gradients of the layer pass:

# %%
err = gradcheck(layer_loss, [X, W, bias], [dX, dW, db])
print(f"gradcheck: max relative error {err:.2e}")
assert err < 1e-6, "in float64 the hand-written and the numerical gradients agree to far better than 1e-6"

# %% [markdown]
# And it catches a bug. A classic one: forgetting the ReLU's mask, i.e. using $dZ = dA$. Where
# some $Z_{nj} < 0$, that gradient is wrong, and `gradcheck` says where:

# %%
wrong = layers.linear_backward(dA, X, W)  # the bug: dA instead of dZ = dA * [Z > 0]
try:
    gradcheck(layer_loss, [X, W, bias], list(wrong))
    raise RuntimeError("gradcheck should have rejected the wrong gradient")
except GradcheckError as problem:
    print(problem)

# %% [markdown]
# **Choosing $\varepsilon$.** Smaller is not always better: the two values of $f$ are rounded to
# about 16 significant digits in float64, and dividing their difference by $2\varepsilon$
# magnifies that rounding error like $10^{-16}/\varepsilon$. The total error is smallest in
# between. Below, for $f(x) = \sin(3x)$ at $x = 0.7$: the central difference gets down to about
# $10^{-10}$ (near $\varepsilon = 10^{-6}$), the one-sided one only to about $10^{-8}$ (near
# $\varepsilon = 10^{-8}$). This is why `numerical_grad` uses central differences and
# $\varepsilon = 10^{-6}$ by default, and why `gradcheck` allows a tolerance of about $10^{-6}$.

# %%
f = lambda z: torch.sin(3 * z).sum()  # noqa: E731
x0 = torch.tensor([0.7], dtype=DT)
exact = 3 * math.cos(3 * 0.7)
epsilons = [10.0**-k for k in range(1, 13)]
central = [abs(numerical_grad(f, x0, eps=e).item() - exact) for e in epsilons]
forward = [abs((f(x0 + e).item() - f(x0).item()) / e - exact) for e in epsilons]
fig, ax = plt.subplots(figsize=(6, 3.4))
ax.loglog(epsilons, central, "o-", label="central  (f(x+ε) − f(x−ε)) / 2ε")
ax.loglog(epsilons, forward, "s--", label="one-sided  (f(x+ε) − f(x)) / ε")
ax.set_xlabel("ε")
ax.set_ylabel("|error|")
ax.set_title("Finite-difference error for d/dx sin(3x) at x = 0.7")
ax.legend(fontsize=8)
ax.grid(True, which="major", alpha=0.3)
plt.show()
print(f"best central error {min(central):.1e} at eps = {epsilons[central.index(min(central))]:.0e}; "
      f"best one-sided error {min(forward):.1e} at eps = {epsilons[forward.index(min(forward))]:.0e}")

# %% [markdown]
# ## Summary
#
# * A computation is a **graph** of elementary operations; each operation knows its **local
#   derivatives** from numbers the forward pass already computed.
# * The **chain rule** gives every node's gradient as the sum over its consumers of
#   (consumer's gradient) × (local derivative): $\bar v = \sum_c \bar u_c\, \partial u_c/\partial v$.
# * **Backpropagation** seeds $\bar L = 1$ and visits the nodes in reverse topological order, so
#   all gradients cost about one extra pass over the graph. `course_lib.engine.Value` does it for
#   scalars in about a hundred lines, with an explicit stack so deep graphs work.
# * Gradients are **accumulated** (`+=`): that makes reused values correct, and it is why leaves
#   keep summing across `backward()` calls until they are reset with `zero_grad`.
# * For tensors, a layer is one node with a matrix backward rule: for $Z = XW^\top + b$,
#   $dX = dZ\,W$, $dW = dZ^\top X$, $db = \sum_n dZ_{n,:}$. Each gradient has its tensor's shape.
# * Check hand-written gradients against autograd and against **central differences**
#   (`gradcheck`), in float64.
#
# ## Exercises
#
# Open `exercises/03_backprop.ipynb`: write multiplication for `Value`, derive the backward steps
# of `tanh`, of a linear layer and of softmax yourself (the sheet does not print them), write a
# numerical gradient, and use it to find and fix the bugs in a hand-written backward pass. Each
# comes with an instant check that names the typical mistake it recognises.
#
# ## References
#
# * S. Linnainmaa. *The representation of the cumulative rounding error of an algorithm as a Taylor
#   expansion of the local rounding errors.* Master's thesis (in Finnish), University of Helsinki
#   (1970). In English: *Taylor expansion of the accumulated rounding error.* BIT Numerical
#   Mathematics 16(2), 146–160 (1976), doi:10.1007/BF01931367.
# * P. J. Werbos. *Applications of advances in nonlinear sensitivity analysis.* In *System Modeling
#   and Optimization* (Proceedings of the 10th IFIP Conference, New York, 1981), Springer, 762–770
#   (1982), doi:10.1007/BFb0006203.
# * D. E. Rumelhart, G. E. Hinton, R. J. Williams. *Learning representations by back-propagating
#   errors.* Nature 323, 533–536 (1986), doi:10.1038/323533a0.
# * J. Schmidhuber. *Who invented backpropagation?* (2014, updated 2020), a history with the earlier
#   precursors: https://people.idsia.ch/~juergen/who-invented-backpropagation.html
# * A. G. Baydin, B. A. Pearlmutter, A. A. Radul, J. M. Siskind. *Automatic differentiation in
#   machine learning: a survey.* Journal of Machine Learning Research 18(153), 1–43 (2018).
# * A. Karpathy. *micrograd*, a tiny scalar autograd engine: https://github.com/karpathy/micrograd

# %%
print(explorer.self_check())
