"""Chapter 01: one input travelling through a small MLP, layer by layer."""

from __future__ import annotations

from typing import Any, Dict, List, Sequence, Tuple

import torch

from course_lib import layers
from course_lib.widgets.base import Explorer

LIM = 3.0  # the input plane shown is [-LIM, LIM]^2
GRID = 61  # resolution of the class-probability map
VMAX = 3.0  # colour scale of the node values: [-VMAX, VMAX]


def circle_task(n: int = 256, seed: int = 0) -> Tuple[torch.Tensor, torch.Tensor]:
    """A toy data set: points x (n, 2) uniform in [-LIM, LIM]^2, label y (n,) = 1 inside
    the circle of radius 1.5, else 0."""
    gen = torch.Generator().manual_seed(seed)
    x = (torch.rand(n, 2, generator=gen, dtype=torch.float64) * 2 - 1) * LIM
    y = (x.norm(dim=1) < 1.5).long()
    return x, y


def trained_mlp(sizes: Sequence[int], activation: str, seed: int = 0, steps: int = 300) -> layers.Params:
    """Parameters of an MLP with layer ``sizes`` fitted to :func:`circle_task`.

    Training (gradient descent with Adam on the cross-entropy) is the subject of later
    chapters; here it only gives the explorer weights that do something recognisable.
    """
    gen = torch.Generator().manual_seed(seed)
    params = [(W.clone().requires_grad_(True), b.clone().requires_grad_(True))
              for W, b in layers.init_mlp(sizes, generator=gen)]
    x, y = circle_task(seed=seed)
    opt = torch.optim.Adam([t for pair in params for t in pair], lr=0.05)
    for _ in range(steps):
        logits = layers.mlp_forward(x, params, activation)[-1]
        loss = torch.nn.functional.cross_entropy(logits, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return [(W.detach(), b.detach()) for W, b in params]


def _fmt(v: float) -> str:
    return f"{v:+.2f}"


class ForwardExplorer(Explorer):
    """Step one input ``x = (x1, x2)`` through an MLP (default sizes 2-4-3-2).

    Controls: the input (sliders ``x1``, ``x2``), the ``layer`` computed so far
    (0 = only the input) and the hidden ``activation``. Left: the input plane coloured
    by the network's probability of class 1 (the circle task), with the point ``x``.
    Right: the network, nodes coloured by their value (post-activation for hidden
    layers, logits at the output, softmax probabilities next to it), the current
    layer's weights highlighted. Bottom: the current step ``z = W a + b`` with shapes
    and numbers. After each step, ``explorer.values`` holds the list returned by
    :func:`course_lib.layers.mlp_forward` for the current input, and
    ``explorer.params`` the weights.
    """

    figsize = (10.0, 5.4)
    check_control = "layer"

    def __init__(self, sizes: Sequence[int] = (2, 4, 3, 2), seed: int = 0) -> None:
        self.sizes = [int(s) for s in sizes]
        if self.sizes[0] != 2 or len(self.sizes) < 2:
            raise ValueError(f"ForwardExplorer: the input layer must have 2 units (a point in the plane), got sizes {self.sizes}")
        self.seed = seed
        self._params: Dict[str, layers.Params] = {}
        self._maps: Dict[str, torch.Tensor] = {}
        self.values: List[torch.Tensor] = []
        super().__init__()

    # --- the model ------------------------------------------------------------------
    def params_for(self, activation: str) -> layers.Params:
        """The (cached) trained weights ``[(W_1, b_1), ...]`` for an activation."""
        if activation not in self._params:
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
        """p(class 1) on a GRID x GRID grid over [-LIM, LIM]^2: (GRID, GRID), row = x2."""
        if activation not in self._maps:
            t = torch.linspace(-LIM, LIM, GRID, dtype=torch.float64)
            x2, x1 = torch.meshgrid(t, t, indexing="ij")
            pts = torch.stack([x1.reshape(-1), x2.reshape(-1)], dim=1)
            logits = layers.mlp_forward(pts, self.params_for(activation), activation)[-1]
            self._maps[activation] = layers.softmax(logits)[:, 1].reshape(GRID, GRID)
        return self._maps[activation]

    # --- the figure -----------------------------------------------------------------
    def _node_positions(self) -> List[Tuple[float, float]]:
        pos = []
        for l, n in enumerate(self.sizes):
            for i in range(n):
                pos.append((float(l), (n - 1) / 2 - i))
        return pos

    def build(self, fig: Any) -> None:
        from matplotlib.collections import LineCollection
        from matplotlib.patches import FancyBboxPatch

        L = len(self.sizes) - 1
        tall = max(self.sizes)
        # input plane
        self.ax_in = fig.add_axes((0.045, 0.40, 0.25, 0.48))
        self.map_image = self.ax_in.imshow(
            torch.zeros(GRID, GRID).numpy(), origin="lower", extent=(-LIM, LIM, -LIM, LIM),
            cmap="PuOr", vmin=0, vmax=1, interpolation="bilinear",
        )
        circle = torch.linspace(0, 6.2832, 100)
        self.ax_in.plot(1.5 * torch.cos(circle), 1.5 * torch.sin(circle), "k--", lw=0.8, alpha=0.6)
        (self.point,) = self.ax_in.plot([0], [0], "o", ms=9, mfc="yellow", mec="black", mew=1.5)
        self.ax_in.set_xlabel("x1", fontsize=9)
        self.ax_in.set_ylabel("x2", fontsize=9, labelpad=0)
        self.ax_in.tick_params(labelsize=8)
        self.ax_in.set_title("input plane: colour = p(class 1)\n(dashed: the class-1 circle)", fontsize=9)

        # network diagram
        self.ax_net = fig.add_axes((0.33, 0.33, 0.66, 0.62))
        ax = self.ax_net
        ax.set_xlim(-0.55, L + 0.75)
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
        self.highlight = FancyBboxPatch(
            (0, 0), 0.5, tall, boxstyle="round,pad=0.05", fc="#fff3b0", ec="#e0a800", lw=1.5, zorder=0
        )
        ax.add_patch(self.highlight)
        xs, ys = zip(*self.pos)
        self.nodes = ax.scatter(xs, ys, s=900, ec="black", lw=1.0, zorder=2)
        self.node_text = [ax.text(x, y, "", ha="center", va="center", fontsize=8, zorder=3) for x, y in self.pos]
        out = self.pos[starts[L]:]
        self.prob_text = [ax.text(L + 0.22, y, "", ha="left", va="center", fontsize=9, zorder=3) for x, y in out]
        names = ["input x"] + [f"layer {l}" for l in range(1, L)] + [f"layer {L}: logits"]
        for l, name in enumerate(names):
            ax.text(l, tall / 2 + 0.05, name, ha="center", va="bottom", fontsize=9)
            what = "x" if l == 0 else ("z" if l == L else "a")
            ax.text(l, -tall / 2 - 0.05, f"{what}{'' if l == 0 else l}: ({self.sizes[l]},)", ha="center", va="top", fontsize=8, color="0.3")
        # the current step, spelled out
        self.step_text = fig.text(0.02, 0.02, "", ha="left", va="bottom", fontsize=9, family="monospace")
        self.dynamic = [self.map_image, self.point, self.highlight, self.edges, self.nodes,
                        *self.node_text, *self.prob_text, self.step_text]

    def make_controls(self) -> Dict[str, Any]:
        import ipywidgets as widgets

        L = len(self.sizes) - 1
        return {
            "x1": widgets.FloatSlider(value=1.0, min=-LIM, max=LIM, step=0.1, description="x1"),
            "x2": widgets.FloatSlider(value=-0.5, min=-LIM, max=LIM, step=0.1, description="x2"),
            "layer": widgets.IntSlider(value=L, min=0, max=L, step=1, description="layer"),
            "activation": widgets.Dropdown(options=list(layers.ACTIVATIONS), value="relu", description="activation"),
        }

    def layout_controls(self) -> List[Any]:
        import ipywidgets as widgets

        c = self.controls
        return [widgets.HBox([c["x1"], c["x2"]]), widgets.HBox([c["layer"], c["activation"]])]

    def step_lines(self, layer: int, activation: str) -> str:
        """The text of step ``layer`` for the current ``self.values``: the product
        ``z_l = W_l a_{l-1} + b_l`` with shapes and numbers (one input, column vectors)."""
        L = len(self.sizes) - 1
        x = self.values[0][0]
        if layer == 0:
            return (
                f"input  x = [{', '.join(_fmt(v) for v in x.tolist())}]   shape ({x.numel()},)\n\n"
                f"Move 'layer' to 1 to compute the first layer:  z1 = W1 x + b1,  a1 = {activation}(z1)."
            )
        W, b = self.params_for(activation)[layer - 1]
        a_prev = self.values[2 * layer - 2][0]
        z = self.values[2 * layer - 1][0]
        prev = "x" if layer == 1 else f"a{layer - 1}"
        o, i = W.shape
        head = (f"layer {layer}:  z{layer} = W{layer} {prev} + b{layer}      "
                f"W{layer}: ({o}, {i})  {prev}: ({i},)  b{layer}: ({o},)  ->  z{layer}: ({o},)")
        if layer < L:
            a = self.values[2 * layer][0]
            tail_name, tail = f"{activation}", a
            foot = f"then a{layer} = {activation}(z{layer}) elementwise (batch form: Z = A W^T + b)"
        else:
            tail_name, tail = "softmax", layers.softmax(z)
            foot = f"output layer: no activation; the logits z{layer} go through softmax to give probabilities p"
        rows = max(o, i)
        mid = (rows - 1) // 2
        width = 6 * i + 1  # "[" + i numbers of 5 characters separated by spaces + "]"
        lines = []
        for r in range(rows):
            wrow = "[" + " ".join(_fmt(v) for v in W[r].tolist()) + "]" if r < o else " " * width
            arow = f"[{_fmt(a_prev[r])}]" if r < i else " " * 7
            brow = f"[{_fmt(b[r])}]" if r < o else " " * 7
            zrow = f"[{_fmt(z[r])}]" if r < o else " " * 7
            trow = f"[{_fmt(tail[r])}]" if r < o else ""
            s = (" .  ", " +  ", " =  ", f" -{tail_name}-> ") if r == mid else ("    ", "    ", "    ", " " * (len(tail_name) + 5))
            lines.append(f"  {wrow}{s[0]}{arow}{s[1]}{brow}{s[2]}{zrow}{s[3]}{trow}")
        return "\n".join([head, *lines, foot])

    def render(self, x1: float, x2: float, layer: int, activation: str) -> None:
        from matplotlib import colormaps

        L = len(self.sizes) - 1
        self.values = self.forward(x1, x2, activation)
        self.map_image.set_data(self.probability_map(activation).numpy())
        self.point.set_data([x1], [x2])
        # nodes: value of each unit, grey if its layer is not computed yet
        cmap = colormaps["coolwarm"]
        shown = [self.values[0][0]] + [self.values[2 * l if l < L else 2 * l - 1][0] for l in range(1, L + 1)]
        colors, k = [], 0
        for l, vec in enumerate(shown):
            for v in vec.tolist():
                done = l <= layer
                colors.append(cmap(0.5 + 0.5 * max(-1.0, min(1.0, v / VMAX))) if done else (0.92, 0.92, 0.92, 1.0))
                self.node_text[k].set_text(f"{v:+.2f}" if done else "?")
                k += 1
        self.nodes.set_facecolor(colors)
        p = layers.softmax(self.values[-1][0])
        for t, pv in zip(self.prob_text, p.tolist()):
            t.set_text(f"p = {pv:.2f}" if layer == L else "")
        # edges: colour = sign of the weight, width = |weight|, the current layer's in full colour
        edge_colors, widths = [], []
        params = self.params_for(activation)
        for l, (j, i) in zip(self.edge_layer, self.edge_index):
            w = float(params[l - 1][0][j, i])
            rgb = (0.80, 0.15, 0.15) if w > 0 else (0.15, 0.30, 0.85)
            edge_colors.append((*rgb, 0.9 if l == layer else 0.12))
            widths.append(0.4 + 1.2 * min(abs(w), 3.0))
        self.edges.set_color(edge_colors)
        self.edges.set_linewidths(widths)
        tall = max(self.sizes)
        self.highlight.set_bounds(layer - 0.3, -tall / 2 - 0.1, 0.6, tall + 0.1)
        self.step_text.set_text(self.step_lines(layer, activation))
