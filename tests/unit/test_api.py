"""The lookup API's JSON (stream/shell/api.py)."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import msgspec
from aiohttp.test_utils import make_mocked_request
from yarl import URL

from stream.core.messages import person_of
from stream.shell.api import Lookups, _json, routes
from stream.shell.store import Txn, open_db


def test_responses_keep_integers_beyond_64_bits_exact():
    # the internal endpoints hand over state rows with raw token amounts (wei)
    row = {"vol": {"1:native": 12 * 10**24}, "n": 3}
    response = _json(200, row)
    assert response.status == 200
    assert msgspec.json.decode(response.body) == row


# --- the routes' reads from the web server's thread ------------------------------------
class _Store:
    """A table's store as the API sees it: only databases that are open."""

    def __init__(self, db) -> None:
        self.db = db

    def open_reader(self, partition: int):
        return None if self.db is None else Txn(self.db)


def _lookup(tmp_path, db_state: str) -> tuple[int, dict]:
    """GET /v1/profiles/anon:dev-1 on one worker whose profile database is open and
    holds the person (``open``), is not open here (``absent``), or was closed under
    the lookup by a rebalance (``closed``)."""
    ident = "anon:dev-1"
    person = person_of(ident)
    route_db = open_db(str(tmp_path / "route"))
    profile_db = open_db(str(tmp_path / "profile"))
    profile_db.put(f"p:{person}".encode(), msgspec.json.encode({"v": 3, "w": {"events": 7}}))
    if db_state == "closed":
        profile_db.close()
    stores = {
        "route": _Store(route_db),
        "profile": _Store(None if db_state == "absent" else profile_db),
    }
    own = "http://127.0.0.1:6066"
    c360 = SimpleNamespace(
        settings=SimpleNamespace(api_key="k"),
        tables={name: SimpleNamespace(partitions=1, data=store) for name, store in stores.items()},
        app=SimpleNamespace(
            rebalancing=False,
            router=SimpleNamespace(key_store=lambda table, key: URL(own)),
            conf=SimpleNamespace(canonical_url=own),
        ),
    )
    lookups = Lookups(c360)
    lookups._changelogs_known = True
    handler = dict(routes(c360, lookups))["/v1/profiles/{identifier}"]
    request = make_mocked_request(
        "GET", f"/v1/profiles/{ident}", headers={"X-API-Key": "k"}, match_info={"identifier": ident}
    )
    response = asyncio.run(handler(request))
    return response.status, msgspec.json.decode(response.body)


def test_a_lookup_reads_an_open_partition_database(tmp_path):
    status, body = _lookup(tmp_path, "open")
    assert status == 200
    assert body["version"] == 3 and body["events"] == 7


def test_a_lookup_never_opens_a_partition_database_itself(tmp_path):
    status, body = _lookup(tmp_path, "absent")
    assert status == 503 and body["error"] == "not_ready"


def test_a_lookup_whose_database_closed_under_it_is_asked_to_retry(tmp_path):
    status, body = _lookup(tmp_path, "closed")
    assert status == 503 and body["error"] == "rebalancing"
