"""Questions of sheet 15_serving: each accepts the reference and a differently written correct
answer, rejects typical wrong answers by name; the solution sheet passes, the unfilled exercise
sheet is "not attempted" and still runs to the end on the references."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from course_lib import questions
from course_lib.check import evaluate
from course_lib.serving.simulate import latencies_from_simulation, simulate_batching
from question_suite import QuestionSuite

SHEET = "15_serving"
IDS = ["15.1", "15.2", "15.3", "15.4"]


# --- correct answers written differently from the reference -----------------------------
def flush_by_negation(queue_len, oldest_wait_ms, max_batch, max_wait_ms):
    """Wait only while the queue is empty, or neither full nor overdue."""
    keep_waiting = queue_len == 0 or (queue_len < max_batch and oldest_wait_ms < max_wait_ms)
    return not keep_waiting


def percentile_by_numpy(samples, q):
    """NumPy's default method is the one asked for."""
    return float(np.percentile(np.asarray(samples, dtype=np.float64), q))


def report_by_repeating_batch_ends(arrivals_ms, batches):
    """Each batch's end repeated size times, subtracted from the arrivals elementwise."""
    ends = list(itertools.chain.from_iterable([end] * size for _, end, size in batches))
    latencies = [e - a for e, a in zip(ends, arrivals_ms)]
    seconds = (max(end for _, end, _ in batches) - min(arrivals_ms)) / 1000
    return latencies, len(arrivals_ms) / seconds


def min_batch_by_search(rate_per_s, fixed_ms, per_item_ms):
    """Try b = 1, 2, ... until b requests per batch time reach the rate."""
    b = 1
    while b * 1000 < rate_per_s * (fixed_ms + per_item_ms * b):
        b += 1
    return b


CORRECT = {"15.1": flush_by_negation, "15.2": percentile_by_numpy, "15.3": report_by_repeating_batch_ends,
           "15.4": min_batch_by_search}


def wrong(qid, name):
    return questions.get(qid).misconception(name).wrong


class TestQuestions(QuestionSuite):
    """Accepts the reference and CORRECT, rejects the registered misconceptions by name;
    solutions pass, exercises are not attempted."""


def test_sheet_ids_and_kinds():
    qs = questions.for_sheet(SHEET)
    assert [q.id for q in qs] == IDS
    assert {q.id: q.kind for q in qs} == {"15.1": "implement", "15.2": "implement", "15.3": "debug", "15.4": "derive"}


def test_the_percentile_reference_is_numpys_on_every_case():
    q = questions.get("15.2")
    for case in q.cases() + q.cases(hidden=True):
        samples, qs = case.args
        assert [q.reference(samples, p) for p in qs] == [float(np.percentile(samples, p)) for p in qs], case.label


def test_the_schedules_are_the_simulations_and_the_bounds_are_not_whole_numbers():
    q = questions.get("15.3")
    for case in q.cases() + q.cases(hidden=True):
        arrivals, batches = case.args
        assert sum(b[2] for b in batches) == len(arrivals) and all(b[0] >= 0 for b in batches)
        latencies, throughput = q.reference(arrivals, batches)
        assert latencies == latencies_from_simulation(arrivals, [tuple(b) for b in batches]) and throughput > 0
        assert min(latencies) > 0
    q = questions.get("15.4")
    for case in q.cases() + q.cases(hidden=True):
        rate, fixed, per_item = case.args
        bound = rate * fixed / (1000 - rate * per_item)
        assert abs(bound - round(bound)) > 1e-6, case.label  # ceil and the exact test agree


@pytest.mark.parametrize("rate, fixed, per_item", [(100.0, 20.0, 2.0), (950.0, 3.0, 0.9)])
def test_the_smallest_batch_keeps_up_in_the_simulation_and_one_less_does_not(rate, fixed, per_item):
    """Evenly spaced arrivals at the rate: with max_batch = b the last request's latency stays
    bounded, with b - 1 the queue (and the latency) grows with the number of requests."""
    b = questions.get("15.4").reference(rate, fixed, per_item)
    arrivals = [i * 1000 / rate for i in range(600)]

    def last_latency(max_batch):
        schedule = simulate_batching(arrivals, lambda n: fixed + per_item * n, max_batch, 1e6)
        return latencies_from_simulation(arrivals, schedule)[-1]

    assert last_latency(b) < 3 * (fixed + per_item * b)
    assert b == 1 or last_latency(b - 1) > 10 * (fixed + per_item * b)


def test_failure_messages_point_at_the_problem():
    msg = evaluate("15.1", wrong("15.1", "flushing only on a full batch (starvation)")).message
    assert "case 1 of 5 (max_batch=8" in msg and "This looks like flushing only on a full batch" in msg
    msg = evaluate("15.2", wrong("15.2", "nearest-rank instead of interpolated percentile")).message
    assert "This looks like nearest-rank instead of interpolated percentile" in msg
    msg = evaluate("15.4", lambda *a: 2.5).message
    assert "the value differs" in msg


def test_the_sheets_buggy_listing_is_the_registered_one(solution_sheet):
    res = evaluate("15.3", solution_sheet["buggy_schedule_report"])
    assert res.misconception == "both planted bugs left in", res.message


@pytest.mark.parametrize("sheet", ["solution_sheet", "exercise_sheet"])
def test_the_last_cells_run_with_the_students_or_the_reference_functions(sheet, request):
    ns = request.getfixturevalue(sheet)
    assert ns["needed"] == 5
    assert ns["flush_said_yes"] == len(ns["schedule"])
    unbatched, batched = ns["summary"][1], ns["summary"][16]
    assert batched["p95"] < unbatched["p95"] and batched["throughput"] > unbatched["throughput"]
    assert unbatched["mean batch"] == 1.0 and batched["mean batch"] > 1.0
