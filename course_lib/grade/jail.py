"""The child's jail (root only): namespaces, an allow-listed root and a PID-namespace init.

:func:`enter` is called by the child while it is still root. It splits the child in three:

* the **outer** process (the one the grader started) stays outside; it only waits
  and passes on the worker's exit status (or signal) to the grader. It has a
  parent-death signal: if the grader dies, it dies.
* the **init** (PID 1 of new PID, mount, network and IPC namespaces) stays root,
  has a parent-death signal on the outer, builds the new root, starts the worker
  and waits for it. When the worker ends it SIGKILLs everything else in the
  namespace, copies the result files (regular files with the expected names,
  bounded in size) to the grader's root-only folder, and exits. When the init
  dies, for whatever reason, the kernel kills every process of the namespace.
* the **worker** is what :func:`enter` returns in; it goes on to run the student's
  code as the sandbox uid.

The new root is a small read-only tmpfs holding only read-only bind mounts of the
system folders (``/usr``, ``/etc``, ``/lib*``...), the interpreter's prefix, the
virtual environment and ``course_lib`` (``job["ro_paths"]``), at their own paths; a
fresh ``/proc``, a minimal ``/dev``; and one size-limited tmpfs ``/sandbox`` that
holds everything writable: the working folder, ``/tmp``, ``/dev/shm`` and the
outputs. Nothing else of the machine (course folder, ``.git``, other submissions,
earlier outputs, filesystem sockets) exists inside, and nothing is left after.
"""

from __future__ import annotations

import ctypes
import os
import platform
import re
import resource
import select
import signal
import stat
from typing import Dict, List

CLONE_NEWNS, CLONE_NEWNET, CLONE_NEWPID, CLONE_NEWIPC = 0x00020000, 0x40000000, 0x20000000, 0x08000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 1, 2, 4, 8, 32, 4096, 16384, 1 << 18
MNT_DETACH = 2
PR_SET_PDEATHSIG, PR_SET_NO_NEW_PRIVS = 1, 38
SYS_PIVOT_ROOT = {"x86_64": 155, "aarch64": 41, "ppc64le": 203, "s390x": 217}
SYSTEM_PATHS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc")
DEVICES = ("null", "zero", "full", "random", "urandom", "tty")
RESULT = re.compile(r"log\.jsonl|\d{1,4}_\d{1,4}_\d{1,2}\.npy")

# paths inside the jail
RW, WORK, OUT, IN = "/sandbox", "/sandbox/work", "/sandbox/out", "/grade/in"

_libc = ctypes.CDLL(None, use_errno=True)
_libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]
_libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
_libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]


class JailError(OSError):
    """A namespace or mount operation failed (the message names it)."""


def _check(rc: int, what: str) -> None:
    if rc != 0:
        err = ctypes.get_errno()
        raise JailError(err, f"{what}: {os.strerror(err)}")


def _mount(source: str, target: str, fstype: str = "", flags: int = 0, data: str = "") -> None:
    _check(_libc.mount(source.encode(), target.encode(), fstype.encode() or None, flags, data.encode() or None),
           f"mount {source} on {target}")


def die_with_parent(parent: int) -> None:
    """SIGKILL this process when its parent dies (and at once if it already has)."""
    _check(_libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0), "prctl(PR_SET_PDEATHSIG)")
    if os.getppid() != parent:
        os._exit(128 + signal.SIGKILL)


def no_new_privileges() -> None:
    """setuid programs cannot raise the privileges of this process or its children."""
    _libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)


def enter(job: Dict, base: str) -> str:
    """Jail the calling (root) child; returns, in the worker only, a note on what was done."""
    out_fd = os.open(os.path.join(base, "out"), os.O_RDONLY | os.O_DIRECTORY)
    _check(_libc.unshare(CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWPID | CLONE_NEWIPC), "unshare")
    status_r, status_w = os.pipe()
    alive_r, alive_w = os.pipe()
    init = os.fork()
    if init:
        os.close(status_w)
        os.close(alive_r)
        os.close(out_fd)
        _outer(init, status_r)  # never returns
    os.close(status_r)
    os.close(alive_w)
    _check(_libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0), "prctl(PR_SET_PDEATHSIG)")
    if select.select([alive_r], [], [], 0)[0]:  # EOF: the outer died before we could follow it
        os._exit(128 + signal.SIGKILL)
    try:
        os.umask(0o022)
        _build_root(job, base)
    except BaseException as err:  # never run student code half-jailed
        os.write(2, f"grader: could not build the sandbox: {err}\n".encode())
        os.write(status_w, str(3 << 8).encode())
        os._exit(0)
    worker = os.fork()
    if worker:
        _init(worker, out_fd, status_w, job)  # never returns
    for fd in (out_fd, status_w, alive_r):
        os.close(fd)
    os.chdir(WORK)
    return "isolated"


def _outer(init: int, status_r: int) -> None:
    """Wait for the init; exit as the worker did (same code, or the same signal)."""
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    data = b""
    while True:
        chunk = os.read(status_r, 64)
        if not chunk:
            break
        data += chunk
    os.waitpid(init, 0)
    try:
        status = int(data)
    except ValueError:
        status = signal.SIGKILL  # the init was killed: report it like a kill
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        signal.signal(sig, signal.SIG_DFL)
        os.kill(os.getpid(), sig)
        os._exit(128 + sig)
    os._exit(os.WEXITSTATUS(status) if os.WIFEXITED(status) else 3)


def _init(worker: int, out_fd: int, status_w: int, job: Dict) -> None:
    """PID 1: wait for the worker, kill the rest, hand the results over, exit.

    Orphans are not reaped while the worker runs: their zombies keep counting against the
    process limits, so a fork bomb stops at the limit instead of churning forever."""
    status = signal.SIGKILL
    while True:
        try:
            _, status = os.waitpid(worker, 0)
            break
        except ChildProcessError:
            break
        except InterruptedError:
            continue
    while True:  # nothing of the student may run while its files are copied
        try:
            os.kill(-1, signal.SIGKILL)
        except ProcessLookupError:
            pass
        try:
            os.wait()
        except ChildProcessError:
            break
        except InterruptedError:
            continue
    try:
        _copy_results(out_fd, int(job["output_mb"]) * 2**20, 1 + 16 * sum(job["cases"]))
    finally:
        os.write(status_w, str(status).encode())
        os._exit(0)


def _copy_results(out_fd: int, cap: int, most: int) -> None:
    """Copy the result files the harness wrote to the grader's folder: regular files with the
    expected names only, each at most ``cap`` bytes, at most ``most`` of them."""
    try:
        names = sorted(n for n in os.listdir(OUT) if RESULT.fullmatch(n))[:most]
    except OSError:
        return
    for name in names:
        try:
            src = os.open(os.path.join(OUT, name), os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        except OSError:
            continue
        try:
            info = os.fstat(src)
            if not stat.S_ISREG(info.st_mode) or info.st_size > cap:
                continue
            dst = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600, dir_fd=out_fd)
            try:
                left = cap
                while left > 0:
                    chunk = os.read(src, min(left, 1 << 20))
                    if not chunk:
                        break
                    os.write(dst, chunk)
                    left -= len(chunk)
            finally:
                os.close(dst)
        except OSError:
            continue
        finally:
            os.close(src)


def _inside(path: str, folders: List[str]) -> bool:
    return any(path == f or path.startswith(f.rstrip("/") + "/") for f in folders)


def _bind_ro(source: str, new: str, done: List[str]) -> None:
    """Make ``source`` visible read-only at the same path under ``new``."""
    if _inside(source, done) or not os.path.lexists(source):
        return
    target = new + source
    os.makedirs(os.path.dirname(target), mode=0o755, exist_ok=True)
    if os.path.islink(source):  # e.g. /bin -> usr/bin on merged-/usr systems
        os.symlink(os.readlink(source), target)
        return
    if os.path.isdir(source):
        os.makedirs(target, mode=0o755, exist_ok=True)
    else:
        open(target, "wb").close()
    _mount(source, target, flags=MS_BIND)
    _mount("none", target, flags=MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID)
    done.append(source)


def _build_root(job: Dict, base: str) -> None:
    """Build the allow-listed root in ``base/root`` and pivot into it."""
    uid = job["uid"]
    _mount("none", "/", flags=MS_REC | MS_PRIVATE)
    new = os.path.join(base, "root")
    _mount("tmpfs", new, "tmpfs", MS_NOSUID | MS_NODEV, "size=1m,nr_inodes=4096,mode=755")
    rw = new + RW
    os.makedirs(rw, mode=0o755)
    size = int(job["disk_mb"])
    _mount("tmpfs", rw, "tmpfs", MS_NOSUID | MS_NODEV, f"size={size}m,nr_inodes={max(1024, size * 64)},mode=755")
    for sub, mode, owner in (("work", 0o700, uid), ("tmp", 0o1777, 0), ("shm", 0o1777, 0), ("out", 0o1733, 0)):
        os.mkdir(f"{rw}/{sub}")
        os.chmod(f"{rw}/{sub}", mode)
        if owner:
            os.chown(f"{rw}/{sub}", owner, job["gid"])
    for sub, target in (("tmp", "/tmp"), ("shm", "/dev/shm")):
        os.makedirs(new + target, mode=0o755)
        _mount(f"{rw}/{sub}", new + target, flags=MS_BIND)
    # the read-only folders come after /tmp: a course or venv that lives under /tmp (a CI clone)
    # is then bound over a root-owned folder of the sandbox's /tmp instead of being hidden by it
    done: List[str] = []
    for path in sorted(set(SYSTEM_PATHS) | set(job["ro_paths"]), key=len):
        _bind_ro(path, new, done)
    for path in job.get("hide", []):  # anything hidden that an allowed folder contains
        if _inside(path, done) and os.path.isdir(new + path):
            _mount("tmpfs", new + path, "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, "size=4k,mode=555")
    for dev in DEVICES:
        if os.path.exists(f"/dev/{dev}"):
            open(f"{new}/dev/{dev}", "wb").close()
            _mount(f"/dev/{dev}", f"{new}/dev/{dev}", flags=MS_BIND)
    for name, target in (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"), ("stdout", "/proc/self/fd/1"), ("stderr", "/proc/self/fd/2")):
        os.symlink(target, f"{new}/dev/{name}")
    os.makedirs(new + "/proc", mode=0o555)
    _mount("proc", new + "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    os.makedirs(new + IN, mode=0o755)
    _mount(os.path.join(base, "in"), new + IN, flags=MS_BIND)
    _mount("none", new + IN, flags=MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC)
    os.mkdir(new + "/.old")
    number = SYS_PIVOT_ROOT.get(platform.machine())
    if number is None:
        raise JailError(0, f"pivot_root: unknown architecture {platform.machine()}")
    _check(_libc.syscall(number, new.encode(), (new + "/.old").encode()), "pivot_root")
    os.chdir("/")
    _check(_libc.umount2(b"/.old", MNT_DETACH), "umount /.old")
    os.rmdir("/.old")
    _mount("none", "/", flags=MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV, data="size=1m,nr_inodes=4096,mode=755")
