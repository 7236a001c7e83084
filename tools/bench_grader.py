"""Benchmark the batch grader: seconds per submission, throughput with -j, peak
memory per worker. Writes the `grader` section of docs/benchmarks.md.

    python tools/bench_grader.py [--students 30] [--sheet 01_forward] [--jobs 1 2] [--no-write]

Submissions are made from the sheet's solution and exercise notebooks plus
wrong answers (one question broken), so the batch has a realistic mix of
statuses. Exit code 0 when the median is within the 3 s budget, 1 otherwise.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import jupytext
import nbformat

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import bench  # noqa: E402  (section writer shared with tools/bench.py)

from course_lib import questions as registry  # noqa: E402
from course_lib.grade import runner, sandbox  # noqa: E402
from course_lib.grade.submission import discover  # noqa: E402

BUDGET_S = 3.0


def make_submissions(folder: Path, sheet: str, n: int) -> None:
    solved = jupytext.read(ROOT / "solutions" / f"{sheet}.py")
    unfilled = jupytext.read(ROOT / "exercises" / f"{sheet}.py")
    names = [q.func_name for q in registry.for_sheet(sheet)]
    for i in range(n):
        kind = i % 3
        nb = nbformat.v4.new_notebook()
        base = unfilled if kind == 2 else solved
        nb.cells = [nbformat.v4.new_code_cell(c.source) if c.cell_type == "code" else nbformat.v4.new_markdown_cell(c.source) for c in base.cells]
        if kind == 1:  # one wrong answer
            broken = names[i % len(names)]
            nb.cells.append(nbformat.v4.new_code_cell(f"def {broken}(*args, **kwargs):\n    return args[0] * 0"))
        nbformat.write(nb, folder / f"student{i:03d}.ipynb")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--students", type=int, default=30, help="submissions in the batch (default 30)")
    parser.add_argument("--sheet", default="01_forward", help="sheet to grade (default 01_forward)")
    parser.add_argument("--jobs", type=int, nargs="+", default=[1, 2], help="values of -j to measure (default 1 2)")
    parser.add_argument("--no-write", action="store_true", help="print the section, do not write docs/benchmarks.md")
    args = parser.parse_args(argv)
    if args.students < 1 or any(j < 1 for j in args.jobs):
        parser.error("--students and --jobs must be positive")
    rows, medians = [], []
    with tempfile.TemporaryDirectory() as tmp:
        subs = Path(tmp) / "subs"
        subs.mkdir()
        make_submissions(subs, args.sheet, args.students)
        submissions = discover([subs])
        for jobs in args.jobs:
            out = Path(tmp) / f"out-j{jobs}"
            plan = runner.make_plan(args.sheet, sandbox.Limits(), None, [ROOT / "solutions", ROOT / "tests", subs, out])
            start = time.monotonic()
            summary = runner.grade_batch(plan, submissions, out, jobs=jobs, progress=True)
            wall = time.monotonic() - start
            per = [r["seconds"] for r in summary.results]
            rss = [r["peak_rss_mb"] for r in summary.results]
            median = statistics.median(per)
            medians.append(median)
            counts = ", ".join(f"{n} {s}" for s, n in sorted(summary.statuses.items()))
            rows.append(
                f"| {jobs} | {len(per)} | {median:.2f} | {max(per):.2f} | {wall:.1f} | "
                f"{len(per) / wall * 60:.1f} | {max(rss):.0f} | {counts} |"
            )
    now = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    ok = medians[0] <= BUDGET_S
    body = "\n".join(
        [
            "## Batch grader",
            "",
            f"`python tools/bench_grader.py --students {args.students} --sheet {args.sheet}` on {now}, running as "
            f"{'root (full sandbox: namespaces, separate uid)' if sandbox.is_root() else 'a normal user (reduced sandbox)'}. "
            "Seconds per submission run from the request to the result: forking the child from the fork server, the jail, the cells and the cases; the fork server imports torch once per batch (the first submission waits for it: the max). "
            f"Budget: median <= {BUDGET_S:g} s per submission: {'OK' if ok else 'OVER'}.",
            "",
            "| -j | submissions | median s | max s | batch wall s | submissions/min | peak RSS per child MB | statuses |",
            "|---:|---:|---:|---:|---:|---:|---:|---|",
            *rows,
        ]
    )
    print(body)
    if not args.no_write:
        bench.write_sections(ROOT / "docs" / "benchmarks.md", {"grader": body})
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
