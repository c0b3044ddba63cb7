"""Provision and check the registry's topics with kafka-python's admin client."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from kafka import KafkaAdminClient
from kafka.admin import ConfigResource, ConfigResourceType, NewTopic
from kafka.errors import TopicAlreadyExistsError

from pipeline.errors import TopicsNotReady
from pipeline.settings import Settings
from topics.registry import TOPICS, TopicSpec

CHECKED_CONFIGS = ("cleanup.policy", "retention.ms", "min.insync.replicas")


@dataclass(frozen=True)
class TopicState:
    """What the broker says about one registry topic."""

    name: str
    short: str
    want_partitions: int
    have_partitions: int | None  # None: missing
    compacted: bool
    want_replication: int | None = None  # None: not checked
    have_replication: int | None = None
    want_configs: dict[str, str] = field(default_factory=dict)
    have_configs: dict[str, str] | None = None  # None: the broker does not describe configs

    @property
    def differences(self) -> list[str]:
        """Each way the topic differs from the registry, readable."""
        if self.have_partitions is None:
            return ["missing"]
        out = []
        if self.have_partitions != self.want_partitions:
            out.append(f"{self.have_partitions} partitions, registry says {self.want_partitions}")
        if self.want_replication and self.have_replication != self.want_replication:
            out.append(f"replication factor {self.have_replication}, registry says "
                       f"{self.want_replication}")
        for key, want in self.want_configs.items():
            have = (self.have_configs or {}).get(key)
            if self.have_configs is not None and have != want:
                out.append(f"{key}={have}, registry says {want}")
        return out

    @property
    def ok(self) -> bool:
        """Present with the declared partitions, replication and configs."""
        return not self.differences


def replication_factor(settings: Settings, admin: KafkaAdminClient) -> int:
    """The replication factor for this deployment: GRIDWATCH_REPLICATION_FACTOR, else 1 on the
    embedded broker, else min(3, brokers in the cluster)."""
    if settings.replication_factor:
        return settings.replication_factor
    if settings.embedded:
        return 1
    brokers = admin.describe_cluster().get("brokers") or []
    return max(1, min(3, len(brokers)))


def topic_configs(spec: TopicSpec, rf: int) -> dict[str, str]:
    """The registry's configs plus min.insync.replicas = RF-1 when RF >= 3 (one broker may be
    down and acks=all writes still succeed; two down and they stop instead of losing data)."""
    return {**spec.configs(), "min.insync.replicas": str(rf - 1 if rf >= 3 else 1)}


def broker_configs(admin: KafkaAdminClient, names: list[str]) -> dict[str, dict[str, str]] | None:
    """The checked configs of these topics, or None where the broker cannot describe them."""
    try:
        res = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, n) for n in names],
                                     config_filter="all")
    except Exception:  # the embedded broker answers DescribeConfigs partly or not at all
        return None
    topics = res.get("topic") or {}
    out: dict[str, dict[str, str]] = {}
    for name in names:
        entries = topics.get(name) or {}
        out[name] = {k: str(v.get("value") if isinstance(v, dict) else v)
                     for k, v in entries.items() if k in CHECKED_CONFIGS}
    return out


def admin_client(settings: Settings) -> KafkaAdminClient:
    """An admin client for the configured broker."""
    return KafkaAdminClient(client_id="gridwatch-admin", request_timeout_ms=10000,
                            **settings.kafka_python_config())


def describe(settings: Settings, admin: KafkaAdminClient | None = None,
             full: bool = False) -> list[TopicState]:
    """State of every registry topic; with `full`, replication factor and configs too."""
    own = admin is None
    admin = admin or admin_client(settings)
    try:
        existing = set(admin.list_topics())
        names = [t.full_name(settings.topic_prefix) for t in TOPICS]
        present = [n for n in names if n in existing]
        counts: dict[str, int] = {}
        replicas: dict[str, int] = {}
        if present:
            for d in admin.describe_topics(present):
                name = d.get("topic") or d["name"]
                counts[name] = len(d["partitions"])
                replicas[name] = min((len(p.get("replica_nodes") or p.get("replicas") or ())
                                      for p in d["partitions"]),
                                     default=0)
        rf = replication_factor(settings, admin) if full else None
        configs = broker_configs(admin, present) if full and present else None
        return [TopicState(name, t.name, t.partition_count(settings.partitions),
                           counts.get(name), t.compacted,
                           want_replication=rf, have_replication=replicas.get(name),
                           want_configs=topic_configs(t, rf) if rf else {},
                           have_configs=None if configs is None else configs.get(name, {}))
                for t, name in zip(TOPICS, names, strict=True)]
    finally:
        if own:
            admin.close()


def create(settings: Settings) -> list[str]:
    """Create every missing registry topic; returns the names created."""
    admin = admin_client(settings)
    try:
        states = describe(settings, admin)
        rf = replication_factor(settings, admin)
        new = [NewTopic(s.name, s.want_partitions, rf, topic_configs=topic_configs(spec, rf))
               for s, spec in zip(states, TOPICS, strict=True) if s.have_partitions is None]
        if new:
            try:
                admin.create_topics(new, wait_for_metadata=True)  # leaders elected
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
    lines = [f"  {s.name}: " + "; ".join(s.differences) for s in bad]
    raise TopicsNotReady("topics are not ready (run `gridwatch topics create`):\n"
                         + "\n".join(lines))


def as_rows(states: list[TopicState]) -> list[dict[str, Any]]:
    """JSON-ready rows."""
    return [{"topic": s.name, "partitions": s.have_partitions, "expected": s.want_partitions,
             "compacted": s.compacted, "replication_factor": s.have_replication,
             "expected_replication_factor": s.want_replication, "configs": s.have_configs,
             "expected_configs": s.want_configs or None, "differences": s.differences,
             "ok": s.ok} for s in states]
