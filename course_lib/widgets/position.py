"""Explorer of chapter 12: positional encodings and how similar two positions look.

:class:`PositionExplorer` shows, for one kind of positional information,

* left: the table itself, positions down, dimensions across: the sinusoidal table (T, E), a
  learned table (T, E) (by default an untrained ``nn.Embedding``-style N(0, 1) table), or for RoPE
  the cosines of the rotation angles ``cos(p * theta_i)`` (T, d/2); the chosen position is marked;
* right: the similarity of the chosen position ``m`` to every position ``n``, against the offset
  ``n - m``: cosine similarity of the table rows for sinusoidal and learned tables, and for RoPE the
  normalised score ``<R_m q, R_n q> / |q|^2`` of one query vector q with itself (which depends on
  ``n - m`` only).

Everything is computed at construction for every (encoding, base) pair, so a step only swaps
image data and one line's y-values.
"""

from __future__ import annotations

from typing import Any, Dict, Optional

import torch

from course_lib import position
from course_lib.widgets.base import Explorer

ENCODINGS = ("sinusoidal", "learned", "RoPE")
BASES = (100.0, 1000.0, 10000.0)


class PositionExplorer(Explorer):
    """Sinusoidal, learned and rotary positional information, and the similarity of positions.

    ``T`` positions, model width ``E`` (even); ``learned``: an optional (T', E') table, e.g. the
    position embedding of a trained model (detached, shown as it is); without it an untrained
    N(0, 1) table (seed 0) stands in. Controls: ``encoding``, ``position``, ``base``.
    """

    figsize = (9.0, 3.4)
    check_control = "position"

    def __init__(self, T: int = 64, E: int = 32, learned: Optional[torch.Tensor] = None) -> None:
        if isinstance(T, bool) or not isinstance(T, int) or T < 2:
            raise ValueError(f"PositionExplorer: T should be an int >= 2, got {T!r}")
        if isinstance(E, bool) or not isinstance(E, int) or E < 2 or E % 2:
            raise ValueError(f"PositionExplorer: E should be an even int >= 2, got {E!r}")
        if learned is None:
            learned = torch.randn(T, E, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
            self.learned_label = "learned (untrained, N(0,1))"
        else:
            if not isinstance(learned, torch.Tensor) or learned.dim() != 2:
                raise ValueError(f"PositionExplorer: learned should be a (T, E) tensor, got "
                                 f"{getattr(learned, 'shape', type(learned).__name__)}")
            learned = learned.detach().double().cpu()[:T]
            self.learned_label = "learned (given table)"
        self.T, self.E = int(min(T, learned.shape[0])), E
        T = self.T
        self.tables: Dict[Any, torch.Tensor] = {}
        self.similarity: Dict[Any, torch.Tensor] = {}
        q = torch.ones(1, E, dtype=torch.float64)  # one query; <R_m q, R_n q> = sum_i 2 cos((n-m) theta_i)
        for base in BASES:
            pe = position.sinusoidal_encoding(T, E, base=base, dtype=torch.float64)
            self.tables["sinusoidal", base] = pe
            self.similarity["sinusoidal", base] = position.cosine_similarity_matrix(pe)
            cos, _ = position.rope_angles(torch.arange(T), E, base=base)
            self.tables["RoPE", base] = cos
            rq = position.rope(q.expand(T, E), base=base)  # (T, E): R_p q for every p
            self.similarity["RoPE", base] = (rq @ rq.T) / (q @ q.T)
        for base in BASES:
            self.tables["learned", base] = learned[:T]
            self.similarity["learned", base] = position.cosine_similarity_matrix(learned[:T])
        super().__init__()

    def build(self, fig: Any) -> None:
        self.ax_table = fig.add_axes([0.06, 0.15, 0.40, 0.72])
        self.ax_sim = fig.add_axes([0.56, 0.15, 0.41, 0.72])
        T, E = self.T, self.E
        self.image_artist = self.ax_table.imshow(torch.zeros(T, E).numpy(), aspect="auto", cmap="RdBu_r",
                                                 vmin=-1, vmax=1, interpolation="nearest")
        self.ax_table.set_xlabel("dimension")
        self.ax_table.set_ylabel("position p")
        self.marker = self.ax_table.axhline(0, color="k", lw=1.2)
        self.offsets = torch.arange(T).numpy()
        (self.line,) = self.ax_sim.plot(self.offsets, self.offsets * 0.0, "-", color="C0", lw=1.5)
        self.ax_sim.axhline(0, color="0.7", lw=0.8)
        self.ax_sim.set_ylim(-1.05, 1.05)
        self.ax_sim.set_xlim(-(T - 1) - 0.5, T - 0.5)
        self.ax_sim.set_xlabel("offset n - m")
        self.ax_sim.set_ylabel("similarity")
        self.table_title = self.ax_table.text(0.0, 1.02, "", transform=self.ax_table.transAxes, fontsize=9)
        self.sim_title = self.ax_sim.text(0.0, 1.02, "", transform=self.ax_sim.transAxes, fontsize=9)
        self.dynamic = [self.marker, self.line, self.sim_title]  # the table and its title are static per key

    def make_controls(self) -> Dict[str, Any]:
        import ipywidgets as widgets

        return {
            "encoding": widgets.ToggleButtons(options=list(ENCODINGS), value="sinusoidal", description="encoding"),
            "position": widgets.IntSlider(value=self.T // 4, min=0, max=self.T - 1, step=1, description="m",
                                          continuous_update=False),
            "base": widgets.Dropdown(options=list(BASES), value=10000.0, description="base"),
        }

    def render(self, encoding: str, position: int, base: float) -> None:
        key = (encoding, float(base))
        table = self.tables[key]
        if self.use_background(key):  # static per (encoding, base): labels, limits, the table's title
            self.ax_table.set_xlim(-0.5, table.shape[1] - 0.5)
            self.ax_table.set_xlabel(r"pair $i$: $\cos(p\,\theta_i)$" if encoding == "RoPE" else "dimension")
            self.ax_sim.set_ylabel(r"$\langle R_m q, R_n q\rangle / \Vert q\Vert^2$" if encoding == "RoPE"
                                   else "cosine similarity")
            label = self.learned_label if encoding == "learned" else f"{encoding}, base {base:g}"
            self.table_title.set_text(f"{label}: table (T={self.T})")
            self.image_artist.set_data(table.numpy())
            self.image_artist.set_extent((-0.5, table.shape[1] - 0.5, self.T - 0.5, -0.5))
        self.marker.set_ydata([position, position])
        row = self.similarity[key][position].numpy()
        self.line.set_data(self.offsets - position, row)
        near = row[max(0, position - 8):position].tolist() + row[position + 1:position + 9].tolist()
        self.sim_title.set_text(f"m = {position}: mean similarity within 8 = {sum(near) / max(len(near), 1):.2f}")
