"""Identity and profile rules: evidence strengths, guards and thresholds.

The defaults follow DESIGN.md and what CDPs ship, tuned for Web3. A rules file
(JSON, ``C360_RULES_FILE`` or ``c360 replay --rules``) overrides any part; the
worker validates it at start and refuses unknown keys and bad values with a
clear error. ``docs/identity.md`` documents every rule.
"""

from __future__ import annotations

import itertools
import math
import re
from pathlib import Path
from typing import Annotated, Literal, get_args

import msgspec
from msgspec import Meta, Struct, field

from stream.contract.inputs import LabelCategory
from stream.core.identifiers import TYPES, IdentifierError, parse

Strength = Literal["verified", "observed", "asserted"]
PositiveInt = Annotated[int, Meta(ge=1)]


class RulesError(ValueError):
    """A rules file that cannot be used."""


# Evidence kinds produced at ingest, and their default strength.
DEFAULT_EVIDENCE: dict[str, Strength] = {
    "siwe": "verified",  # Sign-In With Ethereum checked by the collector
    "social_verified": "verified",  # OAuth / signed proof of a social account
    "identify_server": "verified",  # identify sent with the server key
    "alias_server": "verified",
    "ids_server": "verified",  # userId + anonymousId on a server-side event
    "wallet_connect": "observed",  # wallet connected / tx sent from a browser session
    "identify_browser": "observed",
    "alias_browser": "observed",
    "ids_browser": "observed",  # userId + anonymousId on a browser event
    "siwe_unverified": "asserted",
    "social_unverified": "asserted",
    "identify_trait": "asserted",  # an email trait typed in a browser
    "form_field": "asserted",
    "support_requester": "asserted",
}


class Blocked(Struct, forbid_unknown_fields=True, omit_defaults=True):
    """Identifiers that never link: exact values and regular expressions over ``type:value``."""

    exact: list[str] = []
    patterns: list[str] = field(
        default_factory=lambda: [
            r"^email:.*@(example|test)\.(com|org|net)$",
            r"^email:(test|noreply|no-reply|admin|info|support)@",
        ]
    )


class Lifecycle(Struct, forbid_unknown_fields=True, omit_defaults=True):
    """Lifecycle stage thresholds, in days (Formo's definitions by default)."""

    new_days: PositiveInt = 7
    at_risk_days: PositiveInt = 14
    churn_days: PositiveInt = 30
    power_active_days: PositiveInt = 5
    power_window_days: PositiveInt = 30
    resurrected_days: PositiveInt = 30


class VipTier(Struct, forbid_unknown_fields=True, omit_defaults=True):
    """A VIP tier: reached when any threshold (USD) is met."""

    name: str
    net_worth_usd: float | None = None
    volume_usd: float | None = None
    fees_usd: float | None = None


VIP_METRICS = ("net_worth_usd", "volume_usd", "fees_usd")
"""A tier's thresholds, in the order they are judged."""

DEFAULT_VIP = [
    VipTier("whale", net_worth_usd=1_000_000, volume_usd=10_000_000, fees_usd=50_000),
    VipTier("gold", net_worth_usd=100_000, volume_usd=1_000_000, fees_usd=5_000),
    VipTier("silver", net_worth_usd=10_000, volume_usd=100_000, fees_usd=500),
]


class Rules(Struct, forbid_unknown_fields=True, omit_defaults=True):
    """Every identity and profile rule, with the documented defaults."""

    evidence: dict[str, Strength] = {}
    merge: dict[Strength, bool] = field(
        default_factory=lambda: {"verified": True, "observed": True, "asserted": False}
    )
    limits: dict[str, PositiveInt] = field(
        default_factory=lambda: {
            "user": 1,
            "email": 5,
            "anon": 100,
            "wallet": 50,
            "x": 1,
            "discord": 1,
            "telegram": 1,
            "github": 1,
            "farcaster": 1,
        }
    )
    max_joins: dict[str, PositiveInt] = field(
        default_factory=lambda: {"anon": 10, "wallet": 20, "email": 10, "user": 50}
    )
    blocked: Blocked = field(default_factory=Blocked)
    blocked_label_categories: list[str] = field(
        default_factory=lambda: ["exchange", "contract", "bridge", "router"]
    )
    dedupe_days: PositiveInt = 7
    retract_window_hours: PositiveInt = 24
    known_links_cache: PositiveInt = 64
    lifecycle: Lifecycle = field(default_factory=Lifecycle)
    vip: list[VipTier] = field(default_factory=lambda: list(DEFAULT_VIP))
    # a VIP alert is not sent again for a tier as high or lower within this many hours
    # of the person's last one (by the alerts' time); 0: every entry into a tier alerts
    vip_alert_cooldown_hours: Annotated[float, Meta(ge=0)] = 24.0

    def __post_init__(self) -> None:
        unknown = set(self.evidence) - set(DEFAULT_EVIDENCE)
        if unknown:
            raise RulesError(f"unknown evidence kinds: {sorted(unknown)}")
        for section in ("limits", "max_joins"):
            bad = set(getattr(self, section)) - set(TYPES)
            if bad:
                raise RulesError(f"{section}: unknown identifier types {sorted(bad)}")
        for pattern in self.blocked.patterns:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise RulesError(f"blocked.patterns: {pattern!r} is not a regex: {exc}") from None
        for value in self.blocked.exact:
            try:
                parse(value)
            except IdentifierError as exc:
                raise RulesError(f"blocked.exact: {value!r}: {exc}") from None
        names = [t.name for t in self.vip]
        if len(set(names)) != len(names):
            raise RulesError("vip: tier names must be unique")
        for tier in self.vip:
            thresholds = [tier.net_worth_usd, tier.volume_usd, tier.fees_usd]
            if all(t is None for t in thresholds):
                raise RulesError(f"vip: tier {tier.name!r} has no threshold")
            if any(t is not None and not (math.isfinite(t) and t >= 0) for t in thresholds):
                raise RulesError(f"vip: tier {tier.name!r} has a threshold that is not ≥ 0")
        for higher, lower in itertools.pairwise(self.vip):
            # the first tier met wins: listed low to high, the low tier hid the others
            for metric in VIP_METRICS:
                above, below = getattr(higher, metric), getattr(lower, metric)
                if above is not None and below is not None and below > above:
                    raise RulesError(
                        f"vip: tiers go from the highest to the lowest (the first whose "
                        f"threshold is met is a person's tier): {lower.name!r} has "
                        f"{metric} {below:g} above {higher.name!r}'s {above:g}"
                    )
        cooldown = self.vip_alert_cooldown_hours
        if (
            isinstance(cooldown, bool)
            or not isinstance(cooldown, (int, float))
            or not (math.isfinite(cooldown) and cooldown >= 0)
        ):
            raise RulesError(
                f"vip_alert_cooldown_hours: {cooldown!r} is not a number of hours ≥ 0 "
                "(0: no cooldown)"
            )
        categories = set(get_args(LabelCategory))
        unknown_categories = set(self.blocked_label_categories) - categories
        if unknown_categories:
            raise RulesError(
                f"blocked_label_categories: unknown {sorted(unknown_categories)}; "
                f"known: {', '.join(sorted(categories))}"
            )
        life = self.lifecycle
        for shorter, longer in (
            ("at_risk_days", "churn_days"),
            ("new_days", "churn_days"),
            ("power_active_days", "power_window_days"),
        ):
            if getattr(life, shorter) > getattr(life, longer):
                raise RulesError(
                    f"lifecycle: {shorter} ({getattr(life, shorter)}) is over "
                    f"{longer} ({getattr(life, longer)})"
                )

    # --- derived lookups ---
    def strength(self, evidence: str) -> Strength:
        return self.evidence.get(evidence) or DEFAULT_EVIDENCE[evidence]

    def merges(self, evidence: str) -> bool:
        """Does evidence of this kind merge persons (else: recorded as associations)?"""
        return self.merge.get(self.strength(evidence), False)


class Compiled:
    """Rules with their lookups precomputed (built once per worker)."""

    def __init__(self, rules: Rules) -> None:
        self.rules = rules
        self.merging = {kind: rules.merges(kind) for kind in DEFAULT_EVIDENCE}
        self.strengths = {kind: rules.strength(kind) for kind in DEFAULT_EVIDENCE}
        self.blocked_exact = frozenset(parse(v) for v in rules.blocked.exact)
        self.blocked_re = (
            re.compile("|".join(f"(?:{p})" for p in rules.blocked.patterns))
            if rules.blocked.patterns
            else None
        )
        self.label_categories = frozenset(rules.blocked_label_categories)

    def blocked(self, identifier: str) -> bool:
        return identifier in self.blocked_exact or bool(
            self.blocked_re and self.blocked_re.search(identifier)
        )


DEFAULT = Rules()


def load(path: Path | str | None) -> Rules:
    """Read and validate a rules file; ``None`` gives the defaults."""
    if path is None or str(path) == "":
        return DEFAULT
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise RulesError(f"cannot read rules file {path}: {exc}") from None
    try:
        return msgspec.json.decode(data, type=Rules)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        hint = ""
        if "Invalid enum value" in str(exc) and ("$.evidence" in str(exc) or "$.merge" in str(exc)):
            hint = f" (strengths: {', '.join(get_args(Strength))})"
        raise RulesError(f"rules file {path}: {exc}{hint}") from None
