"""The one widget pattern of the course.

An :class:`Explorer` owns

* one ``matplotlib.figure.Figure``, built once in :meth:`Explorer.build`
  (no pyplot, so nothing is displayed twice and no global state is touched);
* a dict of core ipywidgets controls made by :meth:`Explorer.make_controls`;
* a pure :meth:`Explorer.render` that updates the figure's artists in place for
  a given state (``set_data``, ``set_array``, ``set_text``);
* a ``widgets.Image`` holding the PNG bytes of the current frame.

Speed: a full Agg draw of a two-panel figure costs 40-80 ms on 2 cores, mostly
text. An explorer that lists its changing artists in ``self.dynamic`` (in
:meth:`Explorer.build`) gets blitting: the static background (axes, ticks,
labels) is drawn once and cached, and each frame redraws only those artists
(~15 ms). Call :meth:`Explorer.invalidate` after changing anything else (axis
limits, a title). Changing text should be ``ax.text(...)`` artists, not titles.

Moving a control calls :meth:`Explorer.update`, which renders and stores the new
PNG in ``explorer.image.value``. The bytes live in the kernel, so a test (or the
self-check cell at the end of every notebook) can set ``control.value`` and see
that the image changed. Displayed in a notebook, an explorer sends both the live
widget and a static PNG of its first frame: JupyterLab and Colab show the
widget, static renderers (nbconvert HTML, GitHub) fall back to the PNG.

Only APIs shared by ipywidgets 7.7 and 8.x are used (Colab ships 7.x).
"""

from __future__ import annotations

import base64
import io
import time
from typing import Any, Dict, List, Optional

DPI = 80
_NO_KEY = object()


class Explorer:
    """Base class of every interactive explorer. Subclasses implement
    :meth:`build`, :meth:`make_controls` and :meth:`render`."""

    #: figure size in inches; subclasses override
    figsize = (8.0, 3.5)
    #: control moved by :meth:`self_check` (default: the first control)
    check_control: Optional[str] = None

    def __init__(self) -> None:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
        import ipywidgets as widgets

        self.fig = Figure(figsize=self.figsize, dpi=DPI)
        FigureCanvasAgg(self.fig)
        self.dynamic: List[Any] = []
        self._background: Any = None
        self._backgrounds: Dict[Any, Any] = {}
        self._background_key: Any = _NO_KEY
        self.build(self.fig)
        self.controls: Dict[str, Any] = self.make_controls()
        self.image = widgets.Image(format="png")
        self.frames = 0
        for control in self.controls.values():
            control.observe(self._on_change, names="value")
        self.update()

    # --- to implement -------------------------------------------------------------
    def build(self, fig: Any) -> None:
        """Create axes and artists once. Store the artists on ``self``."""
        raise NotImplementedError

    def make_controls(self) -> Dict[str, Any]:
        """Return ``{name: ipywidget}``; each control's ``value`` is part of the state."""
        raise NotImplementedError

    def render(self, **state: Any) -> None:
        """Update the artists for ``state`` (the controls' values). No new figure."""
        raise NotImplementedError

    # --- the shared machinery -----------------------------------------------------
    def state(self) -> Dict[str, Any]:
        """The current control values, ``{name: value}``."""
        return {name: c.value for name, c in self.controls.items()}

    def set_state(self, **values: Any) -> None:
        """Set several controls at once (one render per changed control)."""
        for name, value in values.items():
            self.controls[name].value = value

    def invalidate(self) -> None:
        """Forget the cached backgrounds: the next frame is drawn in full."""
        self._background = None
        self._backgrounds.clear()

    def use_background(self, key: Any) -> bool:
        """Keep one cached static background per ``key`` (e.g. per surface shown).

        Call it from :meth:`render` with the part of the state that the static
        artists depend on. Returns ``True`` when ``key`` differs from the previous
        frame's, i.e. when :meth:`render` must update those static artists; the
        background for ``key`` is then drawn in full once and reused afterwards.
        """
        if key == self._background_key:
            return False
        if self._background_key is not _NO_KEY and self._background is not None:
            self._backgrounds[self._background_key] = self._background
        self._background = self._backgrounds.get(key)
        self._background_key = key
        return True

    def _draw(self) -> None:
        canvas = self.fig.canvas
        if not self.dynamic:
            canvas.draw()
            return
        if self._background is None:
            for artist in self.dynamic:
                artist.set_visible(False)
            canvas.draw()
            self._background = canvas.copy_from_bbox(self.fig.bbox)
            for artist in self.dynamic:
                artist.set_visible(True)
        else:
            canvas.restore_region(self._background)
        for artist in self.dynamic:
            self.fig.draw_artist(artist)

    def png(self) -> bytes:
        """Draw the current figure and encode it as PNG bytes (fast zlib level)."""
        from PIL import Image as PILImage

        self._draw()
        canvas = self.fig.canvas
        width, height = canvas.get_width_height()
        img = PILImage.frombuffer("RGBA", (width, height), canvas.buffer_rgba(), "raw", "RGBA", 0, 1)
        buf = io.BytesIO()
        img.save(buf, format="png", compress_level=1)
        return buf.getvalue()

    def update(self) -> None:
        """Render the current state into ``self.image``."""
        self.render(**self.state())
        self.image.value = self.png()
        self.frames += 1

    def _on_change(self, change: Dict[str, Any]) -> None:
        self.update()

    def layout_controls(self) -> List[Any]:
        """Controls in display order; override to group them."""
        return list(self.controls.values())

    def widget(self) -> Any:
        """The controls above the image, as one ``VBox``."""
        import ipywidgets as widgets

        if not hasattr(self, "_box"):
            self._box = widgets.VBox([*self.layout_controls(), self.image])
        return self._box

    def _ipython_display_(self) -> None:
        from IPython.display import display

        box = self.widget()
        bundle = {
            "text/plain": f"{type(self).__name__}: interactive figure (run the notebook to use the controls)",
            "image/png": base64.b64encode(self.image.value).decode("ascii"),
            "application/vnd.jupyter.widget-view+json": {
                "version_major": 2,
                "version_minor": 0,
                "model_id": box.model_id,
            },
        }
        display(bundle, raw=True)

    # --- checks and measurements --------------------------------------------------
    def _next_value(self, name: str) -> Any:
        control = self.controls[name]
        value = control.value
        options = getattr(control, "options", None)
        if options:
            labels = [o[1] if isinstance(o, tuple) else o for o in options]
            i = labels.index(value) if value in labels else 0
            return labels[(i + 1) % len(labels)]
        if isinstance(value, bool):
            return not value
        base = getattr(control, "base", None)
        if base:  # FloatLogSlider: min, max and step are exponents of base
            import math

            exponent = math.log(value, base) + control.step
            return base ** (exponent if exponent <= control.max + 1e-9 else control.min)
        lo, hi = getattr(control, "min", None), getattr(control, "max", None)
        step = getattr(control, "step", None) or 1
        if lo is None or hi is None:
            raise TypeError(f"{type(self).__name__}: cannot step control {name!r}")
        nxt = value + step
        return nxt if nxt <= hi else lo

    def step(self, name: Optional[str] = None) -> bytes:
        """Move control ``name`` one step (wrapping around) and return the new PNG."""
        name = name or self.check_control or next(iter(self.controls))
        self.controls[name].value = self._next_value(name)
        return self.image.value

    def self_check(self, name: Optional[str] = None) -> str:
        """Move one control and assert that the picture changed; return a report line."""
        name = name or self.check_control or next(iter(self.controls))
        before, frames = self.image.value, self.frames
        self.step(name)
        assert self.frames > frames, f"{type(self).__name__}: moving {name!r} did not re-render"
        assert self.image.value != before, f"{type(self).__name__}: moving {name!r} left the image unchanged"
        return f"{type(self).__name__}: moving {name!r} re-rendered the figure ({len(self.image.value)} bytes). OK"

    def time_step(self, repeats: int = 20, name: Optional[str] = None) -> float:
        """Median seconds for one control step (render + PNG), measured in the kernel."""
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            self.step(name)
            times.append(time.perf_counter() - t0)
        times.sort()
        return times[len(times) // 2]
