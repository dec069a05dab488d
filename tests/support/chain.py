"""A real in-process EVM (eth-tester + py-evm) with the fixture contracts, and an in-memory sink.

The contracts in ``tests/fixtures/chain/`` were compiled once with solc-js
(``compile.js``); ``artifacts.json`` holds their ABI and bytecode, so no node is needed.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec

from connectors.chain.config import ChainConfig
from connectors.chain.connector import ChainConnector
from connectors.chain.metrics import ChainMetrics
from connectors.chain.rpc import RetryingRpc, RetryPolicy, Web3Rpc
from stream.contract.inputs import ChainEvent
from stream.core.ingest import Ingest
from stream.core.rules import DEFAULT, Compiled

ARTIFACTS = json.loads(
    (Path(__file__).parents[1] / "fixtures" / "chain" / "artifacts.json").read_text()
)["contracts"]


class Evm:
    """eth-tester with an ERC-20 ``token`` and an ERC-721 ``nft`` deployed by ``accounts[0]``."""

    def __init__(self) -> None:
        from web3 import Web3

        self.w3 = Web3(Web3.EthereumTesterProvider())
        self.accounts = self.w3.eth.accounts
        self.token = self.deploy("Token", 10**24)
        self.nft = self.deploy("NFT")

    def deploy(self, name: str, *args: Any) -> Any:
        art = ARTIFACTS[name]
        factory = self.w3.eth.contract(abi=art["abi"], bytecode=art["bytecode"])
        receipt = self.wait(factory.constructor(*args).transact({"from": self.accounts[0]}))
        return self.w3.eth.contract(address=receipt["contractAddress"], abi=art["abi"])

    def deploy_runtime(self, runtime: bytes) -> str:
        """Deploy hand-assembled EVM ``runtime`` code (< 256 bytes); its address."""
        n = len(runtime)
        # CODECOPY(0, 12, n); RETURN(0, n): the 12-byte init code returns the runtime
        init = bytes([0x60, n, 0x60, 12, 0x60, 0x00, 0x39, 0x60, n, 0x60, 0x00, 0xF3])
        tx = {"from": self.accounts[0], "data": "0x" + (init + runtime).hex(), "gas": 3_000_000}
        return self.wait(self.w3.eth.send_transaction(tx))["contractAddress"]

    def deploy_emitter(self, topics: int) -> str:
        """A contract that emits one log per call: ``topics`` 32-byte words of calldata as
        its topics (LOG0..LOG4), the rest as its data."""
        code = bytes([0x36, 0x60, 0x00, 0x60, 0x00, 0x37])  # CALLDATACOPY(0, 0, CALLDATASIZE)
        for i in reversed(range(topics)):
            code += bytes([0x60, 32 * i, 0x51])  # MLOAD(32 i): the i-th topic
        code += bytes([0x60, 32 * topics, 0x36, 0x03])  # size: CALLDATASIZE - 32 topics
        code += bytes([0x60, 32 * topics])  # offset: 32 topics
        code += bytes([0xA0 + topics, 0x00])  # LOGn, STOP
        return self.deploy_runtime(code)

    def emit(self, emitter: str, topics: list[str], data: bytes = b"") -> Any:
        """Have ``emitter`` (:meth:`deploy_emitter`) emit a log with these topics and data."""
        body = b"".join(bytes.fromhex(t.removeprefix("0x").rjust(64, "0")) for t in topics)
        tx = {"from": self.accounts[0], "to": emitter, "data": "0x" + (body + data).hex()}
        return self.wait(self.w3.eth.send_transaction({**tx, "gas": 5_000_000}))

    def wait(self, tx_hash: Any) -> Any:
        return self.w3.eth.wait_for_transaction_receipt(tx_hash)

    def send(self, sender: str, to: str, value: int) -> Any:
        return self.wait(self.w3.eth.send_transaction({"from": sender, "to": to, "value": value}))

    def erc20(self, sender: str, to: str, value: int) -> Any:
        return self.wait(self.token.functions.transfer(to, value).transact({"from": sender}))

    def mint(self, to: str, token_id: int) -> Any:
        fn = self.nft.functions.mint(to, token_id)
        return self.wait(fn.transact({"from": self.accounts[0]}))

    def nft_transfer(self, sender: str, to: str, token_id: int) -> Any:
        fn = self.nft.functions.transferFrom(sender, to, token_id)
        return self.wait(fn.transact({"from": sender}))

    def head(self) -> int:
        return self.w3.eth.block_number

    def mine(self, n: int = 1) -> None:
        self.w3.testing.mine(n)

    def rpc(self) -> Web3Rpc:
        return Web3Rpc(self.w3)


@dataclass
class MemorySink:
    """A stand-in for BatchProducer: ``flush`` "delivers" the buffer into ``delivered``.

    ``fail_next_flush`` makes the next flush raise before delivering anything.
    """

    delivered: list[tuple[str, str, Any]] = field(default_factory=list)
    pending: list[tuple[str, str, Any]] = field(default_factory=list)
    fail_next_flush: bool = False

    def add(self, spec: Any, key: str, event: Any) -> None:
        self.pending.append((spec.suffix, key, event))

    async def flush(self) -> int:
        if self.fail_next_flush:
            self.fail_next_flush = False
            self.pending.clear()
            raise ConnectionError("broker unreachable (simulated)")
        n = len(self.pending)
        self.delivered.extend(self.pending)
        self.pending.clear()
        return n

    def chain_events(self) -> list[ChainEvent]:
        return [e for topic, _, e in self.delivered if topic == "chain.events"]

    def holdings(self) -> list[Any]:
        return [e for topic, _, e in self.delivered if topic == "chain.holdings"]


def config(evm: Evm, tmp_path: Path, **kw: Any) -> ChainConfig:
    """A config reading both fixture contracts; ``kw`` overrides (small windows allowed)."""
    values: dict[str, Any] = {
        "contracts": (evm.token.address, evm.nft.address),
        "window": 128,
        "checkpoint_file": str(tmp_path / "checkpoint.json"),
        "poll_interval": 0.05,
    }
    values.update(kw)
    return ChainConfig(**values)


def connector(evm: Evm, cfg: ChainConfig, sink: Any) -> ChainConnector:
    return ChainConnector(cfg, evm.rpc(), sink)


def http_connector(
    server: JsonRpcServer, cfg: ChainConfig, sink: Any, retries: int = 3
) -> ChainConnector:
    """A connector as in production: web3's HTTPProvider, the retries (no waits), metrics."""
    metrics = ChainMetrics()
    policy = RetryPolicy(retries=retries, base=0.001, sleep=lambda seconds: None)
    rpc = RetryingRpc(
        Web3Rpc.http(server.url, 5.0),
        policy,
        on_error=lambda kind: metrics.rpc_errors.labels(kind).inc(),
    )
    return ChainConnector(cfg, rpc, sink, metrics=metrics)


async def drain(c: ChainConnector, limit: int = 1000) -> None:
    """Step until the connector is caught up with the node's head."""
    for _ in range(limit):
        if not await c.step():
            return
    raise AssertionError("the connector did not catch up")


async def run_until(c: ChainConnector, done: Callable[[], bool], timeout: float = 10.0) -> None:
    """Run the connector's loop (its error handling, its polls) until ``done()``; then stop it.

    Raises what the loop raised, or AssertionError when ``done()`` is not true in time.
    """
    import asyncio
    import time

    stop = asyncio.Event()
    task = asyncio.create_task(c.run(stop))
    deadline = time.monotonic() + timeout
    try:
        while not done():
            if task.done():
                task.result()  # raises the loop's error
                raise AssertionError("the connector's loop ended")
            assert time.monotonic() < deadline, "the condition did not hold in time"
            await asyncio.sleep(0.01)
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)


def caught_up(c: ChainConnector, evm: Evm) -> Callable[[], bool]:
    """Whether ``c`` processed every block of ``evm`` (without confirmations)."""
    return lambda: c.next_block > evm.head()


_ingest = Ingest(Compiled(DEFAULT))
_encode = msgspec.json.Encoder().encode


def assert_ingest_accepts(events: list[Any], topic: str = "chain.events") -> None:
    """Every event passes the pipeline's ingest validation (as one batched record)."""
    out = _ingest.record(topic, b"[" + b",".join(_encode(e) for e in events) + b"]")
    assert not out.rejections, out.rejections
    assert out.events == len(events)


def _json_value(v: Any) -> Any:
    """A node's answer as JSON-RPC puts it: quantities and bytes as 0x hex."""
    if isinstance(v, bool) or v is None or isinstance(v, str):
        return v
    if isinstance(v, int):
        return hex(v)
    if isinstance(v, bytes | bytearray):
        return "0x" + bytes(v).hex()
    if hasattr(v, "items"):
        return {k: _json_value(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [_json_value(x) for x in v]
    return v


Answer = tuple[Any, ...]
"""A scripted answer: ``("error", {"code": …, "message": …})``, ``("result", value)`` (JSON
as the node would send it) or ``("http", status, body)``."""


class JsonRpcServer:
    """Serves the in-process EVM over HTTP JSON-RPC, for a connector in a subprocess.

    Requests and the test's own chain changes take ``lock`` so they never interleave
    (eth-tester is not thread-safe): mine inside ``with server.lock:``. ``hook(method,
    params)`` may return an :data:`Answer` to answer as a real provider would (its
    errors, a lagging backend), or None to let the EVM answer; ``calls`` lists the
    methods called. ``evm_call(method, params)`` asks the EVM directly (under the lock).
    """

    def __init__(self, evm: Evm, hook: Callable[[str, list], Answer | None] | None = None) -> None:
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        self.lock = threading.Lock()
        self.hook = hook or (lambda method, params: None)
        self.calls: list[str] = []
        call = evm.w3.provider.request_func(evm.w3, evm.w3.middleware_onion)
        server = self

        def evm_call(method: str, params: list) -> Answer:
            try:
                with server.lock:
                    answer = call(method, params)
            except Exception as exc:
                return ("error", {"code": -32000, "message": str(exc)})
            if "error" in answer:
                return ("error", answer["error"])
            return ("result", _json_value(answer["result"]))

        self.evm_call = evm_call

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                method, params = body["method"], body.get("params", [])
                server.calls.append(method)
                answer = server.hook(method, params) or evm_call(method, params)
                status = 200
                if answer[0] == "http":
                    status, data = answer[1], answer[2].encode()
                else:
                    out: dict[str, Any] = {"jsonrpc": "2.0", "id": body.get("id")}
                    out[answer[0]] = answer[1]
                    data = json.dumps(out).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        self.url = f"http://127.0.0.1:{self._server.server_port}"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
