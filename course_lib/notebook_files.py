"""Notebook sources: the jupytext ``py:percent`` file is the truth, the ``.ipynb`` is generated.

:func:`render_ipynb` turns a ``.py`` source into the exact ``.ipynb`` text that
belongs beside it: no outputs, and cell ids derived from the cell's position and
content so that regenerating an unchanged source gives identical bytes (a test
compares them). :func:`write_atomic` never leaves a half-written file.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path
from typing import Iterable, List, Union

PathLike = Union[str, Path]
NOTEBOOK_DIRS = ("notebooks", "solutions", "exercises")


def render_ipynb(py_text: str) -> str:
    """The ``.ipynb`` JSON text generated from a py:percent source text."""
    import jupytext
    import nbformat

    nb = jupytext.reads(py_text, fmt="py:percent")
    for i, cell in enumerate(nb.cells):
        cell.id = hashlib.sha1(f"{i}\0{cell.cell_type}\0{cell.source}".encode()).hexdigest()[:12]
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
    nb.nbformat, nb.nbformat_minor = 4, 5
    nbformat.validate(nb)
    return jupytext.writes(nb, fmt="ipynb")


def write_atomic(path: PathLike, text: str) -> None:
    """Write ``text`` to ``path`` via a temporary file, fsync and rename."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; give the usual mode
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def sources(root: PathLike = ".", dirs: Iterable[str] = NOTEBOOK_DIRS) -> List[Path]:
    """All notebook sources (``*.py``) in the given folders of ``root``, sorted."""
    root = Path(root)
    return sorted(p for d in dirs for p in (root / d).glob("*.py") if not p.name.startswith("_"))


def stale(root: PathLike = ".", dirs: Iterable[str] = NOTEBOOK_DIRS) -> List[Path]:
    """The ``.ipynb`` files that are missing or differ from what their ``.py`` generates."""
    out = []
    for py in sources(root, dirs):
        nb = py.with_suffix(".ipynb")
        want = render_ipynb(py.read_text(encoding="utf-8"))
        if not nb.exists() or nb.read_text(encoding="utf-8") != want:
            out.append(nb)
    return out


def sync(root: PathLike = ".", dirs: Iterable[str] = NOTEBOOK_DIRS) -> List[Path]:
    """Regenerate every stale ``.ipynb`` from its ``.py``; return the ones written."""
    written = []
    for nb in stale(root, dirs):
        write_atomic(nb, render_ipynb(nb.with_suffix(".py").read_text(encoding="utf-8")))
        written.append(nb)
    return written
