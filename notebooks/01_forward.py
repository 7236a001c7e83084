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
# # 01 · Forward propagation: from one neuron to an MLP
#
# <a href="https://colab.research.google.com/github/nn-from-scratch/course/blob/main/notebooks/01_forward.ipynb" target="_parent"><img src="https://colab.research.google.com/assets/colab-badge.svg" alt="Open In Colab"/></a>
#
# A neural network is a function: numbers go in, numbers come out. This chapter builds that
# function from the bottom up. A **neuron** computes a weighted sum of its inputs and bends it with
# an **activation function**; a **layer** is many neurons side by side, which turns out to be one
# matrix product; a **multi-layer perceptron** (MLP) is layers one after another; and a **softmax**
# at the end turns the last layer's scores into class probabilities. Computing the output from the
# input, layer by layer, is called **forward propagation**. Every piece is written from scratch in
# `course_lib.layers` and checked against PyTorch. Learning the weights comes later (chapters 02–04):
# here they are given.

# %% tags=["setup"]
# Setup. On Colab this installs course_lib from the course repository (Colab keeps its own
# torch and ipywidgets); everywhere else it does nothing.
import sys

if "google.colab" in sys.modules:
    get_ipython().run_line_magic("pip", "install --quiet git+https://github.com/nn-from-scratch/course")

# %%
import torch

from course_lib import layers
from course_lib.compare import compare
from course_lib.device import seed_everything
from course_lib.show import show_source
from course_lib.validate import ShapeError

gen = seed_everything(0)
torch.set_default_dtype(torch.float64)  # compare with PyTorch at full precision

# %% [markdown]
# ## 1. One neuron
#
# A neuron receives $D$ inputs $x \in \mathbb{R}^{D}$, multiplies each by a **weight**
# $w \in \mathbb{R}^{D}$, adds a **bias** $b \in \mathbb{R}$ and passes the result, the
# *pre-activation* $z$, through an activation function $\varphi$:
#
# $$z = \sum_{k=1}^{D} w_k x_k + b = w^\top x + b \in \mathbb{R}, \qquad a = \varphi(z).$$
#
# The weights say how much each input matters and with which sign; the bias shifts the threshold.
# This is the artificial neuron of McCulloch and Pitts (1943) and of Rosenblatt's perceptron
# (1958), which used a step function for $\varphi$. With three inputs:

# %%
x = torch.tensor([1.0, 2.0, -1.0])  # D = 3 inputs
w = torch.tensor([0.5, -0.25, 1.0])  # one weight per input
b = torch.tensor(0.1)

z = (w * x).sum() + b  # 0.5*1 - 0.25*2 + 1*(-1) + 0.1
print("z =", z.item(), "| the same as w @ x + b:", (w @ x + b).item())
print("a = ReLU(z) =", layers.relu(z).item(), "| a = sigmoid(z) =", round(layers.sigmoid(z).item(), 4))

# %% [markdown]
# ## 2. A layer is a matrix product
#
# A layer has $D_{out}$ neurons that all see the same $D_{in}$ inputs. Stack their weight vectors
# as the **rows** of a matrix $W \in \mathbb{R}^{D_{out} \times D_{in}}$ (this is how PyTorch's
# `nn.Linear` stores them) and their biases in $b \in \mathbb{R}^{D_{out}}$. For one input
# $x \in \mathbb{R}^{D_{in}}$ all neurons at once compute $z = W x + b \in \mathbb{R}^{D_{out}}$.
#
# We usually process a **batch** of $N$ inputs at once, stored as the rows of
# $X \in \mathbb{R}^{N \times D_{in}}$. Transposing $z = Wx + b$ for every row gives
#
# $$Y = X W^\top + b, \qquad \underbrace{(N \times D_{in})}_{X} \cdot \underbrace{(D_{in} \times D_{out})}_{W^\top} \to N \times D_{out},
# \qquad Y_{nj} = \sum_{k=1}^{D_{in}} X_{nk} W_{jk} + b_j ,$$
#
# where $b$ is added to every row (broadcasting). One matrix product replaces $N \cdot D_{out}$
# separate neurons, and that is why neural networks run fast on hardware made for matrix products.

# %%
show_source(layers.linear_forward)

# %% [markdown]
# The loop "neuron by neuron, example by example" and the matrix product give the same numbers:

# %%
X = torch.randn(5, 3, generator=gen)  # N = 5 examples, D_in = 3
W = torch.randn(4, 3, generator=gen)  # D_out = 4 neurons
b = torch.randn(4, generator=gen)

Y = layers.linear_forward(X, W, b)
Y_loop = torch.stack([torch.stack([W[j] @ X[n] + b[j] for j in range(4)]) for n in range(5)])
print("Y:", tuple(Y.shape), "| max |matrix - loop| =", float((Y - Y_loop).abs().max()))
assert torch.allclose(Y, Y_loop, rtol=1e-10, atol=1e-10), "the matrix product and the loop agree up to float64 rounding"

# %% [markdown]
# PyTorch's `nn.Linear(D_in, D_out)` holds exactly such a `weight` $(D_{out}, D_{in})$ and `bias`
# $(D_{out},)$. Loaded with our $W$ and $b$ it must produce our $Y$:

# %%
linear = torch.nn.Linear(3, 4)
with torch.no_grad():
    linear.weight.copy_(W)
    linear.bias.copy_(b)
compare("linear_forward vs nn.Linear", Y, linear(X).detach());

# %% [markdown]
# Shapes are where most bugs live, so every `course_lib` function checks its inputs. Passing the
# weights the other way round, $(D_{in}, D_{out})$, is reported with both shapes:

# %%
try:
    layers.linear_forward(X, W.T, b)
except ShapeError as err:
    print("ShapeError:", err)

# %% [markdown]
# ## 3. Activation functions
#
# Why not stop at linear layers? Because two linear layers in a row are still **one** linear layer:
#
# $$(X W_1^\top + b_1) W_2^\top + b_2 = X (W_2 W_1)^\top + (W_2 b_1 + b_2).$$
#
# However many we stack, the network could only draw straight decision boundaries. A nonlinear
# activation between the layers breaks this collapse. First the collapse itself, in numbers:

# %%
W1, b1 = torch.randn(4, 3, generator=gen), torch.randn(4, generator=gen)
W2, b2 = torch.randn(2, 4, generator=gen), torch.randn(2, generator=gen)
two_layers = layers.linear_forward(layers.linear_forward(X, W1, b1), W2, b2)
one_layer = layers.linear_forward(X, W2 @ W1, W2 @ b1 + b2)
print("max |two linear layers - one linear layer| =", float((two_layers - one_layer).abs().max()))
assert torch.allclose(two_layers, one_layer, rtol=1e-10, atol=1e-10), "two linear layers equal one, up to float64 rounding"

# %% [markdown]
# The three classic activations, applied elementwise (any shape in, the same shape out):
#
# | name | formula | range | notes |
# |---|---|---|---|
# | ReLU | $\mathrm{ReLU}(z) = \max(0, z)$ | $[0, \infty)$ | the default in hidden layers; cheap; exactly 0 for $z<0$ |
# | sigmoid | $\sigma(z) = \dfrac{1}{1 + e^{-z}}$ | $(0, 1)$ | a probability for two classes |
# | tanh | $\tanh(z) = \dfrac{e^{z} - e^{-z}}{e^{z} + e^{-z}} = 2\sigma(2z) - 1$ | $(-1, 1)$ | zero-centred |
#
# Written naively, $\sigma$ and $\tanh$ overflow: $e^{z}$ is `inf` in float64 for $z > 709.78$. Our
# versions only ever exponentiate $-|z|$. With $e = e^{-|z|} \in (0, 1]$,
#
# $$\sigma(z) = \begin{cases} \dfrac{1}{1 + e} & z \ge 0 \\[1ex] \dfrac{e}{1 + e} & z < 0 \end{cases}
# \qquad\qquad \tanh(z) = \operatorname{sign}(z)\, \frac{1 - e^{-2|z|}}{1 + e^{-2|z|}} ,$$
#
# where $1 - e^{-2|z|}$ is computed as `-expm1(-2|z|)` to stay accurate for tiny $|z|$.

# %%
show_source(layers.relu, layers.sigmoid, layers.tanh)

# %%
z = torch.cat([torch.tensor([-1000.0, -710.0, -1e-12, 0.0, 1e-12, 710.0, 1000.0]), torch.randn(50, generator=gen) * 5])
for name, ours, ref in [("relu", layers.relu, torch.relu), ("sigmoid", layers.sigmoid, torch.sigmoid), ("tanh", layers.tanh, torch.tanh)]:
    compare(f"{name} vs torch.{name}", ours(z), ref(z), atol=1e-15)
naive = torch.exp(z[:7]) / (1 + torch.exp(z[:7]))
print("naive e^z / (1 + e^z) at", z[:7].tolist(), "\n  ->", naive.tolist())

# %%
import matplotlib.pyplot as plt

t = torch.linspace(-4, 4, 401)
fig, ax = plt.subplots(figsize=(7, 3.2))
for name, fn in [("ReLU", layers.relu), ("sigmoid", layers.sigmoid), ("tanh", layers.tanh)]:
    ax.plot(t, fn(t), lw=2, label=name)
ax.axhline(0, color="0.6", lw=0.8)
ax.axvline(0, color="0.6", lw=0.8)
ax.set_xlabel("z")
ax.set_ylabel("activation(z)")
ax.set_ylim(-1.2, 2.2)
ax.legend()
ax.set_title("Three activation functions (computed by course_lib.layers)")
plt.show()

# %% [markdown]
# ## 4. Stacking layers: the multi-layer perceptron
#
# An MLP with layer sizes $D_0, D_1, \dots, D_L$ has parameters $W_l \in \mathbb{R}^{D_l \times
# D_{l-1}}$ and $b_l \in \mathbb{R}^{D_l}$ for $l = 1, \dots, L$. Starting from $A_0 = X \in
# \mathbb{R}^{N \times D_0}$, each layer computes
#
# $$Z_l = A_{l-1} W_l^\top + b_l \in \mathbb{R}^{N \times D_l}, \qquad A_l = \varphi(Z_l) \quad (l < L),$$
#
# and the last layer has no activation: $Z_L \in \mathbb{R}^{N \times D_L}$ are the **logits**, one
# score per class. Layers $1, \dots, L-1$ are *hidden* layers. `mlp_forward` keeps every
# intermediate result, $[X, Z_1, A_1, \dots, Z_L]$: the backward pass of chapter 03 needs them.
#
# `init_mlp` draws the starting weights like `nn.Linear` does by default: every entry of $W_l$ and
# $b_l$ uniformly from $[-1/\sqrt{D_{l-1}},\ 1/\sqrt{D_{l-1}}]$. The range shrinks as the number
# of inputs grows, so that a sum of $D_{l-1}$ products stays of order 1 in the first layer.

# %%
show_source(layers.mlp_forward, layers.init_mlp)

# %% [markdown]
# This does **not** keep the signal from shrinking as layers are stacked. A uniform distribution on
# $[-c, c]$ has variance $c^2/3$, so every weight has variance $1/(3 D_{l-1})$, and a
# pre-activation $z = \sum_{k=1}^{D_{l-1}} w_k a_k + b$ with independent zero-mean weights has
# variance $D_{l-1} \cdot \frac{1}{3 D_{l-1}} \cdot \overline{a^2} = \overline{a^2}/3$ (plus the
# bias's), where $\overline{a^2}$ is the mean square of the layer's inputs. With tanh, which is
# almost the identity near 0, every layer divides the spread of $z$ by about $\sqrt 3 \approx 1.7$;
# a ReLU also sets half of its inputs to 0 and loses more. Measured on a deep, wide network: 500
# random inputs, 8 layers of 256 units, and for each layer the standard deviation of $Z_l$ over the
# inputs (how much a unit's value changes from one input to another), averaged over the units:

# %%
init_gen = torch.Generator().manual_seed(1)  # its own generator: the cells below draw from `gen` as before
X_deep = torch.randn(500, 256, generator=init_gen, dtype=torch.float64)  # N = 500 inputs, D_0 = 256
params_deep = layers.init_mlp([256] * 9, generator=init_gen)  # 8 layers of 256 units, nn.Linear's default
spread = {}
for act in ("tanh", "relu"):
    Zs = layers.mlp_forward(X_deep, params_deep, activation=act)[1::2]  # Z_1, ..., Z_8: (500, 256) each
    spread[act] = [float(Z.std(dim=0).mean()) for Z in Zs]
    print(f"{act:>4}: std of Z_l over the inputs, l = 1..8:", " ".join(f"{s:.4f}" for s in spread[act]))
    print(f"      divided per layer by", " ".join(f"{a / b:.2f}" for a, b in zip(spread[act], spread[act][1:])))

# %% [markdown]
# After eight layers the pre-activations hardly depend on the input any more: the spread has fallen
# from 0.58 to about 0.009 with tanh and below 0.001 with ReLU (a factor of 1.7 to 2.2 per tanh
# layer, 2.4 to 3 per ReLU layer). What remains of each unit's value is mostly its bias, the same
# for every input. The small networks trained in chapters 04 and 07 learn well from this start;
# for deep ones, the scale of the initial weights has to be chosen so that the variance survives
# from layer to layer.
# Chapter 08, "Training deep networks" (the next chapter to be written), returns to this.

# %% [markdown]
# A 2-4-3-2 network: 2 inputs, hidden layers of 4 and 3 units, 2 classes. It has
# $4 \cdot 2 + 4 + 3 \cdot 4 + 3 + 2 \cdot 3 + 2 = 35$ parameters.

# %%
sizes = [2, 4, 3, 2]
params = layers.init_mlp(sizes, generator=gen)
X2 = torch.randn(6, 2, generator=gen)  # N = 6 points in the plane
outs = layers.mlp_forward(X2, params, activation="relu")
names = ["X"] + [f"{kind}{l}" for l in range(1, len(sizes) - 1) for kind in "ZA"] + [f"Z{len(sizes) - 1} (logits)"]
for name, value in zip(names, outs):
    print(f"{name:>12}: {tuple(value.shape)}")
print("parameters:", sum(W.numel() + b.numel() for W, b in params))

# %% [markdown]
# The same network in PyTorch is an `nn.Sequential` of `nn.Linear` and `nn.ReLU` modules. Loaded
# with our weights, every intermediate result must agree: `net[:k]` runs the first `k` modules.

# %%
net = torch.nn.Sequential(
    torch.nn.Linear(2, 4), torch.nn.ReLU(),
    torch.nn.Linear(4, 3), torch.nn.ReLU(),
    torch.nn.Linear(3, 2),
)
with torch.no_grad():
    for module, (W_l, b_l) in zip(net[::2], params):
        module.weight.copy_(W_l)
        module.bias.copy_(b_l)
    for k, name in enumerate(names[1:], start=1):
        compare(f"{name:>12} vs nn.Sequential[:{k}]", outs[k], net[:k](X2))

# %% [markdown]
# ## 5. Softmax: from logits to probabilities
#
# The logits $z \in \mathbb{R}^{C}$ of one example are arbitrary real scores. The **softmax** turns
# them into a probability distribution over the $C$ classes: positive numbers that sum to 1, in
# the same order as the scores,
#
# $$\mathrm{softmax}(z)_c = \frac{e^{z_c}}{\sum_{j=1}^{C} e^{z_j}} = \frac{e^{z_c - m}}{\sum_{j=1}^{C} e^{z_j - m}}, \qquad m = \max_j z_j .$$
#
# Both forms are equal (multiply top and bottom by $e^{-m}$), but only the second is safe: its
# exponents are all $\le 0$ and its denominator is at least 1. For a batch $Z \in \mathbb{R}^{N
# \times C}$ it is applied to each row, with each row's own maximum. Its logarithm,
# $\log \mathrm{softmax}(z)_c = z_c - m - \log \sum_j e^{z_j - m}$, is what the loss of chapter 02
# uses; `layers.log_softmax` computes it this way.

# %%
show_source(layers.softmax)

# %% [markdown]
# The naive form fails in two ways on the second and third rows below: $e^{1000}$ overflows to `inf`
# (and `inf / inf` is `NaN`), and $e^{-1000}$ underflows to $0$ (and $0 / 0$ is `NaN`).

# %%
logits = torch.tensor([[2.0, 1.0, 0.1], [1000.0, 0.0, -1000.0], [-1000.0, -1000.0, -999.0]])
naive = torch.exp(logits) / torch.exp(logits).sum(dim=-1, keepdim=True)
print("naive softmax:\n", naive)
p = layers.softmax(logits)
print("stable softmax:\n", p, "\nrow sums:", p.sum(dim=-1))
compare("softmax vs torch.softmax", p, torch.softmax(logits, dim=-1))
compare("log_softmax vs torch.log_softmax", layers.log_softmax(logits), torch.log_softmax(logits, dim=-1));

# %% [markdown]
# Put together, the classifier's forward pass is `softmax(mlp_forward(X, params)[-1])`: for each of
# the six points, the probabilities of the two classes.

# %%
probs = layers.softmax(outs[-1])
print(probs)
compare("MLP + softmax vs nn.Sequential + softmax", probs, torch.softmax(net(X2), dim=-1).detach());

# %% [markdown]
# ## 6. Explore: one point through a trained network
#
# The explorer below shows a 2-4-3-2 MLP whose weights were fitted (with the methods of the next
# chapters) to a toy task: class 1 is the inside of the dashed circle of radius 1.5. On the left,
# the input plane coloured by the network's $p(\text{class } 1)$, with your point $x$ in yellow.
# On the right, the network: each node shows its value ($A_l$ for hidden layers, the logits $Z_3$
# at the output, the softmax probabilities next to them); edges are red for positive and blue for
# negative weights, thicker for larger $|w|$. Below, the step `layer` spelled out as
# $z_l = W_l a_{l-1} + b_l$ with shapes and numbers (one input, so column vectors).
#
# Things to try:
# - Move `layer` from 0 to 3 and follow the numbers: each step is one matrix-vector product, one
#   bias, one activation. Check one entry by hand.
# - Move the point across the circle and watch which hidden units switch on ($z > 0$) and off.
# - With ReLU, find units that output $0$ for most inputs. In layer 2 one unit has almost zero
#   weights: it contributes nothing, a "dead" unit.
# - Switch the activation: sigmoid and tanh networks draw smoother boundaries than ReLU's polygon.

# %%
from course_lib.widgets.forward import ForwardExplorer

explorer = ForwardExplorer()
explorer

# %% [markdown]
# The explorer computes with `layers.mlp_forward`; its current values are in `explorer.values` and
# its weights in `explorer.params`. The same weights in an `nn.Sequential` give the same logits:

# %%
state = explorer.state()
x_point = torch.tensor([[state["x1"], state["x2"]]])
with torch.no_grad():
    for module, (W_l, b_l) in zip(net[::2], explorer.params):
        module.weight.copy_(W_l)
        module.bias.copy_(b_l)
    compare("explorer logits vs nn.Sequential", explorer.values[-1], net(x_point))
print(state, "-> p =", layers.softmax(explorer.values[-1]))

# %% [markdown]
# ## Summary
#
# - A neuron computes $z = w^\top x + b$ and $a = \varphi(z)$. A layer of $D_{out}$ neurons on a batch is one
#   matrix product: $Y = X W^\top + b$, $(N \times D_{in}) \cdot (D_{in} \times D_{out}) \to N \times D_{out}$, with
#   $W$ stored as $(D_{out}, D_{in})$ like `nn.Linear`.
# - Without activations, stacked linear layers collapse into one. ReLU, sigmoid and tanh add the
#   nonlinearity; sigmoid and tanh are computed from $e^{-|z|}$ so they never overflow.
# - An MLP alternates $Z_l = A_{l-1} W_l^\top + b_l$ and $A_l = \varphi(Z_l)$; the last layer outputs logits.
#   Keeping every $Z_l$ and $A_l$ prepares the backward pass.
# - Softmax turns logits into probabilities; subtracting each row's maximum first keeps it finite for
#   logits of $\pm 1000$.
# - Everything here matches PyTorch (`nn.Linear`, `nn.Sequential`, `torch.softmax`) to about $10^{-16}$.
#
# **Exercises:** `exercises/01_forward.ipynb` asks you to write `linear_forward`, `relu`, a stable
# `sigmoid`, a stable `softmax` and `mlp_forward` yourself, to derive an MLP's parameter count from
# its layer sizes, and to measure how much two default-initialised layers shrink the signal, with
# instant checks that name the typical mistake they recognise. Next chapter:
# **02 · Loss functions**, how far the probabilities are from the right answer.

# %% [markdown]
# ### Self-check of this notebook's widget

# %%
print(explorer.self_check())
