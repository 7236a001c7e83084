"""Batching policies of a model server, simulated: pure, deterministic, no threads, no clock.

Two simulations, one worker (one model replica) each:

* :func:`simulate_batching` - **dynamic batching** of independent requests (an embedding, a
  classification, or a whole generation treated as one job): requests queue; the worker takes a
  batch when it is free *and* the queue holds ``max_batch`` requests or its oldest request has
  waited ``max_wait_ms`` (the rule of :func:`course_lib.serving.batching.should_flush`). A batch
  of ``b`` requests occupies the worker for ``service_ms(b)``.
* :func:`simulate_continuous_batching` - generation, one token per **decoding step**. *Static*
  batching keeps a batch together until its longest sequence is finished (finished rows are
  padding); *continuous* (iteration-level) batching lets sequences leave and waiting ones join
  at every step (Yu et al., 2022, "Orca", OSDI).

Times are in milliseconds from an arbitrary origin. Both functions return plain records, so a
notebook can plot them and a test can check them against a brute-force tick-by-tick simulation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, List, Sequence, Tuple

Batch = Tuple[float, float, int]  # (start_ms, end_ms, batch size)


def _arrivals(fn: str, arrivals_ms: Sequence[float]) -> List[float]:
    if isinstance(arrivals_ms, (str, bytes)) or not hasattr(arrivals_ms, "__len__"):
        raise TypeError(f"{fn}: arrivals_ms should be a sequence of numbers, got {type(arrivals_ms).__name__}")
    out = []
    for i, a in enumerate(arrivals_ms):
        if hasattr(a, "item"):
            a = a.item()
        if isinstance(a, bool) or not isinstance(a, (int, float)) or not math.isfinite(a):
            raise ValueError(f"{fn}: arrivals_ms should hold finite numbers, got {a!r} at index {i}")
        if out and a < out[-1]:
            raise ValueError(f"{fn}: arrivals_ms should be sorted (non-decreasing), got {a} after {out[-1]} "
                             f"at index {i}")
        out.append(float(a))
    return out


def _positive_int(fn: str, name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{fn}: {name} should be an int >= 1, got {value!r}")
    return value


def _wait(fn: str, max_wait_ms: object) -> float:
    if isinstance(max_wait_ms, bool) or not isinstance(max_wait_ms, (int, float)) or not 0 <= max_wait_ms < math.inf:
        raise ValueError(f"{fn}: max_wait_ms should be a finite number >= 0, got {max_wait_ms!r}")
    return float(max_wait_ms)


def _cost(fn: str, service_ms: Callable[[int], float], b: int) -> float:
    t = service_ms(b)
    if isinstance(t, bool) or not isinstance(t, (int, float)) or not 0 <= t < math.inf:
        raise ValueError(f"{fn}: service_ms({b}) should return a finite number >= 0, got {t!r}")
    return float(t)


def simulate_batching(arrivals_ms: Sequence[float], service_ms: Callable[[int], float], max_batch: int,
                      max_wait_ms: float) -> List[Batch]:
    """Dynamic batching on one FIFO worker: ``[(start_ms, end_ms, size), ...]`` per batch, in order.

    ``arrivals_ms`` (N,) sorted arrival times; ``service_ms(b)`` the time a batch of ``b`` takes.
    Let request ``i`` be the oldest waiting one and ``free`` the time the worker becomes free. The
    queue is flushed at

    ``start = max(free, min(arrivals[i] + max_wait_ms, arrivals[i + max_batch - 1]))``

    (the later term only if that request exists): the first moment the worker is free and either
    the queue is full or its oldest request has waited long enough. The batch is every request
    arrived by ``start``, at most ``max_batch``. ``max_batch=1`` is serving without batching;
    ``max_wait_ms=0`` never waits for company (it takes what has queued while the worker was busy).
    """
    fn = "simulate_batching"
    a = _arrivals(fn, arrivals_ms)
    B = _positive_int(fn, "max_batch", max_batch)
    wait = _wait(fn, max_wait_ms)
    if not callable(service_ms):
        raise TypeError(f"{fn}: service_ms should be a function batch size -> milliseconds, "
                        f"got {type(service_ms).__name__}")
    batches: List[Batch] = []
    i, free, n = 0, -math.inf, len(a)
    while i < n:
        full_at = a[i + B - 1] if i + B - 1 < n else math.inf
        start = max(free, min(a[i] + wait, full_at))
        j = i
        while j < n and j - i < B and a[j] <= start:
            j += 1
        end = start + _cost(fn, service_ms, j - i)
        batches.append((start, end, j - i))
        i, free = j, end
    return batches


def latencies_from_simulation(arrivals_ms: Sequence[float], batches: Sequence[Batch]) -> List[float]:
    """Latency (end of its batch - arrival) of every request, in arrival order, from the records of
    :func:`simulate_batching` (batches take the requests in FIFO order)."""
    fn = "latencies_from_simulation"
    a = _arrivals(fn, arrivals_ms)
    if sum(b[2] for b in batches) != len(a):
        raise ValueError(f"{fn}: the batches hold {sum(b[2] for b in batches)} requests, "
                         f"but arrivals_ms has {len(a)}")
    out, i = [], 0
    for _, end, size in batches:
        out.extend(end - t for t in a[i:i + size])
        i += size
    return out


def poisson_arrivals(rate_per_s: float, n: int, seed: int = 0) -> List[float]:
    """``n`` arrival times (ms) of a Poisson process of ``rate_per_s`` requests per second
    (independent exponential gaps of mean ``1000 / rate_per_s`` ms), seeded."""
    import random

    fn = "poisson_arrivals"
    if isinstance(rate_per_s, bool) or not isinstance(rate_per_s, (int, float)) or not 0 < rate_per_s < math.inf:
        raise ValueError(f"{fn}: rate_per_s should be a finite number > 0, got {rate_per_s!r}")
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ValueError(f"{fn}: n should be an int >= 0, got {n!r}")
    rng = random.Random(seed)
    t, out = 0.0, []
    for _ in range(n):
        t += rng.expovariate(rate_per_s / 1000.0)
        out.append(t)
    return out


@dataclass
class DecodeSimulation:
    """What :func:`simulate_continuous_batching` returns.

    ``steps``: one ``(start_ms, end_ms, running)`` per decoding step, ``running`` the indices of the
    requests that receive a token in that step; ``slots``: the batch width each step is paid for;
    ``first_token_ms`` / ``finish_ms``: per request, the end of its first / last step.
    """

    policy: str
    steps: List[Tuple[float, float, Tuple[int, ...]]] = field(default_factory=list)
    slots: List[int] = field(default_factory=list)
    first_token_ms: List[float] = field(default_factory=list)
    finish_ms: List[float] = field(default_factory=list)

    def latencies(self, arrivals_ms: Sequence[float]) -> List[float]:
        """Time from arrival to the last token, per request."""
        return [f - a for f, a in zip(self.finish_ms, arrivals_ms)]

    def utilisation(self) -> float:
        """Tokens produced / slots paid for (1 = no padding, no empty slot)."""
        paid = sum(self.slots)
        return sum(len(r) for _, _, r in self.steps) / paid if paid else 1.0


def simulate_continuous_batching(arrivals_ms: Sequence[float], lengths: Sequence[int], max_batch: int,
                                 step_ms: Callable[[int], float] = lambda b: 1.0,
                                 policy: str = "continuous") -> DecodeSimulation:
    """Generation of ``lengths[i]`` tokens for request ``i`` (arriving at ``arrivals_ms[i]``) on one
    worker that decodes one token for each of up to ``max_batch`` sequences per step.

    A step over a batch of width ``b`` takes ``step_ms(b)``. ``policy="static"``: when the worker is
    idle it takes up to ``max_batch`` waiting requests and steps until the longest is done; a row
    whose sequence has finished is padding, still paid for (the width stays ``b``), and newcomers
    wait for the whole batch. ``policy="continuous"``: before every step, finished sequences leave
    and waiting ones join (FIFO) up to ``max_batch``; the width is the number running. The prompt's
    prefill is not modelled (each step is one token for every running sequence).
    """
    fn = "simulate_continuous_batching"
    a = _arrivals(fn, arrivals_ms)
    if isinstance(lengths, (str, bytes)) or not hasattr(lengths, "__len__") or len(lengths) != len(a):
        raise ValueError(f"{fn}: lengths should be a sequence of {len(a)} ints (one per arrival), got {lengths!r}")
    n_tok = [_positive_int(fn, f"lengths[{i}]", int(x) if hasattr(x, "item") else x) for i, x in enumerate(lengths)]
    B = _positive_int(fn, "max_batch", max_batch)
    if policy not in ("continuous", "static"):
        raise ValueError(f"{fn}: policy should be 'continuous' or 'static', got {policy!r}")
    if not callable(step_ms):
        raise TypeError(f"{fn}: step_ms should be a function batch width -> milliseconds")
    n = len(a)
    sim = DecodeSimulation(policy, first_token_ms=[math.nan] * n, finish_ms=[math.nan] * n)
    done = [0] * n
    t, nxt = 0.0 if not a else min(0.0, a[0]), 0  # nxt: the first request not yet admitted
    running: List[int] = []
    width = 0
    while nxt < n or running:
        if not running or policy == "continuous":
            room = B - len(running)
            while room and nxt < n and a[nxt] <= t:
                running.append(nxt)
                nxt, room = nxt + 1, room - 1
            width = len(running)
        if not running:  # idle until the next arrival
            t = a[nxt]
            continue
        end = t + _cost(fn, step_ms, width)
        sim.steps.append((t, end, tuple(running)))
        sim.slots.append(width)
        for r in running:
            done[r] += 1
            if done[r] == 1:
                sim.first_token_ms[r] = end
            if done[r] == n_tok[r]:
                sim.finish_ms[r] = end
        running = [r for r in running if done[r] < n_tok[r]]
        t = end
    return sim
