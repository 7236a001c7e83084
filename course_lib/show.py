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
