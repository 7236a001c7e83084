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
# # 08 · Training deep networks
#
# <a href="https://colab.research.google.com/github/nn-from-scratch/course/blob/main/notebooks/08_training.ipynb" target="_parent"><img src="https://colab.research.google.com/assets/colab-badge.svg" alt="Open In Colab"/></a>
#
# Chapters 01–07 trained networks of two or three layers, where almost any reasonable setting
# works. Deeper networks and small data sets expose four problems that every later chapter
# (recurrent networks in 09 and 10, and the planned attention and Transformer chapters) has to
# solve: the **scale of the signal** through many layers (initialisation), keeping that scale
# under control *during* training (**normalisation**), the gap between what a model fits and what
# it predicts (**regularisation and generalisation**), and a **practical recipe** for finding
# out which of these is the problem in front of you. Every claim below is a number measured in
# this notebook or a paper we cite; every from-scratch function is checked against PyTorch.

# %% tags=["setup"]
# Setup. On Colab this installs course_lib from the course repository (Colab keeps its own
# torch and ipywidgets); everywhere else it does nothing.
import sys

if "google.colab" in sys.modules:
    get_ipython().run_line_magic("pip", "install --quiet git+https://github.com/nn-from-scratch/course")

# %%
import copy
import inspect
import math
import time

import matplotlib.pyplot as plt
import torch
import torch.nn as nn
import torch.nn.functional as F

from course_lib import data, init, norm, optim
from course_lib import regularize as reg
from course_lib.compare import compare
from course_lib.device import seed_everything
from course_lib.show import show_source
from course_lib.widgets.init import BatchNormExplorer, InitExplorer

gen = seed_everything(0)
torch.set_num_threads(1)  # small models: one thread is fastest, and the numbers are reproducible
NOTEBOOK_START = time.perf_counter()

# %% [markdown]
# ## 1. Initialisation: the scale of the signal through depth
#
# Take a stack of $L$ fully connected layers without biases, all of width $n$:
#
# $$z_l = h_{l-1} W_l^\top,\qquad h_l = \phi(z_l),\qquad h_0 = X\in\mathbb{R}^{B\times n},\quad W_l\in\mathbb{R}^{n\times n},\quad z_l, h_l\in\mathbb{R}^{B\times n}.$$
#
# If the entries of $W_l$ are independent with mean 0 and variance $s^2$, and independent of
# $h_{l-1}$, each entry of $z_l$ is a sum of $n$ uncorrelated terms:
#
# $$\operatorname{Var}(z_l) = n\, s^2\, \mathbb{E}[h_{l-1}^2].$$
#
# * **ReLU**: for $z$ symmetric around 0, $\mathbb{E}[\operatorname{relu}(z)^2] = \tfrac12\operatorname{Var}(z)$,
#   so $\operatorname{Var}(z_l) = \tfrac12 n s^2 \operatorname{Var}(z_{l-1})$. The variance stays put when
#   $s^2 = 2/n$: **Kaiming/He** initialisation (He et al., 2015), $s = \text{gain}/\sqrt{n_{in}}$ with gain $\sqrt2$.
# * **tanh** is the identity near 0, so $s^2 = 1/n$ keeps the variance in its linear regime;
#   **Xavier/Glorot** (Glorot & Bengio, 2010) compromises between the forward pass ($n_{in}$) and the
#   backward pass ($n_{out}$): $s^2 = 2/(n_{in}+n_{out})$. PyTorch's initialisers multiply both by a
#   *gain* to make up for what the nonlinearity takes away (`torch.nn.init.calculate_gain`: 5/3 for
#   tanh, $\sqrt2$ for ReLU), but with different defaults: `kaiming_normal_` derives it from its
#   `nonlinearity` argument, by default `"leaky_relu"` with slope `a = 0`, which is $\sqrt2$;
#   `xavier_normal_` takes it as `gain`, by default 1, the paper's form. Both are printed below.
# * **PyTorch's `nn.Linear` default** draws $W\sim U(-b, b)$ with $b = 1/\sqrt{n_{in}}$. A uniform
#   distribution on $[-b, b]$ has variance $b^2/3$, so $s = 1/\sqrt{3 n_{in}}$ and, per layer,
#   $\operatorname{Var}(z_l) = \tfrac13\,\mathbb{E}[h_{l-1}^2]$: a factor $1/6$ in variance
#   ($1/\sqrt6 \approx 0.41$ in standard deviation) for ReLU and $1/3$ ($0.58$) for tanh near 0.
# * **Naive** $N(0, 0.01^2)$ gives $n s^2 = 10^{-4} n$: for $n = 128$, a factor $0.011$ per layer.

# %%
show_source(init.init_std)

# %% [markdown]
# `init_weight` draws from exactly these distributions. With the same generator it returns the
# very numbers `torch.nn.init` draws, and the `"pytorch"` scheme is what `nn.Linear` does. Here is
# PyTorch's own code (`kaiming_uniform_` with `a = sqrt(5)` has gain $\sqrt{2/(1+5)} = 1/\sqrt3$ and
# bound $\text{gain}\cdot\sqrt{3/n_{in}} = 1/\sqrt{n_{in}}$):

# %%
print(inspect.getsource(nn.Linear.reset_parameters).split('"""')[-1].strip())
print("calculate_gain:", {nl: round(nn.init.calculate_gain(nl), 4) for nl in ("linear", "tanh", "relu")},
      "leaky_relu with a = 0:", round(nn.init.calculate_gain("leaky_relu", 0), 4))
for fn in (nn.init.xavier_normal_, nn.init.kaiming_normal_):
    defaults = {k: v.default for k, v in inspect.signature(fn).parameters.items()
                if v.default is not inspect.Parameter.empty and k != "generator"}
    print(f"{fn.__name__} defaults: {defaults}")

def same_draws(scheme, torch_init, nonlinearity="relu"):
    ours = init.init_weight(256, 128, scheme, nonlinearity, torch.Generator().manual_seed(1), torch.float64)
    ref = torch.empty(256, 128, dtype=torch.float64)
    torch_init(ref, torch.Generator().manual_seed(1))
    return ours, ref

compare("kaiming  vs kaiming_normal_", *same_draws("kaiming", lambda w, g: nn.init.kaiming_normal_(w, nonlinearity="relu", generator=g)))
compare("xavier   vs xavier_normal_ (tanh gain)", *same_draws("xavier", lambda w, g: nn.init.xavier_normal_(w, gain=5 / 3, generator=g), "tanh"))
compare("pytorch  vs nn.Linear's kaiming_uniform_(a=sqrt 5)", *same_draws("pytorch", lambda w, g: nn.init.kaiming_uniform_(w, a=math.sqrt(5), generator=g)))
torch.manual_seed(0)
w_default = nn.Linear(512, 512).weight.detach()
print(f"nn.Linear(512, 512).weight: std {w_default.std():.5f}, 1/sqrt(3*512) = {1 / math.sqrt(3 * 512):.5f}, "
      f"max |w| {w_default.abs().max():.5f} <= 1/sqrt(512) = {1 / math.sqrt(512):.5f}")

# %% [markdown]
# ### Measured layer by layer
# `depth_statistics` pushes a batch $X\sim N(0,1)$ of 256 rows through 20 layers of width 128 and
# back-propagates a fixed quadratic loss $L = \frac{1}{2B}\|h_L - Y\|^2$ (targets $Y\sim N(0,1)$). Its
# backward pass is written out, $\delta_L = (h_L - Y)/B \odot \phi'(z_L)$,
# $\partial L/\partial W_l = \delta_l^\top h_{l-1}$, $\delta_{l-1} = (\delta_l W_l)\odot\phi'(z_{l-1})$, and
# `tests/test_init.py` checks it against autograd.

# %%
show_source(init.depth_statistics)

# %%
schemes = {"naive": ("naive", None), "Xavier, gain 1": ("xavier", "linear"), "Xavier (torch gain)": ("xavier", None),
           "Kaiming": ("kaiming", None), "PyTorch default": ("pytorch", None)}
stats = {}
print(f"{'scheme':20s} {'act':5s} | std of h_l at layer 1, 5, 10, 20          | ||dL/dW_1||  ||dL/dW_1|| / ||dL/dW_20||")
for act in ("tanh", "relu"):
    for label, (scheme, gain_of) in schemes.items():
        s = init.depth_statistics(20, 128, scheme, act, batch=256, seed=0, gain_nonlinearity=gain_of)
        stats[label, act] = s
        stds = "  ".join(f"{s['activation_std'][i]:9.2e}" for i in (0, 4, 9, 19))
        g = s["gradient_norm"]
        print(f"{label:20s} {act:5s} | {stds} | {g[0]:10.2e}  {g[0] / g[-1]:9.2e}")

# %%
for act, expected in (("relu", 1 / math.sqrt(6)), ("tanh", 1 / math.sqrt(3))):
    z = stats["PyTorch default", act]["preactivation_std"]
    ratios = torch.tensor([b / a for a, b in zip(z, z[1:])])
    print(f"PyTorch default, {act}: std(z_l+1)/std(z_l) = {ratios.mean():.3f} +- {ratios.std():.3f} "
          f"(mean over layers; predicted {expected:.3f})")
k = stats["Kaiming", "relu"]["preactivation_std"]
print(f"Kaiming, relu: std(z_l) from {k[0]:.3f} (layer 1) to {k[-1]:.3f} (layer 20)")

# %% [markdown]
# The table shows what the variance law predicts. (For square layers, $n_{in} = n_{out}$, Xavier with
# torch's gain and Kaiming are the same formula, hence the identical rows.) The naive initialisation and PyTorch's default
# shrink the signal geometrically: after 20 ReLU layers the default leaves activations of order
# $10^{-8}$, and with them the gradients of the weights. The measured ratio per layer matches
# $1/\sqrt6$ for ReLU; for tanh it lies slightly below $1/\sqrt3$, as tanh compresses even small
# inputs a little. Kaiming keeps ReLU pre-activations at unit scale; Xavier with gain 1 (the
# paper's form) loses a factor $\sqrt2$ per ReLU layer and, with tanh, decays slowly, and the gain
# of 5/3 stabilises it. None of this says the default is a bug: shallow networks, residual
# connections and normalisation layers (section 2) all make it harmless. It matters when you stack
# plain layers, as the next measurement shows: ten hidden ReLU layers of width 64 on the digits,
# the same SGD (learning rate 0.1, 100 full-batch steps on 300 training images), only the
# initialisation or a batch-norm layer changed, three seeds each.

# %%
split = data.digits_splits()  # X_* (N, 64) in [0, 1], y_* (N,) in 0..9: train, validation, test
print(f"train {len(split.y_train)}, validation {len(split.y_val)}, test {len(split.y_test)} images")
per_class = 30  # a deliberately small training set: 30 images per class
pick = torch.cat([torch.nonzero(split.y_train == c).flatten()[:per_class] for c in range(10)])
X_small, y_small = split.X_train[pick], split.y_train[pick]


def make_mlp(widths, dropout=0.0, batch_norm=False, kaiming=False, seed=0):
    """Linear -> [BatchNorm] -> ReLU -> [Dropout] for every hidden layer, then a linear output."""
    torch.manual_seed(seed)
    layers = []
    for i, (n_in, n_out) in enumerate(zip(widths[:-1], widths[1:])):
        linear = nn.Linear(n_in, n_out)
        layers.append(linear)
        if i == len(widths) - 2:
            break
        if kaiming:
            linear.weight.data = init.init_weight(n_out, n_in, "kaiming", "relu")
            linear.bias.data.zero_()
        if batch_norm:
            layers.append(nn.BatchNorm1d(n_out))
        layers.append(nn.ReLU())
        if dropout:
            layers.append(nn.Dropout(dropout))
    return nn.Sequential(*layers)


@torch.no_grad()
def evaluate(model, X, y):
    """(cross-entropy, accuracy) in evaluation mode."""
    model.eval()
    out = model(X)
    return float(F.cross_entropy(out, y)), float((out.argmax(1) == y).float().mean())


deep, results = {}, {}
print(f"{'3 seeds: mean':22s} training loss    training  validation accuracy")
print(f"{'':22s} start -> end     accuracy  mean  (range)")
for label, options in (("PyTorch default", {}), ("Kaiming", {"kaiming": True}), ("default + batch norm", {"batch_norm": True})):
    rows = []
    for seed in (0, 1, 2):
        model = make_mlp([64] + [64] * 10 + [10], seed=seed, **options)
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        start = evaluate(model, X_small, y_small)[0]
        for step in range(100):
            model.train()
            opt.zero_grad()
            F.cross_entropy(model(X_small), y_small).backward()
            opt.step()
        rows.append([start, *evaluate(model, X_small, y_small), evaluate(model, split.X_val, split.y_val)[1]])
        if seed == 0:
            deep[label] = model  # section 2 looks inside this one
    r = results[label] = torch.tensor(rows)
    start, loss, acc, val = r.mean(0).tolist()
    print(f"{label:22s} {start:.3f} -> {loss:.3f}    {acc:.3f}     {val:.3f} ({r[:, 3].min():.3f}..{r[:, 3].max():.3f})")
print("batch norm below Kaiming in validation accuracy on every seed:",
      bool((results["default + batch norm"][:, 3] < results["Kaiming"][:, 3]).all()))
with torch.no_grad():
    out = make_mlp([64] + [64] * 10 + [10])(X_small)  # PyTorch's default, before training
print(f"PyTorch default before training: the logits vary by {out.std(0).mean():.1e} from image to image; "
      f"their typical size is {out.abs().mean():.1e}")

# %% [markdown]
# With PyTorch's default the deep ReLU network does not move from chance: the loss stays at
# $\log 10 = 2.303$ and the accuracy at 0.1. Its logits hardly depend on the input (the signal has
# shrunk by about $1/\sqrt6$ per layer while every layer adds its bias), so the gradient has no
# information about which image is which. The same network with Kaiming initialisation learns,
# and a batch-norm layer after each linear layer makes even the default initialisation trainable.
#
# Read the last two rows with care. Batch norm wins on *optimisation*: in 100 steps it fits all 300
# training images (training accuracy 1, loss near 0), while the Kaiming network still underfits.
# It loses on *validation*. That is not a verdict on batch norm against Kaiming: it is one learning
# rate, a budget of 100 steps, 300 images and 269 validation images, and a ten-layer network that
# has memorised its training set generalises poorly (the overfitting of section 3). Nor is it an
# artefact of evaluation mode, which normalises with running averages instead of batch statistics:
# section 2 checks that after these 100 steps the running averages agree with the statistics the
# final network computes on its training images. A lower training loss is not a better model;
# only held-out data can say which one is.
#
# Explore the signal through depth yourself: depth, width, scheme and activation; each row of the
# left panel is one layer's histogram (layer 1 at the top).

# %%
explorer = InitExplorer()
explorer

# %% [markdown]
# ## 2. Normalisation: batch norm and layer norm
#
# ### Batch norm
# Batch norm (Ioffe & Szegedy, 2015) normalises each channel over the batch. For
# $x\in\mathbb{R}^{N\times C}$ (or $N\times C\times L$, $N\times C\times H\times W$), with $m$ values per
# channel ($m = N$, $NL$ or $NHW$) and $\gamma,\beta\in\mathbb{R}^C$:
#
# $$\mu_c = \frac1m\sum x_{\cdot c\cdot},\qquad \sigma^2_c = \frac1m\sum (x_{\cdot c\cdot}-\mu_c)^2,\qquad
# \hat x = \frac{x-\mu}{\sqrt{\sigma^2+\epsilon}},\qquad y = \gamma\odot\hat x + \beta\qquad(\mu,\sigma^2\in\mathbb{R}^C;\ \hat x, y \text{ like } x).$$
#
# **Training** mode normalises with these batch statistics, and updates running estimates in place,
# with momentum $\alpha$ (PyTorch's `momentum`, default 0.1; note that it weighs the *new* value):
#
# $$\hat\mu \leftarrow (1-\alpha)\,\hat\mu + \alpha\,\mu,\qquad
# \hat\sigma^2 \leftarrow (1-\alpha)\,\hat\sigma^2 + \alpha\,\frac{m}{m-1}\,\sigma^2 .$$
#
# The normalisation uses the **biased** variance (divide by $m$), the running estimate the
# **unbiased** one ($m/(m-1)$). **Evaluation** mode uses $\hat\mu, \hat\sigma^2$ instead of the batch
# statistics, so a prediction no longer depends on the other images in the batch.

# %%
show_source(norm.batch_norm)

# %%
print(nn.BatchNorm1d(3), nn.BatchNorm2d(3), nn.LayerNorm(3), sep="\n")  # PyTorch's defaults
g64 = torch.Generator().manual_seed(0)
x = torch.randn(4, 3, 5, 5, generator=g64, dtype=torch.float64) * 2 + 1  # (N, C, H, W)
w, b = torch.rand(3, generator=g64, dtype=torch.float64) + 0.5, torch.randn(3, generator=g64, dtype=torch.float64)
rm, rv = torch.zeros(3, dtype=torch.float64), torch.ones(3, dtype=torch.float64)
rm_t, rv_t = rm.clone(), rv.clone()
compare("batch_norm, training", norm.batch_norm(x, rm, rv, w, b, training=True, momentum=0.1),
        F.batch_norm(x, rm_t, rv_t, w, b, training=True, momentum=0.1))
compare("running mean and variance after the update", [rm, rv], [rm_t, rv_t])
compare("batch_norm, evaluation", norm.batch_norm(x, rm, rv, w, b, training=False), F.batch_norm(x, rm_t, rv_t, w, b, training=False))
m = x.numel() // 3
biased, unbiased = x.var(dim=(0, 2, 3), unbiased=False), x.var(dim=(0, 2, 3), unbiased=True)
print(f"m = {m}; running_var = 0.9 * 1 + 0.1 * unbiased: {torch.allclose(rv, 0.9 + 0.1 * unbiased)}, "
      f"with the biased variance instead: {torch.allclose(rv, 0.9 + 0.1 * biased)}")

ours_module, torch_module = norm.BatchNorm(3, dtype=torch.float64), nn.BatchNorm2d(3, dtype=torch.float64)
for _ in range(3):
    batch = torch.randn(8, 3, 4, 4, generator=g64, dtype=torch.float64) * 3 + 2
    compare("BatchNorm vs nn.BatchNorm2d, a training step", ours_module(batch), torch_module(batch))
compare("running statistics after 3 steps", [ours_module.running_mean, ours_module.running_var],
        [torch_module.running_mean, torch_module.running_var])
ours_module.eval(), torch_module.eval()
_ = compare("BatchNorm vs nn.BatchNorm2d, evaluation", ours_module(batch), torch_module(batch))

# %% [markdown]
# The running mean is an exponential moving average: fed batches whose mean is 3, it reaches
# $3\,(1-0.9^k)$ after $k$ steps from its start at 0, about 10 % short after 22 steps. A model
# evaluated after only a few training steps therefore normalises with stale statistics.

# %%
running = torch.zeros(1)
for k in range(1, 23):
    batch = torch.randn(64, 1, generator=gen) + 3
    norm.batch_norm(batch, running, torch.ones(1), training=True, momentum=0.1)
    if k in (1, 5, 10, 22):
        print(f"after {k:2d} steps: running mean {running.item():.3f}, 3 (1 - 0.9^k) = {3 * (1 - 0.9**k):.3f}")

# %% [markdown]
# Why the unbiased variance? The biased batch variance underestimates the channel's variance by
# the factor $(m-1)/m$ on average, which is large for small batches. Averaged over many steps the
# running estimate inherits that bias unless it is fed $\frac{m}{m-1}\sigma^2$. The explorer below streams
# batches from $N(3, 2^2)$ through the update; here is what it measures for batches of $m = 3$:

# %%
bn_explorer = BatchNormExplorer()
for unbiased in (True, False):
    t = bn_explorer.trace(batch=3, momentum=0.05, steps=200, unbiased=unbiased)
    print(f"fed the {'unbiased' if unbiased else 'biased  '} variance: running variance averaged over steps 101-200 "
          f"{t['run_var'][100:].mean():.2f} (true variance 4, (m-1)/m * 4 = {4 * 2 / 3:.2f})")
bn_explorer.set_state(batch=3, momentum=0.05, steps=200)
bn_explorer

# %% [markdown]
# **Train versus eval mode matters.** First, are the running statistics of the batch-norm network
# of section 1 (seed 0) trustworthy after only 100 steps? Compare them with the statistics the
# final network computes on its 300 training images (a copy run once in training mode with
# momentum 1, which stores exactly that batch's statistics). Then evaluate the validation images
# in training mode (each batch normalised with its own statistics) instead of evaluation mode:

# %%
bn_model = deep["default + batch norm"]
fresh = copy.deepcopy(bn_model).train()
for layer in fresh.modules():
    if isinstance(layer, nn.BatchNorm1d):
        layer.momentum = 1.0  # the running statistics become this one batch's
with torch.no_grad():
    fresh(X_small)
pairs = [(a, b) for a, b in zip(bn_model.modules(), fresh.modules()) if isinstance(a, nn.BatchNorm1d)]
rel = {k: max(float((getattr(a, k) - getattr(b, k)).norm() / getattr(b, k).norm()) for a, b in pairs)
       for k in ("running_mean", "running_var")}
print(f"after 100 steps (start values weighted 0.9^100 = {0.9**100:.1e}): running statistics vs the final network's "
      f"on the training images, largest relative difference {rel['running_mean']:.1%} (mean), {rel['running_var']:.1%} (variance)")
print(f"evaluation mode (running statistics):  validation accuracy {evaluate(bn_model, split.X_val, split.y_val)[1]:.3f}")
print(f"evaluation mode, recomputed statistics: validation accuracy {evaluate(fresh, split.X_val, split.y_val)[1]:.3f}")
probe = copy.deepcopy(bn_model).train()  # a copy: forward passes in training mode move the running statistics
with torch.no_grad():
    for batch_size in (269, 32, 8):
        correct = sum(int((probe(xb).argmax(1) == yb).sum())
                      for xb, yb in zip(split.X_val.split(batch_size), split.y_val.split(batch_size)))
        print(f"training mode, batches of {batch_size:3d}:      validation accuracy {correct / len(split.y_val):.3f}")
    try:
        probe(split.X_val[:1])
    except ValueError as err:
        print("training mode, one image:", err)

# %% [markdown]
# The running statistics are not what holds this network back: after 100 steps they agree with
# the training-set statistics of the final weights to a fraction of a percent, and recomputing them
# leaves the validation accuracy where it was (the gap to Kaiming in section 1 is overfitting, not
# evaluation mode). Normalised with the statistics of the whole validation set, in training mode,
# the network does a little better than with its running statistics: those describe the training
# images, and normalising the validation set by itself adapts to it, which a single test image
# arriving alone does not allow. With batches of 32 and then 8 images the accuracy drops, because
# each image is now normalised by whatever else happens to be in its batch, and a single image
# cannot be normalised at all. Call `model.eval()` before evaluating.

# %% [markdown]
# ### The backward pass of batch norm
# With $s = (\sigma^2+\epsilon)^{-1/2}\in\mathbb{R}^C$ and $g = \partial L/\partial y$ (like $x$), sums over all
# dimensions but $C$:
#
# $$\frac{\partial L}{\partial\beta} = \sum g,\qquad \frac{\partial L}{\partial\gamma} = \sum g\odot\hat x,\qquad
# \frac{\partial L}{\partial x} = \frac{\gamma\, s}{m}\Big(m\,g - \sum g - \hat x\odot\sum g\odot\hat x\Big).$$
#
# The derivation: $\partial L/\partial\hat x = \gamma g$; $\hat x$ depends on $x$ directly and through
# $\mu$ and $\sigma^2$, and $\partial\sigma^2/\partial x = 2(x-\mu)/m$, $\partial\mu/\partial x = 1/m$. The two
# subtracted sums remove the components of the gradient along the directions the normalisation
# removes: a shift of the whole channel and a rescaling of it. Hence $\sum_{\cdot}\partial L/\partial x = 0$
# per channel exactly, and $\sum \hat x\odot\partial L/\partial x = 0$ up to a term proportional to $\epsilon$
# (it vanishes for $\epsilon = 0$; measured below).

# %%
show_source(norm.batch_norm_backward)

# %%
xg = x.clone().requires_grad_()
wg, bg = w.clone().requires_grad_(), b.clone().requires_grad_()
dy = torch.randn(x.shape, generator=g64, dtype=torch.float64)
torch_grads = torch.autograd.grad(F.batch_norm(xg, None, None, wg, bg, training=True), (xg, wg, bg), dy)
dx, dw, db = norm.batch_norm_backward(dy, x, w)
compare("batch_norm_backward vs autograd of F.batch_norm (dx, dgamma, dbeta)", [dx, dw, db], list(torch_grads))
s = (x.var(dim=(0, 2, 3), unbiased=False) + 1e-5).rsqrt().reshape(1, 3, 1, 1)
xhat = (x - x.mean(dim=(0, 2, 3), keepdim=True)) * s
gsum, gx = dy.sum(dim=(0, 2, 3), keepdim=True), (dy * xhat).sum(dim=(0, 2, 3), keepdim=True)
formula = w.reshape(1, 3, 1, 1) * s / m * (m * dy - gsum - xhat * gx)
compare("the formula above, written out with tensors", formula, torch_grads[0])
dx0 = norm.batch_norm_backward(dy, x, w, eps=0.0)[0]
xhat0 = (x - x.mean(dim=(0, 2, 3), keepdim=True)) * x.var(dim=(0, 2, 3), unbiased=False).rsqrt().reshape(1, 3, 1, 1)
print(f"largest per-channel |sum of dx|: {dx.sum(dim=(0, 2, 3)).abs().max():.1e}; "
      f"|sum of xhat * dx|: {(xhat * dx).sum(dim=(0, 2, 3)).abs().max():.1e} (eps = 1e-5), "
      f"{(xhat0 * dx0).sum(dim=(0, 2, 3)).abs().max():.1e} (eps = 0)")

# %% [markdown]
# ### Layer norm
# Layer norm (Ba, Kiros & Hinton, 2016) normalises each *sample* over its last dimensions instead of
# each channel over the batch: for $x\in\mathbb{R}^{B\times D}$, $\mu,\sigma^2\in\mathbb{R}^{B\times1}$ are taken
# over $D$, and $\gamma,\beta\in\mathbb{R}^D$. It needs no running statistics, computes the same in
# training and evaluation, and works for a batch of one: the normalisation of recurrent networks
# and Transformers. Its backward pass has the same shape as batch norm's, with means over the
# normalised dimensions: $\partial L/\partial x = s\,(\gamma g - \overline{\gamma g} - \hat x\odot\overline{\gamma g\odot\hat x})$.

# %%
show_source(norm.layer_norm_backward)

# %%
xl = torch.randn(5, 7, 6, generator=g64, dtype=torch.float64).requires_grad_()
ln_ref = nn.LayerNorm((7, 6), dtype=torch.float64)
with torch.no_grad():
    ln_ref.weight.copy_(torch.rand(7, 6, generator=g64, dtype=torch.float64) + 0.5)
    ln_ref.bias.copy_(torch.randn(7, 6, generator=g64, dtype=torch.float64))
y_ref = ln_ref(xl)
compare("layer_norm vs nn.LayerNorm", norm.layer_norm(xl, (7, 6), ln_ref.weight, ln_ref.bias), y_ref)
dy = torch.randn(xl.shape, generator=g64, dtype=torch.float64)
ref_grads = torch.autograd.grad(y_ref, (xl, ln_ref.weight, ln_ref.bias), dy)
compare("layer_norm_backward vs autograd", list(norm.layer_norm_backward(dy, xl.detach(), (7, 6), ln_ref.weight.detach())), list(ref_grads))
one = xl[:1].detach()
_ = compare("layer norm of one sample alone = inside a batch", norm.layer_norm(one, (7, 6)), norm.layer_norm(xl.detach(), (7, 6))[:1])

# %% [markdown]
# ## 3. Regularisation and generalisation
#
# **The protocol.** `digits_splits()` gives three disjoint parts: the weights are fitted on
# *train*, every choice (regulariser, its strength, the number of epochs, the model) is made on
# *validation*, and *test* is read once, for the model finally chosen. A test score that was used
# to choose is biased upwards, exactly like a validation score after the choice.
#
# **Overfitting made visible.** The 300 training images of section 1 (30 per class) and a network
# far too large for them: 64 → 128 → 128 → 10, 26,122 parameters, trained full batch with Adam
# (learning rate 3e-3) for 100 epochs. Every run below changes **one thing** relative to this
# baseline, with the same seed; three seeds of the baseline show how much of a difference is noise.

# %%
WIDTHS, EPOCHS, EVERY, LR = [64, 128, 128, 10], 100, 5, 3e-3
print("parameters:", sum(p.numel() for p in make_mlp(WIDTHS).parameters()))


def train_run(model, opt, epochs=EPOCHS, augment=False, stopper=None, seed=0):
    """Full-batch training on (X_small, y_small); every EVERY epochs record the training and
    validation loss and the validation accuracy. ``stopper``: early stopping on validation loss."""
    shifts = torch.Generator().manual_seed(seed)
    hist = {"epoch": [], "train": [], "val": [], "val_acc": []}
    for epoch in range(1, epochs + 1):
        model.train()
        X = reg.random_shifts(X_small, shifts, max_shift=1) if augment else X_small
        opt.zero_grad()
        F.cross_entropy(model(X), y_small).backward()
        opt.step()
        if epoch % EVERY == 0:
            train_loss = evaluate(model, X_small, y_small)[0]
            val_loss, val_acc = evaluate(model, split.X_val, split.y_val)
            for key, v in zip(hist, (epoch, train_loss, val_loss, val_acc)):
                hist[key].append(v)
            if stopper is not None and stopper.step(val_loss, model):
                model.load_state_dict(stopper.best_state)  # back to the best epoch
                break
    return hist


runs = {}


def record(label, model, hist):
    val_loss, val_acc = evaluate(model, split.X_val, split.y_val)
    runs[label] = {"model": model, "hist": hist, "val_loss": val_loss, "val_acc": val_acc}
    print(f"{label:30s} train loss {evaluate(model, X_small, y_small)[0]:.4f}  validation loss {val_loss:.3f}  "
          f"accuracy {val_acc:.3f}")


for seed in (0, 1, 2):
    model = make_mlp(WIDTHS, seed=seed)
    record(f"baseline, seed {seed}", model, train_run(model, torch.optim.Adam(model.parameters(), lr=LR)))

# %%
base = runs["baseline, seed 0"]["hist"]
fig, ax = plt.subplots(1, 2, figsize=(9, 3.2))
ax[0].plot(base["epoch"], base["train"], label="train")
ax[0].plot(base["epoch"], base["val"], label="validation")
ax[0].set_yscale("log"), ax[0].set_xlabel("epoch"), ax[0].set_ylabel("cross-entropy"), ax[0].legend()
ax[1].plot(base["epoch"], base["val_acc"], color="tab:orange")
ax[1].set_xlabel("epoch"), ax[1].set_ylabel("validation accuracy")
fig.suptitle("baseline: 300 training images, 26k parameters", fontsize=10)
fig.tight_layout()
plt.show()
best = min(range(len(base["val"])), key=base["val"].__getitem__)
print(f"validation loss: lowest {base['val'][best]:.3f} at epoch {base['epoch'][best]}, {base['val'][-1]:.3f} at epoch {EPOCHS}; "
      f"training loss {base['train'][-1]:.4f} at the end")
accs = torch.tensor([runs[f"baseline, seed {s}"]["val_acc"] for s in (0, 1, 2)])
print(f"baseline validation accuracy over 3 seeds: {accs.mean():.3f}, range {accs.min():.3f}..{accs.max():.3f}")

# %% [markdown]
# The training loss keeps falling towards 0 while the validation loss turns upwards: the network
# memorises the 300 images, and its growing confidence on the validation images it gets wrong
# costs more and more cross-entropy. Validation *accuracy* changes much less than validation loss.
# The spread over three seeds is the yardstick for every comparison below.
#
# ### Weight decay: L2 versus decoupled
# An **L2 penalty** adds $\frac\lambda2\|\theta\|^2$ to the loss, that is $\lambda\theta$ to the gradient.
# For plain SGD this is the same as shrinking the weights by $(1-\eta\lambda)$ every step. For
# **Adam** it is not: the term $\lambda\theta$ enters the moments $m$ and $v$ and is divided by
# $\sqrt{\hat v}$, so a weight with small gradients is decayed far more strongly than a weight with
# large ones. **Decoupled weight decay** (AdamW; Loshchilov & Hutter, 2019) shrinks the parameter
# directly, $\theta\leftarrow\theta(1-\eta\lambda)$, then takes the Adam step with the plain gradient:

# %%
show_source(reg.adamw_step)

# %%
p = torch.randn(5, 4, generator=g64, dtype=torch.float64, requires_grad=True)
opt = torch.optim.AdamW([p], lr=0.1, weight_decay=0.5)
p0, state_m, state_v = p.detach().clone(), torch.zeros(5, 4, dtype=torch.float64), torch.zeros(5, 4, dtype=torch.float64)
for t in (1, 2, 3):
    g = torch.randn(5, 4, generator=g64, dtype=torch.float64)
    p.grad = g.clone()
    opt.step()
    p0, state_m, state_v = reg.adamw_step(p0, g, state_m, state_v, t, lr=0.1, weight_decay=0.5)
compare("adamw_step vs torch.optim.AdamW, 3 steps", p0, p.detach())
p = torch.randn(5, 4, generator=g64, dtype=torch.float64, requires_grad=True)
opt = torch.optim.Adam([p], lr=0.1, weight_decay=0.5)  # Adam's weight_decay: L2, lambda * theta added to the gradient
p0, state_m, state_v = p.detach().clone(), torch.zeros(5, 4, dtype=torch.float64), torch.zeros(5, 4, dtype=torch.float64)
for t in (1, 2, 3):
    g = torch.randn(5, 4, generator=g64, dtype=torch.float64)
    p.grad = g.clone()
    opt.step()
    p0, state_m, state_v = optim.adam_step(p0, g + 0.5 * p0, state_m, state_v, t, lr=0.1)
_ = compare("Adam on grad + lambda * theta vs torch.optim.Adam(weight_decay=lambda), 3 steps", p0, p.detach())

# %%
for label, make_opt in (("Adam + L2, lambda = 0.01", lambda ps: torch.optim.Adam(ps, lr=LR, weight_decay=0.01)),
                        ("AdamW, lambda = 0.01", lambda ps: torch.optim.AdamW(ps, lr=LR, weight_decay=0.01)),
                        ("AdamW, lambda = 1", lambda ps: torch.optim.AdamW(ps, lr=LR, weight_decay=1.0))):
    model = make_mlp(WIDTHS)
    record(label, model, train_run(model, make_opt(model.parameters())))

blank = X_small.abs().sum(0) == 0  # pixels that are 0 in every training image
print(f"{int(blank.sum())} pixels are blank in all 300 training images; their weights get no gradient from the data.")
blank_norm = {}
for label in ("baseline, seed 0", "Adam + L2, lambda = 0.01", "AdamW, lambda = 0.01", "AdamW, lambda = 1"):
    W1 = runs[label]["model"][0].weight.detach()
    blank_norm[label] = W1[:, blank].norm()
    print(f"{label:28s} first-layer weights: norm on blank pixels {W1[:, blank].norm():.4f}, on the others {W1[:, ~blank].norm():.2f}")
for lam in (0.01, 1):
    print(f"AdamW, lambda = {lam}: blank-pixel weights shrunk by {1 - blank_norm[f'AdamW, lambda = {lam}'] / blank_norm['baseline, seed 0']:.2%}; "
          f"1 - (1 - lr * lambda)^{EPOCHS} = {1 - (1 - LR * lam) ** EPOCHS:.2%}")

# %% [markdown]
# The weights of the always-blank pixels show the difference. With L2 inside Adam their only
# gradient is $\lambda\theta$, which Adam's normalisation turns into a step of about the learning
# rate towards 0, whatever $\lambda$: within 100 steps they are all but gone. AdamW multiplies them by
# $(1-\eta\lambda)^{100}$, exactly as predicted (printed above), like every other weight. The same number $\lambda = 0.01$ is a strong regulariser as L2 in Adam (it
# raises the training loss by more than an order of magnitude) and almost nothing as decoupled decay: the two
# `weight_decay` arguments are different hyperparameters. Neither improves the validation accuracy
# beyond the seed-to-seed spread on this data.
#
# ### Dropout
# Dropout (Srivastava et al., 2014) zeroes each unit with probability $p$ during training. The
# *inverted* form, the one PyTorch implements (checked below), rescales the kept units by $1/(1-p)$ at training time, so
# that $\mathbb{E}[y] = x$ and evaluation is the identity: $y = x\odot M/(1-p)$ with $M\in\{0,1\}$ like $x$
# marking the kept units. (The paper scales the weights by $1-p$ at test time instead; the
# networks are equivalent.)

# %%
show_source(reg.dropout)

# %%
xd = torch.randn(6, 8, generator=g64, dtype=torch.float64)
torch.manual_seed(123)
torch_mask = F.dropout(torch.ones_like(xd), p=0.3, training=True) != 0  # torch's own mask: dropout of ones
torch.manual_seed(123)
compare("dropout with torch's mask vs F.dropout", reg.dropout(xd, 0.3, mask=torch_mask), F.dropout(xd, p=0.3, training=True))
compare("evaluation mode: identity, like nn.Dropout().eval()", reg.dropout(xd, 0.3, training=False), nn.Dropout(0.3).eval()(xd))
kept = reg.dropout(torch.ones(100_000), 0.3, generator=torch.Generator().manual_seed(0))
print(f"mean of dropout(ones, p=0.3) over 100,000 units: {kept.mean():.4f} (fraction kept {(kept > 0).float().mean():.4f})")

model = make_mlp(WIDTHS, dropout=0.5)
record("dropout p = 0.5", model, train_run(model, torch.optim.Adam(model.parameters(), lr=LR)))

# %% [markdown]
# ### Early stopping
# Since the validation loss turns upwards, stop there: `EarlyStopping` watches the validation loss
# every 5 epochs, stops after `patience` checks without improvement and restores the best weights.

# %%
show_source(reg.EarlyStopping)

# %%
model = make_mlp(WIDTHS)
stopper = reg.EarlyStopping(patience=4)
hist = train_run(model, torch.optim.Adam(model.parameters(), lr=LR), stopper=stopper)
record("early stopping (patience 4)", model, hist)
print(f"stopped after epoch {hist['epoch'][-1]}; best validation loss {stopper.best:.3f} at epoch {hist['epoch'][stopper.best_step]}")

# %% [markdown]
# ### Data augmentation: shifted digits
# A digit moved by one pixel is still the same digit. Training on randomly shifted copies
# ($dx, dy\in\{-1,0,1\}$, a new draw every epoch) teaches the network that invariance instead of
# memorising pixel positions. We measure accuracy on the validation images as they are, and on
# the same images shifted one pixel to the right.

# %%
fig, ax = plt.subplots(1, 1, figsize=(6, 1.3))
ax.imshow(data.tile_images(torch.cat([reg.shift_images(X_small[:1], dx, dy) for dy in (-1, 0, 1) for dx in (-1, 0, 1)]), cols=9),
          cmap="gray_r")
ax.set_axis_off(), ax.set_title("one training digit and its eight one-pixel shifts", fontsize=9)
plt.show()

model = make_mlp(WIDTHS)
record("random shifts", model, train_run(model, torch.optim.Adam(model.parameters(), lr=LR), augment=True))
X_val_right = reg.shift_images(split.X_val, 1, 0)
for label in ("baseline, seed 0", "random shifts"):
    print(f"{label:16s} validation accuracy: as is {runs[label]['val_acc']:.3f}, shifted right {evaluate(runs[label]['model'], X_val_right, split.y_val)[1]:.3f}")

# %% [markdown]
# The baseline, which has only ever seen digits in their original position, loses about half of
# its validation accuracy when the digits move one pixel to the right; the network trained on
# shifted copies hardly notices. The price within the same 100 epochs: a harder training task, a
# higher training loss and a lower accuracy on the unshifted validation images. Augmentation buys
# an invariance at a price in fit; whether a longer training budget would recover the accuracy on
# unshifted digits is not measured here.
#
# ### Gradient clipping
# When one batch produces a huge gradient (common in recurrent networks, chapters 09 and 10),
# clipping rescales all gradients together so that their joint norm is at most `max_norm`:
#
# $$N = \big\|(\|g_1\|_p,\dots,\|g_k\|_p)\big\|_p,\qquad g_i \leftarrow g_i\cdot\min\!\Big(1, \frac{\text{max\_norm}}{N + 10^{-6}}\Big).$$
#
# The $10^{-6}$ is PyTorch's: a gradient whose norm is exactly `max_norm` still shrinks by a hair.
# With `norm_type=inf`, $N$ is the largest absolute entry. An inf or NaN in any gradient makes $N$
# non-finite: with the default `error_if_nonfinite=False` PyTorch then multiplies by $0$ (for
# $N=\infty$) or NaN, so every gradient becomes 0 or NaN; `error_if_nonfinite=True` raises instead.

# %%
show_source(reg.clip_grad_norm)


# %%
def torch_clipped(grads, max_norm, norm_type=2.0):
    params = [torch.zeros_like(g, requires_grad=True) for g in grads]
    for p_, g_ in zip(params, grads):
        p_.grad = g_.clone()
    total = torch.nn.utils.clip_grad_norm_(params, max_norm, norm_type)
    return [p_.grad for p_ in params], float(total)


model = make_mlp(WIDTHS)
F.cross_entropy(model(X_small), y_small).backward()
grads = [p_.grad.double() for p_ in model.parameters()]
for norm_type in (2.0, 1.0, math.inf):
    (ours, total), (ref, ref_total) = reg.clip_grad_norm(grads, 0.1, norm_type), torch_clipped(grads, 0.1, norm_type)
    compare(f"clip_grad_norm vs clip_grad_norm_, norm {norm_type} (total {total:.4f})", ours + [torch.tensor(total)], ref + [torch.tensor(ref_total)])
exact = [torch.tensor([3.0, 4.0], dtype=torch.float64)]  # norm exactly 5
print("norm exactly max_norm = 5: scaled by", float(reg.clip_grad_norm(exact, 5.0)[0][0][0] / 3), "=", 5 / (5 + 1e-6),
      "; torch:", float(torch_clipped(exact, 5.0)[0][0][0] / 3))
bad = [torch.tensor([1.0, math.inf], dtype=torch.float64), torch.tensor([2.0, -1.0], dtype=torch.float64)]
print("an inf entry, ours: ", reg.clip_grad_norm(bad, 1.0))
print("an inf entry, torch:", torch_clipped(bad, 1.0))
try:
    p_bad = torch.zeros(2, requires_grad=True)
    p_bad.grad = bad[0].float()
    torch.nn.utils.clip_grad_norm_([p_bad], 1.0, error_if_nonfinite=True)
except RuntimeError as err:
    print("error_if_nonfinite=True:", str(err)[:80], "...")

# %% [markdown]
# ### Choosing on validation, reporting test once
# Every run above differs from the baseline in one respect. We choose the run with the best
# validation accuracy (ties: lower validation loss) and only then look at its test accuracy, once.

# %%
print(f"{'run':30s} validation accuracy  validation loss")
for label, r in sorted(runs.items(), key=lambda kv: (-kv[1]["val_acc"], kv[1]["val_loss"])):
    print(f"{label:30s} {r['val_acc']:.3f}                {r['val_loss']:.3f}")
chosen = min(runs, key=lambda k: (-runs[k]["val_acc"], runs[k]["val_loss"]))
print(f"\nchosen on validation: {chosen}")
print(f"test accuracy of the chosen model (read once): {evaluate(runs[chosen]['model'], split.X_test, split.y_test)[1]:.3f}")

# %% [markdown]
# With 269 validation images one percentage point is 2.7 images, so the top runs differ from the
# baseline by a handful of images, and three seeds of the baseline are too few to measure the
# noise well: treat the ranking as suggestive, not established. The winner's validation score is
# also an optimistic estimate (it is the maximum of several noisy scores on the same 269 images);
# the test score, read once, is the honest one.
#
# ## 4. The practical recipe
# Before tuning anything, four checks catch most bugs.
#
# **Look at the data.** Shapes, ranges, class balance, a few images with their labels:

# %%
print(f"X_small {tuple(X_small.shape)}, pixel range [{X_small.min():.2f}, {X_small.max():.2f}], "
      f"images per class {torch.bincount(y_small).tolist()}")
fig, ax = plt.subplots(1, 1, figsize=(6, 1.1))
ax.imshow(data.tile_images(X_small[:10], cols=10), cmap="gray_r")
ax.set_axis_off(), ax.set_title("labels: " + " ".join(str(int(c)) for c in y_small[:10]), fontsize=9)
plt.show()

# %% [markdown]
# **Check the initial loss.** A freshly initialised classifier should be unsure: probabilities
# near $1/C$, so the cross-entropy near $\log C$ ($\log 10 = 2.303$). A much larger value means
# over-confident random outputs (too large a last layer, or logits passed through something they
# should not be).

# %%
model = make_mlp(WIDTHS)
print(f"initial loss {evaluate(model, X_small, y_small)[0]:.4f}, log 10 = {math.log(10):.4f}")
with torch.no_grad():
    model[-1].weight.mul_(100)  # an over-scaled output layer
print(f"output layer weights x100: initial loss {evaluate(model, X_small, y_small)[0]:.3f}")

# %% [markdown]
# **Overfit one small batch.** A correct model and training loop drive the loss on 20 images to
# almost 0 in a few dozen steps. If it cannot, no regulariser will help: something is broken. A
# classic bug, a softmax before `F.cross_entropy` (which applies log-softmax itself), cannot: the
# "logits" are then probabilities in $[0, 1]$, the largest probability it can output is
# $e/(e+9) = 0.232$, so the loss cannot go below $-\log 0.232 = 1.461$.

# %%
def overfit_one_batch(double_softmax):
    model = make_mlp(WIDTHS)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    xb, yb = X_small[:20], y_small[:20]
    for _ in range(60):
        out = model(xb)
        loss = F.cross_entropy(out.softmax(1) if double_softmax else out, yb)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return float(loss.detach())


print(f"correct:                   loss on 20 images after 60 steps {overfit_one_batch(False):.4f}")
print(f"softmax before the loss:   loss on 20 images after 60 steps {overfit_one_batch(True):.4f} "
      f"(floor -log(e/(e+9)) = {-math.log(math.e / (math.e + 9)):.4f})")

# %% [markdown]
# **Change one thing at a time, and know your noise.** Every run of section 3 changed exactly one
# setting against the same baseline and seed, and three seeds of the baseline measured the noise;
# a change smaller than that spread is not evidence. Changing two things at once tells you neither
# effect.

# %%
print(f"notebook compute time: {time.perf_counter() - NOTEBOOK_START:.1f} s")

# %% [markdown]
# ## Summary
#
# * A plain layer multiplies the signal's variance by $n_{in}s^2$ times what the nonlinearity keeps.
#   Kaiming ($s = \sqrt2/\sqrt{n_{in}}$) keeps ReLU networks at unit scale; Xavier with torch's tanh
#   gain does the same for tanh. PyTorch's `nn.Linear` default, $U(\pm1/\sqrt{n_{in}})$ with std
#   $1/\sqrt{3n_{in}}$, shrinks the standard deviation by $1/\sqrt6$ per ReLU layer (measured 0.41):
#   a plain 10-layer ReLU network with it does not train with SGD, with Kaiming or batch norm it does
#   (batch norm fits the 300 training images fastest, which is not the same as generalising best).
# * Batch norm normalises each channel with the batch's mean and *biased* variance in training,
#   keeps running estimates with the *unbiased* variance and momentum 0.1, and uses them in
#   evaluation. Forgetting `model.eval()` makes predictions depend on the batch. Its backward pass
#   removes the gradient's components along the shift and the scale of each channel. Layer norm
#   normalises each sample and behaves the same in training and evaluation.
# * With few training images a large network memorises: the training loss goes to 0 while the
#   validation loss rises. L2 in Adam and decoupled weight decay (AdamW) are different regularisers;
#   inverted dropout rescales at training time; early stopping chooses the epoch on validation;
#   shifted copies teach shift invariance; gradient clipping rescales all gradients jointly (with
#   PyTorch's $10^{-6}$ and its handling of non-finite norms). Choose on validation, read test once.
# * Look at the data, check the initial loss against $\log C$, overfit one batch, change one thing at
#   a time against the seed-to-seed noise.
#
# ## Exercises
#
# Open `exercises/08_training.ipynb`: derive the Kaiming standard deviation, write batch norm in
# training and evaluation mode, debug a running-statistics update, derive batch norm's backward
# pass, predict (then measure) how far the signal falls through ten ReLU layers under PyTorch's
# default, Xavier's and Kaiming's initialisation, and write gradient clipping by the global norm,
# each with an instant check that names the typical mistake it recognises.
#
# ## References
#
# * X. Glorot, Y. Bengio. *Understanding the difficulty of training deep feedforward neural
#   networks.* Proceedings of AISTATS 2010, 249–256.
# * K. He, X. Zhang, S. Ren, J. Sun. *Delving Deep into Rectifiers: Surpassing Human-Level
#   Performance on ImageNet Classification.* arXiv:1502.01852 (2015).
# * S. Ioffe, C. Szegedy. *Batch Normalization: Accelerating Deep Network Training by Reducing
#   Internal Covariate Shift.* arXiv:1502.03167 (2015).
# * J. L. Ba, J. R. Kiros, G. E. Hinton. *Layer Normalization.* arXiv:1607.06450 (2016).
# * N. Srivastava, G. Hinton, A. Krizhevsky, I. Sutskever, R. Salakhutdinov. *Dropout: A Simple Way
#   to Prevent Neural Networks from Overfitting.* Journal of Machine Learning Research 15(56),
#   1929–1958 (2014).
# * I. Loshchilov, F. Hutter. *Decoupled Weight Decay Regularization.* ICLR 2019, arXiv:1711.05101.
# * PyTorch documentation: `torch.nn.init`, `nn.Linear`, `nn.BatchNorm1d/2d`, `nn.LayerNorm`,
#   `nn.Dropout`, `torch.optim.AdamW`, `torch.nn.utils.clip_grad_norm_`.

# %%
print(explorer.self_check())
print(bn_explorer.self_check())
