"""A load generator: many concurrent HTTP requests on loopback, bounded in count and time.

``run_load(url, make_request, n_requests, concurrency, time_limit_s)`` sends request i =
``make_request(i) -> (path, body)`` (``body`` a dict sent as JSON, or str/bytes sent as is, to
test malformed input) from ``concurrency`` workers of one ``httpx.AsyncClient``, each sending its
next request when the previous one is answered (a *closed-loop* load: throughput is then limited
by the server). It stops after ``n_requests`` or ``time_limit_s`` seconds (requests not yet sent are
not sent). Returns a :class:`LoadReport`::

    requests_per_s = n_ok / elapsed_s           tokens_per_s = (sum of "n_tokens" of the OK replies) / elapsed_s
    latency of one request = time from sending it to reading its whole reply (seconds)

Works in a notebook: the event loop runs in a thread of its own.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Tuple, Union

__all__ = ["LoadReport", "run_load", "arun_load"]

Body = Union[Dict[str, Any], List[Any], str, bytes]


@dataclass
class LoadReport:
    """n_ok (2xx), n_errors {status: count} (0 = no reply: connection error or client timeout),
    latencies_s of the OK requests, elapsed_s, n_sent, n_malformed_replies (a reply that is not a
    JSON object, or an error without "detail"), n_tokens (sum of "n_tokens" in OK replies),
    failures {exception name: count} for the requests without a reply."""

    n_ok: int = 0
    n_errors: Dict[int, int] = field(default_factory=dict)
    latencies_s: List[float] = field(default_factory=list)
    elapsed_s: float = 0.0
    n_sent: int = 0
    n_malformed_replies: int = 0
    n_tokens: int = 0
    statuses: List[int] = field(default_factory=list)
    failures: Dict[str, int] = field(default_factory=dict)

    @property
    def requests_per_s(self) -> float:
        return self.n_ok / self.elapsed_s if self.elapsed_s > 0 else 0.0

    @property
    def tokens_per_s(self) -> float:
        return self.n_tokens / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def summary(self) -> Dict[str, Any]:
        """Counts, throughput and the latency percentiles (p50, p95, p99, mean in ms) of the OK requests."""
        import numpy as np

        lat = np.asarray(self.latencies_s, dtype=np.float64) * 1000.0
        pct = {f"p{q}_ms": (float(np.percentile(lat, q)) if lat.size else float("nan")) for q in (50, 95, 99)}
        return {"n_sent": self.n_sent, "n_ok": self.n_ok, "n_errors": dict(sorted(self.n_errors.items())),
                "n_malformed_replies": self.n_malformed_replies, "failures": dict(self.failures), "elapsed_s": self.elapsed_s,
                "requests_per_s": self.requests_per_s, "tokens_per_s": self.tokens_per_s, **pct,
                "mean_ms": float(lat.mean()) if lat.size else float("nan")}


def _check(url: str, n_requests: int, concurrency: int, time_limit_s: float) -> None:
    fn = "run_load"
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        raise ValueError(f"{fn}: url should be an http:// address, got {url!r}")
    for name, v in (("n_requests", n_requests), ("concurrency", concurrency)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{fn}: {name} should be an int >= 1, got {v!r}")
    if isinstance(time_limit_s, bool) or not isinstance(time_limit_s, (int, float)) or not time_limit_s > 0:
        raise ValueError(f"{fn}: time_limit_s should be a number > 0, got {time_limit_s!r}")


def _well_formed(status: int, content: bytes) -> bool:
    try:
        data = json.loads(content)
    except ValueError:
        return False
    if not isinstance(data, dict):
        return False
    return status < 400 or isinstance(data.get("detail"), str)


async def arun_load(url: str, make_request: Callable[[int], Tuple[str, Body]], n_requests: int,
                    concurrency: int, time_limit_s: float, request_timeout_s: float = 60.0) -> LoadReport:
    """The coroutine behind :func:`run_load` (for code already inside an event loop)."""
    import asyncio

    import httpx

    _check(url, n_requests, concurrency, time_limit_s)
    report = LoadReport()
    next_index = [0]
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    start = time.perf_counter()
    deadline = start + time_limit_s

    async def worker(client: Any) -> None:
        while next_index[0] < n_requests and time.perf_counter() < deadline:
            i = next_index[0]
            next_index[0] += 1
            path, body = make_request(i)
            if isinstance(body, (dict, list)):
                kwargs: Dict[str, Any] = {"json": body}
            else:
                kwargs = {"content": body if isinstance(body, bytes) else str(body).encode(),
                          "headers": {"content-type": "application/json"}}
            report.n_sent += 1
            t0 = time.perf_counter()
            try:
                reply = await client.post(url.rstrip("/") + path, timeout=request_timeout_s, **kwargs)
                content = reply.content
            except (httpx.HTTPError, OSError) as err:
                report.failures[type(err).__name__] = report.failures.get(type(err).__name__, 0) + 1
                report.n_errors[0] = report.n_errors.get(0, 0) + 1
                report.statuses.append(0)
                continue
            dt = time.perf_counter() - t0
            report.statuses.append(reply.status_code)
            if not _well_formed(reply.status_code, content):
                report.n_malformed_replies += 1
            if 200 <= reply.status_code < 300:
                report.n_ok += 1
                report.latencies_s.append(dt)
                try:
                    n = json.loads(content).get("n_tokens", 0)
                    report.n_tokens += n if isinstance(n, int) else 0
                except (ValueError, AttributeError):
                    pass
            else:
                report.n_errors[reply.status_code] = report.n_errors.get(reply.status_code, 0) + 1

    async with httpx.AsyncClient(limits=limits, trust_env=False) as client:
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
    report.elapsed_s = time.perf_counter() - start
    return report


def run_load(url: str, make_request: Callable[[int], Tuple[str, Body]], n_requests: int, concurrency: int,
             time_limit_s: float, request_timeout_s: float = 60.0) -> LoadReport:
    """Send up to ``n_requests`` requests with ``concurrency`` in flight, for at most ``time_limit_s``
    seconds (plus the replies in flight); see the module. Blocks; safe inside Jupyter."""
    import asyncio

    _check(url, n_requests, concurrency, time_limit_s)
    box: Dict[str, Any] = {}

    def run() -> None:
        try:
            box["report"] = asyncio.run(arun_load(url, make_request, n_requests, concurrency, time_limit_s,
                                                  request_timeout_s))
        except BaseException as err:  # noqa: BLE001 - re-raised in the caller's thread
            box["error"] = err

    thread = threading.Thread(target=run, name="loadgen", daemon=True)
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    return box["report"]
