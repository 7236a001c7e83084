"""The ``course`` command: ``course assign``, ``course sync`` (and later ``course grade``).

Exit codes: 0 success, 1 something to fix (stale files with ``--check``,
a malformed sheet), 2 usage error.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import List, Optional


def _cmd_assign(args: argparse.Namespace) -> int:
    from course_lib import assign

    try:
        if args.check:
            stale = assign.stale(args.root)
            for path in stale:
                print(f"stale: {path}")
            if stale:
                print("exercises/ is out of date: run `course assign`", file=sys.stderr)
            return 1 if stale else 0
        changed = assign.assign(args.root)
    except assign.AssignError as err:
        print(f"error: {err}", file=sys.stderr)
        print("nothing was written", file=sys.stderr)
        return 1
    for path in changed:
        print(f"wrote {path}" if path.exists() else f"removed {path}")
    print(f"exercises/ is up to date ({len(changed)} file(s) changed)")
    return 0


def _cmd_sync(args: argparse.Namespace) -> int:
    from course_lib import notebook_files

    if args.check:
        stale = notebook_files.stale(args.root)
        for path in stale:
            print(f"stale: {path}")
        if stale:
            print("regenerate with `course sync`", file=sys.stderr)
        return 1 if stale else 0
    written = notebook_files.sync(args.root)
    for path in written:
        print(f"wrote {path}")
    print(f"notebooks are up to date ({len(written)} file(s) written)")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="course", description="Tools of the deep-learning course.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser(
        "assign",
        help="write exercises/ from solutions/",
        description="Write every student sheet in exercises/ from its solution sheet in solutions/: "
        "each region between '### BEGIN SOLUTION <id>' and '### END SOLUTION' becomes a stub "
        "raising NotImplementedError. A malformed sheet is reported as file:line and nothing is written.",
    )
    p.add_argument("--root", type=Path, default=Path("."), help="course folder (default: current folder)")
    p.add_argument("--check", action="store_true", help="write nothing; exit 1 if exercises/ is stale")
    p.set_defaults(func=_cmd_assign)

    p = sub.add_parser(
        "sync",
        help="regenerate every .ipynb from its .py source",
        description="Regenerate notebooks/, solutions/ and exercises/ *.ipynb from their jupytext py:percent sources (outputs stripped, stable cell ids).",
    )
    p.add_argument("--root", type=Path, default=Path("."), help="course folder (default: current folder)")
    p.add_argument("--check", action="store_true", help="write nothing; exit 1 if any .ipynb is stale")
    p.set_defaults(func=_cmd_sync)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    return args.func(args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
