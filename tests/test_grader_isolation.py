"""Issue 9, the sandbox's isolation: hostile submissions against each other and the machine.

Interface with tests/test_grader_robustness.py (runner side): these tests call only
``sandbox.run`` / ``sandbox.cleanup`` / ``runner.make_plan`` / ``runner.score`` /
``runner.grade_batch``, whose signatures are unchanged. ``sandbox.run`` now leases its
uid itself (``slot`` is ignored) and hands results back in a root-only folder.

Every run here needs root (namespaces, a separate uid, cgroups), as in CI. Several
sandboxes run at the same time on purpose (the grader at ``-j 2`` next to another
``course grade`` run): their isolation from each other is part of what is tested.
"""

from __future__ import annotations

import glob
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import jupytext
import nbformat
import pytest

from course_lib.grade import runner, sandbox
from course_lib.grade.submission import discover

from processes import cmdline, descendants, sandbox_processes, start_time, uid_of

pytestmark = pytest.mark.skipif(not sandbox.is_root(), reason="needs root: namespaces, separate uids, cgroups")

ROOT = Path(__file__).resolve().parents[1]
SHEET = "01_forward"
POOL = range(61000, 61064)  # the sandbox uids (isolation.UID_POOL)
LIMITS = sandbox.Limits(timeout=90, memory_mb=2048, cell_timeout=40, case_timeout=5)
TOKEN = f"g1iso{os.getpid()}"
HOG_MB, HOGS = 600, 5  # the memory hog: 5 processes of 600 MB each, 3 GB in all


def solved_cells() -> list:
    return [c.source for c in jupytext.read(ROOT / "solutions" / f"{SHEET}.py").cells if c.cell_type == "code"]


def pool_processes() -> list:
    return [p for p in os.listdir("/proc") if p.isdigit() and uid_of(p) in POOL]


def own_pool_processes() -> dict:
    """{pid: start time} of the sandbox processes under this test process: another xdist worker may be
    grading at the same time with other uids of the pool, and its processes are not ours to kill."""
    mine = descendants(os.getpid())
    return {int(p): start_time(int(p)) for p in pool_processes() if int(p) in mine}


def kill_pool(tracked: dict) -> None:
    """SIGKILL these processes (``own_pool_processes()``) until none of them is left."""
    for _ in range(50):
        left = [p for p, t in tracked.items() if t is not None and start_time(p) == t]
        if not left:
            return
        for p in left:
            try:
                os.kill(p, signal.SIGKILL)
            except OSError:
                pass
        time.sleep(0.05)


def cell_error(run: sandbox.ChildRun) -> str:
    return " | ".join(str(e.get("error")) for e in run.entries if e.get("event") == "cell")


class MemorySampler:
    """Peak total anonymous memory (PSS, MiB) of the processes of each sandbox uid, sampled from outside."""

    def __init__(self) -> None:
        self.peak: dict = {}
        self.stop = False
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def _loop(self) -> None:
        while not self.stop:
            total: dict = {}
            for p in os.listdir("/proc"):
                if not p.isdigit():
                    continue
                uid = uid_of(p)
                if uid not in POOL:
                    continue
                try:  # proportional anonymous memory: pages shared after fork() count once
                    with open(f"/proc/{p}/smaps_rollup") as f:
                        pss = int(f.read().split("\nPss_Anon:")[1].split()[0]) / 1024
                except (OSError, IndexError, ValueError):
                    continue
                total[uid] = total.get(uid, 0.0) + pss
            for uid, mb in total.items():
                self.peak[uid] = max(self.peak.get(uid, 0.0), mb)
            time.sleep(0.05)

    def close(self) -> float:
        self.stop = True
        self.thread.join(2)
        return max(self.peak.values(), default=0.0)


# --- hostile cells ---------------------------------------------------------------------------

ATTACKER = textwrap.dedent("""
    import glob, os, time, numpy as np
    mine = os.path.dirname(os.path.realpath(os.getcwd()))
    if os.fork() == 0:
        os.setsid()
        end = time.time() + 10
        while time.time() < end:
            # the layout is in course_lib's source: the run's folder may be unlistable, its sub-folders not
            tops = glob.glob('/tmp/course-grade-*')
            for out in [t + sub for t in tops for sub in ('/out', '/work/out')] + glob.glob('/tmp/course-grade-*/*/out'):
                if not os.path.isdir(out) or os.path.realpath(out).startswith(mine):
                    continue
                for q in range(7):
                    for c in range(12):
                        try:
                            with open(f'{out}/{q}_{c}_0.npy', 'wb') as f:
                                np.save(f, np.full(3, 7.0))
                            os.chmod(f'{out}/{q}_{c}_0.npy', 0o666)
                        except OSError:
                            pass
            time.sleep(0.01)
        os._exit(0)
    time.sleep(6)
""")

LEAVER = textwrap.dedent(f"""
    import os, socket, time
    for p in ('/tmp/{TOKEN}', '/dev/shm/{TOKEN}', '{TOKEN}'):
        open(p, 'w').write('left behind')
    if os.fork() == 0:
        os.setsid()
        if os.fork() == 0:
            a = socket.socket(socket.AF_UNIX); a.bind('\\0{TOKEN}'); a.listen(1)
            b = socket.socket(socket.AF_UNIX); b.bind('/tmp/{TOKEN}.sock'); b.listen(1)
            time.sleep(300)
        os._exit(0)
    time.sleep(1)
""")

CHECKER = textwrap.dedent(f"""
    import os, socket
    found = [p for p in ('/tmp/{TOKEN}', '/dev/shm/{TOKEN}', '{TOKEN}', '/tmp/{TOKEN}.sock') if os.path.exists(p)]
    try:
        socket.socket(socket.AF_UNIX).connect('\\0{TOKEN}')
        found.append('abstract socket')
    except OSError:
        pass
    def uid(p):
        try:
            return int(open(f'/proc/{{p}}/status').read().split('Uid:')[1].split()[0])
        except (OSError, IndexError, ValueError):
            return None
    others = [p for p in os.listdir('/proc') if p.isdigit() and int(p) != os.getpid() and uid(p) == os.getuid()]
    if others:
        found.append(f'{{len(others)}} processes')
    raise RuntimeError(f'FOUND {{found}}')
""")


def prober(other: Path, sock: str) -> str:
    """Tries to read what it must not, to reach a socket outside, seeds numpy and fills the disk."""
    targets = {
        "course .git": ROOT / ".git" / "HEAD",
        "course root": ROOT / "README.md",
        "solutions": ROOT / "solutions" / f"{SHEET}.py",
        "other notebook": other / "subs" / "friend.ipynb",
        "earlier gradebook": other / "old_out" / "gradebook.csv",
    }
    return textwrap.dedent(f"""
        import glob, os, socket, json
        found = []
        for label, path in {json.dumps({k: str(v) for k, v in targets.items()})}.items():
            try:
                open(path, 'rb').read(1)
                found.append(label)
            except OSError:
                pass
        if [p for p in glob.glob('/tmp/course-grade-*/*/in/*.json') + glob.glob('/tmp/course-grade-*/in/*.json') if os.access(p, os.R_OK)]:
            found.append('other inputs')
        try:
            socket.socket(socket.AF_UNIX).connect({sock!r})
            found.append('unix socket')
        except OSError:
            pass
        try:
            import numpy as np
            np.random.seed(0)
        except Exception as err:
            found.append('seed failed: ' + type(err).__name__)
        written = 0
        try:
            for i in range(150):
                with open(f'fill{{i}}', 'wb') as f:
                    f.write(b'x' * 4 * 2**20)
                written += 4
        except OSError:
            pass
        raise RuntimeError('PROBE ' + json.dumps({{'found': found, 'written_mb': written}}))
    """)


HOG = textwrap.dedent(f"""
    import os, time
    kids = []
    for _ in range({HOGS}):
        pid = os.fork()
        if pid == 0:
            try:
                os.write(1, b'HOG-START\\n')  # counted from outside: the forks were not refused
                b = b'x' * ({HOG_MB} * 2**20)
                time.sleep(3)
            finally:
                os._exit(0)
        kids.append(pid)
    for pid in kids:
        os.waitpid(pid, 0)
""")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """All sandboxes of this module, several at a time (see the module docstring)."""
    tmp = tmp_path_factory.mktemp("isolation")
    other = Path(tempfile.mkdtemp(prefix=f"{TOKEN}-other-"))  # a world-readable folder under /tmp
    os.chmod(other, 0o755)
    for sub, name in (("subs", "friend.ipynb"), ("old_out", "gradebook.csv")):
        (other / sub).mkdir(mode=0o755)
        (other / sub / name).write_text("secret")
    sock_dir = Path(tempfile.mkdtemp(prefix=f"{TOKEN}-sock-"))
    os.chmod(sock_dir, 0o777)
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(sock_dir / "s"))
    os.chmod(sock_dir / "s", 0o777)
    server.listen(8)
    subs = tmp / "subs"
    subs.mkdir()
    base = solved_cells()
    unfilled = [c.source for c in jupytext.read(ROOT / "exercises" / f"{SHEET}.py").cells if c.cell_type == "code"]
    nbformat.write(_nb(unfilled + [ATTACKER]), subs / "attacker.ipynb")
    nbformat.write(_nb(base + ["import time\ntime.sleep(4)  # an honest, slow cell (training, say)"]), subs / "victim.ipynb")
    plan = runner.make_plan(SHEET, LIMITS, None, [ROOT / "solutions", ROOT / "tests", subs, tmp / "out"])
    hide = plan.hide
    sampler = MemorySampler()
    got: dict = {}

    def batch():
        got["batch"] = runner.grade_batch(plan, discover([subs]), tmp / "out", jobs=2, progress=False)

    def same_slot_in_turn():
        got["leaver"] = _run([LEAVER], hide)
        got["checker"] = _run([CHECKER], hide)

    def long_run_in_slot_0():
        got["sleeper"] = sandbox.run(base + ["import time\ntime.sleep(6)"], plan.questions, plan.cases, LIMITS, hide, slot=0)
        got["sleeper_points"] = sum(q["points"] for q in runner.score(plan, got["sleeper"]))

    def probe_then_hog():
        got["probe"] = _run([prober(other, str(sock_dir / "s"))], hide)
        got["hog"] = _run([HOG], hide)

    started = time.monotonic()
    try:
        batch()  # alone first: the attack must not fail for want of processes another test run took
        with ThreadPoolExecutor(3) as pool:
            for f in [pool.submit(fn) for fn in (same_slot_in_turn, long_run_in_slot_0, probe_then_hog)]:
                f.result()
        got["seconds"] = time.monotonic() - started
        got["peak_mb"] = sampler.close()
        got["max"] = sum(q.points for q in plan.questions)
        bases, uids = [], set()
        for key in ("leaver", "checker", "sleeper", "probe", "hog"):
            got[key + "_error"] = cell_error(got[key])
            bases.append(str(got[key].extra["base"]))
            uids.add(got[key].extra["uid"])
            if key == "hog":
                got["hog_started"] = (got[key].extra["base"] / "private" / "stdout").read_bytes().count(b"HOG-START")
            sandbox.cleanup(got[key])
        time.sleep(0.2)
        got["left_processes"] = sandbox_processes(uids)
        got["left_tmp"] = [b for b in bases if os.path.exists(b)]
        got["left_host"] = [p for p in (f"/tmp/{TOKEN}", f"/dev/shm/{TOKEN}", f"/tmp/{TOKEN}.sock") if os.path.exists(p)]
        yield got
    finally:
        ours = own_pool_processes()
        server.close()
        kill_pool(ours)
        for p in (f"/tmp/{TOKEN}", f"/dev/shm/{TOKEN}", f"/tmp/{TOKEN}.sock"):
            if os.path.exists(p):
                os.unlink(p)
        subprocess.run(["rm", "-rf", str(other), str(sock_dir)])


def _nb(sources: list) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(s) for s in sources]
    return nb


def _run(cells: list, hide: list) -> sandbox.ChildRun:
    return sandbox.run(cells, [], [], LIMITS, hide, slot=0)


def test_a_student_cannot_write_another_students_results(runs):
    res = {r["student"]: r for r in runs["batch"].results}
    assert res["victim"]["status"] == "ok" and res["victim"]["score"] == runs["max"], res["victim"]["questions"]
    assert res["attacker"]["score"] == 0


def test_a_reused_uid_slot_shows_nothing_of_the_previous_student(runs):
    assert "FOUND []" in runs["checker_error"], runs["checker_error"]


def test_concurrent_runs_with_the_same_slot_do_not_interfere(runs):
    run = runs["sleeper"]
    assert any(e.get("event") == "done" for e in run.entries) and run.returncode == 0, (run.returncode, run.stderr_tail[-500:])
    assert runs["sleeper_points"] == runs["max"]


def _probe(runs) -> dict:
    text = runs["probe_error"]
    assert "PROBE " in text, text
    return json.loads(text.split("PROBE ", 1)[1])


def test_sandbox_sees_only_code_it_needs_and_no_socket_outside(runs):
    assert [f for f in _probe(runs)["found"] if not f.startswith("seed")] == []


def test_numpy_random_seed_works_in_the_sandbox(runs):
    assert [f for f in _probe(runs)["found"] if f.startswith("seed")] == []


def test_disk_is_limited_for_the_whole_submission(runs):
    assert _probe(runs)["written_mb"] <= LIMITS.disk_mb + 8


def test_total_memory_of_all_processes_is_limited(runs):
    print(f"peak memory of one sandbox uid (anonymous PSS): {runs['peak_mb']:.0f} MiB; the hog's cgroup peak: "
          f"{runs['hog'].extra.get('group_peak_mb', 0):.0f} MiB (it asked for {HOGS * HOG_MB} MiB in {HOGS} processes)")
    assert runs["hog_started"] == HOGS  # every hog process started (none was refused for another reason)
    # the mechanism: the submission's cgroup never held more than the limit (when one could be made)
    group_peak = runs["hog"].extra.get("group_peak_mb")
    if group_peak:
        assert group_peak <= LIMITS.memory_mb
    # seen from outside, summed over every process of the sandbox uid (PSS, sampled): far below what the
    # hog asked for; the margin covers pages the cgroup does not charge (e.g. the harness started before joining it)
    assert runs["peak_mb"] <= LIMITS.memory_mb * 1.15 < HOGS * HOG_MB


def test_nothing_is_left_after_the_runs(runs):
    assert runs["left_processes"] == [] and runs["left_tmp"] == [] and runs["left_host"] == []


GRADER = textwrap.dedent("""
    import sys
    from course_lib.grade import sandbox
    cells = [sys.argv[1]] if len(sys.argv) > 1 else []
    run = sandbox.run(cells, [], [], sandbox.Limits(timeout=120, cell_timeout=100), [])
    sandbox.cleanup(run)
""")

DAEMON = "import os, time\nif os.fork() == 0:\n    os.setsid()\n    if os.fork() == 0:\n        time.sleep(300)\n    os._exit(0)\ntime.sleep(300)"


def test_sandbox_dies_with_its_grader_and_a_rerun_cleans_up():
    grader = subprocess.Popen([sys.executable, "-c", GRADER, DAEMON], cwd=ROOT)
    tracked: dict = {}  # every process under the grader (fork server, harness, jail, student): pid -> start time

    def student_processes() -> list:
        return [p for p, t in tracked.items() if uid_of(str(p)) in POOL and start_time(p) == t]

    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and len(student_processes()) < 2:
            time.sleep(0.1)
            for p in descendants(grader.pid) - {grader.pid}:
                tracked.setdefault(p, start_time(p))
        assert len(student_processes()) >= 2, "the sandbox did not start"
        bases = glob.glob(os.path.join(tempfile.gettempdir(), f"course-grade-{grader.pid}-*"))
        assert bases, "the sandbox's folder was not found"
        grader.send_signal(signal.SIGKILL)
        grader.wait()

        def alive() -> list:
            return [p for p, t in tracked.items() if t is not None and start_time(p) == t]

        deadline = time.monotonic() + 15  # dying takes a moment on a loaded machine; staying alive does not end
        while alive() and time.monotonic() < deadline:
            time.sleep(0.2)
        survivors = alive()
        rerun = subprocess.run([sys.executable, "-c", GRADER], cwd=ROOT, timeout=120, capture_output=True)
        assert rerun.returncode == 0, rerun.stderr[-2000:]
        leaked = [b for b in bases if os.path.exists(b)]
        groups = glob.glob(f"/sys/fs/cgroup/*/**/course-grade-{grader.pid}-*", recursive=True)
        print(f"after kill -9: {len(survivors)} of {len(tracked)} processes left; after a rerun: "
              f"{len(leaked)} folders, {len(groups)} cgroups")
        assert survivors == [], [cmdline(str(p))[:80] for p in survivors]
        assert leaked == [] and groups == []
    finally:
        for p, t in tracked.items():
            if start_time(p) == t:
                try:
                    os.kill(p, signal.SIGKILL)
                except OSError:
                    pass
