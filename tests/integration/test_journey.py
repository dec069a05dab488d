"""The identity journey on the real broker, through a worker process and its API."""

from __future__ import annotations

import asyncio
import json

import msgspec
import pytest

from stream import topics
from stream.contract.outputs import IdentityMerge, ProfileChange
from tests.support.journey import JOURNEY, produce_jsonl
from tests.support.kafka import read_until
from tests.support.waiting import wait_for
from tests.support.worker import http_get

pytestmark = pytest.mark.integration


def test_the_journey_is_one_person_through_the_api(settings, start_worker):
    worker = start_worker(settings)
    worker.wait_ready()
    expected = json.loads((JOURNEY / "expected_identities.json").read_text())
    asyncio.run(produce_jsonl(settings, JOURNEY / "events.jsonl"))
    key = {"X-API-Key": settings.api_key}

    def identity(ident: str):
        status, body = http_get(f"{settings.web_url}/v1/identities/{ident}", key)
        return status, (json.loads(body) if body else None)

    everyone = [i for group in expected["identifiers"].values() for i in group]
    answers = {}
    for ident in everyone:
        status, body = wait_for(
            lambda ident=ident: identity(ident),
            lambda r: (
                r[0] == 200
                and r[1]["identifiers"] == expected["identifiers"]
                and r[1]["associations"] == expected["associations"]
            ),
        )
        answers[ident] = body
    assert len({a["person_id"] for a in answers.values()}) == 1

    merges = asyncio.run(
        read_until(
            settings.kafka_bootstrap, topics.IDENTITY_MERGES.name(settings), lambda rs: len(rs) >= 5
        )
    )
    decoded = [msgspec.json.decode(r.value, type=IdentityMerge) for r in merges]
    assert len(decoded) == 5
    assert {r.key.decode() for r in merges} == {m.absorbed for m in decoded}
    survivors = {m.survivor for m in decoded} - {m.absorbed for m in decoded}
    assert survivors == {answers[everyone[0]]["person_id"]}

    # the API needs the key; malformed and unknown identifiers get clear answers
    status, _ = http_get(f"{settings.web_url}/v1/identities/anon:dev-A")
    assert status == 401
    status, _ = http_get(f"{settings.web_url}/v1/identities/anon:dev-A", {"X-API-Key": "wrong"})
    assert status == 401
    status, body = http_get(f"{settings.web_url}/v1/identities/wallet:0x1234", key)
    assert status == 400 and json.loads(body)["error"] == "bad_address"
    status, body = http_get(f"{settings.web_url}/v1/identities/anon:never-seen", key)
    assert status == 404
    status, body = http_get(f"{settings.web_url}/v1/identity/anon:dev-A", key)  # no such path
    assert status == 404 and json.loads(body)["error"] == "not_found"  # faust's app too


def test_the_journey_profile_through_the_api(settings, start_worker):
    settings = settings.replace(tick_interval=0)  # time comes from the journey's own tick
    worker = start_worker(settings)
    worker.wait_ready()
    expected = json.loads((JOURNEY / "expected_profile.json").read_text())
    asyncio.run(produce_jsonl(settings, JOURNEY / "events.jsonl"))
    key = {"X-API-Key": settings.api_key}

    def profile(ident: str):
        status, body = http_get(f"{settings.web_url}/v1/profiles/{ident}", key)
        return status, (json.loads(body) if body else None)

    def matches(result) -> bool:
        status, body = result
        if status != 200:
            return False
        got = {k: v for k, v in body.items() if k not in ("person_id", "version", "identifier")}
        return got == expected

    everyone = [i for group in expected["identifiers"].values() for i in group]
    persons = set()
    for ident in everyone:
        status, body = wait_for(lambda ident=ident: profile(ident), matches)
        assert body["identifier"] == ident
        persons.add((body["person_id"], body["version"]))
    [(person, version)] = persons

    status, body = http_get(f"{settings.web_url}/v1/persons/{person}", key)
    assert status == 200 and json.loads(body)["net_worth_usd"] == expected["net_worth_usd"]
    status, body = http_get(f"{settings.web_url}/v1/persons/nonsense", key)
    assert status == 400
    status, body = http_get(f"{settings.web_url}/v1/profiles/email:nobody@lovelace.dev", key)
    assert status == 404 and json.loads(body)["error"] == "unknown_identifier"
    status, _ = http_get(f"{settings.web_url}/v1/profiles/{everyone[0]}")
    assert status == 401

    def channels():  # the channel stage follows the profiles asynchronously
        status, body = http_get(f"{settings.web_url}/v1/channels/revenue", key)
        return {c["channel"]: c for c in json.loads(body)["channels"]} if status == 200 else {}

    journey = wait_for(
        channels,
        lambda cs: cs.get("twitter / social / season-2", {}).get("revenue") == expected["revenue"],
    )["twitter / social / season-2"]
    assert journey["persons"] == 1
    assert journey["revenue_usd"] == expected["revenue_usd"]

    changes = asyncio.run(
        read_until(
            settings.kafka_bootstrap,
            topics.PROFILE_CHANGES.name(settings),
            lambda rs: any(
                msgspec.json.decode(r.value, type=ProfileChange).person_id == person
                and msgspec.json.decode(r.value, type=ProfileChange).version == version
                for r in rs
            ),
        )
    )
    decoded = [(r.key.decode(), msgspec.json.decode(r.value, type=ProfileChange)) for r in changes]
    assert all(key == change.person_id for key, change in decoded)  # keyed by person
    mine = [change.version for _, change in decoded if change.person_id == person]
    assert mine == list(range(1, version + 1))  # every version, in order
