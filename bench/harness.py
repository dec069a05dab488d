"""Shared benchmark machinery: fresh isolated settings, topics, and re-exports of the
pipeline watchers (stream/watch.py) and the load generator (stream.loadgen)."""

from __future__ import annotations

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


def fresh_settings(tmp: Path, **overrides) -> Settings:
    """Settings with their own topic prefix, app id, data dir and web port."""
    tag = uuid.uuid4().hex[:8]
    return Settings.from_env(
        None,
        app_id=f"c360-bench-{tag}",
        topic_prefix=f"bench{tag}.",
        data_dir=tmp / "data",
        web_port=free_port(),
        api_key=os.environ.get("C360_API_KEY") or "bench-key",
        **overrides,
    )


async def ensure(settings: Settings) -> None:
    await admin.ensure_topics(settings)
