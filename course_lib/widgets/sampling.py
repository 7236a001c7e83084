"""Explorer of chapter 13: the next-token distribution of a language model under temperature,
top-k and top-p, and the continuation sampled with those settings.

:class:`SamplingExplorer` shows, for one prompt,

* top: the probabilities of the ``shown`` most likely next tokens (ranked by the model's own
  distribution at T = 1, drawn as black ticks), bars for the distribution actually sampled from
  (:func:`course_lib.gpt.next_token_probs`); tokens removed by top-k / top-p are grey;
* bottom: the prompt and ``n`` tokens generated with the same settings and a fixed seed.

Everything is computed at construction: the next-token logits of every prompt, and the
continuations for every combination of the controls' values, generated together as one batch
with the KV cache (one row per prompt and setting). Moving a control only re-filters V numbers
and looks a continuation up.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, Optional, Tuple

import torch

from course_lib import gpt
from course_lib.widgets.base import Explorer

DEFAULT_PROMPTS = ("The for statement", "A class definition", "def f(x):\n    return")
TOP_K_OPTIONS = (("off", 0), ("3", 3), ("10", 10), ("30", 30))
TEMPERATURES = (0.0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0)
TOP_P_OPTIONS = (("off", 1.0), ("0.5", 0.5), ("0.8", 0.8), ("0.9", 0.9), ("0.95", 0.95))


def _label(token: str) -> str:
    return token.replace("\n", "\u21b5").replace(" ", "\u2423")


class SamplingExplorer(Explorer):
    """Next-token probabilities of ``model`` (a :class:`course_lib.gpt.GPT`) after each prompt,
    under temperature / top-k / top-p, and a sampled continuation.

    ``encode(str) -> list or 1-D tensor of ids`` and ``decode(ids) -> str`` (e.g. a
    :class:`course_lib.text.CharVocab`'s or a :class:`course_lib.bpe.BPE`'s); ``prompts`` a
    sequence of strings; ``n`` tokens are generated (seed ``seed``). Without a model: an untrained
    one (random weights, seed 0) on a small character vocabulary, to show the mechanics.
    Controls: ``prompt`` (Dropdown), ``temperature`` (FloatSlider, 0 = greedy), ``top_k``,
    ``top_p`` (Dropdowns).
    """

    figsize = (9.0, 4.0)
    check_control = "temperature"

    def __init__(self, model: Optional[gpt.GPT] = None, encode: Optional[Callable[[str], Any]] = None,
                 decode: Optional[Callable[[Any], str]] = None, prompts: Tuple[str, ...] = DEFAULT_PROMPTS,
                 n: int = 40, shown: int = 20, seed: int = 0) -> None:
        if model is None:  # a demonstration of the mechanics: an UNTRAINED model (random weights, seed 0)
            import string

            from course_lib.text import CharVocab

            vocab = CharVocab.from_text(string.ascii_letters + string.digits + " .,:()\n" + "".join(prompts))
            with torch.random.fork_rng():
                torch.manual_seed(0)
                model = gpt.GPT(vocab.size, context=64, embed_dim=32, num_heads=4, num_layers=1)
                with torch.no_grad():
                    model.head.weight.mul_(10)  # larger logits than at initialisation: a visible distribution
            encode, decode = vocab.encode, vocab.decode
        if encode is None or decode is None:
            raise ValueError("SamplingExplorer: encode and decode should be given with a model")
        if not isinstance(model, gpt.GPT):
            raise TypeError(f"SamplingExplorer: model should be a course_lib.gpt.GPT, got {type(model).__name__}")
        if not prompts:
            raise ValueError("SamplingExplorer: prompts should be a non-empty sequence of str")
        self.model, self.decode, self.n, self.seed = model, decode, n, seed
        self.prompt_ids: Dict[str, torch.Tensor] = {}
        self.logits: Dict[str, torch.Tensor] = {}
        was_training = model.training
        model.eval()
        with torch.no_grad():
            for p in prompts:
                ids = torch.as_tensor(encode(p), dtype=torch.long)[-model.context:]
                logits, _ = model(ids[None].to(next(model.parameters()).device))
                self.prompt_ids[p] = ids
                self.logits[p] = logits[0, -1].double().cpu()  # (V,)
        model.train(was_training)
        self.shown = min(shown, model.vocab_size)
        self.order = {p: torch.argsort(z, descending=True, stable=True)[: self.shown] for p, z in self.logits.items()}
        self._continuations: Dict[Tuple[str, float, int, float], str] = self._generate_all()
        super().__init__()

    @torch.no_grad()
    def _generate_all(self) -> Dict[Tuple[str, float, int, float], str]:
        """Continuations for every (prompt, temperature, top-k, top-p) of the controls, as one batch."""
        model, n = self.model, self.n
        dev = next(model.parameters()).device
        keys = [(p, t, k, q) for p in self.prompt_ids for t in TEMPERATURES for _, k in TOP_K_OPTIONS
                for _, q in TOP_P_OPTIONS]
        out: Dict[Tuple[str, float, int, float], str] = {}
        gen = torch.Generator().manual_seed(self.seed)
        was_training = model.training
        model.eval()
        for prompt, ids in self.prompt_ids.items():  # one batch per prompt (prompts differ in length)
            rows = [key for key in keys if key[0] == prompt]
            temps = torch.tensor([key[1] for key in rows], dtype=torch.float64)
            ks = torch.tensor([key[2] for key in rows])
            ps = torch.tensor([key[3] for key in rows], dtype=torch.float64)
            seq = ids[None].repeat(len(rows), 1).to(dev)  # (R, T0)
            cache = None
            tokens = []
            for _ in range(min(n, model.context - seq.shape[1])):
                logits, cache = model(seq if cache is None else seq[:, -1:], cache)
                nxt = _sample_rows(logits[:, -1].double().cpu(), temps, ks, ps, gen)  # (R,)
                tokens.append(nxt)
                seq = torch.cat([seq, nxt[:, None].to(dev)], dim=1)
            sampled = torch.stack(tokens, 1) if tokens else torch.zeros(len(rows), 0, dtype=torch.long)
            for key, row in zip(rows, sampled):
                out[(key[0], round(key[1], 6), key[2], key[3])] = self.decode(row.tolist())
        model.train(was_training)
        return out

    # --- data ---------------------------------------------------------------------------
    def probs(self, prompt: str, temperature: float, top_k: int, top_p: float) -> torch.Tensor:
        """The distribution (V,) sampled from for ``prompt`` with these settings (top_k 0 = off)."""
        return gpt.next_token_probs(self.logits[prompt], temperature, top_k or None,
                                    None if top_p >= 1 else top_p)

    def continuation(self, prompt: str, temperature: float, top_k: int, top_p: float) -> str:
        """The ``n`` tokens sampled after ``prompt`` with these settings (precomputed; at most up to
        the model's context)."""
        return self._continuations[(prompt, round(temperature, 6), top_k, top_p)]

    # --- figure ---------------------------------------------------------------------------
    def build(self, fig: Any) -> None:
        import numpy as np

        # Speed: drawing text dominates a frame (each glyph is rasterised), so the changing text is
        # kept short (a caption and the continuation, about 80 glyphs) and everything that depends
        # on the prompt only (tick labels, the prompt line) lives in the cached background.
        self.ax = fig.add_axes([0.08, 0.36, 0.9, 0.56])
        self.ax_text = fig.add_axes([0.02, 0.02, 0.96, 0.15])
        self.ax_text.set_axis_off()
        x = np.arange(self.shown)
        self.bars = self.ax.bar(x, np.zeros(self.shown), color="C0", width=0.8)
        (self.base,) = self.ax.plot(x, np.zeros(self.shown), "_", color="k", ms=14, mew=2,
                                    label="model, T = 1")
        self.ax.set_ylim(0, 1.02)
        self.ax.set_xlim(-0.6, self.shown - 0.4)
        self.ax.set_ylabel("probability")
        self.ax.set_xticks(x)
        self.ax.legend(loc="upper right", fontsize=8)
        self.caption = self.ax.text(0.0, 1.03, "", transform=self.ax.transAxes, fontsize=9)
        mono = dict(va="top", ha="left", fontsize=9, family="monospace", transform=self.ax_text.transAxes)
        self.ax_text.text(0.0, 1.0, f"prompt:\n\nsampled (seed {self.seed}):", **mono)  # static
        self.prompt_line = self.ax_text.text(0.19, 1.0, "", **mono)  # static per prompt
        self.sample = self.ax_text.text(0.19, 1.0, "", **mono)
        self.dynamic = [*self.bars, self.caption, self.sample]

    def make_controls(self) -> Dict[str, Any]:
        import ipywidgets as widgets

        first = next(iter(self.logits))
        return {
            "prompt": widgets.Dropdown(options=[(repr(p), p) for p in self.logits], value=first,
                                       description="prompt"),
            "temperature": widgets.FloatSlider(value=1.0, min=TEMPERATURES[0], max=TEMPERATURES[-1],
                                               step=TEMPERATURES[1] - TEMPERATURES[0], description="temperature"),
            "top_k": widgets.Dropdown(options=list(TOP_K_OPTIONS), value=0, description="top-k"),
            "top_p": widgets.Dropdown(options=list(TOP_P_OPTIONS), value=1.0, description="top-p"),
        }

    def render(self, prompt: str, temperature: float, top_k: int, top_p: float) -> None:
        order = self.order[prompt]
        if self.use_background(prompt):
            tokens = [self.decode([int(i)]) for i in order]
            self.ax.set_xticklabels([_label(t) for t in tokens], fontsize=9, family="monospace")
            self.base.set_ydata(torch.softmax(self.logits[prompt], -1)[order].numpy())
            self.ax.set_xlabel(f"the {self.shown} most likely next tokens (of V = {self.logits[prompt].numel()})")
            self.prompt_line.set_text(prompt.replace("\n", "\u21b5")[-70:])
        p = self.probs(prompt, temperature, top_k, top_p)
        kept = p > 0
        heights = p[order].tolist()
        keep = kept[order].tolist()
        for bar, h, k in zip(self.bars, heights, keep):
            bar.set_height(h)
            bar.set_color("C0" if k else "0.75")
        entropy = float(-(p[kept] * p[kept].log()).sum())
        self.caption.set_text(f"{int(kept.sum())} tokens can be drawn; entropy {entropy:.2f} nats"
                              f"{' (greedy)' if temperature == 0 else ''}")
        cont = self.continuation(prompt, temperature, top_k, top_p)
        self.sample.set_text("\n\n" + cont.replace("\n", "\u21b5")[:70])


def _sample_rows(logits: torch.Tensor, temps: torch.Tensor, ks: torch.Tensor, ps: torch.Tensor,
                 gen: torch.Generator) -> torch.Tensor:
    """One token per row of logits (R, V), row r with temperature temps[r] (0 = greedy), top-k ks[r]
    (0 = off) and top-p ps[r] (1 = off), in the order of :func:`course_lib.gpt.next_token_probs`."""
    V = logits.shape[-1]
    z = logits / temps.clamp_min(1e-12)[:, None]
    kk = torch.where(ks > 0, ks, torch.full_like(ks, V)).clamp(max=V)
    kth = z.sort(dim=-1, descending=True).values.gather(-1, (kk - 1)[:, None])  # (R, 1)
    z = z.masked_fill(z < kth, -float("inf"))
    sorted_z, order = z.sort(dim=-1, descending=True, stable=True)
    probs = torch.softmax(sorted_z, -1)
    drop = ((probs.cumsum(-1) - probs) >= ps[:, None]) & (ps[:, None] < 1)
    z = z.masked_fill(torch.zeros_like(drop).scatter(-1, order, drop), -float("inf"))
    nxt = torch.multinomial(torch.softmax(z, -1), 1, generator=gen)[:, 0]
    return torch.where(temps == 0, logits.argmax(-1), nxt)


def explorer_for(model: gpt.GPT, vocab: Any, prompts: Optional[Tuple[str, ...]] = None, **kwargs: Any
                 ) -> SamplingExplorer:
    """A :class:`SamplingExplorer` for a model whose tokens are ``vocab``'s (``encode``/``decode``)."""
    return SamplingExplorer(model, vocab.encode, vocab.decode, prompts or DEFAULT_PROMPTS, **kwargs)
