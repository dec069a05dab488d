"""Every Kafka topic c360 reads or writes: the one place that spells a topic name.

A topic is declared once here with its role, its partitioning, whether it is
compacted and what its records hold. Names are ``settings.topic_prefix`` + the
declared suffix; keyed topics have ``settings.partitions`` partitions, and the
topics that feed global state have exactly one.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from stream.settings import Settings


class Role(StrEnum):
    INPUT = "input"
    INTERNAL = "internal"
    OUTPUT = "output"


KEYED = 0  # partitions: settings.partitions
FOREVER = -1  # retention.ms: keep forever
MAX_RECORD_BYTES = 4 * 1024 * 1024
"""The largest record c360 writes or reads (batched records, bulk changelog batches, a
large state row): every topic it creates allows it (``max.message.bytes``), so that a
broker left at Kafka's 1 MB default does not refuse one, which stops the worker, and
again on every restart. The local broker allows it too (ops/kafka)."""


@dataclass(frozen=True, slots=True)
class TopicSpec:
    """A topic as declared: its name suffix, role, partitioning and retention."""

    suffix: str
    role: Role
    key: str
    value: str
    partitions: int = KEYED
    compacted: bool = False
    retention_ms: int | None = None  # None: the broker's default

    def name(self, settings: Settings) -> str:
        return settings.topic_prefix + self.suffix

    def partition_count(self, settings: Settings) -> int:
        return settings.partitions if self.partitions == KEYED else self.partitions

    def configs(self) -> dict[str, str]:
        """Topic configs to create it with."""
        out: dict[str, str] = {"max.message.bytes": str(MAX_RECORD_BYTES)}
        if self.compacted:
            out["cleanup.policy"] = "compact"
        if self.retention_ms is not None:
            out["retention.ms"] = str(self.retention_ms)
        return out


# --- inputs: what producers (our connectors and customers' services) send -----
WEB_EVENTS = TopicSpec(
    "web.events",
    Role.INPUT,
    key="anonymousId or userId",
    value="Segment-compatible web event (page/track/identify/alias, Web3 tracks), or an array",
)
FORMS = TopicSpec("forms", Role.INPUT, key="form_id", value="form response, or an array")
SOCIALS = TopicSpec(
    "socials", Role.INPUT, key="platform:user id", value="social verification, or an array"
)
CHAIN_EVENTS = TopicSpec(
    "chain.events",
    Role.INPUT,
    key="chain_id:tx_hash",
    value="chain log or transaction (op upsert|retract), or an array",
)
HOLDINGS = TopicSpec(
    "chain.holdings", Role.INPUT, key="wallet", value="wallet holdings snapshot, or an array"
)
SUPPORT = TopicSpec(
    "support", Role.INPUT, key="system:external_id", value="support ticket event, or an array"
)
PRICES = TopicSpec(
    "prices",
    Role.INPUT,
    key="chain_id:token",
    value="token price (empty value deletes)",
    partitions=1,
    compacted=True,
)
LABELS = TopicSpec(
    "labels",
    Role.INPUT,
    key="chain_id:address",
    value="wallet labels (empty value deletes)",
    partitions=1,
    compacted=True,
)

# --- internal: between the pipeline's stages -----------------------------------
ROUTE = TopicSpec(
    "route",
    Role.INTERNAL,
    key="identifier",
    value="batch of facts and identity assignments for the route stage",
)
LINK = TopicSpec(
    "link",
    Role.INTERNAL,
    key="(none: one partition)",
    value="batch of link evidence and label updates for the link stage",
    partitions=1,
)
PROFILE = TopicSpec(
    "profile",
    Role.INTERNAL,
    key="person id",
    value=(
        "batch of events, merges, splits, member lists, labels, prices and ticks"
        " for the profile stage"
    ),
)
CHANNEL = TopicSpec(
    "channel", Role.INTERNAL, key="channel", value="batch of revenue ±deltas by channel"
)

# --- outputs: what c360's users subscribe to -------------------------------------
PROFILE_CHANGES = TopicSpec(
    "profile.changes", Role.OUTPUT, key="person id", value="profile change event"
)
IDENTITY_MERGES = TopicSpec(
    "identity.merges",
    Role.OUTPUT,
    key="absorbed person id",
    value="identity merge (absorbed -> survivor), kept forever",
    compacted=True,
    retention_ms=FOREVER,
)
IDENTITY_CONFLICTS = TopicSpec(
    "identity.conflicts", Role.OUTPUT, key="identifier", value="refused merge with its evidence"
)
SEGMENT_CHANGES = TopicSpec(
    "segment.changes", Role.OUTPUT, key="person id", value="segment enter/exit event"
)
ALERTS = TopicSpec("alerts", Role.OUTPUT, key="person id", value="alert (e.g. VIP tier reached)")
DEAD_LETTERS = TopicSpec(
    "deadletter",
    Role.OUTPUT,
    key="source topic",
    value="input that could not be applied, with its reason",
)

ALL: tuple[TopicSpec, ...] = (
    WEB_EVENTS,
    FORMS,
    SOCIALS,
    CHAIN_EVENTS,
    HOLDINGS,
    SUPPORT,
    PRICES,
    LABELS,
    ROUTE,
    LINK,
    PROFILE,
    CHANNEL,
    PROFILE_CHANGES,
    IDENTITY_MERGES,
    IDENTITY_CONFLICTS,
    SEGMENT_CHANGES,
    ALERTS,
    DEAD_LETTERS,
)

INPUTS: tuple[TopicSpec, ...] = tuple(t for t in ALL if t.role is Role.INPUT)
INGESTED: tuple[TopicSpec, ...] = tuple(t for t in INPUTS if t not in (PRICES, LABELS))
"""The event inputs the ingest agent reads (prices and labels have agents of their own)."""


def by_suffix(suffix: str) -> TopicSpec:
    """The declared topic with this name suffix (e.g. ``web.events``)."""
    for spec in ALL:
        if spec.suffix == suffix:
            return spec
    raise KeyError(f"no topic {suffix!r}; known: {', '.join(t.suffix for t in ALL)}")


def markdown_table(settings: Settings) -> str:
    """The topics table for the README."""
    rows = ["| Topic | Role | Partitions | Key | Value |", "| --- | --- | --- | --- | --- |"]
    for t in ALL:
        parts = "1" if t.partitions == 1 else "`C360_PARTITIONS`"
        extra = " (compacted)" if t.compacted else ""
        rows.append(f"| `{t.name(settings)}` | {t.role}{extra} | {parts} | {t.key} | {t.value} |")
    return "\n".join(rows)
