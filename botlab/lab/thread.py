"""Run an aiohttp application in a background thread with its own event loop, on 127.0.0.1."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from collections.abc import Coroutine
from types import TracebackType
from typing import Any, TypeVar

from aiohttp import web

T = TypeVar("T")


class AppThread:
    """Serves `app` on 127.0.0.1 from a daemon thread; `start` returns the base URL.

    Usable as a context manager. The event loop belongs to the thread, so code in other
    threads reaches it only through `call` (or `loop.call_soon_threadsafe`).
    """

    def __init__(self, app: web.Application, *, host: str = "127.0.0.1", port: int = 0, name: str = "lab-app") -> None:
        self.app = app
        self.host = host
        self.port = port
        self.name = name
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._url: str | None = None

    @property
    def url(self) -> str:
        """Base URL, e.g. http://127.0.0.1:41234 (no trailing slash)."""
        if self._url is None:
            raise RuntimeError("the app thread is not running")
        return self._url

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            raise RuntimeError("the app thread is not running")
        return self._loop

    def start(self, timeout: float = 10.0) -> str:
        """Start serving; return the base URL once the socket is listening."""
        if self._thread is not None:
            raise RuntimeError("the app thread was already started")
        # Bind before the thread starts so the port is known and a clash fails here, loudly.
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self.port))
        port = sock.getsockname()[1]
        self._thread = threading.Thread(target=self._run, args=(sock,), name=self.name, daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            raise TimeoutError(f"{self.name} did not start within {timeout}s")
        if self._error is not None:
            raise RuntimeError(f"{self.name} failed to start") from self._error
        self._url = f"http://{self.host}:{port}"
        return self._url

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
            raise TimeoutError(f"{self.name} did not stop within {timeout}s")
        self._thread = None
        self._url = None

    def call(self, coro: Coroutine[Any, Any, T], timeout: float = 10.0) -> T:
        """Run `coro` on the app's loop from another thread and return its result."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def __enter__(self) -> AppThread:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def _run(self, sock: socket.socket) -> None:
        try:
            asyncio.run(self._serve(sock))
        except BaseException as exc:  # reported to start(); a thread has nowhere else to raise
            self._error = exc
            self._ready.set()

    async def _serve(self, sock: socket.socket) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        # A short shutdown timeout: a request held by a "slow" fault must not stall stop().
        runner = web.AppRunner(self.app, access_log=None, handle_signals=False, shutdown_timeout=1.0)
        await runner.setup()
        try:
            site = web.SockSite(runner, sock)
            await site.start()
            self._ready.set()
            await self._stop.wait()
        finally:
            await runner.cleanup()
