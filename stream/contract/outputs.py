"""Output payloads: what c360 writes for its users (profile changes, identity
merges and conflicts, segment changes, alerts, dead letters).

Like the inputs, these structs are the source of truth of the generated JSON
Schemas in ``schemas/``.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from msgspec import Meta, Struct

PersonId = Annotated[str, Meta(pattern=r"^p[0-9a-f]{20}$", description="A c360 person id.")]
Identifier = Annotated[
    str, Meta(pattern=r"^[a-z]+:.+$", description="A normalized identifier, type:value.")
]
EpochMs = Annotated[int, Meta(ge=0, description="Milliseconds since the Unix epoch.")]


class FieldChange(Struct, forbid_unknown_fields=False):
    old: Any
    new: Any


class Cause(Struct, omit_defaults=True, forbid_unknown_fields=False):
    """What made the profile change."""

    kind: Literal["events", "merge", "split", "tick", "revaluation"]
    events: int = 0
    event_ids: list[str] = []
    persons: list[PersonId] = []


class ProfileChange(Struct, omit_defaults=True, forbid_unknown_fields=False):
    """One change of one profile: at most one per person per processed input batch.

    ``version`` only grows per person. The last change of an absorbed person
    carries ``merged_into``. ``identity_seq`` orders identity across persons: the
    link stage's sequence number of the person's last member list (of its absorb,
    for an absorbed person); a consumer keyed by identifier keeps, per identifier,
    the claim of the change with the highest ``identity_seq``.
    """

    person_id: PersonId
    version: Annotated[int, Meta(ge=1)]
    changes: dict[str, FieldChange]
    cause: Cause
    at: EpochMs
    merged_into: PersonId | None = None
    identity_seq: Annotated[int, Meta(ge=0)] = 0


class Evidence(Struct, omit_defaults=True, forbid_unknown_fields=False):
    """The input that asserted a link between two identifiers."""

    kind: str
    strength: Literal["verified", "observed", "asserted"]
    identifiers: list[Identifier]
    event_id: str
    source: str
    at: EpochMs


class IdentityMerge(Struct, omit_defaults=True, forbid_unknown_fields=False):
    """Person ``absorbed`` was merged into ``survivor`` (compacted by absorbed id, kept forever)."""

    absorbed: PersonId
    survivor: PersonId
    evidence: Evidence
    rule: Annotated[
        str,
        Meta(
            description="merge:{strength} (verified, observed); merge:{strength}:retried "
            "when a link a limit refused is accepted after a split undid the merge that "
            "made the limit refuse it (evidence: the refused link's event)."
        ),
    ]
    seq: Annotated[int, Meta(ge=1, description="The link stage's sequence number.")]


class IdentityConflict(Struct, omit_defaults=True, forbid_unknown_fields=False):
    """A link the guards refused (``refused``), or a person split apart (``split``)."""

    kind: Literal["refused", "split"]
    rule: str
    detail: str
    identifiers: list[Identifier]
    persons: list[PersonId]
    seq: Annotated[int, Meta(ge=1)]
    evidence: Evidence | None = None
    created: list[PersonId] = []


class SegmentChange(Struct, omit_defaults=True, forbid_unknown_fields=False):
    """A person entered or left a segment (lifecycle stage, VIP tier)."""

    person_id: PersonId
    segment: str
    action: Literal["enter", "exit"]
    at: EpochMs
    version: Annotated[int, Meta(ge=1)]


class Alert(Struct, omit_defaults=True, forbid_unknown_fields=False):
    """Something an operator or a VIP desk should act on."""

    alert_id: str
    person_id: PersonId
    kind: str
    severity: Literal["info", "warning", "critical"]
    message: str
    at: EpochMs
    details: dict[str, Any] = {}


class SourcePosition(Struct, forbid_unknown_fields=False):
    topic: str
    partition: Annotated[int, Meta(ge=0)]
    offset: Annotated[int, Meta(ge=0)]


class DeadLetter(Struct, omit_defaults=True, forbid_unknown_fields=False):
    """An input that could not be applied, with the original bytes and the reason.

    ``index`` is the event's position in a batch record (absent for a whole
    record). ``original`` is the UTF-8 text of the input, or base64 when it is
    not UTF-8; an oversize input keeps a prefix (``truncated``) and its size.
    """

    source: SourcePosition
    reason: str
    message: str
    original: str
    original_encoding: Literal["utf-8", "base64"]
    original_size: Annotated[int, Meta(ge=0)]
    at: EpochMs
    index: Annotated[int, Meta(ge=0)] | None = None
    truncated: bool = False
