"""The chain connector's configuration: environment ``C360_CHAIN_*``, overridden by flags."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from connectors import envconfig
from connectors.envconfig import setting
from stream.contract.inputs import SHORT_TEXT_MAX

SOURCE_PREFIX = "chain-connector/"  # an event's source: this and the name (or chain id)
NAME_MAX = SHORT_TEXT_MAX - len(SOURCE_PREFIX)
MAX_CHAIN_ID = 2**53  # the largest chain id events carry (a JSON-safe integer)
TRANSFER = "Transfer(address,address,uint256)"
_ADDRESS = re.compile(r"^0[xX][0-9a-fA-F]{40}$")
_SIGNATURE = re.compile(r"^([A-Za-z_$][A-Za-z0-9_$]*)\((.*)\)$")
_ABI_BASES = frozenset({"address", "bool", "string", "bytes", "uint", "int", "fixed", "ufixed"})


@dataclass(frozen=True, slots=True)
class ChainConfig:
    """Every knob of ``c360 connect chain``. Build with :meth:`from_env`.

    Addresses are kept lower-case. The minimums (e.g. a window of 128 blocks) are
    enforced on the environment and flags; tests may build smaller configs directly.
    """

    rpc_url: str = setting(
        "C360_CHAIN_RPC_URL",
        "",
        "JSON-RPC endpoint (http(s)://…); it may embed an API key, so it is read from "
        "the environment only.",
        secret=True,
    )
    chain_id: int = setting(
        "C360_CHAIN_CHAIN_ID",
        0,
        "Expected chain id; the connector refuses to run against another chain. 0: take the RPC's.",
        minimum=0,
        maximum=MAX_CHAIN_ID,
    )
    name: str = setting(
        "C360_CHAIN_NAME",
        "",
        f"Short name of the chain (e.g. mainnet), put in each event's source; at most "
        f"{NAME_MAX} characters.",
    )
    contracts: tuple[str, ...] = setting(
        "C360_CHAIN_CONTRACTS",
        (),
        "Contract addresses whose logs are read, comma-separated.",
    )
    events: str = setting(
        "C360_CHAIN_EVENTS",
        TRANSFER,
        "Event signatures to read from the contracts, separated by `;`: canonical types "
        "only, no names nor `indexed` (Transfer is decoded as ERC-20 or ERC-721; other "
        "events are passed raw, with their topics and data).",
    )
    wallets: tuple[str, ...] = setting(
        "C360_CHAIN_WALLETS",
        (),
        "Wallet addresses whose transactions (native transfers and fees) are read, "
        "comma-separated.",
    )
    treasuries: tuple[str, ...] = setting(
        "C360_CHAIN_TREASURIES",
        (),
        "Treasury/fee addresses, comma-separated: a native or ERC-20 transfer into one "
        "is protocol revenue paid by its sender (unless the sender is a treasury too).",
    )
    start_block: int = setting(
        "C360_CHAIN_START_BLOCK",
        0,
        "First block to read when there is no checkpoint.",
        minimum=0,
    )
    confirmations: int = setting(
        "C360_CHAIN_CONFIRMATIONS",
        0,
        "Blocks a block must be buried under before it is read (0: read the head).",
        minimum=0,
    )
    window: int = setting(
        "C360_CHAIN_WINDOW",
        256,
        "Recent blocks whose hashes (and events) are kept to detect and undo reorgs; "
        "a deeper reorg stops the connector.",
        minimum=128,
    )
    checkpoint_file: str = setting(
        "C360_CHAIN_CHECKPOINT_FILE",
        ".c360/chain-checkpoint.json",
        "Checkpoint file (written atomically after every acknowledged flush).",
    )
    range_initial: int = setting(
        "C360_CHAIN_RANGE_INITIAL", 2000, "First eth_getLogs block range of a backfill.", minimum=1
    )
    range_max: int = setting(
        "C360_CHAIN_RANGE_MAX", 10_000, "Largest eth_getLogs block range.", minimum=1
    )
    poll_interval: float = setting(
        "C360_CHAIN_POLL_INTERVAL",
        2.0,
        "Seconds between head polls once caught up.",
        minimum=0.01,
    )
    rpc_retries: int = setting(
        "C360_CHAIN_RPC_RETRIES",
        8,
        "Retries of an RPC call on rate limits, timeouts and server errors.",
        minimum=0,
    )
    rpc_backoff: float = setting(
        "C360_CHAIN_RPC_BACKOFF",
        0.25,
        "First retry delay in seconds; doubles each retry (full jitter), capped at 30 s.",
        minimum=0,
    )
    rpc_timeout: float = setting(
        "C360_CHAIN_RPC_TIMEOUT", 20.0, "Seconds before an RPC request times out.", minimum=0.1
    )
    holdings_every: int = setting(
        "C360_CHAIN_HOLDINGS_EVERY",
        0,
        "Snapshot the wallets' holdings (eth_getBalance, balanceOf of the holdings tokens) "
        "every N blocks while following the head; 0: never.",
        minimum=0,
    )
    holdings_tokens: tuple[str, ...] = setting(
        "C360_CHAIN_HOLDINGS_TOKENS",
        (),
        "ERC-20 contracts whose balanceOf is snapshotted for each wallet, comma-separated.",
    )
    metrics_host: str = setting(
        "C360_CHAIN_METRICS_HOST", "127.0.0.1", "Interface of the /metrics server."
    )
    metrics_port: int = setting(
        "C360_CHAIN_METRICS_PORT",
        9464,
        "Port of the /metrics server (0: no server).",
        minimum=0,
        maximum=65535,
    )

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, flags: Mapping[str, Any] | None = None
    ) -> ChainConfig:
        """Read the environment (default ``os.environ``); flags win."""
        return envconfig.from_env(cls, environ, flags)

    @property
    def event_signatures(self) -> tuple[str, ...]:
        """The configured event signatures, without spaces."""
        return tuple(re.sub(r"\s+", "", p) for p in self.events.split(";") if p.strip())

    def __post_init__(self) -> None:
        from eth_utils import is_checksum_address

        for name in ("contracts", "wallets", "treasuries", "holdings_tokens"):
            values = getattr(self, name)
            env = f"C360_CHAIN_{name.upper()}"
            bad = [a for a in values if not _ADDRESS.match(a)]
            if bad:
                raise envconfig.ConfigError(f"{env}: not an EVM address: {', '.join(bad)}")
            # mixed case is an EIP-55 checksum: a typo in it is a wrong address
            mixed = [a for a in values if a[2:] not in (a[2:].lower(), a[2:].upper())]
            bad = [a for a in mixed if not is_checksum_address(a)]
            if bad:
                raise envconfig.ConfigError(
                    f"{env}: bad EIP-55 checksum (a typo?): {', '.join(bad)}; "
                    "give the checksummed address, or all lower-case"
                )
            object.__setattr__(self, name, tuple(dict.fromkeys(a.lower() for a in values)))
        if not self.event_signatures:
            raise envconfig.ConfigError("C360_CHAIN_EVENTS: no event signature")
        for part in self.events.split(";"):
            if part.strip():
                problem = signature_problem(part.strip())
                if problem is not None:
                    raise envconfig.ConfigError(f"C360_CHAIN_EVENTS: {part.strip()!r}: {problem}")
        if len(self.name) > NAME_MAX:
            raise envconfig.ConfigError(
                f"C360_CHAIN_NAME: {len(self.name)} characters, at most {NAME_MAX}"
            )
        if self.rpc_url and not re.match(r"https?://", self.rpc_url, re.IGNORECASE):
            scheme = self.rpc_url.partition("://")[0] if "://" in self.rpc_url else "none"
            raise envconfig.ConfigError(  # the URL itself may hold an API key: not shown
                f"C360_CHAIN_RPC_URL: an http:// or https:// endpoint is needed (scheme: "
                f"{scheme}; websocket endpoints are not supported)"
            )
        if self.holdings_every and not self.wallets:
            raise envconfig.ConfigError(
                "C360_CHAIN_HOLDINGS_EVERY: holdings are snapshotted for C360_CHAIN_WALLETS, "
                "which is empty"
            )
        if self.holdings_tokens and not self.holdings_every:
            raise envconfig.ConfigError(
                "C360_CHAIN_HOLDINGS_TOKENS: set C360_CHAIN_HOLDINGS_EVERY too (0: no "
                "snapshots are taken)"
            )
        if self.range_max < self.range_initial:
            raise envconfig.ConfigError("C360_CHAIN_RANGE_MAX is below C360_CHAIN_RANGE_INITIAL")
        if self.window < 2:
            raise envconfig.ConfigError("C360_CHAIN_WINDOW must be at least 2")


def signature_problem(signature: str) -> str | None:
    """Why ``signature`` is not a canonical event signature (its topic0 would match no
    log, silently), or None: ``Name(type,…)`` with canonical ABI types, no parameter
    names, no ``indexed``."""
    from eth_abi.grammar import TupleType, parse

    m = _SIGNATURE.match(signature)
    if m is None:
        return "not Name(type,type,…)"
    params = m.group(2)
    if re.search(r"[A-Za-z0-9_\])]\s+[A-Za-z_]", params):
        return (
            "parameter names or `indexed` are not part of a signature: write the types "
            "only, e.g. Transfer(address,address,uint256)"
        )
    params = re.sub(r"\s+", "", params)
    if not params:
        return None
    try:
        parsed = parse(f"({params})")
        parsed.validate()
    except Exception as exc:  # eth_abi: ParseError, ABITypeError, ValueError
        return f"{exc} (types must be canonical: uint256, not uint)"

    def unknown(t: Any) -> list[str]:
        if isinstance(t, TupleType):
            return [u for c in t.components for u in unknown(c)]
        return [] if t.base in _ABI_BASES else [t.base]

    bad = unknown(parsed)
    return f"unknown ABI type {', '.join(bad)}" if bad else None
