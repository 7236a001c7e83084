"""Explorer of chapter 10: what the gates of an LSTM (or GRU) do over a sequence.

:class:`GateExplorer` shows, for one sequence,

* top: one quantity (a gate, the candidate, the cell state or the hidden state) for every
  unit over time, a heat map (H, T), with the chosen unit marked;
* middle: the gates of the chosen unit over time, (3, T): i, f, o for an LSTM, r, z (and 1-z)
  for a GRU, on one colour scale [0, 1];
* bottom: the chosen unit's cell state c (LSTM) or hidden state h (GRU) over time, (1, T),
  on a symmetric colour scale, with the input characters as tick labels when there are any.

Every trace is computed once at construction (:func:`course_lib.gates.lstm_trace` /
:func:`~course_lib.gates.gru_trace`), so a step only swaps image data.
"""

from __future__ import annotations

from typing import Any, Dict, Optional, Sequence

import torch

from course_lib import gates
from course_lib.widgets.base import Explorer

QUANTITIES = {"lstm": ("i", "f", "g", "o", "c", "h"), "gru": ("r", "z", "n", "h")}
UNIT_GATES = {"lstm": ("i", "f", "o"), "gru": ("r", "z", "1-z")}
STATE = {"lstm": "c", "gru": "h"}
NAMES = {"i": "input gate i", "f": "forget gate f", "g": "candidate g", "o": "output gate o", "c": "cell state c",
         "h": "hidden state h", "r": "reset gate r", "z": "update gate z", "n": "candidate n", "1-z": "1 - z"}
GATE_LIKE = {"i", "f", "o", "r", "z", "1-z"}

DEFAULT_TEXTS = {
    "for statement": 'for i in range(10):\n    print(i)  # "for" loops over a sequence',
    "quotes": 'The string "abc" is (not) the same as \'abc\'.',
    "numbers": "x = 3.14159 * 2.71828 + 42",
}


def _char_inputs(texts: Dict[str, str], vocab: Any, embed: Any, size: int) -> Dict[str, torch.Tensor]:
    out = {}
    for name, text in texts.items():
        ids = vocab.encode(text) if vocab is not None else torch.tensor([ord(c) % size for c in text])
        x = embed(ids) if embed is not None else torch.nn.functional.one_hot(ids, size).double()
        out[name] = x.detach().double()
    return out


class GateExplorer(Explorer):
    """Gate activations and cell state of one LSTM/GRU layer over a sequence, as heat maps.

    ``params`` named like nn.LSTM's / nn.GRU's (``cell``), ``inputs`` ``{name: x (T, I)}``,
    ``labels`` ``{name: list of T tick labels}`` (e.g. the characters), ``layer`` the layer shown.
    Without arguments: an *untrained* one-layer LSTM (random weights, seed 0, 8 units) reading
    a few short texts one-hot (a demonstration of the mechanics, not of learned behaviour);
    :meth:`from_char_model` shows a trained character model.
    Controls: ``sequence`` (Dropdown), ``unit`` (IntSlider), ``show`` (the quantity of the top map).
    """

    figsize = (9.6, 5.0)
    check_control = "unit"

    def __init__(self, params: Optional[Dict[str, torch.Tensor]] = None,
                 inputs: Optional[Dict[str, torch.Tensor]] = None,
                 labels: Optional[Dict[str, Sequence[str]]] = None, cell: str = "lstm", layer: int = 0,
                 title: str = "") -> None:
        if cell not in QUANTITIES:
            raise ValueError(f"GateExplorer: cell should be 'lstm' or 'gru', got {cell!r}")
        if params is None:
            size = 64
            params = gates.gate_params(cell, size, 8, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
            inputs = _char_inputs(DEFAULT_TEXTS, None, None, size)
            labels = {k: list(v) for k, v in DEFAULT_TEXTS.items()}
            title = title or f"untrained {cell.upper()} (random weights, seed 0)"
        if not inputs:
            raise ValueError("GateExplorer: inputs should be a non-empty dict {name: x (T, I)}")
        self.cell, self.layer, self.title = cell, layer, title
        params = {k: v.detach().double().cpu() for k, v in params.items()}
        trace_fn = gates.lstm_trace if cell == "lstm" else gates.gru_trace
        self.traces: Dict[str, Dict[str, torch.Tensor]] = {}
        for name, x in inputs.items():
            tr = trace_fn(x.detach().double().cpu(), params, layer=layer)
            if cell == "gru":
                tr["1-z"] = 1 - tr["z"]
            self.traces[name] = tr
        self.labels = {k: list(v) for k, v in (labels or {}).items()}
        self.hidden = next(iter(self.traces.values()))["h"].shape[1]
        self.t_max = max(tr["h"].shape[0] for tr in self.traces.values())
        self._bound = {q: max(float(tr[q].abs().max()) for tr in self.traces.values()) or 1.0
                       for q in QUANTITIES[cell]}
        super().__init__()

    @classmethod
    def from_char_model(cls, model: Any, vocab: Any, texts: Dict[str, str], layer: int = 0,
                        title: str = "") -> "GateExplorer":
        """The explorer for a :class:`course_lib.text.CharModel` (``cell`` "lstm" or "gru") reading ``texts``."""
        if getattr(model, "cell", None) not in QUANTITIES:
            raise ValueError(f"GateExplorer.from_char_model: model should be a CharModel with cell 'lstm' or "
                             f"'gru', got {getattr(model, 'cell', type(model).__name__)!r}")
        params = {k: v.detach().cpu() for k, v in model.rnn.named_parameters()}
        embed = None if model.embed is None else model.embed.cpu()
        with torch.no_grad():
            inputs = _char_inputs(texts, vocab, embed, model.vocab_size)
        return cls(params, inputs, {k: list(v) for k, v in texts.items()}, cell=model.cell, layer=layer,
                   title=title or f"trained {model.cell.upper()}, layer {layer}")

    # --- data ---------------------------------------------------------------------------
    def trace(self, sequence: Optional[str] = None) -> Dict[str, torch.Tensor]:
        """All (T, H) traces of ``sequence`` (default: the one shown)."""
        return self.traces[sequence or self.controls["sequence"].value]

    def shown(self) -> Dict[str, Any]:
        """The chosen unit's rows as drawn in the lower two maps: ``{quantity: (T,) array}``."""
        unit, tr = self.controls["unit"].value, self.trace()
        keys = UNIT_GATES[self.cell] + (STATE[self.cell],)
        return {k: tr[k][:, unit].numpy() for k in keys}

    # --- figure ---------------------------------------------------------------------------
    def build(self, fig: Any) -> None:
        import numpy as np
        from matplotlib.patches import Rectangle

        gs = fig.add_gridspec(3, 2, height_ratios=[3.2, 1.4, 0.75], width_ratios=[40, 1], hspace=0.55,
                              wspace=0.03, left=0.08, right=0.93, top=0.92, bottom=0.09)
        self.ax_all = fig.add_subplot(gs[0, 0])
        self.ax_gates = fig.add_subplot(gs[1, 0], sharex=self.ax_all)
        self.ax_state = fig.add_subplot(gs[2, 0], sharex=self.ax_all)
        T, H = self.t_max, self.hidden
        kw = dict(aspect="auto", interpolation="nearest", origin="upper")
        self.im_all = self.ax_all.imshow(np.zeros((H, T)), cmap="RdBu_r", vmin=-1, vmax=1, **kw)
        self.im_gates = self.ax_gates.imshow(np.zeros((3, T)), cmap="viridis", vmin=0, vmax=1, **kw)
        b = self._bound[STATE[self.cell]]
        self.im_state = self.ax_state.imshow(np.zeros((1, T)), cmap="RdBu_r", vmin=-b, vmax=b, **kw)
        self.marker_box = self.ax_all.add_patch(Rectangle((-0.5, -0.5), T, 1, fill=False, ec="k", lw=1.5))
        self.ax_all.set_ylabel("unit")
        self.ax_gates.set_yticks(range(3))
        self.ax_gates.set_yticklabels(UNIT_GATES[self.cell], fontsize=8)
        self.ax_state.set_yticks([0])
        self.ax_state.set_yticklabels([STATE[self.cell]], fontsize=8)
        self.cb_all = fig.colorbar(self.im_all, cax=fig.add_subplot(gs[0, 1]))
        fig.colorbar(self.im_gates, cax=fig.add_subplot(gs[1, 1]))
        fig.colorbar(self.im_state, cax=fig.add_subplot(gs[2, 1]))
        for ax in (self.ax_all.get_xaxis(), self.ax_gates.get_xaxis()):
            ax.set_visible(False)
        self.caption_all = self.ax_all.text(0.0, 1.02, "", transform=self.ax_all.transAxes, fontsize=9)
        self.caption_unit = self.ax_gates.text(0.0, 1.06, "", transform=self.ax_gates.transAxes, fontsize=9)
        fig.suptitle(self.title, fontsize=9, x=0.93, ha="right", y=0.985)
        self.dynamic = [self.im_gates, self.im_state, self.marker_box, self.caption_unit]

    def make_controls(self) -> Dict[str, Any]:
        import ipywidgets as widgets

        return {
            "sequence": widgets.Dropdown(options=list(self.traces), value=next(iter(self.traces)),
                                         description="sequence"),
            "unit": widgets.IntSlider(value=0, min=0, max=self.hidden - 1, step=1, description="unit"),
            "show": widgets.Dropdown(options=list(QUANTITIES[self.cell]), value=QUANTITIES[self.cell][1],
                                     description="top map"),
        }

    def render(self, sequence: str, unit: int, show: str) -> None:
        import numpy as np

        tr = self.traces[sequence]
        T = tr["h"].shape[0]
        if self.use_background((sequence, show)):
            full = np.full((self.hidden, self.t_max), np.nan)
            full[:, :T] = tr[show].T.numpy()
            self.im_all.set_data(full)
            if show in GATE_LIKE:
                self.im_all.set_cmap("viridis")
                self.im_all.set_clim(0, 1)
            else:
                b = self._bound[show]
                self.im_all.set_cmap("RdBu_r")
                self.im_all.set_clim(-b, b)
            self.caption_all.set_text(f"{NAMES[show]} of every unit over time (sequence: {sequence!r}, T = {T})")
            labels = self.labels.get(sequence)
            if labels is not None and len(labels) == T:
                self.ax_state.set_xticks(range(T))
                self.ax_state.set_xticklabels([{"\n": "\u21b5", " ": "\u2423"}.get(c, c) for c in labels],
                                              fontsize=7, fontfamily="monospace")
                self.ax_state.set_xlabel("input at time t")
            else:
                self.ax_state.set_xticks(range(0, T, max(1, T // 10)))
                self.ax_state.set_xticklabels([str(t) for t in range(0, T, max(1, T // 10))], fontsize=8)
                self.ax_state.set_xlabel("time step t")
        rows = np.full((3, self.t_max), np.nan)
        for r, k in enumerate(UNIT_GATES[self.cell]):
            rows[r, :T] = tr[k][:, unit].numpy()
        state = np.full((1, self.t_max), np.nan)
        state[0, :T] = tr[STATE[self.cell]][:, unit].numpy()
        self.im_gates.set_data(rows)
        self.im_state.set_data(state)
        self.marker_box.set_xy((-0.5, unit - 0.5))
        self.marker_box.set_width(T)
        f_key = "f" if self.cell == "lstm" else "z"
        keep = float(tr[f_key][:, unit].mean())
        self.caption_unit.set_text(f"unit {unit}: gates over time (mean {f_key} = {keep:.2f}); "
                                   f"below, its {NAMES[STATE[self.cell]]}")
