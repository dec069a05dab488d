"""The chain connector on the real broker: its events land on the topic and pass ingest."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time

import aiohttp
import msgspec
import orjson
import pytest

from connectors.chain import checkpoint as cpmod
from connectors.chain import cli
from connectors.chain.rpc import Web3Rpc
from connectors.producer import BatchProducer
from stream import admin, topics
from stream.core.ingest import Ingest
from stream.core.partitioner import partition_for
from stream.core.rules import DEFAULT, Compiled
from tests.support.chain import Evm, JsonRpcServer, MemorySink, config, connector, drain
from tests.support.kafka import read_until
from tests.support.worker import BIN, free_port

pytestmark = pytest.mark.integration


def events_in(records) -> list[dict]:
    return [e for r in records for e in orjson.loads(r.value)]


async def test_events_and_retractions_land_on_the_topic_and_pass_ingest(settings, tmp_path):
    evm = Evm()
    acc = evm.accounts
    wallet = acc[1].lower()
    evm.erc20(acc[0], acc[1], 10**18)
    evm.mint(acc[1], 1)
    evm.send(acc[1], acc[2], 10**15)
    await admin.ensure_topics(settings, (topics.CHAIN_EVENTS,))
    producer = BatchProducer(settings, client_id="c360-chain-test")
    await producer.start()
    try:
        c = connector(evm, config(evm, tmp_path, wallets=(wallet,)), producer)
        await drain(c)
        snap = evm.w3.testing.snapshot()
        evm.erc20(acc[0], acc[1], 5)
        await drain(c)
        evm.w3.testing.revert(snap)
        evm.erc20(acc[0], acc[3], 6)
        evm.mine(1)
        await drain(c)
        produced = producer.sent_events
    finally:
        await producer.stop()

    topic = topics.CHAIN_EVENTS.name(settings)
    records = await read_until(
        settings.kafka_bootstrap, topic, lambda rs: len(events_in(rs)) >= produced
    )
    events = events_in(records)
    assert len(events) == produced
    ingest = Ingest(Compiled(DEFAULT))
    for r in records:
        out = ingest.record("chain.events", r.value)
        assert not out.rejections and out.facts, out.rejections
        # one record carries many events, all keyed to its partition
        for e in orjson.loads(r.value):
            key = f"{e['chain_id']}:{e['tx_hash']}"
            assert partition_for(key, settings.partitions) == r.partition
    ops = [(e["op"], e.get("decoded", {}).get("value")) for e in events]
    assert ("retract", "5") in ops and ("upsert", "6") in ops
    # in the partition of the orphaned transfer, its retraction follows its upsert
    [orphan] = [
        e for e in events if e["op"] == "upsert" and e.get("decoded", {}).get("value") == "5"
    ]
    same = [
        (r.offset, e["op"])
        for r in records
        for e in orjson.loads(r.value)
        if e["event_id"] == orphan["event_id"]
    ]
    assert [op for _, op in sorted(same)] == ["upsert", "retract"]


async def test_the_command_serves_metrics_produces_and_stops_on_sigterm(
    settings, tmp_path, monkeypatch
):
    evm = Evm()
    acc = evm.accounts
    evm.erc20(acc[0], acc[1], 3)
    monkeypatch.setattr(Web3Rpc, "http", classmethod(lambda cls, url, timeout: evm.rpc()))
    port = free_port()
    cfg = config(evm, tmp_path, rpc_url="http://eth-tester.invalid", metrics_port=port)
    stop = asyncio.Event()
    task = asyncio.create_task(cli.serve(cfg, settings, stop))
    head = evm.head()
    text = ""
    deadline = time.monotonic() + 20
    async with aiohttp.ClientSession() as http:
        while f"c360_chain_processed_block {float(head)}" not in text:
            assert not task.done(), task.exception()
            assert time.monotonic() < deadline, f"not caught up; metrics:\n{text}"
            try:
                async with http.get(f"http://127.0.0.1:{port}/metrics") as resp:
                    text = await resp.text()
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.05)
    assert 'c360_connector_up{connector="chain"} 1.0' in text
    os.kill(os.getpid(), signal.SIGTERM)  # serve() handles it: flush, checkpoint, close
    await asyncio.wait_for(task, 10)
    assert stop.is_set()
    cp = cpmod.load(tmp_path / "checkpoint.json")
    assert cp.number == head and cp.redo is None
    records = await read_until(
        settings.kafka_bootstrap,
        topics.CHAIN_EVENTS.name(settings),
        lambda rs: len(events_in(rs)) >= 2,
    )
    values = sorted(e["decoded"]["value"] for e in events_in(records))
    assert values == ["1000000000000000000000000", "3"]


def wait_for(condition, what: str, proc: subprocess.Popen, log_path, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while not condition():
        if proc.poll() is not None:
            raise AssertionError(f"connector exited {proc.returncode}:\n{log_path.read_text()}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}:\n{log_path.read_text()}")
        time.sleep(0.05)


async def test_a_killed_connector_process_resumes_with_no_gap(settings, tmp_path):
    """kill -9 of ``c360 connect chain`` (an HTTP RPC over eth-tester), then a restart."""
    evm = Evm()
    server = JsonRpcServer(evm)
    acc = evm.accounts
    wallet = acc[1].lower()
    cp_path = tmp_path / "checkpoint.json"

    def activity(start: int, n: int) -> None:
        with server.lock:
            for i in range(n):
                evm.erc20(acc[0], acc[1], start + i)
                evm.send(acc[1], acc[2], 10**15 + start + i)

    def checkpoint_at_head() -> bool:
        with server.lock:
            head = evm.head()
        try:
            cp = cpmod.load(cp_path)
        except cpmod.CheckpointError:
            return False
        return cp is not None and cp.number == head and cp.redo is None

    env = {
        **os.environ,
        **settings.to_env(),
        "C360_CHAIN_RPC_URL": server.url,
        "C360_CHAIN_CONTRACTS": f"{evm.token.address},{evm.nft.address}",
        "C360_CHAIN_WALLETS": wallet,
        "C360_CHAIN_CHECKPOINT_FILE": str(cp_path),
        "C360_CHAIN_POLL_INTERVAL": "0.05",
        "C360_CHAIN_METRICS_PORT": "0",
    }
    log_path = tmp_path / "connector.log"
    command = [str(BIN / "c360"), "connect", "chain"]
    try:
        activity(1, 4)
        with open(log_path, "ab") as log:
            first = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_for(checkpoint_at_head, "the first run to catch up", first, log_path)
            activity(100, 6)  # the connector is reading these when it is killed
            first.kill()  # SIGKILL: no flush, no checkpoint
            first.wait(10)
        finally:
            if first.poll() is None:
                first.kill()
        activity(200, 3)
        with open(log_path, "ab") as log:
            second = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_for(checkpoint_at_head, "the restart to catch up", second, log_path)
            second.send_signal(signal.SIGTERM)
            assert second.wait(15) == 0, log_path.read_text()
        finally:
            if second.poll() is None:
                second.kill()

        reference_sink = MemorySink()  # a fresh in-process read of the whole chain
        reference_config = config(evm, tmp_path / "ref", wallets=(wallet,))
        await drain(connector(evm, reference_config, reference_sink))
        reference = {e.event_id: e for e in reference_sink.chain_events()}
    finally:
        server.close()

    topic = topics.CHAIN_EVENTS.name(settings)
    records = await read_until(
        settings.kafka_bootstrap,
        topic,
        lambda rs: {e["event_id"] for e in events_in(rs)} >= set(reference),
    )
    got = events_in(records)
    assert {e["event_id"] for e in got} == set(reference), "no gap, nothing else"
    encode = msgspec.json.Encoder().encode
    for e in got:  # a duplicate is the very same event
        assert orjson.loads(encode(reference[e["event_id"]])) == e
    ingest = Ingest(Compiled(DEFAULT))
    assert not any(ingest.record("chain.events", r.value).rejections for r in records)
