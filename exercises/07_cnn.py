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
# Four functions from the lecture `notebooks/07_cnn.ipynb`: the confusion matrix, precision,
# recall and F1 per class, their macro, micro and weighted averages, and a repaired version of
# the source article's CNN that works for any input size. Replace each
# `raise NotImplementedError(...)` with your code and run the `check(...)` cell below it: it
# compares your function with the course's reference on several inputs, edge cases included
# (a class that never occurs, a class never predicted), and tells you the first mismatch.
# Write the metrics with tensor operations (`==`, `&`, `.sum`, indexing, `torch.where`), not
# with `sklearn.metrics` or `course_lib.metrics`: the point is to write them yourself. Labels
# are `torch.long` tensors `(N,)` with classes `0 .. num_classes - 1`. At the end, your
# functions evaluate a CNN trained on the digits.

# %% tags=["setup"]
# Setup. On Colab this installs course_lib from the course repository (Colab keeps its own
# torch and ipywidgets); everywhere else it does nothing.
import sys

if "google.colab" in sys.modules:
    get_ipython().run_line_magic("pip", "install --quiet git+https://github.com/nn-from-scratch/course")

# %%
import torch
import torch.nn as nn

from course_lib import data
from course_lib.check import check, use
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
# Rows are true classes, columns predicted classes (scikit-learn's convention); the diagonal
# holds the correct predictions. Return a `torch.long` tensor `(num_classes, num_classes)`,
# **also when some class never occurs** in `y_true` or `y_pred`: its row or column is then zero.

# %%
def confusion_matrix(y_true: torch.Tensor, y_pred: torch.Tensor, num_classes: int) -> torch.Tensor:
    """y_true, y_pred (N,) long in 0..num_classes-1 -> counts (num_classes, num_classes) long,
    rows = true class, columns = predicted class."""
    raise NotImplementedError("Exercise 07.1: replace this line with your code")


# %%
check("07.1", confusion_matrix)

# %% [markdown]
# ## 07.2 Precision, recall and F1 per class
#
# From $C$, for each class $k$: the true positives $TP_k = C_{kk}$, the number of samples
# predicted as $k$, $P_k = \sum_i C_{ik}$ (column sum), and the number of samples truly of class
# $k$ (its *support*), $S_k = \sum_j C_{kj}$ (row sum). Then
#
# $$\text{precision}_k = \frac{TP_k}{P_k}, \qquad \text{recall}_k = \frac{TP_k}{S_k}, \qquad
# F1_k = \frac{2\, TP_k}{P_k + S_k} = \frac{2\, \text{precision}_k \cdot \text{recall}_k}{\text{precision}_k + \text{recall}_k} .$$
#
# A class that is never predicted has $P_k = 0$ and its precision is $0/0$; a class that never
# occurs has recall $0/0$; a class that is neither has F1 $0/0$. Every such $0/0$ takes the value
# `zero_division` (0.0 or 1.0) — never NaN. Careful: when $TP_k = 0$ but $P_k, S_k > 0$,
# precision and recall are both 0 and the right-hand form of F1 is $0/0$, while the left-hand
# form correctly gives 0.
#
# Return `(precision, recall, f1)`, three `float64` tensors `(num_classes,)`.

# %%
def precision_recall_f1(y_true: torch.Tensor, y_pred: torch.Tensor, num_classes: int, zero_division: float = 0.0):
    """y_true, y_pred (N,) long -> (precision, recall, f1), each float64 (num_classes,)."""
    raise NotImplementedError("Exercise 07.2: replace this line with your code")


# %%
check("07.2", precision_recall_f1)

# %% [markdown]
# ## 07.3 Macro, micro and weighted F1
#
# One number for all classes, three ways (with `zero_division = 0`):
#
# * **macro**: the plain mean of the $K$ per-class scores, $\frac1K \sum_k F1_k$. Every class
#   counts the same, a rare one as much as a frequent one — and so does a class that never
#   occurs and is never predicted (its $F1_k$ is `zero_division` = 0, as in scikit-learn with
#   `labels=range(K)`).
# * **micro**: F1 of the counts summed over the classes,
#   $\frac{2 \sum_k TP_k}{\sum_k P_k + \sum_k S_k}$. Every *sample* counts the same. With one
#   label per sample $\sum_k P_k = \sum_k S_k = N$, so micro F1 is the accuracy.
# * **weighted**: the per-class $F1_k$ averaged with weights $S_k / N$ (the class's share of
#   true samples).
#
# Return `(macro, micro, weighted)` as three Python floats. You may use your
# `precision_recall_f1` from above.

# %%
def f1_averages(y_true: torch.Tensor, y_pred: torch.Tensor, num_classes: int):
    """y_true, y_pred (N,) long -> (macro F1, micro F1, weighted F1), three floats."""
    raise NotImplementedError("Exercise 07.3: replace this line with your code")


# %%
check("07.3", f1_averages)

# %% [markdown]
# ## 07.4 Repair the article's CNN for any input size
#
# The source article prints this CNN (indentation restored):
#
# ```python
# class CNN(nn.Module):
#     def __init__(self):
#         super(CNN, self).__init__()
#         self.conv1 = nn.Conv2d(1, 32, kernel_size=3, stride=1, padding=1)
#         self.conv2 = nn.Conv2d(32, 64, kernel_size=3, stride=1, padding=1)
#         self.pool = nn.MaxPool2d(kernel_size=2, stride=2)
#         self.fc1 = nn.Linear(64 * 5 * 5, 128)
#         self.fc2 = nn.Linear(128, 10)
#
#     def forward(self, x):
#         x = self.pool(F.relu(self.conv1(x)))
#         x = self.pool(F.relu(self.conv2(x)))
#         x = x.view(-1, 64 * 5 * 5)
#         x = F.relu(self.fc1(x))
#         x = self.fc2(x)
#         return x
# ```
#
# `64 * 5 * 5` is right only for inputs of 20×20 (or 21, 22, 23 pixels) per side. Write
# `make_cnn(in_channels, input_hw)` that returns this network, **with the same layers**, for
# inputs of shape `(N, in_channels, H, W)` with `input_hw = (H, W)`, $H, W \ge 4$: compute the
# number of inputs of `fc1` from $H$ and $W$ with the output-size formula
#
# $$H_{\text{out}} = \left\lfloor \frac{H + 2p - k}{s} \right\rfloor + 1$$
#
# (convolution: $k = 3$, $p = 1$, $s = 1$; pooling: $k = 2$, $p = 0$, $s = 2$), and flatten
# without touching the batch dimension. The check builds your network for several input shapes,
# runs it on a batch and compares the output's shape, which must be `(N, 10)`, and the number of
# parameters (which depends on the size of `fc1`).

# %%
import torch.nn.functional as F


def make_cnn(in_channels: int, input_hw) -> nn.Module:
    """The article's CNN for inputs (N, in_channels, H, W), input_hw = (H, W): output (N, 10)."""
    raise NotImplementedError("Exercise 07.4: replace this line with your code")


# %%
check("07.4", make_cnn)

# %% [markdown]
# ## Putting them to work
#
# Your network (or the reference, where yours does not pass yet) trains on the 8×8 digits for a
# few epochs, and your metrics evaluate it on the test images. Expect a test accuracy above 0.95
# after four epochs; the confusion matrix shows which digits it still mixes up.

# %%
build = use("07.4", make_cnn)
cm_fn = use("07.1", confusion_matrix)
averages = use("07.3", f1_averages)

digits = data.digits()  # X (N, 64) in [0, 1], y (N,)
X_train, X_test = digits.X_train.reshape(-1, 1, 8, 8), digits.X_test.reshape(-1, 1, 8, 8)
torch.manual_seed(0)
model = build(1, (8, 8))
optimizer = torch.optim.Adam(model.parameters(), lr=0.003)
order = torch.Generator().manual_seed(0)
for epoch in range(4):
    for idx in torch.randperm(len(X_train), generator=order).split(32):
        optimizer.zero_grad()
        loss = F.cross_entropy(model(X_train[idx]), digits.y_train[idx])
        loss.backward()
        optimizer.step()
with torch.no_grad():
    predicted = model(X_test).argmax(dim=1)
cm = cm_fn(digits.y_test, predicted, 10)
macro, micro, weighted = averages(digits.y_test, predicted, 10)
print(cm)
print(f"test accuracy (micro F1) {micro:.3f}, macro F1 {macro:.3f}, weighted F1 {weighted:.3f}")
off_diagonal = cm - torch.diag(cm.diag())
true_class, predicted_class = divmod(int(off_diagonal.argmax()), 10)
print(f"most frequent mistake: {int(off_diagonal.max())} test images of {true_class} predicted as {predicted_class}")
