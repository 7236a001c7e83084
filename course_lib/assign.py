"""Student sheets from solution sheets.

In a solution sheet (``solutions/NN_topic.py``, jupytext py:percent) every
answer sits between markers inside a code cell::

    def softmax(logits):
        ### BEGIN SOLUTION 01.2
        shifted = logits - logits.max(dim=-1, keepdim=True).values
        ...
        ### END SOLUTION

:func:`make_exercise` replaces each region by a stub with the marker's
indentation, ``raise NotImplementedError("Exercise 01.2: ...")``, and copies
everything else unchanged. Malformed input (a region left open, nested or
unmatched markers, a marker outside a code cell, a BEGIN without an exercise id)
raises :class:`AssignError` with ``file:line``; :func:`assign` then writes nothing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import List, Tuple, Union

from course_lib.notebook_files import render_ipynb, write_atomic

MARKER = re.compile(r"^(?P<indent>\s*)(?P<comment>#\s*)?###\s*(?P<kind>BEGIN|END)\s+SOLUTION\b\s*(?P<qid>\S+)?\s*$")
CELL = re.compile(r"^# %%(?P<rest>.*)$")
QID = re.compile(r"^\d{2}\.\d+$")


class AssignError(ValueError):
    """A solution sheet is malformed; the message starts with ``file:line``."""


@dataclass
class Region:
    qid: str
    begin: int  # 1-based line numbers of the markers
    end: int


def _cell_kind(rest: str) -> str:
    rest = rest.strip()
    if rest.startswith("[markdown]") or rest.startswith("[md]"):
        return "markdown"
    if rest.startswith("[raw]"):
        return "raw"
    return "code"


def make_exercise(text: str, name: str = "<sheet>") -> Tuple[str, List[Region]]:
    """Return the student sheet for solution ``text`` and the regions replaced."""
    lines = text.split("\n")
    out: List[str] = []
    regions: List[Region] = []
    kind = "header"
    open_region: Tuple[int, str] | None = None  # (line, qid)
    for number, line in enumerate(lines, 1):
        cell = CELL.match(line)
        if cell:
            if open_region:
                raise AssignError(f"{name}:{open_region[0]}: solution {open_region[1]} is not closed before the next cell (line {number})")
            kind = _cell_kind(cell.group("rest"))
            out.append(line)
            continue
        marker = MARKER.match(line)
        if marker:
            if kind != "code" or marker.group("comment"):
                raise AssignError(f"{name}:{number}: solution marker outside a code cell")
            if marker.group("kind") == "BEGIN":
                if open_region:
                    raise AssignError(f"{name}:{number}: nested BEGIN SOLUTION (solution {open_region[1]} opened on line {open_region[0]} is still open)")
                qid = marker.group("qid") or ""
                if not QID.match(qid):
                    raise AssignError(f"{name}:{number}: BEGIN SOLUTION needs an exercise id like 01.2, got {qid or 'none'!r}")
                open_region = (number, qid)
                indent = marker.group("indent")
                out.append(f'{indent}raise NotImplementedError("Exercise {qid}: replace this line with your code")')
            else:
                if not open_region:
                    raise AssignError(f"{name}:{number}: END SOLUTION without a matching BEGIN SOLUTION")
                if marker.group("qid") and marker.group("qid") != open_region[1]:
                    raise AssignError(f"{name}:{number}: END SOLUTION {marker.group('qid')} closes solution {open_region[1]}")
                regions.append(Region(open_region[1], open_region[0], number))
                open_region = None
            continue
        if "BEGIN SOLUTION" in line or "END SOLUTION" in line:
            raise AssignError(f"{name}:{number}: malformed solution marker (write '### BEGIN SOLUTION 01.2' / '### END SOLUTION' on a line of its own)")
        if not open_region:
            out.append(line)
    if open_region:
        raise AssignError(f"{name}:{open_region[0]}: solution {open_region[1]} is never closed (missing ### END SOLUTION)")
    return "\n".join(out), regions


def plan(root: Union[str, Path] = ".") -> List[Tuple[Path, str]]:
    """Every file ``course assign`` would write, with its content. Raises
    :class:`AssignError` on the first malformed sheet; nothing is written."""
    root = Path(root)
    files: List[Tuple[Path, str]] = []
    for src in sorted((root / "solutions").glob("*.py")):
        text, _ = make_exercise(src.read_text(encoding="utf-8"), str(src.relative_to(root)))
        target = root / "exercises" / src.name
        files.append((target, text))
        files.append((target.with_suffix(".ipynb"), render_ipynb(text)))
    return files


def orphans(root: Union[str, Path] = ".") -> List[Path]:
    """Files in ``exercises/`` that no solution sheet generates."""
    root = Path(root)
    wanted = {p.stem for p in (root / "solutions").glob("*.py")}
    return sorted(p for p in (root / "exercises").glob("*") if p.suffix in (".py", ".ipynb") and p.stem not in wanted)


def stale(root: Union[str, Path] = ".") -> List[Path]:
    """Exercise files that are missing, differ from their solution sheet, or are orphans."""
    out = [path for path, text in plan(root) if not path.exists() or path.read_text(encoding="utf-8") != text]
    return out + orphans(root)


def assign(root: Union[str, Path] = ".") -> List[Path]:
    """Write ``exercises/`` from ``solutions/``; return the files written or removed."""
    root = Path(root)
    files = plan(root)  # validates every sheet before anything is written
    (root / "exercises").mkdir(exist_ok=True)
    changed = []
    for path, text in files:
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            write_atomic(path, text)
            changed.append(path)
    for path in orphans(root):
        path.unlink()
        changed.append(path)
    return changed
