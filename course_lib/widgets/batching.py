"""Explorer of chapter 15: the dynamic-batching trade-off, from the simulator.

:class:`BatchingExplorer` feeds a seeded Poisson stream of requests to
:func:`course_lib.serving.simulate.simulate_batching` (one worker, a batch of ``b`` requests
costs ``fixed + per_item * b`` ms) and shows

* left: the distribution of the latencies as a cumulative curve (the fraction of requests answered
  within x ms, log scale) with the p50, p95 and p99 lines;
* right: how many batches of each size ran;
* a one-row table above: the offered and served rates, the worker's busy fraction, the mean batch
  size and the percentiles (when the worker is busy ~100 % the queue grows and the latencies with it).

Each step simulates ``n`` requests in pure Python (a few milliseconds) and updates the bars and
lines in place.
"""

from __future__ import annotations

from typing import Any, Dict, List, Tuple

from course_lib.serving import simulate
from course_lib.serving.stats import latency_summary
from course_lib.widgets.base import Explorer

#: (label, (fixed ms, ms per item)) for the service time of a batch of b
SERVICE_MODELS: Tuple[Tuple[str, Tuple[float, float]], ...] = (
    ("8 + 0.5·b ms (a fixed cost dominates)", (8.0, 0.5)),
    ("4 + 2·b ms", (4.0, 2.0)),
    ("5·b ms (no fixed cost)", (0.0, 5.0)),
)
BATCH_OPTIONS = (1, 2, 4, 8, 16, 32)
_HEADER = f"{'offered/s':>9}{'served/s':>10}{'busy':>8}{'batch':>7}{'p50 ms':>10}{'p95 ms':>10}{'p99 ms':>10}"


class BatchingExplorer(Explorer):
    """Latency and throughput of dynamic batching on one simulated worker.

    Controls: ``rate`` (requests per second, Poisson arrivals, seed ``seed``), ``max_batch``
    (1 = no batching), ``max_wait_ms`` (how long the oldest request may wait for company),
    ``service`` (the cost model of a batch). ``n`` requests are simulated per setting.
    """

    figsize = (9.0, 3.6)
    check_control = "rate"

    def __init__(self, n: int = 1500, seed: int = 0) -> None:
        if isinstance(n, bool) or not isinstance(n, int) or n < 10:
            raise ValueError(f"BatchingExplorer: n should be an int >= 10, got {n!r}")
        self.n, self.seed = n, seed
        self._arrivals: Dict[int, List[float]] = {}
        self.summary: Dict[str, float] = {}
        self.edges = (0.1, 1e4)  # the latency axis: 0.1 ms .. 10 s
        super().__init__()

    # --- data ---------------------------------------------------------------------------------
    def arrivals(self, rate: int) -> List[float]:
        """The seeded arrival times (ms) of ``n`` requests at ``rate`` per second (cached)."""
        if rate not in self._arrivals:
            self._arrivals[rate] = simulate.poisson_arrivals(float(rate), self.n, seed=self.seed)
        return self._arrivals[rate]

    def simulate(self, rate: int, max_batch: int, max_wait_ms: float, service: Tuple[float, float]
                 ) -> List[Tuple[float, float, int]]:
        """The batches :func:`simulate_batching` runs for these settings."""
        fixed, per_item = service
        return simulate.simulate_batching(self.arrivals(rate), lambda b: fixed + per_item * b, max_batch,
                                          max_wait_ms)

    def stats(self, rate: int, max_batch: int, max_wait_ms: float, service: Tuple[float, float]
              ) -> Tuple[List[float], List[Tuple[float, float, int]], Dict[str, float]]:
        """``(latencies ms (n,), batches, summary)`` for these settings: the summary is
        :func:`latency_summary`'s plus ``served_per_s`` (requests answered per second, from the
        first arrival to the last answer), ``busy`` (the fraction of time the worker computes, from
        its first start to its last end) and ``mean_batch``."""
        arrivals = self.arrivals(rate)
        batches = self.simulate(rate, max_batch, max_wait_ms, service)
        lat = simulate.latencies_from_simulation(arrivals, batches)
        summary = latency_summary(lat)
        summary["served_per_s"] = len(lat) / ((batches[-1][1] - arrivals[0]) / 1000)
        summary["busy"] = sum(e - s for s, e, _ in batches) / (batches[-1][1] - batches[0][0])
        summary["mean_batch"] = len(lat) / len(batches)
        return lat, batches, summary

    # --- figure ---------------------------------------------------------------------------------
    def build(self, fig: Any) -> None:
        self.ax = fig.add_axes([0.07, 0.17, 0.52, 0.62])
        self.ax_b = fig.add_axes([0.68, 0.17, 0.3, 0.62])
        # the empirical CDF, one path (cheaper to draw than bar patches, and its y-range never changes)
        (self.cdf,) = self.ax.plot([1.0], [0.0], drawstyle="steps-post", color="C0", lw=1.5)
        for level in (0.5, 0.95, 0.99):
            self.ax.axhline(level, color="0.8", lw=0.8, ls=":")
        self.ax.set_xscale("log")
        self.ax.set_xlim(self.edges[0], self.edges[-1])
        self.ax.set_ylim(0, 1.02)
        self.ax.set_xlabel("latency (ms, log scale)")
        self.ax.set_ylabel("fraction answered within")
        self.lines = {q: self.ax.axvline(1.0, color=c, lw=1.5, label=f"p{q}")
                      for q, c in ((50, "C2"), (95, "C1"), (99, "C3"))}
        # the legend above the bars, where no moving line can cover it
        fig.legend(handles=list(self.lines.values()), loc="upper right", bbox_to_anchor=(0.98, 0.99), ncol=3,
                   fontsize=8, frameon=False)
        xs = list(range(len(BATCH_OPTIONS)))
        self.size_bars = self.ax_b.bar(xs, [0] * len(xs), color="C4")
        self.ax_b.set_xticks(xs)
        self.ax_b.set_xticklabels([f"{lo + 1}-{hi}" if hi > lo + 1 else str(hi) for lo, hi in
                                   zip((0,) + BATCH_OPTIONS[:-1], BATCH_OPTIONS)], fontsize=8)
        self.ax_b.set_ylim(0, 1.0)
        self.ax_b.set_xlabel("batch size")
        self.ax_b.set_ylabel("fraction of batches")
        # a table of one row: the header is static (drawn once, in the background); only the row of
        # numbers is redrawn (text dominates the cost of a frame: one short line, no labels in it)
        fig.text(0.07, 0.91, _HEADER, fontsize=9, va="bottom", family="monospace", color="0.3")
        self.caption = fig.text(0.07, 0.84, "", fontsize=9, va="bottom", family="monospace")
        self.dynamic = [self.cdf, *self.lines.values(), *self.size_bars, self.caption]

    def make_controls(self) -> Dict[str, Any]:
        import ipywidgets as widgets

        return {
            "rate": widgets.IntSlider(value=200, min=50, max=1000, step=50, description="requests/s"),
            "max_batch": widgets.Dropdown(options=list(BATCH_OPTIONS), value=8, description="max batch"),
            "max_wait_ms": widgets.FloatSlider(value=4.0, min=0.0, max=20.0, step=1.0, description="max wait ms"),
            "service": widgets.Dropdown(options=list(SERVICE_MODELS), value=SERVICE_MODELS[0][1],
                                        description="batch cost"),
        }

    def render(self, rate: int, max_batch: int, max_wait_ms: float, service: Tuple[float, float]) -> None:
        import bisect

        lat, batches, self.summary = self.stats(rate, max_batch, max_wait_ms, service)
        xs = sorted(lat)
        self.cdf.set_data([max(x, self.edges[0]) for x in xs], [(i + 1) / len(xs) for i in range(len(xs))])
        for q, line in self.lines.items():
            line.set_xdata([self.summary[f"p{q}"]] * 2)
        sizes = [0] * len(BATCH_OPTIONS)
        for _, _, b in batches:
            sizes[bisect.bisect_left(BATCH_OPTIONS, b)] += 1
        for bar, c in zip(self.size_bars, sizes):
            bar.set_height(c / len(batches))
        s = self.summary
        self.caption.set_text(f"{rate:>9d}{s['served_per_s']:>10.0f}{100 * s['busy']:>7.0f}%{s['mean_batch']:>7.1f}"
                              f"{s['p50']:>10.1f}{s['p95']:>10.1f}{s['p99']:>10.1f}")
