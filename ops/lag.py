"""Consumer lag (积压) per group and partition, and a one-glance pipeline status.

Lag is the partition's end offset minus the group's committed offset. The embedded broker's end
offsets can trail the last records by a few (see docs/architecture.md, Tansu), so a small negative lag is
shown as 0.
"""

from __future__ import annotations

from typing import Any

from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition

from pipeline.broker import ensure_reachable
from pipeline.settings import Settings


def _reachable(settings: Settings) -> None:
    """A readable error in seconds instead of a client's long bootstrap wait."""
    ensure_reachable(settings)


def groups_of(settings: Settings) -> list[str]:
    """gridwatch's consumer groups: the workers (faust), batch ingest, the notifier."""
    return [settings.app_id, f"{settings.app_id}-ingest", f"{settings.app_id}-notifier"]


def lag(settings: Settings, groups: list[str] | None = None) -> list[dict[str, Any]]:
    """One row per (group, topic, partition) with committed, end and lag."""
    _reachable(settings)
    admin = KafkaAdminClient(**settings.kafka_python_config())
    consumer = KafkaConsumer(**settings.kafka_python_config())
    rows: list[dict[str, Any]] = []
    try:
        for group in groups or groups_of(settings):
            offsets = admin.list_group_offsets(group).get(group) or {}
            tps = [tp for tp in offsets if tp.topic.startswith(settings.topic_prefix)]
            if not tps:
                continue
            ends = consumer.end_offsets([TopicPartition(tp.topic, tp.partition) for tp in tps])
            for tp in sorted(tps, key=lambda t: (t.topic, t.partition)):
                committed = max(offsets[tp].offset, 0)
                end = ends.get(TopicPartition(tp.topic, tp.partition), 0)
                rows.append({"group": group, "topic": tp.topic[len(settings.topic_prefix):],
                             "partition": tp.partition, "committed": committed, "end": end,
                             "lag": max(end - committed, 0)})
    finally:
        consumer.close()
        admin.close()
    return rows


def totals(rows: list[dict[str, Any]]) -> dict[str, dict[str, int]]:
    """Lag summed per group and topic."""
    out: dict[str, dict[str, int]] = {}
    for r in rows:
        out.setdefault(r["group"], {}).setdefault(r["topic"], 0)
        out[r["group"]][r["topic"]] += r["lag"]
    return out


def status(settings: Settings, max_lag: int = 10_000) -> dict[str, Any]:
    """Healthy or not, and why: topics, consumer lag, DLQ records waiting for a person."""
    from ops.dlq import read_dlq
    from topics.admin import describe

    problems: list[str] = []
    _reachable(settings)
    states = describe(settings)
    bad = [s.name for s in states if not s.ok]
    if bad:
        problems.append(f"topics missing or mis-partitioned: {', '.join(bad)}")
    rows = lag(settings)
    per = totals(rows)
    for group, topics in per.items():
        for topic, value in topics.items():
            if value > max_lag:
                problems.append(f"{group} is {value} records behind on {topic}")
    if not rows:
        problems.append("no consumer group has committed anything: are workers running?")
    waiting = [e for e in read_dlq(settings) if not e.redriven]
    return {"healthy": not problems, "problems": problems, "lag": per,
            "dlq_waiting": len(waiting), "topics": len(states)}


def _log_sizes(admin: KafkaAdminClient, names: list[str]) -> dict[tuple[str, int], int] | None:
    """Bytes on disk per partition (one replica), or None where the broker cannot tell
    (DescribeLogDirs; the embedded broker has no disk)."""
    try:
        result = admin.describe_log_dirs(names)
    except Exception:  # IncompatibleBrokerVersion on Tansu; authorisation on some clusters
        return None
    sizes: dict[tuple[str, int], int] = {}

    def walk(node: Any, topic: str | None = None) -> None:
        if isinstance(node, dict):
            name = node.get("name") or node.get("topic")
            if isinstance(name, str) and "partitions" in node:
                topic = name
            part = node.get("partition_index", node.get("partition"))
            size = node.get("partition_size", node.get("size"))
            if topic and isinstance(part, int) and isinstance(size, int):
                sizes[(topic, part)] = max(size, sizes.get((topic, part), 0))
            for v in node.values():
                walk(v, topic)
        elif isinstance(node, list | tuple):
            for v in node:
                walk(v, topic)

    walk(result)
    return sizes


def topic_partitions(settings: Settings) -> list[dict[str, Any]]:
    """Per registry topic and partition: first and end offset, records, bytes (when the broker
    says), and each gridwatch group's lag on it."""
    from topics.registry import TOPICS

    _reachable(settings)
    admin = KafkaAdminClient(**settings.kafka_python_config())
    consumer = KafkaConsumer(**settings.kafka_python_config())
    try:
        existing = set(admin.list_topics())
        names = [settings.topic(t.name) for t in TOPICS if settings.topic(t.name) in existing]
        tps = [TopicPartition(n, p) for n in names for p in sorted(consumer.partitions_for_topic(n) or ())]
        ends = consumer.end_offsets(tps) if tps else {}
        starts = consumer.beginning_offsets(tps) if tps else {}
        sizes = _log_sizes(admin, names)
    finally:
        consumer.close()
        admin.close()
    lags: dict[tuple[str, int], dict[str, int]] = {}
    for r in lag(settings):
        lags.setdefault((r["topic"], r["partition"]), {})[r["group"]] = r["lag"]
    rows = []
    for tp in tps:
        short = tp.topic[len(settings.topic_prefix):]
        rows.append({"topic": short, "partition": tp.partition, "first": starts.get(tp, 0),
                     "end": ends.get(tp, 0), "records": max(ends.get(tp, 0) - starts.get(tp, 0), 0),
                     "bytes": None if sizes is None else sizes.get((tp.topic, tp.partition)),
                     "lag": lags.get((short, tp.partition), {})})
    return rows
