"""The HTTP application: :func:`create_app` builds a FastAPI app around one or more servables.

Endpoints (JSON in, JSON out; every error is ``{"detail": "..."}`` with a 4xx or 5xx status)::

    GET  /health    {"status": "ok", "models", "batching", "counts", "queues", ...}
    POST /generate  {"prompt", "max_new_tokens", "temperature", "top_k", "seed", "stream"}
                    -> {"text", "tokens", "n_tokens", "prompt_tokens", "finish_reason"}
                    or, with "stream": true, NDJSON: one {"token", "index"} line per generated
                    token as soon as it exists, then {"done": true, "text", ...}
    POST /embed     {"texts": [str, ...]}      -> {"embeddings": [[float, ...], ...], "dim"}
    POST /search    {"query": str, "k": int}   -> {"results": [{"text", "score", "source"}, ...]}

Statuses: 400 malformed JSON or a body that is not UTF-8; 413 a body over ``max_body_bytes`` or an
input over the model's limit; 422 wrong types, empty input, unknown fields, characters outside the
vocabulary, too many tokens asked; 404 an endpoint whose model is not loaded; 503 with
``Retry-After`` when the queue is full (``max_queue`` waiting requests) or the server is stopping;
500 if the model itself fails (the server keeps running, and so does the connection: the
handlers catch the model's and ``validate``'s exceptions themselves, because one that reaches
Starlette's error middleware is re-raised after its 500 and uvicorn then closes the connection,
which a client about to reuse it sees as a request lost). Each servable has its own
:class:`~course_lib.serving.batching.DynamicBatcher`; streamed requests bypass it (one decoding loop
each, at most ``max_queue`` at a time). ``counts`` in /health lets a client check that every
accepted request was answered exactly once::

    accepted = answered + cancelled + (requests in flight)

``answered``: a reply (result, 4xx from the model, 500) was produced; ``cancelled``: the request's
task ended without one (the client disconnected from a stream, or a shutdown cancelled it past its
grace period). A request refused with 503 is counted in ``overloaded``, not in ``accepted``. The
counters are updated in ``finally`` blocks on the event loop, so each accepted request lands in
exactly one of them whatever ends it.
"""

# no ``from __future__ import annotations``: FastAPI reads the endpoints' annotations (``Request``,
# imported lazily inside create_app) at run time

import json
from typing import Any, Dict, List, Sequence, Union

__all__ = ["create_app", "ENDPOINTS"]

ENDPOINTS = {"generate": "/generate", "embed": "/embed", "search": "/search"}
_HINT = {"generate": "gpt", "embed": "embed", "search": "embed"}


def create_app(servables: Union[Any, Sequence[Any]], *, batching: bool = True, max_batch: int = 16,
               max_wait_ms: float = 5.0, max_queue: int = 256, max_body_bytes: int = 1_000_000,
               retry_after_s: int = 1) -> Any:
    """A FastAPI app serving ``servables`` (one or a list; each with ``name``, ``kinds``,
    ``validate`` and ``run_batch``, see :class:`course_lib.serving.models.Servable`), each behind a
    dynamic batcher (``batching=False``: every request runs alone). Batchers start and stop (draining
    their queues) with the app's lifespan, i.e. with the server."""
    from contextlib import asynccontextmanager

    from fastapi import FastAPI, Request
    from fastapi.responses import JSONResponse, StreamingResponse
    from starlette.requests import ClientDisconnect

    from course_lib.serving.batching import DynamicBatcher, Overloaded
    from course_lib.serving.models import RequestError

    fn = "create_app"
    items = list(servables) if isinstance(servables, (list, tuple)) else [servables]
    if not items:
        raise ValueError(f"{fn}: servables should hold at least one servable, got none")
    by_kind: Dict[str, Any] = {}
    for s in items:
        missing = [a for a in ("name", "kinds", "validate", "run_batch") if not hasattr(s, a)]
        if missing:
            raise TypeError(f"{fn}: a servable needs name, kinds, validate and run_batch; "
                            f"{type(s).__name__} lacks {missing}")
        for kind in s.kinds:
            if kind not in ENDPOINTS:
                raise ValueError(f"{fn}: servable {s.name!r} declares kind {kind!r}; expected some of {sorted(ENDPOINTS)}")
            if kind in by_kind:
                raise ValueError(f"{fn}: two servables answer {kind!r}: {by_kind[kind].name!r} and {s.name!r}")
            by_kind[kind] = s
    if not isinstance(batching, bool):
        raise TypeError(f"{fn}: batching should be a bool, got {type(batching).__name__}")
    for label, value, low in (("max_batch", max_batch, 1), ("max_queue", max_queue, 1), ("max_body_bytes", max_body_bytes, 1),
                              ("retry_after_s", retry_after_s, 0)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f"{fn}: {label} should be an int >= {low}, got {value!r}")
    if isinstance(max_wait_ms, bool) or not isinstance(max_wait_ms, (int, float)) or not 0 <= max_wait_ms < float("inf"):
        raise ValueError(f"{fn}: max_wait_ms should be a finite number >= 0, got {max_wait_ms!r}")
    batchers = {s.name: DynamicBatcher(s.run_batch, max_batch=max_batch, max_wait_ms=max_wait_ms,
                                       max_queue=max_queue, enabled=batching) for s in items}
    counts = {"received": 0, "bad_request": 0, "accepted": 0, "answered": 0, "overloaded": 0,
              "failed": 0, "cancelled": 0, "streams_cancelled": 0}
    streams = {"active": 0}

    @asynccontextmanager
    async def lifespan(app: Any):
        for b in batchers.values():
            await b.start()
        try:
            yield
        finally:
            for b in batchers.values():
                await b.stop()

    app = FastAPI(title="course serve", version="1", lifespan=lifespan,
                  description="Chapter 15 of the deep-learning course: a model served over HTTP.")
    app.state.servables, app.state.batchers, app.state.counts = items, batchers, counts

    def error(status: int, detail: str, **headers: str) -> Any:
        return JSONResponse({"detail": detail}, status_code=status, headers=headers or None)

    def overloaded(detail: str) -> Any:
        counts["overloaded"] += 1
        return error(503, f"overloaded: {detail}; retry after {retry_after_s} s", **{"Retry-After": str(retry_after_s)})

    @app.exception_handler(Exception)
    async def internal(request: Request, exc: Exception) -> Any:  # never a stack trace or HTML
        return error(500, f"internal error: {type(exc).__name__}")

    @app.get("/health")
    async def health() -> Dict[str, Any]:
        return {"status": "ok", "models": {s.name: list(s.kinds) for s in items}, "batching": batching,
                "max_batch": max_batch, "max_wait_ms": max_wait_ms, "max_queue": max_queue,
                "counts": dict(counts), "streams_active": streams["active"],
                "queues": {name: b.queue_len for name, b in batchers.items()},
                "batches": {name: {"batches": b.stats["batches"], "accepted": b.stats["accepted"],
                                   "answered": b.stats["answered"], "skipped": b.stats["skipped"],
                                   "sizes": {str(k): v for k, v in sorted(b.stats["batch_sizes"].items())}}
                            for name, b in batchers.items()}}

    async def read_json(request: Request) -> Any:
        length = request.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > max_body_bytes:
            raise RequestError(f"the body should have at most {max_body_bytes} bytes, got {length}", 413)
        body = await request.body()
        if len(body) > max_body_bytes:
            raise RequestError(f"the body should have at most {max_body_bytes} bytes, got {len(body)}", 413)
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            raise RequestError("the body should be UTF-8 encoded JSON", 400) from None
        try:
            payload = json.loads(text)
        except json.JSONDecodeError as err:
            raise RequestError(f"malformed JSON: {err.msg} at line {err.lineno} column {err.colno}", 400) from None
        if not isinstance(payload, dict):
            raise RequestError(f"the body should be a JSON object, got {type(payload).__name__}", 422)
        return payload

    async def handle(kind: str, request: Request) -> Any:
        counts["received"] += 1
        servable = by_kind.get(kind)
        if servable is None:
            counts["bad_request"] += 1
            return error(404, f"no model serves {ENDPOINTS[kind]} on this server (models loaded: "
                              f"{[s.name for s in items]}); start it with `course serve --model {_HINT[kind]}` "
                              f"or `--model both`")
        try:
            payload = await read_json(request)
            payload["kind"] = kind
            valid = servable.validate(payload)
        except RequestError as err:
            counts["bad_request"] += 1
            return error(err.status, err.detail)
        except ClientDisconnect:  # the client left while sending its body: nobody to answer
            counts["bad_request"] += 1
            return error(400, "the client disconnected before sending its whole body")
        except Exception as err:  # noqa: BLE001 - a servable's validate failed: answer 500 here; left to
            counts["failed"] += 1  # Starlette's error middleware, it is re-raised and uvicorn closes the connection
            return error(500, f"internal error while validating the request: {type(err).__name__}: {err}")
        if valid.get("stream"):
            return stream_response(servable, valid)
        batcher = batchers[servable.name]
        counts["accepted"] += 1  # queued now: accepted - answered - cancelled = requests in flight
        outcome = "cancelled"  # what is left if this task is cancelled while it waits
        try:
            result = await batcher.submit(valid)  # a full queue raises Overloaded before queueing anything
            outcome = "answered"
            return result
        except Overloaded as err:  # queue full, or the batcher stopping
            outcome = "refused"
            return overloaded(str(err).split(": ", 1)[-1])
        except RequestError as err:  # a servable that checks inside run_batch
            outcome = "answered"
            return error(err.status, err.detail)
        except Exception as err:  # noqa: BLE001 - the model failed: 500, the server lives on
            outcome = "failed"
            return error(500, f"internal error while running the model: {type(err).__name__}: {err}")
        finally:  # exactly one counter per accepted request, whatever ended it
            if outcome == "refused":
                counts["accepted"] -= 1
            elif outcome == "cancelled":
                counts["cancelled"] += 1
            else:
                counts["answered"] += 1
                counts["failed"] += outcome == "failed"

    class _Stream(StreamingResponse):
        """A streamed reply whose bookkeeping (``settle``) runs however the response ends: the
        client may disconnect before the body generator even starts, and then its own
        ``finally`` would never run."""

        settle: Any = None

        async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
            import anyio

            try:
                await super().__call__(scope, receive, send)
            finally:
                with anyio.CancelScope(shield=True):
                    await self.body_iterator.aclose()  # runs lines()'s finally if it started
                self.settle(answered=False)

    def stream_response(servable: Any, valid: Dict[str, Any]) -> Any:
        import anyio

        if not hasattr(servable, "stream"):
            counts["bad_request"] += 1
            return error(422, f"{servable.name} cannot stream; send \"stream\": false")
        if streams["active"] >= max_queue:
            return overloaded(f"{streams['active']} streams already running (max_queue = {max_queue})")
        try:
            events = servable.stream(valid)  # an iterator; each next() runs in a worker thread
        except Exception as err:  # noqa: BLE001 - before any bookkeeping: nothing to release
            counts["failed"] += 1
            return error(500, f"internal error while starting the stream: {type(err).__name__}: {err}")
        streams["active"] += 1
        counts["accepted"] += 1
        state = {"open": True}

        def settle(answered: bool, failed: bool = False) -> None:  # once per stream, on the event loop
            if not state["open"]:
                return
            state["open"] = False
            streams["active"] -= 1
            if answered:
                counts["answered"] += 1
                counts["failed"] += failed
            else:
                counts["cancelled"] += 1
                counts["streams_cancelled"] += 1

        end = object()

        async def lines():
            try:
                while True:
                    try:
                        event = await anyio.to_thread.run_sync(next, events, end)
                        if event is end:
                            raise RuntimeError(f"{servable.name}.stream ended without a final \"done\" event")
                    except Exception as err:  # noqa: BLE001 - an error line, then the stream ends
                        settle(answered=True, failed=True)
                        yield json.dumps({"done": True, "error": f"internal error: {type(err).__name__}: {err}"}) + "\n"
                        return
                    if event.get("done"):
                        settle(answered=True)
                    yield json.dumps(event, ensure_ascii=False) + "\n"
                    if event.get("done"):
                        return
            finally:  # the client left (or the stream ended): stop the decoding thread, off the event loop
                close = getattr(events, "close", None)
                if close is not None:
                    with anyio.CancelScope(shield=True):
                        await anyio.to_thread.run_sync(close)

        response = _Stream(lines(), media_type="application/x-ndjson")
        response.settle = settle
        return response

    @app.post("/generate")
    async def generate(request: Request) -> Any:
        return await handle("generate", request)

    @app.post("/embed")
    async def embed(request: Request) -> Any:
        return await handle("embed", request)

    @app.post("/search")
    async def search(request: Request) -> Any:
        return await handle("search", request)

    return app


