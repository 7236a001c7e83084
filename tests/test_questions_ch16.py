"""Questions of sheet 16_distributed: each accepts the reference and a differently written correct
answer, rejects typical wrong answers by name; the solution sheet passes, the unfilled exercise
sheet is "not attempted" and still runs to the end on the references."""

from __future__ import annotations

import pytest
import torch

from course_lib import questions
from course_lib.check import evaluate
from course_lib.distributed import ring
from course_lib.questions import ch16_distributed
from question_suite import QuestionSuite

SHEET = "16_distributed"
IDS = ["16.1", "16.2", "16.3", "16.4"]
F64 = torch.float64


# --- correct answers written differently from the reference -----------------------------
def ring_to_the_left(tensors):
    """The ring run the other way round (worker r sends to r - 1), with explicit index ranges
    instead of tensor_split views."""
    p, n = len(tensors), tensors[0].numel()
    edges = [n * c // p for c in range(p + 1)]  # other chunk sizes than tensor_split: fine for a sum
    bufs = [t.clone() for t in tensors]

    def sl(c):
        return slice(edges[c % p], edges[c % p + 1])

    for s in range(p - 1):
        msgs = [bufs[r][sl(r + s)].clone() for r in range(p)]
        for r in range(p):
            bufs[(r - 1) % p][sl(r + s)] += msgs[r]
    for s in range(p - 1):  # worker r now owns chunk r - 1 (mod p)
        msgs = [bufs[r][sl(r - 1 + s)].clone() for r in range(p)]
        for r in range(p):
            bufs[(r - 1) % p][sl(r - 1 + s)] = msgs[r]
    return bufs


def ddp_gradient_by_autograd(w, xs, ys):
    """One backward pass through the average of the workers' mean losses."""
    w = w.clone().requires_grad_(True)
    loss = sum(((x @ w - y) ** 2).mean() for x, y in zip(xs, ys)) / len(xs)
    loss.backward()
    return w.grad


def ring_time_from_bytes(n_bytes, world_size, bandwidth, latency):
    """Latency term plus the bytes each worker sends over the bandwidth."""
    p = world_size
    return 2 * (p - 1) * latency + (2 * (p - 1) / p) * n_bytes / bandwidth


def data_parallel_with_autograd(w0, x, y, world_size, lr, steps):
    """One backward pass through the sum of the shards' mean losses, divided by the world size."""
    w = w0.clone()
    for _ in range(steps):
        w.requires_grad_(True)
        total = sum(((xr @ w - yr) ** 2).mean() for xr, yr in zip(x.chunk(world_size), y.chunk(world_size)))
        (grad,) = torch.autograd.grad(total, w)
        w = (w - lr * grad / world_size).detach()
    return w


CORRECT = {"16.1": ring_to_the_left, "16.2": ddp_gradient_by_autograd, "16.3": ring_time_from_bytes,
           "16.4": data_parallel_with_autograd}


def wrong(qid, name):
    return questions.get(qid).misconception(name).wrong


class TestQuestions(QuestionSuite):
    """Accepts the reference and CORRECT, rejects the registered misconceptions by name;
    solutions pass, exercises are not attempted."""


def test_sheet_ids_and_kinds():
    qs = questions.for_sheet(SHEET)
    assert [q.id for q in qs] == IDS
    assert {q.id: q.kind for q in qs} == {"16.1": "implement", "16.2": "derive", "16.3": "predict", "16.4": "debug"}


def test_the_ring_reference_sums_and_its_phases_are_the_librarys():
    """The reference gives the sum on every worker; the misconception's half-done ring is exactly
    the library's reduce-scatter (the same chunk schedule), which the sheet's text describes."""
    q = questions.get("16.1")
    half_done = wrong("16.1", "reduce-scatter without all-gather")
    for case in q.cases() + q.cases(hidden=True):
        tensors = list(case.args[0])
        total = torch.stack(tensors).sum(0)
        for out in q.reference(tensors):
            torch.testing.assert_close(out, total, rtol=0, atol=1e-12)
        for mine, lib in zip(half_done(tensors), ring.simulate_reduce_scatter(tensors)):
            torch.testing.assert_close(mine, lib, rtol=0, atol=0)
        p = len(tensors)
        for r, buf in enumerate(half_done(tensors)):  # worker r owns the finished chunk (r + 1) mod p
            lo, hi = ring.chunk_bounds(tensors[0].numel(), p)[(r + 1) % p]
            torch.testing.assert_close(buf[lo:hi], total[lo:hi], rtol=0, atol=1e-12)


def test_the_gradient_reference_is_the_mean_of_means():
    """Equal shards: DDP's gradient is the full-batch gradient; unequal shards: it is not, and the
    'full-batch' misconception is told apart on every public case (all have unequal shards)."""
    gen = torch.Generator().manual_seed(0)
    x, y, w = (torch.randn(*s, generator=gen, dtype=F64) for s in ((8, 3), (8,), (3,)))
    full = 2 / 8 * x.T @ (x @ w - y)
    ref = questions.get("16.2").reference
    torch.testing.assert_close(ref(w, list(x.chunk(4)), list(y.chunk(4))), full, rtol=0, atol=1e-14)
    assert (ref(w, list(x.split([6, 2])), list(y.split([6, 2]))) - full).abs().max() > 1e-3
    for case in questions.get("16.2").cases():
        assert len({xr.shape[0] for xr in case.args[1]}) > 1, case.label


def test_the_time_reference_is_the_alpha_beta_ring_model():
    q = questions.get("16.3")
    for case in q.cases() + q.cases(hidden=True):
        n, p, bw, lat = case.args
        assert q.reference(*case.args) == pytest.approx(2 * (p - 1) * lat + ring.ring_bytes_per_worker(n, p) / bw, rel=1e-12)
    assert q.reference(1e9, 1, 1e9, 1e-3) == 0.0
    naive = ring.allreduce_time_s(1e9, 8, 1e9, 1e-6, algorithm="naive")
    assert wrong("16.3", "the whole tensor sent at every step")(1e9, 8, 1e9, 1e-6) == pytest.approx(naive, rel=1e-12)


def test_the_training_reference_is_one_process_with_the_whole_batch():
    """The reference equals nn.Linear trained by torch.optim.SGD on the whole batch (float64)."""
    q = questions.get("16.4")
    for case in q.cases():
        w0, x, y, p, lr, steps = case.args
        model = torch.nn.Linear(x.shape[1], 1, bias=False, dtype=F64)
        with torch.no_grad():
            model.weight.copy_(w0.unsqueeze(0))
        opt = torch.optim.SGD(model.parameters(), lr=lr)
        for _ in range(steps):
            opt.zero_grad()
            torch.nn.functional.mse_loss(model(x).squeeze(1), y).backward()
            opt.step()
        torch.testing.assert_close(q.reference(*case.args), model.weight.detach().squeeze(0), rtol=0, atol=1e-13)
        assert x.shape[0] % p == 0, case.label  # equal shards: data parallelism must match exactly


def test_failure_messages_point_at_the_problem():
    msg = evaluate("16.1", wrong("16.1", "reduce-scatter without all-gather")).message
    assert "case 1 of 5" in msg and "This looks like reduce-scatter without all-gather" in msg
    msg = evaluate("16.2", wrong("16.2", "summing where averaging is needed")).message
    assert "This looks like summing where averaging is needed" in msg and "Hint 1 of 3" in msg
    msg = evaluate("16.3", lambda *a: 1.5).message
    assert "the value differs" in msg
    msg = evaluate("16.1", lambda tensors: tensors[0]).message  # one tensor instead of one per worker
    assert "case 1 of 5" in msg and "expected 3 output(s), got 1" in msg


def test_the_sheets_buggy_listing_is_the_registered_one(solution_sheet):
    res = evaluate("16.4", solution_sheet["buggy_data_parallel"])
    assert res.misconception == "both planted bugs left in", res.message


@pytest.mark.parametrize("sheet", ["solution_sheet", "exercise_sheet"])
def test_the_last_cells_run_with_the_students_or_the_reference_functions(sheet, request):
    ns = request.getfixturevalue(sheet)
    assert ns["ring_error"] < 1e-12
    assert ns["shard_gaps"][(6, 6)] < 1e-12 < 1e-3 < ns["shard_gaps"][(9, 3)]
    assert all(gap < 1e-12 for gap in ns["parallel_gaps"].values())
