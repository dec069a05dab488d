"""Run an HTTP connector's aiohttp application until SIGINT/SIGTERM, then shut down gracefully."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal

from aiohttp import web

log = logging.getLogger(__name__)


async def serve_until_stopped(
    app: web.Application,
    host: str,
    port: int,
    *,
    shutdown_timeout: float,
    name: str,
    stop: asyncio.Event | None = None,
) -> None:
    """Serve ``app`` until ``stop`` is set or a signal arrives.

    Shutdown stops accepting connections, lets in-flight requests finish (up to
    ``shutdown_timeout`` seconds) and then runs the app's cleanup hooks, which
    flush and close its producer.
    """
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    runner = web.AppRunner(app, shutdown_timeout=shutdown_timeout, access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
        if port == 0:  # any free port: say the one the system gave, or none can reach it
            port = runner.addresses[0][1]
        log.info("c360 %s connector listening on http://%s:%s", name, host, port)
        print(f"c360 {name} connector listening on http://{host}:{port}", flush=True)
        await stop.wait()
        log.info("c360 %s connector stopping", name)
    finally:
        await runner.cleanup()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(sig)
