"""The chain connector against a real in-process EVM (eth-tester + py-evm), with web3.py.

Reorgs are made with ``w3.testing.snapshot()`` / ``revert()`` and a different branch.
Events go to an in-memory sink; the broker test is in tests/integration.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter

import pytest

from connectors.chain import checkpoint as cpmod
from connectors.chain.core import DeepReorg
from connectors.chain.decode import TRANSFER_TOPIC
from tests.support.chain import (
    Evm,
    JsonRpcServer,
    MemorySink,
    assert_ingest_accepts,
    caught_up,
    config,
    connector,
    drain,
    http_connector,
    run_until,
)


@pytest.fixture
def evm() -> Evm:
    return Evm()


def ids(events) -> list[str]:
    return [e.event_id for e in events]


async def test_erc20_and_erc721_transfers_are_decoded(evm, tmp_path):
    a = [x.lower() for x in evm.accounts]
    evm.erc20(evm.accounts[0], evm.accounts[1], 10**18)
    evm.mint(evm.accounts[2], 42)
    evm.nft_transfer(evm.accounts[2], evm.accounts[3], 42)
    sink = MemorySink()
    await drain(connector(evm, config(evm, tmp_path), sink))
    logs = sink.chain_events()
    assert [(e.decoded.standard, e.decoded.sender, e.decoded.recipient) for e in logs] == [
        ("erc20", "0x" + "0" * 40, a[0]),  # the mint in the constructor
        ("erc20", a[0], a[1]),
        ("erc721", "0x" + "0" * 40, a[2]),
        ("erc721", a[2], a[3]),
    ]
    assert logs[0].decoded.value == str(10**24) and logs[1].decoded.value == str(10**18)
    assert logs[2].decoded.token_id == logs[3].decoded.token_id == "42"
    assert all(e.kind == "log" and e.op == "upsert" for e in logs)
    assert logs[1].address == evm.token.address.lower()
    assert logs[1].topics[0] == TRANSFER_TOPIC and len(logs[3].topics) == 4
    assert logs[1].tx_from == a[0] and logs[1].tx_to == evm.token.address.lower()
    block = evm.w3.eth.get_block(logs[1].block_number)
    assert logs[1].block_hash == block["hash"].to_0x_hex()
    assert logs[1].block_timestamp == block["timestamp"]
    assert logs[1].event_id == f"{evm.w3.eth.chain_id}:{logs[1].block_hash}:{logs[1].log_index}"
    assert_ingest_accepts(logs)


async def test_native_transfers_fees_and_treasury_revenue(evm, tmp_path):
    acc = evm.accounts
    wallet, treasury = acc[5].lower(), acc[6].lower()
    r1 = evm.send(acc[5], acc[7], 3 * 10**17)  # out of the wallet
    r2 = evm.send(acc[8], acc[5], 10**17)  # into the wallet
    r3 = evm.send(acc[5], acc[6], 5 * 10**16)  # to the treasury: revenue
    evm.erc20(acc[0], acc[6], 777)  # ERC-20 into the treasury: revenue paid by acc[0]
    sink = MemorySink()
    cfg = config(evm, tmp_path, wallets=(wallet,), treasuries=(treasury,))
    await drain(connector(evm, cfg, sink))
    txs = [e for e in sink.chain_events() if e.kind == "tx"]
    # the deploys (by acc[0]) are not the wallet's; the three transfers are
    assert [(e.tx_from, e.tx_to, e.tx_value) for e in txs] == [
        (wallet, acc[7].lower(), str(3 * 10**17)),
        (acc[8].lower(), wallet, str(10**17)),
        (wallet, treasury, str(5 * 10**16)),
    ]
    for e, r in zip(txs, (r1, r2, r3), strict=True):
        assert e.fee_wei == str(r["gasUsed"] * r["effectiveGasPrice"])
        assert e.tx_hash == r["transactionHash"].to_0x_hex()
    assert int(txs[0].fee_wei) == 21000 * r1["effectiveGasPrice"]
    assert txs[0].revenue is None
    assert (txs[2].revenue.payer, txs[2].revenue.token, txs[2].revenue.amount) == (
        wallet,
        "native",
        str(5 * 10**16),
    )
    [paid] = [e for e in sink.chain_events() if e.kind == "log" and e.revenue is not None]
    assert (paid.revenue.payer, paid.revenue.token, paid.revenue.amount) == (
        acc[0].lower(),
        evm.token.address.lower(),
        "777",
    )
    assert_ingest_accepts(sink.chain_events())


async def test_holdings_snapshots_read_native_and_token_balances(evm, tmp_path):
    acc = evm.accounts
    evm.erc20(acc[0], acc[4], 1234)
    sink = MemorySink()
    cfg = config(
        evm,
        tmp_path,
        wallets=(acc[4].lower(),),
        holdings_every=1,
        holdings_tokens=(evm.token.address.lower(),),
    )
    await drain(connector(evm, cfg, sink))
    head = evm.head()
    last = {s.token: s for s in sink.holdings() if s.block_number == head}
    assert last["native"].balance == str(evm.w3.eth.get_balance(acc[4]))
    assert last[evm.token.address.lower()].balance == "1234"
    assert last["native"].observed_at.timestamp() == evm.w3.eth.get_block(head)["timestamp"]
    assert_ingest_accepts(sink.holdings(), topic="chain.holdings")


async def test_a_reorg_retracts_orphaned_events_newest_first_then_emits_the_new_branch(
    evm, tmp_path
):
    acc = evm.accounts
    wallet = acc[1].lower()
    evm.erc20(acc[0], acc[1], 1)
    sink = MemorySink()
    c = connector(evm, config(evm, tmp_path, wallets=(wallet,)), sink)
    await drain(c)
    base = evm.head()
    snap = evm.w3.testing.snapshot()
    # branch A: an ERC-20 transfer, a native transfer, an NFT mint (three blocks)
    evm.erc20(acc[0], acc[1], 2)
    evm.send(acc[1], acc[2], 10**15)
    evm.mint(acc[1], 7)
    await drain(c)
    branch_a = [e for e in sink.chain_events() if e.block_number > base]
    # the ERC-20 log, the wallet's native transfer, the NFT mint's log
    assert [(e.kind, e.block_number) for e in branch_a] == [
        ("log", base + 1),
        ("tx", base + 2),
        ("log", base + 3),
    ]
    assert all(e.op == "upsert" for e in branch_a)
    before = len(sink.delivered)

    evm.w3.testing.revert(snap)
    # branch B: other transactions, one block longer
    evm.erc20(acc[0], acc[3], 5)
    evm.send(acc[1], acc[4], 2 * 10**15)
    evm.mine(2)
    assert evm.head() == base + 4
    await drain(c)

    after = sink.chain_events()[before:]
    retracts = [e for e in after if e.op == "retract"]
    upserts = [e for e in after if e.op == "upsert"]
    assert after[: len(retracts)] == retracts, "retractions come before the new branch"
    assert ids(retracts) == ids(reversed(branch_a)), "newest first, same event ids"
    assert [e.block_number for e in retracts] == sorted(
        (e.block_number for e in retracts), reverse=True
    )
    assert retracts == [
        type(e)(**{**{f: getattr(e, f) for f in e.__struct_fields__}, "op": "retract"})
        for e in reversed(branch_a)
    ], "a retraction carries the upsert's payload"
    canonical = {evm.w3.eth.get_block(n)["hash"].to_0x_hex() for n in range(base + 1, base + 5)}
    assert {e.block_hash for e in upserts} <= canonical
    assert [(e.kind, e.block_number) for e in upserts] == [
        ("log", base + 1),
        ("tx", base + 2),
    ]
    assert upserts[0].decoded.recipient == acc[3].lower()
    assert not set(ids(upserts)) & set(ids(branch_a))
    assert c.metrics.reorgs._value.get() == 1
    assert c.metrics.reorg_depth._value.get() == 3
    # the keys put a retraction in the same partition as its upsert
    keys = {e.event_id: k for _, k, e in sink.delivered}
    assert all(keys[e.event_id] == f"{e.chain_id}:{e.tx_hash}" for e in retracts)
    assert_ingest_accepts(sink.chain_events())


async def test_a_reorg_to_a_shorter_branch_is_detected_when_caught_up(evm, tmp_path):
    acc = evm.accounts
    sink = MemorySink()
    c = connector(evm, config(evm, tmp_path), sink)
    await drain(c)
    snap = evm.w3.testing.snapshot()
    evm.erc20(acc[0], acc[1], 1)
    evm.erc20(acc[0], acc[1], 2)
    await drain(c)
    evm.w3.testing.revert(snap)
    evm.erc20(acc[0], acc[2], 3)  # one block: shorter than the orphaned two
    await drain(c)
    ops = [(e.op, e.decoded.value) for e in sink.chain_events()[-3:]]
    assert ops == [("retract", "2"), ("retract", "1"), ("upsert", "3")]


async def test_a_reorg_deeper_than_the_window_stops_the_connector(evm, tmp_path):
    acc = evm.accounts
    sink = MemorySink()
    c = connector(evm, config(evm, tmp_path, window=4), sink)
    await drain(c)
    snap = evm.w3.testing.snapshot()
    for i in range(6):
        evm.erc20(acc[0], acc[1], i + 1)
    await drain(c)
    evm.w3.testing.revert(snap)
    for i in range(7):
        evm.erc20(acc[0], acc[2], 100 + i)
    with pytest.raises(DeepReorg, match="reorg deeper than the window of 4 blocks"):
        await c.run(asyncio.Event())
    # nothing was retracted, and the checkpoint did not move
    assert all(e.op == "upsert" for e in sink.chain_events())
    cp = cpmod.load(tmp_path / "checkpoint.json")
    assert cp.number == c.next_block - 1 and cp.redo is None


async def test_confirmations_hold_back_the_newest_blocks(evm, tmp_path):
    acc = evm.accounts
    for i in range(3):
        evm.erc20(acc[0], acc[1], i + 1)
    sink = MemorySink()
    c = connector(evm, config(evm, tmp_path, confirmations=2), sink)
    await drain(c)
    assert c.next_block - 1 == evm.head() - 2
    assert [e.decoded.value for e in sink.chain_events()][-1] == "1"


async def reference_ids(evm: Evm, tmp_path, **kw) -> list[str]:
    """The event ids a fresh connector reads from the whole chain."""
    sink = MemorySink()
    await drain(connector(evm, config(evm, tmp_path / "reference", **kw), sink))
    return ids(sink.chain_events())


async def test_a_graceful_stop_and_restart_resumes_with_no_gap_and_no_duplicate(evm, tmp_path):
    acc = evm.accounts
    wallet = acc[1].lower()
    sink = MemorySink()
    cfg = config(evm, tmp_path, wallets=(wallet,), window=4)
    for i in range(5):
        evm.erc20(acc[0], acc[1], i + 1)
    first = connector(evm, cfg, sink)
    stop = asyncio.Event()
    task = asyncio.create_task(first.run(stop))
    deadline = time.monotonic() + 10
    while first.next_block <= evm.head():
        assert time.monotonic() < deadline, "the connector did not catch up"
        await asyncio.sleep(0.01)
    stop.set()  # what SIGTERM does
    await asyncio.wait_for(task, 5)
    assert first.metrics.up.labels("chain")._value.get() == 0
    for i in range(4):
        evm.send(acc[1], acc[2], 10**15 + i)
        evm.erc20(acc[0], acc[1], 10 + i)
    second = connector(evm, cfg, sink)
    await drain(second)
    got = ids(sink.chain_events())
    assert len(got) == len(set(got)), "no duplicate"
    assert got == await reference_ids(evm, tmp_path, wallets=(wallet,), window=4), "no gap"


async def test_a_crash_after_delivery_before_the_checkpoint_redelivers_same_ids(
    evm, tmp_path, monkeypatch
):
    acc = evm.accounts
    for i in range(3):
        evm.erc20(acc[0], acc[1], i + 1)
    sink = MemorySink()
    cfg = config(evm, tmp_path)
    first = connector(evm, cfg, sink)
    await drain(first)
    committed = cpmod.load(tmp_path / "checkpoint.json")
    for i in range(3):
        evm.erc20(acc[0], acc[2], 10 + i)

    real_save = cpmod.save
    saves = []

    def crash_on_commit(path, cp):
        saves.append(cp)
        if cp.redo is None:  # the commit after the acks
            raise SystemExit("killed between produce and checkpoint")
        real_save(path, cp)

    monkeypatch.setattr(cpmod, "save", crash_on_commit)
    with pytest.raises(SystemExit):
        await first.step()
    monkeypatch.setattr(cpmod, "save", real_save)
    assert len(sink.delivered) > len(committed.window)  # the batch did reach "Kafka"
    on_disk = cpmod.load(tmp_path / "checkpoint.json")
    assert on_disk.number == committed.number and on_disk.redo is not None

    second = connector(evm, cfg, sink)
    await drain(second)
    got = ids(sink.chain_events())
    reference = await reference_ids(evm, tmp_path)
    assert set(got) == set(reference), "no gap"
    duplicated = [i for i, n in Counter(got).items() if n > 1]
    assert duplicated, "the interrupted batch was delivered twice"
    for event_id in duplicated:  # a duplicate is the very same event
        same = [e for e in sink.chain_events() if e.event_id == event_id]
        assert all(e == same[0] for e in same)
    assert cpmod.load(tmp_path / "checkpoint.json").redo is None


async def test_a_failed_flush_commits_nothing_and_a_restart_delivers_the_batch(evm, tmp_path):
    acc = evm.accounts
    sink = MemorySink()
    cfg = config(evm, tmp_path)
    first = connector(evm, cfg, sink)
    await drain(first)
    evm.erc20(acc[0], acc[1], 9)
    before = cpmod.load(tmp_path / "checkpoint.json").number
    sink.fail_next_flush = True
    with pytest.raises(ConnectionError):
        await first.step()
    assert cpmod.load(tmp_path / "checkpoint.json").number == before
    await drain(connector(evm, cfg, sink))
    assert ids(sink.chain_events()) == await reference_ids(evm, tmp_path)


async def test_a_batch_orphaned_while_the_connector_was_down_is_retracted(
    evm, tmp_path, monkeypatch
):
    """Delivered, crash before the checkpoint, then a reorg: the redo keeps it undoable."""
    acc = evm.accounts
    sink = MemorySink()
    cfg = config(evm, tmp_path)
    first = connector(evm, cfg, sink)
    await drain(first)
    snap = evm.w3.testing.snapshot()
    evm.erc20(acc[0], acc[1], 41)
    real_save = cpmod.save

    def crash_on_commit(path, cp):
        if cp.redo is None:
            raise SystemExit("killed")
        real_save(path, cp)

    monkeypatch.setattr(cpmod, "save", crash_on_commit)
    with pytest.raises(SystemExit):
        await first.step()
    monkeypatch.setattr(cpmod, "save", real_save)
    orphan = sink.chain_events()[-1]
    assert orphan.decoded.value == "41"
    evm.w3.testing.revert(snap)
    evm.erc20(acc[0], acc[2], 42)
    evm.mine(1)
    await drain(connector(evm, cfg, sink))
    tail = [(e.op, e.decoded.value, e.event_id) for e in sink.chain_events()[-3:]]
    assert tail == [
        ("upsert", "41", orphan.event_id),  # redelivered (same id)
        ("retract", "41", orphan.event_id),  # then undone
        ("upsert", "42", tail[2][2]),
    ]


async def test_a_reorg_while_stopped_longer_than_the_window_is_undone_before_the_backfill(
    evm, tmp_path
):
    """Stopped, a block it delivered is orphaned, and it resumes more than a window behind."""
    acc = evm.accounts
    sink = MemorySink()
    cfg = config(evm, tmp_path, window=4)
    await drain(connector(evm, cfg, sink))
    snap = evm.w3.testing.snapshot()
    evm.erc20(acc[0], acc[1], 41)
    await drain(connector(evm, cfg, sink))
    [orphan] = [e for e in sink.chain_events() if e.decoded.value == "41"]
    evm.w3.testing.revert(snap)
    evm.erc20(acc[0], acc[2], 42)  # the same height on the new branch
    evm.mine(10)  # the restart is more than the window behind: it backfills
    before = len(sink.chain_events())
    c = connector(evm, cfg, sink)
    await drain(c)
    after = [(e.op, e.decoded.value, e.event_id) for e in sink.chain_events()[before:]]
    assert after[0] == ("retract", "41", orphan.event_id)
    assert [(op, value) for op, value, _ in after] == [("retract", "41"), ("upsert", "42")]
    assert c.metrics.reorgs._value.get() == 1
    reference = MemorySink()
    await drain(connector(evm, config(evm, tmp_path / "reference", window=4), reference))
    new_branch = [e for e in reference.chain_events() if e.block_number >= orphan.block_number]
    assert [i for _, _, i in after[1:]] == ids(new_branch), "the new branch, with no gap"


async def test_metrics_follow_the_head_and_count_events(evm, tmp_path):
    evm.erc20(evm.accounts[0], evm.accounts[1], 1)
    sink = MemorySink()
    c = connector(evm, config(evm, tmp_path), sink)
    await drain(c)
    from prometheus_client import generate_latest

    text = generate_latest(c.metrics.registry).decode()
    head = evm.head()
    assert f"c360_chain_head_block {float(head)}" in text
    assert f"c360_chain_processed_block {float(head)}" in text
    assert 'c360_chain_events_total{kind="log"} 2.0' in text
    assert "c360_chain_reorgs_total 0.0" in text
    assert 'c360_chain_rpc_errors_total{kind="rate_limit"} 0.0' in text


QUICKNODE_413 = json.dumps(
    {
        "jsonrpc": "2.0",
        "id": 1,
        "error": {"code": -32614, "message": "eth_getLogs is limited to a 10,000 range"},
    }
)


@pytest.mark.parametrize(
    "refusal",
    [
        ("error", {"code": -32602, "message": "range 15000 exceeds limit of 10000"}),  # Infura
        ("http", 413, QUICKNODE_413),  # QuickNode
        ("error", {"code": -32000, "message": "eth_getLogs is limited to a 1000 blocks range"}),
        ("error", {"code": -32000, "message": "a wording no hint knows"}),
    ],
    ids=["infura", "quicknode-413", "1rpc", "unknown-wording"],
)
async def test_providers_range_refusals_shrink_the_backfill_range(evm, tmp_path, refusal):
    """Over HTTP, a provider refusing eth_getLogs over more than 10 blocks, in its words."""
    evm.mine(40)
    evm.erc20(evm.accounts[0], evm.accounts[1], 5)
    limit = 10

    def hook(method, params):
        if method == "eth_getLogs" and "fromBlock" in params[0]:
            lo, hi = int(params[0]["fromBlock"], 16), int(params[0]["toBlock"], 16)
            if hi - lo + 1 > limit:
                return refusal
        return None

    server = JsonRpcServer(evm, hook)
    sink = MemorySink()
    cfg = config(evm, tmp_path, window=2, range_initial=20, range_max=20)
    try:
        c = http_connector(server, cfg, sink)
        await drain(c)
    finally:
        server.close()
    assert c.ranges.ceiling < 20, "the range shrank"
    assert c.metrics.rpc_errors.labels("timeout")._value.get() == 0, "no retry of a refusal"
    assert ids(sink.chain_events()) == await reference_ids(evm, tmp_path, window=2)


class Eip234Node:
    """A hook for :class:`JsonRpcServer` answering blockHash filters as real nodes do (eth-tester
    has none), with a load-balanced backend one block behind for ``lag_block``: a blockHash
    query answers "unknown block" and a by-number query ``[]``, ``lag_answers`` times."""

    def __init__(self, evm: Evm, by_hash: bool = True, lag_answers: int = 1) -> None:
        self.evm, self.by_hash, self.lag_answers = evm, by_hash, lag_answers
        self.lag_block: int | None = None
        self.served: list[str] = []
        self.server = JsonRpcServer(evm, self.hook)

    def hook(self, method, params):
        if method != "eth_getLogs":
            return None
        query = dict(params[0])
        if "blockHash" in query:
            if not self.by_hash:
                return ("error", {"code": -32602, "message": "invalid params: blockHash"})
            _, block = self.server.evm_call("eth_getBlockByHash", [query["blockHash"], False])
            number = int(block["number"], 16)
            if number == self.lag_block and self.lag_answers > 0:
                self.lag_answers -= 1
                self.served.append("unknown block")
                return ("error", {"code": -32000, "message": "unknown block"})
            del query["blockHash"]
            query["fromBlock"] = query["toBlock"] = hex(number)
            return self.server.evm_call("eth_getLogs", [query])
        if int(query["fromBlock"], 16) == self.lag_block and self.lag_answers > 0:
            self.lag_answers -= 1
            self.served.append("[]")
            return ("result", [])
        return None


@pytest.mark.parametrize("by_hash", [True, False], ids=["blockhash", "by-number"])
async def test_a_backend_behind_loses_no_log_and_keeps_the_blockhash_filter(evm, tmp_path, by_hash):
    node = Eip234Node(evm, by_hash=by_hash, lag_answers=2)
    sink = MemorySink()
    try:
        c = http_connector(node.server, config(evm, tmp_path), sink)
        await drain(c)
        lagging = evm.erc20(evm.accounts[0], evm.accounts[1], 111)
        node.lag_block = lagging["blockNumber"]
        evm.erc20(evm.accounts[0], evm.accounts[1], 222)
        await run_until(c, caught_up(c, evm))  # the loop retries the block the node lacked
    finally:
        node.server.close()
    assert node.served == (["unknown block"] * 2 if by_hash else ["[]"] * 2)
    assert c.rpc.inner.by_hash is by_hash
    assert [e.decoded.value for e in sink.chain_events()][-2:] == ["111", "222"]
    assert ids(sink.chain_events()) == await reference_ids(evm, tmp_path)


LIMIT_EXCEEDED = ("error", {"code": -32005, "message": "limit exceeded"})


def failing(method: str, times: int, answer=LIMIT_EXCEEDED):
    """A hook answering ``method`` with ``answer`` ``times`` times (then the EVM answers)."""
    left = [times]

    def hook(called, params):
        if called == method and left[0] > 0:
            left[0] -= 1
            return answer
        return None

    return hook


@pytest.mark.parametrize(
    ("method", "times", "window"),
    [("eth_getBlockByNumber", 1, 128), ("eth_getLogs", 12, 2), ("eth_getLogs", 1, 128)],
    ids=["follow-block", "backfill-burst", "follow-logs"],
)
async def test_eip1474_limit_exceeded_is_a_rate_limit_not_a_range(
    evm, tmp_path, method, times, window
):
    """Public BSC/Polygon endpoints rate-limit with -32005 "limit exceeded" (HTTP 200)."""
    for i in range(3):
        evm.erc20(evm.accounts[0], evm.accounts[1], i + 1)
    server = JsonRpcServer(evm, failing(method, times))
    sink = MemorySink()
    cfg = config(evm, tmp_path, window=window, range_initial=1000, range_max=1000)
    try:
        c = http_connector(server, cfg, sink, retries=8)
        await run_until(c, caught_up(c, evm))
    finally:
        server.close()
    assert c.metrics.rpc_errors.labels("rate_limit")._value.get() == times
    assert c.metrics.rpc_errors.labels("range")._value.get() == 0
    assert c.ranges.size == 1000, "a rate limit does not shrink the range"
    assert ids(sink.chain_events()) == await reference_ids(evm, tmp_path, window=window)


async def test_a_range_refusal_of_one_followed_block_is_retried(evm, tmp_path):
    evm.erc20(evm.accounts[0], evm.accounts[1], 1)
    refusal = ("error", {"code": -32000, "message": "block range is too large"})
    server = JsonRpcServer(evm, failing("eth_getLogs", 1, refusal))
    sink = MemorySink()
    try:
        c = http_connector(server, config(evm, tmp_path), sink)
        await run_until(c, caught_up(c, evm))
    finally:
        server.close()
    assert c.metrics.rpc_errors.labels("range")._value.get() == 1
    assert ids(sink.chain_events()) == await reference_ids(evm, tmp_path)


REVERT = bytes([0x60, 0x00, 0x80, 0xFD])  # PUSH1 0, DUP1, REVERT: every call reverts


async def test_a_reverting_holdings_token_skips_its_snapshots_not_the_blocks(evm, tmp_path, caplog):
    acc = evm.accounts
    broken = evm.deploy_runtime(REVERT).lower()
    deployed = evm.head()  # before, the address has no code: balanceOf answers nothing (0)
    for i in range(3):
        evm.erc20(acc[0], acc[1], i + 1)
    sink = MemorySink()
    token = evm.token.address.lower()
    cfg = config(
        evm, tmp_path, wallets=(acc[1].lower(),), holdings_every=1, holdings_tokens=(token, broken)
    )
    c = connector(evm, cfg, sink)
    with caplog.at_level("WARNING", logger="connectors.chain.connector"):
        await drain(c)
    assert c.next_block == evm.head() + 1
    assert [e.decoded.value for e in sink.chain_events()][-3:] == ["1", "2", "3"]
    snapped = {(s.token, s.block_number) for s in sink.holdings()}
    blocks = range(evm.head() + 1)
    before = {(broken, n) for n in range(deployed)}
    assert snapped == {(t, n) for t in ("native", token) for n in blocks} | before
    reverted = c.metrics.holdings_failed.labels("reverted")._value.get()
    assert reverted == len(blocks) - deployed
    assert len([r for r in caplog.records if "holdings" in r.getMessage()]) == 1


async def test_holdings_are_read_only_where_a_pruned_node_keeps_state(evm, tmp_path):
    """A non-archive node keeps the state of the last 128 blocks ("missing trie node" below)."""
    evm.mine(300)
    evm.erc20(evm.accounts[0], evm.accounts[1], 7)

    def pruned(method, params):
        if method in ("eth_getBalance", "eth_call") and int(params[-1], 16) <= evm.head() - 128:
            return (
                "error",
                {"code": -32000, "message": "missing trie node ab (path ) state is not available"},
            )
        return None

    server = JsonRpcServer(evm, pruned)
    sink = MemorySink()
    cfg = config(evm, tmp_path, window=256, wallets=(evm.accounts[1].lower(),), holdings_every=10)
    try:
        c = http_connector(server, cfg, sink)
        await run_until(c, caught_up(c, evm))
    finally:
        server.close()
    assert [e.decoded.value for e in sink.chain_events()][-1] == "7"
    head = evm.head()
    recent = {n for n in range(head - 127, head + 1) if n % 10 == 0}
    assert {s.block_number for s in sink.holdings()} == recent
    assert c.metrics.holdings_failed.labels("state_unavailable")._value.get() == 0


async def test_a_reorg_of_the_first_block_of_a_fresh_start_is_undone(evm, tmp_path):
    acc = evm.accounts
    evm.mine(5)
    snap = evm.w3.testing.snapshot()
    evm.erc20(acc[0], acc[1], 41)
    start = evm.head()
    sink = MemorySink()
    cfg = config(evm, tmp_path, start_block=start)
    c = connector(evm, cfg, sink)
    await drain(c)
    assert [(e.op, e.decoded.value) for e in sink.chain_events()] == [("upsert", "41")]
    evm.w3.testing.revert(snap)
    evm.erc20(acc[0], acc[2], 42)  # a one-block reorg of the first block read
    evm.mine(1)
    await drain(c)
    assert [(e.op, e.decoded.value) for e in sink.chain_events()] == [
        ("upsert", "41"),
        ("retract", "41"),
        ("upsert", "42"),
    ]
    assert c.metrics.reorgs._value.get() == 1


async def test_a_log_over_the_contracts_data_limit_is_emitted_without_its_data(evm, tmp_path):
    """A 100,001-byte log in the window made the checkpoint unreadable: no restart."""
    emitter = evm.deploy_emitter(1)
    evm.emit(emitter, [TRANSFER_TOPIC], b"\x01" * 100_001)
    evm.emit(emitter, [TRANSFER_TOPIC], b"\x02" * 32)
    sink = MemorySink()
    cfg = config(evm, tmp_path, contracts=(emitter.lower(),))
    c = connector(evm, cfg, sink)
    await drain(c)
    big, small = sink.chain_events()
    assert big.data is None and small.data == "0x" + "02" * 32
    assert c.metrics.unfit_events.labels("data_too_large")._value.get() == 1
    assert_ingest_accepts(sink.chain_events())
    again = connector(evm, cfg, MemorySink())
    await again.start()  # the checkpoint is readable
    assert again.next_block == c.next_block


async def test_a_backend_one_block_behind_is_no_reorg(evm, tmp_path):
    """A load-balanced RPC answers twice from a backend one block behind: eth_blockNumber
    N-1 and no block N. Nothing is retracted, no reorg counted."""
    lag = {"head": None, "misses": 0}

    def behind(method, params):
        if lag["head"] is None or lag["misses"] >= 2:
            return None
        if method == "eth_blockNumber":
            return ("result", hex(lag["head"] - 1))
        if method == "eth_getBlockByNumber" and int(params[0], 16) == lag["head"]:
            lag["misses"] += 1
            return ("result", None)
        return None

    evm.erc20(evm.accounts[0], evm.accounts[1], 5)
    server = JsonRpcServer(evm, behind)
    sink = MemorySink()
    try:
        c = http_connector(server, config(evm, tmp_path), sink)
        await drain(c)
        delivered = len(sink.delivered)
        lag["head"] = evm.head()
        await run_until(c, lambda: lag["misses"] >= 2 and server.calls[-1] == "eth_blockNumber")
    finally:
        server.close()
    assert len(sink.delivered) == delivered, "nothing retracted nor emitted again"
    assert c.metrics.reorgs._value.get() == 0
    assert c.next_block == evm.head() + 1
