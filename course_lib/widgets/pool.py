"""Chapter 06: what pooling keeps, and where its gradient goes.

* :class:`PoolingExplorer`: a digit (or its vertical edges) with every pooling
  window drawn over it, the pooled map beside it, and for max pooling a dot on
  each window's maximum (bigger when it wins several windows).
* :class:`PoolGradientExplorer`: a small integer-valued input with ties; pick an
  output cell and see which input cell(s) its gradient reaches, or send a
  gradient of 1 from every output cell and see the sums where windows overlap.

Both compute with :mod:`course_lib.pool`, so what you see is what the library computes.
"""

from __future__ import annotations

from typing import Any, Dict, List, Tuple

import torch

from course_lib import pool
from course_lib.widgets.base import Explorer

BLUE, ORANGE, RED, PAD = "#4c72b0", "#dd8452", "#c44e52", "#d6e4f0"
SIZE = 8  # the digits are 8 x 8
MAX_PAD = 2


def _rect(x0: float, y0: float, w: float, h: float) -> List[Tuple[float, float]]:
    """The closed outline of a rectangle as 5 points (for a LineCollection)."""
    return [(x0, y0), (x0 + w, y0), (x0 + w, y0 + h), (x0, y0 + h), (x0, y0)]


def digit_maps(seed: int = 0) -> Dict[str, torch.Tensor]:
    """Feature maps (10, 8, 8), float64, one per digit class (the first test image of
    each class): ``"pixels"`` in [0, 1] and ``"edges"``, the ReLU of a vertical-edge
    (Sobel) filter applied with :func:`course_lib.conv.conv2d`, padding 1."""
    from course_lib.conv import conv2d
    from course_lib.widgets.conv import FILTERS, digit_images

    pixels = digit_images(seed)  # (10, 8, 8)
    sobel = torch.tensor(FILTERS["edge x (Sobel, d/dx)"], dtype=torch.float64)[None, None]  # (1, 1, 3, 3)
    edges = torch.relu(conv2d(pixels.unsqueeze(1), sobel, padding=1)).squeeze(1)  # (10, 8, 8)
    return {"pixels": pixels, "edges": edges}


class PoolingExplorer(Explorer):
    """Pool an 8x8 feature map with kernel ``k``, stride ``s`` and padding ``p``.

    State: ``source`` (``"pixels"`` or ``"edges"``), ``digit`` (0..9), ``kernel``,
    ``stride``, ``padding`` (clamped to ``kernel // 2``, PyTorch's rule) and
    ``mode`` (``"max"`` or ``"avg"``). After a render ``self.result`` holds the
    input map (8, 8), the pooled map (H_out, W_out), the indices (max only) and
    the padding used.
    """

    figsize = (9.6, 3.8)
    check_control = "kernel"

    def __init__(self, seed: int = 0) -> None:
        self.maps = digit_maps(seed)
        self.vmax = {name: float(m.max()) for name, m in self.maps.items()}
        super().__init__()

    def build(self, fig: Any) -> None:
        from matplotlib.collections import LineCollection
        from matplotlib.patches import Rectangle

        side = 0.72 * self.figsize[1] / self.figsize[0]  # square axes: 0.72 of the height, in figure width
        self.ax_in = fig.add_axes((0.02, 0.06, side, 0.72))
        self.ax_out = fig.add_axes((0.06 + side, 0.06, side, 0.72))
        lim = SIZE + MAX_PAD - 0.5
        for ax, title in ((self.ax_in, "input (padding shaded)"), (self.ax_out, "pooled output")):
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(title, fontsize=10)
        self.ax_in.set_xlim(-MAX_PAD - 0.5, lim)
        self.ax_in.set_ylim(lim, -MAX_PAD - 0.5)
        cmap = _gray_with_padding()
        self.img_in = self.ax_in.imshow(torch.zeros(SIZE, SIZE).numpy(), cmap=cmap, vmin=0, vmax=1, aspect="auto",
                                        interpolation="nearest")
        self.ax_in.add_patch(Rectangle((-0.5, -0.5), SIZE, SIZE, fill=False, ec="black", lw=1.0))
        self.img_out = self.ax_out.imshow(torch.zeros(1, 1).numpy(), cmap=cmap, vmin=0, vmax=1, aspect="auto",
                                          interpolation="nearest")
        self.boxes = LineCollection([], linewidths=1.3, alpha=0.9)
        self.ax_in.add_collection(self.boxes)
        self.dots = self.ax_in.scatter([], [], s=[], color=RED, edgecolors="white", linewidths=0.8, zorder=5)
        # text is the slowest thing to draw (~0.1 ms per character): the explanation, which depends on
        # the mode only, is static (one cached background per mode); only the numbers are redrawn
        self.info = fig.text(0.08 + 2 * side, 0.80, "", fontsize=9, family="monospace", va="top")
        self.legend = fig.text(0.08 + 2 * side, 0.36, "", fontsize=9, va="top", color="0.25")
        # the images are redrawn over the cached background: redraw the output frame on top of them
        self.dynamic = [self.img_in, self.boxes, self.dots, self.img_out, *self.ax_out.spines.values(), self.info]

    def make_controls(self) -> Dict[str, Any]:
        import ipywidgets as widgets

        def slider(label: str, value: int, lo: int, hi: int) -> Any:
            return widgets.IntSlider(value=value, min=lo, max=hi, description=label, continuous_update=True)

        return {
            "source": widgets.Dropdown(options=[("digit pixels", "pixels"), ("vertical edges (ReLU)", "edges")],
                                       value="pixels", description="feature map"),
            "digit": slider("digit", 3, 0, 9),
            "kernel": slider("kernel k", 2, 1, 4),
            "stride": slider("stride s", 2, 1, 4),
            "padding": slider("padding p", 0, 0, MAX_PAD),
            "mode": widgets.ToggleButtons(options=[("max", "max"), ("average", "avg")], value="max", description="pooling"),
        }

    def compute(self, source: str, digit: int, kernel: int, stride: int, padding: int, mode: str) -> Dict[str, Any]:
        """The input map (8, 8), its pooled map, the indices (max only) and the padding used."""
        x = self.maps[source][int(digit)]
        p = min(int(padding), int(kernel) // 2)
        if mode == "max":
            y, idx = pool.max_pool2d(x[None, None], kernel, stride, p, return_indices=True)
            return {"x": x, "y": y[0, 0], "indices": idx[0, 0], "padding": p}
        return {"x": x, "y": pool.avg_pool2d(x[None, None], kernel, stride, p)[0, 0], "indices": None, "padding": p}

    def render(self, source: str, digit: int, kernel: int, stride: int, padding: int, mode: str) -> None:
        r = self.result = self.compute(source, digit, kernel, stride, padding, mode)
        k, s, p = int(kernel), int(stride), r["padding"]
        Ho, Wo = r["y"].shape
        shown = torch.full((SIZE + 2 * p, SIZE + 2 * p), float("nan"), dtype=torch.float64)
        shown[p:p + SIZE, p:p + SIZE] = r["x"]
        self.img_in.set_data(shown.numpy())
        self.img_in.set_extent((-p - 0.5, SIZE + p - 0.5, SIZE + p - 0.5, -p - 0.5))
        self.img_out.set_data(r["y"].numpy())
        self.img_out.set_extent((-0.5, Wo - 0.5, Ho - 0.5, -0.5))
        self.ax_out.set_xlim(-0.5, Wo - 0.5)  # no ticks on these axes: the background does not change
        self.ax_out.set_ylim(Ho - 0.5, -0.5)
        for im in (self.img_in, self.img_out):
            im.set_clim(0, self.vmax[source])
        outlines, colours = [], []
        for i in range(Ho):
            for j in range(Wo):
                inset = 0.07 + 0.09 * ((i + j) % 2)  # shrink alternate windows so overlapping edges stay visible
                outlines.append(_rect(j * s - p - 0.5 + inset, i * s - p - 0.5 + inset, k - 2 * inset, k - 2 * inset))
                colours.append(BLUE if (i + j) % 2 == 0 else ORANGE)
        self.boxes.set_segments(outlines)
        self.boxes.set_color(colours)
        if r["indices"] is not None:
            flat, counts = torch.unique(r["indices"], return_counts=True)
            self.dots.set_offsets(torch.stack([flat % SIZE, flat // SIZE], dim=1).numpy())
            self.dots.set_sizes((22 * counts).tolist())
        else:
            self.dots.set_offsets(torch.zeros(0, 2).numpy())
        if self.use_background(mode):
            self.legend.set_text(
                "red dot: the maximum of a window,\nbigger when it wins several.\nPadding counts as -inf." if mode == "max"
                else "Each output is the mean of the\nk*k values of its window.\nPadding counts as 0.")
        lines = [f"k={k}, s={s}, p={p}", f"H_out = floor((8+2*{p}-{k})/{s})+1 = {Ho}",
                 f"keeps {Ho * Wo} of 64 values ({100 * Ho * Wo / 64:.0f}%)"]
        if p < int(padding):
            lines.append(f"(p={padding} > k//2: not allowed)")
        if mode == "max":
            lines.append(f"{len(flat)} distinct inputs win")
        self.info.set_text("\n".join(lines))


def _gray_with_padding() -> Any:
    """``gray_r`` with NaN (the padding) shown in a light blue."""
    import matplotlib

    return matplotlib.colormaps["gray_r"].with_extremes(bad=PAD)


class PoolGradientExplorer(Explorer):
    """Where does the gradient of a pooled output go? A 6x6 input of small integers
    (with ties), kernel ``k`` and stride ``s`` (no padding), max or average pooling.

    State: ``kernel``, ``stride``, ``mode``, ``cell`` (an output cell in row-major
    order, clamped to the output) and ``upstream``: ``"one"`` sends dL/dy = 1 from
    that cell only, ``"all"`` sends 1 from every output cell. After a render
    ``self.grad`` holds dL/dx (6, 6) and ``self.y`` the pooled output.
    """

    figsize = (9.6, 3.9)
    check_control = "kernel"  # always changes the picture; "cell" does not when the output is 1 x 1
    side = 6

    def __init__(self, seed: int = 3) -> None:
        gen = torch.Generator().manual_seed(seed)
        self.x = torch.randint(0, 7, (self.side, self.side), generator=gen).to(torch.float64)  # ties on purpose
        super().__init__()

    def build(self, fig: Any) -> None:
        from matplotlib.patches import Rectangle

        n = self.side
        width = 0.64 * self.figsize[1] / self.figsize[0]
        titles = ("input x (numbers: values)", "output y", "gradient dL/dx")
        self.axes = [fig.add_axes((0.02 + c * (width + 0.035), 0.05, width, 0.64)) for c in range(3)]
        for ax, title in zip(self.axes, titles):
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(title, fontsize=10)
        self.axes[0].imshow(self.x.numpy(), cmap="Greys", vmin=0, vmax=12, aspect="auto")
        for r in range(n):
            for c in range(n):
                self.axes[0].text(c, r, f"{int(self.x[r, c])}", ha="center", va="center", fontsize=10)
        self.img_y = self.axes[1].imshow(torch.zeros(1, 1).numpy(), cmap="Greys", vmin=0, vmax=12, aspect="auto")
        self.img_g = self.axes[2].imshow(torch.zeros(n, n).numpy(), cmap="Oranges", vmin=0, vmax=1, aspect="auto")
        self.axes[2].set_xlim(-0.5, n - 0.5)
        self.axes[2].set_ylim(n - 0.5, -0.5)
        self.window = Rectangle((0, 0), 1, 1, fill=False, ec=BLUE, lw=2.5)
        self.axes[0].add_patch(self.window)
        self.cell_box = Rectangle((0, 0), 1, 1, fill=False, ec=BLUE, lw=2.5)
        self.axes[1].add_patch(self.cell_box)
        (self.argmax,) = self.axes[0].plot([], [], "o", ms=18, mfc="none", mec=RED, mew=2)
        self.y_text = [self.axes[1].text(0, 0, "", ha="center", va="center", fontsize=10) for _ in range(n * n)]
        self.g_text = [self.axes[2].text(c, r, "", ha="center", va="center", fontsize=9) for r in range(n) for c in range(n)]
        self.head = fig.text(0.02, 0.95, "", fontsize=10, va="top")  # static: changes with (kernel, stride, mode)
        self.info = fig.text(0.02, 0.89, "", fontsize=10, va="top")
        # y and its numbers depend on (kernel, stride, mode) only: they go into a cached background
        # per setting (see render); the rest changes with every control
        self.dynamic = [self.window, self.argmax, self.cell_box, self.img_g, *self.g_text,
                        *self.axes[2].spines.values(), self.info]

    def make_controls(self) -> Dict[str, Any]:
        import ipywidgets as widgets

        def slider(label: str, value: int, lo: int, hi: int) -> Any:
            return widgets.IntSlider(value=value, min=lo, max=hi, description=label, continuous_update=True)

        return {
            "kernel": slider("kernel k", 2, 1, 4),
            "stride": slider("stride s", 1, 1, 4),
            "mode": widgets.ToggleButtons(options=[("max", "max"), ("average", "avg")], value="max", description="pooling"),
            "upstream": widgets.ToggleButtons(options=[("one output cell", "one"), ("every output cell", "all")],
                                              value="one", description="dL/dy = 1 at"),
            "cell": slider("output cell", 0, 0, self.side * self.side - 1),
        }

    def compute(self, kernel: int, stride: int, mode: str, upstream: str, cell: int) -> Dict[str, Any]:
        """Output y (H_out, W_out), the cell (i, j), upstream dL/dy and dL/dx (6, 6)."""
        x = self.x[None, None]
        if mode == "max":
            y = pool.max_pool2d(x, kernel, stride)
        else:
            y = pool.avg_pool2d(x, kernel, stride)
        Ho, Wo = y.shape[-2:]
        i, j = divmod(min(int(cell), Ho * Wo - 1), Wo)
        g = torch.ones_like(y)
        if upstream == "one":
            g.zero_()
            g[0, 0, i, j] = 1.0
        if mode == "max":
            grad = pool.max_pool2d_backward(g, x, kernel, stride)
        else:
            grad = pool.avg_pool2d_backward(g, x, kernel, stride)
        return {"y": y[0, 0], "cell": (i, j), "grad_out": g[0, 0], "grad": grad[0, 0]}

    def render(self, kernel: int, stride: int, mode: str, upstream: str, cell: int) -> None:
        out = self.compute(kernel, stride, mode, upstream, cell)
        self.y, self.grad = out["y"], out["grad"]
        k, s = int(kernel), int(stride)
        (i, j), (Ho, Wo) = out["cell"], self.y.shape
        self.window.set_bounds(j * s - 0.5, i * s - 0.5, k, k)
        self.cell_box.set_bounds(j - 0.5, i - 0.5, 1, 1)
        self.window.set_visible(upstream == "one")
        self.cell_box.set_visible(upstream == "one")
        if mode == "max" and upstream == "one":
            _, idx = pool.max_pool2d(self.x[None, None], k, s, return_indices=True)
            r, c = divmod(int(idx[0, 0, i, j]), self.side)
            self.argmax.set_data([c], [r])
        else:
            self.argmax.set_data([], [])
        if self.use_background((k, s, mode)):  # static for this setting: drawn once, then cached
            overlap = ("windows overlap (s < k)" if s < k else
                       "windows tile the input (s = k)" if s == k else "windows skip inputs (s > k)")
            self.head.set_text(f"k={k}, s={s}: output {Ho}x{Wo}, {overlap}.")
            self.img_y.set_data(self.y.numpy())
            self.img_y.set_extent((-0.5, Wo - 0.5, Ho - 0.5, -0.5))
            self.axes[1].set_xlim(-0.5, Wo - 0.5)
            self.axes[1].set_ylim(Ho - 0.5, -0.5)
            for n, t in enumerate(self.y_text):
                r, c = divmod(n, Wo)
                t.set_position((c, r))
                t.set_text(f"{float(self.y[r, c]):.3g}" if n < Ho * Wo else "")
        self.img_g.set_data(self.grad.numpy())
        self.img_g.set_clim(0, max(1.0, float(self.grad.max())))
        for t, v in zip(self.g_text, self.grad.reshape(-1).tolist()):
            t.set_text("" if v == 0 else (f"{v:.0f}" if v == int(v) else f"{v:.3f}".rstrip("0")))
        if upstream == "one" and mode == "max":
            text = (f"dL/dy[{i},{j}] = 1 goes to the first maximum of its window (red circle); "
                    f"all other inputs get 0.")
        elif upstream == "one":
            text = f"dL/dy[{i},{j}] = 1 is spread equally: each of the k*k = {k * k} inputs of its window gets 1/{k * k}."
        elif mode == "max":
            text = (f"dL/dy = 1 everywhere: an input gets the number of windows whose maximum it is "
                    f"(sum = {Ho * Wo} output cells).")
        else:
            text = f"dL/dy = 1 everywhere: an input gets (number of windows containing it) / {k * k}."
        if int(cell) >= Ho * Wo and upstream == "one":
            text += f" (No output cell {cell}: showing the last.)"
        self.info.set_text(text)
