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
# is it really*? We start where most CNN code goes wrong: the shapes. The CNN listings of the
# course's two source articles (the *talent article*, on the talent needed and how to train it in
# the era of large models as a service, and the *employment article*, on the social impact of
# large models, above all on jobs; chapter 00 introduces both) do not run as printed; repairing
# them one bug at a time teaches the technique that finds such bugs in seconds. Then we train a
# small CNN on the 8×8 digits with its settings chosen on a validation set, compare it with a
# fair baseline (a perceptron with as many parameters, chosen the same way), look at its filters
# and feature maps, check that our own `conv2d` and `max_pool2d` compute exactly what the trained
# network computes, and evaluate it with a confusion matrix, precision, recall, F1 and
# precision-recall curves, all written from scratch and checked against scikit-learn.

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
# ## 1. Shapes: the source articles' CNNs
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
# bug in CNN code, and the CNN listings of both source articles have it in one form or another.
#
# ### 1.1 The first listing: `64 * 5 * 5`
#
# The employment article prints this CNN (its section 4.1), with the indentation lost in the
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
# The talent article prints this CNN in its section 4.2. The comments say "define the CNN
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
# The talent article's other listings train with `for data, target in dataloader:`, a `dataloader`
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
# 8×8 pixels, each with its label 0–9. As images they have the shape
# $X \in \mathbb{R}^{N \times 1 \times 8 \times 8}$ (one channel).
#
# ### 2.1 Three parts: train, validation, test
#
# Training fits the weights, but we also have to decide *how* to train: the learning rate, the
# number of epochs, even which network. If those decisions were made by looking at the test
# images, the test accuracy of the winner would stop being an honest estimate: among several
# settings, the one that happens to suit these particular images wins, and its score is biased
# upwards. So the images are split three ways, every class in the same proportion (stratified),
# with a fixed seed:
#
# * **train** (60 %): the weights are fitted on it;
# * **validation** (15 %): every decision about the training is made on it;
# * **test** (25 %): read only at the end, to report on the models chosen on validation.
#
# The test part is the same 450 images that `data.digits()` holds out in the other chapters; the
# validation part is taken from the remaining 1,347.

# %%
split = data.digits_splits()  # X_* (N, 64) in [0, 1], y_* (N,): train, validation, test
for part, labels in (("train", split.y_train), ("validation", split.y_val), ("test", split.y_test)):
    print(f"{part:10s} {len(labels):4d} images, per class {torch.bincount(labels, minlength=10).tolist()}")
images_val = cnn.as_images(split.X_val)  # (269, 1, 8, 8)

# %% [markdown]
# ### 2.2 The network
#
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
print(cnn.DigitsCNN())
print("parameters:", cnn.count_parameters(cnn.DigitsCNN()))

# %% [markdown]
# ### 2.3 Training, and choosing how long and how fast on validation
#
# Training uses chapter 04's ingredients: cross-entropy, Adam, minibatches of 32, seeded weights
# and batch order, no data augmentation. After every epoch `train_digits` measures the loss and
# the accuracy on the whole training part and on the validation part (the model in evaluation
# mode). It reads `X_train`, `y_train`, `X_val` and `y_val`, never the test part. It runs on the
# CPU, whose numbers this chapter quotes; `device=get_device()` (`course_lib.device`) trains on
# a GPU instead, with slightly different numbers.

# %%
show_source(cnn.train_digits)

# %% [markdown]
# Two settings are left to choose: the learning rate and the number of epochs. `select_on_validation`
# trains one seeded run of `MAX_EPOCHS` = 20 epochs for each learning rate of a small grid
# (`LRS` = 0.003, 0.01, 0.03: steps of about a factor 3 around Adam's usual scale) and keeps
# the epoch with the highest validation accuracy over all runs. With 269 validation images that
# accuracy moves in steps of $1/269 \approx 0.004$, so ties are common; the lower validation loss
# breaks them. Because the runs are seeded, the first $e$ epochs of a 20-epoch run are exactly a
# run of $e$ epochs: choosing the best epoch *is* choosing the number of epochs, and the chosen
# model is that run's weights after epoch $e$.

# %%
show_source(cnn.select_on_validation)


# %%
def report_choice(name: str, choice: cnn.Selection) -> None:
    """One line per learning rate of the grid, then the choice."""
    for lr, run in choice.runs.items():
        e, late = run.best_epoch, run.val_accuracy[len(run.val_accuracy) // 2:]
        print(f"  lr {lr:<6g} best epoch {e:2d}: validation accuracy {run.val_accuracy[e - 1]:.4f}, loss "
              f"{run.val_loss[e - 1]:.4f};  validation accuracy over epochs {len(run.val_accuracy) // 2 + 1}-"
              f"{len(run.val_accuracy)}: {min(late):.3f} to {max(late):.3f}")
    print(f"{name}: chosen lr {choice.lr:g}, {choice.epochs} epochs (validation accuracy {choice.val_accuracy:.4f})")


def plot_choice(choice: cnn.Selection, name: str) -> None:
    """Training vs validation loss and accuracy of the chosen learning rate's run (the chosen
    epoch dashed), and the validation accuracy of every learning rate of the grid."""
    run = choice.runs[choice.lr]
    epochs = range(1, len(run.loss) + 1)
    fig, (ax_loss, ax_acc, ax_lr) = plt.subplots(1, 3, figsize=(10, 2.8))
    ax_loss.semilogy(epochs, run.train_loss, "o-", ms=3, label="training")
    ax_loss.semilogy(epochs, run.val_loss, "o-", ms=3, label="validation")
    ax_loss.set_ylabel("cross-entropy")
    ax_acc.plot(epochs, run.accuracy, "o-", ms=3, label="training")
    ax_acc.plot(epochs, run.val_accuracy, "o-", ms=3, label="validation")
    ax_acc.set_ylabel("accuracy")
    ax_acc.set_ylim(0.85, 1.005)
    for lr, other in choice.runs.items():
        ax_lr.plot(epochs, other.val_accuracy, "-", lw=2 if lr == choice.lr else 1, label=f"lr {lr:g}")
    ax_lr.set_ylabel("validation accuracy")
    ax_lr.set_ylim(0.85, 1.005)
    for ax in (ax_loss, ax_acc, ax_lr):
        ax.axvline(choice.epochs, color="gray", ls="--", lw=1)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    ax_acc.set_title(f"{name}, lr {choice.lr:g}: training vs validation", fontsize=10)
    plt.tight_layout()
    plt.show()
    e = choice.epochs
    print(f"after epoch {e}: training loss {run.train_loss[e - 1]:.4f}, accuracy {run.accuracy[e - 1]:.4f}; "
          f"validation loss {run.val_loss[e - 1]:.4f}, accuracy {run.val_accuracy[e - 1]:.4f}")


cnn_choice = cnn.select_on_validation(cnn.DigitsCNN, lrs=cnn.LRS, max_epochs=cnn.MAX_EPOCHS, seed=0, split=split)
report_choice("DigitsCNN", cnn_choice)
model = cnn_choice.model  # trained on the training part with the chosen lr and number of epochs

# %%
plot_choice(cnn_choice, "DigitsCNN")

# %% [markdown]
# Left: training and validation loss fall together for the first few epochs, then part; after
# epoch 20 the training loss is about a quarter of the validation loss (printed above). That
# gap is what the network has fitted to its training images in particular. Middle: the
# training accuracy reaches 1, the validation accuracy ends two images short of it. Right: the
# two larger learning rates get ahead in the first epochs, but their validation accuracy keeps
# jumping in the later ones (the ranges printed above); the smallest is still improving at
# epoch 20 and gives the best validation accuracy there. A chosen epoch at the end of the range
# tried says that a longer run might do slightly better; the grid is kept small so that the
# chapter runs in under a minute.
#
# ### 2.4 A fair baseline: a perceptron with as many parameters
#
# Is the convolution what makes this network good? The question needs a baseline without it,
# treated exactly the same way. `DigitsMLP` flattens the 64 pixels and applies one hidden layer
# of 81 ReLU units and a linear output layer: $(64 + 1) \cdot 81 + (81 + 1) \cdot 10 = 6085$
# parameters, as many as the CNN's 6090 to within 5. It shares no weights between pixel positions
# and does not pool. Same split, optimiser, minibatches, seed, learning-rate grid, epoch range
# and selection rule:

# %%
show_source(cnn.DigitsMLP)

# %%
mlp_choice = cnn.select_on_validation(cnn.DigitsMLP, lrs=cnn.LRS, max_epochs=cnn.MAX_EPOCHS, seed=0, split=split)
report_choice("DigitsMLP", mlp_choice)
plot_choice(mlp_choice, "DigitsMLP")

# %% [markdown]
# ### 2.5 The test set, once
#
# Every choice is made; only now is the test part read, and nothing learned from it changes the
# models. One seed can be lucky, so each chosen setting is also trained with two more seeds (new
# initial weights and batch order, the same learning rate and number of epochs) and we report
# the mean and the spread. This cell computes every number on the test part that the rest of
# the chapter uses: the accuracies, and the test probabilities of the seed-0 networks for
# section 4.

# %%
SEEDS = (0, 1, 2)
final = {}
for name, make, choice in (("DigitsCNN", cnn.DigitsCNN, cnn_choice), ("DigitsMLP", cnn.DigitsMLP, mlp_choice)):
    more = [cnn.train_digits(make, epochs=choice.epochs, lr=choice.lr, seed=s, split=split, progress=False, live=False)[0]
            for s in SEEDS[1:]]
    final[name] = (choice, [choice.model] + more)

# the test part, read once: accuracies of the chosen models, and probabilities for section 4
test_accuracy = {name: [cnn.evaluate(m, split.X_test, split.y_test)[1] for m in models] for name, (_, models) in final.items()}
proba = cnn.predict_proba(model, split.X_test)  # (450, 10), the seed-0 CNN
proba_mlp = cnn.predict_proba(final["DigitsMLP"][1][0], split.X_test)

for name, (choice, models) in final.items():
    accs = np.array(test_accuracy[name])
    print(f"{name} ({cnn.count_parameters(models[0])} parameters, lr {choice.lr:g}, {choice.epochs} epochs): "
          f"validation {choice.val_accuracy:.4f}; test per seed {', '.join(f'{a:.4f}' for a in accs)}; "
          f"mean {accs.mean():.4f}, standard deviation {accs.std(ddof=1):.4f}")

# %% [markdown]
# On the test images the CNN scores 0.988 on average over the three seeds and the perceptron
# 0.977: a difference of about one percentage point, five images in 450. Three seeds give only a
# rough idea of the spread; with five (`tools/bench_cnn.py`, recorded in `docs/benchmarks.md`)
# the CNN's test accuracy has a standard deviation of 0.007 between seeds, close to the gap
# itself. Both test scores lie a little below the validation scores that chose them: a validation
# score that won a comparison is biased upwards (section 2.1), the test score is the honest one.
# With as many parameters and the same protocol, then, the convolution buys little accuracy on
# these small digits.
#
# ### 2.6 What does the convolution buy? Shifted digits
#
# A convolution applies the same filter at every position, so a stroke moved by one pixel
# produces the same filter response one position further; a max-pooling can then absorb part of
# that move. A perceptron has a separate weight for every pixel: for it, a moved stroke falls on
# different weights. The difference should show when the digits move. `shift_images` moves every
# test image by one pixel, up, down, left or right (the freed row or column is left blank); the
# figure shows one test digit in each position:

# %%
show_source(cnn.shift_images)

# %%
shifts = {"none": (0, 0), "up": (-1, 0), "down": (1, 0), "left": (0, -1), "right": (0, 1)}
fig, axes = plt.subplots(1, len(shifts), figsize=(6, 1.5))
for ax, (direction, (dy, dx)) in zip(axes, shifts.items()):
    ax.imshow(cnn.shift_images(split.X_test[:1], dy, dx)[0, 0].numpy(), cmap="gray_r")
    ax.set_title(direction, fontsize=9)
    ax.set_axis_off()
plt.show()
shifted_accuracy = {}
for name, (_, models) in final.items():
    shifted_accuracy[name] = {direction: float(np.mean([cnn.evaluate(m, cnn.shift_images(split.X_test, dy, dx), split.y_test)[1]
                                                        for m in models]))
                              for direction, (dy, dx) in shifts.items()}
    print(f"{name}: test accuracy, mean over the {len(SEEDS)} seeds, digits moved by one pixel: "
          + ", ".join(f"{d} {a:.3f}" for d, a in shifted_accuracy[name].items()))
ink = cnn.as_images(split.X_test).sum(dim=(1, 2, 3))
print("fraction of the ink cut off by the move:", ", ".join(
    f"{d} {float((1 - cnn.shift_images(split.X_test, dy, dx).sum(dim=(1, 2, 3)) / ink).mean()):.3f}"
    for d, (dy, dx) in shifts.items()))

# %% [markdown]
# Neither network is shift-invariant: trained only on the digits where they are drawn, both lose
# much of their accuracy when the digits move by a single pixel, an eighth of the image. The
# digits fill the image from top to bottom, so moving them up or down also cuts off a row of ink
# (the fractions printed above); left and right, which lose almost nothing, are the cleaner
# test. There the CNN
# keeps clearly more than the perceptron. That is the measurable part of the story about weight
# sharing and pooling: they make the CNN more tolerant of small shifts than a perceptron of the
# same size, not immune to them (its last layer still reads the four pooled positions with
# separate weights).
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
# do to an image. `cnn.feature_maps` records every layer's output for one validation digit (the same
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
maps = cnn.feature_maps(model, images_val[index: index + 1])
print({name: tuple(m.shape) for name, m in maps.items()})
fig, axes = plt.subplots(1, 3, figsize=(9.5, 2.8), gridspec_kw={"width_ratios": [1, 4, 4]})
axes[0].imshow(images_val[index, 0].numpy(), cmap="gray_r")
axes[0].set_title(f"input: a {int(split.y_val[index])}", fontsize=9)
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
x64 = images_val[:20].double()
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
y_test, y_pred = split.y_test, proba.argmax(dim=1)  # proba: the CNN's test probabilities from section 2.5
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
# it assigns each image to the class whose mean image is closest (in squared pixel distance),
# the means taken over all 1,347 non-test images (it has no setting to choose, so it needs no
# validation part). The off-diagonal cells (in red) are the mistakes. The most frequent ones,
# with those of the perceptron of section 2.4 (seed 0):

# %%
def most_confused(cm: torch.Tensor, top: int = 4) -> list:
    """The ``top`` largest off-diagonal counts of ``cm`` as (true class, predicted class, count)."""
    off = cm - torch.diag(cm.diag())
    counts, flat = off.flatten().sort(descending=True, stable=True)
    k = cm.shape[0]
    return [(int(i) // k, int(i) % k, int(c)) for c, i in zip(counts[:top], flat[:top]) if c > 0]


cm_mlp = metrics.confusion_matrix(y_test, proba_mlp.argmax(dim=1), num_classes=10)
for name, matrix in (("DigitsCNN", cm), ("DigitsMLP", cm_mlp), ("nearest class mean", cm_base)):
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
# reads it as a 5 at once; likewise a 1 with a long top stroke lands near the 9s. Both trained
# networks make far fewer mistakes, and the perceptron, which has no convolution, makes only a
# few more than the CNN (counts above). So most of what separates them from the templates is
# *learning* a decision rule from the labels, not convolution; on these small digits the
# convolution adds a little accuracy (section 2.5) and a clearer advantage when the digits move
# (section 2.6). The CNN's six mistakes are unusual writings (a 3 that ends in a flat bar, as a 2 does;
# a narrow 8 read as a 1), and it gave none of them a probability above 0.8. On an evaluation this small, each mistake is worth looking at.
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
for average in ("macro", "weighted", "micro"):
    ours = metrics.precision_recall_f1(y_test, y_pred, 10, average=average)
    theirs = skm.precision_recall_fscore_support(yt, yp, labels=labels, average=average, zero_division=0)[:3]
    diff = max(abs(a - b) for a, b in zip(ours, theirs))
    print(f"{average:8s} P, R, F1 = {ours[0]:.6f}, {ours[1]:.6f}, {ours[2]:.6f}   max |ours - sklearn| = {diff:.1e}")

# %% [markdown]
# (The averages agree to the last bit or so: a mean of ten floats depends on the order of the
# additions.) Precision and recall also show *how* a class fails: a class with high recall but
# lower precision attracts images of other classes; the reverse means its own images are missed.
#
# ### 4.3 Thresholds and the precision-recall curve
#
# A classifier's probabilities carry more than its argmax. Take one class $k$ against all the
# others ("one-vs-rest") and call an image positive when its score $s_n = \hat p_{n,k} \ge t$.
# Raising the threshold $t$ makes the model more careful: an image can leave the positives but
# never join them, so $TP(t)$ and $FP(t)$ never grow and recall never goes up. Precision, the
# ratio $TP/(TP + FP)$, usually rises, but it is **not monotone** in $t$: when the image that
# leaves is a true positive while false positives remain, precision falls (measured below). The
# **precision-recall curve** traces this trade-off over every threshold. It is enough to try each distinct score as the threshold
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
same = 0
for k in range(10):
    ours = metrics.precision_recall_curve(y_test == k, proba[:, k].double())
    theirs = skm.precision_recall_curve((yt == k).astype(int), proba[:, k].double().numpy())
    same += all(np.array_equal(a.numpy(), b) for a, b in zip(ours, theirs))
print(f"precision, recall and thresholds identical to scikit-learn's for {same} of 10 classes (one-vs-rest)")

# %% [markdown]
# Along a curve the thresholds increase, so a drop of precision from one point to the next is a
# threshold step that *lowers* precision. How many such steps each class has, and the curve of
# the baseline's class with the most of them:

# %%
def precision_drops(scores: torch.Tensor, k: int) -> int:
    """How many times precision falls from one threshold to the next (increasing) one, class k vs the rest."""
    precision, _, _ = metrics.precision_recall_curve(y_test == k, scores[:, k].double())
    return int((precision[1:] < precision[:-1]).sum())


drops = {name: [precision_drops(scores, k) for k in range(10)]
         for name, scores in (("DigitsCNN", proba), ("nearest class mean", baseline_scores))}
for name, counts in drops.items():
    print(f"{name:18s} steps where precision falls, classes 0-9: {counts}")
k = int(np.argmax(drops["nearest class mean"]))
precision_k, recall_k, thresholds_k = metrics.precision_recall_curve(y_test == k, baseline_scores[:, k])
fig, ax = plt.subplots(figsize=(5.5, 2.8))
ax.step(thresholds_k.numpy(), precision_k[:-1].numpy(), where="post", label="precision")
ax.step(thresholds_k.numpy(), recall_k[:-1].numpy(), where="post", label="recall")
ax.set_xlabel("threshold $t$")
ax.set_title(f"nearest class mean, class {k} vs the rest", fontsize=10)
ax.grid(alpha=0.3)
ax.legend(fontsize=8)
plt.tight_layout()
plt.show()

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
# * The CNN's curves hug the top-right corner: for most classes precision and recall stay near 1
#   over a wide range of thresholds. The second explorer shows the nearest-class-mean baseline on
#   the same images; there the threshold matters. Compare classes 5 and 9 in both.
# * Where the best threshold lies depends on the *scale* of the scores, not only on the
#   classifier. The baseline's "probabilities" are $\operatorname{softmax}(-d^2)$ of the squared
#   distances $d^2$ to the ten class means, a choice of scale with nothing behind it. Any
#   temperature $\tau > 0$ in $\operatorname{softmax}(-d^2/\tau)$ keeps each image's order of the
#   classes (the same predictions, the same accuracy) but moves the threshold with the best F1,
#   to either side of 0.5 (printed below). A statement such as "the best F1 lies below
#   $t = 0.5$" describes one score scale; a threshold found on one must not be reused on another.

# %%
explorer = ThresholdExplorer(proba.double(), y_test)
explorer

# %%
explorer_baseline = ThresholdExplorer()  # default: the nearest-class-mean scores of the test images
explorer_baseline

# %% [markdown]
# The numbers of the current frame are plain Python, computed with `course_lib.metrics`, and so
# are the curves. Below: for the CNN, the lowest F1 of each class over the thresholds 0.1 to 0.9;
# for the baseline at three temperatures, its accuracy and, per class, the threshold with the
# best F1 (`best_threshold`, read off the precision-recall curve):

# %%
print(explorer.state(), explorer.counts, {k: round(v, 3) for k, v in explorer.values.items()})
middle = (explorer.grid >= 0.1) & (explorer.grid <= 0.9)
print("DigitsCNN, lowest F1 for t in [0.1, 0.9], classes 0-9:",
      [round(float(explorer.curves(k)["f1_grid"][middle].min()), 2) for k in range(10)])


def best_threshold(scores: torch.Tensor, k: int) -> float:
    """The threshold with the highest F1 for class k against the rest (the first one on ties)."""
    precision, recall, thresholds = metrics.precision_recall_curve(y_test == k, scores[:, k])
    f1 = 2 * precision * recall / (precision + recall).clamp_min(1e-12)
    return float(thresholds[int(f1[:-1].argmax())])  # the last point (nothing positive) has no threshold


log_scores = baseline_scores.log()  # = -d^2 - log(sum over classes of exp(-d^2)), a constant per image
for tau in (2.0, 1.0, 0.5):
    scores_tau = torch.softmax(log_scores / tau, dim=1)  # = softmax(-d^2 / tau)
    best = [best_threshold(scores_tau, k) for k in range(10)]
    print(f"baseline, tau = {tau:g}: accuracy {metrics.accuracy(y_test, scores_tau.argmax(dim=1)):.4f}; best threshold "
          f"per class {[round(t, 2) for t in best]}; below 0.5 for {sum(t < 0.5 for t in best)} of 10 classes")

# %% [markdown]
# ## Summary
#
# * A convolution or pooling layer maps length $H$ to $\lfloor (H + 2p - k)/s \rfloor + 1$. The
#   first linear layer after the last pooling needs exactly $C \cdot H' \cdot W'$ inputs:
#   compute it from the input size, don't type it in.
# * Flatten with `torch.flatten(x, 1)`: `view(-1, n)` with a wrong `n` can silently produce a
#   wrong batch size (25 images became 49 rows) that fails only at the loss.
# * The CNN listings of the source articles: the employment article's `64 * 5 * 5` should be
#   `64 * 7 * 7` for 28×28 inputs; the talent article's uses `F` without
#   `import torch.nn.functional as F`, its `16 * 5 * 5` is right only for 32×32 inputs, and its
#   training code is missing.
# * Forward hooks (`cnn.layer_outputs`, `cnn.shape_report`) print every layer's output shape and
#   show where a network breaks; the same hooks give the feature maps.
# * Split the data three ways: fit the weights on train, make every choice (learning rate,
#   number of epochs, even the model) on validation, and read test once, at the end. A score that
#   was used to choose is biased upwards.
# * `DigitsCNN` (6,090 parameters, conv–ReLU–pool twice, then linear), with its learning rate and
#   number of epochs chosen on validation, reaches 0.988 test accuracy on the 8×8 digits (mean of
#   three seeds); a perceptron with 6,085 parameters, chosen the same way, 0.977. The CNN's clear
#   advantage appears when the digits move by one pixel to the side: weight sharing and pooling
#   make it more tolerant of shifts, not immune to them.
# * The trained CNN's forward pass is exactly chapter 05's `conv2d`, chapter 06's `max_pool2d`
#   and chapter 01's linear layer.
# * The confusion matrix shows which classes are mixed up; precision, recall and F1 per class
#   (with `zero_division` for 0/0), and their macro, weighted and micro averages (micro = accuracy
#   here), summarise it. A precision-recall curve shows the trade-off of a decision threshold:
#   recall never rises with the threshold, precision usually does but not always. The best
#   threshold depends on the scale of the scores. `course_lib.metrics` gives scikit-learn's numbers.
#
# ## Exercises
#
# Open `exercises/07_cnn.ipynb`: write the confusion matrix, precision/recall/F1 per class with
# `zero_division` and the macro/micro/weighted averages; debug the employment article's CNN so that
# it works for any input size; predict how many rows `view(-1, 64 * 5 * 5)` returns for a given
# batch before running it; and debug a model selection that peeks at the test set. Each comes with
# an instant check that names the typical mistake it recognises.
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
