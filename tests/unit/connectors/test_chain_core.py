"""The chain connector's pure core: decoding, the reorg window, adaptive ranges, retries."""

from __future__ import annotations

import random
import re
from itertools import pairwise

import pytest

from connectors.chain.config import ChainConfig
from connectors.chain.connector import ChainConnector
from connectors.chain.core import AdaptiveRange, BlockWindow, DeepReorg, WindowBlock
from connectors.chain.decode import TRANSFER_TOPIC, Scope, decode_transfer, retraction, topic0
from connectors.chain.metrics import ChainMetrics
from connectors.chain.rpc import (
    Block,
    Log,
    RangeTooLarge,
    RetryingRpc,
    RetryPolicy,
    RpcError,
    Tx,
    classify,
    suggested_range,
)
from connectors.envconfig import ConfigError
from tests.support.chain import MemorySink, assert_ingest_accepts

A = "0x" + "a1" * 20
B = "0x" + "b2" * 20
TOKEN = "0x" + "c3" * 20


def word(address: str) -> str:
    return "0x" + address.removeprefix("0x").rjust(64, "0")


def h(n: int, branch: str = "a") -> str:
    return "0x" + branch * 4 + f"{n % 2**200:060x}"


def log_at(block: int, index: int, topics: tuple[str, ...], data: str = "0x") -> Log:
    return Log(TOKEN, topics, data, block, h(block), h(1000 + block), 0, index)


# --- decoding -----------------------------------------------------------------------
def test_transfer_topic_is_keccak_of_the_signature():
    assert topic0("Transfer(address,address,uint256)") == TRANSFER_TOPIC


def test_erc20_and_erc721_transfers_are_told_apart_by_their_topics():
    erc20 = log_at(1, 0, (TRANSFER_TOPIC, word(A), word(B)), "0x" + f"{10**18:064x}")
    erc721 = log_at(1, 1, (TRANSFER_TOPIC, word(A), word(B), "0x" + f"{42:064x}"))
    d20, d721 = decode_transfer(erc20), decode_transfer(erc721)
    assert (d20.standard, d20.sender, d20.recipient, d20.value) == ("erc20", A, B, str(10**18))
    assert (d721.standard, d721.token_id, d721.value) == ("erc721", "42", None)


def test_unknown_shapes_are_passed_raw():
    all_in_data = log_at(1, 0, (TRANSFER_TOPIC,), "0x" + "00" * 96)  # CryptoKitties-style
    other = log_at(1, 1, (topic0("Approval(address,address,uint256)"), word(A), word(B)))
    assert decode_transfer(all_in_data) is None
    assert decode_transfer(other) is None


def test_a_retraction_is_the_same_payload_with_op_retract():
    block = Block(1, h(1), h(0), 1_700_000_000, (Tx(h(1001), 0, A, TOKEN, 0),))
    from connectors.chain.decode import log_event

    upsert = log_event(
        Scope(chain_id=1), block, log_at(1, 0, (TRANSFER_TOPIC, word(A), word(B)), "0x" + "0" * 64)
    )
    undo = retraction(upsert)
    assert undo.op == "retract" and upsert.op == "upsert"
    assert undo.event_id == upsert.event_id == f"1:{h(1)}:0"
    assert_ingest_accepts([upsert, undo])


def test_the_logs_bloom_tells_which_blocks_may_hold_a_watched_log():
    from connectors.chain.decode import bloom_bits, may_have_logs

    bloom = bloom_bits(bytes.fromhex(TOKEN[2:])) | bloom_bits(bytes.fromhex(TRANSFER_TOPIC[2:]))
    assert may_have_logs(bloom, [A, TOKEN], [TRANSFER_TOPIC])
    assert not may_have_logs(bloom, [A], [TRANSFER_TOPIC])
    assert not may_have_logs(bloom, [TOKEN], [topic0("Approval(address,address,uint256)")])
    assert not may_have_logs(0, [TOKEN], [TRANSFER_TOPIC])


def test_blockhash_filter_errors_tell_unsupported_from_unknown_block():
    from connectors.chain.rpc import blockhash_refusal

    assert blockhash_refusal(TypeError("unexpected keyword argument 'blockHash'")) == "unsupported"
    assert blockhash_refusal(ValueError({"code": -32602, "message": "invalid params"})) == (
        "unsupported"
    )
    assert blockhash_refusal(ValueError({"code": -32000, "message": "unknown block"})) == "missing"
    assert blockhash_refusal(ValueError({"code": -32000, "message": "header not found"})) == (
        "missing"
    )
    assert blockhash_refusal(ValueError({"code": -32000, "message": "internal error"})) is None


def test_a_transfer_between_treasuries_is_no_revenue():
    from connectors.chain.decode import log_event, tx_event
    from connectors.chain.rpc import Receipt

    scope = Scope(chain_id=1, treasuries=frozenset({A, B}))
    block = Block(1, h(1), h(0), 1_700_000_000)
    value = "0x" + f"{400:064x}"
    internal = log_event(scope, block, log_at(1, 0, (TRANSFER_TOPIC, word(A), word(B)), value))
    paid = log_event(scope, block, log_at(1, 1, (TRANSFER_TOPIC, word(TOKEN), word(B)), value))
    assert internal.revenue is None
    assert paid.revenue is not None and paid.revenue.payer == TOKEN
    ok = Receipt(h(9), h(1), 21_000, 1, 1)
    assert tx_event(scope, block, Tx(h(9), 0, A, B, 10**17), ok).revenue is None
    assert tx_event(scope, block, Tx(h(9), 0, TOKEN, B, 10**17), ok).revenue.payer == TOKEN


# --- the window ---------------------------------------------------------------------
def window_of(n: int, size: int, branch: str = "a") -> BlockWindow:
    w = BlockWindow(size)
    for i in range(1, n + 1):
        w.push(WindowBlock(i, h(i, branch), h(i - 1, branch)))
    return w


def test_the_window_keeps_the_last_blocks_and_checks_parents():
    w = window_of(10, 4)
    assert [b.number for b in w.blocks()] == [7, 8, 9, 10]
    assert w.extends(11, h(10))
    assert not w.extends(11, h(10, "b"))  # another parent: a reorg
    assert not w.extends(12, h(11))


def test_rollback_retracts_newest_first():
    from connectors.chain.decode import log_event

    w = BlockWindow(8)
    scope = Scope(chain_id=1)
    for i in range(1, 5):
        block = Block(i, h(i), h(i - 1), 1_700_000_000 + i)
        events = [
            log_event(scope, block, log_at(i, k, (TRANSFER_TOPIC, word(A), word(B)), "0x"))
            for k in range(2)
        ]
        w.push(WindowBlock(i, h(i), h(i - 1), events))
    assert w.is_ancestor(2, h(2)) and not w.is_ancestor(3, h(3, "b"))
    undone = w.rollback(2)
    assert [(e.op, e.block_number, e.log_index) for e in undone] == [
        ("retract", 4, 1),
        ("retract", 4, 0),
        ("retract", 3, 1),
        ("retract", 3, 0),
    ]
    assert w.newest.number == 2


def test_an_ancestor_below_the_window_is_a_deep_reorg():
    w = window_of(10, 4)
    with pytest.raises(DeepReorg, match="deeper than the window of 4 blocks") as raised:
        w.is_ancestor(6, h(6))
    # what an operator can do: no older checkpoint is kept
    assert "older checkpoint" not in str(raised.value)
    assert "C360_CHAIN_START_BLOCK at most 7" in str(raised.value)


# --- adaptive ranges ----------------------------------------------------------------
def test_the_range_halves_on_errors_follows_hints_and_grows_on_success():
    r = AdaptiveRange(initial=2000, maximum=5000)
    assert r.next_range(100, 10_000) == (100, 2099)
    assert r.next_range(100, 500) == (100, 500)
    assert r.too_large(2000) and r.size == 1000
    assert r.too_large(1000, suggested=(100, 349)) and r.size == 250
    r.success()
    assert r.size == 375
    for _ in range(20):
        r.success()
    assert r.size == 999  # not again to a size that failed
    for _ in range(r.probe_after):
        r.success()
    assert r.size == 5000  # until it probes again
    one = AdaptiveRange(initial=1, maximum=1)
    assert not one.too_large(1)


def test_provider_range_errors_are_classified_with_their_hints():
    infura = ValueError(
        {
            "code": -32005,
            "message": "query returned more than 10000 results. "
            "Try with this block range [0x1E8480, 0x1E8520].",
        }
    )
    assert classify(infura) == "range"
    assert suggested_range(str(infura)) == (0x1E8480, 0x1E8520)
    assert classify(ValueError("eth_getLogs block range is too large, max 2000")) == "range"
    assert classify(ValueError("429 Too Many Requests")) == "rate_limit"
    assert classify(TimeoutError()) == "timeout"
    assert classify(ValueError("execution reverted")) == "other"
    # providers' other wordings; digits in a message are no HTTP status
    infura_limit = ValueError({"code": -32602, "message": "range 15000 exceeds limit of 10000"})
    assert classify(infura_limit) == "range"
    one_rpc = ValueError(
        {"code": -32000, "message": "eth_getLogs is limited to a 1000 blocks range"}
    )
    assert classify(one_rpc) == "range"
    assert classify(ValueError("nonce 5000 too low")) == "other"
    # EIP-1474 -32005 "limit exceeded" is a rate limit; Infura's -32005 with a range, a range
    assert classify(ValueError({"code": -32005, "message": "limit exceeded"})) == "rate_limit"
    assert classify(ValueError({"code": -32005, "message": "request limit reached"})) == (
        "rate_limit"
    )


class HttpFailure(Exception):
    """requests' HTTPError: the status is on ``response``, the body is not in the message."""

    def __init__(self, status: int, body: str = "") -> None:
        super().__init__(f"{status} Client Error")
        self.response = type("Response", (), {"status_code": status, "text": body})()


def test_http_statuses_classify_errors():
    assert classify(HttpFailure(413, "eth_getLogs is limited to a 10,000 range")) == "range"
    assert classify(HttpFailure(429)) == "rate_limit"
    assert classify(HttpFailure(503)) == "timeout"
    assert classify(HttpFailure(401, "invalid api key")) == "other"


class FakeChain:
    """A synthetic chain of ``n`` blocks with a log every 7th block; getLogs over more than
    ``limit`` blocks fails as a provider would."""

    def __init__(self, n: int = 1000, limit: int = 100) -> None:
        self.n, self.limit = n, limit
        self.log_calls: list[tuple[int, int, bool]] = []

    def chain_id(self) -> int:
        return 1

    def head(self) -> int:
        return self.n

    def block(self, number: int) -> Block:
        return Block(number, h(number), h(number - 1), 1_700_000_000 + number)

    def logs(self, start, end, addresses, topic0s):
        ok = end - start + 1 <= self.limit
        self.log_calls.append((start, end, ok))
        if not ok:
            raise RangeTooLarge(f"block range of {end - start + 1} exceeds {self.limit}")
        data = "0x" + f"{5:064x}"
        return [
            Log(TOKEN, (TRANSFER_TOPIC, word(A), word(B)), data, n, h(n), h(10_000 + n), 0, 0)
            for n in range(start, end + 1)
            if n % 7 == 0
        ]

    def block_logs(self, block, addresses, topic0s):
        return self.logs(block.number, block.number, addresses, topic0s)

    def receipt(self, tx_hash):
        raise AssertionError("no wallets configured")

    def balance(self, wallet, block):
        return 0

    def token_balance(self, token, wallet, block):
        return 0


async def test_backfill_shrinks_on_range_errors_grows_on_success_and_misses_nothing(tmp_path):
    chain = FakeChain(n=1000, limit=100)
    cfg = ChainConfig(
        contracts=(TOKEN,), window=8, range_initial=400, range_max=1000,
        checkpoint_file=str(tmp_path / "cp.json"),
    )  # fmt: skip
    sink = MemorySink()
    metrics = ChainMetrics()
    rpc = RetryingRpc(chain, on_error=lambda kind: metrics.rpc_errors.labels(kind).inc())
    c = ChainConnector(cfg, rpc, sink, metrics=metrics)
    for _ in range(500):
        if not await c.step():
            break
    numbers = [e.block_number for e in sink.chain_events()]
    assert numbers == [n for n in range(0, 1001) if n % 7 == 0]  # no gap, no duplicate
    failed = [e - s + 1 for s, e, ok in chain.log_calls if not ok]
    succeeded = [e - s + 1 for s, e, ok in chain.log_calls if ok]
    assert failed[:2] == [400, 200]
    assert max(succeeded) <= 100
    # it grows after a success: some successful range directly follows a smaller one
    calls = chain.log_calls
    sizes = [e - s + 1 for s, e, _ in calls]
    grew = [i for i in range(1, len(calls)) if calls[i][2] and calls[i - 1][2]]
    assert any(sizes[i] > sizes[i - 1] for i in grew), sizes
    assert c.metrics.rpc_errors.labels("range")._value.get() == len(failed)
    assert c.next_block == 1001
    assert_ingest_accepts(sink.chain_events())


async def test_a_backfill_scanning_transactions_commits_every_few_hundred_blocks(tmp_path):
    """Every block is fetched when wallets are set: the checkpoint (processed_block, which
    C360ChainStalled watches) must not wait for a 10,000-block range."""
    chain = FakeChain(n=1000, limit=10_000)
    cfg = ChainConfig(
        contracts=(TOKEN,), wallets=(A,), window=8, range_initial=1000, range_max=10_000,
        checkpoint_file=str(tmp_path / "cp.json"),
    )  # fmt: skip
    sink = MemorySink()
    c = ChainConnector(cfg, chain, sink)
    processed = [c.next_block - 1]
    more = True
    while more:
        more = await c.step()
        processed.append(c.next_block - 1)
    steps = [b - a for a, b in pairwise(processed)]
    assert max(steps) <= 200  # ChainConnector.scan_batch
    assert processed[-1] == 1000
    assert [e.block_number for e in sink.chain_events()] == [n for n in range(1001) if n % 7 == 0]


async def test_a_range_error_at_one_block_is_fatal(tmp_path):
    chain = FakeChain(n=50, limit=0)
    cfg = ChainConfig(
        contracts=(TOKEN,), window=4, range_initial=4, range_max=8,
        checkpoint_file=str(tmp_path / "cp.json"),
    )  # fmt: skip
    c = ChainConnector(cfg, chain, MemorySink())
    with pytest.raises(RangeTooLarge):
        for _ in range(10):
            await c.step()


async def test_any_lasting_getlogs_error_halves_the_range_and_one_block_is_fatal(tmp_path):
    class Refusing(FakeChain):
        def logs(self, start, end, addresses, topic0s):
            self.log_calls.append((start, end, False))
            raise ValueError({"code": -32000, "message": "a wording no hint knows"})

    chain = Refusing(n=50)
    cfg = ChainConfig(
        contracts=(TOKEN,), window=4, range_initial=8, range_max=8,
        checkpoint_file=str(tmp_path / "cp.json"),
    )  # fmt: skip
    c = ChainConnector(cfg, RetryingRpc(chain), MemorySink())
    with pytest.raises(RangeTooLarge, match="fails even for the single block 0"):
        for _ in range(10):
            await c.step()
    assert [e - s + 1 for s, e, _ in chain.log_calls] == [8, 4, 2, 1]


async def test_a_child_of_another_parent_while_the_node_has_our_block_is_no_reorg(tmp_path, caplog):
    """Backends out of step: block 11 names another parent, yet block 10 is ours."""

    class OutOfStep(FakeChain):
        stale = 1

        def block(self, number):
            if number == 11 and self.stale:
                self.stale -= 1
                return Block(11, h(11, "b"), h(10, "b"), 1_700_000_011)
            return super().block(number)

    chain = OutOfStep(n=10)
    cfg = ChainConfig(contracts=(TOKEN,), window=8, checkpoint_file=str(tmp_path / "cp.json"))
    sink = MemorySink()
    c = ChainConnector(cfg, chain, sink)
    while await c.step():
        pass
    chain.n = 11
    with pytest.raises(RpcError, match="out of step"):  # the loop logs it, asks again later
        await c.step()
    while await c.step():
        pass
    assert c.next_block == 12
    assert c.metrics.reorgs._value.get() == 0
    assert all(e.op == "upsert" for e in sink.chain_events())
    assert "orphaned" not in caplog.text


# --- retries ------------------------------------------------------------------------
class Flaky:
    def __init__(self, errors: list[Exception]) -> None:
        self.errors = errors
        self.calls = 0

    def head(self) -> int:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return 7


def test_rate_limits_and_timeouts_are_retried_with_jittered_exponential_backoff():
    waits: list[float] = []
    kinds: list[str] = []
    inner = Flaky([ValueError("429 Too Many Requests"), TimeoutError(), ValueError("rate limit")])
    policy = RetryPolicy(retries=5, base=0.5, cap=30, sleep=waits.append, rng=random.Random(1))
    rpc = RetryingRpc(inner, policy, on_error=kinds.append)  # type: ignore[arg-type]
    assert rpc.head() == 7
    assert kinds == ["rate_limit", "timeout", "rate_limit"]
    assert len(waits) == 3 and all(0 <= w <= 0.5 * 2**i for i, w in enumerate(waits))


def test_retries_give_up_and_other_errors_are_not_retried():
    waits: list[float] = []
    policy = RetryPolicy(retries=2, base=0.1, sleep=waits.append)
    rpc = RetryingRpc(Flaky([TimeoutError()] * 5), policy)  # type: ignore[arg-type]
    with pytest.raises(RpcError, match="timeout"):
        rpc.head()
    assert len(waits) == 2
    waits.clear()
    rpc = RetryingRpc(Flaky([ValueError("execution reverted")]), policy)  # type: ignore[arg-type]
    with pytest.raises(RpcError, match="other"):
        rpc.head()
    assert waits == []


# --- configuration ------------------------------------------------------------------
def test_config_reads_addresses_and_signatures_from_the_environment():
    cfg = ChainConfig.from_env(
        {
            "C360_CHAIN_CONTRACTS": f"{TOKEN.upper().replace('0X', '0x')}, {TOKEN}",
            "C360_CHAIN_WALLETS": A,
            "C360_CHAIN_EVENTS": "Transfer(address,address,uint256); "
            "Approval(address,address,uint256)",
        }
    )
    assert cfg.contracts == (TOKEN,)
    assert cfg.event_signatures == (
        "Transfer(address,address,uint256)",
        "Approval(address,address,uint256)",
    )
    with pytest.raises(ConfigError, match="below its minimum 128"):
        ChainConfig.from_env({"C360_CHAIN_WINDOW": "64"})
    with pytest.raises(ConfigError, match="not an EVM address"):
        ChainConfig.from_env({"C360_CHAIN_WALLETS": "0x1234"})


@pytest.mark.parametrize(
    ("env", "error"),
    [
        ({"C360_CHAIN_RPC_URL": "wss://key@node.example/ws"}, "scheme: wss; websocket"),
        ({"C360_CHAIN_RPC_URL": "node.example:8545"}, "scheme: none"),
        ({"C360_CHAIN_HOLDINGS_EVERY": "10"}, "C360_CHAIN_WALLETS, which is empty"),
        ({"C360_CHAIN_HOLDINGS_TOKENS": TOKEN}, "set C360_CHAIN_HOLDINGS_EVERY too"),
    ],
)
def test_config_refuses_what_would_read_nothing_or_fail_later(env, error):
    with pytest.raises(ConfigError, match=re.escape(error)) as raised:
        ChainConfig.from_env(env)
    assert "key@" not in str(raised.value)  # an RPC URL may embed an API key
    good = {
        "C360_CHAIN_RPC_URL": "HTTPS://node.example",
        "C360_CHAIN_WALLETS": A,
        "C360_CHAIN_HOLDINGS_EVERY": "10",
        "C360_CHAIN_HOLDINGS_TOKENS": TOKEN,
    }
    ok = ChainConfig.from_env(good)
    assert ok.holdings_tokens == (TOKEN,)


def test_a_checkpoint_path_that_is_a_directory_is_one_clear_error(tmp_path):
    from connectors.chain.checkpoint import CheckpointError, load

    with pytest.raises(CheckpointError, match="cannot read the checkpoint: Is a directory"):
        load(tmp_path)


@pytest.mark.parametrize(
    ("events", "error"),
    [
        ("Transfer(address indexed from, address indexed to, uint256 value)", "names or `indexed`"),
        ("Transfer(address,address,uint)", "canonical: uint256, not uint"),
        ("Transfer(adress,address,uint256)", "unknown ABI type adress"),
        ("Transfer address,address", "not Name(type,type,…)"),
        ("Swap(address,(uint256,bytes33))", "maximum 32 bytes"),
    ],
)
def test_config_refuses_signatures_whose_topic_would_match_nothing(events, error):
    with pytest.raises(ConfigError, match=re.escape(error)) as raised:
        ChainConfig.from_env({"C360_CHAIN_EVENTS": events})
    assert "\n" not in str(raised.value)


def test_config_accepts_canonical_signatures_with_spaces_between_types():
    events = "Transfer(address, address, uint256); Paused(); Swap(address,(uint256,bytes32)[])"
    cfg = ChainConfig.from_env({"C360_CHAIN_EVENTS": events})
    assert cfg.event_signatures[0] == "Transfer(address,address,uint256)"
    assert topic0(cfg.event_signatures[0]) == TRANSFER_TOPIC


def test_config_verifies_the_checksum_of_mixed_case_addresses():
    usdc = "0xA0b86991c6218b36c1d19D4a2e9Eb0cE3606eB48"
    assert ChainConfig.from_env({"C360_CHAIN_CONTRACTS": usdc}).contracts == (usdc.lower(),)
    assert ChainConfig.from_env({"C360_CHAIN_CONTRACTS": usdc.upper().replace("0X", "0x")})
    typo = "0xa0B86991c6218b36c1d19D4a2e9Eb0cE3606eB48"
    with pytest.raises(ConfigError, match="C360_CHAIN_CONTRACTS: bad EIP-55 checksum"):
        ChainConfig.from_env({"C360_CHAIN_CONTRACTS": typo})


def test_config_bounds_what_events_carry():
    with pytest.raises(ConfigError, match="C360_CHAIN_NAME: 241 characters, at most 240"):
        ChainConfig.from_env({"C360_CHAIN_NAME": "x" * 241})
    assert ChainConfig.from_env({"C360_CHAIN_NAME": "x" * 240}).name == "x" * 240
    with pytest.raises(ConfigError, match="C360_CHAIN_CHAIN_ID"):
        ChainConfig.from_env({"C360_CHAIN_CHAIN_ID": str(2**53 + 1)})


def test_an_event_that_breaks_the_contract_is_mended_or_refused():
    from connectors.chain.decode import fit, log_event

    block = Block(1, h(1), h(0), 1_700_000_000)
    ok = log_event(Scope(chain_id=1), block, log_at(1, 0, (TRANSFER_TOPIC,), "0x" + "ab" * 32))
    assert fit(ok) == (ok, None, None)
    big = log_event(Scope(chain_id=1), block, log_at(1, 0, (TRANSFER_TOPIC,), "0x" + "ab" * 10**5))
    fitted, reason, error = fit(big)
    assert (fitted.data, reason) == (None, "data_too_large") and "$.data" in error
    assert fitted.event_id == big.event_id and fitted.topics == big.topics
    broken = log_event(Scope(chain_id=1, source="s" * 300), block, log_at(1, 0, (TRANSFER_TOPIC,)))
    assert fit(broken)[:2] == (None, "invalid")


def test_the_command_refuses_an_incomplete_configuration(monkeypatch, capsys):
    import argparse

    from connectors.chain import cli
    from stream.settings import Settings

    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    for name in [n for n in __import__("os").environ if n.startswith("C360_CHAIN_")]:
        monkeypatch.delenv(name)
    assert cli.run(parser.parse_args([]), Settings.from_env({})) == 2
    assert "C360_CHAIN_RPC_URL" in capsys.readouterr().err
    monkeypatch.setenv("C360_CHAIN_RPC_URL", "http://127.0.0.1:8545")
    assert cli.run(parser.parse_args([]), Settings.from_env({})) == 2
    assert "nothing to read" in capsys.readouterr().err
    assert cli.run(parser.parse_args(["--window", "10"]), Settings.from_env({})) == 2
    assert "C360_CHAIN_WINDOW" in capsys.readouterr().err


def test_http_rate_limits_and_server_errors_are_retried_through_web3():
    """web3's HTTPProvider against a server answering 429, then 503, then the result."""
    import json
    import threading
    from http.server import BaseHTTPRequestHandler, HTTPServer

    from connectors.chain.rpc import Web3Rpc

    answers = [429, 503, 200]

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            status = answers.pop(0)
            payload = {"jsonrpc": "2.0", "id": body["id"], "result": "0x2a"}
            data = json.dumps(payload if status == 200 else {"error": "busy"}).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        kinds: list[str] = []
        waits: list[float] = []
        rpc = RetryingRpc(
            Web3Rpc.http(f"http://127.0.0.1:{server.server_port}", 5.0),
            RetryPolicy(retries=3, base=0.01, sleep=waits.append),
            on_error=kinds.append,
        )
        assert rpc.head() == 42
        assert kinds == ["rate_limit", "timeout"] and len(waits) == 2
    finally:
        server.shutdown()
        server.server_close()


def test_a_signature_written_with_a_tab_reads_as_its_canonical_form():
    cfg = ChainConfig.from_env({"C360_CHAIN_EVENTS": "Foo(address,\taddress, uint256)"})
    assert cfg.event_signatures == ("Foo(address,address,uint256)",)
