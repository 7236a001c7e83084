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
# # 10 · Exercises: gates, LSTM and GRU
#
# Student sheet: <a href="https://colab.research.google.com/github/nn-from-scratch/course/blob/main/exercises/10_gates.ipynb" target="_parent"><img src="https://colab.research.google.com/assets/colab-badge.svg" alt="Open In Colab"/></a>
# · with solutions: [solutions/10_gates.ipynb](https://colab.research.google.com/github/nn-from-scratch/course/blob/main/solutions/10_gates.ipynb)
#
# Five exercises on the lecture `notebooks/10_gates.ipynb`: one step of an LSTM and one step of a
# GRU with PyTorch's weights and conventions, a **prediction** (how many parameters `nn.LSTM`,
# `nn.GRU` and `nn.RNN` have, before building them), the probabilities from which a language
# model samples at a temperature, and a **measurement**: the forget-gate bias that keeps half of
# the cell state's gradient over 50 steps.
#
# Replace each `raise NotImplementedError(...)` with your code and run the `check(...)` cell below
# it: it compares your function with the course's reference on several inputs (one unit, a batch
# of one, no biases, saturated gates) and reports the first mismatch. When your answer looks like
# a typical mistake, the check names it and says which idea it gets wrong; each further failure
# shows one more hint, and `hint("10.2")` (with any question's number) asks for the next hint
# without running the check. Use plain tensor operations (`@`, `torch.sigmoid`, `torch.tanh`,
# `.chunk`), not `torch.nn.LSTMCell`, `torch.nn.GRUCell` or `course_lib.gates`: the point is to
# write the cells yourself. All tensors are `float64`. At the end, your cells run whole sequences
# next to `nn.LSTM` and `nn.GRU`.

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

seed_everything(0)
torch.set_num_threads(1)  # small tensors: one thread is faster

# %% [markdown]
# ## 10.1 One LSTM step (2 points)
#
# A batch of $B$ inputs $x \in \mathbb{R}^{B\times I}$, the previous hidden state
# $h \in \mathbb{R}^{B\times H}$ and cell state $c \in \mathbb{R}^{B\times H}$, and PyTorch's
# parameters $W_{ih} \in \mathbb{R}^{4H\times I}$, $W_{hh} \in \mathbb{R}^{4H\times H}$,
# $b_{ih}, b_{hh} \in \mathbb{R}^{4H}$ (`weight_ih_l0`, `weight_hh_l0`, `bias_ih_l0`,
# `bias_hh_l0` of `nn.LSTM`). The pre-activations
#
# $$A = x W_{ih}^\top + b_{ih} + h W_{hh}^\top + b_{hh} \in \mathbb{R}^{B\times 4H}
# = [A_i \mid A_f \mid A_g \mid A_o], \qquad A_\cdot \in \mathbb{R}^{B\times H},$$
#
# split into four blocks of $H$ columns **in the order input, forget, candidate, output**. Then
#
# $$i = \sigma(A_i),\quad f = \sigma(A_f),\quad g = \tanh(A_g),\quad o = \sigma(A_o),\qquad
# c' = f \odot c + i \odot g,\qquad h' = o \odot \tanh(c'),$$
#
# with $\sigma(a) = 1/(1+e^{-a})$ and $\odot$ the elementwise product. Return `(h_new, c_new)`,
# both $(B, H)$. `b_ih` and `b_hh` may be `None` (`nn.LSTM(..., bias=False)`): then there are no
# biases.

# %%
def lstm_step(x: torch.Tensor, h: torch.Tensor, c: torch.Tensor, W_ih: torch.Tensor, W_hh: torch.Tensor,
              b_ih=None, b_hh=None):
    """One LSTM step. x (B, I), h (B, H), c (B, H), W_ih (4H, I), W_hh (4H, H), b_ih, b_hh (4H,)
    or None -> (h_new, c_new), each (B, H)."""
    ### BEGIN SOLUTION 10.1
    pre = torch.addmm(x @ W_ih.T, h, W_hh.T)
    if b_ih is not None:
        pre = pre + (b_ih + b_hh)
    H = h.shape[1]
    i = torch.sigmoid(pre[:, :H])
    f = torch.sigmoid(pre[:, H:2 * H])
    g = torch.tanh(pre[:, 2 * H:3 * H])
    o = torch.sigmoid(pre[:, 3 * H:])
    c_new = f * c + i * g
    return o * torch.tanh(c_new), c_new
    ### END SOLUTION


# %%
check("10.1", lstm_step)

# %% [markdown]
# ## 10.2 One GRU step, as PyTorch computes it (2 points)
#
# `nn.GRU` stacks three blocks in its weights, **reset, update, new** ($r, z, n$):
# $W_{ih} = [W_{ir}; W_{iz}; W_{in}] \in \mathbb{R}^{3H\times I}$,
# $W_{hh} = [W_{hr}; W_{hz}; W_{hn}] \in \mathbb{R}^{3H\times H}$, and likewise
# $b_{ih}, b_{hh} \in \mathbb{R}^{3H}$. With $x \in \mathbb{R}^{B\times I}$ and
# $h \in \mathbb{R}^{B\times H}$:
#
# $$r = \sigma(x W_{ir}^\top + b_{ir} + h W_{hr}^\top + b_{hr}),\qquad
# z = \sigma(x W_{iz}^\top + b_{iz} + h W_{hz}^\top + b_{hz}),$$
#
# $$n = \tanh\!\big(x W_{in}^\top + b_{in} + r \odot (h W_{hn}^\top + b_{hn})\big),\qquad
# h' = (1 - z) \odot n + z \odot h \in \mathbb{R}^{B\times H}.$$
#
# The reset gate multiplies the hidden contribution **after** its matmul, bias included: this is
# PyTorch's form. The paper that introduced the GRU (Cho et al., "Learning Phrase
# Representations using RNN Encoder–Decoder for Statistical Machine Translation", EMNLP 2014,
# arXiv:1406.1078) resets the state before the matmul, $W_{hn}(r \odot h)$; the lecture measures
# how far apart the two are. Return `h_new`; the biases may be `None`.

# %%
def gru_step(x: torch.Tensor, h: torch.Tensor, W_ih: torch.Tensor, W_hh: torch.Tensor, b_ih=None, b_hh=None):
    """One GRU step in PyTorch's convention. x (B, I), h (B, H), W_ih (3H, I), W_hh (3H, H),
    b_ih, b_hh (3H,) or None -> h_new (B, H)."""
    ### BEGIN SOLUTION 10.2
    from_x, from_h = x @ W_ih.T, h @ W_hh.T
    if b_ih is not None:
        from_x, from_h = from_x + b_ih, from_h + b_hh
    x_r, x_z, x_n = from_x.chunk(3, dim=1)
    h_r, h_z, h_n = from_h.chunk(3, dim=1)
    reset, update = torch.sigmoid(x_r + h_r), torch.sigmoid(x_z + h_z)
    candidate = torch.tanh(x_n + reset * h_n)
    return candidate + update * (h - candidate)
    ### END SOLUTION


# %%
check("10.2", gru_step)

# %% [markdown]
# ## 10.3 Predict the parameter count (2 points)
#
# How many parameters does `nn.LSTM(input_size, hidden_size, num_layers, bidirectional=...)` have,
# and `nn.GRU` and `nn.RNN` with the same arguments (all with their default biases)? **Derive the
# formula from the shapes of the weights** in 10.1 and 10.2, without building a module, and write
# it as a function of `cell` (`"lstm"`, `"gru"` or `"rnn"`), the sizes, the number of stacked
# layers and the direction. Two facts you need: layer $\ell > 0$ reads the hidden states of
# layer $\ell - 1$, and a bidirectional layer runs a second, independent copy of the layer over
# the reversed sequence and concatenates both copies' hidden states at every step. The cell after
# the check counts the real modules.

# %%
def rnn_parameter_count(cell: str, input_size: int, hidden_size: int, num_layers: int = 1,
                        bidirectional: bool = False) -> int:
    """The number of parameters of nn.RNN / nn.LSTM / nn.GRU (cell "rnn" / "lstm" / "gru")."""
    ### BEGIN SOLUTION 10.3
    blocks = {"rnn": 1, "gru": 3, "lstm": 4}[cell]
    directions = 2 if bidirectional else 1
    rows = blocks * hidden_size  # every block of every matrix has hidden_size rows
    count = 0
    for layer in range(num_layers):
        reads = input_size if layer == 0 else directions * hidden_size
        count += directions * rows * (reads + hidden_size + 2)  # W_ih, W_hh, b_ih, b_hh
    return count
    ### END SOLUTION


# %%
check("10.3", rnn_parameter_count)

# %% [markdown]
# The real modules, counted (your prediction, or the reference if yours does not pass yet).

# %%
predict_count = use("10.3", rnn_parameter_count)
for cell, module in (("rnn", torch.nn.RNN), ("gru", torch.nn.GRU), ("lstm", torch.nn.LSTM)):
    for args, kw in (((10, 20), {}), ((10, 20), {"num_layers": 2, "bidirectional": True})):
        counted = sum(p.numel() for p in module(*args, **kw).parameters())
        print(f"nn.{module.__name__}{args} {kw}: {counted:6d} parameters, predicted {predict_count(cell, *args, **kw):6d}")

# %% [markdown]
# ## 10.4 Sampling probabilities at a temperature (1 point)
#
# A character-level language model gives logits $z \in \mathbb{R}^{V}$ over a vocabulary of $V$
# characters (one row per sequence in a batch: $(\dots, V)$). Sampling at temperature $T > 0$
# draws the next character from
#
# $$p_k = \frac{\exp(z_k / T)}{\sum_{j=1}^{V} \exp(z_j / T)}, \qquad k = 1, \dots, V,$$
#
# so $T = 1$ is the model's own distribution, $T < 1$ sharpens it towards the most likely
# character and $T > 1$ flattens it. Return $p$ with the shape of the logits. Your function must
# stay finite when $z/T$ is large (one case has $z/T = 1000$).

# %%
def temperature_probs(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """softmax(logits / temperature) over the last axis. logits (..., V) -> probabilities (..., V)."""
    ### BEGIN SOLUTION 10.4
    scaled = logits / temperature
    scaled = scaled - scaled.amax(dim=-1, keepdim=True)
    weights = scaled.exp()
    return weights / weights.sum(dim=-1, keepdim=True)
    ### END SOLUTION


# %%
check("10.4", temperature_probs)

# %% [markdown]
# What the temperature does to one distribution: the entropy (in nats; $\log V$ is uniform) and
# the share of 5,000 samples that hit the most likely of 8 characters.

# %%
probs_at = use("10.4", temperature_probs)
z = torch.tensor([2.0, 1.5, 1.0, 0.5, 0.0, -0.5, -1.0, -2.0], dtype=torch.float64)
sampler = torch.Generator().manual_seed(0)
entropies = {}
for T in (0.25, 0.5, 1.0, 2.0, 4.0):
    p = probs_at(z, T)
    entropies[T] = float(-(p * p.log()).sum())
    top = float((torch.multinomial(p, 5000, replacement=True, generator=sampler) == 0).double().mean())
    print(f"T = {T:4}: entropy {entropies[T]:.3f} nats (uniform: {math.log(8):.3f}), top character drawn {top:.1%}")

# %% [markdown]
# ## 10.5 Measure the forget-gate bias that keeps half of the gradient (2 points)
#
# The gradient that reaches an early cell state through the additive path is multiplied by a
# forget gate at every step, so gates that start near 1 let it reach far back. Jozefowicz,
# Zaremba and Sutskever ("An Empirical Exploration of Recurrent Network Architectures", ICML
# 2015) found that adding a bias of 1 to the LSTM's forget gate closed the gap between the LSTM
# and the GRU in their experiments. How large must the bias be to keep a given fraction?
#
# Take the one-unit `nn.LSTM(1, 1)` with the parameters `PARAMS` below, the input sequence
# $x_t = \sin t$ for $t = 0, \dots, 49$ ($T = 50$ steps, one unbatched sequence) and zero initial
# states $h_0 = c_0 = 0$. Set the forget gate's entry of **both** bias vectors, `bias_ih_l0` and
# `bias_hh_l0`, to the same value $b$ (as `bias.data[H:2*H].fill_(b)` on every bias does), and
# measure with autograd
#
# $$\frac{\partial c_T}{\partial c_0} \qquad (\text{a number: } H = 1).$$
#
# It grows with $b$. **Find by experiment**, to within 1%, the $b$ at which it equals $1/2$, and
# return it from `forget_bias_for_half()` (the function may run your experiment, or return the
# number you found). Then compare your number with what constant forget gates, $f_t = \sigma(2b)$
# for every $t$, would predict, and explain the difference. (The derivative also flows through
# $h$ and the gates, so it can exceed 1.)

# %%
PARAMS = {  # rows i, f, g, o
    "weight_ih_l0": torch.tensor([[0.5], [2.0], [1.0], [0.5]], dtype=torch.float64),
    "weight_hh_l0": torch.tensor([[0.1], [-0.1], [0.2], [0.1]], dtype=torch.float64),
    "bias_ih_l0": torch.tensor([0.1, 0.0, 0.2, 0.5], dtype=torch.float64),
    "bias_hh_l0": torch.tensor([-0.2, 0.5, 0.1, 0.5], dtype=torch.float64),
}
x_seq = torch.sin(torch.arange(50, dtype=torch.float64)).unsqueeze(1)  # (T, I) = (50, 1)


# %%
def forget_bias_for_half() -> float:
    """The forget-gate bias b (in both bias vectors) at which dc_T/dc_0 = 1/2, within 1%."""
    ### BEGIN SOLUTION 10.5
    lstm = torch.nn.LSTM(1, 1, dtype=torch.float64)

    def kept(b: float) -> float:
        state = {name: value.clone() for name, value in PARAMS.items()}
        for name in ("bias_ih_l0", "bias_hh_l0"):
            state[name][1] = b  # the forget gate is block 1 of (i, f, g, o); H = 1
        lstm.load_state_dict(state)
        c0 = torch.zeros(1, 1, dtype=torch.float64, requires_grad=True)
        _, (_, c_last) = lstm(x_seq, (torch.zeros(1, 1, dtype=torch.float64), c0))
        c_last.sum().backward()
        return float(c0.grad)

    low, high = 0.0, 10.0  # keeps less than half at b = 0, more at b = 10
    while high - low > 1e-3:
        mid = (low + high) / 2
        if kept(mid) < 0.5:
            low = mid
        else:
            high = mid
    return (low + high) / 2
    ### END SOLUTION


# %%
check("10.5", forget_bias_for_half)

# %% [markdown]
# Your number (or the reference) next to the constant-gate prediction: what the forget gates
# actually were at that bias, over the 50 steps.

# %%
b_half = float(use("10.5", forget_bias_for_half)())
b_constant = math.log(0.5 ** (1 / 50) / (1 - 0.5 ** (1 / 50))) / 2  # sigma(2b)^50 = 1/2
with torch.no_grad():
    A = x_seq @ PARAMS["weight_ih_l0"].T  # (50, 4): the input's share of each gate's pre-activation
    f_without_h = torch.sigmoid(A[:, 1] + 2 * b_half)  # the forget gates, ignoring the small h term
print(f"measured b = {b_half:.3f}; constant gates would predict b = {b_constant:.3f}")
print(f"forget gates at b = {b_half:.3f} (h term ignored): min {float(f_without_h.min()):.3f}, "
      f"mean {float(f_without_h.mean()):.3f}, max {float(f_without_h.max()):.3f}; "
      f"their product {float(f_without_h.prod()):.3f}")

# %% [markdown]
# ## Putting them to work
#
# A recurrent layer is its cell applied step after step. Below, your `lstm_step` and `gru_step`
# (or the references, where yours do not pass yet) run two-layer networks over a batch of
# sequences with the weights of a freshly initialised `nn.LSTM` and `nn.GRU`, and are compared with
# PyTorch's own result; the number of weights they read is the count you predicted in 10.3.

# %%
lstm_cell_fn = use("10.1", lstm_step)
gru_cell_fn = use("10.2", gru_step)
count_fn = use("10.3", rnn_parameter_count)


def run_layers(step, params: dict, x: torch.Tensor, num_layers: int, lstm: bool) -> torch.Tensor:
    """Apply `step` over time and layers: x (T, B, I) -> the last layer's hidden states (T, B, H)."""
    for layer in range(num_layers):
        W_ih, W_hh, b_ih, b_hh = (params[f"{name}_l{layer}"] for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"))
        h = torch.zeros(x.shape[1], W_hh.shape[1], dtype=x.dtype)
        c = torch.zeros_like(h)
        outputs = []
        for x_t in x:
            if lstm:
                h, c = step(x_t, h, c, W_ih, W_hh, b_ih, b_hh)
            else:
                h = step(x_t, h, W_ih, W_hh, b_ih, b_hh)
            outputs.append(h)
        x = torch.stack(outputs)
    return x


torch.manual_seed(0)
xs = torch.randn(12, 3, 5, dtype=torch.float64)  # (T, B, I)
errors = {}
for name, module, step in (("lstm", torch.nn.LSTM, lstm_cell_fn), ("gru", torch.nn.GRU, gru_cell_fn)):
    net = module(5, 8, num_layers=2, dtype=torch.float64)
    params = {k: v.detach() for k, v in net.named_parameters()}
    with torch.no_grad():
        expected, _ = net(xs)
    errors[name] = float((run_layers(step, params, xs, 2, name == "lstm") - expected).abs().max())
    n_weights = sum(p.numel() for p in params.values())
    print(f"nn.{module.__name__}(5, 8, num_layers=2): max |yours - torch| = {errors[name]:.2e} over "
          f"{tuple(expected.shape)}; {n_weights} weights read, {count_fn(name, 5, 8, 2)} predicted")
