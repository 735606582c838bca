"""Serve aiohttp applications from a background thread with its own event loop, on 127.0.0.1."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import threading
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self, TypeVar

from aiohttp import web

T = TypeVar("T")


class StartStop:
    """`with thing:` starts `thing` and stops it when the block ends (for anything with
    `start()` and `stop()`)."""

    def start(self) -> object:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


@dataclass(frozen=True)
class Site:
    """What one listening socket serves: `app`, over TLS when `ssl_context` is given."""

    app: web.Application
    ssl_context: ssl.SSLContext | None = None


class ServerThread(StartStop):
    """Serves one site per port in `ports` on `host` from a daemon thread; `start` returns the
    first one's base URL. Can be started again after `stop`.

    `sites` is called on the thread's event loop at each start, before anything is served,
    and returns the sites for `ports`, in order. `on_stop` (if given) runs on that loop when
    stopping, before the applications are cleaned up. The loop belongs to the thread, so code
    in other threads reaches it only through `call` and `call_function` (or
    `loop.call_soon_threadsafe`). Errors name the thread `label` (default: `name`).
    """

    def __init__(
        self,
        sites: Callable[[], Sequence[Site]],
        ports: Sequence[int],
        *,
        host: str = "127.0.0.1",
        name: str = "lab-app",
        label: str | None = None,
        on_stop: Callable[[], Awaitable[None]] | None = None,
        bind: Callable[[str, int], socket.socket] | None = None,
    ) -> None:
        self.host = host
        self._bind = bind or _bind  # how a port's socket is made (in a lab host's network namespace, say)
        self.name = name
        self._label = label or name
        self._sites = sites
        self._bind_ports = tuple(ports)
        self._on_stop = on_stop
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._ports: list[int] | None = None

    @property
    def running(self) -> bool:
        """Started (or starting) and not stopped."""
        return self._thread is not None

    @property
    def ports(self) -> list[int]:
        """The ports served, in the order of `ports` (an ephemeral 0 resolved)."""
        if self._ports is None:
            raise RuntimeError("the app thread is not running")
        return list(self._ports)

    @property
    def url(self) -> str:
        """Base URL of the first site, e.g. http://127.0.0.1:41234 (no trailing slash)."""
        return f"http://{self.host}:{self.ports[0]}"

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            raise RuntimeError("the app thread is not running")
        return self._loop

    def start(self, timeout: float = 10.0) -> str:
        """Start serving; return `url` once every socket is listening."""
        if self._thread is not None:
            raise RuntimeError("the app thread was already started")
        # Bind before the thread starts so the ports are known and a clash fails here, loudly.
        socks = [self._bind(self.host, port) for port in self._bind_ports]
        self._ready.clear()
        self._error = None
        self._thread = threading.Thread(target=self._run, args=(socks,), name=self.name, daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            raise TimeoutError(f"{self._label} did not start within {timeout}s")
        if self._error is not None:
            self._thread = None
            raise RuntimeError(f"{self._label} failed to start") from self._error
        self._ports = [sock.getsockname()[1] for sock in socks]
        return self.url

    def stop(self, timeout: float = 10.0) -> None:
        """Shut the server down cleanly and join the thread. Safe to call twice."""
        thread, loop, stop = self._thread, self._loop, self._stop
        if thread is None:
            return
        if loop is not None and stop is not None and not loop.is_closed():
            # The loop may close between the check and the call.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(stop.set)
        thread.join(timeout)
        if thread.is_alive():
            raise TimeoutError(f"{self._label} did not stop within {timeout}s")
        self._thread = None
        self._ports = None

    def call(self, coro: Coroutine[Any, Any, T], timeout: float = 10.0) -> T:
        """Run `coro` on the thread's loop from another thread and return its result."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def call_function(self, fn: Callable[[], T], timeout: float = 10.0) -> T:
        """Run `fn()` on the thread's loop and return its result: directly when nothing is
        served (nothing else runs there then) or when already on that loop."""
        loop = self._loop
        if loop is None or self._thread is None:
            return fn()
        try:
            if asyncio.get_running_loop() is loop:
                return fn()
        except RuntimeError:
            pass

        async def run() -> T:
            return fn()

        return asyncio.run_coroutine_threadsafe(run(), loop).result(timeout)

    def _run(self, socks: list[socket.socket]) -> None:
        try:
            asyncio.run(self._serve(socks))
        except BaseException as exc:  # reported to start(); a thread has nowhere else to raise
            self._error = exc
            self._ready.set()

    async def _serve(self, socks: list[socket.socket]) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        sites = self._sites()
        # A short shutdown timeout: a request held by a "slow" fault must not stall stop().
        runners = [
            web.AppRunner(site.app, access_log=None, handle_signals=False, shutdown_timeout=1.0) for site in sites
        ]
        for runner in runners:
            await runner.setup()
        try:
            for site, runner, sock in zip(sites, runners, socks, strict=True):
                await web.SockSite(runner, sock, ssl_context=site.ssl_context).start()
            self._ready.set()
            await self._stop.wait()
        finally:
            if self._on_stop is not None:
                await self._on_stop()
            for runner in runners:
                await runner.cleanup()


class AppThread(ServerThread):
    """Serves `app` on 127.0.0.1 from a daemon thread; `start` returns the base URL.

    Usable as a context manager. The event loop belongs to the thread, so code in other
    threads reaches it only through `call` (or `loop.call_soon_threadsafe`).
    """

    def __init__(self, app: web.Application, *, host: str = "127.0.0.1", port: int = 0, name: str = "lab-app") -> None:
        super().__init__(lambda: [Site(app)], [port], host=host, name=name)
        self.app = app
        self.port = port


def _bind(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    return sock
