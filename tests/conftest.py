"""Shared test settings.

* hypothesis: reproducible examples, no deadline (2-core CI machines are slow).
* offline guard: every process of the test run (this one, xdist workers, notebook
  kernels, grader children) refuses non-loopback connections; attempts are logged
  and fail the session even if the code under test swallowed the exception.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import pytest
from hypothesis import settings

settings.register_profile("course", max_examples=30, deadline=None, derandomize=True, print_blob=True)
settings.load_profile("course")

GUARD_DIR = Path(__file__).parent / "netguard"
sys.path.insert(0, str(GUARD_DIR))
import course_netguard  # noqa: E402


def pytest_configure(config: pytest.Config) -> None:
    if not os.environ.get(course_netguard.LOG_VAR):
        fd, path = tempfile.mkstemp(prefix="course-netguard-", suffix=".log")
        os.close(fd)
        os.environ[course_netguard.LOG_VAR] = path
        config._course_netguard_owner = True  # type: ignore[attr-defined]
    parts = [str(GUARD_DIR)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    os.environ["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(parts))
    # notebook kernels must not try to reach Colab/CDNs either
    os.environ.setdefault("MPLBACKEND", "Agg")
    # two test workers on two cores: one thread each (torch's default oversubscribes badly)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    course_netguard.install()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if not getattr(session.config, "_course_netguard_owner", False):
        return
    path = Path(os.environ[course_netguard.LOG_VAR])
    attempts = path.read_text(encoding="utf-8").strip() if path.exists() else ""
    path.unlink(missing_ok=True)
    if attempts:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        message = "network access attempted during the tests (only loopback is allowed):\n" + attempts
        if reporter:
            reporter.write_line(message, red=True)
        else:  # pragma: no cover
            print(message, file=sys.stderr)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


# --- exercise sheets: fixtures and the parametrisation of tests/question_suite.py ------


@pytest.fixture(scope="module")
def solution_sheet(request: pytest.FixtureRequest) -> dict:
    """The namespace of the module's ``SHEET`` in solutions/ after running its code cells."""
    from helpers import ROOT, run_sheet

    return run_sheet(ROOT / "solutions" / f"{request.module.SHEET}.py")


@pytest.fixture(scope="module")
def exercise_sheet(request: pytest.FixtureRequest) -> dict:
    """The namespace of the module's ``SHEET`` in exercises/ (generated, unfilled)."""
    from helpers import ROOT, run_sheet

    return run_sheet(ROOT / "exercises" / f"{request.module.SHEET}.py")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if not getattr(metafunc.cls, "question_suite", False):
        return
    from course_lib import questions
    from question_suite import question_ids

    ids = question_ids(metafunc.module)
    if "mistake" in metafunc.fixturenames:
        pairs = [(qid, m.name) for qid in ids for m in questions.get(qid).misconceptions]
        metafunc.parametrize("qid, mistake", pairs, ids=[f"{q}-{label}" for q, label in pairs])
    elif "qid" in metafunc.fixturenames:
        metafunc.parametrize("qid", ids)


# --- each notebook runs once where it is checked best ------------------------------------


def pytest_collection_modifyitems(config: pytest.Config, items: list) -> None:
    """Deselect nbval runs that repeat what another collected test already executes in full:

    * a lecture, when the browser test can run (Chromium, playwright and JupyterLab present): it
      runs every cell and fails on any error, as nbval does;
    * a solution sheet, when its question suite (``tests/test_questions_chNN.py``) is collected: the
      suite executes every code cell of the sheet (an error fails it) and checks every answer, and
      the grader test grades the sheet again in the sandbox. Exercise sheets keep their nbval run:
      "Run All reaches the end" in a real kernel is what students rely on.

    Run alone (``pytest notebooks/01_forward.ipynb``), a notebook is still checked by nbval."""
    twice = set()
    in_browser = {item.callspec.params.get("notebook") for item in items
                  if item.path.name == "test_browser.py" and hasattr(item, "callspec")}
    in_browser.discard(None)
    if in_browser:
        from test_browser import browser_missing

        if not browser_missing():
            twice |= {item for item in items if item.path.suffix == ".ipynb" and item.path.resolve() in in_browser}
    sheets = {getattr(item.module, "SHEET", None) for item in items
              if item.path.name.startswith("test_questions_ch") and getattr(item, "module", None) is not None}
    solved = {(Path(__file__).resolve().parents[1] / "solutions" / f"{sheet}.ipynb") for sheet in sheets if sheet}
    twice |= {item for item in items if item.path.suffix == ".ipynb" and item.path.resolve() in solved}
    if twice:
        config.hook.pytest_deselected(items=sorted(twice, key=lambda item: item.nodeid))
        items[:] = [item for item in items if item not in twice]
