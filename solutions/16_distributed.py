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
# # 16 · Exercises: scaling out training
#
# Student sheet: <a href="https://colab.research.google.com/github/nn-from-scratch/course/blob/main/exercises/16_distributed.ipynb" target="_parent"><img src="https://colab.research.google.com/assets/colab-badge.svg" alt="Open In Colab"/></a>
# · with solutions: [solutions/16_distributed.ipynb](https://colab.research.google.com/github/nn-from-scratch/course/blob/main/solutions/16_distributed.ipynb)
#
# Four exercises on the lecture `notebooks/16_distributed.ipynb`, all on **simulated workers**:
# plain Python lists of tensors stand for the processes, so nothing here starts `torchrun` and
# every answer is exact. You write a **ring all-reduce** (reduce-scatter, then all-gather),
# **derive** the gradient that `DistributedDataParallel` applies when the workers' shards
# differ in size, **predict** the time of an all-reduce from latency and bandwidth, and **debug**
# a data-parallel training loop that runs without an error and still trains the wrong model.
#
# Replace each `raise NotImplementedError(...)` with your code and run the `check(...)` cell below
# it: it compares your function with the course's reference on several inputs (one worker,
# chunks of unequal sizes, shards of one sample, a single weight) and reports the first mismatch.
# When your answer looks like a typical mistake, the check names it and says which idea it gets
# wrong; each further failure shows one more hint, and `hint("16.2")` (with any question's
# number) asks for the next hint without running the check. Use plain tensor operations, not
# `course_lib.distributed`: the point is to write them yourself. Tensors are `float64`.

# %% tags=["setup"]
# Setup. On Colab this installs course_lib from the course repository (Colab keeps its own
# torch and ipywidgets); everywhere else it does nothing.
import sys

if "google.colab" in sys.modules:
    get_ipython().run_line_magic("pip", "install --quiet git+https://github.com/nn-from-scratch/course")

# %%
import torch

from course_lib.check import check, hint, use
from course_lib.device import seed_everything

seed_everything(0)
torch.set_num_threads(1)  # small tensors: one thread is faster

# %% [markdown]
# ## 16.1 Ring all-reduce on simulated workers (2 points)
#
# After the backward pass every worker holds its own gradient; an **all-reduce** with SUM leaves
# on every worker the elementwise sum of the $p$ workers' tensors, as
# `torch.distributed.all_reduce(t)` does. The **ring** algorithm does it without any worker
# receiving more than about twice the tensor's size: the workers sit in a ring, worker $r$ only
# ever sends to worker $(r + 1) \bmod p$, and each tensor of $n$ values is cut into $p$ chunks
# $c_0, \dots, c_{p-1}$ with `torch.tensor_split(t, p)` (sizes $\lceil n/p \rceil$ or
# $\lfloor n/p \rfloor$, the larger first).
#
# 1. **Reduce-scatter**, steps $s = 0, \dots, p-2$: every worker $r$ sends its chunk
#    $(r - s) \bmod p$ to worker $r + 1$, which **adds** it to its own chunk of that index. Chunk
#    $(r - s) \bmod p$ of worker $r$ then holds the sum of $s + 1$ workers' values; after the last
#    step worker $r$ holds the complete sum of chunk $(r + 1) \bmod p$.
# 2. **All-gather**, steps $s = 0, \dots, p-2$: every worker $r$ sends its chunk
#    $(r + 1 - s) \bmod p$ (complete) to worker $r + 1$, which **overwrites** its chunk of that index.
#
# All the sends of one step happen at the same time: collect the $p$ messages of a step (as
# clones) before delivering any. Write `ring_allreduce(tensors)`: `tensors` is a list of $p$
# tensors of shape $(n,)$ (do not modify them); return the list of the $p$ workers' tensors after
# the all-reduce, each of shape $(n,)$.

# %%
def ring_allreduce(tensors: list) -> list:
    """p tensors (n,), one per simulated worker -> p tensors (n,), each the elementwise sum, by a ring
    all-reduce (reduce-scatter, then all-gather)."""
    ### BEGIN SOLUTION 16.1
    p = len(tensors)
    chunks = [list(t.clone().tensor_split(p)) for t in tensors]  # chunks[r][c]: worker r's chunk c (views)
    for s in range(p - 1):  # reduce-scatter
        sent = [chunks[r][(r - s) % p].clone() for r in range(p)]
        for r in range(p):
            chunks[(r + 1) % p][(r - s) % p] += sent[r]
    for s in range(p - 1):  # all-gather
        sent = [chunks[r][(r + 1 - s) % p].clone() for r in range(p)]
        for r in range(p):
            chunks[(r + 1) % p][(r + 1 - s) % p] = sent[r]
    return [torch.cat(c) for c in chunks]
    ### END SOLUTION


# %%
check("16.1", ring_allreduce)

# %% [markdown]
# Your ring on 4 workers with 10 values each, next to the plain sum; and what each worker sends.
# At each of the $2(p-1)$ steps a worker sends one chunk of about $n/p$ values, so it sends
# $2\,\frac{p-1}{p}\,n$ values in all: never more than twice the tensor, however many workers
# join (`course_lib.distributed.ring.ring_bytes_per_worker` gives the same count in bytes).

# %%
from course_lib.distributed.ring import ring_bytes_per_worker

allreduce = use("16.1", ring_allreduce)
gen = torch.Generator().manual_seed(0)
workers = [torch.randn(10, generator=gen, dtype=torch.float64) for _ in range(4)]
ring_error = max(float((t - torch.stack(workers).sum(0)).abs().max()) for t in allreduce(workers))
print(f"4 workers, 10 values: max |ring - sum| = {ring_error:.1e}")
gpt2_grad_bytes = 4 * 124_337_664  # GPT-2 small's gradients in float32
for p in (2, 8, 64):
    print(f"p = {p:2d}: each worker sends {ring_bytes_per_worker(gpt2_grad_bytes, p) / 1e6:6.0f} MB "
          f"of a {gpt2_grad_bytes / 1e6:.0f} MB gradient")

# %% [markdown]
# ## 16.2 The gradient data parallelism applies (2 points)
#
# A linear model $\hat y = X w$ with $w \in \mathbb{R}^{D}$ is trained with data parallelism on
# $p$ workers. Worker $r$ holds a shard $X_r \in \mathbb{R}^{n_r \times D}$, $y_r \in
# \mathbb{R}^{n_r}$ and differentiates the mean squared error **of its own shard**,
#
# $$L_r(w) = \frac{1}{n_r}\,\lVert X_r w - y_r \rVert^2 .$$
#
# `DistributedDataParallel` then all-reduces the gradients and divides by the number of
# workers, so every worker applies the same gradient. **Derive** $\nabla_w L_r$ by hand (the
# check compares with autograd) and write `ddp_gradient(w, xs, ys)`: `w` is $(D,)$, `xs` and `ys`
# are lists of the $p$ shards $X_r$ and $y_r$ (their sizes $n_r$ may differ); return the $(D,)$
# gradient every worker applies. Is it the gradient of the mean squared error over all samples?

# %%
def ddp_gradient(w: torch.Tensor, xs: list, ys: list) -> torch.Tensor:
    """w (D,), xs: p shards (n_r, D), ys: p shards (n_r,) -> the (D,) gradient DDP applies: each worker's
    gradient of its own mean squared error, averaged over the workers."""
    ### BEGIN SOLUTION 16.2
    local = [2.0 / x.shape[0] * x.T @ (x @ w - y) for x, y in zip(xs, ys)]  # grad of (1/n_r)||X_r w - y_r||^2
    return torch.stack(local).mean(dim=0)  # all-reduce (sum), then divide by the world size
    ### END SOLUTION


# %%
check("16.2", ddp_gradient)

# %% [markdown]
# The full-batch gradient of $\frac{1}{n}\lVert X w - y\rVert^2$ over all $n = \sum_r n_r$
# samples, next to the gradient DDP applies, for two workers whose shards have equal and then
# unequal sizes (12 samples in all).

# %%
ddp_grad = use("16.2", ddp_gradient)
gen = torch.Generator().manual_seed(1)
x_all, y_all = torch.randn(12, 3, generator=gen, dtype=torch.float64), torch.randn(12, generator=gen, dtype=torch.float64)
w_now = torch.randn(3, generator=gen, dtype=torch.float64)
full_grad = 2.0 / 12 * x_all.T @ (x_all @ w_now - y_all)
shard_gaps = {}
for sizes in ((6, 6), (9, 3)):
    xs, ys = list(x_all.split(list(sizes))), list(y_all.split(list(sizes)))
    shard_gaps[sizes] = float((ddp_grad(w_now, xs, ys) - full_grad).abs().max())
    print(f"shards of {sizes[0]} and {sizes[1]} samples: max |DDP gradient - full-batch gradient| = {shard_gaps[sizes]:.1e}")

# %% [markdown]
# ## 16.3 Predict the time of a ring all-reduce (1 point)
#
# A common model of communication (the "alpha-beta" model) says that sending a message of $m$
# bytes over one link takes $\alpha + m/\beta$ seconds: a fixed **latency** $\alpha$ plus the
# size divided by the **bandwidth** $\beta$ (bytes per second). In the ring of 16.1 all the
# links work at the same time, so one step of the ring costs what one message costs.
#
# **Before measuring anything**, derive the time of a ring all-reduce of a tensor of `n_bytes`
# bytes on `world_size` workers, with `bandwidth` in bytes per second and `latency` in seconds,
# and return it as a `float` (ignore the time of the additions). The cell after the check puts
# numbers on it: GPT-2 small's gradients over a fast and a slow network.

# %%
def ring_allreduce_time(n_bytes: float, world_size: int, bandwidth: float, latency: float) -> float:
    """Seconds of a ring all-reduce of n_bytes over world_size workers (alpha-beta model)."""
    ### BEGIN SOLUTION 16.3
    p = world_size
    steps = 2 * (p - 1)  # reduce-scatter, then all-gather
    return steps * (latency + n_bytes / p / bandwidth)  # one chunk of n / p bytes per step
    ### END SOLUTION


# %%
check("16.3", ring_allreduce_time)

# %% [markdown]
# Your model (or the reference's) for GPT-2 small's float32 gradients (about 497 MB) on links
# of 100 GB/s with 2 µs of latency, and of 1.25 GB/s (10 Gbit/s Ethernet) with 50 µs: the time
# tends to $2n/\beta$ as workers are added, while the latency term grows with $p$.

# %%
predict_time = use("16.3", ring_allreduce_time)
for name, bandwidth, latency in (("100 GB/s, 2 us", 100e9, 2e-6), ("1.25 GB/s, 50 us", 1.25e9, 50e-6)):
    times = {p: predict_time(gpt2_grad_bytes, p, bandwidth, latency) for p in (2, 8, 64, 512)}
    print(f"{name:16s}: " + ", ".join(f"p = {p}: {t * 1e3:.1f} ms" for p, t in times.items()))

# %% [markdown]
# ## 16.4 Debug a simulated data-parallel training loop (2 points)
#
# Data parallelism promises that $p$ workers, each with $1/p$ of the batch, train exactly the
# model that one process trains with the whole batch. A colleague simulated it for the linear
# model of 16.2 (equal shards: $n$ divisible by $p$), with plain gradient descent on the mean
# squared error; the listing runs, but its parameters differ from those of one process:

# %%
def buggy_data_parallel(w0, x, y, world_size, lr, steps):
    """w0 (D,), x (n, D), y (n,) -> w (D,) after `steps` steps on `world_size` simulated workers."""
    xs, ys = x.chunk(world_size), y.chunk(world_size)  # the workers' shards
    w = w0.clone()
    for _ in range(steps):
        grads = []
        for rank in range(world_size):
            x_r, y_r = xs[0], ys[0]
            grads.append(2.0 / x_r.shape[0] * x_r.T @ (x_r @ w - y_r))
        total = torch.stack(grads).sum(dim=0)  # the all-reduce
        w = w - lr * total
    return w


# %% [markdown]
# Find the bugs (compare, for one step, the combined gradient with the full-batch gradient of the
# same $w$) and write the repaired `data_parallel` with the same signature: it must return the
# parameters after `steps` steps, and they must equal those of gradient descent with learning
# rate `lr` on the whole batch. Keep the structure: each worker computes the gradient of its own
# shard, and the workers only share gradients.

# %%
def data_parallel(w0, x, y, world_size, lr, steps):
    """w0 (D,), x (n, D), y (n,) -> w (D,) after `steps` steps on `world_size` simulated workers."""
    ### BEGIN SOLUTION 16.4
    xs, ys = x.chunk(world_size), y.chunk(world_size)
    w = w0.clone()
    for _ in range(steps):
        grads = []
        for rank in range(world_size):
            x_r, y_r = xs[rank], ys[rank]  # each worker reads its own shard
            grads.append(2.0 / x_r.shape[0] * x_r.T @ (x_r @ w - y_r))
        total = torch.stack(grads).sum(dim=0)
        w = w - lr * total / world_size  # DDP averages: sum / world size
    return w
    ### END SOLUTION


# %%
check("16.4", data_parallel)

# %% [markdown]
# ## Putting them to work
#
# Your training loop (or the reference's) on 1, 2, 3 and 4 simulated workers against one process
# with the whole batch of 12 samples, 20 steps, and the gradients averaged by your ring
# all-reduce of 16.1 instead of `torch.stack(...).sum(0)`: the largest parameter difference.

# %%
train = use("16.4", data_parallel)
gen = torch.Generator().manual_seed(2)
x_train = torch.randn(12, 3, generator=gen, dtype=torch.float64)
y_train = x_train @ torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64) + 0.1 * torch.randn(12, generator=gen, dtype=torch.float64)
w_start = torch.zeros(3, dtype=torch.float64)
w_one = w_start.clone()
for _ in range(20):
    w_one = w_one - 0.1 * 2.0 / 12 * x_train.T @ (x_train @ w_one - y_train)


def ring_data_parallel(w0, x, y, world_size, lr, steps):
    """The data-parallel loop whose gradients are summed by the ring all-reduce of 16.1."""
    w = w0.clone()
    for _ in range(steps):
        local = [2.0 / x_r.shape[0] * x_r.T @ (x_r @ w - y_r) for x_r, y_r in zip(x.chunk(world_size), y.chunk(world_size))]
        w = w - lr * allreduce(local)[0] / world_size  # every worker holds the same sum
    return w


parallel_gaps = {}
for p in (1, 2, 3, 4):
    parallel_gaps[p] = max(float((train(w_start, x_train, y_train, p, 0.1, 20) - w_one).abs().max()),
                           float((ring_data_parallel(w_start, x_train, y_train, p, 0.1, 20) - w_one).abs().max()))
    print(f"{p} worker(s): max |w (data parallel) - w (one process)| after 20 steps = {parallel_gaps[p]:.1e}")
