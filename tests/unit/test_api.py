"""The lookup API (stream/shell/api.py): its JSON, and its answers across workers."""

from __future__ import annotations

import asyncio
import hashlib
import json
from urllib.parse import quote

import msgspec
from aiohttp import web
from aiohttp.test_utils import TestServer

from stream.core.messages import person_of
from stream.population import Population
from stream.shell.api import _json
from stream.sim import Input, Simulator
from tests.support.lookups import API_KEY, get, workers


def test_responses_keep_integers_beyond_64_bits_exact():
    # the internal endpoints hand over state rows with raw token amounts (wei)
    row = {"vol": {"1:native": 12 * 10**24}, "n": 3}
    response = _json(200, row)
    assert response.status == 200
    assert msgspec.json.decode(response.body) == row


# --- answers across workers, over the real stages' state (tests/support/lookups.py) ---------
def page(n: int, **ids) -> Input:
    event = {"type": "page", "messageId": f"m-{n}", "timestamp": "2026-10-01T09:00:00Z", **ids}
    return Input("web.events", json.dumps(event).encode())


def connect(n: int, anon: str, address: str) -> Input:
    event = {
        "type": "track",
        "event": "Wallet Connected",
        "messageId": f"c-{n}",
        "anonymousId": anon,
        "timestamp": "2026-10-01T09:05:00Z",
        "properties": {"address": address, "chainId": 1},
    }
    return Input("web.events", json.dumps(event).encode())


def path_of(identifier: str) -> str:
    return quote(identifier, safe=":@")


def members(body: dict) -> set[str]:
    return {i for group in body.get("identifiers", {}).values() for i in group}


async def test_every_worker_gives_the_same_answer_for_identifiers_holding_a_slash():
    # a kiosk shared by 12 users is split (a hub): each user is a person of its own,
    # found through its route row, which a worker that does not own it must ask for
    sim = Simulator(partitions=2, seed=3)
    users = [f"team/u{i}" for i in range(12)]
    sim.run([page(i, anonymousId="kiosk/1", userId=u) for i, u in enumerate(users)])
    assert sim.link.stats.get("splits")
    async with workers(sim) as (w0, w1):
        for ident in ["anon:kiosk/1"] + [f"user:{u}" for u in users]:
            answers = [await get(w, "/v1/identities/" + path_of(ident)) for w in (w0, w1)]
            assert answers[0] == answers[1], ident
            status, body = answers[0]
            assert status == 200 and body["person_id"] == sim.person_of(ident)
            assert ident in members(body)
        # dot segments are data, not a way to another endpoint
        sneaky = "user:x/../../person/" + sim.person_of("user:team/u0")
        for w in (w0, w1):
            status, body = await get(w, "/v1/profiles/" + path_of(sneaky))
            assert (status, body["error"]) == (404, "unknown_identifier")


async def test_an_identifier_holding_braces_can_be_looked_up():
    guid = "anon:{3F2504E0-4F89-11D3-9A0C-0305E82C3301}"
    sim = Simulator(partitions=2, seed=1)
    sim.run([page(1, anonymousId=guid[5:])])
    async with workers(sim) as clients:
        for w in clients:
            status, body = await get(w, "/v1/profiles/" + path_of(guid))
            assert status == 200 and body["person_id"] == sim.person_of(guid)


def address_below(person: str) -> str:
    """A wallet whose person id sorts below ``person`` (so it survives their merge)."""
    n = 0
    while True:
        address = "0x" + hashlib.sha256(str(n).encode()).hexdigest()[:40]
        if person_of("wallet:" + address) < person:
            return address
        n += 1


async def test_a_merge_in_flight_answers_503_never_a_partial_profile_or_404():
    anon = "anon:dev-m"
    absorbed = person_of(anon)
    address = address_below(absorbed)
    for seed in range(4):  # deliveries in different orders
        sim = Simulator(partitions=4, seed=seed)
        sim.run([page(i, anonymousId=anon[5:]) for i in range(3)])
        sim.feed(connect(9, anon[5:], address))
        statuses = set()
        async with workers(sim) as (w0, w1):
            while True:
                for w in (w0, w1):
                    status, body = await get(w, "/v1/profiles/" + anon)
                    statuses.add(status)
                    if status == 200:
                        assert body["page_views"] == 3, (seed, body)
                    else:
                        assert (status, body["error"]) == (503, "person_updating"), body
                    status, body = await get(w, "/v1/persons/" + absorbed)
                    statuses.add(status)
                    assert status == 200 or body["error"] == "person_updating", body
                if not sim.step():
                    break
            status, body = await get(w0, "/v1/profiles/" + anon)
            assert status == 200 and body["person_id"] == person_of("wallet:" + address)
            assert members(body) == {anon, "wallet:" + address} and body["page_views"] == 3
        assert 503 in statuses


async def test_an_identifier_split_off_a_person_absorbed_since_answers():
    # a kiosk of user A's person is split off as a hub, then A's person is absorbed by
    # a newer device's: the split is recorded on the absorbed row only
    sim = Simulator(partitions=2, seed=3)
    users = [f"u{i}" for i in range(12)]
    sim.run(
        [page(0, userId="A", anonymousId="devA"), page(1, userId="A", anonymousId="kiosk")]
        + [page(10 + i, anonymousId="kiosk", userId=u) for i, u in enumerate(users)]
    )
    first = sim.person_of("user:A")
    device = next(d for d in (f"dev{i}" for i in range(10_000)) if person_of("anon:" + d) < first)
    sim.run([page(100, userId="A", anonymousId=device)])
    assert sim.person_of("user:A") != first and sim.link.stats.get("splits")
    async with workers(sim) as (w0, w1):
        for n, ident in enumerate(
            ["anon:kiosk", "user:A", "anon:devA"] + [f"user:{u}" for u in users]
        ):
            status, body = await get((w0, w1)[n % 2], "/v1/profiles/" + ident)
            assert status == 200 and body["person_id"] == sim.person_of(ident), (ident, body)


async def test_a_person_id_absorbed_then_split_away_answers_its_own_human():
    # two humans glued by a kiosk, then the kiosk is a hub and the merges are undone:
    # each one's old person id must answer that human's profile, not the survivor's
    from stream.core.rules import Rules

    wallets = [f"0x{0xABC00000 + i:040x}" for i in (1, 2, 3)]
    sim = Simulator(partitions=3, seed=1, rules=Rules(max_joins={"anon": 2}))
    sim.run(
        [connect(1, "devA", wallets[0]), connect(2, "devB", wallets[1])]
        + [connect(10 + n, "kiosk", w) for n, w in enumerate(wallets)]
    )
    assert sim.link.stats["splits"] >= 1
    assert sim.person_of("anon:devA") != sim.person_of("anon:devB")
    async with workers(sim) as (w0, w1):
        for n, ident in enumerate(["anon:devA", "anon:devB", f"wallet:{wallets[1]}"]):
            status, body = await get((w0, w1)[n % 2], "/v1/persons/" + person_of(ident))
            assert status == 200, body
            assert body["person_id"] == sim.person_of(ident) and ident in members(body), body


async def test_a_survivor_split_into_a_smaller_part_keeps_its_id_for_its_own_human():
    # human A (one device, one wallet) is the survivor of a kiosk glueing it to human B
    # (two wallets, the larger part): undone, A's id must still name A, not B
    from stream.core.rules import Rules

    wallets = [f"0x{0xABC00000 + i:040x}" for i in range(4)]
    others = [person_of(i) for i in ("anon:devB", "anon:kiosk", *(f"wallet:{w}" for w in wallets))]
    dev_a = next(
        d for d in (f"devA{i}" for i in range(10_000)) if person_of("anon:" + d) < min(others)
    )
    sim = Simulator(partitions=3, seed=1, rules=Rules(max_joins={"anon": 2}))
    links = [(dev_a, 0), ("devB", 1), ("devB", 2), ("kiosk", 0), ("kiosk", 1), ("kiosk", 3)]
    sim.run([connect(n, device, wallets[w]) for n, (device, w) in enumerate(links)])
    assert sim.link.stats["splits"] >= 1
    a = person_of("anon:" + dev_a)
    assert sim.person_of("anon:" + dev_a) == a
    assert "anon:devB" not in sim.persons()[a]["m"]
    async with workers(sim) as (w0, _):
        status, body = await get(w0, "/v1/persons/" + a)
        assert status == 200 and "anon:" + dev_a in members(body)
        assert "anon:devB" not in members(body), body


async def test_a_long_chain_of_merges_is_followed():
    # each new device of the user has a smaller person id than the survivor so far, so
    # every link absorbs the survivor: the first person id is 36 merges from the live one
    user = next(u for u in (f"chain-u{i}" for i in range(100)) if person_of("user:" + u) > "pf")
    first = person_of("user:" + user)
    devices = sorted(
        (d for d in (f"dev-c{i}" for i in range(4000)) if person_of("anon:" + d) < first),
        key=lambda d: person_of("anon:" + d),
        reverse=True,
    )[:36]
    sim = Simulator(partitions=4, seed=2)
    sim.run([page(i, userId=user, anonymousId=d) for i, d in enumerate(devices)])
    live = sim.person_of("user:" + user)
    assert live == person_of("anon:" + devices[-1])
    async with workers(sim) as (w0, _):
        status, body = await get(w0, "/v1/persons/" + first)
        assert status == 200 and body["person_id"] == live and body["merged_from"] == first


async def test_an_owner_that_does_not_answer_is_a_json_503():
    sim = Simulator(partitions=2, seed=1)
    sim.run([page(1, anonymousId="dev-1")])
    ident = "anon:dev-1"
    down = {0: "http://127.0.0.1:9", 1: "http://127.0.0.1:9"}  # nothing listens on port 9
    async with workers(sim, owners=down) as (w0, _):
        status, body = await get(w0, "/v1/profiles/" + ident)
        assert (status, body["error"]) == (503, "owner_unreachable")


async def test_the_key_check_refuses_clearly_and_accepts_any_case_of_bearer():
    sim = Simulator(partitions=1, seed=1)
    sim.run([page(1, anonymousId="dev-1")])
    async with workers(sim, count=1) as (w,):
        ok = await w.get("/v1/profiles/anon:dev-1", headers={"Authorization": "bearer " + API_KEY})
        assert ok.status == 200
        for headers in ({"X-API-Key": "wrong"}, {}, {"Authorization": "Basic eDp5"}):
            r = await w.get("/v1/profiles/anon:dev-1", headers=headers)
            assert r.status == 401 and (await r.json())["error"] == "unauthorized"
            assert r.headers["WWW-Authenticate"].startswith("Bearer")
        # header bytes that are not UTF-8 are a wrong key, not a server error
        raw = await raw_get(w, "/v1/profiles/anon:dev-1", b"X-API-Key: \xff\xfe")
        assert raw.startswith(b"HTTP/1.1 401")


async def raw_get(client, path: str, header: bytes) -> bytes:
    reader, writer = await asyncio.open_connection(client.host, client.port)
    writer.write(b"GET " + path.encode() + b" HTTP/1.1\r\nHost: x\r\n" + header + b"\r\n\r\n")
    await writer.drain()
    answer = await reader.read(200)
    writer.close()
    return answer


async def test_a_path_or_method_the_api_does_not_answer_is_a_json_error():
    sim = Simulator(partitions=1, seed=1)
    async with workers(sim, count=1) as (w,):
        status, body = await get(w, "/v1/profile/anon:dev-1")  # a typo: profiles
        assert (status, body["error"]) == (404, "not_found")
        assert "/v1/profile/anon:dev-1" in body["message"]
        response = await w.post("/v1/profiles/anon:dev-1", headers={"X-API-Key": API_KEY})
        assert response.status == 405 and response.headers["Allow"] == "GET"
        assert (await response.json())["error"] == "method_not_allowed"


async def test_a_person_id_with_a_trailing_newline_is_malformed():
    sim = Simulator(partitions=1, seed=1)
    async with workers(sim, count=1) as (w,):
        status, body = await get(w, "/v1/persons/p" + "0" * 20 + "%0A")
        assert (status, body["error"]) == (400, "bad_person_id")


async def test_a_worker_restoring_its_state_answers_not_ready():
    sim = Simulator(partitions=1, seed=1)
    sim.run([page(1, anonymousId="dev-1")])
    async with workers(sim, count=1) as (w,):
        w.worker.in_recovery = True
        status, body = await get(w, "/v1/profiles/anon:dev-1")
        assert (status, body["error"]) == (503, "not_ready")
        w.worker.in_recovery = False
        assert (await get(w, "/v1/profiles/anon:dev-1"))[0] == 200


async def test_once_the_pipeline_is_quiet_every_identifier_of_a_population_answers():
    # merges, forwarded merges, the kiosk's split: no lookup is left waiting (503) for
    # facts that have arrived, and every identifier finds the person the route says
    population = Population(150, seed=4)
    sim = Simulator(partitions=4, seed=3)
    sim.run([Input(s, msgspec.json.encode(p), key=k) for s, k, p in population.events(4_000)])
    seen = sorted({ident for row in sim.persons().values() for ident in row["m"]})
    assert len(seen) > 300
    async with workers(sim) as (w0, w1):
        for n, ident in enumerate(seen):
            status, body = await get((w0, w1)[n % 2], "/v1/profiles/" + path_of(ident))
            assert status == 200, (ident, body)
            assert body["person_id"] == sim.person_of(ident)


async def test_the_channel_table_of_a_worker_restoring_its_state_answers_not_ready():
    # its channel rows are partly restored: the table, asked of it or of a worker that
    # asks it for its partitions, would count some persons and revenue only
    sim = Simulator(partitions=2, seed=1)
    sim.run([page(1, anonymousId="dev-1"), page(2, anonymousId="dev-2")])
    async with workers(sim) as (w0, w1):
        status, body = await get(w0, "/v1/channels/revenue")
        assert status == 200 and body["channels"][0]["persons"] == 2
        w1.worker.in_recovery = True
        for w in (w1, w0):
            status, body = await get(w, "/v1/channels/revenue")
            assert (status, body.get("error")) == (503, "not_ready"), body


async def test_an_owner_that_answers_no_json_is_a_json_502():
    # the owner's URL reaches something else (a proxy's page, another service on the port)
    async def page_of_html(request: web.Request) -> web.Response:
        return web.Response(text="<html>hello</html>", content_type="text/html")

    other = web.Application()
    other.router.add_get("/{tail:.*}", page_of_html)
    server = TestServer(other, host="127.0.0.1")
    await server.start_server()
    try:
        sim = Simulator(partitions=2, seed=1)
        sim.run([page(1, anonymousId="dev-1")])
        elsewhere = str(server.make_url(""))
        async with workers(sim, owners={0: elsewhere, 1: elsewhere}) as (w0, _):
            response = await w0.get("/v1/profiles/anon:dev-1", headers={"X-API-Key": API_KEY})
            assert response.content_type == "application/json", await response.text()
            body = await response.json()
            assert (response.status, body["error"]) == (502, "owner_failed"), body
    finally:
        await server.close()


async def test_the_internal_channel_endpoint_opens_no_partition_the_table_does_not_have():
    # a store opens (creates) the database of any partition it is asked to read: the
    # endpoint asked for partition 99 of a 2-partition table made one
    sim = Simulator(partitions=2, seed=1)
    sim.run([page(1, anonymousId="dev-1")])
    async with workers(sim, count=1) as (w,):
        for query in ("0,1,99", "0,-1", "1,x"):
            status, body = await get(w, "/v1/_internal/channels?partitions=" + query)
            assert (status, body.get("error")) == (400, "bad_partitions"), (query, body)
        assert all(p in (0, 1) for stage, p in sim.states if stage == "channel")
        status, body = await get(w, "/v1/_internal/channels?partitions=0,1")
        assert status == 200 and body["(direct)"]["persons"] == 1


async def test_an_unexpected_failure_is_a_json_500(monkeypatch):
    # a bug in a route became aiohttp's plain-text 500, where every other error is JSON
    from tests.support import lookups

    async def broken(self, topic: str) -> set[int]:
        raise RuntimeError("boom")

    monkeypatch.setattr(lookups._Producer, "partitions_for", broken)
    sim = Simulator(partitions=1, seed=1)
    sim.run([page(1, anonymousId="dev-1")])
    async with workers(sim, count=1) as (w,):
        response = await w.get("/v1/profiles/anon:dev-1", headers={"X-API-Key": API_KEY})
        assert response.content_type == "application/json", await response.text()
        body = await response.json()
        assert (response.status, body["error"]) == (500, "internal_error")
        assert "RuntimeError" in body["message"]
        assert "boom" not in body["message"]  # what failed stays in the worker's log


async def test_a_broker_that_does_not_answer_the_first_lookup_is_a_503_in_bounded_time(
    monkeypatch,
):
    # the first lookup asks the producer who holds the changelogs; with the broker gone
    # the producer waits its request timeout (20 minutes) and the request with it
    from stream.shell import api
    from tests.support import lookups

    async def never(self, topic: str) -> set[int]:
        await asyncio.Event().wait()
        return set()

    monkeypatch.setattr(lookups._Producer, "partitions_for", never)
    monkeypatch.setattr(api, "OWNER_TIMEOUT", 0.2)
    sim = Simulator(partitions=1, seed=1)
    sim.run([page(1, anonymousId="dev-1")])
    async with workers(sim, count=1) as (w,):
        status, body = await asyncio.wait_for(get(w, "/v1/profiles/anon:dev-1"), 10)
        assert (status, body["error"]) == (503, "not_ready"), body
