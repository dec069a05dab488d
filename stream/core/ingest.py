"""Ingest: decode, validate and normalize input records into facts.

A record's value is one event (a JSON object) or a batch (a JSON array of up to
``batch_max`` events). Every event becomes facts keyed by their primary
identifier, or a rejection with a machine-readable reason and a human message.
A bad event inside a batch is rejected alone, with its index; the others flow
on. Nothing raises out of :func:`ingest_record`.

Pure: no I/O, no Faust. The worker's ingest agent, the simulator and
``c360 replay`` all call this module.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import msgspec

from stream.contract import inputs as m
from stream.core.facts import Fact
from stream.core.identifiers import IdentifierError, normalize, normalize_address
from stream.core.rules import Compiled

MIN_EVENT_MS = 946_684_800_000  # 2000-01-01: an older event time is a clock error
MAX_EVENT_MS = 4_102_444_800_000
"""2100-01-01: a later event time is a unit error (milliseconds sent as seconds) or a
clock error. One such chain event would move its partition's chain clock for good."""
CLICK_ID_KEYS = ("gclid", "fbclid", "msclkid", "ttclid", "twclid", "li_fat_id", "rdt_cid", "dclid")
UTM_KEYS = ("utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content")
SOCIAL_FIELDS = ("x", "discord", "telegram", "github", "farcaster")


class Reject(Exception):
    """An event that cannot be applied: ``reason`` is machine-readable."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass(slots=True)
class Rejection:
    """A dead letter to write: the record (index None) or one event of a batch."""

    reason: str
    message: str
    original: bytes
    index: int | None = None
    truncated: bool = False
    size: int = 0


@dataclass(slots=True)
class Ingested:
    """What one input record became."""

    facts: list[Fact] = field(default_factory=list)
    rejections: list[Rejection] = field(default_factory=list)
    events: int = 0  # events in the record (1 for a single event)
    accepted_by_type: dict[str, int] = field(default_factory=dict)


def ms(dt: datetime) -> int:
    return int(dt.timestamp() * 1000)


def in_range(ts: int, field: str) -> int:
    """``ts`` (ms), or a refusal when it is before 2000 or from 2100 on."""
    if not MIN_EVENT_MS <= ts < MAX_EVENT_MS:
        raise Reject("out_of_range", f"{field} is {_when(ts)}: not between 2000 and 2100")
    return ts


def _when(ts: int) -> str:
    try:
        return datetime.fromtimestamp(ts / 1000, UTC).isoformat()
    except (OverflowError, ValueError, OSError):
        return f"{ts} ms after 1970"


def _ident(kind: str, raw: str | None) -> str | None:
    """A normalized identifier, None when absent; raises Reject when malformed."""
    if raw is None:
        return None
    try:
        return normalize(kind, raw)
    except IdentifierError as exc:
        raise Reject("bad_identifier", f"{kind}: {exc}") from None


def _soft_ident(kind: str, raw: str | None) -> str | None:
    """For asserted fields: a malformed value is simply not recorded."""
    if raw is None:
        return None
    try:
        return normalize(kind, raw)
    except IdentifierError:
        return None


def _is_hex(value: str) -> bool:
    """0x followed by whole hex bytes (bytes.fromhex is C; a regex costs ~5 ns a character)."""
    if value[:2] != "0x":
        return False
    try:
        return len(bytes.fromhex(value[2:])) * 2 == len(value) - 2  # no whitespace inside
    except ValueError:
        return False


def _check_hashes(*values: str | None) -> None:
    """The 32-byte hashes of an event (the struct checked their length, see inputs.Hash32)."""
    for value in values:
        if value is not None and not _is_hex(value):
            raise Reject("invalid_field", f"{value[:80]!r} is not 0x followed by 64 hex digits")


def _check_hex(value: str | None, name: str) -> None:
    if value is not None and not _is_hex(value):
        raise Reject("invalid_field", f"{name} is not 0x-prefixed hex bytes")


def _check_addresses(*values: str | None) -> None:
    """Format check of addresses c360 does not otherwise read (burn addresses are fine here)."""
    for value in values:
        if value is not None:
            try:
                normalize_address(value)
            except IdentifierError as exc:
                if exc.reason != "burn_address":
                    raise Reject("bad_identifier", str(exc)) from None


def _wallet(raw: str | None) -> str | None:
    if raw is None:
        return None
    try:
        return "wallet:" + normalize_address(raw)
    except IdentifierError as exc:
        raise Reject("bad_identifier", f"wallet: {exc}") from None


def _amount(value: int | str | None, name: str) -> int:
    if value is None:
        return 0
    n = int(value)
    if n > m.UINT256_MAX:
        raise Reject("out_of_range", f"{name} is larger than a uint256")
    return n


def _touch(
    campaign: m.Campaign | None, page: m.PageContext | None, click_ids: dict | None, ts: int
) -> dict[str, Any] | None:
    """The campaign touch of a web event (UTM or click id), or None."""
    utm: dict[str, str] = {}
    if campaign is not None:
        for key, value in (
            ("source", campaign.source),
            ("medium", campaign.medium),
            ("campaign", campaign.name),
            ("term", campaign.term),
            ("content", campaign.content),
        ):
            if value:
                utm[key] = value
    clicks = dict(click_ids) if click_ids else {}
    url = page.url if page is not None else None
    if url and not utm and not clicks and ("utm_" in url or any(k in url for k in CLICK_ID_KEYS)):
        query = dict(parse_qsl(urlsplit(url).query))
        for key in UTM_KEYS:
            if query.get(key):
                utm.setdefault(
                    "campaign" if key == "utm_campaign" else key[4:],
                    query[key][:256],
                )
        for key in CLICK_ID_KEYS:
            if query.get(key):
                clicks.setdefault(key, query[key][:256])
    if not utm and not clicks:
        return None
    touch: dict[str, Any] = {"ts": ts, **utm}
    if clicks:
        key = sorted(clicks)[0]
        touch["click"] = f"{key}:{clicks[key]}"
    if page is not None:
        if page.referrer:
            touch["referrer"] = page.referrer[:512]
        if page.url or page.path:
            touch["landing"] = (page.url or page.path or "")[:512]
    return touch


# --- per-topic converters ---
class Converter:
    """Turns decoded payloads of one topic into facts."""

    def __init__(self, rules: Compiled) -> None:
        self.rules = rules

    def _links(self, fact: Fact, evidence: str, identifiers: list[str | None]) -> None:
        """Attach identifiers as links (merging evidence) or associations (asserted)."""
        links = fact.links
        assoc = fact.assoc
        merging = self.rules.merging[evidence]
        for i in identifiers:
            if not i or i == fact.ident or i in assoc or any(i == j for j, _ in links):
                continue
            if merging:
                links = (*links, (i, evidence))
            else:
                assoc = (*assoc, i)
        fact.links = links
        fact.assoc = assoc

    # web.events ------------------------------------------------------------------
    def web(self, e: m.WebEvent, src: str) -> list[Fact]:
        ts = in_range(int(e.timestamp.timestamp() * 1000), "timestamp")
        anon = None if e.anonymous_id is None else _ident("anon", e.anonymous_id)
        user = None if e.user_id is None else _ident("user", e.user_id)
        device = anon  # an alias's own anonymousId: the device it was sent from
        if e.type == "alias":
            if e.previous_id is None or user is None:
                raise Reject("missing_field", "alias needs previousId and userId")
            anon = _ident("anon", e.previous_id)
        if anon is None and user is None:
            raise Reject("missing_field", "an event needs anonymousId or userId")
        ctx = e.context
        c360 = ctx.c360 if ctx is not None else None
        server = c360 is not None and c360.auth == "server"
        data: dict[str, Any] = {}
        kind: str = e.type
        primary = user or anon
        fact = Fact(id=e.message_id, ident=primary, kind=kind, ts=ts, src=src)  # type: ignore[arg-type]
        if ctx is not None:
            touch = _touch(ctx.campaign, ctx.page, ctx.click_ids, ts)
            if touch is not None:
                data["touch"] = touch
        wallet_link: str | None = None
        wallet_evidence = "wallet_connect"
        if e.type == "track":
            if not e.event:
                raise Reject("missing_field", "a track event needs an event name")
            data["event"] = e.event[:128]
            decoder = WEB3_DECODERS.get(e.event)
            if decoder is not None:
                props = _object(decoder, e.properties, "properties")
                wallet_link, wallet_evidence = self._web3(fact, e.event, props, c360, data)
            else:
                _object(None, e.properties, "properties")
        if wallet_evidence == "siwe" and not server:
            # The signature proves the wallet and the device signing in, whose
            # anonymousId this is; a userId a browser sends along is only what its
            # identify would say (observed), never verified by the sign-in.
            if anon is not None:
                fact.ident = anon
            else:
                wallet_evidence = "wallet_connect"
        if e.type != "identify" and memoryview(e.traits)[0] != 123:
            raise Reject("invalid_field", "Expected `object` - at `$.traits`")
        elif memoryview(e.properties)[0] != 123:
            raise Reject("invalid_field", "Expected `object` - at `$.properties`")
        fact.data = data
        if e.type == "identify":
            email = _object(TRAITS, e.traits, "traits").email
            email_id = _soft_ident("email", email) if isinstance(email, str) else None
            if server:
                self._links(fact, "identify_server", [anon, email_id])
            else:
                self._links(fact, "identify_browser", [anon])
                if email_id:
                    self._links(fact, "identify_trait", [email_id])
        elif e.type == "alias":
            self._links(fact, "alias_server" if server else "alias_browser", [anon])
            if device is not None and device != anon:  # as any event with both ids
                self._links(fact, "ids_server" if server else "ids_browser", [device])
        elif user is not None and anon is not None:
            other = user if fact.ident == anon else anon  # a browser's sign-in: from anon
            self._links(fact, "ids_server" if server else "ids_browser", [other])
        if wallet_link is not None:
            self._links(fact, wallet_evidence, [wallet_link])
        return [fact]

    def _web3(
        self, fact: Fact, event: str, props: Any, c360: m.CollectorContext | None, data: dict
    ) -> tuple[str | None, str]:
        """Web3 track details; returns the wallet to link and the evidence kind."""
        if event in ("Wallet Connected", "Wallet Disconnected"):
            fact.kind = "wallet"
            data["action"] = "connect" if event == "Wallet Connected" else "disconnect"
            if props.chain_id is not None:
                data["chain"] = props.chain_id
            if props.wallet_provider:
                data["provider"] = props.wallet_provider[:64]
            return _wallet(props.address), "wallet_connect"
        if event == "Chain Changed":
            fact.kind = "chain_switch"
            data["chain"] = props.chain_id
            return _wallet(props.address), "wallet_connect"
        if event == "SIWE Sign In":
            _check_hex(props.signature, "properties.signature")
            fact.kind = "siwe"
            wallet = _wallet(props.address)
            verdict = c360.siwe if c360 is not None else None
            verified = bool(
                verdict is not None
                and verdict.verified
                and verdict.address is not None
                and _wallet(verdict.address) == wallet
            )
            data["verified"] = verified
            if props.chain_id is not None:
                data["chain"] = props.chain_id
            return wallet, ("siwe" if verified else "siwe_unverified")
        # Transaction Started / Confirmed
        _check_hashes(props.tx_hash)
        fact.kind = "tx_intent"
        data["status"] = "confirmed" if event.endswith("Confirmed") else "started"
        data["chain"] = props.chain_id
        return _wallet(props.address), "wallet_connect"

    # forms -----------------------------------------------------------------------
    def form(self, e: m.FormResponse, src: str) -> list[Fact]:
        r = e.respondent
        ts = in_range(ms(e.submitted_at), "submitted_at")
        typed = [_soft_ident("email", r.email), _wallet_soft(r.wallet)]
        typed += [_soft_ident(k, getattr(r, k)) for k in SOCIAL_FIELDS]
        user = _soft_ident("user", r.user_id)
        anon = _soft_ident("anon", r.anonymous_id)
        candidates = [user, anon, *typed]
        primary = next((i for i in candidates if i), None)
        if primary is None:
            raise Reject("missing_field", "the respondent has no usable identifier")
        data: dict[str, Any] = {"form": e.form_id[:128], "answers": len(e.answers)}
        hidden = e.hidden
        if any(k in hidden for k in UTM_KEYS):
            data["touch"] = {
                "ts": ts,
                **{
                    ("campaign" if k == "utm_campaign" else k[4:]): hidden[k]
                    for k in UTM_KEYS
                    if hidden.get(k)
                },
            }
        fact = Fact(
            id=f"form:{e.form_id}:{e.response_id}", ident=primary, kind="form", ts=ts, src=src
        )
        fact.data = data
        self._links(fact, "form_field", candidates)
        return [fact]

    # socials ---------------------------------------------------------------------
    def social(self, e: m.SocialVerification, src: str) -> list[Fact]:
        ts = in_range(ms(e.occurred_at), "occurred_at")
        s = e.subject
        subject = _ident("user", s.user_id) or _wallet(s.wallet) or _ident("anon", s.anonymous_id)
        if subject is None:
            raise Reject(
                "missing_field", "the subject has no identifier (user_id, wallet or anonymous_id)"
            )
        account = _ident(e.platform, e.platform_user_id)
        data: dict[str, Any] = {
            "platform": e.platform,
            "account": account,
            "verified": e.verified and not e.revoked,
            "revoked": e.revoked,
            "method": e.method,
        }
        if e.handle:
            data["handle"] = e.handle.lstrip("@")[:64]
        # a revocation carries the verification's id: its time tells the two apart (the
        # duplicate check would otherwise drop a revocation sent the same day)
        fact = Fact(
            id=f"social:{e.verification_id}:{ts}", ident=subject, kind="social", ts=ts, src=src
        )
        fact.data = data
        strong = e.verified and not e.revoked and e.method in ("oauth", "signature", "bot")
        self._links(fact, "social_verified" if strong else "social_unverified", [account])
        return [fact]

    # chain.events ------------------------------------------------------------------
    def chain(self, e: m.ChainEvent, src: str) -> list[Fact]:
        _check_hashes(e.block_hash, e.tx_hash, e.parent_hash, *e.topics)
        _check_hex(e.data, "data")
        _check_addresses(e.address, e.tx_from, e.tx_to)
        ts = in_range(e.block_timestamp * 1000, "block_timestamp (seconds)")
        op = 1 if e.op == "upsert" else -1
        chain, block, event_id = e.chain_id, e.block_number, e.event_id
        facts: list[Fact] = []

        def side(wallet_raw: str | None, suffix: str, kind: str, data: dict) -> None:
            if wallet_raw is None:
                return
            try:
                wallet = "wallet:" + normalize_address(wallet_raw)
            except IdentifierError as exc:
                if exc.reason == "burn_address":
                    return  # mints and burns: the zero address is nobody's wallet
                raise Reject("bad_identifier", f"wallet: {exc}") from None
            data["chain"] = chain
            data["block"] = block
            facts.append(Fact(f"{event_id}:{suffix}", wallet, kind, ts, src, op, data=data))

        if e.kind == "tx":
            value = _amount(e.tx_value, "tx_value")
            fee = _amount(e.fee_wei, "fee_wei")
            side(e.tx_from, "from", "tx", {"side": "out", "value": value, "fee": fee})
            if e.tx_to is not None and value > 0:
                side(e.tx_to, "to", "tx", {"side": "in", "value": value})
        else:
            d = e.decoded
            if d is None:
                if e.tx_from is None:
                    raise Reject("missing_field", "a log needs decoded or tx_from")
                side(e.tx_from, "from", "log", {})
            else:
                if e.address is None:
                    raise Reject("missing_field", "a decoded transfer needs the contract address")
                token = f"{chain}:{normalize_address(e.address)}"
                if d.standard == "erc20":
                    if d.value is None:  # not a transfer of 0: an amount nobody knows
                        raise Reject("missing_field", "an erc20 transfer needs value")
                    value = _amount(d.value, "decoded.value")
                    side(
                        d.sender,
                        "from",
                        "transfer",
                        {"side": "out", "token": token, "value": value},
                    )
                    side(
                        d.recipient,
                        "to",
                        "transfer",
                        {"side": "in", "token": token, "value": value},
                    )
                else:
                    if d.token_id is None:
                        raise Reject("missing_field", "an erc721 transfer needs token_id")
                    nft = str(_amount(d.token_id, "decoded.token_id"))
                    for wallet, suffix, direction in (
                        (d.sender, "from", "out"),
                        (d.recipient, "to", "in"),
                    ):
                        side(
                            wallet,
                            suffix,
                            "transfer",
                            {"side": direction, "token": token, "value": 1, "nft": nft},
                        )
        if e.revenue is not None:
            r = e.revenue
            token = r.token if r.token == "native" else normalize_address(r.token)
            amount = _amount(r.amount, "revenue.amount")
            side(r.payer, "rev", "revenue", {"token": f"{chain}:{token}", "amount": amount})
        if not facts:
            raise Reject("no_identifier", "the chain event concerns no wallet")
        return facts

    def holding(self, e: m.HoldingSnapshot, src: str) -> list[Fact]:
        wallet = _wallet(e.wallet)
        token = e.token if e.token == "native" else normalize_address(e.token)
        key = f"{e.chain_id}:{token}"
        return [
            Fact(
                id=f"hold:{wallet}:{key}:{e.block_number}:{ms(e.observed_at)}",
                ident=wallet,  # type: ignore[arg-type]
                kind="holding",
                ts=in_range(ms(e.observed_at), "observed_at"),
                src=src,
                data={
                    "token": key,
                    "balance": _amount(e.balance, "balance"),
                    "block": e.block_number,
                },
            )
        ]

    # support ---------------------------------------------------------------------
    def ticket(self, e: m.SupportTicketEvent, src: str) -> list[Fact]:
        ts = in_range(ms(e.occurred_at), "occurred_at")
        r = e.requester
        candidates = [
            _soft_ident("user", r.user_id),
            _soft_ident("email", r.email),
            _wallet_soft(r.wallet),
            _soft_ident("discord", r.discord),
        ]
        primary = next((i for i in candidates if i), None)
        if primary is None:
            raise Reject("missing_field", "the requester has no usable identifier")
        data: dict[str, Any] = {
            "ticket": f"{e.system}:{e.external_id}",
            "event": e.event,
            "status": e.status,
        }
        if e.priority:
            data["priority"] = e.priority
        if e.subject:
            data["subject"] = e.subject[:200]
        if e.channel:
            data["channel"] = e.channel[:64]
        if e.csat is not None:
            data["csat"] = e.csat.score
        if e.by_requester is not None:  # unknown: not carried (the person's activity)
            data["by_requester"] = e.by_requester
        fact = Fact(id=e.event_id, ident=primary, kind="ticket", ts=ts, src=src, data=data)
        self._links(fact, "support_requester", candidates)
        return [fact]


WEB3_DECODERS = {event: msgspec.json.Decoder(spec) for event, spec in m.WEB3_TRACKS.items()}
TRAITS = msgspec.json.Decoder(m.Traits)


def _object(decoder: msgspec.json.Decoder | None, raw: msgspec.Raw, name: str) -> Any:
    """Check that a raw field is a JSON object, and decode it when c360 reads it."""
    if memoryview(raw)[0] != 123:  # "{"
        raise Reject("invalid_field", f"Expected `object` - at `$.{name}`")
    if decoder is None:
        return None
    try:
        return decoder.decode(raw)
    except msgspec.ValidationError as exc:
        raise Reject("invalid_field", f"{name}: {exc}") from None


def _wallet_soft(raw: str | None) -> str | None:
    if raw is None:
        return None
    try:
        return "wallet:" + normalize_address(raw)
    except IdentifierError:
        return None


# --- records ---
@dataclass(frozen=True, slots=True)
class TopicDecoder:
    decoder: msgspec.json.Decoder
    convert: Callable[[Converter, Any, str], list[Fact]]
    type_of: Callable[[Any], str]


TOPIC_DECODERS: dict[str, TopicDecoder] = {
    "web.events": TopicDecoder(msgspec.json.Decoder(m.WebEvent), Converter.web, lambda e: e.type),
    "forms": TopicDecoder(msgspec.json.Decoder(m.FormResponse), Converter.form, lambda e: "form"),
    "socials": TopicDecoder(
        msgspec.json.Decoder(m.SocialVerification), Converter.social, lambda e: "social"
    ),
    "chain.events": TopicDecoder(
        msgspec.json.Decoder(m.ChainEvent), Converter.chain, lambda e: e.kind
    ),
    "chain.holdings": TopicDecoder(
        msgspec.json.Decoder(m.HoldingSnapshot), Converter.holding, lambda e: "holding"
    ),
    "support": TopicDecoder(
        msgspec.json.Decoder(m.SupportTicketEvent), Converter.ticket, lambda e: "ticket"
    ),
}
_BATCH = msgspec.json.Decoder(list[msgspec.Raw])
MAX_DEPTH = 64
"""How deep an event's JSON may nest (objects and arrays). Real events nest under ten
levels; a decoder recursing through hundreds would hit the interpreter's recursion
limit, whose headroom depends on where it is called from (a worker's agent, a test, the
web collector): checked first, so every process refuses the same events with the same
reason. Where the limit is raised (importing ``eth_account`` raises it to 100,000 for
``py_ecc``), msgspec's decoder recurses until the C stack overflows: a connector checks
a request's body before decoding it (:data:`MAX_BODY_DEPTH`)."""
MAX_BODY_DEPTH = 512
"""How deep a request body may nest before anything decodes it (connectors): deeper
than any event (refused alone, :data:`MAX_DEPTH`) with a batch's envelope around it,
far from where a decoder could overflow the stack."""
_JSON_TOKENS = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"?|[\[\]{},]')
"""A string (to its closing quote, if any: an unterminated one must not make the search
start again from each of its escapes, quadratic), or a bracket or comma."""


def too_deep(raw: bytes, limit: int = MAX_DEPTH) -> bool:
    """Whether the JSON ``raw`` nests deeper than ``limit`` (brackets inside strings do
    not count)."""
    if raw.count(b"[") + raw.count(b"{") <= limit:
        return False  # the usual event: too few brackets to nest that deep
    depth = 0
    for token in _JSON_TOKENS.findall(raw):
        first = token[:1]
        if first in (b"[", b"{"):
            depth += 1
            if depth > limit:
                return True
        elif first in (b"]", b"}"):
            depth -= 1
    return False


def _batch_items(value: bytes) -> list[bytes] | None:
    """The items of a JSON array, split without decoding them (None: not an array that
    ends where it should). For a batch holding an event too deep to decode: the
    others are still applied, and that one refused alone."""
    items: list[bytes] = []
    depth, start = 0, -1
    for token in _JSON_TOKENS.finditer(value):
        char = value[token.start()]
        if char in b"[{":
            depth += 1
            if depth == 1:
                start = token.end()
        elif char in b"]}":
            depth -= 1
            if depth == 0:
                last = value[start : token.start()].strip()
                if last or items:
                    items.append(last)
                return items if not value[token.end() :].strip() else None
        elif char == 0x2C and depth == 1:  # a comma between items
            items.append(value[start : token.start()].strip())
            start = token.end()
    return None


def _not_utf8(err: UnicodeDecodeError) -> str:
    return f"the record is not UTF-8: {err.reason} (byte 0x{err.object[err.start]:02x})"


def _validation_reason(exc: msgspec.ValidationError) -> str:
    text = str(exc)
    if text.startswith("Object missing required field"):
        return "missing_field"
    if text.startswith("Invalid enum value") and text.endswith("at `$.type`"):
        return "unknown_type"
    return "invalid_field"


class Ingest:
    """Decode, validate and normalize input records into facts (see module doc)."""

    def __init__(self, rules: Compiled, *, batch_max: int = 500, record_max: int = 1_000_000):
        self.converter = Converter(rules)
        self.batch_max = batch_max
        self.record_max = record_max

    def record(self, source: str, value: bytes | None) -> Ingested:
        """Everything one input record of topic ``source`` (suffix) became."""
        out = Ingested()
        if value is None:
            out.rejections.append(Rejection("empty", "the record has no value", b""))
            return out
        size = len(value)
        if size > self.record_max:
            out.rejections.append(
                Rejection(
                    "too_large",
                    f"the record is {size} bytes; the limit is {self.record_max}",
                    bytes(value[:4096]),
                    truncated=True,
                    size=size,
                )
            )
            return out
        topic = TOPIC_DECODERS.get(source)
        if topic is None:
            out.rejections.append(Rejection("unknown_topic", f"no ingest for {source}", value))
            return out
        start = value[:1]
        if start in (b" ", b"\t", b"\r", b"\n"):
            start = value.lstrip()[:1]
        if start == b"[":
            try:
                items = _BATCH.decode(value)
            except msgspec.DecodeError as exc:
                out.rejections.append(self._undecodable(value, exc))
                return out
            except UnicodeDecodeError as exc:
                out.rejections.append(Rejection("not_utf8", _not_utf8(exc), value))
                return out
            except RecursionError:  # an item nests too deep even to be skipped
                split = _batch_items(value)
                if split is None:
                    out.rejections.append(_too_deep(value, None))
                    return out
                items = split
            if len(items) > self.batch_max:
                out.rejections.append(
                    Rejection(
                        "batch_too_large",
                        f"the batch holds {len(items)} events; the limit is {self.batch_max}",
                        value,
                    )
                )
                return out
            out.events = len(items)
            for index, raw in enumerate(items):
                self._event(topic, source, bytes(raw), index, out)
        else:
            out.events = 1
            self._event(topic, source, value, None, out)
        return out

    def _undecodable(self, value: bytes, exc: Exception) -> Rejection:
        try:
            value.decode("utf-8")
        except UnicodeDecodeError as err:
            return Rejection(
                "not_utf8", f"the record is not UTF-8: {err.reason} at byte {err.start}", value
            )
        return Rejection("not_json", f"the record is not JSON: {exc}", value)

    def _event(
        self, topic: TopicDecoder, source: str, raw: bytes, index: int | None, out: Ingested
    ) -> None:
        if too_deep(raw):
            out.rejections.append(_too_deep(raw, index))
            return
        try:
            event = topic.decoder.decode(raw)
        except UnicodeDecodeError as exc:  # a string's bytes: msgspec checks them there
            out.rejections.append(Rejection("not_utf8", _not_utf8(exc), raw, index))
            return
        except RecursionError:  # defensive: too_deep refuses these first
            out.rejections.append(_too_deep(raw, index))
            return
        except msgspec.ValidationError as exc:
            reason = (
                "not_an_object"
                if str(exc).startswith("Expected `object`")
                else _validation_reason(exc)
            )
            out.rejections.append(Rejection(reason, str(exc), raw, index))
            return
        except msgspec.DecodeError as exc:
            rejection = self._undecodable(raw, exc)
            rejection.index = index
            out.rejections.append(rejection)
            return
        try:
            facts = topic.convert(self.converter, event, source)
        except Reject as exc:
            out.rejections.append(Rejection(exc.reason, exc.message, raw, index))
            return
        except IdentifierError as exc:  # an address field (a contract, a token) that is none
            out.rejections.append(Rejection("bad_identifier", str(exc), raw, index))
            return
        except (ValueError, TypeError, OverflowError) as exc:  # defensive: never crash the agent
            out.rejections.append(
                Rejection("invalid_field", f"{type(exc).__name__}: {exc}", raw, index)
            )
            return
        out.facts += facts
        by_type = out.accepted_by_type
        kind = topic.type_of(event)
        by_type[kind] = by_type.get(kind, 0) + 1


def _too_deep(raw: bytes, index: int | None) -> Rejection:
    return Rejection("too_deep", f"the event nests deeper than {MAX_DEPTH} levels", raw, index)
