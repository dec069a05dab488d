"""Identifiers: ``type:value``, normalized once at ingest, junk refused with a reason.

=========  ==========================================================================
type       value
=========  ==========================================================================
wallet     EVM address, lower-case; a mixed-case input must pass its EIP-55 checksum
anon       an anonymous/device id, as given (trimmed)
user       the product's own user id, as given (trimmed)
email      trimmed, Unicode NFC and lower-cased; invisible format characters refused
x          numeric account id, or handle lower-cased
discord    numeric (snowflake) id, or username lower-cased
telegram   numeric id, or username lower-cased
github     numeric id, or login lower-cased
farcaster  fid, or fname lower-cased
=========  ==========================================================================

A social handle may be written with one leading ``@``, which is dropped; digits only
behind an ``@`` are refused (a handle or an account id? ``x:@12345`` would be the same
identifier as the account 12345). Digits are ASCII digits. The type is read
case-insensitively (``Email:`` is ``email:``).

Refused with a reason, never guessed: empty values, the junk values SDKs send
("null", "undefined", "anonymous", "0", "-1", …), over-long values, control
characters, malformed addresses and handles, the zero address and well-known
burn addresses.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

from eth_utils import is_checksum_address

TYPES = ("wallet", "anon", "user", "email", "x", "discord", "telegram", "github", "farcaster")
SOCIAL_TYPES = ("x", "discord", "telegram", "github", "farcaster")
MAX_LENGTH = 256

# Values SDKs and forms send when they have no id (Segment's and PostHog's lists, and more).
JUNK = frozenset(
    {
        "null", "undefined", "none", "nil", "nan", "anonymous", "anon", "guest", "unknown",
        "0", "-1", "n/a", "na", "[object object]", "true", "false", "{}", "[]", '""', "''",
        "id", "distinct_id", "distinctid", "not_authenticated", "user", "email", "undefined_user",
    }
)  # fmt: skip
_ZEROS_AND_DASHES = re.compile(r"^[0\-]*$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_ADDRESS = re.compile(r"^0[xX][0-9a-fA-F]{40}$")
_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s.]{2,}$")


# invisible format characters, Unicode's category Cf (zero-width space and joiners,
# word joiner, BOM, bidi marks and isolates, soft hyphen, …): strip() keeps them, and an
# address pasted with one was a second identifier
def _has_format_character(value: str) -> bool:
    return not value.isascii() and any(unicodedata.category(c) == "Cf" for c in value)


# Addresses nobody owns: the zero address, burn addresses, the "native token"
# placeholder of DEX aggregators, and the precompiles 0x01..0x11.
BURN_ADDRESSES = frozenset(
    {
        "0x0000000000000000000000000000000000000000",
        "0x000000000000000000000000000000000000dead",
        "0xdead000000000000000042069420694206942069",
        "0xeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee",
        "0xffffffffffffffffffffffffffffffffffffffff",
        *(f"0x{n:040x}" for n in range(1, 0x12)),
    }
)

_SOCIAL = {  # ASCII: "\d" matches no Arabic-Indic or full-width digit
    "x": re.compile(r"^(\d{1,20}|[a-z0-9_]{1,15})$", re.ASCII),
    "discord": re.compile(r"^(\d{15,21}|[a-z0-9_.]{2,32}|[^#@:]{2,32}#\d{4})$", re.ASCII),
    "telegram": re.compile(r"^(\d{1,20}|[a-z][a-z0-9_]{4,31})$", re.ASCII),
    "github": re.compile(r"^(\d{1,20}|[a-z0-9](?:[a-z0-9]|-(?=[a-z0-9])){0,38})$", re.ASCII),
    "farcaster": re.compile(r"^(\d{1,20}|[a-z0-9][a-z0-9-]{0,15}(\.eth)?)$", re.ASCII),
}


class IdentifierError(ValueError):
    """A value that is not a usable identifier. ``reason`` is machine-readable."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def _common(kind: str, raw: object) -> str:
    if not isinstance(raw, str):
        raise IdentifierError("not_a_string", f"{kind} must be a string, got {type(raw).__name__}")
    value = raw.strip()
    if not value:
        raise IdentifierError("empty", f"{kind} is empty")
    if len(value) > MAX_LENGTH:
        raise IdentifierError("too_long", f"{kind} is longer than {MAX_LENGTH} characters")
    if _CONTROL.search(value):
        raise IdentifierError("control_characters", f"{kind} contains control characters")
    lowered = value.lower()
    if lowered in JUNK or _ZEROS_AND_DASHES.match(value):
        raise IdentifierError("junk_value", f"{kind} {value!r} is a placeholder, not an id")
    return value


HOT_IDENTIFIERS = 8192
"""Normalized identifiers (and addresses) cached: the active ones repeat. Not more: a
hit in a full cache of 262,144 cost 0.83 µs, as much as normalizing again, and the
two caches held ~90 MB (measured on 2026-11-29; a small cache's hit costs ~0.1 µs)."""


def normalize_address(raw: object) -> str:
    """A lower-case EVM address; mixed case must carry a valid EIP-55 checksum."""
    if isinstance(raw, str):
        return _address(raw)
    raise IdentifierError("bad_address", f"{raw!r} is not an EVM address (0x + 40 hex digits)")


@lru_cache(maxsize=HOT_IDENTIFIERS)
def _address(raw: str) -> str:
    if not _ADDRESS.match(raw.strip()):
        raise IdentifierError("bad_address", f"{raw!r} is not an EVM address (0x + 40 hex digits)")
    value = raw.strip()
    body = value[2:]
    if body != body.lower() and body != body.upper() and not _checksum_ok(value):
        raise IdentifierError("bad_checksum", f"{value} fails its EIP-55 checksum")
    lowered = "0x" + body.lower()
    if lowered in BURN_ADDRESSES:
        raise IdentifierError("burn_address", f"{lowered} is the zero or a burn address")
    return lowered


@lru_cache(maxsize=65536)
def _checksum_ok(value: str) -> bool:  # keccak: ~20 us, hence the caches
    return is_checksum_address("0x" + value[2:])


def _value(kind: str, raw: object) -> str:
    if kind == "wallet":
        return normalize_address(raw)
    value = _common(kind, raw)
    if kind in ("anon", "user"):
        return value
    if kind == "email":
        # NFC after lower-casing too: the lower case of a decomposed capital can have a
        # composed form ("J" + caron -> "ǰ"), else one address gave two identifiers
        value = unicodedata.normalize("NFC", unicodedata.normalize("NFC", value).lower())
        if len(value) > 254 or not _EMAIL.match(value) or _has_format_character(value):
            raise IdentifierError("bad_email", f"{value!r} is not an email address")
        return value
    if kind in _SOCIAL:
        value = value.lower()
        if value.startswith("@"):
            value = value[1:]
            if value.isascii() and value.isdigit():
                raise IdentifierError(
                    "bad_handle",
                    f"{kind} '@{value}': digits behind '@' could be a handle or an account id;"
                    " send the account id without '@'",
                )
            _common(kind, value)  # a placeholder behind "@" ("@" + undefined) is one too
        if not _SOCIAL[kind].match(value):
            raise IdentifierError("bad_handle", f"{value!r} is not a valid {kind} id or handle")
        return value
    raise IdentifierError(
        "unknown_type", f"unknown identifier type {kind!r}; known: {', '.join(TYPES)}"
    )


@lru_cache(maxsize=HOT_IDENTIFIERS)
def normalize(kind: str, raw: str) -> str:
    """The normalized identifier ``kind:value``; raises IdentifierError with a reason."""
    return f"{kind}:{_value(kind, raw)}"


def parse(identifier: str) -> str:
    """Normalize an identifier given as ``type:value`` (API paths, rule files)."""
    if not isinstance(identifier, str) or ":" not in identifier:
        raise IdentifierError("malformed", f"{identifier!r} is not of the form type:value")
    kind, _, raw = identifier.partition(":")
    kind = kind.strip().lower()
    if kind not in TYPES:
        raise IdentifierError(
            "unknown_type", f"unknown identifier type {kind!r}; known: {', '.join(TYPES)}"
        )
    return normalize(kind, raw)


def kind_of(identifier: str) -> str:
    """The type of a normalized identifier."""
    return identifier[: identifier.index(":")]
