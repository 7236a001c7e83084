"""tools/bench.py's report writer: marked sections are replaced, everything else is kept."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _load_bench():
    spec = importlib.util.spec_from_file_location("course_tools_bench", REPO / "tools" / "bench.py")
    module = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


bench = _load_bench()

DOC = """# Benchmarks

intro text

<!-- bench:notebooks -->
old notebooks
<!-- /bench:notebooks -->

hand-written notes

<!-- bench:training -->
owned by another script
<!-- /bench:training -->
"""


def test_importing_bench_is_cheap() -> None:
    code = (
        "import importlib.util, sys\n"
        f"spec = importlib.util.spec_from_file_location('b', {str(REPO / 'tools' / 'bench.py')!r})\n"
        "m = sys.modules['b'] = importlib.util.module_from_spec(spec)\n"
        "spec.loader.exec_module(m)\n"
        "heavy = [m for m in ('nbclient', 'torch', 'matplotlib', 'tqdm', 'course_lib') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, timeout=60)


def test_replace_keeps_text_outside_the_markers() -> None:
    out = bench.replace_section(DOC, "notebooks", "| a | b |\n")
    assert "old notebooks" not in out
    assert "<!-- bench:notebooks -->\n| a | b |\n<!-- /bench:notebooks -->" in out
    for kept in ("# Benchmarks", "intro text", "hand-written notes", "owned by another script"):
        assert kept in out
    assert out.index("| a | b |") < out.index("hand-written notes")  # replaced in place, not appended
    assert bench.read_section(out, "training") == "owned by another script"


def test_replace_appends_a_missing_section_and_is_idempotent() -> None:
    out = bench.replace_section(DOC, "widgets", "W")
    assert out.endswith("<!-- bench:widgets -->\nW\n<!-- /bench:widgets -->\n")
    assert bench.replace_section(out, "widgets", "W") == out
    assert bench.read_section(out, "widgets") == "W"
    assert bench.read_section(out, "absent") is None


@pytest.mark.parametrize(
    "text",
    [
        "<!-- bench:x -->\nno end\n",
        "<!-- /bench:x -->\n<!-- bench:x -->\n",
        "<!-- bench:x -->\n<!-- /bench:x -->\n<!-- bench:x -->\n<!-- /bench:x -->\n",
    ],
)
def test_malformed_markers_raise_instead_of_guessing(text: str) -> None:
    with pytest.raises(ValueError):
        bench.replace_section(text, "x", "body")


def test_bad_section_name() -> None:
    with pytest.raises(ValueError):
        bench.replace_section(DOC, "a -->", "body")


def test_write_sections_creates_then_updates_atomically(tmp_path: Path) -> None:
    path = tmp_path / "docs" / "benchmarks.md"
    bench.write_sections(path, {"machine": "M1", "notebooks": "N1"}, header="# H\n")
    text = path.read_text()
    assert text.startswith("# H\n")
    assert bench.read_section(text, "machine") == "M1"
    path.write_text(text + "\nmy note\n")
    bench.write_sections(path, {"notebooks": "N2"})
    text = path.read_text()
    assert bench.read_section(text, "notebooks") == "N2"
    assert bench.read_section(text, "machine") == "M1"
    assert "my note" in text
    assert [p.name for p in path.parent.iterdir()] == ["benchmarks.md"]  # no temporary file left


def test_write_sections_leaves_the_file_alone_on_error(tmp_path: Path) -> None:
    path = tmp_path / "benchmarks.md"
    path.write_text("<!-- bench:x -->\nno end\n")
    with pytest.raises(ValueError):
        bench.write_sections(path, {"x": "new"})
    assert path.read_text() == "<!-- bench:x -->\nno end\n"
    assert [p.name for p in tmp_path.iterdir()] == ["benchmarks.md"]


def test_merge_rows_keeps_unmeasured_rows_that_still_exist() -> None:
    old = "\n".join(
        [
            "intro",
            "| notebook | seconds |",
            "|---|---:|",
            "| `a.ipynb` | 1.0 |",
            "| `b.ipynb` | 2.0 |",
            "| `gone.ipynb` | 3.0 |",
        ]
    )
    rows = bench.merge_rows(old, {"`b.ipynb`": "| `b.ipynb` | 9.0 |"}, keep=lambda k: k != "`gone.ipynb`")
    assert rows == ["| `a.ipynb` | 1.0 |", "| `b.ipynb` | 9.0 |"]
    assert bench.merge_rows(None, {"`c`": "| `c` | 1 |"}, keep=lambda k: True) == ["| `c` | 1 |"]


def test_rows_and_budgets() -> None:
    ok = bench.NotebookResult("notebooks/01_x.ipynb", 12.34, 10, (3, 5.0))
    slow = bench.NotebookResult("notebooks/02_x.ipynb", 61.0, 10, (3, 50.0))
    broken = bench.NotebookResult("notebooks/03_x.ipynb", 2.0, 10, (1, 1.0), error="CellExecutionError: a | b")
    assert ok.ok and not slow.ok and not broken.ok
    assert bench.notebook_row(ok, "2026-01-01") == (
        "| `notebooks/01_x.ipynb` | 12.3 | 10 | code cell 3: 5.0 s | 60 | OK | 2026-01-01 |"
    )
    assert "| over |" in bench.notebook_row(slow, "d")
    row = bench.notebook_row(broken, "d")
    assert "error (CellExecutionError: a \\| b)" in row  # a pipe in a message does not split the cell
    assert list(bench.table_rows("| h |\n|---|\n" + row)) == ["`notebooks/03_x.ipynb`"]

    fast = bench.WidgetResult("m.Fast", controls={"a": 0.010, "b": 0.030}, median_s=0.02, cpu_median_s=0.02)
    one_slow = bench.WidgetResult("m.Slow", controls={"a": 0.010, "b": 0.080}, median_s=0.02, cpu_median_s=0.02)
    skipped = bench.WidgetResult("m.Args", skipped="needs epochs")
    failed = bench.WidgetResult("m.Bad", error="ValueError: x")
    assert fast.ok and not one_slow.ok and skipped.ok and not failed.ok
    assert one_slow.worst == ("b", 0.080)
    assert "`b` 80.0 | 50 | over" in bench.widget_row(one_slow, "d", 20)
    assert "skipped: needs epochs" in bench.widget_row(skipped, "d", 20)


def test_usage_errors_exit_2(capsys: pytest.CaptureFixture) -> None:
    for argv in (["--repeats", "0"], ["--no-notebooks", "--no-widgets"], ["--dirs", "no-such-folder"], ["--bogus"]):
        with pytest.raises(SystemExit) as exc:
            bench.main(argv)
        assert exc.value.code == 2, argv


def test_make_bench_runs_every_benchmark_script() -> None:
    """`make bench` must run each tools/bench*.py, and each must write its own section."""
    makefile = (REPO / "Makefile").read_text(encoding="utf-8")
    line = next(ln for ln in makefile.splitlines() if ln.startswith("BENCH_SCRIPTS"))
    listed = set(line.split("=", 1)[1].split())
    scripts = {f"tools/{p.name}" for p in (REPO / "tools").glob("bench*.py")}
    assert listed == scripts, f"Makefile BENCH_SCRIPTS {sorted(listed)} != tools/bench*.py {sorted(scripts)}"
    for script in scripts:
        source = (REPO / script).read_text(encoding="utf-8")
        assert "write_sections" in source, f"{script} does not write a section of docs/benchmarks.md"
        done = subprocess.run([sys.executable, str(REPO / script), "--help"], capture_output=True, text=True, cwd=REPO, timeout=120)
        assert done.returncode == 0 and "usage:" in done.stdout, f"{script} --help: {done.returncode} {done.stderr[-500:]}"


def test_a_notebook_s_recorded_figures_reach_the_report(tmp_path: Path) -> None:
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(
        "from course_lib.show import record\n"
        "record('adding problem: GRU test MSE', 0.0431, unit='(mean: 0.161)', fmt='.3f')\n"
        "record('time', float('nan'))"
    )]
    path = tmp_path / "figs.ipynb"
    nbformat.write(nb, path)

    class Bar:
        def update(self, n: int) -> None:
            pass

    result = bench.run_notebook(path, 60, Bar())
    assert result.error is None, result.error
    assert [f["name"] for f in result.figures] == ["adding problem: GRU test MSE", "time"]
    row = bench.figure_row("notebooks/x.ipynb", result.figures[0], "2026-01-01")
    assert row == "| `notebooks/x.ipynb` | adding problem: GRU test MSE | 0.043 (mean: 0.161) | 2026-01-01 |"
    assert "| nan |" in bench.figure_row("n", result.figures[1], "d")


def test_record_prints_and_refuses_what_is_not_a_number(capsys: pytest.CaptureFixture, monkeypatch) -> None:
    from course_lib.show import record

    monkeypatch.delenv("COURSE_FIGURES", raising=False)
    assert record("loss", 1.23456, unit="nats") == 1.23456
    assert capsys.readouterr().out == "loss: 1.235 nats\n"
    with pytest.raises(TypeError, match="record: value should be a number, got str"):
        record("loss", "low")
    with pytest.raises(ValueError, match="record: name should be a non-empty str"):
        record(" ", 1.0)
