"""Provision and check the registry's topics with kafka-python's admin client."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kafka import KafkaAdminClient
from kafka.admin import NewTopic
from kafka.errors import TopicAlreadyExistsError

from pipeline.errors import TopicsNotReady
from pipeline.settings import Settings
from topics.registry import TOPICS


@dataclass(frozen=True)
class TopicState:
    """What the broker says about one registry topic."""

    name: str
    short: str
    want_partitions: int
    have_partitions: int | None  # None: missing
    compacted: bool

    @property
    def ok(self) -> bool:
        """Present with the declared partition count."""
        return self.have_partitions == self.want_partitions


def admin_client(settings: Settings) -> KafkaAdminClient:
    """An admin client for the configured broker."""
    return KafkaAdminClient(client_id="gridwatch-admin", request_timeout_ms=10000,
                            **settings.kafka_python_config())


def describe(settings: Settings, admin: KafkaAdminClient | None = None) -> list[TopicState]:
    """State of every registry topic."""
    own = admin is None
    admin = admin or admin_client(settings)
    try:
        existing = set(admin.list_topics())
        names = [t.full_name(settings.topic_prefix) for t in TOPICS]
        present = [n for n in names if n in existing]
        counts: dict[str, int] = {}
        if present:
            for d in admin.describe_topics(present):
                counts[d.get("topic") or d["name"]] = len(d["partitions"])
        return [TopicState(t.full_name(settings.topic_prefix), t.name,
                           t.partition_count(settings.partitions),
                           counts.get(t.full_name(settings.topic_prefix)), t.compacted)
                for t in TOPICS]
    finally:
        if own:
            admin.close()


def create(settings: Settings) -> list[str]:
    """Create every missing registry topic; returns the names created."""
    admin = admin_client(settings)
    try:
        states = describe(settings, admin)
        new = [NewTopic(s.name, s.want_partitions, 1, topic_configs=spec.configs())
               for s, spec in zip(states, TOPICS, strict=True) if s.have_partitions is None]
        if new:
            try:
                admin.create_topics(new)
            except TopicAlreadyExistsError:
                pass  # a concurrent create (two init jobs) is fine
        return [t.name for t in new]
    finally:
        admin.close()


def check(settings: Settings) -> None:
    """Raise TopicsNotReady naming every missing or mis-partitioned topic."""
    bad = [s for s in describe(settings) if not s.ok]
    if not bad:
        return
    lines = [f"  {s.name}: " + ("missing" if s.have_partitions is None else
                                f"{s.have_partitions} partitions, registry says "
                                f"{s.want_partitions}") for s in bad]
    raise TopicsNotReady("topics are not ready (run `gridwatch topics create`):\n"
                         + "\n".join(lines))


def as_rows(states: list[TopicState]) -> list[dict[str, Any]]:
    """JSON-ready rows."""
    return [{"topic": s.name, "partitions": s.have_partitions, "expected": s.want_partitions,
             "compacted": s.compacted, "ok": s.ok} for s in states]
