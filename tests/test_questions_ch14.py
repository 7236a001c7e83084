"""Questions of sheet 14_cost: each accepts the reference and a differently written correct
answer, rejects typical wrong answers by name; the solution sheet passes, the unfilled exercise
sheet is "not attempted" and still runs to the end on the references."""

from __future__ import annotations

import math

import pytest
import torch

from course_lib import cost, questions
from course_lib.check import evaluate
from course_lib.gpt import GPT
from question_suite import QuestionSuite

SHEET = "14_cost"
IDS = ["14.1", "14.2", "14.3", "14.4"]


# --- correct answers written differently from the reference -----------------------------
def count_by_listing_tensors(vocab_size, context, embed_dim, num_layers, tied):
    """A list of every tensor's shape, multiplied out and summed."""
    V, C, E, L = vocab_size, context, embed_dim, num_layers
    block = [(E,), (E,), (3 * E, E), (3 * E,), (E, E), (E,), (E,), (E,), (4 * E, E), (4 * E,), (E, 4 * E), (E,)]
    shapes = [(V, E), (C, E)] + block * L + [(E,), (E,)] + ([] if tied else [(V, E)])
    return sum(math.prod(s) for s in shapes)


def days_from_tokens_per_second(n_params, n_tokens, n_devices, peak_flops, utilisation):
    """Tokens per second of the cluster at 3 x 2N FLOPs per token, then hours, then days."""
    tokens_per_s = n_devices * peak_flops * utilisation / (3 * 2 * n_params)
    return n_tokens / tokens_per_s / 3600 / 24


def memory_by_parts(n_params, dtype_bytes, optimizer):
    """A dict of parts in bytes per parameter, summed."""
    parts = {"weight": dtype_bytes, "gradient": dtype_bytes,
             "states": 4 * {"sgd": 0, "momentum": 1, "adam": 2}[optimizer],
             "master": 4 if dtype_bytes in (1, 2) else 0}
    return sum(parts.values()) * n_params


def chinchilla_by_logs(compute_flops):
    """log N = (log C - log 120) / 2."""
    n = math.exp(0.5 * (math.log(compute_flops) - math.log(6 * 20)))
    return (n, n * 20)


CORRECT = {"14.1": count_by_listing_tensors, "14.2": days_from_tokens_per_second, "14.3": memory_by_parts,
           "14.4": chinchilla_by_logs}


def wrong(qid, name):
    return questions.get(qid).misconception(name).wrong


class TestQuestions(QuestionSuite):
    """Accepts the reference and CORRECT, rejects the registered misconceptions by name;
    solutions pass, exercises are not attempted."""


def test_sheet_ids_and_kinds():
    qs = questions.for_sheet(SHEET)
    assert [q.id for q in qs] == IDS
    assert {q.id: q.kind for q in qs} == {"14.1": "derive", "14.2": "derive", "14.3": "implement", "14.4": "derive"}


def test_the_count_is_what_the_course_gpt_holds():
    """On every public case (and the first hidden ones) the reference equals numel() of the course's
    GPT built on the meta device, with the head tied or not."""
    q = questions.get("14.1")
    for case in q.cases() + q.cases(hidden=True)[6:8]:
        V, C, E, L, tied = case.args
        with torch.device("meta"):
            model = GPT(V, C, E, 1, L, tie_embeddings=tied)
        assert q.reference(*case.args) == sum(p.numel() for p in model.parameters()), case.label
    assert q.reference(50257, 1024, 768, 12, True) == 124_439_808  # GPT-2 small as released (Radford et al. 2019)


def test_the_time_and_memory_references():
    days = questions.get("14.2").reference
    assert days(1e9, 1e9, 1, 6e18 / 86_400, 1.0) == pytest.approx(1.0, rel=1e-12)  # 6e18 FLOPs at 6e18 per day
    assert days(1e9, 1e9, 2, 6e18 / 86_400, 0.5) == pytest.approx(1.0, rel=1e-12)
    mem = questions.get("14.3").reference
    assert mem(1000, 2, "adam") == 16_000 == mem(1000, 4, "adam")  # 2 + 2 + 8 + 4 and 4 + 4 + 8: 16 bytes a parameter
    assert mem(1000, 8, "sgd") == 16_000 and mem(1000, 2, "momentum") == 12_000
    n, d = questions.get("14.4").reference(5.88e23)
    assert 6 * n * d == pytest.approx(5.88e23, rel=1e-12) and d == pytest.approx(20 * n, rel=1e-12)
    assert n == pytest.approx(70e9, rel=1e-12)  # Chinchilla's own budget gives Chinchilla's size


def test_failure_messages_point_at_the_problem():
    msg = evaluate("14.1", wrong("14.1", "tied embeddings counted twice")).message
    assert "case 1 of 6 (GPT-2 small" in msg and "This looks like tied embeddings counted twice" in msg
    assert "the value differs" in msg  # a single number: the expected value is not given away
    msg = evaluate("14.2", wrong("14.2", "forward pass only (2N per token)")).message
    assert "This looks like forward pass only (2N per token)" in msg and "Hint 1 of 3" in msg
    res = evaluate("14.4", lambda c: 1.0)
    assert res.status == "failed" and "expected a pair" in res.message


@pytest.mark.parametrize("sheet", ["solution_sheet", "exercise_sheet"])
def test_the_last_cells_run_with_the_students_or_the_reference_functions(sheet, request):
    ns = request.getfixturevalue(sheet)
    assert all(formula == model for formula, model in ns["weighed"].values()) and len(ns["weighed"]) == 4
    assert ns["weighed"][("GPT-2 small", False)][1] - ns["weighed"][("GPT-2 small", True)][1] == 50257 * 768
    assert ns["n_opt"] == pytest.approx(70e9) and ns["d_opt"] == pytest.approx(1.4e12)
    assert cost.param_count(cost.GPT2_SMALL)["total"] == ns["weighed"][("GPT-2 small", True)][0]
