"""Chapter 15's pure pieces: latency percentiles (= numpy), the batching simulations (= a
brute-force tick-by-tick simulation driven by ``should_flush``), int8 weight quantisation (=
PyTorch's quantised Linear), and the batching explorer (= the simulator)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from course_lib import inference
from course_lib.serving import simulate
from course_lib.serving.stats import latency_summary, percentile

# --- percentiles ---------------------------------------------------------------------------------

finite = st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False, width=64)


@given(st.lists(finite, min_size=1, max_size=40), st.floats(0, 100) | st.sampled_from([0, 1, 50, 95, 99, 100]))
def test_percentile_equals_numpy_exactly(samples, q):
    assert percentile(samples, q) == np.percentile(np.array(samples), q)


def test_percentile_accepts_arrays_tensors_and_ints():
    x = [3, 1, 2, 10]
    want = np.percentile(x, 95)
    assert percentile(np.array(x), 95) == want
    assert percentile(torch.tensor(x, dtype=torch.float64), 95) == want
    assert percentile(x, 95) == want
    assert percentile([7.0], 99) == 7.0  # one sample: every percentile is that sample


@pytest.mark.parametrize("samples, q, match", [
    ([], 50, "at least one number"),
    ([1.0, math.nan], 50, "finite"),
    ([1.0, math.inf], 50, "finite"),
    ([1.0, 2.0], 101, r"q should be a number in \[0, 100\]"),
    ([1.0, 2.0], -1, r"q should be a number in \[0, 100\]"),
    ([1.0, 2.0], math.nan, r"q should be a number in \[0, 100\]"),
    (np.ones((2, 2)), 50, "one-dimensional"),
])
def test_percentile_refuses_bad_input(samples, q, match):
    with pytest.raises(ValueError, match=f"percentile: .*{match}"):
        percentile(samples, q)


def test_percentile_refuses_non_numbers():
    with pytest.raises(TypeError, match="percentile: samples should be numbers, got str at index 1"):
        percentile([1.0, "2"], 50)
    with pytest.raises(TypeError, match="percentile: samples should be numbers, got bool"):
        percentile([True, 1.0], 50)
    with pytest.raises(TypeError, match="percentile: samples should be a sequence"):
        percentile("123", 50)


def test_latency_summary():
    x = np.random.default_rng(0).exponential(10.0, 101)
    s = latency_summary(list(x))
    assert s["n"] == 101 and s["max"] == x.max()
    assert s["mean"] == pytest.approx(x.mean(), rel=1e-14)
    for q in (50, 95, 99):
        assert s[f"p{q}"] == np.percentile(x, q)


# --- dynamic batching: closed form vs ticks ---------------------------------------------------------


def brute_force_batching(arrivals, service, max_batch, max_wait):
    """Advance a clock 1 ms at a time; whenever the worker is free, ask should_flush. Integer inputs
    make every event fall on a tick, so this is exact."""
    from course_lib.serving.batching import should_flush

    queue, out, free, i, t = [], [], 0, 0, min(arrivals)
    while i < len(arrivals) or queue:
        while i < len(arrivals) and arrivals[i] <= t:
            queue.append(arrivals[i])
            i += 1
        if t >= free and queue and should_flush(len(queue), t - queue[0], max_batch, max_wait):
            size = min(max_batch, len(queue))
            del queue[:size]
            free = t + service(size)
            out.append((t, free, size))
        t += 1
    return out


@given(st.lists(st.integers(0, 60), min_size=1, max_size=25), st.integers(1, 6), st.integers(0, 8),
       st.integers(1, 5), st.integers(0, 3))
def test_simulate_batching_equals_brute_force(arrivals, max_batch, max_wait, base, per_item):
    arrivals = sorted(arrivals)
    service = lambda b: base + per_item * b  # noqa: E731
    got = simulate.simulate_batching(arrivals, service, max_batch, max_wait)
    assert got == brute_force_batching(arrivals, service, max_batch, max_wait)
    lat = simulate.latencies_from_simulation(arrivals, got)
    assert len(lat) == len(arrivals) and min(lat) >= base  # every request answered once, after its service
    assert all(0 < size <= max_batch for _, _, size in got)
    assert all(e1 <= s2 for (_, e1, _), (s2, _, _) in zip(got, got[1:]))  # one worker: no overlap


def test_simulate_batching_by_hand():
    # 4 requests at 0, 1, 2, 10 ms; batches of up to 2, wait up to 3 ms, a batch costs 5 ms
    got = simulate.simulate_batching([0, 1, 2, 10], lambda b: 5.0, max_batch=2, max_wait_ms=3)
    assert got == [(1.0, 6.0, 2), (6.0, 11.0, 1), (13.0, 18.0, 1)]
    assert simulate.latencies_from_simulation([0, 1, 2, 10], got) == [6.0, 5.0, 9.0, 8.0]
    unbatched = simulate.simulate_batching([0, 1, 2, 10], lambda b: 5.0, max_batch=1, max_wait_ms=3)
    assert [b[2] for b in unbatched] == [1, 1, 1, 1]


@pytest.mark.parametrize("args, match", [
    (([2, 1], lambda b: 1.0, 2, 1.0), "sorted"),
    (([0, math.nan], lambda b: 1.0, 2, 1.0), "finite numbers"),
    (([0, 1], lambda b: 1.0, 0, 1.0), "max_batch should be an int >= 1, got 0"),
    (([0, 1], lambda b: 1.0, 2.0, 1.0), "max_batch should be an int >= 1, got 2.0"),
    (([0, 1], lambda b: 1.0, 2, -1.0), "max_wait_ms should be a finite number >= 0"),
    (([0, 1], lambda b: -1.0, 2, 1.0), r"service_ms\(2\) should return a finite number >= 0"),
])
def test_simulate_batching_refuses_bad_input(args, match):
    with pytest.raises(ValueError, match=f"simulate_batching: .*{match}"):
        simulate.simulate_batching(*args)


def test_poisson_arrivals_are_seeded_with_the_right_mean_gap():
    a = simulate.poisson_arrivals(200.0, 4000, seed=1)
    assert a == simulate.poisson_arrivals(200.0, 4000, seed=1) and a == sorted(a)
    assert np.diff([0.0] + a).mean() == pytest.approx(5.0, rel=0.05)  # 1000 / 200 ms
    with pytest.raises(ValueError, match="poisson_arrivals: rate_per_s should be a finite number > 0"):
        simulate.poisson_arrivals(0.0, 3)


# --- static vs continuous batching of generation ---------------------------------------------------


def test_static_and_continuous_batching_by_hand():
    # three requests at t = 0 wanting 1, 4 and 2 tokens, one at t = 1 wanting 1; batch width 2, 1 ms a step
    arrivals, lengths = [0, 0, 0, 1], [1, 4, 2, 1]
    st_ = simulate.simulate_continuous_batching(arrivals, lengths, 2, policy="static")
    co = simulate.simulate_continuous_batching(arrivals, lengths, 2, policy="continuous")
    # static: {0, 1} for 4 steps (0 finishes after one, its slot idles), then {2, 3} for 2 steps
    assert st_.finish_ms == [1.0, 4.0, 6.0, 5.0]
    assert st_.slots == [2] * 6 and st_.utilisation() == pytest.approx(8 / 12)
    # continuous: 2 joins at t = 1 when 0 leaves; 3 joins at t = 3 when 2 leaves
    assert [s[2] for s in co.steps] == [(0, 1), (1, 2), (1, 2), (1, 3)]
    assert co.finish_ms == [1.0, 4.0, 3.0, 4.0] and co.utilisation() == 1.0
    assert co.first_token_ms == [1.0, 1.0, 2.0, 4.0]
    assert co.latencies(arrivals) == [1.0, 4.0, 3.0, 3.0]


@given(st.lists(st.tuples(st.integers(0, 20), st.integers(1, 6)), min_size=1, max_size=15), st.integers(1, 4),
       st.sampled_from(["static", "continuous"]))
def test_decode_simulation_invariants(reqs, max_batch, policy):
    reqs = sorted(reqs)
    arrivals, lengths = [r[0] for r in reqs], [r[1] for r in reqs]
    sim = simulate.simulate_continuous_batching(arrivals, lengths, max_batch, step_ms=lambda b: 1.0 + 0.5 * b,
                                                policy=policy)
    tokens = [0] * len(reqs)
    for (start, end, running), width in zip(sim.steps, sim.slots):
        assert 0 < len(running) <= width <= max_batch and end > start
        for r in running:
            assert arrivals[r] <= start
            tokens[r] += 1
    assert tokens == lengths  # every request gets exactly its tokens
    assert all(f >= a + n for f, a, n in zip(sim.finish_ms, arrivals, lengths))
    if policy == "continuous":
        assert sim.slots == [len(r) for _, _, r in sim.steps]


def test_decode_simulation_refuses_bad_input():
    with pytest.raises(ValueError, match="simulate_continuous_batching: lengths should be a sequence of 2 ints"):
        simulate.simulate_continuous_batching([0, 1], [3], 2)
    with pytest.raises(ValueError, match=r"simulate_continuous_batching: lengths\[1\] should be an int >= 1, got 0"):
        simulate.simulate_continuous_batching([0, 1], [3, 0], 2)
    with pytest.raises(ValueError, match="policy should be 'continuous' or 'static', got 'orca'"):
        simulate.simulate_continuous_batching([0], [1], 2, policy="orca")


# --- int8 weights ---------------------------------------------------------------------------------


@given(st.integers(1, 6), st.integers(1, 6), st.sampled_from([1.0, 1e-4, 1e3, 0.0]), st.integers(0, 2 ** 16),
       st.booleans())
def test_quantize_symmetric_equals_pytorch_quantized_linear(out_f, in_f, scale, seed, positive):
    torch.manual_seed(seed)
    lin = torch.nn.Linear(in_f, out_f)
    with torch.no_grad():
        lin.weight.mul_(scale)
        if positive:
            lin.weight.abs_()
    q_ref, s_ref = inference.quantized_weight(inference.quantize_linear_layers(torch.nn.Sequential(lin))[0])
    q, s = inference.quantize_symmetric(lin.weight)
    assert q.dtype == torch.int8 and s == s_ref and torch.equal(q, q_ref)
    # at most half a step (the largest positive weight sits at 127.5 steps and is clipped to 127: exactly
    # half a step, up to the float32 rounding of the scale)
    assert inference.max_rounding_error(lin.weight) <= s / 2 * (1 + 1e-4)


def test_quantize_symmetric_refuses_bad_input():
    with pytest.raises(TypeError, match="quantize_symmetric: w should be a floating-point tensor, got dtype torch.int64"):
        inference.quantize_symmetric(torch.ones(2, 2, dtype=torch.long))
    with pytest.raises(ValueError, match="quantize_symmetric: w should be finite"):
        inference.quantize_symmetric(torch.tensor([1.0, math.nan]))
    with pytest.raises(ValueError, match="quantize_symmetric: w should have at least one element"):
        inference.quantize_symmetric(torch.ones(0, 3))


def test_quantize_linear_layers_copies_and_stays_close():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.ReLU(), torch.nn.Linear(32, 4))
    before = [p.clone() for p in model.parameters()]
    qmodel = inference.quantize_linear_layers(model)
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))  # the original is untouched
    assert type(qmodel[0]).__name__ == "Linear" and type(qmodel[0]).__module__ != torch.nn.Linear.__module__
    x = torch.randn(8, 16)
    with torch.no_grad():
        diff = (qmodel(x) - model(x)).abs().max()
    assert 0 < diff < 0.05  # not the same model, but close
    assert inference.state_bytes(qmodel) < inference.state_bytes(model)
    with pytest.raises(TypeError, match="quantize_linear_layers: model should be a torch.nn.Module, got list"):
        inference.quantize_linear_layers([1])


# --- the explorer shows what the simulator computes --------------------------------------------------


def test_batching_explorer_matches_the_simulator():
    from course_lib.widgets.batching import BatchingExplorer

    ex = BatchingExplorer(n=300)
    ex.set_state(rate=ex.controls["rate"].max, max_batch=8, max_wait_ms=4.0)
    state = ex.state()
    lat = simulate.latencies_from_simulation(ex.arrivals(state["rate"]), ex.simulate(**state))
    assert ex.summary["p95"] == percentile(lat, 95)
    xs, ys = ex.cdf.get_data()
    assert len(xs) == ex.n and ys[-1] == 1.0 and list(xs) == sorted(max(x, 0.1) for x in lat)
    batches = ex.simulate(**state)
    assert ex.summary["mean_batch"] == ex.n / len(batches) and 0 < ex.summary["busy"] <= 1
    ex.set_state(max_batch=1)  # no batching at this rate: the worker cannot keep up, the latencies explode
    assert ex.summary["p50"] > 10 * percentile(lat, 50)
    # saturated: the worker never idles and serves at its capacity, 1000 / (fixed + per_item) per second
    fixed, per_item = state["service"]
    assert ex.summary["busy"] == pytest.approx(1.0) and ex.summary["mean_batch"] == 1.0
    assert ex.summary["served_per_s"] == pytest.approx(1000 / (fixed + per_item), rel=0.02)
