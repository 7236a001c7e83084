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
# # 07 · A CNN end to end
#
# <a href="https://colab.research.google.com/github/nn-from-scratch/course/blob/main/notebooks/07_cnn.ipynb" target="_parent"><img src="https://colab.research.google.com/assets/colab-badge.svg" alt="Open In Colab"/></a>
#
# Chapters 05 and 06 built convolution and pooling from scratch. This chapter puts them
# together into a **convolutional neural network** (CNN), trains it on real handwritten digits
# and asks two questions a practitioner always has to answer: *what did it learn*, and *how good
# is it really*? We start where most CNN code goes wrong: the shapes. The two CNN listings of the
# source articles of this course do not run as printed; repairing them one bug at a time teaches
# the technique that finds such bugs in seconds. Then we train a small CNN on the 8×8 digits
# (about 99 % test accuracy in a few seconds on a CPU), look at its filters and feature maps,
# check that our own `conv2d` and `max_pool2d` compute exactly what the trained network computes,
# and evaluate it with a confusion matrix, precision, recall, F1 and precision-recall curves,
# all written from scratch and checked against scikit-learn.

# %% tags=["setup"]
# Setup. On Colab this installs course_lib from the course repository (Colab keeps its own
# torch and ipywidgets); everywhere else it does nothing.
import sys

if "google.colab" in sys.modules:
    get_ipython().run_line_magic("pip", "install --quiet git+https://github.com/nn-from-scratch/course")

# %%
import copy

import matplotlib.pyplot as plt
import numpy as np
import sklearn.metrics as skm
import torch
import torch.nn as nn

from course_lib import cnn, data, layers, metrics
from course_lib.compare import compare
from course_lib.conv import conv2d, conv_output_size
from course_lib.device import seed_everything
from course_lib.pool import max_pool2d
from course_lib.show import show_source
from course_lib.widgets.metrics import ThresholdExplorer, default_scores, plot_confusion_matrix, plot_misclassified

gen = seed_everything(0)
torch.set_num_threads(1)  # small images: one thread is fastest, and the numbers are reproducible
torch.set_printoptions(precision=4, sci_mode=False)

# %% [markdown]
# ## 1. Shapes: the source article's CNNs
#
# A convolution or pooling layer with kernel size $k$, stride $s$, padding $p$ (and dilation 1)
# maps an input of length $H$ along one axis to
#
# $$H_{\text{out}} = \left\lfloor \frac{H + 2p - k}{s} \right\rfloor + 1 ,$$
#
# chapter 05's `conv_output_size`. A 3×3 convolution with padding 1 and stride 1 keeps the size
# ($H + 2 - 3 + 1 = H$); a 5×5 convolution without padding removes 4 pixels; a 2×2 max-pooling
# with stride 2 halves it, rounding down. After the last pooling a CNN **flattens** its feature
# maps $(N, C, H', W')$ into vectors $(N, C \cdot H' \cdot W')$ for the first linear layer, whose
# input size must be exactly $C \cdot H' \cdot W'$. Getting that number wrong is the most common
# bug in CNN code, and both CNN listings of the source articles have it in one form or another.
#
# ### 1.1 The first listing: `64 * 5 * 5`
#
# The second source article prints this CNN (its section 4.1), with the indentation lost in the
# text, as in all its listings (chapter 04 showed that this alone is a `SyntaxError`):
#
# ```text
# import torch
# import torch.nn as nn
# import torch.nn.functional as F
# class CNN(nn.Module):
# def __init__(self):
# super(CNN, self).__init__()
# self.conv1 = nn.Conv2d(1, 32, kernel_size=3, stride=1, padding=1)
# self.conv2 = nn.Conv2d(32, 64, kernel_size=3, stride=1, padding=1)
# self.pool = nn.MaxPool2d(kernel_size=2, stride=2)
# self.fc1 = nn.Linear(64 * 5 * 5, 128)
# self.fc2 = nn.Linear(128, 10)
# def forward(self, x):
# x = self.pool(F.relu(self.conv1(x)))
# x = self.pool(F.relu(self.conv2(x)))
# x = x.view(-1, 64 * 5 * 5)
# x = F.relu(self.fc1(x))
# x = self.fc2(x)
# return x
# ```
#
# It does not say which images it expects. One input channel and ten classes suggest grey-scale
# digits such as MNIST's, 28×28 pixels. We keep the listing, indentation restored, in a string,
# build it with `exec` and run it on a random batch of the right shape (no data needed to find
# shape bugs). `attempt` runs a call and prints the error instead of stopping the notebook.

# %%
LISTING_CNN = """
import torch
import torch.nn as nn
import torch.nn.functional as F
class CNN(nn.Module):
    def __init__(self):
        super(CNN, self).__init__()
        self.conv1 = nn.Conv2d(1, 32, kernel_size=3, stride=1, padding=1)
        self.conv2 = nn.Conv2d(32, 64, kernel_size=3, stride=1, padding=1)
        self.pool = nn.MaxPool2d(kernel_size=2, stride=2)
        self.fc1 = nn.Linear(64 * 5 * 5, 128)
        self.fc2 = nn.Linear(128, 10)
    def forward(self, x):
        x = self.pool(F.relu(self.conv1(x)))
        x = self.pool(F.relu(self.conv2(x)))
        x = x.view(-1, 64 * 5 * 5)
        x = F.relu(self.fc1(x))
        x = self.fc2(x)
        return x
"""


def build(source: str, name: str) -> nn.Module:
    """Execute a listing in a fresh namespace (only what it imports itself) and instantiate ``name``."""
    namespace = {}
    exec(source, namespace)
    torch.manual_seed(0)
    return namespace[name]()


def attempt(call):
    """Run ``call()``; print the shape of its result (a number: its value), or the error it raised."""
    try:
        out = call()
    except Exception as err:
        print(f"  -> {type(err).__name__}: {err}")
        return None
    print(f"  -> ran, output shape {tuple(out.shape)}" if out.dim() else f"  -> ran: {out.item():.4f}")
    return out


net = build(LISTING_CNN, "CNN")
x = torch.randn(2, 1, 28, 28)
print("listing as printed, batch (2, 1, 28, 28):")
_ = attempt(lambda: net(x))

# %% [markdown]
# The message says that `view` was asked to make rows of $64 \cdot 5 \cdot 5 = 1600$ numbers out of
# $6272$ numbers, which is not a multiple of 1600. Where does 6272 come from? Follow the size
# through the layers with the formula:

# %%
size = 28
size = conv_output_size(size, 3, stride=1, padding=1); print("conv1 3x3, padding 1:", size)
size = conv_output_size(size, 2, stride=2); print("pool 2x2, stride 2:   ", size)
size = conv_output_size(size, 3, stride=1, padding=1); print("conv2 3x3, padding 1:", size)
size = conv_output_size(size, 2, stride=2); print("pool 2x2, stride 2:   ", size)
print(f"flatten: 64 * {size} * {size} = {64 * size * size} numbers per image, "
      f"{2 * 64 * size * size} for the batch of 2; the listing assumes 64 * 5 * 5 = {64 * 5 * 5}")

# %% [markdown]
# **Bug 1: the flatten size.** Padding 1 keeps 28×28 through each convolution, and the two
# poolings give 14×14 and then 7×7, so the first linear layer needs $64 \cdot 7 \cdot 7 = 3136$
# inputs, not $64 \cdot 5 \cdot 5$. (5×5 would come out of inputs of 20 to 23 pixels per side.)
#
# **Bug 2, hidden behind bug 1: `view(-1, ...)` guesses the batch size.** `-1` tells `view` to
# infer the first dimension from the number of elements. With a batch of 25 images the
# feature maps hold $25 \cdot 3136 = 78400 = 49 \cdot 1600$ numbers, so `view(-1, 1600)` succeeds
# and silently turns 25 images into 49 rows of mixed-up features. The network "works" and
# returns 49 predictions; the error only appears at the loss, far from its cause:

# %%
print(f"25 * 64 * 7 * 7 = {25 * 64 * 7 * 7} = 49 * 64 * 5 * 5 = {49 * 64 * 5 * 5}")
x25, y25 = torch.randn(25, 1, 28, 28), torch.randint(0, 10, (25,))
print("listing as printed, batch (25, 1, 28, 28):")
out25 = attempt(lambda: net(x25))
print("cross-entropy with the 25 labels:")
_ = attempt(lambda: nn.CrossEntropyLoss()(out25, y25))

# %% [markdown]
# The cure for bug 2 is to flatten with `torch.flatten(x, 1)` (or `x.reshape(x.shape[0], -1)`):
# it keeps dimension 0, the batch, and merges the rest. Then a wrong size fails at once, at the
# layer that is wrong, and the message names both shapes. We fix the listing one bug at a time,
# by editing the text:

# %%
step1 = LISTING_CNN.replace("x = x.view(-1, 64 * 5 * 5)", "x = torch.flatten(x, 1)")
print("with torch.flatten(x, 1), batch (25, 1, 28, 28):")
_ = attempt(lambda: build(step1, "CNN")(x25))
step2 = step1.replace("nn.Linear(64 * 5 * 5, 128)", "nn.Linear(64 * 7 * 7, 128)")
print("and nn.Linear(64 * 7 * 7, 128):")
out25 = attempt(lambda: build(step2, "CNN")(x25))
print("cross-entropy with the 25 labels:")
_ = attempt(lambda: nn.CrossEntropyLoss()(out25, y25))

# %% [markdown]
# "mat1 and mat2 shapes cannot be multiplied (25x3136 and 1600x128)" says it all: 25 images of
# 3136 numbers each reach a layer that expects 1600. With $64 \cdot 7 \cdot 7$ the network runs
# and returns one row of 10 class scores per image.
#
# `64 * 7 * 7` is still a magic number that is right for 28×28 only. The library's version
# computes it from the input size with the formula above:

# %%
show_source(cnn.flatten_size)

# %%
show_source(cnn.RepairedCNN)

# %%
for channels, hw in [(1, (28, 28)), (1, (20, 20)), (3, (32, 32)), (1, (8, 8)), (2, (30, 18))]:
    model_hw = cnn.make_cnn(channels, hw)
    out = model_hw(torch.randn(25, channels, *hw))
    print(f"input (25, {channels}, {hw[0]}, {hw[1]}): fc1 has {model_hw.fc1.in_features:5d} inputs, output {tuple(out.shape)}")

# %% [markdown]
# ### 1.2 The second listing: `F` and `16 * 5 * 5`
#
# The first source article prints this CNN in its section 4.2. The comments say "define the CNN
# model", "create an instance", "define the loss function", "define the optimiser" and "train
# the CNN":
#
# ```text
# import torch
# import torch.nn as nn
# import torch.optim as optim
# # 定义卷积神经网络模型
# class Net(nn.Module):
# def __init__(self):
# super(Net, self).__init__()
# self.conv1 = nn.Conv2d(3, 6, 5)
# self.pool = nn.MaxPool2d(2, 2)
# self.conv2 = nn.Conv2d(6, 16, 5)
# self.fc1 = nn.Linear(16 * 5 * 5, 120)
# self.fc2 = nn.Linear(120, 84)
# self.fc3 = nn.Linear(84, 10)
# def forward(self, x):
# x = self.pool(F.relu(self.conv1(x)))
# x = self.pool(F.relu(self.conv2(x)))
# x = x.view(-1, 16 * 5 * 5)
# x = F.relu(self.fc1(x))
# x = F.relu(self.fc2(x))
# x = self.fc3(x)
# return x
# # 创建卷积神经网络实例
# net = Net()
# # 定义损失函数
# criterion = nn.CrossEntropyLoss()
# # 定义优化器
# optimizer = optim.SGD(net.parameters(), lr=0.001)
# # 训练卷积神经网络
# ```
#
# It is the small LeNet-style network of PyTorch's CIFAR-10 tutorial ("Training a Classifier"):
# two 5×5 convolutions, each followed by 2×2 max-pooling, and three linear layers. With the
# indentation restored:

# %%
LISTING_NET = """
import torch
import torch.nn as nn
import torch.optim as optim
class Net(nn.Module):
    def __init__(self):
        super(Net, self).__init__()
        self.conv1 = nn.Conv2d(3, 6, 5)
        self.pool = nn.MaxPool2d(2, 2)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.fc1 = nn.Linear(16 * 5 * 5, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, 10)
    def forward(self, x):
        x = self.pool(F.relu(self.conv1(x)))
        x = self.pool(F.relu(self.conv2(x)))
        x = x.view(-1, 16 * 5 * 5)
        x = F.relu(self.fc1(x))
        x = F.relu(self.fc2(x))
        x = self.fc3(x)
        return x
net = Net()
criterion = nn.CrossEntropyLoss()
optimizer = optim.SGD(net.parameters(), lr=0.001)
"""
x32 = torch.randn(2, 3, 32, 32)  # a batch of two 3-channel 32x32 images, CIFAR-10's size
print("listing as printed, batch (2, 3, 32, 32):")
_ = attempt(lambda: build(LISTING_NET, "Net")(x32))

# %% [markdown]
# **Bug 1: `F` is never imported.** The listing imports `torch`, `torch.nn` and `torch.optim`,
# but `forward` calls `F.relu`. Python looks the name up only when `forward` runs, so the class
# definition and `net = Net()` succeed and the `NameError` comes with the first batch. The
# missing line is `import torch.nn.functional as F`:

# %%
fixed_net = "import torch.nn.functional as F\n" + LISTING_NET
print("with the import, batch (2, 3, 32, 32):")
_ = attempt(lambda: build(fixed_net, "Net")(x32))

# %% [markdown]
# **Is `16 * 5 * 5` right?** For 3×32×32 inputs, yes: a 5×5 convolution without padding
# removes 4 pixels, pooling halves, so $32 \to 28 \to 14 \to 10 \to 5$, and 16 channels of 5×5
# give 400 numbers. For any other size it is wrong, e.g. for 28×28 images with three channels
# ($28 \to 24 \to 12 \to 8 \to 4$: $16 \cdot 4 \cdot 4 = 256$), and again `view(-1, 400)` either
# fails or, for a batch of 25 ($25 \cdot 256 = 16 \cdot 400$), silently returns 16 rows:

# %%
for side in (32, 28):
    s = side
    for k, stride in ((5, 1), (2, 2), (5, 1), (2, 2)):
        s = conv_output_size(s, k, stride=stride)
    print(f"{side}x{side} -> {s}x{s}: 16 * {s} * {s} = {16 * s * s} numbers per image")
net_b = build(fixed_net, "Net")
print("batch (2, 3, 28, 28):")
_ = attempt(lambda: net_b(torch.randn(2, 3, 28, 28)))
print("batch (25, 3, 28, 28):")
_ = attempt(lambda: net_b(torch.randn(25, 3, 28, 28)))

# %% [markdown]
# **The training is missing.** The listing ends with the comment "train the CNN" and no code.
# The article's other listings train with `for data, target in dataloader:`, a `dataloader`
# they never define; chapter 04 repaired that loop. Section 2 below trains a CNN properly.
#
# ### 1.3 The general technique: look at every layer's output shape
#
# Instead of reading the code and counting, *ask the network*. PyTorch can call a function after
# every module's forward pass (a **forward hook**); recording each output's shape shows where
# the shapes go wrong. `course_lib.cnn` registers a hook on every leaf module (a module without
# submodules), runs one batch and removes the hooks again:

# %%
show_source(cnn._Recorder, cnn.layer_outputs)

# %% [markdown]
# `shape_report` prints a table of these shapes and, if the forward pass fails, the error after
# the last layer that ran. (Functions such as `F.relu`, `view` and `torch.flatten` are not
# modules, so they do not appear; `nn.ReLU()` and `nn.Flatten()` would.) On the broken listing
# it points straight at the problem: the last pooling returns 64×7×7 and the next step fails.

# %%
print(cnn.shape_report(net, x))

# %%
print(cnn.shape_report(cnn.make_cnn(1, (28, 28)), x))

# %% [markdown]
# So: compute the flatten size ahead of time with the output-size formula (or let a dummy batch
# measure it), flatten with `torch.flatten(x, 1)`, and when in doubt print the shapes layer by
# layer. You will write `make_cnn` yourself in the exercises.
#
# ## 2. A CNN for the 8×8 digits
#
# Our data are scikit-learn's handwritten digits (nothing to download): 1,797 grey images of
# 8×8 pixels, split into 1,347 for training and 450 for testing, each with its label 0–9. As
# images they have the shape $X \in \mathbb{R}^{N \times 1 \times 8 \times 8}$ (one channel).
# `DigitsCNN` has two blocks of convolution, ReLU and max-pooling, then a linear layer:
#
# $$X \xrightarrow{\text{conv1 } 3\times3,\ 16} \mathbb{R}^{N\times16\times8\times8}
# \xrightarrow{\text{ReLU, pool}} \mathbb{R}^{N\times16\times4\times4}
# \xrightarrow{\text{conv2 } 3\times3,\ 32} \mathbb{R}^{N\times32\times4\times4}
# \xrightarrow{\text{ReLU, pool}} \mathbb{R}^{N\times32\times2\times2}
# \xrightarrow{\text{flatten}} \mathbb{R}^{N\times128}
# \xrightarrow{\text{fc}} \mathbb{R}^{N\times10} .$$
#
# Each convolution (padding 1, stride 1) computes, for output channel $o$ and pixel $(i, j)$,
# with $X$ taken as zero outside the image,
#
# $$Y_{n,o,i,j} = b_o + \sum_{c=0}^{C_{\text{in}}-1} \sum_{u=0}^{2} \sum_{v=0}^{2} W_{o,c,u,v}\, X_{n,c,\,i+u-1,\,j+v-1},
# \qquad W \in \mathbb{R}^{C_{\text{out}} \times C_{\text{in}} \times 3 \times 3},\ b \in \mathbb{R}^{C_{\text{out}}},$$
#
# and each pooling keeps the largest of four neighbours,
# $Z_{n,c,i,j} = \max_{u, v \in \{0, 1\}} \max(0, Y_{n,c,2i+u,2j+v})$ (ReLU, then pooling). The
# network has $(9 + 1) \cdot 16 + (16 \cdot 9 + 1) \cdot 32 + (128 + 1) \cdot 10 = 6090$ parameters;
# the flatten size 128 is computed in the constructor with `conv_output_size`:

# %%
show_source(cnn.DigitsCNN)

# %%
split = data.digits()  # X_* (N, 64) in [0, 1], y_* (N,)
images_test = cnn.as_images(split.X_test)  # (450, 1, 8, 8)
model = cnn.DigitsCNN()
print(model)
print("parameters:", sum(p.numel() for p in model.parameters()))

# %% [markdown]
# Training uses chapter 04's loop (`train.fit`): cross-entropy, Adam with learning rate 0.01,
# minibatches of 32, 15 epochs, seeded, no data augmentation. The progress bar and the live curve
# (training loss in blue, training accuracy in orange) update while it trains. It runs on the CPU,
# whose numbers this chapter quotes; on a machine with a GPU, `device=get_device()`
# (`course_lib.device`) trains there instead, with slightly different numbers:

# %%
show_source(cnn.train_digits_cnn)

# %%
model, history = cnn.train_digits_cnn(epochs=15, seed=0, lr=0.01, batch_size=32)
test_accuracy = history.val_accuracy[-1]
print(f"final training loss {history.loss[-1]:.4f}, training accuracy {history.accuracy[-1]:.4f}, "
      f"test accuracy {test_accuracy:.4f}")
assert test_accuracy >= 0.97

# %%
fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(9, 2.8))
epochs = range(1, len(history.loss) + 1)
ax_loss.semilogy(epochs, history.loss, "o-", ms=3)
ax_loss.set_xlabel("epoch")
ax_loss.set_ylabel("mean training loss")
ax_acc.plot(epochs, history.accuracy, "o-", ms=3, label="training")
ax_acc.plot(epochs, history.val_accuracy, "o-", ms=3, label="test")
ax_acc.set_ylim(0.85, 1.005)
ax_acc.set_xlabel("epoch")
ax_acc.set_ylabel("accuracy")
ax_acc.legend()
for ax in (ax_loss, ax_acc):
    ax.grid(alpha=0.3)
plt.tight_layout()
plt.show()

# %% [markdown]
# The training accuracy reaches 1 and the test accuracy stays near 0.99: on these 450 test
# images the network makes only a handful of mistakes. (Chapter 04's linear model reached about
# 0.93 on the same split.) Run the cell again with `seed=1`: the numbers change a little, and
# staying above 0.97 for other seeds is what makes 0.99 more than luck.
#
# ## 3. What did it learn?
#
# The 16 filters of the first layer, $W_{o,0,:,:}$, each 3×3 (red positive, blue negative weights):

# %%
filters = model.conv1.weight.detach()[:, 0]  # (16, 3, 3)
limit = float(filters.abs().max())
fig, axes = plt.subplots(2, 8, figsize=(8, 2.2))
for o, ax in enumerate(axes.flat):
    ax.imshow(filters[o].numpy(), cmap="RdBu_r", vmin=-limit, vmax=limit)
    ax.set_title(f"filter {o}", fontsize=8)
    ax.set_axis_off()
plt.show()

# %% [markdown]
# Several look like small edge detectors: a positive side next to a negative side responds
# where the brightness changes in that direction. Their meaning shows better in what they
# do to an image. `cnn.feature_maps` records every layer's output for one test digit (the same
# hooks as above); we show the input, the 16 maps after the first ReLU (8×8) and the 32 maps
# after the second (4×4):

# %%
def tile(maps: torch.Tensor, cols: int) -> torch.Tensor:
    """Maps (C, h, w) side by side in a grid with one-pixel gaps (NaN, drawn blank): (rows*(h+1)-1, cols*(w+1)-1)."""
    c, h, w = maps.shape
    rows = -(-c // cols)
    out = torch.full((rows * (h + 1) - 1, cols * (w + 1) - 1), float("nan"))
    for k in range(c):
        r, q = divmod(k, cols)
        out[r * (h + 1): r * (h + 1) + h, q * (w + 1): q * (w + 1) + w] = maps[k]
    return out


index = 0
maps = cnn.feature_maps(model, images_test[index: index + 1])
print({name: tuple(m.shape) for name, m in maps.items()})
fig, axes = plt.subplots(1, 3, figsize=(9.5, 2.8), gridspec_kw={"width_ratios": [1, 4, 4]})
axes[0].imshow(images_test[index, 0].numpy(), cmap="gray_r")
axes[0].set_title(f"input: a {int(split.y_test[index])}", fontsize=9)
axes[1].imshow(tile(maps["relu1"][0], 8).numpy(), cmap="viridis")
axes[1].set_title("after conv1 + ReLU: 16 maps, 8×8", fontsize=9)
axes[2].imshow(tile(maps["relu2"][0], 8).numpy(), cmap="viridis")
axes[2].set_title("after conv2 + ReLU: 32 maps, 4×4", fontsize=9)
for ax in axes:
    ax.set_axis_off()
plt.show()

# %% [markdown]
# The first layer's maps are still recognisably the digit, each highlighting some edges or
# strokes; after the second block each 4×4 map says *where* (roughly) a more complex pattern
# occurs. The final linear layer reads the 32 pooled 2×2 maps and scores the ten classes.
#
# **The same network, from scratch.** The trained layers are ordinary tensors, so chapter 05's
# `conv2d`, chapter 06's `max_pool2d` and chapter 01's `linear_forward` and `relu` can run the
# whole forward pass. In float64 it agrees with PyTorch's layers to rounding error:

# %%
m64 = copy.deepcopy(model).double()
x64 = images_test[:20].double()
maps64 = cnn.feature_maps(m64, x64)
h = max_pool2d(layers.relu(conv2d(x64, m64.conv1.weight, m64.conv1.bias, padding=1)), 2)
compare("block 1: course_lib conv2d + relu + max_pool2d vs the trained torch layers", h, maps64["pool1"], atol=1e-12)
h = max_pool2d(layers.relu(conv2d(h, m64.conv2.weight, m64.conv2.bias, padding=1)), 2)
compare("block 2", h, maps64["pool2"], atol=1e-12)
logits = layers.linear_forward(torch.flatten(h, 1), m64.fc.weight, m64.fc.bias)
_ = compare("all of DigitsCNN from scratch vs model(x)", logits, m64(x64), atol=1e-12)

# %% [markdown]
# ## 4. How good is it? Evaluation
#
# ### 4.1 The confusion matrix
#
# Accuracy is one number; it hides *which* mistakes a model makes. With $K$ classes, the
# **confusion matrix** $C \in \mathbb{N}^{K \times K}$ counts the test samples of true class $i$
# predicted as class $j$,
#
# $$C_{ij} = \#\{\, n : y_n = i,\ \hat y_n = j \,\}, \qquad i, j \in \{0, \dots, K-1\},$$
#
# rows true, columns predicted (scikit-learn's convention). The diagonal holds the correct
# predictions, so the accuracy is $\sum_k C_{kk} / N$.

# %%
show_source(metrics.confusion_matrix)

# %%
proba = cnn.predict_proba(model, split.X_test)  # (450, 10) softmax probabilities
y_test, y_pred = split.y_test, proba.argmax(dim=1)
cm = metrics.confusion_matrix(y_test, y_pred, num_classes=10)

baseline_scores, _ = default_scores()  # a model-free baseline: the nearest class-mean image
y_base = baseline_scores.argmax(dim=1)
cm_base = metrics.confusion_matrix(y_test, y_base, num_classes=10)

fig, axes = plt.subplots(1, 2, figsize=(9.5, 4.2))
plot_confusion_matrix(axes[0], cm)
axes[0].set_title(f"DigitsCNN: accuracy {metrics.accuracy(y_test, y_pred):.3f}", fontsize=10)
plot_confusion_matrix(axes[1], cm_base)
axes[1].set_title(f"nearest class mean: accuracy {metrics.accuracy(y_test, y_base):.3f}", fontsize=10)
plt.tight_layout()
plt.show()

# %% [markdown]
# For contrast, the right matrix belongs to a classifier without any learning beyond averages:
# it assigns each image to the class whose mean training image is closest (in squared pixel
# distance). The off-diagonal cells (in red) are the mistakes. The most frequent ones:

# %%
def most_confused(cm: torch.Tensor, top: int = 4) -> list:
    """The ``top`` largest off-diagonal counts of ``cm`` as (true class, predicted class, count)."""
    off = cm - torch.diag(cm.diag())
    counts, flat = off.flatten().sort(descending=True, stable=True)
    k = cm.shape[0]
    return [(int(i) // k, int(i) % k, int(c)) for c, i in zip(counts[:top], flat[:top]) if c > 0]


for name, matrix in (("DigitsCNN", cm), ("nearest class mean", cm_base)):
    pairs = ", ".join(f"{t} as {p} ({c}x)" for t, p, c in most_confused(matrix))
    print(f"{name}: {int(matrix.sum() - matrix.diag().sum())} mistakes; most frequent: {pairs}")

# %% [markdown]
# Why these pairs? Look at the images. Below, the most confident mistakes of each model (title:
# true → predicted, and the probability the model gave its wrong answer):

# %%
fig, axes = plt.subplots(2, 8, figsize=(9, 2.9))
shown_cnn = plot_misclassified(axes[0], split.X_test, y_test, proba)
shown_base = plot_misclassified(axes[1], split.X_test, y_test, baseline_scores)
axes[0, 0].text(-0.6, 0.5, "CNN", transform=axes[0, 0].transAxes, ha="right", va="center", fontsize=10)
axes[1, 0].text(-0.6, 0.5, "mean", transform=axes[1, 0].transAxes, ha="right", va="center", fontsize=10)
plt.tight_layout()
plt.show()
print("CNN mistakes shown:", len(shown_cnn), "of", int((y_pred != y_test).sum()))

# %% [markdown]
# The nearest-mean classifier most often takes a 5 for a 9. It compares whole images pixel by
# pixel with one template per class, so a 5 that puts its ink where the average 9 has ink (a
# bar at the top, a stroke down the right side) is closer to the 9 template, although a person
# reads it as a 5 at once; likewise a 1 with a long top stroke lands near the 9s. The CNN's
# filters respond to local strokes wherever they are (the same weights slide over the whole
# image) and pooling tolerates shifts of a pixel, which removes these mistakes. Its few
# remaining errors are unusual writings: digits dominated by a heavy top half, or drawn as a
# thick block of ink. On an evaluation this small, each of them is worth looking at.
#
# ### 4.2 Precision, recall and F1
#
# For one class $k$, let $TP_k = C_{kk}$ (true positives), $P_k = \sum_i C_{ik}$ (predicted as
# $k$: the column sum) and $S_k = \sum_j C_{kj}$ (truly $k$, the class's **support**: the row sum):
#
# $$\text{precision}_k = \frac{TP_k}{P_k}, \qquad \text{recall}_k = \frac{TP_k}{S_k}, \qquad
# F1_k = \frac{2\,TP_k}{P_k + S_k} = \frac{2\,\text{precision}_k\,\text{recall}_k}{\text{precision}_k + \text{recall}_k}.$$
#
# Precision: of the images the model calls "$k$", which fraction are $k$? Recall: of the images
# that are $k$, which fraction does it find? F1 is their harmonic mean, high only when both are.
# A class that is never predicted has precision $0/0$, one that never occurs has recall $0/0$;
# `zero_division` (0 or 1, as in scikit-learn) replaces every such $0/0$, and F1 is $0/0$ only
# when the class is neither predicted nor present. To summarise the $K$ classes in one number:
#
# * **macro** average: $\frac1K \sum_k F1_k$, every class counts the same;
# * **weighted** average: $\sum_k \frac{S_k}{N} F1_k$, every class in proportion to its support;
# * **micro** average: precision, recall and F1 of the summed counts $\sum_k TP_k$, $\sum_k P_k$,
#   $\sum_k S_k$. With one label per sample $\sum_k P_k = \sum_k S_k = N$, so all three equal the
#   accuracy.

# %%
show_source(metrics.precision_recall_f1)

# %% [markdown]
# `classification_report` prints all of it, in scikit-learn's layout:

# %%
report = metrics.classification_report(y_test, y_pred)
print(report)

# %% [markdown]
# The same numbers from scikit-learn (with `labels=range(10)`, so that a class that never occurs
# still counts, as in our functions):

# %%
labels, yt, yp = list(range(10)), y_test.numpy(), y_pred.numpy()
p, r, f1 = metrics.precision_recall_f1(y_test, y_pred, num_classes=10)
sk_p, sk_r, sk_f1, sk_support = skm.precision_recall_fscore_support(yt, yp, labels=labels, zero_division=0)
identical = {
    "confusion matrix": np.array_equal(cm.numpy(), skm.confusion_matrix(yt, yp, labels=labels)),
    "accuracy": metrics.accuracy(y_test, y_pred) == skm.accuracy_score(yt, yp),
    "per-class precision, recall, F1": all(np.array_equal(a.numpy(), b) for a, b in ((p, sk_p), (r, sk_r), (f1, sk_f1))),
    "classification report (text)": report == skm.classification_report(yt, yp, labels=labels, digits=3, zero_division=0),
}
for name, same in identical.items():
    print(f"{name:32s} identical to scikit-learn: {same}")
assert all(identical.values())
for average in ("macro", "weighted", "micro"):
    ours = metrics.precision_recall_f1(y_test, y_pred, 10, average=average)
    theirs = skm.precision_recall_fscore_support(yt, yp, labels=labels, average=average, zero_division=0)[:3]
    diff = max(abs(a - b) for a, b in zip(ours, theirs))
    print(f"{average:8s} P, R, F1 = {ours[0]:.6f}, {ours[1]:.6f}, {ours[2]:.6f}   max |ours - sklearn| = {diff:.1e}")
    assert diff < 1e-15

# %% [markdown]
# (The averages agree to the last bit or so: a mean of ten floats depends on the order of the
# additions.) Precision and recall also show *how* a class fails: a class with high recall but
# lower precision attracts images of other classes; the reverse means its own images are missed.
#
# ### 4.3 Thresholds and the precision-recall curve
#
# A classifier's probabilities carry more than its argmax. Take one class $k$ against all the
# others ("one-vs-rest") and call an image positive when its score $s_n = \hat p_{n,k} \ge t$.
# Raising the threshold $t$ makes the model more careful: fewer false positives (precision goes
# up), more false negatives (recall goes down). The **precision-recall curve** traces this
# trade-off over every threshold. It is enough to try each distinct score as the threshold
# (between two neighbouring scores nothing changes); with $TP(t)$, $FP(t)$, $FN(t)$ the counts of
# the rule "positive if $s_n \ge t$",
#
# $$\text{precision}(t) = \frac{TP(t)}{TP(t) + FP(t)}, \qquad \text{recall}(t) = \frac{TP(t)}{TP(t) + FN(t)} .$$
#
# Like scikit-learn, `precision_recall_curve` returns one point per distinct score plus the end
# point (recall 0, precision 1) where nothing is predicted positive:

# %%
show_source(metrics.precision_recall_curve)

# %%
for k in range(10):
    ours = metrics.precision_recall_curve(y_test == k, proba[:, k].double())
    theirs = skm.precision_recall_curve((yt == k).astype(int), proba[:, k].double().numpy())
    assert all(np.array_equal(a.numpy(), b) for a, b in zip(ours, theirs)), k
print("precision, recall and thresholds identical to scikit-learn's for all 10 classes (one-vs-rest)")

# %% [markdown]
# ## 5. Explore: choosing a threshold
#
# The explorer takes the CNN's test probabilities. Pick a class (it starts on the class with the
# lowest F1) and move the threshold: the red dot moves along the class's precision-recall curve
# (left), the dashed line across precision, recall and F1 as functions of the threshold
# (middle), and the counts of true/false positives/negatives change (right). Things to try:
#
# * Set $t = 0$: every image is "positive", recall is 1 and precision about 0.1 (one image in
#   ten belongs to the class). Raise $t$ step by step: which count changes first?
# * The CNN's curves hug the top-right corner: at almost any threshold it is nearly perfect.
#   The second explorer shows the nearest-class-mean baseline on the same images; there the
#   threshold matters: for most classes the best F1 lies well below $t = 0.5$ (printed below).
#   Compare classes 5 and 9 in both.

# %%
explorer = ThresholdExplorer(proba.double(), y_test)
explorer

# %%
explorer_baseline = ThresholdExplorer()  # default: the nearest-class-mean scores of the test images
explorer_baseline

# %% [markdown]
# The numbers of the current frame are plain Python, computed with `course_lib.metrics`, and so
# are the curves; for each class, the threshold with the best F1 for the baseline:

# %%
print(explorer.state(), explorer.counts, {k: round(v, 3) for k, v in explorer.values.items()})
best = []
for k in range(10):
    curves = explorer_baseline.curves(k)
    i = int(curves["f1_grid"].argmax())
    best.append(f"{k}: t={float(explorer_baseline.grid[i]):.3f} (F1 {float(curves['f1_grid'][i]):.2f})")
print("baseline, best threshold per class:", ", ".join(best))

# %% [markdown]
# ## Summary
#
# * A convolution or pooling layer maps length $H$ to $\lfloor (H + 2p - k)/s \rfloor + 1$. The
#   first linear layer after the last pooling needs exactly $C \cdot H' \cdot W'$ inputs:
#   compute it from the input size, don't type it in.
# * Flatten with `torch.flatten(x, 1)`: `view(-1, n)` with a wrong `n` can silently produce a
#   wrong batch size (25 images became 49 rows) that fails only at the loss.
# * The source article's CNN listings: `64 * 5 * 5` should be `64 * 7 * 7` for 28×28 inputs;
#   `F` is used without `import torch.nn.functional as F`; `16 * 5 * 5` is right only for
#   32×32 inputs; the training code is missing.
# * Forward hooks (`cnn.layer_outputs`, `cnn.shape_report`) print every layer's output shape and
#   show where a network breaks; the same hooks give the feature maps.
# * `DigitsCNN` (6,090 parameters, conv–ReLU–pool twice, then linear) reaches about 0.99 test
#   accuracy on the 8×8 digits in seconds; its forward pass is exactly chapter 05's `conv2d`,
#   chapter 06's `max_pool2d` and chapter 01's linear layer.
# * The confusion matrix shows which classes are mixed up; precision, recall and F1 per class
#   (with `zero_division` for 0/0), and their macro, weighted and micro averages (micro = accuracy
#   here), summarise it. A precision-recall curve shows the trade-off of a decision threshold.
#   `course_lib.metrics` gives scikit-learn's numbers.
#
# ## Exercises
#
# Open `exercises/07_cnn.ipynb`: write the confusion matrix, precision/recall/F1 per class with
# `zero_division`, the macro/micro/weighted averages, and a repaired version of the article's CNN
# that works for any input size. Each comes with an instant check.
#
# ## References
#
# * Y. LeCun, L. Bottou, Y. Bengio, P. Haffner. *Gradient-based learning applied to document
#   recognition.* Proceedings of the IEEE 86(11), 2278–2324 (1998). (Convolution, pooling and
#   linear layers trained end to end on handwritten digits: LeNet-5.)
# * V. Dumoulin, F. Visin. *A guide to convolution arithmetic for deep learning.*
#   arXiv:1603.07285 (2016). (Output sizes of convolutions and poolings.)
# * F. Pedregosa et al. *Scikit-learn: Machine learning in Python.* Journal of Machine Learning
#   Research 12, 2825–2830 (2011); the documentation of `sklearn.metrics` (the conventions
#   followed here: confusion-matrix orientation, `zero_division`, averages, the PR curve).
# * PyTorch documentation: `torch.nn.Module.register_forward_hook`, `torch.flatten`, and the
#   tutorial "Training a Classifier" (the network of the second listing).

# %%
print(explorer.self_check())
print(explorer_baseline.self_check())
