"""Topic administration: create c360's topics and refuse to run on mismatched ones.

A topic with a different partition count than the settings would send keys to
the wrong partitions without any error, so a worker checks every declared topic
before it starts (:func:`ensure_topics`).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, for_code

from stream import topics
from stream.settings import Settings

log = logging.getLogger(__name__)

TOPIC_ALREADY_EXISTS = 36
UNKNOWN_TOPIC = 3
LEADER_TOPIC = "__assignor-__leader"
"""faust's assignor topic, named ``{app_id}-__assignor-__leader``."""


class TopicProblem(RuntimeError):
    """The broker answered, but c360's topics are not as the settings need and cannot be
    made so: the commands say what is wrong, not that Kafka cannot be reached."""


class TopicMismatch(TopicProblem):
    """An existing topic's partition count differs from the settings."""


class TopicRefused(TopicProblem):
    """The broker refused to create a topic, for its reason (a replication factor over
    its number of brokers, a policy, an authorisation)."""


class TopicMissing(TopicProblem, LookupError):
    """A topic that a command writes to does not exist (and the command creates none)."""


@dataclass(frozen=True, slots=True)
class TopicState:
    name: str
    partitions: int | None  # None: the topic does not exist


async def describe(admin: AIOKafkaAdminClient, names: list[str]) -> dict[str, TopicState]:
    """Partition counts of the named topics (None for those that do not exist)."""
    existing = set(await admin.list_topics())
    present = [n for n in names if n in existing]
    out = {n: TopicState(n, None) for n in names}
    if present:
        for t in await admin.describe_topics(present):
            out[t["topic"]] = TopicState(t["topic"], len(t["partitions"]))
    return out


async def create(admin: AIOKafkaAdminClient, new: list[NewTopic]) -> None:
    """Create topics; one that exists already (a concurrent creator) is fine."""
    response = await admin.create_topics(new)
    for name, code, *message in response.topic_errors:
        if code not in (0, TOPIC_ALREADY_EXISTS):
            error = for_code(code)
            reason = (message[0] if message and message[0] else None) or error.description
            raise TopicRefused(f"Kafka refused to create topic {name}: {reason} ({error.message})")


async def ensure_topics(
    settings: Settings,
    specs: tuple[topics.TopicSpec, ...] = topics.ALL,
    *,
    timeout: float = 30.0,
    create_missing: bool = True,
) -> list[str]:
    """Create the declared topics that are missing; raise on a partition mismatch.
    Without ``create_missing``, raise :class:`TopicMissing` on a missing topic instead.

    Returns the names of the topics it created.
    """
    admin = AIOKafkaAdminClient(
        bootstrap_servers=settings.kafka_bootstrap, request_timeout_ms=int(timeout * 1000)
    )
    await asyncio.wait_for(admin.start(), timeout)
    try:
        wanted = {s.name(settings): s for s in specs}
        state = await describe(admin, list(wanted))
        expected = {name: spec.partition_count(settings) for name, spec in wanted.items()}
        wrong = [
            f"{name} has {st.partitions} partitions, settings say {expected[name]}"
            for name, st in state.items()
            if st.partitions is not None and st.partitions != expected[name]
        ]
        if wrong:
            raise TopicMismatch(
                "refusing to start: " + "; ".join(wrong) + ". Keys would be routed to the wrong "
                "partitions. Set C360_PARTITIONS to match, or recreate the topics."
            )
        missing = [wanted[n] for n, st in state.items() if st.partitions is None]
        if missing and not create_missing:
            raise TopicMissing(
                "; ".join(f"topic {s.name(settings)} does not exist" for s in missing)
                + " (c360 topics creates them)"
            )
        if missing:
            new = [
                NewTopic(
                    s.name(settings),
                    s.partition_count(settings),
                    settings.replication,
                    topic_configs=s.configs(),
                )
                for s in missing
            ]
            await create(admin, new)
            log.info("created topics: %s", ", ".join(s.name(settings) for s in missing))
        return [s.name(settings) for s in missing]
    finally:
        await admin.close()


async def ensure_faust_topics(settings: Settings, app: Any, *, timeout: float = 30.0) -> None:
    """Create the topics faust itself needs (table changelogs, the leader topic), so
    that the worker can run with faust's own topic declaring off.

    faust declares each of them twice while starting (when a table starts and again
    in recovery), ~0.25 s apiece: with eight internal topics that was over half of a
    worker's start time. Changelogs are compacted, as faust makes them.
    """
    new = [
        NewTopic(
            table.changelog_topic.get_topic_name(),
            table.changelog_topic.partitions or settings.partitions,
            settings.replication,
            topic_configs={
                "cleanup.policy": "compact",
                "max.message.bytes": str(topics.MAX_RECORD_BYTES),
            },
        )
        for table in app.tables.values()
    ]
    new.append(NewTopic(f"{app.conf.id}-{LEADER_TOPIC}", 1, settings.replication))
    admin = AIOKafkaAdminClient(
        bootstrap_servers=settings.kafka_bootstrap, request_timeout_ms=int(timeout * 1000)
    )
    await asyncio.wait_for(admin.start(), timeout)
    try:
        existing = set(await admin.list_topics())
        missing = [n for n in new if n.name not in existing]
        if missing:
            await create(admin, missing)
    finally:
        await admin.close()


def owned_topics(settings: Settings, names: list[str]) -> list[str]:
    """The topics among ``names`` that belong to this deployment: c360's own (named
    with the topic prefix) and faust's: the assignor's leader topic and the changelog
    of each table, ``{app_id}-{table}-changelog``. Table names have no dash (a test
    checks the app's), so another deployment whose app id starts with this one's —
    ``c360`` and ``c360-test-1a2b`` — never matches: its topics hold a dash more."""
    own = settings.app_id + "-"
    out = []
    for name in names:
        if name.startswith(settings.topic_prefix):
            out.append(name)
        elif name.startswith(own):
            rest = name[len(own) :]
            if rest == LEADER_TOPIC or (rest.endswith("-changelog") and rest.count("-") == 1):
                out.append(name)
    return sorted(out)


async def drop_deployment(settings: Settings, *, timeout: float = 30.0) -> list[str]:
    """Delete every topic of this deployment (:func:`owned_topics`); returns their names.

    For tests and benchmarks, which each run a deployment of their own: left behind,
    their topics made a local broker grow by every run (a session of test and
    benchmark runs left thousands of partitions and tens of GB), and a broker holding
    that much took longer than its start timeout to recover after an unclean stop.
    Refuses a deployment with no topic prefix, whose topics cannot be told apart.
    """
    if not settings.topic_prefix:
        raise ValueError("refusing to drop a deployment with an empty topic prefix")
    admin = AIOKafkaAdminClient(
        bootstrap_servers=settings.kafka_bootstrap, request_timeout_ms=int(timeout * 1000)
    )
    await asyncio.wait_for(admin.start(), timeout)
    try:
        names = owned_topics(settings, await admin.list_topics())
        if names:
            response = await admin.delete_topics(names, timeout_ms=int(timeout * 1000))
            failed = [
                (name, code)
                for name, code, *_ in response.topic_error_codes
                if code not in (0, UNKNOWN_TOPIC)  # gone already: fine
            ]
            if failed:
                raise KafkaError(f"could not delete topics: {failed}")
        return names
    finally:
        await admin.close()
