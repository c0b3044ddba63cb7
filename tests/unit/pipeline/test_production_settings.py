"""Production settings: the clock ticker's ownership rule, replication, durable producers,
topic comparison with the registry, the worker heartbeat."""

from __future__ import annotations

import time

import orjson
import pytest

from pipeline.detect_agents import ClockTicker
from pipeline.errors import ConfigError
from pipeline.health import FILE, check_heartbeat, write_heartbeat
from pipeline.kafka_cluster import BROKER_CONFIG, KafkaCluster, replication_settings
from pipeline.settings import Settings, durable_producer
from topics.admin import TopicState, topic_configs
from topics.registry import BY_NAME


def test_ticker_ticks_owned_partitions_once_per_interval_and_hands_over():
    t = ClockTicker(4)
    assert t.due({0, 2}, 30_000) == [0, 2]
    for p in (0, 2):
        t.sent(p, 30_000)
    assert t.due({0, 2}, 30_000) == []  # the same interval: nothing twice
    assert t.due({0, 2, 3}, 30_000) == [3]  # newly owned: ticked at once
    t.sent(3, 30_000)
    assert t.due({3}, 60_000) == [3]  # 0 and 2 handed over: no longer ticked here
    assert 0 not in t.last and 2 not in t.last
    assert t.due({0, 7}, 60_000) == [0]  # a partition beyond the topic's count is ignored


def test_replication_follows_the_cluster_size():
    assert replication_settings(1)["min.insync.replicas"] == "1"
    three = replication_settings(3)
    assert three["default.replication.factor"] == "3" and three["min.insync.replicas"] == "2"
    assert replication_settings(5)["offsets.topic.replication.factor"] == "3"
    assert BROKER_CONFIG["auto.create.topics.enable"] == "false"
    assert BROKER_CONFIG["unclean.leader.election.enable"] == "false"


def test_topic_configs_add_min_insync_for_rf3():
    located = BY_NAME["located.v1"]
    assert topic_configs(located, 3)["min.insync.replicas"] == "2"
    assert topic_configs(located, 1)["min.insync.replicas"] == "1"
    assert topic_configs(BY_NAME["incidents.v1"], 3)["cleanup.policy"] == "compact"


def test_topic_differences_name_partitions_replication_and_configs():
    want = topic_configs(BY_NAME["located.v1"], 3)
    ok = TopicState("x", "located.v1", 4, 4, False, 3, 3, want, dict(want))
    assert ok.ok and ok.differences == []
    bad = TopicState("x", "located.v1", 4, 2, False, 3, 1, want,
                     {**want, "cleanup.policy": "compact", "retention.ms": "1"})
    assert not bad.ok
    text = "; ".join(bad.differences)
    assert "2 partitions" in text and "replication factor 1" in text
    assert "cleanup.policy=compact" in text and "retention.ms=1" in text
    unknown = TopicState("x", "located.v1", 4, 4, False, 3, 3, want, None)  # configs not described
    assert unknown.ok
    assert TopicState("x", "located.v1", 4, None, False).differences == ["missing"]


def test_settings_read_replication_and_session_timeout():
    s = Settings.from_env({"GRIDWATCH_REPLICATION_FACTOR": "3", "GRIDWATCH_SESSION_TIMEOUT_S": "12"})
    assert s.replication_factor == 3 and s.group_session_timeout_s == 12
    assert Settings.from_env({}).group_session_timeout_s == 20
    assert Settings.from_env({"GRIDWATCH_EMBEDDED": "true"}).group_session_timeout_s == 6
    for bad in ({"GRIDWATCH_REPLICATION_FACTOR": "0"}, {"GRIDWATCH_REPLICATION_FACTOR": "three"},
                {"GRIDWATCH_SESSION_TIMEOUT_S": "1"}):
        with pytest.raises(ConfigError, match=next(iter(bad))):
            Settings.from_env(bad)


def test_producers_are_durable_and_idempotent_on_kafka():
    assert durable_producer(Settings.from_env({})) == {"acks": "all", "enable_idempotence": True}
    assert durable_producer(Settings.from_env({"GRIDWATCH_EMBEDDED": "true"}))["acks"] == "all"


def test_kafka_cluster_refuses_a_bad_size():
    with pytest.raises(ConfigError, match="--brokers 0"):
        KafkaCluster(0)


def test_heartbeat_fresh_stale_missing_and_garbled(tmp_path):
    d = str(tmp_path)
    ok, line = check_heartbeat(d, 30)
    assert not ok and "no heartbeat" in line
    write_heartbeat(d, [0, 3])
    ok, line = check_heartbeat(d, 30)
    assert ok and "[0, 3]" in line
    (tmp_path / FILE).write_bytes(orjson.dumps({"at": time.time() - 100, "partitions": []}))
    ok, line = check_heartbeat(d, 30)
    assert not ok and "100s ago" in line
    (tmp_path / FILE).write_bytes(b"\x00garbage")
    ok, line = check_heartbeat(d, 30)
    assert not ok and "unreadable" in line
