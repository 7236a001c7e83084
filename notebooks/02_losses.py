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
# # 02 · Loss functions
#
# <a href="https://colab.research.google.com/github/nn-from-scratch/course/blob/main/notebooks/02_losses.ipynb" target="_parent"><img src="https://colab.research.google.com/assets/colab-badge.svg" alt="Open In Colab"/></a>
#
# A network turns an input into a prediction. To *learn*, it needs to know how wrong that
# prediction is, as a single number it can make smaller: the **loss**. This chapter builds the
# three losses behind almost every model: the **mean squared error** for numbers, the **binary
# cross-entropy** for yes/no questions and the **cross-entropy** for choosing one of $C$ classes.
# For each we write the formula with its shapes, derive its gradient (where backpropagation will
# start, in chapter 03), implement both in `course_lib.losses` and check them against PyTorch. On
# the way we meet the most common numerical trap in deep learning, `exp` overflowing to `inf`,
# and the log-sum-exp trick that avoids it.

# %% tags=["setup"]
# Setup. On Colab this installs course_lib from the course repository (Colab keeps its own
# torch and ipywidgets); everywhere else it does nothing.
import sys

if "google.colab" in sys.modules:
    get_ipython().run_line_magic("pip", "install --quiet git+https://github.com/nn-from-scratch/course")

# %%
import torch
import torch.nn.functional as F

from course_lib import layers, losses
from course_lib.compare import compare
from course_lib.device import seed_everything
from course_lib.show import show_source

gen = seed_everything(0)
torch.set_printoptions(precision=4, sci_mode=False)
DT = torch.float64  # we compare with PyTorch in float64: agreement to ~1e-15 means "correct"

# %% [markdown]
# ## 1. What a loss is
#
# A model $f_\theta$ with parameters $\theta$ maps an input $x_i$ to a prediction $\hat y_i =
# f_\theta(x_i)$. A **loss** $\ell(\hat y_i, y_i) \ge 0$ compares it with the target $y_i$: small
# when the prediction is good, large when it is bad. Training minimises the average over the
# $N$ examples of a batch,
#
# $$L(\theta) = \frac{1}{N} \sum_{i=1}^{N} \ell\big(f_\theta(x_i),\, y_i\big).$$
#
# Two properties make this work. The loss is a **scalar**, so "better" has a meaning; and it is
# **differentiable**, so its gradient says in which direction to move each prediction, and, by
# the chain rule, each parameter. The first factor of that chain is $\partial L / \partial \hat y$,
# which is why every loss in `course_lib.losses` comes with a `*_backward` function that returns it.
#
# PyTorch's losses take a `reduction` argument, and so do ours: `"none"` returns one loss per
# element (per sample for the cross-entropy), `"sum"` their sum and `"mean"` (the default) their
# average.

# %% [markdown]
# ## 2. Mean squared error
#
# For regression the prediction and the target are real numbers of the same shape, say
# $\hat Y, Y \in \mathbb{R}^{N \times D}$ ($N$ examples, $D$ outputs each), with $M = N D$
# elements in total. The **mean squared error** (MSE) averages the squared differences over all
# $M$ elements:
#
# $$L_{\text{MSE}} = \frac{1}{M} \sum_{i=1}^{M} (\hat y_i - y_i)^2 \qquad (\text{shape } ()).$$
#
# Squaring makes every error count positively and punishes large errors much more than small
# ones. (If the target is the prediction plus Gaussian noise of a fixed variance, minimising the
# MSE is the same as maximising the likelihood of the data.) Only the $i$-th term depends on $\hat y_i$, so the
# gradient is
#
# $$\frac{\partial L_{\text{MSE}}}{\partial \hat y_i} = \frac{2}{M}\,(\hat y_i - y_i)
# \qquad \Big(\tfrac{\partial L}{\partial \hat Y} \in \mathbb{R}^{N \times D}\Big):$$
#
# it points from the target towards the prediction, and is proportional to the error. With
# `reduction="sum"` the factor $\frac{1}{M}$ disappears; with `"none"` each element keeps its
# own loss $(\hat y_i - y_i)^2$ and derivative $2(\hat y_i - y_i)$. Note that `"mean"` divides by
# $M = ND$, not by the batch size $N$: a classic source of a factor-$D$ bug.

# %%
show_source(losses.mse_loss, losses.mse_loss_backward)

# %% [markdown]
# The optional `grad_output` of the backward function is the gradient arriving from further up
# (for `"none"`, one number per element); it defaults to 1, which gives the gradient of the
# loss itself. We check forward values and gradients against `torch.nn.functional.mse_loss` and
# `torch.autograd`:

# %%
pred = torch.randn(4, 2, generator=gen, dtype=DT)  # N = 4 examples, D = 2 outputs
target = torch.randn(4, 2, generator=gen, dtype=DT)
print("MSE (ours):", float(losses.mse_loss(pred, target)))

for reduction in ("mean", "sum", "none"):
    p = pred.clone().requires_grad_(True)
    ref = F.mse_loss(p, target, reduction=reduction)
    upstream = torch.randn(ref.shape, generator=gen, dtype=DT)  # any upstream gradient
    ref.backward(upstream)
    compare(f"mse_loss, {reduction:4s}", losses.mse_loss(pred, target, reduction), ref.detach())
    compare("  its gradient", losses.mse_loss_backward(pred, target, reduction, grad_output=upstream), p.grad)

# %% [markdown]
# ## 3. Binary cross-entropy
#
# For a yes/no target $y \in \{0, 1\}$ the model predicts a probability $p = P(y = 1 \mid x) \in
# [0, 1]$. The probability it assigns to what actually happened is $p^{y}(1-p)^{1-y}$ ($p$ if
# $y = 1$, $1-p$ if $y = 0$). Maximising that likelihood is the same as minimising its negative
# logarithm, the **binary cross-entropy** (BCE), averaged over the $M$ elements of
# $p, y \in [0, 1]^{N \times D}$:
#
# $$\ell(p, y) = -\big(y \log p + (1-y) \log(1-p)\big), \qquad
# L_{\text{BCE}} = \frac{1}{M}\sum_{i=1}^{M} \ell(p_i, y_i).$$
#
# A confident wrong answer ($p \to 0$ while $y = 1$) costs $-\log p \to \infty$. Its derivative is
#
# $$\frac{\partial \ell}{\partial p} = -\frac{y}{p} + \frac{1-y}{1-p} = \frac{p - y}{p\,(1-p)}.$$
#
# At $p = 0$ or $p = 1$ these blow up, so PyTorch caps them, and so do we: each logarithm is
# clamped at $-100$ (a certain wrong answer costs 100 instead of $\infty$), and the derivative
# divides by $\max\big(p(1-p),\ \varepsilon\big)$ with $\varepsilon \approx 10^{-12}$.

# %%
show_source(losses.binary_cross_entropy, losses.binary_cross_entropy_backward)

# %%
p_prob = torch.tensor([0.9, 0.2, 0.6, 0.0, 1.0, 0.5], dtype=DT)  # exact 0 and 1, both wrong: clamped
y_bin = torch.tensor([1.0, 0.0, 0.0, 1.0, 0.0, 0.3], dtype=DT)
print("per-element BCE:", losses.binary_cross_entropy(p_prob, y_bin, reduction="none"))

for reduction in ("mean", "sum", "none"):
    p = p_prob.clone().requires_grad_(True)
    ref = F.binary_cross_entropy(p, y_bin, reduction=reduction)
    ref.backward(torch.ones_like(ref))
    compare(f"binary_cross_entropy, {reduction:4s}", losses.binary_cross_entropy(p_prob, y_bin, reduction), ref.detach())
    # the gradient at p = 0 is about 1e12: compare it relative to its size
    ours = losses.binary_cross_entropy_backward(p_prob, y_bin, reduction)
    compare("  its gradient / max|gradient|", ours / p.grad.abs().max(), p.grad / p.grad.abs().max())

# %% [markdown]
# ### From logits: the stable way
#
# A network does not output probabilities directly: its last layer gives a real number $z$, the
# **logit**, and $p = \sigma(z) = 1/(1 + e^{-z})$ turns it into one. Putting $p = \sigma(z)$ into
# $\ell$, with $\log \sigma(z) = -\log(1 + e^{-z})$ and $\log(1 - \sigma(z)) = -z - \log(1 +
# e^{-z})$, gives
#
# $$\ell(z, y) = (1 - y)\,z + \log\big(1 + e^{-z}\big) = \max(z, 0) - z\,y + \log\big(1 + e^{-|z|}\big).$$
#
# The last form is what the code computes: $e^{-|z|} \le 1$ never overflows. Its derivative is
# remarkably simple,
#
# $$\frac{\partial \ell}{\partial z} = \sigma(z) - y,$$
#
# the error of the predicted probability. Going through $p$ instead fails: $\sigma(40) \approx 1 -
# 4\cdot 10^{-18}$ rounds to exactly `1.0` in float64, so $\log(1 - p) = -\infty$ and the clamp
# reports a loss of 100 where the true loss is about 40.

# %%
show_source(losses.binary_cross_entropy_with_logits, losses.binary_cross_entropy_with_logits_backward)

# %%
z_big = torch.tensor([40.0], dtype=DT)
y_zero = torch.tensor([0.0], dtype=DT)
p_big = layers.sigmoid(z_big)
print("sigmoid(40) == 1.0 exactly:", bool(p_big == 1.0))
print("BCE through the probability:", float(losses.binary_cross_entropy(p_big, y_zero)), " (clamped; wrong)")
print("BCE from the logit:         ", float(losses.binary_cross_entropy_with_logits(z_big, y_zero)), " (right)")

z = torch.tensor([[-1000.0, -3.0, 0.0], [0.5, 40.0, 1000.0]], dtype=DT)  # extreme logits included
y = torch.tensor([[1.0, 0.0, 1.0], [0.0, 0.0, 1.0]], dtype=DT)
for reduction in ("mean", "sum", "none"):
    zz = z.clone().requires_grad_(True)
    ref = F.binary_cross_entropy_with_logits(zz, y, reduction=reduction)
    ref.backward(torch.ones_like(ref))
    compare(f"bce_with_logits, {reduction:4s}", losses.binary_cross_entropy_with_logits(z, y, reduction), ref.detach())
    compare("  its gradient", losses.binary_cross_entropy_with_logits_backward(z, y, reduction), zz.grad)

# %% [markdown]
# **Why not the MSE on $\sigma(z)$?** One could also train a classifier with $(\sigma(z) - y)^2$.
# The chain rule gives $\partial/\partial z = 2(\sigma(z) - y)\,\sigma(z)(1 - \sigma(z))$: when the
# model is confidently wrong ($z \ll 0$ while $y = 1$), the factor $\sigma(z)(1-\sigma(z))$ is
# nearly 0 and learning stalls. The cross-entropy's $\sigma(z) - y$ stays close to $-1$ there:

# %%
z_row = torch.tensor([-10.0, -5.0, -2.0, 0.0, 2.0, 5.0], dtype=DT)
y_ones = torch.ones_like(z_row)
s = layers.sigmoid(z_row)
dz_mse = layers.sigmoid_backward(losses.mse_loss_backward(s, y_ones, "none"), s)  # chain rule
dz_bce = losses.binary_cross_entropy_with_logits_backward(z_row, y_ones, "none")
print("logit z            ", z_row)
print("d/dz of MSE(σ(z))  ", dz_mse)
print("d/dz of BCE(z)     ", dz_bce)

zz = z_row.clone().requires_grad_(True)
F.mse_loss(torch.sigmoid(zz), y_ones, reduction="sum").backward()
compare("MSE-through-sigmoid gradient", dz_mse, zz.grad)

# %% [markdown]
# ## 4. Cross-entropy over $C$ classes
#
# To pick one of $C$ classes the last layer outputs $C$ logits per example, $Z \in \mathbb{R}^{N
# \times C}$, and the **softmax** turns each row $z_i$ into a probability distribution $p_i \in
# \mathbb{R}^{C}$ (positive entries that sum to 1):
#
# $$p_{ic} = \mathrm{softmax}(z_i)_c = \frac{e^{z_{ic}}}{\sum_{j=1}^{C} e^{z_{ij}}}.$$
#
# The targets are class indices $y \in \{0, \dots, C-1\}^N$ (a `torch.long` tensor of shape
# $(N,)$). As for the BCE, the loss is minus the log-probability of the true class, averaged
# over the batch:
#
# $$L_{\text{CE}} = -\frac{1}{N} \sum_{i=1}^{N} \log p_{i, y_i} \qquad (\text{shape } ()).$$
#
# Written with a one-hot matrix $Y \in \{0,1\}^{N\times C}$ ($Y_{ic} = 1$ exactly when $c = y_i$)
# this is $-\frac{1}{N}\sum_{i}\sum_{c} Y_{ic}\log p_{ic}$; PyTorch and `course_lib` also accept any
# rows of probabilities $Y \in [0,1]^{N \times C}$ as "soft" targets in this form. Note that
# `"mean"` divides by $N$, the number of samples, not by $NC$.
#
# ### Why log-softmax: the overflow trap
#
# Computed literally, the softmax breaks for perfectly ordinary logits of a few hundred: $e^{710}$
# is already larger than the largest float64, so it becomes `inf`, and $\infty / \infty$ is `nan`.
# At the other end $e^{-1000}$ underflows to 0 and a row of them gives $0/0$:

# %%
z_extreme = torch.tensor([[1000.0, 0.0, -1000.0], [-1000.0, -1000.0, -1000.0]], dtype=DT)
naive = torch.exp(z_extreme) / torch.exp(z_extreme).sum(dim=1, keepdim=True)
print("naive softmax:\n", naive)
print("naive log of it:\n", torch.log(naive))

# %% [markdown]
# The cure is one line of algebra. Multiplying numerator and denominator by $e^{-m}$ changes
# nothing, so for any constant $m$
#
# $$\mathrm{softmax}(z)_c = \frac{e^{z_c - m}}{\sum_j e^{z_j - m}}, \qquad
# \log \mathrm{softmax}(z)_c = z_c - m - \log \sum_{j=1}^{C} e^{z_j - m}.$$
#
# Choosing $m = \max_j z_j$ makes every exponent $\le 0$ (no overflow) and puts a term $e^0 = 1$
# in the sum (so the log never sees 0). The quantity $m + \log\sum_j e^{z_j - m} = \log \sum_j
# e^{z_j}$ is the **log-sum-exp**, and the log-softmax is $z_c$ minus it. `course_lib.layers`
# implements exactly this. One special case: a row whose entries are all $-\infty$ (a fully masked
# row) has $m = -\infty$, and $z_j - m$ would be NaN; `logsumexp` then uses $m = 0$, as PyTorch
# does, and returns $-\infty$ for that row.

# %%
show_source(layers.logsumexp, layers.log_softmax)

# %%
print("stable softmax:\n", layers.softmax(z_extreme, dim=1))
print("stable log-softmax:\n", layers.log_softmax(z_extreme, dim=1))
print("log of the stable softmax:\n", torch.log(layers.softmax(z_extreme, dim=1)))

# %% [markdown]
# Look at the last two results. Even a stable softmax gives $p = e^{-2000}$, which is 0 in
# float64, and $\log 0 = -\infty$; the log-softmax gives the exact $-2000$. So the rule is:
# **never take the log of a softmax; compute the log-softmax directly.** That is why PyTorch's
# `F.cross_entropy` takes logits, not probabilities, and why `losses.cross_entropy` does too:

# %%
show_source(losses.cross_entropy)

# %%
N, C = 5, 4
logits = torch.randn(N, C, generator=gen, dtype=DT) * 3
labels = torch.randint(0, C, (N,), generator=gen)
soft = layers.softmax(torch.randn(N, C, generator=gen, dtype=DT), dim=1)  # rows sum to 1
print("labels:", labels.tolist(), " per-sample loss:", losses.cross_entropy(logits, labels, reduction="none"))

for reduction in ("mean", "sum", "none"):
    compare(f"cross_entropy, {reduction:4s}", losses.cross_entropy(logits, labels, reduction), F.cross_entropy(logits, labels, reduction=reduction))
    compare("  soft targets", losses.cross_entropy(logits, soft, reduction), F.cross_entropy(logits, soft, reduction=reduction))
compare("cross_entropy at logits ±1000", losses.cross_entropy(z_extreme, torch.tensor([2, 1])), F.cross_entropy(z_extreme, torch.tensor([2, 1])))

# %% [markdown]
# ### The gradient: softmax minus one-hot
#
# For one sample, $\ell = -\log p_y = -z_y + \log \sum_j e^{z_j}$. Differentiating with respect to
# $z_c$: the first term gives $-1$ if $c = y$ and 0 otherwise, the second gives $e^{z_c} / \sum_j
# e^{z_j} = p_c$. Hence
#
# $$\frac{\partial \ell}{\partial z_c} = p_c - [c = y], \qquad
# \frac{\partial L_{\text{CE}}}{\partial Z} = \frac{1}{N}\big(\mathrm{softmax}(Z) - Y\big)
# \in \mathbb{R}^{N \times C}.$$
#
# A gradient descent step along $-\partial L/\partial Z$ raises the true class's logit in
# proportion to $1 - p_y$ and lowers each other logit in proportion to the probability it
# wrongly received.
# Each row sums to 0, and every entry lies in $[-1, 1]$: a confidently wrong model gets a strong
# but bounded push. For soft targets the row is $p_i \sum_c Y_{ic} - Y_i$, the same thing when the
# target rows sum to 1.

# %%
show_source(losses.cross_entropy_backward)

# %%
for reduction in ("mean", "sum", "none"):
    for name, tgt in (("labels", labels), ("soft", soft)):
        zz = logits.clone().requires_grad_(True)
        ref = F.cross_entropy(zz, tgt, reduction=reduction)
        upstream = torch.randn(ref.shape, generator=gen, dtype=DT)
        ref.backward(upstream)
        ours = losses.cross_entropy_backward(logits, tgt, reduction, grad_output=upstream)
        compare(f"cross_entropy gradient, {reduction:4s}, {name:6s}", ours, zz.grad)

grad = losses.cross_entropy_backward(logits, labels)
print("rows of the gradient sum to 0:", grad.sum(dim=1))

# %% [markdown]
# **Two classes are the binary case.** With $C = 2$ and logits $(0, z)$, $\mathrm{softmax}$ gives
# class 1 the probability $e^{z}/(1 + e^{z}) = \sigma(z)$, so the cross-entropy is exactly the
# binary cross-entropy of the logit $z$:

# %%
z1 = torch.randn(6, generator=gen, dtype=DT) * 4
y1 = torch.randint(0, 2, (6,), generator=gen)
two_class = torch.stack([torch.zeros_like(z1), z1], dim=1)  # (6, 2) logits (0, z)
compare("cross_entropy(C=2) vs torch bce_with_logits", losses.cross_entropy(two_class, y1), F.binary_cross_entropy_with_logits(z1, y1.to(DT)))

# %% [markdown]
# ## 5. Explore
#
# **Cross-entropy of one sample with three classes.** Drag the three logits and pick the true
# class (orange). The middle panel shows the softmax probabilities, the right panel the gradient
# $p - \mathrm{onehot}(y)$, and the loss $-\log p_y$ is printed on top. Things to try:
#
# * make the true class's logit the largest by a few units: the loss and the gradient go to 0;
# * make a wrong class's logit large: the loss grows (about linearly in the gap), while the
#   gradient saturates at $+1$ for that class and $-1$ for the true one;
# * move all three logits up by the same amount: nothing changes (the softmax is shift-invariant,
#   the very fact the log-sum-exp trick uses).

# %%
from course_lib.widgets.loss import CrossEntropyExplorer, PredictionLossExplorer

ce_explorer = CrossEntropyExplorer()
ce_explorer

# %% [markdown]
# **Squared error versus binary cross-entropy.** Move the predicted probability $p$ and the target
# $y$. Both losses are smallest exactly at $p = y$, even for a soft target such as $y = 0.3$. But
# as the prediction becomes confidently wrong ($y = 1$, $p \to 0$) the squared error stays below 1
# with a slope of at most 2, while the cross-entropy and its slope grow without bound: it
# punishes confident mistakes much harder.

# %%
loss_explorer = PredictionLossExplorer()
loss_explorer

# %% [markdown]
# The explorers expose their state, so you can also set it from code and read the numbers:

# %%
ce_explorer.set_state(z0=-2.0, z1=0.0, z2=3.0, target=0)
print("probabilities:", ce_explorer.probs, " loss:", round(float(ce_explorer.loss), 4), " gradient:", ce_explorer.grad)
ce_explorer.set_state(z0=2.0, z1=1.0, z2=0.1)

# %% [markdown]
# ## Summary
#
# * A **loss** maps predictions and targets to one number to minimise; its gradient with respect
#   to the prediction is where backpropagation starts. `reduction` chooses per-element losses,
#   their sum or their mean.
# * **MSE** $\frac{1}{M}\sum (\hat y - y)^2$ for real-valued targets; gradient $\frac{2}{M}(\hat y -
#   y)$. The mean runs over all $M$ elements.
# * **Binary cross-entropy** $-(y\log p + (1-y)\log(1-p))$ for probabilities; from a logit it is
#   $\max(z,0) - zy + \log(1+e^{-|z|})$ with the gradient $\sigma(z) - y$. Prefer the logit form:
#   it stays exact where $\sigma(z)$ rounds to 0 or 1.
# * **Cross-entropy** $-\frac{1}{N}\sum_i \log \mathrm{softmax}(z_i)_{y_i}$ from logits $Z \in
#   \mathbb{R}^{N\times C}$, with the gradient $\frac{1}{N}(\mathrm{softmax}(Z) - Y)$.
# * $e^{z}$ overflows for $z \gtrsim 710$: subtract the row maximum (log-sum-exp) and compute the
#   **log-softmax directly**, never the log of a softmax.
#
# Further reading: I. Goodfellow, Y. Bengio and A. Courville, *Deep Learning*, MIT Press, 2016,
# chapter 6 (cost functions from maximum likelihood, softmax output units).
#
# **Exercises:** `exercises/02_losses.ipynb` asks you to write the MSE, a stable log-softmax and
# the cross-entropy, and to derive (the sheet does not print them) the MSE's gradient, a stable form
# of the binary cross-entropy from logits, and the gradients of both cross-entropies, each checked
# instantly; at the end your functions train a small classifier.

# %%
# Widget self-check: moving a control re-renders the figure.
print(ce_explorer.self_check())
print(loss_explorer.self_check())
