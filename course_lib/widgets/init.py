"""Explorers of chapter 08: initialisation through depth, and batch norm's running statistics.

:class:`InitExplorer` runs :func:`course_lib.init.depth_statistics` for a bias-free MLP of the
chosen depth, width, initialisation scheme and activation, and shows

* left: the histogram of every layer's activations as one row of a heat map (layer 1 at the
  top), so a signal that collapses to 0 or saturates at +-1 is visible at a glance;
* middle: the standard deviation of the activations per layer (log scale);
* right: the norm of the weight gradient dL/dW per layer (log scale).

Results are cached per setting, so returning to a setting costs only the drawing.

:class:`BatchNormExplorer` shows batch norm's running mean and variance converging (or not) to a
channel's true statistics, for a chosen batch size and momentum, with the unbiased or the biased
variance fed to the running estimate.
"""

from __future__ import annotations

from typing import Any, Dict, List, Tuple

import numpy as np

from course_lib import init
from course_lib.widgets.base import Explorer

MAX_DEPTH = 20
BINS = 40
#: label shown in the dropdown -> (scheme, whose gain: None = the activation's own)
SCHEME_CHOICES: Dict[str, Tuple[str, Any]] = {
    "naive N(0, 0.01²)": ("naive", None),
    "Xavier, gain 1 (Glorot & Bengio)": ("xavier", "linear"),
    "Xavier with torch's gain": ("xavier", None),
    "Kaiming / He": ("kaiming", None),
    "PyTorch nn.Linear default": ("pytorch", None),
}
RANGES = {"tanh": (-1.0, 1.0), "relu": (0.0, 3.0)}
STD_LIM = (1e-18, 1e2)
GRAD_LIM = (1e-22, 1e4)


def layer_histograms(activations: List[Any], nonlinearity: str, bins: int = BINS) -> np.ndarray:
    """One normalised histogram per layer: array (layers, bins), each row's maximum 1.

    tanh: over [-1, 1]; relu: the *positive* activations over [0, 3] (the exact zeros, about
    half of them, would swamp the picture). Values beyond the range count in the end bins.
    """
    lo, hi = RANGES[nonlinearity]
    rows = []
    for h in activations:
        v = h.detach().flatten().double()
        if nonlinearity == "relu":
            v = v[v > 0]
        v = v.clamp(lo, hi)
        counts = np.histogram(v.numpy(), bins=bins, range=(lo, hi))[0].astype(float)
        rows.append(counts / counts.max() if counts.max() > 0 else counts)
    return np.array(rows)


class InitExplorer(Explorer):
    """Depth, width, initialisation scheme and activation of a deep MLP: per-layer activation
    histograms, activation standard deviations and weight-gradient norms (see the module doc)."""

    figsize = (10.4, 3.6)
    check_control = "depth"

    def __init__(self, batch: int = 128, seed: int = 0) -> None:
        self.batch, self.seed = batch, seed
        self._cache: Dict[Tuple[Any, ...], Dict[str, Any]] = {}
        #: the statistics shown last (activation_std, gradient_norm, ...)
        self.current: Dict[str, Any] = {}
        super().__init__()

    def compute(self, depth: int, width: int, scheme: str, activation: str) -> Dict[str, Any]:
        """Statistics for one setting (cached): depth_statistics plus the histogram rows."""
        key = (depth, width, scheme, activation)
        if key not in self._cache:
            name, gain_of = SCHEME_CHOICES[scheme]
            stats = init.depth_statistics(depth, width, name, activation, batch=self.batch, seed=self.seed,
                                          gain_nonlinearity=gain_of)
            self._cache[key] = {
                "activation_std": stats["activation_std"],
                "gradient_norm": stats["gradient_norm"],
                "hist": layer_histograms(stats["activations"], activation),
            }
        return self._cache[key]

    def build(self, fig: Any) -> None:
        fig.subplots_adjust(left=0.06, right=0.99, bottom=0.15, top=0.9, wspace=0.3)
        self.ax_hist = fig.add_subplot(1, 3, 1)
        self.ax_std = fig.add_subplot(1, 3, 2)
        self.ax_grad = fig.add_subplot(1, 3, 3)
        blank = np.full((MAX_DEPTH, BINS), np.nan)
        self.heat = self.ax_hist.imshow(blank, aspect="auto", cmap="viridis", vmin=0, vmax=1,
                                        extent=(-1, 1, MAX_DEPTH + 0.5, 0.5), interpolation="nearest")
        self.ax_hist.set_ylabel("layer", labelpad=0)
        self.ax_hist.set_yticks([1, 5, 10, 15, 20])
        self.ax_hist.set_title("activation histogram per layer", fontsize=10)
        layers = np.arange(1, MAX_DEPTH + 1)
        for ax, lim, title in ((self.ax_std, STD_LIM, "std of activations $h_l$"),
                               (self.ax_grad, GRAD_LIM, r"$\|\partial L/\partial W_l\|_F$")):
            ax.set_yscale("log")
            ax.set_ylim(*lim)
            ax.set_xlim(0.5, MAX_DEPTH + 0.5)
            ax.set_xticks(layers[::2] + 1)
            ax.set_xlabel("layer $l$")
            ax.set_title(title, fontsize=10)
            ax.grid(True, which="major", alpha=0.3)
        (self.std_line,) = self.ax_std.plot([], [], "o-", color="tab:blue", ms=3)
        (self.grad_line,) = self.ax_grad.plot([], [], "o-", color="tab:red", ms=3)
        self.dynamic = [self.heat, self.std_line, self.grad_line]

    def make_controls(self) -> Dict[str, Any]:
        import ipywidgets as widgets

        style = {"description_width": "80px"}
        return {
            "depth": widgets.IntSlider(value=10, min=1, max=MAX_DEPTH, description="depth", style=style),
            "width": widgets.Dropdown(options=[16, 64, 128], value=64, description="width", style=style),
            "scheme": widgets.Dropdown(options=list(SCHEME_CHOICES), value="Kaiming / He", description="init", style=style),
            "activation": widgets.ToggleButtons(options=["tanh", "relu"], value="tanh", description="activation", style=style),
        }

    def layout_controls(self) -> List[Any]:
        import ipywidgets as widgets

        c = self.controls
        return [widgets.HBox([c["depth"], c["width"]]), widgets.HBox([c["scheme"], c["activation"]])]

    def render(self, depth: int, width: int, scheme: str, activation: str) -> None:
        stats = self.compute(depth, width, scheme, activation)
        self.current = stats
        if self.use_background(activation):
            lo, hi = RANGES[activation]
            self.heat.set_extent((lo, hi, MAX_DEPTH + 0.5, 0.5))
            self.ax_hist.set_xlabel("tanh activation" if activation == "tanh" else "positive ReLU activation")
        rows = np.full((MAX_DEPTH, BINS), np.nan)
        rows[:depth] = stats["hist"]
        self.heat.set_data(rows)
        layers = np.arange(1, depth + 1)
        std = np.clip(stats["activation_std"], *STD_LIM)
        grad = np.clip(stats["gradient_norm"], *GRAD_LIM)
        self.std_line.set_data(layers, std)
        self.grad_line.set_data(layers, grad)


# --- batch norm's running statistics --------------------------------------------------------
MAX_STEPS = 200
MAX_BATCH = 128
POP_MEAN, POP_STD = 3.0, 2.0


class BatchNormExplorer(Explorer):
    """Batch norm's running statistics for one channel whose values come from N(3, 2^2).

    Controls: the batch size ``m``, the ``momentum`` and the number of training ``steps``, and
    whether the running variance is fed the ``unbiased`` batch variance (as PyTorch does) or the
    biased one. Left: each batch's mean (dots) and the running mean (line) against the true mean;
    right: the same for the variance. The stream of batches is drawn once, at construction.
    """

    figsize = (9.6, 3.4)
    check_control = "momentum"

    def __init__(self, seed: int = 0) -> None:
        import torch

        gen = torch.Generator().manual_seed(seed)
        self.stream = torch.randn(MAX_STEPS, MAX_BATCH, generator=gen, dtype=torch.float64) * POP_STD + POP_MEAN
        #: the running (mean, variance) after the last step shown
        self.final: Tuple[float, float] = (0.0, 1.0)
        super().__init__()

    def trace(self, batch: int, momentum: float, steps: int, unbiased: bool) -> Dict[str, np.ndarray]:
        """Batch means and (biased) variances of the first ``steps`` batches of size ``batch``, and
        the running estimates after each step: the update of :func:`course_lib.norm.batch_norm`
        (``tests/test_norm.py`` checks it step by step), with the biased variance when
        ``unbiased`` is False."""
        x = self.stream[:steps, :batch].numpy()
        means, variances = x.mean(axis=1), x.var(axis=1)
        fed = variances * batch / (batch - 1) if unbiased else variances
        run_m, run_v = np.empty(steps), np.empty(steps)
        rm, rv = 0.0, 1.0  # PyTorch's initial running statistics
        for k in range(steps):
            rm = (1 - momentum) * rm + momentum * means[k]
            rv = (1 - momentum) * rv + momentum * fed[k]
            run_m[k], run_v[k] = rm, rv
        return {"mean": means, "var": variances, "run_mean": run_m, "run_var": run_v}

    def build(self, fig: Any) -> None:
        fig.subplots_adjust(left=0.07, right=0.98, bottom=0.15, top=0.88, wspace=0.25)
        self.ax_m = fig.add_subplot(1, 2, 1)
        self.ax_v = fig.add_subplot(1, 2, 2)
        for ax, true, lim, title in ((self.ax_m, POP_MEAN, (-0.5, 6.5), "mean: batch (dots), running (line)"),
                                     (self.ax_v, POP_STD**2, (0.0, 14.0), "variance: batch, biased (dots), running (line)")):
            ax.axhline(true, color="black", lw=0.8, ls="--")
            ax.set_xlim(0, MAX_STEPS + 1)
            ax.set_ylim(*lim)
            ax.set_xlabel("training step")
            ax.set_title(title, fontsize=10)
            ax.grid(True, alpha=0.3)
        (self.dots_m,) = self.ax_m.plot([], [], ".", color="tab:blue", ms=3, alpha=0.5)
        (self.line_m,) = self.ax_m.plot([], [], "-", color="tab:blue", lw=1.8)
        (self.dots_v,) = self.ax_v.plot([], [], ".", color="tab:red", ms=3, alpha=0.5)
        (self.line_v,) = self.ax_v.plot([], [], "-", color="tab:red", lw=1.8)
        self.dynamic = [self.dots_m, self.line_m, self.dots_v, self.line_v]

    def make_controls(self) -> Dict[str, Any]:
        import ipywidgets as widgets

        style = {"description_width": "80px"}
        return {
            "batch": widgets.IntSlider(value=4, min=2, max=MAX_BATCH, description="batch m", style=style),
            "momentum": widgets.FloatSlider(value=0.1, min=0.01, max=1.0, step=0.01, description="momentum", style=style),
            "steps": widgets.IntSlider(value=100, min=1, max=MAX_STEPS, description="steps", style=style),
            "unbiased": widgets.Checkbox(value=True, description="unbiased variance in the running estimate", indent=False),
        }

    def layout_controls(self) -> List[Any]:
        import ipywidgets as widgets

        c = self.controls
        return [widgets.HBox([c["batch"], c["momentum"]]), widgets.HBox([c["steps"], c["unbiased"]])]

    def render(self, batch: int, momentum: float, steps: int, unbiased: bool) -> None:
        t = self.trace(batch, momentum, steps, unbiased)
        x = np.arange(1, steps + 1)
        self.dots_m.set_data(x, t["mean"])
        self.line_m.set_data(x, t["run_mean"])
        self.dots_v.set_data(x, t["var"])
        self.line_v.set_data(x, t["run_var"])
        self.final = (float(t["run_mean"][-1]), float(t["run_var"][-1]))
