"""A cgroup per submission: total memory and process count across all its processes.

:func:`create` makes a leaf ``course-grade-<grader pid>-<n>`` below the grader's own
cgroup, with cgroup v2 (``memory.max``, ``memory.swap.max``, ``pids.max``) when the
unified hierarchy has the controllers, else with the v1 ``memory`` and ``pids``
hierarchies. It returns ``None`` when neither is writable (no root, a read-only
``/sys/fs/cgroup``): the sandbox then falls back to per-process limits
(``RLIMIT_AS``) and the per-uid process limit (``RLIMIT_NPROC``). The child joins
the group itself, as its first act, by writing its pid to :attr:`Cgroup.procs`.
"""

from __future__ import annotations

import itertools
import os
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional

from course_lib.grade.isolation import PREFIX, stale_owner

_counter = itertools.count()


def _mounts() -> Dict[str, Path]:
    """``{"v2": path}`` and ``{"memory": path, "pids": path}`` (v1) from /proc/self/mountinfo."""
    found: Dict[str, Path] = {}
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left, _, right = line.partition(" - ")
            fields, extra = left.split(), right.split()
            if len(fields) < 5 or len(extra) < 3:
                continue
            if extra[0] == "cgroup2":
                found.setdefault("v2", Path(fields[4]))
            elif extra[0] == "cgroup":
                for option in extra[2].split(","):
                    if option in ("memory", "pids"):
                        found.setdefault(option, Path(fields[4]))
    return found


def _own_paths() -> Dict[str, str]:
    """The grader's own cgroup per controller (``""`` is the v2 one) from /proc/self/cgroup."""
    own: Dict[str, str] = {}
    with open("/proc/self/cgroup") as f:
        for line in f:
            _, controllers, path = line.rstrip("\n").split(":", 2)
            for c in controllers.split(",") if controllers else [""]:
                own[c] = path
    return own


def _write(path: Path, value: str) -> None:
    with open(path, "w") as f:
        f.write(value)


@dataclass
class Cgroup:
    """One submission's cgroup (one folder for v2, one per controller for v1)."""

    version: int
    folders: List[Path]
    procs: List[str] = field(default_factory=list)

    def peak_mb(self) -> float:
        """The highest memory use of the whole group, in MiB (0 when the kernel does not say)."""
        for folder in self.folders:
            for name in ("memory.peak", "memory.max_usage_in_bytes"):
                try:
                    return int((folder / name).read_text().split()[0]) / 2**20
                except (OSError, ValueError, IndexError):
                    continue
        return 0.0

    def oom_killed(self) -> bool:
        """Whether the kernel killed a process of the group for memory."""
        for folder in self.folders:
            for name, key in (("memory.events", "oom_kill"), ("memory.oom_control", "oom_kill")):
                try:
                    for line in (folder / name).read_text().splitlines():
                        k, _, v = line.partition(" ")
                        if k == key and int(v) > 0:
                            return True
                except (OSError, ValueError):
                    continue
        return False

    def kill(self) -> None:
        """SIGKILL every process in the group, until it is empty."""
        kill_folder(self.folders)

    def remove(self) -> None:
        self.kill()
        for folder in self.folders:
            for _ in range(100):
                try:
                    folder.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.01)


def kill_folder(folders: List[Path]) -> None:
    for folder in folders:
        if (folder / "cgroup.kill").exists():
            try:
                _write(folder / "cgroup.kill", "1")
            except OSError:
                pass
        for _ in range(200):
            try:
                pids = [int(p) for p in (folder / "cgroup.procs").read_text().split()]
            except (OSError, ValueError):
                break
            if not pids:
                break
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
            time.sleep(0.01)


def _parents() -> List[tuple]:
    """``(version, [parent folders])`` candidates, best first."""
    mounts, own = _mounts(), _own_paths()
    out = []
    if "v2" in mounts and "" in own:
        out.append((2, [mounts["v2"] / own[""].lstrip("/")]))
    if "memory" in mounts and "pids" in mounts:
        out.append((1, [mounts[c] / own.get(c, "/").lstrip("/") for c in ("memory", "pids")]))
    return out


def create(memory_mb: int, pids: int) -> Optional[Cgroup]:
    """A fresh leaf cgroup limited to ``memory_mb`` MiB (no swap) and ``pids`` tasks, or None."""
    if os.geteuid() != 0:
        return None
    name = f"{PREFIX}{os.getpid()}-{next(_counter)}"
    memory = str(memory_mb * 2**20)
    for version, parents in _parents():
        made: List[Path] = []
        try:
            if version == 2:
                parent = parents[0]
                if not {"memory", "pids"} <= set((parent / "cgroup.controllers").read_text().split()):
                    continue
                _write(parent / "cgroup.subtree_control", "+memory +pids")
                folder = parent / name
                folder.mkdir()
                made.append(folder)
                _write(folder / "memory.max", memory)
                if (folder / "memory.swap.max").exists():
                    _write(folder / "memory.swap.max", "0")
                _write(folder / "pids.max", str(pids))
            else:
                for parent in parents:
                    folder = parent / name
                    folder.mkdir()
                    made.append(folder)
                _write(made[0] / "memory.limit_in_bytes", memory)
                if (made[0] / "memory.memsw.limit_in_bytes").exists():
                    try:
                        _write(made[0] / "memory.memsw.limit_in_bytes", memory)
                    except OSError:
                        pass
                _write(made[1] / "pids.max", str(pids))
        except OSError:
            for folder in made:
                try:
                    folder.rmdir()
                except OSError:
                    pass
            continue
        return Cgroup(version, made, [str(f / "cgroup.procs") for f in made])
    return None


def reap_stale() -> int:
    """Kill the processes of, and remove, cgroups left by graders that are dead."""
    removed = 0
    if os.geteuid() != 0:
        return 0
    try:
        candidates = _parents()
    except OSError:
        return 0
    for _, parents in candidates:
        for parent in parents:
            try:
                names = os.listdir(parent)
            except OSError:
                continue
            for name in names:
                if stale_owner(name) is not None and (parent / name).is_dir():
                    Cgroup(0, [parent / name]).remove()
                    removed += 1
    return removed
