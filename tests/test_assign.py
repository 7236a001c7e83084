"""`course assign`: exercises/ generated from solutions/, malformed sheets refused
with file:line and nothing written, and the registry agrees with the sheets."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from course_lib import assign
from course_lib import questions as registry
from course_lib.cli import main

ROOT = Path(__file__).resolve().parents[1]
GOOD = '''# %% [markdown]
# # Sheet

# %%
def f(x):
    """Double x."""
    ### BEGIN SOLUTION 01.1
    y = 2 * x
    return y
    ### END SOLUTION

# %%
check("01.1", f)
'''


def test_exercises_are_up_to_date():
    stale = assign.stale(ROOT)
    assert not stale, f"exercises/ is stale, run `course assign`: {[str(p.relative_to(ROOT)) for p in stale]}"


def test_region_becomes_a_stub_naming_the_exercise():
    text, regions = assign.make_exercise(GOOD, "s.py")
    assert [r.qid for r in regions] == ["01.1"]
    assert '    raise NotImplementedError("Exercise 01.1: replace this line with your code")' in text
    assert "2 * x" not in text and "BEGIN SOLUTION" not in text
    assert '"""Double x."""' in text and 'check("01.1", f)' in text


BAD = {
    "never closed": (GOOD.replace("    ### END SOLUTION\n", ""), 7),
    "END without BEGIN": (GOOD.replace("    ### BEGIN SOLUTION 01.1\n", ""), 9),
    "nested": (GOOD.replace("    return y\n", "    ### BEGIN SOLUTION 01.2\n    return y\n"), 9),
    "marker in markdown": ("# %% [markdown]\n# ### BEGIN SOLUTION 01.1\n# text\n", 2),
    "marker in header": ("# ---\n# ### BEGIN SOLUTION 01.1\n# ---\n", 2),
    "no exercise id": (GOOD.replace("SOLUTION 01.1", "SOLUTION"), 7),
    "END closes another id": (GOOD.replace("### END SOLUTION", "### END SOLUTION 01.9"), 10),
    "open across cells": (GOOD.replace("    ### END SOLUTION\n", "").replace("# %%\ncheck", "# %%\n    ### END SOLUTION\ncheck"), 7),
    "garbled marker": (GOOD.replace("### END SOLUTION", "## END SOLUTION"), 10),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_malformed_sheet_is_refused_with_file_and_line(case):
    text, line = BAD[case]
    with pytest.raises(assign.AssignError, match=rf"^bad\.py:{line}: "):
        assign.make_exercise(text, "bad.py")


def _course(tmp_path: Path, sheets: dict[str, str]) -> Path:
    (tmp_path / "solutions").mkdir()
    (tmp_path / "exercises").mkdir()
    for name, text in sheets.items():
        (tmp_path / "solutions" / name).write_text(text)
    return tmp_path


def test_assign_writes_nothing_when_any_sheet_is_malformed(tmp_path, capsys):
    root = _course(tmp_path, {"01_a.py": GOOD, "02_b.py": BAD["nested"][0]})
    assert main(["assign", "--root", str(root)]) == 1
    assert "solutions/02_b.py:9:" in capsys.readouterr().err
    assert list((root / "exercises").iterdir()) == []


def test_assign_writes_py_and_ipynb_then_reports_up_to_date(tmp_path):
    root = _course(tmp_path, {"01_a.py": GOOD})
    assert main(["assign", "--root", str(root)]) == 0
    assert sorted(p.name for p in (root / "exercises").iterdir()) == ["01_a.ipynb", "01_a.py"]
    assert main(["assign", "--root", str(root), "--check"]) == 0
    (root / "exercises" / "01_a.py").write_text("edited by hand\n")
    (root / "exercises" / "99_orphan.py").write_text("")
    assert main(["assign", "--root", str(root), "--check"]) == 1
    assert main(["assign", "--root", str(root)]) == 0
    assert not (root / "exercises" / "99_orphan.py").exists()
    assert main(["assign", "--root", str(root), "--check"]) == 0


def test_cli_usage_errors_exit_2():
    for argv in (["--no-such-flag"], ["assign", "--bogus"], ["frobnicate"]):
        out = subprocess.run([sys.executable, "-m", "course_lib.cli", *argv], capture_output=True, text=True)
        assert out.returncode == 2, argv
    out = subprocess.run([sys.executable, "-m", "course_lib.cli"], capture_output=True, text=True)
    assert out.returncode == 2 and "assign" in out.stdout


def test_every_solution_region_is_a_registered_question_of_its_sheet():
    for sheet in sorted((ROOT / "solutions").glob("*.py")):
        _, regions = assign.make_exercise(sheet.read_text(), sheet.name)
        ids = [r.qid for r in regions]
        assert ids, f"{sheet.name} has no solution regions"
        registered = [q.id for q in registry.for_sheet(sheet.stem)]
        assert sorted(set(ids)) == registered, f"{sheet.name}: regions {ids} vs registry {registered}"


def test_every_question_has_a_sheet_and_a_check_cell():
    for q in registry.all_questions():
        sheet = ROOT / "solutions" / f"{q.sheet}.py"
        assert sheet.exists(), f"question {q.id} names sheet {q.sheet}, which does not exist"
        text = sheet.read_text()
        assert re.search(rf'check\("{re.escape(q.id)}",\s*{q.func_name}\)', text), f"{sheet.name}: no check cell for {q.id}"
        assert re.search(rf"def {q.func_name}\(", text), f"{sheet.name}: no function {q.func_name} for {q.id}"
        assert 3 <= len(registry.for_sheet(q.sheet)) <= 7, f"sheet {q.sheet} should have 3-7 questions"
