"""Reference data (prices and wallet labels): records of the one-partition topics
turned into what the stages use, or a rejection to dead-letter."""

from __future__ import annotations

from collections.abc import MutableMapping
from datetime import datetime
from typing import Any, NamedTuple

import msgspec

from stream.contract.inputs import Price, WalletLabels
from stream.core.identifiers import IdentifierError, normalize_address
from stream.core.ingest import Reject, Rejection, in_range, ms
from stream.core.messages import Label

_labels = msgspec.json.Decoder(WalletLabels)
_price = msgspec.json.Decoder(Price)


def _key(key: bytes | None) -> tuple[int, str]:
    """chain_id:address (or chain_id:native) of a record key."""
    chain, _, address = (key or b"").decode().partition(":")
    token = "native" if address == "native" else normalize_address(address)
    return int(chain), token


def _mismatch(key: bytes | None, chain: int, address: str) -> str | None:
    """Why a record's key is not its value's ``chain:address``, byte for byte, if it
    is not.

    The topics are compacted by the key's bytes and a deletion names only the key: a
    value filed under another spelling of its key (a checksummed address, ``01:``, a
    space) would be kept by compaction beside the canonical key's records, and a
    deletion under the canonical key could never remove it for good."""
    expected = f"{chain}:{address}"
    if key == expected.encode():
        return None
    found = (key or b"").decode(errors="replace")
    return f"the record key {found!r} is not {expected!r} (the value's, lower-case)"


AHEAD_MS = 3_600_000
"""How far ahead of the caller's clock a reference record may be dated (``latest``)."""


def _dated(dt: datetime, field: str, latest: int | None) -> int:
    """``dt`` in ms, or a refusal: outside 2000 to 2100 (as event times), or after
    ``latest`` (the caller's clock + :data:`AHEAD_MS`; None: not checked). A record
    dated ahead would hold its key until then: every later record would be older."""
    at = in_range(ms(dt), field)
    if latest is not None and at > latest:
        raise Reject(
            "out_of_range",
            f"{field} is {dt.isoformat()}: more than an hour ahead of this worker's clock "
            "(it would hold its key until then)",
        )
    return at


def wallet_label(
    key: bytes | None, value: bytes | None, latest: int | None = None
) -> Label | Rejection:
    """A labels record as a Label message (an empty value deletes), or why not
    (``latest``: see :func:`_dated`)."""
    try:
        if not value:
            chain, address = _key(key)
            return Label("wallet:" + address, chain, [])
        labels = _labels.decode(value)
        address = normalize_address(labels.address)
        wrong = _mismatch(key, labels.chain_id, address)
        if wrong is not None:
            return Rejection("invalid_field", wrong, value)
        wallet = "wallet:" + address
        at = 0 if labels.updated_at is None else _dated(labels.updated_at, "updated_at", latest)
        return Label(wallet, labels.chain_id, sorted({x.category for x in labels.labels}), at)
    except Reject as exc:
        return Rejection(exc.reason, exc.message, value or b"")
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        return Rejection("invalid_field", str(exc), value or b"")
    except (IdentifierError, ValueError, UnicodeDecodeError) as exc:
        return Rejection("bad_identifier", f"labels key/address: {exc}", value or key or b"")


class Quote(NamedTuple):
    """A prices record: ``token`` (``chain:token``), ``value`` [price_usd, decimals,
    symbol] (None: the token's price is deleted) and ``at``, the quote's timestamp (ms;
    0 for a deletion)."""

    token: str
    value: list | None
    at: int

    def held(self) -> list | None:
        """What the prices table holds for it: the value and the quote's time."""
        return None if self.value is None else [*self.value, self.at]


def price_entry(
    key: bytes | None, value: bytes | None, latest: int | None = None
) -> Quote | Rejection:
    """A prices record as a Quote (an empty value deletes), or why not (``latest``: see
    :func:`_dated`)."""
    try:
        if not value:
            chain, token = _key(key)
            return Quote(f"{chain}:{token}", None, 0)
        price = _price.decode(value)
        token = "native" if price.token == "native" else normalize_address(price.token)
        wrong = _mismatch(key, price.chain_id, token)
        if wrong is not None:
            return Rejection("invalid_field", wrong, value)
        quoted = [price.price_usd, price.decimals, price.symbol]
        at = _dated(price.timestamp, "timestamp", latest)
        return Quote(f"{price.chain_id}:{token}", quoted, at)
    except Reject as exc:
        return Rejection(exc.reason, exc.message, value or b"")
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        return Rejection("invalid_field", str(exc), value or b"")
    except (IdentifierError, ValueError, UnicodeDecodeError) as exc:
        return Rejection("bad_identifier", f"prices key/token: {exc}", value or key or b"")


def label_supersedes(label: Label, held_at: int | None) -> bool:
    """Whether a labels record replaces what is held for its wallet on its chain, whose
    ``updated_at`` was ``held_at`` (None: undated or nothing held): an undated record
    always (a deletion by an empty value, a provider that sends no time); a dated one
    unless the one held is newer. As for prices (:func:`supersedes`): a provider that
    backfills can send an older record after a newer one, and an old ``exchange``
    label applied again would block the wallet and split its person."""
    return not label.at or held_at is None or label.at >= held_at


def date_label(dated: dict[str, int], label: Label) -> bool:
    """Apply ``label``'s time to ``dated`` (``{chain: updated_at}`` of the records applied
    for its wallet) when it supersedes the one held (:func:`label_supersedes`): True, and
    an undated record forgets the time held; False, a stale record, left unchanged."""
    chain = str(label.chain)
    if not label_supersedes(label, dated.get(chain)):
        return False
    if label.at:
        dated[chain] = label.at
    else:
        dated.pop(chain, None)
    return True


def apply_quote(table: MutableMapping[str, Any], quote: Quote) -> tuple[list | None, bool]:
    """Apply ``quote`` to a prices ``table`` (token -> :meth:`Quote.held`): (the price the
    profile partitions get, whether it was stale). A stale quote changes nothing and
    the price held goes on in its place: the topic is compacted, so an older quote that
    came after the newer is the token's last record, the one ``c360 resend`` produces."""
    held = table.get(quote.token)
    if not supersedes(quote, held):
        return held[:3], True
    if quote.value is None:
        table.pop(quote.token, None)
    else:
        table[quote.token] = quote.held()
    return quote.value, False


def supersedes(quote: Quote, held: list | None) -> bool:
    """Whether ``quote`` replaces what the prices table holds for its token (``held``,
    :meth:`Quote.held`): a deletion always, a price unless the one held is newer by the
    quotes' timestamps. The topic brings a token's quotes in the order they were
    produced, and a feed that backfills, or a second source, can produce an older
    quote after a newer one: the newer is kept. An equal time replaces (a record
    applied again after a crash, a resend). A value held without a time (written
    before c360 kept one) is replaced."""
    if quote.value is None or held is None or len(held) < 4:
        return True
    return quote.at >= held[3]
