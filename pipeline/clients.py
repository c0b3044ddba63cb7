"""Small helpers shared by gridwatch's own aiokafka clients."""

from __future__ import annotations

import asyncio
from typing import Any

from pipeline.settings import Settings


async def partitions_of(consumer: Any, topic: str) -> list[int]:
    """The partitions of `topic`, asking the broker when the client has no metadata for it yet.

    An aiokafka consumer without a subscription starts with no topic metadata on Apache Kafka
    (the embedded broker happens to send all of it), so `partitions_for_topic` alone answers
    None there: a reader would silently see an empty topic.
    """
    await asyncio.sleep(0)  # lets a just-started consumer's tasks begin (aiokafka: stop() right
    # after start() without a yield raises CancelledError from its coordinator)
    parts = consumer.partitions_for_topic(topic)
    if not parts:  # a full metadata request; its answer is returned, not kept by the client
        cluster = await consumer._client.fetch_all_metadata()
        parts = cluster.partitions_for_topic(topic)
    return sorted(parts or ())


def committed_offsets(settings: Settings, group: str, partition: int,
                      topics: tuple[str, ...]) -> dict[str, int]:
    """The consumer group's committed offset of one partition of each topic (0 if none)."""
    from kafka import KafkaAdminClient

    admin = KafkaAdminClient(**settings.kafka_python_config())
    try:
        offsets = admin.list_group_offsets(group).get(group) or {}
    finally:
        admin.close()
    out = dict.fromkeys(topics, 0)
    for tp, meta in offsets.items():
        if tp.topic in out and tp.partition == partition and meta.offset > 0:
            out[tp.topic] = meta.offset
    return out


async def read_partition(kafka_cfg: dict, topic: str, partition: int, upto: int,
                         with_timestamp: bool = False) -> Any:
    """Values (or (timestamp ms, value) pairs) of one partition from the beginning up to offset
    `upto` (exclusive).

    Done when a record at `upto - 1` or later was seen, or when the position is at `upto` and
    two fetches in a row brought nothing (records removed by retention or compaction): the
    position alone is not enough, aiokafka can advance it for a fetch whose records a timed-out
    `getmany` has not handed out yet (on a loaded Kafka cluster a rebuild lost its history so).
    """
    if upto <= 0:
        return
    from aiokafka import AIOKafkaConsumer, TopicPartition

    tp = TopicPartition(topic, partition)
    consumer = AIOKafkaConsumer(**kafka_cfg, enable_auto_commit=False, group_id=None,
                                fetch_max_wait_ms=5, max_partition_fetch_bytes=8 << 20)
    await consumer.start()
    try:
        consumer.assign([tp])
        await consumer.seek_to_beginning(tp)
        empty_at_end = 0
        while True:
            batch = await consumer.getmany(tp, timeout_ms=500, max_records=5000)
            msgs = batch.get(tp, [])
            for m in msgs:
                if m.offset >= upto:
                    return
                yield (m.timestamp, m.value) if with_timestamp else m.value
                if m.offset >= upto - 1:
                    return
            if msgs:
                empty_at_end = 0
            elif await consumer.position(tp) >= upto:
                empty_at_end += 1
                if empty_at_end >= 2:
                    return
    finally:
        await consumer.stop()
