"""The grader's own process against what hostile submissions leave behind.

Complements tests/test_grader.py (the contract). Each class of hole of issue 9 that
lies in the grader's own process has tests here:

* the batch never blocks on or crashes from what a child left (FIFOs, links and
  folders in place of result files, ``.npy`` headers promising terabytes, a
  3,000-level folder chain, a 60,000-cell notebook, a 3 GB sparse notebook); one
  submission's trouble costs that submission's affected cases only;
* feedback never carries hidden inputs or reference values, whatever the student's
  code raises (exceptions carrying their inputs) or returns (zeros: the error size);
* honest work is graded fairly: Unicode ids, true duplicates refused and the rest
  graded, formula-like ids neutralised in gradebook.csv, every documented way of
  binding the student's function found.

One batch is graded once (module fixture, ``-j 2``); two small batches go through
the ``course grade`` command in a subprocess with a time limit, so that a hang is a
failure and not a stuck test run.
"""

from __future__ import annotations

import ast
import csv
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import unicodedata
from pathlib import Path

import nbformat
import numpy as np
import pytest
import torch

from course_lib import questions as registry
from course_lib.grade import gradebook, runner, sandbox, submission
from course_lib.grade.submission import Submission, UsageError, discover, student_id

# (names new with issue 9 are imported inside the tests that use them, so that this file
# also runs, and fails test by test, against the grader as it was before)

ROOT = Path(__file__).resolve().parents[1]
SHEET = "01_forward"
LIMITS = sandbox.Limits(timeout=40, memory_mb=2048, cell_timeout=8, case_timeout=2)
QUESTIONS = registry.for_sheet(SHEET)
POINTS = {q.func_name: q.points for q in QUESTIONS}
MAX = float(sum(POINTS.values()))
RELU_Q = [q.func_name for q in QUESTIONS].index("relu")
N_RELU = len(QUESTIONS[RELU_Q].cases(hidden=True))


def solution_source(name: str) -> str:
    """The solution sheet's source of function ``name`` (for defining it in odd ways)."""
    text = (ROOT / "solutions" / f"{SHEET}.py").read_text()
    for node in ast.parse(text).body:
        if isinstance(node, ast.FunctionDef) and node.name == name:
            return ast.get_source_segment(text, node)
    raise LookupError(name)


# The last question (variance_ratio) runs after every other question's outputs are saved:
# this variance_ratio replaces relu's saved outputs with whatever the test needs (the
# output folder is out/, ../out/ or /sandbox/out/ depending on the sandbox's layout).
# A notebook of a few cells: relu and sigmoid correct, so the honest score is known.
def after_outputs(body: str) -> list:
    return [
        "import torch\n" + solution_source("relu") + "\n" + solution_source("sigmoid"),
        "import os\n"
        "def variance_ratio():\n"
        f"    for c in range({N_RELU}):\n"
        "        for d in ('out', '../out', '/sandbox/out'):\n"
        f"            path = f'{{d}}/{RELU_Q}_{{c}}_0.npy'\n"
        "            if os.path.lexists(path):\n"
        "                os.unlink(path)\n" + "".join(f"                {line}\n" for line in body.splitlines()) + "    return 0.0",
    ]


NPY_BOMB = after_outputs(
    "with open(path, 'wb') as f:\n"
    "    header = \"{'descr': '<f8', 'fortran_order': False, 'shape': (100000, 100000, 100000), }\"\n"
    "    header = header.ljust(118) + '\\n'\n"
    "    f.write(b'\\x93NUMPY\\x01\\x00' + len(header).to_bytes(2, 'little') + header.encode() + bytes(64))"
)
NOT_FILES = after_outputs(
    "kind = c % 3\n"
    "if kind == 0:\n    os.mkfifo(path)\n"
    "elif kind == 1:\n    os.symlink('/dev/zero', path)\n"
    "else:\n    os.mkdir(path)"
)
DEEP_CHAIN = (
    "import os\nfd = os.open('.', os.O_PATH)\n"
    "for _ in range(3000):\n    os.mkdir('d', dir_fd=fd)\n    child = os.open('d', os.O_PATH, dir_fd=fd)\n"
    "    os.close(fd)\n    fd = child\nos.close(fd)"
)
LEAKY = [
    "import torch\n"
    "def linear_forward(x, W, b):\n    raise TypeError(f'got {x} and {W!r} and {b.tolist()}')\n"
    "def relu(x):\n    raise ValueError(repr(x))\n"
    "def sigmoid(x):\n    raise RuntimeError(str(x.numpy()))\n"
    "def softmax(logits):\n    raise KeyError(f'{logits[0, 0].item():.10f} {logits.flatten()[1].item()!r}')\n"
    "def mlp_forward(x, params):\n    raise Exception(str([p.tolist() for layer in params for p in layer])[:150])\n"
    "def count_parameters(sizes):\n    raise ValueError(f'sizes were {sizes}')",
]
ZEROS = ["import torch\ndef relu(x):\n    return torch.zeros_like(x)\ndef softmax(logits):\n    return torch.zeros_like(logits)"]
# every way the instructor guide names of binding the student's function in the notebook's globals
DEFINED_ODDLY = [
    "exec(" + repr(solution_source("relu")) + ")",
    "sigmoid = (lambda f: lambda x: f(x))(lambda x: 1 / (1 + torch.exp(-x)))",
    "import pathlib, sys\npathlib.Path('student_softmax.py').write_text('import torch\\n' + " + repr(solution_source("softmax")) + ")\n"
    "from student_softmax import softmax",
    "import pathlib\npathlib.Path('lazy_answers.py').write_text('import torch\\n' + " + repr(solution_source("linear_forward"))
    + " + '\\n' + " + repr(solution_source("mlp_forward")).replace("def mlp_forward", "def _mlp") + " + "
    "'\\ndef __getattr__(name):\\n    if name == \"mlp_forward\":\\n        return _mlp\\n    raise AttributeError(name)\\n')\n"
    "import lazy_answers\nmlp_forward = lazy_answers.mlp_forward",
    "_ns = {}\nexec(" + repr(solution_source("count_parameters")) + ", _ns)\ncount_parameters = _ns['count_parameters']",
    "class _Answer:\n    def __call__(self, *args):\n        return _lf(*args)\n"
    "exec(" + repr(solution_source("linear_forward").replace("def linear_forward", "def _lf")) + ")\nlinear_forward = _Answer()",
]
NOT_BOUND = ["def __getattr__(name):\n    if name == 'variance_ratio':\n        return lambda: 1.0\n    raise AttributeError(name)"]


def small_notebook(cells: list) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(src) for src in cells]
    return nb


def write_compact(path: Path, n_cells: int) -> None:
    cell = {"cell_type": "code", "execution_count": None, "metadata": {}, "outputs": [], "source": "1"}
    nb = {"cells": [cell] * n_cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 4}
    path.write_text(json.dumps(nb, separators=(",", ":")))


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@pytest.fixture(scope="module")
def batch(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("robust")
    subs, out, work_tmp = tmp / "subs", tmp / "out", tmp / "sandboxes"
    subs.mkdir()
    work_tmp.mkdir()
    os.chmod(tmp, 0o755)
    os.chmod(work_tmp, 0o755)
    spec = {
        "npy_bomb_deep_chain": NPY_BOMB + [DEEP_CHAIN],
        "leaky": LEAKY + ZEROS,
        "defined_oddly": ["import torch"] + DEFINED_ODDLY + NOT_BOUND,
    }
    for student, cells in spec.items():
        nbformat.write(small_notebook(cells), subs / f"{student}.ipynb")
    write_compact(subs / "many_cells.ipynb", 60_000)
    with open(subs / "sparse_3gb.ipynb", "wb") as f:
        f.truncate(3 * 1024**3)
    plan = runner.make_plan(SHEET, LIMITS, None, [ROOT / "solutions", ROOT / "tests", out, subs])
    before = rss_mb()
    sandbox.fork_server()  # started (or already up) before TMPDIR changes: its home is not a sandbox folder
    old_tmp = os.environ.get("TMPDIR")
    os.environ["TMPDIR"] = str(work_tmp)
    tempfile.tempdir = None
    try:
        summary = runner.grade_batch(plan, discover([subs]), out, jobs=2, progress=False)
    finally:
        if old_tmp is None:
            os.environ.pop("TMPDIR", None)
        else:
            os.environ["TMPDIR"] = old_tmp
        tempfile.tempdir = None
    results = {r["student"]: r for r in summary.results}
    return {"results": results, "out": out, "plan": plan, "rss_growth_mb": rss_mb() - before, "work_tmp": work_tmp}


def feedback(batch, student: str) -> str:
    return (batch["out"] / "feedback" / f"{student}.md").read_text(encoding="utf-8")


def question_id(func_name: str) -> str:
    return next(q.id for q in QUESTIONS if q.func_name == func_name)


def question(res: dict, func_name: str) -> dict:
    return next(q for q in res["questions"] if q["id"] == question_id(func_name))


# --- the batch stopped or the grader crashed ---------------------------------------
def test_npy_bomb_left_by_a_student_costs_at_most_those_cases(batch):
    # (a jail may keep the student from replacing its outputs at all: then relu passes too)
    res = batch["results"]["npy_bomb_deep_chain"]
    assert res["status"] == "ok", res["message"]
    assert question(res, "sigmoid")["status"] == "passed"
    assert res["score"] in (POINTS["sigmoid"], POINTS["sigmoid"] + POINTS["relu"])


def _left_behind(plan, out: Path) -> list:
    """What a hostile child could leave for relu's 9 cases (and honest outputs for sigmoid)."""
    qi_sig = [q.func_name for q in QUESTIONS].index("sigmoid")
    entries = [{"event": "case", "q": RELU_Q, "c": c, "n": 1} for c in range(len(plan.cases[RELU_Q]))]
    entries += [{"event": "case", "q": qi_sig, "c": c, "n": 1} for c in range(len(plan.cases[qi_sig]))]
    entries += [{"event": "done"}]
    for c, outs in enumerate(plan.expected[qi_sig]):
        np.save(out / f"{qi_sig}_{c}_0.npy", outs[0].numpy())
    relu = [out / f"{RELU_Q}_{c}_0.npy" for c in range(len(plan.cases[RELU_Q]))]
    os.mkfifo(relu[0])
    relu[1].symlink_to("/dev/zero")
    relu[2].mkdir()
    header = "{'descr': '<f8', 'fortran_order': False, 'shape': (100000, 100000, 100000), }".ljust(117) + "\n"
    relu[3].write_bytes(b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header.encode() + bytes(64))
    with open(relu[4], "wb") as f:
        f.truncate(2 * 1024**3)  # sparse
    np.save(relu[5], np.array([object()], dtype=object), allow_pickle=True)
    for c in range(6, 9):
        np.save(relu[c], plan.expected[RELU_Q][c][0].numpy())
    return entries


def test_parent_reads_no_fifo_link_folder_bomb_or_giant_and_scores_the_rest(tmp_path):
    plan = runner.make_plan(SHEET, LIMITS, None, [])
    run = sandbox.ChildRun(returncode=0, timed_out=False, seconds=1.0, entries=_left_behind(plan, tmp_path),
                           out_dir=tmp_path, stdout_bytes=0, stderr_tail="", sandbox="test")
    got, before = [], rss_mb()
    worker = threading.Thread(target=lambda: got.append(runner.score(plan, run)), daemon=True)
    worker.start()
    worker.join(60)
    assert got, "the grader blocked (or crashed) reading what the child left"
    scores = {q["id"]: q for q in got[0]}
    relu, sigmoid = scores[QUESTIONS[RELU_Q].id], next(q for q in got[0] if q["id"] == question_id("sigmoid"))
    assert relu["passed"] == 3 and "could not be read back" in relu["feedback"]
    assert sigmoid["status"] == "passed"
    assert rss_mb() - before < 500


def test_deep_folder_chain_is_removed_without_costing_points(batch):
    res = batch["results"]["npy_bomb_deep_chain"]
    assert res["status"] == "ok" and question(res, "sigmoid")["status"] == "passed", res["message"]
    assert list(batch["work_tmp"].iterdir()) == []  # nothing left of any sandbox folder


def test_notebook_with_60000_code_cells_is_refused_clearly(batch):
    res = batch["results"]["many_cells"]
    assert res["status"] == "unreadable notebook"
    assert f"over the limit of {submission.MAX_CODE_CELLS:,}" in res["message"] and res["seconds"] < 5


def test_3gb_sparse_notebook_is_refused_from_its_size_without_reading_it(batch):
    res = batch["results"]["sparse_3gb"]
    assert res["status"] == "unreadable notebook" and "over the 5 MB limit" in res["message"]
    assert batch["rss_growth_mb"] < 500, f"grader's peak memory grew by {batch['rss_growth_mb']:.0f} MB"


def test_untrusted_reads_refuse_what_is_not_a_small_regular_file(tmp_path):
    from course_lib.grade.untrusted_files import UntrustedFile, load_npy, read_bounded

    os.mkfifo(tmp_path / "fifo")
    (tmp_path / "link").symlink_to("/etc/hostname")
    (tmp_path / "big").write_bytes(b"x" * 101)
    for name, expected in (("fifo", "a FIFO"), ("link", "symbolic link"), ("big", "over the limit of 100")):
        with pytest.raises(UntrustedFile, match=expected):
            read_bounded(tmp_path / name, 100)
    header = "{'descr': '<f8', 'fortran_order': False, 'shape': (4000000000,), }".ljust(117) + "\n"
    (tmp_path / "bomb.npy").write_bytes(b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header.encode() + bytes(8))
    with pytest.raises(UntrustedFile, match="header promises 4,000,000,000 x 8 bytes, the file holds 8"):
        load_npy(tmp_path / "bomb.npy")
    np.save(tmp_path / "obj.npy", np.array([1, None], dtype=object), allow_pickle=True)
    with pytest.raises(UntrustedFile, match="expected a numeric dtype"):
        load_npy(tmp_path / "obj.npy")
    np.save(tmp_path / "ok.npy", np.asfortranarray(np.arange(6, dtype=">i4").reshape(2, 3)))
    assert load_npy(tmp_path / "ok.npy").tolist() == [[0, 1, 2], [3, 4, 5]]
    with pytest.raises(TypeError, match=r"read_bounded: max_bytes must be a non-negative int, got -1"):
        read_bounded(tmp_path / "ok.npy", -1)


def test_remove_tree_handles_3000_levels_links_and_locked_folders(tmp_path):
    from course_lib.grade.untrusted_files import remove_tree

    top = tmp_path / "left"
    top.mkdir()
    fd = os.open(top, os.O_RDONLY)
    for _ in range(3000):
        os.mkdir("d", dir_fd=fd)
        child = os.open("d", os.O_RDONLY, dir_fd=fd)
        os.close(fd)
        fd = child
    os.close(fd)
    (top / "link").symlink_to(tmp_path)
    (tmp_path / "keep").write_text("outside")
    (top / "locked").mkdir()
    (top / "locked" / "f").write_text("x")
    os.chmod(top / "locked", 0)
    remove_tree(top)
    assert not top.exists() and (tmp_path / "keep").read_text() == "outside"


def _cli(args: list, timeout: float) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "course_lib.cli", "grade", *map(str, args), "--sheet", SHEET, "-q"],
                          capture_output=True, text=True, timeout=timeout)


def test_fifo_link_or_folder_in_place_of_result_files_never_blocks_the_batch(tmp_path):
    subs = tmp_path / "subs"
    subs.mkdir()
    nbformat.write(small_notebook(NOT_FILES), subs / "not_files.ipynb")
    try:
        done = _cli([subs, "--out", tmp_path / "out", "--timeout", "40"], timeout=120)
    except subprocess.TimeoutExpired:
        pytest.fail("the batch hung on a FIFO left in place of a result file")
    assert done.returncode == 0, done.stderr
    res = json.loads((tmp_path / "out" / "results" / "not_files.json").read_text())
    assert res["status"] == "ok" and question(res, "sigmoid")["status"] == "passed", res["questions"]


# --- feedback never carries hidden inputs or reference values -----------------------
def _hidden_numbers(plan) -> set:
    """Hidden inputs and reference values as torch, numpy and Python print them."""
    shown = set()
    for qi in range(len(plan.questions)):
        tensors = list(plan.expected[qi][0])
        for case in plan.cases[qi][:2]:
            for a in list(case.args) + list(case.kwargs.values()):
                tensors += [a] if isinstance(a, torch.Tensor) else [t for layer in a for t in layer] if isinstance(a, list) and a and isinstance(a[0], tuple) else []
        for t in tensors:
            for v in t.flatten()[:6].tolist():
                if isinstance(v, float) and abs(v) >= 0.01:
                    shown |= {f"{v:.4f}", f"{v:.3f}", repr(v)[:7], f"{v:.10f}"}
    return shown


MEASURED = ("seconds", "peak_rss_mb", "sha256", "config")  # the run's own measurements and hashes, not the student's


def test_exceptions_carrying_hidden_inputs_reach_feedback_without_them(batch):
    assert {q["status"] for q in batch["results"]["leaky"]["questions"][:6]} == {"failed"}
    result = {k: v for k, v in batch["results"]["leaky"].items() if k not in MEASURED}
    text = feedback(batch, "leaky") + json.dumps(result)
    leaks = sorted(v for v in _hidden_numbers(batch["plan"]) if v in text)
    assert leaks == [], f"feedback shows hidden values {leaks[:5]}"
    assert "tensor([" not in text and "array([" not in text
    assert "raised TypeError: got tensor(...)" in feedback(batch, "leaky")  # the type and the gist remain


def test_returning_zeros_does_not_reveal_the_size_of_the_reference(batch):
    text = feedback(batch, "leaky")
    assert "max abs error" not in text and "value(s) differ" in text
    leaks = sorted(v for v in _hidden_numbers(batch["plan"]) if v in text)
    assert leaks == []


def test_redaction_keeps_type_and_words_drops_values():
    from course_lib.grade.redact import error_text, strip_values

    x = torch.tensor([[0.1234, -5.5], [1e-7, float("inf")]])
    assert error_text(f"raised ValueError: bad {x!r}") == "raised ValueError: bad tensor(...)"
    assert error_text("raised Err3_14159: [1, 2, 3]") == "raised Err_: [...]"
    assert error_text("raised RuntimeError: mat1 and mat2 shapes cannot be multiplied (4x3 and 5x2)") == \
        "raised RuntimeError: mat# and mat# shapes cannot be multiplied (#x# and #x#)"
    assert error_text("did not finish within 2 s") == "did not finish within its time limit"
    assert error_text("ValueError: ٣٫١٤ nan -inf 0x1F") == "ValueError: #"
    assert len(strip_values("word " * 100)) <= 80


# --- honest work graded fairly -------------------------------------------------------
def test_functions_bound_by_def_lambda_exec_or_callable_count(batch):
    res = batch["results"]["defined_oddly"]
    got = {f: question(res, f)["status"] for f in ("relu", "sigmoid", "linear_forward", "count_parameters")}
    assert got == dict.fromkeys(got, "passed"), res["questions"]


def test_functions_from_a_module_written_at_run_time_count(batch):
    res = batch["results"]["defined_oddly"]
    got = {f: question(res, f)["status"] for f in ("softmax", "mlp_forward")}  # plain import; module __getattr__
    assert got == dict.fromkeys(got, "passed"), res["questions"]


def test_a_notebook_level_getattr_is_not_a_definition(batch):
    assert question(batch["results"]["defined_oddly"], "variance_ratio")["status"] == "not attempted"


def test_unicode_ids_stay_distinct_and_nfc():
    assert student_id("王小明") == "王小明" and student_id("李华") == "李华"
    assert student_id(unicodedata.normalize("NFD", "José")) == student_id("José") == "José"
    assert student_id("हिन्दी") == "हिन्दी" and student_id("a\u202eb c") == "a_b_c"
    assert len(student_id("é" * 300).encode()) <= 200
    with pytest.raises(TypeError, match="student_id: expected a str, got bytes"):
        student_id(b"x")


def test_duplicates_are_set_aside_and_the_rest_graded(tmp_path):
    subs = tmp_path / "subs"
    subs.mkdir()
    for name in ("王小明", "李华", "José", unicodedata.normalize("NFD", "José"), "-alice"):
        nbformat.write(small_notebook(["import torch\n" + solution_source("relu")]), subs / f"{name}.ipynb")
    found = submission.discover_all([subs])
    assert sorted(s.student for s in found.submissions) == sorted(["王小明", "李华", "-alice"])
    assert list(found.duplicates) == ["José"] and len(found.duplicates["José"]) == 2
    done = _cli([subs, "--out", tmp_path / "out", "-j", "2", "--timeout", "40"], timeout=150)
    assert done.returncode == 1 and "2 submissions have the id 'José'" in done.stderr, done.stderr
    with open(tmp_path / "out" / "gradebook.csv", newline="", encoding="utf-8") as f:
        rows = {r["student"]: r for r in csv.DictReader(f)}
    assert set(rows) == {"王小明", "李华", "'-alice", "José"}
    assert all(float(rows[s]["total"]) == POINTS["relu"] for s in ("王小明", "李华", "'-alice"))
    assert rows["José"]["status"] == "duplicate id" and "rename all but one" in rows["José"]["message"]
    assert (tmp_path / "out" / "results" / "-alice.json").exists()


def test_formula_like_cells_are_neutralised_as_owasp_says(tmp_path):
    for text in ("=HYPERLINK(\"http://x\")", "+1", "-2+3", "@SUM(A1)", "\tx", "\rx", "\0x"):
        assert gradebook.neutralise(text) == "'" + text
    assert gradebook.neutralise("alice") == "alice" and gradebook.neutralise("'=x") == "'=x"
    rows = [{"student": s, "questions": [], "score": 0.0, "max": 1.0, "status": "ok", "message": m}
            for s, m in (("=cmd|' /C calc'!A0", "@x"), ("bob", "-1"))]
    gradebook.write_gradebook(tmp_path, [], rows)
    with open(tmp_path / "gradebook.csv", newline="") as f:
        cells = [c for r in list(csv.reader(f))[1:] for c in (r[0], r[-1])]
    assert all(not c.startswith(gradebook.FORMULA_STARTS) for c in cells), cells


def test_a_notebook_in_the_course_folder_is_a_usage_error_before_grading(tmp_path):
    from course_lib.grade.submission import check_layout

    (tmp_path / "course").mkdir()
    with pytest.raises(UsageError, match=r"must lie in a folder of their own, not in .*course"):
        check_layout([Submission("a", tmp_path / "course" / "a.ipynb")], tmp_path / "course")
    with pytest.raises(UsageError, match="must lie in a folder of their own"):
        check_layout([Submission("a", tmp_path / "a.ipynb")], tmp_path / "course")  # a folder holding the course
    check_layout([Submission("a", tmp_path / "subs" / "a.ipynb")], tmp_path / "course")  # fine
