"""Shared fixtures. Integration tests get the real broker through ``kafka``."""

from __future__ import annotations

import asyncio
import os
import uuid
import warnings
from collections.abc import Iterator

import pytest

from stream import admin
from stream.settings import Settings
from tests.support import kafka as kafka_support
from tests.support.worker import WorkerProcess, free_port


@pytest.fixture(scope="session")
def kafka() -> str:
    """The bootstrap address of the real broker. In CI a missing broker fails; locally it skips."""
    address = kafka_support.bootstrap()
    if not kafka_support.reachable(address):
        message = f"no Kafka broker at {address} (run `make kafka-up`, or `make test`)"
        if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    return address


@pytest.fixture
def settings(kafka: str, tmp_path) -> Iterator[Settings]:
    """Settings isolated to this test: own topic prefix, app id, data dir and web port.
    Its topics are deleted afterwards (after its workers stopped: see start_worker)."""
    tag = uuid.uuid4().hex[:10]
    isolated = Settings.from_env(
        {},
        kafka_bootstrap=kafka,
        app_id=f"c360-test-{tag}",
        topic_prefix=f"t{tag}.",
        partitions=2,
        data_dir=tmp_path / "data",
        web_port=free_port(),
        api_key="test-key",
    )
    yield isolated
    try:
        asyncio.run(admin.drop_deployment(isolated))
    except Exception as exc:  # the test's outcome stands; say what is left behind
        warnings.warn(f"topics of {isolated.topic_prefix!r} not deleted: {exc!r}", stacklevel=1)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report


@pytest.fixture
def start_worker(settings, tmp_path, request):
    """Start ``c360 worker`` subprocesses; all are stopped at teardown (logs shown on
    failure), before the test's topics are deleted (it depends on ``settings``)."""
    started: list[WorkerProcess] = []

    def start(settings: Settings, name: str = "worker") -> WorkerProcess:
        w = WorkerProcess(settings, tmp_path / f"{name}-{len(started)}.log").start()
        started.append(w)
        return w

    yield start
    for w in started:
        w.stop()
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        for w in started:
            print(f"\n----- {w.log_path.name}: warnings -----\n{w.warnings()}")
            print(f"\n----- {w.log_path.name}: tail -----\n{w.log()}")
