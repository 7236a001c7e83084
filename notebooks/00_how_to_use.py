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
# # 00 · How to use this course
#
# <a href="https://colab.research.google.com/github/nn-from-scratch/course/blob/main/notebooks/00_how_to_use.ipynb" target="_parent"><img src="https://colab.research.google.com/assets/colab-badge.svg" alt="Open In Colab"/></a>
#
# This course builds deep learning from the ground up: a single neuron, then layers, losses,
# backpropagation and optimisers, then convolution, pooling and a convolutional network trained end
# to end (chapters 01–07), then training deep networks, recurrent networks and their gates
# (chapters 08–10), attention, the Transformer and a small GPT (chapters 11–13), what large models
# cost, how they are served and how their training scales out (chapters 14–16), and a capstone that
# rebuilds a real pretrained Transformer (chapter 17). Every idea is **written from
# scratch** in a small library, `course_lib`, **checked numerically against PyTorch**, and **shown
# in an interactive figure** you can play with. This first notebook explains how the pieces fit
# together: where to run the notebooks, the few tensor facts every chapter relies on, how to read
# the library's code, how exercises give you instant feedback, and where the course's topics come
# from.

# %% tags=["setup"]
# Setup. On Colab this installs course_lib from the course repository (Colab keeps its own
# torch and ipywidgets); everywhere else it does nothing.
import sys

if "google.colab" in sys.modules:
    get_ipython().run_line_magic("pip", "install --quiet git+https://github.com/nn-from-scratch/course")

# %% [markdown]
# ## 1. Where to run it
#
# | where | how | notes |
# |---|---|---|
# | your computer | `make lab` in the repository (creates `.venv`, installs the pinned versions, opens JupyterLab) | works offline once installed |
# | Colab | the "Open in Colab" badge at the top of each notebook | the setup cell above installs `course_lib`; Colab's own PyTorch is kept |
# | Binder | the "Launch Binder" badge in the README | a CPU-only environment built from `environment.yml` |
#
# Every notebook runs on a CPU in well under a minute, needs no download and is **seeded**: two
# runs print the same numbers. If a GPU is present (`cuda` or Apple's `mps`), `get_device()` picks
# it; the chapters default to the CPU so that everyone sees the same numbers.

# %%
import torch

from course_lib.device import get_device, seed_everything
from course_lib.show import show_source

seed_everything(0)
print("PyTorch", torch.__version__, "| device available:", get_device())

# %% [markdown]
# ## 2. Tensors and shapes
#
# A tensor is an $n$-dimensional array. Almost every bug in deep-learning code is a **shape** bug,
# so the course writes the shape next to every symbol. A batch of $N$ inputs with $D$ features each
# is a matrix $X \in \mathbb{R}^{N \times D}$; one row $x_i \in \mathbb{R}^{D}$ is one example.

# %%
X = torch.arange(12, dtype=torch.float64).reshape(3, 4)  # N = 3 examples, D = 4 features
print(X)
print("shape:", tuple(X.shape), "| dtype:", X.dtype, "| one row:", X[1])

# %% [markdown]
# We compute in `float64` whenever we compare with PyTorch: with 53 bits of mantissa, two correct
# implementations agree to about $10^{-15}$, so any larger difference is a real bug, not rounding.
#
# **The matrix product.** For $X \in \mathbb{R}^{N \times D_{in}}$ and a weight matrix
# $W \in \mathbb{R}^{D_{out} \times D_{in}}$ (PyTorch's `nn.Linear` stores weights this way), the
# product $Y = X W^\top \in \mathbb{R}^{N \times D_{out}}$ has entries
#
# $$Y_{ij} = \sum_{k=1}^{D_{in}} X_{ik}\, W_{jk}, \qquad i = 1..N,\; j = 1..D_{out}.$$
#
# The inner sizes must agree ($D_{in}$); the outer ones give the result's shape. Try it below:
# pick sizes and an output element, and see which row and column produce it.

# %%
from course_lib.widgets.shapes import MatmulExplorer

matmul = MatmulExplorer()
matmul

# %% [markdown]
# The figure is computed by `course_lib` and the same numbers come out of PyTorch:

# %%
Xs, Wt, Y = matmul.product(N=3, D_in=4, D_out=2)
assert torch.equal(Y, Xs @ Wt)
assert torch.equal(Y, torch.nn.functional.linear(Xs, Wt.T))  # F.linear computes X W^T
print("Y =\n", Y)

# %% [markdown]
# **Broadcasting.** When shapes differ, PyTorch aligns them from the right and stretches
# dimensions of size 1. Adding a bias $b \in \mathbb{R}^{D_{out}}$ to $Y \in \mathbb{R}^{N \times
# D_{out}}$ adds $b$ to every row. A mismatch is an error, and its message names both shapes:

# %%
b = torch.tensor([10.0, -10.0], dtype=torch.float64)
print((Y + b).shape)
try:
    Y + torch.ones(3, dtype=torch.float64)
except RuntimeError as err:
    print("RuntimeError:", err)

# %% [markdown]
# ## 3. The helper library: read it, don't copy it
#
# Notebooks never paste library code into cells. They *show* it, straight from the source file, so
# what you read is exactly what runs. Every public function checks its inputs and says what is
# wrong in terms of shapes. Here is the checker every function uses:

# %%
from course_lib.validate import ShapeError, expect

show_source(expect)

# %%
try:
    expect("my_layer", "W", torch.zeros(3, 5), ("D_out", "D_in"), {"D_in": 4})
except ShapeError as err:
    print("ShapeError:", err)

# %% [markdown]
# ## 4. Exercises and instant feedback
#
# Each chapter from 01 on has an exercise sheet in `exercises/`. You write a function where the
# sheet says `raise NotImplementedError(...)`, then run the `check(...)` cell below it. The check
# calls your function on several inputs (edge cases included) and compares with the reference in
# `course_lib`. It never stops the notebook: it prints one of three verdicts. A failure says three
# things. First, when your outputs match one of the typical mistakes the course knows for that
# question, it names it and the idea it gets wrong ("This looks like …"). Then the first input it
# got wrong, with shapes and the size of the error, never the expected values. Then a hint: the
# first failure shows the idea, each further failure of the same question one more tier (the
# shapes, then a nudge towards the code), and `hint("01.1")` asks for the next tier without another
# attempt. No hint gives the answer away.
#
# Here is question 01.1 of the next chapter (a linear layer, $Y = XW^\top + b$) answered three
# ways: not yet, wrongly (the weight matrix used without transposing it), and correctly.

# %%
from course_lib.check import check, hint, use


def linear_forward(x, W, b):
    raise NotImplementedError("Exercise 01.1: replace this line with your code")


check("01.1", linear_forward)


def linear_forward(x, W, b):
    return x @ W + b  # forgot the transpose


check("01.1", linear_forward)


hint("01.1")  # the next tier, without another attempt


def linear_forward(x, W, b):
    return torch.einsum("nk,jk->nj", x, W) + b


check("01.1", linear_forward)

# %% [markdown]
# When a later cell needs a function you have not finished, `use(...)` hands back your version if
# it passes and the `course_lib` reference otherwise, and says which one it took, so "Run All"
# always reaches the end of a sheet. Instructors grade the same questions in batch with hidden
# inputs (see `docs/instructors.md`).

# %%
layer = use("01.1", linear_forward)

# %% [markdown]
# ## 5. Where the topics come from: two source articles
#
# The course grew out of two short articles written in Chinese. They are not reproduced in this
# repository, and they carry no author or date, so the course names them by their subject:
#
# * **the talent article**, working title *The talent needed, and how to train it, in the era of
#   large AI models as a service*. It surveys forward propagation, loss functions,
#   backpropagation, optimisers, convolution and pooling, recurrent networks, the Transformer and
#   evaluation metrics, prints four PyTorch listings (a training loop, a CNN, an RNN, a
#   Transformer), and discusses what large models cost in compute, parameters and data.
# * **the employment article**, working title *The social impact of large AI models: artificial
#   intelligence and employment*. It covers CNNs, the gates of LSTM and GRU cells and
#   self-attention, prints three listings (a CNN, an LSTM classifier, an encoder-decoder
#   Transformer), and closes on how large models affect jobs.
#
# The articles name the topics; the course teaches each of them from scratch and checks it against
# PyTorch. **Their listings contain bugs**, and the chapters repair them one at a time: chapter 04
# repairs the talent article's training loop (it iterates over a `dataloader` that is never
# defined); chapter 06 measures why the employment article's CNN flattens the wrong size
# (`64 * 5 * 5`, where 28×28 images leave 7×7 feature maps); chapter 07 repairs the CNNs of both
# articles; chapter 09 runs the talent article's RNN as printed (it fails twice: a missing
# attribute, then an initial state built for a batch of one) and repairs it beside the employment
# article's LSTM, which gets both right; chapter 12 runs the two articles' Transformers as printed
# and repairs them one bug at a time. **Their reference lists are no better:** the talent
# article's 47 numbered entries mix real, correctly cited works with real works under wrong
# authors, venues or identifiers, and with works that could not be found at all; the employment
# article has no reference list. An appendix, [The two source articles and their
# references](../docs/source_articles.md), examines every entry and gives the correct citation
# where one exists. Whenever a chapter quotes an article, it says which of the two it means.
#
# **What the course contains.**
#
# | chapters | topic | status |
# |---|---|---|
# | 00–07 | how to use the course, forward propagation, losses, backpropagation, optimisation, convolution, pooling, a CNN end to end | written |
# | 08 | training deep networks: initialisation, normalisation, regularisation | written |
# | 09–10 | recurrent networks and backpropagation through time; LSTM and GRU | written |
# | 11–13 | attention, Transformers, a small GPT | written |
# | 14–16 | the cost of large models, serving them (`course serve`), scaling training out (`torch.distributed`) | written |
# | 17 | capstone: a real pretrained model (all-MiniLM-L6-v2) rebuilt from scratch, offline | written |

# %% [markdown]
# ## Summary
#
# - Run the notebooks locally (`make lab`), on Colab or on Binder; everything is offline and seeded.
# - Shapes come first: $X \in \mathbb{R}^{N\times D_{in}}$, $W \in \mathbb{R}^{D_{out}\times D_{in}}$, $Y = XW^\top \in \mathbb{R}^{N\times D_{out}}$.
# - Library code is shown with `show_source`, never copied; bad input raises a `ShapeError` that names the function and both shapes.
# - Exercises: write the function, run `check("NN.k", fn)`, read the verdict: the mistake it
#   recognises, the first mismatch, and one more hint tier per failed attempt (or `hint("NN.k")`).
# - The topics come from two source articles, *the talent article* and *the employment article*; their listings contain bugs that the chapters repair, and [the appendix](../docs/source_articles.md) checks every reference they give.
# - Chapters 00–17: from one neuron to a small GPT, then the cost, serving and scaling out of large models, and a capstone with a real pretrained model.
#
# Next: **01 · Forward propagation**. Key terms of every chapter, with their Chinese names, are in
# `docs/glossary.md`.

# %% [markdown]
# ### Self-check of this notebook's widget

# %%
print(matmul.self_check())
