"""tools/bench_cnn.py: a quick run prints its section and exits 0 or 1 by its targets, writes only
its own section (and only without --no-write), and rejects bad arguments with exit 2."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _load(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


bench_cnn = _load("course_tools_bench_cnn", REPO / "tools" / "bench_cnn.py")

QUICK = ["--epochs", "1", "--threads", "1"]


def test_quick_run_meets_a_low_target_and_does_not_write(capsys):
    report = REPO / "docs" / "benchmarks.md"
    before = report.read_text() if report.exists() else None
    assert bench_cnn.main(QUICK + ["--min-accuracy", "0.5", "--no-write"]) == 0
    out = capsys.readouterr().out
    assert "## Digits CNN (chapter 07)" in out and "| 1 | 0.01 | 32 | 1 |" in out and "| OK |" in out
    assert "python tools/bench_cnn.py --epochs 1" in out
    assert (report.read_text() if report.exists() else None) == before


def test_missed_targets_exit_1_and_say_why(capsys):
    assert bench_cnn.main(QUICK + ["--min-accuracy", "1.01", "--no-write"]) == 1
    assert "over: accuracy below 1.01" in capsys.readouterr().out
    assert bench_cnn.main(QUICK + ["--min-accuracy", "0.5", "--budget", "0.0001", "--no-write"]) == 1
    assert "over: slower than 0.0001 s" in capsys.readouterr().out


def test_writes_only_its_own_section(tmp_path):
    path = tmp_path / "benchmarks.md"
    path.write_text("# Benchmarks\n\nintro\n\n<!-- bench:conv -->\nconv rows\n<!-- /bench:conv -->\n")
    assert bench_cnn.main(QUICK + ["--min-accuracy", "0.5", "--report", str(path)]) == 0
    text = path.read_text()
    assert "conv rows" in text and "intro" in text
    assert bench_cnn.bench.read_section(text, "cnn").startswith("## Digits CNN (chapter 07)")


@pytest.mark.parametrize("argv", [["--epochs", "0"], ["--lr", "-1"], ["--batch-size", "0"], ["--repeats", "0"], ["--bogus"]])
def test_usage_errors_exit_2(argv):
    with pytest.raises(SystemExit) as exc:
        bench_cnn.main(argv)
    assert exc.value.code == 2


def test_help_is_cheap_and_documents_the_targets():
    out = subprocess.run([sys.executable, str(REPO / "tools" / "bench_cnn.py"), "--help"], capture_output=True, text=True,
                         cwd=REPO, timeout=60)
    assert out.returncode == 0 and "--no-write" in out.stdout and "--min-accuracy" in out.stdout
