"""Sign-In With Ethereum: strict EIP-4361 parsing, server nonces, verification with real keys."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from eth_account import Account
from eth_account.messages import encode_defunct

from connectors.web.siwe import (
    NONCE,
    NonceStore,
    SiweError,
    SiweVerifier,
    parse_message,
    recover_signer,
)

DOMAIN = "app.example.xyz"
T0 = datetime(2026, 11, 2, 9, 16, 5, tzinfo=UTC).timestamp()


class Clock:
    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def message(
    address: str,
    nonce: str,
    *,
    domain: str = DOMAIN,
    statement: str | None = "Sign in to Example.",
    chain_id: int = 1,
    issued_at: str = "2026-11-02T09:16:05Z",
    extra: str = "",
) -> str:
    """An EIP-4361 message as its ABNF lays it out."""
    lines = [f"{domain} wants you to sign in with your Ethereum account:", address, ""]
    if statement is not None:
        lines += [statement, ""]
    else:
        lines += [""]
    lines += [
        f"URI: https://{DOMAIN}/login",
        "Version: 1",
        f"Chain ID: {chain_id}",
        f"Nonce: {nonce}",
        f"Issued At: {issued_at}",
    ]
    return "\n".join(lines) + extra


def sign(account, text: str) -> str:
    return "0x" + account.sign_message(encode_defunct(text=text)).signature.hex().removeprefix("0x")


@pytest.fixture(scope="module")
def account():
    # a fixed key: a random account's checksummed address can hold no upper-case letter
    # (its lower case is then its checksum), and the EIP-55 test did not raise (once, CI)
    return Account.from_key("0x" + "4c" * 32)


def setup(clock: Clock | None = None, chains=(1, 8453)) -> tuple[SiweVerifier, NonceStore, Clock]:
    clock = clock or Clock()
    nonces = NonceStore(ttl=300, max_used=1000, clock=clock)
    return SiweVerifier(DOMAIN, chains, nonces, clock=clock, skew=60), nonces, clock


# --- parsing ---------------------------------------------------------------------------
def test_a_full_message_parses_with_every_optional_field(account):
    text = message(
        account.address,
        "abcDEF123456",
        extra=(
            "\nExpiration Time: 2026-11-02T10:00:00.000Z"
            "\nNot Before: 2026-11-02T09:00:00+01:00"
            "\nRequest ID: req-42"
            "\nResources:\n- ipfs://bafybeiemxf5abjwjbikoz4mc3a3dla6ual3jsgpdr4cjr3oz3evfyavhwq/"
            "\n- https://example.com/my-web2-claim.json"
        ),
    )
    m = parse_message(text)
    assert (m.domain, m.address, m.chain_id, m.nonce) == (
        DOMAIN,
        account.address,
        1,
        "abcDEF123456",
    )
    assert m.statement == "Sign in to Example."
    assert m.uri == "https://app.example.xyz/login"
    assert m.issued_at == datetime(2026, 11, 2, 9, 16, 5, tzinfo=UTC)
    assert m.expiration_time == datetime(2026, 11, 2, 10, 0, tzinfo=UTC)
    assert m.not_before == datetime(2026, 11, 2, 8, 0, tzinfo=UTC)
    assert m.request_id == "req-42"
    assert len(m.resources) == 2


def test_a_message_without_statement_and_with_a_scheme_parses(account):
    text = message(account.address, "abcDEF123456", statement=None)
    text = "https://" + text
    m = parse_message(text)
    assert m.statement is None and m.scheme == "https" and m.domain == DOMAIN


@pytest.mark.parametrize(
    ("mutate", "needle"),
    [
        (lambda t: t.replace("\n", "\r\n"), "LF"),
        (lambda t: t.replace(" wants you to", " would like you to"), "first line"),
        (lambda t: t.replace("Version: 1", "Version: 2"), "Version"),
        (lambda t: t.replace("Nonce: abcDEF123456", "Nonce: abc123"), "Nonce"),
        (lambda t: t.replace("Chain ID: 1", "Chain ID: one"), "Chain ID"),
        (lambda t: t.replace("2026-11-02T09:16:05Z", "2026-11-02 09:16:05"), "Issued At"),
        (lambda t: t.replace("2026-11-02T09:16:05Z", "2026-11-02T09:16:05"), "Issued At"),
        (lambda t: t.replace("2026-11-02T09:16:05Z", "2026-02-30T09:16:05Z"), "Issued At"),
        (lambda t: t.replace("Sign in to Example.", 'Say "hi"'), "statement"),
        (lambda t: t.replace("URI: https://", "URI: not a uri "), "URI"),
        (lambda t: t + "\nExtra: line", "unexpected line"),
        (lambda t: t + "\n", "unexpected line"),
        (lambda t: t.replace("\nVersion: 1", ""), "Version"),
        (lambda t: t.replace("Sign in to Example.\n\n", "Sign in to Example.\n"), "empty line"),
    ],
)
def test_malformed_messages_are_rejected_as_bad_message(account, mutate, needle):
    text = mutate(message(account.address, "abcDEF123456"))
    with pytest.raises(SiweError) as err:
        parse_message(text)
    assert err.value.reason == "bad_message"
    assert needle in err.value.message


def test_the_address_must_carry_its_eip55_checksum(account):
    with pytest.raises(SiweError, match="EIP-55"):
        parse_message(message(account.address.lower(), "abcDEF123456"))


# --- nonces --------------------------------------------------------------------------------
def test_nonces_are_random_alphanumeric_single_use_and_expire():
    clock = Clock()
    store = NonceStore(ttl=300, max_used=1000, clock=clock)
    a, expires = store.issue()
    b, _ = store.issue()
    assert a != b and len(a) >= 8 and a.isalnum() and expires == T0 + 300
    store.consume(a)
    with pytest.raises(SiweError) as err:
        store.consume(a)
    assert err.value.reason == "replayed_nonce"
    with pytest.raises(SiweError) as err:
        store.consume("neverIssued123")
    assert err.value.reason == "unknown_nonce"
    clock.now += 301
    with pytest.raises(SiweError) as err:
        store.consume(b)
    assert err.value.reason == "expired_nonce"


def test_a_nonce_given_back_can_be_used_again_until_its_own_expiry():
    # a verified sign-in Kafka did not take: the client retries the same signed message
    clock = Clock()
    store = NonceStore(ttl=300, max_used=1000, clock=clock)
    nonce, _ = store.issue()
    store.consume(nonce)
    store.give_back(nonce)
    store.consume(nonce)
    with pytest.raises(SiweError) as err:
        store.consume(nonce)
    assert err.value.reason == "replayed_nonce"
    store.give_back(nonce)
    clock.now += 301  # past the nonce's expiry: giving it back does not revive it
    with pytest.raises(SiweError) as err:
        store.consume(nonce)
    assert err.value.reason == "expired_nonce"
    late, _ = store.issue()
    store.consume(late)
    clock.now += 300
    store.give_back(late)  # too late: still spent
    with pytest.raises(SiweError) as err:
        store.consume(late)
    assert err.value.reason == "replayed_nonce"


def test_issuing_keeps_nothing_so_a_flood_of_nonces_evicts_none():
    # the public browser key is enough to ask for nonces: asking for many must not
    # make the nonce of someone signing in unknown
    store = NonceStore(ttl=300, max_used=3, clock=Clock())
    victim, _ = store.issue()
    flood = {store.issue()[0] for _ in range(1000)}
    assert len(flood) == 1000 and len(store) == 0
    store.consume(victim)


def test_nonces_are_authenticated_by_the_process_that_issued_them():
    clock = Clock()
    store = NonceStore(ttl=300, max_used=10, clock=clock)
    nonce, _ = store.issue()
    assert NONCE.match(nonce)  # a valid EIP-4361 nonce
    tampered = nonce[:-1] + ("0" if nonce[-1] != "0" else "1")
    later = nonce[:20] + f"{int((T0 + 3600) * 1000):012x}" + nonce[32:]  # a longer life
    other = NonceStore(ttl=300, max_used=10, clock=clock).issue()[0]  # another process
    for forged in (tampered, later, other, nonce.upper()):
        with pytest.raises(SiweError) as err:
            store.consume(forged)
        assert err.value.reason == "unknown_nonce"
    store.consume(nonce)


def test_a_nonce_bound_to_a_device_is_used_by_that_device_only():
    store = NonceStore(ttl=300, max_used=10, clock=Clock())
    bound, _ = store.issue("anon-d1")
    assert NONCE.match(bound)
    for device in (None, "", "anon-d2", "anon-d1 "):
        with pytest.raises(SiweError) as err:
            store.consume(bound, device)
        assert err.value.reason == "unknown_nonce"
    store.consume(bound, "anon-d1")
    unbound, _ = store.issue()
    store.consume(unbound, "anything")


def test_used_nonces_are_bounded_by_refusing_not_by_forgetting():
    clock = Clock()
    store = NonceStore(ttl=300, max_used=3, clock=clock)
    used = [store.issue()[0] for _ in range(3)]
    for n in used:
        store.consume(n)
    waiting, _ = store.issue()
    with pytest.raises(SiweError) as err:
        store.consume(waiting)
    assert err.value.reason == "siwe_busy"  # 503: the client retries
    for n in used:  # none was forgotten to make room: each is still a replay
        with pytest.raises(SiweError) as err:
            store.consume(n)
        assert err.value.reason == "replayed_nonce"
    clock.now += 200
    fresh, _ = store.issue()
    clock.now += 101  # the used ones expired (and are refused as such), the others not
    store.consume(fresh)
    assert len(store) == 1
    with pytest.raises(SiweError) as err:
        store.consume(used[0])
    assert err.value.reason == "expired_nonce"


# --- verification --------------------------------------------------------------------------
def test_a_valid_sign_in_is_verified(account):
    verifier, nonces, _ = setup()
    nonce, _ = nonces.issue()
    text = message(account.address, nonce, chain_id=8453)
    m = verifier.verify(text, sign(account, text))
    assert m.address == account.address and m.chain_id == 8453
    assert recover_signer(text, sign(account, text)) == account.address


def refusal(verifier: SiweVerifier, text: str, signature: str) -> str:
    with pytest.raises(SiweError) as err:
        verifier.verify(text, signature)
    return err.value.reason


def test_each_failure_has_its_reason(account):
    other = Account.create()
    verifier, nonces, clock = setup()

    def fresh(**kw) -> str:
        return message(account.address, nonces.issue()[0], **kw)

    text = fresh(domain="evil.example")
    assert refusal(verifier, text, sign(account, text)) == "wrong_domain"
    text = "http://" + fresh()  # EIP-4361's scheme is the origin's: https here
    assert refusal(verifier, text, sign(account, text)) == "wrong_domain"
    text = "https://" + fresh()
    assert verifier.verify(text, sign(account, text)).scheme == "https"
    text = fresh(chain_id=137)
    assert refusal(verifier, text, sign(account, text)) == "chain_not_allowed"
    text = fresh(extra="\nExpiration Time: 2026-11-02T09:16:04Z")
    assert refusal(verifier, text, sign(account, text)) == "expired"
    text = fresh(extra="\nNot Before: 2026-11-02T10:00:00Z")
    assert refusal(verifier, text, sign(account, text)) == "not_yet_valid"
    text = fresh(issued_at="2026-11-02T09:30:00Z")
    assert refusal(verifier, text, sign(account, text)) == "not_yet_valid"
    text = fresh()
    assert refusal(verifier, text, sign(other, text)) == "wrong_signer"
    text = fresh()
    assert refusal(verifier, text, "0x1234") == "bad_signature"
    assert refusal(verifier, text, sign(account, text)) == "replayed_nonce"  # spent on failure
    text = message(account.address, "notIssuedByUs1")
    assert refusal(verifier, text, sign(account, text)) == "unknown_nonce"
    text = message(account.address, "abc")
    assert refusal(verifier, text, sign(account, text)) == "bad_message"
    text = fresh()
    clock.now += 301
    assert refusal(verifier, text, sign(account, text)) == "expired_nonce"


def test_a_nonce_is_spent_by_a_success_and_cannot_be_replayed(account):
    verifier, nonces, _ = setup()
    text = message(account.address, nonces.issue()[0])
    signature = sign(account, text)
    verifier.verify(text, signature)
    assert refusal(verifier, text, signature) == "replayed_nonce"


def test_a_signature_of_another_message_by_the_same_key_is_a_wrong_signer(account):
    verifier, nonces, _ = setup()
    text = message(account.address, nonces.issue()[0])
    assert refusal(verifier, text, sign(account, text + " ")) == "wrong_signer"


def test_a_signature_must_be_plain_hex(account):
    text = message(account.address, "abcDEF123456")
    good = sign(account, text)
    assert recover_signer(text, good) == account.address
    for odd in (good[:10] + " " + good[10:], good + "\n", good[:-1]):
        with pytest.raises(SiweError) as err:
            recover_signer(text, odd)
        assert err.value.reason == "bad_signature"
