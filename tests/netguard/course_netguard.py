"""Fail loudly when test code opens a network connection other than loopback.

Installed as a ``sys.addaudithook`` (it cannot be removed once added) in the
pytest process and, through ``sitecustomize.py`` on ``PYTHONPATH``, in every
Python process the tests start (notebook kernels, sandboxed children). A
blocked attempt raises :class:`NetworkBlocked` before any packet is sent and is
appended to the file named by ``COURSE_NETGUARD_LOG``, which the test session
reads at the end (so an attempt inside a notebook that swallows the exception
still fails the run).
"""

from __future__ import annotations

import ipaddress
import os
import socket
import sys

LOG_VAR = "COURSE_NETGUARD_LOG"
LOCAL_NAMES = {"localhost", "ip6-localhost", "ip6-loopback", ""}
_installed = False


class NetworkBlocked(OSError):
    """A non-loopback network connection was attempted during the tests."""


def is_local_host(host: object) -> bool:
    """True for loopback addresses, ``localhost`` and the wildcard address."""
    if host is None:
        return True
    if isinstance(host, bytes):
        host = host.decode(errors="replace")
    if not isinstance(host, str):
        return False
    host = host.split("%")[0].strip("[]")
    if host.lower() in LOCAL_NAMES:
        return True
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return False
    return ip.is_loopback or ip.is_unspecified


def _record(what: str) -> None:
    path = os.environ.get(LOG_VAR)
    if path:
        with open(path, "a", encoding="utf-8") as f:
            f.write(f"pid {os.getpid()} ({' '.join(sys.argv[:3])}): {what}\n")


def hook(event: str, args: tuple) -> None:
    """The audit hook: block connect/sendto/getaddrinfo to anything but loopback."""
    if event in ("socket.connect", "socket.sendto", "socket.sendmsg"):
        sock, address = args[0], args[1]
        family = getattr(sock, "family", None)
        if family in (socket.AF_INET, socket.AF_INET6) and isinstance(address, tuple):
            if not is_local_host(address[0]):
                _record(f"{event} to {address!r}")
                raise NetworkBlocked(f"network access is not allowed in the course: {event} to {address!r}")
    elif event == "socket.getaddrinfo":
        host = args[0]
        if not is_local_host(host):
            _record(f"getaddrinfo({host!r})")
            raise NetworkBlocked(f"network access is not allowed in the course: name lookup of {host!r}")


def install() -> None:
    """Add the audit hook to this process (once)."""
    global _installed
    if not _installed:
        sys.addaudithook(hook)
        _installed = True


def installed() -> bool:
    return _installed
