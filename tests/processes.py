"""Processes seen through /proc, for the grader's tests (Linux only)."""

from __future__ import annotations

import os

from course_lib.grade import sandbox


def uid_of(pid: str) -> int | None:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("Uid:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def cmdline(pid: str) -> bytes:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read()
    except OSError:
        return b""


def start_time(pid: int):
    """The process's start time in clock ticks (tells a live process from a new one with its pid), or None
    when there is no such process or it has ended (a zombie waiting to be reaped)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return None if fields[0] in ("Z", "X") else int(fields[19])
    except (OSError, IndexError, ValueError):
        return None


def descendants(pid: int) -> set:
    parent = {}
    for p in os.listdir("/proc"):
        if p.isdigit():
            try:
                with open(f"/proc/{p}/stat") as f:
                    parent[int(p)] = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
    found, todo = set(), [pid]
    while todo:
        top = todo.pop()
        for child, ppid in parent.items():
            if ppid == top and child not in found:
                found.add(child)
                todo.append(child)
    return found


def parent_of(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return 0


def sandbox_processes(uids) -> list:
    """Live processes (not zombies) of these sandbox uids, except those under another grader's fork
    server (another test may be grading at the same time)."""
    server = b"course_lib.grade.forkserver"
    mine = sandbox.fork_server().pid
    others: set = set()
    for p in os.listdir("/proc"):
        if p.isdigit() and int(p) != mine and server in cmdline(p) and server not in cmdline(str(parent_of(int(p)))):
            others |= descendants(int(p))
    return [p for p in os.listdir("/proc")
            if p.isdigit() and uid_of(p) in uids and int(p) not in others and start_time(int(p)) is not None]
