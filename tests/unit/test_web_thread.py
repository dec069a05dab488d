"""The worker's web server thread (stream/shell/web.py)."""

from __future__ import annotations

import asyncio
import socket
import sys
import threading
import time
import urllib.request

import pytest
from aiohttp import web

from stream.shell.web import WebThread, on_loop
from tests.support.worker import free_port


def get(url: str) -> tuple[int, bytes]:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.status, response.read()


@pytest.fixture
def switch_interval():
    """WebThread.start lowers the interpreter's switch interval: restore it."""
    before = sys.getswitchinterval()
    yield
    sys.setswitchinterval(before)


async def thread_name(request: web.Request) -> web.Response:
    return web.Response(text=threading.current_thread().name)


def test_routes_are_answered_in_the_servers_own_thread(switch_interval):
    port = free_port()
    server = WebThread("127.0.0.1", port, [("/who", thread_name)])
    server.start()
    try:
        assert get(f"http://127.0.0.1:{port}/who") == (200, b"c360-web")
        assert sys.getswitchinterval() < 0.005
    finally:
        server.stop()
    with pytest.raises(OSError):
        get(f"http://127.0.0.1:{port}/who")


def test_a_lookup_is_answered_while_the_calling_thread_computes(switch_interval):
    """What the thread is for: the worker's event loop busy with a stage for half a
    second (pure Python, holding the GIL) does not hold a lookup for that long."""
    port = free_port()
    server = WebThread("127.0.0.1", port, [("/who", thread_name)])
    server.start()
    took: list[float] = []
    go = threading.Event()

    def client() -> None:
        go.wait()
        started = time.perf_counter()
        get(f"http://127.0.0.1:{port}/who")
        took.append(time.perf_counter() - started)

    asker = threading.Thread(target=client)
    asker.start()
    try:
        go.set()
        busy_until = time.perf_counter() + 0.5
        while time.perf_counter() < busy_until:
            pass
        asker.join(10)
    finally:
        server.stop()
    assert took and took[0] < 0.25, took


def test_handlers_on_the_loop_run_there(switch_interval):
    loop = asyncio.new_event_loop()
    worker = threading.Thread(target=loop.run_forever, name="worker-loop", daemon=True)
    worker.start()
    port = free_port()
    server = WebThread("127.0.0.1", port, [("/who", on_loop(loop, thread_name))])
    server.start()
    try:
        assert get(f"http://127.0.0.1:{port}/who") == (200, b"worker-loop")
    finally:
        server.stop()
        loop.call_soon_threadsafe(loop.stop)
        worker.join(5)


def test_a_port_in_use_is_an_error_at_start(switch_interval):
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    try:
        server = WebThread("127.0.0.1", taken.getsockname()[1], [("/who", thread_name)])
        with pytest.raises(OSError):
            server.start()
    finally:
        taken.close()
