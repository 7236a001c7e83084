"""Chapter 16's explorer: the alpha-beta time of a ring all-reduce against the naive one.

The gradient of a model with ``N`` parameters (``bytes_per_param`` each) is all-reduced over ``p``
workers joined by links of bandwidth ``beta`` (bytes/s) and latency ``alpha`` (s);
:func:`course_lib.distributed.ring.allreduce_time_s` gives

* ring: ``2 (p-1) (alpha + n / (p beta))``  - the bandwidth term tends to ``2 n / beta``;
* naive (reduce to one root, then broadcast): ``2 (p-1) (alpha + n / beta)`` - grows with ``p``.

Left: both times against ``p`` (log-log) with the chosen ``p`` marked. Right: bytes each worker (ring)
or the root (naive) sends and receives, for the chosen ``p``.
"""

from __future__ import annotations

from typing import Any, Dict, Optional

import numpy as np

from course_lib.distributed import ring
from course_lib.widgets.base import Explorer

WORKERS = np.unique(np.round(np.logspace(0, np.log10(1024), 60)).astype(int))


class AllReduceExplorer(Explorer):
    """Controls: ``workers`` p, ``bandwidth_GBps`` (GB/s per link), ``latency_us`` (µs per message),
    ``params_M`` (millions of parameters), ``bytes_per_param`` (4 = float32 gradients, 2 = bf16).
    ``measured`` optionally gives ``(latency_s, bandwidth_Bps)`` fitted on this machine, printed
    on the plot for comparison with the sliders."""

    figsize = (9.0, 3.6)
    check_control = "workers"

    def __init__(self, measured: Optional[tuple] = None) -> None:
        self.measured = measured
        super().__init__()

    def build(self, fig: Any) -> None:
        self.ax = fig.add_axes([0.08, 0.15, 0.52, 0.72])
        self.ax_bytes = fig.add_axes([0.70, 0.15, 0.27, 0.72])
        ax = self.ax
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlim(1, WORKERS[-1])
        ax.set_ylim(1e-6, 1e4)
        ax.set_xlabel("workers p")
        ax.set_ylabel("all-reduce time per step (s)")
        ax.grid(True, which="major", alpha=0.3)
        (self.ring_line,) = ax.plot([], [], color="C0", label="ring")
        (self.naive_line,) = ax.plot([], [], color="C3", label="naive (one root)")
        (self.bw_line,) = ax.plot([], [], color="C0", ls=":", lw=1, label="ring bandwidth bound 2n/β")
        (self.ring_dot,) = ax.plot([], [], "o", color="C0")
        (self.naive_dot,) = ax.plot([], [], "o", color="C3")
        ax.legend(loc="upper left", fontsize=8)
        self.caption = ax.text(0.99, 0.03, "", transform=ax.transAxes, ha="right", va="bottom", fontsize=8)
        if self.measured is not None:
            alpha, beta = self.measured
            ax.text(0.99, 0.10, f"this machine (gloo, loopback): α ≈ {alpha * 1e6:.0f} µs, β ≈ {beta / 1e9:.2f} GB/s",
                    transform=ax.transAxes, ha="right", va="bottom", fontsize=7, color="0.3")
        axb = self.ax_bytes
        axb.set_yscale("log")
        axb.set_ylim(1e3, 1e15)
        axb.set_title("bytes sent + received", fontsize=9)
        self.bars = axb.bar([0, 1], [1, 1], color=["C0", "C3"])
        axb.set_xticks([0, 1])
        axb.set_xticklabels(["ring\n(each worker)", "naive\n(root)"], fontsize=8)
        self.dynamic = [self.ring_line, self.naive_line, self.bw_line, self.ring_dot, self.naive_dot, self.caption,
                        *self.bars]

    def make_controls(self) -> Dict[str, Any]:
        import ipywidgets as widgets

        style = {"description_width": "initial"}
        return {
            "workers": widgets.IntSlider(value=8, min=1, max=1024, step=1, description="workers p", style=style),
            "bandwidth_GBps": widgets.FloatLogSlider(value=10.0, base=10, min=-1, max=3, step=0.25,
                                                     description="bandwidth (GB/s)", style=style),
            "latency_us": widgets.FloatLogSlider(value=10.0, base=10, min=0, max=4, step=0.25,
                                                 description="latency (µs)", style=style),
            "params_M": widgets.FloatLogSlider(value=124.0, base=10, min=0, max=5.5, step=0.25,
                                               description="parameters (millions)", style=style),
            "bytes_per_param": widgets.Dropdown(options=[4, 2], value=4, description="bytes/param", style=style),
        }

    def times(self, workers: int, bandwidth_GBps: float, latency_us: float, params_M: float,
              bytes_per_param: int) -> Dict[str, float]:
        """The model's numbers for one state (seconds and bytes)."""
        n = params_M * 1e6 * bytes_per_param
        beta, alpha = bandwidth_GBps * 1e9, latency_us * 1e-6
        return {"n_bytes": n,
                "ring_s": ring.allreduce_time_s(n, workers, beta, alpha, "ring"),
                "naive_s": ring.allreduce_time_s(n, workers, beta, alpha, "naive"),
                "ring_bytes": 2 * ring.ring_bytes_per_worker(n, workers),  # sent + received, each worker
                "naive_bytes": ring.naive_root_bytes(n, workers)}  # received + sent by the root

    def render(self, workers: int, bandwidth_GBps: float, latency_us: float, params_M: float,
               bytes_per_param: int) -> None:
        n = params_M * 1e6 * bytes_per_param
        beta, alpha = bandwidth_GBps * 1e9, latency_us * 1e-6
        p = WORKERS[WORKERS > 1].astype(float)
        ring_t = 2 * (p - 1) * (alpha + n / (p * beta))
        naive_t = 2 * (p - 1) * (alpha + n / beta)
        self.ring_line.set_data(p, ring_t)
        self.naive_line.set_data(p, naive_t)
        self.bw_line.set_data([1, WORKERS[-1]], [2 * n / beta] * 2)
        t = self.times(workers, bandwidth_GBps, latency_us, params_M, bytes_per_param)
        shown = [max(t["ring_s"], 1e-6), max(t["naive_s"], 1e-6)]
        self.ring_dot.set_data([workers], [shown[0]])
        self.naive_dot.set_data([workers], [shown[1]])
        ratio = t["naive_s"] / t["ring_s"] if t["ring_s"] > 0 else 1.0
        self.caption.set_text(f"{_fmt_bytes(n)}, p={workers}: ring {_fmt_s(t['ring_s'])}, "
                              f"naive {_fmt_s(t['naive_s'])} ({ratio:.1f}×)")
        # bytes: the ring worker sends and receives 2(p-1)/p n each; the root sends and receives (p-1) n each
        for bar, value in zip(self.bars, (t["ring_bytes"], t["naive_bytes"])):
            bar.set_height(max(value, 1e3))


def _fmt_s(s: float) -> str:
    if s == 0:
        return "0 s"
    if s < 1e-3:
        return f"{s * 1e6:.0f} µs"
    if s < 1:
        return f"{s * 1e3:.1f} ms"
    return f"{s:.2f} s"


def _fmt_bytes(b: float) -> str:
    for unit, size in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if b >= size:
            return f"{b / size:.1f} {unit}"
    return f"{b:.0f} B"
