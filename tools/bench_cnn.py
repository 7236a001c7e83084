"""Train the chapter-07 DigitsCNN with the notebook's settings; write the `cnn` section of docs/benchmarks.md.

    python tools/bench_cnn.py              # the notebook's settings, writes docs/benchmarks.md
    python tools/bench_cnn.py --no-write   # print the section only
    python tools/bench_cnn.py --epochs 2 --min-accuracy 0.5 --no-write   # a quick run

Times ``course_lib.cnn.train_digits_cnn`` (loading the digits, building the model, all epochs
and the per-epoch accuracies; imports excluded) and measures the test accuracy of the trained
model on the fixed split. The notebook trains with one torch thread (``torch.set_num_threads(1)``),
so that is the default here; ``--threads 0`` leaves torch's own choice. The report says how many
threads were used.

Exit status: 0 when the test accuracy is at least ``--min-accuracy`` (default 0.97) and the
training took at most ``--budget`` seconds (default 30), 1 otherwise (the section is still
written), 2 on usage error.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Dict, List, Optional

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import bench  # noqa: E402  (section writer shared with tools/bench.py)

SECTION = "cnn"


def measure(args: argparse.Namespace) -> Dict[str, object]:
    """Train ``--repeats`` times (same seed: the same model each time); the median time and the accuracy."""
    import torch

    from course_lib import cnn, data

    if args.threads:
        torch.set_num_threads(args.threads)
    settings = dict(epochs=args.epochs or cnn.EPOCHS, lr=args.lr or cnn.LR, batch_size=args.batch_size or cnn.BATCH_SIZE)
    seconds: List[float] = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        model, history = cnn.train_digits_cnn(seed=args.seed, progress=False, live=False, **settings)
        seconds.append(time.perf_counter() - t0)
    split = data.digits()
    accuracy = float((cnn.predict(model, split.X_test) == split.y_test).double().mean())
    return {**settings, "seconds": statistics.median(seconds), "runs": seconds, "accuracy": accuracy,
            "train_accuracy": history.accuracy[-1], "threads": torch.get_num_threads(), "torch": torch.__version__}


def report(args: argparse.Namespace, r: Dict[str, object], now: Optional[str] = None) -> tuple:
    """``(ok, Markdown body of the section)``."""
    now = now or datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    acc_ok = r["accuracy"] >= args.min_accuracy
    time_ok = r["seconds"] <= args.budget
    ok = acc_ok and time_ok
    cli = " ".join(["python tools/bench_cnn.py", *getattr(args, "argv", [])])
    body = "\n".join([
        "## Digits CNN (chapter 07)",
        "",
        f"`{cli}` on {now}, torch {r['torch']}. `course_lib.cnn.train_digits_cnn` with the notebook's settings "
        "(Adam, cross-entropy, seed 0, no augmentation) on the fixed split of the 8x8 digits (1,347 training, "
        "450 test images); seconds: data loading and all epochs, imports excluded"
        + (f", median of {len(r['runs'])} runs" if len(r["runs"]) > 1 else "") + ". "
        f"Targets: test accuracy >= {args.min_accuracy:g} and at most {args.budget:g} s on 2 CPU cores.",
        "",
        "| epochs | lr | batch | torch threads | seconds | training accuracy | test accuracy | status |",
        "|---:|---:|---:|---:|---:|---:|---:|---|",
        f"| {r['epochs']} | {r['lr']:g} | {r['batch_size']} | {r['threads']} | {r['seconds']:.2f} | "
        f"{r['train_accuracy']:.4f} | {r['accuracy']:.4f} | "
        + ("OK" if ok else "over: " + ", ".join(
            ([] if acc_ok else [f"accuracy below {args.min_accuracy:g}"]) + ([] if time_ok else [f"slower than {args.budget:g} s"])))
        + " |",
    ])
    return ok, body


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python tools/bench_cnn.py", description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=None, help="epochs (default: the notebook's, course_lib.cnn.EPOCHS = 15)")
    p.add_argument("--lr", type=float, default=None, help="Adam's learning rate (default course_lib.cnn.LR = 0.01)")
    p.add_argument("--batch-size", type=int, default=None, help="minibatch size (default course_lib.cnn.BATCH_SIZE = 32)")
    p.add_argument("--seed", type=int, default=0, help="seed of the weights and the batch order (default 0)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1, as the notebook; 0: torch's choice)")
    p.add_argument("--repeats", type=int, default=1, help="training runs, the median time is reported (default 1)")
    p.add_argument("--min-accuracy", type=float, default=0.97, help="required test accuracy (default 0.97)")
    p.add_argument("--budget", type=float, default=30.0, help="allowed training seconds (default 30)")
    p.add_argument("--report", type=Path, default=bench.REPORT, help="the Markdown file to update (default docs/benchmarks.md)")
    p.add_argument("--no-write", action="store_true", help="print the section, do not write the report")
    return p


def main(argv: Optional[List[str]] = None) -> int:
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parser.parse_args(argv)
    args.argv = argv  # the command line shown in the report
    for name in ("epochs", "batch_size"):
        value = getattr(args, name)
        if value is not None and value < 1:
            parser.error(f"--{name.replace('_', '-')} must be a positive integer, got {value}")
    if args.lr is not None and not args.lr > 0:
        parser.error(f"--lr must be > 0, got {args.lr}")
    if args.threads < 0 or args.repeats < 1:
        parser.error("--threads must be >= 0 and --repeats >= 1")
    r = measure(args)
    ok, body = report(args, r)
    print(body)
    if not args.no_write:
        bench.write_sections(args.report, {SECTION: body})
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
