"""Waiting on a condition with a timeout (never a blind sleep)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


def wait_for(
    fetch: Callable[[], Any],
    done: Callable[[Any], bool],
    timeout: float = 60.0,
    what: str = "condition",
    every: float = 0.2,
) -> Any:
    """Poll ``fetch()`` until ``done(result)`` and return that result; fail with ``what``
    and the last result after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = fetch()
        if done(last):
            return last
        time.sleep(every)
    raise AssertionError(f"{what}: not met after {timeout}s; last: {last!r}"[:2000])
