"""A small decoder-only Transformer language model (GPT) and decoding: greedy, temperature,
top-k, top-p, with and without a KV cache.

Shapes: B batch, T new positions, T_past cached positions, E model width, h heads,
d = E / h, V vocabulary size, C the context length (the number of learned positions)::

    ids (B, T) long  ->  x = tok_emb[ids] + pos_emb[start_pos : start_pos + T]     (B, T, E)
                     ->  L pre-norm blocks (course_lib.transformer.Block)           (B, T, E)
                     ->  final layer norm, linear head                              (B, T, V) logits

Each block's KV cache is a pair (k, v) of shape (B, h, T_past, d): the keys and values of every
position already processed, so one decoding step computes q, k, v for the new position only and
attends to the cached keys (a **lower-right** causal mask, see course_lib.attention.causal_mask).

Decoding filters (Holtzman et al. 2020, arXiv:1904.09751, for top-p; Radford et al. 2019 for
GPT-2)::

    top-k: keep the k largest logits (ties with the k-th are kept), the others -> -inf
    top-p: sort by probability, keep the smallest prefix whose total probability reaches p,
           INCLUDING the token that crosses p; the others -> -inf
"""

from __future__ import annotations

import math
import time
from typing import Any, Dict, List, Optional, Tuple

import torch

from course_lib.validate import ShapeError, expect

Tensor = torch.Tensor
Cache = List[Tuple[Tensor, Tensor]]

__all__ = ["GPT", "train_gpt", "top_k_filter", "top_p_filter", "next_token_probs", "generate",
           "tokens_per_second"]


def _int(fn: str, name: str, value: object, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{fn}: {name} should be an int >= {minimum}, got {value!r}")
    return value


class GPT(torch.nn.Module):
    """Token + learned position embeddings, ``num_layers`` pre-norm :class:`Block`s, a final
    layer norm and a linear head (no bias): ``forward(ids (B, T), kv_cache=None, start_pos=None)
    -> (logits (B, T, V), new_cache)``, ``new_cache`` a list of one (k, v) per layer.

    Weights are initialised as in GPT-2 (Radford et al. 2019): normal with standard deviation
    0.02, biases zero, layer norms at (1, 0). With ``tie_embeddings`` the head reuses the token
    embedding matrix (``head.weight is tok_emb.weight``, V*E parameters fewer), as GPT-2 does.
    """

    def __init__(self, vocab_size: int, context: int, embed_dim: int = 64, num_heads: int = 4,
                 num_layers: int = 2, ff_mult: int = 4, dropout: float = 0.0, tie_embeddings: bool = False) -> None:
        super().__init__()
        fn = "GPT"
        for name, v in (("vocab_size", vocab_size), ("context", context), ("embed_dim", embed_dim),
                        ("num_heads", num_heads), ("num_layers", num_layers)):
            _int(fn, name, v, 1)
        from course_lib.norm import LayerNorm
        from course_lib.transformer import Block

        self.vocab_size, self.context, self.embed_dim = vocab_size, context, embed_dim
        self.num_heads, self.num_layers = num_heads, num_layers
        self.tok_emb = torch.nn.Embedding(vocab_size, embed_dim)  # (V, E)
        self.pos_emb = torch.nn.Embedding(context, embed_dim)  # (C, E)
        self.blocks = torch.nn.ModuleList(Block(embed_dim, num_heads, ff_mult, dropout) for _ in range(num_layers))
        self.ln_f = LayerNorm(embed_dim)
        self.head = torch.nn.Linear(embed_dim, vocab_size, bias=False)  # (V, E)
        for module in self.modules():  # (on the meta device there is nothing to initialise)
            if isinstance(module, (torch.nn.Linear, torch.nn.Embedding)) and module.weight.device.type != "meta":
                torch.nn.init.normal_(module.weight, 0.0, 0.02)
                if getattr(module, "bias", None) is not None:
                    torch.nn.init.zeros_(module.bias)
        if not isinstance(tie_embeddings, bool):
            raise TypeError(f"{fn}: tie_embeddings should be a bool, got {tie_embeddings!r}")
        self.tie_embeddings = tie_embeddings
        if tie_embeddings:  # one (V, E) matrix both reads tokens in and scores them out (GPT-2 does this)
            self.head.weight = self.tok_emb.weight

    def forward(self, ids: Tensor, kv_cache: Optional[Cache] = None, start_pos: Optional[int] = None
                ) -> Tuple[Tensor, Cache]:
        """ids (B, T) long in 0..V-1; ``kv_cache`` None or a list of (k, v) per layer, each
        (B, h, T_past, d); ``start_pos`` the position of ids[:, 0] (default: T_past, i.e. 0 without
        a cache). Needs start_pos + T <= context. Returns logits (B, T, V) and the new cache
        (each (B, h, T_past + T, d))."""
        fn = "GPT.forward"
        expect(fn, "ids", ids, ("B", "T"), integer=True)
        B, T = ids.shape
        if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= self.vocab_size):
            raise ValueError(f"{fn}: ids should lie in 0..{self.vocab_size - 1}, got values in "
                             f"{int(ids.min())}..{int(ids.max())}")
        past = 0
        if kv_cache is not None:
            if not isinstance(kv_cache, (list, tuple)) or len(kv_cache) != self.num_layers:
                raise ShapeError(f"{fn}: kv_cache should be a list of {self.num_layers} (k, v) pairs, got "
                                 f"{type(kv_cache).__name__}{'' if not isinstance(kv_cache, (list, tuple)) else f' of length {len(kv_cache)}'}")
            past = int(kv_cache[0][0].shape[2])
        if start_pos is None:
            start_pos = past
        elif isinstance(start_pos, bool) or not isinstance(start_pos, int) or start_pos < 0:
            raise ValueError(f"{fn}: start_pos should be an int >= 0, got {start_pos!r}")
        elif kv_cache is not None and start_pos != past:
            raise ValueError(f"{fn}: start_pos should equal the cached length {past} (the new tokens follow "
                             f"the cached ones), got {start_pos}")
        if start_pos + T > self.context:
            raise ValueError(f"{fn}: start_pos + T should be <= context = {self.context}, got "
                             f"{start_pos} + {T} = {start_pos + T}")
        positions = torch.arange(start_pos, start_pos + T, device=ids.device)  # (T,)
        x = self.tok_emb(ids.long()) + self.pos_emb(positions)  # (B, T, E)
        new_cache: Cache = []
        for i, block in enumerate(self.blocks):
            x, layer_cache = block(x, None if kv_cache is None else tuple(kv_cache[i]))
            new_cache.append(layer_cache)
        return self.head(self.ln_f(x)), new_cache


def _device(model: torch.nn.Module) -> torch.device:
    return next(model.parameters()).device


def _lr_at(step: int, steps: int, lr: float, warmup: int) -> float:
    """Linear warm-up over ``warmup`` steps, then cosine decay to lr / 10 at the last step."""
    if step <= warmup:
        return lr * step / max(1, warmup)
    progress = (step - warmup) / max(1, steps - warmup)
    return lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


def train_gpt(model: GPT, train_ids: Tensor, val_ids: Tensor, steps: int, batch: int, context: int,
              lr: float, seed: int = 0, progress: bool = True, live_plot: bool = False,
              eval_every: Optional[int] = None, eval_tokens: int = 10_000, weight_decay: float = 0.01,
              warmup: Optional[int] = None, clip: float = 1.0, title: str = "GPT") -> Dict[str, Any]:
    """Train ``model`` on random windows of ``train_ids`` (N,) with AdamW.

    Each step: ``batch`` windows of ``context`` tokens (:func:`course_lib.text.char_batches`, seeded
    by ``seed``), cross-entropy over all B*T next-token predictions, backward, gradient clipping
    at norm ``clip``, an AdamW step whose learning rate warms up linearly over ``warmup`` steps
    (default steps // 10) and then decays along a cosine to lr / 10. Every ``eval_every`` steps
    (default: 10 times) and at the end, the validation loss on the first ``eval_tokens`` tokens of
    ``val_ids`` (:func:`course_lib.text.evaluate_nats`, windows of ``context``). A tqdm bar shows the
    losses; ``live_plot`` redraws a loss curve in place in a notebook at each evaluation.

    Returns ``{"train_loss", "val_steps", "val_loss", "seconds"}``, losses in nats per TOKEN.
    """
    fn = "train_gpt"
    for name, v in (("steps", steps), ("batch", batch), ("context", context)):
        _int(fn, name, v, 1)
    if context > model.context:
        raise ValueError(f"{fn}: context should be <= the model's context {model.context}, got {context}")
    if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not lr > 0:
        raise ValueError(f"{fn}: lr should be a number > 0, got {lr!r}")
    expect(fn, "train_ids", train_ids, (None,), integer=True)
    expect(fn, "val_ids", val_ids, (None,), integer=True)
    from tqdm.auto import tqdm

    from course_lib.text import char_batches, evaluate_nats

    eval_every = eval_every or max(1, steps // 10)
    warmup = steps // 10 if warmup is None else warmup
    eval_n = min(eval_tokens, int(val_ids.shape[0]))
    gen = torch.Generator().manual_seed(seed)
    dev = _device(model)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    history: Dict[str, Any] = {"train_loss": [], "val_steps": [], "val_loss": [], "seconds": 0.0}
    plot = _LivePlot(steps, title) if live_plot else None
    start = time.perf_counter()
    model.train()
    bar = tqdm(range(1, steps + 1), desc=title, disable=not progress, leave=True)
    for step in bar:
        for group in opt.param_groups:
            group["lr"] = _lr_at(step, steps, lr, warmup)
        x, y = char_batches(train_ids, batch, context, gen)
        logits, _ = model(x.to(dev))
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.to(dev).reshape(-1))
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
        opt.step()
        history["train_loss"].append(loss.item())
        if step % eval_every == 0 or step == steps:
            val = evaluate_nats(model, val_ids, context, max_chars=eval_n)
            history["val_steps"].append(step)
            history["val_loss"].append(val)
            bar.set_postfix(train=f"{loss.item():.3f}", val=f"{val:.3f}")
            if plot is not None:
                plot.update(history)
    history["seconds"] = time.perf_counter() - start
    model.eval()
    return history


class _LivePlot:
    """A loss curve redrawn in place in a notebook (one display handle, PNG updates; no pyplot)."""

    def __init__(self, steps: int, title: str) -> None:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
        from IPython.display import display

        self.fig = Figure(figsize=(6.0, 2.6), dpi=80)
        FigureCanvasAgg(self.fig)
        ax = self.fig.add_subplot(1, 1, 1)
        (self.train_line,) = ax.plot([], [], lw=0.8, label="training batch")
        (self.val_line,) = ax.plot([], [], "o-", label="validation")
        ax.set_xlim(0, steps)
        ax.set_xlabel("step")
        ax.set_ylabel("nats per token")
        ax.set_title(title, fontsize=9)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="upper right")
        self.ax = ax
        self.fig.tight_layout()
        self.handle = display(self._image(), display_id=True)

    def _image(self) -> Any:
        import io

        from IPython.display import Image

        buf = io.BytesIO()
        self.fig.savefig(buf, format="png")
        return Image(buf.getvalue())

    def update(self, history: Dict[str, Any]) -> None:
        losses = history["train_loss"]
        self.train_line.set_data(range(1, len(losses) + 1), losses)
        self.val_line.set_data(history["val_steps"], history["val_loss"])
        self.ax.set_ylim(0, max(losses[0], *history["val_loss"]) * 1.05)
        if self.handle is not None:
            self.handle.update(self._image())


# --- decoding ------------------------------------------------------------------------------
def _check_logits(fn: str, logits: Tensor) -> None:
    expect(fn, "logits", logits, floating=True)
    if logits.dim() < 1 or logits.shape[-1] < 1:
        raise ShapeError(f"{fn}: logits should have shape (..., V) with V >= 1, got {tuple(logits.shape)}")
    if torch.isnan(logits).any():
        raise ValueError(f"{fn}: logits should not contain NaN")


def top_k_filter(logits: Tensor, k: int) -> Tensor:
    """logits (..., V) -> (..., V): entries below the k-th largest of their row set to -inf
    (ties with the k-th largest are kept, so more than k may survive); k >= V keeps all."""
    fn = "top_k_filter"
    _check_logits(fn, logits)
    _int(fn, "k", k, 1)
    if k >= logits.shape[-1]:
        return logits.clone()
    kth = torch.topk(logits, k, dim=-1).values[..., -1:]  # (..., 1)
    return logits.masked_fill(logits < kth, -math.inf)


def top_p_filter(logits: Tensor, p: float) -> Tensor:
    """Nucleus filter: logits (..., V) -> (..., V). Sort each row by probability (descending),
    keep the smallest prefix whose total probability reaches ``p`` INCLUDING the token that
    crosses ``p`` (so the most likely token is always kept), set the rest to -inf. ``p`` in (0, 1];
    p = 1 keeps every token."""
    fn = "top_p_filter"
    _check_logits(fn, logits)
    if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0 < p <= 1:
        raise ValueError(f"{fn}: p should be a number in (0, 1], got {p!r}")
    if torch.isposinf(logits).any():
        raise ValueError(f"{fn}: logits should not contain +inf (the probabilities would be NaN)")
    if p >= 1:
        return logits.clone()
    sorted_logits, order = torch.sort(logits, dim=-1, descending=True, stable=True)
    probs = torch.softmax(sorted_logits, dim=-1)
    before = torch.cumsum(probs, dim=-1) - probs  # probability of the tokens ranked above
    drop_sorted = before >= p  # the token that crosses p has before < p: kept
    drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
    return logits.masked_fill(drop, -math.inf)


def next_token_probs(logits: Tensor, temperature: float = 1.0, top_k: Optional[int] = None,
                     top_p: Optional[float] = None) -> Tensor:
    """The sampling distribution (..., V) for logits (..., V): ``softmax(filter(logits / T))``,
    top-k then top-p; temperature 0 puts all mass on the largest logit (the first one on ties)."""
    fn = "next_token_probs"
    _check_logits(fn, logits)
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) \
            or not 0 <= temperature < math.inf:
        raise ValueError(f"{fn}: temperature should be a finite number >= 0, got {temperature!r}")
    if temperature == 0:
        return torch.nn.functional.one_hot(logits.argmax(-1), logits.shape[-1]).to(logits.dtype)
    z = logits / temperature
    if top_k is not None:
        z = top_k_filter(z, top_k)
    if top_p is not None:
        z = top_p_filter(z, top_p)
    return torch.softmax(z, dim=-1)


@torch.no_grad()
def generate(model: GPT, ids: Tensor, n: int, temperature: float = 1.0, top_k: Optional[int] = None,
             top_p: Optional[float] = None, use_cache: bool = True,
             generator: Optional[torch.Generator] = None) -> Tensor:
    """``ids`` (B, T0) or (T0,) followed by ``n`` generated tokens: (B, T0 + n) or (T0 + n,).

    Each step draws from :func:`next_token_probs` of the last position's logits (greedy when
    ``temperature == 0``), on the CPU in float64 with ``generator``. With ``use_cache`` the prompt
    is processed once and each step feeds only the new token with the KV cache; without, each
    step recomputes the whole window. Past the model's context both use the last ``context``
    tokens; then the cache (built for absolute positions) is rebuilt from that window at each step,
    so cached and uncached decoding give the same tokens.
    """
    fn = "generate"
    expect(fn, "ids", ids, integer=True)
    if ids.dim() not in (1, 2) or ids.shape[-1] < 1:
        raise ShapeError(f"{fn}: ids should have shape (B, T0) or (T0,) with T0 >= 1, got {tuple(ids.shape)}")
    _int(fn, "n", n, 0)
    next_token_probs(torch.zeros(1, dtype=torch.float64), temperature)  # validates temperature
    unbatched = ids.dim() == 1
    out = ids[None] if unbatched else ids
    dev, C = _device(model), model.context
    was_training = model.training
    model.eval()
    out = out.to(dev)
    cache: Optional[Cache] = None
    logits: Optional[Tensor] = None
    for _ in range(n):
        if use_cache and cache is not None and out.shape[1] <= C:
            logits, cache = model(out[:, -1:], cache)
        else:
            logits, cache = model(out[:, -C:])
        probs = next_token_probs(logits[:, -1].double().cpu(), temperature, top_k, top_p)  # (B, V)
        if temperature == 0:
            nxt = probs.argmax(-1, keepdim=True)
        else:
            nxt = torch.multinomial(probs, 1, generator=generator)  # (B, 1)
        out = torch.cat([out, nxt.to(dev)], dim=1)
    model.train(was_training)
    return out[0] if unbatched else out


def tokens_per_second(model: GPT, prompt: Tensor, n: int, use_cache: bool, repeats: int = 3) -> float:
    """Median over ``repeats`` of the generated tokens per second of greedy :func:`generate`."""
    rates = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        generate(model, prompt, n, temperature=0, use_cache=use_cache)
        rates.append(n / (time.perf_counter() - t0))
    rates.sort()
    return rates[len(rates) // 2]
