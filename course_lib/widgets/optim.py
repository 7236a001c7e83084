"""Explorers of chapter 04: optimiser trajectories on 2-D loss surfaces, and a live training curve.

* :class:`OptimizerExplorer`: gradient descent, momentum, Nesterov and Adam on
  a Rosenbrock valley, a saddle and an ill-conditioned quadratic. Trajectories
  are recomputed with the functional steps of :mod:`course_lib.optim` (on NumPy
  arrays, for speed) and drawn over a contour plot made once per surface.
* :class:`LiveCurve`: the loss (and accuracy) curve that :func:`course_lib.train.fit`
  updates while it trains.
"""

from __future__ import annotations

import base64
import math
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from course_lib import optim
from course_lib.widgets.base import Explorer


# --- loss surfaces ----------------------------------------------------------------------
@dataclass(frozen=True)
class Surface:
    """A 2-D loss ``f(x, y)`` with its gradient, a start point and good default learning rates.

    ``f`` uses only arithmetic, so it works elementwise on floats, NumPy arrays and
    torch tensors alike (tests differentiate it with autograd).
    """

    name: str
    formula: str
    f: Callable[[Any, Any], Any]
    grad: Callable[[float, float], Tuple[float, float]]
    start: Tuple[float, float]
    minima: Tuple[Tuple[float, float], ...]
    f_min: float
    xlim: Tuple[float, float]
    ylim: Tuple[float, float]
    lr: float
    adam_lr: float
    log_levels: bool = False


SURFACES: Dict[str, Surface] = {
    s.name: s
    for s in (
        Surface(
            name="ill-conditioned quadratic",
            formula=r"$f = \frac{1}{2}(x^2 + 25y^2)$",
            f=lambda x, y: 0.5 * (x * x + 25 * y * y),
            grad=lambda x, y: (x, 25 * y),
            start=(-4.5, 1.6),
            minima=((0.0, 0.0),),
            f_min=0.0,
            xlim=(-5.0, 5.0),
            ylim=(-2.0, 2.0),
            lr=0.035,
            adam_lr=0.1,
        ),
        Surface(
            name="Rosenbrock",
            formula=r"$f = (1-x)^2 + 100(y-x^2)^2$",
            f=lambda x, y: (1 - x) ** 2 + 100 * (y - x * x) ** 2,
            grad=lambda x, y: (-2 * (1 - x) - 400 * x * (y - x * x), 200 * (y - x * x)),
            start=(-1.2, 1.0),
            minima=((1.0, 1.0),),
            f_min=0.0,
            xlim=(-2.0, 2.0),
            ylim=(-1.0, 3.0),
            lr=0.001,
            adam_lr=0.1,
            log_levels=True,
        ),
        Surface(
            name="saddle",
            formula=r"$f = x^2 + \frac{1}{4}y^4 - \frac{1}{2}y^2$",
            f=lambda x, y: x * x + 0.25 * y**4 - 0.5 * y * y,
            grad=lambda x, y: (2 * x, y**3 - y),
            start=(-1.8, 0.01),
            minima=((0.0, 1.0), (0.0, -1.0)),
            f_min=-0.25,
            xlim=(-2.0, 2.0),
            ylim=(-1.6, 1.6),
            lr=0.05,
            adam_lr=0.05,
        ),
    )
}

METHODS = ("GD", "momentum", "Nesterov", "Adam")
COLORS = {"GD": "tab:blue", "momentum": "tab:orange", "Nesterov": "tab:green", "Adam": "tab:red"}
MAX_STEPS = 300


def trajectory(surface: Surface, method: str, lr: float, beta: float, steps: int = MAX_STEPS) -> np.ndarray:
    """Points visited by ``method`` from ``surface.start``: array (steps + 1, 2).

    ``GD``: :func:`~course_lib.optim.sgd_step` without momentum; ``momentum`` and
    ``Nesterov``: with ``momentum=beta`` (Nesterov falls back to GD when beta = 0);
    ``Adam``: :func:`~course_lib.optim.adam_step` with ``beta1=beta``, ``beta2=0.999``.
    A run that leaves the plot far behind (|x| or |y| > 1e3) stops; the rest is NaN.
    """
    if method not in METHODS:
        raise ValueError(f"trajectory: method should be one of {METHODS}, got {method!r}")
    path = np.full((steps + 1, 2), np.nan)
    p = np.array(surface.start, dtype=np.float64)
    path[0] = p
    buf: Optional[np.ndarray] = None
    m = v = np.zeros(2)
    mu = 0.0 if method == "GD" else beta
    nesterov = method == "Nesterov" and mu > 0
    for t in range(1, steps + 1):
        x, y = p.tolist()
        g = np.array(surface.grad(x, y), dtype=np.float64)
        if method == "Adam":
            p, m, v = optim.adam_step(p, g, m, v, t, lr=lr, beta1=beta, beta2=0.999)
        else:
            p, buf = optim.sgd_step(p, g, buf, lr, momentum=mu, nesterov=nesterov)
        x, y = p.tolist()
        if not (abs(x) < 1e3 and abs(y) < 1e3):  # also catches NaN
            break
        path[t] = p
    return path


class OptimizerExplorer(Explorer):
    """GD, momentum, Nesterov and Adam on a 2-D surface: left the paths over the
    contours, right the gap ``f - f*`` to the minimum along the way (log scale).

    Controls: ``surface``, one checkbox per optimiser, ``lr`` (GD / momentum /
    Nesterov), ``adam_lr``, ``beta`` (momentum and Adam's beta1) and ``steps``.
    Choosing a surface resets both learning rates to values that suit it.
    """

    figsize = (9.6, 4.0)
    check_control = "beta"

    def __init__(self, surface: str = "Rosenbrock") -> None:
        self._initial_surface = surface
        self._cache: Dict[Tuple[Any, ...], np.ndarray] = {}
        self._contours: Dict[str, List[Any]] = {}  # surface name -> its contour artists
        self._busy = False
        #: f - f* where each shown run ends (NaN: diverged), updated by every render
        self.final_gap: Dict[str, float] = {}
        super().__init__()

    # --- pieces -------------------------------------------------------------------
    def build(self, fig: Any) -> None:
        fig.subplots_adjust(left=0.06, right=0.98, bottom=0.13, top=0.9, wspace=0.22)
        self.ax = fig.add_subplot(1, 2, 1)
        self.ax_loss = fig.add_subplot(1, 2, 2)
        self.paths: Dict[str, Any] = {}
        self.ends: Dict[str, Any] = {}
        self.curves: Dict[str, Any] = {}
        for name in METHODS:
            color = COLORS[name]
            (self.paths[name],) = self.ax.plot([], [], "-", color=color, lw=1.4, label=name)
            (self.ends[name],) = self.ax.plot([], [], "o", color=color, ms=5, mec="black", mew=0.6)
            (self.curves[name],) = self.ax_loss.plot([], [], "-", color=color, lw=1.4, label=name)
        (self.start_marker,) = self.ax.plot([], [], "s", color="black", ms=5)
        (self.min_marker,) = self.ax.plot([], [], "*", color="gold", ms=13, mec="black", mew=0.7)
        self.ax_loss.set_yscale("log")
        self.ax_loss.set_xlim(0, MAX_STEPS)
        self.ax_loss.set_ylim(1e-8, 1e4)
        self.ax_loss.set_xlabel("step $t$")
        self.ax_loss.set_title(r"$f(\theta_t) - f^*$", fontsize=10)
        self.ax_loss.grid(True, which="major", alpha=0.3)
        self.ax_loss.legend(loc="upper right", fontsize=8, ncol=2)
        self.ax.set_xlabel("$x$")
        self.ax.set_ylabel("$y$", labelpad=0)
        self.dynamic = [*self.paths.values(), *self.ends.values(), *self.curves.values()]

    def make_controls(self) -> Dict[str, Any]:
        import ipywidgets as widgets

        s = SURFACES[self._initial_surface]
        style = {"description_width": "70px"}
        return {
            "surface": widgets.Dropdown(options=list(SURFACES), value=s.name, description="surface", style=style),
            "steps": widgets.IntSlider(value=150, min=1, max=MAX_STEPS, description="steps", style=style),
            "GD": widgets.Checkbox(value=True, description="GD", indent=False),
            "momentum": widgets.Checkbox(value=True, description="momentum", indent=False),
            "Nesterov": widgets.Checkbox(value=True, description="Nesterov", indent=False),
            "Adam": widgets.Checkbox(value=True, description="Adam", indent=False),
            "lr": widgets.FloatLogSlider(value=s.lr, base=10, min=-4, max=0, step=0.05, description="lr (GD)", readout_format=".1e", style=style),
            "beta": widgets.FloatSlider(value=0.9, min=0.0, max=0.99, step=0.01, description="β / β₁", style=style),
            "adam_lr": widgets.FloatLogSlider(value=s.adam_lr, base=10, min=-3, max=0, step=0.05, description="lr (Adam)", readout_format=".1e", style=style),
        }

    def layout_controls(self) -> List[Any]:
        import ipywidgets as widgets

        c = self.controls
        return [
            widgets.HBox([c["surface"], c["steps"]]),
            widgets.HBox([c[name] for name in METHODS]),
            widgets.HBox([c["lr"], c["beta"], c["adam_lr"]]),
        ]

    def _on_change(self, change: Dict[str, Any]) -> None:
        if self._busy:  # a control set by this method: one render at the end is enough
            return
        self._busy = True
        try:
            if change.get("owner") is self.controls["surface"]:
                s = SURFACES[change["new"]]
                self.controls["lr"].value = s.lr
                self.controls["adam_lr"].value = s.adam_lr
            self.update()
        finally:
            self._busy = False

    def path(self, method: str, surface: str, lr: float, beta: float, adam_lr: float, steps: int = MAX_STEPS) -> np.ndarray:
        """The trajectory (steps + 1, 2) of one method for the given settings, cached
        (computed in blocks of 100 steps, so that dragging ``steps`` rarely recomputes)."""
        rate = adam_lr if method == "Adam" else lr
        key = (method, surface, rate, 0.0 if method == "GD" else beta)
        cached = self._cache.get(key)
        if cached is None or len(cached) <= steps:
            if len(self._cache) > 64:
                self._cache.clear()
            n = min(MAX_STEPS, 100 * math.ceil(steps / 100))
            cached = self._cache[key] = trajectory(SURFACES[surface], method, rate, beta, n)
        return cached[: steps + 1]

    def _show_surface(self, s: Surface) -> None:
        """Show the contours of ``s`` (made once per surface, then only made visible),
        its limits, title, start point and minima."""
        if s.name not in self._contours:
            xs = np.linspace(*s.xlim, 160)
            ys = np.linspace(*s.ylim, 160)
            gx, gy = np.meshgrid(xs, ys)
            z = s.f(gx, gy) - s.f_min
            if s.log_levels:
                levels = np.logspace(-1, math.log10(z.max()), 14)
            else:
                levels = np.quantile(z, np.linspace(0.02, 0.98, 14))
            filled = self.ax.contourf(gx, gy, z, levels=levels, cmap="Greys", alpha=0.45, extend="both")
            lines = self.ax.contour(gx, gy, z, levels=levels, colors="0.5", linewidths=0.5)
            self._contours[s.name] = [filled, lines]
        for name, artists in self._contours.items():
            for artist in artists:
                artist.set_visible(name == s.name)
        self.ax.set_xlim(*s.xlim)
        self.ax.set_ylim(*s.ylim)
        self.ax.set_title(f"{s.name}: {s.formula}", fontsize=10)
        self.start_marker.set_data([s.start[0]], [s.start[1]])
        self.min_marker.set_data([m[0] for m in s.minima], [m[1] for m in s.minima])

    def render(self, surface: str, steps: int, lr: float, beta: float, adam_lr: float, **shown: bool) -> None:
        s = SURFACES[surface]
        if self.use_background(surface):  # everything but the paths changes with the surface
            self._show_surface(s)
        self.final_gap = {}
        for name in METHODS:
            if not shown.get(name, False):
                for artist in (self.paths[name], self.ends[name], self.curves[name]):
                    artist.set_data([], [])
                continue
            pts = self.path(name, surface, lr, beta, adam_lr, steps)
            self.paths[name].set_data(pts[:, 0], pts[:, 1])
            last = pts[~np.isnan(pts[:, 0])][-1]
            self.ends[name].set_data([last[0]], [last[1]])
            gap = np.maximum(s.f(pts[:, 0], pts[:, 1]) - s.f_min, 1e-12)
            self.curves[name].set_data(np.arange(len(pts)), gap)
            self.final_gap[name] = float(gap[-1])


# --- live training curve ----------------------------------------------------------------
class LiveCurve(Explorer):
    """The training loss (left axis, log scale) and accuracy (right axis) per epoch,
    redrawn in place by :meth:`push`. Has no controls; :func:`course_lib.train.fit`
    shows it while training and leaves the final curve as a static PNG."""

    figsize = (7.0, 2.6)

    def __init__(self, epochs: int, title: str = "training") -> None:
        self.epochs = max(1, int(epochs))
        self.title = title
        self.loss: Sequence[float] = []
        self.accuracy: Sequence[float] = []
        self._handle: Any = None
        super().__init__()

    def build(self, fig: Any) -> None:
        fig.subplots_adjust(left=0.1, right=0.9, bottom=0.18, top=0.88)
        self.ax = fig.add_subplot(1, 1, 1)
        self.ax_acc = self.ax.twinx()
        (self.loss_line,) = self.ax.plot([], [], "-", color="tab:blue", lw=1.5)
        (self.acc_line,) = self.ax_acc.plot([], [], "-", color="tab:orange", lw=1.5)
        self.ax.set_xlim(0, self.epochs)
        self.ax.set_yscale("log")
        self.ax.set_ylim(0.01, 10.0)  # until there is data
        self.ax.set_xlabel("epoch")
        self.ax.set_ylabel("loss", color="tab:blue")
        self.ax_acc.set_ylim(0, 1.02)
        self.ax_acc.set_ylabel("accuracy", color="tab:orange")
        self.ax.set_title(self.title, fontsize=10)
        self.ax.grid(True, alpha=0.3)

    def make_controls(self) -> Dict[str, Any]:
        return {}

    def render(self, **state: Any) -> None:
        loss = np.asarray(self.loss, dtype=float)
        epochs = np.arange(1, len(loss) + 1)
        self.loss_line.set_data(epochs, loss)
        self.acc_line.set_data(np.arange(1, len(self.accuracy) + 1), np.asarray(self.accuracy, dtype=float))
        finite = loss[np.isfinite(loss)]
        if len(finite):
            if (finite <= 0).any():
                self.ax.set_yscale("linear")
            lo, hi = finite.min(), finite.max()
            if self.ax.get_yscale() == "log":
                self.ax.set_ylim(lo / 1.3, hi * 1.3)
            else:
                pad = 0.05 * (hi - lo) + 1e-12
                self.ax.set_ylim(lo - pad, hi + pad)
        if len(loss):
            acc = f", accuracy {self.accuracy[-1]:.3f}" if len(self.accuracy) else ""
            self.ax.set_title(f"{self.title}: epoch {len(loss)}, loss {loss[-1]:.4g}{acc}", fontsize=10)

    def push(self, loss: Sequence[float], accuracy: Sequence[float] = ()) -> None:
        """Show the curves so far (one value per epoch) and re-render the image."""
        self.loss, self.accuracy = list(loss), list(accuracy)
        self.update()

    def finish(self) -> None:
        """Refresh the displayed output so that static renderers keep the final curve."""
        if self._handle is not None:
            self._handle.update(self._bundle(), raw=True)

    def _bundle(self) -> Dict[str, Any]:
        return {
            "text/plain": f"{type(self).__name__}: training curve",
            "image/png": base64.b64encode(self.image.value).decode("ascii"),
            "application/vnd.jupyter.widget-view+json": {
                "version_major": 2,
                "version_minor": 0,
                "model_id": self.image.model_id,
            },
        }

    def show(self) -> None:
        """Display the live image (and, for static renderers, a PNG that :meth:`finish` refreshes)."""
        from IPython.display import display

        self._handle = display(self._bundle(), raw=True, display_id=True)

    def _ipython_display_(self) -> None:
        self.show()
