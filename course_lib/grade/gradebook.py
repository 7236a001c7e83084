"""Results on disk: one JSON per student, the gradebook CSV, the feedback pages.

Every file is written atomically (temporary file, fsync, rename), so a grader
killed at any moment leaves each file either complete or untouched.

``gradebook.csv`` follows RFC 4180 quoting (Python's ``csv`` module) and OWASP's
guidance on CSV (formula) injection: a text cell that begins with ``=``, ``+``, ``-``,
``@``, a tab, a carriage return or NUL gets a leading single quote, so a spreadsheet
shows it as text instead of evaluating it (``-alice`` appears as ``'-alice``; the
results and feedback files keep the id as it is).
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any, Dict, List, Sequence

from course_lib.notebook_files import write_atomic

#: statuses that mean "could not be graded as intended" (exit code 1)
PROBLEM_STATUSES = ("unreadable notebook", "crashed", "timeout", "memory limit", "output limit", "duplicate id")
#: first characters that make a spreadsheet read a cell as a formula (OWASP, CSV injection)
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "\0")
STATUSES = ("ok", "not attempted") + PROBLEM_STATUSES
RESULT_VERSION = 1


def result_path(out: Path, student: str) -> Path:
    return out / "results" / f"{student}.json"


def write_result(out: Path, result: Dict[str, Any]) -> None:
    (out / "results").mkdir(parents=True, exist_ok=True)
    write_atomic(result_path(out, result["student"]), json.dumps(result, indent=1, sort_keys=True) + "\n")


def read_result(out: Path, student: str) -> Dict[str, Any] | None:
    """A stored result, or ``None`` when missing or unreadable (it is then graded again)."""
    path = result_path(out, student)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and data.get("version") == RESULT_VERSION else None


def write_gradebook(out: Path, question_ids: List[str], results: List[Dict[str, Any]]) -> Path:
    """``gradebook.csv``: student, one column per question, total, max, status, message."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["student", *question_ids, "total", "max", "status", "message"])
    for res in sorted(results, key=lambda r: r["student"]):
        points = {q["id"]: q["points"] for q in res["questions"]}
        writer.writerow(
            [
                neutralise(res["student"]),
                *[_fmt(points.get(qid, 0.0)) for qid in question_ids],
                _fmt(res["score"]),
                _fmt(res["max"]),
                neutralise(res["status"]),
                neutralise(res["message"]),
            ]
        )
    path = out / "gradebook.csv"
    write_atomic(path, buf.getvalue())
    return path


def neutralise(text: Any) -> str:
    """A text cell a spreadsheet will not evaluate: a leading ``'`` when ``text``
    begins with a formula character (:data:`FORMULA_STARTS`)."""
    text = str(text)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def duplicate_row(sheet: str, question_ids: Sequence[str], max_points: float, student: str, files: Sequence[Path]) -> Dict[str, Any]:
    """The gradebook row of an id claimed by several files: not graded, files named."""
    names = ", ".join(str(f) for f in files)
    return {
        "version": RESULT_VERSION, "student": student, "sheet": sheet, "score": 0.0, "max": float(max_points),
        "status": "duplicate id",
        "message": f"not graded: {len(files)} submissions have this id ({names}); rename all but one and grade again"[:500],
        "questions": [{"id": qid, "points": 0.0} for qid in question_ids],
    }


def write_feedback(out: Path, result: Dict[str, Any]) -> None:
    """``feedback/<student>.md``: per question the points, the first mismatch and a hint."""
    lines = [
        f"# Feedback: {result['student']} · sheet {result['sheet']}",
        "",
        f"**Score: {_fmt(result['score'])} / {_fmt(result['max'])}** · status: {result['status']}",
    ]
    if result["message"]:
        lines += ["", result["message"]]
    for q in result["questions"]:
        lines += ["", f"## {q['id']} {q['title']} — {_fmt(q['points'])} / {_fmt(q['max_points'])}", "", q["feedback"]]
    (out / "feedback").mkdir(parents=True, exist_ok=True)
    write_atomic(out / "feedback" / f"{result['student']}.md", "\n".join(lines) + "\n")


def _fmt(x: float) -> str:
    return f"{x:.2f}".rstrip("0").rstrip(".") if isinstance(x, float) else str(x)
