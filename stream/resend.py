"""``c360 resend prices|labels``: produce a reference topic's current records again.

The prices and labels topics are compacted: what they hold is the last record of
every token and of every wallet (an empty value: deleted), the current one or an older
one (by its time) that came after it, for which the prices agent and the link stage
send on what they hold instead (docs/profiles.md, "Time, prices and labels"). Their
agents tag what they send on with each record's offset, and the receiving stages drop
what they already applied by offset (exactly once), so reading the topic again from
its start sends nothing anew. Producing the records again gives them new offsets:
the stages apply them like any new record (a label applied again changes nothing at
the link stage but the ``Refresh`` it sends the profile stage). What needs it: a
deployment upgraded from before the profile stage kept its own copies of prices and
labels (docs/design.md, "Upgrading"), or any profile state rebuilt without them.
"""

from __future__ import annotations

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from stream import topics
from stream.settings import Settings

RESENDABLE = {spec.suffix: spec for spec in (topics.PRICES, topics.LABELS)}


async def current_records(
    settings: Settings, spec: topics.TopicSpec
) -> list[tuple[int, bytes | None, bytes | None]]:
    """(partition, key, value) of the last record of every key the topic holds now, in
    the order of those records (what compaction keeps, whether or not it ran)."""
    log, _ = await read_log(settings, spec.name(settings))
    last: dict[tuple[int, bytes | None], tuple[int, bytes | None]] = {}
    for partition, offset, key, value in log:
        last[(partition, key)] = (offset, value)
    ordered = sorted(last.items(), key=lambda item: (item[0][0], item[1][0]))
    return [(partition, key, value) for (partition, key), (_, value) in ordered]


async def read_log(
    settings: Settings, name: str, start: dict[int, int] | None = None, read: bool = True
) -> tuple[list[tuple[int, int, bytes | None, bytes | None]], dict[int, int]]:
    """(partition, offset, key, value) of the topic's records from ``start`` (default:
    the beginning) up to its end offsets taken now, in offset order per partition;
    and those end offsets (only those unless ``read``)."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap, enable_auto_commit=False
    )
    await consumer.start()
    try:
        parts = consumer.partitions_for_topic(name)
        if not parts:
            await consumer._client.force_metadata_update()
            parts = consumer.partitions_for_topic(name)
        if not parts:
            raise LookupError(f"topic {name} does not exist (c360 topics creates it)")
        tps = [TopicPartition(name, p) for p in sorted(parts)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        for tp in tps:
            if start and start.get(tp.partition):
                consumer.seek(tp, start[tp.partition])
        ends = await consumer.end_offsets(tps)
        log: list[tuple[int, int, bytes | None, bytes | None]] = []
        todo = set(tps) if read else set()
        while todo:
            # a partition is read once its position reaches the end taken above (a
            # compacted log's last offsets may hold no record: the position tells)
            todo = {tp for tp in todo if await consumer.position(tp) < ends[tp]}
            if not todo:
                break
            for tp, records in (await consumer.getmany(*todo, timeout_ms=1000)).items():
                for record in records:
                    if record.offset < ends[tp]:
                        log.append((tp.partition, record.offset, record.key, record.value))
        log.sort(key=lambda r: (r[0], r[1]))
        return log, {tp.partition: end for tp, end in ends.items()}
    finally:
        await consumer.stop()


async def resend(settings: Settings, spec: topics.TopicSpec) -> int:
    """Produce the topic's current records to it again, each to its own partition;
    returns how many (once the broker has them all).

    The topic's own producers (a prices feed) may write while this runs: a newer
    record of a key written after the read, then the older one produced again, would
    make the older value the key's last record (what compaction keeps, what the stages
    apply last). So once sent, the records since the start are read again, and every
    key whose last record is one of ours, though a record of theirs written since
    says otherwise, gets theirs produced once more; until none is left."""
    name = spec.name(settings)
    _, since = await read_log(settings, name, read=False)  # the end offsets before the read
    records = await current_records(settings, spec)
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap, acks="all", enable_idempotence=True
    )
    await producer.start()
    try:
        ours: set[tuple[int, int]] = set()
        pending = records
        while pending:
            futures = [
                await producer.send(name, value, key=key, partition=partition)
                for partition, key, value in pending
            ]
            for future in futures:
                meta = await future
                ours.add((meta.partition, meta.offset))
            log, _ = await read_log(settings, name, since)
            last: dict[tuple[int, bytes | None], tuple[int, bytes | None]] = {}
            theirs: dict[tuple[int, bytes | None], bytes | None] = {}
            for partition, offset, key, value in log:
                last[(partition, key)] = (offset, value)
                if (partition, offset) not in ours:
                    theirs[(partition, key)] = value
            pending = [
                (partition, key, value)
                for (partition, key), value in theirs.items()
                if (partition, last[(partition, key)][0]) in ours
                and last[(partition, key)][1] != value
            ]
    finally:
        await producer.stop()
    return len(records)
