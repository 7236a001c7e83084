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
# # 09 · Recurrent networks and backpropagation through time
#
# <a href="https://colab.research.google.com/github/nn-from-scratch/course/blob/main/notebooks/09_rnn.ipynb" target="_parent"><img src="https://colab.research.google.com/assets/colab-badge.svg" alt="Open In Colab"/></a>
#
# Every network so far maps one fixed-size input to one output. Text, speech, sensor readings
# and prices arrive as **sequences** of varying length, and what matters is often far back in
# the sequence. A **recurrent neural network** (RNN) reads a sequence one step at a time and
# carries a **hidden state** from step to step, using the same weights at every step. This
# chapter builds the vanilla (Elman) RNN from scratch and checks it against `nn.RNN`, writes its
# backward pass, **backpropagation through time** (BPTT), by hand and checks it against
# autograd, and then measures why plain RNNs struggle with long-range dependencies: the gradient
# that reaches early time steps is a product of many Jacobians and shrinks (or grows)
# geometrically. We run the RNN and LSTM listings of the course's two source articles, repair
# the RNN listing with chapter 07's shape technique, and finish with a character-level language
# model trained on English text that ships with Python itself.

# %% tags=["setup"]
# Setup. On Colab this installs course_lib from the course repository (Colab keeps its own
# torch and ipywidgets); everywhere else it does nothing.
import sys

if "google.colab" in sys.modules:
    get_ipython().run_line_magic("pip", "install --quiet git+https://github.com/nn-from-scratch/course")

# %%
import math

import torch
import torch.nn as nn

from course_lib import rnn, sequences, text
from course_lib.compare import compare
from course_lib.device import seed_everything
from course_lib.show import record, show_source
from course_lib.widgets.rnn import GradientFlowExplorer

gen = seed_everything(0)
torch.set_num_threads(1)  # small matrices: one thread is fastest, and the numbers are reproducible
torch.set_printoptions(precision=4, sci_mode=False)
F64 = torch.float64

# %% [markdown]
# ## 1. The recurrence
#
# A sequence of $T$ inputs for a batch of $B$ examples is a tensor
# $X \in \mathbb{R}^{T \times B \times I}$ ($I$ features per step; with `batch_first=True`
# it is $B \times T \times I$). A vanilla RNN layer with $H$ hidden units keeps a state
# $h_t \in \mathbb{R}^{B \times H}$ and updates it with the same weights at every step:
#
# $$h_t = \tanh\!\left(x_t W_{ih}^\top + b_{ih} + h_{t-1} W_{hh}^\top + b_{hh}\right), \qquad t = 1, \dots, T,$$
#
# with $x_t \in \mathbb{R}^{B \times I}$, $W_{ih} \in \mathbb{R}^{H \times I}$,
# $W_{hh} \in \mathbb{R}^{H \times H}$, $b_{ih}, b_{hh} \in \mathbb{R}^{H}$ and an initial state
# $h_0$ (zeros unless given). The layer's **output** is the whole sequence of states
# $(h_1, \dots, h_T) \in \mathbb{R}^{T \times B \times H}$; its **final state** $h_T$ is returned
# separately. A stack of $L$ layers feeds the outputs of layer $\ell$ as the inputs of layer
# $\ell + 1$ (so $W_{ih}$ of the upper layers is $H \times H$); the final states of all layers
# form $h_n \in \mathbb{R}^{L \times B \times H}$. PyTorch's two biases are redundant (only their
# sum $b_{ih} + b_{hh}$ matters) but both are parameters of `nn.RNN`, so we keep both. This is
# the "simple recurrent network" of Elman (1990).

# %%
show_source(rnn.rnn_cell, rnn.rnn)

# %% [markdown]
# `nn.RNN` stores exactly these tensors under the names `weight_ih_l0`, `weight_hh_l0`,
# `bias_ih_l0`, `bias_hh_l0` (and `..._l1` for the second layer). We pass a module's own
# parameters to our `rnn` and compare outputs, final states and all gradients in float64, for a
# two-layer RNN in both layouts, with and without an initial state:

# %%
for batch_first in (False, True):
    for with_h0 in (False, True):
        torch.manual_seed(1)
        T, B, I, H, L = 7, 3, 5, 4, 2
        m = nn.RNN(I, H, num_layers=L, batch_first=batch_first).to(F64)
        x = torch.randn(*((B, T, I) if batch_first else (T, B, I)), dtype=F64, requires_grad=True)
        h0 = torch.randn(L, B, H, dtype=F64, requires_grad=True) if with_h0 else None
        out_ref, hn_ref = m(x, h0)
        out, hn = rnn.rnn(x, rnn.rnn_params(m), h0, num_layers=L, batch_first=batch_first)
        w1, w2 = torch.randn_like(out), torch.randn_like(hn)
        inputs = [x, *m.parameters()] + ([h0] if with_h0 else [])
        g_ref = torch.autograd.grad((out_ref * w1).sum() + (hn_ref * w2).sum(), inputs)
        g_ours = torch.autograd.grad((out * w1).sum() + (hn * w2).sum(), inputs)
        label = f"batch_first={batch_first!s:5}, h0 {'given' if with_h0 else 'zeros'}"
        compare(f"{label}: output {tuple(out.shape)}, h_n {tuple(hn.shape)}", [out, hn], [out_ref, hn_ref])
        compare(f"{label}: gradients of x, the 8 parameters{' and h0' if with_h0 else ''}", list(g_ours), list(g_ref))

# %% [markdown]
# Note the shapes: with `batch_first=True` the *output* is $(B, T, H)$ but $h_n$ stays
# $(L, B, H)$, and so must $h_0$. The tests (`tests/test_rnn.py`) check the same on random
# shapes including batch 1, sequence length 1 and hidden size 1, with the ReLU variant, without
# biases, and with NaN and ±∞ inputs, which propagate exactly as in `nn.RNN`.
#
# ## 2. Backpropagation through time
#
# Unrolled over $T$ steps, an RNN is a $T$-layer network whose layers share their weights, and
# its gradient is ordinary backpropagation through this unrolled graph (Werbos 1990). Write
# $a_t = x_t W_{ih}^\top + h_{t-1} W_{hh}^\top + b$ (with $b = b_{ih} + b_{hh}$) so that
# $h_t = \tanh(a_t)$, and let the loss $\mathcal{L}$ depend on the outputs directly through
# $\delta_t = \partial \mathcal{L} / \partial h_t|_{\text{direct}} \in \mathbb{R}^{B \times H}$
# (e.g. a loss at every step). The **total** gradient at $h_t$ collects the direct term and
# everything that flows back from step $t+1$:
#
# $$g_T = \delta_T, \qquad g_t = \delta_t + \big(g_{t+1} \odot (1 - h_{t+1}^2)\big)\, W_{hh} \quad (t < T).$$
#
# With $d a_t = g_t \odot (1 - h_t^2) \in \mathbb{R}^{B \times H}$ the parameter gradients are
# sums over time, because the same weights are used at every step:
#
# $$\frac{\partial \mathcal{L}}{\partial W_{ih}} = \sum_{t=1}^{T} d a_t^\top x_t \in \mathbb{R}^{H \times I}, \quad
# \frac{\partial \mathcal{L}}{\partial W_{hh}} = \sum_{t=1}^{T} d a_t^\top h_{t-1} \in \mathbb{R}^{H \times H}, \quad
# \frac{\partial \mathcal{L}}{\partial b} = \sum_{t=1}^{T} \mathbf{1}^\top d a_t \in \mathbb{R}^{H},$$
#
# and $\partial \mathcal{L} / \partial x_t = d a_t W_{ih}$,
# $\partial \mathcal{L} / \partial h_0 = d a_1 W_{hh}$. `bptt` is this loop, run backwards
# from $t = T$ to $1$ on the stored states $h_0, \dots, h_T$:

# %%
show_source(rnn.bptt)

# %%
torch.manual_seed(2)
T, B, I, H = 12, 3, 2, 5
x = torch.randn(T, B, I, dtype=F64, requires_grad=True)
W_ih = torch.randn(H, I, dtype=F64, requires_grad=True)
W_hh = (0.8 * torch.randn(H, H, dtype=F64)).requires_grad_()
b = torch.randn(H, dtype=F64, requires_grad=True)
h0 = torch.randn(B, H, dtype=F64, requires_grad=True)
dout = torch.randn(T, B, H, dtype=F64)  # dL/dh_t of a loss at every step, L = sum_t <dout_t, h_t>

hs = rnn.rnn_forward_states(x, W_ih, W_hh, b, h0)  # (T+1, B, H), hs[0] = h0
auto = torch.autograd.grad((hs[1:] * dout).sum(), [W_ih, W_hh, b, x, h0])
hand = rnn.bptt(x.detach(), hs.detach(), dout, W_ih.detach(), W_hh.detach())
_ = compare("BPTT by hand vs autograd: dW_ih, dW_hh, db, dx, dh0",
        [hand[k] for k in ("dW_ih", "dW_hh", "db", "dx", "dh0")], list(auto))

# %% [markdown]
# ### Truncated BPTT
#
# BPTT stores all $T$ states and walks back through all of them, so memory and time grow with
# $T$: a language model reading a book cannot backpropagate to its first page. **Truncated BPTT**
# cuts the sequence into chunks of $k$ steps and treats the state at each chunk boundary as a
# constant: in code, `h = h.detach()` every $k$ steps. The forward pass is unchanged (the state
# still carries information across chunks) but no gradient crosses a boundary. `bptt(...,
# truncate=k)` drops the term $(g_{t+1} \odot (1 - h_{t+1}^2)) W_{hh}$ at every boundary $t = k, 2k, \dots$;
# it equals autograd on the detached graph exactly:

# %%
for k in (1, 3, 5):
    hs_k = rnn.rnn_forward_states(x, W_ih, W_hh, b, h0, truncate=k)  # h.detach() every k steps
    auto_k = torch.autograd.grad((hs_k[1:] * dout).sum(), [W_ih, W_hh, b, x, h0])
    hand_k = rnn.bptt(x.detach(), hs_k.detach(), dout, W_ih.detach(), W_hh.detach(), truncate=k)
    compare(f"truncate={k}: by hand vs autograd with detach", [hand_k[n] for n in ("dW_ih", "dW_hh", "db", "dx", "dh0")], list(auto_k))

# %% [markdown]
# What does truncation drop? Take a loss on the **last** output only, so that every gradient
# has to travel back from $t = T$. The full gradient reaches every input; with chunks of $k$
# steps, only the inputs of the last chunk receive any gradient, and $\partial \mathcal{L} /
# \partial W_{hh}$ loses the contributions of all earlier steps:

# %%
dlast = torch.zeros(T, B, H, dtype=F64)
dlast[-1] = 1.0  # L = sum of h_T
hs_full = rnn.rnn_forward_states(x, W_ih, W_hh, b, h0).detach()
full = rnn.bptt(x.detach(), hs_full, dlast, W_ih.detach(), W_hh.detach())
print("||dL/dx_t|| for t = 1..T, full BPTT:", " ".join(f"{float(v):.1e}" for v in full["dx"].norm(dim=(1, 2))))
for k in (4, 6):
    cut = rnn.bptt(x.detach(), hs_full, dlast, W_ih.detach(), W_hh.detach(), truncate=k)
    rel = float((cut["dW_hh"] - full["dW_hh"]).norm() / full["dW_hh"].norm())
    print(f"truncate={k}:  ||dL/dx_t||:", " ".join(f"{float(v):.1e}" for v in cut["dx"].norm(dim=(1, 2))),
          f"\n              relative error of dL/dW_hh: {rel:.3f}")

# %% [markdown]
# Here the dropped terms are small because the gradient decays as it travels back (the full
# $\|\partial \mathcal{L}/\partial x_t\|$ falls by more than two orders of magnitude over the
# 12 steps; section 3 shows why), so the relative error of the truncated
# $\partial \mathcal{L}/\partial W_{hh}$ printed above shrinks as the chunks grow. But the
# truncated gradient is *exactly zero* along every path that crosses a chunk boundary, whatever
# the data, so no dependency longer than a chunk can be learned from its gradient. Truncated
# BPTT is a bet that such dependencies do not matter, or that the state picks them up anyway
# from shorter-range signals.
#
# ## 3. Vanishing and exploding gradients
#
# Expand the recursion for a loss on the last state only ($\delta_t = 0$ for $t < T$). Each step
# back multiplies the row vector $g_t$ by the Jacobian $\partial h_{t} / \partial h_{t-1} =
# D_t W_{hh}$ with $D_t = \operatorname{diag}(1 - h_t^2)$ (one example; in a batch, per row):
#
# $$\frac{\partial \mathcal{L}}{\partial h_t} = \frac{\partial \mathcal{L}}{\partial h_T}
# \prod_{s=T}^{t+1} D_s W_{hh} = \frac{\partial \mathcal{L}}{\partial h_T}\, D_T W_{hh}\, D_{T-1} W_{hh} \cdots D_{t+1} W_{hh}.$$
#
# **The bound we use.** Since $0 \le 1 - h^2 \le 1$, $\|D_s\|_2 \le 1$, and by submultiplicativity
#
# $$\left\|\frac{\partial \mathcal{L}}{\partial h_t}\right\| \le \|W_{hh}\|_2^{\,T-t}\,\left\|\frac{\partial \mathcal{L}}{\partial h_T}\right\| ,$$
#
# where $\|W_{hh}\|_2 = \sigma_{\max}(W_{hh})$ is the largest singular value. So
# $\sigma_{\max}(W_{hh}) < 1$ is **sufficient** for the gradient to vanish geometrically, for any
# inputs. The spectral radius $\rho(W_{hh}) = \max |\lambda|$ is never larger than
# $\sigma_{\max}$; the two are equal for normal matrices, for example $W_{hh} = \rho\, Q$ with $Q$
# orthogonal, which is how we build $W_{hh}$ below (`rnn.recurrent_matrix`). For a general
# matrix, $\rho < 1$ gives $\|W_{hh}^n\| \to 0$ (Gelfand's formula) but not a per-step bound.
# The converse fails: $\rho > 1$ is **not sufficient** for explosion, because the factors $D_s$
# can be far below 1 when units saturate ($|h| \to 1$), and they shrink exactly when large
# weights drive the state into saturation. Exploding needs the product of *both* factors to
# exceed 1 along the trajectory. This is the analysis of Bengio, Simard and Frasconi (1994) and
# Pascanu, Mikolov and Bengio (2013), who study the product of Jacobians and propose gradient
# norm clipping against explosion (chapter 08's `clip_grad_norm`).
#
# We measure $\|\partial \mathcal{L} / \partial h_t\|$ for one sequence of $T = 100$ random inputs
# and a loss with $\|\partial \mathcal{L}/\partial h_T\| = 1$, for several radii, with the
# orthogonal construction and with a Gaussian matrix rescaled to the same radius:

# %%
show_source(rnn.recurrent_matrix)

# %%
T, H, I = 100, 32, 4
g = torch.Generator().manual_seed(0)
xs = torch.randn(T, 1, I, generator=g, dtype=F64)
Wx = torch.randn(H, I, generator=g, dtype=F64) / math.sqrt(I)
RADII = (0.5, 0.9, 1.0, 1.1, 1.5, 2.0, 3.0)
first = {}  # ||dL/dh_1|| per (kind, radius)
print(f"{'rho':>5} {'kind':>10} {'||W_hh||_2':>10} {'||dL/dh_90||':>13} {'||dL/dh_50||':>13} {'||dL/dh_1||':>12} {'bound sigma^99':>14}")
for kind in ("orthogonal", "gaussian"):
    for radius in RADII:
        Whh = rnn.recurrent_matrix(H, radius, kind=kind, generator=torch.Generator().manual_seed(1))
        norms = rnn.gradient_norms_over_time(xs, Wx, Whh)
        sigma = float(torch.linalg.matrix_norm(Whh, 2))
        first[kind, radius] = float(norms[0])
        print(f"{radius:5.1f} {kind:>10} {sigma:10.2f} {float(norms[89]):13.2e} {float(norms[49]):13.2e} "
              f"{float(norms[0]):12.2e} {sigma ** 99:14.2e}")
print("||dL/dh_1||, gaussian / orthogonal:", ", ".join(f"rho={r}: {first['gaussian', r] / first['orthogonal', r]:.2g}" for r in RADII))

# %% [markdown]
# Read the table from the top. Every measured norm respects the bound $\sigma_{\max}^{99}$, and
# for $\sigma_{\max} \le 1$ it is below it by many orders of magnitude, because the tanh factors
# shrink the gradient further. For $\rho$ above 1 it *still* vanishes (at $\rho = 1.1$ and
# $1.5$): the bound grows but the measured norm does not follow it. Only for clearly larger radii
# does the gradient stay of order one ($\rho = 2$) or grow ($\rho = 3$). The Gaussian matrices are
# not normal: their $\sigma_{\max}$ is well above $\rho$, so their bound is looser (for
# $\rho \ge 0.9$ it even exceeds 1), yet up to $\rho = 1.1$ their gradient 99 steps back lies
# within a small factor of the orthogonal one's (the last line): over many steps the rate is
# governed by $\rho$ (and the saturation), not by $\sigma_{\max}$.
#
# The explorer shows the whole curve $t \mapsto \|\partial \mathcal{L} / \partial h_t\|$ on a log
# scale. On the left, the vanilla RNN with its bound $\rho^{T-t}$; on the right, an LSTM of the
# same size whose four recurrent weight blocks are scaled the same way (chapter 10 builds it,
# `course_lib.gates.lstm_cell`). The LSTM carries a second state, the cell $c_t = f_t \odot c_{t-1}
# + i_t \odot g_t$, whose direct Jacobian $\partial c_t / \partial c_{t-1}$ (gates held fixed) is
# $\operatorname{diag}(f_t)$, with no weight matrix and no tanh derivative in it; the control $b_f$ sets the forget gate's bias, so $f \approx
# \sigma(b_f)$ (roughly: the gate also sees $x_t$ and $h_{t-1}$). Move $\rho$ and $b_f$: the
# RNN's decay follows $\rho$, the LSTM's mostly follows the forget gate. The cell below reads
# $\|\partial \mathcal{L}/\partial h_1\|$ for $T = 100$ off the explorer's precomputed curves, for
# every radius of its slider. With $b_f = 3$ ($f \approx 0.95$) the LSTM's gradient 99 steps back
# is larger than the RNN's by many orders of magnitude for every $\rho \le 1.5$; with $b_f = 0$
# ($f \approx 0.5$) it vanishes at every radius too. Gates do not abolish the product of
# Jacobians; they let the network *learn* to keep a factor near 1 where it needs memory.

# %%
explorer = GradientFlowExplorer()
explorer

# %%
at_1 = {(r, fb): explorer.curves(r, 100, fb) for r in explorer.RADII for fb in (0.0, 3.0)}
rnn_1 = {r: float(at_1[r, 0.0]["rnn"][0]) for r in explorer.RADII}
lstm_1 = {(r, fb): float(at_1[r, fb]["lstm"][0]) for r, fb in at_1}
print(f"||dL/dh_1||, T = 100  {'rho':>4} {'RNN':>9} {'LSTM b_f=0':>11} {'LSTM b_f=3':>11}")
for r in (0.5, 0.9, 1.0, 1.5, 2.0):
    print(f"{'':21} {r:4.1f} {rnn_1[r]:9.1e} {lstm_1[r, 0.0]:11.1e} {lstm_1[r, 3.0]:11.1e}")
low = [r for r in explorer.RADII if r <= 1.5]
print(f"over all {len(explorer.RADII)} radii 0.5..2.0: LSTM b_f=0 at most {max(lstm_1[r, 0.0] for r in explorer.RADII):.1e}; "
      f"for rho <= 1.5, LSTM b_f=3 / RNN at least {min(lstm_1[r, 3.0] / rnn_1[r] for r in low):.1e}")

# %% [markdown]
# ## 4. The source articles' recurrent listings
#
# The talent article prints this RNN in its section 4.3 ("using PyTorch to implement a recurrent
# neural network model"), with the indentation lost as in all its listings. The comments say
# "define the RNN model", "create an instance", "define the loss function", "define the
# optimiser" and "train the RNN":
#
# ```text
# import torch
# import torch.nn as nn
# import torch.optim as optim
# # 定义递归神经网络模型
# class Net(nn.Module):
# def __init__(self, input_size, hidden_size, output_size):
# super(Net, self).__init__()
# self.rnn = nn.RNN(input_size, hidden_size, num_layers=1, batch_first=True)
# self.fc = nn.Linear(hidden_size, output_size)
# def forward(self, x):
# h0 = torch.zeros(1, 1, self.hidden_size)
# out, _ = self.rnn(x, h0)
# out = self.fc(out[:, -1, :])
# return out
# # 创建递归神经网络实例
# input_size = 100
# hidden_size = 50
# output_size = 10
# net = Net(input_size, hidden_size, output_size)
# # 定义损失函数
# criterion = nn.CrossEntropyLoss()
# # 定义优化器
# optimizer = optim.SGD(net.parameters(), lr=0.01)
# # 训练递归神经网络
# for epoch in range(10):
# for data, target in dataloader:
# optimizer.zero_grad()
# output = net(data)
# loss = criterion(output, target)
# loss.backward()
# optimizer.step()
# ```
#
# We restore the indentation, build the class with `exec` as in chapter 07, and run it on a
# batch of 4 sequences of 7 steps with 100 features each (`batch_first=True`: $(B, T, I)$).
# `attempt` prints the error instead of stopping the notebook.

# %%
LISTING_RNN = """
import torch
import torch.nn as nn
import torch.optim as optim
class Net(nn.Module):
    def __init__(self, input_size, hidden_size, output_size):
        super(Net, self).__init__()
        self.rnn = nn.RNN(input_size, hidden_size, num_layers=1, batch_first=True)
        self.fc = nn.Linear(hidden_size, output_size)
    def forward(self, x):
        h0 = torch.zeros(1, 1, self.hidden_size)
        out, _ = self.rnn(x, h0)
        out = self.fc(out[:, -1, :])
        return out
"""


def build(source: str, *args) -> nn.Module:
    """Execute a listing in a fresh namespace (only what it imports itself) and instantiate its first class."""
    namespace = {}
    exec(source, namespace)
    cls = next(v for k, v in namespace.items() if isinstance(v, type) and issubclass(v, nn.Module) and v.__module__ == "builtins")
    torch.manual_seed(0)
    return cls(*args)


def attempt(call):
    """Run ``call()``; print the shape of its result or the error it raised."""
    try:
        out = call()
    except Exception as err:
        print(f"  -> {type(err).__name__}: {err}")
        return None
    print(f"  -> ran, output shape {tuple(out.shape)}")
    return out


input_size, hidden_size, output_size = 100, 50, 10
x4 = torch.randn(4, 7, input_size)
net = build(LISTING_RNN, input_size, hidden_size, output_size)
print("listing as printed, batch (4, 7, 100):")
_ = attempt(lambda: net(x4))

# %% [markdown]
# **Bug 1: `self.hidden_size` is read but never set.** `__init__` passes `hidden_size` to
# `nn.RNN` but does not store it on the module, and `nn.Module` has no such attribute (the
# `nn.RNN` inside has one: `self.rnn.hidden_size`). The minimal fix adds
# `self.hidden_size = hidden_size`:

# %%
step1 = LISTING_RNN.replace("        self.fc = nn.Linear(hidden_size, output_size)\n",
                            "        self.fc = nn.Linear(hidden_size, output_size)\n        self.hidden_size = hidden_size\n")
net1 = build(step1, input_size, hidden_size, output_size)
print("with self.hidden_size = hidden_size, batch (1, 7, 100):")
_ = attempt(lambda: net1(torch.randn(1, 7, input_size)))
print("the same, batch (4, 7, 100):")
_ = attempt(lambda: net1(x4))

# %% [markdown]
# **Bug 2, hidden behind bug 1: `h0` is built for a batch of one.** `torch.zeros(1, 1,
# self.hidden_size)` has the shape $(L, B, H) = (1, 1, 50)$, so the network runs on a single
# sequence and fails on any real batch; `nn.RNN` checks the shape and names both. The shape
# table of chapter 07 (forward hooks on every layer; `rnn.shape_report` also spells out the
# tuples that recurrent layers return) shows where: the forward pass stops before the RNN layer
# returns, and with a batch of one it shows the `(output, h_n)` pair:

# %%
print(rnn.shape_report(net1, x4))
print()
print(rnn.shape_report(net1, torch.randn(1, 7, input_size)))

# %% [markdown]
# The fix builds $h_0$ for the batch at hand, on the input's device and dtype:
# `torch.zeros(1, x.size(0), self.hidden_size, device=x.device, dtype=x.dtype)`. Simpler
# still, pass no $h_0$ at all: `nn.RNN` then uses zeros of the right shape.

# %%
step2 = step1.replace("h0 = torch.zeros(1, 1, self.hidden_size)",
                      "h0 = torch.zeros(1, x.size(0), self.hidden_size, device=x.device, dtype=x.dtype)")
net2 = build(step2, input_size, hidden_size, output_size)
print(rnn.shape_report(net2, x4))
step2b = step1.replace("out, _ = self.rnn(x, h0)", "out, _ = self.rnn(x)")
same = torch.equal(build(step2b, input_size, hidden_size, output_size)(x4), net2(x4))
print("no h0 at all gives the same output:", same)

# %% [markdown]
# The listing then takes `out[:, -1, :]`, the last step's output $(B, H)$, for the linear layer:
# right for `batch_first=True` (with the default layout, $(T, B, H)$, the same expression would
# pick the last *example* of every step). Its training loop is the one of the talent article's
# other listings: it iterates over a `dataloader` that the article never defines (chapter 04
# repaired that loop), so it cannot run as printed either.
#
# The employment article's LSTM listing (its section 4.2, "using PyTorch to implement a
# recurrent neural network") gets both details right: it stores `self.hidden_size` and
# `self.num_layers`, and builds $h_0$ and $c_0$ with `x.size(0)` on `x.device`:
#
# ```text
# class RNN(nn.Module):
# def __init__(self, input_size, hidden_size, num_layers, num_classes):
# super(RNN, self).__init__()
# self.hidden_size = hidden_size
# self.num_layers = num_layers
# self.lstm = nn.LSTM(input_size, hidden_size, num_layers, batch_first=True)
# self.fc = nn.Linear(hidden_size, num_classes)
# def forward(self, x):
# h0 = torch.zeros(self.num_layers, x.size(0), self.hidden_size).to(x.device)
# c0 = torch.zeros(self.num_layers, x.size(0), self.hidden_size).to(x.device)
# out, (hn, cn) = self.lstm(x, (h0, c0))
# out = self.fc(out[:, -1, :])
# return out
# ```

# %%
LISTING_LSTM = """
import torch
import torch.nn as nn
import torch.nn.functional as F
class RNN(nn.Module):
    def __init__(self, input_size, hidden_size, num_layers, num_classes):
        super(RNN, self).__init__()
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.lstm = nn.LSTM(input_size, hidden_size, num_layers, batch_first=True)
        self.fc = nn.Linear(hidden_size, num_classes)
    def forward(self, x):
        h0 = torch.zeros(self.num_layers, x.size(0), self.hidden_size).to(x.device)
        c0 = torch.zeros(self.num_layers, x.size(0), self.hidden_size).to(x.device)
        out, (hn, cn) = self.lstm(x, (h0, c0))
        out = self.fc(out[:, -1, :])
        return out
"""
lstm_net = build(LISTING_LSTM, 28, 64, 2, 10)
for batch in (1, 4):
    print(f"batch {batch}:")
    print(rnn.shape_report(lstm_net, torch.randn(batch, 28, 28)))

# %% [markdown]
# One remaining trap is shared by both: `torch.zeros(...)` is float32, so a float64 model fails
# with a dtype error unless $h_0$ also takes `dtype=x.dtype` (the repaired RNN above does);
# and `.to(x.device)` builds the tensor on the CPU first and copies it (passing
# `device=x.device` avoids the copy).

# %%
print("the employment article's LSTM in float64, batch (4, 28, 28):")
_ = attempt(lambda: lstm_net.double()(torch.randn(4, 28, 28, dtype=F64)))
print("the repaired RNN (h0 with dtype=x.dtype) in float64, batch (4, 7, 100):")
_ = attempt(lambda: net2.double()(x4.double()))

# %% [markdown]
# ## 5. Data: sequences made in code, and text that ships with Python
#
# Nothing in this chapter is downloaded. `course_lib.sequences` generates classic synthetic
# tasks: the **adding problem** (two numbers in a long sequence are marked; the target is
# their sum: a long-range dependency with a known baseline; a simplified form of an experiment
# of Hochreiter and Schmidhuber, 1997), a **copy task** (remember a few
# symbols over a delay) and **noisy sine waves** (next-value prediction). Chapter 10 trains a
# gated network and a vanilla RNN on the adding problem; the other two are there for your own
# experiments.

# %%
show_source(sequences.adding_problem)

# %%
xa, ya = sequences.adding_problem(4000, 50, seed=0)
print("adding problem: x", tuple(xa.shape), "y", tuple(ya.shape), "| first example, marked positions:",
      xa[0, :, 1].nonzero().flatten().tolist(), "values", [round(float(v), 3) for v in xa[0, xa[0, :, 1] == 1, 0]],
      "target", round(float(ya[0]), 3))
print(f"predicting the mean 1.0 always: MSE {float(((ya - 1) ** 2).mean()):.4f} (theory: 1/6 = {1 / 6:.4f})")
xc, yc = sequences.copy_task(2, 5, symbols=8, delay=10, seed=0)
print("copy task: x", tuple(xc.shape), "y", tuple(yc.shape), "| inputs", xc[0].argmax(-1).tolist(), "-> targets", yc[0].tolist())
xs_, ys_ = sequences.noisy_sines(3, 40, noise=0.1, seed=0)
print("noisy sines: x", tuple(xs_.shape), "y", tuple(ys_.shape))

# %% [markdown]
# For text we use the help pages that come with every CPython installation
# (`pydoc_data.topics`: the texts `help("if")`, `help("FORMATTING")`... print), joined in
# sorted order. They are English prose with code examples; the exact text depends on the
# Python version, so we print it. A **character-level** model treats each distinct character as
# a token ($V$ of them) and predicts the next character. We split the text into contiguous
# train/validation/test parts (80/10/10): a random split of overlapping windows would leak
# training text into validation.

# %%
corpus = text.cpython_text()
vocab = text.CharVocab.from_text(corpus)
ids = vocab.encode(corpus)
train_ids, val_ids, test_ids = text.split_ids(ids, val_fraction=0.1, test_fraction=0.1)
print(f"Python {text.python_version()}: pydoc_data.topics has {len(corpus):,} characters, V = {vocab.size} distinct")
print(f"train {len(train_ids):,}, validation {len(val_ids):,}, test {len(test_ids):,} characters")
print(repr(corpus[20000:20200]))
unigram = text.unigram_nats(train_ids, val_ids, vocab.size)
print(f"baselines on validation: uniform over V: ln V = {math.log(vocab.size):.3f} nats/char; "
      f"unigram (character frequencies of train): {unigram:.3f} nats/char")

# %% [markdown]
# ## 6. A character-level RNN language model
#
# The model maps each character to a learned vector of 32 numbers, an **embedding**
# $e_t = E[c_t] \in \mathbb{R}^{32}$ (the same as the one-hot vector of $c_t$, in
# $\{0,1\}^{V}$, times a $V \times 32$ matrix $E$, computed as a table lookup), runs a tanh RNN
# on these vectors (`nn.RNN`, equal to our `rnn` as section 1 showed) and maps each state
# $h_t \in \mathbb{R}^{H}$ to next-character scores $z_t = h_t W_{hy}^\top + b_y \in \mathbb{R}^{V}$
# ($W_{hy} \in \mathbb{R}^{V \times H}$). The loss is the cross-entropy
# $-\frac{1}{BT}\sum_{b,t} \log \operatorname{softmax}(z_{b,t})_{y_{b,t}}$ in **nats per
# character**; $e^{\text{loss}}$ is the perplexity. A model that ignores context predicts the same
# distribution at every position, and the best such distribution it can learn from the training
# text is (up to the smoothing) the unigram baseline above. Each training step reads $B = 32$
# random windows of 32 characters, each from a zero state, so neither information nor gradient
# crosses a window (truncated BPTT proper would carry the state on and cut only the gradient);
# the optimiser is Adam with gradient-norm clipping at 1. The validation loss during training is
# measured on the first 20,000 validation characters in windows of 32; the final one on all of
# them, in windows of 64.

# %%
show_source(text.train_char_model)

# %%
seed_everything(0)
model = text.CharModel(vocab.size, hidden=256, cell="rnn", embed=32)
n_params = sum(p.numel() for p in model.parameters())
history = text.train_char_model(model, train_ids, val_ids, steps=250, batch=32, seq_len=32, lr=5e-3, seed=0,
                                title="char RNN")
print(f"{n_params:,} parameters")
record("char RNN: training time, 250 steps", history["seconds"], "s", ".1f")
print("validation loss (nats/char, first 20,000 characters) during training:",
      ", ".join(f"{s}: {v:.3f}" for s, v in zip(history["val_steps"], history["val_loss"])))
val_nats = text.evaluate_nats(model, val_ids, seq_len=64)
record(f"char RNN: validation loss (all {len(val_ids):,} characters)", val_nats, "nats/char", ".3f")
print(f"perplexity {math.exp(val_nats):.1f}, vs unigram {unigram:.3f} nats/char (perplexity {math.exp(unigram):.1f})")

# %% [markdown]
# The loss falls well below the unigram baseline within seconds: the state carries context
# from the preceding characters, which a unigram model cannot use. Samples
# show what that buys, at two **temperatures**: the scores are divided by $\tau$ before the
# softmax, so $\tau < 1$ sharpens the distribution (more frequent words, more repetition) and
# $\tau = 1$ samples the model's own distribution.

# %%
for tau in (0.5, 1.0):
    s = text.sample(model, vocab, "The ", 200, temperature=tau, generator=torch.Generator().manual_seed(0))
    print(f"--- temperature {tau} ---\n{s}\n")

# %% [markdown]
# Nothing above was chosen by looking at the test split; we read it once, now:

# %%
test_nats = text.evaluate_nats(model, test_ids, seq_len=64)
record("char RNN: test loss, read once", test_nats, "nats/char", ".3f")
print(f"unigram on test: {text.unigram_nats(train_ids, test_ids, vocab.size):.3f} nats/char")

# %% [markdown]
# The validation loss was still falling at the last step: this short budget leaves the model
# far from converged. Chapter 10 trains an LSTM on the same text.
#
# ## Summary
#
# * A vanilla RNN applies $h_t = \tanh(x_t W_{ih}^\top + b_{ih} + h_{t-1} W_{hh}^\top + b_{hh})$
#   with the same weights at every step; ours equals `nn.RNN` (multi-layer, both layouts,
#   optional $h_0$) forward and backward in float64. With `batch_first=True` the output is
#   $(B, T, H)$ but $h_0$ and $h_n$ stay $(L, B, H)$.
# * BPTT is backpropagation through the unrolled network: the total gradient at $h_t$ adds the
#   direct term and $(g_{t+1} \odot (1 - h_{t+1}^2)) W_{hh}$; weight gradients are sums over
#   time. Our hand-written `bptt` equals autograd. Truncated BPTT (detach every $k$ steps) drops
#   every gradient path that crosses a chunk boundary: exactly zero gradient for longer dependencies.
# * $\|\partial \mathcal{L}/\partial h_t\| \le \|W_{hh}\|_2^{T-t}\|\partial \mathcal{L}/\partial h_T\|$
#   because $|\tanh'| \le 1$: $\sigma_{\max}(W_{hh}) < 1$ (for $W_{hh} = \rho Q$, $\rho < 1$) is
#   sufficient for vanishing; $\rho > 1$ is not sufficient for exploding, because saturation
#   shrinks the tanh factors. Measured with $W_{hh} = \rho Q$ (section 3's table): 99 steps back
#   the gradient has vanished by many orders of magnitude at $\rho = 0.9$, and still at
#   $\rho = 1.5$.
# * Along the LSTM's cell state the step-to-step Jacobian is the forget gate itself,
#   $\operatorname{diag}(f_t)$: with $f \approx 0.95$ the gradient 99 steps back stays many orders
#   of magnitude above the RNN's; with $f \approx 0.5$ it vanishes too. Chapter 10 builds the gates.
# * The talent article's RNN reads `self.hidden_size` without setting it (AttributeError) and
#   builds $h_0$ for a batch of one (RuntimeError on a batch of 4). Fix: store the size, build
#   $h_0$ with `x.size(0)` and `dtype=x.dtype`, or pass none. The employment article's LSTM
#   gets the first two right but not the dtype.
#   `rnn.shape_report` shows each layer's output, tuples included.
# * A character-level RNN on Python's own help texts beats the unigram baseline within seconds
#   of training; report test once, at the end.
#
# ## Exercises
#
# Open `exercises/09_rnn.ipynb`: write an RNN step and a layer, derive BPTT for two steps by
# hand, and more; each answer is checked instantly, and typical mistakes are recognised by name.
#
# ## References
#
# * J. L. Elman. *Finding structure in time.* Cognitive Science (1990). (The simple recurrent
#   network.)
# * P. J. Werbos. *Backpropagation through time: what it does and how to do it.* Proceedings of
#   the IEEE (1990).
# * Y. Bengio, P. Simard, P. Frasconi. *Learning long-term dependencies with gradient descent is
#   difficult.* IEEE Transactions on Neural Networks 5 (1994).
# * S. Hochreiter, J. Schmidhuber. *Long short-term memory.* Neural Computation 9(8) (1997).
#   (The adding problem, in a harder form: values in $[-1, 1]$, the first marker among the
#   first ten steps.)
# * R. Pascanu, T. Mikolov, Y. Bengio. *On the difficulty of training recurrent neural networks.*
#   ICML 2013, arXiv:1211.5063. (The product of Jacobians; gradient norm clipping.)
# * PyTorch documentation: `torch.nn.RNN`, `torch.nn.LSTM` (parameter names, shapes, `batch_first`).

# %%
print(explorer.self_check())
