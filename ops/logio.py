"""Kafka side of the archive and of replay (kafka-python): the archive sink, reading a time range
of topics, and copying a log into a shadow namespace."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import replace
from typing import Any

from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from pipeline.archive import ArchiveWriter
from pipeline.errors import ConfigError
from pipeline.ingest import REDRIVE_HEADER
from pipeline.logs import get_logger
from pipeline.replay import LogRecord
from pipeline.settings import Settings
from topics.registry import TOPICS


def _consumer(settings: Settings, group: str | None = None) -> KafkaConsumer:
    return KafkaConsumer(**settings.kafka_python_config(), group_id=group, enable_auto_commit=False,
                         max_partition_fetch_bytes=8 << 20, fetch_max_bytes=64 << 20,
                         consumer_timeout_ms=1000)


def _partitions(consumer: KafkaConsumer, settings: Settings,
                shorts: Iterable[str]) -> dict[TopicPartition, str]:
    out = {}
    for short in shorts:
        for p in sorted(consumer.partitions_for_topic(settings.topic(short)) or ()):
            out[TopicPartition(settings.topic(short), p)] = short
    return out


def caught_up(consumer: KafkaConsumer, tps: Iterable[TopicPartition],
              ends: dict[TopicPartition, int] | None, idle: int) -> bool:
    """Read to the end: three empty polls in a row and, on Apache Kafka (exact end offsets),
    every partition at the end offset taken at the start. The embedded broker's end offsets
    can trail the real end, so there idleness alone decides; on a loaded 3-broker cluster an
    idle second alone can come before the last fetch does."""
    if idle < 3:
        return False
    return ends is None or all(consumer.position(tp) >= ends[tp] for tp in tps)


def end_offsets(consumer: KafkaConsumer, settings: Settings,
                tps: Iterable[TopicPartition]) -> dict[TopicPartition, int] | None:
    """End offsets to read up to (None on the embedded broker, see `caught_up`)."""
    return None if settings.embedded else consumer.end_offsets(list(tps))


def _redrives(headers: Any) -> int:
    for k, v in headers or ():
        if k == REDRIVE_HEADER:
            try:
                return int(v)
            except (TypeError, ValueError):
                return 0
    return 0


def kafka_streams(settings: Settings, shorts: Iterable[str], since_ms: int | None = None,
                  until_ms: int | None = None) -> tuple[list[Iterator[LogRecord]], int]:
    """The records of these topics between two times (``offsets_for_times``), one list per
    partition in offset order, read until the partitions have nothing more; and their count.

    The end is found by reading (and, on Apache Kafka, by the end offsets too, see
    `caught_up`): the embedded broker (Tansu) reports the base offset + 1 of a partition's last
    record batch there, short of its real end.
    """
    consumer = _consumer(settings)
    try:
        tps = _partitions(consumer, settings, shorts)
        if not tps:
            raise ConfigError(f"none of {list(shorts)} exists under prefix {settings.topic_prefix!r}")
        consumer.assign(list(tps))
        for tp in tps:
            consumer.seek_to_beginning(tp)
        if since_ms is not None:
            for tp, found in consumer.offsets_for_times(dict.fromkeys(tps, since_ms)).items():
                if found is None:
                    consumer.seek_to_end(tp)  # nothing that recent
                else:
                    consumer.seek(tp, found.offset)
        lists: dict[TopicPartition, list[LogRecord]] = {tp: [] for tp in tps}
        ends = end_offsets(consumer, settings, tps)
        idle = 0
        while not caught_up(consumer, tps, ends, idle):
            got = consumer.poll(timeout_ms=300, max_records=10_000)
            idle = 0 if got else idle + 1
            for tp, msgs in got.items():
                lists[tp] += [LogRecord(tps[tp], m.partition, m.offset, m.timestamp, m.key, m.value,
                                        _redrives(m.headers))
                              for m in msgs if until_ms is None or m.timestamp <= until_ms]
    finally:
        consumer.close()
    return [iter(v) for _, v in sorted(lists.items())], sum(len(v) for v in lists.values())


class ArchiveSink:
    """Copies every registry topic into the archive; commits a partition's offset only after
    the segment holding its records is on disk (group ``<app id>-archive``).

    Partitions are assigned, not balanced: run one archiver per cluster and archive directory.
    """

    def __init__(self, settings: Settings, root: str, flush_s: float = 60.0,
                 topics: Iterable[str] | None = None) -> None:
        self.settings = settings
        self.writer = ArchiveWriter(root)
        self.flush_s = flush_s
        self.group = f"{settings.app_id}-archive"
        self.shorts = tuple(topics) if topics is not None else tuple(t.name for t in TOPICS)
        self.stop = threading.Event()
        self.records = 0
        self.log = get_logger(component="archive")

    def run(self, until_caught_up: bool = False) -> int:
        """Archive until stopped (or, with ``until_caught_up``, until the end offsets seen at
        the start are written); returns the number of records archived."""
        from kafka.structs import OffsetAndMetadata

        consumer = _consumer(self.settings, self.group)
        try:
            tps = _partitions(consumer, self.settings, self.shorts)
            consumer.assign(list(tps))
            for tp in tps:
                committed = consumer.committed(tp)
                if committed is None:
                    consumer.seek_to_beginning(tp)
                else:
                    consumer.seek(tp, committed)
            last_roll = time.monotonic()
            ends = end_offsets(consumer, self.settings, tps) if until_caught_up else None
            idle = 0
            while not self.stop.is_set():
                got = consumer.poll(timeout_ms=300, max_records=20_000)
                idle = 0 if got else idle + 1
                for tp, msgs in got.items():
                    for m in msgs:
                        self.writer.add(tps[tp], m.partition, m.offset, m.timestamp, m.key, m.value,
                                        m.headers or ())
                    self.records += len(msgs)
                done = until_caught_up and caught_up(consumer, tps, ends, idle)
                if done or time.monotonic() - last_roll >= self.flush_s:
                    segs = self.writer.roll()
                    positions = {tp: OffsetAndMetadata(consumer.position(tp), "", -1) for tp in tps}
                    consumer.commit(positions)
                    last_roll = time.monotonic()
                    if segs:
                        self.log.info("archive_rolled", segments=len(segs),
                                      records=sum(s.count for s in segs), total=self.records)
                if done:
                    break
            self.writer.roll()
            consumer.commit({tp: OffsetAndMetadata(consumer.position(tp), "", -1) for tp in tps})
        finally:
            consumer.close()
        return self.records


def publish_shadow(settings: Settings, shadow_prefix: str, records: Iterable[LogRecord],
                   pace: Any = None) -> int:
    """Copy log records into the shadow namespace (same partition, key, timestamp, headers)."""
    if shadow_prefix == settings.topic_prefix:
        raise ConfigError(f"shadow prefix {shadow_prefix!r} is the live prefix: pick another "
                          "(e.g. shadow.) so a replay never touches live topics")
    from topics.admin import create

    shadow = replace(settings, topic_prefix=shadow_prefix)
    create(shadow)
    producer = KafkaProducer(**shadow.kafka_python_config(), linger_ms=5, acks=1,
                             max_request_size=max(1 << 21, settings.max_message_bytes * 4))
    n = 0
    try:
        for rec in records:
            if pace is not None:
                pace(rec)
            headers = [(REDRIVE_HEADER, str(rec.redrive_count).encode())] if rec.redrive_count else None
            producer.send(shadow.topic(rec.topic), key=rec.key, value=rec.value,
                          partition=rec.partition, timestamp_ms=rec.timestamp_ms, headers=headers)
            n += 1
        producer.flush()
    finally:
        producer.close()
    return n
