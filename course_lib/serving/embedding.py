"""The sentence-embedding model of chapter 17 as a servable: ``embed`` and ``search`` requests.

:class:`EmbeddingServable` follows the ``Servable`` protocol of :mod:`course_lib.serving.models`
(``name``, ``kinds``, ``validate(request)``, ``run_batch(requests) -> results``). One call of
:meth:`EmbeddingServable.run_batch` encodes the texts of *all* its requests in one forward pass
(what dynamic batching buys: one (B, T) batch instead of B passes of (1, T)), then splits the rows
back per request. Requests (``kind`` is set by the endpoint):

* ``{"kind": "embed", "texts": [str, ...]}`` -> ``{"embeddings": [[float] * E, ...], "dim": E, "n_tokens": n}``
* ``{"kind": "search", "query": str, "k": int}`` -> ``{"results": [{"text", "score", "source"}, ...], "n_tokens": n}``

``kind`` may be left out: a request with ``texts`` is an embed, one with ``query`` a search.
:meth:`EmbeddingServable.validate` raises :class:`~course_lib.serving.models.RequestError` (a 4xx
with its message) before a request is queued.
"""

from __future__ import annotations

from typing import Any, Dict, List, Tuple

import torch

from course_lib.serving.models import RequestError, check_fields

Request = Dict[str, Any]


class EmbeddingServable:
    """Serve ``encoder.encode(texts) -> (N, E)`` unit vectors and, with ``search_index`` (a
    :class:`course_lib.search.SearchIndex` built with the same encoder), top-k search.

    ``tokenizer`` (default ``encoder.tokenizer``) counts the tokens of each request (``"n_tokens"``
    in the result, for the load generator's tokens/s); limits: ``max_texts`` texts per request,
    ``max_chars`` characters per text (413 beyond), ``max_k`` results per search."""

    name = "embed"
    kinds: Tuple[str, ...] = ("embed", "search")

    def __init__(self, encoder: Any, tokenizer: Any = None, search_index: Any = None, *,
                 max_texts: int = 64, max_chars: int = 10_000, max_k: int = 50) -> None:
        if not callable(getattr(encoder, "encode", None)):
            raise TypeError(f"EmbeddingServable: expected an encoder with .encode(texts), got {type(encoder).__name__}")
        self.encoder = encoder
        self.tokenizer = tokenizer if tokenizer is not None else getattr(encoder, "tokenizer", None)
        self.search_index = search_index
        self.max_texts, self.max_chars, self.max_k = max_texts, max_chars, max_k
        if search_index is None:
            self.kinds = ("embed",)

    # --- validation -------------------------------------------------------------------
    def _text(self, what: str, value: Any) -> str:
        if not isinstance(value, str):
            raise RequestError(f"{what} should be a string, got {type(value).__name__}")
        if not value.strip():
            raise RequestError(f"{what} should not be empty or blank, got {value!r}")
        if len(value) > self.max_chars:
            raise RequestError(f"{what} should have at most {self.max_chars} characters, got {len(value)}", status=413)
        return value

    def validate(self, request: Request) -> Request:
        """The request in normal form ``{"kind": "embed", "texts"}`` or ``{"kind": "search", "query",
        "k"}``; raises :class:`RequestError` naming what was expected and what was received."""
        if not isinstance(request, dict):
            raise RequestError(f"embed: the body should be a JSON object, got {type(request).__name__}")
        kind = request.get("kind", "embed" if "texts" in request else "search" if "query" in request else None)
        if kind == "embed":
            check_fields("embed", request, ("texts",))
            texts = request.get("texts")
            if not isinstance(texts, list) or not texts:
                raise RequestError(f"embed: 'texts' should be a non-empty list of strings, got {texts!r:.80}")
            if len(texts) > self.max_texts:
                raise RequestError(f"embed: 'texts' should hold at most {self.max_texts} texts, got {len(texts)}",
                                   status=413)
            return {"kind": "embed", "texts": [self._text(f"embed: 'texts'[{i}]", t) for i, t in enumerate(texts)]}
        if kind == "search":
            if self.search_index is None:
                raise RequestError("search: no search index is loaded (load_embedding_servable(with_search=True))",
                                   status=404)
            check_fields("search", request, ("query", "k"))
            k = request.get("k", 5)
            if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= self.max_k:
                raise RequestError(f"search: 'k' should be an int in 1..{self.max_k}, got {k!r}")
            return {"kind": "search", "query": self._text("search: 'query'", request.get("query")), "k": k}
        raise RequestError(f"embed: expected kind 'embed' (with 'texts') or 'search' (with 'query'), "
                           f"got kind {kind!r} and fields {sorted(request)!r:.80}")

    # --- the batch ----------------------------------------------------------------------
    def _tokens(self, text: str) -> int:
        if self.tokenizer is None:
            return 0
        return len(self.tokenizer.encode(text, max_length=getattr(self.encoder, "max_length", None)))

    def run_batch(self, requests: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
        """Answer every request, in order: one encoder pass over all their texts. A request that
        fails :meth:`validate` raises :class:`RequestError` (the server never queues one)."""
        if not isinstance(requests, list):
            raise TypeError(f"EmbeddingServable.run_batch: expected a list of requests, got {type(requests).__name__}")
        parsed: List[Request] = []
        texts: List[str] = []
        for req in requests:
            p = self.validate(req)           # the server validated it already; cheap, and safe when called directly
            n = len(p["texts"]) if p["kind"] == "embed" else 1
            p["rows"] = (len(texts), len(texts) + n)
            texts += p["texts"] if p["kind"] == "embed" else [p["query"]]
            parsed.append(p)
        if not texts:
            return []
        with torch.inference_mode():
            emb = torch.as_tensor(self.encoder.encode(texts)).float()    # (N, E): one pass for the batch
        out: List[Dict[str, Any]] = []
        for p in parsed:
            rows = emb[p["rows"][0]:p["rows"][1]]
            if p["kind"] == "embed":
                out.append({"embeddings": rows.tolist(), "dim": int(rows.shape[1]),
                            "n_tokens": sum(self._tokens(t) for t in p["texts"])})
            else:
                from course_lib.search import cosine_similarity, top_k

                scores = cosine_similarity(rows, self.search_index.embeddings)[0]
                ps = self.search_index.passages
                out.append({"results": [{"text": ps[i].text, "score": float(scores[i]), "source": ps[i].source}
                                        for i in top_k(scores, p["k"]).tolist()],
                            "n_tokens": self._tokens(p["query"])})
        return out


def load_embedding_servable(with_search: bool = True, max_length: int = 256) -> EmbeddingServable:
    """all-MiniLM-L6-v2 from the installed package (hash-checked, offline) as a servable; with
    ``with_search`` the course's glossary and summaries are embedded for ``search`` (a few seconds)."""
    from course_lib.minilm import SentenceEncoder

    encoder = SentenceEncoder.load(max_length=max_length)
    index = None
    if with_search:
        from course_lib.search import SearchIndex, course_passages

        index = SearchIndex(encoder.encode, course_passages())
    return EmbeddingServable(encoder, search_index=index)
