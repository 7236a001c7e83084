"""Questions of sheet 15_serving: the arithmetic of a model server. The dynamic-batching policy
as a pure function, a latency percentile, a debugging question (the latencies and throughput of a
batch schedule) and a derivation (the smallest batch that keeps up with an arrival rate).

Each question carries its hint tiers and the typical mistakes (misconceptions) that
:func:`course_lib.check.check` recognises by name. The references come from
:mod:`course_lib.serving` (``batching.should_flush``, ``stats.percentile``,
``simulate.latencies_from_simulation``), imported when a reference first runs.
"""

from __future__ import annotations

import math
from typing import Any, Callable, List, Sequence, Tuple

import torch

from course_lib.questions import Case, Misconception, Question

SHEET = "15_serving"
F64 = torch.float64


# --- 15.1 the flush policy -----------------------------------------------------------------------
def should_flush_reference(queue_len: int, oldest_wait_ms: float, max_batch: int, max_wait_ms: float) -> bool:
    """The reference of 15.1: :func:`course_lib.serving.batching.should_flush`."""
    from course_lib.serving.batching import should_flush

    return should_flush(queue_len, oldest_wait_ms, max_batch, max_wait_ms)


def _flush_call(func: Callable[..., Any], case: Case) -> torch.Tensor:
    """Ask ``func`` about every situation (queue_len, oldest_wait_ms) of the case, with the case's
    max_batch and max_wait_ms; a bool tensor of its decisions."""
    situations, max_batch, max_wait_ms = case.args
    return torch.tensor([bool(func(n, w, max_batch, max_wait_ms)) for n, w in situations], dtype=torch.bool)


def _situations(max_batch: int, max_wait_ms: float) -> list:
    """Queue states around every boundary: empty, one short of full, full, over full, times
    below, at and above the limit."""
    lengths = sorted({0, 1, max(max_batch - 1, 0), max_batch, max_batch + 3})
    waits = sorted({0.0, max_wait_ms / 2, max_wait_ms, max_wait_ms + 1.5, 10 * max_wait_ms + 7})
    return [(n, w) for n in lengths for w in waits]


def _flush_cases(gen: torch.Generator, hidden: bool) -> List[Case]:
    specs = [("max_batch=8, max_wait_ms=5", 8, 5.0), ("max_batch=1 (no batching), max_wait_ms=2", 1, 2.0),
             ("max_batch=32, max_wait_ms=0 (never wait for company)", 32, 0.0),
             ("max_batch=4, max_wait_ms=10", 4, 10.0), ("max_batch=2, max_wait_ms=0.5", 2, 0.5)]
    if hidden:
        for _ in range(6):
            specs.append(("", int(torch.randint(1, 65, (1,), generator=gen)),
                          round(float(torch.rand(1, generator=gen)) * 50, 2)))
    return [Case(label or f"max_batch={B}, max_wait_ms={w}", (_situations(B, w), B, w)) for label, B, w in specs]


def _flush_variant(full_only: bool = False, empty_flushes: bool = False, strict: bool = False) -> Callable[..., bool]:
    """A flush policy with the given mistakes (see the misconceptions of 15.1)."""
    def wrong(queue_len, oldest_wait_ms, max_batch, max_wait_ms):
        if queue_len >= max_batch:
            return True
        if full_only:
            return False
        waited = oldest_wait_ms > max_wait_ms if strict else oldest_wait_ms >= max_wait_ms
        return waited and (empty_flushes or queue_len > 0)
    return wrong


# --- 15.2 a latency percentile --------------------------------------------------------------------
QS = (0.0, 50.0, 90.0, 95.0, 99.0, 100.0)


def percentile_reference(samples: Sequence[float], q: float) -> float:
    """The reference of 15.2: :func:`course_lib.serving.stats.percentile` (= numpy.percentile)."""
    from course_lib.serving.stats import percentile

    return percentile(samples, q)


def _percentile_call(func: Callable[..., Any], case: Case) -> torch.Tensor:
    """``func(samples, q)`` for every q of the case, the samples as a plain list of floats."""
    samples, qs = case.args
    return torch.tensor([float(func(list(samples), q)) for q in qs], dtype=F64)


def _percentile_cases(gen: torch.Generator, hidden: bool) -> List[Case]:
    def latencies(n: int) -> list:
        return [round(float(x), 3) for x in torch.empty(n, dtype=F64).exponential_(0.05, generator=gen) + 2.0]

    cases = [
        Case("20 latencies (ms), unsorted", (latencies(20), QS)),
        Case("5 latencies 10, 20, 30, 40, 50 in a shuffled order", ([30.0, 10.0, 50.0, 20.0, 40.0], QS)),
        Case("a single latency", ([7.5], QS)),
        Case("two latencies", ([4.0, 1.0], QS)),
        Case("101 latencies: q lands on a sample", (latencies(101), QS)),
        Case("7 latencies with ties, q = 25, 75, 95", ([3.0, 9.0, 3.0, 12.0, 5.0, 9.0, 40.0], (25.0, 75.0, 95.0))),
    ]
    if hidden:
        for n in (3, 11, 37, 64, 200, 999):
            cases.append(Case(f"{n} latencies, q = 1, 33.3, 95, 99.9", (latencies(n), (1.0, 33.3, 95.0, 99.9))))
    return cases


def _percentile_variant(rule: str) -> Callable[..., float]:
    """A percentile with the given mistake (see the misconceptions of 15.2)."""
    def wrong(samples, q):
        x = list(samples) if rule == "unsorted" else sorted(samples)
        n = len(x)
        if rule == "nearest_rank":
            return x[max(math.ceil(q / 100 * n), 1) - 1]
        rank = q / 100 * (n if rule == "rank_over_n" else n - 1)
        lo = min(math.floor(rank), n - 1)
        hi = min(lo + 1, n - 1)
        return x[lo] + (rank - lo) * (x[hi] - x[lo])
    return wrong


# --- 15.3 debug: latencies and throughput of a schedule ------------------------------------------
def schedule_report_reference(arrivals_ms: Sequence[float], batches: Sequence[Tuple[float, float, int]]) -> tuple:
    """The reference of 15.3: every request's latency (end of its batch - its arrival, ms, from
    :func:`course_lib.serving.simulate.latencies_from_simulation`) and the throughput in requests
    per second: N requests over the span from the first arrival to the last batch's end."""
    from course_lib.serving.simulate import latencies_from_simulation

    latencies = latencies_from_simulation(list(arrivals_ms), [tuple(b) for b in batches])
    span_ms = batches[-1][1] - arrivals_ms[0]
    return latencies, 1000.0 * len(arrivals_ms) / span_ms


def _report_call(func: Callable[..., Any], case: Case) -> tuple:
    """``func(arrivals, batches)`` on plain lists; (latencies as a float64 tensor, throughput)."""
    arrivals, batches = case.args
    latencies, throughput = func(list(arrivals), [tuple(b) for b in batches])
    return torch.tensor([float(x) for x in latencies], dtype=F64), float(throughput)


def _report_variant(from_start: bool, busy_time: bool) -> Callable[..., tuple]:
    """The listing of 15.3 with one or both of its bugs (see the misconceptions of 15.3)."""
    def wrong(arrivals_ms, batches):
        latencies, i = [], 0
        for start, end, size in batches:
            for t in arrivals_ms[i:i + size]:
                latencies.append(end - (start if from_start else t))
            i += size
        if busy_time:
            span_ms = sum(end - start for start, end, _ in batches)
        else:
            span_ms = batches[-1][1] - arrivals_ms[0]
        return latencies, 1000.0 * len(arrivals_ms) / span_ms
    return wrong


def _schedule(arrivals: list, fixed_ms: float, per_item_ms: float, max_batch: int, max_wait_ms: float) -> list:
    from course_lib.serving.simulate import simulate_batching

    return [list(b) for b in simulate_batching(arrivals, lambda b: fixed_ms + per_item_ms * b, max_batch, max_wait_ms)]


def _report_cases(gen: torch.Generator, hidden: bool) -> List[Case]:
    def arrivals(n: int, mean_gap_ms: float) -> list:
        gaps = torch.empty(n, dtype=F64).exponential_(1 / mean_gap_ms, generator=gen)
        return [round(float(t), 3) for t in torch.cumsum(gaps, 0)]

    specs = [("12 requests, gaps ~4 ms, service 10 + 2b ms, max_batch=4, max_wait_ms=3", 12, 4.0, 10.0, 2.0, 4, 3.0),
             ("one request alone", 1, 5.0, 8.0, 1.0, 8, 5.0),
             ("no batching: max_batch=1, 6 requests, gaps ~10 ms, service 6 ms", 6, 10.0, 5.0, 1.0, 1, 0.0),
             ("a burst: 20 requests, gaps ~0.5 ms, max_batch=8, max_wait_ms=2", 20, 0.5, 15.0, 1.0, 8, 2.0),
             ("an idle worker: gaps ~50 ms, service 3 + 1b ms", 5, 50.0, 3.0, 1.0, 4, 1.0)]
    if hidden:
        for i in range(5):
            n, gap = int(torch.randint(2, 60, (1,), generator=gen)), (0.3, 2.0, 7.0, 20.0, 1.0)[i]
            specs.append((f"{n} requests, gaps ~{gap} ms", n, gap, 5.0 + 3 * i, 0.5 + i, 2 + 3 * i, 1.0 + i))
    cases = []
    for label, n, gap, fixed, per_item, B, wait in specs:
        a = arrivals(n, gap)
        cases.append(Case(label, (a, _schedule(a, fixed, per_item, B, wait))))
    return cases


# --- 15.4 the smallest batch that keeps up -------------------------------------------------------
def min_batch_reference(rate_per_s: float, fixed_ms: float, per_item_ms: float) -> int:
    """The reference of 15.4: the smallest batch size b >= 1 whose throughput
    1000 b / (fixed_ms + per_item_ms b) requests per second reaches ``rate_per_s``; requires
    rate_per_s * per_item_ms < 1000 (else no batch size keeps up)."""
    if not rate_per_s * per_item_ms < 1000:
        raise ValueError(f"min_batch_for_rate: no batch size keeps up when rate_per_s * per_item_ms >= 1000, "
                         f"got {rate_per_s} * {per_item_ms}")
    b = max(1, math.ceil(rate_per_s * fixed_ms / (1000 - rate_per_s * per_item_ms)))
    while 1000 * b < rate_per_s * (fixed_ms + per_item_ms * b):  # floating-point safety: exact test
        b += 1
    while b > 1 and 1000 * (b - 1) >= rate_per_s * (fixed_ms + per_item_ms * (b - 1)):
        b -= 1
    return b


def _min_batch_variant(ignore_per_item: bool = False, round_down: bool = False) -> Callable[..., int]:
    """A minimal-batch derivation with the given mistakes (see the misconceptions of 15.4)."""
    def wrong(rate_per_s, fixed_ms, per_item_ms):
        rate = rate_per_s / 1000.0
        x = rate * fixed_ms / (1 - rate * (0.0 if ignore_per_item else per_item_ms))
        return math.floor(x) if round_down else math.ceil(x)
    return wrong


def _min_batch_cases(gen: torch.Generator, hidden: bool) -> List[Case]:
    specs = [("100 requests/s, service 20 + 2b ms", 100.0, 20.0, 2.0),
             ("400 requests/s, service 26.5 + 1.5b ms", 400.0, 26.5, 1.5),
             ("30 requests/s, service 40 + 10b ms", 30.0, 40.0, 10.0),
             ("2000 requests/s, service 7.3 + 0.3b ms", 2000.0, 7.3, 0.3),
             ("950 requests/s, service 3 + 0.9b ms: close to the ceiling", 950.0, 3.0, 0.9)]
    if hidden:
        for _ in range(6):
            per_item = 0.1 + 4.9 * float(torch.rand(1, generator=gen))
            rate = (1000 / per_item) * (0.2 + 0.75 * float(torch.rand(1, generator=gen)))
            fixed = 1.0 + 60 * float(torch.rand(1, generator=gen))
            specs.append((f"{rate:.1f} requests/s, service {fixed:.2f} + {per_item:.3f}b ms", round(rate, 1),
                          round(fixed, 2), round(per_item, 3)))
    return [Case(label, (rate, fixed, per_item)) for label, rate, fixed, per_item in specs]


def _int_call(func: Callable[..., Any], case: Case) -> float:
    """The student's batch size as a float, so that 3 and 3.0 count alike."""
    return float(func(*case.args, **case.kwargs))


QUESTIONS = [
    Question(
        id="15.1", sheet=SHEET, title="The dynamic-batching policy", func_name="should_flush", points=1,
        reference=should_flush_reference, make_cases=_flush_cases, call=_flush_call, kind="implement",
        hints=(
            "A batch should start in two situations: there is no more room in it, or waiting longer would make "
            "the oldest request late; and never when there is nothing to run.",
            "The inputs are counts and milliseconds, the answer one bool. Look at the boundaries: a queue of "
            "exactly max_batch requests, a wait of exactly max_wait_ms, an empty queue whose timer has expired.",
            "Combine a comparison of queue_len with max_batch and a comparison of oldest_wait_ms with max_wait_ms "
            "(guarded by a non-empty queue) with `or`; both comparisons include their limit.",
        ),
        misconceptions=(
            Misconception(
                "flushing only on a full batch (starvation)",
                "At low traffic the batch never fills: without the time limit the first requests wait forever for "
                "companions. The time limit bounds the wait that batching adds to any request.",
                _flush_variant(full_only=True),
            ),
            Misconception(
                "flushing an empty queue",
                "When nothing waits there is nothing to run: a batch of zero requests wastes a call of the model "
                "and, in a loop, spins the worker without end.",
                _flush_variant(empty_flushes=True),
            ),
            Misconception(
                "the time limit not included",
                "max_wait_ms is the longest a request may wait for company: when the oldest has waited exactly "
                "that long, the batch goes; a strict comparison waits one more tick.",
                _flush_variant(strict=True),
            ),
        ),
    ),
    Question(
        id="15.2", sheet=SHEET, title="A latency percentile", func_name="percentile", points=2,
        reference=percentile_reference, make_cases=_percentile_cases, call=_percentile_call, kind="implement",
        rtol=1e-12, atol=1e-12,
        hints=(
            "A percentile is read off the sorted samples: the smallest sits at q = 0, the largest at q = 100, "
            "and between two neighbouring samples the value is interpolated on a straight line.",
            "With n samples sorted, q maps to a fractional position (a rank) between 0 and n - 1; its integer "
            "part picks a sample, its fractional part says how far to go towards the next one.",
            "Compute the rank from q / 100 and n - 1, take floor of it for the lower index (the upper one is the "
            "next, clipped to the last index), and interpolate with the fractional part.",
        ),
        misconceptions=(
            Misconception(
                "nearest-rank instead of interpolated percentile",
                "The nearest-rank definition returns one of the samples (the ceil(q n / 100)-th smallest); the "
                "linear definition of NumPy and of most monitoring tools interpolates between the two samples "
                "around the rank (n - 1) q / 100, so on few samples they differ.",
                _percentile_variant("nearest_rank"),
            ),
            Misconception(
                "the samples not sorted",
                "Latencies arrive in the order the requests finished; a rank only means something in the sorted "
                "order, from the fastest to the slowest.",
                _percentile_variant("unsorted"),
            ),
            Misconception(
                "the rank counted over n instead of n - 1",
                "With n samples the ranks run from 0 to n - 1, so q = 100 must land on the last one: the rank is "
                "(n - 1) q / 100, not n q / 100.",
                _percentile_variant("rank_over_n"),
            ),
        ),
    ),
    Question(
        id="15.3", sheet=SHEET, title="Debug the report of a batch schedule", func_name="schedule_report", points=2,
        reference=schedule_report_reference, make_cases=_report_cases, call=_report_call, kind="debug",
        rtol=1e-9, atol=1e-9,
        hints=(
            "A user's latency runs from the moment the request arrives to the moment its answer is ready; a "
            "server's throughput counts the requests it answered per second of the time it took.",
            "Each batch record is (start_ms, end_ms, size), taking the next `size` requests in arrival order. "
            "Between its arrival and its batch's start a request waits in the queue; the worker may also stand "
            "idle between batches.",
            "Print, for the first case, each request's arrival, its batch's start and end and the latency the "
            "listing reports; then compare the listing's time span with last end minus first arrival.",
        ),
        misconceptions=(
            Misconception(
                "the time in the queue left out",
                "The queue is where batching costs latency: a request waits there for its batch to fill or time "
                "out and for the worker to be free; measured from the batch's start, that wait disappears.",
                _report_variant(from_start=True, busy_time=False),
            ),
            Misconception(
                "throughput over the busy time only",
                "The worker is idle between batches when traffic is light; dividing by the time it computed "
                "gives its peak speed, not the requests it answered per second of the run.",
                _report_variant(from_start=False, busy_time=True),
            ),
            Misconception(
                "both planted bugs left in",
                "The listing has two independent bugs, one in the latency and one in the throughput; fixing "
                "either alone still reports the wrong numbers.",
                _report_variant(from_start=True, busy_time=True),
            ),
        ),
    ),
    Question(
        id="15.4", sheet=SHEET, title="The smallest batch that keeps up", func_name="min_batch_for_rate", points=2,
        reference=min_batch_reference, make_cases=_min_batch_cases, call=_int_call, kind="derive", rtol=0.0,
        atol=0.5,
        hints=(
            "A worker that always runs full batches of b requests answers b requests per service time; it keeps "
            "up when that rate is at least the arrival rate. Larger batches are slower but carry more requests.",
            "Write the throughput of batch size b in requests per second (the service time is in milliseconds), "
            "set it at least rate_per_s, and solve the inequality for b: b appears on both sides.",
            "Collect the terms in b on one side; the bound is a fraction that is rarely a whole number, and a "
            "batch holds a whole number of requests: pick the smallest integer that satisfies the bound.",
        ),
        misconceptions=(
            Misconception(
                "the per-item cost ignored",
                "A batch of b requests takes longer than a batch of one: every extra request adds per_item_ms, "
                "so the fixed cost is not all a larger batch has to amortise, and the bound grows.",
                _min_batch_variant(ignore_per_item=True),
            ),
            Misconception(
                "rounded down",
                "The bound is a minimum: a batch size below it answers fewer requests per second than arrive, and "
                "the queue grows without limit. Round towards the larger integer.",
                _min_batch_variant(round_down=True),
            ),
        ),
    ),
]
