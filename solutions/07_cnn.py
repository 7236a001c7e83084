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
# # 07 · Exercises: a CNN end to end
#
# Student sheet: <a href="https://colab.research.google.com/github/nn-from-scratch/course/blob/main/exercises/07_cnn.ipynb" target="_parent"><img src="https://colab.research.google.com/assets/colab-badge.svg" alt="Open In Colab"/></a>
# · with solutions: [solutions/07_cnn.ipynb](https://colab.research.google.com/github/nn-from-scratch/course/blob/main/solutions/07_cnn.ipynb)
#
# Six questions on the lecture `notebooks/07_cnn.ipynb`. Three build the evaluation from the
# confusion matrix up (precision, recall and F1 per class, then their averages); two are about
# the CNN listing of the employment article (on the social impact of large models): debug it so
# that it works for any input size, and predict what its `view(-1, 64 * 5 * 5)` does to a batch
# before running it; the last one debugs a training script that lets the wrong data choose the
# model. Replace each `raise NotImplementedError(...)` with your code and run the `check(...)`
# cell below it: it compares your function with the course's reference on several inputs, edge
# cases included, names the typical mistake when your outputs show one, and gives a hint. Each
# failed check of the same question shows one more hint tier (the idea, then the shapes, then a
# nudge towards code); `hint("07.2")` shows the next tier without a check.
#
# Write the metrics with tensor operations (`==`, `&`, `.sum`, indexing, `torch.where`), not
# with `sklearn.metrics` or `course_lib.metrics`: the point is to write them yourself. Labels
# are `torch.long` tensors `(N,)` with classes `0 .. num_classes - 1`. At the end, your
# functions train and evaluate the repaired CNN on the digits.

# %% tags=["setup"]
# Setup. On Colab this installs course_lib from the course repository (Colab keeps its own
# torch and ipywidgets); everywhere else it does nothing.
import sys

if "google.colab" in sys.modules:
    get_ipython().run_line_magic("pip", "install --quiet git+https://github.com/nn-from-scratch/course")

# %%
import torch
import torch.nn as nn
import torch.nn.functional as F

from course_lib import data
from course_lib.check import check, hint, use
from course_lib.device import seed_everything

seed_everything(0)
torch.set_num_threads(1)  # small tensors: one thread is faster, and the numbers are reproducible

# %% [markdown]
# ## 07.1 The confusion matrix
#
# For $K$ classes the confusion matrix $C \in \mathbb{N}^{K \times K}$ counts, for every pair of
# classes $(i, j)$, the samples of true class $i$ that were predicted as class $j$:
#
# $$C_{ij} = \#\{\, n : y^{\text{true}}_n = i,\ y^{\text{pred}}_n = j \,\}, \qquad i, j = 0, \dots, K-1 .$$
#
# Rows are true classes, columns predicted classes (scikit-learn's convention). Return a
# `torch.long` tensor `(num_classes, num_classes)`, also when some class never occurs in
# `y_true` or `y_pred`. Before you write it, say what the diagonal, a row sum and a column sum
# of $C$ count: 07.2 is built from them.

# %%
def confusion_matrix(y_true: torch.Tensor, y_pred: torch.Tensor, num_classes: int) -> torch.Tensor:
    """y_true, y_pred (N,) long in 0..num_classes-1 -> counts (num_classes, num_classes) long,
    rows = true class, columns = predicted class."""
    ### BEGIN SOLUTION 07.1
    cm = torch.zeros(num_classes, num_classes, dtype=torch.long)
    for t, p in zip(y_true.tolist(), y_pred.tolist()):
        cm[t, p] += 1
    return cm
    ### END SOLUTION


# %%
check("07.1", confusion_matrix)

# %% [markdown]
# ## 07.2 Precision, recall and F1 per class
#
# For each class $k$:
#
# * **precision**: of the samples the model predicted as $k$, the fraction that truly are $k$;
# * **recall**: of the samples that truly are $k$, the fraction the model predicted as $k$;
# * **F1**: the harmonic mean of the two, $2 \,/\, (1/\text{precision} + 1/\text{recall})$.
#
# Read all three off the confusion matrix of 07.1 (which entries? which sums?) and write each of
# them as a ratio of counts: for F1, simplify the harmonic mean until only counts remain. A class
# that is never predicted, never present, or neither, makes some of these ratios $0/0$; every
# ratio of counts that is $0/0$ takes the value `zero_division` (0.0 or 1.0), never NaN.
#
# Return `(precision, recall, f1)`, three `float64` tensors `(num_classes,)`. You may use your
# `confusion_matrix`.

# %%
def precision_recall_f1(y_true: torch.Tensor, y_pred: torch.Tensor, num_classes: int, zero_division: float = 0.0):
    """y_true, y_pred (N,) long -> (precision, recall, f1), each float64 (num_classes,)."""
    ### BEGIN SOLUTION 07.2
    cm = confusion_matrix(y_true, y_pred, num_classes).double()
    tp, predicted, support = cm.diag(), cm.sum(dim=0), cm.sum(dim=1)

    def divide(num, den):
        return torch.where(den > 0, num / den.clamp(min=1), torch.full_like(num, zero_division))

    return divide(tp, predicted), divide(tp, support), divide(2 * tp, predicted + support)
    ### END SOLUTION


# %%
check("07.2", precision_recall_f1)

# %% [markdown]
# ## 07.3 Macro, micro and weighted F1
#
# One number for all $K$ classes, three ways (with `zero_division = 0`):
#
# * **macro**: the plain mean of the $K$ per-class F1 scores. Every class counts the same, a rare
#   one as much as a frequent one, and so does a class that neither occurs nor is predicted (its
#   F1 is `zero_division` = 0; scikit-learn does the same with `labels=range(K)`).
# * **micro**: pool the counts first (the true positives, the predictions and the true samples,
#   each summed over the classes), then compute one F1 from the pooled counts. Every *sample*
#   counts the same.
# * **weighted**: the mean of the per-class F1 scores, each weighted by its class's share of the
#   true samples.
#
# Return `(macro, micro, weighted)` as three Python floats. You may use your
# `precision_recall_f1`. When every sample has exactly one true and one predicted label, the
# micro F1 is a number you already know: which one?

# %%
def f1_averages(y_true: torch.Tensor, y_pred: torch.Tensor, num_classes: int):
    """y_true, y_pred (N,) long -> (macro F1, micro F1, weighted F1), three floats."""
    ### BEGIN SOLUTION 07.3
    f1 = precision_recall_f1(y_true, y_pred, num_classes)[2]
    support = torch.bincount(y_true, minlength=num_classes).double()
    macro = f1.mean().item()
    micro = (y_true == y_pred).double().mean().item()
    weighted = ((f1 * support).sum() / support.sum()).item()
    return macro, micro, weighted
    ### END SOLUTION


# %%
check("07.3", f1_averages)

# %% [markdown]
# ## 07.4 Debug the employment article's CNN for any input size
#
# The employment article (on the social impact of large models) prints this CNN in its
# section 4.1. Here it is as printed, with the indentation restored (the article lost it) and the
# name changed to `ArticleCNN`:

# %%
class ArticleCNN(nn.Module):
    def __init__(self):
        super(ArticleCNN, self).__init__()
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


# %% [markdown]
# The article does not say which images it expects. For most input sizes the listing fails, and
# for some batch sizes one of its two bugs hides the other and the network returns an output of
# the wrong shape without any error. Find both bugs: run `ArticleCNN()` on random batches of a
# few shapes, and use `course_lib.cnn.shape_report(model, x)`, which prints every layer's output
# shape (and the error, if there is one).
#
# Then write `make_cnn(in_channels, input_hw)`, the repaired network: **the same layers**, with
# `conv1` taking `in_channels` channels, for inputs `(N, in_channels, H, W)` with
# `input_hw = (H, W)`, $H, W \ge 4$, and any batch size $N$; the output has shape `(N, 10)`. Do
# not type in a size that fits one input: derive it from $H$ and $W$. You may use chapter 05's
# `course_lib.conv.conv_output_size`. The check builds your network for several input shapes and
# batch sizes, runs it and compares the output's shape and the number of parameters (which
# depends on the size of `fc1`).

# %%
def make_cnn(in_channels: int, input_hw) -> nn.Module:
    """The article's CNN for inputs (N, in_channels, H, W), input_hw = (H, W): output (N, 10)."""
    ### BEGIN SOLUTION 07.4
    def out(size, k, p, s):
        return (size + 2 * p - k) // s + 1

    h, w = input_hw
    for _ in range(2):  # two blocks of conv 3x3 (padding 1) + max-pool 2x2
        h, w = out(out(h, 3, 1, 1), 2, 0, 2), out(out(w, 3, 1, 1), 2, 0, 2)
    flat = 64 * h * w

    class CNN(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(in_channels, 32, kernel_size=3, stride=1, padding=1)
            self.conv2 = nn.Conv2d(32, 64, kernel_size=3, stride=1, padding=1)
            self.pool = nn.MaxPool2d(kernel_size=2, stride=2)
            self.fc1 = nn.Linear(flat, 128)
            self.fc2 = nn.Linear(128, 10)

        def forward(self, x):
            x = self.pool(F.relu(self.conv1(x)))
            x = self.pool(F.relu(self.conv2(x)))
            x = torch.flatten(x, 1)
            x = F.relu(self.fc1(x))
            return self.fc2(x)

    return CNN()
    ### END SOLUTION


# %%
check("07.4", make_cnn)

# %% [markdown]
# ## 07.5 Predict what `view(-1, 64 * 5 * 5)` does to a batch
#
# Take `ArticleCNN` exactly as printed and feed it a batch of shape `(N, 1, H, W)`, $H, W \ge 4$.
# Depending on $N$, $H$ and $W$, its forward pass either raises an error or returns an output of
# shape `(rows, 10)`. Write `listing_rows(batch, input_hw)` that **predicts** `rows` from
# $N$ = `batch` and $(H, W)$ = `input_hw` without building or running a network, and returns 0
# where the forward pass would raise. Integer arithmetic is all it takes, and the answer must be
# exact. The cell after the check runs the listing to compare a few predictions with what
# PyTorch does.

# %%
def listing_rows(batch: int, input_hw) -> int:
    """Rows of ArticleCNN()'s output on a batch (batch, 1, H, W), input_hw = (H, W); 0 if it raises."""
    ### BEGIN SOLUTION 07.5
    def halve(size):  # conv 3x3 with padding 1 keeps the size; max-pool 2x2 with stride 2 floors half of it
        return size // 2

    h, w = (halve(halve(side)) for side in input_hw)
    values = batch * 64 * h * w  # what the batch holds after the second pooling
    if values % (64 * 5 * 5) != 0:
        return 0  # view cannot make rows of 1600 values out of it
    return values // (64 * 5 * 5)
    ### END SOLUTION


# %%
check("07.5", listing_rows)

# %%
predict_rows = use("07.5", listing_rows)
torch.manual_seed(0)
article_net = ArticleCNN()
for n, hw in [(2, (28, 28)), (25, (28, 28)), (3, (20, 20)), (100, (16, 16))]:
    try:
        with torch.no_grad():
            actual = f"output {tuple(article_net(torch.zeros(n, 1, *hw)).shape)}"
    except RuntimeError as err:
        actual = f"RuntimeError: {str(err).splitlines()[0][:70]}"
    print(f"batch ({n}, 1, {hw[0]}, {hw[1]}): predicted {predict_rows(n, hw)} rows; ran: {actual}")

# %% [markdown]
# ## 07.6 Debug a model selection: which data may choose?
#
# A training script splits its labelled images three ways: a training set (the optimiser fits the
# weights to it), a validation set and a test set (both held out). After every epoch it records
# the accuracy on each of the three, as tensors `(E,)` of `float64` for $E$ epochs, and keeps a
# copy of the weights. At the end it keeps the weights of one epoch and announces one number as
# "the accuracy to expect on new images". This is how it chooses:
#
# ```python
# def choose_epoch(train_acc, val_acc, test_acc):
#     best_epoch, best = 0, -1.0
#     for epoch in range(len(test_acc)):
#         if test_acc[epoch] > best:
#             best_epoch, best = epoch, float(test_acc[epoch])
#     return best_epoch, best
# ```
#
# The code runs, and the number it announces looks good. Find what is wrong with the way it uses
# its data, and write the fixed `choose_epoch` returning `(epoch, reported)`: the index of the
# epoch whose weights are kept (0 = after the first epoch) and the accuracy announced for new
# images, a float. Keep the listing's rule for ties (the earliest epoch wins). Then answer for
# yourself: why is the best of $E$ test scores expected to be higher than the accuracy that the
# weights it picks will have on new images?

# %%
def choose_epoch(train_acc: torch.Tensor, val_acc: torch.Tensor, test_acc: torch.Tensor):
    """Per-epoch accuracies (E,) float64 -> (index of the epoch to keep, accuracy to announce)."""
    ### BEGIN SOLUTION 07.6
    best_epoch = 0
    for epoch in range(1, len(val_acc)):
        if val_acc[epoch] > val_acc[best_epoch]:
            best_epoch = epoch
    return best_epoch, float(test_acc[best_epoch])
    ### END SOLUTION


# %%
check("07.6", choose_epoch)

# %% [markdown]
# ## Putting them to work
#
# Your network (or the reference, where yours does not pass yet) trains on the 8×8 digits. A
# fifth of the training images is held out as a validation set; after each of six epochs the
# script records the three accuracies and a copy of the weights, your `choose_epoch` picks the
# epoch, and your metrics evaluate the kept weights on the test images. The last line shows what
# the listing of 07.6 would have announced for the same run.

# %%
import copy

build = use("07.4", make_cnn)
cm_fn = use("07.1", confusion_matrix)
averages = use("07.3", f1_averages)
choose = use("07.6", choose_epoch)

digits = data.digits()  # X (N, 64) in [0, 1], y (N,)
images = digits.X_train.reshape(-1, 1, 8, 8)
n_val = len(images) // 5  # the training split is already shuffled: its last fifth becomes the validation set
X_fit, y_fit, X_val, y_val = images[:-n_val], digits.y_train[:-n_val], images[-n_val:], digits.y_train[-n_val:]
X_test, y_test = digits.X_test.reshape(-1, 1, 8, 8), digits.y_test


def accuracy_of(model, X, y):
    with torch.no_grad():
        return float((model(X).argmax(dim=1) == y).double().mean())


torch.manual_seed(0)
model = build(1, (8, 8))
optimizer = torch.optim.Adam(model.parameters(), lr=0.003)
order = torch.Generator().manual_seed(0)
curves, snapshots = {"train": [], "val": [], "test": []}, []
for epoch in range(6):
    for idx in torch.randperm(len(X_fit), generator=order).split(32):
        optimizer.zero_grad()
        loss = F.cross_entropy(model(X_fit[idx]), y_fit[idx])
        loss.backward()
        optimizer.step()
    for name, (X, y) in {"train": (X_fit, y_fit), "val": (X_val, y_val), "test": (X_test, y_test)}.items():
        curves[name].append(accuracy_of(model, X, y))
    snapshots.append(copy.deepcopy(model.state_dict()))
train_acc, val_acc, test_acc = (torch.tensor(curves[name], dtype=torch.float64) for name in ("train", "val", "test"))
kept, announced = choose(train_acc, val_acc, test_acc)
model.load_state_dict(snapshots[kept])
with torch.no_grad():
    predicted = model(X_test).argmax(dim=1)
cm = cm_fn(y_test, predicted, 10)
macro, micro, weighted = averages(y_test, predicted, 10)
for name, values in curves.items():
    print(f"{name:5s} accuracy per epoch:", " ".join(f"{v:.3f}" for v in values))
print(f"kept the weights after epoch {kept + 1}; announced accuracy {announced:.3f}")
print(cm)
print(f"test accuracy (micro F1) {micro:.3f}, macro F1 {macro:.3f}, weighted F1 {weighted:.3f}")
off_diagonal = cm - torch.diag(cm.diag())
true_class, predicted_class = divmod(int(off_diagonal.argmax()), 10)
print(f"most frequent mistake: {int(off_diagonal.max())} test images of {true_class} predicted as {predicted_class}")
print(f"the listing of 07.6 would have kept epoch {int(test_acc.argmax()) + 1} and announced {float(test_acc.max()):.3f}")
