"""course_lib.serving.embedding: the embedding model as a servable, and over loopback HTTP.

The servable's logic is tested with a small deterministic stand-in encoder (fast); the HTTP tests
serve the real all-MiniLM-L6-v2 (loaded once per module) behind the course's server, batched and
unbatched, and check that both give the embeddings of a direct ``encode`` call.
"""

from __future__ import annotations

import asyncio

import pytest
import torch

from course_lib import search
from course_lib.serving.embedding import EmbeddingServable
from course_lib.serving.models import RequestError, Servable

PASSAGES = [search.Passage(t, f"p{i}") for i, t in enumerate([
    "attention: each query takes a weighted average of the values",
    "layer normalisation: normalise each token over its features",
    "a convolution slides a small kernel over the image",
    "dropout zeroes random units during training",
    "the learning rate scales each gradient step",
    "tokenisation cuts text into pieces from a vocabulary",
])]


class StandIn:
    """``encode(texts) -> (N, 16)`` unit vectors from hashed words; counts its calls."""

    def __init__(self) -> None:
        self.calls = 0

    def encode(self, texts):
        self.calls += 1
        out = torch.zeros(len(texts), 16)
        for i, t in enumerate(texts):
            for w in t.lower().split():
                out[i, sum(map(ord, w)) % 16] += 1.0
        return torch.nn.functional.normalize(out, dim=1)


@pytest.fixture()
def servable():
    enc = StandIn()
    return EmbeddingServable(enc, search_index=search.SearchIndex(enc.encode, PASSAGES))


def test_protocol_and_one_pass_per_batch(servable):
    assert isinstance(servable, Servable) and servable.kinds == ("embed", "search")
    enc = servable.encoder
    before = enc.calls
    reqs = [{"kind": "embed", "texts": ["a b", "c"]}, {"kind": "search", "query": "a small kernel", "k": 2},
            {"texts": ["d e f"]}]
    out = servable.run_batch([servable.validate(r) for r in reqs])
    assert enc.calls == before + 1                                   # one encoder pass for the whole batch
    alone = [servable.run_batch([servable.validate(r)])[0] for r in reqs]
    assert out == alone                                              # batched == unbatched
    assert out[0]["dim"] == 16 and len(out[0]["embeddings"]) == 2 and len(out[2]["embeddings"]) == 1
    torch.testing.assert_close(torch.tensor(out[0]["embeddings"]), enc.encode(["a b", "c"]))
    hits = out[1]["results"]
    assert [h["source"] for h in hits] == [s for _, _, s in servable.search_index.search("a small kernel", 2)]
    assert hits[0]["score"] >= hits[1]["score"]


@pytest.mark.parametrize("request_, status, message", [
    ([1], 422, "the body should be a JSON object, got list"),
    ({"texts": []}, 422, "'texts' should be a non-empty list of strings"),
    ({"texts": "one text"}, 422, "'texts' should be a non-empty list of strings"),
    ({"texts": ["ok", 3]}, 422, r"'texts'\[1\] should be a string, got int"),
    ({"texts": ["  "]}, 422, r"'texts'\[0\] should not be empty or blank"),
    ({"texts": ["x" * 10_001]}, 413, "should have at most 10000 characters, got 10001"),
    ({"texts": ["x"] * 65}, 413, "should hold at most 64 texts, got 65"),
    ({"texts": ["x"], "normalize": False}, 422, r"unknown field\(s\) \['normalize'\]"),
    ({"query": "q", "k": 0}, 422, r"'k' should be an int in 1..50, got 0"),
    ({"query": "q", "k": True}, 422, r"'k' should be an int in 1..50, got True"),
    ({"query": 5}, 422, r"'query' should be a string, got int"),
    ({"prompt": "hi"}, 422, r"expected kind 'embed' \(with 'texts'\) or 'search'"),
])
def test_bad_requests_are_refused_with_a_clear_message(servable, request_, status, message):
    with pytest.raises(RequestError, match=message) as err:
        servable.validate(request_)
    assert err.value.status == status


def test_search_without_index_is_404():
    s = EmbeddingServable(StandIn())
    assert s.kinds == ("embed",)
    with pytest.raises(RequestError, match="no search index is loaded") as err:
        s.validate({"kind": "search", "query": "q"})
    assert err.value.status == 404
    with pytest.raises(TypeError, match="EmbeddingServable: expected an encoder with .encode"):
        EmbeddingServable(object())


# --- the real model over loopback HTTP --------------------------------------------------------

@pytest.fixture(scope="module")
def minilm_servable():
    minilm = pytest.importorskip("course_lib.minilm")
    encoder = minilm.SentenceEncoder.load()
    return EmbeddingServable(encoder, search_index=search.SearchIndex(encoder.encode, PASSAGES))


@pytest.fixture(scope="module")
def servers(minilm_servable):
    app_mod = pytest.importorskip("course_lib.serving.app")
    server_mod = pytest.importorskip("course_lib.serving.server")
    batched = server_mod.Server(app_mod.create_app(minilm_servable, batching=True, max_batch=8, max_wait_ms=20))
    unbatched = server_mod.Server(app_mod.create_app(minilm_servable, batching=False))
    batched.start()
    unbatched.start()
    yield {"batched": batched.url, "unbatched": unbatched.url}
    batched.stop()
    unbatched.stop()


TEXTS = ["The cat sits on the mat.", "Attention weights sum to one over the keys.", "Bonjour à tous !",
         "深度学习", "def f(x): return x ** 2", "A much longer sentence " * 20]


async def _embed_all(url: str):
    import httpx

    async with httpx.AsyncClient(base_url=url, timeout=60) as client:
        replies = await asyncio.gather(*(client.post("/embed", json={"texts": [t]}) for t in TEXTS))
        search_reply = await client.post("/search", json={"query": "how is an image filtered?", "k": 3})
        bad = await client.post("/embed", json={"texts": []})
    return replies, search_reply, bad


@pytest.mark.parametrize("mode", ["batched", "unbatched"])
def test_embed_and_search_over_loopback(servers, minilm_servable, mode):
    replies, search_reply, bad = asyncio.run(_embed_all(servers[mode]))
    assert [r.status_code for r in replies] == [200] * len(TEXTS)
    got = torch.tensor([r.json()["embeddings"][0] for r in replies])
    assert all(r.json()["dim"] == 384 for r in replies)
    direct = torch.as_tensor(minilm_servable.encoder.encode(TEXTS)).float()
    torch.testing.assert_close(got, direct, atol=1e-5, rtol=0)          # concurrent requests == one direct call
    torch.testing.assert_close(got.norm(dim=1), torch.ones(len(TEXTS)), atol=1e-5, rtol=0)
    assert search_reply.status_code == 200
    results = search_reply.json()["results"]
    assert results[0]["source"] == "p2" and len(results) == 3           # the convolution passage
    assert bad.status_code == 422 and "non-empty list" in bad.json()["detail"]
