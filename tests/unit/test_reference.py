"""Records of the prices and labels topics: what the tables get, or why not."""

from __future__ import annotations

import orjson
import pytest

from stream.core.ingest import Rejection
from stream.core.reference import price_entry, wallet_label

USDC = "0xa0b86991c6218b36c1d19d4a2e9eb0ce3606eb48"
WALLET = "0x28c6c06298d514db089934071355e5743bf21d60"


def price(token: str = USDC, chain: int = 1) -> bytes:
    return orjson.dumps(
        {
            "chain_id": chain,
            "token": token,
            "symbol": "USDC",
            "decimals": 6,
            "price_usd": 1.0,
            "timestamp": "2026-11-30T12:00:00Z",
        }
    )


def label(address: str = WALLET, chain: int = 1) -> bytes:
    return orjson.dumps(
        {
            "chain_id": chain,
            "address": address,
            "updated_at": "2026-11-30T12:00:00Z",
            "labels": [{"label": "Binance 14", "category": "exchange"}],
        }
    )


def test_a_price_is_filed_under_its_token_and_an_empty_value_deletes_its_key():
    assert price_entry(f"1:{USDC}".encode(), price()) == (f"1:{USDC}", [1.0, 6, "USDC"])
    # the value's address in any case names the same token
    assert price_entry(f"1:{USDC}".encode(), price(USDC.upper().replace("0X", "0x")))[0] == (
        f"1:{USDC}"
    )
    assert price_entry(b"1:native", price("native")) == ("1:native", [1.0, 6, "USDC"])
    assert price_entry(f"1:{USDC}".encode(), b"") == (f"1:{USDC}", None)


SPELLINGS = [f"01:{USDC}", f" 1:{USDC}", f"1:{USDC} ", f"1:{USDC.upper().replace('0X', '0x')}"]


@pytest.mark.parametrize(
    "key", [f"1:{WALLET}", f"10:{USDC}", "1:native", f"{USDC}", "", *SPELLINGS], ids=str
)
def test_a_price_under_another_key_is_refused(key):
    # compaction keeps records by key and a deletion names the key: a value filed
    # under another key could never be deleted from the table
    entry = price_entry(key.encode(), price())
    assert isinstance(entry, Rejection), entry
    assert entry.reason in ("invalid_field", "bad_identifier")
    if entry.reason == "invalid_field":
        assert f"1:{USDC}" in entry.message


def test_a_label_under_another_key_is_refused_and_its_own_key_is_kept():
    assert wallet_label(f"1:{WALLET}".encode(), label()).wallet == "wallet:" + WALLET
    wrong = wallet_label(f"1:{USDC}".encode(), label())
    assert isinstance(wrong, Rejection) and wrong.reason == "invalid_field"
    assert wrong.original == label()
    assert wallet_label(f"1:{WALLET}".encode(), b"").categories == []
