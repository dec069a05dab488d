"""The connector's view of an EVM node: a small interface, a web3.py implementation, retries.

:class:`ChainRpc` is all the connector needs from a node; :class:`Web3Rpc` implements
it with web3.py (an HTTP endpoint, or eth-tester in the tests) and normalizes what
nodes return (hex strings with ``0x``, lower-case addresses, camelCase or snake_case
keys). :class:`RetryingRpc` retries rate limits, timeouts and server errors with
exponential backoff and full jitter; a "block range too large" error is not retried
but raised as :class:`RangeTooLarge` for the backfill to shrink its range.
"""

from __future__ import annotations

import logging
import random
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

log = logging.getLogger(__name__)
T = TypeVar("T")

BALANCE_OF = "0x70a08231"  # balanceOf(address)


# --- normalized chain data ------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Tx:
    hash: str
    index: int
    sender: str
    to: str | None
    value: int


@dataclass(frozen=True, slots=True)
class Block:
    number: int
    hash: str
    parent_hash: str
    timestamp: int
    transactions: tuple[Tx, ...] = ()
    logs_bloom: int | None = None  # the header's 2048-bit logsBloom, None when not given


@dataclass(frozen=True, slots=True)
class Log:
    address: str
    topics: tuple[str, ...]
    data: str
    block_number: int
    block_hash: str
    tx_hash: str
    tx_index: int
    log_index: int
    removed: bool = False


@dataclass(frozen=True, slots=True)
class Receipt:
    tx_hash: str
    block_hash: str
    gas_used: int
    effective_gas_price: int
    status: int


# --- errors -------------------------------------------------------------------------
class RpcError(Exception):
    """An RPC call failed for good (after retries, or an error that retrying cannot fix).

    ``kind`` is what :func:`classify` said of the underlying error.
    """

    kind = "other"

    def __init__(self, message: str, kind: str | None = None) -> None:
        super().__init__(message)
        if kind is not None:
            self.kind = kind

    @property
    def transient(self) -> bool:
        """A rate limit or a timeout: the same call may succeed later."""
        return self.kind in ("rate_limit", "timeout")


class RangeTooLarge(RpcError):
    """The provider refused an eth_getLogs range; ``suggested`` is its hint, when it gave one."""

    kind = "range"

    def __init__(self, message: str, suggested: tuple[int, int] | None = None) -> None:
        super().__init__(message)
        self.suggested = suggested


class BlockMissing(RpcError):
    """The node does not (or no longer) know this block: node lag, or a reorg under way."""

    kind = "missing"


_RANGE_HINTS = (
    "block range",
    "range too large",
    "range is too large",
    "more than 10000 results",
    "query returned more than",
    "response size exceeded",
    "response size should not",
    "exceed maximum block range",
    "too many blocks",
    "logs matched by query exceeds",
    "range limit",
    "exceeds limit",  # Infura: "range 15000 exceeds limit of 10000"
    "is limited to",  # QuickNode, 1rpc: "eth_getLogs is limited to a 10,000 range"
)
_RATE_HINTS = ("rate limit", "too many requests", "capacity", "throttl")
_TIMEOUT_HINTS = ("timeout", "timed out", "temporarily", "busy")
LIMIT_EXCEEDED = -32005  # EIP-1474; Infura also says "query returned more than …" with it
_SUGGESTED = re.compile(r"\[\s*(0x[0-9a-fA-F]+|\d+)\s*,\s*(0x[0-9a-fA-F]+|\d+)\s*\]")


def http_status(exc: BaseException) -> int | None:
    """The HTTP status of a failed request (requests' ``HTTPError``), when there was one."""
    status = getattr(getattr(exc, "response", None), "status_code", None)
    return status if isinstance(status, int) else None


def error_code(exc: BaseException) -> int | None:
    """The JSON-RPC error code of a node's error answer, when there is one."""
    answer = getattr(exc, "rpc_response", None)  # web3's Web3RPCError
    err = answer.get("error") if isinstance(answer, dict) else None
    if err is None and exc.args and isinstance(exc.args[0], dict):
        err = exc.args[0]
    code = err.get("code") if isinstance(err, dict) else None
    return code if isinstance(code, int) else None


def error_text(exc: BaseException) -> str:
    """What a node said: the JSON-RPC error's message, or the exception and the HTTP body."""
    answer = getattr(exc, "rpc_response", None)  # web3's Web3RPCError
    err = answer.get("error") if isinstance(answer, dict) else None
    if err is None and exc.args and isinstance(exc.args[0], dict):
        err = exc.args[0]
    if isinstance(err, dict):
        return str(err.get("message", err))
    text = str(exc)
    body = getattr(getattr(exc, "response", None), "text", None)
    if isinstance(body, str) and body:
        text = f"{text}: {body[:500]}"
    return text


def classify(exc: BaseException) -> str:
    """``range`` (split the range), ``rate_limit``, ``timeout`` (both retried), ``missing`` or
    ``other`` (not retried). Pure: looks at the exception's type, its HTTP status and its
    message, never at digits inside the message (a range of 15000 blocks is no HTTP 500)."""
    if isinstance(exc, RpcError):
        return exc.kind
    if isinstance(exc, TimeoutError | ConnectionError):
        return "timeout"
    status = http_status(exc)
    if status == 429:
        return "rate_limit"
    if status == 408 or (status is not None and status >= 500):
        return "timeout"
    if status == 413:  # the request (or its answer) is too large: QuickNode's eth_getLogs
        return "range"
    name = type(exc).__name__.lower()
    if "timeout" in name or "connectionerror" in name:
        return "timeout"
    text = error_text(exc).lower()
    if any(h in text for h in _RATE_HINTS):
        return "rate_limit"
    if any(h in text for h in _RANGE_HINTS):
        return "range"
    if error_code(exc) == LIMIT_EXCEEDED or "limit exceeded" in text:
        return "rate_limit"  # EIP-1474 "limit exceeded": public BSC/Polygon endpoints' rate limit
    if any(h in text for h in _TIMEOUT_HINTS):
        return "timeout"
    return "other"


HOLDING_FAILURES = ("reverted", "state_unavailable", "rate_limit", "timeout", "other")
_STATE_HINTS = (
    "missing trie node",
    "state is not available",
    "state not available",
    "historical state",
    "pruned",
    "header not found",
)


def holding_failure(exc: BaseException) -> str:
    """Why a balance read failed, one of :data:`HOLDING_FAILURES`: the token's balanceOf
    ``reverted``, the node no longer has that block's state (``state_unavailable``: a
    pruned, non-archive node), a ``rate_limit`` or ``timeout`` past the retries, ``other``."""
    text = error_text(exc).lower()
    if "revert" in text:
        return "reverted"
    if any(h in text for h in _STATE_HINTS):
        return "state_unavailable"
    kind = classify(exc)
    return kind if kind in ("rate_limit", "timeout") else "other"


def suggested_range(message: str) -> tuple[int, int] | None:
    """The range a provider suggests in its error (Infura, Alchemy: ``[0x…, 0x…]``)."""
    m = _SUGGESTED.search(message)
    if m is None:
        return None
    lo, hi = (int(x, 16) if x.startswith("0x") else int(x) for x in m.groups())
    return (lo, hi) if lo <= hi else None


# --- the interface ------------------------------------------------------------------
class ChainRpc(Protocol):
    """What the connector calls on a node (synchronous; the loop runs it in a thread)."""

    def chain_id(self) -> int: ...

    def head(self) -> int: ...

    def block(self, number: int) -> Block:
        """The canonical block at ``number`` with its transactions; BlockMissing if unknown."""
        ...

    def logs(
        self, start: int, end: int, addresses: Sequence[str], topic0s: Sequence[str]
    ) -> list[Log]:
        """Logs of ``addresses`` with one of ``topic0s`` in blocks ``start..end`` (inclusive)."""
        ...

    def block_logs(
        self, block: Block, addresses: Sequence[str], topic0s: Sequence[str]
    ) -> list[Log]:
        """The logs of exactly this block version (EIP-234 ``blockHash`` filter when the
        node has it, else its number: the caller checks every log's block hash)."""
        ...

    def receipt(self, tx_hash: str) -> Receipt: ...

    def balance(self, wallet: str, block: int) -> int: ...

    def token_balance(self, token: str, wallet: str, block: int) -> int: ...


# --- web3.py ------------------------------------------------------------------------
def hex0x(value: Any) -> str:
    """``0x``-prefixed lower-case hex of bytes, HexBytes or a hex string."""
    if isinstance(value, bytes | bytearray):
        return "0x" + bytes(value).hex()
    text = str(value)
    return (text if text.startswith(("0x", "0X")) else "0x" + text).lower()


def _get(d: Any, camel: str, snake: str) -> Any:
    """A field of a node's answer: real nodes say camelCase, eth-tester's txs snake_case."""
    return d[camel] if camel in d else d.get(snake)


def _int(value: Any) -> int:
    """A quantity: web3 formats known keys to int; unknown ones stay ``0x`` hex strings."""
    if isinstance(value, str):
        return int(value, 16) if value.startswith(("0x", "0X")) else int(value)
    return int(value or 0)


def _addr(value: Any) -> str | None:
    """An address, None for a contract creation (``null``; eth-tester says ``""``)."""
    return str(value).lower() if value else None


def _bloom(value: Any) -> int | None:
    """The logsBloom as an integer (bytes or hex; leading zeros may have been dropped)."""
    if value is None or value == "":
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, bytes | bytearray):
        return int.from_bytes(value, "big")
    return int(str(value), 16)


# A node that cannot filter by blockHash (EIP-234) says so in these words; a node that
# can, but does not know the block (yet: a lagging backend), in the others.
_NO_BLOCKHASH_HINTS = (
    "blockhash",  # eth-tester: "unexpected keyword argument 'blockHash'"
    "not supported",
    "unsupported",
    "does not exist/is not available",
    "method not found",
    "invalid param",
    "unknown field",
)
_UNKNOWN_BLOCK_HINTS = (
    "unknown block",
    "header not found",
    "block not found",
    "could not be found",
    "cannot find block",
)


def blockhash_refusal(exc: BaseException) -> str | None:
    """``unsupported`` (no blockHash filter), ``missing`` (block unknown) or None (other)."""
    if isinstance(exc, TypeError):  # eth-tester in process
        return "unsupported"
    from web3.exceptions import MethodUnavailable

    text = error_text(exc).lower()
    if any(h in text for h in _UNKNOWN_BLOCK_HINTS):
        return "missing"
    if isinstance(exc, MethodUnavailable) or any(h in text for h in _NO_BLOCKHASH_HINTS):
        return "unsupported"
    return None


class Web3Rpc:
    """:class:`ChainRpc` on a synchronous ``web3.Web3``."""

    def __init__(self, w3: Any) -> None:
        self.w3 = w3
        self.by_hash = True  # cleared when the node refuses blockHash filters (eth-tester)

    @classmethod
    def http(cls, url: str, timeout: float) -> Web3Rpc:
        from web3 import HTTPProvider, Web3

        # c360 retries itself (RetryingRpc): web3's own retry would multiply the attempts.
        provider = HTTPProvider(
            url, request_kwargs={"timeout": timeout}, exception_retry_configuration=None
        )
        return cls(Web3(provider))

    def chain_id(self) -> int:
        return int(self.w3.eth.chain_id)

    def head(self) -> int:
        return int(self.w3.eth.block_number)

    def block(self, number: int) -> Block:
        from web3.exceptions import BlockNotFound

        try:
            b = self.w3.eth.get_block(number, full_transactions=True)
        except BlockNotFound as exc:
            raise BlockMissing(f"block {number} not found") from exc
        if b is None:
            raise BlockMissing(f"block {number} not found")
        txs = tuple(
            Tx(
                hash=hex0x(t["hash"]),
                index=_int(_get(t, "transactionIndex", "transaction_index")),
                sender=str(t["from"]).lower(),
                to=_addr(t.get("to")),
                value=_int(t.get("value", 0)),
            )
            for t in b["transactions"]
        )
        return Block(
            number=int(b["number"]),
            hash=hex0x(b["hash"]),
            parent_hash=hex0x(b["parentHash"]),
            timestamp=int(b["timestamp"]),
            transactions=txs,
            logs_bloom=_bloom(b.get("logsBloom")),
        )

    def logs(
        self, start: int, end: int, addresses: Sequence[str], topic0s: Sequence[str]
    ) -> list[Log]:
        from web3 import Web3

        params: dict[str, Any] = {
            "fromBlock": start,
            "toBlock": end,
            "address": [Web3.to_checksum_address(a) for a in addresses],
            # 0x strings: eth-tester silently matches nothing for HexBytes topics.
            "topics": [list(topic0s)],
        }
        try:
            raw = self.w3.eth.get_logs(params)
        except Exception as exc:
            if classify(exc) == "range":
                text = error_text(exc)
                raise RangeTooLarge(text, suggested_range(text)) from exc
            raise
        return self._logs(raw)

    def block_logs(
        self, block: Block, addresses: Sequence[str], topic0s: Sequence[str]
    ) -> list[Log]:
        from web3 import Web3

        if self.by_hash:
            params = {
                "blockHash": block.hash,
                "address": [Web3.to_checksum_address(a) for a in addresses],
                "topics": [list(topic0s)],
            }
            try:
                return self._logs(self.w3.eth.get_logs(params))
            except Exception as exc:
                # Only a node that cannot filter by blockHash turns the filter off (for
                # good); one that does not know the block yet (a load-balanced backend
                # behind the others) is asked again later. Rate limits, timeouts and
                # other errors go to the retries and the step's error handling.
                if classify(exc) in ("rate_limit", "timeout") and not isinstance(exc, TypeError):
                    raise
                refusal = blockhash_refusal(exc)
                if refusal == "missing":
                    raise BlockMissing(f"block {block.number} {block.hash}: {exc}") from exc
                if refusal is None:
                    raise
                log.info("no blockHash filter for eth_getLogs (%s); using numbers", exc)
                self.by_hash = False
        return self.logs(block.number, block.number, addresses, topic0s)

    @staticmethod
    def _logs(raw: Any) -> list[Log]:
        return [
            Log(
                address=str(entry["address"]).lower(),
                topics=tuple(hex0x(t) for t in entry["topics"]),
                data=hex0x(entry["data"]),
                block_number=int(entry["blockNumber"]),
                block_hash=hex0x(entry["blockHash"]),
                tx_hash=hex0x(entry["transactionHash"]),
                tx_index=int(entry["transactionIndex"]),
                log_index=int(entry["logIndex"]),
                removed=bool(entry.get("removed", False)),
            )
            for entry in raw
        ]

    def receipt(self, tx_hash: str) -> Receipt:
        from web3.exceptions import TransactionNotFound

        try:
            r = self.w3.eth.get_transaction_receipt(tx_hash)
        except TransactionNotFound as exc:
            raise BlockMissing(f"receipt of {tx_hash} not found") from exc
        price = r.get("effectiveGasPrice")
        if price is None:  # pre-London nodes
            price = self.w3.eth.get_transaction(tx_hash)["gasPrice"]
        return Receipt(
            tx_hash=hex0x(r["transactionHash"]),
            block_hash=hex0x(r["blockHash"]),
            gas_used=int(r["gasUsed"]),
            effective_gas_price=int(price),
            status=int(r.get("status", 1)),
        )

    def balance(self, wallet: str, block: int) -> int:
        from web3 import Web3

        return int(self.w3.eth.get_balance(Web3.to_checksum_address(wallet), block))

    def token_balance(self, token: str, wallet: str, block: int) -> int:
        from web3 import Web3

        data = BALANCE_OF + wallet.lower().removeprefix("0x").rjust(64, "0")
        out = self.w3.eth.call({"to": Web3.to_checksum_address(token), "data": data}, block)
        return int.from_bytes(bytes(out), "big") if out else 0


# --- retries ------------------------------------------------------------------------
@dataclass
class RetryPolicy:
    """Exponential backoff with full jitter: attempt ``n`` waits U(0, min(cap, base·2^n))."""

    retries: int = 8
    base: float = 0.25
    cap: float = 30.0
    sleep: Callable[[float], None] = time.sleep
    rng: random.Random = field(default_factory=random.Random)

    def delay(self, attempt: int) -> float:
        return self.rng.uniform(0, min(self.cap, self.base * (2**attempt)))


class RetryingRpc:
    """Wraps a :class:`ChainRpc`: retries ``rate_limit`` and ``timeout`` errors.

    ``on_error(kind)`` is called for every failed call (for the metrics); ``range``,
    ``missing`` and ``other`` errors are raised at once.
    """

    def __init__(
        self,
        inner: ChainRpc,
        policy: RetryPolicy | None = None,
        on_error: Callable[[str], None] = lambda kind: None,
    ) -> None:
        self.inner = inner
        self.policy = policy or RetryPolicy()
        self.on_error = on_error

    def _call(self, what: str, fn: Callable[..., T], *args: Any) -> T:
        attempt = 0
        while True:
            try:
                return fn(*args)
            except Exception as exc:
                kind = classify(exc)
                if kind == "range" and what != "eth_getLogs":
                    kind = "other"  # only eth_getLogs has a range to shrink
                self.on_error(kind)
                if kind not in ("rate_limit", "timeout") or attempt >= self.policy.retries:
                    if isinstance(exc, RpcError) and exc.kind == kind:
                        raise
                    if kind == "range":
                        text = error_text(exc)
                        raise RangeTooLarge(text, suggested_range(text)) from exc
                    raise RpcError(f"{what} failed ({kind}): {exc}", kind) from exc
                wait = self.policy.delay(attempt)
                log.warning("%s failed (%s: %s); retry %d in %.2fs", what, kind, exc, attempt, wait)
                self.policy.sleep(wait)
                attempt += 1

    def chain_id(self) -> int:
        return self._call("eth_chainId", self.inner.chain_id)

    def head(self) -> int:
        return self._call("eth_blockNumber", self.inner.head)

    def block(self, number: int) -> Block:
        return self._call("eth_getBlockByNumber", self.inner.block, number)

    def logs(
        self, start: int, end: int, addresses: Sequence[str], topic0s: Sequence[str]
    ) -> list[Log]:
        return self._call("eth_getLogs", self.inner.logs, start, end, addresses, topic0s)

    def block_logs(
        self, block: Block, addresses: Sequence[str], topic0s: Sequence[str]
    ) -> list[Log]:
        return self._call("eth_getLogs", self.inner.block_logs, block, addresses, topic0s)

    def receipt(self, tx_hash: str) -> Receipt:
        return self._call("eth_getTransactionReceipt", self.inner.receipt, tx_hash)

    def balance(self, wallet: str, block: int) -> int:
        return self._call("eth_getBalance", self.inner.balance, wallet, block)

    def token_balance(self, token: str, wallet: str, block: int) -> int:
        return self._call("eth_call", self.inner.token_balance, token, wallet, block)
