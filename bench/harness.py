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
from stream.settings import Settings  # noqa: E402
from stream.watch import group_lag, last_record_time, wait_quiet  # noqa: E402
from tests.support.worker import free_port  # noqa: E402

__all__ = [
    "Record",
    "batched",
    "ensure",
    "fresh_settings",
    "group_lag",
    "last_record_time",
    "produce",
    "wait_quiet",
]


_FRESH: list[Settings] = []


def fresh_settings(tmp: Path, **overrides) -> Settings:
    """Settings with their own topic prefix, app id, data dir and web port; their topics
    are deleted when the process exits (:func:`drop_fresh`)."""
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
    if not _FRESH:
        atexit.register(drop_fresh)
    _FRESH.append(settings)
    return settings


def drop_fresh() -> None:
    """Delete the topics of every deployment :func:`fresh_settings` made (at exit, also
    after a failure or Ctrl-C): the 1M-profile run alone leaves GBs on the broker."""
    while _FRESH:
        settings = _FRESH.pop()
        try:
            asyncio.run(admin.drop_deployment(settings))
        except Exception as exc:
            print(
                f"bench: topics of {settings.topic_prefix!r} not deleted: {exc!r}", file=sys.stderr
            )


async def ensure(settings: Settings) -> None:
    await admin.ensure_topics(settings)
