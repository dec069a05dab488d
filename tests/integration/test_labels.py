"""Wallet labels reach the profile on the real broker, and a changed label replaces the old.

A label goes from the labels agent to the link stage, and from there to the profile
stage in its input (a Refresh carrying the wallet's labels): this proves a label
written after the person was published without one, and a label changed after that,
are both seen.
"""

from __future__ import annotations

import asyncio
import json

import msgspec
import pytest

from stream import topics
from stream.contract.outputs import DeadLetter
from tests.support.kafka import produce, read_until
from tests.support.waiting import wait_for
from tests.support.worker import http_get, metric_total

pytestmark = pytest.mark.integration

WALLET = "0x52908400098527886E0F7030069857D2E4169EE7"
IDENT = "wallet:" + WALLET.lower()


def holding(block: int) -> bytes:
    return json.dumps(
        {
            "wallet": WALLET,
            "chain_id": 1,
            "token": "native",
            "balance": "1000000000000000000",
            "block_number": block,
            "observed_at": "2026-11-02T12:00:00Z",
        }
    ).encode()


def label(category: str, at: str = "2026-10-01T00:00:00Z") -> bytes:
    return json.dumps(
        {
            "chain_id": 1,
            "address": WALLET,
            "labels": [{"label": "Test", "category": category, "source": "test"}],
            "updated_at": at,
        }
    ).encode()


def test_a_label_and_its_change_reach_the_profile(settings, start_worker):
    worker = start_worker(settings)
    worker.wait_ready()
    key = {"X-API-Key": settings.api_key}

    def labels():
        status, body = http_get(f"{settings.web_url}/v1/profiles/{IDENT}", key)
        return json.loads(body).get("labels") if status == 200 else None

    def send(spec, records):
        asyncio.run(produce(settings.kafka_bootstrap, spec.name(settings), records))

    send(topics.HOLDINGS, [(WALLET.encode(), holding(21_000_000))])
    assert wait_for(labels, lambda got: got == {}) == {}

    send(topics.LABELS, [(f"1:{WALLET.lower()}".encode(), label("fund"))])  # the exact key
    assert wait_for(labels, lambda got: got == {IDENT: ["fund"]}) == {IDENT: ["fund"]}

    send(topics.LABELS, [(f"1:{WALLET.lower()}".encode(), label("dao"))])
    assert wait_for(labels, lambda got: got == {IDENT: ["dao"]}) == {IDENT: ["dao"]}


def price(usd: float, at: str = "2026-11-02T12:00:00Z") -> bytes:
    return json.dumps(
        {
            "chain_id": 1,
            "token": "native",
            "symbol": "ETH",
            "decimals": 18,
            "price_usd": usd,
            "timestamp": at,
        }
    ).encode()


def test_bad_reference_records_are_dead_lettered_and_the_good_ones_around_them_applied(
    settings, start_worker
):
    """The reference agents take records in groups: a bad record among good ones goes to
    the dead-letter topic with its reason, and the records after it still arrive (a
    label at the profile, a price in its USD figures)."""
    worker = start_worker(settings)
    worker.wait_ready()
    key = {"X-API-Key": settings.api_key}

    def profile():
        status, body = http_get(f"{settings.web_url}/v1/profiles/{IDENT}", key)
        return json.loads(body) if status == 200 else None

    def send(spec, records):
        asyncio.run(produce(settings.kafka_bootstrap, spec.name(settings), records))

    send(topics.HOLDINGS, [(WALLET.encode(), holding(21_000_000))])
    assert wait_for(profile, lambda got: got is not None)
    exact = f"1:{WALLET.lower()}".encode()
    send(
        topics.LABELS,
        [(exact, b"{not json"), (WALLET.encode(), label("fund")), (exact, label("dao"))],
    )
    future = price(9000.0, at="2099-01-01T00:00:00Z")  # would hold the token's price until then
    send(topics.PRICES, [(b"1:native", b"[]"), (b"1:native", future), (b"1:native", price(2000.0))])
    got = wait_for(
        profile, lambda p: p and p["labels"] == {IDENT: ["dao"]} and p["net_worth_usd"] == 2000.0
    )
    assert got["labels"] == {IDENT: ["dao"]} and got["net_worth_usd"] == 2000.0
    # an older record after the newer one is valid input: counted, not applied
    send(topics.PRICES, [(b"1:native", price(1000.0, at="2026-11-02T11:00:00Z"))])
    assert wait_for(lambda: metric_total(settings, "c360_prices_stale_total"), bool) == 1
    send(topics.LABELS, [(exact, label("exchange", at="2026-09-01T00:00:00Z"))])
    assert wait_for(lambda: metric_total(settings, "c360_labels_stale_total"), bool) == 1
    assert profile()["labels"] == {IDENT: ["dao"]}

    dead = asyncio.run(
        read_until(
            settings.kafka_bootstrap, topics.DEAD_LETTERS.name(settings), lambda rs: len(rs) >= 4
        )
    )
    letters = sorted(
        (msgspec.json.decode(r.value, type=DeadLetter) for r in dead),
        key=lambda d: (d.source.topic, d.source.offset),
    )
    assert [(d.source.topic, d.source.offset, d.reason) for d in letters] == [
        (topics.LABELS.name(settings), 0, "invalid_field"),
        (topics.LABELS.name(settings), 1, "invalid_field"),
        (topics.PRICES.name(settings), 0, "invalid_field"),
        (topics.PRICES.name(settings), 1, "out_of_range"),
    ]
