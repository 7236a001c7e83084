"""Helpers shared by the tests: load the functions a sheet defines."""

from __future__ import annotations

import contextlib
import io
import os
from pathlib import Path
from typing import Any, Dict

import jupytext

ROOT = Path(__file__).resolve().parents[1]


def run_sheet(path: Path) -> Dict[str, Any]:
    """Execute the code cells of a py:percent sheet in a fresh namespace (output
    suppressed, cwd = the sheet's folder) and return the namespace."""
    nb = jupytext.read(path)
    namespace: Dict[str, Any] = {"__name__": "__sheet__"}
    old = os.getcwd()
    os.chdir(path.parent)
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            for cell in nb.cells:
                if cell.cell_type == "code" and "get_ipython" not in cell.source:
                    exec(compile(cell.source, f"{path.name}", "exec"), namespace)
    finally:
        os.chdir(old)
    return namespace
