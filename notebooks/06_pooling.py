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
# # 06 · Pooling
#
# <a href="https://colab.research.google.com/github/nn-from-scratch/course/blob/main/notebooks/06_pooling.ipynb" target="_parent"><img src="https://colab.research.google.com/assets/colab-badge.svg" alt="Open In Colab"/></a>
#
# A convolution (chapter 05) turns an image into feature maps of about the same size: one
# number per pixel and per filter. Stacking convolutions alone keeps that resolution, so the
# maps stay large and each output still "sees" only a small patch of the image. **Pooling**
# summarises each small window of a feature map by one number, its maximum or its average. It
# shrinks the maps (a $2 \times 2$ pooling with stride 2 keeps a quarter of the values), so
# later layers cost less and each of their outputs covers a larger part of the image (a larger
# **receptive field**); it has **no parameters** to learn; and it is cheap. As a side effect the
# pooled map changes less when the input moves by a pixel, which is often what a classifier
# wants. This chapter writes max and average pooling from scratch, forward and backward, checks
# them against PyTorch, measures what they throw away and how much shift invariance they really
# buy, and ends with global average pooling, the last layer before the classifier in ResNet
# (He et al., 2016), for instance.

# %% tags=["setup"]
# Setup. On Colab this installs course_lib from the course repository (Colab keeps its own
# torch and ipywidgets); everywhere else it does nothing.
import sys

if "google.colab" in sys.modules:
    get_ipython().run_line_magic("pip", "install --quiet git+https://github.com/nn-from-scratch/course")

# %%
import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F

from course_lib import conv, data, pool
from course_lib.compare import compare
from course_lib.device import seed_everything
from course_lib.show import show_source
from course_lib.widgets.pool import PoolGradientExplorer, PoolingExplorer

gen = seed_everything(0)
torch.set_num_threads(1)  # small tensors: splitting them over threads costs more than it saves
torch.set_printoptions(precision=4, sci_mode=False)
DT = torch.float64  # comparisons with PyTorch run in float64: agreement to ~1e-15 means "the same"

# %% [markdown]
# ## 1. Max pooling and average pooling
#
# The input is a batch of feature maps $x \in \mathbb{R}^{N \times C \times H \times W}$: $N$
# images, $C$ channels, each an $H \times W$ plane. Pooling works on every plane on its own,
# with a **kernel** (window) of $k_h \times k_w$, a **stride** $(s_h, s_w)$ (by default equal to
# the kernel: windows side by side, no overlap) and a **padding** $(p_h, p_w)$. First the plane
# is padded to $\tilde x \in \mathbb{R}^{N \times C \times (H + 2p_h) \times (W + 2p_w)}$, with
# $-\infty$ for max pooling (padding never wins) and $0$ for average pooling. Output cell $(i, j)$
# pools the window that starts at row $i s_h$ and column $j s_w$ of $\tilde x$:
#
# $$\text{max:}\quad y_{n,c,i,j} = \max_{0 \le a < k_h,\ 0 \le b < k_w} \tilde x_{n,c,\ i s_h + a,\ j s_w + b},
# \qquad
# \text{average:}\quad y_{n,c,i,j} = \frac{1}{d_{ij}} \sum_{a=0}^{k_h - 1} \sum_{b=0}^{k_w - 1} \tilde x_{n,c,\ i s_h + a,\ j s_w + b} .$$
#
# The divisor $d_{ij}$ is $k_h k_w$ (PyTorch's default `count_include_pad=True`: padding zeros
# count) or, with `count_include_pad=False`, the number of real, non-padding elements of the
# window. The output $y \in \mathbb{R}^{N \times C \times H_{out} \times W_{out}}$ has as many
# cells as there are windows that fit:
#
# $$H_{out} = \left\lfloor \frac{H + 2 p_h - k_h}{s_h} \right\rfloor + 1, \qquad
# W_{out} = \left\lfloor \frac{W + 2 p_w - k_w}{s_w} \right\rfloor + 1 ,$$
#
# the same formula as for a convolution (with dilation 1), so we reuse chapter 05's function:

# %%
show_source(conv.conv_output_size)

# %% [markdown]
# PyTorch also requires $p \le \lfloor k/2 \rfloor$ along each axis, so that every window holds at
# least one real element; `course_lib.pool` checks the same rule and the kernel size:

# %%
show_source(pool.pool_geometry)

# %% [markdown]
# The windows themselves need no loop. `Tensor.unfold(dim, size, step)` returns a *view* of all
# slices of length `size` taken every `step` along `dim`; applied to the rows and then to the
# columns of the padded planes it gives every window at once, a tensor of shape
# $(N, C, H_{out}, W_{out}, k_h, k_w)$:

# %%
show_source(pool.pad2d, pool.windows)

# %% [markdown]
# Max pooling takes the maximum of each window. With `return_indices=True` it also returns where
# each maximum came from, as PyTorch does: a flat index $r W + c$ into the (unpadded) input plane,
# for the maximum at window position $(a^*, b^*)$, i.e. at input row $r = i s_h - p_h + a^*$ and
# column $c = j s_w - p_w + b^*$. When several elements of a window share the maximum, the first
# one in row-major order (row by row, left to right) is taken, PyTorch's rule:

# %%
show_source(pool.max_pool2d)

# %% [markdown]
# A small example with integer values (so that there are ties), a $2 \times 2$ kernel and stride
# 1, so that the four windows overlap:

# %%
x_small = torch.tensor([[[[1.0, 3.0, 3.0],
                          [3.0, 0.0, 1.0],
                          [2.0, 3.0, 3.0]]]], dtype=DT)  # (N, C, H, W) = (1, 1, 3, 3)
y_small, idx_small = pool.max_pool2d(x_small, 2, stride=1, return_indices=True)
print("y =", y_small[0, 0].tolist(), "  indices =", idx_small[0, 0].tolist())
y_ref, idx_ref = F.max_pool2d(x_small, 2, stride=1, return_indices=True)
compare("max_pool2d vs F.max_pool2d", y_small, y_ref, atol=0)
compare("indices vs F.max_pool2d's", idx_small, idx_ref, atol=0)

# %% [markdown]
# Every window holds a 3. The top-left window $\{1, 3, 3, 0\}$ has two: the first in row-major
# order is at flat index 1 (row 0, column 1); the bottom-right window $\{0, 1, 3, 3\}$ picks index
# 7 (row 2, column 1). Element 1 is the maximum of two windows, which will matter for the
# gradient.
#
# Average pooling sums each window and divides:

# %%
show_source(pool.avg_pool2d)

# %% [markdown]
# Both against PyTorch on a random batch, with rectangular kernels, strides and paddings, and both
# settings of `count_include_pad`:

# %%
x = torch.randn(4, 3, 11, 9, generator=gen, dtype=DT)  # (N, C, H, W)
for k, s, p in [(2, None, 0), (3, 2, 1), ((3, 2), (2, 1), (1, 0)), (4, 3, 2)]:
    y, idx = pool.max_pool2d(x, k, s, p, return_indices=True)
    y_ref, idx_ref = F.max_pool2d(x, k, s, p, return_indices=True)
    compare(f"max k={k}, s={s}, p={p}: output {tuple(y.shape)}", y, y_ref, atol=0)
    assert torch.equal(idx, idx_ref)
    for include in (True, False):
        compare(f"avg k={k}, s={s}, p={p}, count_include_pad={include}",
                pool.avg_pool2d(x, k, s, p, include), F.avg_pool2d(x, k, s, p, count_include_pad=include), atol=1e-12)

# %% [markdown]
# Max pooling agrees exactly (it only picks values, it computes nothing); average pooling to
# rounding ($10^{-16}$: the sums are added in a different order).
#
# **Output sizes in practice.** The employment article (the course's source article on the social
# impact of large models, above all on jobs) prints a CNN for one-channel images:
# `Conv2d(1, 32, 3, padding=1)`, $2 \times 2$ max pooling, `Conv2d(32, 64, 3, padding=1)`, pooling
# again, then `x.view(-1, 64 * 5 * 5)`. A $3 \times 3$ convolution with padding 1 keeps
# the size, each pooling halves it (rounding down), so the flattened size is right only if
# $\lfloor\lfloor H/2 \rfloor/2\rfloor = 5$:

# %%
def size_after(H: int) -> int:
    """Height after conv(3, padding 1) -> pool(2) -> conv(3, padding 1) -> pool(2)."""
    for _ in range(2):
        H = conv.conv_output_size(H, 3, 1, 1)  # convolution: H stays H
        H = conv.conv_output_size(H, 2, 2, 0)  # 2 x 2 pooling, stride 2: H // 2
    return H


print({H: size_after(H) for H in (19, 20, 23, 24, 28, 32)})

# %% [markdown]
# Only inputs of 20 to 23 pixels give $5 \times 5$. For 28×28 images (MNIST's size, the obvious
# use of a one-channel, ten-class network) the maps end at $7 \times 7$ and the flatten must be
# `64 * 7 * 7` = 3136. Chapter 07 repairs this listing and checks the repaired network's shapes
# layer by layer; the CNN it trains is a smaller one of the same design (two blocks of 3×3
# convolution and 2×2 max pooling, then a linear layer) sized for the 8×8 digits. (The other source
# article, the talent article, prints a second CNN, `Conv2d(3, 6, 5)` … `16 * 5 * 5`, which is
# consistent for 32×32 colour images: 32 → 28 → 14 → 10 → 5.)
#
# ## 2. What pooling throws away
#
# Pooling is a summary: with $2 \times 2$ windows and stride 2 it keeps 16 of the 64 values of an
# 8×8 map, one in four. Here is a handwritten digit from the bundled 8×8 digits, and the map of
# its vertical edges: the convolution of chapter 05 with a Sobel filter (which responds where
# brightness changes from left to right), followed by a ReLU, as a CNN layer would compute it.

# %%
digits = data.digits(dtype=DT)
images = data.to_images(digits.X_test).unsqueeze(1)  # (450, 1, 8, 8), values in [0, 1]
sobel = torch.tensor([[[[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]]]], dtype=DT)  # (1, 1, 3, 3)
edges = torch.relu(conv.conv2d(images, sobel, padding=1))  # (450, 1, 8, 8)
compare("conv2d vs F.conv2d", edges, torch.relu(F.conv2d(images, sobel, padding=1)), atol=1e-12)

n = 0
maps = {"digit": images[n, 0], "max 2x2": pool.max_pool2d(images[n:n + 1], 2)[0, 0],
        "avg 2x2": pool.avg_pool2d(images[n:n + 1], 2)[0, 0], "edges (conv + ReLU)": edges[n, 0],
        "edges, max 2x2": pool.max_pool2d(edges[n:n + 1], 2)[0, 0], "edges, avg 2x2": pool.avg_pool2d(edges[n:n + 1], 2)[0, 0]}
fig, axes = plt.subplots(1, 6, figsize=(11, 2.2))
for ax, (name, m) in zip(axes, maps.items()):
    ax.imshow(m.numpy(), cmap="gray_r", vmin=0)
    ax.set_title(f"{name}\n{tuple(m.shape)}: {m.numel()} values", fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])
plt.show()

# %% [markdown]
# The pooled maps are coarse but still show where the strokes and the edges are. What is lost is
# *where inside each window* the value came from. Two inputs that differ only by rearranging the
# values inside each window cannot be told apart after pooling: below, each $2 \times 2$ block of
# the digit is mirrored left to right; the image changes, both pooled maps do not.

# %%
digit = images[n:n + 1]  # (1, 1, 8, 8)
blocks = digit.reshape(1, 1, 4, 2, 4, 2)  # (.., block row, row in block, block column, column in block)
mirrored = blocks.flip(-1).reshape(1, 1, 8, 8)  # mirror every 2 x 2 block
print(f"the images differ in {int((mirrored != digit).sum())} of 64 pixels")
compare("max pool of the mirrored digit vs of the digit", pool.max_pool2d(mirrored, 2), pool.max_pool2d(digit, 2), atol=0)
compare("avg pool of the mirrored digit vs of the digit", pool.avg_pool2d(mirrored, 2), pool.avg_pool2d(digit, 2), atol=1e-12)

# %% [markdown]
# Max and average pooling discard different things. Max pooling keeps the strongest response of
# each window: a feature that is present *somewhere* in the window survives at full strength,
# however small the rest is. Average pooling keeps the mean: a strong but small feature is
# diluted by its neighbours. On the edge map:

# %%
kept_max, kept_avg = pool.max_pool2d(edges, 2), pool.avg_pool2d(edges, 2)
print(f"strongest edge response, mean over the 450 test digits: before pooling {edges.amax(dim=(1, 2, 3)).mean():.3f}, "
      f"after max pooling {kept_max.amax(dim=(1, 2, 3)).mean():.3f}, after average pooling {kept_avg.amax(dim=(1, 2, 3)).mean():.3f}")

# %% [markdown]
# ## 3. Explore: windows, stride, padding
#
# The explorer pools a digit (or its edge map) and draws every window on the input (alternate
# windows in blue and orange, slightly inset so that overlapping borders stay visible; the
# padding is shaded). For max pooling a red dot marks each window's maximum, bigger when the same
# input is the maximum of several windows. Things to try:
#
# * kernel 2, stride 2, then stride 1: the windows overlap, the output grows from 4×4 to 7×7, and
#   many inputs win several windows;
# * stride 3 with kernel 2: some inputs are in no window at all;
# * kernel 3, padding 1, stride 2 (a common setting): the windows hang over the border;
#   padding 2 with kernel 3 is refused ($p \le \lfloor k/2 \rfloor$);
# * max vs average on the edge map: the maxima sit on the strokes' edges;
# * the empty (all-zero) windows: all four values tie, and the dot sits on the first, top-left.

# %%
explorer = PoolingExplorer()
explorer

# %% [markdown]
# The explorer's numbers are the library's: `explorer.result` holds the input, the pooled map and
# (for max pooling) the indices of the current state.

# %%
print(explorer.state())
print("pooled map shape", tuple(explorer.result["y"].shape))

# %% [markdown]
# ## 4. The gradient of max pooling
#
# To train a network through a pooling layer, backpropagation needs $\partial L/\partial x$ from
# the upstream gradient $g = \partial L / \partial y$ (`grad_out`, the shape of $y$). Fix a
# window $(i, j)$ and let $(a^*, b^*)$ be the position of its maximum. Then
# $y_{n,c,i,j} = \tilde x_{n,c,\ i s_h + a^*,\ j s_w + b^*}$: the output *is* one of the inputs.
# If that maximum is strict, changing any input slightly does not change which one is largest, so
#
# $$\frac{\partial y_{n,c,i,j}}{\partial \tilde x_{n,c,u,v}} =
# \begin{cases} 1 & (u, v) = (i s_h + a^*,\ j s_w + b^*) \\ 0 & \text{otherwise,} \end{cases}$$
#
# and by the chain rule each input collects the upstream gradients of the windows it wins:
#
# $$\frac{\partial L}{\partial x_{n,c,u,v}} = \sum_{(i, j)\,:\ \text{window } (i,j) \text{ has its maximum at } (u, v)} g_{n,c,i,j} .$$
#
# So the gradient is **routed**: each window sends its whole gradient to its maximum and nothing
# to the other $k_h k_w - 1$ elements; an input that is the maximum of several overlapping windows
# receives the **sum**; an input that wins no window gets 0. At a **tie** the maximum is not
# differentiable (moving either tied element up would make it the winner); PyTorch, and we, send
# the gradient to the element its forward pass picked, the first in row-major order. The indices
# of the forward pass are exactly the routing table, so the backward pass is one `scatter_add_`:

# %%
show_source(pool.max_pool2d_backward)

# %% [markdown]
# On the small example, with $g = 1$ everywhere: element 1 (row 0, column 1) wins two windows and
# gets 2, element 3 wins one, element 7 one, all others get 0. Against autograd:

# %%
g_small = torch.ones(1, 1, 2, 2, dtype=DT)
grad_small = pool.max_pool2d_backward(g_small, x_small, 2, stride=1)
print(grad_small[0, 0])
x_leaf = x_small.clone().requires_grad_(True)
F.max_pool2d(x_leaf, 2, stride=1).backward(g_small)
compare("max_pool2d_backward vs autograd (ties, overlaps)", grad_small, x_leaf.grad, atol=0)

# %% [markdown]
# And on random batches with random upstream gradients, for integer-valued inputs (many ties)
# and Gaussian ones:

# %%
def autograd_grad(fn, x: torch.Tensor, g: torch.Tensor, *args, **kwargs) -> torch.Tensor:
    """dL/dx by PyTorch's autograd for L = sum(g * fn(x, ...))."""
    leaf = x.clone().requires_grad_(True)
    fn(leaf, *args, **kwargs).backward(g)
    return leaf.grad


for values in ("integers 0..2", "Gaussian"):
    if values == "Gaussian":
        x = torch.randn(3, 2, 9, 10, generator=gen, dtype=DT)
    else:
        x = torch.randint(0, 3, (3, 2, 9, 10), generator=gen).to(DT)
    for k, s, p in [(2, None, 0), (3, 1, 1), ((2, 3), (1, 2), (1, 1))]:
        g = torch.randn(pool.max_pool2d(x, k, s, p).shape, generator=gen, dtype=DT)
        compare(f"{values}: max_pool2d_backward k={k}, s={s}, p={p}", pool.max_pool2d_backward(g, x, k, s, p),
                autograd_grad(F.max_pool2d, x, g, k, s, p), atol=1e-12)

# %% [markdown]
# ## 5. The gradient of average pooling
#
# An average depends on every element of its window with the same weight $1/d_{ij}$, so the
# gradient is **spread equally**: each element of window $(i, j)$ receives $g_{n,c,i,j}/d_{ij}$,
# and an element in several windows the sum:
#
# $$\frac{\partial L}{\partial x_{n,c,u,v}} = \sum_{(i, j)\,:\ (u, v) \in \text{window } (i, j)} \frac{g_{n,c,i,j}}{d_{ij}} .$$
#
# It depends on the positions only, not on the values of $x$. The implementation loops over the
# $k_h k_w$ offsets $(a, b)$ inside a window: offset $(a, b)$ of all windows at once is a strided
# slice of the padded gradient, and `+=` adds each window's share; the padding is cut off at the
# end.

# %%
show_source(pool.avg_pool2d_backward)

# %%
x = torch.randn(3, 2, 9, 10, generator=gen, dtype=DT)
for k, s, p in [(2, None, 0), (3, 1, 1), (3, 2, 1), ((2, 3), (1, 2), (1, 1))]:
    for include in (True, False):
        g = torch.randn(pool.avg_pool2d(x, k, s, p).shape, generator=gen, dtype=DT)
        compare(f"avg_pool2d_backward k={k}, s={s}, p={p}, count_include_pad={include}",
                pool.avg_pool2d_backward(g, x, k, s, p, include),
                autograd_grad(F.avg_pool2d, x, g, k, s, p, count_include_pad=include), atol=1e-12)

# %% [markdown]
# The two rules side by side: max pooling gives each window's gradient to one input, average
# pooling shares it among all. Without padding, both pass on the total upstream gradient
# unchanged: the input gradients add up to $\sum_{i,j} g_{n,c,i,j}$ in every plane.

# %%
g = torch.randn(3, 2, 8, 9, generator=gen, dtype=DT)  # upstream gradient for k = 2, stride 1 on x (3, 2, 9, 10)
total = g.sum(dim=(2, 3))  # (N, C)
compare("max: sum of dL/dx per plane vs sum of g", pool.max_pool2d_backward(g, x, 2, 1).sum(dim=(2, 3)), total, atol=1e-12)
compare("avg: sum of dL/dx per plane vs sum of g", pool.avg_pool2d_backward(g, x, 2, 1).sum(dim=(2, 3)), total, atol=1e-12)

# %% [markdown]
# ## 6. Explore: where the gradient goes
#
# A 6×6 input of small integers (with ties), kernel $k$ and stride $s$. With "one output cell",
# the upstream gradient is 1 at the chosen output cell and 0 elsewhere: for max pooling the
# gradient lands on the window's first maximum (red circle), for average pooling on all $k^2$
# elements, $1/k^2$ each. With "every output cell", $g = 1$ everywhere: for max pooling each
# input shows the number of windows it wins (try $k = 3$, $s = 1$), for average pooling the
# number of windows it belongs to, divided by $k^2$.

# %%
grad_explorer = PoolGradientExplorer()
grad_explorer

# %% [markdown]
# ## 7. How much shift invariance does pooling buy?
#
# A classifier should say "3" whether the 3 sits one pixel further left or right. Convolution
# alone does not forget position: shift the input and its feature maps shift with it
# (**equivariance**). Pooling is often said to add **invariance** to small shifts: if the maximum
# of a window moves within the window, the pooled value stays the same. Let us measure it.
#
# We put each of the 450 test digits on a canvas of 8×16 pixels (4 empty columns on either side,
# so that nothing falls off or touches the border), shift it by $t$ pixels to the right, and
# compare a feature map $f$ of the shifted digit with that of the original by the mean relative
# difference
#
# $$\delta(t) = \frac{1}{N} \sum_{n=1}^{N} \frac{\| f(\mathrm{shift}_t\, x_n) - f(x_n) \|}{\| f(x_n) \|}
# \qquad (\|\cdot\|: \text{the Euclidean norm over all values of the map}).$$
#
# $\delta = 0$ means unchanged; two maps of equal norm that do not overlap at all give
# $\sqrt 2 \approx 1.41$. As $f$ we take the pixels themselves and the edge map (conv + ReLU),
# each without pooling, after $2 \times 2$ max and average pooling (stride 2), after $4 \times 4$
# max pooling, and after the global average pooling of section 8.

# %%
def shift_right(x: torch.Tensor, t: int) -> torch.Tensor:
    """Move the planes of x (N, C, H, W) t columns to the right, filling with zeros."""
    out = torch.zeros_like(x)
    out[..., t:] = x[..., :x.shape[-1] - t]
    return out


def relative_difference(a: torch.Tensor, b: torch.Tensor) -> float:
    """Mean over the batch of ||a_n - b_n|| / ||b_n||, for a, b (N, ...)."""
    return float(((a - b).flatten(1).norm(dim=1) / b.flatten(1).norm(dim=1)).mean())


canvas = F.pad(images, (4, 4))  # (450, 1, 8, 16): 4 empty columns on either side
poolings = {"no pooling": lambda m: m, "max 2x2": lambda m: pool.max_pool2d(m, 2),
            "avg 2x2": lambda m: pool.avg_pool2d(m, 2), "max 4x4": lambda m: pool.max_pool2d(m, 4),
            "global avg": pool.global_avg_pool2d}
features = {"pixels": lambda z: z, "edges": lambda z: torch.relu(conv.conv2d(z, sobel, padding=1))}
delta = {}
print(f"{'features':9s} {'shift t':>7s}" + "".join(f"{name:>12s}" for name in poolings))
for fname, f in features.items():
    for t in (1, 2, 3, 4):
        original, shifted = f(canvas), f(shift_right(canvas, t))
        delta[fname, t] = {name: relative_difference(P(shifted), P(original)) for name, P in poolings.items()}
        print(f"{fname:9s} {t:7d}" + "".join(f"{v:12.3f}" for v in delta[fname, t].values()))

# %% [markdown]
# What the numbers say:
#
# * **A shift by one pixel is a big change** for the unpooled maps: $\delta = 0.83$ for the pixels
#   and $0.98$ for the edges. The digits are only 8 pixels wide, so one pixel is a lot.
# * **$2 \times 2$ pooling reduces it, but only partly**: to 0.55 (max) and 0.58 (average) for the
#   pixels, 0.70 and 0.77 for the edges, 21 to 34 % less. A stroke that moves inside its window
#   keeps its pooled value; one that crosses a window border (every other column) changes windows.
# * **A shift by 2 pixels, the stride, is not absorbed**: 0.90 instead of 1.14 for the pixels, 1.05
#   instead of 1.32 for the edges. The pooled map then simply moves by one cell: $2 \times 2$
#   pooling with stride 2 is exactly *equivariant* to shifts by multiples of 2 (checked below), not
#   invariant.
# * **Larger windows buy more invariance**: $4 \times 4$ max pooling gives 0.17 (pixels) and 0.32
#   (edges) for a one-pixel shift, at the price of keeping one value in 16.
# * **The global average does not change at all** (0.000): it sums over all positions, and on this
#   canvas no part of the digit leaves the map.
#
# The equivariance to shifts by the stride, checked on all 450 digits: pooling the shifted canvas
# gives exactly the pooled canvas moved by one cell.

# %%
compare("max-pool(shift by 2 pixels) vs max-pool, then shift by 1 cell",
        pool.max_pool2d(shift_right(canvas, 2), 2), shift_right(pool.max_pool2d(canvas, 2), 1), atol=0)

# %% [markdown]
# So pooling with small windows gives a *partial* invariance to shifts smaller than its window,
# not a guarantee. Deep CNNs inherit the problem: Azulay and Weiss (2019) found that VGG16,
# ResNet50 and InceptionResNetV2 can change their prediction drastically when an image is shifted
# by a few pixels, because their subsampling (pooling and strides) ignores the sampling theorem,
# and that training on shifted images makes them invariant only for images similar to typical
# images of the training set.

# %% [markdown]
# ## 8. Global average pooling
#
# Take pooling to the extreme: one window as large as the whole map. **Global average pooling**
# (Lin, Chen and Yan, 2014) averages each channel over all positions,
#
# $$z_{n,c} = \frac{1}{H W} \sum_{u=0}^{H-1} \sum_{v=0}^{W-1} x_{n,c,u,v}, \qquad
# x \in \mathbb{R}^{N \times C \times H \times W} \ \to\ z \in \mathbb{R}^{N \times C},$$
#
# which is `avg_pool2d` with kernel $(H, W)$, and PyTorch's `adaptive_avg_pool2d(x, 1)`:

# %%
show_source(pool.global_avg_pool2d)

# %%
feature_maps = torch.relu(conv.conv2d(images, torch.randn(8, 1, 3, 3, generator=gen, dtype=DT), padding=1))  # (450, 8, 8, 8)
z = pool.global_avg_pool2d(feature_maps)  # (450, 8)
compare("global_avg_pool2d vs F.adaptive_avg_pool2d(x, 1)", z, F.adaptive_avg_pool2d(feature_maps, 1).flatten(1), atol=1e-12)
compare("global_avg_pool2d vs avg_pool2d with an 8x8 kernel", z, pool.avg_pool2d(feature_maps, 8).flatten(1), atol=1e-12)
rolled = torch.roll(feature_maps, shifts=(2, 3), dims=(2, 3))  # a circular shift: nothing falls off
compare("global average of a circularly shifted map vs of the map", pool.global_avg_pool2d(rolled), z, atol=1e-12)

# %% [markdown]
# A global average forgets *where* a feature is and keeps only *how much* of it there is, so it
# is exactly invariant to any rearrangement of the positions, shifts included (above: a circular
# shift; in section 7 the zero-filled shifts on the wider canvas, where nothing fell off). And its output size $C$ does not depend on $H$ and $W$: a classifier on top of it
# works for images of any size, and it needs no large flatten-then-linear layer, whose size is
# exactly what the employment article's listing got wrong. (Chapter 07 keeps the listings'
# flatten-then-linear design and computes the flatten size from the input size instead.)
#
# ## Summary
#
# * **Pooling** summarises each $k_h \times k_w$ window of every feature-map plane by its
#   **maximum** or its **average**; output size
#   $\lfloor (H + 2p - k)/s \rfloor + 1$ per axis, as for a convolution. Stride defaults to the
#   kernel; padding is $-\infty$ for max, $0$ for average, at most $\lfloor k/2 \rfloor$. No
#   parameters.
# * It **shrinks** the maps (stride 2: a quarter of the values), making later layers cheaper and
#   their receptive fields larger, and throws away *where in the window* a value was.
# * **Backward, max:** each window's gradient goes to its maximum (the first one at ties); an
#   input that wins several windows gets the sum. **Backward, average:** each window's gradient is
#   shared equally, $1/d_{ij}$ to each element.
# * `course_lib.pool` computes all of it from scratch with `Tensor.unfold`, `scatter_add_` and
#   strided slices and matches PyTorch's values, indices and gradients.
# * **Shift invariance is partial:** on the digits, $2 \times 2$ pooling cut the effect of a
#   one-pixel shift by 21 to 34 %; at a shift by the stride the pooled map just moves by a cell.
#   **Global average pooling** is fully invariant to rearrangements and independent of the input
#   size.
#
# ## Exercises
#
# Open `exercises/06_pooling.ipynb`: write max pooling and average pooling, forward and backward
# (deriving the two gradients yourself), with ties, overlapping windows and padding; then predict
# how many features the talent article's CNN flattens for an image of any size, before running it.
# At the end your functions become layers of a small CNN that learns the digits.
#
# ## References
#
# * Y. LeCun, L. Bottou, Y. Bengio, P. Haffner. *Gradient-based learning applied to document
#   recognition.* Proceedings of the IEEE 86(11), 2278–2324 (1998). (Subsampling layers in a CNN.)
# * V. Dumoulin, F. Visin. *A guide to convolution arithmetic for deep learning.*
#   arXiv:1603.07285 (2016). (Output sizes of convolution and pooling.)
# * M. Lin, Q. Chen, S. Yan. *Network in network.* ICLR (2014), arXiv:1312.4400. (Global average
#   pooling.)
# * K. He, X. Zhang, S. Ren, J. Sun. *Deep residual learning for image recognition.* CVPR (2016),
#   arXiv:1512.03385. (A CNN that ends with global average pooling and one linear layer.)
# * A. Azulay, Y. Weiss. *Why do deep convolutional networks generalize so poorly to small image
#   transformations?* Journal of Machine Learning Research 20(184), 1–25 (2019), arXiv:1805.12177.
# * PyTorch documentation of `torch.nn.functional.max_pool2d` and `avg_pool2d` (the conventions
#   implemented here).

# %%
print(explorer.self_check())
print(grad_explorer.self_check())
