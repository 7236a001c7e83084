"""Explorer of chapter 14: a training and inference cost calculator.

:class:`CostExplorer` takes a model (a :class:`course_lib.cost.TransformerConfig` preset), a number
of training tokens, the hardware (peak FLOP/s per device, utilisation, devices, price per
device-hour) and a context length, and shows

* left: the memory one device holds for training, by kind (weights, gradients, Adam states, the
  float32 master copy, activations of one sequence) and, for inference, the KV cache of one
  sequence at the context length, as horizontal bars on a log scale; with "shard" the weights,
  gradients and optimiser states are split evenly over the devices (as FSDP / ZeRO stage 3 do);
* right: training FLOPs (6 N D), time, cost, tokens per parameter against the compute-optimal
  ratio of about 20, and the KV cache per token.

Everything is :mod:`course_lib.cost` arithmetic: a step sets six bar widths and redraws only the
numbers that changed.
"""

from __future__ import annotations

from typing import Any, Dict

from course_lib import cost
from course_lib.widgets.base import Explorer

KINDS = ("weights", "gradients", "optimizer", "master", "activations", "KV cache")
LABELS = ("weights (16-bit)", "gradients (16-bit)", "Adam m, v (32-bit)", "master copy (32-bit)",
          "activations, 1 sequence", "KV cache, 1 sequence")
ROW_STEP = 0.074  # figure fraction between two rows of the table on the right
CONTEXTS = (512, 1024, 2048, 4096, 8192, 16384, 32768)


def _bytes(n: float) -> str:
    for unit, size in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= size:
            return f"{n / size:.3g} {unit}"
    return f"{n:.0f} B"


def _duration(seconds: float) -> str:
    for unit, size in (("years", 365.25 * 86400), ("days", 86400), ("hours", 3600), ("minutes", 60)):
        if seconds >= size:
            return f"{seconds / size:.3g} {unit}"
    return f"{seconds:.3g} s"


def estimate(model: str, tokens: float, tflops: float, utilisation: float, devices: int, price: float,
             context: int, shard: bool) -> Dict[str, float]:
    """Every number the explorer shows, from :mod:`course_lib.cost` (bytes per device, FLOPs, s, money)."""
    cfg = cost.PRESETS[model]
    n = cost.param_count(cfg)["total"]
    mem = cost.memory_bytes(cfg, dtype_bytes=2, optimizer="adam", batch=1, seq_len=context)
    split = devices if shard else 1
    flops = cost.training_flops(n, tokens)
    seconds = cost.training_time_s(flops, devices, tflops * 1e12, utilisation)
    out = {k: mem[k] / split for k in ("weights", "gradients", "optimizer", "master")}
    out["activations"] = mem["activations"]
    out["KV cache"] = float(cost.kv_cache_bytes(cfg, context, batch=1, dtype_bytes=2))
    out.update(params=float(n), flops=flops, seconds=seconds,
               money=cost.training_cost(flops, devices, tflops * 1e12, utilisation, price),
               tokens_per_param=tokens / n, kv_per_token=out["KV cache"] / context,
               train_total=sum(out[k] for k in KINDS[:5]))
    return out


ROWS = ("parameters N", "training FLOPs, 6ND", "time", "cost (price x device-hours)", "tokens per parameter",
        "compute-optimal N for these FLOPs", "  ... and its tokens D = 20 N", "training memory per device",
        "KV cache per token", "KV cache at the context")


class CostExplorer(Explorer):
    """What training (and serving) a GPT-shaped model costs; every control is a cost input."""

    figsize = (9.5, 3.6)
    check_control = "tokens"

    def build(self, fig: Any) -> None:
        # Speed: drawing text dominates a frame. The row labels are static (in the cached
        # background); each number is its own artist in its own band of the figure, and a band's
        # pixels are remembered per string shown, so a frame redraws the bars and only the numbers
        # that changed, and a number already seen is copied, not typeset again (see _draw).
        self.ax = fig.add_axes([0.2, 0.16, 0.36, 0.74])
        ys = list(range(len(KINDS)))[::-1]
        self.bars = self.ax.barh(ys, [1.0] * len(KINDS), left=1.0, color=["C0", "C1", "C2", "C4", "C3", "C5"])
        self.ax.set_yticks(ys)
        self.ax.set_yticklabels(LABELS, fontsize=8)
        self.ax.set_xscale("log")
        self.ax.set_xlim(1e5, 1e13)
        self.ax.set_xlabel("bytes per device (log scale)", fontsize=8)
        self.ax.tick_params(axis="x", labelsize=8)
        self.ax.grid(axis="x", alpha=0.3)
        self.ax.set_title("memory per device: training (top 5), inference (KV cache)", fontsize=8.5)
        self.row_y = [0.9 - ROW_STEP * i for i in range(len(ROWS))]
        for y, label in zip(self.row_y, ROWS):
            fig.text(0.59, y, label, va="top", ha="left", fontsize=8)
        self.values = [fig.text(0.985, y, "", va="top", ha="right", fontsize=8) for y in self.row_y]
        self.dynamic = [*self.bars, *self.values]
        self._bands: list = []  # per row, the figure-pixel box of its number
        self._band_cache: Dict[Any, Any] = {}  # (row, text) -> the band's pixels with that text drawn
        self._shown: list = []  # the text each band shows now

    def _draw(self) -> None:
        """Blit: restore the bars' axes and redraw the bars; for each number that changed, paste
        its band from the cache or draw it once and remember it. A full draw when there is no
        cached background (first frame, or after :meth:`invalidate`)."""
        from matplotlib.transforms import Bbox

        canvas = self.fig.canvas
        if self._background is None:
            for artist in self.dynamic:
                artist.set_visible(False)
            canvas.draw()
            self._background = canvas.copy_from_bbox(self.fig.bbox)  # kept for the base class's bookkeeping
            w, h = canvas.get_width_height()
            self._bands = [Bbox.from_extents(0.57 * w, (y - ROW_STEP) * h + 1, w, y * h + 2) for y in self.row_y]
            self._axes_background = canvas.copy_from_bbox(self.ax.bbox)
            self._empty_bands = [canvas.copy_from_bbox(band) for band in self._bands]
            for artist in self.dynamic:
                artist.set_visible(True)
            self._band_cache.clear()
            self._shown = [None] * len(self.values)
        canvas.restore_region(self._axes_background)
        for bar in self.bars:
            self.ax.draw_artist(bar)
        if len(self._band_cache) > 600:  # about 25 kB a band: bounded memory
            self._band_cache.clear()
        for i, artist in enumerate(self.values):
            text = artist.get_text()
            if text == self._shown[i]:
                continue
            cached = self._band_cache.get((i, text))
            if cached is None:
                canvas.restore_region(self._empty_bands[i])
                self.fig.draw_artist(artist)
                self._band_cache[(i, text)] = canvas.copy_from_bbox(self._bands[i])
            else:
                canvas.restore_region(cached)
            self._shown[i] = text

    def make_controls(self) -> Dict[str, Any]:
        import ipywidgets as widgets

        style = {"description_width": "150px"}
        return {
            "model": widgets.Dropdown(options=list(cost.PRESETS), value="GPT-3 175B", description="model",
                                      style=style),
            "tokens": widgets.FloatLogSlider(value=3e11, base=10, min=9, max=13, step=0.25,
                                             description="training tokens", style=style),
            "tflops": widgets.FloatLogSlider(value=100, base=10, min=0, max=4, step=0.25,
                                             description="peak TFLOP/s per device", style=style),
            "utilisation": widgets.FloatSlider(value=0.4, min=0.05, max=1.0, step=0.05,
                                               description="utilisation (MFU)", style=style),
            "devices": widgets.Dropdown(options=[2 ** k for k in range(0, 15)], value=1024,
                                        description="devices", style=style),
            "price": widgets.FloatSlider(value=2.0, min=0.25, max=10.0, step=0.25,
                                         description="price per device-hour", style=style),
            "context": widgets.Dropdown(options=list(CONTEXTS), value=2048, description="context length",
                                        style=style),
            "shard": widgets.Checkbox(value=False, description="shard weights/grads/Adam over devices"),
        }

    def render(self, model: str, tokens: float, tflops: float, utilisation: float, devices: int, price: float,
               context: int, shard: bool) -> None:
        e = estimate(model, tokens, tflops, utilisation, devices, price, context, shard)
        for bar, kind in zip(self.bars, KINDS):
            bar.set_width(max(e[kind], 1.0) - 1.0 + 1e-9)
        n_opt, d_opt = cost.chinchilla_optimal(e["flops"])
        texts = (f"{e['params'] / 1e9:.3g} B", f"{e['flops']:.3g}", _duration(e["seconds"]), f"{e['money']:,.0f}",
                 f"{e['tokens_per_param']:.3g}", f"{n_opt / 1e9:.3g} B", f"{d_opt / 1e9:.3g} B tokens",
                 _bytes(e["train_total"]), _bytes(e["kv_per_token"]), _bytes(e["KV cache"]))
        for artist, text in zip(self.values, texts):
            artist.set_text(text)
