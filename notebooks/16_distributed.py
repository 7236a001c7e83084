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
# # 16 · Scaling out training
#
# <a href="https://colab.research.google.com/github/nn-from-scratch/course/blob/main/notebooks/16_distributed.ipynb" target="_parent"><img src="https://colab.research.google.com/assets/colab-badge.svg" alt="Open In Colab"/></a>
#
# Chapter 14 showed that training a large model takes far more compute and memory than one device
# has. The standard first answer is **data parallelism**: $P$ worker processes each hold a copy of
# the model, each computes the gradient on its own share of the batch, and the workers **average
# their gradients** before every optimiser step, so that all copies stay identical. This chapter
# does it for real with PyTorch's `torch.distributed` and `DistributedDataParallel` (DDP) on the
# CPU backend gloo, with two worker processes on this machine. We check that two workers with half
# the batch each compute *exactly* what one process computes with the whole batch, and find the
# cases where they do not. Then we write the communication step ourselves, a **ring all-reduce**
# with point-to-point `send`/`recv`, check it against `dist.all_reduce`, count the bytes it moves,
# and price it with a latency-bandwidth model. We end with what changes on a real cluster: the
# same script on several machines, and sharding the training state (ZeRO, FSDP) with chapter 14's
# memory arithmetic.

# %% tags=["setup"]
# Setup. On Colab this installs course_lib from the course repository (Colab keeps its own
# torch and ipywidgets); everywhere else it does nothing.
import sys

if "google.colab" in sys.modules:
    get_ipython().run_line_magic("pip", "install --quiet git+https://github.com/nn-from-scratch/course")

# %%
import tempfile
import time

import matplotlib.pyplot as plt
import torch

from course_lib import cost
from course_lib.compare import compare
from course_lib.device import seed_everything
from course_lib.distributed import ddp, ring, zero
from course_lib.show import record, show_source
from course_lib.widgets.allreduce import AllReduceExplorer

gen = seed_everything(0)
NOTEBOOK_START = time.perf_counter()

# %% [markdown]
# ## 1. Data parallelism: why half the batch on each of two workers is the same computation
#
# Take a batch of $B$ examples $(x_i, y_i)$ and the **mean** loss
# $L(\theta) = \frac{1}{B}\sum_{i=1}^{B} \ell(f_\theta(x_i), y_i)$. Cut the batch into $P$ shards
# $S_1..S_P$ of equal size $B/P$, one per worker, and let worker $r$ compute the mean loss of its
# shard, $L_r(\theta) = \frac{P}{B}\sum_{i \in S_r} \ell_i$. Then
#
# $$L = \frac{1}{P}\sum_{r=1}^{P} L_r, \qquad
#   \nabla_\theta L = \frac{1}{P}\sum_{r=1}^{P} \nabla_\theta L_r, \qquad
#   \nabla_\theta L_r \in \mathbb{R}^{N}\ (N \text{ parameters}).$$
#
# The full-batch gradient is the **average of the workers' gradients**: an all-reduce (a sum over
# workers whose result every worker receives) followed by a division by $P$. If every replica
# starts from the same weights (DDP broadcasts rank 0's weights when it wraps the model) and
# applies the same optimiser step to the same averaged gradient, the replicas stay identical and
# equal to the one-process model, step after step. DDP performs this averaging *during*
# `backward()`: gradients are grouped into buckets and each bucket is all-reduced as soon as it is
# ready, overlapping communication with the rest of the backward pass (Li et al., VLDB 2020).
#
# The derivation also says when it fails: whenever the shards' losses do not average to the
# batch's loss. With **unequal shards** of sizes $b_r$, $\frac{1}{P}\sum_r L_r$ weights every
# example of a small shard more than one of a large shard; with a **sum** loss,
# $\frac{1}{P}\sum_r \nabla L_r^{\text{sum}} = \frac{1}{P}\nabla L^{\text{sum}}$, i.e. the learning
# rate is silently divided by $P$; and **batch normalisation** (chapter 08) normalises with the
# statistics of the shard, not of the batch, so even the forward pass differs.
#
# ### The script and the launch
#
# Worker processes cannot be forked from inside a Jupyter kernel reliably (multiprocessing's
# spawn start method must re-import the `__main__` module, which a notebook does not have), so we
# do what one does on a cluster: write a script and start it with PyTorch's launcher `torchrun`.
# `torchrun --standalone --nproc-per-node 2` starts two processes on this machine, gives each its
# `RANK`, `WORLD_SIZE` and a rendezvous address in environment variables, and waits for them. The
# script only imports the chapter's entry point:

# %%
print(ddp.SCRIPT_TEXT)
show_source(ddp.train_variant)

# %% [markdown]
# `main` (in `course_lib/distributed/ddp.py`) calls `dist.init_process_group("gloo")`, then runs
# every experiment of this chapter in one launch, since starting the processes is the slow part:
# five data-parallel variants (SGD with momentum on a float64 MLP $8 \to 32 \to 1$), the ring
# all-reduce against `dist.all_reduce`, and timings. It ends with a barrier and
# `dist.destroy_process_group()`, so that no worker closes its connections while another still
# uses them and gloo's threads are stopped before the interpreter exits; rank 0 writes the results
# as JSON. `launch` keeps everything on the loopback interface (`--local-addr=127.0.0.1`,
# `GLOO_SOCKET_IFNAME`).

# %%
workdir = tempfile.TemporaryDirectory()
script = ddp.write_script(workdir.name)
result = ddp.launch(script, nproc=2, timeout=300)
run = result["launch"]
stamps = result["stamps"]
print("ran:", run["command"])
print(f"backend {result['backend']}, world size {result['world_size']}, torch {result['torch']}")
record("torchrun launch, wall time (start-up, all experiments, shut-down)", run["wall_s"], "s", ".1f")
print(f"  launcher start -> first worker in main(): {min(stamps['entered']) - run['start']:.1f} s "
      f"(Python and torch imported by the launcher, which then starts the workers)")
print(f"  -> every worker has imported torch and torch._dynamo (DDP's constructor needs it): "
      f"{max(stamps['imported']) - min(stamps['entered']):.1f} s")
print(f"  -> every worker past init_process_group: {max(stamps['initialised']) - max(stamps['imported']):.1f} s")
print(f"  experiments: {max(stamps['finished']) - max(stamps['initialised']):.1f} s "
      f"({', '.join(f'{k[:-2]} {v:.1f} s' for k, v in result['phases_rank0'].items())})")
print(f"  last worker finished -> launcher returned: {run['end'] - max(stamps['finished']):.1f} s")

# %% [markdown]
# Most of the wall time is not our work: it is starting Python and importing torch, first in the
# launcher and then in each worker (the two workers share two cores; `DistributedDataParallel`
# also imports the compiler stack `torch._dynamo`, which `main` imports up front so that the cost
# is visible and not charged to the first experiment), and the launcher's own shut-down.
# `init_process_group` itself (connecting the workers through the launcher's store)
# takes a fraction of a second. On a cluster this fixed cost is paid once per job, not per step.
#
# ### Two workers with half the batch vs one process with the whole batch

# %%
def label(v):
    shards = f"{v['shard']} + {v['batch'] - v['shard']}"
    kind = {"mean": "mean loss", "sum": "sum loss", "weighted": "loss = sum / B × P"}[v["loss"]]
    return f"{'unequal' if v['unequal'] else 'equal'} shards {shards}, {kind}{', batch norm' if v['batchnorm'] else ''}"


print(f"{result['ddp'][0]['steps']} SGD steps (momentum 0.9), batch {result['ddp'][0]['batch']}")
print(f"{'variant':42s} {'max |θ_DDP − θ_one|':>20s} {'max |Δθ| by training':>21s} {'ranks differ by':>16s}")
for v in result["ddp"]:
    print(f"{label(v):42s} {v['max_param_diff']:20.2e} {v['max_param_change']:21.3f} {v['ranks_max_diff']:16.1e}")
equal = result["ddp"][0]
ddp_diff = record(f"DDP 2 workers x {equal['shard']} vs one process x {equal['batch']}: max |parameter difference| "
       f"after {equal['steps']} steps (float64)", equal["max_param_diff"], "", ".1e")

# %% [markdown]
# With equal shards and a mean loss, the two workers end within a few units of float64 rounding
# ($2^{-52} \approx 2.2 \times 10^{-16}$) of the one-process parameters, while training moved
# the parameters by the amount in the third column, so the comparison is not vacuous. The small
# remainder is rounding: $\frac{1}{2}(g_1 + g_2)$ and the one-process gradient add the same terms
# in a different order.
#
# The three failure cases differ by far more than rounding, exactly as the derivation predicts,
# and **DDP does not warn about any of them**: the last column shows the two replicas remain
# identical to each other; they are just not computing the full-batch update. Unequal shards are
# repaired by giving each example the weight it has in the batch: each worker uses
# $\frac{P}{B}\sum_{i\in S_r}\ell_i$ (sum over its shard divided by the *global* batch size, times
# $P$ to undo DDP's division), which agrees again. (PyTorch's `DistributedSampler` avoids
# unequal shards by padding the dataset to a multiple of $P$ with repeated examples.) The batch
# norm fix is `nn.SyncBatchNorm`, which all-reduces the statistics; on a CPU tensor it refuses:

# %%
print(result["syncbatchnorm_cpu"])

# %% [markdown]
# ## 2. All-reduce from scratch: the ring
#
# Every worker $r$ holds a tensor $g_r$ of $n$ numbers; afterwards every worker must hold
# $\sum_r g_r$. The **ring** algorithm (Patarasuk & Yuan, 2009) cuts each tensor into $P$ chunks
# (sizes differ by at most one; some are empty when $n < P$), arranges the workers in a ring
# $r \to r+1 \pmod P$, and runs two phases of $P-1$ steps in which *every* worker sends one chunk
# to its successor and receives one from its predecessor:
#
# 1. **reduce-scatter**: at step $s$, worker $r$ sends its running sum of chunk $(r-s) \bmod P$;
#    the receiver adds it to its own copy. After $P-1$ steps worker $r$ holds the finished sum of
#    chunk $(r+1) \bmod P$, and only that one.
# 2. **all-gather**: at step $s$, worker $r$ sends the finished chunk $(r+1-s) \bmod P$; the
#    receiver overwrites its copy. After $P-1$ more steps every worker holds every finished chunk.
#
# First on simulated workers (plain tensors, no processes):

# %%
show_source(ring.simulate_reduce_scatter)

# %%
workers = [torch.arange(7, dtype=torch.float64) + 100 * r for r in range(3)]
partial = ring.simulate_reduce_scatter(workers)
print("chunks of 7 elements over 3 workers:", ring.chunk_bounds(7, 3))
for r, buf in enumerate(partial):
    print(f"after reduce-scatter, worker {r}: {buf.tolist()}  (finished chunk {(r + 1) % 3})")
final = ring.simulate_all_gather(partial)
print("after all-gather, every worker:", final[0].tolist())
compare("simulated ring, 3 workers, n = 7", final, [torch.stack(workers).sum(0)] * 3, atol=0)

# %% [markdown]
# After the reduce-scatter alone each worker holds only its own finished chunk; forgetting the
# all-gather is a typical mistake. On random float64 tensors and $P = 1..5$, sizes 0, 1 and not
# divisible by $P$ included, `tests/test_distributed.py` checks that every worker ends with the same
# bits and that they equal `torch.stack(...).sum(0)` up to the order of the additions (exactly, on
# integer values and integer dtypes).
#
# The real version uses `dist.isend` (a non-blocking send, so that all workers can send and receive
# in the same step without waiting for each other) and `dist.recv`, on one flat view of the tensor:

# %%
show_source(ring.ring_allreduce)

# %% [markdown]
# Each worker calls it with its own tensor, as it would call `dist.all_reduce`. Inside the same
# launch, each of the two ranks drew different random values, reduced one copy with our ring and
# another with `dist.all_reduce`; the largest difference over both ranks:

# %%
for row in result["ring"]:
    print(f"{row['case']:18s} max |ring − dist.all_reduce| = {row['max_abs_diff']:.1e}")
ring_diff = record("ring all-reduce (send/recv) vs dist.all_reduce, max |difference| over all sizes",
                   max(row["max_abs_diff"] for row in result["ring"]), "", ".1e")
print("a different size on each rank:", result["ring_mismatch_error"])

# %% [markdown]
# With two workers each element is one addition $a + b$, and floating-point addition is
# commutative, so the results agree bit for bit (0.0 above, size 1 and odd sizes included). A size
# mismatch between ranks would make a `recv` wait forever; the implementation first exchanges the
# sizes (one small `all_gather`) so that every rank raises the same error instead.
#
# ### Communication volume
#
# In each of the $2(P-1)$ steps a worker sends one chunk of $n/P$ elements, so it sends (and
# receives) $2\frac{P-1}{P}\,n$ elements in total: less than $2n$ **whatever $P$ is**. The naive
# alternative, every worker sending its whole tensor to one root that sums and sends the result
# back, makes the root receive $(P-1)\,n$ and send $(P-1)\,n$: its link carries a load that grows
# with $P$. For the float32 gradient of GPT-2 small (chapter 14's parameter count):

# %%
n_gpt2 = cost.param_count(cost.GPT2_SMALL)["total"]
grad_bytes = 4 * n_gpt2
print(f"GPT-2 small: {n_gpt2:,} parameters -> {grad_bytes / 1e6:,.0f} MB of float32 gradients per step")
print(f"{'P':>5s} {'ring: each worker sends':>24s} {'naive: the root sends':>22s}")
for p in (2, 4, 8, 64, 1024):  # receiving costs the same again in both
    print(f"{p:5d} {ring.ring_bytes_per_worker(grad_bytes, p) / 1e6:21,.0f} MB "
          f"{ring.naive_root_bytes(grad_bytes, p) / 2 / 1e6:19,.0f} MB")

# %% [markdown]
# ## 3. Time: the latency-bandwidth model, and honest timings on this machine
#
# A message of $b$ bytes costs $\alpha + b/\beta$ seconds: a fixed latency $\alpha$ and a
# bandwidth $\beta$ (bytes/s). In the ring all $P$ links work at once, so
#
# $$t_{\text{ring}}(n) = 2(P-1)\left(\alpha + \frac{n}{P\,\beta}\right) \xrightarrow{P \to \infty} 2P\alpha + \frac{2n}{\beta},
#   \qquad t_{\text{naive}}(n) = 2(P-1)\left(\alpha + \frac{n}{\beta}\right).$$
#
# The ring's bandwidth term stays bounded but its latency term grows linearly with $P$: for small
# messages or very many workers the ring is not the fastest way to all-reduce. Fitting
# $\alpha$ and $\beta$ of the ring formula to `dist.all_reduce` timings on this machine (two
# processes, gloo over loopback TCP; least squares on relative errors, so that the small messages,
# which measure $\alpha$, count as much as the large ones, which measure $\beta$):

# %%
show_source(ring.allreduce_time_s)

# %%
timing = result["allreduce_timing"]
sizes_b = [row["bytes"] for row in timing]
alpha, beta = ring.fit_alpha_beta(sizes_b, [row["all_reduce_s"] for row in timing], 2)
record("gloo all-reduce on this machine, fitted latency alpha", alpha * 1e6, "µs", ".0f")
record("gloo all-reduce on this machine, fitted bandwidth beta", beta / 1e9, "GB/s", ".2f")
print(f"{'bytes':>12s} {'dist.all_reduce':>16s} {'our ring':>10s} {'model':>10s}")
for row in timing:
    model = ring.allreduce_time_s(row["bytes"], 2, beta, alpha)
    print(f"{row['bytes']:12,d} {row['all_reduce_s'] * 1e3:13.2f} ms {row['ring_s'] * 1e3:7.2f} ms {model * 1e3:7.2f} ms")

fig, ax = plt.subplots(figsize=(6, 3.2))
ax.loglog(sizes_b, [r["all_reduce_s"] for r in timing], "o-", label="dist.all_reduce (gloo)")
ax.loglog(sizes_b, [r["ring_s"] for r in timing], "s-", label="our ring (isend/recv)")
ax.loglog(sizes_b, [ring.allreduce_time_s(b, 2, beta, alpha) for b in sizes_b], "k--", label="fitted α-β model")
ax.set_xlabel("bytes per worker")
ax.set_ylabel("seconds (median of 5)")
ax.legend(fontsize=8)
plt.show()

# %% [markdown]
# Small messages cost the latency (our Python loop adds its own overhead per step to gloo's),
# large ones the bandwidth. The fit uses gloo's times; these are measurements on a 2-core machine
# shared with other work, so they vary from run to run.
#
# Does data parallelism speed up training here? One step of an MLP
# $256 \to 1024 \to 1024 \to 10$ (float32, batch 256) in one process with one thread (the other
# rank waiting), and with DDP (two processes, one thread each, 128 examples each), median of 5 steps:

# %%
tt = result["training_timing"]
grad_mb = 4 * tt["n_params"] / 1e6
print(f"{tt['n_params']:,} parameters ({grad_mb:.1f} MB of float32 gradients), batch {tt['batch']}")
record("training step, one process, 1 thread, whole batch", tt["one_process_1_thread_s"] * 1e3, "ms", ".1f")
record("training step, DDP 2 processes x 1 thread, half the batch each", tt["ddp_s"] * 1e3, "ms", ".1f")
record("all-reduce of the gradients alone (gloo)", tt["allreduce_grads_s"] * 1e3, "ms", ".1f")
print(f"the all-reduce alone is {tt['allreduce_grads_s'] / tt['ddp_s']:.0%} of a DDP step; "
      f"model: {ring.allreduce_time_s(4 * tt['n_params'], 2, beta, alpha) * 1e3:.1f} ms")

# %% [markdown]
# Read these numbers with the machine in mind. Two workers on two cores can at best halve the
# compute of a step, and a single process with two threads could use the same two cores without
# any communication; on top of that each DDP step all-reduces the whole gradient through the loopback
# network stack (the last two lines above), and the processes compete with the notebook and
# anything else running. No speed-up is expected here, and whatever ratio was measured above says
# more about this machine's load than about DDP. Data parallelism pays when each worker is a
# separate accelerator with its own memory and a fast interconnect, and when the compute of a step
# is large compared with $t_{\text{ring}}$ of its gradient, which the explorer below lets you
# estimate.
#
# ## 4. The time model, explored
#
# Choose the number of workers, the link's bandwidth and latency and the model size. The left
# panel shows both all-reduce times against $P$ with your $P$ marked; the right panel the bytes a
# ring worker and the naive root move. Try a model of about ten billion parameters (10,000 million)
# with 2-byte gradients at about 30 GB/s: the ring stays near $2n/\beta$ as $P$ grows, the naive root's time grows
# linearly with $P$. This machine's fitted values are printed on the plot.

# %%
explorer = AllReduceExplorer(measured=(alpha, beta))
explorer

# %% [markdown]
# ## 5. On a cluster
#
# The script does not change. `torchrun` starts the same processes on every machine ("node") and
# they find each other through a rendezvous endpoint, e.g. for 4 machines with 8 GPUs each, run on
# every machine with its own `--node-rank` (not run here):

# %%
cluster = ("torchrun --nnodes=4 --nproc-per-node=8 --node-rank=$NODE_RANK "
           "--rdzv-backend=c10d --rdzv-id=ch16 --rdzv-endpoint=node0.example:29500 "
           f"{script.name} --out result.json")
print(cluster)

# %% [markdown]
# Inside the script, `RANK`, `LOCAL_RANK` and `WORLD_SIZE` then describe 32 workers; with GPUs one
# would pick the `nccl` backend and move each replica to `cuda:LOCAL_RANK`, and feed each rank its
# shard with `DistributedSampler`. Nothing else in the arithmetic above changes.
#
# ### When the replica itself does not fit: ZeRO and FSDP
#
# Data parallelism keeps a **full copy** of the training state on every device. Chapter 14 counted
# that state: with 2-byte weights and gradients, Adam's two float32 moments and a float32 master
# copy of the weights, 16 bytes per parameter before activations. The ZeRO optimiser
# (Rajbhandari et al., 2020) removes the redundancy by **sharding** that state over the $P$
# data-parallel workers: stage 1 shards the optimiser states, stage 2 also the gradients (a
# reduce-scatter instead of an all-reduce leaves each worker just its shard of the summed
# gradient), stage 3 also the weights, which are all-gathered layer by layer when needed. PyTorch's
# `FullyShardedDataParallel` (FSDP) implements stages 2 and 3 (`SHARD_GRAD_OP`, `FULL_SHARD`) and
# `ZeroRedundancyOptimizer` stage 1. The memory per device, from `cost.memory_bytes` for chapter 14's
# 7B-class configuration:

# %%
show_source(zero.sharded_memory_bytes)

# %%
cfg7 = cost.SEVEN_B_CLASS
full = cost.memory_bytes(cfg7, dtype_bytes=2, optimizer="adam")
print(f"{cfg7.name}: {cost.param_count(cfg7)['total']:,} parameters; one full replica "
      f"{full['total'] / 2**30:,.1f} GiB (weights {full['weights'] / 2**30:.1f}, gradients "
      f"{full['gradients'] / 2**30:.1f}, Adam states {full['optimizer'] / 2**30:.1f}, master {full['master'] / 2**30:.1f})")
print(f"{'per device, GiB':>22s}" + "".join(f"{f'P = {p}':>10s}" for p in (8, 64, 512)))
for stage, name in enumerate(("DDP (no sharding)", "ZeRO-1", "ZeRO-2 / FSDP grad-op", "ZeRO-3 / FSDP full")):
    row = [zero.sharded_memory_bytes(full, p, stage)["total"] / 2**30 for p in (8, 64, 512)]
    print(f"{name:>22s}" + "".join(f"{x:10.1f}" for x in row))
zero3_gib = record("7B-class, Adam mixed precision: bytes per device, ZeRO-3 over 64 devices",
                   zero.sharded_memory_bytes(full, 64, 3)["total"] / 2**30, "GiB", ".2f")

# %% [markdown]
# A full replica of the 7B-class model (about 100 GiB before activations) does not fit on one
# 80 GB accelerator, so plain DDP cannot train it at all; ZeRO-1 over 8 devices already brings it
# under that, and ZeRO-3 divides everything by $P$. The price is communication: stages 1 and 2 move
# the same volume as DDP's all-reduce (a reduce-scatter of gradients plus an all-gather of updated
# weights is exactly the ring's two phases), stage 3 also all-gathers the weights in the forward
# and backward passes, about 1.5 times DDP's volume according to the ZeRO paper.
#
# ## Summary
#
# * With the loss a **mean** over equal shards, the full-batch gradient is the average of the
#   workers' gradients; DDP all-reduces gradients during `backward()` and two workers with half
#   the batch each match one process with the whole batch to float64 rounding (measured above).
# * Unequal shards, a sum loss and batch norm break that equality silently; weighting the shard
#   losses by their share of the batch repairs the first, `SyncBatchNorm` the last (not on CPU).
# * The ring all-reduce is a reduce-scatter then an all-gather, $2(P-1)$ steps; written with
#   `isend`/`recv` it equals `dist.all_reduce`. Each worker sends $2\frac{P-1}{P}n$ bytes, less
#   than $2n$ for any $P$; a naive root sends $(P-1)n$ and receives as much.
# * $t_{\text{ring}} = 2(P-1)(\alpha + n/(P\beta))$: bandwidth-bound for large gradients,
#   latency-bound for small ones; measured on this machine, DDP gives no speed-up on 2 shared cores.
# * The same script runs on a cluster under `torchrun --nnodes`; when one replica does not fit,
#   ZeRO / FSDP shard optimiser states, gradients and weights over the workers.
#
# ## Exercises
#
# Open `exercises/16_distributed.ipynb`.
#
# ## References
#
# * S. Li et al. *PyTorch Distributed: Experiences on Accelerating Data Parallel Training.* VLDB 2020,
#   arXiv:2006.15704.
# * S. Rajbhandari, J. Rasley, O. Ruwase, Y. He. *ZeRO: Memory Optimizations Toward Training
#   Trillion Parameter Models.* SC '20, arXiv:1910.02054.
# * P. Patarasuk, X. Yuan. *Bandwidth optimal all-reduce algorithms for clusters of workstations.*
#   Journal of Parallel and Distributed Computing 69(2):117–124, 2009.
# * PyTorch documentation: `torchrun` (elastic launch), `DistributedDataParallel`,
#   `FullyShardedDataParallel`, `ZeroRedundancyOptimizer`, `SyncBatchNorm`.

# %%
record("notebook 16 wall time", time.perf_counter() - NOTEBOOK_START, "s", ".1f")
workdir.cleanup()

# %%
print(explorer.self_check())
