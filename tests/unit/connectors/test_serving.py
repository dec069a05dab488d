"""An HTTP connector says where it listens: with port 0 (any free port), the port the
system gave it, the only way anyone can reach it."""

from __future__ import annotations

import asyncio
import re

from aiohttp import web

from connectors.serving import serve_until_stopped
from tests.unit.connectors.standin import until


async def test_port_0_says_the_port_it_listens_on(capsys):
    stop = asyncio.Event()
    served = asyncio.create_task(
        serve_until_stopped(
            web.Application(), "127.0.0.1", 0, shutdown_timeout=1, name="t", stop=stop
        )
    )
    out: list[str] = []

    def said() -> bool:
        out.append(capsys.readouterr().out)
        return "listening on" in "".join(out)

    try:
        await until(said)
        port = int(re.search(r"listening on http://127\.0\.0\.1:(\d+)", "".join(out)).group(1))
        assert port != 0
        _, writer = await asyncio.open_connection("127.0.0.1", port)  # it listens there
        writer.close()
    finally:
        stop.set()
        await served
