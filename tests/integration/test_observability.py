"""Metrics that the dashboards and alerts read exist on live processes, and a real
Prometheus server scrapes a worker.

A scripted run sends events through a worker, the web collector and the support
receiver, and runs ``c360 connect chain`` (a subprocess reading a real EVM,
eth-tester over HTTP JSON-RPC: transfers, then a 2-block reorg), all on the real
broker, then scrapes their /metrics: every metric named in an alert rule or a
dashboard panel must be there with a sample, and non-zero where the run must have
produced one.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import subprocess
import urllib.parse

import orjson
import pytest
import yaml
from aiohttp.test_utils import TestClient, TestServer

from connectors.support.app import create_app as create_support
from connectors.support.config import SupportConfig
from connectors.web.app import create_app as create_web
from connectors.web.config import CollectorConfig
from stream import topics
from tests.support.chain import Evm, JsonRpcServer
from tests.support.journey import JOURNEY, produce_jsonl
from tests.support.kafka import produce
from tests.support.observability import (
    PROMETHEUS,
    prometheus,
    recorded,
    referenced_metrics,
    samples,
)
from tests.support.waiting import wait_for
from tests.support.webhooks import ZENDESK_TICKET_CREATED, post_zendesk
from tests.support.worker import BIN, free_port, http_get, stop_process

pytestmark = pytest.mark.integration

SERVER_KEY = "sk_obs_1"
ZENDESK_SECRET = "b2JzZXJ2YWJpbGl0eQ=="

# Made by Prometheus itself, not exposed by a target.
PROMETHEUS_MADE = {"up"}

# Metrics the scripted run must move (a predicate over their samples), beyond existing.
MUST_MOVE = {
    "c360_events_in_total": lambda s: (
        _total(s, source="web.events") > 0 and _total(s, source="support") > 0
    ),
    "c360_dead_letters_total": lambda s: _total(s) > 0,
    "c360_stage_records_total": lambda s: all(
        _total(s, stage=st) > 0 for st in ("route", "link", "profile", "channel")
    ),
    "c360_stage_latency_seconds_count": lambda s: all(
        _total(s, stage=st) > 0 for st in ("ingest", "route", "link", "profile", "channel")
    ),
    "c360_stage_record_seconds_count": lambda s: _total(s) > 0,
    "c360_event_latency_seconds_count": lambda s: _total(s) > 0,
    "c360_route_facts_total": lambda s: _total(s, outcome="to_profile") > 0,
    "c360_link_events_total": lambda s: _total(s) > 0,
    "c360_merges_total": lambda s: _total(s) > 0,
    "c360_merge_refusals_total": lambda s: _total(s, rule="blocked_value") > 0,
    "c360_profile_changes_total": lambda s: _total(s) > 0,
    "c360_profiles": lambda s: _total(s) > 0,
    "c360_persons_by_lifecycle": lambda s: _total(s) > 0,
    "c360_persons_by_vip_tier": lambda s: _total(s) > 0,  # the journey's person is VIP
    "c360_channel_persons": lambda s: _total(s) > 0,
    "c360_channel_revenue_usd": lambda s: _total(s) > 0,  # the journey has revenue
    "c360_worker_ready": lambda s: _total(s) == 1,
    "c360_consumer_lag": lambda s: len(s) > 0,
    # one request without a key: counted once (it was counted twice before)
    "c360_api_requests_total": lambda s: (
        _total(s, status="200") > 0 and _total(s, status="401") == 1
    ),
    "c360_api_request_seconds_count": lambda s: _total(s) > 0,
    "c360_collector_requests_total": lambda s: _total(s, status="200") > 0,
    "c360_collector_request_seconds_count": lambda s: _total(s) > 0,
    "c360_collector_events_total": lambda s: _total(s, outcome="accepted") > 0,
    "c360_collector_rejections_total": lambda s: _total(s) > 0,
    "c360_siwe_verifications_total": lambda s: _total(s) > 0,
    "c360_table_recovery_records_total": lambda s: len(s) >= 4,  # one per stage table, at 0
    "c360_webhook_requests_total": lambda s: _total(s, result="accepted") > 0,
    # web, support and chain, each up while scraped
    "c360_connector_up": lambda s: (
        {labels["connector"] for labels, _ in s} >= {"web", "support", "chain"}
        and all(v == 1 for _, v in s)
    ),
    # the chain connector caught up with the EVM (its head: checked in chain_run)
    "c360_chain_head_block": lambda s: _total(s) > 0,
    "c360_chain_processed_block": lambda s: _total(s) > 0,
    "c360_chain_events_total": lambda s: all(
        _total(s, kind=k) > 0 for k in ("log", "tx", "retract")
    ),
    "c360_chain_reorgs_total": lambda s: _total(s) == 1,
    "c360_chain_last_reorg_depth": lambda s: _total(s) == REORG_DEPTH,
}

REORG_DEPTH = 2  # blocks of the branch chain_run orphans


def _total(series: list[tuple[dict, float]], **match: str) -> float:
    return sum(v for labels, v in series if all(labels.get(k) == w for k, w in match.items()))


def basic(key: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{key}:".encode()).decode()}


def worker_samples(settings) -> dict:
    status, body = http_get(settings.web_url + "/metrics")
    assert status == 200
    return samples(body.decode())


async def scripted_run(settings, web: TestClient, support: TestClient) -> None:
    """Events through the collector and the receiver, the journey straight to Kafka, a
    record that is not JSON (a dead letter)."""
    # the collector: accepted events, a refused merge (a blocked email), a rejected
    # event, a failed SIWE verification
    identify = {
        "userId": "user_obs",
        "anonymousId": "dev-obs",
        "traits": {"email": "noreply@obs.example.org"},
    }
    r = await web.post("/v1/identify", json=identify, headers=basic(SERVER_KEY))
    assert r.status == 200, await r.text()
    batch = {
        "batch": [
            {"type": "page", "anonymousId": "dev-obs", "messageId": "obs-1", "name": "Home"},
            {"type": "track", "anonymousId": "dev-obs", "event": "Swap", "messageId": "obs-2"},
            {"type": "track", "anonymousId": "dev-obs", "messageId": "obs-3"},  # no event name
        ]
    }
    r = await web.post("/v1/batch", json=batch, headers=basic(SERVER_KEY))
    assert (await r.json())["accepted"] == 2  # and the third is rejected
    siwe = {"message": "not a SIWE message", "signature": "0x00", "anonymousId": "dev-obs"}
    r = await web.post("/v1/siwe/verify", json=siwe, headers=basic(SERVER_KEY))
    assert r.status >= 400
    # the support receiver: one signed Zendesk ticket
    r = await post_zendesk(support, ZENDESK_TICKET_CREATED, secret=ZENDESK_SECRET)
    assert r.status == 200, await r.text()
    # the journey (merges, prices, chain events) and a dead letter
    await produce_jsonl(settings, JOURNEY / "events.jsonl")
    await produce(settings.kafka_bootstrap, topics.FORMS.name(settings), [(b"f", b"not json")])


def chain_run(settings, tmp_path) -> dict:
    """``c360 connect chain`` in a subprocess over an HTTP JSON-RPC EVM: ERC-20, ERC-721
    and native transfers, then a reorg orphaning ``REORG_DEPTH`` blocks; once it has
    caught up with the new branch, its /metrics (scraped while it runs)."""
    evm = Evm()
    server = JsonRpcServer(evm)
    acc = evm.accounts
    port = free_port()
    env = {
        **os.environ,
        **settings.to_env(),
        "C360_CHAIN_RPC_URL": server.url,
        "C360_CHAIN_CONTRACTS": f"{evm.token.address},{evm.nft.address}",
        "C360_CHAIN_WALLETS": acc[1].lower(),
        "C360_CHAIN_CHECKPOINT_FILE": str(tmp_path / "chain-checkpoint.json"),
        "C360_CHAIN_POLL_INTERVAL": "0.05",
        "C360_CHAIN_METRICS_HOST": "127.0.0.1",
        "C360_CHAIN_METRICS_PORT": str(port),
    }
    log_path = tmp_path / "chain.log"
    proc = None

    def scrape() -> dict:
        if proc.poll() is not None:
            log = log_path.read_text()
            raise AssertionError(f"chain connector exited {proc.returncode}:\n{log}")
        try:
            status, body = http_get(f"http://127.0.0.1:{port}/metrics", timeout=2.0)
        except OSError:
            return {}
        return samples(body.decode()) if status == 200 else {}

    def at_head(s: dict, reorgs: int) -> bool:
        with server.lock:
            head = evm.head()
        return (
            _total(s.get("c360_chain_processed_block", [])) == head
            and _total(s.get("c360_chain_reorgs_total", [])) == reorgs
        )

    try:
        with server.lock:
            evm.erc20(acc[0], acc[1], 10**18)
            evm.mint(acc[1], 1)
            evm.send(acc[1], acc[2], 10**15)
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(
                [str(BIN / "c360"), "connect", "chain"],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        wait_for(scrape, lambda s: at_head(s, 0), 60, "the chain connector at the head")
        with server.lock:  # a branch the connector reads...
            snap = evm.w3.testing.snapshot()
            for i in range(REORG_DEPTH):
                evm.erc20(acc[0], acc[1], 5 + i)
        wait_for(scrape, lambda s: at_head(s, 0), 30, "the chain connector on the branch")
        with server.lock:  # ... replaced by a longer one
            evm.w3.testing.revert(snap)
            evm.erc20(acc[0], acc[3], 8)
            evm.mine(REORG_DEPTH)
        return wait_for(scrape, lambda s: at_head(s, 1), 30, "the chain connector past the reorg")
    finally:
        if proc is not None:
            stop_process(proc, timeout=15)
        server.close()


def test_every_metric_of_the_dashboards_and_alerts_is_exposed(settings, start_worker, tmp_path):
    scraped = {"chain": chain_run(settings, tmp_path)}
    worker = start_worker(settings)
    worker.wait_ready()

    async def connectors() -> dict[str, dict]:
        web_config = CollectorConfig(server_keys=(SERVER_KEY,), siwe_domain="app.example.xyz")
        support_config = SupportConfig(zendesk_secret=ZENDESK_SECRET)
        async with (
            TestClient(TestServer(create_web(web_config, settings))) as web,
            TestClient(TestServer(create_support(support_config, settings))) as support,
        ):
            await scripted_run(settings, web, support)
            scraped = {}
            for name, client in (("web", web), ("support", support)):
                r = await client.get("/metrics")
                assert r.status == 200
                scraped[name] = samples(await r.text())
            return scraped

    scraped |= asyncio.run(connectors())
    key = {"X-API-Key": settings.api_key}
    wait_for(
        lambda: http_get(f"{settings.web_url}/v1/profiles/anon:dev-obs", key)[0],
        lambda status: status == 200,
        60,
        "the profile of anon:dev-obs",
    )
    assert http_get(f"{settings.web_url}/v1/profiles/anon:dev-obs")[0] == 401
    # everything the run produced has reached the worker's counters and gauges
    on_worker = {name: check for name, check in MUST_MOVE.items() if _on_worker(name)}

    def worker_ok(s: dict) -> bool:
        return all(check(s.get(name, [])) for name, check in on_worker.items())

    scraped["worker"] = wait_for(
        lambda: worker_samples(settings), worker_ok, 60, "worker metrics moved by the run"
    )

    exposed: dict[str, list] = {}
    for page in scraped.values():
        for name, series in page.items():
            exposed.setdefault(name, []).extend(series)
    referenced = referenced_metrics()
    needed = set(referenced) - PROMETHEUS_MADE - recorded()
    assert {m for m in needed if m.startswith("c360_chain_")} <= set(scraped["chain"])
    missing = {m: sorted(referenced[m]) for m in needed if not exposed.get(m)}
    assert missing == {}, "read by dashboards/alerts but not exposed with a sample"
    not_moved = sorted(n for n, check in MUST_MOVE.items() if not check(exposed.get(n, [])))
    assert not_moved == []


def _on_worker(name: str) -> bool:
    return not name.startswith(
        ("c360_collector", "c360_siwe", "c360_webhook", "c360_connector", "c360_chain")
    )


@pytest.fixture
def prometheus_server(tmp_path, request):
    """Start the Debian ``prometheus`` binary on a free loopback port: ``start(targets)``."""
    procs: list[tuple[subprocess.Popen, object]] = []

    def start(worker_url: str) -> str:
        port = free_port()
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(p) for p in sorted((PROMETHEUS / "rules").glob("*.yml"))],
            "scrape_configs": [
                {
                    "job_name": "c360-worker",
                    "static_configs": [{"targets": [urllib.parse.urlsplit(worker_url).netloc]}],
                }
            ],
        }
        path = tmp_path / "prometheus.yml"
        path.write_text(yaml.safe_dump(config))
        log = open(tmp_path / "prometheus.log", "wb")  # noqa: SIM115 - closed at teardown
        proc = subprocess.Popen(
            [
                prometheus(),
                f"--config.file={path}",
                f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        procs.append((proc, log))
        return f"http://127.0.0.1:{port}"

    yield start
    for proc, log in procs:
        stop_process(proc, timeout=20)
        log.close()
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed and procs:
        print((tmp_path / "prometheus.log").read_text(errors="replace")[-4000:])


def query(base: str, promql: str) -> list[dict]:
    url = f"{base}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
    try:
        status, body = http_get(url, timeout=2.0)
    except OSError:
        return []
    if status != 200:
        return []
    return orjson.loads(body)["data"]["result"]


def test_a_prometheus_server_scrapes_the_worker_and_loads_the_rules(
    settings, start_worker, prometheus_server
):
    worker = start_worker(settings)
    worker.wait_ready()
    base = prometheus_server(settings.web_url)
    wait_for(
        lambda: query(base, 'up{job="c360-worker"} == 1'), bool, 30, "Prometheus scrapes the worker"
    )
    asyncio.run(produce_jsonl(settings, JOURNEY / "events.jsonl"))
    result = wait_for(
        lambda: query(base, 'sum(c360_events_in_total{job="c360-worker"}) > 0'),
        bool,
        60,
        "c360_events_in_total > 0 in Prometheus",
    )
    assert float(result[0]["value"][1]) > 0
    status, body = http_get(f"{base}/api/v1/rules")
    assert status == 200
    groups = {g["name"] for g in json.loads(body)["data"]["groups"]}
    assert {"c360-worker", "c360-connectors"} <= groups
