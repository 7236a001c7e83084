"""Chapter 01: one input travelling through a small MLP, layer by layer."""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch

from course_lib import layers
from course_lib.widgets.base import Explorer

LIM = 3.0  # the input plane shown is [-LIM, LIM]^2
RADIUS = 1.5  # class 1 = inside this circle
GRID = 61  # resolution of the class-probability map
VMAX = 3.0  # colour scale of the node values: [-VMAX, VMAX]
FONT = 9  # font size of the step text (monospace)

# Weights of a 2-4-3-2 MLP for each activation, produced by
# ``trained_mlp([2, 4, 3, 2], activation, seed=0, steps=300)`` and rounded to 4 decimals
# (stored so that building the explorer costs no training time).
TRAINED_2432: Dict[str, list] = {
    "relu": [
        ([[0.9503, 0.9667], [-0.9055, 1.1888], [1.0478, -0.863], [-1.0173, -1.047]], [-0.9434, -1.0467, -0.6926, -0.8453]),
        ([[-0.0055, -0.0028, -0.0002, -0.0006], [1.2274, 1.2809, 1.2704, 1.1824], [1.0661, 1.1662, 1.1303, 1.1823]], [-0.007, -0.9603, -0.8934]),
        ([[0.0043, 1.386, 1.2028], [0.0018, -1.3814, -1.2099]], [-1.1182, 1.1136]),
    ],
    "sigmoid": [
        ([[-0.7469, 3.1432], [3.1711, -0.2358], [2.5769, 1.0297], [-0.2567, -2.8204]], [-4.0007, -3.6622, 3.4753, -3.4193]),
        ([[4.0351, 3.9202, -3.3728, 3.2424], [2.6795, 2.6159, -2.1292, 2.1321], [2.8022, 2.7706, -2.2864, 2.2646]], [0.1115, -0.3284, -0.2597]),
        ([[2.1673, 1.0466, 1.2278], [-2.1612, -1.0419, -1.235]], [-1.3539, 1.3494]),
    ],
    "tanh": [
        ([[1.0986, 0.144], [0.7317, -1.0182], [-0.4853, -1.0587], [-0.014, -0.0217]], [-0.9836, 1.3284, -1.0852, 1.3284]),
        ([[-1.1958, 1.1903, -1.1901, -1.3306], [1.4644, -1.4858, 1.509, 1.6572], [1.7097, -1.7108, 1.7307, 1.7908]], [-0.5347, 0.6416, 0.844]),
        ([[-1.0035, 1.5458, 1.8296], [1.0096, -1.5411, -1.8367]], [0.1334, -0.1379]),
    ],
}


def circle_task(n: int = 256, seed: int = 0) -> Tuple[torch.Tensor, torch.Tensor]:
    """A toy data set: points x (n, 2) uniform in [-LIM, LIM]^2 and labels y (n,):
    1 inside the circle of radius RADIUS, else 0."""
    gen = torch.Generator().manual_seed(seed)
    x = (torch.rand(n, 2, generator=gen, dtype=torch.float64) * 2 - 1) * LIM
    y = (x.norm(dim=1) < RADIUS).long()
    return x, y


def trained_mlp(sizes: Sequence[int], activation: str, seed: int = 0, steps: int = 300) -> layers.Params:
    """Parameters of an MLP with layer ``sizes`` fitted to :func:`circle_task`.

    Training (AdamW with weight decay 0.3 on the cross-entropy, full batch) is the
    subject of later chapters; here it only gives the explorer weights that do
    something recognisable. The weight decay keeps the weights, and so the logits,
    moderate: the probabilities stay readable instead of all 0.00 or 1.00.
    """
    gen = torch.Generator().manual_seed(seed)
    params = [(W.clone().requires_grad_(True), b.clone().requires_grad_(True))
              for W, b in layers.init_mlp(sizes, generator=gen)]
    x, y = circle_task(seed=seed)
    opt = torch.optim.AdamW([t for pair in params for t in pair], lr=0.05, weight_decay=0.3)
    for _ in range(steps):
        logits = layers.mlp_forward(x, params, activation)[-1]
        loss = torch.nn.functional.cross_entropy(logits, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return [(W.detach(), b.detach()) for W, b in params]


def _fmt(v: float) -> str:
    """A number in exactly 5 characters: +1.23, -12.3, +123 (and >+999 / <-999 beyond)."""
    if abs(v) < 9.995:
        return f"{v:+.2f}"
    if abs(v) < 99.95:
        return f"{v:+.1f}"
    if abs(v) < 9999.5:
        return f"{v:+.0f}".rjust(5)
    return ">+999" if v > 0 else "<-999"


def _column(values: Sequence[float]) -> List[str]:
    return [f"[{_fmt(v)}]" for v in values]


class ForwardExplorer(Explorer):
    """Step one input ``x = (x1, x2)`` through an MLP (default sizes 2-4-3-2).

    Controls: the input (sliders ``x1``, ``x2``), the ``layer`` computed so far
    (0 = only the input) and the hidden ``activation``. Left: the input plane coloured
    by the network's probability of class 1 (inside the dashed circle), with the
    point ``x``. Right: the network, nodes coloured by their value (post-activation
    for hidden layers, logits at the output, softmax probabilities next to them), the
    current layer's weights highlighted (red positive, blue negative, width |w|).
    Bottom: the current step ``z_l = W_l a_{l-1} + b_l`` with shapes and numbers.

    After each step ``explorer.values`` holds the list returned by
    :func:`course_lib.layers.mlp_forward` for the current input (each entry (1, D)),
    and ``explorer.params`` the weights shown.
    """

    figsize = (10.0, 5.4)
    check_control = "layer"

    def __init__(self, sizes: Sequence[int] = (2, 4, 3, 2), seed: int = 0) -> None:
        self.sizes = [int(s) for s in sizes]
        if len(self.sizes) < 2 or self.sizes[0] != 2:
            raise ValueError(f"ForwardExplorer: the input layer must have 2 units (a point in the plane), got sizes {self.sizes}")
        self.seed = seed
        self._params: Dict[str, layers.Params] = {}
        self._maps: Dict[str, torch.Tensor] = {}
        self.values: List[torch.Tensor] = []
        super().__init__()

    # --- the model ------------------------------------------------------------------
    def params_for(self, activation: str) -> layers.Params:
        """The weights ``[(W_1, b_1), ...]`` for an activation (stored for 2-4-3-2, else trained)."""
        if activation not in self._params:
            if self.sizes == [2, 4, 3, 2] and self.seed == 0:
                self._params[activation] = [
                    (torch.tensor(W, dtype=torch.float64), torch.tensor(b, dtype=torch.float64))
                    for W, b in TRAINED_2432[activation]
                ]
            else:
                self._params[activation] = trained_mlp(self.sizes, activation, seed=self.seed)
        return self._params[activation]

    @property
    def params(self) -> layers.Params:
        """The weights currently shown."""
        return self.params_for(self.controls["activation"].value)

    def forward(self, x1: float, x2: float, activation: str) -> List[torch.Tensor]:
        """``mlp_forward`` for the single input (x1, x2): ``[x, z_1, a_1, ..., z_L]``, each (1, D)."""
        x = torch.tensor([[x1, x2]], dtype=torch.float64)
        return layers.mlp_forward(x, self.params_for(activation), activation)

    def probability_map(self, activation: str) -> torch.Tensor:
        """p(class 1) on a GRID x GRID grid over [-LIM, LIM]^2: (GRID, GRID), row index = x2."""
        if activation not in self._maps:
            t = torch.linspace(-LIM, LIM, GRID, dtype=torch.float64)
            x2, x1 = torch.meshgrid(t, t, indexing="ij")
            pts = torch.stack([x1.reshape(-1), x2.reshape(-1)], dim=1)
            logits = layers.mlp_forward(pts, self.params_for(activation), activation)[-1]
            self._maps[activation] = layers.softmax(logits)[:, 1].reshape(GRID, GRID)
        return self._maps[activation]

    # --- the step text: a fixed part and the vectors that depend on x -------------------
    def step_layout(self, layer: int, activation: str) -> Tuple[str, List[Tuple[int, str]]]:
        """Text of step ``layer`` for the current ``self.values``: the part that depends
        only on (layer, activation) (header, W, b, operators; blanks where the vectors go)
        and the vector blocks ``[(column, text), ...]`` that depend on the input."""
        L = len(self.sizes) - 1
        pre = "\n" * 2  # the vectors start on the third line, below the header and a blank line
        if layer == 0:
            x = self.values[0][0].tolist()
            fixed = [f"input:  x = (x1, x2),  shape ({len(x)},)", "", "   x = ", *[""] * len(x),
                     f"Move 'layer' to 1 to compute the first layer: z1 = W1 x + b1, a1 = {activation}(z1)."]
            return "\n".join(fixed), [(7, pre + "\n".join(_column(x)))]
        W, b = self.params_for(activation)[layer - 1]
        o, i = W.shape
        prev = "x" if layer == 1 else f"a{layer - 1}"
        a_prev = self.values[2 * layer - 2][0].tolist()
        z = self.values[2 * layer - 1][0]
        if layer < L:
            tail_name, tail = activation, self.values[2 * layer][0].tolist()
            foot = f"then a{layer} = {activation}(z{layer}), elementwise.   For a batch: Z{layer} = {'X' if layer == 1 else f'A{layer - 1}'} W{layer}^T + b{layer}, (N, {i}) -> (N, {o})"
        else:
            tail_name, tail = "softmax", layers.softmax(z).tolist()
            foot = f"output layer: no activation; softmax turns the logits z{layer} into class probabilities p"
        head = (f"layer {layer}:  z{layer} = W{layer} {prev} + b{layer}     "
                f"W{layer}: ({o}, {i})   {prev}: ({i},)   b{layer}: ({o},)   ->   z{layer}: ({o},)")
        rows, mid = max(o, i), (max(o, i) - 1) // 2
        wide = 6 * i + 1  # "[" + i numbers of 5 characters separated by spaces + "]"
        arrow = f" -{tail_name}-> "
        cols = {"prev": 2 + wide + 3, "b": 2 + wide + 3 + 7 + 3}
        cols["z"] = cols["b"] + 7 + 3
        cols["tail"] = cols["z"] + 7 + len(arrow)
        lines = []
        for r in range(rows):
            w_txt = "[" + " ".join(_fmt(v) for v in W[r].tolist()) + "]" if r < o else " " * wide
            b_txt = f"[{_fmt(float(b[r]))}]" if r < o else " " * 7
            op = (" . ", " + ", " = ", arrow) if r == mid else ("   ", "   ", "   ", " " * len(arrow))
            lines.append(f"  {w_txt}{op[0]}{' ' * 7}{op[1]}{b_txt}{op[2]}{' ' * 7}{op[3]}")
        fixed = "\n".join([head, "", *lines, "", foot])
        blocks = [(cols["prev"], pre + "\n".join(_column(a_prev))), (cols["z"], pre + "\n".join(_column(z.tolist()))),
                  (cols["tail"], pre + "\n".join(_column(tail)))]
        return fixed, blocks

    def step_lines(self, layer: int, activation: str) -> str:
        """The whole step text (fixed part with the vectors filled in), as shown."""
        fixed, blocks = self.step_layout(layer, activation)
        grid = [list(line) for line in fixed.split("\n")]
        for col, text in blocks:
            for r, piece in enumerate(text.split("\n")):
                if not piece:
                    continue
                row = grid[r]
                row.extend(" " * max(0, col + len(piece) - len(row)))
                row[col:col + len(piece)] = piece
        return "\n".join("".join(row).rstrip() for row in grid)

    # --- the figure -----------------------------------------------------------------
    def _node_positions(self) -> List[Tuple[float, float]]:
        return [(float(l), (n - 1) / 2 - i) for l, n in enumerate(self.sizes) for i in range(n)]

    def build(self, fig: Any) -> None:
        from matplotlib.collections import LineCollection
        from matplotlib.patches import FancyBboxPatch

        L = len(self.sizes) - 1
        tall = max(self.sizes)
        # input plane
        self.ax_in = fig.add_axes((0.05, 0.41, 0.24, 0.46))
        self.map_image = self.ax_in.imshow(
            torch.zeros(GRID, GRID).numpy(), origin="lower", extent=(-LIM, LIM, -LIM, LIM),
            cmap="PuOr", vmin=0, vmax=1, interpolation="bilinear",
        )
        angle = torch.linspace(0, 2 * torch.pi, 100)
        self.ax_in.plot(RADIUS * torch.cos(angle), RADIUS * torch.sin(angle), "k--", lw=0.8, alpha=0.6)
        (self.point,) = self.ax_in.plot([0], [0], "o", ms=9, mfc="yellow", mec="black", mew=1.5)
        self.ax_in.set_xlabel("x1", fontsize=9, labelpad=1)
        self.ax_in.set_ylabel("x2", fontsize=9, labelpad=0)
        self.ax_in.tick_params(labelsize=8)
        self.ax_in.set_title("input plane, colour = p(class 1)\n(class 1: inside the dashed circle)", fontsize=9)

        # network diagram
        self.ax_net = fig.add_axes((0.33, 0.36, 0.66, 0.62))
        ax = self.ax_net
        ax.set_xlim(-0.45, L + 0.95)
        ax.set_ylim(-tall / 2 - 0.3, tall / 2 + 0.25)
        ax.axis("off")
        self.pos = self._node_positions()
        starts = [sum(self.sizes[:l]) for l in range(len(self.sizes))]
        segments, self.edge_layer, self.edge_index = [], [], []
        for l in range(1, L + 1):
            for j in range(self.sizes[l]):
                for i in range(self.sizes[l - 1]):
                    segments.append([self.pos[starts[l - 1] + i], self.pos[starts[l] + j]])
                    self.edge_layer.append(l)
                    self.edge_index.append((j, i))
        self.edges = LineCollection(segments, zorder=1)
        ax.add_collection(self.edges)
        self.highlight = FancyBboxPatch((0, 0), 0.5, tall, boxstyle="round,pad=0.05", fc="#fff3b0", ec="#e0a800", lw=1.5, zorder=0)
        ax.add_patch(self.highlight)
        xs, ys = zip(*self.pos)
        self.nodes = ax.scatter(xs, ys, s=900, ec="black", lw=1.0, zorder=2)
        self.node_text = [ax.text(x, y, "", ha="center", va="center", fontsize=7.5, zorder=3) for x, y in self.pos]
        self.prob_text = [ax.text(L + 0.2, y, "", ha="left", va="center", fontsize=9, zorder=3) for _, y in self.pos[starts[L]:]]
        names = ["input x"] + [f"layer {l}" for l in range(1, L)] + [f"layer {L}: logits z -> p"]
        for l, name in enumerate(names):
            ax.text(l, tall / 2 + 0.05, name, ha="center", va="bottom", fontsize=9)
            what = "x" if l == 0 else ("z" if l == L else "a")
            label = f"{what}{'' if l == 0 else l}: ({self.sizes[l]},)"
            ax.text(l, -tall / 2 - 0.05, label, ha="center", va="top", fontsize=8, color="0.3")

        # the current step, spelled out: a fixed text (W, b, operators) and the vectors on top
        self.text_x0, self.text_y0 = 0.015, 0.30
        probe = fig.text(0, 0, "0" * 20, fontsize=FONT, family="monospace")
        self.char_width = probe.get_window_extent(renderer=fig.canvas.get_renderer()).width / 20 / fig.bbox.width
        probe.remove()
        self.step_fixed = fig.text(self.text_x0, self.text_y0, "", ha="left", va="top", fontsize=FONT, family="monospace")
        self.step_blocks = [
            fig.text(self.text_x0, self.text_y0, "", ha="left", va="top", fontsize=FONT, family="monospace", color="#8a3b00")
            for _ in range(3)
        ]
        # Everything that depends on the input is drawn each frame; the rest (map, edges,
        # highlight, W and b) depends only on (layer, activation) and is cached per pair.
        self.dynamic = [self.point, self.nodes, *self.node_text, *self.prob_text, *self.step_blocks]

    def make_controls(self) -> Dict[str, Any]:
        import ipywidgets as widgets

        L = len(self.sizes) - 1
        return {
            "x1": widgets.FloatSlider(value=1.6, min=-LIM, max=LIM, step=0.1, description="x1"),
            "x2": widgets.FloatSlider(value=0.8, min=-LIM, max=LIM, step=0.1, description="x2"),
            "layer": widgets.IntSlider(value=L, min=0, max=L, step=1, description="layer"),
            "activation": widgets.Dropdown(options=list(layers.ACTIVATIONS), value="relu", description="activation"),
        }

    def layout_controls(self) -> List[Any]:
        import ipywidgets as widgets

        c = self.controls
        return [widgets.HBox([c["x1"], c["x2"]]), widgets.HBox([c["layer"], c["activation"]])]

    def _render_fixed(self, layer: int, activation: str) -> None:
        """Artists that depend only on (layer, activation): drawn into the cached background."""
        self.map_image.set_data(self.probability_map(activation).numpy())
        colors, widths = [], []
        params = self.params_for(activation)
        for l, (j, i) in zip(self.edge_layer, self.edge_index):
            w = float(params[l - 1][0][j, i])
            rgb = (0.80, 0.15, 0.15) if w > 0 else (0.15, 0.30, 0.85)
            colors.append((*rgb, 0.9 if l == layer else 0.12))
            widths.append(0.4 + 1.0 * min(abs(w), 4.0))
        self.edges.set_color(colors)
        self.edges.set_linewidths(widths)
        tall = max(self.sizes)
        self.highlight.set_bounds(layer - 0.27, -(tall - 1) / 2 - 0.42, 0.54, tall - 1 + 0.84)

    def render(self, x1: float, x2: float, layer: int, activation: str) -> None:
        from matplotlib import colormaps

        L = len(self.sizes) - 1
        self.values = self.forward(x1, x2, activation)
        if self.use_background((layer, activation)):  # static parts depend on these only
            self._render_fixed(layer, activation)
        fixed, blocks = self.step_layout(layer, activation)
        self.step_fixed.set_text(fixed)
        for artist, (col, text) in zip(self.step_blocks, blocks + [(0, "")] * 3):
            artist.set_x(self.text_x0 + col * self.char_width)
            artist.set_text(text)

        self.point.set_data([x1], [x2])
        cmap = colormaps["coolwarm"]
        shown = [self.values[0][0]] + [self.values[2 * l if l < L else 2 * l - 1][0] for l in range(1, L + 1)]
        colors, k = [], 0
        for l, vec in enumerate(shown):
            for v in vec.tolist():
                done = l <= layer
                colors.append(cmap(0.5 + 0.5 * max(-1.0, min(1.0, v / VMAX))) if done else (0.92, 0.92, 0.92, 1.0))
                self.node_text[k].set_text(_fmt(v) if done else "?")
                k += 1
        self.nodes.set_facecolor(colors)
        p = layers.softmax(self.values[-1][0])
        for c, (t, pv) in enumerate(zip(self.prob_text, p.tolist())):
            t.set_text(f"p{c} = {pv:.2f}" if layer == L else "")
