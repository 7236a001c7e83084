"""Reading submissions: which files, which student, which code. Nothing is executed here.

A notebook is read at most once per grading, through a bounded read: its size is
checked with ``fstat`` on the open file before anything is read, so a 3 GB (sparse)
file costs the grader no memory, and a FIFO or device named ``*.ipynb`` is refused
without blocking.
"""

from __future__ import annotations

import hashlib
import json
import sys
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Sequence, Tuple

from course_lib.grade.untrusted_files import UntrustedFile, read_bounded

MAX_NOTEBOOK_BYTES = 5 * 1024 * 1024
#: more code cells than this is refused (the course's sheets have a few dozen)
MAX_CODE_CELLS = 2000
MAX_ID_CHARS, MAX_ID_BYTES = 100, 200  # file names: results/<id>.json must stay under 255 bytes
_ID_PUNCTUATION = "._-"


class UnreadableNotebook(ValueError):
    """The file is not a notebook the grader can read (message says why)."""


class UsageError(ValueError):
    """The command line names submissions that cannot be graded as given."""


@dataclass(frozen=True)
class Submission:
    student: str
    path: Path


@dataclass
class Discovery:
    """What :func:`discover_all` found: the submissions to grade and the ids claimed by
    more than one file (``id -> files``), which are not graded."""

    submissions: List[Submission]
    duplicates: Dict[str, List[Path]] = field(default_factory=dict)


def student_id(name: str) -> str:
    """A safe student id from a file or folder name.

    The name is NFC-normalised (so the composed and decomposed spellings of ``José``
    are one id); Unicode letters, marks and digits of any script are kept, as are
    ``.``, ``_`` and ``-``; every other run of characters (spaces, ``/``, ``=``,
    control and format characters, undecodable bytes) becomes one ``_``. Leading and
    trailing ``.``/``_`` are dropped; at most 100 characters and 200 UTF-8 bytes are
    kept; an empty result is ``student``.
    """
    if not isinstance(name, str):
        raise TypeError(f"student_id: expected a str, got {type(name).__name__}")
    parts: List[str] = []
    for ch in unicodedata.normalize("NFC", name):
        keep = ch in _ID_PUNCTUATION or unicodedata.category(ch)[0] in "LMN"
        if keep:
            parts.append(ch)
        elif not parts or parts[-1] != "\0":
            parts.append("\0")  # a run of unsafe characters becomes one "_"
    sid = "".join(parts).replace("\0", "_").strip("._")
    sid = sid[:MAX_ID_CHARS]
    while len(sid.encode("utf-8")) > MAX_ID_BYTES:
        sid = sid[:-1]
    return sid.rstrip("._") or "student"


def discover(paths: List[Path]) -> List[Submission]:
    """Submissions named on the command line (see :func:`discover_all`); two
    submissions with the same student id are a :class:`UsageError` here."""
    found = discover_all(paths)
    for sid, files in found.duplicates.items():
        raise UsageError(f"two submissions for student {sid!r}: {files[0]} and {files[1]}")
    return found.submissions


def discover_all(paths: Sequence[Path]) -> Discovery:
    """Submissions named on the command line.

    * ``alice.ipynb`` -> student ``alice``;
    * a folder: every ``*.ipynb`` directly inside is one student (by file name), and
      every sub-folder holding exactly one ``.ipynb`` is one student (by folder name,
      the layout of most LMS exports: ``alice/01_forward.ipynb``).
    Ids claimed by two or more files (the same name after :func:`student_id`) are
    set aside in :attr:`Discovery.duplicates`; the others are graded. Raises
    :class:`UsageError` for a missing path or an empty selection.
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
    by_id: Dict[str, List[Path]] = {}
    for sub in found:
        by_id.setdefault(sub.student, []).append(sub.path)
    duplicates = {sid: files for sid, files in by_id.items() if len(files) > 1}
    return Discovery([s for s in found if s.student not in duplicates], duplicates)


def check_layout(submissions: Sequence[Submission], course_root: Path) -> None:
    """Refuse (:class:`UsageError`) submissions whose folder the sandbox could not hide
    without hiding the code the sandbox itself runs: a notebook lying directly in the
    course folder, or in any folder holding the course or the Python installation.
    Called before anything is graded."""
    needed = {Path(course_root).resolve(): "the course", Path(sys.prefix).resolve(): "the Python environment",
              Path(sys.base_prefix).resolve(): "the Python installation"}
    for sub in submissions:
        folder = Path(sub.path).resolve().parent
        for path, what in needed.items():
            if folder == path or folder in path.parents:
                raise UsageError(
                    f"{sub.path}: submissions must lie in a folder of their own, not in {folder}, which holds {what} "
                    f"that the sandbox needs while it hides every submission folder; move them, e.g. into "
                    f"{folder / 'submissions'}"
                )


def read_notebook(path: Path) -> Tuple[bytes, str]:
    """The notebook's bytes and their SHA-256, read at most once and bounded.

    Raises :class:`UnreadableNotebook` for a file over :data:`MAX_NOTEBOOK_BYTES`
    (seen from its size, nothing read) or one that is not a regular file, and
    ``OSError`` when it cannot be opened."""
    try:
        data = read_bounded(path, MAX_NOTEBOOK_BYTES, follow_links=True)
    except UntrustedFile as err:
        raise UnreadableNotebook(_why(path, err)) from None
    return data, hashlib.sha256(data).hexdigest()


def _why(path: Path, err: UntrustedFile) -> str:
    try:
        size = Path(path).stat().st_size
    except OSError:
        return str(err)
    if size > MAX_NOTEBOOK_BYTES:
        return f"notebook is {size / 1e6:.1f} MB, over the {MAX_NOTEBOOK_BYTES / 1e6:.0f} MB limit"
    return str(err)


def digest(path: Path) -> str:
    """SHA-256 of the submission file (a changed file is graded again); a file that
    cannot be graded (too large, not a regular file) gets a digest of its size and
    modification time instead, without being read."""
    try:
        return read_notebook(path)[1]
    except UnreadableNotebook:
        info = Path(path).stat()
        return hashlib.sha256(f"refused:{info.st_size}:{info.st_mtime_ns}".encode()).hexdigest()


def code_cells(path: Path) -> List[str]:
    """The code cells of the notebook at ``path`` (see :func:`cells_from_bytes`)."""
    return cells_from_bytes(read_notebook(path)[0])


def cells_from_bytes(data: bytes) -> List[str]:
    """The code cells of a notebook as plain Python (IPython magics and ``!`` shell
    escapes turned into calls that the sandbox ignores). Raises :class:`UnreadableNotebook`,
    also for more than :data:`MAX_CODE_CELLS` code cells."""
    import nbformat
    from IPython.core.inputtransformer2 import TransformerManager

    try:
        text = data.decode("utf-8")
        raw = json.loads(text)  # count the cells before nbformat validates them all
        raw_cells = raw.get("cells") if isinstance(raw, dict) else None
        if isinstance(raw_cells, list) and len(raw_cells) > MAX_CODE_CELLS:
            n_code = sum(1 for c in raw_cells if isinstance(c, dict) and c.get("cell_type") == "code")
            if n_code > MAX_CODE_CELLS:
                raise UnreadableNotebook(f"notebook has {n_code:,} code cells, over the limit of {MAX_CODE_CELLS:,}")
        nb = nbformat.reads(text, as_version=4)
    except UnreadableNotebook:
        raise
    except UnicodeDecodeError:
        raise UnreadableNotebook("notebook is not UTF-8 text") from None
    except Exception as err:  # nbformat raises several types for corrupt JSON
        raise UnreadableNotebook(f"not a valid notebook ({type(err).__name__}: {str(err)[:120]})") from None
    cells = getattr(nb, "cells", None)
    if not isinstance(cells, list):
        raise UnreadableNotebook("notebook has no list of cells")
    n_code = sum(1 for cell in cells if isinstance(cell, dict) and cell.get("cell_type") == "code")
    if n_code > MAX_CODE_CELLS:
        raise UnreadableNotebook(f"notebook has {n_code:,} code cells, over the limit of {MAX_CODE_CELLS:,}")
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
