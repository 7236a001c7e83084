"""tools/bench_equivalence.py: a quick run reports every from-scratch layer of chapters 08–13
against PyTorch, exits 1 when an error is above the tolerance, writes only its own section."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("course_tools_bench_equivalence", REPO / "tools" / "bench_equivalence.py")
bench_eq = importlib.util.module_from_spec(spec)
sys.modules[spec.name] = bench_eq
spec.loader.exec_module(bench_eq)


def test_quick_run_is_within_tolerance_and_does_not_write(capsys):
    report = REPO / "docs" / "benchmarks.md"
    before = report.read_text()
    assert bench_eq.main(["--configs", "2", "--no-write"]) == 0
    out = capsys.readouterr().out
    assert out.count("\n| `") == len(bench_eq.CHECKS) and "Target <= 1e-10: OK" in out
    assert report.read_text() == before


def test_an_error_above_the_tolerance_exits_1(capsys):
    # float64 round-off of the recurrent layers (~1e-16) is far above 1e-30
    assert bench_eq.main(["--configs", "1", "--tolerance", "1e-30", "--no-write"]) == 1
    assert "OVER" in capsys.readouterr().out


def test_writes_only_its_section(tmp_path):
    path = tmp_path / "benchmarks.md"
    path.write_text("# Benchmarks\n\n<!-- bench:other -->\nkeep me\n<!-- /bench:other -->\n")
    assert bench_eq.main(["--configs", "1", "--report", str(path)]) == 0
    text = path.read_text()
    assert "keep me" in text and bench_eq.bench.read_section(text, "equivalence").startswith("## From scratch vs PyTorch")


@pytest.mark.parametrize("args", [["--configs", "0"], ["--tolerance", "-1"]])
def test_bad_arguments_exit_2(args):
    with pytest.raises(SystemExit) as info:
        bench_eq.main(args + ["--no-write"])
    assert info.value.code == 2
