"""Explorers of chapter 05: what a convolution computes, and what its sizes are.

* :class:`SlidingKernelExplorer`: a 3x3 kernel slides over an 8x8 digit; for the
  current position the nine products and their sum are spelled out, and the
  output map is filled up to that position.
* :class:`FilterExplorer`: classic 3x3 filters (edges, blur, sharpen, Laplacian,
  or your own nine weights) applied to a digit.
* :class:`ConvShapeExplorer`: input size, kernel size, stride, padding and
  dilation; the padded input grid, the dilated kernel footprint at its first
  two positions, and the output size from the formula (or why there is none).

All numbers come from :mod:`course_lib.conv`, so what you see is what the library computes.
"""

from __future__ import annotations

import functools
from typing import Any, Dict, List

import torch

from course_lib import conv
from course_lib.widgets.base import Explorer

DT = torch.float64
ORANGE, BLUE = "#dd8452", "#4c72b0"

#: the preset 3x3 filters of :class:`FilterExplorer` (applied as cross-correlation, like F.conv2d)
FILTERS: Dict[str, List[List[float]]] = {
    "identity": [[0, 0, 0], [0, 1, 0], [0, 0, 0]],
    "edge x (Sobel, d/dx)": [[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]],
    "edge y (Sobel, d/dy)": [[-1, -2, -1], [0, 0, 0], [1, 2, 1]],
    "blur (box 3x3)": [[1 / 9] * 3] * 3,
    "sharpen": [[0, -1, 0], [-1, 5, -1], [0, -1, 0]],
    "Laplacian": [[0, 1, 0], [1, -4, 1], [0, 1, 0]],
}
OWN = "your own (sliders)"


@functools.lru_cache(maxsize=4)
def digit_images(seed: int = 0) -> torch.Tensor:
    """One test image of each class 0..9 from the bundled digits (the first of each class in
    the split made with ``seed``): (10, 8, 8) float64 in [0, 1]. Cached: do not modify it."""
    from course_lib import data

    split = data.digits(seed=seed, dtype=DT)
    first = [int(torch.nonzero(split.y_test == c)[0]) for c in range(10)]
    return data.to_images(split.X_test[first])


def _kernel(name: str) -> torch.Tensor:
    return torch.tensor(FILTERS[name], dtype=DT)


def _no_ticks(ax: Any) -> None:
    ax.set_xticks([])
    ax.set_yticks([])


class SlidingKernelExplorer(Explorer):
    """A 3x3 kernel at output position ``position`` (row-major over the 6x6 output of an 8x8
    digit, no padding, stride 1). State: ``position``, ``kernel`` (a name of :data:`FILTERS`),
    ``digit`` (0..9). After a render ``self.products`` (3, 3) and ``self.value`` hold the
    numbers shown and ``self.output`` the full output map (6, 6).
    """

    figsize = (10.0, 3.4)
    check_control = "position"
    size, k = 8, 3

    def build(self, fig: Any) -> None:
        import numpy as np
        from matplotlib import colormaps
        from matplotlib.patches import Rectangle

        fig.subplots_adjust(left=0.02, right=0.98, bottom=0.04, top=0.84, wspace=0.12)
        ax_in, ax_ker, ax_prod, ax_out = fig.subplots(1, 4)
        out = self.size - self.k + 1
        self.axes = (ax_in, ax_ker, ax_prod, ax_out)
        for ax in self.axes:
            _no_ticks(ax)
        ax_in.set_title("input X (8×8 digit)", fontsize=10)
        ax_ker.set_title("kernel W (3×3)", fontsize=10)
        ax_prod.set_title("products X[i+u, j+v]·W[u, v]", fontsize=10)
        ax_out.set_title("output Y (6×6), filled so far", fontsize=10)
        self.in_image = ax_in.imshow(torch.zeros(self.size, self.size).numpy(), cmap="gray_r", vmin=0, vmax=1)
        self.window = Rectangle((-0.5, -0.5), self.k, self.k, fill=False, lw=2.5, ec=ORANGE)
        ax_in.add_patch(self.window)
        self.ker_image = ax_ker.imshow(torch.zeros(3, 3).numpy(), cmap="coolwarm", vmin=-2, vmax=2)
        self.ker_texts = [[ax_ker.text(v, u, "", ha="center", va="center", fontsize=10) for v in range(3)] for u in range(3)]
        ax_prod.set_xlim(-0.5, 2.5)
        ax_prod.set_ylim(2.9, -0.5)
        ax_prod.hlines([-0.5, 0.5, 1.5, 2.5], -0.5, 2.5, color="0.8", lw=0.8)  # the 3x3 grid of the products
        ax_prod.vlines([-0.5, 0.5, 1.5, 2.5], -0.5, 2.5, color="0.8", lw=0.8)
        self.prod_texts = [[ax_prod.text(v, u, "", ha="center", va="center", fontsize=8.5, family="monospace")
                            for v in range(3)] for u in range(3)]
        self.sum_text = ax_prod.text(1.0, 2.72, "", ha="center", va="center", fontsize=10, color=ORANGE)
        cmap = colormaps["coolwarm"].with_extremes(bad="white")  # positions not reached yet are masked
        self.out_image = ax_out.imshow(np.ma.masked_all((out, out)), cmap=cmap, vmin=-1, vmax=1)
        ax_out.set_xlim(-0.5, out - 0.5)
        ax_out.set_ylim(out - 0.5, -0.5)
        self.out_box = Rectangle((-0.5, -0.5), 1, 1, fill=False, lw=2.5, ec=ORANGE)
        ax_out.add_patch(self.out_box)
        fig.text(0.5, 0.94, "Y[i, j] = Σ_u Σ_v W[u, v] · X[i+u, j+v]   (cross-correlation, no padding, stride 1)",
                 ha="center", fontsize=11)
        self.dynamic = [self.in_image, self.window, self.ker_image, *(t for row in self.ker_texts for t in row),
                        *(t for row in self.prod_texts for t in row), self.sum_text, self.out_image, self.out_box]

    def make_controls(self) -> Dict[str, Any]:
        import ipywidgets as widgets

        out = self.size - self.k + 1
        return {
            "position": widgets.IntSlider(value=0, min=0, max=out * out - 1, description="position", continuous_update=True),
            "kernel": widgets.Dropdown(options=list(FILTERS), value="edge x (Sobel, d/dx)", description="kernel"),
            "digit": widgets.IntSlider(value=3, min=0, max=9, description="digit"),
        }

    def render(self, position: int, kernel: str, digit: int) -> None:
        import numpy as np

        image, w = digit_images()[digit], _kernel(kernel)
        if getattr(self, "_shown", None) != (kernel, digit):  # a new input or kernel: recompute the output
            self._shown = (kernel, digit)
            self.in_image.set_data(image.numpy())
            self.ker_image.set_data(w.numpy())
            for u in range(3):
                for v in range(3):
                    self.ker_texts[u][v].set_text(f"{float(w[u, v]):.2g}")
            self.output = conv.conv2d(image[None, None], w[None, None])[0, 0]  # (6, 6)
            self._limit = max(float(self.output.abs().max()), 1e-9)
        out = self.output.shape[0]
        i, j = divmod(int(position), out)
        patch = image[i:i + 3, j:j + 3]
        self.products = patch * w
        self.value = float(self.products.sum())
        self.window.set_xy((j - 0.5, i - 0.5))
        for u in range(3):
            for v in range(3):
                self.prod_texts[u][v].set_text(f"{float(patch[u, v]):.2f}·{float(w[u, v]):.2g}\n{float(self.products[u, v]):+.2f}")
        self.sum_text.set_text(f"sum = Y[{i}, {j}] = {self.value:+.3f}")  # (i, j) = divmod(position, 6)
        shown = np.ma.masked_all((out, out))
        flat = self.output.reshape(-1).numpy()
        shown.reshape(-1)[: position + 1] = flat[: position + 1]
        self.out_image.set_data(shown)
        self.out_image.set_clim(-self._limit, self._limit)
        self.out_box.set_xy((j - 0.5, i - 0.5))


class FilterExplorer(Explorer):
    """A 3x3 filter applied to a digit (``conv.conv2d`` with padding 1, so the output is 8x8).

    State: ``filter`` (a name of :data:`FILTERS` or ``"your own (sliders)"``), ``digit`` (0..9)
    and nine weights ``w00`` .. ``w22``. Choosing a preset copies its weights to the sliders;
    moving a slider switches to "your own". After a render ``self.kernel`` (3, 3) and
    ``self.output`` (8, 8) hold what is shown.
    """

    figsize = (9.0, 3.3)
    check_control = "filter"
    _syncing = False

    def build(self, fig: Any) -> None:
        fig.subplots_adjust(left=0.02, right=0.98, bottom=0.04, top=0.84, wspace=0.15)
        ax_in, ax_ker, ax_out = fig.subplots(1, 3)
        for ax in (ax_in, ax_ker, ax_out):
            _no_ticks(ax)
        ax_in.set_title("digit X", fontsize=10)
        ax_ker.set_title("kernel W", fontsize=10)
        ax_out.set_title("Y = conv2d(X, W, padding=1)", fontsize=10)
        self.in_image = ax_in.imshow(torch.zeros(8, 8).numpy(), cmap="gray_r", vmin=0, vmax=1)
        self.ker_image = ax_ker.imshow(torch.zeros(3, 3).numpy(), cmap="coolwarm", vmin=-5, vmax=5)
        self.ker_texts = [ax_ker.text(v, u, "", ha="center", va="center", fontsize=11) for u in range(3) for v in range(3)]
        self.out_image = ax_out.imshow(torch.zeros(8, 8).numpy(), cmap="coolwarm", vmin=-1, vmax=1)
        self.headline = fig.text(0.5, 0.94, "", ha="center", fontsize=11)
        self.dynamic = [self.in_image, self.ker_image, *self.ker_texts, self.out_image, self.headline]

    def make_controls(self) -> Dict[str, Any]:
        import ipywidgets as widgets

        controls: Dict[str, Any] = {
            "filter": widgets.Dropdown(options=[*FILTERS, OWN], value="edge x (Sobel, d/dx)", description="filter"),
            "digit": widgets.IntSlider(value=3, min=0, max=9, description="digit"),
        }
        start = _kernel("edge x (Sobel, d/dx)")
        for u in range(3):
            for v in range(3):
                controls[f"w{u}{v}"] = widgets.FloatSlider(
                    value=float(start[u, v]), min=-5.0, max=5.0, step=0.25, description=f"W[{u},{v}]",
                    readout_format=".2f", continuous_update=True, layout=widgets.Layout(width="250px"))
        return controls

    def layout_controls(self) -> List[Any]:
        import ipywidgets as widgets

        rows = [widgets.HBox([self.controls[f"w{u}{v}"] for v in range(3)]) for u in range(3)]
        return [widgets.HBox([self.controls["filter"], self.controls["digit"]]), *rows]

    def _on_change(self, change: Dict[str, Any]) -> None:
        """Keep dropdown and sliders consistent, then render once."""
        if self._syncing:
            return
        self._syncing = True
        try:
            sliders = {name: c for name, c in self.controls.items() if name.startswith("w")}
            if change["owner"] is self.controls["filter"] and change["new"] in FILTERS:
                w = _kernel(change["new"])
                for name, slider in sliders.items():
                    slider.value = float(w[int(name[1]), int(name[2])])
            elif change["owner"] in sliders.values() and self.controls["filter"].value != OWN:
                self.controls["filter"].value = OWN
        finally:
            self._syncing = False
        self.update()

    def kernel_for(self, state: Dict[str, Any]) -> torch.Tensor:
        """The (3, 3) kernel of a state: the preset, or the sliders for "your own"."""
        if state["filter"] in FILTERS:
            return _kernel(state["filter"])
        return torch.tensor([[state[f"w{u}{v}"] for v in range(3)] for u in range(3)], dtype=DT)

    def render(self, **state: Any) -> None:
        image = digit_images()[state["digit"]]
        self.kernel = self.kernel_for(state)
        self.output = conv.conv2d(image[None, None], self.kernel[None, None], padding=1)[0, 0]
        self.in_image.set_data(image.numpy())
        self.ker_image.set_data(self.kernel.numpy())
        for t, value in zip(self.ker_texts, self.kernel.reshape(-1).tolist()):
            t.set_text(f"{value:.2g}")
        limit = max(float(self.output.abs().max()), 1e-9)
        self.out_image.set_data(self.output.numpy())
        self.out_image.set_clim(-limit, limit)
        self.headline.set_text(f"{state['filter']}: output from {float(self.output.min()):+.2f} (blue) "
                               f"to {float(self.output.max()):+.2f} (red)")


class ConvShapeExplorer(Explorer):
    """Sizes of a convolution along one axis (drawn square): ``size``, ``kernel``, ``stride``,
    ``padding``, ``dilation``. Shows the padded input with the dilated kernel's first two
    positions and the output grid, at the same scale; ``self.out_size`` is the output size
    (``None`` when the combination is invalid; ``self.error`` then holds the message shown).
    """

    figsize = (9.0, 4.2)
    check_control = "kernel"
    max_size, max_kernel, max_stride, max_padding, max_dilation = 12, 5, 4, 3, 3
    #: RGB colours of the cells
    colors = {"outside": (0.97, 0.97, 0.97), "padding": (0.80, 0.80, 0.80), "input": (0.97, 0.92, 0.80),
              "first": (0.87, 0.52, 0.32), "second": (0.30, 0.45, 0.69), "both": (0.55, 0.35, 0.55),
              "output": (0.79, 0.85, 0.94)}

    def build(self, fig: Any) -> None:
        import numpy as np
        from matplotlib.collections import LineCollection

        fig.subplots_adjust(left=0.02, right=0.98, bottom=0.03, top=0.78, wspace=0.08)
        self.ax_in, self.ax_out = fig.subplots(1, 2)
        # both axes show the unit square; the cells of the current grid are scaled into it, so the
        # static background (axes, titles) never changes and every frame is a cheap blit
        self.images, self.borders = [], []
        for ax in (self.ax_in, self.ax_out):
            _no_ticks(ax)
            for side in ax.spines.values():
                side.set_visible(False)
            ax.set_xlim(0, 1)
            ax.set_ylim(1, 0)
            ax.set_aspect("equal")
            self.images.append(ax.imshow(np.ones((1, 1, 3)), interpolation="nearest", extent=(0, 1, 1, 0)))
            self.borders.append(ax.add_collection(LineCollection([], colors="white", linewidths=1.0)))
        self.in_image, self.out_image = self.images
        self.ax_in.set_title("padded input (grey = padding); orange, blue: windows 1, 2", fontsize=10)
        self.ax_out.set_title("output (same scale)", fontsize=10)
        self.formula = fig.text(0.5, 0.92, "", ha="center", fontsize=11)
        self.message = fig.text(0.5, 0.85, "", ha="center", fontsize=9.5)
        self.dynamic = [*self.images, *self.borders, self.formula, self.message]  # borders over the cells

    def make_controls(self) -> Dict[str, Any]:
        import ipywidgets as widgets

        def slider(label: str, value: int, lo: int, hi: int) -> Any:
            return widgets.IntSlider(value=value, min=lo, max=hi, description=label, continuous_update=True)

        return {
            "size": slider("input size", 7, 1, self.max_size),
            "kernel": slider("kernel", 3, 1, self.max_kernel),
            "stride": slider("stride", 2, 1, self.max_stride),
            "padding": slider("padding", 1, 0, self.max_padding),
            "dilation": slider("dilation", 1, 1, self.max_dilation),
        }

    def render(self, size: int, kernel: int, stride: int, padding: int, dilation: int) -> None:
        import numpy as np

        padded = size + 2 * padding
        span = dilation * (kernel - 1) + 1
        view = max(padded, span)  # cells shown: the padded input, or the kernel when it does not fit
        ticks = np.arange(view + 1) / view
        lines = [[(t, 0.0), (t, 1.0)] for t in ticks] + [[(0.0, t), (1.0, t)] for t in ticks]
        for border in self.borders:
            border.set_segments(lines)
        c = {k: np.array(v) for k, v in self.colors.items()}
        cells = np.empty((view, view, 3))
        cells[:] = c["outside"]
        cells[:padded, :padded] = c["padding"]
        cells[padding:padding + size, padding:padding + size] = c["input"]
        out = np.empty((view, view, 3))
        out[:] = c["outside"]
        try:
            self.out_size: Any = conv.conv_output_size(size, kernel, stride, padding, dilation)
            self.error = ""
        except ValueError:
            self.out_size = None
            self.error = (f"the kernel spans d(k−1)+1 = {span} cells, more than the padded input "
                          f"H+2p = {padded}: no window fits")
        formula = (f"H_out = ⌊(H + 2p − d(k−1) − 1) / s⌋ + 1 = ⌊({size} + 2·{padding} − {dilation}·{kernel - 1} − 1)"
                   f" / {stride}⌋ + 1")
        taps = np.arange(kernel) * dilation  # the rows/columns the kernel reads, relative to its corner
        first = np.zeros((view, view), dtype=bool)
        first[np.ix_(taps, taps)] = True
        if self.out_size is None:
            cells[first] = c["first"]
            self.formula.set_text(formula + " < 1")
            self.message.set_text("invalid: " + self.error)
            self.message.set_color("#c44e52")
        else:
            n = self.out_size
            second = np.zeros_like(first)
            if n > 1:
                second[np.ix_(taps, taps + stride)] = True
            cells[first] = c["first"]
            cells[second] = c["second"]
            cells[first & second] = c["both"]
            out[:n, :n] = c["output"]
            out[0, 0] = c["first"]
            if n > 1:
                out[0, 1] = c["second"]
            self.formula.set_text(f"{formula} = {n}")
            self.message.set_text(f"kernel span d(k−1)+1 = {span};  output {n}×{n} from a {size}×{size} input"
                                  + ("" if n > 1 else " (only one window fits)"))
            self.message.set_color("black")
        self.in_image.set_data(cells)
        self.out_image.set_data(out)
