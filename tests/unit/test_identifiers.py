"""Identifier normalization, with real checksummed addresses."""

import pytest

from stream.core.identifiers import IdentifierError, kind_of, normalize, parse

VITALIK = "0xd8dA6BF26964aF9D7eEd9e03E53415D37aA96045"  # EIP-55 checksummed
USDC = "0xA0b86991c6218b36c1d19D4a2e9Eb0cE3606eB48"


@pytest.mark.parametrize("address", [VITALIK, USDC])
def test_checksummed_addresses_are_lower_cased(address):
    assert normalize("wallet", address) == "wallet:" + address.lower()


def test_single_case_addresses_need_no_checksum():
    assert normalize("wallet", VITALIK.lower()) == "wallet:" + VITALIK.lower()
    assert normalize("wallet", "0x" + VITALIK[2:].upper()) == "wallet:" + VITALIK.lower()


def test_a_wrong_checksum_is_refused():
    broken = VITALIK[:-1] + ("5" if VITALIK[-1] != "5" else "6")  # digit flip keeps mixed case
    broken = broken[:3] + broken[3].swapcase() + broken[4:]
    with pytest.raises(IdentifierError) as err:
        normalize("wallet", broken)
    assert err.value.reason == "bad_checksum"


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("0x0000000000000000000000000000000000000000", "burn_address"),
        ("0x000000000000000000000000000000000000dEaD", "burn_address"),
        ("0xdead000000000000000042069420694206942069", "burn_address"),
        ("0x0000000000000000000000000000000000000001", "burn_address"),
        ("0x1234", "bad_address"),
        ("d8da6bf26964af9d7eed9e03e53415d37aa96045", "bad_address"),
        ("0xg8da6bf26964af9d7eed9e03e53415d37aa96045", "bad_address"),
    ],
)
def test_malformed_and_burn_addresses_are_refused(address, reason):
    with pytest.raises(IdentifierError) as err:
        normalize("wallet", address)
    assert err.value.reason == reason


def test_emails_are_trimmed_and_lower_cased():
    assert normalize("email", "  Ada.Lovelace@Lovelace.DEV ") == "email:ada.lovelace@lovelace.dev"


@pytest.mark.parametrize(
    "bad",
    [
        "ada",
        "ada@",
        "@lovelace.dev",
        "ada@lovelace",
        "a b@c.de",
        # invisible format characters (pasted from a page): kept, the same address would
        # be a second identifier of its human
        "ada@lovelace.dev\u200b",
        "\ufeffada@lovelace.dev",
        "ada\u200d@lovelace.dev",
        "ada@lovelace.dev\u2069",  # a bidi isolate: any character of Unicode's Cf
        "\u2066ada@lovelace.dev",
    ],
)
def test_bad_emails_are_refused(bad):
    with pytest.raises(IdentifierError) as err:
        normalize("email", bad)
    assert err.value.reason == "bad_email"


@pytest.mark.parametrize(
    "junk", ["", "  ", "null", "NULL", "undefined", "anonymous", "0", "-1", "00000", "---", "None"]
)
@pytest.mark.parametrize("kind", ["anon", "user"])
def test_junk_ids_are_refused(kind, junk):
    with pytest.raises(IdentifierError) as err:
        normalize(kind, junk)
    assert err.value.reason in {"empty", "junk_value"}


def test_over_long_and_control_characters_are_refused():
    with pytest.raises(IdentifierError) as err:
        normalize("user", "u" * 257)
    assert err.value.reason == "too_long"
    with pytest.raises(IdentifierError) as err:
        normalize("user", "user\x00id")
    assert err.value.reason == "control_characters"


def test_ids_keep_their_case():
    assert normalize("user", " User_42 ") == "user:User_42"


@pytest.mark.parametrize(
    ("kind", "raw", "expected"),
    [
        ("x", "@Ada_Onchain", "x:ada_onchain"),
        ("x", "1460283925", "x:1460283925"),
        ("discord", "80351110224678912", "discord:80351110224678912"),
        ("discord", "Ada.Lovelace", "discord:ada.lovelace"),
        ("telegram", "@AdaLove", "telegram:adalove"),
        ("github", "Ada-L", "github:ada-l"),
        ("farcaster", "ada.eth", "farcaster:ada.eth"),
        ("farcaster", "3621", "farcaster:3621"),
    ],
)
def test_socials(kind, raw, expected):
    assert normalize(kind, raw) == expected


@pytest.mark.parametrize(
    ("kind", "raw"), [("x", "way_too_long_handle_1"), ("github", "-ada"), ("telegram", "ab")]
)
def test_bad_handles_are_refused(kind, raw):
    with pytest.raises(IdentifierError) as err:
        normalize(kind, raw)
    assert err.value.reason == "bad_handle"


def test_parse_checks_the_type():
    assert parse("wallet:" + VITALIK) == "wallet:" + VITALIK.lower()
    assert kind_of(parse("email:A@B.co")) == "email"
    with pytest.raises(IdentifierError) as err:
        parse("phone:+33123")
    assert err.value.reason == "unknown_type"
    with pytest.raises(IdentifierError) as err:
        parse("nocolon")
    assert err.value.reason == "malformed"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("github:@Octocat", "github:octocat"),  # one leading "@" on every platform
        ("discord:@ada.lovelace", "discord:ada.lovelace"),
        ("farcaster:@dwr.eth", "farcaster:dwr.eth"),
        ("Email:Ada@Lovelace.dev", "email:ada@lovelace.dev"),  # the type in any case
        (" X:@jack", "x:jack"),
        ("email:jose\u0301@example.com", "email:jos\u00e9@example.com"),  # NFD → NFC
        # an upper-case letter whose lower case has a composed form (J + caron → ǰ): the
        # same address typed in upper case, or not, is one identifier
        ("email:J\u030cane@example.com", "email:\u01f0ane@example.com"),
        ("email:\u01f0ane@example.com", "email:\u01f0ane@example.com"),
        ("email:W\u030aRen@example.com", "email:\u1e98ren@example.com"),
    ],
)
def test_one_way_of_writing_an_identifier(raw, expected):
    assert parse(raw) == expected


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("x:@undefined", "junk_value"),  # "@" + undefined, in JavaScript
        ("telegram:@null", "junk_value"),
        ("farcaster:@0", "bad_handle"),
        ("x:@12345", "bad_handle"),  # the handle 12345, or the account 12345?
        ("x:@@jack", "bad_handle"),
        ("x:\uff11\uff12\uff13", "bad_handle"),  # full-width digits are not an id
        ("github:\u0665\u0668\u0663", "bad_handle"),  # nor Arabic-Indic ones
        ("discord:" + "\u0967" * 18, "bad_handle"),
    ],
)
def test_social_values_that_are_not_one_account_are_refused(raw, reason):
    with pytest.raises(IdentifierError) as err:
        parse(raw)
    assert err.value.reason == reason, err.value
