"""Run one submission's code in a sandboxed child process and collect what it wrote.

The child (:mod:`course_lib.grade.child`) is forked by the grader's fork server
(:mod:`course_lib.grade.forkserver`, which has torch imported already) and gets its own session and process
group, a scrubbed environment, a fresh working folder and resource limits, and
dies with the grader. When the grader runs as root it also gets a uid leased for
this run only (:mod:`course_lib.grade.isolation`), a cgroup limiting the total
memory and processes of the submission (:mod:`course_lib.grade.cgroup`), and the
jail of :mod:`course_lib.grade.jail`: new PID, mount, network and IPC namespaces
and a root holding only what the code needs. The grader's folder for the run
(inputs, results) is root-only; the jail's init copies the results into it.
"""

from __future__ import annotations

import json
import os
import site
import stat
import signal
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import numpy as np
import torch

from course_lib.grade import cgroup, forkserver, isolation
from course_lib.questions import Case, Question

BASE_UID = isolation.BASE_UID  # sandbox uids are leased from isolation.UID_POOL
NOGROUP = 65534
GRACE = 10.0  # seconds the jail's init gets to hand back results after a timeout
MAX_LOG_BYTES = 2 * 1024 * 1024


@dataclass
class Limits:
    """Resource limits of one submission's child process."""

    timeout: float = 60.0  # wall-clock seconds for the whole submission
    memory_mb: int = 2048  # address space of each process, and total memory of all (cgroup)
    output_mb: int = 8  # largest file (stdout, stderr, outputs) the child may write
    case_timeout: float = 5.0  # per call of a student's function
    cell_timeout: float = 20.0  # per notebook cell
    nproc: int = 64  # processes/threads of the whole submission (cgroup), and of its uid
    disk_mb: int = 256  # everything it may write: working folder, /tmp and /dev/shm together


@dataclass
class ChildRun:
    """What came back from the child, as plain data."""

    returncode: Optional[int]
    timed_out: bool
    seconds: float
    entries: List[Dict[str, Any]]
    out_dir: Path
    stdout_bytes: int
    stderr_tail: str
    sandbox: str
    peak_rss_mb: float = 0.0
    output_capped: bool = False
    extra: Dict[str, Any] = field(default_factory=dict)


def is_root() -> bool:
    return hasattr(os, "getuid") and os.getuid() == 0


def _encode(value: Any, folder: Path, stem: str, counter: List[int]) -> Any:
    if isinstance(value, torch.Tensor):
        counter[0] += 1
        name = f"{stem}_{counter[0]}.npy"
        np.save(folder / name, value.detach().cpu().numpy(), allow_pickle=False)
        return {"npy": f"in/{name}"}
    if isinstance(value, tuple):
        return {"tuple": [_encode(v, folder, stem, counter) for v in value]}
    if isinstance(value, list):
        return [_encode(v, folder, stem, counter) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise TypeError(f"grader: cannot pass a {type(value).__name__} to the sandbox")


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def allowed_paths() -> List[str]:
    """What the jail shows read-only besides the system folders: the interpreter's prefix, the
    virtual environment, its site-packages and ``course_lib`` (never the course folder itself)."""
    import course_lib

    paths = {sys.base_prefix, sys.prefix, sys.exec_prefix, sys.base_exec_prefix, os.path.dirname(course_lib.__file__)}
    paths.update(site.getsitepackages())
    return sorted({os.path.realpath(p) for p in paths if os.path.isdir(p)})


_started = [False]


def _reap_stale_once() -> None:
    """Remove temporary folders and cgroups that a killed grader left (once per process)."""
    if not _started[0]:
        _started[0] = True
        isolation.reap_stale()
        cgroup.reap_stale()


def run(
    cells: List[str],
    questions: List[Question],
    cases: List[List[Case]],
    limits: Limits,
    hide: List[Path],
    slot: int = 0,
    skip_cells: Sequence[int] = (),
    skip_questions: Sequence[int] = (),
) -> ChildRun:
    """Run ``cells`` and then every question's function on ``cases`` in a sandboxed child.

    As root the child gets a uid of its own for this run (``slot`` is not used for that any
    more: uids are leased across concurrent graders), a cgroup, and the jail of
    :mod:`course_lib.grade.jail`. The folder it gets its inputs from and hands its results
    back through (``course-grade-<grader pid>-*`` in the temp dir) is the grader's alone.
    """
    _reap_stale_once()
    root = is_root()
    lease = isolation.UidLease() if root else None
    uid = lease.uid if lease else None
    group: Optional[cgroup.Cgroup] = None
    server = fork_server()
    base = Path(tempfile.mkdtemp(prefix=f"{isolation.PREFIX}{os.getpid()}-"))
    try:
        for name in ("work", "in", "out", "private", "root"):
            (base / name).mkdir(mode=0o700)
        counter = [0]
        for qi, q_cases in enumerate(cases):
            for ci, case in enumerate(q_cases):
                spec = {
                    "label": case.label,
                    "args": [_encode(a, base / "in", f"{qi}_{ci}", counter) for a in case.args],
                    "kwargs": {k: _encode(v, base / "in", f"{qi}_{ci}", counter) for k, v in case.kwargs.items()},
                }
                (base / "in" / f"{qi}_{ci}.json").write_text(json.dumps(spec))
        group = cgroup.create(limits.memory_mb, limits.nproc) if root else None
        job = {
            "cells": cells,
            "questions": [q.id for q in questions],
            "cases": [len(c) for c in cases],
            "hide": [str(p.resolve()) for p in hide],
            "ro_paths": allowed_paths(),
            "parent": server.pid,  # the child's parent: it dies with the fork server, which dies with us
            "cgroup": group.procs if group else [],
            "uid": uid,
            "gid": NOGROUP if root else None,
            "memory_mb": limits.memory_mb,
            "output_mb": limits.output_mb,
            "disk_mb": limits.disk_mb,
            "timeout": limits.timeout,
            "case_timeout": limits.case_timeout,
            "cell_timeout": limits.cell_timeout,
            "nproc": limits.nproc,
            "skip_cells": list(skip_cells),
            "skip_questions": list(skip_questions),
        }
        (base / "job.json").write_text(json.dumps(job))
        return _start_and_wait(base, limits, uid, group, server)
    finally:
        if group is not None:
            group.remove()
        if lease is not None:
            lease.release()


def server_env() -> Dict[str, str]:
    """The scrubbed environment of the fork server and so of every child (no variable of the grader's)."""
    return {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": tempfile.gettempdir(),  # the child points HOME, TMPDIR and MPLCONFIGDIR at its own folders
        "LANG": "C.UTF-8",
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "OPENBLAS_NUM_THREADS": "1",
        "MPLBACKEND": "Agg",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONHASHSEED": "0",
    }


def fork_server() -> forkserver.ForkServer:
    """The grader's fork server (:mod:`course_lib.grade.forkserver`), started on first use."""
    return forkserver.get(server_env(), tempfile.gettempdir())


def _start_and_wait(base: Path, limits: Limits, uid: Optional[int], group: Optional[cgroup.Cgroup],
                    server: forkserver.ForkServer) -> ChildRun:
    private = base / "private"
    stdout_path, stderr_path = private / "stdout", private / "stderr"
    start = time.monotonic()
    timed_out = False
    pid = 0
    try:
        pid = server.start(str(base))
        got = server.wait(pid, limits.timeout if limits.timeout > 0 else None)
        if got is None:
            timed_out = True
            if uid is not None:  # stop the student's processes; the jail's init still hands back the results
                isolation.kill_uid(uid)
            got = server.wait(pid, GRACE)
            if got is None:
                _kill_group(pid)
                got = server.wait(pid, None)
        status, maxrss_kb = got
        returncode = _decode_status(status)
    except forkserver.ServerGone:  # killed from outside (possible only without isolation): this run only
        if pid:
            _kill_group(pid)
        returncode, maxrss_kb = -signal.SIGKILL, 0
    for path in (stdout_path, stderr_path):  # the fork may have died before making them
        if not path.exists():
            path.touch(0o600)
    seconds = time.monotonic() - start
    if pid:
        _kill_group(pid)
    if group is not None:
        group.kill()
    if uid is not None:
        isolation.kill_uid(uid)
    entries: List[Dict[str, Any]] = []
    log_path = base / "out" / "log.jsonl"
    try:
        fd = os.open(log_path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        with os.fdopen(fd, "rb") as f:
            raw = f.read(MAX_LOG_BYTES) if stat.S_ISREG(os.fstat(fd).st_mode) else b""
    except OSError:
        raw = b""
    for line in raw.splitlines():
        try:
            item = json.loads(line)
        except ValueError:
            continue
        if isinstance(item, dict):
            entries.append(item)
    stdout_bytes = stdout_path.stat().st_size
    with open(stderr_path, "rb") as f:
        f.seek(max(0, stderr_path.stat().st_size - 4000))
        stderr_tail = f.read().decode("utf-8", "replace")
    cap = limits.output_mb * 1024 * 1024
    sandbox = next((e.get("sandbox") for e in entries if e.get("event") == "start"), "not started")
    group_peak = group.peak_mb() if group is not None else 0.0
    result = ChildRun(
        returncode=returncode,
        timed_out=timed_out,
        seconds=seconds,
        entries=entries,
        out_dir=base / "out",
        stdout_bytes=stdout_bytes,
        stderr_tail=stderr_tail,
        sandbox=str(sandbox)[:80],
        peak_rss_mb=max(maxrss_kb / 1024, group_peak),
        output_capped=stdout_bytes >= cap or stderr_path.stat().st_size >= cap,
    )
    result.extra["base"] = base
    result.extra["uid"] = uid
    result.extra["group_peak_mb"] = group_peak
    result.extra["oom_killed"] = group.oom_killed() if group is not None else False
    return result


def cleanup(run_: ChildRun) -> None:
    """Remove the child's folder (iteratively: no depth is too deep)."""
    isolation.remove_tree(run_.extra["base"])


def _decode_status(status: int) -> int:
    if os.WIFSIGNALED(status):
        return -os.WTERMSIG(status)
    return os.WEXITSTATUS(status)
