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
# # 05 · Exercises: convolution
#
# Student sheet: <a href="https://colab.research.google.com/github/nn-from-scratch/course/blob/main/exercises/05_convolution.ipynb" target="_parent"><img src="https://colab.research.google.com/assets/colab-badge.svg" alt="Open In Colab"/></a>
# · with solutions: [solutions/05_convolution.ipynb](https://colab.research.google.com/github/nn-from-scratch/course/blob/main/solutions/05_convolution.ipynb)
#
# Five functions around the lecture `notebooks/05_convolution.ipynb`: the output size of a
# convolution (which you derive), a convolution layer written with loops, `im2col`, and the two
# gradients of a convolution, which you derive yourself: the sheet states what each function
# receives and returns, not the formula. Replace each `raise NotImplementedError(...)` with your
# code and run the `check(...)` cell below it: it compares your function with the course's
# reference on several inputs, names the typical mistake your answer looks like when it
# recognises one, and otherwise reports the first mismatch. Each failed check shows one more hint
# (from the idea, to the shapes, to a nudge towards the code); `hint("05.4")` shows the next one
# without checking. Write the functions with indexing, slicing, `*`, `sum`, `reshape` and
# `torch.zeros`; do **not** call `F.conv2d`, `F.conv_transpose2d`, `F.unfold`, `F.fold`,
# autograd or `course_lib.conv` (the point is to work them out yourself). Loops over output
# positions are fine. All tensors are `float64`; convolutions here have no dilation (except in
# 05.1) and no groups. At the end your functions learn an edge filter from examples.
#
# Conventions (as in PyTorch): `x` is `(N, C_in, H, W)`, `weight` is `(C_out, C_in, kH, kW)`,
# `bias` is `(C_out,)` or `None`, and the output is `(N, C_out, H_out, W_out)`.

# %% tags=["setup"]
# Setup. On Colab this installs course_lib from the course repository (Colab keeps its own
# torch and ipywidgets); everywhere else it does nothing.
import sys

if "google.colab" in sys.modules:
    get_ipython().run_line_magic("pip", "install --quiet git+https://github.com/nn-from-scratch/course")

# %%
import torch
import torch.nn.functional as F  # only to compare with, at the end

from course_lib import data
from course_lib.check import check, hint, use
from course_lib.device import seed_everything

seed_everything(0)
torch.set_num_threads(1)  # small tensors: one thread is faster

# %% [markdown]
# ## 05.1 Output size (derive it)
#
# Along one axis, an input of `size` pixels is zero-padded by `padding` pixels at **both** ends.
# A kernel of `kernel_size` taps, with neighbouring taps `dilation` pixels apart, is laid on the
# padded input with its first tap at position 0, then moved `stride` pixels at a time; a position
# counts only if every tap falls inside the padded input. How many positions are there?
#
# Work it out on paper first: draw a row of 8 pixels and a 3-tap kernel with stride 2, then add
# padding, then spread the taps apart. Write the count as a formula in `size`, `kernel_size`,
# `stride`, `padding` and `dilation`, and return it as an `int`. (Every case here is valid: the
# kernel fits into the padded input at least once.)

# %%
def conv_output_size(size: int, kernel_size: int, stride: int = 1, padding: int = 0, dilation: int = 1) -> int:
    """Number of output positions of a convolution along one axis."""
    ### BEGIN SOLUTION 05.1
    return (size + 2 * padding - dilation * (kernel_size - 1) - 1) // stride + 1
    ### END SOLUTION


# %%
check("05.1", conv_output_size)

# %% [markdown]
# ## 05.2 A convolution layer, with loops
#
# $$Y_{n,o,i,j} = b_o + \sum_{c=0}^{C_{in}-1}\sum_{u=0}^{k_H-1}\sum_{v=0}^{k_W-1}
# W_{o,c,u,v}\; X^{pad}_{n,c,\,s i + u,\, s j + v}$$
#
# where $X^{pad}$ is $X$ with `padding` zeros added on all four sides, $s$ is the stride and
# $H_{out}$, $W_{out}$ are given by your formula of 05.1 (with dilation 1). This is a
# **cross-correlation**, like `F.conv2d`: the kernel is *not* flipped. Loops over the output
# positions $(i, j)$ (and over $o$ if you like) are fine, as long as each step handles the whole
# batch. `bias` may be `None`.

# %%
def conv2d(x: torch.Tensor, weight: torch.Tensor, bias=None, stride: int = 1, padding: int = 0) -> torch.Tensor:
    """x (N, C_in, H, W), weight (C_out, C_in, kH, kW), bias (C_out,) or None -> (N, C_out, H_out, W_out)."""
    ### BEGIN SOLUTION 05.2
    N, C_in, H, W = x.shape
    C_out, _, kH, kW = weight.shape
    xp = torch.zeros(N, C_in, H + 2 * padding, W + 2 * padding, dtype=x.dtype)
    xp[:, :, padding:padding + H, padding:padding + W] = x
    H_out = (H + 2 * padding - kH) // stride + 1
    W_out = (W + 2 * padding - kW) // stride + 1
    y = torch.zeros(N, C_out, H_out, W_out, dtype=x.dtype)
    for i in range(H_out):
        for j in range(W_out):
            window = xp[:, :, stride * i:stride * i + kH, stride * j:stride * j + kW]  # (N, C_in, kH, kW)
            for o in range(C_out):
                y[:, o, i, j] = (window * weight[o]).sum(dim=(1, 2, 3))
    if bias is not None:
        y = y + bias.reshape(1, C_out, 1, 1)
    return y
    ### END SOLUTION


# %%
check("05.2", conv2d)

# %% [markdown]
# ## 05.3 im2col
#
# The fast way to compute a convolution copies every receptive field into a column of a matrix,
# and then does a single matrix product. Write `im2col(x, kernel_size, stride, padding)` with
# `kernel_size = (kH, kW)`: it returns `cols` of shape $(N,\; C k_H k_W,\; H_{out} W_{out})$, the
# layout of `F.unfold`:
#
# * column $l = i\,W_{out} + j$ (row-major over the output positions) holds the window of output $(i, j)$;
# * row $r = c\,k_H k_W + u\,k_W + v$ holds the pixel $X^{pad}_{n,c,\,s i+u,\,s j+v}$, i.e. the window
#   `(N, C, kH, kW)` flattened in the order channel, row, column.

# %%
def im2col(x: torch.Tensor, kernel_size, stride: int = 1, padding: int = 0) -> torch.Tensor:
    """x (N, C, H, W), kernel_size (kH, kW) -> cols (N, C*kH*kW, H_out*W_out), like F.unfold."""
    ### BEGIN SOLUTION 05.3
    N, C, H, W = x.shape
    kH, kW = kernel_size
    xp = torch.zeros(N, C, H + 2 * padding, W + 2 * padding, dtype=x.dtype)
    xp[:, :, padding:padding + H, padding:padding + W] = x
    H_out = (H + 2 * padding - kH) // stride + 1
    W_out = (W + 2 * padding - kW) // stride + 1
    columns = []
    for i in range(H_out):
        for j in range(W_out):
            window = xp[:, :, stride * i:stride * i + kH, stride * j:stride * j + kW]  # (N, C, kH, kW)
            columns.append(window.reshape(N, C * kH * kW))
    return torch.stack(columns, dim=2)
    ### END SOLUTION


# %%
check("05.3", im2col)

# %% [markdown]
# ## 05.4 Gradient with respect to the weight (derive it)
#
# Let $Y$ be the output of your `conv2d` (05.2) for an input $X$, and let $L$ be some loss computed
# from $Y$. You receive the upstream gradient $G = \partial L/\partial Y$, of $Y$'s shape
# `(N, C_out, H_out, W_out)`, the input `x` `(N, C_in, H, W)`, the kernel size `(kH, kW)`, the
# stride and the padding. Derive $\partial L/\partial W_{o,c,u,v}$ from the definition of 05.2
# with the chain rule, then implement it. Start from one weight: which products in the sum of
# 05.2 contain it, for which $n$, $i$, $j$, and what does it multiply there? The bias does not
# change the answer. Return a tensor of the weight's shape `(C_out, C_in, kH, kW)`.

# %%
def conv2d_grad_weight(grad_out: torch.Tensor, x: torch.Tensor, kernel_size, stride: int = 1, padding: int = 0) -> torch.Tensor:
    """grad_out (N, C_out, H_out, W_out), x (N, C_in, H, W), kernel_size (kH, kW) -> (C_out, C_in, kH, kW)."""
    ### BEGIN SOLUTION 05.4
    N, C_in, H, W = x.shape
    _, C_out, H_out, W_out = grad_out.shape
    kH, kW = kernel_size
    xp = torch.zeros(N, C_in, H + 2 * padding, W + 2 * padding, dtype=x.dtype)
    xp[:, :, padding:padding + H, padding:padding + W] = x
    grad_w = torch.zeros(C_out, C_in, kH, kW, dtype=x.dtype)
    for i in range(H_out):
        for j in range(W_out):
            window = xp[:, :, stride * i:stride * i + kH, stride * j:stride * j + kW]  # (N, C_in, kH, kW)
            g = grad_out[:, :, i, j]  # (N, C_out)
            grad_w += (g[:, :, None, None, None] * window[:, None]).sum(dim=0)
    return grad_w
    ### END SOLUTION


# %%
check("05.4", conv2d_grad_weight)

# %% [markdown]
# ## 05.5 Gradient with respect to the input, with stride (derive it)
#
# Same setting as 05.4, now for the input: you receive $G = \partial L/\partial Y$
# `(N, C_out, H_out, W_out)`, the weight `(C_out, C_in, kH, kW)`, the input's size
# `input_size = (H, W)`, the stride and the padding. Derive $\partial L/\partial X$ and return it
# with the input's shape `(N, C_in, H, W)`. Think about three things:
#
# * which outputs a given input pixel contributed to, and through which weights;
# * what the zero padding, which is not part of the input, does to the gradient;
# * why `input_size` is passed in at all: with stride 2, inputs of 6 and of 7 pixels both give
#   3 outputs for a 3-tap kernel. What is the gradient of a pixel that no window read?
#
# Loops over the output positions are fine.

# %%
def conv2d_grad_input(grad_out: torch.Tensor, weight: torch.Tensor, input_size, stride: int = 1,
                      padding: int = 0) -> torch.Tensor:
    """grad_out (N, C_out, H_out, W_out), weight (C_out, C_in, kH, kW), input_size (H, W) -> dL/dx (N, C_in, H, W)."""
    ### BEGIN SOLUTION 05.5
    N, C_out, H_out, W_out = grad_out.shape
    _, C_in, kH, kW = weight.shape
    H, W = input_size
    grad_xp = torch.zeros(N, C_in, H + 2 * padding, W + 2 * padding, dtype=grad_out.dtype)
    for i in range(H_out):
        for j in range(W_out):
            top, left = stride * i, stride * j  # where the window of output (i, j) starts
            per_tap = grad_out[:, :, i, j].reshape(N, C_out, 1, 1, 1) * weight  # (N, C_out, C_in, kH, kW)
            grad_xp[:, :, top:top + kH, left:left + kW] += per_tap.sum(dim=1)
    return grad_xp[:, :, padding:padding + H, padding:padding + W]  # rows no window read keep 0
    ### END SOLUTION


# %%
check("05.5", conv2d_grad_input)

# %% [markdown]
# ## Putting them to work: learning an edge filter
#
# Your functions (or the course's references, where yours do not pass yet) now learn a filter
# from examples. The targets are the digits filtered with the Sobel kernel for $\partial/\partial x$;
# we start from a zero kernel and run gradient descent on the mean squared error
# $L = \frac{1}{2M}\sum (\hat Y - Y)^2$ over all $M$ output pixels. The forward pass is im2col plus
# one matrix product, the gradient comes from your `conv2d_grad_weight`, and both are first
# checked against PyTorch (the input gradient also with stride 3 and a stride remainder). The
# learned kernel should come out as the Sobel kernel.

# %%
my_conv2d = use("05.2", conv2d)
my_im2col = use("05.3", im2col)
my_grad_weight = use("05.4", conv2d_grad_weight)
my_grad_input = use("05.5", conv2d_grad_input)


def fast_conv2d(x, weight, padding=0):
    """im2col + one matrix product: (C_out, C_in*kH*kW) @ (N, C_in*kH*kW, L) -> (N, C_out, H_out, W_out)."""
    C_out, _, kH, kW = weight.shape
    H_out, W_out = x.shape[2] + 2 * padding - kH + 1, x.shape[3] + 2 * padding - kW + 1
    cols = my_im2col(x, (kH, kW), padding=padding)
    return (weight.reshape(C_out, -1) @ cols).reshape(x.shape[0], C_out, H_out, W_out)


images = data.to_images(data.digits(dtype=torch.float64).X_train[:200])[:, None]  # (200, 1, 8, 8)
sobel_x = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]], dtype=torch.float64).reshape(1, 1, 3, 3)
targets = F.conv2d(images, sobel_x, padding=1)  # (200, 1, 8, 8)

# checks against PyTorch on a small random problem
xs, ws = torch.randn(2, 3, 6, 6, dtype=torch.float64, requires_grad=True), torch.randn(4, 3, 3, 3, dtype=torch.float64, requires_grad=True)
ys = F.conv2d(xs, ws, padding=1)
gs = torch.randn_like(ys)
ys.backward(gs)
x7 = torch.randn(2, 3, 7, 9, dtype=torch.float64, requires_grad=True)  # stride 3: the last column is never read
y7 = F.conv2d(x7, ws, stride=3, padding=1)
g7 = torch.randn_like(y7)
(grad_x7,) = torch.autograd.grad(y7, x7, g7)
with torch.no_grad():
    errors = {
        "loops conv2d vs F.conv2d": (my_conv2d(xs, ws, None, 1, 1) - ys).abs().max(),
        "im2col conv2d vs F.conv2d": (fast_conv2d(xs, ws, padding=1) - ys).abs().max(),
        "grad_weight vs autograd": (my_grad_weight(gs, xs, (3, 3), 1, 1) - ws.grad).abs().max(),
        "grad_input vs autograd": (my_grad_input(gs, ws, (6, 6), stride=1, padding=1) - xs.grad).abs().max(),
        "grad_input vs autograd, stride 3": (my_grad_input(g7, ws, (7, 9), stride=3, padding=1) - grad_x7).abs().max(),
    }
for name, err in errors.items():
    print(f"{name}: max abs difference {float(err):.1e}")

kernel = torch.zeros(1, 1, 3, 3, dtype=torch.float64)
for step in range(301):
    predicted = fast_conv2d(images, kernel, padding=1)
    loss = 0.5 * ((predicted - targets) ** 2).mean()
    grad_out = (predicted - targets) / targets.numel()  # dL/dY for the mean
    kernel = kernel - 1.0 * my_grad_weight(grad_out, images, (3, 3), 1, 1)
    if step % 100 == 0:
        print(f"step {step:3d}: loss {loss:.2e}")
print("learned kernel:\n", kernel[0, 0].numpy().round(4))

# %% [markdown]
# Three hundred steps recover the Sobel kernel to about four decimals, from data alone: this is
# what a convolutional network does with its first layer, except that nobody gives it the target
# images, only the final loss. The lecture's `course_lib.conv` has the same functions with
# dilation, groups and a vectorised backward pass.
