"""A fork server: pay for ``import torch`` once per grader run, not once per submission.

Starting a fresh interpreter and importing torch, numpy and matplotlib costs 1–2 s,
most of a submission's time. The grader therefore starts one small server process
(``python -I -m course_lib.grade.forkserver``) with the scrubbed environment of the
sandbox. The server imports what every child needs (:data:`child.PRELOAD`) and
nothing else: it never sees hidden inputs, reference values or submissions, only the
path of each run's root-only folder. For each run it forks; the fork makes itself a
session leader, points stdin at ``/dev/null`` and stdout/stderr at the run's private
files, closes every other descriptor and calls :func:`course_lib.grade.child.main`,
exactly what ``python -m course_lib.grade.child BASE`` would do after its imports.

Protocol (one JSON object per line; the server is single-threaded):

* grader → server: ``{"base": "/tmp/course-grade-…"}``
* server → grader: ``{"pid": 1234}`` right after the fork, and later
  ``{"exit": 1234, "status": <wait status>, "maxrss_kb": …}`` when that child ends.

The server ends when its stdin closes (the grader exited or was killed: the pipe closes
whichever thread started it) and kills its children's sessions first. Each child has a
parent-death signal on the server, and the jail's processes on the child
(:mod:`course_lib.grade.jail`), so nothing of a submission outlives its grader.
"""

from __future__ import annotations

import atexit
import json
import os
import select
import signal
import subprocess
import sys
import threading
import traceback
from pathlib import Path
from typing import Dict, Optional, Tuple


# --------------------------------------------------------------------------- server


def _child(base: str) -> None:
    """In the fork: become a fresh session with the run's files as stdio, then run the child."""
    try:
        os.setsid()
        null = os.open(os.devnull, os.O_RDONLY)
        private = os.path.join(base, "private")
        out = os.open(os.path.join(private, "stdout"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
        err = os.open(os.path.join(private, "stderr"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
        for fd, target in ((null, 0), (out, 1), (err, 2)):
            os.dup2(fd, target)
        os.closerange(3, os.sysconf("SC_OPEN_MAX") if hasattr(os, "sysconf") else 4096)
        os.chdir(base)
        from course_lib.grade import child

        child.main(base)
    except BaseException:
        traceback.print_exc()
        os._exit(3)
    os._exit(0)


def serve() -> None:
    """The server's loop: fork on request, report every child's end, stop when stdin closes."""
    from course_lib.grade import child

    for name in child.PRELOAD:
        try:
            __import__(name)
        except Exception:
            pass
    from course_lib import questions

    questions.all_questions()
    children: Dict[int, None] = {}
    buffer = b""

    def send(message: dict) -> None:
        os.write(1, (json.dumps(message) + "\n").encode())

    send({"ready": os.getpid()})
    while True:
        readable, _, _ = select.select([0], [], [], 0.01)
        if readable:
            chunk = os.read(0, 65536)
            if not chunk:
                break
            buffer += chunk
            while b"\n" in buffer:
                line, buffer = buffer.split(b"\n", 1)
                base = json.loads(line)["base"]
                pid = os.fork()
                if pid == 0:
                    _child(base)
                children[pid] = None
                send({"pid": pid})
        while children:
            pid, status, usage = os.wait4(-1, os.WNOHANG)
            if pid == 0:
                break
            children.pop(pid, None)
            send({"exit": pid, "status": status, "maxrss_kb": usage.ru_maxrss})
    for pid in children:
        try:
            os.killpg(pid, signal.SIGKILL)
        except OSError:
            pass


# --------------------------------------------------------------------------- grader side


class ServerGone(RuntimeError):
    """The fork server died or could not start (the message says which)."""


class ForkServer:
    """The grader's handle on one server process; safe to use from several threads.

    The server gets a home folder of its own (``course-grade-<grader pid>-server-*`` in the temp
    dir: matplotlib's and torch's caches go there), removed by :meth:`close`, or by the next
    grader's clean-up if this one was killed."""

    def __init__(self, env: Dict[str, str], cwd: str) -> None:
        import tempfile

        from course_lib.grade import isolation

        self.home = tempfile.mkdtemp(prefix=f"{isolation.PREFIX}{os.getpid()}-server-")
        env = {**env, "HOME": self.home, "MPLCONFIGDIR": os.path.join(self.home, ".mpl")}
        self._proc = subprocess.Popen(
            [sys.executable, "-I", "-m", "course_lib.grade.forkserver"],
            cwd=self.home, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            start_new_session=True, close_fds=True,
        )
        self._send_lock = threading.Lock()
        self._state = threading.Condition()
        self._pids: list = []
        self._exits: Dict[int, Tuple[int, int]] = {}
        self._alive = True
        first = self._proc.stdout.readline()
        try:
            self.pid = int(json.loads(first)["ready"])
        except (ValueError, KeyError, TypeError):
            self._proc.kill()
            self._proc.wait()
            self._remove_home()
            raise ServerGone("sandbox: the fork server did not start") from None
        threading.Thread(target=self._read, name="forkserver-reader", daemon=True).start()

    def _read(self) -> None:
        for line in self._proc.stdout:
            message = json.loads(line)
            with self._state:
                if "pid" in message:
                    self._pids.append(message["pid"])
                else:
                    self._exits[message["exit"]] = (message["status"], message["maxrss_kb"])
                self._state.notify_all()
        with self._state:
            self._alive = False
            self._state.notify_all()

    @property
    def alive(self) -> bool:
        return self._alive and self._proc.poll() is None

    def start(self, base: str) -> int:
        """Fork a child for the run in ``base``; return its pid (a session and process group leader)."""
        with self._send_lock:
            try:
                self._proc.stdin.write((json.dumps({"base": base}) + "\n").encode())
                self._proc.stdin.flush()
            except OSError as err:
                raise ServerGone(f"sandbox: the fork server is gone ({err})") from None
            with self._state:
                while not self._pids:
                    if not self._alive:
                        raise ServerGone("sandbox: the fork server is gone")
                    self._state.wait(1.0)
                return self._pids.pop(0)

    def wait(self, pid: int, timeout: Optional[float]) -> Optional[Tuple[int, int]]:
        """The child's (wait status, peak RSS in KiB), or None if it is still running after ``timeout``."""
        with self._state:
            done = self._state.wait_for(lambda: pid in self._exits or not self._alive, timeout)
            if not done:
                return None
            if pid not in self._exits:
                raise ServerGone("sandbox: the fork server died while a submission ran")
            return self._exits.pop(pid)

    def close(self) -> None:
        """Stop the server (it kills what it still runs) and remove its home folder."""
        if self._proc.poll() is None:
            self._proc.stdin.close()
            try:
                self._proc.wait(5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._remove_home()

    def _remove_home(self) -> None:
        from course_lib.grade import isolation

        if os.path.isdir(self.home):
            isolation.remove_tree(Path(self.home))


_server: list = [None]
_server_lock = threading.Lock()


def get(env: Dict[str, str], cwd: str) -> ForkServer:
    """This grader's fork server, started on first use (and again if it died)."""
    with _server_lock:
        if _server[0] is None or not _server[0].alive:
            if _server[0] is not None:
                _server[0].close()
            else:
                atexit.register(close)
            _server[0] = ForkServer(env, cwd)
        return _server[0]


def close() -> None:
    """Stop this grader's fork server, if one runs (the next :func:`get` starts a new one)."""
    with _server_lock:
        if _server[0] is not None:
            _server[0].close()
            _server[0] = None


if __name__ == "__main__":
    try:
        serve()
    except BaseException:
        traceback.print_exc()
        os._exit(3)
