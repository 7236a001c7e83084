"""Latency statistics of a service: percentiles, written out.

A service is judged by the latency its *slow* requests see, not the average: the p95 is the
latency that 95 % of the requests do not exceed. :func:`percentile` is the "linear" definition
(NumPy's default, Hyndman & Fan's type 7): sort the :math:`n` samples
:math:`x_{(0)} \\le \\dots \\le x_{(n-1)}`, put the :math:`q`-th percentile at the fractional rank
:math:`r = (n-1)\\, q / 100` and interpolate linearly between the two neighbouring samples,

.. math:: P_q = x_{(\\lfloor r \\rfloor)} + (r - \\lfloor r \\rfloor)\\,(x_{(\\lfloor r \\rfloor + 1)} - x_{(\\lfloor r \\rfloor)}).

It equals ``numpy.percentile(samples, q)`` (tested to the last bit on random samples).
"""

from __future__ import annotations

import math
from typing import Any, Dict, List, Sequence


def _samples(fn: str, samples: Any) -> List[float]:
    """``samples`` as a list of finite floats; a clear error otherwise."""
    if isinstance(samples, (str, bytes)) or not hasattr(samples, "__len__"):
        raise TypeError(f"{fn}: samples should be a sequence of numbers, got {type(samples).__name__}")
    if hasattr(samples, "dim") and samples.dim() != 1:  # a torch tensor
        raise ValueError(f"{fn}: samples should be one-dimensional, got shape {tuple(samples.shape)}")
    if getattr(samples, "ndim", 1) != 1:  # a numpy array
        raise ValueError(f"{fn}: samples should be one-dimensional, got shape {tuple(samples.shape)}")
    if len(samples) == 0:
        raise ValueError(f"{fn}: samples should contain at least one number, got an empty sequence")
    out = []
    for i, s in enumerate(samples):
        if hasattr(s, "item"):  # numpy / torch scalars
            s = s.item()
        if isinstance(s, bool) or not isinstance(s, (int, float)):
            raise TypeError(f"{fn}: samples should be numbers, got {type(s).__name__} at index {i}")
        s = float(s)
        if not math.isfinite(s):
            raise ValueError(f"{fn}: samples should be finite (a latency is never NaN or infinite), "
                             f"got {s} at index {i}")
        out.append(s)
    return out


def percentile(samples: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0 <= q <= 100) of ``samples`` (a non-empty 1-D sequence of finite
    numbers), linear interpolation between closest ranks: equal to ``numpy.percentile(samples, q)``.
    """
    fn = "percentile"
    if isinstance(q, bool) or not isinstance(q, (int, float)) or not 0 <= q <= 100:
        raise ValueError(f"{fn}: q should be a number in [0, 100], got {q!r}")
    x = sorted(_samples(fn, samples))
    rank = (len(x) - 1) * (q / 100)
    lo = math.floor(rank)
    hi = min(lo + 1, len(x) - 1)
    t = rank - lo
    a, b = x[lo], x[hi]
    # the same arithmetic as NumPy's lerp: from the nearer end, so that the result is exact at t = 0, 1
    return b - (b - a) * (1 - t) if t >= 0.5 else a + (b - a) * t


def latency_summary(samples: Sequence[float]) -> Dict[str, float]:
    """``{"n", "mean", "p50", "p95", "p99", "max"}`` of latency ``samples`` (any one unit)."""
    x = _samples("latency_summary", samples)
    return {"n": len(x), "mean": math.fsum(x) / len(x), "p50": percentile(x, 50), "p95": percentile(x, 95),
            "p99": percentile(x, 99), "max": max(x)}
