"""Dynamic batching, written from scratch: a queue that collects requests for up to ``max_wait_ms``
milliseconds or ``max_batch`` items and runs them as one batch.

Why: a model evaluated on B inputs at once costs much less than B separate calls (one pass over the
weights, larger matrix products), but a request that waits for companions is answered later. The
policy :func:`should_flush` is the whole trade-off::

    flush  <=>  queue_len >= max_batch                                  (the batch is full)
           or   queue_len > 0  and  oldest_wait_ms >= max_wait_ms       (the oldest waited enough)

:class:`DynamicBatcher` applies it on an asyncio event loop: ``await submit(item)`` queues the item
and returns its result; one background task takes batches off the queue and runs
``run_batch(items) -> results`` in ONE worker thread (so the event loop keeps accepting requests
while the model computes, and requests arriving meanwhile form the next batch). The queue is
bounded: when ``max_queue`` items already wait, ``submit`` raises :class:`Overloaded` at once
(the server answers 503) instead of letting latency grow without bound. ``enabled=False`` runs
every item alone, as soon as the worker is free (the unbatched baseline).

Guarantee: every accepted item gets exactly one outcome (its result, or the exception
``run_batch`` raised, for every item of that batch); ``stop()`` drains the queue first. An item
whose caller went away (its awaiting task was cancelled) before its batch started is skipped.
If the background task itself ends abnormally (cancelled, e.g. a shutdown that times out), every
item still waiting or in its batch gets :class:`Overloaded` (the server answers 503): no caller
waits forever, and ``submit`` refuses new items once the task has ended. The queue-full check and
the append in ``submit`` run with no ``await`` between them, so on one event loop they cannot race.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from typing import Any, Callable, Deque, Dict, List, Optional, Tuple

__all__ = ["should_flush", "DynamicBatcher", "Overloaded"]


def _number(fn: str, name: str, value: object, minimum: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value) or value < minimum:
        raise ValueError(f"{fn}: {name} should be a number >= {minimum}, got {value!r}")
    return float(value)


def _int(fn: str, name: str, value: object, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{fn}: {name} should be an int >= {minimum}, got {value!r}")
    return value


def should_flush(queue_len: int, oldest_wait_ms: float, max_batch: int, max_wait_ms: float) -> bool:
    """True when the waiting requests should run now: ``queue_len >= max_batch``, or
    ``queue_len > 0`` and ``oldest_wait_ms >= max_wait_ms``. Pure; ``max_wait_ms = 0`` flushes
    whatever waits, ``max_batch = 1`` is no batching."""
    fn = "should_flush"
    _int(fn, "queue_len", queue_len, 0)
    _number(fn, "oldest_wait_ms", oldest_wait_ms, 0.0)
    _int(fn, "max_batch", max_batch, 1)
    _number(fn, "max_wait_ms", max_wait_ms, 0.0)
    return queue_len >= max_batch or (queue_len > 0 and oldest_wait_ms >= max_wait_ms)


class Overloaded(RuntimeError):
    """Raised by :meth:`DynamicBatcher.submit` when the queue is full (or the batcher is stopping):
    the caller should answer 503 and ask the client to retry later."""


class DynamicBatcher:
    """``DynamicBatcher(run_batch, max_batch=16, max_wait_ms=5.0, max_queue=256, enabled=True)``.

    ``run_batch(items: list) -> list`` (same length, same order) runs in one worker thread.
    Use inside a running event loop: ``await start()``, ``await submit(item)`` (many concurrently),
    ``await stop()``. ``stats`` counts accepted, answered (a result or an error), rejected
    (queue full), skipped (caller gone) items and the batches run with their sizes.
    """

    def __init__(self, run_batch: Callable[[List[Any]], List[Any]], max_batch: int = 16,
                 max_wait_ms: float = 5.0, max_queue: int = 256, enabled: bool = True) -> None:
        fn = "DynamicBatcher"
        if not callable(run_batch):
            raise TypeError(f"{fn}: run_batch should be callable, got {type(run_batch).__name__}")
        self.run_batch = run_batch
        self.max_batch = _int(fn, "max_batch", max_batch, 1)
        self.max_wait_ms = _number(fn, "max_wait_ms", max_wait_ms, 0.0)
        self.max_queue = _int(fn, "max_queue", max_queue, 1)
        if not isinstance(enabled, bool):
            raise TypeError(f"{fn}: enabled should be a bool, got {type(enabled).__name__}")
        self.enabled = enabled
        self._queue: Deque[Tuple[Any, "asyncio.Future[Any]", float]] = deque()
        self._wake: Optional[asyncio.Event] = None
        self._task: Optional["asyncio.Task[None]"] = None
        self._executor: Any = None
        self._stopping = False
        self.stats: Dict[str, Any] = {"accepted": 0, "answered": 0, "rejected": 0, "skipped": 0,
                                      "batches": 0, "batch_sizes": {}}

    @property
    def running(self) -> bool:
        """True between ``start()`` and ``stop()`` while the background task is alive."""
        return self._task is not None and not self._task.done() and not self._stopping

    @property
    def queue_len(self) -> int:
        """Items waiting (not yet in a running batch)."""
        return len(self._queue)

    async def start(self) -> None:
        """Start the background task (idempotent) on the running event loop."""
        if self._task is not None and not self._task.done():
            return
        from concurrent.futures import ThreadPoolExecutor

        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="batcher")
        self._wake = asyncio.Event()
        self._stopping = False
        self._task = asyncio.get_running_loop().create_task(self._loop())

    async def submit(self, item: Any) -> Any:
        """Queue ``item`` and wait for its result. Raises :class:`Overloaded` at once when
        ``max_queue`` items already wait or the batcher is not running; re-raises the exception
        of ``run_batch`` for the batch that held the item."""
        if not self.running or self._wake is None:
            self.stats["rejected"] += 1
            raise Overloaded("DynamicBatcher.submit: the batcher is not running (stopped or not started)")
        if len(self._queue) >= self.max_queue:
            self.stats["rejected"] += 1
            raise Overloaded(f"DynamicBatcher.submit: queue full ({len(self._queue)} of max_queue = "
                             f"{self.max_queue} waiting)")
        future: "asyncio.Future[Any]" = asyncio.get_running_loop().create_future()
        self._queue.append((item, future, time.monotonic()))
        self.stats["accepted"] += 1
        self._wake.set()
        return await future

    async def stop(self) -> None:
        """Refuse new items, run every queued one (each answered exactly once), end the task."""
        if self._task is None:
            return
        self._stopping = True
        assert self._wake is not None
        self._wake.set()
        task = self._task
        try:  # wait() neither re-raises the task's end nor cancels it if stop() itself is cancelled:
            await asyncio.wait([task])  # the drain goes on (a task cancelled later fails what is left)
            if task.done() and not task.cancelled() and task.exception() is not None:
                raise RuntimeError("DynamicBatcher.stop: the batching task failed") from task.exception()
        finally:
            self._task = None
            if self._executor is not None:  # idle after a drain; after a cancellation a batch may still
                self._executor.shutdown(wait=False)  # run in its thread: do not block the event loop on it
                self._executor = None

    def _take(self) -> List[Tuple[Any, "asyncio.Future[Any]", float]]:
        size = self.max_batch if self.enabled else 1
        batch = []
        while self._queue and len(batch) < size:
            entry = self._queue.popleft()
            if entry[1].done():  # the caller went away (cancelled) before the batch started
                self.stats["skipped"] += 1
                continue
            batch.append(entry)
        return batch

    def _fail_pending(self, entries: List[Tuple[Any, "asyncio.Future[Any]", float]], why: str) -> None:
        """Give every entry whose caller still waits the outcome :class:`Overloaded` (exactly once)."""
        for _, future, _ in entries:
            if not future.done():
                self.stats["answered"] += 1
                future.set_exception(Overloaded(f"DynamicBatcher: {why}"))

    async def _loop(self) -> None:
        running: List[Tuple[Any, "asyncio.Future[Any]", float]] = []
        try:
            await self._serve(running)
        finally:  # normally a no-op (stop() drained everything); after a cancellation nobody is left hanging
            self._fail_pending(running, "the batcher stopped while this batch ran")
            self._fail_pending(list(self._queue), "the batcher stopped before this item ran")
            self._queue.clear()

    async def _serve(self, running: List[Tuple[Any, "asyncio.Future[Any]", float]]) -> None:
        assert self._wake is not None
        loop = asyncio.get_running_loop()
        while True:
            if not self._queue:
                if self._stopping:
                    return
                self._wake.clear()
                await self._wake.wait()
                continue
            waited_ms = (time.monotonic() - self._queue[0][2]) * 1000.0
            max_batch = self.max_batch if self.enabled else 1
            max_wait = self.max_wait_ms if self.enabled else 0.0
            if not (self._stopping or should_flush(len(self._queue), waited_ms, max_batch, max_wait)):
                self._wake.clear()
                try:
                    await asyncio.wait_for(self._wake.wait(), (max_wait - waited_ms) / 1000.0)
                except asyncio.TimeoutError:
                    pass
                continue
            batch = self._take()
            if not batch:
                continue
            items = [entry[0] for entry in batch]
            running[:] = batch
            try:
                results = await loop.run_in_executor(self._executor, self.run_batch, items)
                if not isinstance(results, (list, tuple)) or len(results) != len(items):
                    raise RuntimeError(f"DynamicBatcher: run_batch should return a list of {len(items)} "
                                       f"results, got {type(results).__name__}"
                                       f"{f' of length {len(results)}' if isinstance(results, (list, tuple)) else ''}")
                outcomes: List[Tuple[bool, Any]] = [(True, r) for r in results]
            except asyncio.CancelledError:
                raise  # _loop's finally answers the batch
            except BaseException as err:  # noqa: BLE001 - every item of the batch gets the error; a
                if not isinstance(err, Exception):  # SystemExit from a model must not end the loop or the server
                    err = RuntimeError(f"DynamicBatcher: run_batch raised {type(err).__name__}: {err}")
                outcomes = [(False, err)] * len(items)
            self.stats["batches"] += 1
            sizes = self.stats["batch_sizes"]
            sizes[len(items)] = sizes.get(len(items), 0) + 1
            for (_, future, _), (ok, value) in zip(batch, outcomes):
                self.stats["answered"] += 1
                if future.done():  # the caller left while its batch ran: answered, nobody listens
                    continue
                if ok:
                    future.set_result(value)
                else:
                    future.set_exception(value)
            running.clear()
