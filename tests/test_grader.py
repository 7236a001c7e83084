"""The batch grader against hostile submissions.

One batch of notebooks (built from sheet 01's solution and exercise sheets plus
hostile cells) is graded once; each test then checks one student's status and
score. None may crash the grader, change another student's grade, or score more
than its honest score. Isolation that needs root (network and filesystem
namespaces, a separate uid, a process limit) is tested when the tests run as root,
as in CI; elsewhere those cases are skipped with a message.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import jupytext
import nbformat
import pytest

from course_lib import questions as registry
from course_lib.grade import isolation, runner, sandbox
from course_lib.grade.submission import Submission, UsageError, discover, student_id

from processes import sandbox_processes

ROOT = Path(__file__).resolve().parents[1]
SHEET = "01_forward"
ROOT_ONLY = pytest.mark.skipif(not sandbox.is_root(), reason="needs root: namespaces, a separate uid and a process limit")
LIMITS = sandbox.Limits(timeout=15, memory_mb=2048, cell_timeout=3, case_timeout=2)
POINTS = {q.func_name: q.points for q in registry.for_sheet(SHEET)}
MAX = float(sum(POINTS.values()))


def cells_of(folder: str) -> list:
    return [c for c in jupytext.read(ROOT / folder / f"{SHEET}.py").cells]


def notebook(cells: list, extra: list[str] = ()) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(c.source) if c.cell_type == "code" else nbformat.v4.new_markdown_cell(c.source) for c in cells]
    nb.cells += [nbformat.v4.new_code_cell(src) for src in extra]
    return nb


SOLVED, UNFILLED = "solutions", "exercises"
FIRST = registry.for_sheet(SHEET)[0]  # the question whose registered misconception a student makes
MISTAKE = FIRST.misconceptions[0].name


def hostile_batch(tmp: Path, listener_port: int) -> dict[str, tuple]:
    """student -> (base sheet, extra cells, expected status, expected score or a bound)."""
    out = tmp / "out"
    marker = tmp / "PWNED"
    return {
        "correct": (SOLVED, [], "ok", MAX),
        "wrong": (SOLVED, ["def relu(x):\n    return x"], "ok", MAX - POINTS["relu"]),
        "different": (SOLVED, [
            "%matplotlib inline\n!echo hello\nimport numpy as _np",
            "%%time\n_orig = linear_forward\ndef linear_forward(x, W, b):\n    return _orig(x, W, b).numpy()",
        ], "ok", MAX),
        "unfilled": (UNFILLED, [], "not attempted", 0.0),
        "loop_cell": (SOLVED, ["while True:\n    pass"], "timeout", MAX),
        "loop_ignores_alarm": (SOLVED, ["import signal\nsignal.signal(signal.SIGALRM, signal.SIG_IGN)\nwhile True:\n    pass"], "timeout", MAX),
        "loop_in_function": (SOLVED, ["import signal\ndef relu(x):\n    signal.signal(signal.SIGALRM, signal.SIG_IGN)\n    while True:\n        pass"], "timeout", MAX - POINTS["relu"]),
        "memory_bomb": (SOLVED, ["blob = bytearray(64 * 1024 ** 3)"], "memory limit", MAX),
        "os_exit": (SOLVED, ["import os\nos._exit(0)"], "crashed", MAX),
        "sys_exit": (SOLVED, ["import sys\nsys.exit(1)"], "ok", MAX),
        "huge_output": (SOLVED, ["for _ in range(120):\n    print('x' * 1_000_000)"], "output limit", MAX),
        "cell_exception": (SOLVED[:], ["raise ValueError('boom')"], "ok", MAX),
        "renamed": (SOLVED, ["softmax_v2 = softmax\ndel softmax\ndel relu"], "ok", MAX - POINTS["relu"] - POINTS["softmax"]),
        "patched_libs": (UNFILLED, [
            "import builtins, numpy, torch\n"
            "builtins.abs = lambda x: 0\n"
            "numpy.allclose = lambda *a, **k: True\nnumpy.array_equal = lambda *a, **k: True\n"
            "torch.allclose = lambda *a, **k: True\ntorch.equal = lambda *a, **k: True\n"
            "torch.isclose = lambda a, b, **k: torch.ones_like(a, dtype=torch.bool)\n"
            "torch.Tensor.__eq__ = lambda *a: True\n"
            "def linear_forward(x, W, b):\n    return torch.zeros(x.shape[0], W.shape[0], dtype=x.dtype)\n"
            "def relu(x):\n    return x",
        ], "ok", 0.0),
        "patched_course_lib": (UNFILLED, [
            "import torch, course_lib.check as c, course_lib.questions as q\n"
            "c.compare = lambda *a, **k: None\nc.evaluate = lambda *a, **k: None\n"
            "c.to_plain = lambda out, where='output': (torch.zeros(1),)\n"
            "for qq in q.all_questions():\n    object.__setattr__(qq, 'reference', lambda *a, **k: None)\n"
            "def relu(x):\n    return x * 0",
        ], "ok", 0.0),
        "reads_solutions": (UNFILLED, [
            "import course_lib, pathlib\n"
            "root = pathlib.Path(course_lib.__file__).resolve().parents[1]\n"
            "exec((root / 'solutions' / '01_forward.py').read_text())",
            "import pathlib\nprint(pathlib.Path(%r).read_text())" % str(tmp / "instructor" / f"{SHEET}.py"),
        ], "not attempted", 0.0),
        "writes_gradebook": (SOLVED, [
            f"import pathlib\nout = pathlib.Path({str(out)!r})\n"
            "for p in [out / 'gradebook.csv', out / 'results' / 'correct.json', out / 'results' / 'writes_gradebook.json']:\n"
            "    try:\n        p.parent.mkdir(parents=True, exist_ok=True)\n        p.write_text('student,total\\nwrites_gradebook,999\\n')\n"
            "    except OSError as e:\n        print('blocked', e)",
        ], "ok", MAX),
        "network": (SOLVED, [
            f"import socket\ntry:\n    socket.create_connection(('127.0.0.1', {listener_port}), timeout=2).sendall(b'leak')\nexcept OSError as e:\n    print('blocked', e)",
        ], "ok", MAX),
        "not_plain_data": (UNFILLED, [
            "import torch\nclass Liar:\n    def __eq__(self, other):\n        return True\n    def __array__(self, *a, **k):\n        import numpy\n        return numpy.zeros(1)\n"
            "def relu(x):\n    return Liar()\n"
            "def sigmoid(x):\n    return torch.sigmoid(x).as_subclass(type('T', (torch.Tensor,), {'__eq__': lambda *a: True}))",
        ], "ok", 0.0),
        "pickle_payload": (UNFILLED, [
            "import threading, time, numpy\n"
            f"class Boom:\n    def __reduce__(self):\n        return (open, ({str(marker)!r}, 'w'))\n"
            "def _spam():\n    while True:\n        for q in range(5):\n            for c in range(20):\n"
            "                try:\n                    numpy.save(f'out/{q}_{c}_0.npy', numpy.array([Boom()], dtype=object), allow_pickle=True)\n"
            "                except Exception:\n                    pass\n        time.sleep(0.005)\n"
            "threading.Thread(target=_spam, daemon=True).start()\n"
            "def relu(x):\n    return x.clamp(min=0)",
        ], "ok", ("at most", POINTS["relu"])),
        "misconception": (SOLVED, [
            f"from course_lib import questions as _q\n_wrong = _q.get({FIRST.id!r}).misconception({MISTAKE!r}).wrong\n"
            f"def {FIRST.func_name}(*args, **kwargs):\n    return _wrong(*args, **kwargs)",
        ], "ok", ("at most", MAX - FIRST.points / len(FIRST.cases(hidden=True)))),
        "background_thread": (SOLVED, [
            "import threading\nstate = {'n': 0}\ndef _busy():\n    while True:\n        state['n'] += 1\n"
            "threading.Thread(target=_busy).start()",
        ], "ok", MAX),
    }


FORK_BOMB = (SOLVED, ["import os\nfor _ in range(100000):\n    try:\n        os.fork()\n    except OSError:\n        break"], "ok", MAX)


class Listener:
    """A loopback TCP server that records whatever reaches it."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.received: list[bytes] = []
        self.stop = False
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self.stop:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            with conn:
                conn.settimeout(1)
                try:
                    self.received.append(conn.recv(100) or b"<connected>")
                except OSError:
                    self.received.append(b"<connected>")

    def close(self) -> None:
        self.stop = True
        self.thread.join(2)
        self.sock.close()


def write_batch(tmp: Path, spec: dict) -> Path:
    subs = tmp / "subs"
    subs.mkdir()
    for student, (base, extra, *_rest) in spec.items():
        nb = notebook(cells_of(base), extra)
        nbformat.write(nb, subs / f"{student}.ipynb")
    (subs / "corrupt_json.ipynb").write_text('{"cells": [ {"cell_type": "code", "source": ')
    old = nbformat.convert(notebook(cells_of(SOLVED)), 3)
    (subs / "old_nbformat.ipynb").write_text(nbformat.writes(old, version=3))
    return subs


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("grading")
    listener = Listener()
    spec = hostile_batch(tmp, listener.port)
    if sandbox.is_root():
        spec["fork_bomb"] = FORK_BOMB
    subs = write_batch(tmp, spec)
    spec["corrupt_json"] = (None, [], "unreadable notebook", 0.0)
    spec["old_nbformat"] = (None, [], "ok", MAX)
    instructor = tmp / "instructor"
    instructor.mkdir()
    (instructor / f"{SHEET}.py").write_text(
        "import torch\nfrom course_lib.questions import Case\n"
        "def extra_cases(qid, gen):\n"
        "    if qid == '01.2':\n        return [Case('instructor: huge values', (torch.tensor([-1e300, 0.0, 1e300], dtype=torch.float64),))]\n"
        "    return []\n"
    )
    out = tmp / "out"
    hide = [ROOT / "solutions", ROOT / "tests", out, instructor, subs]
    plan = runner.make_plan(SHEET, LIMITS, instructor, hide)
    started = time.monotonic()
    summary = runner.grade_batch(plan, discover([subs]), out, jobs=2, progress=False)
    listener.close()
    return {"spec": spec, "summary": summary, "out": out, "listener": listener, "tmp": tmp, "plan": plan,
            "seconds": time.monotonic() - started, "subs": subs}


def row(graded, student) -> dict:
    with open(graded["out"] / "gradebook.csv", newline="") as f:
        return {r["student"]: r for r in csv.DictReader(f)}[student]


STUDENTS = sorted(hostile_batch(Path("/x"), 1)) + ["corrupt_json", "old_nbformat"]
NEEDS_ROOT = {"reads_solutions", "writes_gradebook", "network", "fork_bomb"}


@pytest.mark.parametrize("student", STUDENTS + ["fork_bomb"])
def test_hostile_submission_gets_its_honest_status_and_score(graded, student):
    if student in NEEDS_ROOT and not sandbox.is_root():
        pytest.skip("isolation of files, network and processes needs root")
    base, extra, status, expected = graded["spec"][student]
    res = json.loads((graded["out"] / "results" / f"{student}.json").read_text())
    assert res["status"] == status, res["message"]
    if isinstance(expected, tuple):
        assert res["score"] <= expected[1]
    else:
        assert res["score"] == pytest.approx(expected), [(q["id"], q["points"], q["feedback"][:200]) for q in res["questions"]]
    r = row(graded, student)
    assert float(r["total"]) == pytest.approx(res["score"]) and r["status"] == status


def test_gradebook_has_every_student_once_and_documented_columns(graded):
    with open(graded["out"] / "gradebook.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    ids = [q.id for q in registry.for_sheet(SHEET)]
    assert list(rows[0]) == ["student", *ids, "total", "max", "status", "message"]
    assert sorted(r["student"] for r in rows) == sorted(graded["spec"])
    assert all(float(r["max"]) == MAX for r in rows)


@ROOT_ONLY
def test_students_cannot_touch_the_output_or_each_other(graded):
    assert float(row(graded, "correct")["total"]) == MAX
    assert "999" not in (graded["out"] / "gradebook.csv").read_text()
    assert sorted(p.name for p in graded["out"].iterdir()) == ["feedback", "gradebook.csv", "results"]


@ROOT_ONLY
def test_network_connections_from_students_never_arrive(graded):
    assert graded["listener"].received == []


def test_pickle_payloads_are_never_unpickled(graded):
    assert not (graded["tmp"] / "PWNED").exists()


@ROOT_ONLY
def test_no_student_process_survives(graded):
    assert sandbox_processes(isolation.UID_POOL) == []


def test_feedback_never_reveals_reference_values_or_hidden_inputs(graded):
    plan = graded["plan"]
    text = (graded["out"] / "feedback" / "wrong.md").read_text()
    assert "## 01.2" in text and "Hint 1 of" in text
    def revealing(v: float) -> str | None:
        text_v = f"{v:.6g}"
        return text_v if len(text_v.lstrip("-").replace(".", "")) >= 4 else None  # skip 1, 0.5, ...

    for qi, q in enumerate(plan.questions):
        for ci, outs in enumerate(plan.expected[qi]):
            values = [float(x) for t in outs for x in t.flatten()[:3].tolist()]
            values += [float(a.flatten()[0]) for a in plan.cases[qi][ci].args if hasattr(a, "flatten") and a.numel()]
            for v in values:
                shown = revealing(v)
                assert shown is None or shown not in text, f"feedback shows {shown} from question {q.id}"


def test_feedback_names_the_misconception_and_shows_the_first_hint_tier_only(graded):
    text = (graded["out"] / "feedback" / "misconception.md").read_text()
    section = text.split(f"## {FIRST.id} ", 1)[1].split("\n## ", 1)[0]
    assert f"This looks like {MISTAKE}: {FIRST.misconception(MISTAKE).why}" in section
    assert f"Hint 1 of {len(FIRST.hints)}: {FIRST.hints[0]}" in section
    assert "Hint 2 of" not in text and FIRST.hints[1] not in text
    res = json.loads((graded["out"] / "results" / "misconception.json").read_text())
    others = [q for q in res["questions"] if q["id"] != FIRST.id]
    assert all(q["status"] == "passed" for q in others) and all("This looks like" not in q["feedback"] for q in others)


def test_instructor_tests_are_added_to_hidden_cases(graded):
    plan = graded["plan"]
    relu_cases = plan.cases[[q.func_name for q in plan.questions].index("relu")]
    assert relu_cases[-1].label == "instructor: huge values"


def test_rerun_skips_graded_submissions_and_keeps_the_gradebook(graded):
    before = (graded["out"] / "gradebook.csv").read_bytes()
    summary = runner.grade_batch(graded["plan"], discover([graded["subs"]]), graded["out"], jobs=2, progress=False)
    assert summary.graded == 0 and summary.skipped == len(graded["spec"])
    assert (graded["out"] / "gradebook.csv").read_bytes() == before


def test_student_ids_and_discovery(tmp_path):
    assert student_id("Ann Lee (2).ipynb"[:-6]) == "Ann_Lee_2"
    assert student_id("../../etc/passwd") == "etc_passwd"
    (tmp_path / "a.ipynb").write_text("{}")
    (tmp_path / "bob").mkdir()
    (tmp_path / "bob" / "01_forward.ipynb").write_text("{}")
    assert [s.student for s in discover([tmp_path])] == ["a", "bob"]
    (tmp_path / "bob.ipynb").write_text("{}")
    with pytest.raises(UsageError, match="two submissions for student 'bob'"):
        discover([tmp_path])
    with pytest.raises(UsageError, match="no such file"):
        discover([tmp_path / "missing"])


def _course(args, **kw):
    return subprocess.run([sys.executable, "-m", "course_lib.cli", "grade", *args], capture_output=True, text=True, **kw)


def test_cli_usage_errors_exit_2(tmp_path):
    assert _course(["--help"]).returncode == 0
    assert _course([str(tmp_path), "--sheet", SHEET, "--out", str(tmp_path / "o")]).returncode == 2  # nothing to grade
    (tmp_path / "a.ipynb").write_text("{}")
    assert _course([str(tmp_path / "a.ipynb"), "--sheet", "99_nope", "--out", str(tmp_path / "o")]).returncode == 2
    assert _course([str(tmp_path / "a.ipynb"), "--sheet", SHEET, "--out", str(tmp_path / "o"), "-j", "0"]).returncode == 2


def test_killed_batch_resumes_to_the_same_gradebook(tmp_path):
    spec = {name: hostile_batch(tmp_path, 1)[name] for name in ("correct", "wrong", "unfilled", "renamed", "cell_exception")}
    subs = write_batch(tmp_path, spec)
    (subs / "corrupt_json.ipynb").unlink()
    (subs / "old_nbformat.ipynb").unlink()
    args = [str(subs), "--sheet", SHEET, "-q", "--timeout", "20"]
    full = _course(args + ["--out", str(tmp_path / "full")], timeout=300)
    assert full.returncode == 0, full.stderr
    proc = subprocess.Popen([sys.executable, "-m", "course_lib.cli", "grade", *args, "--out", str(tmp_path / "killed")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    results = tmp_path / "killed" / "results"
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and len(list(results.glob("*.json")) if results.exists() else []) < 2:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (tmp_path / "killed" / "gradebook.csv").exists()
    resumed = _course(args + ["--out", str(tmp_path / "killed")], timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert "skipped 2 already graded" in resumed.stdout or "skipped 3 already graded" in resumed.stdout
    assert (tmp_path / "killed" / "gradebook.csv").read_bytes() == (tmp_path / "full" / "gradebook.csv").read_bytes()
    assert not list((tmp_path / "killed").rglob("*.tmp"))


@pytest.mark.parametrize("sheet", sorted(p.stem for p in (ROOT / "solutions").glob("*.py")))
def test_solutions_grade_full_marks_and_exercises_zero(tmp_path, sheet):
    subs = tmp_path / "subs"
    subs.mkdir()
    for folder, name in (("solutions", "solved"), ("exercises", "unfilled")):
        nbformat.write(notebook(list(jupytext.read(ROOT / folder / f"{sheet}.py").cells)), subs / f"{name}.ipynb")
    plan = runner.make_plan(sheet, sandbox.Limits(timeout=60), None, [ROOT / "solutions", subs])
    summary = runner.grade_batch(plan, discover([subs]), tmp_path / "out", jobs=2, progress=False)
    res = {r["student"]: r for r in summary.results}
    assert res["solved"]["status"] == "ok" and res["solved"]["score"] == summary.max, res["solved"]["questions"]
    assert res["unfilled"]["status"] == "not attempted" and res["unfilled"]["score"] == 0
