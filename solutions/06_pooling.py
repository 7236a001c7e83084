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
# # 06 · Exercises: pooling
#
# Student sheet: <a href="https://colab.research.google.com/github/nn-from-scratch/course/blob/main/exercises/06_pooling.ipynb" target="_parent"><img src="https://colab.research.google.com/assets/colab-badge.svg" alt="Open In Colab"/></a>
# · with solutions: [solutions/06_pooling.ipynb](https://colab.research.google.com/github/nn-from-scratch/course/blob/main/solutions/06_pooling.ipynb)
#
# Max pooling and average pooling from the lecture `notebooks/06_pooling.ipynb`, each forward
# and backward (the two backward passes you derive yourself: the sheet states what each function
# receives and returns, not the gradient), and a prediction: how many numbers a published CNN
# hands to its first linear layer. Replace each `raise NotImplementedError(...)` with your code
# and run the `check(...)` cell below it: it compares your function with the course's reference
# on several inputs, edge cases included (the default stride, overlapping windows, padding,
# ties), names the typical mistake your answer looks like when it recognises one, and otherwise
# reports the first mismatch. Each failed check shows one more hint (from the idea, to the
# shapes, to a nudge towards the code); `hint("06.2")` shows the next one without checking. Use
# plain tensor operations (slicing, `.amax`, `.sum`, `.argmax`, `torch.full`, `torch.zeros`), not
# `torch.nn.functional`, autograd or `course_lib.pool`: the point is to work them out yourself. A
# Python loop over the output positions $(i, j)$ is fine (work on all $N \cdot C$ planes at once
# inside it).
#
# In 06.1–06.4 `x` is a `float64` tensor of shape $(N, C, H, W)$ and `kernel_size` $k$,
# `stride` $s$ and `padding` $p$ are ints, with $p \le k/2$ and the same values along both axes.
# As in PyTorch, **`stride` defaults to `kernel_size`**. The output has shape
# $(N, C, H_{out}, W_{out})$ with
#
# $$H_{out} = \left\lfloor \frac{H + 2p - k}{s} \right\rfloor + 1, \qquad
# W_{out} = \left\lfloor \frac{W + 2p - k}{s} \right\rfloor + 1 ,$$
#
# and output cell $(i, j)$ pools the window of rows $i s, \dots, i s + k - 1$ and columns
# $j s, \dots, j s + k - 1$ of the padded input $\tilde x$ of shape $(N, C, H + 2p, W + 2p)$.

# %% tags=["setup"]
# Setup. On Colab this installs course_lib from the course repository (Colab keeps its own
# torch and ipywidgets); everywhere else it does nothing.
import sys

if "google.colab" in sys.modules:
    get_ipython().run_line_magic("pip", "install --quiet git+https://github.com/nn-from-scratch/course")

# %%
import torch

from course_lib import data
from course_lib.check import check, hint, use
from course_lib.device import seed_everything

seed_everything(0)
torch.set_num_threads(1)  # small tensors: one thread is faster

# %% [markdown]
# ## 06.1 Max pooling
#
# Pad with $-\infty$ (so that padding never wins) and keep the largest value of each window:
#
# $$y_{n,c,i,j} = \max_{0 \le a < k,\; 0 \le b < k} \tilde x_{n,c,\, i s + a,\, j s + b} .$$

# %%
def max_pool2d(x: torch.Tensor, kernel_size: int, stride: int | None = None, padding: int = 0) -> torch.Tensor:
    """Max pooling. x: (N, C, H, W) -> (N, C, H_out, W_out); stride defaults to kernel_size."""
    ### BEGIN SOLUTION 06.1
    k, p = kernel_size, padding
    s = k if stride is None else stride
    N, C, H, W = x.shape
    H_out, W_out = (H + 2 * p - k) // s + 1, (W + 2 * p - k) // s + 1
    xp = torch.full((N, C, H + 2 * p, W + 2 * p), float("-inf"), dtype=x.dtype)
    xp[:, :, p:p + H, p:p + W] = x
    y = torch.empty(N, C, H_out, W_out, dtype=x.dtype)
    for i in range(H_out):
        for j in range(W_out):
            y[:, :, i, j] = xp[:, :, i * s:i * s + k, j * s:j * s + k].amax(dim=(2, 3))
    return y
    ### END SOLUTION


# %%
check("06.1", max_pool2d)

# %% [markdown]
# ## 06.2 The gradient of max pooling (derive it)
#
# Let $y$ = `max_pool2d(x, kernel_size, stride, padding)` and let $L$ be some loss computed from
# $y$. You receive the upstream gradient `grad_out` $= \partial L / \partial y$, of shape
# $(N, C, H_{out}, W_{out})$, and the input `x`. Derive $\partial L / \partial x$ and return it
# with `x`'s shape. Ask, for one input element: if it grew by a tiny $\varepsilon$, which outputs
# would change, and by how much? Mind the windows that overlap (stride < kernel) and the padding.
#
# One convention you cannot derive: where several elements of a window tie for the maximum, the
# maximum has no derivative, and PyTorch gives the window's whole gradient to **the first of them
# in row-major order** (row by row, left to right). Do the same.

# %%
def max_pool2d_backward(grad_out: torch.Tensor, x: torch.Tensor, kernel_size: int, stride: int | None = None,
                        padding: int = 0) -> torch.Tensor:
    """dL/dx of max pooling. grad_out: (N, C, H_out, W_out), x: (N, C, H, W) -> (N, C, H, W)."""
    ### BEGIN SOLUTION 06.2
    k, p = kernel_size, padding
    s = k if stride is None else stride
    N, C, H, W = x.shape
    H_out, W_out = grad_out.shape[2:]
    xp = torch.full((N, C, H + 2 * p, W + 2 * p), float("-inf"), dtype=x.dtype)
    xp[:, :, p:p + H, p:p + W] = x
    grad = torch.zeros_like(xp)
    for i in range(H_out):
        for j in range(W_out):
            window = xp[:, :, i * s:i * s + k, j * s:j * s + k].reshape(N, C, k * k)
            first = window.argmax(dim=2, keepdim=True)  # (N, C, 1): the first maximum, row-major
            routed = torch.zeros_like(window).scatter_(2, first, grad_out[:, :, i, j, None])
            grad[:, :, i * s:i * s + k, j * s:j * s + k] += routed.reshape(N, C, k, k)
    return grad[:, :, p:p + H, p:p + W]
    ### END SOLUTION


# %%
check("06.2", max_pool2d_backward)

# %% [markdown]
# ## 06.3 Average pooling
#
# Pad with $0$ and average each window. With `count_include_pad=True` (PyTorch's default) the
# divisor is always $k^2$, padding included; with `count_include_pad=False` it is the number
# $d_{ij}$ of real (non-padding) elements in window $(i, j)$:
#
# $$y_{n,c,i,j} = \frac{1}{d_{ij}} \sum_{a=0}^{k-1} \sum_{b=0}^{k-1} \tilde x_{n,c,\, i s + a,\, j s + b},
# \qquad d_{ij} = k^2 \ \text{ or } \ \#\{\text{real elements of window } (i, j)\} .$$

# %%
def avg_pool2d(x: torch.Tensor, kernel_size: int, stride: int | None = None, padding: int = 0,
               count_include_pad: bool = True) -> torch.Tensor:
    """Average pooling. x: (N, C, H, W) -> (N, C, H_out, W_out); stride defaults to kernel_size."""
    ### BEGIN SOLUTION 06.3
    k, p = kernel_size, padding
    s = k if stride is None else stride
    N, C, H, W = x.shape
    H_out, W_out = (H + 2 * p - k) // s + 1, (W + 2 * p - k) // s + 1
    xp = torch.zeros(N, C, H + 2 * p, W + 2 * p, dtype=x.dtype)
    xp[:, :, p:p + H, p:p + W] = x
    real = torch.zeros(H + 2 * p, W + 2 * p, dtype=x.dtype)  # 1 on the real elements, 0 on the padding
    real[p:p + H, p:p + W] = 1
    y = torch.empty(N, C, H_out, W_out, dtype=x.dtype)
    for i in range(H_out):
        for j in range(W_out):
            rows, cols = slice(i * s, i * s + k), slice(j * s, j * s + k)
            divisor = k * k if count_include_pad else real[rows, cols].sum()
            y[:, :, i, j] = xp[:, :, rows, cols].sum(dim=(2, 3)) / divisor
    return y
    ### END SOLUTION


# %%
check("06.3", avg_pool2d)

# %% [markdown]
# ## 06.4 The gradient of average pooling (derive it)
#
# Same setting for $y$ = `avg_pool2d(x, kernel_size, stride, padding, count_include_pad)`: you
# receive `grad_out` $= \partial L / \partial y$ $(N, C, H_{out}, W_{out})$ and `x`; return
# $\partial L / \partial x$ with `x`'s shape. Write $y_{n,c,i,j}$ out as a sum with its divisor
# $d_{ij}$ and differentiate it with respect to one input element. Does the answer depend on
# the values of `x`?

# %%
def avg_pool2d_backward(grad_out: torch.Tensor, x: torch.Tensor, kernel_size: int, stride: int | None = None,
                        padding: int = 0, count_include_pad: bool = True) -> torch.Tensor:
    """dL/dx of average pooling. grad_out: (N, C, H_out, W_out), x: (N, C, H, W) -> (N, C, H, W)."""
    ### BEGIN SOLUTION 06.4
    k, p = kernel_size, padding
    s = k if stride is None else stride
    N, C, H, W = x.shape
    H_out, W_out = grad_out.shape[2:]
    real = torch.zeros(H + 2 * p, W + 2 * p, dtype=x.dtype)
    real[p:p + H, p:p + W] = 1
    grad = torch.zeros(N, C, H + 2 * p, W + 2 * p, dtype=x.dtype)
    for i in range(H_out):
        for j in range(W_out):
            rows, cols = slice(i * s, i * s + k), slice(j * s, j * s + k)
            divisor = k * k if count_include_pad else real[rows, cols].sum()
            grad[:, :, rows, cols] += (grad_out[:, :, i, j] / divisor)[:, :, None, None]
    return grad[:, :, p:p + H, p:p + W]
    ### END SOLUTION


# %%
check("06.4", avg_pool2d_backward)

# %% [markdown]
# ## 06.5 Predict: what reaches the linear layer?
#
# The talent article (the course's source article on the talent needed, and how to train it, in
# the era of large models as a service) prints this CNN for colour images (its layers and the
# start of its forward pass):
#
# ```python
# self.conv1 = nn.Conv2d(3, 6, 5)
# self.pool = nn.MaxPool2d(2, 2)
# self.conv2 = nn.Conv2d(6, 16, 5)
# self.fc1 = nn.Linear(16 * 5 * 5, 120)
# ...
# x = self.pool(F.relu(self.conv1(x)))
# x = self.pool(F.relu(self.conv2(x)))
# x = x.view(-1, 16 * 5 * 5)
# ```
#
# `16 * 5 * 5` is written for one image size. Predict, with pencil and paper and without running
# the layers, how many numbers `x.view` must produce per image for a colour image of any `height`
# × `width`, and write that prediction as a function. You may use the output-size rule you
# derived in 05.1 (`Conv2d(3, 6, 5)` has a 5×5 kernel, stride 1, no padding; `MaxPool2d(2, 2)`
# has 2×2 windows and stride 2). The cell after the check measures the real layers.

# %%
def lenet_features(height: int, width: int) -> int:
    """The number of features per image after the second pooling layer of the network above."""
    ### BEGIN SOLUTION 06.5
    features = 16  # the second convolution's output channels
    for size in (height, width):
        for _ in range(2):
            size = size - 5 + 1  # 5 x 5 convolution, no padding: one position per fitting offset
            size = size // 2  # 2 x 2 pooling, stride 2: an odd last row is dropped
        features *= size
    return features
    ### END SOLUTION


# %%
check("06.5", lenet_features)

# %% [markdown]
# Now the measurement: the same layers on images of zeros (no weights are trained; only shapes
# matter), against your prediction (or the reference, if yours does not pass yet). The last line
# shows what the hard-coded `16 * 5 * 5` does with a batch of 25 images of 28×28 pixels.

# %%
predict_features = use("06.5", lenet_features)
torch.manual_seed(0)
layers = torch.nn.Sequential(
    torch.nn.Conv2d(3, 6, 5), torch.nn.ReLU(), torch.nn.MaxPool2d(2, 2),
    torch.nn.Conv2d(6, 16, 5), torch.nn.ReLU(), torch.nn.MaxPool2d(2, 2),
)
measured = {}
with torch.no_grad():
    for hw in ((32, 32), (28, 28), (33, 33), (64, 48)):
        measured[hw] = layers(torch.zeros(1, 3, *hw)).numel()
        print(f"{hw[0]}x{hw[1]}: measured {measured[hw]}, predicted {predict_features(*hw)}")
    batch = layers(torch.zeros(25, 3, 28, 28))
    rows = batch.view(-1, 16 * 5 * 5).shape[0]
print(f"25 images of 28x28 through x.view(-1, 16 * 5 * 5): {rows} rows, no error")

# %% [markdown]
# Only the size the network was written for gives 400 features. For 28×28 images the view does
# not even fail: 25 images of 256 features are 6,400 numbers, which it silently regroups into
# 16 rows of 400, each mixing parts of different images. A shape mismatch that raises is the
# lucky case; `x.flatten(1)`, which keeps the batch axis, turns this one into an error at the
# linear layer.

# %% [markdown]
# ## Putting them to work: a small CNN with your pooling layers
#
# A forward function and its backward function are all autograd needs: wrapped in a
# `torch.autograd.Function`, your pooling becomes a layer that PyTorch can train through. Below it
# sits in a tiny convolutional network for the 8×8 digits, $(N, 1, 8, 8) \to$ convolution with 8
# filters $3 \times 3$, padding 1 $\to$ ReLU $\to$ your $2 \times 2$ pooling $\to (N, 8, 4, 4)$
# $\to$ flatten (128) $\to$ linear $\to$ 10 class scores, trained for 40 full-batch Adam steps on
# the first 400 training images (enough for this check, and quick), once with max and once with
# average pooling. (Your functions, or the references where yours do
# not pass yet.) Both should reach a test accuracy above 0.9; chapter 07 builds and trains such
# networks properly.

# %%
pool_max = use("06.1", max_pool2d)
pool_max_backward = use("06.2", max_pool2d_backward)
pool_avg = use("06.3", avg_pool2d)
pool_avg_backward = use("06.4", avg_pool2d_backward)


class MaxPool(torch.autograd.Function):
    """2 x 2 max pooling with your forward and backward."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return pool_max(x, 2)

    @staticmethod
    def backward(ctx, grad_out):
        (x,) = ctx.saved_tensors
        return pool_max_backward(grad_out, x, 2)


class AvgPool(torch.autograd.Function):
    """2 x 2 average pooling with your forward and backward."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return pool_avg(x, 2)

    @staticmethod
    def backward(ctx, grad_out):
        (x,) = ctx.saved_tensors
        return pool_avg_backward(grad_out, x, 2)


digits = data.digits(dtype=torch.float64)
images_train = data.to_images(digits.X_train[:400]).unsqueeze(1)  # (400, 1, 8, 8): a subset keeps this cell quick
labels_train = digits.y_train[:400]
images_test = data.to_images(digits.X_test).unsqueeze(1)  # (450, 1, 8, 8)
accuracy = {}
for name, layer in (("max", MaxPool), ("avg", AvgPool)):
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(1, 8, 3, padding=1).double()
    linear = torch.nn.Linear(8 * 4 * 4, 10).double()
    opt = torch.optim.Adam([*conv.parameters(), *linear.parameters()], lr=0.05)

    def net(images):
        return linear(layer.apply(torch.relu(conv(images))).flatten(1))  # (N, 10)

    for step in range(40):
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(net(images_train), labels_train)
        loss.backward()
        opt.step()
    with torch.no_grad():
        accuracy[name] = float((net(images_test).argmax(dim=1) == digits.y_test).double().mean())
    print(f"{name} pooling: final training loss {loss.item():.3f}, test accuracy {accuracy[name]:.3f}")

# %% [markdown]
# Every gradient that reached the convolution's filters went through your backward function.
# Out of the 8 × 8 × 8 = 512 values of the feature maps, the linear layer saw only 128.
