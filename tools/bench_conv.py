"""Time course_lib.conv's forward convolution against F.conv2d; write the `conv` section of docs/benchmarks.md.

    python tools/bench_conv.py              # the default size, writes docs/benchmarks.md
    python tools/bench_conv.py --no-write   # print the section only
    python tools/bench_conv.py --batch 4 --size 12 --repeats 5 --no-write   # a quick run

Three forward passes on the same float32 CPU input, each timed ``--repeats`` times after
warm-up runs, in ``--rounds`` rounds (the lowest round median counts): ``F.conv2d`` (PyTorch), ``course_lib.conv.conv2d`` (im2col + one
matrix product) and ``course_lib.conv.conv2d_naive`` (a Python loop over output positions;
``--naive-batch`` runs it on fewer images, and its ratio is then taken against F.conv2d on
those same images).
Torch uses the threads the machine gives it unless ``--threads`` is set; the table says how many.

Exit status: 0 when ``conv2d`` takes at most ``--target`` (default 3) times as long as
``F.conv2d``, 1 otherwise (the section is still written), 2 on usage error.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Dict, List, Optional

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import bench  # noqa: E402  (section writer shared with tools/bench.py)

SECTION = "conv"


def median_ms(fn: Callable[[], object], repeats: int, warmup: int = 2) -> float:
    """Median wall-clock milliseconds of ``fn()`` over ``repeats`` calls, after ``warmup`` calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1000


def measure(args: argparse.Namespace) -> Dict[str, object]:
    """Time the three implementations; also check that they agree (float32 rounding)."""
    import torch
    import torch.nn.functional as F

    from course_lib import conv

    if args.threads:
        torch.set_num_threads(args.threads)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(args.batch, args.c_in, args.size, args.size, generator=gen)
    w = torch.randn(args.c_out, args.c_in, args.kernel, args.kernel, generator=gen) / (args.c_in * args.kernel**2) ** 0.5
    b = torch.randn(args.c_out, generator=gen)
    hyper = dict(stride=1, padding=args.padding)
    naive_batch = min(args.naive_batch or args.batch, args.batch)
    x_naive = x[:naive_batch]

    ref = F.conv2d(x, w, b, **hyper)
    for name, out in (("conv2d", conv.conv2d(x, w, b, **hyper)), ("conv2d_naive", conv.conv2d_naive(x_naive, w, b, **hyper))):
        err = float((out - ref[: out.shape[0]]).abs().max())
        if not err <= 1e-3:
            raise SystemExit(f"bench_conv: {name} differs from F.conv2d by {err:.3g}")
    with torch.no_grad():  # best of --rounds medians: a burst of load from other processes hits one round only
        torch_ms = min(median_ms(lambda: F.conv2d(x, w, b, **hyper), args.repeats) for _ in range(args.rounds))
        ours_ms = min(median_ms(lambda: conv.conv2d(x, w, b, **hyper), args.repeats) for _ in range(args.rounds))
        naive_ms = median_ms(lambda: conv.conv2d_naive(x_naive, w, b, **hyper), args.naive_repeats, warmup=1)
        torch_small_ms = torch_ms if naive_batch == args.batch else median_ms(lambda: F.conv2d(x_naive, w, b, **hyper), args.repeats)
    return {
        "torch_ms": torch_ms, "ours_ms": ours_ms, "naive_ms": naive_ms, "naive_batch": naive_batch,
        "torch_small_ms": torch_small_ms,
        "threads": torch.get_num_threads(), "torch_version": torch.__version__, "out_shape": tuple(ref.shape),
    }


def report(args: argparse.Namespace, r: Dict[str, object], now: Optional[str] = None) -> tuple:
    """The Markdown section and whether the vectorised conv2d meets the target."""
    torch_ms, ours_ms, naive_ms = float(r["torch_ms"]), float(r["ours_ms"]), float(r["naive_ms"])  # type: ignore[arg-type]
    naive_batch = int(r["naive_batch"])  # type: ignore[arg-type]
    naive_ratio = naive_ms / float(r["torch_small_ms"])  # type: ignore[arg-type]
    ratio = ours_ms / torch_ms
    ok = ratio <= args.target
    now = now or datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    shape = f"N={args.batch}, C_in={args.c_in}, C_out={args.c_out}, {args.size}×{args.size}, {args.kernel}×{args.kernel}, padding {args.padding}"
    naive_size = "full input" if naive_batch == args.batch else f"**smaller input: N={naive_batch}** (ratio vs F.conv2d on it)"
    rows: List[str] = [
        f"| `F.conv2d` (PyTorch) | full input | {torch_ms:.2f} | 1.0 | reference |",
        f"| `course_lib.conv.conv2d` (im2col + matmul) | full input | {ours_ms:.2f} | {ratio:.2f} | "
        f"≤ {args.target:g}: {'OK' if ok else 'OVER'} |",
        f"| `course_lib.conv.conv2d_naive` (loop over positions) | {naive_size} | {naive_ms:.1f} | "
        f"{naive_ratio:.0f} | - (teaching code) |",
    ]
    body = "\n".join(
        [
            "## Convolution forward",
            "",
            f"`python tools/bench_conv.py` on {now}: forward pass, {shape}, output {tuple(r['out_shape'])}, float32, "
            f"CPU, torch {r['torch_version']} with {r['threads']} thread(s); the lowest of {args.rounds} medians of "
            f"{args.repeats} runs each ({args.naive_repeats} runs for the naive loop), after warm-up. "
            "A loaded machine inflates all times.",
            "",
            "| implementation | measured on | median ms | × F.conv2d | target |",
            "|---|---|---:|---:|---|",
            *rows,
        ]
    )
    return body, ok


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python tools/bench_conv.py", description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=32, help="N, images per batch (default 32)")
    p.add_argument("--c-in", type=int, default=16, help="input channels (default 16)")
    p.add_argument("--c-out", type=int, default=32, help="output channels (default 32)")
    p.add_argument("--size", type=int, default=28, help="height = width of the images (default 28)")
    p.add_argument("--kernel", type=int, default=3, help="kernel height = width (default 3)")
    p.add_argument("--padding", type=int, default=1, help="zero padding (default 1)")
    p.add_argument("--repeats", type=int, default=30, help="timed runs of F.conv2d and conv2d (default 30)")
    p.add_argument("--rounds", type=int, default=3, help="rounds of --repeats runs; the best round's median counts (default 3)")
    p.add_argument("--naive-repeats", type=int, default=3, help="timed runs of conv2d_naive (default 3)")
    p.add_argument("--naive-batch", type=int, default=0, help="images for conv2d_naive (default 0: the whole batch)")
    p.add_argument("--threads", type=int, default=0, help="torch threads (default 0: as the machine gives)")
    p.add_argument("--target", type=float, default=3.0, help="allowed conv2d / F.conv2d time ratio (default 3)")
    p.add_argument("--report", type=Path, default=bench.REPORT, help="the Markdown file to update (default docs/benchmarks.md)")
    p.add_argument("--no-write", action="store_true", help="print the section, do not write the report")
    return p


def main(argv: Optional[List[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    positive = ("batch", "c_in", "c_out", "size", "kernel", "repeats", "rounds", "naive_repeats")
    if any(getattr(args, name) < 1 for name in positive) or args.padding < 0 or args.naive_batch < 0 or args.threads < 0:
        parser.error("sizes and repeats must be >= 1, padding, --naive-batch and --threads >= 0")
    if args.size + 2 * args.padding < args.kernel:
        parser.error(f"the kernel ({args.kernel}) does not fit into the padded input ({args.size} + 2*{args.padding})")
    results = measure(args)
    body, ok = report(args, results)
    print(body)
    if not args.no_write:
        bench.write_sections(args.report, {SECTION: body})
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
