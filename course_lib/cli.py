"""The ``course`` command: ``course links``, ``course assign``, ``course sync``, ``course grade``,
``course serve``.

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


def _cmd_links(args: argparse.Namespace) -> int:
    from course_lib import repository

    try:
        repo = repository.read(args.root)
        if args.check:
            stale = repository.stale(args.root)
            for path in stale:
                print(f"stale: {path}")
            if stale:
                print(f"links do not point at {repo.url} ({repo.branch}): run `course links`", file=sys.stderr)
            else:
                print(f"every link points at {repo.url} ({repo.branch})")
            return 1 if stale else 0
        changed = repository.stamp(args.root)
    except repository.RepositoryError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    for path in changed:
        print(f"wrote {path}")
    print(f"links point at {repo.url} ({repo.branch}); {len(changed)} file(s) changed")
    return 0


GRADE_HELP = """Grade a folder of filled-in exercise notebooks into a gradebook.

SUBMISSIONS are .ipynb files or folders. A file alice.ipynb is student "alice";
in a folder, every *.ipynb directly inside is one student (named after the
file) and every sub-folder holding exactly one .ipynb is one student (named
after the folder, e.g. an LMS export alice/01_forward.ipynb). Ids keep letters
and digits of any script (NFC-normalised), '.', '_' and '-'; other characters
become '_'. Files whose names give the same id are not graded (status
"duplicate id", files named); the rest are. Submissions must lie in a folder of
their own, not in the course folder itself (usage error).

Each student's code runs in a sandboxed child process (own session, resource
limits, wall-clock timeout, scrubbed environment, fresh folder; as root also no
network, an unprivileged uid, and solutions/, tests/, other submissions and the
output folder hidden). The child calls the student's functions on hidden inputs
and returns plain numbers; this process compares them with the reference
answers. Points per question = points x passed cases / cases.

Writes OUT/gradebook.csv (student, one column per question, total, max,
status, message), OUT/results/<student>.json and OUT/feedback/<student>.md.
Status: ok, not attempted, unreadable notebook, crashed, timeout, memory limit,
output limit, duplicate id. Text cells starting with = + - @ tab or CR get a
leading ' (CSV-injection guard). A rerun skips submissions already graded (same file, same
settings) unless --force.

Exit codes: 0 all graded, 1 some could not be graded (see status), 2 usage error.
"""


def _cmd_grade(args: argparse.Namespace) -> int:
    from course_lib.grade import runner, sandbox
    from course_lib.grade.submission import Submission, UsageError, check_layout, discover_all

    try:
        found = discover_all(args.submissions)
        submissions = found.submissions
        every = submissions + [Submission(sid, f) for sid, files in found.duplicates.items() for f in files]
        course_root = Path(__file__).resolve().parents[1]
        check_layout(every, course_root)
        limits = sandbox.Limits(timeout=args.timeout, memory_mb=args.memory)
        hide = [course_root / "solutions", course_root / "tests", args.out.resolve()]
        hide += [args.tests.resolve()] if args.tests else []
        hide += sorted({s.path.resolve().parent for s in every})
        plan = runner.make_plan(args.sheet, limits, args.tests, hide)
    except (UsageError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    for sid, files in sorted(found.duplicates.items()):
        print(f"not graded: {len(files)} submissions have the id {sid!r}: " + ", ".join(map(str, files)), file=sys.stderr)
    if not sandbox.is_root():
        print("note: not running as root: no network/filesystem isolation and no separate user for student code "
              "(see docs/instructors.md, 'Threat model')", file=sys.stderr)
    from course_lib.grade import forkserver

    try:
        summary = runner.grade_batch(plan, submissions, args.out, jobs=args.jobs, force=args.force,
                                     progress=not args.quiet, duplicates=found.duplicates)
    finally:
        forkserver.close()  # the fork server and its home folder end with the command
    print(summary.line())
    print(f"gradebook: {args.out / 'gradebook.csv'}")
    return 1 if summary.problems else 0


SERVE_HELP = """Serve a course model over HTTP (FastAPI on uvicorn) until Ctrl+C or SIGTERM.

Models: gpt (the chapter 13 character GPT, trained for --train-steps steps on the
CPython corpus at start-up, or loaded from --checkpoint), embed (the chapter 17
sentence encoder all-MiniLM-L6-v2 with semantic search), both.

Endpoints: GET /health; POST /generate {"prompt", "max_new_tokens", "temperature",
"top_k", "seed", "stream"}; POST /embed {"texts"}; POST /search {"query", "k"};
GET /docs (the OpenAPI page). Requests are batched dynamically (up to --max-batch
requests or --max-wait-ms milliseconds); at most --max-queue wait, beyond that the
server answers 503 with Retry-After. The URL is printed once the socket listens
("listening on http://HOST:PORT"); --port 0 picks a free port.

Exit codes: 0 clean shutdown (SIGINT/SIGTERM), 1 runtime failure (model or port),
2 usage error.
"""


def _cmd_serve(args: argparse.Namespace) -> int:
    if args.threads is not None:
        import torch

        torch.set_num_threads(args.threads)
    try:
        servables = []
        if args.model in ("gpt", "both"):
            from course_lib.serving import models

            if args.checkpoint is not None:
                servables.append(models.load_servable(args.checkpoint))
            else:
                print(f"training the chapter 13 GPT for {args.train_steps} steps...", file=sys.stderr, flush=True)
                servables.append(models.train_gpt_servable(steps=args.train_steps, seed=0, progress=False))
        if args.model in ("embed", "both"):
            from course_lib.serving import embedding

            servables.append(embedding.load_embedding_servable(with_search=True))
        from course_lib.serving.app import create_app
        from course_lib.serving.server import serve_forever

        app = create_app(servables, batching=not args.no_batching, max_batch=args.max_batch,
                         max_wait_ms=args.max_wait_ms, max_queue=args.max_queue)

        def listening(url: str) -> None:
            print(f"listening on {url}  (models: {', '.join(s.name for s in servables)}; "
                  f"batching {'off' if args.no_batching else 'on'}; Ctrl+C stops)", flush=True)

        started = serve_forever(app, host=args.host, port=args.port, log_level=args.log_level, on_listen=listening)
    except Exception as err:  # noqa: BLE001 - a clear message and exit code 1, no traceback
        print(f"error: {type(err).__name__}: {err}", file=sys.stderr)
        return 1
    if not started:
        print("error: the server did not start (see the log above)", file=sys.stderr)
        return 1
    print("server stopped", flush=True)
    return 0


def _positive(kind):
    def parse(text: str):
        value = kind(text)
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be positive, got {text}")
        return value

    return parse


def _non_negative(kind):
    def parse(text: str):
        value = kind(text)
        if not value >= 0:
            raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
        return value

    return parse


def _port(text: str) -> int:
    value = int(text)
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"must be in 0..65535, got {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="course", description="Tools of the deep-learning course.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser(
        "links",
        help="point badges and setup cells at the repository named in pyproject.toml",
        description="Rewrite every Colab badge, Binder badge and Colab setup cell (`pip install git+...`) in "
        "README.md, docs/*.md, notebooks/ and solutions/ to point at [project.urls] Repository of pyproject.toml "
        "(branch: [tool.course] branch, default main). Run `course assign` and `course sync` after it "
        "(`make notebooks` runs all three).",
    )
    p.add_argument("--root", type=Path, default=Path("."), help="course folder (default: current folder)")
    p.add_argument("--check", action="store_true", help="write nothing; exit 1 if any link is stale")
    p.set_defaults(func=_cmd_links)

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

    p = sub.add_parser("grade", help="grade submitted notebooks into a gradebook", description=GRADE_HELP,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("submissions", nargs="+", type=Path, metavar="SUBMISSIONS", help=".ipynb files or folders of them")
    p.add_argument("--sheet", required=True, help="sheet id, e.g. 01_forward (the name of solutions/<sheet>.py)")
    p.add_argument("--out", type=Path, required=True, help="output folder for gradebook.csv, results/ and feedback/")
    p.add_argument("-j", "--jobs", type=_positive(int), default=1, help="submissions graded in parallel (default 1)")
    p.add_argument("--timeout", type=_positive(float), default=60.0, help="wall-clock seconds per submission (default 60)")
    p.add_argument("--memory", type=_positive(int), default=2048, help="address-space limit per submission in MB (default 2048)")
    p.add_argument("--tests", type=Path, default=None, help="folder of instructor tests: <sheet>.py defining extra_cases(qid, gen)")
    p.add_argument("--force", action="store_true", help="grade again even if a result for the same file exists")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_grade)

    p = sub.add_parser("serve", help="serve a course model over HTTP", description=SERVE_HELP,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", choices=["gpt", "embed", "both"], default="gpt", help="model(s) to serve (default gpt)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=_port, default=8000, help="TCP port, 0 = any free port (default 8000)")
    p.add_argument("--no-batching", action="store_true", help="run every request alone (no dynamic batching)")
    p.add_argument("--max-batch", type=_positive(int), default=16, help="largest batch (default 16)")
    p.add_argument("--max-wait-ms", type=_non_negative(float), default=5.0,
                   help="longest wait for a batch to fill, in ms (default 5)")
    p.add_argument("--max-queue", type=_positive(int), default=256, help="waiting requests before 503 (default 256)")
    p.add_argument("--checkpoint", type=Path, default=None, help="a GPT saved with serving.models.save_servable")
    p.add_argument("--train-steps", type=_non_negative(int), default=200,
                   help="training steps of the GPT when no --checkpoint (default 200; 0 = untrained)")
    p.add_argument("--threads", type=_positive(int), default=None, help="torch CPU threads (default: torch's)")
    p.add_argument("--log-level", choices=["critical", "error", "warning", "info", "debug"], default="info",
                   help="uvicorn log level (default info)")
    p.set_defaults(func=_cmd_serve)
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
