"""The classic CDP failure is the blob: one "person" collecting thousands of ids.
Shared devices, exchange wallets and junk ids must never produce one."""

from __future__ import annotations

import json

import pytest

from stream.core.rules import Rules
from stream.sim import Input, Simulator
from tests.simulation.profile_scenarios import forget

EXCHANGE = "0x28c6c06298d514db089934071355e5743bf21d60"  # a Binance hot wallet


def wallet(i: int) -> str:
    return f"0x{(0xBEEF0000 + i):040x}"


def web(**event) -> Input:
    event.setdefault("timestamp", "2026-11-02T09:00:00Z")
    return Input("web.events", json.dumps(event).encode())


def siwe(mid: str, device: str, address: str) -> Input:
    return web(
        type="track",
        event="SIWE Sign In",
        messageId=mid,
        anonymousId=device,
        properties={"address": address, "message": "sign in", "signature": "0x00", "chainId": 1},
        context={"c360": {"siwe": {"verified": True, "address": address}}},
    )


def connect(mid: str, device: str, address: str) -> Input:
    return web(
        type="track",
        event="Wallet Connected",
        messageId=mid,
        anonymousId=device,
        properties={"address": address, "chainId": 1},
    )


def _label(
    address: str, categories: list[str], name: str = "Mislabelled", at: str | None = None
) -> Input:
    labels = [{"label": name, "category": c} for c in categories]
    body = {"chain_id": 1, "address": address, "labels": labels}
    if at is not None:
        body["updated_at"] = at
    return Input("labels", json.dumps(body).encode(), key=f"1:{address}")


def exchange_label() -> Input:
    return _label(EXCHANGE, ["exchange"], name="Binance 14")


def biggest(sim: Simulator) -> tuple[int, dict[str, int]]:
    """Size of the largest person, and its identifiers by type."""
    rows = list(sim.persons().values())
    row = max(rows, key=lambda r: len(r["m"]))
    by_type: dict[str, int] = {}
    for ident in row["m"]:
        by_type[ident.split(":")[0]] = by_type.get(ident.split(":")[0], 0) + 1
    return len(row["m"]), by_type


def test_a_shared_device_used_by_200_wallets_joins_nobody():
    inputs = [connect(f"c{i}", "kiosk-1", wallet(i)) for i in range(200)]
    inputs += [siwe(f"s{i}", f"own-{i}", wallet(i)) for i in range(200)]  # each wallet's owner
    sim = Simulator(partitions=8, seed=1)
    sim.run(inputs)
    size, _ = biggest(sim)
    assert size == 2  # a wallet and its owner's device, nothing more
    kiosk = [r for r in sim.persons().values() if "anon:kiosk-1" in r["m"]]
    assert [sorted(r["m"]) for r in kiosk] == [["anon:kiosk-1"]]
    rules = {c.rule for c in sim.outputs.conflicts}
    assert "hub:anon" in rules
    splits = [c for c in sim.outputs.conflicts if c.kind == "split"]
    assert splits and splits[0].identifiers == ["anon:kiosk-1"]


def _exchange_inputs(label_first: bool) -> list[Input]:
    users = []
    for k in range(1000):
        users.append(siwe(f"own{k}", f"dev-{k}", wallet(k)))
        users.append(
            siwe(f"ex{k}", f"dev-{k}", EXCHANGE)
            if k % 2
            else connect(f"ex{k}", f"dev-{k}", EXCHANGE)
        )
    return [exchange_label(), *users] if label_first else [*users, exchange_label()]


def _no_exchange_blob(sim: Simulator) -> None:
    persons = list(sim.persons().values())
    size, by_type = biggest(sim)
    assert size == 2 and by_type == {"anon": 1, "wallet": 1}
    holding_exchange = [r for r in persons if "wallet:" + EXCHANGE in r["m"]]
    assert all(len(r["m"]) == 1 for r in holding_exchange)
    assert len(persons) >= 1000


def test_an_exchange_wallet_labelled_before_the_links_merges_nobody():
    sim = Simulator(partitions=8, seed=2)
    sim.run(_exchange_inputs(label_first=True))
    _no_exchange_blob(sim)
    assert not [m for m in sim.outputs.merges if "wallet:" + EXCHANGE in m.evidence.identifiers]
    refused = [c for c in sim.outputs.conflicts if c.kind == "refused"]
    assert len(refused) == 1000 and {c.rule for c in refused} == {"blocked_label"}


def test_an_exchange_wallet_labelled_after_the_links_is_undone_by_the_hub_cap_or_the_label():
    sim = Simulator(partitions=8, seed=3)
    sim.run(_exchange_inputs(label_first=False))
    _no_exchange_blob(sim)


def test_a_late_label_alone_splits_the_person_it_glued():
    """With the hub cap out of the way, the label arriving after the links does the job."""
    sim = Simulator(partitions=8, seed=4, rules=Rules(max_joins={}))
    sim.run([*_exchange_inputs(label_first=False)[:40], exchange_label()])
    _no_exchange_blob_small(sim)
    splits = [c for c in sim.outputs.conflicts if c.kind == "split"]
    assert [c.rule for c in splits] == ["label:exchange"]


def _no_exchange_blob_small(sim: Simulator) -> None:
    size, by_type = biggest(sim)
    assert size == 2 and by_type == {"anon": 1, "wallet": 1}


def test_junk_ids_never_link_anything():
    inputs = []
    for k in range(300):
        inputs.append(web(type="page", messageId=f"n{k}", anonymousId="null"))
        inputs.append(
            web(type="identify", messageId=f"u{k}", anonymousId=f"dev-{k}", userId="undefined")
        )
        inputs.append(connect(f"z{k}", f"dev-{k}", "0x0000000000000000000000000000000000000000"))
        inputs.append(
            web(
                type="identify",
                messageId=f"e{k}",
                userId=f"user-{k}",
                anonymousId=f"dev-{k}",
                traits={"email": "test@example.com"},
                context={"c360": {"auth": "server"}},
            )
        )
    sim = Simulator(partitions=4, seed=5)
    sim.run(inputs)
    size, by_type = biggest(sim)
    assert size == 2 and by_type == {"anon": 1, "user": 1}
    reasons = {r.reason for _, r in sim.outputs.dead_letters}
    assert reasons == {"bad_identifier"}
    assert len(sim.outputs.dead_letters) == 900
    blocked = [c for c in sim.outputs.conflicts if c.rule == "blocked_value"]
    assert len(blocked) == 300  # the shared test email is refused every time


def _identify(mid: str, device: str, user: str) -> Input:
    return web(
        type="identify",
        messageId=mid,
        userId=user,
        anonymousId=device,
        context={"c360": {"auth": "server"}},
    )


@pytest.mark.parametrize("b_signed_in_first", [True, False])
def test_a_limit_refusal_caused_by_a_hub_is_retried_when_the_hub_is_undone(b_signed_in_first):
    """The kiosk joins A (with a user id) and B; B's own user id is then refused by the
    user limit. The kiosk turns out to be a hub and its merges are undone: B's user id
    must come back to B, not stay a person of its own (found in a bench run as one
    synthetic person seen as two). Later identifies of B skip the link stage (the route
    stage caches the links it was told about), so nothing else would repair it.

    Both orders: B's sign-in before the kiosk saw B's wallet, or after (input
    partitions consumed unevenly reorder a person's onboarding and a kiosk visit)."""
    b_siwe = siwe("b-siwe", "dev-b", wallet(2))
    b_kiosk = connect("k-2", "kiosk-1", wallet(2))  # A and B are one person for now
    inputs = [
        _identify("a-id", "dev-a", "user-a"),
        siwe("a-siwe", "dev-a", wallet(1)),
        connect("k-1", "kiosk-1", wallet(1)),
        *((b_siwe, b_kiosk) if b_signed_in_first else (b_kiosk, b_siwe)),
        _identify("b-id", "dev-b", "user-b"),  # refused: a second user id
        *(connect(f"k-{i}", "kiosk-1", wallet(i)) for i in range(3, 13)),  # a hub
        _identify("b-id-2", "dev-b", "user-b"),  # the route stage knows this link
    ]
    sim = Simulator(partitions=1, seed=6, inject_probability=0.0)
    sim.run(inputs)
    persons = {frozenset(row["m"]) for row in sim.persons().values()}
    a = frozenset({"anon:dev-a", "user:user-a", "wallet:" + wallet(1)})
    b = frozenset({"anon:dev-b", "user:user-b", "wallet:" + wallet(2)})
    assert a in persons and b in persons
    rules = [c.rule for c in sim.outputs.conflicts]
    assert rules[:3] == ["limit:user", "hub:anon", "hub:anon"]  # refused, then the split
    retried = [m for m in sim.outputs.merges if m.rule.endswith(":retried")]
    assert [sorted(m.evidence.identifiers) for m in retried] == [["anon:dev-b", "user:user-b"]]
    assert retried[0].evidence.event_id == "b-id"
    assert sim.link.stats["retried"] == 1
    owner = {i: pid for pid, row in sim.persons().items() for i in row["m"]}
    # the sign-in and both identifies, once each (the kiosk visit counts for the kiosk)
    assert sim.persons()[owner["user:user-b"]]["a"]["n"] == 3


@pytest.mark.parametrize(
    ("label_first", "rule"), [(True, "blocked_label"), (False, "label:exchange")]
)
def test_a_wallet_whose_label_is_removed_links_again_from_its_device(label_first, rule):
    """A user's own wallet labelled exchange by mistake. Label first: its sign-in is
    refused, and the route stage caches the refused pair. Label after: it splits the
    wallet off a pair the route stage had cached as linked. Either way, once the label
    is removed, the same device signing in with it again must link them (the cache
    must let the pair go)."""
    own = wallet(77)
    labelled = _label(own, ["exchange"])
    first = siwe("s-1", "dev-77", own)
    inputs = [
        *((labelled, first) if label_first else (first, labelled)),
        _label(own, []),  # the label is removed
        siwe("s-2", "dev-77", own),
    ]
    sim = Simulator(partitions=2, seed=7, inject_probability=0.0)
    sim.run(inputs)
    assert sim.person_of("anon:dev-77") == sim.person_of("wallet:" + own)
    assert [c.rule for c in sim.outputs.conflicts] == [rule]


def test_an_older_label_record_after_a_newer_one_neither_blocks_nor_splits():
    """A labels provider backfilling sends a wallet's old exchange label after the
    record that corrected it: applied, it would block the wallet and split it off its
    person. A record goes by its updated_at (same time: applied again); an undated one
    always applies and forgets the time held, so a later dated record applies."""
    own = wallet(78)
    ident = "wallet:" + own
    sim = Simulator(partitions=2, seed=8, inject_probability=0.0)
    sim.run([siwe("s-1", "dev-78", own), _label(own, ["fund"], at="2026-10-02T00:00:00Z")])
    sim.run([_label(own, ["exchange"], at="2026-10-01T00:00:00Z")])
    assert sim.person_of("anon:dev-78") == sim.person_of(ident)
    assert sim.outputs.conflicts == [] and sim.link.stats["labels_stale"] == 1
    assert sim.labels[ident] == {"1": ["fund"]}
    assert sim.persons()[sim.person_of(ident)]["w"]["labels"] == {ident: ["fund"]}
    sim.run([_label(own, ["dao"], at="2026-10-02T00:00:00Z")])  # the same time
    assert sim.persons()[sim.person_of(ident)]["w"]["labels"] == {ident: ["dao"]}
    sim.run([_label(own, []), _label(own, ["exchange"], at="2026-10-01T00:00:00Z")])
    assert [c.rule for c in sim.outputs.conflicts] == ["label:exchange"]  # after the undated
    assert sim.person_of("anon:dev-78") != sim.person_of(ident)
    assert sim.link.stats["labels_stale"] == 1


def test_a_resend_brings_the_labels_held_where_the_wallets_last_record_is_an_older_one():
    """The labels topic is compacted: an older record that came after the newer one is
    the wallet's last record, the one `c360 resend labels` produces again for a
    profile state rebuilt without its copies of the labels. The labels held must
    reach the profile stage all the same."""
    own = wallet(79)
    ident = "wallet:" + own
    sim = Simulator(partitions=2, seed=9, inject_probability=0.0)
    older = _label(own, ["dao"], at="2026-10-01T00:00:00Z")
    sim.run([siwe("s-1", "dev-79", own), _label(own, ["fund"], at="2026-10-02T00:00:00Z")])
    sim.run([older])
    forget(sim, "profile", "lb:")  # rebuilt without its copies of the labels
    sim.run([older])  # c360 resend labels: the topic's last record of the wallet again
    sim.run([web(type="page", messageId="v-1", anonymousId="dev-79")])
    assert sim.persons()[sim.person_of(ident)]["w"]["labels"] == {ident: ["fund"]}
    assert sim.link.stats["labels_stale"] == 2


def test_a_refusal_kept_for_a_retry_survives_a_label_on_its_wallet():
    """A wallet shared by two users' devices is refused to the second (user limit), then
    labelled (split, and the kept refusal cannot be retried while the label blocks it),
    then unlabelled: the second device signing in with it again is decided again."""
    shared = wallet(79)
    inputs = [
        _identify("u-1", "dev-1", "user-1"),
        siwe("s-1", "dev-1", shared),
        _identify("u-2", "dev-2", "user-2"),
        siwe("s-2", "dev-2", shared),  # refused: limit:user, kept for a retry
        _label(shared, ["exchange"]),  # split off dev-1; the retry finds it blocked
        _label(shared, []),
        siwe("s-3", "dev-2", shared),
    ]
    sim = Simulator(partitions=2, seed=9, inject_probability=0.0)
    sim.run(inputs)
    assert sim.person_of("wallet:" + shared) == sim.person_of("anon:dev-2")
    assert sim.person_of("anon:dev-1") != sim.person_of("anon:dev-2")
    assert [c.rule for c in sim.outputs.conflicts] == ["limit:user", "label:exchange"]


@pytest.mark.parametrize("label_first", [True, False])
def test_a_kiosk_is_a_hub_whether_its_blocked_wallet_was_labelled_before_or_after(label_first):
    """The hub cap counts the distinct identifiers links proposed for an identifier,
    accepted or refused alike (docs/identity.md, guard 2), and a label must not matter
    before or after the links. A kiosk where ten people connected their wallets and an
    eleventh a contract-labelled one (a Safe) proposed eleven identifiers: over the anon
    cap of 10, a hub, in either order of the label. Label first, the link to the blocked
    wallet was refused before it was counted: the kiosk escaped detection and held ten
    humans in one person."""
    safe = wallet(99)
    visits = [connect(f"k-{i}", "kiosk-1", wallet(i)) for i in range(10)]
    visits.append(connect("k-safe", "kiosk-1", safe))
    owners = [siwe(f"own-{i}", f"dev-{i}", wallet(i)) for i in range(10)]
    label = _label(safe, ["contract"], name="Safe")
    inputs = [label, *visits, *owners] if label_first else [*visits, *owners, label]
    sim = Simulator(partitions=4, seed=11, inject_probability=0.0)
    sim.run(inputs)
    size, by_type = biggest(sim)
    assert size == 2 and by_type == {"anon": 1, "wallet": 1}  # a wallet and its owner's device
    persons = {frozenset(row["m"]) for row in sim.persons().values()}
    assert frozenset({"anon:kiosk-1"}) in persons
