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
# # 05 · Convolution
#
# <a href="https://colab.research.google.com/github/nn-from-scratch/course/blob/main/notebooks/05_convolution.ipynb" target="_parent"><img src="https://colab.research.google.com/assets/colab-badge.svg" alt="Open In Colab"/></a>
#
# The networks of chapters 01–04 flatten an image into a long vector and connect every pixel to
# every neuron. That throws away what makes an image an image: neighbouring pixels belong
# together, and a stroke means the same thing wherever it appears. A **convolutional layer** keeps
# both. It slides one small kernel of weights over the whole image, so each output looks only at
# a small neighbourhood (**locality**) and the same weights are used at every position (**weight
# sharing**). This chapter builds the layer from scratch in `course_lib.conv`: the exact indexing
# with channels, stride, padding and dilation, the output-size formula, a slow loop version and a
# fast one that turns the whole convolution into a single matrix product (**im2col**), and the
# backward pass, which turns out to consist of two more convolutions. Everything is checked against
# PyTorch's `F.conv2d` and autograd, and tried out on real handwritten digits.

# %% tags=["setup"]
# Setup. On Colab this installs course_lib from the course repository (Colab keeps its own
# torch and ipywidgets); everywhere else it does nothing.
import sys

if "google.colab" in sys.modules:
    get_ipython().run_line_magic("pip", "install --quiet git+https://github.com/nn-from-scratch/course")

# %%
import time

import matplotlib.pyplot as plt
import torch
import torch.nn as nn
import torch.nn.functional as F

from course_lib import conv, data
from course_lib.compare import compare
from course_lib.device import seed_everything
from course_lib.show import show_source
from course_lib.widgets.conv import FILTERS, ConvShapeExplorer, FilterExplorer, SlidingKernelExplorer

gen = seed_everything(0)
torch.set_num_threads(1)  # small tensors, and timings that do not depend on the machine's core count
torch.set_printoptions(precision=3, sci_mode=False)
DT = torch.float64  # comparisons with PyTorch run in float64: agreement to ~1e-15 means "the same computation"

digits = data.digits(dtype=DT)
images = data.to_images(digits.X_train)[:, None]  # (1347, 1, 8, 8): N images with C = 1 channel
print("digit images:", tuple(images.shape), "labels:", digits.y_train[:10].tolist())

# %% [markdown]
# ## 1. Why not a dense layer?
#
# A dense layer on an image $X \in \mathbb{R}^{H \times W}$ first flattens it into a vector of
# $HW$ numbers. For a 28×28 image (the size of the classic MNIST digits) that is 784 inputs, and a
# hidden layer of the same width already needs a weight matrix of $784 \times 784$ plus 784 biases.
# Every weight connects one pixel to one neuron, wherever they are: the layer does not know which
# pixels are neighbours, and it must learn "a vertical stroke" separately for every place the
# stroke can appear.
#
# A convolutional layer with 32 kernels of size 3×3 has $32 \cdot 3 \cdot 3$ weights plus 32
# biases, and it still produces 32 feature maps of 28×28 values. We let PyTorch count:

# %%
def n_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


dense = nn.Linear(28 * 28, 28 * 28)
conv_layer = nn.Conv2d(1, 32, kernel_size=3, padding=1)
print(f"dense 784 -> 784:            {n_params(dense):>9,} parameters = 784*784 + 784 = {784 * 784 + 784:,}")
print(f"conv 1 -> 32 channels, 3x3:  {n_params(conv_layer):>9,} parameters = 32*1*3*3 + 32 = {32 * 9 + 32:,}")
print("conv output shape:", tuple(conv_layer(torch.zeros(1, 1, 28, 28)).shape))

# %% [markdown]
# Weight sharing has a second consequence: **translation equivariance**. Shifting the input shifts
# the output by the same amount (away from the borders, where the shifted-in pixels differ). A
# dense layer has no such property. Checked on a digit, shifted one pixel to the right:

# %%
x = images[:1]  # (1, 1, 8, 8)
w = torch.randn(4, 1, 3, 3, dtype=DT, generator=gen)  # 4 random kernels
shifted = torch.roll(x, shifts=1, dims=3)  # one pixel to the right (roll wraps column 7 around to column 0)
y, y_shifted = conv.conv2d(x, w), conv.conv2d(shifted, w)  # (1, 4, 6, 6) each
# output column j+1 of the shifted digit reads the columns that output column j of the digit read
compare("conv(shift(x)) vs shift(conv(x)), away from the wrapped column", y_shifted[..., 1:], y[..., :-1], atol=1e-12)
dense64 = nn.Linear(64, 64).to(DT)  # a dense layer 8x8 -> 8x8, for comparison
with torch.no_grad():
    out, out_shifted = dense64(x.reshape(1, 64)).reshape(8, 8), dense64(shifted.reshape(1, 64)).reshape(8, 8)
print(f"dense layer: its output for the shifted digit differs from its shifted output by up to "
      f"{float((out_shifted[:, 1:] - out[:, :-1]).abs().max()):.2f}")

# %% [markdown]
# ## 2. Cross-correlation or convolution?
#
# In mathematics, the (discrete) **convolution** of an image $I$ with a kernel $K$ flips the kernel:
# $(I * K)_{i,j} = \sum_{u}\sum_{v} I_{i-u,\,j-v}\,K_{u,v}$. What deep learning calls a convolution
# does not flip it; it is a **cross-correlation**, $(I \star K)_{i,j} = \sum_{u}\sum_{v}
# I_{i+u,\,j+v}\,K_{u,v}$. For an image $I \in \mathbb{R}^{H \times W}$ and a kernel
# $K \in \mathbb{R}^{k_H \times k_W}$, keeping only the positions where the kernel lies fully
# inside the image ("valid" mode, output $(H-k_H+1) \times (W-k_W+1)$):
#
# $$\text{correlate}(I, K)_{i,j} = \sum_{u=0}^{k_H-1}\sum_{v=0}^{k_W-1} K_{u,v}\, I_{i+u,\,j+v},
# \qquad
# \text{convolve}(I, K)_{i,j} = \sum_{u=0}^{k_H-1}\sum_{v=0}^{k_W-1} K_{k_H-1-u,\;k_W-1-v}\, I_{i+u,\,j+v} .$$
#
# So a convolution is a cross-correlation with the kernel flipped in both axes:

# %%
show_source(conv.correlate2d, conv.convolve2d)

# %% [markdown]
# `F.conv2d` computes the cross-correlation, and SciPy's `signal.convolve2d` (installed with
# scikit-learn) the convolution. With a kernel that is not symmetric the two differ; for the
# Sobel kernel below, which the flip turns into its negative, they differ exactly in sign:

# %%
import scipy.signal

digit = images[0, 0]  # (8, 8)
sobel_x = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]], dtype=DT)  # d/dx, left to right
print("the kernel flipped in both axes:\n", sobel_x.flip(0, 1))
compare("correlate2d vs F.conv2d", conv.correlate2d(digit, sobel_x), F.conv2d(digit[None, None], sobel_x[None, None])[0, 0])
compare("convolve2d vs scipy.signal.convolve2d", conv.convolve2d(digit, sobel_x),
        torch.from_numpy(scipy.signal.convolve2d(digit.numpy(), sobel_x.numpy(), mode="valid")))
compare("convolve2d = -correlate2d for this kernel", conv.convolve2d(digit, sobel_x), -conv.correlate2d(digit, sobel_x));

# %% [markdown]
# For a network the difference does not matter: the kernels are learned, and a network that
# correlates simply learns the flipped kernel of one that convolves. Correlation is the simpler
# indexing, so every library uses it and still calls the layer "convolution". So will we; the
# flip comes back in the backward pass (section 6).
#
# ## 3. The convolution layer: channels, stride, padding, dilation
#
# A layer works on a batch of images with several **channels** (3 colours at the input, many
# feature maps later). Its input is $X \in \mathbb{R}^{N \times C_{in} \times H \times W}$, its
# weights are $C_{out}$ kernels, each spanning all input channels,
# $W \in \mathbb{R}^{C_{out} \times C_{in} \times k_H \times k_W}$, and a bias $b \in \mathbb{R}^{C_{out}}$.
# Output channel $o$ at position $(i, j)$ is
#
# $$Y_{n,o,i,j} = b_o + \sum_{c=0}^{C_{in}-1}\sum_{u=0}^{k_H-1}\sum_{v=0}^{k_W-1} W_{o,c,u,v}\,X_{n,c,\,s i + d u - p,\, s j + d v - p},
# \qquad Y \in \mathbb{R}^{N \times C_{out} \times H_{out} \times W_{out}},$$
#
# where $X$ counts as $0$ outside the image. Three hyper-parameters (each may differ between the
# two axes) shape it:
#
# * **stride** $s$: the window moves $s$ pixels from one output to the next ($s = 2$ halves the size);
# * **padding** $p$: $p$ rows/columns of zeros are added on every side, so border pixels get
#   windows too ($p = (k-1)/2$ for an odd $k$, with stride 1 and no dilation, keeps the size: "same" padding);
# * **dilation** $d$: the kernel's taps are $d$ pixels apart, so a 3×3 kernel with $d = 2$ spans
#   5×5 pixels with still 9 weights.
#
# (With **groups** $g$, the channels are split into $g$ groups that are convolved separately:
# $W$ is $(C_{out}, C_{in}/g, k_H, k_W)$ and output channel $o$ sees only the input channels of
# its group. `course_lib.conv` supports it, like `F.conv2d`.)
#
# Along one axis, the padded input has $H + 2p$ pixels and the dilated kernel spans $d(k-1) + 1$ of
# them. The first window starts at 0, the last at most at $H + 2p - d(k-1) - 1$, in steps of $s$:
#
# $$H_{out} = \left\lfloor \frac{H + 2p - d(k_H-1) - 1}{s} \right\rfloor + 1 ,
# \qquad W_{out} \text{ likewise.}$$
#
# When the dilated kernel is larger than the padded input, there is no valid position at all:

# %%
show_source(conv.conv_output_size)

# %%
settings = [  # (H, k, s, p, d)
    (28, 3, 1, 1, 1),  # "same" padding
    (28, 3, 2, 1, 1),  # stride 2 halves
    (8, 3, 2, 0, 1),  # floor: the last row is never the top of a window
    (8, 3, 1, 0, 2),  # dilation 2: a 3x3 kernel spanning 5x5
    (5, 5, 1, 0, 1),  # kernel as large as the input: one output
]
for H, k, s, p, d in settings:
    ours = conv.conv_output_size(H, k, s, p, d)
    theirs = F.conv2d(torch.zeros(1, 1, H, H), torch.zeros(1, 1, k, k), stride=s, padding=p, dilation=d).shape[-1]
    print(f"H={H:2d} k={k} s={s} p={p} d={d}:  H_out = ({H} + {2 * p} - {d * (k - 1)} - 1) // {s} + 1 = {ours}   (F.conv2d: {theirs})")
    assert ours == theirs
try:
    conv.conv_output_size(4, 3, dilation=2)
except ValueError as err:
    print("\nValueError:", err)

# %% [markdown]
# **Explore.** Move the sliders to see the padded input (grey border: the zero padding), the
# cells the kernel reads at its first two positions (orange and blue; purple where they overlap)
# and the output grid at the same scale. Try: stride 2 with an even input size (one row is left
# over); dilation 2 (holes between the taps); padding 1 with a 3×3 kernel and stride 1 (the size
# is kept); a kernel larger than the padded input (an error, shown instead of raised).

# %%
shape_explorer = ConvShapeExplorer()
shape_explorer

# %% [markdown]
# ## 4. Receptive fields of stacked layers
#
# One output of a 3×3 layer sees 3×3 input pixels: its **receptive field**. A second 3×3 layer on
# top sees 3×3 outputs of the first, which together see 5×5 inputs. In general, along one axis,
# let $J_l$ be the **jump** of layer $l$, the distance in input pixels between two neighbouring
# outputs ($J_0 = 1$). With $r_0 = 1$,
#
# $$r_l = r_{l-1} + d_l\,(k_l - 1)\,J_{l-1}, \qquad J_l = J_{l-1}\, s_l .$$
#
# Strides multiply the jump, so layers after a stride-2 layer grow the field twice as fast;
# dilations grow it without adding weights (Yu and Koltun, 2016). Pooling layers (chapter 06)
# count like convolutions with their window size and stride.

# %%
show_source(conv.receptive_field)

# %% [markdown]
# We check the formula with autograd: the receptive field of an output pixel is the set of input
# pixels its gradient reaches. With all-ones kernels nothing cancels, so the nonzero region of
# $\partial Y_{0,0,i,j}/\partial X$ is exactly the field (with dilation it has holes; we measure its span):

# %%
def measured_field(layers, size: int = 64) -> int:
    """Span of the input pixels that influence one central output pixel (all-ones kernels, 1 channel)."""
    x = torch.zeros(1, 1, size, size, dtype=DT, requires_grad=True)
    y = x
    for k, s, d in layers:
        y = F.conv2d(y, torch.ones(1, 1, k, k, dtype=DT), stride=s, dilation=d)
    y[0, 0, y.shape[2] // 2, y.shape[3] // 2].backward()
    rows = torch.nonzero(x.grad[0, 0].abs().sum(dim=1)).squeeze(1)
    return int(rows.max() - rows.min()) + 1


stacks = {
    "one 3x3": [(3, 1, 1)],
    "three 3x3": [(3, 1, 1)] * 3,
    "3x3 stride 2, then 3x3": [(3, 2, 1), (3, 1, 1)],
    "3x3 with dilation 1, 2, 4": [(3, 1, 1), (3, 1, 2), (3, 1, 4)],
    "5x5, 2x2 stride 2, 5x5, 2x2 stride 2 (LeNet-like)": [(5, 1, 1), (2, 2, 1), (5, 1, 1), (2, 2, 1)],
}
for name, layers in stacks.items():
    r = conv.receptive_field(layers)
    print(f"{name:50s} receptive field {r:2d} x {r:2d}")
    assert r == measured_field(layers)

# %% [markdown]
# Three 3×3 layers see 7×7 pixels with $3 \cdot 9 = 27$ weights per channel pair, where one 7×7
# layer needs 49: one reason why deep networks stack small kernels.
#
# ## 5. From loops to one matrix product
#
# The formula of section 3 translates directly into loops. Ours loops over the output positions
# $(i, j)$; for each it cuts out the window $X^{pad}_{:,\,:,\; s i + d u,\; s j + d v}$ of shape
# $(N, C_{in}, k_H, k_W)$ and multiplies it with all $C_{out}$ kernels at once:

# %%
show_source(conv.conv2d_naive)

# %%
x = torch.randn(2, 4, 9, 7, dtype=DT, generator=gen)  # N=2, C_in=4, 9x7
w = torch.randn(6, 2, 3, 2, dtype=DT, generator=gen)  # C_out=6, groups=2: 2 input channels per kernel, 3x2 taps
b = torch.randn(6, dtype=DT, generator=gen)
hyper = dict(stride=(2, 1), padding=1, dilation=(1, 2), groups=2)
compare("conv2d_naive vs F.conv2d", conv.conv2d_naive(x, w, b, **hyper), F.conv2d(x, w, b, **hyper));

# %% [markdown]
# It is correct, and slow: a Python loop with $H_{out} W_{out}$ steps. The fast way rearranges the
# data so that the whole layer becomes **one matrix product**. **im2col** ("image to columns")
# copies the receptive field of every output position into a column:
#
# $$\text{cols} \in \mathbb{R}^{N \times (C_{in} k_H k_W) \times L}, \qquad L = H_{out} W_{out},
# \qquad \text{cols}_{n,\; c k_H k_W + u k_W + v,\; i W_{out} + j} = X^{pad}_{n,\,c,\,s i + d u,\,s j + d v} .$$
#
# This is the layout of PyTorch's `F.unfold`. Reshaping the weights to a matrix
# $W_{mat} \in \mathbb{R}^{C_{out} \times C_{in} k_H k_W}$ (row $o$ is kernel $o$ flattened in the
# same order), each sample's output is a matrix product:
#
# $$Y_n = W_{mat}\, \text{cols}_n + b\,\mathbf{1}^\top \in \mathbb{R}^{C_{out} \times L},
# \quad \text{reshaped to } (C_{out}, H_{out}, W_{out}).$$
#
# Our `im2col` needs no loop: after zero padding, `Tensor.as_strided` *views* the padded input as a
# 6-D tensor $(N, C, k_H, k_W, H_{out}, W_{out})$ by choosing how far each index moves in memory
# (one step of $u$ moves $d$ rows, one step of $i$ moves $s$ rows); only the final reshape copies.
# Here is a 1-channel 4×4 image with a 2×2 kernel and stride 2: 4 positions, so 4 columns of
# $1 \cdot 2 \cdot 2$ entries.

# %%
show_source(conv.im2col)

# %%
tiny = torch.arange(16, dtype=DT).reshape(1, 1, 4, 4)
print(tiny[0, 0])
print("im2col, kernel 2x2, stride 2: columns are the four 2x2 blocks\n", conv.im2col(tiny, 2, stride=2)[0])
x = torch.randn(3, 2, 7, 6, dtype=DT, generator=gen)
compare("im2col vs F.unfold", conv.im2col(x, (3, 2), stride=2, padding=1, dilation=(2, 1)),
        F.unfold(x, (3, 2), stride=2, padding=1, dilation=(2, 1)));

# %% [markdown]
# With groups, the rows of `cols` split into $g$ blocks, one per group, and the product is done
# per group (a batched matrix product):

# %%
show_source(conv.conv2d)

# %%
x = torch.randn(2, 4, 9, 7, dtype=DT, generator=gen)
compare("conv2d (im2col) vs F.conv2d", conv.conv2d(x, w, b, **hyper), F.conv2d(x, w, b, **hyper))
compare("conv2d (im2col) vs conv2d_naive", conv.conv2d(x, w, b, **hyper), conv.conv2d_naive(x, w, b, **hyper));

# %% [markdown]
# **The speed-up**, measured on a small batch (float32, one thread; the times depend on the
# machine, the ratios less so):

# %%
def best_ms(fn, repeats: int = 5) -> float:
    """The fastest of ``repeats`` runs, in milliseconds."""
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times) * 1000


xb = torch.randn(8, 8, 28, 28, generator=gen)  # N=8, C_in=8, 28x28, float32
wb = torch.randn(16, 8, 3, 3, generator=gen)  # C_out=16
naive_ms = best_ms(lambda: conv.conv2d_naive(xb, wb, padding=1), repeats=2)
im2col_ms = best_ms(lambda: conv.conv2d(xb, wb, padding=1))
torch_ms = best_ms(lambda: F.conv2d(xb, wb, padding=1))
print(f"conv2d_naive (loop over {28 * 28} positions): {naive_ms:7.1f} ms")
print(f"conv2d (im2col + one matmul):            {im2col_ms:7.2f} ms   {naive_ms / im2col_ms:5.0f}x faster than the loop")
print(f"F.conv2d (PyTorch):                      {torch_ms:7.2f} ms   ours takes {im2col_ms / torch_ms:.1f}x as long")

# %% [markdown]
# The price of im2col is memory: every input pixel is copied into up to $k_H k_W$ columns (9 for
# 3×3). Libraries therefore also use other algorithms (direct loops tuned for the hardware, FFT,
# Winograd) and pick the fastest per layer shape; `tools/bench_conv.py` measures ours against
# `F.conv2d` on a larger layer (see `docs/benchmarks.md`).
#
# The reverse operation, **col2im** (`F.fold`), adds every column back onto the pixels it came
# from; pixels that lie in several windows receive the sum. It is the *adjoint* (transpose) of
# im2col: $\langle \text{im2col}(X), C\rangle = \langle X, \text{col2im}(C)\rangle$ for all $X$, $C$.
# We need it for the backward pass.

# %%
show_source(conv.col2im)

# %%
x = torch.randn(2, 3, 7, 6, dtype=DT, generator=gen)
cols = conv.im2col(x, 3, stride=2, padding=1)
c = torch.randn(cols.shape, dtype=DT, generator=gen)
compare("col2im vs F.fold", conv.col2im(c, (7, 6), 3, stride=2, padding=1), F.fold(c, (7, 6), 3, stride=2, padding=1))
compare("adjoint: <im2col(x), c> vs <x, col2im(c)>", (cols * c).sum(), (x * conv.col2im(c, (7, 6), 3, stride=2, padding=1)).sum(), atol=1e-12);

# %% [markdown]
# ## 6. The backward pass: two more convolutions
#
# Let $L$ be a scalar loss and $G = \partial L/\partial Y \in \mathbb{R}^{N \times C_{out} \times
# H_{out} \times W_{out}}$ the upstream gradient (chapter 03). Since $Y$ is linear in $b$, $W$ and
# $X$, each gradient collects the terms of the forward sum in which that variable appears. Write
# $X^{pad} \in \mathbb{R}^{N \times C_{in} \times (H+2p) \times (W+2p)}$ for the padded input
# (groups 1 here; with groups each group is handled separately).
#
# **Bias.** $b_o$ appears in every output of channel $o$: $\;\dfrac{\partial L}{\partial b_o} = \sum_{n,i,j} G_{n,o,i,j}$, shape $(C_{out},)$.
#
# **Weights.** $W_{o,c,u,v}$ multiplies $X^{pad}_{n,c,\,si+du,\,sj+dv}$ in every output $(n, o, i, j)$:
#
# $$\frac{\partial L}{\partial W_{o,c,u,v}} = \sum_{n}\sum_{i}\sum_{j} G_{n,o,i,j}\; X^{pad}_{n,c,\,s i + d u,\, s j + d v}
# \qquad (C_{out} \times C_{in} \times k_H \times k_W).$$
#
# This is again a cross-correlation, of $X$ with $G$ playing the kernel: swap the batch and channel
# axes ($X$ becomes $C_{in}$ "images" with $N$ channels, $G$ becomes $C_{out}$ "kernels" with $N$
# channels, so the sum over $n$ is the sum over channels), take $G$'s taps $s$ apart (dilation $s$)
# and move by $d$ (stride $d$). The result can be a little larger than $k_H \times k_W$ when the
# stride left a remainder; we keep the first $k_H \times k_W$ entries.
#
# **Input.** $X^{pad}_{n,c,a,b'}$ is read by every output whose window covers it:
#
# $$\frac{\partial L}{\partial X^{pad}_{n,c,a,b'}} = \sum_{o}\sum_{u}\sum_{v} \;\sum_{\substack{i:\; s i + d u = a\\ j:\; s j + d v = b'}} G_{n,o,i,j}\, W_{o,c,u,v} .$$
#
# With $s = d = 1$ this is $\sum_{o,u,v} G_{n,o,\,a-u,\,b'-v}\,W_{o,c,u,v}$: a true **convolution**
# (the flip!) of $G$ with the kernels, in "full" mode, i.e. a cross-correlation of $G$, padded with
# $k-1$ zeros on every side, with the kernel flipped in both axes and its two channel axes swapped,
# $W'_{c,o,u,v} = W_{o,c,\,k_H-1-u,\,k_W-1-v}$. With stride $s$ we first insert $s - 1$ zeros
# between the entries of $G$ (where the window skipped positions), and with dilation $d$ the
# flipped kernel keeps dilation $d$ (padding $d(k-1)$). The result is the gradient for
# $X^{pad}$ except for the last $r = (H + 2p - d(k_H-1) - 1) \bmod s$ rows (and columns, likewise),
# which no window reached: their gradient is 0 (PyTorch ignores these pixels in the forward pass).
# Dropping the $p$ padding rows and columns on each side gives $\partial L/\partial X$. This
# operation is also called a **transposed convolution** (`F.conv_transpose2d`).
#
# This is what `course_lib.conv` implements, each gradient with one call of our own `conv2d`. (One
# exception: a weight that is $\pm\infty$ or NaN times the zeros inserted for padding and stride
# gives NaN where PyTorch's result is finite, so for such weights `conv2d_grad_input` takes the
# equivalent `col2im` route instead.)

# %%
show_source(conv.conv2d_grad_input, conv.conv2d_grad_weight, conv.conv2d_backward)

# %% [markdown]
# Checked against autograd on a case with everything at once: padding, dilation, groups and
# stride 3 with a remainder of $r = (11 + 2 - 2 \cdot 2 - 1) \bmod 3 = 2$ rows, the last padding row
# and the last input row:

# %%
x = torch.randn(2, 4, 11, 9, dtype=DT, generator=gen, requires_grad=True)
w = torch.randn(6, 2, 3, 3, dtype=DT, generator=gen, requires_grad=True)
b = torch.randn(6, dtype=DT, generator=gen, requires_grad=True)
hyper = dict(stride=3, padding=1, dilation=2, groups=2)
y = F.conv2d(x, w, b, **hyper)
G = torch.randn(y.shape, dtype=DT, generator=gen)  # dL/dY for L = sum(G * Y)
y.backward(G)
grad_x, grad_w, grad_b = conv.conv2d_backward(G, x.detach(), w.detach(), **hyper)
compare("grad_x vs autograd", grad_x, x.grad)
compare("grad_w vs autograd", grad_w, w.grad)
compare("grad_b vs autograd", grad_b, b.grad)
print("largest gradient in the last input row (in no window):", float(grad_x[:, :, -1].abs().max()))
assert torch.all(grad_x[:, :, -1] == 0) and grad_x[:, :, -2].abs().sum() > 0

# %% [markdown]
# The same input gradient comes out of the im2col picture, without any flipping: the forward pass
# is $Y_n = W_{mat}\,\text{cols}_n$, so by the rule for a matrix product (chapter 03)
# $\partial L/\partial\,\text{cols}_n = W_{mat}^\top G_n$ with $G_n$ reshaped to $(C_{out}, L)$, and
# since im2col copies pixels into columns, col2im adds the column gradients back onto the pixels.
# Likewise $\partial L/\partial W_{mat} = \sum_n G_n\,\text{cols}_n^\top$. Both pictures agree
# (groups 1 here):

# %%
x = torch.randn(2, 3, 10, 9, dtype=DT, generator=gen)
w = torch.randn(5, 3, 3, 3, dtype=DT, generator=gen)
hyper = dict(stride=2, padding=1, dilation=2)
G = torch.randn(conv.conv2d(x, w, **hyper).shape, dtype=DT, generator=gen)  # (2, 5, 4, 4)
W_mat, G_flat = w.reshape(5, -1), G.reshape(2, 5, -1)  # (C_out, C_in*kH*kW), (N, C_out, L)
grad_cols = W_mat.T @ G_flat  # (N, C_in*kH*kW, L)
compare("col2im(W^T G) vs the flipped-kernel convolution", conv.col2im(grad_cols, (10, 9), 3, **hyper), conv.conv2d_grad_input(G, w, (10, 9), **hyper))
grad_W_mat = (G_flat @ conv.im2col(x, 3, **hyper).transpose(1, 2)).sum(dim=0)  # (C_out, C_in*kH*kW)
compare("sum_n G_n cols_n^T vs the correlation of x with G", grad_W_mat.reshape(w.shape), conv.conv2d_grad_weight(G, x, (3, 3), **hyper));

# %% [markdown]
# Finally, forward and backward together make a layer. `conv.Conv2d` is a drop-in for `nn.Conv2d`
# whose `backward` calls `conv2d_backward` (through a `torch.autograd.Function`); PyTorch's
# `gradcheck` compares its gradients with finite differences:

# %%
show_source(conv.Conv2dFunction)

# %%
layer = conv.Conv2d(2, 4, kernel_size=3, stride=2, padding=1).double()
xg = torch.randn(3, 2, 7, 7, dtype=DT, generator=gen, requires_grad=True)
print("gradcheck:", torch.autograd.gradcheck(
    lambda x, w, b: conv.Conv2dFunction.apply(x, w, b, layer.stride, layer.padding, layer.dilation, layer.groups),
    (xg, layer.weight, layer.bias)))

# %% [markdown]
# ## 7. Filters on real digits
#
# Before kernels were learned, they were designed by hand. A **Sobel** kernel approximates a
# derivative (a difference across the kernel, smoothed along it), a **box blur** averages the 3×3
# neighbourhood, **sharpen** adds the difference to the neighbours back to the pixel, and the
# **Laplacian** responds to spots and thin lines. A layer with six output channels applies all six
# in one call: stack the kernels into $W \in \mathbb{R}^{6 \times 1 \times 3 \times 3}$. With padding 1
# each map has the digit's size, 8×8:

# %%
bank = torch.stack([torch.tensor(k, dtype=DT) for k in FILTERS.values()])[:, None]  # (6, 1, 3, 3)
maps = conv.conv2d(images[:4], bank, padding=1)  # (4, 6, 8, 8)
compare("filter bank vs F.conv2d", maps, F.conv2d(images[:4], bank, padding=1))
fig, axes = plt.subplots(4, 7, figsize=(9, 5.4))
for n in range(4):
    axes[n, 0].imshow(images[n, 0].numpy(), cmap="gray_r")
    for f, name in enumerate(FILTERS):
        m = maps[n, f].numpy()
        axes[n, f + 1].imshow(m, cmap="coolwarm", vmin=-abs(m).max(), vmax=abs(m).max())
        if n == 0:
            axes[n, f + 1].set_title(name.split(" (")[0], fontsize=9)
axes[0, 0].set_title("digit", fontsize=9)
for ax in axes.flat:
    ax.set_axis_off()
plt.show()

# %% [markdown]
# **Explore.** Pick a filter and a digit; "your own" lets you set the nine weights (the sliders
# always show the kernel in use; moving one switches to "your own"). What happens with all weights
# equal to 1? With a kernel whose weights sum to 0? Why does "edge x" colour the left edge of a
# stroke red and its right edge blue?

# %%
filter_explorer = FilterExplorer()
filter_explorer

# %% [markdown]
# **Explore.** Step through the positions one by one: the orange window on the digit, the nine
# products of its pixels with the kernel's weights, their sum, and the output map filled up to the
# current position (a 3×3 kernel fits into an 8×8 image at 6×6 positions).

# %%
sliding_explorer = SlidingKernelExplorer()
sliding_explorer

# %% [markdown]
# ## 8. Parameters: dense vs convolution
#
# To end, the counts for layers that map a $C_{in} \times H \times W$ input to a $C_{out} \times H
# \times W$ output (stride 1, "same" padding, so the sizes match). A dense layer needs
# $(C_{in} H W)(C_{out} H W) + C_{out} H W$ parameters; a convolution $C_{out} C_{in} k^2 + C_{out}$,
# independent of the image size. The multiply-adds per image are $(C_{in} H W)(C_{out} H W)$ and
# $C_{out} H W \cdot C_{in} k^2$.

# %%
print(f"{'layer':42s} {'dense params':>14s} {'conv params':>12s} {'dense MACs':>14s} {'conv MACs':>12s}")
for c_in, c_out, size, k in [(1, 32, 8, 3), (1, 32, 28, 3), (32, 64, 28, 3), (3, 64, 224, 3)]:
    n_in, n_out = c_in * size * size, c_out * size * size
    dense_p, conv_p = n_in * n_out + n_out, c_out * c_in * k * k + c_out
    if n_in * n_out < 5e7:  # small enough to build: let PyTorch count
        assert dense_p == n_params(nn.Linear(n_in, n_out))
    assert conv_p == n_params(nn.Conv2d(c_in, c_out, k, padding=k // 2))
    name = f"{c_in}x{size}x{size} -> {c_out}x{size}x{size}, {k}x{k}"
    print(f"{name:42s} {dense_p:>14,} {conv_p:>12,} {n_in * n_out:>14,} {n_out * c_in * k * k:>12,}")

# %% [markdown]
# For a 224×224 colour image, a dense layer of this output size would need about $4.8 \cdot 10^{11}$
# weights; the convolution needs 1,792. This is what made networks on real images possible, from
# LeNet on handwritten digits (LeCun et al., 1998) to today's vision models.
#
# ## Summary
#
# * A convolutional layer slides $C_{out}$ kernels $W \in \mathbb{R}^{C_{out} \times C_{in} \times
#   k_H \times k_W}$ over the input: locality and weight sharing, few parameters, translation
#   equivariance.
# * Deep learning's "convolution" is a **cross-correlation**; the mathematical convolution flips the
#   kernel. $Y_{n,o,i,j} = b_o + \sum_{c,u,v} W_{o,c,u,v}\,X_{n,c,\,si+du-p,\,sj+dv-p}$.
# * Output size: $\lfloor (H + 2p - d(k-1) - 1)/s \rfloor + 1$. Receptive fields grow by
#   $d(k-1)$ times the jump per layer; strides multiply the jump.
# * **im2col** copies every receptive field into a column, so the layer becomes one matrix
#   product per group, much faster than loops, at the cost of $k_H k_W$ times the memory.
#   **col2im** is its adjoint.
# * Backward: $\partial L/\partial b$ sums $G$; $\partial L/\partial W$ correlates $X$ with $G$;
#   $\partial L/\partial X$ is a full convolution of the stride-dilated $G$ with the flipped,
#   channel-swapped kernel (a transposed convolution), equivalently col2im of $W_{mat}^\top G$.
#   Pixels in the stride remainder get zero gradient.
#
# ## Exercises
#
# Open `exercises/05_convolution.ipynb`: the output-size formula, a convolution layer with loops,
# im2col, and the gradients with respect to the weights and the input; at the end your functions
# learn an edge filter from examples. Each comes with an instant check.
#
# ## References
#
# * V. Dumoulin, F. Visin. *A guide to convolution arithmetic for deep learning.* arXiv:1603.07285 (2016).
#   (Output sizes, padding, strides, dilation and transposed convolutions, with pictures.)
# * Y. LeCun, L. Bottou, Y. Bengio, P. Haffner. *Gradient-based learning applied to document
#   recognition.* Proceedings of the IEEE 86(11), 2278–2324 (1998).
# * F. Yu, V. Koltun. *Multi-scale context aggregation by dilated convolutions.* ICLR (2016), arXiv:1511.07122.
# * PyTorch documentation of `torch.nn.Conv2d`, `torch.nn.functional.unfold` and `fold` (the
#   conventions implemented here).

# %%
print(shape_explorer.self_check())
print(filter_explorer.self_check())
print(sliding_explorer.self_check())
