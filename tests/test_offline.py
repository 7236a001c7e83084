"""The offline guard really blocks: unit checks of the hook, and a child process
(like a notebook kernel) that inherits it. No packet is ever sent: the hook raises
before the system call."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest

import course_netguard as guard


class FakeSocket:
    family = socket.AF_INET


@pytest.mark.parametrize("host", ["127.0.0.1", "127.8.9.1", "::1", "localhost", "0.0.0.0", "", None])
def test_loopback_is_allowed(host):
    assert guard.is_local_host(host)


@pytest.mark.parametrize("host", ["192.0.2.1", "10.0.0.1", "8.8.8.8", "2001:db8::1", "example.com", "pypi.org"])
def test_other_hosts_are_not_local(host):
    assert not guard.is_local_host(host)


def test_hook_blocks_connect_and_lookup(tmp_path, monkeypatch):
    log = tmp_path / "log"
    monkeypatch.setenv(guard.LOG_VAR, str(log))
    with pytest.raises(guard.NetworkBlocked):
        guard.hook("socket.connect", (FakeSocket(), ("192.0.2.1", 80)))
    with pytest.raises(guard.NetworkBlocked):
        guard.hook("socket.getaddrinfo", ("example.com", 443, 0, 0, 0))
    guard.hook("socket.connect", (FakeSocket(), ("127.0.0.1", 8888)))  # allowed
    assert log.read_text().count("\n") == 2


def test_guard_is_active_in_this_process(tmp_path, monkeypatch):
    monkeypatch.setenv(guard.LOG_VAR, str(tmp_path / "log"))
    assert guard.installed()
    with pytest.raises(guard.NetworkBlocked):
        socket.getaddrinfo("example.com", 80)


def test_child_processes_inherit_the_guard(tmp_path):
    log = tmp_path / "child.log"
    env = dict(os.environ, **{guard.LOG_VAR: str(log)})
    code = "import socket\ntry:\n    socket.getaddrinfo('example.com', 80)\nexcept OSError as e:\n    print(type(e).__name__)\n"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "NetworkBlocked", out.stderr
    assert "example.com" in log.read_text()
