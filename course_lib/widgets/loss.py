"""Explorers of chapter 02: what a loss and its gradient do as the prediction moves.

* :class:`CrossEntropyExplorer`: three logits and a true class; bars show the
  softmax probabilities, the cross-entropy loss and its gradient
  ``p - onehot(y)`` with respect to each logit.
* :class:`PredictionLossExplorer`: one predicted probability ``p`` and a
  target ``y``; curves of the squared error and the binary cross-entropy and of
  their derivatives, with markers at the current ``p``.

Both compute everything with :mod:`course_lib.losses`, so what you see is what
the library computes.
"""

from __future__ import annotations

from typing import Any, Dict, List

import torch

from course_lib import losses
from course_lib.layers import softmax
from course_lib.widgets.base import Explorer

BLUE, ORANGE, GREY = "#4c72b0", "#dd8452", "#8c8c8c"


class CrossEntropyExplorer(Explorer):
    """Drag three logits, pick the true class; see softmax, loss and gradient.

    State: ``z0``, ``z1``, ``z2`` (the logits of one sample) and ``target``
    (the true class, 0..2). After a render, ``self.probs``, ``self.loss`` and
    ``self.grad`` hold the numbers shown.
    """

    figsize = (9.0, 3.4)
    check_control = "z0"
    classes = 3
    zmax = 6.0

    def build(self, fig: Any) -> None:
        fig.subplots_adjust(left=0.06, right=0.99, bottom=0.12, top=0.80, wspace=0.32)
        axes = fig.subplots(1, 3)
        x = list(range(self.classes))
        titles = ("logits $z$", "softmax $p = \\mathrm{softmax}(z)$", "gradient $\\partial L / \\partial z = p - \\mathrm{onehot}(y)$")
        limits = ((-self.zmax, self.zmax), (0.0, 1.15), (-1.25, 1.25))
        self.bars: List[Any] = []
        self.labels: List[List[Any]] = []
        for ax, title, lim in zip(axes, titles, limits):
            ax.set_title(title, fontsize=10)
            ax.set_ylim(*lim)
            ax.set_xlim(-0.6, self.classes - 0.4)
            ax.set_xticks(x)
            ax.set_xticklabels([f"class {c}" for c in x])
            ax.axhline(0.0, color="black", lw=0.8)
            ax.grid(axis="y", alpha=0.3)
            bars = ax.bar(x, [0.0] * self.classes, width=0.6, color=BLUE)
            self.bars.append(list(bars))
            self.labels.append([ax.text(c, 0.0, "", ha="center", fontsize=9) for c in x])
        self.labels[0] = []  # the sliders already show the logits; fewer texts draw faster
        self.axes = axes
        self.loss_text = fig.text(0.5, 0.93, "", ha="center", fontsize=12)
        self.dynamic = [*(b for row in self.bars for b in row), *(t for row in self.labels for t in row), self.loss_text]

    def make_controls(self) -> Dict[str, Any]:
        import ipywidgets as widgets

        def slider(name: str, value: float) -> Any:
            return widgets.FloatSlider(value=value, min=-self.zmax, max=self.zmax, step=0.1, description=name, continuous_update=True, readout_format=".1f")

        return {
            "z0": slider("logit z0", 2.0),
            "z1": slider("logit z1", 1.0),
            "z2": slider("logit z2", 0.1),
            "target": widgets.Dropdown(options=[(f"class {c}", c) for c in range(self.classes)], value=0, description="true class y"),
        }

    def compute(self, z0: float, z1: float, z2: float, target: int) -> Dict[str, torch.Tensor]:
        """Logits (1, 3), probabilities (3,), loss () and gradient (3,) for one state."""
        z = torch.tensor([[z0, z1, z2]], dtype=torch.float64)
        y = torch.tensor([int(target)])
        return {
            "logits": z[0],
            "probs": softmax(z, dim=-1)[0],
            "loss": losses.cross_entropy(z, y),
            "grad": losses.cross_entropy_backward(z, y)[0],
        }

    def render(self, z0: float, z1: float, z2: float, target: int) -> None:
        out = self.compute(z0, z1, z2, target)
        self.probs, self.loss, self.grad = out["probs"], out["loss"], out["grad"]
        target = int(target)
        for panel, values in enumerate((out["logits"], out["probs"], out["grad"])):
            lo, hi = self.axes[panel].get_ylim()
            for c, bar in enumerate(self.bars[panel]):
                v = float(values[c])
                bar.set_height(v)
                bar.set_color(ORANGE if c == target else BLUE)
                if self.labels[panel]:
                    # the value just above a positive bar, just below a negative one
                    y = v + 0.012 * (hi - lo) if v >= 0 else v - 0.05 * (hi - lo)
                    self.labels[panel][c].set_position((c, y))
                    self.labels[panel][c].set_text(f"{v:.3f}")
        p_y = float(out["probs"][target])
        self.loss_text.set_text(f"y = {target}:  L = −log p_y = −log {p_y:.3f} = {float(self.loss):.3f}")


class PredictionLossExplorer(Explorer):
    """Drag a predicted probability ``p`` and a target ``y`` in [0, 1]; compare
    the squared error ``(p - y)^2`` with the binary cross-entropy and their slopes.

    State: ``prediction`` and ``target``. After a render, ``self.values`` holds
    ``{"mse": ..., "bce": ..., "dmse": ..., "dbce": ...}`` at the current ``p``.
    """

    figsize = (9.0, 3.4)
    check_control = "prediction"
    grad_limit = 10.0

    def build(self, fig: Any) -> None:
        fig.subplots_adjust(left=0.07, right=0.97, bottom=0.15, top=0.80, wspace=0.25)
        self.grid = torch.linspace(0.002, 0.998, 250, dtype=torch.float64)
        ax_loss, ax_grad = fig.subplots(1, 2)
        ax_loss.set_title("loss $L(p)$", fontsize=10)
        ax_loss.set_xlim(0, 1)
        ax_loss.set_ylim(0, 5)
        ax_grad.set_title("slope $\\partial L/\\partial p$ (clipped to $\\pm 10$)", fontsize=10)
        ax_grad.set_xlim(0, 1)
        ax_grad.set_ylim(-self.grad_limit, self.grad_limit)
        ax_grad.axhline(0.0, color="black", lw=0.8)
        for ax in (ax_loss, ax_grad):
            ax.set_xlabel("prediction $p$")
            ax.grid(alpha=0.3)
        empty = torch.zeros_like(self.grid)
        (self.mse_line,) = ax_loss.plot(self.grid, empty, color=BLUE, label="MSE $(p-y)^2$")
        (self.bce_line,) = ax_loss.plot(self.grid, empty, color=ORANGE, label="BCE $-y\\log p-(1-y)\\log(1-p)$")
        (self.dmse_line,) = ax_grad.plot(self.grid, empty, color=BLUE, label="$2(p-y)$")
        (self.dbce_line,) = ax_grad.plot(self.grid, empty, color=ORANGE, label="$(p-y)/(p(1-p))$")
        ax_loss.legend(loc="upper center", fontsize=8)
        ax_grad.legend(loc="upper left", fontsize=8)
        (self.mse_dot,) = ax_loss.plot([0.5], [0.0], "o", color=BLUE, ms=7)
        (self.bce_dot,) = ax_loss.plot([0.5], [0.0], "o", color=ORANGE, ms=7)
        (self.dmse_dot,) = ax_grad.plot([0.5], [0.0], "o", color=BLUE, ms=7)
        (self.dbce_dot,) = ax_grad.plot([0.5], [0.0], "o", color=ORANGE, ms=7)
        self.target_lines = [ax.axvline(1.0, color=GREY, ls="--", lw=1) for ax in (ax_loss, ax_grad)]
        self.text = fig.text(0.5, 0.92, "", ha="center", fontsize=11)
        self.dynamic = [
            self.mse_line, self.bce_line, self.dmse_line, self.dbce_line,
            self.mse_dot, self.bce_dot, self.dmse_dot, self.dbce_dot, *self.target_lines, self.text,
        ]

    def make_controls(self) -> Dict[str, Any]:
        import ipywidgets as widgets

        return {
            "prediction": widgets.FloatSlider(value=0.3, min=0.01, max=0.99, step=0.01, description="prediction p", readout_format=".2f"),
            "target": widgets.FloatSlider(value=1.0, min=0.0, max=1.0, step=0.05, description="target y", readout_format=".2f"),
        }

    @staticmethod
    def curves(p: torch.Tensor, y: float) -> Dict[str, torch.Tensor]:
        """Per-element losses and derivatives at predictions ``p`` (any shape) for target ``y``."""
        t = torch.full_like(p, float(y))
        return {
            "mse": losses.mse_loss(p, t, reduction="none"),
            "bce": losses.binary_cross_entropy(p, t, reduction="none"),
            "dmse": losses.mse_loss_backward(p, t, reduction="none"),
            "dbce": losses.binary_cross_entropy_backward(p, t, reduction="none"),
        }

    def render(self, prediction: float, target: float) -> None:
        lim = self.grad_limit * 1.5  # keep clipped curves off-screen, not at infinity
        if getattr(self, "_curves_for", None) != target:  # the curves depend on the target only
            c = self.curves(self.grid, target)
            self.mse_line.set_ydata(c["mse"])
            self.bce_line.set_ydata(c["bce"])
            self.dmse_line.set_ydata(c["dmse"].clamp(-lim, lim))
            self.dbce_line.set_ydata(c["dbce"].clamp(-lim, lim))
            for line in self.target_lines:
                line.set_xdata([target, target])
            self._curves_for = target
        here = self.curves(torch.tensor([float(prediction)], dtype=torch.float64), target)
        self.values = {k: float(v[0]) for k, v in here.items()}
        v = self.values
        self.mse_dot.set_data([prediction], [v["mse"]])
        self.bce_dot.set_data([prediction], [v["bce"]])
        self.dmse_dot.set_data([prediction], [max(-lim, min(lim, v["dmse"]))])
        self.dbce_dot.set_data([prediction], [max(-lim, min(lim, v["dbce"]))])
        self.text.set_text(f"MSE {v['mse']:.3f} (slope {v['dmse']:+.2f})    BCE {v['bce']:.3f} (slope {v['dbce']:+.2f})")
