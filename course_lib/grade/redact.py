"""What a student may be told: text from the sandbox with every value taken out.

Feedback must never carry hidden inputs or reference values, whatever the student's
code returns, raises or prints. The child's log is written by a process that ran the
student's code, so any text in it (an exception message, a "reason") may hold the
hidden inputs the student's function received: ``raise ValueError(repr(x))``. The
grader therefore never copies such text through. It keeps:

* the exception type, as an identifier of at most 40 characters with digits removed;
* its message with every number (``3.14``, ``-1e-3``, ``0x1f``, ``inf``, ``nan``, digits
  of any script) replaced by ``#``, every bracketed list or ``tensor(...)``/``array(...)``
  collapsed to ``[...]``, only printable ASCII kept, and at most 80 characters.

So ``raise ValueError(f"bad input {x}")`` reaches the feedback as
``ValueError: bad input tensor(...)``. Messages that the grader writes itself
(time limits, memory) are rebuilt from fixed text. Mismatch descriptions from
:func:`course_lib.check.compare` lose the size of the error (returning zeros would
otherwise reveal the largest reference value), and inputs are described by shape
and type only.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any

import torch

from course_lib.questions import Case

MAX_TYPE_CHARS = 40
MAX_MESSAGE_CHARS = 80
_NUMBER = re.compile(
    r"[-+]?(?:0[xXoObB][0-9a-fA-F_]+|(?:\d[\d_]*\.?\d*|\.\d+)(?:[eE][-+]?\d+)?j?)|\b(?:inf|nan|infinity)\b",
    re.IGNORECASE,
)
_CALL = re.compile(r"\b(tensor|array|Parameter|ndarray)\s*\(", re.IGNORECASE)
_BRACKETED = re.compile(r"\[[^\[\]]*\]|\{[^{}]*\}")
_TYPE = re.compile(r"[A-Za-z_][A-Za-z0-9_.]*")
_HARNESS = {
    # the child's own words for situations it observed (no values in them)
    "not run: this question stopped an earlier run (time limit or crash)",
    "not run: an earlier case of this question ran out of time",
    "skipped: this cell stopped an earlier run",
    "time limit",
}


def strip_values(text: str, limit: int = MAX_MESSAGE_CHARS) -> str:
    """``text`` without numbers, tensors, lists or non-ASCII characters, at most ``limit`` characters."""
    text = _collapse_calls(str(text))
    for _ in range(20):  # innermost brackets first
        collapsed = _BRACKETED.sub("[...]", text)
        if collapsed == text:
            break
        text = collapsed
    text = _NUMBER.sub("#", text)
    text = "".join("#" if unicodedata.category(ch) == "Nd" else ch for ch in text)  # digits of other scripts
    text = "".join(ch if " " <= ch <= "~" else " " for ch in text)
    text = re.sub(r"#(?:[-+#.,\s]*#)+", "#", text)  # "# # #" -> "#": no count of values either
    text = re.sub(r"\s+", " ", text).strip()
    return text if len(text) <= limit else text[: limit - 3].rstrip() + "..."


def _collapse_calls(text: str) -> str:
    """``tensor([[1, 2]], dtype=...)`` -> ``tensor(...)`` (balanced parentheses; an
    unclosed one swallows the rest)."""
    out, pos = [], 0
    for match in _CALL.finditer(text):
        if match.start() < pos:
            continue
        out.append(text[pos:match.end()])
        depth, i = 1, match.end()
        while i < len(text) and depth:
            depth += {"(": 1, ")": -1}.get(text[i], 0)
            i += 1
        out.append("...)")
        pos = i
    out.append(text[pos:])
    return "".join(out)


def exception_type(name: Any) -> str:
    """An exception's type name fit for feedback (identifier, no digits, bounded)."""
    match = _TYPE.match(str(name))
    word = re.sub(r"\d+", "", match.group(0)) if match else ""
    return word[:MAX_TYPE_CHARS] or "an exception"


def error_text(raw: Any) -> str:
    """The student-facing text for an ``error`` the child logged (a case's or a cell's)."""
    text = str(raw)[:2000]
    if text in _HARNESS:
        return text
    if text.startswith("did not finish within"):
        return "did not finish within its time limit"
    if text.startswith("MemoryError"):
        return "MemoryError (memory limit)"
    match = re.match(r"(raised )?([A-Za-z_][A-Za-z0-9_.]*)(?:: ?(.*))?$", text, re.S)
    if match and (match.group(1) or match.group(3) is not None):
        prefix = "raised " if match.group(1) else ""
        message = strip_values(match.group(3) or "")
        return f"{prefix}{exception_type(match.group(2))}" + (f": {message}" if message else "")
    return strip_values(text)


def mismatch_text(problem: str) -> str:
    """A :func:`course_lib.check.compare` message without the size of the error."""
    return re.sub(r",? max abs error [^ ]+ \(", " (", problem)


def describe_shapes(case: Case) -> str:
    """A case's inputs by shape and dtype (tensors) or type (anything else): no values."""
    names = [f"arg{i}" for i in range(len(case.args))] + list(case.kwargs)
    parts = []
    for name, value in zip(names, list(case.args) + list(case.kwargs.values())):
        if isinstance(value, torch.Tensor):
            parts.append(f"{name}: {tuple(value.shape)} {str(value.dtype).replace('torch.', '')}")
        elif isinstance(value, (list, tuple)):
            parts.append(f"{name}: {type(value).__name__} of {len(value)}")
        else:
            parts.append(f"{name}: {type(value).__name__}")
    return ", ".join(parts)
