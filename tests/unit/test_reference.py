"""Records of the prices and labels topics: what the tables get, or why not."""

from __future__ import annotations

import orjson
import pytest

from stream.core.ingest import Rejection
from stream.core.messages import DECODERS, Label
from stream.core.reference import label_supersedes, price_entry, supersedes, wallet_label

USDC = "0xa0b86991c6218b36c1d19d4a2e9eb0ce3606eb48"
WALLET = "0x28c6c06298d514db089934071355e5743bf21d60"


def price(token: str = USDC, chain: int = 1, at: str = "2026-11-30T12:00:00Z") -> bytes:
    return orjson.dumps(
        {
            "chain_id": chain,
            "token": token,
            "symbol": "USDC",
            "decimals": 6,
            "price_usd": 1.0,
            "timestamp": at,
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
    noon = 1_796_040_000_000  # 2026-11-30T12:00:00Z
    assert price_entry(f"1:{USDC}".encode(), price()) == (f"1:{USDC}", [1.0, 6, "USDC"], noon)
    # the value's address in any case names the same token
    assert price_entry(f"1:{USDC}".encode(), price(USDC.upper().replace("0X", "0x")))[0] == (
        f"1:{USDC}"
    )
    assert price_entry(b"1:native", price("native")) == ("1:native", [1.0, 6, "USDC"], noon)
    assert price_entry(f"1:{USDC}".encode(), b"") == (f"1:{USDC}", None, 0)


def test_a_quote_replaces_the_one_held_unless_that_one_is_newer():
    key = f"1:{USDC}".encode()
    noon = price_entry(key, price())
    later = price_entry(key, price(at="2026-11-30T12:00:00.001Z"))
    earlier = price_entry(key, price(at="2026-11-30T13:00:00+02:00"))  # 11:00 UTC
    assert noon.held() == [1.0, 6, "USDC", noon.at]
    assert supersedes(noon, None)  # nothing held
    assert supersedes(later, noon.held())
    assert supersedes(noon, noon.held())  # the same quote again (a redo, a resend)
    assert not supersedes(earlier, noon.held())
    assert supersedes(earlier, [1.0, 6, "USDC"])  # held before c360 kept the time
    deletion = price_entry(key, b"")
    assert deletion.held() is None and supersedes(deletion, later.held())


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


def test_a_labels_record_replaces_the_one_held_unless_that_one_is_newer():
    key = f"1:{WALLET}".encode()
    dated = wallet_label(key, label())
    assert dated.at == 1_796_040_000_000  # its updated_at, 2026-11-30T12:00:00Z
    undated = wallet_label(key, orjson.dumps({**orjson.loads(label()), "updated_at": None}))
    assert undated.at == 0 and wallet_label(key, b"").at == 0
    assert label_supersedes(dated, None) and label_supersedes(dated, dated.at)
    assert not label_supersedes(dated, dated.at + 1)
    assert label_supersedes(undated, dated.at + 1)  # undated: applies, as a deletion does
    # a record sent by a version without the time decodes as undated
    old = orjson.dumps([["labels:0", 7, [["l", "wallet:" + WALLET, 1, ["exchange"]]]]])
    [(_, _, [decoded])] = DECODERS["link"].decode(old)
    assert decoded == Label("wallet:" + WALLET, 1, ["exchange"], 0)


def test_a_record_dated_more_than_an_hour_ahead_of_the_clock_is_refused():
    # a quote dated 2099 would make every later quote of its token stale until then
    noon = 1_796_040_000_000
    key = f"1:{USDC}".encode()
    assert price_entry(key, price(), latest=noon).at == noon  # at the limit: accepted
    for entry in (
        price_entry(key, price(at="2026-11-30T12:00:00.001Z"), latest=noon),
        wallet_label(f"1:{WALLET}".encode(), label(), latest=noon - 1),
        price_entry(key, price(at="1999-12-31T23:59:59Z")),  # before 2000, as events
    ):
        assert isinstance(entry, Rejection) and entry.reason == "out_of_range", entry
    assert "ahead of this worker's clock" in price_entry(key, price(), latest=0).message
    assert price_entry(key, price(at="2099-01-01T00:00:00Z")).at > noon  # no clock: kept
