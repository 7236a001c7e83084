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
# # 09 · Exercises: recurrent networks and backpropagation through time
#
# Student sheet: <a href="https://colab.research.google.com/github/nn-from-scratch/course/blob/main/exercises/09_rnn.ipynb" target="_parent"><img src="https://colab.research.google.com/assets/colab-badge.svg" alt="Open In Colab"/></a>
# · with solutions: [solutions/09_rnn.ipynb](https://colab.research.google.com/github/nn-from-scratch/course/blob/main/solutions/09_rnn.ipynb)
#
# Six questions on the lecture `notebooks/09_rnn.ipynb`: one step of a vanilla RNN, a layer that
# runs it over a sequence in both of PyTorch's layouts, the gradient of two unrolled steps that
# you **derive by hand**, the RNN listing of the talent article (on the talent needed and how to
# train it in the era of large models as a service) to **debug** for batches larger than one, and
# two **predictions**: how fast a gradient shrinks as it travels back through time, and how many
# parameters a stacked `nn.RNN` has.
#
# Replace each `raise NotImplementedError(...)` with your code and run the `check(...)` cell below
# it: it compares your function with the course's reference on several inputs, edge cases
# included (batch 1, sequence length 1, hidden size 1), names the typical mistake when your
# outputs show one, and gives a hint; each further failure of the same question shows one more
# hint tier, and `hint("09.3")` (with any question's number) asks for the next one without a check.
# Write the recurrences with tensor arithmetic (`@`, `.T`, `torch.tanh`, `torch.stack`), not with
# `nn.RNN` or `course_lib.rnn`: the point is to write them yourself. Tensors are `float64`;
# weights use PyTorch's layout, `(out_features, in_features)`. At the end, your functions train
# and take apart a small recurrent classifier.

# %% tags=["setup"]
# Setup. On Colab this installs course_lib from the course repository (Colab keeps its own
# torch and ipywidgets); everywhere else it does nothing.
import sys

if "google.colab" in sys.modules:
    get_ipython().run_line_magic("pip", "install --quiet git+https://github.com/nn-from-scratch/course")

# %%
import torch
import torch.nn as nn
import torch.nn.functional as F

from course_lib.check import check, hint, use
from course_lib.device import seed_everything

seed_everything(0)
torch.set_num_threads(1)  # small tensors: one thread is faster, and the numbers are reproducible

# %% [markdown]
# ## 09.1 One step of a vanilla RNN (1 point)
#
# A vanilla (Elman) RNN cell, as `nn.RNNCell` computes it, maps the input of one time step and
# the previous state to the new state:
#
# $$h' = \tanh\!\left(x\, W_{ih}^\top + b_{ih} + h\, W_{hh}^\top + b_{hh}\right), \qquad
# x \in \mathbb{R}^{B\times I},\; h, h' \in \mathbb{R}^{B\times H},\;
# W_{ih} \in \mathbb{R}^{H\times I},\; W_{hh} \in \mathbb{R}^{H\times H},\; b_{ih}, b_{hh} \in \mathbb{R}^{H}.$$
#
# Each row of $x$ and $h$ is one sample of the batch; the biases broadcast over the rows.

# %%
def rnn_step(x: torch.Tensor, h: torch.Tensor, W_ih: torch.Tensor, W_hh: torch.Tensor,
             b_ih: torch.Tensor, b_hh: torch.Tensor) -> torch.Tensor:
    """One RNN step. x (B, I), h (B, H), W_ih (H, I), W_hh (H, H), b_ih, b_hh (H,) -> h' (B, H)."""
    raise NotImplementedError("Exercise 09.1: replace this line with your code")


# %%
check("09.1", rnn_step)

# %% [markdown]
# ## 09.2 An RNN layer over a sequence (2 points)
#
# A layer applies the same cell at every time step $t = 1, \dots, T$, starting from $h_0$:
#
# $$h_t = \tanh\!\left(x_t W_{ih}^\top + b_{ih} + h_{t-1} W_{hh}^\top + b_{hh}\right), \qquad
# x_t \in \mathbb{R}^{B\times I},\; h_t \in \mathbb{R}^{B\times H}.$$
#
# Write `rnn_layer` with the conventions of `nn.RNN(I, H, batch_first=batch_first)`:
#
# * `batch_first=False`: `x` is `(T, B, I)` and `output` $= (h_1, \dots, h_T)$ is `(T, B, H)`;
# * `batch_first=True`: `x` is `(B, T, I)` and `output` is `(B, T, H)`;
# * `h0` is `(1, B, H)` (one layer), zeros when `None`; return `(output, h_n)` with
#   `h_n` $= h_T$ of shape `(1, B, H)` **in both layouts**, as PyTorch does.
#
# You may use `cell` (your `rnn_step` once it passes, otherwise the reference).

# %%
cell = use("09.1", rnn_step)


def rnn_layer(x: torch.Tensor, W_ih: torch.Tensor, W_hh: torch.Tensor, b_ih: torch.Tensor, b_hh: torch.Tensor,
              h0=None, batch_first: bool = False):
    """A tanh RNN layer. x (T, B, I), or (B, T, I) if batch_first; h0 (1, B, H) or None
    -> (output (T, B, H) or (B, T, H), h_n (1, B, H))."""
    raise NotImplementedError("Exercise 09.2: replace this line with your code")


# %%
check("09.2", rnn_layer)

# %% [markdown]
# Your layer against PyTorch's, with the module's own weights (`weight_ih_l0`, `weight_hh_l0`,
# `bias_ih_l0`, `bias_hh_l0`), on a batch-first input:

# %%
layer = use("09.2", rnn_layer)
torch.manual_seed(0)
torch_rnn = nn.RNN(3, 5, batch_first=True).double()
xs = torch.randn(4, 7, 3, dtype=torch.float64)  # (B, T, I)
with torch.no_grad():
    want, want_h = torch_rnn(xs)
    got, got_h = layer(xs, torch_rnn.weight_ih_l0, torch_rnn.weight_hh_l0, torch_rnn.bias_ih_l0, torch_rnn.bias_hh_l0,
                       batch_first=True)
print(f"output {tuple(got.shape)}, h_n {tuple(got_h.shape)}; max difference from nn.RNN: "
      f"{float((got - want).abs().max()):.1e} (output), {float((got_h - want_h).abs().max()):.1e} (h_n)")

# %% [markdown]
# ## 09.3 Backpropagation through two steps, by hand (2 points)
#
# Unroll a layer (one bias $b = b_{ih} + b_{hh}$) for two steps from a given state $h_0$:
#
# $$a_t = x_t W_{ih}^\top + h_{t-1} W_{hh}^\top + b, \qquad h_t = \tanh(a_t), \qquad t = 1, 2,$$
#
# with $x_t \in \mathbb{R}^{B\times I}$, $h_t, a_t \in \mathbb{R}^{B\times H}$, and take the loss
#
# $$L = \sum_{b, j} G_{bj}\, (h_2)_{bj}, \qquad G \in \mathbb{R}^{B\times H},$$
#
# so that $\partial L / \partial h_2 = G$: $G$ plays the part of the gradient that the layers above
# send down. **Derive** $\partial L / \partial W_{hh} \in \mathbb{R}^{H\times H}$ and
# $\partial L / \partial h_0 \in \mathbb{R}^{B\times H}$ on paper, then write them without autograd
# and return both. `x` holds the two inputs, `x[0]` $= x_1$ and `x[1]` $= x_2$. The cell after the
# check compares your formulas with autograd.

# %%
def bptt_two_steps(x: torch.Tensor, h0: torch.Tensor, W_ih: torch.Tensor, W_hh: torch.Tensor, b: torch.Tensor,
                   G: torch.Tensor):
    """x (2, B, I), h0 (B, H), W_ih (H, I), W_hh (H, H), b (H,), G (B, H) = dL/dh_2
    -> (dL/dW_hh (H, H), dL/dh0 (B, H)), computed by hand."""
    raise NotImplementedError("Exercise 09.3: replace this line with your code")


# %%
check("09.3", bptt_two_steps)

# %%
backward = use("09.3", bptt_two_steps)
g = torch.Generator().manual_seed(1)
x2, h0_, W_ih_, W_hh_, b_, G_ = (torch.randn(*s, generator=g, dtype=torch.float64) for s in
                                 [(2, 3, 4), (3, 5), (5, 4), (5, 5), (5,), (3, 5)])
h0_.requires_grad_(True)
W_hh_.requires_grad_(True)
h = h0_
for t in range(2):
    h = torch.tanh(x2[t] @ W_ih_.T + h @ W_hh_.T + b_)
auto_W, auto_h0 = torch.autograd.grad((G_ * h).sum(), (W_hh_, h0_))
mine_W, mine_h0 = backward(x2, h0_.detach(), W_ih_, W_hh_.detach(), b_, G_)
print(f"max difference from autograd: dL/dW_hh {float((mine_W - auto_W).abs().max()):.1e}, "
      f"dL/dh0 {float((mine_h0 - auto_h0).abs().max()):.1e}")

# %% [markdown]
# ## 09.4 Debug the talent article's RNN for batches larger than one (2 points)
#
# The talent article prints this RNN in its section 4.3. Here it is as printed, with the
# indentation restored (the article lost it) and the class renamed `ArticleRNN`:

# %%
class ArticleRNN(nn.Module):
    def __init__(self, input_size, hidden_size, output_size):
        super(ArticleRNN, self).__init__()
        self.rnn = nn.RNN(input_size, hidden_size, num_layers=1, batch_first=True)
        self.fc = nn.Linear(hidden_size, output_size)

    def forward(self, x):
        h0 = torch.zeros(1, 1, self.hidden_size)
        out, _ = self.rnn(x, h0)
        out = self.fc(out[:, -1, :])
        return out


# %% [markdown]
# With the article's sizes (100 inputs, 50 hidden units, 10 outputs) on a batch of 4 sequences
# of 6 steps it fails; the second run sets the missing attribute by hand and meets the next
# error:

# %%
article_net = ArticleRNN(100, 50, 10)
batch = torch.randn(4, 6, 100)
for attempt in range(2):
    try:
        print("output", tuple(article_net(batch).shape))
    except (AttributeError, RuntimeError) as err:
        print(f"{type(err).__name__}: {err}")
    article_net.hidden_size = 50  # what __init__ forgot

# %% [markdown]
# Write `make_rnn_net(input_size, hidden_size, output_size)`, which returns the repaired network:
# **the same layers under the same names** (`self.rnn`, an `nn.RNN` with `batch_first=True`, and
# `self.fc`, an `nn.Linear`), taking a batch `(B, T, input_size)` for any $B \ge 1$ and $T \ge 1$
# and returning `(B, output_size)`, the classifier applied to the state after the last step. The
# check sets your network's parameters to known values, converts it to `float64` and calls it on
# two batches in a row: your `h0` must follow the input's batch size, dtype and device, and every
# batch is a fresh set of sequences.

# %%
def make_rnn_net(input_size: int, hidden_size: int, output_size: int) -> nn.Module:
    """The talent article's RNN, repaired: (B, T, input_size) -> (B, output_size) for any B."""
    raise NotImplementedError("Exercise 09.4: replace this line with your code")


# %%
check("09.4", make_rnn_net)

# %% [markdown]
# ## 09.5 Predict how fast the gradient shrinks through time (1 point)
#
# Take a *linear* recurrence (no tanh), $h_t = h_{t-1} W_{hh}^\top + x_t W_{ih}^\top$ with
# $h_t \in \mathbb{R}^{B\times H}$, and a recurrent matrix $W_{hh} = r\,Q$, where $r > 0$ and
# $Q \in \mathbb{R}^{H\times H}$ is orthogonal ($Q^\top Q = I$), so $r$ is its spectral radius.
# A loss depends on the last state $h_t$. **Predict**, before measuring, the ratio
#
# $$\frac{\lVert \partial L / \partial h_{t-k} \rVert}{\lVert \partial L / \partial h_t \rVert}$$
#
# for $k \ge 0$ steps back, as a function of $r$ and $k$ (Frobenius norms over the batch and
# the units). The cell after the check measures it with autograd.

# %%
def gradient_ratio(r: float, k: int) -> float:
    """||dL/dh_{t-k}|| / ||dL/dh_t|| for the linear recurrence with W_hh = r Q, Q orthogonal."""
    raise NotImplementedError("Exercise 09.5: replace this line with your code")


# %%
check("09.5", gradient_ratio)

# %%
from course_lib.rnn import recurrent_matrix

predict_ratio = use("09.5", gradient_ratio)
T, B, H = 30, 2, 8
for r in (0.9, 1.0, 1.1):
    W = recurrent_matrix(H, r, generator=torch.Generator().manual_seed(0))  # r times a random orthogonal Q
    states = [torch.zeros(B, H, dtype=torch.float64, requires_grad=True)]
    for x_t in torch.randn(T, B, H, dtype=torch.float64, generator=torch.Generator().manual_seed(1)):
        states.append(states[-1] @ W.T + x_t)
        states[-1].retain_grad()
    (states[-1] * torch.randn(B, H, dtype=torch.float64)).sum().backward()
    measured = [float(states[T - k].grad.norm() / states[T].grad.norm()) for k in (1, 10, 29)]
    print(f"r = {r}: measured ratio for k = 1, 10, 29: " + ", ".join(f"{m:.4g}" for m in measured)
          + "; predicted: " + ", ".join(f"{predict_ratio(r, k):.4g}" for k in (1, 10, 29)))

# %% [markdown]
# With tanh, every step back also multiplies each unit's gradient by the derivative
# $1 - h^2 \in (0, 1]$, which cannot lengthen a vector: the ratio is then at most $r^k$.
#
# ## 09.6 Predict the parameter count of a stacked `nn.RNN` (1 point)
#
# **Predict**, without building the module, how many parameters (numbers) `nn.RNN(input_size,
# hidden_size, num_layers=num_layers, bias=bias)` holds: the sum of `p.numel()` over its
# `parameters()`. Layer $k+1$ of the stack reads the outputs $h_1, \dots, h_T$ of layer $k$.
# Return a Python int.

# %%
def rnn_param_count(input_size: int, hidden_size: int, num_layers: int, bias: bool = True) -> int:
    """The number of parameters of nn.RNN(input_size, hidden_size, num_layers, bias=bias)."""
    raise NotImplementedError("Exercise 09.6: replace this line with your code")


# %%
check("09.6", rnn_param_count)

# %%
count = use("09.6", rnn_param_count)
stacked = nn.RNN(100, 50, num_layers=2)
print(f"nn.RNN(100, 50, num_layers=2): predicted {count(100, 50, 2)}, counted "
      f"{sum(p.numel() for p in stacked.parameters())}:",
      {name: tuple(p.shape) for name, p in stacked.named_parameters()})

# %% [markdown]
# ## Putting them to work
#
# Your repaired network (or the reference, where yours does not pass yet) learns a task that
# needs the whole sequence: is the sum of eight random numbers positive? It trains on 2,000
# sequences in batches of 32 and is evaluated once on 500 test sequences it never saw (no
# setting is chosen here, so no validation set is needed). Then your `rnn_layer`, given the
# trained `nn.RNN`'s weights, must reproduce its outputs, and your `rnn_param_count` must count
# its parameters.

# %%
build = use("09.4", make_rnn_net)
layer = use("09.2", rnn_layer)
count = use("09.6", rnn_param_count)

gen = torch.Generator().manual_seed(0)
X_train, X_test = torch.randn(2000, 8, 1, generator=gen), torch.randn(500, 8, 1, generator=gen)
y_train, y_test = (X_train.sum(dim=(1, 2)) > 0).long(), (X_test.sum(dim=(1, 2)) > 0).long()

torch.manual_seed(0)
net = build(1, 16, 2)
optimizer = torch.optim.Adam(net.parameters(), lr=0.01)
order = torch.Generator().manual_seed(0)
for epoch in range(3):
    for idx in torch.randperm(len(X_train), generator=order).split(32):
        optimizer.zero_grad()
        loss = F.cross_entropy(net(X_train[idx]), y_train[idx])
        loss.backward()
        optimizer.step()
    print(f"epoch {epoch + 1}: last batch loss {loss.item():.3f}")
with torch.no_grad():
    test_accuracy = float((net(X_test).argmax(dim=1) == y_test).double().mean())
    rnn64 = {name: p.double() for name, p in net.rnn.named_parameters()}
    ours, _ = layer(X_test.double(), rnn64["weight_ih_l0"], rnn64["weight_hh_l0"], rnn64["bias_ih_l0"],
                    rnn64["bias_hh_l0"], batch_first=True)
    theirs, _ = net.rnn.double()(X_test.double())
layer_difference = float((ours - theirs).abs().max())
majority = float(max(y_test.double().mean(), 1 - y_test.double().mean()))
print(f"test accuracy {test_accuracy:.3f} (always guessing the more frequent answer: {majority:.3f})")
print(f"your rnn_layer vs the trained nn.RNN on the test sequences: max difference {layer_difference:.1e}")
print(f"parameters of net.rnn: predicted {count(1, 16, 1)}, counted {sum(p.numel() for p in net.rnn.parameters())}")
