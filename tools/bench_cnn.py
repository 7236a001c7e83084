"""Chapter 07's protocol for DigitsCNN and its MLP baseline; write the `cnn` section of docs/benchmarks.md.

    python tools/bench_cnn.py              # the notebook's protocol, writes docs/benchmarks.md
    python tools/bench_cnn.py --no-write   # print the section only
    python tools/bench_cnn.py --epochs 2 --min-accuracy 0.5 --no-write   # a quick run

For each model (``course_lib.cnn.DigitsCNN`` and ``DigitsMLP``, 6,090 and 6,085 parameters) it
times ``course_lib.cnn.select_on_validation`` (the learning rate from ``cnn.LRS`` and the number
of epochs from 1..``cnn.MAX_EPOCHS``, chosen on the validation part of
``course_lib.data.digits_splits``; loading the digits included, imports excluded), then trains the
chosen setting with ``--seeds`` seeds and measures each on the test part, once, at the end.
``--epochs`` and/or ``--lr`` fix the setting instead (defaults ``cnn.EPOCHS``, ``cnn.LR``): no
selection. The notebook trains with one torch thread (``torch.set_num_threads(1)``), so that is
the default here; ``--threads 0`` leaves torch's own choice. The report says how many threads
were used.

Exit status: 0 when the CNN's test accuracy (seed ``--seed``) is at least ``--min-accuracy``
(default 0.97) and its selection (or training) took at most ``--budget`` seconds (default 30),
1 otherwise (the section is still written), 2 on usage error.
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
    """For each model: the median time of ``--repeats`` selections (or trainings; same seed: the
    same model each time), the chosen setting, its validation accuracy, and the test accuracy of
    the chosen setting for seeds ``--seed`` .. ``--seed + --seeds - 1``."""
    import torch

    from course_lib import cnn, data

    if args.threads:
        torch.set_num_threads(args.threads)
    fixed = args.epochs is not None or args.lr is not None
    batch_size = args.batch_size or cnn.BATCH_SIZE
    rows = []
    for name, make in (("DigitsCNN", cnn.DigitsCNN), ("DigitsMLP", cnn.DigitsMLP)):
        seconds: List[float] = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            if fixed:
                epochs, lr = args.epochs or cnn.EPOCHS, args.lr or cnn.LR
                model, history = cnn.train_digits(make, epochs=epochs, lr=lr, seed=args.seed, batch_size=batch_size,
                                                  progress=False, live=False)
                val_accuracy = history.val_accuracy[-1]
            else:
                choice = cnn.select_on_validation(make, lrs=cnn.LRS, max_epochs=cnn.MAX_EPOCHS, seed=args.seed,
                                                  batch_size=batch_size)
                model, epochs, lr, val_accuracy = choice.model, choice.epochs, choice.lr, choice.val_accuracy
            seconds.append(time.perf_counter() - t0)
        models = [model] + [
            cnn.train_digits(make, epochs=epochs, lr=lr, seed=args.seed + k, batch_size=batch_size, progress=False, live=False)[0]
            for k in range(1, args.seeds)]
        split = data.digits_splits()  # the test part, read once per model, after the choice
        test = [cnn.evaluate(m, split.X_test, split.y_test)[1] for m in models]
        rows.append({"model": name, "parameters": cnn.count_parameters(model), "epochs": epochs, "lr": lr,
                     "batch_size": batch_size, "seconds": statistics.median(seconds), "runs": seconds,
                     "val_accuracy": val_accuracy, "test": test})
    return {"rows": rows, "selected": not fixed, "threads": torch.get_num_threads(), "torch": torch.__version__,
            "lrs": cnn.LRS, "max_epochs": cnn.MAX_EPOCHS}


def report(args: argparse.Namespace, r: Dict[str, object], now: Optional[str] = None) -> tuple:
    """``(ok, Markdown body of the section)``; the targets apply to the CNN, the MLP is its baseline."""
    now = now or datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    cli = " ".join(["python tools/bench_cnn.py", *getattr(args, "argv", [])])
    what = (f"`course_lib.cnn.select_on_validation` (learning rate from {', '.join(f'{lr:g}' for lr in r['lrs'])}, "
            f"1 to {r['max_epochs']} epochs, chosen on validation)" if r["selected"]
            else "`course_lib.cnn.train_digits` with the given setting (no selection)")
    lines = [
        "## Digits CNN (chapter 07)",
        "",
        f"`{cli}` on {now}, torch {r['torch']}. "
        + ("Chapter 07's protocol" if r["selected"] else "A quick run, not chapter 07's protocol") + f": {what}, Adam, cross-entropy, seed "
        f"{args.seed}, no augmentation, on the 8x8 digits split into 1,078 training, 269 validation and 450 test "
        "images (`course_lib.data.digits_splits`); the chosen setting is then trained with "
        f"{args.seeds} seed(s) and each model is measured on the test part once. Seconds: loading the digits and "
        "the selection (or training) for one seed, imports excluded"
        + (f", median of {args.repeats} runs" if args.repeats > 1 else "") + ". "
        f"Targets for the CNN: test accuracy >= {args.min_accuracy:g} and at most {args.budget:g} s on 2 CPU cores; "
        "the MLP (as many parameters, same protocol) is its baseline.",
        "",
        "| model | parameters | epochs | lr | batch | torch threads | seconds | validation accuracy "
        f"| test accuracy, seed {args.seed} | test accuracy, {args.seeds} seed(s): mean ± sd | status |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    ok = True
    for row in r["rows"]:
        test = row["test"]
        spread = f"{statistics.mean(test):.4f} ± {statistics.stdev(test):.4f}" if len(test) > 1 else f"{test[0]:.4f}"
        if row["model"] == "DigitsCNN":
            problems = ([] if test[0] >= args.min_accuracy else [f"accuracy below {args.min_accuracy:g}"]) + (
                [] if row["seconds"] <= args.budget else [f"slower than {args.budget:g} s"])
            ok = not problems
            status = "OK" if ok else "over: " + ", ".join(problems)
        else:
            status = "baseline"
        lines.append(f"| {row['model']} | {row['parameters']:,} | {row['epochs']} | {row['lr']:g} | {row['batch_size']} | "
                     f"{r['threads']} | {row['seconds']:.2f} | {row['val_accuracy']:.4f} | {test[0]:.4f} | {spread} | {status} |")
    return ok, "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python tools/bench_cnn.py", description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=None,
                   help="fix the number of epochs instead of choosing it on validation (with --lr alone: course_lib.cnn.EPOCHS)")
    p.add_argument("--lr", type=float, default=None,
                   help="fix Adam's learning rate instead of choosing it on validation (with --epochs alone: course_lib.cnn.LR)")
    p.add_argument("--batch-size", type=int, default=None, help="minibatch size (default course_lib.cnn.BATCH_SIZE = 32)")
    p.add_argument("--seed", type=int, default=0, help="seed of the weights and the batch order (default 0)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1, as the notebook; 0: torch's choice)")
    p.add_argument("--repeats", type=int, default=1, help="selections (or trainings) timed, the median is reported (default 1)")
    p.add_argument("--seeds", type=int, default=5, help="seeds the chosen setting is trained and tested with (default 5)")
    p.add_argument("--min-accuracy", type=float, default=0.97, help="required test accuracy of the CNN (default 0.97)")
    p.add_argument("--budget", type=float, default=30.0, help="allowed seconds for the CNN's selection or training (default 30)")
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
    if args.threads < 0 or args.repeats < 1 or args.seeds < 1:
        parser.error("--threads must be >= 0, --repeats and --seeds >= 1")
    r = measure(args)
    ok, body = report(args, r)
    print(body)
    if not args.no_write:
        bench.write_sections(args.report, {SECTION: body})
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
