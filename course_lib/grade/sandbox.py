"""Run one submission's code in a sandboxed child process and collect what it wrote.

The child (:mod:`course_lib.grade.child`) gets its own session and process
group, a scrubbed environment, a fresh working folder and resource limits.
When the grader runs as root it also gets new mount and network namespaces
(no network at all; solutions, tests, other submissions and the output folder
hidden) and runs the student's code as an unprivileged uid of its own (one per
worker slot), so that every process it leaves behind can be found and killed.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import numpy as np
import torch

from course_lib.questions import Case, Question

BASE_UID = 61000  # + worker slot; no account needed for setuid
NOGROUP = 65534
MAX_LOG_BYTES = 2 * 1024 * 1024


@dataclass
class Limits:
    """Resource limits of one submission's child process."""

    timeout: float = 60.0  # wall-clock seconds for the whole submission
    memory_mb: int = 2048  # address space
    output_mb: int = 8  # largest file (stdout, stderr, outputs) the child may write
    case_timeout: float = 5.0  # per call of a student's function
    cell_timeout: float = 20.0  # per notebook cell
    nproc: int = 64  # processes/threads of the sandbox uid


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


def _kill_uid(uid: int) -> None:
    """SIGKILL every process whose real uid is ``uid`` (repeat until none is left)."""
    for _ in range(50):
        found = False
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/status") as f:
                    for line in f:
                        if line.startswith("Uid:"):
                            if int(line.split()[1]) == uid:
                                found = True
                                os.kill(int(entry), signal.SIGKILL)
                            break
            except (OSError, ValueError):
                continue
        if not found:
            return
        time.sleep(0.02)


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


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
    """Run ``cells`` and then every question's function on ``cases`` in a sandboxed child."""
    root = is_root()
    uid = BASE_UID + slot if root else None
    base = Path(tempfile.mkdtemp(prefix="course-grade-"))
    work, private = base / "work", base / "private"
    work.mkdir()
    private.mkdir(mode=0o700)
    (work / "in").mkdir()
    (work / "out").mkdir()
    counter = [0]
    for qi, q_cases in enumerate(cases):
        for ci, case in enumerate(q_cases):
            spec = {
                "label": case.label,
                "args": [_encode(a, work / "in", f"{qi}_{ci}", counter) for a in case.args],
                "kwargs": {k: _encode(v, work / "in", f"{qi}_{ci}", counter) for k, v in case.kwargs.items()},
            }
            (work / "in" / f"{qi}_{ci}.json").write_text(json.dumps(spec))
    job = {
        "cells": cells,
        "questions": [q.id for q in questions],
        "cases": [len(c) for c in cases],
        "hide": [str(p) for p in hide if p.is_dir() and not str(base).startswith(str(p.resolve()) + os.sep)],
        "uid": uid,
        "gid": NOGROUP if root else None,
        "memory_mb": limits.memory_mb,
        "output_mb": limits.output_mb,
        "timeout": limits.timeout,
        "case_timeout": limits.case_timeout,
        "cell_timeout": limits.cell_timeout,
        "nproc": limits.nproc,
        "skip_cells": list(skip_cells),
        "skip_questions": list(skip_questions),
    }
    job_path = work / "job.json"
    job_path.write_text(json.dumps(job))
    (work / "out" / "log.jsonl").touch(mode=0o600)
    os.chmod(base, 0o711)
    if root:
        os.chmod(job_path, 0o600)
        for path in (work / "in").iterdir():
            os.chmod(path, 0o644)
        os.chmod(work / "in", 0o755)
        os.chmod(work / "out", 0o1733)  # sticky: the student may add files, not replace the log
        os.chmod(work, 0o1733)
    env = {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": str(work),
        "LANG": "C.UTF-8",
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "OPENBLAS_NUM_THREADS": "1",
        "MPLBACKEND": "Agg",
        "MPLCONFIGDIR": str(work / ".mpl"),
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONHASHSEED": "0",
        "TMPDIR": str(work),
    }
    stdout_path, stderr_path = private / "stdout", private / "stderr"
    start = time.monotonic()
    timed_out = False
    with open(stdout_path, "wb") as out, open(stderr_path, "wb") as err:
        proc = subprocess.Popen(
            [sys.executable, "-I", "-m", "course_lib.grade.child", str(work)],
            cwd=work,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            start_new_session=True,
            close_fds=True,
        )
        try:
            _, status, usage = os.wait4(proc.pid, 0) if limits.timeout <= 0 else _wait4_timeout(proc.pid, limits.timeout)
            proc.returncode = _decode_status(status)
        except subprocess.TimeoutExpired:
            timed_out = True
            _kill_group(proc.pid)
            _, status, usage = os.wait4(proc.pid, 0)
            proc.returncode = _decode_status(status)
    seconds = time.monotonic() - start
    _kill_group(proc.pid)
    if uid is not None:
        _kill_uid(uid)
    entries: List[Dict[str, Any]] = []
    log_path = work / "out" / "log.jsonl"
    if log_path.is_file() and not log_path.is_symlink():
        with open(log_path, "rb") as f:
            raw = f.read(MAX_LOG_BYTES)
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
    result = ChildRun(
        returncode=proc.returncode,
        timed_out=timed_out,
        seconds=seconds,
        entries=entries,
        out_dir=work / "out",
        stdout_bytes=stdout_bytes,
        stderr_tail=stderr_tail,
        sandbox=str(sandbox)[:80],
        peak_rss_mb=usage.ru_maxrss / 1024,
        output_capped=stdout_bytes >= cap or stderr_path.stat().st_size >= cap,
    )
    result.extra["base"] = base
    return result


def cleanup(run_: ChildRun) -> None:
    """Remove the child's folders."""
    shutil.rmtree(run_.extra["base"], ignore_errors=True)


def _decode_status(status: int) -> int:
    if os.WIFSIGNALED(status):
        return -os.WTERMSIG(status)
    return os.WEXITSTATUS(status)


def _wait4_timeout(pid: int, timeout: float):
    deadline = time.monotonic() + timeout
    delay = 0.005
    while True:
        got, status, usage = os.wait4(pid, os.WNOHANG)
        if got == pid:
            return got, status, usage
        if time.monotonic() >= deadline:
            raise subprocess.TimeoutExpired([str(pid)], timeout)
        time.sleep(delay)
        delay = min(delay * 2, 0.05)
