"""The worker's web server, in a thread of its own (faust's web server is off).

Served on the event loop with the stages, a lookup waited for whatever the loop was
running: a stage's record or commit holds it for 5-50 ms under load, and the API's
p99 was 30-50 ms at half load. Here the server has its own thread and event loop, and
the worker lowers the interpreter's switch interval (``SWITCH_INTERVAL``), so a lookup
waits at most a fraction of a millisecond for the GIL at each step.

What runs where:

- ``/v1/*`` (:mod:`stream.shell.api`) runs in this thread. It reads only what is safe
  from here: committed state in partition databases that are already open (RocksDB
  is thread-safe; the thread never opens or closes one), faust's router, and other
  workers over HTTP. What belongs to the event loop (the producer) it asks the loop
  for (:meth:`stream.app.C360.on_loop`).
- ``/ready`` and ``/metrics`` are answered on the event loop, as before: they read
  faust's consumer and recovery state, which only the loop may touch. Their latency
  does not matter.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import threading
from collections.abc import Awaitable, Callable

from aiohttp import web

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.Response]]

SWITCH_INTERVAL = 0.0005
"""Seconds a thread may hold the GIL while another waits (Python's default: 0.005).
With the default, a lookup in this thread waited up to 5 ms at each of its steps
while the stages ran; at 0.5 ms the API's p99 at 4,000 events/s was 9.5 ms against
35 ms served on the event loop (24.8 ms in a thread at the default interval)."""


class WebThread:
    """An aiohttp server on ``host:port`` running in a daemon thread."""

    def __init__(
        self,
        host: str,
        port: int,
        routes: list[tuple[str, Handler]],
        cleanup: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.host, self.port = host, port
        self.routes = routes
        self.cleanup = cleanup  # awaited in the thread when it stops (client sessions)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None

    def start(self, timeout: float = 30.0) -> None:
        """Start serving; returns once the port is bound (raises if it cannot be)."""
        started = threading.Event()
        failed: list[BaseException] = []

        def run() -> None:
            loop = self._loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self._serve())
            except BaseException as exc:  # reported to start(), which raises it
                failed.append(exc)
                started.set()
                return
            started.set()
            loop.run_forever()
            loop.run_until_complete(self._runner.cleanup())
            loop.close()

        self._thread = threading.Thread(target=run, name="c360-web", daemon=True)
        self._thread.start()
        if not started.wait(timeout):
            raise TimeoutError(f"the web server did not start on {self.host}:{self.port}")
        if failed:
            raise failed[0]
        sys.setswitchinterval(SWITCH_INTERVAL)

    async def _serve(self) -> None:
        app = web.Application()
        for path, handler in self.routes:
            app.router.add_get(path, handler)
        if self.cleanup is not None:
            cleanup = self.cleanup

            async def on_cleanup(_: web.Application) -> None:
                await cleanup()

            app.on_cleanup.append(on_cleanup)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, self.host, self.port).start()
        log.info("web server on http://%s:%s", self.host, self.port)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop serving and wait for the thread (connections are closed)."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None or not thread.is_alive():
            return
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout)


def on_loop(loop: asyncio.AbstractEventLoop, handler: Handler) -> Handler:
    """``handler`` answered on ``loop`` (the worker's event loop), awaited from here."""

    async def answer(request: web.Request) -> web.Response:
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(handler(request), loop))

    return answer
