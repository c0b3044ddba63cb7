"""DLQ tools (死信处理): list, show and redrive rejected records.

Every DLQ record keeps the original bytes and its source position, so after a fix (a device
registered, a schema relaxed, a bug mended) it can be sent back to its source topic. A redriven
record keeps its original key, bytes and record timestamp (so event-time checks judge it as
they would have) and carries the header ``gridwatch-redrive-count`` (its DLQ record's count + 1): if it fails
again, the new DLQ record says so. Each redrive is recorded on the compacted
``dlq-redrives.v1`` keyed by the DLQ record id, so a record is never redriven twice and
listings can tell what is still waiting.
"""

from __future__ import annotations

import base64
import time
from dataclasses import dataclass
from typing import Any

import orjson
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from pipeline.envelope import iso_ms, make_event
from pipeline.ingest import REDRIVE_HEADER
from pipeline.settings import Settings

INPUT_TOPICS = ("reports.v1", "pings.v1", "devices.v1", "subjects.v1", "located.v1", "clock.v1",
                "commands.v1", "alerts.v1", "incident-commands.v1")


@dataclass
class DlqEntry:
    partition: int
    offset: int
    timestamp_ms: int
    data: dict
    redriven: dict | None = None

    @property
    def dlq_id(self) -> str:
        src = self.data["source"]
        return f"dlq:{src['topic']}:{src['partition']}:{src['offset']}"

    def row(self) -> dict:
        src = self.data["source"]
        return {"position": f"{self.partition}:{self.offset}", "at": iso_ms(self.timestamp_ms),
                "code": self.data["code"], "source": f"{src['topic']}:{src['partition']}:{src['offset']}",
                "reason": self.data["reason"], "retriable": self.data.get("retriable", False),
                "redrive_count": self.data.get("redrive_count", 0),
                "redriven": bool(self.redriven)}


def _read_all(settings: Settings, short: str, since_ms: int | None = None) -> list[Any]:
    consumer = KafkaConsumer(**settings.kafka_python_config(), enable_auto_commit=False,
                             consumer_timeout_ms=1500)
    topic = settings.topic(short)
    parts = consumer.partitions_for_topic(topic) or set()
    tps = [TopicPartition(topic, p) for p in sorted(parts)]
    consumer.assign(tps)
    if since_ms is not None and tps:
        found = consumer.offsets_for_times(dict.fromkeys(tps, since_ms))
        for tp in tps:
            if found.get(tp) is not None:
                consumer.seek(tp, found[tp].offset)
            else:
                consumer.seek_to_end(tp)
    else:
        consumer.seek_to_beginning(*tps)
    records = list(consumer)
    consumer.close()
    return records


def read_dlq(settings: Settings, code: str | None = None, since_ms: int | None = None,
             until_ms: int | None = None, source: str | None = None) -> list[DlqEntry]:
    """DLQ records matching the filters, oldest first, each with its redrive marker if any."""
    markers = {}
    for m in _read_all(settings, "dlq-redrives.v1"):
        if m.value:
            markers[m.key.decode()] = orjson.loads(m.value)["data"]
    out = []
    seen: set[str] = set()
    for m in _read_all(settings, "dlq.v1", since_ms):
        try:
            data = orjson.loads(m.value)["data"]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            continue
        if code and data.get("code") != code:
            continue
        if until_ms is not None and m.timestamp > until_ms:
            continue
        if source and not data["source"]["topic"].endswith(source):
            continue
        entry = DlqEntry(m.partition, m.offset, m.timestamp, data)
        if entry.dlq_id in seen:  # a registry rejection every worker recorded, with one id
            continue
        seen.add(entry.dlq_id)
        entry.redriven = markers.get(entry.dlq_id)
        out.append(entry)
    return sorted(out, key=lambda e: (e.timestamp_ms, e.partition, e.offset))


def redrive(settings: Settings, entries: list[DlqEntry], dry_run: bool = False) -> dict:
    """Send each not-yet-redriven entry back to its source topic; returns counts."""
    counts = {"redriven": 0, "skipped_already_redriven": 0, "skipped_not_an_input": 0}
    producer = None if dry_run else KafkaProducer(**settings.kafka_python_config(),
                                                  max_request_size=32 << 20)
    for e in entries:
        src = e.data["source"]["topic"]
        short = src[len(settings.topic_prefix):] if src.startswith(settings.topic_prefix) else None
        if e.redriven:
            counts["skipped_already_redriven"] += 1
            continue
        if short not in INPUT_TOPICS:
            counts["skipped_not_an_input"] += 1
            continue
        if e.data.get("original_truncated"):  # only its first bytes were kept: nothing to resend
            counts["skipped_truncated"] = counts.get("skipped_truncated", 0) + 1
            continue
        counts["redriven"] += 1
        if producer is None:
            continue
        n = int(e.data.get("redrive_count", 0)) + 1
        key_b64 = e.data.get("original_key_b64")
        producer.send(src, value=base64.b64decode(e.data["original_b64"]),
                      key=base64.b64decode(key_b64) if key_b64 else None,
                      headers=[(REDRIVE_HEADER, str(n).encode())],
                      timestamp_ms=e.data["source"].get("timestamp_ms"))  # as first written
        now = iso_ms(int(time.time() * 1000))
        marker = make_event("gridwatch.dlq_redrive.v1", f"redrive:{e.dlq_id}", now,
                            {"dlq_id": e.dlq_id, "target": src, "redrive_count": n, "at": now},
                            source="gridwatch/dlq")
        producer.send(settings.topic("dlq-redrives.v1"), key=e.dlq_id.encode(), value=orjson.dumps(marker))
    if producer is not None:
        producer.flush()
        producer.close()
    return counts
