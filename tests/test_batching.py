"""The dynamic-batching policy (a pure function) and the asyncio DynamicBatcher, without HTTP."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest
from hypothesis import given, strategies as st

from course_lib.serving.batching import DynamicBatcher, Overloaded, should_flush


@given(st.integers(0, 40), st.floats(0, 100), st.integers(1, 32), st.floats(0, 50))
def test_should_flush_is_the_stated_rule(n, waited, max_batch, max_wait):
    expected = n >= max_batch or (n > 0 and waited >= max_wait)
    assert should_flush(n, waited, max_batch, max_wait) is expected


def test_should_flush_edges():
    assert not should_flush(0, 1e9, 4, 5.0)  # nothing to flush, however long
    assert should_flush(4, 0.0, 4, 5.0)  # full
    assert not should_flush(3, 4.999, 4, 5.0)
    assert should_flush(3, 5.0, 4, 5.0)  # waited exactly max_wait
    assert should_flush(1, 0.0, 1, 5.0)  # max_batch 1: no batching
    assert should_flush(1, 0.0, 8, 0.0)  # max_wait 0: flush at once


@pytest.mark.parametrize("args, name", [((-1, 0.0, 4, 5.0), "queue_len"), ((1, float("nan"), 4, 5.0), "oldest_wait_ms"),
                                        ((1, 0.0, 0, 5.0), "max_batch"), ((1, 0.0, 4, -1.0), "max_wait_ms"),
                                        ((True, 0.0, 4, 5.0), "queue_len"), ((1, 0.0, 2.0, 5.0), "max_batch")])
def test_should_flush_refuses_bad_input(args, name):
    with pytest.raises(ValueError, match=rf"should_flush: {name} should be"):
        should_flush(*args)


def test_batcher_refuses_bad_settings():
    with pytest.raises(TypeError, match="DynamicBatcher: run_batch should be callable"):
        DynamicBatcher(42)
    with pytest.raises(ValueError, match="DynamicBatcher: max_queue should be an int >= 1, got 0"):
        DynamicBatcher(list, max_queue=0)


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 20))


@pytest.mark.parametrize("enabled", [True, False])
def test_batches_form_and_every_item_is_answered_once(enabled):
    calls = []

    def double(items):
        calls.append(list(items))
        time.sleep(0.01)
        return [2 * x for x in items]

    async def main():
        b = DynamicBatcher(double, max_batch=4, max_wait_ms=20.0, max_queue=100, enabled=enabled)
        await b.start()
        results = await asyncio.gather(*(b.submit(i) for i in range(10)))
        await b.stop()
        return b, results

    b, results = run(main())
    assert results == [2 * i for i in range(10)]
    assert sorted(x for call in calls for x in call) == list(range(10))  # each item ran exactly once
    sizes = [len(c) for c in calls]
    assert max(sizes) == (4 if enabled else 1) and all(s <= 4 for s in sizes)
    assert b.stats["accepted"] == b.stats["answered"] == 10


async def until(predicate, what):
    """Yield to the event loop until ``predicate()`` holds (bounded: no timing assumption)."""
    for _ in range(2000):
        if predicate():
            return
        await asyncio.sleep(0.005)
    raise AssertionError(f"never reached: {what}")


def test_full_queue_raises_overloaded_at_once_and_stop_drains():
    gate = threading.Event()

    def slow(items):
        gate.wait(10)
        return items

    async def main():
        b = DynamicBatcher(slow, max_batch=1, max_wait_ms=0.0, max_queue=3)
        await b.start()
        first = asyncio.ensure_future(b.submit("running"))
        await until(lambda: b.stats["accepted"] == 1 and b.queue_len == 0, "the worker holds 'running'")
        waiting = [asyncio.ensure_future(b.submit(i)) for i in range(3)]
        await until(lambda: b.queue_len == 3, "three items wait")
        refused = b.submit("one too many")
        with pytest.raises(Overloaded, match=r"queue full \(3 of max_queue = 3 waiting\)"):
            refused.send(None)  # raised on the first step, before any await: refused at once, never queued
        gate.set()
        stopping = asyncio.ensure_future(b.stop())
        out = await asyncio.gather(first, *waiting)
        await stopping
        with pytest.raises(Overloaded, match="not running"):
            await b.submit("after stop")
        return b, out

    b, out = run(main())
    assert out == ["running", 0, 1, 2]
    assert b.stats["accepted"] == b.stats["answered"] == 4 and b.stats["rejected"] == 2


def test_stop_with_items_queued_answers_every_one():
    gate = threading.Event()
    seen = []

    def record(items):
        gate.wait(10)
        seen.append(list(items))
        return items

    async def main():
        b = DynamicBatcher(record, max_batch=2, max_wait_ms=1e6, max_queue=10)  # would wait "forever" to fill
        await b.start()
        first = [asyncio.ensure_future(b.submit(i)) for i in range(2)]  # a full batch: runs, held by the gate
        await until(lambda: b.queue_len == 0 and b.stats["accepted"] == 2, "the first batch runs")
        queued = [asyncio.ensure_future(b.submit(i)) for i in range(2, 5)]
        await until(lambda: b.queue_len == 3, "three items wait")
        stopping = asyncio.ensure_future(b.stop())  # stop() flushes at once instead of waiting max_wait_ms
        gate.set()
        out = await asyncio.gather(*first, *queued)
        await stopping
        return b, out

    b, out = run(main())
    assert out == [0, 1, 2, 3, 4] and seen == [[0, 1], [2, 3], [4]]
    assert b.stats["accepted"] == b.stats["answered"] == 5


def test_a_cancelled_batcher_task_leaves_nobody_waiting():
    """If the batcher's task dies (here: cancelled, as a shutdown past its grace period does), the
    items in the running batch and in the queue get Overloaded instead of waiting forever, and
    submit refuses new items."""
    gate = threading.Event()

    def held(items):
        gate.wait(10)
        return items

    async def main():
        b = DynamicBatcher(held, max_batch=1, max_wait_ms=0.0)
        await b.start()
        callers = [asyncio.ensure_future(b.submit(i)) for i in range(3)]
        await until(lambda: b.queue_len == 2, "one item runs, two wait")
        b._task.cancel()
        outcomes = await asyncio.gather(*callers, return_exceptions=True)  # bounded by run(): no hang
        gate.set()
        assert not b.running
        with pytest.raises(Overloaded, match="not running"):
            await b.submit("late")
        await b.stop()
        return b, outcomes

    b, outcomes = run(main())
    assert [type(o) for o in outcomes] == [Overloaded] * 3
    assert "stopped while this batch ran" in str(outcomes[0]) and "before this item ran" in str(outcomes[1])
    assert b.stats["accepted"] == b.stats["answered"] == 3 and b.queue_len == 0


def test_a_failing_batch_fails_its_items_only():
    def picky(items):
        if "bad" in items:
            raise ZeroDivisionError("boom")
        return items

    def wrong_length(items):
        return items[:-1]

    def exits(items):
        raise SystemExit(3)

    async def main():
        b = DynamicBatcher(picky, max_batch=2, max_wait_ms=50.0)
        await b.start()
        res = await asyncio.gather(b.submit("bad"), b.submit("x"), return_exceptions=True)
        assert [type(r) for r in res] == [ZeroDivisionError, ZeroDivisionError]
        assert await b.submit("fine") == "fine"  # the loop survived
        await b.stop()
        w = DynamicBatcher(wrong_length, max_batch=1)
        await w.start()
        with pytest.raises(RuntimeError, match="run_batch should return a list of 1 results, got list of length 0"):
            await w.submit(1)
        await w.stop()
        e = DynamicBatcher(exits, max_batch=1)  # a BaseException from the model ends neither the loop nor the caller
        await e.start()
        with pytest.raises(RuntimeError, match="run_batch raised SystemExit: 3"):
            await e.submit(1)
        assert e.running
        await e.stop()

    run(main())


def test_a_cancelled_caller_is_skipped():
    gate = threading.Event()
    seen = []

    def record(items):
        gate.wait(10)
        seen.extend(items)
        return items

    async def main():
        b = DynamicBatcher(record, max_batch=1, max_wait_ms=0.0)
        await b.start()
        first = asyncio.ensure_future(b.submit(1))
        await until(lambda: b.stats["accepted"] == 1 and b.queue_len == 0, "the worker holds 1")
        gone = asyncio.ensure_future(b.submit(2))
        await until(lambda: b.queue_len == 1, "2 waits")
        gone.cancel()
        gate.set()
        assert await first == 1
        await b.stop()
        return b

    b = run(main())
    assert seen == [1] and b.stats["skipped"] == 1
