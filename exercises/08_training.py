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
# # 08 · Exercises: training deep networks
#
# Student sheet: <a href="https://colab.research.google.com/github/nn-from-scratch/course/blob/main/exercises/08_training.ipynb" target="_parent"><img src="https://colab.research.google.com/assets/colab-badge.svg" alt="Open In Colab"/></a>
# · with solutions: [solutions/08_training.ipynb](https://colab.research.google.com/github/nn-from-scratch/course/blob/main/solutions/08_training.ipynb)
#
# Six questions on the lecture `notebooks/08_training.ipynb`. You **derive** the standard
# deviation of Kaiming initialisation for a ReLU layer, write batch normalisation's forward pass
# in training and evaluation, **debug** an update of its running statistics against
# `nn.BatchNorm2d`, **derive** its backward pass, **predict** how far the signal falls through a
# deep ReLU network under three initialisations (then measure it), and write gradient clipping by
# the global norm. Replace each `raise NotImplementedError(...)` with your
# code and run the `check(...)` cell below it: it compares your function with the course's
# reference on several inputs, edge cases included, names the typical mistake when your outputs
# show one, and gives a hint. Each failed check of the same question shows one more hint tier
# (the idea, then the shapes, then a nudge towards code); `hint("08.4")` shows the next tier
# without a check.
#
# Write everything with tensor arithmetic (`+`, `*`, `/`, `torch.sqrt`, `.mean`, `.sum`), not
# with `torch.nn.functional`, `torch.nn.init`, `torch.nn.utils` or `course_lib`: the point is to
# write them yourself. Return new tensors; do not modify the arguments in place. All tensors are
# `float64`. At the end, your functions train a small network on the 8×8 digits together.

# %% tags=["setup"]
# Setup. On Colab this installs course_lib from the course repository (Colab keeps its own
# torch and ipywidgets); everywhere else it does nothing.
import sys

if "google.colab" in sys.modules:
    get_ipython().run_line_magic("pip", "install --quiet git+https://github.com/nn-from-scratch/course")

# %%
import math

import torch
import torch.nn.functional as F

from course_lib import data
from course_lib.check import check, hint, use
from course_lib.device import seed_everything

seed_everything(0)
torch.set_num_threads(1)  # small tensors: one thread is faster, and the numbers are reproducible

# %% [markdown]
# ## 08.1 Derive the Kaiming standard deviation for a ReLU layer (1 point)
#
# A fully connected layer computes $z = W h$ (no bias) with $W \in \mathbb{R}^{n_\text{out}
# \times n_\text{in}}$, and its input is the ReLU of the previous layer's pre-activations,
# $h = \operatorname{relu}(z') \in \mathbb{R}^{n_\text{in}}$. Assume that the entries of $W$ are
# independent with mean 0 and variance $\sigma^2$, independent of $h$, and that the entries of
# $z'$ are independent, symmetric about 0, with variance $v$.
#
# **Derive** the $\sigma$ for which every $z_i$ has variance $v$ again, so that the signal keeps
# its scale through any number of such layers (He, Zhang, Ren and Sun, 2015, arXiv:1502.01852).
# The formula is not printed here: work it out from the variance of a sum of independent
# products and from what a ReLU does to the second moment $\mathbb{E}[h_j^2]$ of a symmetric input.
#
# A convolution weight has shape $(C_\text{out}, C_\text{in}, k_h, k_w)$: one output sums over
# $C_\text{in}$ channels at each of the $k_h k_w$ kernel positions. Write `kaiming_std(shape)`
# for a weight of shape `(out_features, in_features)` or `(C_out, C_in, k_h, k_w)`; return
# $\sigma$ as a Python float.

# %%
def kaiming_std(shape: tuple) -> float:
    """The std of the weights of a layer with weight `shape` (out, in) or (C_out, C_in, k_h, k_w),
    followed by a ReLU, that keeps the variance of the pre-activations from layer to layer."""
    raise NotImplementedError("Exercise 08.1: replace this line with your code")


# %%
check("08.1", kaiming_std)

# %% [markdown]
# Test the derivation by measuring: ten ReLU layers of width 512 initialised with your standard
# deviation (or the reference's, while yours does not pass), on 1,000 inputs $h = \operatorname{relu}(x)$
# with $x$ standard normal ($v = 1$), and beside it the same weights scaled to
# $\sigma = 1/\sqrt{n_\text{in}}$. With your $\sigma$ the variance of $z$ should stay of order 1 (it
# wanders, as every layer's weights are one random draw); with the other it halves at every layer.

# %%
std_fn = use("08.1", kaiming_std)
gen = torch.Generator().manual_seed(0)
x = torch.randn(1000, 512, generator=gen, dtype=torch.float64)
h_yours, h_plain = torch.relu(x), torch.relu(x)
for layer in range(1, 11):
    W = torch.randn(512, 512, generator=gen, dtype=torch.float64)
    z_yours, z_plain = h_yours @ (W * std_fn((512, 512))).T, h_plain @ (W / math.sqrt(512)).T
    h_yours, h_plain = torch.relu(z_yours), torch.relu(z_plain)
    print(f"layer {layer:2d}: Var(z) = {float(z_yours.var()):.3f} with your std, "
          f"{float(z_plain.var()):.5f} with 1/sqrt(n_in)")

# %% [markdown]
# ## 08.2 Batch norm forward, in training and in evaluation (2 points)
#
# `x` has shape $(N, C)$ or $(N, C, H, W)$; `gamma`, `beta`, `running_mean` and `running_var`
# have shape $(C,)$. Each channel $c$ has $m$ values in the batch ($m = N$, or $m = NHW$ for
# images). The statistics of channel $c$ are
#
# $$\text{training:}\quad \mu_c = \frac1m \sum_{n,h,w} x_{n,c,h,w}, \qquad
# \sigma^2_c = \frac1m \sum_{n,h,w} \left(x_{n,c,h,w} - \mu_c\right)^2 ;
# \qquad\quad \text{evaluation:}\quad \mu_c = \texttt{running\_mean}_c, \quad
# \sigma^2_c = \texttt{running\_var}_c ,$$
#
# and the output, of the shape of `x`, is
#
# $$y_{n,c,h,w} = \gamma_c\, \frac{x_{n,c,h,w} - \mu_c}{\sqrt{\sigma^2_c + \epsilon}} + \beta_c .$$
#
# Return $y$. Leave `running_mean` and `running_var` as they are: 08.3 updates them.

# %%
def batch_norm_forward(x: torch.Tensor, gamma: torch.Tensor, beta: torch.Tensor, running_mean: torch.Tensor,
                       running_var: torch.Tensor, training: bool, eps: float = 1e-5) -> torch.Tensor:
    """Batch norm. x (N, C) or (N, C, H, W); gamma, beta, running_mean, running_var (C,) -> y like x."""
    raise NotImplementedError("Exercise 08.2: replace this line with your code")


# %%
check("08.2", batch_norm_forward)

# %% [markdown]
# ## 08.3 Debug the running statistics (1 point)
#
# In training, batch norm also keeps running estimates of each channel's mean and variance for
# use in evaluation. The function below is meant to return the estimates after one training step
# on the batch `x` of `nn.BatchNorm1d(C, momentum=momentum)` (for `x` of shape $(N, C)$) or
# `nn.BatchNorm2d` (for images $(N, C, H, W)$), but it has **two bugs**. The cell
# after it runs the module and the listing on the same batch and prints how far apart they end
# up. Experiment with it (change `momentum`, the batch size), find both bugs, and write the
# corrected `update_running_stats`: it returns `(new_mean, new_var)`, both $(C,)$, and leaves its
# arguments unchanged.

# %%
def update_running_stats_buggy(x, running_mean, running_var, momentum=0.1):
    dims = [0] + list(range(2, x.dim()))  # every dim but the channels
    mean = x.mean(dim=dims)  # (C,)
    shape = [1, -1] + [1] * (x.dim() - 2)  # to broadcast a (C,) tensor against x
    var = ((x - mean.reshape(shape)) ** 2).mean(dim=dims)  # the variance that normalises the batch
    new_mean = momentum * running_mean + (1 - momentum) * mean
    new_var = momentum * running_var + (1 - momentum) * var
    return new_mean, new_var


def compare_with_module(update, x: torch.Tensor, momentum: float) -> None:
    """One training step of nn.BatchNorm2d on x (N, C, H, W); print the max difference between its
    running estimates and update(x, ...) started from the same estimates."""
    C = x.shape[1]
    start_mean = torch.linspace(-1.0, 1.0, C, dtype=torch.float64)
    start_var = torch.linspace(0.5, 2.0, C, dtype=torch.float64)
    bn = torch.nn.BatchNorm2d(C, momentum=momentum).double().train()
    with torch.no_grad():
        bn.running_mean.copy_(start_mean)
        bn.running_var.copy_(start_var)
        bn(x)
    new_mean, new_var = update(x, start_mean.clone(), start_var.clone(), momentum)
    print(f"x {tuple(x.shape)}, momentum={momentum}: "
          f"running_mean off by {float((new_mean - bn.running_mean).abs().max()):.2e}, "
          f"running_var off by {float((new_var - bn.running_var).abs().max()):.2e}")


x_demo = 3 + 2 * torch.randn(4, 3, 2, 2, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
for momentum in (0.1, 1.0):
    compare_with_module(update_running_stats_buggy, x_demo, momentum)


# %%
def update_running_stats(x: torch.Tensor, running_mean: torch.Tensor, running_var: torch.Tensor,
                         momentum: float = 0.1):
    """Running estimates after one training step of nn.BatchNorm on x (N, C) or (N, C, H, W);
    running_mean, running_var (C,) -> (new_mean, new_var), both (C,)."""
    raise NotImplementedError("Exercise 08.3: replace this line with your code")


# %%
check("08.3", update_running_stats)
compare_with_module(use("08.3", update_running_stats), x_demo, 0.1)

# %% [markdown]
# ## 08.4 Derive batch norm's backward pass (2 points)
#
# In training, for `x` of shape $(N, C)$ (here $m = N$), batch norm computes per channel
#
# $$\mu = \frac1N \sum_n x_n, \qquad \sigma^2 = \frac1N \sum_n (x_n - \mu)^2, \qquad
# \hat x_n = \frac{x_n - \mu}{\sqrt{\sigma^2 + \epsilon}}, \qquad y_n = \gamma\, \hat x_n + \beta .$$
#
# Given the upstream gradient $\partial L / \partial y$ (`dy`, shape $(N, C)$), **derive**
# $\partial L/\partial x$ $(N, C)$, $\partial L/\partial \gamma$ $(C,)$ and
# $\partial L/\partial \beta$ $(C,)$ by hand. Each $x_n$ reaches $\hat x_n$ directly **and**
# through $\mu$ and $\sigma^2$, which depend on the whole batch: follow all three paths, then
# simplify until $\partial L/\partial x$ is written with $\hat x$, sums over the batch and
# $1/\sqrt{\sigma^2+\epsilon}$. The formula is not printed here. Return
# `(dx, dgamma, dbeta)`; the check compares them with autograd's values for the forward pass above.

# %%
def batch_norm_backward(dy: torch.Tensor, x: torch.Tensor, gamma: torch.Tensor, eps: float = 1e-5):
    """Backward of training-mode batch norm. dy, x (N, C); gamma (C,) -> (dx (N, C), dgamma (C,), dbeta (C,))."""
    raise NotImplementedError("Exercise 08.4: replace this line with your code")


# %%
check("08.4", batch_norm_backward)

# %% [markdown]
# ## 08.5 Predict how far the signal falls (1 point)
#
# Take a network of `depth` fully connected layers without biases, all of width $n$ (`width`),
# with ReLUs between them and an input $x$ whose entries are independent standard normal:
#
# $$z_1 = W_1 x, \qquad z_l = W_l \operatorname{relu}(z_{l-1}) \quad (l = 2, \dots, \text{depth}),
# \qquad W_l \in \mathbb{R}^{n \times n}.$$
#
# The entries of every $W_l$ are drawn independently from one of three initialisations
# (`scheme`): `"pytorch"`, the default of `nn.Linear`, $U(-1/\sqrt n,\ 1/\sqrt n)$;
# `"xavier"`, $N(0,\ 2/(n_\text{in} + n_\text{out}))$ (gain 1, Glorot and Bengio's form); and
# `"kaiming"`, $N(0,\ 2/n_\text{in})$.
#
# **Predict**, before measuring anything, the ratio $\operatorname{std}(z_\text{depth}) /
# \operatorname{std}(z_1)$ that the variance argument of the lecture gives (treat every
# pre-activation as symmetric about 0 and independent of the next layer's weights). Return it as
# a Python float: the prediction, not a measurement. The cell after the check measures it.

# %%
def std_ratio(depth: int, width: int, scheme: str) -> float:
    """Predicted std(z_depth) / std(z_1) of the bias-free ReLU network above;
    scheme is "pytorch", "xavier" or "kaiming"."""
    raise NotImplementedError("Exercise 08.5: replace this line with your code")


# %%
check("08.5", std_ratio)

# %% [markdown]
# Now measure it: 1,000 inputs through ten layers of width 256 built from `nn.Linear(bias=False)`
# with each initialisation (the prediction shown is yours, or the reference's while yours does
# not pass). Every layer's weights are one random draw and the prediction is an average, so expect
# the measurement to scatter around it, by the order of ten percent after ten layers, while the
# three schemes stay orders of magnitude apart.

# %%
predict = use("08.5", std_ratio)
torch.manual_seed(0)
x = torch.randn(1000, 256, dtype=torch.float64)
for scheme in ("pytorch", "xavier", "kaiming"):
    layers = [torch.nn.Linear(256, 256, bias=False).double() for _ in range(10)]  # PyTorch's default
    with torch.no_grad():
        for layer in layers:
            if scheme == "xavier":
                torch.nn.init.xavier_normal_(layer.weight)
            elif scheme == "kaiming":
                torch.nn.init.kaiming_normal_(layer.weight, nonlinearity="relu")
        z_first = z = layers[0](x)
        for layer in layers[1:]:
            z = layer(torch.relu(z))
    measured = float(z.std() / z_first.std())
    print(f"{scheme:8s}: measured std(z_10) / std(z_1) = {measured:.3e}, predicted {predict(10, 256, scheme):.3e}")

# %% [markdown]
# ## 08.6 Gradient clipping by the global norm (1 point)
#
# `grads` is a list of gradient tensors $g_1, \dots, g_K$ of any shapes. Clipping, as
# `torch.nn.utils.clip_grad_norm_` does it, measures one global norm over all their entries and
# shrinks every tensor by the same factor when that norm exceeds $\tau$ (`max_norm`):
#
# $$\|g\| = \sqrt{\sum_{k=1}^{K} \sum_i g_{k,i}^2}, \qquad
# c = \min\!\left(1,\ \frac{\tau}{\|g\| + 10^{-6}}\right), \qquad g_k \leftarrow c\, g_k .$$
#
# Return `(clipped, total_norm)`: a list of $K$ new tensors (the shapes of `grads`) and
# $\|g\|$ **before** clipping, as a Python float.

# %%
def clip_grad_norm(grads: list, max_norm: float):
    """grads: a list of tensors (any shapes) -> (list of clipped copies, global 2-norm before clipping)."""
    raise NotImplementedError("Exercise 08.6: replace this line with your code")


# %%
check("08.6", clip_grad_norm)

# %% [markdown]
# ## Putting them to work
#
# Your functions (or the references, where yours do not pass yet) train a network
# $64 \to 128 \to 10$ on the 8×8 digits: Kaiming initialisation with your `kaiming_std`, batch
# norm before the ReLU with your forward pass in training and evaluation, your backward pass
# inside a `torch.autograd.Function` (autograd calls it for the batch-norm layer), your running
# statistics, and your clipping before each step of SGD with momentum; the hidden layer also has
# inverted dropout, $h \odot M / (1 - p)$ with masks $M$ drawn here. The output layer is not followed by a ReLU; it starts with
# small weights (std 0.01) so that the first predictions are almost uniform, and, as the
# lecture's recipe suggests, the first loss is compared with $\log 10$, the loss of a network
# that spreads its probability evenly over the ten classes. The validation accuracy is printed
# after each epoch; the test accuracy is measured once, at the end.

# %%
init_std = use("08.1", kaiming_std)
bn_forward = use("08.2", batch_norm_forward)
bn_update = use("08.3", update_running_stats)
bn_backward = use("08.4", batch_norm_backward)
clip = use("08.6", clip_grad_norm)


class BatchNormFunction(torch.autograd.Function):
    """Training-mode batch norm whose gradients come from bn_backward."""

    @staticmethod
    def forward(ctx, z, gamma, beta, running_mean, running_var):
        ctx.save_for_backward(z, gamma)
        return bn_forward(z, gamma, beta, running_mean, running_var, True)

    @staticmethod
    def backward(ctx, dy):
        z, gamma = ctx.saved_tensors
        dz, dgamma, dbeta = bn_backward(dy, z, gamma)
        return dz, dgamma, dbeta, None, None


splits = data.digits_splits(dtype=torch.float64)  # train / validation / test, X (N, 64) in [0, 1]
gen = torch.Generator().manual_seed(0)
hidden, p, max_norm = 128, 0.2, 1.0
W1 = (torch.randn(hidden, 64, generator=gen, dtype=torch.float64) * init_std((hidden, 64))).requires_grad_()
gamma = torch.ones(hidden, dtype=torch.float64, requires_grad=True)
beta = torch.zeros(hidden, dtype=torch.float64, requires_grad=True)
W2 = (0.01 * torch.randn(10, hidden, generator=gen, dtype=torch.float64)).requires_grad_()  # no ReLU after it
b2 = torch.zeros(10, dtype=torch.float64, requires_grad=True)
params = [W1, gamma, beta, W2, b2]
running_mean, running_var = torch.zeros(hidden, dtype=torch.float64), torch.ones(hidden, dtype=torch.float64)


def logits(X: torch.Tensor, training: bool) -> torch.Tensor:
    z = X @ W1.T
    if training:
        h = torch.relu(BatchNormFunction.apply(z, gamma, beta, running_mean, running_var))
        kept = torch.rand(h.shape, generator=gen, dtype=torch.float64) >= p  # inverted dropout
        return (h * kept / (1 - p)) @ W2.T + b2
    return torch.relu(bn_forward(z, gamma, beta, running_mean, running_var, False)) @ W2.T + b2


def accuracy(X: torch.Tensor, y: torch.Tensor) -> float:
    with torch.no_grad():
        return float((logits(X, training=False).argmax(dim=1) == y).double().mean())


optimizer = torch.optim.SGD(params, lr=0.05, momentum=0.9)
epochs, losses, clipped_steps, steps = 8, [], 0, 0
for epoch in range(1, epochs + 1):
    epoch_losses = []
    for idx in torch.randperm(len(splits.X_train), generator=gen).split(64):
        X, y = splits.X_train[idx], splits.y_train[idx]
        loss = F.cross_entropy(logits(X, training=True), y)
        optimizer.zero_grad()
        loss.backward()
        with torch.no_grad():
            running_mean, running_var = bn_update(X @ W1.T, running_mean, running_var, 0.1)
        new_grads, grad_norm = clip([q.grad for q in params], max_norm)
        for q, g in zip(params, new_grads):
            q.grad = g
        optimizer.step()
        epoch_losses.append(float(loss.detach()))
        clipped_steps, steps = clipped_steps + (grad_norm > max_norm), steps + 1
    losses += epoch_losses
    print(f"epoch {epoch}: mean training loss {sum(epoch_losses) / len(epoch_losses):.3f}  "
          f"validation accuracy {accuracy(splits.X_val, splits.y_val):.3f}")
test_accuracy = accuracy(splits.X_test, splits.y_test)
print(f"first loss {losses[0]:.3f} (log 10 = {math.log(10):.3f}); clipped {clipped_steps} of {steps} steps")
print(f"test accuracy {test_accuracy:.3f} (measured once, after training)")
