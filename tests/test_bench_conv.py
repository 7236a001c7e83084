"""tools/bench_conv.py: runs on tiny sizes, writes only its own section, exits 0 or 1 by the target."""

from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _load():
    spec = importlib.util.spec_from_file_location("course_tools_bench_conv", REPO / "tools" / "bench_conv.py")
    module = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


bench_conv = _load()
TINY = ["--batch", "2", "--c-in", "2", "--c-out", "3", "--size", "6", "--repeats", "2", "--rounds", "1", "--naive-repeats", "1"]


def test_help() -> None:
    done = subprocess.run([sys.executable, str(REPO / "tools" / "bench_conv.py"), "--help"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "usage:" in done.stdout and "--no-write" in done.stdout


def test_tiny_run_prints_the_section_and_writes_nothing(capsys: pytest.CaptureFixture) -> None:
    report = REPO / "docs" / "benchmarks.md"
    before = report.read_text(encoding="utf-8") if report.exists() else None
    code = bench_conv.main(TINY + ["--no-write"])
    out = capsys.readouterr().out
    assert code in (0, 1)
    assert "## Convolution forward" in out and "N=2, C_in=2, C_out=3, 6×6, 3×3, padding 1" in out
    assert "`course_lib.conv.conv2d` (im2col + matmul)" in out and ("OK" in out or "OVER" in out)
    assert (report.read_text(encoding="utf-8") if report.exists() else None) == before


def test_writes_only_its_section(tmp_path: Path) -> None:
    path = tmp_path / "benchmarks.md"
    path.write_text("# B\n\n<!-- bench:widgets -->\nkept\n<!-- /bench:widgets -->\n", encoding="utf-8")
    bench_conv.main(TINY + ["--naive-batch", "1", "--report", str(path)])
    text = path.read_text(encoding="utf-8")
    assert "kept" in text and text.count("<!-- bench:conv -->") == 1
    section = bench_conv.bench.read_section(text, "conv")
    assert "**smaller input: N=1**" in section


def _args(**changes) -> argparse.Namespace:
    args = bench_conv.build_parser().parse_args([])
    for k, v in changes.items():
        setattr(args, k, v)
    return args


@pytest.mark.parametrize("ours_ms, ok", [(2.9, True), (3.0, True), (3.1, False), (10.0, False)])
def test_target_decides_the_exit_status(ours_ms: float, ok: bool) -> None:
    results = {"torch_ms": 1.0, "ours_ms": ours_ms, "naive_ms": 200.0, "naive_batch": 32, "torch_small_ms": 1.0,
               "threads": 2, "torch_version": "x", "out_shape": (32, 32, 28, 28)}
    body, passed = bench_conv.report(_args(), results, now="today")
    assert passed is ok
    assert ("≤ 3: OK" if ok else "≤ 3: OVER") in body
    assert f"| {ours_ms:.2f} | {ours_ms:.2f} |" in body  # median ms and ratio against 1.0 ms


@pytest.mark.parametrize("argv", [["--batch", "0"], ["--rounds", "0"], ["--padding", "-1"], ["--size", "1", "--padding", "0"], ["--bogus"]])
def test_usage_errors_exit_2(argv) -> None:
    with pytest.raises(SystemExit) as exc:
        bench_conv.main(argv + ["--no-write"])
    assert exc.value.code == 2
