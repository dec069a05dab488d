"""Reference data (prices and wallet labels): records of the one-partition topics
turned into what the stages use, or a rejection to dead-letter."""

from __future__ import annotations

import msgspec

from stream.contract.inputs import Price, WalletLabels
from stream.core.identifiers import IdentifierError, normalize_address
from stream.core.ingest import Rejection
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


def wallet_label(key: bytes | None, value: bytes | None) -> Label | Rejection:
    """A labels record as a Label message (an empty value deletes), or why not."""
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
        return Label(wallet, labels.chain_id, sorted({x.category for x in labels.labels}))
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        return Rejection("invalid_field", str(exc), value or b"")
    except (IdentifierError, ValueError, UnicodeDecodeError) as exc:
        return Rejection("bad_identifier", f"labels key/address: {exc}", value or key or b"")


def price_entry(key: bytes | None, value: bytes | None) -> tuple[str, list | None] | Rejection:
    """A prices record as (token key, [price_usd, decimals, symbol]) — None deletes — or why not."""
    try:
        if not value:
            chain, token = _key(key)
            return f"{chain}:{token}", None
        price = _price.decode(value)
        token = "native" if price.token == "native" else normalize_address(price.token)
        wrong = _mismatch(key, price.chain_id, token)
        if wrong is not None:
            return Rejection("invalid_field", wrong, value)
        return f"{price.chain_id}:{token}", [price.price_usd, price.decimals, price.symbol]
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        return Rejection("invalid_field", str(exc), value or b"")
    except (IdentifierError, ValueError, UnicodeDecodeError) as exc:
        return Rejection("bad_identifier", f"prices key/token: {exc}", value or key or b"")
