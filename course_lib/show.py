"""Show ``course_lib`` source code in a notebook instead of copying it."""

from __future__ import annotations

import inspect
from typing import Any


class Source:
    """Source code of a function or class, rendered as a highlighted code block."""

    def __init__(self, obj: Any) -> None:
        self.obj = obj
        self.code = inspect.getsource(obj)
        module = inspect.getmodule(obj)
        self.where = module.__name__ if module else "?"

    def _repr_markdown_(self) -> str:
        return f"`{self.where}`\n```python\n{self.code.rstrip()}\n```"

    def __repr__(self) -> str:
        return f"# {self.where}\n{self.code.rstrip()}"


def show_source(*objs: Any) -> Any:
    """Display the source of each object (function, class or module) from ``course_lib``.

    Returns one :class:`Source` (displayed as a code block) or a list of them.
    """
    if len(objs) == 1:
        return Source(objs[0])
    from IPython.display import display

    for obj in objs:
        display(Source(obj))
    return None


FIGURES_VAR = "COURSE_FIGURES"


def record(name: str, value: float, unit: str = "", fmt: str = ".4g") -> float:
    """Print a figure the chapter measured (``name: value unit``) and return ``value``.

    When the environment variable ``COURSE_FIGURES`` names a file (``make bench`` sets it for each
    notebook it runs), the figure is also appended to it as one JSON line, so
    ``docs/benchmarks.md`` reports exactly the numbers the notebook printed (nothing is
    computed twice, nothing is copied by hand).
    """
    import json
    import math
    import os

    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"record: name should be a non-empty str, got {name!r}")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        try:
            value = float(value)  # a 0-d tensor or numpy scalar
        except (TypeError, ValueError):
            raise TypeError(f"record: value should be a number, got {type(value).__name__}") from None
    print(f"{name}: {format(value, fmt)}{' ' + unit if unit else ''}")
    path = os.environ.get(FIGURES_VAR)
    if path:
        with open(path, "a", encoding="utf-8") as f:
            f.write(json.dumps({"name": name, "value": value if math.isfinite(value) else str(value),
                                "unit": unit, "fmt": fmt}) + "\n")
    return value
