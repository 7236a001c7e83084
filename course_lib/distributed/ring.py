"""Ring all-reduce from scratch, on real processes and on simulated workers.

``p`` workers each hold a tensor of the same shape; an all-reduce (SUM) leaves every worker with
the elementwise sum of all of them. The ring algorithm (Patarasuk & Yuan, 2009; popularised for deep
learning by data-parallel training libraries) cuts the flattened tensor of ``n`` elements into ``p``
chunks (sizes differ by at most one, like ``torch.tensor_split``; some are empty when ``n < p``) and
arranges the workers in a ring ``r -> r+1 (mod p)``:

1. **reduce-scatter**, ``p - 1`` steps: at step ``s`` worker ``r`` sends its running sum of chunk
   ``(r - s) mod p`` to worker ``r + 1``, which adds it to its own copy. Afterwards worker ``r`` holds
   the complete sum of chunk ``(r + 1) mod p``.
2. **all-gather**, ``p - 1`` steps: at step ``s`` worker ``r`` sends the complete chunk
   ``(r + 1 - s) mod p`` to worker ``r + 1``, which overwrites its copy.

Each worker sends (and receives) ``2 (p - 1)`` chunks of ``n / p`` elements, i.e.
``2 (p - 1) / p * n`` elements: almost ``2 n`` whatever ``p`` is. The alpha-beta model prices one
message of ``b`` bytes at ``alpha + b / beta`` (latency ``alpha`` in s, bandwidth ``beta`` in B/s).
"""

from __future__ import annotations

from typing import Any, List, Optional, Sequence, Tuple

import torch

Tensor = torch.Tensor


# --- chunks -------------------------------------------------------------------------------------
def chunk_bounds(n: int, world_size: int) -> List[Tuple[int, int]]:
    """``[(start, stop), ...]`` of the ``world_size`` chunks of ``n`` elements (as ``torch.tensor_split``:
    the first ``n % world_size`` chunks have one element more; chunks are empty when ``n < world_size``)."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ValueError(f"chunk_bounds: expected n a non-negative int, got {n!r}")
    if isinstance(world_size, bool) or not isinstance(world_size, int) or world_size < 1:
        raise ValueError(f"chunk_bounds: expected world_size an int >= 1, got {world_size!r}")
    q, extra = divmod(n, world_size)
    bounds, start = [], 0
    for i in range(world_size):
        stop = start + q + (1 if i < extra else 0)
        bounds.append((start, stop))
        start = stop
    return bounds


def _check_workers(name: str, worker_tensors: Sequence[Tensor]) -> None:
    if isinstance(worker_tensors, Tensor) or not isinstance(worker_tensors, (list, tuple)):
        raise TypeError(f"{name}: expected a list of tensors (one per worker), got {type(worker_tensors).__name__}")
    if len(worker_tensors) == 0:
        raise ValueError(f"{name}: expected at least one worker tensor, got an empty list")
    for i, t in enumerate(worker_tensors):
        if not isinstance(t, Tensor):
            raise TypeError(f"{name}: expected worker {i} to hold a torch.Tensor, got {type(t).__name__}")
    first = worker_tensors[0]
    if first.dtype == torch.bool:
        raise TypeError(f"{name}: expected a numeric dtype (a SUM of booleans is not defined), got torch.bool")
    for i, t in enumerate(worker_tensors):
        if t.shape != first.shape:
            raise ValueError(f"{name}: expected every worker tensor to have shape {tuple(first.shape)} "
                             f"(worker 0), got {tuple(t.shape)} on worker {i}")
        if t.dtype != first.dtype:
            raise TypeError(f"{name}: expected every worker tensor to have dtype {first.dtype} "
                            f"(worker 0), got {t.dtype} on worker {i}")


# --- simulated workers (no processes) ------------------------------------------------------------
def simulate_reduce_scatter(worker_tensors: Sequence[Tensor]) -> List[Tensor]:
    """The reduce-scatter phase on ``p`` simulated workers.

    ``worker_tensors``: ``p`` tensors of one shape and dtype (not modified). Returns ``p`` flat
    buffers of ``n`` elements (copies): afterwards buffer ``r`` holds the complete sum of chunk
    ``(r + 1) mod p`` (:func:`chunk_bounds`) and partial sums elsewhere.
    """
    _check_workers("simulate_reduce_scatter", worker_tensors)
    p = len(worker_tensors)
    bufs = [t.detach().reshape(-1).clone() for t in worker_tensors]
    bounds = chunk_bounds(bufs[0].numel(), p)
    for s in range(p - 1):
        # every worker sends at the same time: read all messages before anyone adds
        messages = []
        for r in range(p):
            lo, hi = bounds[(r - s) % p]
            messages.append(bufs[r][lo:hi].clone())
        for r in range(p):
            dst = (r + 1) % p
            lo, hi = bounds[(r - s) % p]
            bufs[dst][lo:hi] += messages[r]
    return bufs


def simulate_all_gather(worker_buffers: Sequence[Tensor]) -> List[Tensor]:
    """The all-gather phase on ``p`` simulated workers.

    ``worker_buffers``: ``p`` flat buffers where buffer ``r`` holds the finished chunk ``(r + 1) mod p``
    (the output of :func:`simulate_reduce_scatter`). Returns ``p`` flat copies in which every chunk is
    the finished one: all buffers equal, element for element.
    """
    _check_workers("simulate_all_gather", worker_buffers)
    p = len(worker_buffers)
    bufs = [t.detach().reshape(-1).clone() for t in worker_buffers]
    bounds = chunk_bounds(bufs[0].numel(), p)
    for s in range(p - 1):
        messages = []
        for r in range(p):
            lo, hi = bounds[(r + 1 - s) % p]
            messages.append(bufs[r][lo:hi].clone())
        for r in range(p):
            dst = (r + 1) % p
            lo, hi = bounds[(r + 1 - s) % p]
            bufs[dst][lo:hi] = messages[r]
    return bufs


def simulate_ring_allreduce(worker_tensors: Sequence[Tensor]) -> List[Tensor]:
    """Ring all-reduce (SUM) on ``p`` simulated workers: reduce-scatter, then all-gather.

    ``worker_tensors``: ``p`` tensors of one shape ``S`` and dtype (not modified). Returns ``p`` new
    tensors of shape ``S``, all equal to the elementwise sum (each chunk summed in ring order, so
    rounding may differ from ``torch.stack(...).sum(0)`` in the last bits for ``p >= 3``).
    """
    _check_workers("simulate_ring_allreduce", worker_tensors)
    shape = worker_tensors[0].shape
    return [b.reshape(shape) for b in simulate_all_gather(simulate_reduce_scatter(worker_tensors))]


# --- real processes ------------------------------------------------------------------------------
def ring_allreduce(tensor: Tensor, group: Optional[Any] = None) -> Tensor:
    """All-reduce (SUM) ``tensor`` in place over the process group with point-to-point messages.

    Call it on every rank with a contiguous tensor of the same shape and dtype (any shape ``S``);
    returns ``tensor``, which then holds the sum over ranks, like ``dist.all_reduce(tensor)``.
    Each step posts a non-blocking send (``dist.isend``) to the next rank and a blocking
    ``dist.recv`` from the previous one, so that all ranks send and receive at the same time.
    """
    import torch.distributed as dist

    if not isinstance(tensor, Tensor):
        raise TypeError(f"ring_allreduce: expected a torch.Tensor, got {type(tensor).__name__}")
    if not (dist.is_available() and dist.is_initialized()):
        raise RuntimeError("ring_allreduce: expected an initialised process group (call "
                           "dist.init_process_group first, e.g. in a script run by torchrun), got none")
    if tensor.dtype == torch.bool:
        raise TypeError("ring_allreduce: expected a numeric dtype (a SUM of booleans is not defined), got torch.bool")
    if not tensor.is_contiguous():
        raise ValueError(f"ring_allreduce: expected a contiguous tensor (it is reduced in place through a flat "
                         f"view, as dist.all_reduce requires), got strides {tensor.stride()} for shape "
                         f"{tuple(tensor.shape)}; pass tensor.contiguous() and copy the result back")
    p = dist.get_world_size(group)
    rank = dist.get_rank(group)
    # every rank must bring the same number of elements and dtype: check with one small collective,
    # so that a mismatch raises the same error on every rank instead of hanging in recv
    meta = torch.tensor([tensor.numel(), _dtype_code(tensor.dtype)], dtype=torch.int64)
    everyone = [torch.zeros_like(meta) for _ in range(p)]
    dist.all_gather(everyone, meta, group=group)
    if any(not torch.equal(m, everyone[0]) for m in everyone):
        seen = [(int(m[0]), _CODES[int(m[1])]) for m in everyone]
        raise ValueError(f"ring_allreduce: expected the same number of elements and dtype on every rank, "
                         f"got (numel, dtype) per rank {seen}")
    if p == 1:
        return tensor

    def peer(r: int) -> int:
        return r if group is None else dist.get_global_rank(group, r)

    nxt, prev = peer((rank + 1) % p), peer((rank - 1) % p)
    flat = tensor.view(-1)
    bounds = chunk_bounds(flat.numel(), p)
    for s in range(p - 1):  # reduce-scatter
        send_lo, send_hi = bounds[(rank - s) % p]
        recv_lo, recv_hi = bounds[(rank - s - 1) % p]
        req = dist.isend(flat[send_lo:send_hi].clone(), nxt, group=group) if send_hi > send_lo else None
        if recv_hi > recv_lo:
            incoming = torch.empty(recv_hi - recv_lo, dtype=flat.dtype)
            dist.recv(incoming, prev, group=group)
            flat[recv_lo:recv_hi] += incoming
        if req is not None:
            req.wait()
    for s in range(p - 1):  # all-gather
        send_lo, send_hi = bounds[(rank + 1 - s) % p]
        recv_lo, recv_hi = bounds[(rank - s) % p]
        req = dist.isend(flat[send_lo:send_hi].clone(), nxt, group=group) if send_hi > send_lo else None
        if recv_hi > recv_lo:
            incoming = torch.empty(recv_hi - recv_lo, dtype=flat.dtype)
            dist.recv(incoming, prev, group=group)
            flat[recv_lo:recv_hi] = incoming
        if req is not None:
            req.wait()
    return tensor


_CODES = [torch.float64, torch.float32, torch.float16, torch.bfloat16, torch.int64, torch.int32, torch.int16,
          torch.int8, torch.uint8, torch.complex64, torch.complex128]


def _dtype_code(dtype: torch.dtype) -> int:
    if dtype not in _CODES:
        raise TypeError(f"ring_allreduce: expected one of the dtypes {[str(d) for d in _CODES]}, got {dtype}")
    return _CODES.index(dtype)


# --- communication volume and time ---------------------------------------------------------------
def _check_model_args(name: str, n_bytes: float, world_size: int) -> None:
    if isinstance(n_bytes, bool) or not isinstance(n_bytes, (int, float)) or not n_bytes >= 0:
        raise ValueError(f"{name}: expected n_bytes a number >= 0, got {n_bytes!r}")
    if isinstance(world_size, bool) or not isinstance(world_size, int) or world_size < 1:
        raise ValueError(f"{name}: expected world_size an int >= 1, got {world_size!r}")


def ring_bytes_per_worker(n_bytes: float, world_size: int) -> float:
    """Bytes each worker sends (and receives) in a ring all-reduce of ``n_bytes``: ``2 (p-1)/p * n``."""
    _check_model_args("ring_bytes_per_worker", n_bytes, world_size)
    return 2.0 * (world_size - 1) / world_size * n_bytes


def naive_root_bytes(n_bytes: float, world_size: int) -> float:
    """Bytes the root receives plus sends when all workers send their tensor to one root, which sums
    and sends the result back to each (reduce then broadcast): ``2 (p-1) * n``."""
    _check_model_args("naive_root_bytes", n_bytes, world_size)
    return 2.0 * (world_size - 1) * n_bytes


def allreduce_time_s(n_bytes: float, world_size: int, bandwidth_Bps: float, latency_s: float,
                     algorithm: str = "ring") -> float:
    """Alpha-beta time of an all-reduce of ``n_bytes`` over ``world_size`` workers.

    * ``"ring"``: ``2 (p-1)`` steps, each one message of ``n/p`` bytes per link, all links busy at once:
      ``2 (p-1) * (latency + n / (p * bandwidth))``.
    * ``"naive"``: the root receives ``p-1`` whole tensors one after the other on its link, then sends
      ``p-1`` results: ``2 (p-1) * (latency + n / bandwidth)``.

    Zero for one worker. Ignores the time of the additions and any overlap with computation.
    """
    _check_model_args("allreduce_time_s", n_bytes, world_size)
    if isinstance(bandwidth_Bps, bool) or not isinstance(bandwidth_Bps, (int, float)) or not bandwidth_Bps > 0:
        raise ValueError(f"allreduce_time_s: expected bandwidth_Bps a number > 0, got {bandwidth_Bps!r}")
    if isinstance(latency_s, bool) or not isinstance(latency_s, (int, float)) or not latency_s >= 0:
        raise ValueError(f"allreduce_time_s: expected latency_s a number >= 0, got {latency_s!r}")
    p = world_size
    if algorithm == "ring":
        return 2.0 * (p - 1) * (latency_s + n_bytes / (p * bandwidth_Bps))
    if algorithm == "naive":
        return 2.0 * (p - 1) * (latency_s + n_bytes / bandwidth_Bps)
    raise ValueError(f"allreduce_time_s: expected algorithm 'ring' or 'naive', got {algorithm!r}")


def fit_alpha_beta(n_bytes: Sequence[float], seconds: Sequence[float], world_size: int) -> Tuple[float, float]:
    """Least-squares ``(latency_s, bandwidth_Bps)`` of the ring model
    ``t = 2(p-1) alpha + 2(p-1)/p * n / beta`` from measured all-reduce times (``world_size >= 2``).

    The residuals are relative (each equation divided by its measured time), so that a 4-byte and a
    10 MB message weigh the same: in absolute seconds the largest message alone would set both
    parameters and the latency would come out near zero. ``alpha`` is clipped at 0; ``beta`` is
    ``inf`` when the fitted slope is not positive."""
    if len(n_bytes) != len(seconds) or len(n_bytes) < 2:
        raise ValueError(f"fit_alpha_beta: expected two equal-length sequences of >= 2 measurements, "
                         f"got {len(n_bytes)} sizes and {len(seconds)} times")
    if world_size < 2:
        raise ValueError(f"fit_alpha_beta: expected world_size >= 2, got {world_size}")
    p = world_size
    a = torch.tensor([[2.0 * (p - 1), 2.0 * (p - 1) / p * float(n)] for n in n_bytes], dtype=torch.float64)
    t = torch.tensor([float(x) for x in seconds], dtype=torch.float64).unsqueeze(1)
    if not bool((t > 0).all()):
        raise ValueError(f"fit_alpha_beta: expected positive times, got {[float(x) for x in seconds]}")
    coef = torch.linalg.lstsq(a / t, torch.ones_like(t)).solution.squeeze(1)
    alpha, inv_beta = float(coef[0]), float(coef[1])
    return max(alpha, 0.0), (1.0 / inv_beta if inv_beta > 0 else float("inf"))
