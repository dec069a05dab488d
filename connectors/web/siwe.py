"""Sign-In With Ethereum (EIP-4361): a strict message parser, server nonces and the verifier.

The ``siwe`` package pins web3<8, so c360 carries its own verifier (see
docs/connectors/web.md). It follows the EIP's "Relying Party Implementer Steps":

1. parse the message strictly against the EIP-4361 ABNF (``bad_message``);
2. consume its nonce, which must be one this collector issued, unexpired and never
   used (``unknown_nonce``, ``expired_nonce``, ``replayed_nonce``; ``siwe_busy`` when
   too many are in use). A nonce is consumed by any verification that names it,
   successful or not;
3. check the domain and, when the message names one, its scheme: https
   (``wrong_domain``), the chain id (``chain_not_allowed``) and
   the validity window against the clock (``expired``, ``not_yet_valid``);
4. recover the EIP-191 signer with eth-account and compare it with the message's
   address (``bad_signature``, ``wrong_signer``). Contract wallets (EIP-1271)
   would need an RPC call on the message's chain and are not supported.
"""

from __future__ import annotations

import hashlib
import heapq
import hmac
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from eth_account import Account
from eth_account.messages import encode_defunct
from eth_utils import is_checksum_address

# A nonce is lowercase hex (alphanumeric, as EIP-4361 requires): 80 random bits, the
# expiry in unix milliseconds and 128 bits of HMAC-SHA256 over both.
_RANDOM_HEX, _EXPIRY_HEX, _MAC_HEX = 20, 12, 32
NONCE_LENGTH = _RANDOM_HEX + _EXPIRY_HEX + _MAC_HEX
ISSUED_NONCE = re.compile(rf"[0-9a-f]{{{NONCE_LENGTH}}}")  # fullmatch
MAX_MESSAGE_CHARS = 4096

# --- RFC 3986 pieces of the EIP-4361 ABNF -----------------------------------------
_UNRESERVED = r"A-Za-z0-9\-._~"
_SUB_DELIMS = r"!$&'()*+,;="
_PCT = r"%[0-9A-Fa-f]{2}"
_USERINFO = rf"(?:[{_UNRESERVED}{_SUB_DELIMS}:]|{_PCT})*"
_REG_NAME = rf"(?:[{_UNRESERVED}{_SUB_DELIMS}]|{_PCT})+"
_IP_LITERAL = r"\[[0-9A-Fa-f:.vV]+\]"
_AUTHORITY = rf"(?:{_USERINFO}@)?(?:{_IP_LITERAL}|{_REG_NAME})(?::[0-9]*)?"
_SCHEME = r"[A-Za-z][A-Za-z0-9+\-.]*"
_URI = rf"{_SCHEME}:(?:[{_UNRESERVED}{_SUB_DELIMS}:/?#\[\]@]|{_PCT})+"
_PCHAR = rf"(?:[{_UNRESERVED}{_SUB_DELIMS}:@]|{_PCT})"
_DATE_TIME = (
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]+)?"
    r"(?:[Zz]|[+-][0-9]{2}:[0-9]{2})"
)

HEADER = re.compile(
    rf"^(?:(?P<scheme>{_SCHEME})://)?(?P<domain>{_AUTHORITY})"
    r" wants you to sign in with your Ethereum account:$"
)
ADDRESS = re.compile(r"^0x[0-9a-fA-F]{40}$")
STATEMENT = re.compile(rf"^[{_UNRESERVED}{_SUB_DELIMS}:/?#\[\]@ ]+$")
URI = re.compile(rf"^{_URI}$")
NONCE = re.compile(r"^[A-Za-z0-9]{8,}$")
CHAIN_ID = re.compile(r"^[0-9]+$")
HEX = re.compile(r"(?:[0-9a-fA-F]{2})*")  # fullmatch: "$" would let a final "\n" by
DATE_TIME = re.compile(rf"^{_DATE_TIME}$")
REQUEST_ID = re.compile(rf"^{_PCHAR}*$")


class SiweError(Exception):
    """A sign-in that is refused; ``reason`` is machine-readable."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass(frozen=True, slots=True)
class SiweMessage:
    """The fields of a parsed EIP-4361 message."""

    domain: str
    address: str
    uri: str
    version: str
    chain_id: int
    nonce: str
    issued_at: datetime
    scheme: str | None = None
    statement: str | None = None
    expiration_time: datetime | None = None
    not_before: datetime | None = None
    request_id: str | None = None
    resources: tuple[str, ...] = ()


def _bad(message: str) -> SiweError:
    return SiweError("bad_message", message)


def _date_time(value: str, name: str) -> datetime:
    if not DATE_TIME.match(value):
        raise _bad(f"{name} is not an RFC 3339 date-time with a time zone: {value[:64]!r}")
    try:
        return datetime.fromisoformat(value.upper())
    except ValueError as exc:
        raise _bad(f"{name} is not a valid date-time: {exc}") from None


def parse_message(text: str) -> SiweMessage:
    """Parse an EIP-4361 message strictly (LF line ends, fields in the ABNF's order)."""
    if len(text) > MAX_MESSAGE_CHARS:
        raise _bad(f"the message is longer than {MAX_MESSAGE_CHARS} characters")
    if "\r" in text:
        raise _bad("lines must end with LF only")
    lines = text.split("\n")
    if len(lines) < 9:
        raise _bad("the message is too short to be an EIP-4361 message")
    header = HEADER.match(lines[0])
    if header is None:
        raise _bad(
            "the first line must be '<domain> wants you to sign in with your Ethereum account:'"
        )
    address = lines[1]
    if not ADDRESS.match(address):
        raise _bad("the second line must be a 0x-prefixed 20-byte address")
    if not is_checksum_address(address):
        raise _bad("the address is not in EIP-55 checksum form")
    if lines[2] != "":
        raise _bad("the address must be followed by an empty line")
    statement: str | None = None
    i = 3
    if lines[3] != "":
        statement = lines[3]
        if not STATEMENT.match(statement):
            raise _bad("the statement holds characters EIP-4361 does not allow (RFC 3986 only)")
        if len(lines) < 5 or lines[4] != "":
            raise _bad("the statement must be followed by an empty line")
        i = 5
    else:
        i = 4
    rest = lines[i:]

    def field(prefix: str) -> str:
        nonlocal rest
        if not rest or not rest[0].startswith(prefix):
            raise _bad(f"expected the line '{prefix}…'")
        value = rest[0][len(prefix) :]
        rest = rest[1:]
        return value

    uri = field("URI: ")
    if not URI.match(uri):
        raise _bad("URI is not an RFC 3986 URI")
    version = field("Version: ")
    if version != "1":
        raise _bad("Version must be 1")
    chain = field("Chain ID: ")
    if not CHAIN_ID.match(chain) or int(chain) < 1 or int(chain) > 2**53:
        raise _bad("Chain ID must be a positive integer")
    nonce = field("Nonce: ")
    if not NONCE.match(nonce):
        raise _bad("Nonce must be at least 8 alphanumeric characters")
    issued_at = _date_time(field("Issued At: "), "Issued At")
    expiration = not_before = None
    request_id = None
    resources: list[str] = []
    if rest and rest[0].startswith("Expiration Time: "):
        expiration = _date_time(field("Expiration Time: "), "Expiration Time")
    if rest and rest[0].startswith("Not Before: "):
        not_before = _date_time(field("Not Before: "), "Not Before")
    if rest and rest[0].startswith("Request ID: "):
        request_id = field("Request ID: ")
        if not REQUEST_ID.match(request_id):
            raise _bad("Request ID holds characters RFC 3986 pchar does not allow")
    if rest and rest[0] == "Resources:":
        rest = rest[1:]
        while rest and rest[0].startswith("- "):
            resource = rest[0][2:]
            if not URI.match(resource):
                raise _bad(f"resource {resource[:64]!r} is not an RFC 3986 URI")
            resources.append(resource)
            rest = rest[1:]
    if rest:
        raise _bad(f"unexpected line {rest[0][:64]!r}")
    return SiweMessage(
        domain=header["domain"],
        scheme=header["scheme"],
        address=address,
        statement=statement,
        uri=uri,
        version=version,
        chain_id=int(chain),
        nonce=nonce,
        issued_at=issued_at,
        expiration_time=expiration,
        not_before=not_before,
        request_id=request_id,
        resources=tuple(resources),
    )


class NonceStore:
    """Stateless server nonces: a random part, an expiry and an HMAC of both.

    Issuing keeps nothing in memory, so no client can flush the nonces of others by
    asking for many. Only *used* nonces are remembered, until their own expiry (the
    replay protection); at most ``max_used`` of them: when that many are in use, a
    verification is refused with ``siwe_busy`` (503) rather than any forgotten.

    The HMAC key is drawn when the process starts: a nonce is accepted only by the
    collector that issued it (run one collector for SIWE, or route a client's nonce
    and verify calls to the same one: the used nonces are per process too), and a
    restart invalidates outstanding nonces.
    """

    def __init__(
        self,
        ttl: float,
        max_used: int,
        clock: Callable[[], float] = time.time,
        *,
        secret: bytes | None = None,
    ) -> None:
        self.ttl = ttl
        self.max_used = max_used
        self.clock = clock
        self._secret = secret or secrets.token_bytes(32)
        self._used: dict[str, int] = {}  # nonce -> expires at (unix ms)
        self._expiries: list[tuple[int, str]] = []  # heap of (expires at, nonce) for pruning

    def _mac(self, body: str, device: str | None) -> str:
        signed = f"{body}\n{device or ''}".encode()
        return hmac.new(self._secret, signed, hashlib.sha256).hexdigest()[:_MAC_HEX]

    def issue(self, device: str | None = None) -> tuple[str, float]:
        """A fresh nonce and its expiry (unix seconds). With ``device`` (the anonymousId
        of the browser asking), the nonce is bound to it: only a verification naming
        that anonymousId can use it, so a signed message that leaks before it is used
        cannot sign in another device."""
        expires = round((self.clock() + self.ttl) * 1000)
        body = secrets.token_hex(_RANDOM_HEX // 2) + f"{expires:0{_EXPIRY_HEX}x}"
        return body + self._mac(body, device), expires / 1000

    def _expiry(self, nonce: str, device: str | None) -> int:
        """The expiry (unix ms) of a nonce this process issued, unbound or bound to
        ``device``; raises ``unknown_nonce``."""
        if not ISSUED_NONCE.fullmatch(nonce):
            raise SiweError("unknown_nonce", "this nonce was not issued by this collector")
        body, mac = nonce[:-_MAC_HEX], nonce[-_MAC_HEX:]
        unbound = hmac.compare_digest(self._mac(body, None), mac)
        if not unbound and not (device and hmac.compare_digest(self._mac(body, device), mac)):
            raise SiweError(
                "unknown_nonce",
                "this nonce was not issued by this collector (or before it restarted), "
                "or was issued for another anonymousId",
            )
        return int(body[_RANDOM_HEX:], 16)

    def consume(self, nonce: str, device: str | None = None) -> None:
        """Use ``nonce`` up (``device``: the verification's anonymousId, which a bound
        nonce must name); raise :class:`SiweError` when it cannot be used."""
        expires = self._expiry(nonce, device)
        now_ms = self.clock() * 1000
        self._prune(now_ms)
        if nonce in self._used:
            raise SiweError("replayed_nonce", "this nonce was already used")
        if now_ms >= expires:
            raise SiweError("expired_nonce", "this nonce has expired; ask for a new one")
        if len(self._used) >= self.max_used:
            raise SiweError("siwe_busy", "too many sign-ins in progress; retry in a moment")
        self._used[nonce] = expires
        heapq.heappush(self._expiries, (expires, nonce))

    def give_back(self, nonce: str) -> None:
        """Make a consumed ``nonce`` usable again, until its own expiry: the sign-in it
        verified could not be recorded (Kafka did not acknowledge), and the client's
        retry of the same signed message must not be refused as a replay."""
        expires = self._used.get(nonce)
        if expires is not None and self.clock() * 1000 < expires:
            del self._used[nonce]

    def _prune(self, now_ms: float) -> None:
        """Forget used nonces once expired: from then on they are refused as expired."""
        heap, used = self._expiries, self._used
        while heap and heap[0][0] < now_ms:
            expires, nonce = heapq.heappop(heap)
            if used.get(nonce) == expires:
                del used[nonce]
        if len(heap) > 2 * len(used) + 64:  # entries of nonces given back
            self._expiries = [(e, n) for e, n in heap if used.get(n) == e]
            heapq.heapify(self._expiries)

    def __len__(self) -> int:
        """How many used nonces are remembered."""
        return len(self._used)


def recover_signer(message: str, signature: str) -> str:
    """The EIP-55 address that signed ``message`` (EIP-191 personal_sign)."""
    sig = signature[2:] if signature[:2] in ("0x", "0X") else signature
    if not HEX.fullmatch(sig):  # bytes.fromhex would skip spaces
        raise SiweError("bad_signature", "the signature is not hex")
    raw = bytes.fromhex(sig)
    if len(raw) != 65:
        raise SiweError("bad_signature", f"the signature is {len(raw)} bytes; expected 65")
    try:
        return Account.recover_message(encode_defunct(text=message), signature=raw)
    except Exception as exc:  # eth_keys raises BadSignature, ValueError, ...
        raise SiweError("bad_signature", f"cannot recover a signer: {exc}") from None


class SiweVerifier:
    """Verifies sign-in messages against this collector's domain, chains and nonces."""

    def __init__(
        self,
        domain: str,
        chain_ids: tuple[int, ...],
        nonces: NonceStore,
        *,
        clock: Callable[[], float] = time.time,
        skew: float = 60.0,
    ) -> None:
        self.domain = domain
        self.chain_ids = frozenset(chain_ids)
        self.nonces = nonces
        self.clock = clock
        self.skew = skew

    def verify(self, message: str, signature: str) -> SiweMessage:
        """The parsed message when the sign-in is valid; raises :class:`SiweError` otherwise."""
        msg = parse_message(message)
        self.check(msg, message, signature)
        return msg

    def check(
        self, msg: SiweMessage, message: str, signature: str, device: str | None = None
    ) -> None:
        """Verify ``message``, already parsed as ``msg``, sent for the anonymousId
        ``device``; raises :class:`SiweError`."""
        self.nonces.consume(msg.nonce, device)  # from here on, the nonce is spent whatever
        if msg.scheme is not None and msg.scheme.lower() != "https":
            raise SiweError(
                "wrong_domain", f"the message's scheme is {msg.scheme!r}; only https is accepted"
            )
        if msg.domain.lower() != self.domain.lower():
            raise SiweError(
                "wrong_domain", f"the message is for {msg.domain!r}, not {self.domain!r}"
            )
        if msg.chain_id not in self.chain_ids:
            raise SiweError("chain_not_allowed", f"chain {msg.chain_id} is not allowed")
        now = self.clock()
        if msg.expiration_time is not None and now >= msg.expiration_time.timestamp():
            raise SiweError("expired", "the message's Expiration Time has passed")
        if msg.not_before is not None and now + self.skew < msg.not_before.timestamp():
            raise SiweError("not_yet_valid", "the message's Not Before is in the future")
        if msg.issued_at.timestamp() > now + self.skew:
            raise SiweError("not_yet_valid", "the message's Issued At is in the future")
        signer = recover_signer(message, signature)
        if signer != msg.address:
            raise SiweError("wrong_signer", "the signature is not by the message's address")
