"""A real ``c360 worker`` process on the real broker."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import subprocess
import time

import orjson
import pytest

from stream import admin, topics
from tests.support.kafka import create_topic, list_topics, produce, read_until
from tests.support.rocks import options_file
from tests.support.waiting import wait_for
from tests.support.worker import BIN, http_get

pytestmark = pytest.mark.integration


def test_worker_consumes_a_record_and_produces_a_derived_one(settings, start_worker):
    worker = start_worker(settings)
    worker.wait_ready()
    event = {
        "type": "page",
        "messageId": "m-1",
        "anonymousId": "device-1",
        "timestamp": "2026-11-28T10:00:00Z",
    }
    web = topics.WEB_EVENTS.name(settings)
    asyncio.run(produce(settings.kafka_bootstrap, web, [(b"device-1", orjson.dumps(event))]))

    records = asyncio.run(
        read_until(settings.kafka_bootstrap, topics.ROUTE.name(settings), lambda rs: len(rs) >= 1)
    )
    derived = orjson.loads(records[0].value)
    assert "m-1" in orjson.dumps(derived).decode()


def test_a_workers_table_databases_open_with_its_rocksdb_options(settings, start_worker):
    """Stage tables (c360://) and global tables (c360v://) alike: faust's own options
    would give each a 2 GiB block cache, 3 bloom bits and no memtable filter."""
    settings = dataclasses.replace(settings, rocksdb_memtable_bloom=0.05)
    start_worker(settings).wait_ready()
    databases = {path.name.rsplit("-", 1)[0]: path for path in settings.data_dir.rglob("*.db")}
    assert {"route", "link", "profile", "prices"} <= set(databases)
    for path in databases.values():
        written = options_file(path)
        assert written["memtable_whole_key_filtering"] == "true", path
        assert float(written["memtable_prefix_bloom_size_ratio"]) == 0.05, path
        assert written["write_buffer_size"] == str(settings.rocksdb_write_buffer_mb << 20), path


def test_worker_refuses_a_topic_with_another_partition_count(settings, tmp_path):
    name = topics.PROFILE.name(settings)

    asyncio.run(create_topic(settings.kafka_bootstrap, name, settings.partitions + 1))
    env = {**os.environ, **settings.to_env()}
    done = subprocess.run(
        [str(BIN / "c360"), "worker"], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 1
    assert f"{name} has {settings.partitions + 1} partitions" in done.stderr
    assert "refusing to start" in done.stderr


def test_web_server_is_loopback_without_debug_endpoints(settings, start_worker):
    worker = start_worker(settings)
    worker.wait_ready()
    for path in ("/table/", "/router/", "/graph/", "/stats/"):
        status, _ = http_get(settings.web_url + path)
        assert status == 404, path
    status, body = http_get(settings.web_url + "/metrics")
    assert status == 200 and b"c360_events_in" in body


def test_worker_refuses_a_bad_rules_file(settings, tmp_path):
    rules = tmp_path / "rules.json"
    rules.write_text('{"limits": {"user": 0}}')
    env = {**os.environ, **settings.replace(rules_file=rules).to_env()}
    done = subprocess.run(
        [str(BIN / "c360"), "worker"], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2
    assert "rules file" in done.stderr and "limits" in done.stderr


def test_a_deployments_topics_are_dropped_and_no_others(settings, start_worker):
    """What the test fixtures and benchmarks clean up with: every topic a worker made
    (c360's, faust's changelogs and leader topic) goes; another deployment's stay, even
    one whose app id starts with this one's."""
    other = dataclasses.replace(
        settings, app_id=settings.app_id + "x", topic_prefix="o" + settings.topic_prefix
    )
    before = set(asyncio.run(list_topics(settings.kafka_bootstrap)))
    worker = start_worker(settings)
    worker.wait_ready()
    made = set(asyncio.run(list_topics(settings.kafka_bootstrap))) - before
    try:
        theirs = asyncio.run(admin.ensure_topics(other))
        asyncio.run(create_topic(other.kafka_bootstrap, f"{other.app_id}-t-changelog"))
        theirs.append(f"{other.app_id}-t-changelog")
        worker.stop()

        dropped = asyncio.run(admin.drop_deployment(settings))

        assert {spec.name(settings) for spec in topics.ALL} <= made
        assert f"{settings.app_id}-__assignor-__leader" in made
        # the stages' tables and the global prices table: route, link, profile, channel, prices
        assert len([n for n in made if n.endswith("-changelog")]) >= 5
        assert set(dropped) == made
        listed = wait_for(
            lambda: set(asyncio.run(list_topics(settings.kafka_bootstrap))),
            lambda names: not names & made,
            timeout=30,
            what="the dropped topics are gone",
        )
        assert set(theirs) <= listed
    finally:
        asyncio.run(admin.drop_deployment(other))


def test_time_reaches_the_partitions_at_start_not_an_interval_later(settings, start_worker):
    """The leader ticks at once (the interval is a minute), so the first events of a new
    deployment are judged at today's date: a visit 20 days ago makes a person at risk,
    not new (with no time yet, a partition judged it as of the visit)."""
    assert settings.tick_interval == 60
    worker = start_worker(settings)
    worker.wait_ready()
    started = time.monotonic()
    asyncio.run(
        read_until(
            settings.kafka_bootstrap,
            topics.PROFILE.name(settings),
            lambda rs: any(dict(r.headers).get("c360-src") == b"ticker" for r in rs),
            timeout=20,
        )
    )
    assert time.monotonic() - started < 20
    visited = time.time() - 20 * 86_400
    event = {
        "type": "page",
        "messageId": "m-late",
        "anonymousId": "device-late",
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(visited)),
    }
    web = topics.WEB_EVENTS.name(settings)
    asyncio.run(produce(settings.kafka_bootstrap, web, [(b"device-late", orjson.dumps(event))]))
    url = f"{settings.web_url}/v1/profiles/anon:device-late"
    _, body = wait_for(
        lambda: http_get(url, {"X-API-Key": settings.api_key}),
        lambda r: r[0] == 200,
        timeout=30,
        what="the profile",
    )
    assert orjson.loads(body)["lifecycle"] == "at_risk"
