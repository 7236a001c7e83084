"""Questions of sheet 16_distributed: a ring all-reduce on simulated workers, the gradient that
data parallelism applies when the workers' shards differ in size (derived), a prediction (the
time model of a ring all-reduce) and a debugging question: a simulated two-worker training loop
with two planted bugs.

Each question carries its hint tiers and the typical mistakes (misconceptions) that
:func:`course_lib.check.check` recognises by name. The references of 16.1 and 16.3 come from
:mod:`course_lib.distributed.ring`, imported when a reference first runs (so importing the
registry stays light); those of 16.2 and 16.4 are what one process computes with autograd. The
wrong variants below are written here, one mistake each. Every tensor is float64; the grader's
sandbox passes tensors, tuples, lists and numbers, so shards travel as tuples.
"""

from __future__ import annotations

from typing import Any, Callable, List, Sequence, Tuple

import torch

from course_lib.questions import Case, Misconception, Question, randn

SHEET = "16_distributed"
F64 = torch.float64


# --- 16.1 ring all-reduce on simulated workers --------------------------------------------------
def ring_allreduce_reference(tensors: Sequence[torch.Tensor]) -> List[torch.Tensor]:
    """The reference of 16.1: :func:`course_lib.distributed.ring.simulate_ring_allreduce` on
    ``p`` workers' tensors of one shape -> ``p`` tensors, each the elementwise sum."""
    from course_lib.distributed.ring import simulate_ring_allreduce

    return list(simulate_ring_allreduce([t.clone() for t in tensors]))


def _ring_call(func: Callable[..., Any], case: Case) -> Any:
    """Call ``func(list of the workers' tensors)``: the sheet's function takes a list."""
    (tensors,) = case.args
    return func(list(tensors))


def _ring_cases(gen: torch.Generator, hidden: bool) -> List[Case]:
    def case(p: int, n: int, label: str = "") -> Case:
        return Case(f"p={p} workers, n={n} values each{label}", (tuple(randn(gen, n) for _ in range(p)),))

    cases = [case(3, 6), case(2, 5, ": uneven chunks"), case(4, 10, ": chunks of 3, 3, 2, 2"),
             case(5, 7), case(1, 4, ": one worker")]
    if hidden:
        for p, n in ((2, 2), (3, 3), (4, 9), (6, 13), (3, 11), (7, 8)):
            cases.append(case(p, n))
    return cases


def _ring_variant(all_gather: bool = True, mean: bool = False, short: int = 0) -> Callable[..., List[torch.Tensor]]:
    """The ring of the sheet (worker r sends chunk (r - s) mod p at reduce-scatter step s, chunk
    (r + 1 - s) mod p at all-gather step s) with the given mistakes: no all-gather, a division by
    p at the end, or ``short`` reduce-scatter steps fewer."""
    def wrong(tensors: List[torch.Tensor]) -> List[torch.Tensor]:
        p = len(tensors)
        chunks = [list(t.clone().tensor_split(p)) for t in tensors]
        for s in range(p - 1 - short):
            messages = [chunks[r][(r - s) % p].clone() for r in range(p)]
            for r in range(p):
                chunks[(r + 1) % p][(r - s) % p] += messages[r]
        if all_gather:
            for s in range(p - 1):
                messages = [chunks[r][(r + 1 - s) % p].clone() for r in range(p)]
                for r in range(p):
                    chunks[(r + 1) % p][(r + 1 - s) % p] = messages[r]
        out = [torch.cat(c) for c in chunks]
        return [t / p for t in out] if mean else out
    return wrong


# --- 16.2 the gradient data parallelism applies ----------------------------------------------------
def _local_gradient(w: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Autograd's gradient of one worker's mean squared error (1/n_r) ||x w - y||^2 at ``w``."""
    w = w.detach().clone().requires_grad_(True)
    loss = ((x @ w - y) ** 2).mean()
    (grad,) = torch.autograd.grad(loss, w)
    return grad


def ddp_gradient_reference(w: torch.Tensor, xs: Sequence[torch.Tensor], ys: Sequence[torch.Tensor]) -> torch.Tensor:
    """The reference of 16.2: every worker r computes the gradient of its own mean loss
    (1/n_r) ||X_r w - y_r||^2 (w (D,), X_r (n_r, D), y_r (n_r,)) with autograd, and the all-reduce
    of DistributedDataParallel averages them: the sum over workers divided by the number of
    workers (DDP's documented averaging), (D,)."""
    return torch.stack([_local_gradient(w, x, y) for x, y in zip(xs, ys)]).mean(dim=0)


def _ddp_call(func: Callable[..., Any], case: Case) -> Any:
    """Call ``func(w, list of the X_r, list of the y_r)``."""
    w, xs, ys = case.args
    return func(w, list(xs), list(ys))


def _ddp_cases(gen: torch.Generator, hidden: bool) -> List[Case]:
    def case(D: int, sizes: Tuple[int, ...], label: str = "") -> Case:
        xs = tuple(randn(gen, n, D) for n in sizes)
        ys = tuple(randn(gen, n, scale=2.0) for n in sizes)
        return Case(f"D={D}, shards of {', '.join(map(str, sizes))} samples{label}", (randn(gen, D), xs, ys))

    cases = [case(3, (4, 2)), case(2, (3, 3, 1)), case(4, (1, 5)), case(1, (2, 6, 3, 1), ": one weight"),
             case(3, (5, 4, 2))]
    if hidden:
        for D, sizes in ((2, (1, 2)), (5, (3, 1, 4)), (3, (7, 2)), (1, (1, 3)), (6, (2, 2, 5, 1))):
            cases.append(case(D, sizes))
    return cases


def _ddp_variant(reduce: str) -> Callable[..., torch.Tensor]:
    """Gradients combined the wrong way: summed, pooled over all samples, or worker 0's alone."""
    def wrong(w, xs, ys):
        if reduce == "sum":
            return torch.stack([_local_gradient(w, x, y) for x, y in zip(xs, ys)]).sum(dim=0)
        if reduce == "pooled":
            return _local_gradient(w, torch.cat(list(xs)), torch.cat(list(ys)))
        return _local_gradient(w, xs[0], ys[0])
    return wrong


# --- 16.3 predict the time of a ring all-reduce ------------------------------------------------
def ring_time_reference(n_bytes: float, world_size: int, bandwidth: float, latency: float) -> float:
    """The reference of 16.3: :func:`course_lib.distributed.ring.allreduce_time_s` with
    ``algorithm="ring"``: 2 (p - 1) steps, each one message of n / p bytes,
    2 (p - 1) (latency + n / (p bandwidth)) seconds; 0 for one worker."""
    from course_lib.distributed.ring import allreduce_time_s

    return float(allreduce_time_s(n_bytes, world_size, bandwidth, latency, algorithm="ring"))


def _time_call(func: Callable[..., Any], case: Case) -> float:
    """The student's time as a float."""
    return float(func(*case.args, **case.kwargs))


def _time_cases(gen: torch.Generator, hidden: bool) -> List[Case]:
    cases = [
        Case("GPT-2 small's gradients in float32 (497 MB), 8 workers, 10 GB/s, 5 us",
             (4 * 124_337_664, 8, 10e9, 5e-6)),
        Case("1 MB, 2 workers, 1 GB/s, 50 us", (1e6, 2, 1e9, 50e-6)),
        Case("a small message: 4 kB, 64 workers, 25 GB/s, 10 us", (4096, 64, 25e9, 10e-6)),
        Case("one worker: nothing to send", (1e9, 1, 10e9, 5e-6)),
        Case("1 GB, 16 workers, 100 GB/s, 2 us", (1e9, 16, 100e9, 2e-6)),
    ]
    if hidden:
        for i in range(6):
            p = (3, 4, 32, 128, 5, 1024)[i]
            n = float(torch.randint(1, 10**9, (1,), generator=gen))
            cases.append(Case(f"{p} workers", (n, p, (1e9, 12.5e9, 50e9)[i % 3], (1e-6, 20e-6, 100e-6)[i % 3])))
    return cases


def _time_variant(volume: float = 2.0, whole: bool = False, latency_once: bool = False) -> Callable[..., float]:
    """A time model with the given mistakes (see the misconceptions of 16.3)."""
    def wrong(n_bytes, world_size, bandwidth, latency):
        p = world_size
        steps = volume * (p - 1)
        message = n_bytes if whole else n_bytes / p
        if latency_once:
            return (latency if p > 1 else 0.0) + steps * message / bandwidth
        return steps * (latency + message / bandwidth)
    return wrong


# --- 16.4 debug a simulated data-parallel training loop ----------------------------------------
def full_batch_reference(w0: torch.Tensor, x: torch.Tensor, y: torch.Tensor, world_size: int, lr: float,
                         steps: int) -> torch.Tensor:
    """The reference of 16.4: what one process does with the whole batch: ``steps`` steps of
    gradient descent with learning rate ``lr`` on the mean squared error (1/n) ||x w - y||^2,
    w0 (D,), x (n, D), y (n,) -> w (D,). With equal shards (n divisible by ``world_size``) data
    parallelism must give the same parameters."""
    w = w0.clone()
    for _ in range(steps):
        w = w - lr * _local_gradient(w, x, y)
    return w


def _train_call(func: Callable[..., Any], case: Case) -> Any:
    return func(*case.args)


def _train_cases(gen: torch.Generator, hidden: bool) -> List[Case]:
    def case(D: int, n: int, p: int, lr: float, steps: int) -> Case:
        x, w_true = randn(gen, n, D), randn(gen, D)
        y = x @ w_true + 0.3 * randn(gen, n)
        return Case(f"D={D}, n={n} samples, {p} workers, lr={lr}, {steps} steps", (randn(gen, D), x, y, p, lr, steps))

    cases = [case(3, 8, 2, 0.1, 3), case(2, 6, 3, 0.05, 4), case(4, 4, 4, 0.1, 2), case(1, 6, 2, 0.2, 5),
             case(3, 12, 2, 0.02, 1)]
    if hidden:
        for D, n, p, lr, steps in ((2, 4, 2, 0.1, 2), (5, 15, 3, 0.05, 3), (3, 16, 4, 0.1, 4), (2, 10, 5, 0.1, 2)):
            cases.append(case(D, n, p, lr, steps))
    return cases


def _train_variant(summed: bool, same_shard: bool) -> Callable[..., torch.Tensor]:
    """The sheet's listing (``buggy_data_parallel``) with one or both of its bugs."""
    def wrong(w0, x, y, world_size, lr, steps):
        xs, ys = x.chunk(world_size), y.chunk(world_size)
        w = w0.clone()
        for _ in range(steps):
            grads = [_local_gradient(w, xs[0 if same_shard else r], ys[0 if same_shard else r]) for r in range(world_size)]
            total = torch.stack(grads).sum(dim=0)
            w = w - lr * (total if summed else total / world_size)
        return w
    return wrong


QUESTIONS = [
    Question(
        id="16.1", sheet=SHEET, title="Ring all-reduce on simulated workers", func_name="ring_allreduce",
        points=2, reference=ring_allreduce_reference, make_cases=_ring_cases, call=_ring_call, kind="implement",
        hints=(
            "A ring all-reduce has two phases: a reduce-scatter, after which each worker owns the complete sum "
            "of one chunk, and an all-gather, which passes those complete chunks around the ring until every "
            "worker has all of them.",
            "Split each of the p tensors into p chunks (torch.tensor_split, so the sizes may differ by one); each "
            "phase has p - 1 steps, and at every step each worker sends exactly one chunk to its right-hand "
            "neighbour (r + 1) mod p.",
            "At each step, first collect the p outgoing chunks (cloned), then deliver them: the receiver adds "
            "during the first phase and overwrites during the second; the chunk index each worker sends "
            "shifts by one per step.",
        ),
        misconceptions=(
            Misconception(
                "reduce-scatter without all-gather",
                "After the reduce-scatter each worker holds the complete sum of one chunk only; the other chunks "
                "are partial sums, so the all-gather phase is needed to give every worker the whole result.",
                _ring_variant(all_gather=False),
            ),
            Misconception(
                "the mean instead of the sum",
                "An all-reduce with SUM, like dist.all_reduce's default, leaves the elementwise sum on every "
                "worker; dividing by the number of workers is a separate choice (the one DDP makes for gradients).",
                _ring_variant(mean=True),
            ),
            Misconception(
                "a reduce-scatter one step short",
                "Each chunk must travel past p - 1 workers before it contains every worker's contribution; "
                "with one step fewer every chunk misses one worker's values.",
                _ring_variant(short=1),
            ),
        ),
    ),
    Question(
        id="16.2", sheet=SHEET, title="The gradient data parallelism applies", func_name="ddp_gradient", points=2,
        reference=ddp_gradient_reference, make_cases=_ddp_cases, call=_ddp_call, kind="derive",
        hints=(
            "Each worker only sees its own shard and differentiates its own mean loss; the all-reduce then "
            "combines the p local gradients, and DistributedDataParallel divides the sum by the number of "
            "workers, not by the number of samples.",
            "For one worker the loss is (1/n_r) times the squared norm of X_r w - y_r, with X_r of shape (n_r, D); "
            "its gradient with respect to w has shape (D,). Derive it by hand (or check it with autograd).",
            "Compute the p local gradients (each a (D,) tensor, each scaled by its own 1/n_r), then combine them "
            "the way the all-reduce and DDP's division do; with unequal shard sizes this is not the full-batch "
            "gradient.",
        ),
        misconceptions=(
            Misconception(
                "summing where averaging is needed",
                "DDP's all-reduce sums the workers' gradients and then divides by the world size, so that the "
                "step does not grow with the number of workers; the plain sum is p times too large.",
                _ddp_variant("sum"),
            ),
            Misconception(
                "the full-batch gradient assumed",
                "Each worker averages over its own samples, then DDP averages the workers: a mean of means, which "
                "equals the gradient over all samples pooled only when every shard has the same size.",
                _ddp_variant("pooled"),
            ),
            Misconception(
                "one worker's gradient without the all-reduce",
                "Without the all-reduce each worker would step with the gradient of its own shard only, and the "
                "replicas would drift apart; data parallelism synchronises them at every step.",
                _ddp_variant("local"),
            ),
        ),
    ),
    Question(
        id="16.3", sheet=SHEET, title="Predict the time of a ring all-reduce", func_name="ring_allreduce_time",
        points=1, reference=ring_time_reference, make_cases=_time_cases, call=_time_call, kind="predict",
        rtol=1e-9, atol=1e-15,
        hints=(
            "Model each step of the ring as one message per worker, all sent at the same time: a step costs a "
            "fixed latency plus the message's size divided by the bandwidth. Count the steps of both phases.",
            "With p workers the tensor of n bytes travels as p chunks of n / p bytes; each of the two phases has "
            "p - 1 steps. With one worker there is nothing to send.",
            "Multiply the number of steps by the time of one step; check that for large n the bytes each worker "
            "sends tend to twice the tensor's size, whatever p is.",
        ),
        misconceptions=(
            Misconception(
                "the reduce-scatter's time only",
                "The reduce-scatter leaves each worker with one complete chunk; the all-gather needs as many steps "
                "again, so the all-reduce sends twice the reduce-scatter's volume.",
                _time_variant(volume=1.0),
            ),
            Misconception(
                "the whole tensor sent at every step",
                "A ring step sends one chunk of n / p bytes, not the whole tensor: that is why the volume per "
                "worker stays near 2n whatever the number of workers.",
                _time_variant(whole=True),
            ),
            Misconception(
                "the latency paid once",
                "Every step of the ring waits for its messages to arrive, so the latency is paid at each of the "
                "2 (p - 1) steps; for small messages it dominates.",
                _time_variant(latency_once=True),
            ),
        ),
    ),
    Question(
        id="16.4", sheet=SHEET, title="Debug a simulated data-parallel training loop", func_name="data_parallel",
        points=2, reference=full_batch_reference, make_cases=_train_cases, call=_train_call, kind="debug",
        atol=1e-12,
        hints=(
            "With equal shards, p workers that each differentiate the mean loss of their own shard and then "
            "average the gradients take exactly the step one process takes with the whole batch.",
            "x.chunk(world_size) gives the p shards of (n / p, D); each worker's gradient is a (D,) tensor, and "
            "after the all-reduce every worker applies the same update.",
            "Print, for one step, which shard each worker reads and the size of the combined gradient next to "
            "the full-batch gradient of the same w.",
        ),
        misconceptions=(
            Misconception(
                "gradients summed, not averaged",
                "The sum of p shard-mean gradients is p times the full-batch gradient: the loop then trains with a "
                "learning rate p times too large, which can diverge as workers are added.",
                _train_variant(summed=True, same_shard=False),
            ),
            Misconception(
                "every worker on the same shard",
                "Data parallelism gives each worker a different part of the batch (what DistributedSampler does); "
                "workers that read the same shard see 1/p of the data p times.",
                _train_variant(summed=False, same_shard=True),
            ),
            Misconception(
                "both planted bugs left in",
                "The listing has two independent bugs, one in how it combines the gradients and one in which data "
                "each worker reads; fixing either alone still changes the parameters.",
                _train_variant(summed=True, same_shard=True),
            ),
        ),
    ),
]
