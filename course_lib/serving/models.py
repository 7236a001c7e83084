"""What a server serves: the :class:`Servable` protocol and :class:`GPTServable` (chapter 13's GPT).

A servable answers **batches** of request dicts: ``run_batch(requests) -> results`` (same length,
same order), which is what :class:`course_lib.serving.batching.DynamicBatcher` calls. Each request
carries its ``"kind"`` ("generate", "embed" or "search"); a servable lists the kinds it answers in
``kinds`` and checks a request with ``validate(request) -> request`` (normalised, defaults filled),
raising :class:`RequestError` (the server answers 4xx with its message) *before* the request is
queued, so a batch never fails because of one bad request.

Batched generation equals unbatched generation. Prompts of different lengths cannot share one
(B, T) tensor without padding; instead :meth:`GPTServable.run_batch` **groups the requests by prompt
length** and decodes each group as one batch. Left-padding with a key padding mask would also work,
but with learned absolute positions every padded row would need its own position offsets; grouping
keeps the model untouched and the result exact. Each request's sampling (temperature, top-k, seed)
uses its own ``torch.Generator``, so a seeded request gives the same text alone or in a batch. In
float32 the batched and the one-row matrix products may round differently (different kernels for
different shapes), so on a near-tie of two logits a greedy choice can differ; in float64 (used by the
tests) the tokens are identical.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Protocol, Sequence, Tuple, Union, runtime_checkable

import torch

__all__ = ["RequestError", "Servable", "GPTServable", "train_gpt_servable", "save_servable", "load_servable"]

Request = Dict[str, Any]


class RequestError(ValueError):
    """A request the servable refuses; ``status`` is the HTTP status the server answers (422 by
    default), ``str(err)`` the ``detail``."""

    def __init__(self, detail: str, status: int = 422) -> None:
        super().__init__(detail)
        self.detail, self.status = detail, status


@runtime_checkable
class Servable(Protocol):
    """``name``; ``kinds`` (the request kinds it answers, e.g. ``("generate",)``);
    ``validate(request) -> request`` (raise :class:`RequestError`); ``run_batch(requests) -> results``."""

    name: str
    kinds: Tuple[str, ...]

    def validate(self, request: Request) -> Request: ...

    def run_batch(self, requests: List[Request]) -> List[Dict[str, Any]]: ...


def _is_int(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def check_fields(fn: str, request: Request, allowed: Sequence[str]) -> None:
    """Raise :class:`RequestError` naming any field of ``request`` not in ``allowed`` (``"kind"`` is
    always allowed): a misspelt option is refused rather than silently ignored."""
    unknown = sorted(set(request) - set(allowed) - {"kind"})
    if unknown:
        raise RequestError(f"{fn}: unknown field(s) {unknown}; expected some of {sorted(allowed)}")


class GPTServable:
    """Serve a :class:`course_lib.gpt.GPT` with a character vocabulary (:class:`course_lib.text.CharVocab`).

    Request (kind "generate"): ``prompt`` str (1..max_prompt_chars characters of the vocabulary),
    ``max_new_tokens`` int in 1..max_new_tokens_limit (default 32), ``temperature`` number >= 0
    (0 = greedy, default 0), ``top_k`` int >= 1 or None, ``seed`` int in 0..2**63-1 or None,
    ``stream`` bool. Result: ``{"text", "tokens" (list of the generated characters), "n_tokens",
    "prompt_tokens", "finish_reason": "length"}``.
    """

    kinds: Tuple[str, ...] = ("generate",)
    fields = ("prompt", "max_new_tokens", "temperature", "top_k", "seed", "stream")

    def __init__(self, model: Any, vocab: Any, max_new_tokens_limit: int = 256, max_prompt_chars: int = 1024,
                 name: str = "gpt") -> None:
        fn = "GPTServable"
        from course_lib.gpt import GPT

        if not isinstance(model, GPT):
            raise TypeError(f"{fn}: model should be a course_lib.gpt.GPT, got {type(model).__name__}")
        if not hasattr(vocab, "encode") or not hasattr(vocab, "decode") or not hasattr(vocab, "chars"):
            raise TypeError(f"{fn}: vocab should be a course_lib.text.CharVocab, got {type(vocab).__name__}")
        if len(vocab.chars) != model.vocab_size:
            raise ValueError(f"{fn}: the vocabulary has {len(vocab.chars)} characters but the model "
                             f"{model.vocab_size} outputs")
        for label, v in (("max_new_tokens_limit", max_new_tokens_limit), ("max_prompt_chars", max_prompt_chars)):
            if not _is_int(v) or v < 1:
                raise ValueError(f"{fn}: {label} should be an int >= 1, got {v!r}")
        self.model = model.eval()
        self.vocab = vocab
        self.name = name
        self.max_new_tokens_limit = max_new_tokens_limit
        self.max_prompt_chars = max_prompt_chars
        self.default_max_new_tokens = min(32, max_new_tokens_limit)

    # --- validation -----------------------------------------------------------------------
    def validate(self, request: Request) -> Request:
        """The request with defaults filled in, or :class:`RequestError` saying what is wrong."""
        fn = "generate"
        if not isinstance(request, dict):
            raise RequestError(f"{fn}: the body should be a JSON object, got {type(request).__name__}")
        check_fields(fn, request, self.fields)
        out: Request = {"kind": "generate"}
        prompt = request.get("prompt")
        if not isinstance(prompt, str):
            raise RequestError(f"{fn}: 'prompt' should be a string, got {_json_type(prompt)}")
        if not prompt:
            raise RequestError(f"{fn}: 'prompt' should not be empty")
        if len(prompt) > self.max_prompt_chars:
            raise RequestError(f"{fn}: 'prompt' should have at most {self.max_prompt_chars} characters, "
                               f"got {len(prompt)}", status=413)
        unknown = sorted(set(prompt) - set(self.vocab.index))
        if unknown:
            raise RequestError(f"{fn}: 'prompt' has characters outside the model's vocabulary: "
                               f"{unknown[:10]!r} (the model knows {len(self.vocab.chars)} characters)")
        out["prompt"] = prompt
        n = request.get("max_new_tokens", self.default_max_new_tokens)
        if not _is_int(n) or n < 1:
            raise RequestError(f"{fn}: 'max_new_tokens' should be an int >= 1, got {n!r}")
        if n > self.max_new_tokens_limit:
            raise RequestError(f"{fn}: 'max_new_tokens' should be <= {self.max_new_tokens_limit}, got {n}")
        out["max_new_tokens"] = n
        t = request.get("temperature", 0.0)
        if isinstance(t, bool) or not isinstance(t, (int, float)) or not 0 <= t < math.inf:
            raise RequestError(f"{fn}: 'temperature' should be a finite number >= 0 (0 = greedy), got {t!r}")
        out["temperature"] = float(t)
        k = request.get("top_k")
        if k is not None and (not _is_int(k) or k < 1):
            raise RequestError(f"{fn}: 'top_k' should be an int >= 1 or null, got {k!r}")
        out["top_k"] = k
        seed = request.get("seed")
        if seed is not None and (not _is_int(seed) or not 0 <= seed < 2 ** 63):
            raise RequestError(f"{fn}: 'seed' should be an int in 0..2**63-1 or null, got {seed!r}")
        out["seed"] = seed
        stream = request.get("stream", False)
        if not isinstance(stream, bool):
            raise RequestError(f"{fn}: 'stream' should be true or false, got {stream!r}")
        out["stream"] = stream
        return out

    # --- decoding -------------------------------------------------------------------------
    def _generators(self, requests: List[Request]) -> List[Optional[torch.Generator]]:
        gens: List[Optional[torch.Generator]] = []
        for r in requests:
            if r["temperature"] == 0:
                gens.append(None)
            else:
                g = torch.Generator()
                g.manual_seed(r["seed"]) if r["seed"] is not None else g.seed()
                gens.append(g)
        return gens

    @torch.no_grad()
    def _decode(self, requests: List[Request], on_step: Optional[Callable[[int, List[int]], bool]] = None
                ) -> List[List[int]]:
        """Decode requests whose prompts have the SAME length as one batch (B, T0): the loop of
        :func:`course_lib.gpt.generate` (KV cache; past the context, the last C tokens recomputed),
        with each row's own temperature, top-k and generator. ``on_step(step, tokens)`` is called
        after each step; returning False stops. Returns the generated ids per request."""
        from course_lib.gpt import next_token_probs

        model, C = self.model, self.model.context
        dev = next(model.parameters()).device
        out = torch.stack([self.vocab.encode(r["prompt"]) for r in requests]).to(dev)  # (B, T0)
        gens = self._generators(requests)
        n_max = max(r["max_new_tokens"] for r in requests)
        new: List[List[int]] = [[] for _ in requests]
        cache = None
        for step in range(n_max):
            if cache is not None and out.shape[1] <= C:
                logits, cache = model(out[:, -1:], cache)
            else:
                logits, cache = model(out[:, -C:])
            last = logits[:, -1].double().cpu()  # (B, V)
            nxt = last.argmax(-1).tolist()  # greedy rows: the first largest logit, as next_token_probs(T=0)
            for i, r in enumerate(requests):
                if r["temperature"] != 0:  # sampled rows: each with its own generator
                    probs = next_token_probs(last[i:i + 1], r["temperature"], r["top_k"])  # (1, V)
                    nxt[i] = int(torch.multinomial(probs, 1, generator=gens[i]))
                if step < r["max_new_tokens"]:
                    new[i].append(nxt[i])
            out = torch.cat([out, torch.tensor(nxt, device=dev)[:, None]], dim=1)
            if on_step is not None and on_step(step, nxt) is False:
                break
        return new

    def _result(self, request: Request, ids: List[int]) -> Dict[str, Any]:
        tokens = [self.vocab.chars[i] for i in ids]
        return {"text": "".join(tokens), "tokens": tokens, "n_tokens": len(tokens),
                "prompt_tokens": len(request["prompt"]), "finish_reason": "length"}

    def run_batch(self, requests: List[Request]) -> List[Dict[str, Any]]:
        """Answer validated "generate" requests, grouped by prompt length (see the module)."""
        groups: Dict[int, List[int]] = {}
        for i, r in enumerate(requests):
            groups.setdefault(len(r["prompt"]), []).append(i)
        results: List[Optional[Dict[str, Any]]] = [None] * len(requests)
        for idx in groups.values():
            ids = self._decode([requests[i] for i in idx])
            for i, generated in zip(idx, ids):
                results[i] = self._result(requests[i], generated)
        return results  # type: ignore[return-value]

    def stream(self, request: Request) -> Iterator[Dict[str, Any]]:
        """Yield ``{"token", "index"}`` for each generated character of one validated request as
        soon as it is computed, then ``{"done": True, **result}``. Same tokens as :meth:`run_batch`."""
        import queue
        import threading

        q: "queue.Queue[Any]" = queue.Queue()
        stop = threading.Event()

        def on_step(step: int, tokens: List[int]) -> bool:
            q.put(("token", step, tokens[0]))
            return not stop.is_set()

        def work() -> None:
            try:
                ids = self._decode([request], on_step)
                q.put(("done", ids[0], None))
            except Exception as err:  # noqa: BLE001 - handed to the consumer
                q.put(("error", err, None))

        thread = threading.Thread(target=work, daemon=True)
        thread.start()
        try:
            while True:
                kind, a, b = q.get()
                if kind == "token":
                    yield {"token": self.vocab.chars[b], "index": a}
                elif kind == "done":
                    yield {"done": True, **self._result(request, a)}
                    return
                else:
                    raise a
        finally:
            stop.set()
            thread.join()


def _json_type(v: object) -> str:
    return {type(None): "null", bool: "a boolean", int: "an integer", float: "a number", str: "a string",
            list: "an array", dict: "an object"}.get(type(v), type(v).__name__)


def train_gpt_servable(steps: int = 200, seed: int = 0, progress: bool = True, context: int = 64,
                       embed_dim: int = 64, num_heads: int = 4, num_layers: int = 2, batch: int = 16,
                       lr: float = 3e-3, dtype: torch.dtype = torch.float32, **limits: Any) -> GPTServable:
    """Chapter 13's character GPT trained for ``steps`` AdamW steps on the CPython corpus
    (:func:`course_lib.text.cpython_text`, its training split), seeded; ``steps=0`` gives the seeded
    untrained model (what the protocol tests need). ``limits`` go to :class:`GPTServable`."""
    from course_lib import gpt, text
    from course_lib.device import seed_everything

    if not _is_int(steps) or steps < 0:
        raise ValueError(f"train_gpt_servable: steps should be an int >= 0, got {steps!r}")
    corpus = text.cpython_text()
    vocab = text.CharVocab.from_text(corpus)
    seed_everything(seed)
    model = gpt.GPT(vocab.size, context=context, embed_dim=embed_dim, num_heads=num_heads, num_layers=num_layers)
    model = model.to(dtype)
    if steps:
        train_ids, val_ids, _ = text.split_ids(vocab.encode(corpus))
        gpt.train_gpt(model, train_ids, val_ids, steps=steps, batch=batch, context=context, lr=lr, seed=seed,
                      progress=progress, eval_every=steps, eval_tokens=2_000, title="GPT for serving")
    return GPTServable(model.eval(), vocab, **limits)


def save_servable(servable: GPTServable, path: Union[str, Path]) -> Path:
    """``torch.save`` of the state_dict, the vocabulary's characters, the model's configuration and
    the limits; read back with :func:`load_servable` (``weights_only`` loading: no pickled code)."""
    if not isinstance(servable, GPTServable):
        raise TypeError(f"save_servable: servable should be a GPTServable, got {type(servable).__name__}")
    m = servable.model
    config = {"vocab_size": m.vocab_size, "context": m.context, "embed_dim": m.embed_dim,
              "num_heads": m.num_heads, "num_layers": m.num_layers,
              "ff_mult": m.blocks[0].fc1.out_features // m.embed_dim if m.num_layers else 4}
    path = Path(path)
    torch.save({"format": "course-gpt-servable-1", "state_dict": m.state_dict(), "chars": list(servable.vocab.chars),
                "config": config, "limits": {"max_new_tokens_limit": servable.max_new_tokens_limit,
                                             "max_prompt_chars": servable.max_prompt_chars}}, path)
    return path


def load_servable(path: Union[str, Path]) -> GPTServable:
    """The :class:`GPTServable` saved by :func:`save_servable` at ``path`` (weights-only loading)."""
    from course_lib import gpt, text

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"load_servable: no checkpoint at {path}")
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001
        raise ValueError(f"load_servable: {path} is not a checkpoint written by save_servable ({err})") from err
    if not isinstance(blob, dict) or blob.get("format") != "course-gpt-servable-1":
        raise ValueError(f"load_servable: {path} is not a checkpoint written by save_servable")
    model = gpt.GPT(**blob["config"])
    state = blob["state_dict"]
    model = model.to(next(iter(state.values())).dtype)
    model.load_state_dict(state)
    return GPTServable(model.eval(), text.CharVocab(blob["chars"]), **blob["limits"])
