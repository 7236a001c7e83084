"""Chapter 00: what a matrix product computes, and what its shapes must be."""

from __future__ import annotations

from typing import Any, Dict

import torch

from course_lib.widgets.base import Explorer

MAX = 6


class MatmulExplorer(Explorer):
    """``Y = X W^T`` with X (N, D_in), W (D_out, D_in), Y (N, D_out).

    Sliders set N, D_in, D_out and pick one output element ``Y[i, j]``; the
    figure highlights row i of X and column j of W^T and spells out
    ``Y[i, j] = sum_k X[i, k] W[j, k]`` with numbers.
    """

    figsize = (9.0, 3.4)
    check_control = "j"

    def __init__(self, seed: int = 0) -> None:
        gen = torch.Generator().manual_seed(seed)
        self.X_full = torch.randint(-3, 4, (MAX, MAX), generator=gen).double()
        self.W_full = torch.randint(-3, 4, (MAX, MAX), generator=gen).double()
        super().__init__()

    def build(self, fig: Any) -> None:
        from matplotlib.patches import Rectangle

        grid = fig.add_gridspec(1, 3, left=0.03, right=0.97, top=0.80, bottom=0.22, wspace=0.35)
        self.axes = [fig.add_subplot(grid[0, k]) for k in range(3)]
        self.images, self.boxes, self.titles = [], [], []
        for ax in self.axes:
            ax.set_xticks([])
            ax.set_yticks([])
            self.images.append(ax.imshow(torch.zeros(MAX, MAX).numpy(), cmap="coolwarm", vmin=-9, vmax=9))
            box = Rectangle((0, 0), 1, 1, fill=False, lw=3, ec="black")
            ax.add_patch(box)
            self.boxes.append(box)
            self.titles.append(ax.set_title("", fontsize=11))
        self.images[2].set_clim(-20, 20)  # products of entries in [-3, 3] summed over up to 6 terms
        fig.text(0.345, 0.5, "@", ha="center", va="center", fontsize=20)
        fig.text(0.655, 0.5, "=", ha="center", va="center", fontsize=20)
        self.formula = fig.text(0.5, 0.06, "", ha="center", fontsize=11, family="monospace")

    def make_controls(self) -> Dict[str, Any]:
        import ipywidgets as widgets

        def slider(label: str, value: int, lo: int, hi: int) -> Any:
            return widgets.IntSlider(value=value, min=lo, max=hi, description=label, continuous_update=True)

        return {
            "N": slider("N", 3, 1, MAX),
            "D_in": slider("D_in", 4, 1, MAX),
            "D_out": slider("D_out", 2, 1, MAX),
            "i": slider("row i", 0, 0, MAX - 1),
            "j": slider("column j", 0, 0, MAX - 1),
        }

    def product(self, N: int, D_in: int, D_out: int) -> tuple:
        """The three matrices for the given sizes: X (N, D_in), W^T (D_in, D_out), Y (N, D_out)."""
        X = self.X_full[:N, :D_in]
        W = self.W_full[:D_out, :D_in]
        return X, W.T, X @ W.T

    def render(self, N: int, D_in: int, D_out: int, i: int, j: int) -> None:
        i, j = min(i, N - 1), min(j, D_out - 1)
        X, Wt, Y = self.product(N, D_in, D_out)
        names = [f"X  ({N}, {D_in})", f"W^T  ({D_in}, {D_out})", f"Y = X W^T  ({N}, {D_out})"]
        highlights = [(0, i, D_in, 1), (j, 0, 1, D_in), (j, i, 1, 1)]  # (x, y, width, height) in cells
        for ax, im, box, title, M, name, (x, y, w, h) in zip(
            self.axes, self.images, self.boxes, self.titles, (X, Wt, Y), names, highlights
        ):
            rows, cols = M.shape
            im.set_data(M.numpy())
            im.set_extent((-0.5, cols - 0.5, rows - 0.5, -0.5))
            ax.set_xlim(-0.5, MAX - 0.5)
            ax.set_ylim(MAX - 0.5, -0.5)
            box.set_xy((x - 0.5, y - 0.5))
            box.set_width(w)
            box.set_height(h)
            title.set_text(name)
        terms = " + ".join(f"({X[i, k]:+.0f})({Wt[k, j]:+.0f})" for k in range(D_in))
        self.formula.set_text(f"Y[{i},{j}] = sum_k X[{i},k] W[{j},k] = {terms} = {Y[i, j]:+.0f}")
