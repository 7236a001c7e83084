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
# # 15 · Exercises: the arithmetic of a model server
#
# Student sheet: <a href="https://colab.research.google.com/github/nn-from-scratch/course/blob/main/exercises/15_serving.ipynb" target="_parent"><img src="https://colab.research.google.com/assets/colab-badge.svg" alt="Open In Colab"/></a>
# · with solutions: [solutions/15_serving.ipynb](https://colab.research.google.com/github/nn-from-scratch/course/blob/main/solutions/15_serving.ipynb)
#
# Four exercises on the lecture `notebooks/15_serving.ipynb`, on the decisions and measurements
# of a server that batches requests: the **flush policy** of dynamic batching as a pure
# function, a latency **percentile** (the p95 the lecture reports), a **debugging** question (a
# report of latencies and throughput from a batch schedule that runs and gives wrong numbers),
# and a **derivation**: the smallest batch size that keeps up with a given arrival rate.
#
# Replace each `raise NotImplementedError(...)` with your code and run the `check(...)` cell below
# it: it compares your function with the course's reference (`course_lib.serving`) on several
# inputs (an empty queue, a wait of exactly the limit, a single latency, schedules with and
# without idle time) and reports the first mismatch. When your answer looks like a typical
# mistake, the check names it and says which idea it gets wrong; each further failure shows one
# more hint, and `hint("15.2")` (with any question's number) asks for the next hint without
# running the check. Use plain Python (`sorted`, `math`), not `course_lib.serving` or NumPy's
# percentile: the point is to write them yourself. Times are in milliseconds. At the end, your
# functions measure a simulated server with and without batching.

# %% tags=["setup"]
# Setup. On Colab this installs course_lib from the course repository (Colab keeps its own
# torch and ipywidgets); everywhere else it does nothing.
import sys

if "google.colab" in sys.modules:
    get_ipython().run_line_magic("pip", "install --quiet git+https://github.com/nn-from-scratch/course")

# %%
import math

from course_lib.check import check, hint, use
from course_lib.device import seed_everything

seed_everything(0)

# %% [markdown]
# ## 15.1 The dynamic-batching policy (1 point)
#
# A model run on $b$ inputs at once costs much less than $b$ separate runs, so a server collects
# requests in a queue and runs them together. The worker asks, whenever it is free and something
# changes, whether to start a batch now. With `queue_len` requests waiting, the oldest for
# `oldest_wait_ms` milliseconds, the policy flushes (returns `True`) when
#
# $$\text{queue\_len} \ge \text{max\_batch} \quad\text{or}\quad
# \big(\text{queue\_len} > 0 \ \text{and}\ \text{oldest\_wait\_ms} \ge \text{max\_wait\_ms}\big),$$
#
# and returns `False` otherwise: a full batch goes at once, and no request waits for company
# longer than `max_wait_ms`. (`max_batch = 1` is serving without batching; `max_wait_ms = 0`
# never waits for company.) Write it.

# %%
def should_flush(queue_len: int, oldest_wait_ms: float, max_batch: int, max_wait_ms: float) -> bool:
    """True when the queued requests should run now as one batch."""
    raise NotImplementedError("Exercise 15.1: replace this line with your code")


# %%
check("15.1", should_flush)

# %% [markdown]
# ## 15.2 A latency percentile (2 points)
#
# A server is judged by its slow requests: the **p95** latency is the value that 95 % of the
# requests do not exceed. Sort the $n$ samples, $x_{(0)} \le x_{(1)} \le \dots \le x_{(n-1)}$,
# place the $q$-th percentile ($0 \le q \le 100$) at the fractional rank $r = (n - 1)\,q / 100$
# and interpolate linearly between the two samples around it:
#
# $$P_q = x_{(\lfloor r \rfloor)} + (r - \lfloor r \rfloor)\,\big(x_{(\lfloor r \rfloor + 1)} - x_{(\lfloor r \rfloor)}\big)$$
#
# (with $x_{(n)} := x_{(n-1)}$, so that $q = 100$ gives the largest sample). This is NumPy's
# default `numpy.percentile` (method `"linear"`, type 7 of Hyndman and Fan, 1996, "Sample
# Quantiles in Statistical Packages"). `samples` is a non-empty list
# of floats in any order; return a `float`.

# %%
def percentile(samples: list, q: float) -> float:
    """The q-th percentile (0 <= q <= 100) of samples, linear interpolation between closest ranks."""
    raise NotImplementedError("Exercise 15.2: replace this line with your code")


# %%
check("15.2", percentile)

# %% [markdown]
# ## 15.3 Debug the report of a batch schedule (2 points)
#
# A simulation of one worker (`course_lib.serving.simulate.simulate_batching`, used at the end
# of this sheet) returns a **schedule**: one record `(start_ms, end_ms, size)` per batch, in
# order, each batch taking the next `size` requests in arrival order. `arrivals_ms` holds the
# arrival times, sorted. The report the lecture needs is each request's **latency**, from its
# arrival until its answer is ready, in arrival order, and the **throughput**: the requests
# answered per second over the run, from the first arrival to the end of the last batch. A
# colleague wrote this report; it runs without an error, and its numbers look too good:

# %%
def buggy_schedule_report(arrivals_ms, batches):
    """-> (latency of every request in ms, throughput in requests per second)."""
    latencies, i = [], 0
    for start, end, size in batches:
        for arrival in arrivals_ms[i:i + size]:
            latencies.append(end - start)
        i += size
    busy_ms = sum(end - start for start, end, size in batches)
    return latencies, 1000.0 * len(arrivals_ms) / busy_ms


# %% [markdown]
# Find the bugs (print each request's arrival, its batch's start and end on a small schedule)
# and write the repaired `schedule_report` with the same signature and outputs: the list of
# latencies in milliseconds and the throughput in requests per second.

# %%
def schedule_report(arrivals_ms, batches):
    """-> (latency of every request in ms, throughput in requests per second)."""
    raise NotImplementedError("Exercise 15.3: replace this line with your code")


# %%
check("15.3", schedule_report)

# %% [markdown]
# ## 15.4 The smallest batch that keeps up (2 points)
#
# Model the time of a batch of $b$ requests as $t(b) = t_0 + c\,b$ milliseconds: a fixed cost
# $t_0$ (`fixed_ms`: reading the weights, the call itself) and a cost per request $c$
# (`per_item_ms`). Requests arrive at `rate_per_s` per
# second. A worker that always runs full batches of $b$ keeps up when it answers at least as many
# requests per second as arrive; otherwise the queue grows without limit. **Derive** the
# smallest batch size $b \ge 1$ that keeps up and return it (an `int`). The cases satisfy
# $\text{rate\_per\_s} \cdot c < 1000$ (otherwise no batch size would do), and the bound is never
# exactly a whole number.

# %%
def min_batch_for_rate(rate_per_s: float, fixed_ms: float, per_item_ms: float) -> int:
    """The smallest batch size whose throughput reaches rate_per_s with batches of fixed_ms + per_item_ms * b."""
    raise NotImplementedError("Exercise 15.4: replace this line with your code")


# %%
check("15.4", min_batch_for_rate)

# %% [markdown]
# ## Putting them to work
#
# A simulated server: 400 requests arriving as a Poisson process of 300 requests per second
# (`poisson_arrivals`, seeded), a worker whose batches take $t(b) = 8 + 1.5\,b$ ms. Your 15.4
# (or the reference's) says how large a batch must be to keep up; `simulate_batching` schedules
# the requests with batches of one and with batches up to 16 (waiting at most 5 ms for company),
# and your report and percentile (or the references') measure each. Your policy of 15.1 then
# replays the batched schedule: at the start of every batch it should have said "flush" (the
waits are rounded to the nanosecond first: in floating point, $(a + 5) - a$ can come out as
$4.999\dots$).

# %%
from course_lib.serving.simulate import poisson_arrivals, simulate_batching

flush, pct, report, smallest = (use("15.1", should_flush), use("15.2", percentile), use("15.3", schedule_report),
                                use("15.4", min_batch_for_rate))
rate, fixed, per_item = 300.0, 8.0, 1.5
needed = smallest(rate, fixed, per_item)
print(f"at {rate:.0f} requests/s with t(b) = {fixed} + {per_item} b ms, batches of at least {needed} keep up")
arrivals = poisson_arrivals(rate, 400, seed=0)
print(f"this sample of 400 arrivals comes at {1000 * len(arrivals) / arrivals[-1]:.1f} requests/s on average")
summary = {}
for max_batch, max_wait in ((1, 0.0), (16, 5.0)):
    schedule = simulate_batching(arrivals, lambda b: fixed + per_item * b, max_batch, max_wait)
    latencies, throughput = report(arrivals, schedule)
    summary[max_batch] = {"p50": pct(latencies, 50), "p95": pct(latencies, 95), "throughput": throughput,
                          "mean batch": len(arrivals) / len(schedule)}
    print(f"max_batch={max_batch:2d}: p50 {summary[max_batch]['p50']:8.1f} ms, p95 {summary[max_batch]['p95']:8.1f} ms, "
          f"{throughput:6.1f} requests/s, mean batch {summary[max_batch]['mean batch']:.1f}")

# %% [markdown]
# Compare each throughput with the rate at which the requests actually came: with batches the
# worker answers about as fast as they arrive (it is idle part of the time, so its batches can
# average fewer than the bound of 15.4, which assumes a worker always busy); one request at a time
# answers far fewer per second, so its queue, and with it the p95, grows with every request.

# %%
flush_said_yes, i = 0, 0
for start, end, size in schedule:  # the batched schedule of the last loop
    waiting = sum(1 for t in arrivals[i:] if t <= start)
    waited = round(start - arrivals[i], 6)  # to the nanosecond: in floating point, (a + 5) - a can be 4.999...
    flush_said_yes += bool(flush(waiting, waited, 16, 5.0))
    i += size
print(f"your policy says flush at the start of {flush_said_yes} of {len(schedule)} batches")
