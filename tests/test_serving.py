"""The serving stack over loopback: a real uvicorn server (started once per module) and a real
HTTP client. The GPT is chapter 13's, untrained but seeded, in float64 (so batched and one-row
decoding are bit-identical): what is tested is the protocol, not the text."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch

httpx = pytest.importorskip("httpx")
pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

from course_lib import gpt  # noqa: E402
from course_lib.serving.app import create_app  # noqa: E402
from course_lib.serving.loadgen import run_load  # noqa: E402
from course_lib.serving.models import GPTServable, RequestError, load_servable, save_servable, train_gpt_servable  # noqa: E402
from course_lib.serving.server import Server  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def servable():
    return train_gpt_servable(steps=0, seed=0, progress=False, context=24, embed_dim=32, num_heads=4,
                              num_layers=2, dtype=torch.float64, max_new_tokens_limit=64, max_prompt_chars=100)


@pytest.fixture(scope="module")
def server(servable):
    with Server(create_app(servable, max_batch=8, max_wait_ms=10.0)) as s:
        yield s


@pytest.fixture(scope="module")
def client(server):
    with httpx.Client(base_url=server.url, timeout=30, trust_env=False) as c:
        yield c


def req(servable, **kw):
    return servable.validate({"kind": "generate", **kw})


# --- the servable, without HTTP -------------------------------------------------------------
def test_batched_generation_equals_unbatched(servable):
    prompts = ["def f(x):", "class", "x", "while True", "class", "import os", "x"]  # lengths differ and repeat
    reqs = [req(servable, prompt=p, max_new_tokens=3 + i) for i, p in enumerate(prompts)]
    batched = servable.run_batch(reqs)
    alone = [servable.run_batch([r])[0] for r in reqs]
    assert batched == alone
    assert [b["n_tokens"] for b in batched] == [3 + i for i in range(len(prompts))]
    for r, b in zip(reqs, batched):  # and equal to chapter 13's generate
        ids = gpt.generate(servable.model, servable.vocab.encode(r["prompt"]), r["max_new_tokens"], temperature=0)
        assert b["text"] == servable.vocab.decode(ids[len(r["prompt"]):])


def test_seeded_sampling_is_the_same_alone_in_a_batch_and_in_chapter_13(servable):
    r = req(servable, prompt="def", max_new_tokens=12, temperature=0.9, top_k=20, seed=7)
    other = req(servable, prompt="abc", max_new_tokens=5, temperature=1.5, seed=1)  # same length: same group
    alone = servable.run_batch([r])[0]
    assert servable.run_batch([other, r])[1] == alone
    ids = gpt.generate(servable.model, servable.vocab.encode("def"), 12, temperature=0.9, top_k=20,
                       generator=torch.Generator().manual_seed(7))
    assert alone["text"] == servable.vocab.decode(ids[3:])


def test_prompt_longer_than_the_context(servable):
    prompt = "for x in range(10): print(x) # long"  # 35 characters > context 24
    out = servable.run_batch([req(servable, prompt=prompt, max_new_tokens=6)])[0]
    ids = gpt.generate(servable.model, servable.vocab.encode(prompt), 6, temperature=0)
    assert out["text"] == servable.vocab.decode(ids[len(prompt):])


def test_stream_yields_the_same_tokens(servable):
    r = req(servable, prompt="if x", max_new_tokens=9, stream=True)
    events = list(servable.stream(r))
    assert [e["index"] for e in events[:-1]] == list(range(9))
    assert events[-1]["done"] is True
    assert "".join(e["token"] for e in events[:-1]) == events[-1]["text"] == servable.run_batch([r])[0]["text"]


@pytest.mark.parametrize("body, status, message", [
    ({}, 422, "'prompt' should be a string, got null"),
    ({"prompt": ""}, 422, "'prompt' should not be empty"),
    ({"prompt": ["a"]}, 422, "'prompt' should be a string, got an array"),
    ({"prompt": "a" * 101}, 413, "at most 100 characters, got 101"),
    ({"prompt": "a\u4e2d\U0001F600"}, 422, "characters outside the model's vocabulary"),
    ({"prompt": "a", "max_new_tokens": 65}, 422, "'max_new_tokens' should be <= 64, got 65"),
    ({"prompt": "a", "max_new_tokens": 0}, 422, "'max_new_tokens' should be an int >= 1, got 0"),
    ({"prompt": "a", "max_new_tokens": 2.0}, 422, "'max_new_tokens' should be an int >= 1, got 2.0"),
    ({"prompt": "a", "max_new_tokens": "3"}, 422, "'max_new_tokens' should be an int >= 1, got '3'"),
    ({"prompt": "a", "temperature": -0.5}, 422, "'temperature' should be a finite number >= 0"),
    ({"prompt": "a", "temperature": True}, 422, "'temperature' should be a finite number >= 0"),
    ({"prompt": "a", "top_k": 0}, 422, "'top_k' should be an int >= 1 or null, got 0"),
    ({"prompt": "a", "seed": -1}, 422, "'seed' should be an int in 0..2**63-1 or null, got -1"),
    ({"prompt": "a", "stream": "yes"}, 422, "'stream' should be true or false, got 'yes'"),
    ({"prompt": "a", "max_tokens": 5}, 422, "unknown field(s) ['max_tokens']"),
])
def test_bad_requests_get_a_clear_4xx(servable, client, body, status, message):
    with pytest.raises(RequestError) as err:
        servable.validate({"kind": "generate", **body})
    assert err.value.status == status and message in err.value.detail
    reply = client.post("/generate", json=body)
    assert reply.status_code == status
    assert message in reply.json()["detail"]


def test_save_and_load(servable, tmp_path):
    path = save_servable(servable, tmp_path / "gpt.pt")
    again = load_servable(path)
    r = req(servable, prompt="def", max_new_tokens=8)
    assert again.run_batch([r]) == servable.run_batch([r])
    assert again.max_prompt_chars == 100 and again.model.tok_emb.weight.dtype == torch.float64
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="load_servable: .*junk.pt is not a checkpoint written by save_servable"):
        load_servable(tmp_path / "junk.pt")
    with pytest.raises(FileNotFoundError, match="load_servable: no checkpoint at"):
        load_servable(tmp_path / "absent.pt")


def test_servable_refuses_a_mismatched_vocabulary(servable):
    from course_lib.text import CharVocab

    with pytest.raises(ValueError, match="GPTServable: the vocabulary has 3 characters but the model"):
        GPTServable(servable.model, CharVocab("abc"))
    with pytest.raises(TypeError, match="GPTServable: model should be a course_lib.gpt.GPT, got Linear"):
        GPTServable(torch.nn.Linear(2, 2), servable.vocab)


# --- HTTP -------------------------------------------------------------------------------------
def test_health(client):
    body = client.get("/health").json()
    assert body["status"] == "ok" and body["models"] == {"gpt": ["generate"]} and body["batching"] is True


def test_generate_json(servable, client):
    reply = client.post("/generate", json={"prompt": "def f", "max_new_tokens": 7})
    assert reply.status_code == 200 and reply.headers["content-type"] == "application/json"
    body = reply.json()
    assert body == servable.run_batch([req(servable, prompt="def f", max_new_tokens=7)])[0]
    assert body["n_tokens"] == len(body["tokens"]) == 7 and "".join(body["tokens"]) == body["text"]


def test_generate_stream_arrives_token_by_token(client):
    lines = []
    with client.stream("POST", "/generate", json={"prompt": "def f", "max_new_tokens": 12, "stream": True}) as reply:
        assert reply.status_code == 200 and reply.headers["content-type"].startswith("application/x-ndjson")
        for line in reply.iter_lines():
            if line:
                lines.append(json.loads(line))
    tokens, final = lines[:-1], lines[-1]
    assert len(tokens) == 12 and all(set(t) == {"token", "index"} and len(t["token"]) == 1 for t in tokens)
    assert final["done"] is True
    plain = client.post("/generate", json={"prompt": "def f", "max_new_tokens": 12}).json()
    assert "".join(t["token"] for t in tokens) == final["text"] == plain["text"]


@pytest.mark.parametrize("content, status, message", [
    (b'{"prompt": "a",', 400, "malformed JSON"),
    (b"", 400, "malformed JSON"),
    (b"\xff\xfe{}", 400, "UTF-8"),
    (b'["a"]', 422, "the body should be a JSON object, got list"),
    (b'{"prompt": "a", "temperature": NaN}', 422, "'temperature' should be a finite number"),
    (b'{"prompt": "' + b"a" * 1_000_001 + b'"}', 413, "the body should have at most 1000000 bytes"),
])
def test_malformed_bodies(client, content, status, message):
    reply = client.post("/generate", content=content, headers={"content-type": "application/json"})
    assert reply.status_code == status and message in reply.json()["detail"]


def test_unknown_endpoints_and_models(client):
    reply = client.post("/embed", json={"texts": ["hello"]})
    assert reply.status_code == 404 and "no model serves /embed" in reply.json()["detail"]
    assert "course serve --model embed" in reply.json()["detail"]
    assert client.post("/search", json={"query": "x", "k": 1}).status_code == 404
    assert client.get("/nothing").status_code == 404 and client.get("/generate").status_code == 405


def test_concurrent_load_every_request_answered_once(server, client):
    before = client.get("/health").json()["counts"]
    prompts = ["def f", "class", "x = 1", "while"]  # all of length 5: one batch can hold them all
    report = run_load(server.url, lambda i: ("/generate", {"prompt": prompts[i % 4], "max_new_tokens": 4}),
                      n_requests=24, concurrency=8, time_limit_s=60)
    after = client.get("/health").json()
    assert report.n_sent == report.n_ok == 24 and report.n_errors == {} and report.n_malformed_replies == 0
    assert report.n_tokens == 96 and len(report.latencies_s) == 24
    counts = after["counts"]
    assert counts["accepted"] - before["accepted"] == 24 == counts["answered"] - before["answered"]
    summary = report.summary()
    assert summary["p50_ms"] <= summary["p95_ms"] <= summary["p99_ms"]


def test_batching_off_runs_every_request_alone(servable):
    with Server(create_app(servable, batching=False)) as s:
        report = run_load(s.url, lambda i: ("/generate", {"prompt": "abc", "max_new_tokens": 2}), 12, 6, 60)
        health = httpx.get(s.url + "/health", trust_env=False).json()
    assert report.n_ok == 12 and health["batching"] is False
    assert health["batches"]["gpt"]["sizes"] == {"1": 12}


class Slow:
    """A servable that takes 30 ms per batch and fails on the prompt "crash"."""
    name, kinds = "gpt", ("generate",)

    def validate(self, request):
        if not isinstance(request.get("prompt"), str):
            raise RequestError("generate: 'prompt' should be a string")
        if request["prompt"] == "broken":
            raise TypeError("validate is broken")
        return request

    def run_batch(self, requests):
        time.sleep(0.03)
        if any(r["prompt"] == "crash" for r in requests):
            raise RuntimeError("the model failed")
        return [{"text": r["prompt"], "n_tokens": 1} for r in requests]


class Gated(Slow):
    """Holds every batch until ``gate`` is set."""

    def __init__(self):
        self.gate = threading.Event()

    def run_batch(self, requests):
        self.gate.wait(10)
        return [{"text": r["prompt"], "n_tokens": 1} for r in requests]


def wait_for(url, predicate):
    for _ in range(500):
        health = httpx.get(url + "/health", trust_env=False).json()
        if predicate(health):
            return health
        time.sleep(0.01)
    raise AssertionError(f"the server never reached the expected state: {health}")


def test_overload_gets_503_with_retry_after_at_once():
    servable = Gated()
    with Server(create_app(servable, max_batch=1, max_queue=2)) as s:
        replies = {}

        def post(i):
            replies[i] = httpx.post(s.url + "/generate", json={"prompt": str(i)}, trust_env=False, timeout=30)

        threads = [threading.Thread(target=post, args=(i,)) for i in range(3)]
        threads[0].start()  # held by the worker
        wait_for(s.url, lambda h: h["counts"]["accepted"] == 1 and h["queues"]["gpt"] == 0)
        for t in threads[1:]:
            t.start()  # these two fill the queue
        wait_for(s.url, lambda h: h["queues"]["gpt"] == 2)
        # answered while the gate still holds every batch: it was refused, not queued (no hang)
        refused = httpx.post(s.url + "/generate", json={"prompt": "one too many"}, trust_env=False, timeout=30)
        servable.gate.set()
        for t in threads:
            t.join(30)
        health = httpx.get(s.url + "/health", trust_env=False).json()
    assert refused.status_code == 503 and refused.headers["retry-after"] == "1"
    assert refused.json()["detail"] == "overloaded: queue full (2 of max_queue = 2 waiting); retry after 1 s"
    assert sorted((i, r.status_code, r.json()["text"]) for i, r in replies.items()) == \
        [(0, 200, "0"), (1, 200, "1"), (2, 200, "2")]
    assert health["counts"]["accepted"] == health["counts"]["answered"] == 3 and health["counts"]["overloaded"] == 1


def test_under_overload_every_request_gets_200_or_503():
    with Server(create_app(Slow(), max_batch=1, max_queue=2)) as s:
        report = run_load(s.url, lambda i: ("/generate", {"prompt": str(i)}), n_requests=20, concurrency=10,
                          time_limit_s=60)
        counts = httpx.get(s.url + "/health", trust_env=False).json()["counts"]
    assert report.n_sent == 20 and report.n_ok + report.n_errors.get(503, 0) == 20
    assert report.n_ok >= 1 and report.n_malformed_replies == 0 and report.failures == {}
    assert counts["accepted"] == counts["answered"] == report.n_ok
    assert counts["overloaded"] == report.n_errors.get(503, 0)


def test_a_failing_model_gets_500_and_the_server_lives_on():
    with Server(create_app(Slow(), max_batch=1)) as s, httpx.Client(base_url=s.url, trust_env=False) as c:
        bad = c.post("/generate", json={"prompt": "crash"})
        broken = c.post("/generate", json={"prompt": "broken"})
        good = c.post("/generate", json={"prompt": "fine"})
        counts = c.get("/health").json()["counts"]
    assert bad.status_code == 500 and "RuntimeError: the model failed" in bad.json()["detail"]
    assert broken.status_code == 500 and "while validating the request: TypeError: validate is broken" in broken.json()["detail"]
    assert good.status_code == 200 and good.json()["text"] == "fine"
    assert counts["accepted"] == counts["answered"] == 2 and counts["failed"] == 2


def refuses_connections(url):
    try:
        httpx.get(url + "/health", trust_env=False, timeout=5)
    except httpx.TransportError:
        return True
    return False


def test_stop_answers_the_requests_in_flight_and_queued_first():
    servable = Gated()
    s = Server(create_app(servable, max_batch=1)).start()
    url, replies = s.url, {}

    def post(i):
        replies[i] = httpx.post(url + "/generate", json={"prompt": f"wait {i}"}, trust_env=False, timeout=30)

    clients = [threading.Thread(target=post, args=(i,)) for i in range(3)]
    for t in clients:
        t.start()
    counts = wait_for(url, lambda h: h["counts"]["accepted"] == 3 and h["queues"]["gpt"] == 2)["counts"]
    assert counts["answered"] == 0  # one in flight (held by the gate), two queued
    stopper = threading.Thread(target=s.stop)
    stopper.start()  # graceful: stops listening, then waits for the requests it accepted
    for _ in range(500):
        if refuses_connections(url):
            break
        time.sleep(0.01)
    else:
        raise AssertionError("the server never stopped listening")
    servable.gate.set()
    stopper.join(30)
    for t in clients:
        t.join(30)
    assert sorted((i, r.status_code, r.json()["text"]) for i, r in replies.items()) == \
        [(i, 200, f"wait {i}") for i in range(3)]


class Echo:
    """Answers at once with the request's id."""
    name, kinds = "gpt", ("generate",)

    def validate(self, request):
        if not isinstance(request.get("id"), int):
            raise RequestError("generate: 'id' should be an int")
        return request

    def run_batch(self, requests):
        return [{"id": r["id"], "n_tokens": 1} for r in requests]


def test_every_request_is_answered_exactly_once_with_its_own_reply():
    """64 concurrent requests (valid and malformed) on 32 connections: each gets one reply, its
    own; the server counts each once (accepted = answered, cancelled 0) and runs each valid one in
    exactly one batch."""
    import asyncio

    async def main(url):
        async with httpx.AsyncClient(base_url=url, trust_env=False, timeout=30,
                                     limits=httpx.Limits(max_connections=32)) as c:
            return await asyncio.gather(*(c.post("/generate", json={"id": str(i) if i % 8 == 3 else i})
                                          for i in range(64)))

    with Server(create_app(Echo(), max_batch=8, max_wait_ms=2.0)) as s:
        replies = asyncio.run(main(s.url))
        health = httpx.get(s.url + "/health", trust_env=False).json()
    assert [r.status_code for r in replies] == [422 if i % 8 == 3 else 200 for i in range(64)]
    assert all(r.json()["id"] == i for i, r in enumerate(replies) if r.status_code == 200)
    counts, batches = health["counts"], health["batches"]["gpt"]
    assert counts["accepted"] == counts["answered"] == 56 and counts["cancelled"] == 0 and counts["bad_request"] == 8
    assert batches["accepted"] == batches["answered"] == 56
    assert sum(int(k) * v for k, v in batches["sizes"].items()) == 56


def test_batches_form_over_http():
    """Deterministic batching: while the gate holds a first request, three more queue; released,
    they run as one batch."""
    servable = Gated()
    with Server(create_app(servable, max_batch=8, max_wait_ms=0.0)) as s:
        threads = [threading.Thread(target=httpx.post, args=(s.url + "/generate",),
                                    kwargs={"json": {"prompt": str(i)}, "trust_env": False, "timeout": 30})
                   for i in range(4)]
        threads[0].start()
        wait_for(s.url, lambda h: h["counts"]["accepted"] == 1 and h["queues"]["gpt"] == 0)
        for t in threads[1:]:
            t.start()
        wait_for(s.url, lambda h: h["queues"]["gpt"] == 3)
        servable.gate.set()
        for t in threads:
            t.join(30)
        health = httpx.get(s.url + "/health", trust_env=False).json()
    assert health["batches"]["gpt"]["sizes"] == {"1": 1, "3": 1}


class GatedStream(Gated):
    """Streams one token, then waits for ``gate`` before each next one; records its closing."""

    def __init__(self):
        super().__init__()
        self.closed = threading.Event()

    def stream(self, request):
        try:
            for i in range(50):
                if i:
                    self.gate.wait(10)
                yield {"token": "x", "index": i}
            yield {"done": True, "text": "x" * 50, "n_tokens": 50}
        finally:
            self.closed.set()


def test_a_client_leaving_a_stream_is_counted_and_frees_its_slot():
    servable = GatedStream()
    with Server(create_app(servable, max_queue=1)) as s:
        with httpx.Client(base_url=s.url, trust_env=False, timeout=30) as c:
            with c.stream("POST", "/generate", json={"prompt": "p", "stream": True}) as reply:
                first = json.loads(next(reply.iter_lines()))
            # the client has gone; the slot (max_queue = 1 stream) is still held until the server notices
            servable.gate.set()
            health = wait_for(s.url, lambda h: h["streams_active"] == 0)
            assert servable.closed.wait(10)  # the stream's generator was closed (its decoding stops)
            again = c.post("/generate", json={"prompt": "p", "stream": True})
    assert first == {"token": "x", "index": 0}
    counts = health["counts"]
    assert counts["accepted"] == 1 and counts["answered"] == 0 and counts["cancelled"] == counts["streams_cancelled"] == 1
    assert again.status_code == 200 and json.loads(again.text.splitlines()[-1])["done"] is True


def test_server_stop_releases_the_port(servable):
    s = Server(create_app(servable)).start()
    url = s.url
    assert httpx.get(url + "/health", trust_env=False).status_code == 200
    s.stop()
    assert not s.running
    with pytest.raises(httpx.ConnectError):
        httpx.get(url + "/health", trust_env=False, timeout=2)


def test_create_app_refuses_bad_servables(servable):
    with pytest.raises(TypeError, match="create_app: a servable needs name, kinds, validate and run_batch"):
        create_app(object())
    with pytest.raises(ValueError, match="create_app: two servables answer 'generate'"):
        create_app([servable, Slow()])
    with pytest.raises(ValueError, match="create_app: servables should hold at least one servable"):
        create_app([])
    with pytest.raises(ValueError, match="create_app: max_queue should be an int >= 1, got 0"):
        create_app(servable, max_queue=0)
    with pytest.raises(ValueError, match="create_app: max_wait_ms should be a finite number >= 0, got -1"):
        create_app(servable, max_wait_ms=-1)


# --- the command ------------------------------------------------------------------------------
def test_cli_help_and_usage_errors(capsys):
    from course_lib.cli import main

    with pytest.raises(SystemExit) as ok:
        main(["serve", "--help"])
    assert ok.value.code == 0 and "POST /generate" in capsys.readouterr().out
    for argv in (["serve", "--port", "70000"], ["serve", "--max-batch", "0"], ["serve", "--model", "bert"]):
        with pytest.raises(SystemExit) as bad:
            main(argv)
        assert bad.value.code == 2
    assert main(["serve", "--checkpoint", "/nonexistent/gpt.pt", "--port", "0"]) == 1
    assert "error: FileNotFoundError: load_servable: no checkpoint at" in capsys.readouterr().err


def test_course_serve_starts_answers_and_stops_cleanly_on_sigterm():
    """The one subprocess test (the real command; its cost is the child's torch import): the URL
    on stdout, one request, SIGTERM -> exit code 0. A watchdog kills a child that hangs."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "course_lib.cli", "serve", "--port", "0", "--train-steps", "0",
                             "--log-level", "warning", "--threads", "1"],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    watchdog = threading.Timer(120, proc.kill)
    watchdog.start()
    try:
        line = proc.stdout.readline()  # "listening on http://127.0.0.1:PORT ..."
        assert line.startswith("listening on http://127.0.0.1:"), (line, proc.stderr.read() if proc.poll() else "")
        url = line.split()[2]
        for _ in range(400):  # the socket listens before the app's start-up ends
            try:
                if httpx.get(url + "/health", trust_env=False).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        reply = httpx.post(url + "/generate", json={"prompt": "def", "max_new_tokens": 3}, trust_env=False)
        assert reply.status_code == 200 and reply.json()["n_tokens"] == 3
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    finally:
        watchdog.cancel()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert "server stopped" in out and "Traceback" not in err
