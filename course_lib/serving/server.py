"""``Server``: uvicorn running an ASGI app in a background thread, on a free loopback port.

    with Server(create_app(servable)) as server:     # starts, waits until it listens
        httpx.get(server.url + "/health")
    # stopped: in-flight requests finished, batch queues drained, the port released

Used by the tests, the notebook (a server inside the kernel) and ``course serve`` (which instead
runs :func:`serve_forever` in the main thread, where SIGINT and SIGTERM stop it cleanly).
"""

from __future__ import annotations

import socket
import threading
import time
from typing import Any, Callable, Optional

__all__ = ["Server", "bind_socket", "serve_forever"]


def bind_socket(host: str = "127.0.0.1", port: int = 0) -> socket.socket:
    """A listening TCP socket on ``host``:``port`` (0 = a free port chosen by the OS)."""
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        raise ValueError(f"bind_socket: port should be an int in 0..65535, got {port!r}")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as err:
        sock.close()
        raise OSError(f"bind_socket: cannot listen on {host}:{port}: {err.strerror}") from err
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def _url(sock: socket.socket, host: str) -> str:
    port = sock.getsockname()[1]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def _config(app: Any, log_level: str) -> Any:
    import uvicorn

    return uvicorn.Config(app, log_level=log_level, lifespan="on", access_log=False,
                          timeout_graceful_shutdown=10, loop="asyncio", http="h11")


class Server:
    """``Server(app, host="127.0.0.1", port=0)``: ``start()`` (returns once the server listens),
    ``url``, ``stop()`` (graceful: in-flight requests finish, the app's lifespan ends), context
    manager. ``port=0`` picks a free port."""

    def __init__(self, app: Any, host: str = "127.0.0.1", port: int = 0, log_level: str = "warning") -> None:
        if not isinstance(host, str) or not host:
            raise ValueError(f"Server: host should be a non-empty str, got {host!r}")
        if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
            raise ValueError(f"Server: port should be an int in 0..65535, got {port!r}")
        self.app, self.host, self.port, self.log_level = app, host, port, log_level
        self._server: Any = None
        self._thread: Optional[threading.Thread] = None
        self._sock: Optional[socket.socket] = None
        self._error: Optional[BaseException] = None
        self.url: Optional[str] = None

    def start(self, timeout: float = 30.0) -> "Server":
        """Bind, run uvicorn in a daemon thread, wait (at most ``timeout`` s) until it serves."""
        import uvicorn

        if self._thread is not None:
            raise RuntimeError("Server.start: the server is already running")
        self._sock = bind_socket(self.host, self.port)
        self.url = _url(self._sock, self.host)
        self.port = self._sock.getsockname()[1]
        self._server = uvicorn.Server(_config(self.app, self.log_level))

        def run() -> None:
            try:
                self._server.run(sockets=[self._sock])
            except BaseException as err:  # noqa: BLE001 - reported by start()
                self._error = err

        self._thread = threading.Thread(target=run, name=f"uvicorn:{self.port}", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                why = self._error or ("it stopped" if not self._thread.is_alive() else f"not ready after {timeout} s")
                self.stop()
                raise RuntimeError(f"Server.start: the server did not start on {self.url}: {why}")
            time.sleep(0.01)
        return self

    def stop(self, timeout: float = 30.0) -> None:
        """Ask uvicorn to exit, wait for the thread; idempotent."""
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                self._server.force_exit = True
                self._thread.join(5.0)
        if self._sock is not None:
            self._sock.close()
        self._thread, self._server, self._sock = None, None, None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def __enter__(self) -> "Server":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"Server({self.url or 'not started'}, running={self.running})"


def serve_forever(app: Any, host: str = "127.0.0.1", port: int = 8000, log_level: str = "info",
                  on_listen: Optional[Callable[[str], None]] = None) -> bool:
    """Serve ``app`` in the calling (main) thread until SIGINT or SIGTERM, then shut down cleanly
    (in-flight requests finish, queues drain) and return True; False if it never started.
    ``on_listen(url)`` is called once the socket is bound (before the app's start-up)."""
    import signal

    import uvicorn

    class _Server(uvicorn.Server):
        def capture_signals(self):  # uvicorn >= 0.29 re-raises the signal after shutdown; we exit with 0
            import contextlib

            @contextlib.contextmanager
            def ctx():
                previous = {s: signal.signal(s, self.handle_exit) for s in (signal.SIGINT, signal.SIGTERM)}
                try:
                    yield
                finally:
                    for s, h in previous.items():
                        signal.signal(s, h)

            return ctx()

    sock = bind_socket(host, port)
    try:
        server = _Server(_config(app, log_level))
        if on_listen is not None:
            on_listen(_url(sock, host))
        server.run(sockets=[sock])
        return bool(server.started)
    finally:
        sock.close()
