"""Chapter 16: the ring all-reduce against a sum (simulated workers) and against ``dist.all_reduce``
(real processes), and DistributedDataParallel against one process, under ONE torchrun launch of the
same entry point as the notebook (``course_lib.distributed.ddp.main``)."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from course_lib.distributed import ddp, ring
from tests.strategies import float_tensors, int_tensors, shapes

ORDINARY = (-10.0, 10.0)


@st.composite
def worker_lists(draw, special: bool = False, values=None):
    """1..5 workers holding float64 tensors of one shape (sizes 0 and 1 included)."""
    p = draw(st.integers(1, 5))
    shape = draw(shapes(min_dims=0, max_dims=3, max_side=4))
    elements = float_tensors(st.just(shape), special=special, **({} if values is None else {"values": values}))
    return draw(st.lists(elements, min_size=p, max_size=p))


# --- simulated ring vs a sum -------------------------------------------------------------------------
@given(worker_lists())
def test_simulated_ring_equals_sum(xs):
    before = [x.clone() for x in xs]
    out = ring.simulate_ring_allreduce(xs)
    ref = torch.stack(xs).sum(0)
    assert len(out) == len(xs)
    for o in out:
        assert o.shape == ref.shape and o.dtype == ref.dtype
        torch.testing.assert_close(o, ref, rtol=1e-13, atol=1e-12)
        assert torch.equal(o, out[0]), "after the all-gather every worker must hold the same bits"
    for x, b in zip(xs, before):
        assert torch.equal(x, b), "the simulation must not modify its inputs"


@given(st.integers(1, 5), shapes(min_dims=1, max_dims=2, max_side=5), st.data())
def test_simulated_ring_exact_on_integer_valued_floats(p, shape, data):
    xs = [data.draw(float_tensors(st.just(shape), special=False)).round() for _ in range(p)]
    ref = torch.stack(xs).sum(0)
    for o in ring.simulate_ring_allreduce(xs):
        assert torch.equal(o, ref)


@given(worker_lists(special=True, values=(math.nan, math.inf, -math.inf, -0.0, 0.0)))
def test_simulated_ring_special_values_like_sum(xs):
    ref = torch.stack(xs).sum(0)
    for o in ring.simulate_ring_allreduce(xs):
        assert torch.equal(torch.isnan(o), torch.isnan(ref))
        finite = ~torch.isnan(ref)
        torch.testing.assert_close(o[finite], ref[finite], rtol=1e-13, atol=1e-12)


@given(st.integers(1, 5), st.data())
def test_simulated_ring_integer_dtypes_wrap_like_the_dtype(p, data):
    dtype = data.draw(st.sampled_from((torch.int8, torch.uint8, torch.int16, torch.int32, torch.int64)))
    shape = data.draw(shapes(min_dims=1, max_dims=2, max_side=4))
    xs = [data.draw(int_tensors(st.just(shape), dtypes=(dtype,))) for _ in range(p)]
    ref = torch.stack([x.to(torch.int64) for x in xs]).sum(0).to(dtype)  # modular sums: order-free
    for o in ring.simulate_ring_allreduce(xs):
        assert o.dtype == dtype and torch.equal(o, ref)


@given(st.integers(2, 5), st.integers(0, 13), st.data())
def test_reduce_scatter_leaves_one_finished_chunk_per_worker(p, n, data):
    xs = [data.draw(float_tensors(st.just((n,)), special=False)).round() for _ in range(p)]
    ref = torch.stack(xs).sum(0)
    partial = ring.simulate_reduce_scatter(xs)
    bounds = ring.chunk_bounds(n, p)
    for r, buf in enumerate(partial):
        lo, hi = bounds[(r + 1) % p]
        assert torch.equal(buf[lo:hi], ref[lo:hi])
    full = ring.simulate_all_gather(partial)
    assert all(torch.equal(b, ref) for b in full)


def test_reduce_scatter_alone_is_not_an_allreduce():
    xs = [torch.arange(6, dtype=torch.float64) + 10 * r for r in range(3)]
    ref = torch.stack(xs).sum(0)
    partial = ring.simulate_reduce_scatter(xs)
    assert not all(torch.equal(b, ref) for b in partial)


@given(st.integers(0, 40), st.integers(1, 7))
def test_chunk_bounds_match_tensor_split(n, p):
    sizes = [hi - lo for lo, hi in ring.chunk_bounds(n, p)]
    assert sizes == [c.numel() for c in torch.tensor_split(torch.zeros(n), p)]


@pytest.mark.parametrize("bad, exc, words", [
    ([], ValueError, "at least one worker"),
    (torch.zeros(3), TypeError, "list of tensors"),
    ([torch.zeros(3), [1.0, 2.0, 3.0]], TypeError, "worker 1"),
    ([torch.zeros(3), torch.zeros(4)], ValueError, "shape (3,)"),
    ([torch.zeros(3, dtype=torch.float64), torch.zeros(3)], TypeError, "dtype torch.float64"),
    ([torch.zeros(3, dtype=torch.bool)] * 2, TypeError, "torch.bool"),
])
def test_simulation_errors_name_function_expected_and_received(bad, exc, words):
    with pytest.raises(exc, match="simulate_ring_allreduce") as info:
        ring.simulate_ring_allreduce(bad)
    assert words in str(info.value)


# --- volume and time model ---------------------------------------------------------------------------
def test_volume_and_time_formulas():
    n = 1e9
    assert ring.ring_bytes_per_worker(n, 1) == 0.0
    assert ring.ring_bytes_per_worker(n, 2) == pytest.approx(n)
    assert ring.ring_bytes_per_worker(n, 8) == pytest.approx(2 * 7 / 8 * n)
    assert ring.naive_root_bytes(n, 8) == pytest.approx(14 * n)
    t_ring = ring.allreduce_time_s(n, 8, 1e10, 1e-5)
    assert t_ring == pytest.approx(14 * (1e-5 + n / 8 / 1e10))
    assert ring.allreduce_time_s(n, 8, 1e10, 1e-5, algorithm="naive") == pytest.approx(14 * (1e-5 + n / 1e10))
    assert ring.allreduce_time_s(n, 1, 1e10, 1e-5) == 0.0
    # latency-bound: tiny messages cost the same 2(p-1) alpha in both
    assert ring.allreduce_time_s(0, 4, 1e10, 1e-5) == ring.allreduce_time_s(0, 4, 1e10, 1e-5, "naive")


@pytest.mark.parametrize("call, words", [
    (lambda: ring.ring_bytes_per_worker(-1, 2), "n_bytes"),
    (lambda: ring.ring_bytes_per_worker(10, 0), "world_size"),
    (lambda: ring.allreduce_time_s(10, 2, 0, 1e-6), "bandwidth_Bps"),
    (lambda: ring.allreduce_time_s(10, 2, 1e9, -1), "latency_s"),
    (lambda: ring.allreduce_time_s(10, 2, 1e9, 1e-6, "tree"), "'ring' or 'naive'"),
    (lambda: ring.chunk_bounds(3, 0), "world_size"),
])
def test_model_errors(call, words):
    with pytest.raises(ValueError) as info:
        call()
    assert words in str(info.value)


def test_fit_alpha_beta_recovers_the_model():
    sizes = [4.0, 4e3, 4e5, 4e6, 1.6e7]
    times = [ring.allreduce_time_s(n, 2, 2e9, 5e-5) for n in sizes]
    alpha, beta = ring.fit_alpha_beta(sizes, times, 2)
    assert alpha == pytest.approx(5e-5, rel=1e-6) and beta == pytest.approx(2e9, rel=1e-6)
    # noisy times: relative residuals keep the latency that the small messages show
    noisy = [t * f for t, f in zip(times, (1.1, 0.9, 1.05, 0.95, 1.3))]
    alpha, _ = ring.fit_alpha_beta(sizes, noisy, 2)
    assert 3e-5 < alpha < 8e-5
    with pytest.raises(ValueError, match="fit_alpha_beta: expected positive times"):
        ring.fit_alpha_beta(sizes[:2], [1e-3, 0.0], 2)


# --- the real ring, errors without processes -------------------------------------------------------
def test_ring_allreduce_without_a_process_group():
    import torch.distributed as dist

    if dist.is_initialized():
        pytest.skip("a process group is already initialised in this process")
    with pytest.raises(RuntimeError, match="ring_allreduce: expected an initialised process group"):
        ring.ring_allreduce(torch.zeros(3))


def test_ring_allreduce_one_process_group_and_its_errors():
    import torch.distributed as dist

    if dist.is_initialized():
        pytest.skip("a process group is already initialised in this process")
    dist.init_process_group("gloo", rank=0, world_size=1, store=dist.HashStore())
    try:
        x = torch.arange(6, dtype=torch.float64)
        assert ring.ring_allreduce(x) is x and torch.equal(x, torch.arange(6, dtype=torch.float64))
        with pytest.raises(ValueError, match="ring_allreduce: expected a contiguous tensor"):
            ring.ring_allreduce(torch.zeros(3, 4).t())
        with pytest.raises(TypeError, match="ring_allreduce: expected a numeric dtype.*torch.bool"):
            ring.ring_allreduce(torch.zeros(3, dtype=torch.bool))
        with pytest.raises(TypeError, match="ring_allreduce: expected a torch.Tensor, got list"):
            ring.ring_allreduce([1.0, 2.0])
    finally:
        dist.destroy_process_group()


def test_main_refuses_to_run_outside_torchrun(monkeypatch, tmp_path):
    monkeypatch.delenv("RANK", raising=False)
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    with pytest.raises(SystemExit, match="expected to run under torchrun"):
        ddp.main(["--out", str(tmp_path / "x.json")])


def test_launch_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="launch: expected a script file"):
        ddp.launch(tmp_path / "missing.py")
    script = ddp.write_script(tmp_path)
    with pytest.raises(ValueError, match="launch: expected nproc"):
        ddp.launch(script, nproc=0)
    with pytest.raises(ValueError, match="launch: expected launcher"):
        ddp.launch(script, launcher="mpirun")


# --- one torchrun launch: DDP and the real ring ------------------------------------------------------
@pytest.fixture(scope="module")
def run(tmp_path_factory):
    script = ddp.write_script(tmp_path_factory.mktemp("ddp"))
    return ddp.launch(script, nproc=2, args=["--quick", "--steps", "5"], timeout=240)


def _variant(run, **want):
    defaults = {"loss": "mean", "unequal": False, "batchnorm": False}
    want = {**defaults, **want}
    (hit,) = [v for v in run["ddp"] if all(v[k] == want[k] for k in want)]
    return hit


def test_ddp_with_half_the_batch_equals_one_process(run):
    v = _variant(run)
    assert run["world_size"] == 2 and run["backend"] == "gloo"
    assert v["shard"] == v["batch"] // 2
    assert v["max_param_change"] > 1e-3, "training must move the parameters, or the comparison is empty"
    assert v["max_param_diff"] < 1e-12
    assert v["ranks_max_diff"] == 0.0


@pytest.mark.parametrize("case", [dict(unequal=True), dict(loss="sum"), dict(batchnorm=True)])
def test_ddp_differs_when_the_shards_do_not_average_to_the_batch(run, case):
    v = _variant(run, **case)
    assert v["max_param_diff"] > 1e-6
    assert v["ranks_max_diff"] == 0.0, "DDP keeps the replicas identical even when it computes something else"


def test_weighting_unequal_shards_restores_equality(run):
    assert _variant(run, unequal=True, loss="weighted")["max_param_diff"] < 1e-12


def test_real_ring_equals_dist_all_reduce(run):
    cases = {row["case"]: row for row in run["ring"]}
    assert {"float64 (1,)", "float64 (1001,)", "float64 (3, 5)", "int64 (7,)"} <= set(cases)
    for row in run["ring"]:
        assert row["max_abs_diff"] == 0.0, row  # two ranks: one addition per element, same as gloo


def test_real_ring_mismatched_sizes_raise_on_every_rank(run):
    msg = run["ring_mismatch_error"]
    assert "ring_allreduce: expected the same number of elements and dtype on every rank" in msg
    assert "(1, torch.float64)" in msg and "(2, torch.float64)" in msg


def test_launch_reports_the_command_and_stays_on_loopback(run):
    command = run["launch"]["command"]
    assert "--standalone" in command and "--nproc-per-node=2" in command
    assert "--local-addr=127.0.0.1" in command
    assert "allreduce_timing" not in run  # --quick skips the timings


def test_launch_stamps_are_ordered(run):
    stamps = run["stamps"]
    for rank in range(run["world_size"]):
        when = [stamps[k][rank] for k in ("entered", "imported", "initialised", "finished")]
        assert when == sorted(when), when
    assert run["launch"]["start"] <= min(stamps["entered"]) and max(stamps["finished"]) <= run["launch"]["end"]


# --- the explorer ---------------------------------------------------------------------------------
def test_allreduce_explorer_renders_and_changes():
    from course_lib.widgets.allreduce import AllReduceExplorer

    explorer = AllReduceExplorer()
    assert "OK" in explorer.self_check()
    for name in ("params_M", "bytes_per_param"):
        before = explorer.image.value
        explorer.step(name)
        assert explorer.image.value != before, name


# --- ZeRO / FSDP memory arithmetic ---------------------------------------------------------------------
def test_sharded_memory_bytes_stages():
    from course_lib.distributed.zero import sharded_memory_bytes

    per_param = {"weights": 2.0, "gradients": 2.0, "optimizer": 8.0, "master": 4.0, "activations": 0.0}
    n, p = 1000.0, 8
    mem = {k: v * n for k, v in per_param.items()}
    totals = [sharded_memory_bytes(mem, p, s)["total"] for s in range(4)]
    assert totals == pytest.approx([16 * n, 4 * n + 12 * n / p, 2 * n + 14 * n / p, 16 * n / p])
    assert sharded_memory_bytes(mem, 1, 3)["total"] == pytest.approx(16 * n)
    with pytest.raises(ValueError, match="sharded_memory_bytes: expected stage 0, 1, 2 or 3, got 4"):
        sharded_memory_bytes(mem, p, 4)
    with pytest.raises(KeyError, match="sharded_memory_bytes: expected the kinds"):
        sharded_memory_bytes({"weights": 1.0}, p, 1)
