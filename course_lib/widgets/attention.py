"""Explorer of chapter 11: the attention maps of a small trained attention model.

The task (:func:`reversal_batch`): reverse a sequence of 3..8 digits. Position 0 holds a
*length token* ``n=k``, positions 1..k the digits, the rest padding (``_``); the target at
position ``i`` (1..k) is the digit at position ``k + 1 - i``. :class:`ReversalModel` is two
layers of residual multi-head self-attention (``nn.MultiheadAttention``, 2 heads, E = 32) over
token + learned position embeddings, and a linear read-out; no MLP, no layer norm.
:func:`train_reversal` trains it in a few seconds (Adam, key padding mask on).

:class:`AttentionExplorer` recomputes the model with :func:`course_lib.attention.multi_head_attention`
for every example and every combination of the causal and padding masks *at construction*, so a
step only swaps image data. Controls: the example, layer, head, query position, and the two masks.

:meth:`AttentionExplorer.from_attentions` (one sentence) and :meth:`AttentionExplorer.from_examples`
(several) show attention maps computed elsewhere, e.g. by the MiniLM of chapter 17
(``SentenceEncoder.attentions(text)`` -> tokens and L tensors (h, T, T)), with the tokens as labels;
there are no mask controls and no prediction then. :func:`head_profile` summarises every head of
such maps by where its weight goes (previous, same, next token, ``[CLS]``, ``[SEP]``).
"""

from __future__ import annotations

import time
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import torch
from torch import Tensor

from course_lib import attention as att
from course_lib.widgets.base import Explorer

T_MAX = 9          # length token + up to 8 digits
DIGITS = 10
PAD = DIGITS       # token 10
LEN0 = DIGITS + 1  # tokens 11.. are "n=1", "n=2", ...
VOCAB = LEN0 + T_MAX - 1


def token_label(t: int) -> str:
    """The printed form of a token: a digit, ``_`` for padding, ``n=k`` for the length token."""
    return str(t) if t < DIGITS else ("_" if t == PAD else f"n={t - LEN0 + 1}")


def reversal_batch(batch: int, generator: torch.Generator, min_len: int = 3) -> Tuple[Tensor, Tensor, Tensor]:
    """A batch of the reversal task: ``x`` (B, 9) tokens, ``y`` (B, 9) targets (-100 = no loss:
    the length token and the padding), ``pad`` (B, 9) bool, True = padding (nn.MultiheadAttention's
    polarity of ``key_padding_mask``)."""
    n = torch.randint(min_len, T_MAX, (batch,), generator=generator)           # 3..8 digits
    x = torch.randint(0, DIGITS, (batch, T_MAX), generator=generator)
    pos = torch.arange(T_MAX)
    pad = (pos[None, :] > n[:, None])                                          # (B, T)
    x[pad] = PAD
    x[:, 0] = LEN0 + n - 1
    src = (n[:, None] + 1 - pos[None, :]).clamp(0, T_MAX - 1)
    y = torch.gather(x, 1, src)
    y[:, 0] = -100
    y[pad] = -100
    return x, y, pad


class ReversalModel(torch.nn.Module):
    """Token + learned position embeddings, ``layers`` residual self-attention layers, a linear read-out.
    ``forward(x (B, T), pad (B, T) bool True = padding) -> logits (B, T, 10)``."""

    def __init__(self, embed_dim: int = 32, num_heads: int = 2, layers: int = 2) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.embed = torch.nn.Embedding(VOCAB, embed_dim)
        self.pos = torch.nn.Embedding(T_MAX, embed_dim)
        self.attn = torch.nn.ModuleList(
            torch.nn.MultiheadAttention(embed_dim, num_heads, batch_first=True) for _ in range(layers))
        self.head = torch.nn.Linear(embed_dim, DIGITS)

    def forward(self, x: Tensor, pad: Optional[Tensor] = None) -> Tensor:
        z = self.embed(x) + self.pos.weight[: x.shape[1]]
        for a in self.attn:
            z = z + a(z, z, z, key_padding_mask=pad, need_weights=False)[0]
        return self.head(z)

    @torch.no_grad()
    def trace(self, x: Tensor, causal: bool = False, padding: bool = True) -> Tuple[List[Tensor], Tensor]:
        """The model recomputed with course_lib.attention, for ONE sequence ``x`` (T,): the weights of
        every layer, each (h, T, T), and the logits (T, 10). ``causal`` adds the causal mask,
        ``padding`` the key padding mask (both in nn.MultiheadAttention's polarity, True = masked)."""
        T = x.shape[0]
        z = self.embed(x[None]) + self.pos.weight[:T]
        kpm = (x == PAD)[None] if padding else None
        am = ~att.causal_mask(T) if causal else None
        weights = []
        for a in self.attn:
            out, w = att.multi_head_attention(z, z, z, att.mha_params(a), self.num_heads, key_padding_mask=kpm,
                                              attn_mask=am, batch_first=True, average_attn_weights=False)
            weights.append(w[0])
            z = z + out
        return weights, self.head(z)[0]


def train_reversal(steps: int = 200, batch: int = 64, lr: float = 3e-3, seed: int = 0) -> Tuple[ReversalModel, Dict[str, Any]]:
    """Train a :class:`ReversalModel` (Adam, cross-entropy on the digits). Returns the model and
    ``{"loss": per-step losses, "accuracy": on 1000 fresh sequences, "seconds": wall time}``."""
    torch.manual_seed(seed)
    model = ReversalModel()
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    gen = torch.Generator().manual_seed(seed)
    losses, t0 = [], time.perf_counter()
    for _ in range(steps):
        x, y, pad = reversal_batch(batch, gen)
        loss = torch.nn.functional.cross_entropy(model(x, pad).reshape(-1, DIGITS), y.reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    seconds = time.perf_counter() - t0
    x, y, pad = reversal_batch(1000, torch.Generator().manual_seed(seed + 1))
    with torch.no_grad():
        pred = model(x, pad).argmax(-1)
    keep = y != -100
    return model, {"loss": losses, "accuracy": float((pred[keep] == y[keep]).float().mean()), "seconds": seconds}


class AttentionExplorer(Explorer):
    """Attention weights of one layer/head of a trained :class:`ReversalModel` and its output.

    Left: the (T, T) weights (rows = queries, columns = keys) with the chosen query's row boxed;
    right: that query's weights over the keys as bars; below: input, prediction and target.
    ``model`` defaults to a freshly trained one (:func:`train_reversal`, a few seconds);
    ``examples`` (default 4) test sequences are traced for the 4 mask settings at construction.
    """

    figsize = (9.6, 4.6)
    check_control = "query"

    def __init__(self, model: Optional[ReversalModel] = None, examples: int = 4, seed: int = 123) -> None:
        self.mode = "model"
        self.T = T_MAX
        if model is None:
            model, _ = train_reversal()
        if not isinstance(model, ReversalModel):
            raise TypeError(f"AttentionExplorer: model should be a ReversalModel, got {type(model).__name__}")
        if isinstance(examples, bool) or not isinstance(examples, int) or examples < 1:
            raise ValueError(f"AttentionExplorer: examples should be an int >= 1, got {examples!r}")
        self.model = model.eval()
        self.layers, self.heads = len(model.attn), model.num_heads
        x, y, _ = reversal_batch(examples, torch.Generator().manual_seed(seed))
        self.inputs = {f"example {i}: " + " ".join(token_label(int(t)) for t in x[i] if t != PAD): (x[i], y[i])
                       for i in range(examples)}
        self.traces: Dict[Tuple[str, bool, bool], Tuple[Any, Any, float]] = {}
        for name, (xi, yi) in self.inputs.items():
            keep = yi != -100
            for causal in (False, True):
                for padding in (False, True):
                    ws, logits = model.trace(xi, causal=causal, padding=padding)
                    pred = logits.argmax(-1)
                    acc = float((pred[keep] == yi[keep]).float().mean())
                    self.traces[(name, causal, padding)] = ([w.numpy() for w in ws], pred.numpy(), acc)
        self.labels = {name: [token_label(int(t)) for t in xi] for name, (xi, _) in self.inputs.items()}
        super().__init__()

    @classmethod
    def from_attentions(cls, tokens: Sequence[str], attentions: Any, name: str = "sentence") -> "AttentionExplorer":
        """The attention maps of one sentence: ``tokens`` (T labels), ``attentions`` a sequence of L
        tensors (h, T, T) or one tensor (L, h, T, T) (rows = queries, columns = keys). See
        :meth:`from_examples`."""
        return cls.from_examples({name: (tokens, attentions)})

    @classmethod
    def from_examples(cls, examples: Mapping[str, Tuple[Sequence[str], Any]]) -> "AttentionExplorer":
        """The attention maps of several sentences, ``{name: (tokens, attentions)}`` with ``tokens`` T_i
        labels and ``attentions`` L tensors (h, T_i, T_i) (or one (L, h, T_i, T_i)); L and h equal for
        all. Everything is converted to numpy here, so a step only swaps image data. Controls: the
        sentence, layer, head and query token (a query beyond a shorter sentence shows its last token)."""
        import numpy as np

        fn = "AttentionExplorer.from_examples"
        if not isinstance(examples, Mapping) or not examples:
            raise ValueError(f"{fn}: expected a non-empty dict {{name: (tokens, attentions)}}, got {examples!r:.80}")
        self = cls.__new__(cls)
        self.mode = "maps"
        self.inputs, self.traces, self.labels = {}, {}, {}
        shape = None
        for name, pair in examples.items():
            if not isinstance(pair, (tuple, list)) or len(pair) != 2:
                raise ValueError(f"{fn}: expected (tokens, attentions) for {name!r}, got {type(pair).__name__}")
            tokens, attentions = pair
            if isinstance(tokens, str) or not all(isinstance(t, str) for t in tokens):
                raise TypeError(f"{fn}: tokens of {name!r} should be a list of str, got {tokens!r:.80}")
            maps = [torch.as_tensor(a) for a in (attentions if not isinstance(attentions, Tensor) else attentions.unbind(0))]
            T = len(tokens)
            if not maps or any(a.dim() != 3 or a.shape[1:] != (T, T) for a in maps):
                raise ValueError(f"{fn}: attentions of {name!r} should be L >= 1 tensors (h, T, T) with T = "
                                 f"{T} tokens, got shapes {[tuple(a.shape) for a in maps]}")
            if not all(a.is_floating_point() and bool(torch.isfinite(a).all()) and bool((a >= 0).all()) for a in maps):
                raise ValueError(f"{fn}: attentions of {name!r} should be finite floating-point weights >= 0")
            if shape is not None and (len(maps), maps[0].shape[0]) != shape:
                raise ValueError(f"{fn}: every example should have the same (layers, heads) = {shape}, "
                                 f"got {(len(maps), maps[0].shape[0])} for {name!r}")
            shape = (len(maps), maps[0].shape[0])
            key = str(name)
            self.inputs[key] = (None, None)
            self.labels[key] = list(tokens)
            self.traces[(key, False, False)] = ([np.ascontiguousarray(a.detach().float().cpu().numpy()) for a in maps],
                                                None, None)
        self.layers, self.heads = shape
        self.T = max(len(t) for t in self.labels.values())
        self.figsize = (max(9.6, 3.2 + 0.42 * self.T), max(4.6, 2.4 + 0.2 * self.T))
        Explorer.__init__(self)
        return self

    def weights(self, layer: Optional[int] = None, head: Optional[int] = None) -> Any:
        """The (T, T) weights shown (default: the controls' layer and head)."""
        s = self.state()
        ws = self.traces[(s["sequence"], s.get("causal", False), s.get("padding", False))][0]
        return ws[s["layer"] if layer is None else layer][s["head"] if head is None else head]

    def build(self, fig: Any) -> None:
        import numpy as np
        from matplotlib.patches import Rectangle

        gs = fig.add_gridspec(2, 2, height_ratios=[5, 1], width_ratios=[1, 1.25], left=0.08, right=0.98,
                              top=0.9, bottom=0.08, hspace=0.45, wspace=0.22)
        self.ax_map = fig.add_subplot(gs[0, 0])
        self.ax_bar = fig.add_subplot(gs[0, 1])
        self.ax_txt = fig.add_subplot(gs[1, :])
        T = self.T
        self.im = self.ax_map.imshow(np.zeros((T, T)), cmap="viridis", vmin=0, vmax=1, aspect="equal",
                                     interpolation="nearest")
        self.box = self.ax_map.add_patch(Rectangle((-0.5, -0.5), T, 1, fill=False, ec="r", lw=2))
        what = "position" if self.mode == "model" else "token"
        self.ax_map.set_xlabel(f"key {what}")
        self.ax_map.set_ylabel(f"query {what}")
        self.bars = self.ax_bar.bar(range(T), np.zeros(T), color="C0")
        self.ax_bar.set_ylim(0, 1.05)
        self.ax_bar.set_xlim(-0.6, T - 0.4)
        self.ax_bar.set_xlabel(f"key {what}")
        self.ax_bar.set_ylabel("weight")
        self.ax_txt.set_axis_off()
        self.caption_map = self.ax_map.text(0.0, 1.03, "", transform=self.ax_map.transAxes, fontsize=9)
        self.caption_bar = self.ax_bar.text(0.0, 1.03, "", transform=self.ax_bar.transAxes, fontsize=9)
        mono = dict(fontsize=9, fontfamily="monospace", transform=self.ax_txt.transAxes)
        self.txt_pred = self.ax_txt.text(0.0, 0.2, "", **mono)
        self.txt_acc = self.ax_txt.text(0.75, 0.2, "", fontsize=9, transform=self.ax_txt.transAxes)
        self.ax_txt.text(0.0, 0.75, "", **mono)
        self.txt_in = self.ax_txt.texts[-1]
        # only the map, the box, the bars and one caption change with layer / head / query: the
        # texts that depend on (sequence, masks) live in the cached background (one per setting)
        self.dynamic = [self.im, self.box, *self.bars, self.caption_bar]

    def make_controls(self) -> Dict[str, Any]:
        import ipywidgets as widgets

        names = list(self.inputs)
        if self.mode == "maps":
            return {
                "sequence": widgets.Dropdown(options=names, value=names[0], description="sentence"),
                "layer": widgets.IntSlider(value=0, min=0, max=self.layers - 1, description="layer"),
                "head": widgets.IntSlider(value=0, min=0, max=self.heads - 1, description="head"),
                "query": widgets.IntSlider(value=1 if self.T > 1 else 0, min=0, max=self.T - 1, description="query"),
            }
        return {
            "sequence": widgets.Dropdown(options=names, value=names[0], description="sequence"),
            "layer": widgets.IntSlider(value=self.layers - 1, min=0, max=self.layers - 1, description="layer"),
            "head": widgets.IntSlider(value=0, min=0, max=self.heads - 1, description="head"),
            "query": widgets.IntSlider(value=1, min=0, max=T_MAX - 1, description="query"),
            "causal": widgets.Checkbox(value=False, description="causal mask"),
            "padding": widgets.Checkbox(value=True, description="padding mask"),
        }

    def render(self, sequence: str, layer: int, head: int, query: int, causal: bool = False,
               padding: bool = False) -> None:
        if self.mode == "maps":
            self._render_maps(sequence, layer, head, query)
            return
        x, y = self.inputs[sequence]
        labels = [token_label(int(t)) for t in x]
        ws, pred, acc = self.traces[(sequence, causal, padding)]
        if self.use_background((sequence, causal, padding)):
            for ax in (self.ax_map, self.ax_bar):
                ax.set_xticks(range(T_MAX))
                ax.set_xticklabels(labels, fontsize=8)
            self.ax_map.set_yticks(range(T_MAX))
            self.ax_map.set_yticklabels(labels, fontsize=8)
            self.txt_in.set_text("input      " + " ".join(f"{s:>3}" for s in labels))
            target = [token_label(int(t)) if t >= 0 else "" for t in y]
            out = ["" if y[i] < 0 else token_label(int(p)) + ("" if p == y[i] else "!") for i, p in enumerate(pred)]
            self.txt_pred.set_text("prediction " + " ".join(f"{s:>3}" for s in out) + "\n"
                                   + "target     " + " ".join(f"{s:>3}" for s in target))
            masks = ", ".join(m for m, on in (("causal", causal), ("padding", padding)) if on) or "no mask"
            self.caption_map.set_text(f"weights ({masks}); rows: queries")
            self.txt_acc.set_text(f"digits right: {acc:.0%}  (! = wrong)")
        w = ws[layer][head]
        self.im.set_data(w)
        self.box.set_xy((-0.5, query - 0.5))
        for bar, value in zip(self.bars, w[query]):
            bar.set_height(float(value))
        top = int(w[query].argmax())
        self.caption_bar.set_text(f"L{layer} H{head}, query {query}: max {w[query][top]:.2f} on key {top}")

    def _render_maps(self, sequence: str, layer: int, head: int, query: int) -> None:
        labels = self.labels[sequence]
        T = len(labels)
        ws = self.traces[(sequence, False, False)][0]
        if self.use_background(sequence):
            for ax in (self.ax_map, self.ax_bar):
                ax.set_xticks(range(T))
                ax.set_xticklabels(labels, fontsize=8, rotation=90)
                ax.set_xlim(-0.5 if ax is self.ax_map else -0.6, T - 0.5 if ax is self.ax_map else T - 0.4)
            self.ax_map.set_yticks(range(T))
            self.ax_map.set_yticklabels(labels, fontsize=8)
            self.ax_map.set_ylim(T - 0.5, -0.5)
            self.im.set_extent((-0.5, T - 0.5, T - 0.5, -0.5))
            self.box.set_width(T)
            self.caption_map.set_text("weights; rows: queries, columns: keys")
            self.txt_in.set_text("")
            self.txt_pred.set_text("")
            self.txt_acc.set_text("")
        q = min(query, T - 1)
        w = ws[layer][head]
        self.im.set_data(w)
        self.box.set_xy((-0.5, q - 0.5))
        for j, bar in enumerate(self.bars):
            bar.set_height(float(w[q, j]) if j < T else 0.0)
        top = int(w[q].argmax())
        self.caption_bar.set_text(f"L{layer} H{head}, query {labels[q]!r}: max {w[q, top]:.2f} on {labels[top]!r}")


def head_profile(attentions: Any, tokens: Sequence[str]) -> Dict[str, Tensor]:
    """Where each head's weight goes, averaged over the query tokens.

    ``attentions``: L tensors (h, T, T) or one (L, h, T, T) of ONE sentence (rows sum to 1); ``tokens``:
    its T labels. Returns ``{pattern: (L, h) tensor}`` for the patterns ``"previous"`` (key t-1, mean over
    queries 1..T-1), ``"same"`` (key t), ``"next"`` (key t+1, queries 0..T-2), ``"[CLS]"`` and ``"[SEP]"``
    (the summed weight on keys with that label, mean over all queries; absent labels give zeros).
    """
    a = attentions if isinstance(attentions, Tensor) else torch.stack([torch.as_tensor(x) for x in attentions])
    if a.dim() != 4 or a.shape[-1] != a.shape[-2] or a.shape[-1] != len(tokens):
        raise ValueError(f"head_profile: expected attentions (L, h, T, T) with T = {len(tokens)} tokens, "
                         f"got shape {tuple(a.shape)}")
    if a.shape[-1] < 2:
        raise ValueError(f"head_profile: expected at least 2 tokens, got {a.shape[-1]}")
    a = a.double()
    out = {"previous": a.diagonal(offset=-1, dim1=-2, dim2=-1).mean(-1),
           "same": a.diagonal(dim1=-2, dim2=-1).mean(-1),
           "next": a.diagonal(offset=1, dim1=-2, dim2=-1).mean(-1)}
    for special in ("[CLS]", "[SEP]"):
        keys = torch.tensor([t == special for t in tokens])
        out[special] = a[..., keys].sum(-1).mean(-1)
    return out
