"""Grader-side bookkeeping of sandboxes: private uids, killing what a uid left, stale clean-up.

* :class:`UidLease` hands out one sandbox uid from :data:`UID_POOL` per child run,
  held with an exclusive ``flock`` on a lock file in a root-only folder, so two
  ``course grade`` runs at the same time (or two worker threads) never share a uid.
  Before a uid is handed out and after it is given back, every process of that
  uid is killed: the next student never meets the previous one's processes.
* :func:`reap_stale` removes what a grader killed with ``kill -9`` left behind:
  temporary folders named ``course-grade-<pid>-*`` and cgroups of the same name
  whose grader pid is dead.
* :func:`remove_tree` deletes a folder without recursion (a 3,000-level chain is fine).
"""

from __future__ import annotations

import errno
import fcntl
import os
import re
import signal
import stat
import tempfile
import threading
import time
from pathlib import Path
from typing import Iterable, Optional

BASE_UID = 61000
UID_POOL = range(BASE_UID, BASE_UID + 64)  # no account needed for setuid
PREFIX = "course-grade-"
STALE = re.compile(r"course-grade-(\d+)-.+")
_reaped = threading.Lock()
_reaped_once = [False]


def lock_dir() -> Path:
    """A root-only folder for the uid lock files (``/run/course-grade``, else under the temp dir)."""
    for parent in (Path("/run"), Path(tempfile.gettempdir())):
        folder = parent / "course-grade-locks"
        try:
            folder.mkdir(mode=0o700, exist_ok=True)
            info = os.lstat(folder)
        except OSError:
            continue
        if stat.S_ISDIR(info.st_mode) and info.st_uid == os.getuid() and not info.st_mode & 0o077:
            return folder
    raise RuntimeError("sandbox: no private folder for uid lock files in /run or the temp dir")


def kill_uid(uid: int) -> None:
    """SIGKILL every process whose real, effective or saved uid is ``uid``, until none is left."""
    for _ in range(200):
        found = False
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/status") as f:
                    for line in f:
                        if line.startswith("Uid:"):
                            if uid in {int(x) for x in line.split()[1:4]}:
                                found = True
                                os.kill(int(entry), signal.SIGKILL)
                            break
            except (OSError, ValueError):
                continue
        if not found:
            return
        time.sleep(0.01)


class UidLease:
    """One sandbox uid, exclusively held (across processes) until :meth:`release`."""

    def __init__(self, pool: Iterable[int] = UID_POOL) -> None:
        folder = lock_dir()
        for uid in pool:
            fd = os.open(folder / f"uid-{uid}.lock", os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as err:
                os.close(fd)
                if err.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                    continue
                raise
            self.uid, self._fd = uid, fd
            kill_uid(uid)  # a killed grader's leftovers, whatever they are
            return
        raise RuntimeError(f"sandbox: all {len(pool)} sandbox uids are in use by other grader runs")

    def release(self) -> None:
        if self._fd is not None:
            kill_uid(self.uid)
            os.close(self._fd)
            self._fd = None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_tree(path: Path) -> None:
    """Delete ``path`` and everything below it without recursion, never following links
    (:func:`course_lib.grade.untrusted_files.remove_tree`: works through folder descriptors,
    so a 3,000-level chain is neither a RecursionError nor a path too long)."""
    from course_lib.grade.untrusted_files import remove_tree as remove_untrusted_tree

    remove_untrusted_tree(path)


def stale_owner(name: str) -> Optional[int]:
    """The pid of the grader that made ``course-grade-<pid>-...`` when it is dead, else None."""
    match = STALE.fullmatch(name)
    if not match:
        return None
    pid = int(match.group(1))
    return None if pid == os.getpid() or _pid_alive(pid) else pid


def reap_stale(folders: Iterable[Path] = ()) -> int:
    """Remove temporary folders of dead graders (once per process); return how many were removed."""
    with _reaped:
        if _reaped_once[0]:
            return 0
        _reaped_once[0] = True
    removed = 0
    for parent in [Path(tempfile.gettempdir()), *folders]:
        try:
            names = os.listdir(parent)
        except OSError:
            continue
        for name in names:
            path = parent / name
            try:
                info = os.lstat(path)
            except OSError:
                continue
            if stat.S_ISDIR(info.st_mode) and info.st_uid == os.getuid() and stale_owner(name) is not None:
                remove_tree(path)
                removed += 1
    return removed
