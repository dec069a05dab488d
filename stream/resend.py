"""``c360 resend prices|labels``: produce a reference topic's current records again.

The prices and labels topics are compacted: what they hold is the current price of
every token and the current labels of every wallet (an empty value: deleted). Their
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
    name = spec.name(settings)
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
        ends = await consumer.end_offsets(tps)
        last: dict[tuple[int, bytes | None], tuple[int, bytes | None]] = {}
        todo = set(tps)
        while todo:
            # a partition is read once its position reaches the end taken above (a
            # compacted log's last offsets may hold no record: the position tells)
            todo = {tp for tp in todo if await consumer.position(tp) < ends[tp]}
            if not todo:
                break
            for tp, records in (await consumer.getmany(*todo, timeout_ms=1000)).items():
                for record in records:
                    if record.offset < ends[tp]:
                        last[(tp.partition, record.key)] = (record.offset, record.value)
        ordered = sorted(last.items(), key=lambda item: (item[0][0], item[1][0]))
        return [(partition, key, value) for (partition, key), (_, value) in ordered]
    finally:
        await consumer.stop()


async def resend(settings: Settings, spec: topics.TopicSpec) -> int:
    """Produce the topic's current records to it again, each to its own partition;
    returns how many (once the broker has them all)."""
    records = await current_records(settings, spec)
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap, acks="all", enable_idempotence=True
    )
    await producer.start()
    try:
        name = spec.name(settings)
        futures = [
            await producer.send(name, value, key=key, partition=partition)
            for partition, key, value in records
        ]
        for future in futures:
            await future
    finally:
        await producer.stop()
    return len(records)
