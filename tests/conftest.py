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


@pytest.hookimpl(tryfirst=True)  # before xdist reads the xdist_group marks added here
def pytest_collection_modifyitems(config: pytest.Config, items: list) -> None:
    """Deselect nbval runs that repeat what another collected test already executes in full:

    * a lecture, when the browser test can run (Chromium, playwright and JupyterLab present): it
      runs every cell and fails on any error, as nbval does;
    * a solution or exercise sheet, when its question suite (``tests/test_questions_chNN.py``) is
      collected: the suite executes every code cell of both sheets (an error fails it) and checks
      that every answer of the solution passes and every stub of the exercise is "not attempted",
      and the grader test (``tests/test_grader.py``) runs both ``.ipynb`` files again, cell by
      cell, in its sandbox (solutions full marks, exercises zero). A third run under nbval added
      a kernel start per sheet and nothing else.

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
    root = Path(__file__).resolve().parents[1]
    solved = {root / folder / f"{sheet}.ipynb" for sheet in sheets if sheet for folder in ("solutions", "exercises")}
    twice |= {item for item in items if item.path.suffix == ".ipynb" and item.path.resolve() in solved}
    if twice:
        config.hook.pytest_deselected(items=sorted(twice, key=lambda item: item.nodeid))
        items[:] = [item for item in items if item not in twice]
    if hasattr(config, "workerinput"):  # an xdist worker: its order is the queue's (see below)
        items.sort(key=_rank)  # stable: collection order within each rank


# --- scheduling on two workers (`-n 2 --dist loadfile`, see the Makefile) -------------------------

# Files whose fixtures take tens of seconds: queued early so that none of them ends the run alone.
HEAVY_FIRST = ("test_grader.py", "test_grader_isolation.py", "test_grader_robustness.py",
               "test_distributed.py", "test_minilm.py", "test_serving.py")
BROWSER_GROUPS = 2
BROWSER_PREFIX = "tests/test_browser.py::"


def _rank(item: pytest.Item) -> tuple:
    """Queue order of the files: the browser test, then HEAVY_FIRST, then the rest."""
    name = item.path.name
    if name == "test_browser.py":
        return (0, 0)
    return (1, HEAVY_FIRST.index(name)) if name in HEAVY_FIRST else (2, 0)


def _lecture_seconds() -> dict:
    """Each lecture's run time from docs/benchmarks.md (written by `make bench`), by stem."""
    import re

    path = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"
    found: dict = {}
    if path.exists():
        rows = re.findall(r"^\| `notebooks/([^`]+)\.ipynb` \| ([0-9.]+) \|", path.read_text(encoding="utf-8"), re.M)
        for stem, seconds in rows:
            found.setdefault(stem, float(seconds))
    return found


def split_browser(nodeids: list, groups: int = BROWSER_GROUPS) -> dict:
    """{browser test nodeid: group}: lectures spread over ``groups`` groups of about equal run time
    (longest first, each onto the lightest group so far; unknown lectures count 20 s)."""
    seconds = _lecture_seconds()

    def cost(nodeid: str) -> float:
        return seconds.get(nodeid.rpartition("[")[2].rstrip("]"), 20.0)

    loads = [0.0] * groups
    group_of = {}
    for nodeid in sorted((n for n in nodeids if n.startswith(BROWSER_PREFIX)), key=lambda n: (-cost(n), n)):
        g = loads.index(min(loads))
        loads[g] += cost(nodeid)
        group_of[nodeid] = f"{BROWSER_PREFIX}group-{g}"
    return group_of


@pytest.hookimpl(tryfirst=True, optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: object) -> object:
    """``--dist loadfile`` with two changes: the browser test (every lecture, ~5 min in all) is
    split into BROWSER_GROUPS units that run on different workers, each with its own JupyterLab and
    Chromium; and units are queued in collection order (sorted by :func:`_rank` above: the long
    ones first) instead of by their number of tests, so two workers finish together. (xdist's
    ``--dist loadgroup`` would do the grouping, but with pytest 9 its renamed node ids are ignored.)"""
    if config.getoption("dist", default="no") != "loadfile":
        return None
    from xdist.scheduler import LoadFileScheduling

    class CourseScheduling(LoadFileScheduling):
        def schedule(self) -> None:
            if self.collection is None and self.collection_is_completed and self.registered_collections:
                self._groups = split_browser(list(next(iter(self.registered_collections.values()))))
            super().schedule()

        def _split_scope(self, nodeid: str) -> str:
            group = getattr(self, "_groups", {}).get(nodeid)
            return group if group is not None else super()._split_scope(nodeid)

    config.option.loadscopereorder = False
    return CourseScheduling(config, log)
