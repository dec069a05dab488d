"""Input payloads: what producers send on c360's input topics.

These msgspec structs are the single source of truth of the input contract:
the JSON Schemas in ``schemas/`` are generated from them (``c360 schemas
--write``) and a test proves that both agree and that every example validates.
Decoding with them is validation: a payload that does not fit gets a precise
error (``Expected `str`, got `int` - at `$.userId```).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from msgspec import Meta, Raw, Struct, field

# --- shared field types ---
Timestamp = Annotated[datetime, Meta(tz=True, description="RFC 3339 date-time with a time zone.")]
TEXT_MAX = 1024
SHORT_TEXT_MAX = 256
Text = Annotated[str, Meta(max_length=TEXT_MAX)]
ShortText = Annotated[str, Meta(max_length=SHORT_TEXT_MAX)]
Id = Annotated[str, Meta(min_length=1, max_length=256)]
ADDRESS_PATTERN = r"^0[xX][0-9a-fA-F]{40}$"
HASH32_PATTERN = r"^0x[0-9a-fA-F]{64}$"
HEX_PATTERN = r"^0x([0-9a-fA-F]{2})*$"
Address = Annotated[
    str,
    Meta(
        pattern=ADDRESS_PATTERN,
        description="EVM address; mixed case must carry a valid EIP-55 checksum.",
    ),
]
# On the hot path (chain events), hex formats are checked by ingest with one
# regex per event instead of one per field (msgspec runs a Python regex per
# field): the struct checks the length, the schema states the full pattern.
HotAddress = Annotated[
    str,
    Meta(
        min_length=42,
        max_length=42,
        extra_json_schema={"pattern": ADDRESS_PATTERN},
        description="EVM address; mixed case must carry a valid EIP-55 checksum.",
    ),
]
Hash32 = Annotated[
    str, Meta(min_length=66, max_length=66, extra_json_schema={"pattern": HASH32_PATTERN})
]
HexData = Annotated[str, Meta(max_length=200_000, extra_json_schema={"pattern": HEX_PATTERN})]
ChainId = Annotated[int, Meta(ge=1, le=2**53)]
UINT256_MAX = 2**256 - 1
Uint = (
    Annotated[int, Meta(ge=0, extra_json_schema={"maximum": UINT256_MAX})]
    | Annotated[str, Meta(pattern=r"^[0-9]{1,78}$")]
)
"""Unsigned 256-bit integer: a JSON number of any size, or a decimal string (JavaScript)."""
BlockNumber = Annotated[int, Meta(ge=0)]
JsonObject = Annotated[Raw, Meta(extra_json_schema={"type": "object"})]
"""A JSON object kept as raw bytes: only decoded (into a struct) where c360 reads it."""

Token = Annotated[
    str,
    Meta(
        pattern=r"^(native|0[xX][0-9a-fA-F]{40})$",
        description="Token contract address, or 'native' for the chain's own coin.",
    ),
]


# --- web events (Segment spec) ---
class Campaign(Struct, omit_defaults=True, forbid_unknown_fields=False):
    """UTM parameters (``context.campaign``)."""

    source: ShortText | None = None
    medium: ShortText | None = None
    name: ShortText | None = None
    term: ShortText | None = None
    content: ShortText | None = None


class PageContext(Struct, omit_defaults=True, forbid_unknown_fields=False):
    """``context.page``."""

    url: Text | None = None
    path: Text | None = None
    referrer: Text | None = None
    title: Text | None = None
    search: Text | None = None


class SiweVerdict(Struct, omit_defaults=True, forbid_unknown_fields=False):
    """The collector's verdict on a Sign-In With Ethereum message (set by the collector only)."""

    verified: bool
    address: Address | None = None
    chain_id: ChainId | None = None
    reason: ShortText | None = None


class CollectorContext(Struct, omit_defaults=True, forbid_unknown_fields=False):
    """``context.c360``: set by c360's collector, which strips anything a client sent here.

    ``auth`` says which key the event came with: ``server`` (the product vouches for
    its user id and verified email) or ``browser``. Services that produce to Kafka
    directly are trusted like the collector.
    """

    auth: Literal["server", "browser"] = "browser"
    siwe: SiweVerdict | None = None
    received_at: Timestamp | None = None


class WebContext(Struct, omit_defaults=True, forbid_unknown_fields=False, rename="camel"):
    """``context`` of a web event."""

    campaign: Campaign | None = None
    page: PageContext | None = None
    click_ids: dict[ShortText, ShortText] | None = None
    user_agent: Text | None = None
    ip: ShortText | None = None
    locale: ShortText | None = None
    c360: CollectorContext | None = None


WebEventType = Literal["page", "screen", "track", "identify", "alias", "group"]


class WebEvent(Struct, omit_defaults=True, forbid_unknown_fields=False, rename="camel"):
    """A Segment-compatible web event; Web3 tracks use standard ``event`` names.

    At least one of ``anonymousId`` and ``userId`` is required; ``alias`` needs
    ``previousId`` and ``userId``.
    """

    type: WebEventType
    message_id: Id
    timestamp: Timestamp
    anonymous_id: Id | None = None
    user_id: Id | None = None
    previous_id: Id | None = None
    event: ShortText | None = None
    name: ShortText | None = None
    properties: JsonObject = field(default_factory=lambda: Raw(b"{}"))
    traits: JsonObject = field(default_factory=lambda: Raw(b"{}"))
    context: WebContext | None = None
    sent_at: Timestamp | None = None
    received_at: Timestamp | None = None


# Web3 tracks: ``type: track`` with one of these ``event`` names; their
# ``properties`` must match the struct.
class WalletConnected(Struct, omit_defaults=True, forbid_unknown_fields=False, rename="camel"):
    address: HotAddress
    chain_id: ChainId | None = None
    wallet_provider: ShortText | None = None


class ChainChanged(Struct, omit_defaults=True, forbid_unknown_fields=False, rename="camel"):
    chain_id: ChainId
    previous_chain_id: ChainId | None = None
    address: HotAddress | None = None


class SiweSignIn(Struct, omit_defaults=True, forbid_unknown_fields=False, rename="camel"):
    """A Sign-In With Ethereum (EIP-4361) attempt. Verified only by the collector's verdict."""

    address: HotAddress
    message: Annotated[str, Meta(max_length=4096)]
    signature: HexData
    chain_id: ChainId | None = None


class TransactionEvent(Struct, omit_defaults=True, forbid_unknown_fields=False, rename="camel"):
    tx_hash: Hash32
    chain_id: ChainId
    address: HotAddress | None = None
    value: Uint | None = None


class Traits(Struct, forbid_unknown_fields=False):
    """The traits c360 reads from an identify call."""

    email: Any = None


WEB3_TRACKS: dict[str, type[Struct]] = {
    "Wallet Connected": WalletConnected,
    "Wallet Disconnected": WalletConnected,
    "Chain Changed": ChainChanged,
    "SIWE Sign In": SiweSignIn,
    "Transaction Started": TransactionEvent,
    "Transaction Confirmed": TransactionEvent,
}


# --- forms ---
class Respondent(Struct, omit_defaults=True, forbid_unknown_fields=False):
    """Who answered. Typed fields are asserted evidence: recorded, never merged."""

    anonymous_id: Id | None = None
    user_id: Id | None = None
    wallet: Address | None = None
    email: ShortText | None = None
    x: ShortText | None = None
    discord: ShortText | None = None
    telegram: ShortText | None = None
    github: ShortText | None = None
    farcaster: ShortText | None = None


class Answer(Struct, omit_defaults=True, forbid_unknown_fields=False):
    question_id: Id
    type: ShortText
    value: Any = None


class FormResponse(Struct, omit_defaults=True, forbid_unknown_fields=False):
    """A form response; ``hidden`` carries hidden fields such as UTM parameters."""

    form_id: Id
    response_id: Id
    submitted_at: Timestamp
    respondent: Respondent
    answers: list[Answer] = []
    hidden: dict[ShortText, ShortText] = {}


# --- social verifications ---
SocialPlatform = Literal["x", "discord", "telegram", "github", "farcaster"]


class SocialSubject(Struct, omit_defaults=True, forbid_unknown_fields=False):
    """The account in the product that the social account was verified for."""

    user_id: Id | None = None
    anonymous_id: Id | None = None
    wallet: Address | None = None


class SocialVerification(Struct, omit_defaults=True, forbid_unknown_fields=False):
    """A social account linked to a product account; ``verified`` by OAuth or a signed proof."""

    verification_id: Id
    platform: SocialPlatform
    platform_user_id: Id
    subject: SocialSubject
    occurred_at: Timestamp
    handle: ShortText | None = None
    method: Literal["oauth", "signature", "bot", "manual", "self_reported"] = "oauth"
    verified: bool = False
    revoked: bool = False


# --- chain events ---
class DecodedTransfer(
    Struct,
    omit_defaults=True,
    forbid_unknown_fields=False,
    rename={"sender": "from", "recipient": "to"},
):
    """A decoded Transfer log (``from``, ``to``): ERC-20 carries ``value``, ERC-721 ``token_id``."""

    standard: Literal["erc20", "erc721"]
    sender: HotAddress
    recipient: HotAddress
    value: Uint | None = None
    token_id: Uint | None = None


class Revenue(Struct, omit_defaults=True, forbid_unknown_fields=False):
    """Protocol revenue paid by ``payer`` (the connector's configuration defines it)."""

    payer: HotAddress
    token: Token
    amount: Uint
    kind: Literal["fee_field", "treasury_transfer"] = "treasury_transfer"


class ChainEvent(Struct, omit_defaults=True, forbid_unknown_fields=False):
    """A chain log or transaction, as emitted by the chain connector.

    ``event_id`` is unique per block version (it contains the block hash); a
    ``retract`` carries the same payload as the ``upsert`` it undoes.
    """

    event_id: Id
    op: Literal["upsert", "retract"]
    kind: Literal["log", "tx"]
    chain_id: ChainId
    block_number: BlockNumber
    block_hash: Hash32
    block_timestamp: Annotated[int, Meta(ge=0, description="Unix seconds, from the header.")]
    tx_hash: Hash32
    parent_hash: Hash32 | None = None
    tx_index: Annotated[int, Meta(ge=0)] | None = None
    log_index: Annotated[int, Meta(ge=0)] | None = None
    address: HotAddress | None = None
    topics: list[Hash32] = []
    data: HexData | None = None
    decoded: DecodedTransfer | None = None
    tx_from: HotAddress | None = None
    tx_to: HotAddress | None = None
    tx_value: Uint | None = None
    fee_wei: Uint | None = None
    revenue: Revenue | None = None
    finality: Literal["latest", "safe", "finalized"] = "latest"
    source: ShortText | None = None


class HoldingSnapshot(Struct, omit_defaults=True, forbid_unknown_fields=False):
    """A wallet's raw balance of one token at a block."""

    wallet: HotAddress
    chain_id: ChainId
    token: Token
    balance: Uint
    block_number: BlockNumber
    observed_at: Timestamp


# --- support ---
class Requester(Struct, omit_defaults=True, forbid_unknown_fields=False):
    """Who opened the ticket. Requester fields are asserted evidence."""

    email: ShortText | None = None
    discord: ShortText | None = None
    wallet: Address | None = None
    user_id: Id | None = None
    name: ShortText | None = None


class Csat(Struct, omit_defaults=True, forbid_unknown_fields=False):
    score: Annotated[int, Meta(ge=1, le=5)]
    comment: Text | None = None


class SupportTicketEvent(Struct, omit_defaults=True, forbid_unknown_fields=False):
    """A support ticket created, updated or solved in a help desk."""

    event_id: Id
    system: Literal["zendesk", "intercom", "freshdesk", "helpscout", "other"]
    external_id: Id
    event: Literal["created", "updated", "solved"]
    occurred_at: Timestamp
    status: Literal["new", "open", "pending", "hold", "solved", "closed"]
    requester: Requester
    subject: Text | None = None
    priority: Literal["low", "normal", "high", "urgent"] | None = None
    channel: ShortText | None = None
    tags: list[ShortText] = []
    csat: Csat | None = None
    by_requester: Annotated[
        bool | None,
        Meta(
            description="True: the requester made this change (opened, replied, rated); "
            "False: someone else did (an agent, an automation), which is not the requester's "
            "activity; absent: unknown (counted as the requester's activity)."
        ),
    ] = None


# --- reference data (global tables) ---
class Price(Struct, omit_defaults=True, forbid_unknown_fields=False):
    """A token's USD price. Record key ``chain_id:token``; an empty value deletes."""

    chain_id: ChainId
    token: Token
    symbol: ShortText
    decimals: Annotated[int, Meta(ge=0, le=77)]
    price_usd: Annotated[float, Meta(ge=0)]
    timestamp: Timestamp
    source: ShortText | None = None


LabelCategory = Literal[
    "exchange", "contract", "bridge", "router", "fund", "dao", "sanctioned", "scam", "bot", "other"
]


class Label(Struct, omit_defaults=True, forbid_unknown_fields=False):
    label: ShortText
    category: LabelCategory
    source: ShortText | None = None


class WalletLabels(Struct, omit_defaults=True, forbid_unknown_fields=False):
    """Labels of an address. Record key ``chain_id:address``; an empty value deletes."""

    chain_id: ChainId
    address: Address
    labels: list[Label]
    updated_at: Timestamp | None = None
