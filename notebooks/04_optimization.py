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
# # 04 · Optimisation and training
#
# <a href="https://colab.research.google.com/github/nn-from-scratch/course/blob/main/notebooks/04_optimization.ipynb" target="_parent"><img src="https://colab.research.google.com/assets/colab-badge.svg" alt="Open In Colab"/></a>
#
# Chapter 02 gave us a loss $L(\theta)$ that measures how wrong a network with parameters $\theta$
# is; chapter 03 gave us its gradient $\nabla L(\theta)$, for every parameter at once. This chapter
# uses them: an **optimiser** turns gradients into parameter updates, step after step, until the
# loss is small. We start with plain gradient descent, see why it is slow on badly shaped losses,
# and fix it with **momentum**, **Nesterov** momentum and **Adam**, which adapts the step size to
# each parameter. Every update rule is written from scratch in `course_lib.optim`, exactly as
# `torch.optim` implements it, and checked against `torch.optim` over 100 steps. Then we put the
# pieces together in a training loop, repair the broken training listing of the talent article
# (one of the course's two source articles, introduced in chapter 00), and train a small network
# to separate three interleaved spirals.

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
import torch.nn as nn
import torch.nn.functional as F

from course_lib import data, optim, train
from course_lib.compare import compare
from course_lib.device import seed_everything
from course_lib.show import show_source
from course_lib.widgets.optim import OptimizerExplorer

gen = seed_everything(0)
torch.set_num_threads(1)  # tiny tensors: splitting them over threads costs more than it saves
torch.set_printoptions(precision=4, sci_mode=False)
DT = torch.float64  # comparisons with PyTorch run in float64: agreement to ~1e-15 means "the same rule"

# %% [markdown]
# ## 1. Gradient descent
#
# Collect all parameters of a network in one vector $\theta \in \mathbb{R}^{P}$ (in code they are
# several tensors of different shapes; every rule below acts on each of them elementwise, so each
# update has its tensor's shape). The gradient $g = \nabla L(\theta) \in \mathbb{R}^{P}$ points in
# the direction in which the loss grows fastest. **Gradient descent** takes a small step the other
# way, again and again:
#
# $$g_t = \nabla L(\theta_{t-1}), \qquad \theta_t = \theta_{t-1} - \eta\, g_t ,\qquad t = 1, 2, \dots$$
#
# The step size $\eta > 0$ is the **learning rate**. In code:

# %%
show_source(optim.gd_step)

# %% [markdown]
# How large may $\eta$ be? Take the simplest loss, a parabola $L(\theta) = \frac{a}{2}\theta^2$
# with curvature $a > 0$. Its gradient is $a\theta$, so one step gives
# $\theta_t = (1 - \eta a)\,\theta_{t-1}$: the iterates shrink towards the minimum $0$ only if
# $|1 - \eta a| < 1$, that is $0 < \eta < 2/a$. Below $1/a$ they creep in from one side, between
# $1/a$ and $2/a$ they overshoot and oscillate, above $2/a$ they blow up:

# %%
a = 4.0  # curvature: the limit is 2 / a = 0.5
for lr in (0.05, 0.2, 0.45, 0.55):
    theta = torch.tensor([1.0], dtype=DT)
    path = [float(theta)]
    for t in range(8):
        theta = optim.gd_step(theta, a * theta, lr)  # the gradient of a/2 * theta^2 is a * theta
        path.append(float(theta))
    print(f"lr={lr:<5} 1 - lr*a = {1 - lr * a:+.2f}:", " ".join(f"{p:+.3f}" for p in path))

# %% [markdown]
# A network's loss has many directions with very different curvatures. Near a minimum it looks
# like a quadratic $\frac12 \sum_k a_k \theta_k^2$, and one learning rate must satisfy
# $\eta < 2/a_{\max}$ for the *steepest* direction, while the *flattest* direction then shrinks
# by only $1 - \eta a_{\min}$ per step. The ratio $\kappa = a_{\max}/a_{\min}$, the **condition
# number**, decides how slow gradient descent is. The optimisers of the next sections are answers
# to this problem.
#
# One step of `torch.optim.SGD` without momentum is exactly this rule:

# %%
theta0, g = torch.randn(3, 4, dtype=DT), torch.randn(3, 4, dtype=DT)
p = theta0.clone().requires_grad_()
p.grad = g.clone()
torch.optim.SGD([p], lr=0.1).step()
compare("gd_step vs torch.optim.SGD", optim.gd_step(theta0, g, 0.1), p.detach())

# %% [markdown]
# ## 2. Stochastic gradient descent and minibatches
#
# The training loss is an average over $N$ examples, $L(\theta) = \frac1N \sum_{i=1}^{N}
# \ell_i(\theta)$, so its gradient costs a pass over the whole data set. **Stochastic gradient
# descent** (SGD, after Robbins and Monro, 1951) uses the average over a random **minibatch**
# $B \subset \{1, \dots, N\}$ of $|B|$ examples instead, with inputs $X_B \in \mathbb{R}^{|B|
# \times D}$:
#
# $$\hat g_t = \frac{1}{|B|} \sum_{i \in B} \nabla \ell_i(\theta_{t-1}), \qquad
# \theta_t = \theta_{t-1} - \eta\, \hat g_t .$$
#
# $\hat g_t$ is a noisy but unbiased estimate of the full gradient. It needs the gradients of $|B|$
# examples instead of $N$, so a step costs $|B|/N$ of a full-batch step: it is $N/|B|$ times
# cheaper. One pass over the data in minibatches, $N/|B|$ steps, is an **epoch**:

# %%
show_source(train.minibatches)

# %% [markdown]
# Two facts to check numerically on a small network and the two-moons data set: when $|B|$ divides
# $N$, the minibatch gradients of one epoch average *exactly* to the full gradient (each example
# is used once); and a single minibatch gradient is off by an error that shrinks roughly like
# $1/\sqrt{|B|}$.

# %%
X_moons, y_moons = data.moons(256, noise=0.1, dtype=DT)  # X (256, 2), y (256,)
net = nn.Sequential(nn.Linear(2, 16), nn.Tanh(), nn.Linear(16, 2)).to(DT)


def gradient(Xb: torch.Tensor, yb: torch.Tensor) -> torch.Tensor:
    """The gradient of the mean cross-entropy on a batch, all parameters flattened: (P,)."""
    net.zero_grad()
    F.cross_entropy(net(Xb), yb).backward()
    return torch.cat([q.grad.reshape(-1) for q in net.parameters()])


full = gradient(X_moons, y_moons)
for size in (1, 4, 16, 64):
    grads = [gradient(Xb, yb) for Xb, yb in train.minibatches(X_moons, y_moons, size, generator=gen)]
    epoch_mean = torch.stack(grads).mean(dim=0)
    error = torch.stack([(gb - full).norm() / full.norm() for gb in grads]).mean()
    print(f"|B| = {size:3d}: {len(grads):3d} steps per epoch, relative error of one step's gradient {error:.3f}")
    compare(f"    mean of the epoch's {len(grads)} minibatch gradients vs the full gradient", epoch_mean, full, atol=1e-12)

# %% [markdown]
# Halving the noise costs four times the batch. Keskar et al. (2017) describe the usual regime as
# 32 to 512 examples per batch; Goyal et al. (2017) trained on ImageNet with 8,192. The noise is
# not only a cost: in Keskar et al.'s experiments, large batches converged to *sharp* minima that
# generalised worse and small batches to flat ones, which they attribute to the noise of the
# gradient estimate; and Ge et al. (2015) proved that, on functions whose saddle points all have a
# direction of negative curvature ("strict saddles"), noisy stochastic gradient descent escapes
# them and reaches a local minimum in a polynomial number of steps.
#
# ## 3. Momentum and Nesterov momentum
#
# On an ill-conditioned loss, gradient descent zig-zags across the steep direction and crawls
# along the flat one. **Momentum** (Polyak, 1964) keeps a running sum of past gradients, the
# buffer $b_t$, and steps along it: components that keep their sign add up, components that flip
# sign cancel. PyTorch's `SGD` writes it as follows, with momentum $\mu \in [0, 1)$, dampening
# $\tau$ (usually $0$) and weight decay $\lambda$ (below), all vectors of $\theta$'s shape:
#
# $$g_t = \nabla L(\theta_{t-1}) + \lambda\,\theta_{t-1}, \qquad
# b_t = \begin{cases} g_1 & t = 1 \\ \mu\, b_{t-1} + (1 - \tau)\, g_t & t > 1 \end{cases}, \qquad
# \theta_t = \theta_{t-1} - \eta\, d_t ,$$
#
# with the direction $d_t = b_t$ for plain momentum and $d_t = g_t + \mu\, b_t$ for **Nesterov**
# momentum. Nesterov's method (1983) evaluates the gradient at a point "looked ahead" along the
# momentum; the form above, which PyTorch bases on Sutskever et al. (2013), is rewritten in terms
# of that look-ahead point so that it needs only the gradient at $\theta_{t-1}$. PyTorch requires
# $\tau = 0$ for Nesterov; then $d_t = (1+\mu)\, g_t + \mu^2 b_{t-1}$ (with $b_0 = 0$): compared
# with plain momentum, the fresh gradient gets more weight. With a constant gradient $g$ and
# $\tau = 0$ the buffer $b_t = (1 + \mu + \dots + \mu^{t-1})\, g$ grows to $g/(1-\mu)$, so
# $\mu = 0.9$ means steps up to ten times larger along consistent directions.
#
# Two details of PyTorch's rule that other texts do differently: the first buffer is the gradient
# itself (not $(1-\tau) g_1$), and the learning rate multiplies the buffer instead of sitting
# inside it. **Weight decay** $\lambda$ adds the gradient of $\frac{\lambda}{2}\|\theta\|^2$ to
# the gradient, pulling the weights towards zero (L2 regularisation).

# %%
show_source(optim.sgd_step)

# %% [markdown]
# The optimiser class keeps one buffer per parameter tensor in `state` and calls this function in
# `step()`; `zero_grad()` sets every `.grad` to `None`, PyTorch's default:

# %%
show_source(optim.Optimizer)

# %%
show_source(optim.SGD)

# %% [markdown]
# ## 4. Adam
#
# Momentum uses one learning rate for all parameters. **Adam** (Kingma and Ba, 2015) also keeps a
# running average of the *squared* gradient and divides by its square root, so every parameter
# moves by roughly $\eta$ per step, whatever the scale of its gradient. With $m_0 = v_0 = 0$ (of
# $\theta$'s shape), decay rates $\beta_1, \beta_2 \in [0, 1)$ and a small $\epsilon$, step
# $t = 1, 2, \dots$ computes, elementwise:
#
# $$\begin{aligned}
# g_t &= \nabla L(\theta_{t-1}) + \lambda\,\theta_{t-1} \\
# m_t &= \beta_1\, m_{t-1} + (1-\beta_1)\, g_t &\text{(first moment: a running mean of } g) \\
# v_t &= \beta_2\, v_{t-1} + (1-\beta_2)\, g_t \odot g_t &\text{(second moment: a running mean of } g^2) \\
# \hat m_t &= \frac{m_t}{1-\beta_1^{\,t}}, \qquad \hat v_t = \frac{v_t}{1-\beta_2^{\,t}} &\text{(bias correction)} \\
# \theta_t &= \theta_{t-1} - \eta\, \frac{\hat m_t}{\sqrt{\hat v_t} + \epsilon} .
# \end{aligned}$$
#
# The defaults are $\eta = 10^{-3}$, $\beta_1 = 0.9$, $\beta_2 = 0.999$, $\epsilon = 10^{-8}$.
# `torch.optim.Adam` adds weight decay to the gradient as written here (L2); **AdamW**
# (Loshchilov and Hutter, 2019) instead shrinks the weights directly, which behaves differently
# with adaptive step sizes.

# %%
show_source(optim.adam_step)

# %% [markdown]
# **Why the bias correction?** The averages start at zero, so early on they are too small: after
# one step $m_1 = (1-\beta_1) g_1 = 0.1\, g_1$ and $v_1 = (1-\beta_2) g_1^2 = 0.001\, g_1^2$. If the
# gradient stayed constant, $m_t = (1-\beta_1^{\,t})\, g$ exactly, so dividing by $1-\beta_1^{\,t}$
# recovers $g$ from the very first step; the same holds for $v_t$. Without the correction the first
# steps would be about $0.1/\sqrt{0.001} \approx 3.2$ times too large, and *t must count from 1*:
# with $t = 0$ the correction divides by $1 - \beta^0 = 0$.

# %%
g_const = torch.tensor([0.5, -2.0, 40.0], dtype=DT)  # a constant gradient, three very different scales
theta, m, v = torch.zeros(3, dtype=DT), torch.zeros(3, dtype=DT), torch.zeros(3, dtype=DT)
beta1, beta2 = 0.9, 0.999  # the defaults
for t in range(1, 4):
    theta, m, v = optim.adam_step(theta, g_const, m, v, t, lr=0.01)
    m_hat, v_hat = m / (1 - beta1**t), v / (1 - beta2**t)
    print(f"t={t}: m = {m.tolist()},  m_hat = {m_hat.tolist()},  step moved theta to {theta.tolist()}")
compare("m_hat equals the constant gradient", m_hat, g_const, atol=1e-12)
compare("every coordinate moved by 3 * lr, whatever its gradient's scale", theta, -0.03 * g_const.sign(), atol=1e-8)

# %% [markdown]
# The `Adam` class stores $t$, $m$ and $v$ per parameter (`state[p]["step"]`, `"exp_avg"`,
# `"exp_avg_sq"`, PyTorch's names). With `amsgrad=True` it uses the AMSGrad variant of Reddi, Kale
# and Kumar (2018), which divides by the running maximum of $v_t$ (`optim.amsgrad_step`).

# %%
show_source(optim.Adam)

# %% [markdown]
# ## 5. From scratch vs `torch.optim`: 100 steps
#
# A single step can hide an error that only shows later (a buffer initialised wrongly, $t$ off by
# one). So we train the same small network twice from the same initial weights, once with our
# optimiser and once with PyTorch's, for 100 minibatch steps, and compare all final parameters.
# The gradients come from PyTorch's autograd in both runs; only the update rules differ.

# %%
def train_100_steps(make_optimizer) -> list:
    """Train a 2-16-16-2 MLP on the moons (float64, batches of 32) for 100 steps; return its parameters."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(2, 16), nn.Tanh(), nn.Linear(16, 16), nn.Tanh(), nn.Linear(16, 2)).to(DT)
    opt = make_optimizer(model.parameters())
    batches = torch.Generator().manual_seed(0)
    steps = 0
    while steps < 100:
        for Xb, yb in train.minibatches(X_moons, y_moons, 32, generator=batches):
            train.train_step(model, F.cross_entropy, opt, Xb, yb)
            steps += 1
            if steps == 100:
                break
    return [q.detach() for q in model.parameters()]


settings = [
    ("SGD", dict(lr=0.1)),
    ("SGD", dict(lr=0.05, momentum=0.9)),
    ("SGD", dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-3)),
    ("SGD", dict(lr=0.1, momentum=0.5, dampening=0.5, weight_decay=1e-2)),
    ("Adam", dict(lr=0.01)),
    ("Adam", dict(lr=0.02, betas=(0.8, 0.99), weight_decay=1e-2)),
    ("Adam", dict(lr=0.01, amsgrad=True)),
]
for name, hyper in settings:
    ours = train_100_steps(lambda params: getattr(optim, name)(params, **hyper))
    theirs = train_100_steps(lambda params: getattr(torch.optim, name)(params, **hyper))
    compare(f"{name}({', '.join(f'{k}={v}' for k, v in hyper.items())})", ours, theirs, atol=1e-10)

# %% [markdown]
# Agreement to about $10^{-15}$, the rounding error of float64, after 100 steps: these are the
# same update rules. The library's tests repeat this on random shapes and more settings.
#
# ## 6. Explore: optimisers on three loss surfaces
#
# The explorer runs the four optimisers from the same start (black square) on a two-parameter loss
# and draws their paths over its contour lines (left) and the gap $f(\theta_t) - f^*$ to the
# minimum value (right, log scale). The paths are computed with the functions of
# `course_lib.optim` shown above. Things to try:
#
# * **Ill-conditioned quadratic** $\frac12(x^2 + 25y^2)$, $\kappa = 25$: GD is stable only for
#   $\eta < 2/25 = 0.08$; raise `lr (GD)` towards it and watch GD zig-zag across the narrow
#   direction, then diverge beyond it. Momentum and Nesterov overshoot, but reach the minimum
#   sooner than GD.
# * **Rosenbrock** $(1-x)^2 + 100(y-x^2)^2$: a curved, nearly flat valley. GD stalls at the valley
#   floor; momentum follows the valley. Adam's `lr` is a step *length*: try 0.01 and 0.3.
# * **Saddle** $x^2 + \frac14 y^4 - \frac12 y^2$: starting almost on the ridge $y = 0$, GD spends
#   many steps near the saddle point $(0, 0)$ because the gradient there is tiny. Adam divides by
#   the gradient's size and escapes quickly. Set $\beta = 0$ to turn momentum off.

# %%
explorer = OptimizerExplorer()
explorer

# %% [markdown]
# The explorer's state is plain Python: `explorer.state()` lists the controls and
# `explorer.final_gap` the value of $f - f^*$ where each run ended.

# %%
print(explorer.state())
print({name: f"{gap:.2e}" for name, gap in explorer.final_gap.items()})

# %% [markdown]
# ## 7. Learning-rate schedules
#
# A learning rate that is right at the start is often too large at the end, when the iterates
# bounce around the minimum in the noise of the minibatches. A **schedule** changes $\eta$ over
# the $T$ steps of training. A common one warms up linearly for $W$ steps (large early steps from
# random weights can be unstable; Goyal et al., 2017) and then decays along a half cosine
# (Loshchilov and Hutter, 2017) from $\eta_{\max}$ to $\eta_{\min}$. For step $s = 0, 1, \dots$:
#
# $$\eta_s = \begin{cases} \eta_{\max}\, \dfrac{s + 1}{W} & s < W \\[2mm]
# \eta_{\min} + \dfrac{\eta_{\max} - \eta_{\min}}{2}\left(1 + \cos(\pi p_s)\right),\quad
# p_s = \min\!\left(1, \dfrac{s - W}{T - W}\right) & s \ge W \end{cases}$$

# %%
show_source(optim.warmup_cosine_lr)

# %% [markdown]
# PyTorch builds the same schedule from `LinearLR` (factor $1/W \to 1$) followed by
# `CosineAnnealingLR`; the two agree at every step $0 \dots T$:

# %%
T, W, lr_max, lr_min = 100, 10, 0.1, 0.001
ours = torch.tensor([optim.warmup_cosine_lr(s, T, lr_max, W, lr_min) for s in range(T + 1)], dtype=DT)
p = torch.zeros(1, requires_grad=True)
sgd = torch.optim.SGD([p], lr=lr_max)
schedule = torch.optim.lr_scheduler.SequentialLR(sgd, [
    torch.optim.lr_scheduler.LinearLR(sgd, start_factor=1 / W, end_factor=1.0, total_iters=W - 1),
    torch.optim.lr_scheduler.CosineAnnealingLR(sgd, T_max=T - W, eta_min=lr_min),
], milestones=[W])
theirs = []
for s in range(T + 1):
    theirs.append(sgd.param_groups[0]["lr"])
    sgd.step()
    schedule.step()
compare("warmup_cosine_lr vs LinearLR + CosineAnnealingLR", ours, torch.tensor(theirs, dtype=DT), atol=1e-12)

fig, ax = plt.subplots(figsize=(6, 2.4))
ax.plot(ours.numpy())
ax.axvline(W, color="gray", lw=0.8, ls="--")
ax.set_xlabel("step $s$")
ax.set_ylabel(r"$\eta_s$")
ax.set_title(f"warm-up for W={W} steps, cosine decay to step T={T}", fontsize=10)
plt.show()

# %% [markdown]
# ## 8. The training loop, and the talent article's listing
#
# Every PyTorch training loop repeats four lines per minibatch: forget the old gradients, compute
# the loss, backpropagate, update.

# %%
show_source(train.train_step)

# %% [markdown]
# The talent article, the course's source article on the talent needed in the era of large models
# as a service, prints such a loop as its first code example. As printed it reads:
#
# ```text
# import torch
# import torch.nn as nn
# import torch.optim as optim
# # 定义神经网络模型
# class Net(nn.Module):
# def __init__(self):
# super(Net, self).__init__()
# self.fc = nn.Linear(1000, 10)
# def forward(self, x):
# x = self.fc(x)
# return x
# # 创建神经网络实例
# net = Net()
# # 定义损失函数
# criterion = nn.CrossEntropyLoss()
# # 定义优化器
# optimizer = optim.SGD(net.parameters(), lr=0.01)
# # 训练神经网络
# for epoch in range(10):
# for data, target in dataloader:
# optimizer.zero_grad()
# output = net(data)
# loss = criterion(output, target)
# loss.backward()
# optimizer.step()
# ```
#
# (The comments say "define the network", "create an instance", "define the loss function",
# "define the optimiser", "train the network".) The four training lines are right and in the
# right order, but the listing cannot run:
#
# 1. **The indentation is lost.** In Python indentation is syntax: the class body, the method
#    bodies and both loop bodies must be indented. As printed, it is a `SyntaxError` before
#    anything runs:

# %%
seed_listing = """class Net(nn.Module):
def __init__(self):
super(Net, self).__init__()
"""
try:
    compile(seed_listing, "<listing>", "exec")
except SyntaxError as err:
    print(f"{type(err).__name__}: {err}")

# %% [markdown]
# 2. **`dataloader` is never defined**: with the indentation restored, the first epoch stops with
#    `NameError: name 'dataloader' is not defined`. A `torch.utils.data.DataLoader` over a
#    `TensorDataset` is what it needs.
# 3. **There is no data.** `nn.Linear(1000, 10)` expects inputs with 1000 features and returns
#    10 class scores, and nothing in the article provides such data. We use the handwritten digits shipped with
#    scikit-learn: 8×8 images, flattened to $D = 64$ features, 10 classes.
# 4. It never measures anything: no loss is printed and no accuracy on held-out data is computed,
#    so one cannot tell whether it learned.
#
# The repaired listing, wrapped in a function so that we can run it with two optimisers:

# %%
digits = data.digits()  # X_train (1347, 64) in [0, 1], y_train (1347,); X_test (450, 64), y_test (450,)
print("train", tuple(digits.X_train.shape), "test", tuple(digits.X_test.shape))


def run_fixed_listing(optimizer_class, epochs: int = 10) -> nn.Module:
    """The article's listing, indented, with data, a DataLoader and an evaluation."""
    from torch.utils.data import DataLoader, TensorDataset

    torch.manual_seed(0)

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(64, 10)  # 64 pixels in, 10 digit classes out

        def forward(self, x):
            return self.fc(x)

    net = Net()
    criterion = nn.CrossEntropyLoss()
    optimizer = optimizer_class(net.parameters(), lr=0.1)
    dataloader = DataLoader(TensorDataset(digits.X_train, digits.y_train), batch_size=32, shuffle=True,
                            generator=torch.Generator().manual_seed(0))
    for epoch in range(epochs):
        for inputs, target in dataloader:
            optimizer.zero_grad()
            output = net(inputs)
            loss = criterion(output, target)
            loss.backward()
            optimizer.step()
        if epoch % 3 == 0 or epoch == epochs - 1:
            with torch.no_grad():
                test_acc = train.accuracy(net(digits.X_test), digits.y_test)
            print(f"epoch {epoch + 1:2d}: last batch loss {loss.item():.3f}, test accuracy {test_acc:.3f}")
    return net


net_torch = run_fixed_listing(torch.optim.SGD)

# %% [markdown]
# Besides the missing pieces we raised the learning rate from 0.01 to 0.1 (with 0.01 the same ten
# epochs reach about 0.86 test accuracy instead of 0.93) and named the batch `inputs` rather than
# `data`, the name of our data module. Because `course_lib.optim.SGD` has the same interface, it
# drops into the same listing and yields the same weights:

# %%
net_ours = run_fixed_listing(optim.SGD)
compare("fixed listing: course_lib SGD vs torch SGD", list(net_ours.parameters()), list(net_torch.parameters()), atol=1e-5)

# %% [markdown]
# (Here the data are float32, so "the same" means equal up to float32 rounding.) A few test
# digits and the linear model's predictions:

# %%
fig, ax = plt.subplots(figsize=(7, 1.3))
ax.imshow(data.tile_images(digits.X_test[:12], cols=12).numpy(), cmap="gray_r")
ax.set_axis_off()
with torch.no_grad():
    predicted = net_ours(digits.X_test[:12]).argmax(dim=1)
ax.set_title(f"predicted {predicted.tolist()}\ntrue      {digits.y_test[:12].tolist()}", fontsize=9, family="monospace")
plt.show()

# %% [markdown]
# ## 9. Training a network on the spirals
#
# A linear model cannot separate three interleaved spirals; a small MLP can. `train.fit` runs the
# loop above over epochs of minibatches, shows a progress bar and a live loss curve (accuracy in
# orange), and returns the history:

# %%
show_source(train.fit)

# %%
X_sp, y_sp = data.spirals(300, k=3, noise=0.04)  # X (300, 2) float32, y (300,) in {0, 1, 2}
torch.manual_seed(0)
mlp = nn.Sequential(nn.Linear(2, 32), nn.Tanh(), nn.Linear(32, 32), nn.Tanh(), nn.Linear(32, 3))
history = train.fit(mlp, X_sp, y_sp, optimizer=optim.Adam(mlp.parameters(), lr=0.02), epochs=150,
                    batch_size=60, every=10, title="MLP on the spirals, Adam")
print(f"final training loss {history.loss[-1]:.3f}, training accuracy {history.accuracy[-1]:.3f}")

# %% [markdown]
# The decision boundary: every point of the plane coloured by the class the network predicts.

# %%
fig, axes = plt.subplots(1, 2, figsize=(8, 3.6))
train.plot_decision_boundary(axes[0], mlp, X_sp, y_sp)
axes[0].set_title(f"Adam, 150 epochs: accuracy {history.accuracy[-1]:.2f}", fontsize=10)

torch.manual_seed(0)
mlp_sgd = nn.Sequential(nn.Linear(2, 32), nn.Tanh(), nn.Linear(32, 32), nn.Tanh(), nn.Linear(32, 3))
history_sgd = train.fit(mlp_sgd, X_sp, y_sp, optimizer=optim.SGD(mlp_sgd.parameters(), lr=0.02), epochs=150,
                        batch_size=60, live=False, progress=False)
train.plot_decision_boundary(axes[1], mlp_sgd, X_sp, y_sp)
axes[1].set_title(f"plain SGD, same lr and epochs: accuracy {history_sgd.accuracy[-1]:.2f}", fontsize=10)
plt.show()
print(f"training accuracy after 150 epochs: Adam {history.accuracy[-1]:.3f}, plain SGD {history_sgd.accuracy[-1]:.3f}")

# %% [markdown]
# With the same number of steps and learning rate, plain SGD has barely started: its steps are
# $\eta$ times a small gradient, while Adam normalises each parameter's step to about $\eta$. SGD
# is not hopeless, it needs its own learning rate. With `lr=0.1, momentum=0.9`, the same
# network, data and epochs:

# %%
torch.manual_seed(0)
mlp_momentum = nn.Sequential(nn.Linear(2, 32), nn.Tanh(), nn.Linear(32, 32), nn.Tanh(), nn.Linear(32, 3))
history_momentum = train.fit(mlp_momentum, X_sp, y_sp, optimizer=optim.SGD(mlp_momentum.parameters(), lr=0.1, momentum=0.9),
                             epochs=150, batch_size=60, live=False, progress=False)
print(f"SGD with lr=0.1, momentum=0.9: training accuracy {history_momentum.accuracy[-1]:.3f}")

# %% [markdown]
# The learning rate is part of choosing the optimiser.
#
# ## Summary
#
# * **Gradient descent** $\theta_t = \theta_{t-1} - \eta\, g_t$ converges on a quadratic of
#   curvature $a$ only for $\eta < 2/a$; with very different curvatures (a large condition number)
#   it is slow along the flat directions.
# * **SGD** replaces the full gradient by a minibatch average: unbiased, $N/|B|$ times cheaper per
#   step, with noise that shrinks like $1/\sqrt{|B|}$. One pass over the data is an epoch.
# * **Momentum** steps along a running sum of gradients, $b_t = \mu b_{t-1} + (1-\tau) g_t$ (PyTorch:
#   $b_1 = g_1$); **Nesterov** steps along $g_t + \mu b_t$. Weight decay adds $\lambda\theta$ to the
#   gradient.
# * **Adam** divides a running mean of gradients by the square root of a running mean of squared
#   gradients, with bias corrections $1/(1-\beta^t)$ that make the first steps the right size;
#   $t$ counts from 1.
# * `course_lib.optim` implements these rules with `torch.optim`'s interface and matches it to
#   float64 rounding over 100 steps. A **schedule** (warm-up, cosine decay) changes $\eta$ over
#   training.
# * A training step is `zero_grad`, forward and loss, `backward`, `step`. The talent article's
#   listing had these right but lost its indentation and had no data loader and no data.
#
# ## Exercises
#
# Open `exercises/04_optimization.ipynb`: write one gradient-descent step, PyTorch's SGD with
# momentum and Nesterov, one Adam step (deriving its bias correction), the warm-up + cosine
# schedule; find and fix the bugs in a training step; and measure the largest stable learning rate
# of gradient descent on a quadratic, then compare it with section 1's bound. Each comes with an
# instant check.
#
# ## References
#
# * H. Robbins, S. Monro. *A stochastic approximation method.* Annals of Mathematical
#   Statistics 22(3), 400–407 (1951).
# * B. T. Polyak. *Some methods of speeding up the convergence of iteration methods.* USSR
#   Computational Mathematics and Mathematical Physics 4(5), 1–17 (1964).
# * Y. Nesterov. *A method for solving the convex programming problem with convergence rate
#   O(1/k²).* Soviet Mathematics Doklady 27, 372–376 (1983).
# * I. Sutskever, J. Martens, G. Dahl, G. Hinton. *On the importance of initialization and momentum
#   in deep learning.* ICML (2013).
# * D. P. Kingma, J. Ba. *Adam: A method for stochastic optimization.* ICLR (2015), arXiv:1412.6980.
# * S. J. Reddi, S. Kale, S. Kumar. *On the convergence of Adam and beyond.* ICLR (2018).
# * I. Loshchilov, F. Hutter. *SGDR: Stochastic gradient descent with warm restarts.* ICLR (2017).
# * I. Loshchilov, F. Hutter. *Decoupled weight decay regularization.* ICLR (2019).
# * P. Goyal et al. *Accurate, large minibatch SGD: training ImageNet in 1 hour.* arXiv:1706.02677 (2017).
# * N. S. Keskar, D. Mudigere, J. Nocedal, M. Smelyanskiy, P. T. P. Tang. *On large-batch training for
#   deep learning: generalization gap and sharp minima.* ICLR (2017), arXiv:1609.04836.
# * R. Ge, F. Huang, C. Jin, Y. Yuan. *Escaping from saddle points: online stochastic gradient for
#   tensor decomposition.* Conference on Learning Theory (COLT), PMLR 40, 797–842 (2015), arXiv:1503.02101.
# * PyTorch documentation of `torch.optim.SGD` and `torch.optim.Adam` (the update rules implemented here).

# %%
print(explorer.self_check())
