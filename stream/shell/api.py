"""The ``/v1`` lookup API, served by every worker (DESIGN.md, Exposure: API key required).

A lookup may need state held by other workers: the identifier's route partition
(which person it belongs to) and the person's profile partition. The worker that
receives the request asks faust's router who owns each key; it reads locally when
it owns it, and otherwise asks the owner's internal endpoint (same API key).
Responses are JSON through msgspec, which keeps integers of any size exact: the
internal endpoints hand over state rows whose raw token amounts exceed 64 bits
(orjson refuses to encode them and decodes them as floats).
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import re
import time
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import aiohttp
import msgspec
from aiohttp import web
from faust.web import Request, Response, View
from yarl import URL

from stream.core.channel import channel_rows
from stream.core.identifiers import IdentifierError, parse
from stream.core.messages import person_of
from stream.core.partitioner import partition_for
from stream.shell.metrics import METRICS
from stream.shell.store import Txn

if TYPE_CHECKING:
    from stream.app import C360

log = logging.getLogger(__name__)
MAX_MERGE_HOPS = 1_000
"""A bound on the merge tombstones a person lookup follows (each hop may be a request
to another worker). Chains cannot loop (a survivor's id is the smaller one), but each
merge into a smaller id adds a hop to the older ids' chains."""
OWNER_TIMEOUT = 5.0
"""Seconds a worker waits for the owner of a key to answer an internal request."""
IDENTIFIER_PATH = "{identifier:[^/]+}"
"""A path segment holding an identifier: aiohttp's default ``[^{}/]+`` refuses braces,
which device ids may hold (a GUID written ``{…}``). A ``/`` is sent as ``%2F``."""
_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder().decode


class ApiError(Exception):
    def __init__(self, status: int, error: str, message: str) -> None:
        super().__init__(message)
        self.status, self.error, self.message = status, error, message


def _json(status: int, body: Any, headers: dict[str, str] | None = None) -> Response:
    headers = {**(headers or {}), "Content-Type": "application/json"}
    if status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="c360"'
    return web.Response(body=_encode(body), status=status, headers=headers)


@web.middleware
async def json_errors(request: Any, handler: Any) -> Any:
    """aiohttp's own errors (no such path, a method a page does not answer) as JSON,
    like every answer of the API: ``{"error": "not_found", "message": ...}``."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        error = re.sub(r"\W+", "_", exc.reason.lower()).strip("_")
        message = {
            404: f"no such path: {request.path}",
            405: f"{request.method} is not answered at {request.path}",
        }.get(exc.status, exc.reason)
        allow = {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else None
        return _json(exc.status, {"error": error, "message": message}, allow)


class Lookups:
    """Reads across workers: route rows by identifier, person rows by person id."""

    def __init__(self, c360: C360) -> None:
        self.c360 = c360
        self._session: aiohttp.ClientSession | None = None
        self._changelogs_known = False

    def authorized(self, request: Request) -> bool:
        key = self.c360.settings.api_key
        if not key:
            return False
        given = request.headers.get("X-API-Key", "")
        auth = request.headers.get("Authorization", "")
        if auth[:7].lower() == "bearer ":  # the scheme is case-insensitive (RFC 9110)
            given = auth[7:].strip()
        # a header's bytes that are not UTF-8 arrive as surrogates: such a key is wrong,
        # never an error
        return hmac.compare_digest(
            given.encode("utf-8", "surrogateescape"), key.encode("utf-8", "surrogateescape")
        )

    async def know_changelogs(self) -> None:
        """Make the producer know the changelog topics' partitions, once.

        faust's router finds a key's owner through the producer's metadata of the
        table's changelog topic; the topics are created before faust starts (faust's
        declaring is off), so a worker that has not written to one yet does not know
        it until asked."""
        if self._changelogs_known:
            return
        producer = self.c360.app.producer._ensure_producer()
        for table in self.c360.tables.values():
            topic = table.changelog_topic.get_topic_name()
            try:  # the producer waits for the broker up to its request timeout (20 min)
                await asyncio.wait_for(producer.partitions_for(topic), OWNER_TIMEOUT)
            except TimeoutError:
                raise ApiError(
                    503, "not_ready", f"the broker did not say who holds {topic}; retry"
                ) from None
        self._changelogs_known = True

    def _owner(self, table: str, key: str) -> URL | None:
        """The owner's URL, or None when this worker owns the key."""
        try:
            url = self.c360.app.router.key_store(table, key.encode())
        except KeyError:
            raise ApiError(503, "not_ready", "partitions are not assigned yet") from None
        own = URL(self.c360.app.conf.canonical_url)
        if (url.host, url.port) == (own.host, own.port):
            return None
        return url

    def _local(self, table: str, key: str) -> Txn:
        spec_partitions = self.c360.tables[table].partitions
        partition = 0 if spec_partitions == 1 else partition_for(key, spec_partitions)
        return self.reader(table, partition)

    def reader(self, table: str, partition: int) -> Txn:
        """The committed state of a partition of this worker; 503 while it restores its
        state from the changelogs (a table of every partition, as the channels', would
        count the restored part only)."""
        if getattr(self.c360.app, "in_recovery", False):
            raise ApiError(503, "not_ready", "this worker is restoring its state; retry")
        return self.c360.tables[table].data.reader(partition)

    async def _remote(
        self, url: URL, path: str, key: str | None = None, query: dict[str, str] | None = None
    ) -> Any:
        """The owner's answer to an internal GET of ``path``, followed by ``key`` as one
        escaped path segment (None: 404, not found there)."""
        if self._session is None:
            timeout = aiohttp.ClientTimeout(total=OWNER_TIMEOUT)
            self._session = aiohttp.ClientSession(timeout=timeout)
        headers = {"X-API-Key": self.c360.settings.api_key}
        if key is not None:
            path += "/" + quote(key, safe=":@")
        target = url.with_path(path, encoded=True).with_query(query or {})
        try:
            async with self._session.get(target, headers=headers) as response:
                body = await response.read()
                status = response.status
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise ApiError(
                503, "owner_unreachable", f"the owner {url} did not answer: {exc!r}"
            ) from None
        if status == 404:
            return None
        if status == 503:  # not ready, or its own owner unreachable: retry, as there
            raise ApiError(503, *_error_of(body, f"{url} is not ready"))
        if status != 200:
            raise ApiError(502, "owner_failed", f"{url} answered {status}")
        try:
            return _decode(body)
        except msgspec.DecodeError:  # its URL reaches something else (a proxy's page)
            raise ApiError(502, "owner_failed", f"{url} answered 200 without JSON") from None

    async def route_row(self, identifier: str) -> dict | None:
        owner = self._owner("route", identifier)
        if owner is None:
            return self._local("route", identifier).get("i:" + identifier)
        return await self._remote(owner, "/v1/_internal/route", identifier)

    async def _row(self, person: str) -> dict | None:
        """A person row as stored (a tombstone too), from whichever worker owns it."""
        owner = self._owner("profile", person)
        if owner is None:
            return self._local("profile", person).get("p:" + person)
        return await self._remote(owner, "/v1/_internal/person", person)

    async def landed(self, identifier: str, person: str, row: dict) -> bool:
        """Whether the facts ``identifier`` held at its own person have reached the live
        ``person`` (its ``row``). The route stage moves an identifier to its new person
        at once; the profile stage then marks the old person absorbed and sends its
        facts on (a ``MergeIn``, forwarded if its target was absorbed meanwhile), and the
        survivor's row may be written before they arrive (its new member list comes
        apart): until then the profile lacks them. Every person absorbed on the way that
        held anything ends in the survivor's ``ab`` once its facts are there. An
        identifier split away from a person on the way is not judged here (its facts
        move by another message)."""
        current = person_of(identifier)
        held: list[str] = []  # absorbed on the way, with something to send on
        for _ in range(MAX_MERGE_HOPS):
            if current == person:
                absorbed = set(row.get("ab", ()))
                return all(p in absorbed for p in held)
            old = await self._row(current)
            if old is None:
                return not held  # it never held a fact there
            if identifier in old.get("mv", {}):
                return True  # split away from this person (absorbed since, or not): not judged
            survivor = old.get("mi")
            if survivor is None:
                return False  # live, and the absorb of this person has not been applied yet
            if old.get("a") is not None:
                held.append(current)
            current = survivor
        return True

    async def person_row(self, person: str) -> tuple[str, dict] | None:
        """The live person row, following merges (person id, row). None when ``person``
        has no row; 503 when it was absorbed into a person whose row the profile stage
        has not written yet (a merge in flight: retry).

        An absorbed person is followed through the identifier it was founded by (its
        tombstone's ``fi``), where that identifier is now: a split after the merge may
        have moved it, with the person's own facts, away from the survivor (``mi``),
        which then holds another human's profile. Without ``fi`` (a tombstone written
        before it existed, of a person that never held a fact, or of a person a split
        created: its id derives from no identifier), ``mi``."""
        seen = {person}
        for _ in range(MAX_MERGE_HOPS):
            row = await self._row(person)
            if row is None:
                if len(seen) == 1:
                    return None
                raise ApiError(
                    503, "person_updating", f"a merge into {person} is in flight; retry shortly"
                )
            if row.get("mi") is None:
                return person, row
            route = await self.route_row(row["fi"]) if row.get("fi") else None
            person = route["p"] if route and route["p"] not in seen else row["mi"]
            if person in seen:
                raise ApiError(500, "merge_loop", f"the merges of {person} loop")
            seen.add(person)
        raise ApiError(500, "merge_loop", f"over {MAX_MERGE_HOPS} merge hops")

    async def resolve(self, identifier: str) -> tuple[str, dict]:
        """The live person of a seen identifier (person id, row).

        404 when the identifier has not been seen; 503 when the route stage already
        moved it to a person whose row the profile stage has not written yet (a
        split or merge in flight: retry)."""
        route = await self.route_row(identifier)
        person = route["p"] if route else person_of(identifier)
        found = await self.person_row(person)
        if found is not None:
            if not await self.landed(identifier, *found):
                raise ApiError(
                    503, "person_updating", f"{identifier} is moving to {found[0]}; retry shortly"
                )
            return found
        if route is not None:
            raise ApiError(
                503, "person_updating", f"{identifier} is moving to {person}; retry shortly"
            )
        raise ApiError(404, "unknown_identifier", f"{identifier} has not been seen")

    def owners(self, table: str) -> dict[URL | None, list[int]]:
        """The partitions of a table by owner (None: this worker)."""
        partitions = self.c360.tables[table].partitions
        out: dict[URL | None, list[int]] = {}
        for partition, key in enumerate(keys_for_partitions(partitions)):
            out.setdefault(self._owner(table, key), []).append(partition)
        return out

    async def channels(self) -> dict[str, dict]:
        """The channel table from every worker's partitions."""
        rows: dict[str, dict] = {}
        for owner, partitions in self.owners("channel").items():
            if owner is None:
                for p in partitions:
                    rows.update(channel_rows(self.reader("channel", p)))
            else:
                query = {"partitions": ",".join(map(str, partitions))}
                remote = await self._remote(owner, "/v1/_internal/channels", query=query)
                if remote is None:
                    raise ApiError(502, "owner_failed", f"{owner} has no channel endpoint")
                rows.update(remote)
        return rows


def register(c360: C360) -> Lookups:
    app = c360.app
    lookups = Lookups(c360)

    def guard(request: Request) -> None:
        if not lookups.authorized(request):
            raise ApiError(401, "unauthorized", "a valid API key is required (X-API-Key or Bearer)")

    async def answer(route: str, request: Request, work) -> Response:
        """Run ``work`` and count the answer once, by route and status (timed likewise)."""
        started = time.perf_counter()
        status = 500
        try:
            guard(request)
            await lookups.know_changelogs()
            status, body = await work()
        except ApiError as exc:
            status, body = exc.status, {"error": exc.error, "message": exc.message}
        except Exception as exc:  # a bug: logged, and answered in JSON like every error
            log.exception("%s %s failed", request.method, request.path)
            message = f"{type(exc).__name__}; the worker's log has its traceback"
            status, body = 500, {"error": "internal_error", "message": message}
        finally:
            METRICS.api_requests.labels(route, str(status)).inc()
            METRICS.api_seconds.labels(route, str(status)).observe(time.perf_counter() - started)
        return _json(status, body)

    @app.page("/v1/identities/" + IDENTIFIER_PATH)
    class Identities(View):
        async def get(self, request: Request, identifier: str) -> Response:
            async def work():
                ident = identifier_or_400(identifier)
                person_id, row = await lookups.resolve(ident)
                view = row.get("w") or {}
                return 200, {
                    "identifier": ident,
                    "person_id": person_id,
                    "identifiers": view.get("identifiers", {}),
                    "associations": view.get("associations", []),
                }

            return await answer("/v1/identities", request, work)

    @app.page("/v1/_internal/route/" + IDENTIFIER_PATH)
    class InternalRoute(View):
        async def get(self, request: Request, identifier: str) -> Response:
            async def work():
                row = lookups._local("route", identifier).get("i:" + identifier)
                return (200, row) if row is not None else (404, {"error": "not_found"})

            return await answer("/v1/_internal", request, work)

    @app.page("/v1/_internal/person/{person}")
    class InternalPerson(View):
        async def get(self, request: Request, person: str) -> Response:
            async def work():
                row = lookups._local("profile", person).get("p:" + person)
                return (200, row) if row is not None else (404, {"error": "not_found"})

            return await answer("/v1/_internal", request, work)

    @app.page("/v1/profiles/" + IDENTIFIER_PATH)
    class Profiles(View):
        async def get(self, request: Request, identifier: str) -> Response:
            async def work():
                ident = identifier_or_400(identifier)
                return 200, profile_body(*await lookups.resolve(ident), identifier=ident)

            return await answer("/v1/profiles", request, work)

    @app.page("/v1/persons/{person}")
    class Persons(View):
        async def get(self, request: Request, person: str) -> Response:
            async def work():
                if not PERSON_ID.fullmatch(person):
                    raise ApiError(
                        400, "bad_person_id", f"{person!r} is not a person id (p + 20 hex)"
                    )
                found = await lookups.person_row(person)
                if found is None:
                    raise ApiError(404, "unknown_person", f"{person} does not exist")
                body = profile_body(*found)
                if found[0] != person:
                    body["merged_from"] = person
                return 200, body

            return await answer("/v1/persons", request, work)

    @app.page("/v1/channels/revenue")
    class Channels(View):
        async def get(self, request: Request) -> Response:
            async def work():
                rows = await lookups.channels()
                value = c360.aggregator.value
                channels = []
                for channel, row in rows.items():
                    usd = value(
                        {"vol": {}, "fee": {}, "rev": row["revenue"], "hold": {}}, PricesOnly(c360)
                    )
                    channels.append(
                        {
                            "channel": channel,
                            "persons": row["persons"],
                            "revenue": {t: str(v) for t, v in sorted(row["revenue"].items())},
                            "revenue_usd": usd["revenue_usd"],
                            "unpriced_tokens": usd["unpriced_tokens"],
                        }
                    )
                channels.sort(key=lambda c: (-c["revenue_usd"], -c["persons"], c["channel"]))
                return 200, {"channels": channels}

            return await answer("/v1/channels/revenue", request, work)

    @app.page("/v1/_internal/channels")
    class InternalChannels(View):
        async def get(self, request: Request) -> Response:
            async def work():
                count = c360.tables["channel"].partitions
                asked = request.query.get("partitions", "").split(",")
                if not all(p.isdecimal() and p.isascii() and int(p) < count for p in asked):
                    # a store creates the database of a partition it is asked to read
                    raise ApiError(
                        400, "bad_partitions", f"partitions must be numbers below {count}"
                    )
                rows: dict[str, dict] = {}
                for p in asked:
                    rows.update(channel_rows(lookups.reader("channel", int(p))))
                return 200, rows

            return await answer("/v1/_internal", request, work)

    @app.page("/v1/_internal/offsets")
    class InternalOffsets(View):
        """The input positions stored with each stage partition's state on this worker."""

        async def get(self, request: Request) -> Response:
            async def work():
                return 200, stored_offsets(c360)

            return await answer("/v1/_internal", request, work)

    del Identities, InternalRoute, InternalPerson, Profiles, Persons, Channels, InternalChannels
    del InternalOffsets
    return lookups


def stored_offsets(c360: C360) -> dict[str, dict[str, int]]:
    """{stage: {"topic:partition": offset}}: the last input offset each stage partition
    committed together with its state (read from the open partition databases)."""
    out: dict[str, dict[str, int]] = {}
    for name, runner in c360.stages.items():
        store = runner.store
        positions: dict[str, int] = {}
        for partition in sorted(store._dbs):
            positions.update(store.input_offset(partition))
        out[name] = positions
    return out


PERSON_ID = re.compile(r"p[0-9a-f]{20}")  # fullmatch


class PricesOnly:
    """The context the aggregator's valuation needs: the live prices table."""

    def __init__(self, c360: C360) -> None:
        self.prices = c360.prices

    def price(self, token: str):
        return self.prices.get(token)


def profile_body(person: str, row: dict, identifier: str | None = None) -> dict:
    body: dict[str, Any] = {"person_id": person, "version": row.get("v", 0)}
    if identifier is not None:
        body["identifier"] = identifier
    body.update(row.get("w") or {})
    return body


def _error_of(body: bytes, fallback: str) -> tuple[str, str]:
    """(error, message) of an error response's JSON body, or ("not_ready", fallback)."""
    try:
        answer = _decode(body)
        return str(answer["error"]), str(answer["message"])
    except (msgspec.DecodeError, KeyError, TypeError):
        return "not_ready", fallback


def keys_for_partitions(partitions: int) -> list[str]:
    """One key per partition (the n-th key lands in partition n): to ask who owns it."""
    found: dict[int, str] = {}
    i = 0
    while len(found) < partitions:
        key = f"k{i}"
        found.setdefault(partition_for(key, partitions), key)
        i += 1
    return [found[p] for p in range(partitions)]


def identifier_or_400(raw: str) -> str:
    try:
        return parse(raw)
    except IdentifierError as exc:
        raise ApiError(400, exc.reason, str(exc)) from None
