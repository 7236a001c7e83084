"""Reading submissions: which files, which student, which code. Nothing is executed here."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import List

MAX_NOTEBOOK_BYTES = 5 * 1024 * 1024
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


class UnreadableNotebook(ValueError):
    """The file is not a notebook the grader can read (message says why)."""


class UsageError(ValueError):
    """The command line names submissions that cannot be graded as given."""


@dataclass(frozen=True)
class Submission:
    student: str
    path: Path


def student_id(name: str) -> str:
    """A safe student id from a file or folder name: letters, digits, ``.``, ``_``, ``-``."""
    sid = _UNSAFE.sub("_", name).strip("._") or "student"
    return sid[:100]


def discover(paths: List[Path]) -> List[Submission]:
    """Submissions named on the command line.

    * ``alice.ipynb`` -> student ``alice``;
    * a folder: every ``*.ipynb`` directly inside is one student (by file name), and
      every sub-folder holding exactly one ``.ipynb`` is one student (by folder name,
      the layout of most LMS exports: ``alice/01_forward.ipynb``).
    Raises :class:`UsageError` for a missing path, an empty selection or two
    submissions with the same student id.
    """
    found: List[Submission] = []
    for path in paths:
        path = Path(path)
        if path.is_file():
            if path.suffix != ".ipynb":
                raise UsageError(f"{path}: not a .ipynb file")
            found.append(Submission(student_id(path.stem), path))
        elif path.is_dir():
            for item in sorted(path.iterdir()):
                if item.is_file() and item.suffix == ".ipynb":
                    found.append(Submission(student_id(item.stem), item))
                elif item.is_dir() and not item.name.startswith("."):
                    notebooks = sorted(p for p in item.glob("*.ipynb") if p.is_file())
                    if len(notebooks) == 1:
                        found.append(Submission(student_id(item.name), notebooks[0]))
                    elif len(notebooks) > 1:
                        raise UsageError(f"{item}: {len(notebooks)} notebooks in one student's folder; keep one")
        else:
            raise UsageError(f"{path}: no such file or folder")
    if not found:
        raise UsageError("no .ipynb submissions found in " + ", ".join(map(str, paths)))
    seen: dict = {}
    for sub in found:
        if sub.student in seen:
            raise UsageError(f"two submissions for student {sub.student!r}: {seen[sub.student]} and {sub.path}")
        seen[sub.student] = sub.path
    return found


def digest(path: Path) -> str:
    """SHA-256 of the submission file (a changed file is graded again)."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def code_cells(path: Path) -> List[str]:
    """The code cells of a notebook as plain Python (IPython magics and ``!`` shell
    escapes turned into calls that the sandbox ignores). Raises :class:`UnreadableNotebook`."""
    size = path.stat().st_size
    if size > MAX_NOTEBOOK_BYTES:
        raise UnreadableNotebook(f"notebook is {size / 1e6:.1f} MB, over the {MAX_NOTEBOOK_BYTES / 1e6:.0f} MB limit")
    import nbformat
    from IPython.core.inputtransformer2 import TransformerManager

    try:
        nb = nbformat.reads(path.read_text(encoding="utf-8"), as_version=4)
    except UnicodeDecodeError:
        raise UnreadableNotebook("notebook is not UTF-8 text") from None
    except Exception as err:  # nbformat raises several types for corrupt JSON
        raise UnreadableNotebook(f"not a valid notebook ({type(err).__name__}: {str(err)[:120]})") from None
    cells = getattr(nb, "cells", None)
    if not isinstance(cells, list):
        raise UnreadableNotebook("notebook has no list of cells")
    transform = TransformerManager().transform_cell
    sources: List[str] = []
    for cell in cells:
        if not isinstance(cell, dict) or cell.get("cell_type") != "code":
            continue
        source = cell.get("source", "")
        if isinstance(source, list):
            source = "".join(str(s) for s in source)
        if not isinstance(source, str):
            raise UnreadableNotebook("a code cell's source is not text")
        try:
            sources.append(transform(source))
        except Exception:
            sources.append(source)  # leave it: a SyntaxError in the sandbox is reported per cell
    return sources
