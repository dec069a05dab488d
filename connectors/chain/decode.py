"""Pure decoding: logs and transactions of a block into the contract's ``ChainEvent``.

No I/O. ``event_id`` contains the block hash (unique per block version), so a
replay of the same block gives the same ids and a block of another branch new ones:
``{chain_id}:{block_hash}:{log_index}`` for a log, ``{chain_id}:{block_hash}:tx{index}``
for a transaction. A retraction is the upsert's payload with ``op: retract``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import msgspec
from eth_utils import keccak

from connectors.chain.rpc import Block, Log, Receipt, Tx
from stream.contract.inputs import ChainEvent, DecodedTransfer, Revenue

TRANSFER_TOPIC = "0xddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef"
ZERO = "0x" + "0" * 40


def topic0(signature: str) -> str:
    """The topic of an event signature such as ``Transfer(address,address,uint256)``."""
    return "0x" + keccak(text=signature.replace(" ", "")).hex()


def bloom_bits(item: bytes) -> int:
    """The three bits ``item`` sets in a 2048-bit logsBloom (yellow paper, M3:2048)."""
    digest = keccak(item)
    bits = 0
    for i in (0, 2, 4):
        bits |= 1 << (int.from_bytes(digest[i : i + 2], "big") & 2047)
    return bits


def may_have_logs(bloom: int, addresses: Iterable[str], topic0s: Iterable[str]) -> bool:
    """Whether a block with this logsBloom may hold a log of one of ``addresses`` with one of
    ``topic0s`` (False: surely not; True: maybe, blooms have false positives)."""

    def has(item: bytes) -> bool:
        bits = bloom_bits(item)
        return bloom & bits == bits

    return any(has(bytes.fromhex(a.removeprefix("0x"))) for a in addresses) and any(
        has(bytes.fromhex(t.removeprefix("0x"))) for t in topic0s
    )


def _word_address(word: str) -> str | None:
    """The address in a 32-byte topic, or None when the upper bytes are not zero."""
    body = word.removeprefix("0x")
    if len(body) != 64 or body[:24].strip("0"):
        return None
    return "0x" + body[24:]


@dataclass(frozen=True, slots=True)
class Scope:
    """What the connector reads and how it labels it (lower-case addresses)."""

    chain_id: int
    contracts: frozenset[str] = frozenset()
    wallets: frozenset[str] = frozenset()
    treasuries: frozenset[str] = frozenset()
    source: str | None = None

    def wants_tx(self, tx: Tx) -> bool:
        """A transaction from or to a configured wallet, or into a treasury."""
        return (
            tx.sender in self.wallets
            or (tx.to is not None and tx.to in self.wallets)
            or (tx.to is not None and tx.to in self.treasuries)
        )


def decode_transfer(log: Log) -> DecodedTransfer | None:
    """An ERC-20 (3 topics, value in data) or ERC-721 (4 topics, tokenId indexed) Transfer."""
    if not log.topics or log.topics[0] != TRANSFER_TOPIC:
        return None
    sender = _word_address(log.topics[1]) if len(log.topics) > 1 else None
    recipient = _word_address(log.topics[2]) if len(log.topics) > 2 else None
    if sender is None or recipient is None:
        return None
    data = log.data.removeprefix("0x")
    if len(log.topics) == 3 and len(data) == 64:
        return DecodedTransfer("erc20", sender, recipient, value=str(int(data, 16)))
    if len(log.topics) == 4 and data == "":
        token_id = int(log.topics[3].removeprefix("0x") or "0", 16)
        return DecodedTransfer("erc721", sender, recipient, token_id=str(token_id))
    return None  # e.g. CryptoKitties (all in data): passed raw


def log_event(scope: Scope, block: Block, log: Log) -> ChainEvent:
    """The upsert of one log of ``block``."""
    tx = next((t for t in block.transactions if t.hash == log.tx_hash), None)
    decoded = decode_transfer(log)
    revenue = None
    if (
        decoded is not None
        and decoded.standard == "erc20"
        and decoded.recipient in scope.treasuries
        and decoded.sender != ZERO
        and decoded.sender not in scope.treasuries  # moving funds between treasuries
    ):
        revenue = Revenue(payer=decoded.sender, token=log.address, amount=decoded.value or "0")
    return ChainEvent(
        event_id=f"{scope.chain_id}:{block.hash}:{log.log_index}",
        op="upsert",
        kind="log",
        chain_id=scope.chain_id,
        block_number=block.number,
        block_hash=block.hash,
        parent_hash=block.parent_hash,
        block_timestamp=block.timestamp,
        tx_hash=log.tx_hash,
        tx_index=log.tx_index,
        log_index=log.log_index,
        address=log.address,
        topics=list(log.topics),
        data=log.data,
        decoded=decoded,
        tx_from=tx.sender if tx else None,
        tx_to=tx.to if tx else None,
        revenue=revenue,
        source=scope.source,
    )


def tx_event(scope: Scope, block: Block, tx: Tx, receipt: Receipt) -> ChainEvent:
    """The upsert of one wallet transaction: native value and fee (gasUsed * effectiveGasPrice)."""
    revenue = None
    if (
        tx.to is not None
        and tx.to in scope.treasuries
        and tx.sender not in scope.treasuries  # moving funds between treasuries
        and tx.value > 0
        and receipt.status == 1
    ):
        revenue = Revenue(payer=tx.sender, token="native", amount=str(tx.value))
    return ChainEvent(
        event_id=f"{scope.chain_id}:{block.hash}:tx{tx.index}",
        op="upsert",
        kind="tx",
        chain_id=scope.chain_id,
        block_number=block.number,
        block_hash=block.hash,
        parent_hash=block.parent_hash,
        block_timestamp=block.timestamp,
        tx_hash=tx.hash,
        tx_index=tx.index,
        tx_from=tx.sender,
        tx_to=tx.to,
        # a reverted transaction moved no value, but its sender paid the fee
        tx_value=str(tx.value if receipt.status == 1 else 0),
        fee_wei=str(receipt.gas_used * receipt.effective_gas_price),
        revenue=revenue,
        source=scope.source,
    )


def block_events(
    scope: Scope, block: Block, logs: Iterable[Log], receipts: dict[str, Receipt]
) -> list[ChainEvent]:
    """Every upsert of a block in chain order: by transaction, its tx event before its logs.

    ``receipts`` holds the receipt of every transaction :meth:`Scope.wants_tx` selects.
    Raises ValueError when a log belongs to another block version (a reorg under way).
    """
    events: list[tuple[tuple[int, int], ChainEvent]] = []
    for log in logs:
        if log.block_hash != block.hash:
            raise ValueError(
                f"log {log.log_index} of block {block.number} has hash {log.block_hash}, "
                f"the block {block.hash}"
            )
        events.append(((log.tx_index, log.log_index), log_event(scope, block, log)))
    for tx in block.transactions:
        if scope.wants_tx(tx):
            events.append(((tx.index, -1), tx_event(scope, block, tx, receipts[tx.hash])))
    events.sort(key=lambda pair: pair[0])
    return [e for _, e in events]


_contract = msgspec.json.Decoder(ChainEvent)  # decoding with the contract's struct validates
_encode = msgspec.json.Encoder().encode
UNFIT_REASONS = ("data_too_large", "invalid")


def contract_error(event: ChainEvent) -> str | None:
    """Why ``event`` breaks the event contract (``schemas/chain-event.v1.json``), or None."""
    try:
        _contract.decode(_encode(event))
    except msgspec.ValidationError as exc:
        return str(exc)
    return None


def fit(event: ChainEvent) -> tuple[ChainEvent | None, str | None, str | None]:
    """``event`` as it can be emitted, the reason it was altered and the contract's error.

    An event that fits is emitted as is. A log whose data is over the contract's limit
    is emitted without it (like an undecodable log, it is passed on with what it can
    carry: ``data_too_large``). Any other breach cannot be mended: ``(None, "invalid", …)``.
    """
    error = contract_error(event)
    if error is None:
        return event, None, None
    if error.endswith("`$.data`"):
        trimmed = msgspec.structs.replace(event, data=None)
        if contract_error(trimmed) is None:
            return trimmed, "data_too_large", error
    return None, "invalid", error


def retraction(event: ChainEvent) -> ChainEvent:
    """The retraction of an upsert: the same payload and event_id, ``op: retract``."""
    return msgspec.structs.replace(event, op="retract")


def key_of(event: ChainEvent) -> str:
    """The record key of the chain events topic (``chain_id:tx_hash``)."""
    return f"{event.chain_id}:{event.tx_hash}"
