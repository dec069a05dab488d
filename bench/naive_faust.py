"""The peer baseline: c360's counting job built the way faust's documentation builds it.

Single-event records on one topic; an agent that updates one Table key per event
(``table[key] += 1``), with the same tuned worker settings as c360 (`stream.app`).
Run as ``python bench/naive_faust.py`` with the ``C360_*`` environment of a bench
run; the bench times its table's changelog (one record per write).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import faust
import orjson

from stream.app import faust_options
from stream.settings import Settings

TOPIC = "naive.events"
TABLE = "naive_counts"


def changelog(settings: Settings) -> str:
    return f"{settings.app_id}-{TABLE}-changelog"


def topic_name(settings: Settings) -> str:
    return settings.topic_prefix + TOPIC


def main() -> int:
    from faust.worker import Worker

    settings = Settings.from_env()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    # faust declares its own topics here, as in its documentation (start time is not
    # part of the measured span)
    app = faust.App(settings.app_id, **{**faust_options(settings), "topic_allow_declare": True})
    source = app.topic(
        topic_name(settings), key_type=bytes, value_type=bytes, value_serializer="raw"
    )
    counts = app.Table(TABLE, default=int, partitions=settings.partitions)

    @app.agent(source, concurrency=1)
    async def count(stream):
        async for value in stream:
            event = orjson.loads(value)
            key = event.get("anonymousId") or event.get("wallet") or event.get("event_id") or "?"
            counts[key] += 1

    Worker(app, loglevel="warning", redirect_stdouts=False, quiet=True).execute_from_commandline()
    return 0


if __name__ == "__main__":
    sys.exit(main())
