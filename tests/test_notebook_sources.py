"""Notebook sources: .py is the truth, .ipynb generated; every notebook has the same
setup cell and a correct Colab badge; lecture notebooks end with a widget self-check
and show library code instead of copying it."""

from __future__ import annotations

import ast
import functools
import inspect
import json
import pkgutil
import importlib
import tomllib
from pathlib import Path

import jupytext
import pytest

import course_lib
from course_lib import notebook_files

ROOT = Path(__file__).resolve().parents[1]
REPO_URL = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["urls"]["Repository"]
GITHUB_PATH = REPO_URL.removeprefix("https://github.com/")
SOURCES = notebook_files.sources(ROOT)
LECTURES = [p for p in SOURCES if p.parent.name == "notebooks"]
SETUP_CELL = f'''# Setup. On Colab this installs course_lib from the course repository (Colab keeps its own
# torch and ipywidgets); everywhere else it does nothing.
import sys

if "google.colab" in sys.modules:
    get_ipython().run_line_magic("pip", "install --quiet git+{REPO_URL}")'''


def test_there_are_notebooks():
    assert len(LECTURES) >= 1 and all(p.name[:2].isdigit() for p in SOURCES)


def test_every_ipynb_is_generated_from_its_py():
    stale = notebook_files.stale(ROOT)
    assert not stale, f"regenerate with `course sync`: {[str(p.relative_to(ROOT)) for p in stale]}"


def test_no_ipynb_without_py_source():
    for folder in notebook_files.NOTEBOOK_DIRS:
        for nb in (ROOT / folder).glob("*.ipynb"):
            assert nb.with_suffix(".py").exists(), f"{nb} has no .py source"


def test_render_is_deterministic_and_strips_outputs():
    text = "# %%\nprint(1)\n\n# %% [markdown]\n# hi\n"
    a, b = notebook_files.render_ipynb(text), notebook_files.render_ipynb(text)
    assert a == b
    nb = json.loads(a)
    assert nb["cells"][0]["outputs"] == [] and nb["cells"][0]["execution_count"] is None


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_setup_cell_and_colab_badge(path: Path):
    nb = jupytext.read(path)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code and code[0].source == SETUP_CELL, f"{path}: the first code cell must be the standard setup cell"
    badge = f"https://colab.research.google.com/github/{GITHUB_PATH}/blob/main/{path.parent.name}/{path.stem}.ipynb"
    assert badge in nb.cells[0].source, f"{path}: first cell needs the Colab badge {badge}"


@pytest.mark.parametrize("path", LECTURES, ids=lambda p: p.name)
def test_lecture_ends_with_widget_self_check(path: Path):
    nb = jupytext.read(path)
    last_code = [c for c in nb.cells if c.cell_type == "code"][-1]
    assert "self_check()" in last_code.source, f"{path}: the last code cell must run the widgets' self_check()"


@functools.lru_cache(maxsize=None)
def _library_functions() -> dict[str, str]:
    """name -> normalised source of every function/class defined in course_lib (computed once:
    it imports and parses every module, ~3 s)."""
    found: dict[str, str] = {}
    for info in pkgutil.walk_packages(course_lib.__path__, "course_lib."):
        module = importlib.import_module(info.name)
        for name, obj in vars(module).items():
            if (inspect.isfunction(obj) or inspect.isclass(obj)) and getattr(obj, "__module__", None) == info.name:
                try:
                    found[name] = ast.dump(ast.parse(inspect.getsource(obj).strip()).body[0])
                except (OSError, TypeError, SyntaxError, IndentationError):
                    pass
    return found


@pytest.mark.parametrize("path", LECTURES, ids=lambda p: p.name)
def test_lectures_show_library_code_instead_of_copying_it(path: Path):
    library = _library_functions()
    for cell in jupytext.read(path).cells:
        if cell.cell_type != "code":
            continue
        try:
            tree = ast.parse(cell.source)
        except SyntaxError:
            continue
        for node in tree.body:
            if isinstance(node, (ast.FunctionDef, ast.ClassDef)) and node.name in library:
                assert ast.dump(node) != library[node.name], (
                    f"{path.name} copies course_lib's {node.name}; use show_source({node.name}) instead"
                )


@pytest.mark.parametrize("path", LECTURES, ids=lambda p: p.name)
def test_readme_has_colab_and_binder_badges_for_every_chapter(path: Path):
    readme = (ROOT / "README.md").read_text()
    nb = f"notebooks/{path.stem}.ipynb"
    assert f"https://colab.research.google.com/github/{GITHUB_PATH}/blob/main/{nb}" in readme
    assert f"https://mybinder.org/v2/gh/{GITHUB_PATH}/main?urlpath=lab/tree/{nb}" in readme


def test_readme_quickstart_is_two_commands_and_ci_runs_the_test_one():
    readme = (ROOT / "README.md").read_text()
    block = readme.split("## Quickstart", 1)[1].split("```bash", 1)[1].split("```", 1)[0]
    commands = [line.split("#")[0].strip() for line in block.strip().splitlines()]
    assert commands == ["make lab", "make test"]
    ci = [l.strip() for l in (ROOT / ".ci" / "run").read_text().splitlines() if l.strip() and not l.startswith("#")]
    assert "make test" in ci and not any(l.startswith(("pytest", "python", "pip")) for l in ci)


@pytest.mark.parametrize("path", LECTURES, ids=lambda p: p.name)
def test_glossary_has_a_section_per_chapter(path: Path):
    glossary = (ROOT / "docs" / "glossary.md").read_text()
    section = glossary.split(f"## {path.name[:2]} ·", 1)
    assert len(section) == 2, f"docs/glossary.md has no section for chapter {path.name[:2]}"
    rows = [l for l in section[1].split("\n## ", 1)[0].splitlines() if l.startswith("| ") and "---" not in l][1:]
    assert len(rows) >= 5 and all(any("\u4e00" <= ch <= "\u9fff" for ch in r) for r in rows), "each term needs its Chinese name"


def test_every_sheet_has_a_question_suite():
    """Each sheet with registered questions has tests/test_questions_chNN.py running tests/question_suite.py."""
    from course_lib import questions

    sheets = {q.sheet for q in questions.all_questions()}
    assert sheets, "no questions registered"
    suites = {}
    for path in sorted((ROOT / "tests").glob("test_questions_ch*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        names = {t.id: node.value for node in tree.body if isinstance(node, ast.Assign) for t in node.targets if isinstance(t, ast.Name)}
        classes = [node for node in tree.body if isinstance(node, ast.ClassDef)
                   and any(isinstance(b, ast.Name) and b.id == "QuestionSuite" for b in node.bases)]
        if "SHEET" in names and classes and isinstance(names["SHEET"], ast.Constant):
            suites[names["SHEET"].value] = path.name
    missing = sorted(sheets - set(suites))
    assert not missing, f"sheets without a QuestionSuite test module: {missing} (see tests/question_suite.py)"
