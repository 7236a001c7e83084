"""Every explorer in course_lib.widgets follows the pattern: constructible with no
arguments, state readable from Python, a control step changes the image bytes, and
the display bundle carries a static PNG for renderers without a kernel."""

from __future__ import annotations

import base64
import importlib
import inspect
import pkgutil

import pytest

import course_lib.widgets as widgets_pkg
from course_lib.widgets.base import Explorer


def explorer_classes() -> list[type]:
    found = []
    for info in pkgutil.iter_modules(widgets_pkg.__path__):
        module = importlib.import_module(f"course_lib.widgets.{info.name}")
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if issubclass(cls, Explorer) and cls is not Explorer and cls.__module__ == module.__name__:
                required = [
                    p for p in inspect.signature(cls.__init__).parameters.values()
                    if p.name != "self" and p.default is p.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
                ]
                if not required and not cls.__name__.startswith("_"):  # explorers; helpers like LiveCurve need data
                    found.append(cls)
    return sorted(found, key=lambda c: c.__name__)


CLASSES = explorer_classes()


def test_there_are_explorers():
    assert CLASSES


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_explorer_pattern(cls):
    ex = cls()
    state = ex.state()
    assert set(state) == set(ex.controls)
    first = ex.image.value
    assert first[:8] == b"\x89PNG\r\n\x1a\n"
    ex.self_check()
    for name in ex.controls:  # every control re-renders
        frames = ex.frames
        ex.step(name)
        assert ex.frames == frames + 1, name
    # the static fallback: a PNG next to the widget view in the display bundle
    from IPython.core.interactiveshell import InteractiveShell

    shell = InteractiveShell.instance()
    captured = []
    original = shell.display_pub.publish
    shell.display_pub.publish = lambda data, *a, **k: captured.append(data)
    try:
        ex._ipython_display_()
    finally:
        shell.display_pub.publish = original
    bundle = captured[-1]
    assert "application/vnd.jupyter.widget-view+json" in bundle
    assert base64.b64decode(bundle["image/png"])[:4] == b"\x89PNG"


def test_self_check_fails_when_the_image_does_not_change():
    from course_lib.widgets.shapes import MatmulExplorer

    ex = MatmulExplorer()
    ex.png = lambda: b"same bytes"  # a broken renderer
    ex.update()
    with pytest.raises(AssertionError, match="unchanged"):
        ex.self_check()
