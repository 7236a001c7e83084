"""Data-parallel training under ``torchrun``: the script chapter 16 runs, and its launcher.

``main()`` runs in every worker process that ``torchrun --standalone --nproc-per-node P`` starts
(gloo backend, CPU). In one launch it measures everything the chapter shows:

* **DDP vs one process**: a small float64 MLP trained with ``DistributedDataParallel``, each rank
  on its shard of every batch, against the same model trained by one process on the whole batch
  (rank 0 trains it), as the max absolute parameter difference after ``steps`` steps - for equal shards
  with a mean loss (equal), and for the cases where data parallelism is *not* the same computation:
  unequal shards, a sum loss, batch normalisation;
* **ring vs dist.all_reduce**: :func:`course_lib.distributed.ring.ring_allreduce` against
  ``dist.all_reduce`` on sizes not divisible by the world size, size 1, a 2-D and an integer tensor;
* **timings**: both all-reduces on growing sizes, and a training step of a larger MLP in one process
  (1 and ``P`` threads) vs DDP.

Rank 0 writes everything as one JSON file (``--out``). :func:`launch` runs the script in a subprocess
(multiprocessing spawn does not work inside Jupyter) and returns that JSON as a dict.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

SCRIPT_TEXT = '''\
# Written by chapter 16; run by torchrun, once per worker process.
import os
import sys

from course_lib.distributed.ddp import main

if __name__ == "__main__":
    main()  # ends with a barrier and dist.destroy_process_group()
    # Leave at once: the interpreter's own teardown of torch's C++ state (gloo's threads and
    # sockets) takes about a second per worker and is where a rare SIGABRT at exit came from.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
'''

RING_SIZES = (1, 2, 3, 5, 1000, 1001, 65537)
TIMING_SIZES = (1, 1_000, 30_000, 300_000, 3_000_000)  # float32 elements


def write_script(folder: str | os.PathLike) -> Path:
    """Write :data:`SCRIPT_TEXT` to ``folder/ddp_script.py`` and return its path."""
    path = Path(folder) / "ddp_script.py"
    path.write_text(SCRIPT_TEXT, encoding="utf-8")
    return path


# --- the data-parallel experiment ----------------------------------------------------------------
def make_data(steps: int, batch: int, in_dim: int = 8, seed: int = 0):
    """The same data on every rank: ``X`` (steps, batch, in_dim) and ``y`` (steps, batch, 1), float64."""
    import torch

    g = torch.Generator().manual_seed(seed)
    x = torch.randn(steps, batch, in_dim, generator=g, dtype=torch.float64)
    y = torch.sin(x.sum(-1, keepdim=True)) + 0.1 * torch.randn(steps, batch, 1, generator=g, dtype=torch.float64)
    return x, y


def make_model(in_dim: int = 8, hidden: int = 32, batchnorm: bool = False, seed: int = 0):
    """A float64 MLP ``in_dim -> hidden -> 1`` (tanh), optionally with batch norm; same weights for a seed."""
    import torch
    from torch import nn

    torch.manual_seed(seed)
    layers: List[Any] = [nn.Linear(in_dim, hidden)]
    if batchnorm:
        layers.append(nn.BatchNorm1d(hidden))
    layers += [nn.Tanh(), nn.Linear(hidden, 1)]
    return nn.Sequential(*layers).double()


def shard_bounds(batch: int, world_size: int, rank: int, unequal: bool = False) -> tuple:
    """``(start, stop)`` of rank's shard of a batch: equal halves, or 3/4 for rank 0 when ``unequal``
    (two ranks only)."""
    if unequal:
        if world_size != 2:
            raise ValueError(f"shard_bounds: unequal shards are defined for world_size 2, got {world_size}")
        cut = 3 * batch // 4
        return (0, cut) if rank == 0 else (cut, batch)
    if batch % world_size:
        raise ValueError(f"shard_bounds: expected a batch divisible by world_size {world_size}, got {batch}")
    size = batch // world_size
    return rank * size, (rank + 1) * size


def _loss(pred, y, kind: str, batch: int, world_size: int):
    if kind == "mean":
        return ((pred - y) ** 2).mean()
    if kind == "sum":
        return ((pred - y) ** 2).sum()
    if kind == "weighted":  # the shard's share of the global mean: sum / B, times P to undo DDP's average
        return ((pred - y) ** 2).sum() / batch * world_size
    raise ValueError(f"_loss: expected 'mean', 'sum' or 'weighted', got {kind!r}")


def train_variant(steps: int, batch: int, *, loss: str = "mean", unequal: bool = False,
                  batchnorm: bool = False, lr: float = 0.05, seed: int = 0) -> Dict[str, Any]:
    """Train with DDP on every rank, then (rank 0) one process on the whole batch with the same
    initial weights, data and optimiser (SGD, momentum 0.9). Returns the max absolute parameter
    difference DDP vs one process (rank 0), the max difference between the ranks' parameters,
    and both loss curves. Call on every rank."""
    import torch
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel as DDP

    rank, p = dist.get_rank(), dist.get_world_size()
    x, y = make_data(steps, batch, seed=seed)
    lo, hi = shard_bounds(batch, p, rank, unequal)
    model = make_model(batchnorm=batchnorm, seed=seed)
    ddp = DDP(model)
    opt = torch.optim.SGD(ddp.parameters(), lr=lr, momentum=0.9)
    ddp_losses = []
    for k in range(steps):
        opt.zero_grad()
        out = _loss(ddp(x[k, lo:hi]), y[k, lo:hi], loss, batch, p)
        out.backward()  # DDP averages the gradients over the ranks during backward
        opt.step()
        ddp_losses.append(float(out.detach()))
    flat = torch.cat([q.detach().reshape(-1) for q in model.parameters()])
    first = flat.clone()
    dist.broadcast(first, 0)
    spread = (flat - first).abs().max()
    dist.all_reduce(spread, op=dist.ReduceOp.MAX)
    result: Dict[str, Any] = {"loss": loss, "unequal": unequal, "batchnorm": batchnorm, "steps": steps,
                              "batch": batch, "shard": hi - lo,
                              "ranks_max_diff": float(spread), "ddp_losses_rank0": ddp_losses}
    if rank == 0:
        ref = make_model(batchnorm=batchnorm, seed=seed)
        ref_opt = torch.optim.SGD(ref.parameters(), lr=lr, momentum=0.9)
        ref_losses = []
        for k in range(steps):
            ref_opt.zero_grad()
            out = _loss(ref(x[k]), y[k], "sum" if loss == "sum" else "mean", batch, 1)
            out.backward()
            ref_opt.step()
            ref_losses.append(float(out.detach()))
        ref_flat = torch.cat([q.detach().reshape(-1) for q in ref.parameters()])
        result["max_param_diff"] = float((flat - ref_flat).abs().max())
        result["max_param_change"] = float((ref_flat - torch.cat([q.detach().reshape(-1) for q in
                                            make_model(batchnorm=batchnorm, seed=seed).parameters()])).abs().max())
        result["one_process_losses"] = ref_losses
    dist.barrier()
    return result


# --- ring vs dist.all_reduce ---------------------------------------------------------------------
def compare_ring(sizes: Sequence[int] = RING_SIZES) -> List[Dict[str, Any]]:
    """``ring_allreduce`` vs ``dist.all_reduce`` on float64 tensors of ``sizes`` (different values per
    rank), a (3, 5) tensor and an int64 tensor. Call on every rank; the max difference is over ranks."""
    import torch
    import torch.distributed as dist

    from course_lib.distributed.ring import ring_allreduce

    rank = dist.get_rank()
    cases: List[Any] = [(f"float64 ({n},)", (n,), torch.float64) for n in sizes]
    cases += [("float64 (3, 5)", (3, 5), torch.float64), ("int64 (7,)", (7,), torch.int64)]
    rows = []
    for i, (label, shape, dtype) in enumerate(cases):
        g = torch.Generator().manual_seed(1000 * i + rank)
        x = torch.randn(shape, generator=g, dtype=torch.float64)
        x = (x * 1000).to(dtype) if not dtype.is_floating_point else x
        ours, ref = x.clone(), x.clone()
        ring_allreduce(ours)
        dist.all_reduce(ref)
        diff = (ours.double() - ref.double()).abs().max() if ours.numel() else torch.zeros((), dtype=torch.float64)
        dist.all_reduce(diff, op=dist.ReduceOp.MAX)
        rows.append({"case": label, "numel": x.numel(), "max_abs_diff": float(diff)})
    return rows


def mismatch_error() -> str:
    """Call ``ring_allreduce`` with a different number of elements on each rank and return the error
    message every rank gets (instead of a hang). Call on every rank."""
    import torch
    import torch.distributed as dist

    from course_lib.distributed.ring import ring_allreduce

    try:
        ring_allreduce(torch.zeros(dist.get_rank() + 1, dtype=torch.float64))
    except ValueError as exc:
        return str(exc)
    return "no error"


def _median(xs: List[float]) -> float:
    xs = sorted(xs)
    return xs[len(xs) // 2]


def time_allreduce(sizes: Sequence[int] = TIMING_SIZES, repeats: int = 5) -> List[Dict[str, Any]]:
    """Median seconds of ``ring_allreduce`` and ``dist.all_reduce`` on float32 tensors of ``sizes``."""
    import torch
    import torch.distributed as dist

    from course_lib.distributed.ring import ring_allreduce

    rows = []
    for n in sizes:
        x = torch.ones(n, dtype=torch.float32)
        times: Dict[str, List[float]] = {"ring": [], "all_reduce": []}
        for _ in range(repeats):
            for name, fn in (("ring", ring_allreduce), ("all_reduce", dist.all_reduce)):
                dist.barrier()
                t0 = time.perf_counter()
                fn(x)
                times[name].append(time.perf_counter() - t0)
        rows.append({"numel": n, "bytes": 4 * n, "ring_s": _median(times["ring"]),
                     "all_reduce_s": _median(times["all_reduce"])})
    return rows


def time_training(batch: int = 256, width: int = 1024, steps: int = 5) -> Dict[str, Any]:
    """Median seconds per SGD step of a float32 MLP ``256 -> width -> width -> 10``: one process with the
    whole batch (1 thread; the other ranks wait) vs DDP with batch/P per rank (1 thread each), and the
    all-reduce of a gradient-sized tensor alone."""
    import torch
    import torch.distributed as dist
    from torch import nn
    from torch.nn.parallel import DistributedDataParallel as DDP

    rank, p = dist.get_rank(), dist.get_world_size()
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(256, width), nn.ReLU(), nn.Linear(width, width), nn.ReLU(), nn.Linear(width, 10))
    n_params = sum(q.numel() for q in model.parameters())
    x, y = torch.randn(batch, 256), torch.randint(0, 10, (batch,))

    def steps_time(m, xb, yb) -> float:
        opt = torch.optim.SGD(m.parameters(), lr=0.01)
        ts = []
        for _ in range(steps + 1):  # the first step warms up
            t0 = time.perf_counter()
            opt.zero_grad()
            nn.functional.cross_entropy(m(xb), yb).backward()
            opt.step()
            ts.append(time.perf_counter() - t0)
        return _median(ts[1:])

    result: Dict[str, Any] = {"n_params": n_params, "batch": batch, "world_size": p}
    torch.set_num_threads(1)
    if rank == 0:
        result["one_process_1_thread_s"] = steps_time(model, x, y)
    dist.barrier()
    lo, hi = shard_bounds(batch, p, rank)
    result["ddp_s"] = steps_time(DDP(model), x[lo:hi], y[lo:hi])
    grads = torch.zeros(n_params)
    ts = []
    for _ in range(5):
        dist.barrier()
        t0 = time.perf_counter()
        dist.all_reduce(grads)
        ts.append(time.perf_counter() - t0)
    result["allreduce_grads_s"] = _median(ts)
    return result


def syncbatchnorm_on_cpu() -> str:
    """What ``nn.SyncBatchNorm`` does on a CPU tensor (the fix for batch norm under DDP): its message."""
    import torch
    from torch import nn

    layer = nn.SyncBatchNorm(4).double()
    try:
        layer(torch.randn(6, 4, dtype=torch.float64))
    except Exception as exc:  # noqa: BLE001 - we report whatever it says
        return f"{type(exc).__name__}: {exc}"
    return "ran on CPU"


# --- the entry point -----------------------------------------------------------------------------
def main(argv: Optional[Sequence[str]] = None) -> Dict[str, Any]:
    """Run every measurement of chapter 16 in this worker (under ``torchrun``); rank 0 writes ``--out``."""
    entered = time.time()
    parser = argparse.ArgumentParser(description="Chapter 16: data-parallel training and all-reduce (run by torchrun)")
    parser.add_argument("--out", required=True, help="JSON file rank 0 writes")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--quick", action="store_true", help="skip the timings (tests)")
    args = parser.parse_args(argv)
    if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
        raise SystemExit("main: expected to run under torchrun (RANK and WORLD_SIZE set), got neither; "
                         "use course_lib.distributed.ddp.launch(script) or `torchrun --standalone "
                         "--nproc-per-node 2 script.py --out result.json`")
    import torch
    import torch._dynamo  # noqa: F401 - DistributedDataParallel's constructor imports it: seconds, once
    import torch.distributed as dist

    imported = time.time()
    torch.set_num_threads(1)
    dist.init_process_group("gloo")
    initialised = time.time()
    rank, p = dist.get_rank(), dist.get_world_size()
    result: Dict[str, Any] = {"world_size": p, "backend": dist.get_backend(), "torch": torch.__version__}
    sum_lr = 0.05 / args.batch  # the same step as lr 0.05 on the mean loss, for the one process
    variants = [dict(), dict(unequal=True), dict(unequal=True, loss="weighted"), dict(loss="sum", lr=sum_lr),
                dict(batchnorm=True)] if p == 2 else [dict(), dict(loss="sum", lr=sum_lr), dict(batchnorm=True)]
    phases: Dict[str, float] = {}

    def say(what: str) -> None:  # progress in torchrun's output, so a failure shows where it happened
        print(f"[rank {rank}] {what}", flush=True)

    say("DDP vs one process")
    t0 = time.perf_counter()
    result["ddp"] = [train_variant(args.steps, args.batch, **v) for v in variants]
    phases["ddp_s"] = time.perf_counter() - t0
    say("ring vs dist.all_reduce")
    t0 = time.perf_counter()
    result["ring"] = compare_ring()
    result["ring_mismatch_error"] = mismatch_error()
    phases["ring_s"] = time.perf_counter() - t0
    if not args.quick:
        say("timing all-reduce")
        t0 = time.perf_counter()
        result["allreduce_timing"] = time_allreduce()
        phases["allreduce_timing_s"] = time.perf_counter() - t0
        say("timing training steps")
        t0 = time.perf_counter()
        result["training_timing"] = time_training()
        phases["training_timing_s"] = time.perf_counter() - t0
    result["syncbatchnorm_cpu"] = syncbatchnorm_on_cpu()
    result["phases_rank0"] = phases
    say("done")
    finished = time.time()
    stamps = torch.tensor([entered, imported, initialised, finished], dtype=torch.float64)
    everyone = [torch.zeros_like(stamps) for _ in range(p)]
    dist.all_gather(everyone, stamps)
    result["stamps"] = {name: [float(s[i]) for s in everyone]
                        for i, name in enumerate(("entered", "imported", "initialised", "finished"))}
    # no rank tears down its gloo pairs while another may still use them; then free the process
    # group explicitly, before the interpreter exits (gloo's threads must not outlive it)
    dist.barrier()
    dist.destroy_process_group()
    if rank == 0:
        Path(args.out).write_text(json.dumps(result, indent=1), encoding="utf-8")
    return result


def launch(script: str | os.PathLike, nproc: int = 2, args: Sequence[str] = (), timeout: float = 180.0,
           launcher: str = "auto", extra_env: Optional[Dict[str, str]] = None) -> Dict[str, Any]:
    """Run ``script`` under ``torchrun --standalone --nproc-per-node nproc`` in a subprocess and return
    the JSON its rank 0 wrote, plus ``"launch"``: the command, wall seconds and start/end epoch times.
    Everything stays on loopback (``--local-addr=127.0.0.1``, ``GLOO_SOCKET_IFNAME``).

    ``launcher``: ``"torchrun"`` runs the console script beside this interpreter, ``"module"``
    ``python -m torch.distributed.run``, ``"auto"`` the console script when it exists, else the
    module. Raises ``RuntimeError`` with the output's tail when the run fails, ``TimeoutError``
    after ``timeout`` seconds (the process group is killed).
    """
    import signal

    script = Path(script)
    if not script.is_file():
        raise FileNotFoundError(f"launch: expected a script file, got {str(script)!r} (write it with write_script)")
    if isinstance(nproc, bool) or not isinstance(nproc, int) or nproc < 1:
        raise ValueError(f"launch: expected nproc an int >= 1, got {nproc!r}")
    console = Path(sys.executable).with_name("torchrun")
    if launcher == "auto":
        launcher = "torchrun" if console.is_file() else "module"
    if launcher == "module":
        head = [sys.executable, "-m", "torch.distributed.run"]
    elif launcher == "torchrun":
        head = [str(console)]
    else:
        raise ValueError(f"launch: expected launcher 'auto', 'module' or 'torchrun', got {launcher!r}")
    # loopback only: the rendezvous and MASTER_ADDR on 127.0.0.1 (no lookup of this machine's name),
    # and gloo's sockets on the loopback interface (by default gloo binds the address the host name
    # resolves to, which on many machines is the external interface)
    loopback = {"GLOO_SOCKET_IFNAME": "lo0" if sys.platform == "darwin" else "lo"}
    env = {**os.environ, "OMP_NUM_THREADS": "1", **loopback, **(extra_env or {})}
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "result.json"
        cmd = [*head, "--standalone", "--local-addr=127.0.0.1", f"--nproc-per-node={nproc}", str(script),
               "--out", str(out), *args]
        start = time.time()
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                                start_new_session=True)
        try:
            output, _ = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            output, _ = proc.communicate()
            raise TimeoutError(f"launch: expected torchrun to finish within {timeout} s, it did not; "
                               f"output tail:\n{output[-2000:]}") from None
        end = time.time()
        if proc.returncode != 0 or not out.is_file():
            raise RuntimeError(f"launch: torchrun exited with code {proc.returncode} "
                               f"{'without writing ' + str(out) if not out.is_file() else ''}; output tail:\n"
                               f"{output[-3000:]}")
        result = json.loads(out.read_text(encoding="utf-8"))
    display = ["torchrun" if launcher == "torchrun" else "python -m torch.distributed.run", *cmd[len(head):]]
    result["launch"] = {"command": " ".join(display), "wall_s": end - start, "start": start, "end": end,
                        "output_tail": output[-1000:]}
    return result


if __name__ == "__main__":
    main()
