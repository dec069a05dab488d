"""Shared benchmark machinery: fresh isolated settings, topics, and re-exports of the
pipeline watchers (stream/watch.py) and the load generator (stream.loadgen)."""

from __future__ import annotations

import asyncio
import atexit
import os
import sys
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from stream import admin  # noqa: E402
from stream.loadgen import Record, batched, produce  # noqa: E402
from stream.population import address, iso  # noqa: E402
from stream.settings import Settings  # noqa: E402
from stream.watch import group_lag, last_record_time, wait_quiet  # noqa: E402
from tests.support.worker import free_port  # noqa: E402

__all__ = [
    "Record",
    "batched",
    "dispose",
    "drop_fresh",
    "ensure",
    "fresh_settings",
    "group_lag",
    "last_record_time",
    "produce",
    "sign_ins",
    "wait_quiet",
]


_FRESH: list[Settings] = []


def fresh_settings(tmp: Path, **overrides) -> Settings:
    """Settings with their own topic prefix, app id, data dir and web port; their topics
    are deleted by :func:`dispose` or, at the latest, :func:`drop_fresh`."""
    tag = uuid.uuid4().hex[:8]
    settings = Settings.from_env(
        None,
        app_id=f"c360-bench-{tag}",
        topic_prefix=f"bench{tag}.",
        data_dir=tmp / "data",
        web_port=free_port(),
        api_key=os.environ.get("C360_API_KEY") or "bench-key",
        **overrides,
    )
    _FRESH.append(settings)
    return settings


async def dispose(settings: Settings) -> None:
    """Delete a deployment's topics now, once its workers have stopped: the phases that
    follow run on a broker without them (the 1M-profile run alone holds GBs)."""
    if settings in _FRESH:
        _FRESH.remove(settings)
    try:
        await admin.drop_deployment(settings)
    except Exception as exc:
        where = settings.topic_prefix
        print(f"bench: topics of {where!r} not deleted: {exc!r}", file=sys.stderr)


def drop_fresh() -> None:
    """Delete the topics of every deployment :func:`fresh_settings` made that is still
    there: scripts call it when they end (also after a failure or Ctrl-C), and it runs
    at exit as a fallback (where a broker named by host name cannot be reached any
    more: the resolver's thread pool is shut down by then)."""
    while _FRESH:
        asyncio.run(dispose(_FRESH[-1]))


atexit.register(drop_fresh)  # a fallback: scripts call drop_fresh when they end


async def ensure(settings: Settings) -> None:
    await admin.ensure_topics(settings)


def sign_ins(count: int, ts: int, tag: str) -> list[tuple[str, str, dict]]:
    """Verified SIWE sign-ins, each linking a new device to a new wallet."""
    out = []
    for i in range(count):
        wallet = address(0x51CE, i)
        device = f"{tag}-dev-{i}"
        out.append(
            (
                "web.events",
                device,
                {
                    "type": "track",
                    "event": "SIWE Sign In",
                    "messageId": f"{tag}-siwe-{i}",
                    "anonymousId": device,
                    "timestamp": iso(ts + i),
                    "properties": {
                        "address": wallet,
                        "chainId": 1,
                        "message": "sign in",
                        "signature": "0x00",
                    },
                    "context": {
                        "c360": {"siwe": {"verified": True, "address": wallet, "chain_id": 1}}
                    },
                },
            )
        )
    return out
