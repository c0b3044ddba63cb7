"""Faults on the production engine: the crash-safety scenario (tests/integration/test_replay.py)
run undisturbed on a 3-broker Apache Kafka, then again (1) with one broker SIGKILLed mid-input
and restarted after the acknowledgement, and (2) with three workers, a fourth started mid-input
and one stopped after the alerts (two rebalances while records flow). Alerts, escalations and
the final incidents (ids and bodies) equal the undisturbed run's.

The live-clock fault (the ticking worker SIGKILLed) is in test_live_clock.py.
"""

from __future__ import annotations

import os
import time

import pytest

from pipeline.settings import Settings
from tests.integration.conftest import Pipeline
from tests.integration.test_replay import outputs, run_scenario
from topics.admin import create, describe

pytestmark = [pytest.mark.integration, pytest.mark.kafka]


def _pipeline(cluster, atlas_file, tmp_path, tag: str) -> Pipeline:
    s = Settings.from_env({}, broker=cluster.bootstrap, topic_prefix=f"{tag}.", embedded=False)
    create(s)
    states = describe(s, full=True)
    assert all(t.have_replication == 3 and t.ok for t in states), [t.differences for t in states]
    work = tmp_path / tag
    work.mkdir()
    return Pipeline(s, atlas_file, work, {"GRIDWATCH_CLOCK": "off", "GRIDWATCH_APP_ID": tag})


def _run(cluster, atlas_file, tmp_path, tag: str, **kw) -> dict:
    p = _pipeline(cluster, atlas_file, tmp_path, tag)
    run_scenario(p, tag, **kw)
    return outputs(p)


@pytest.fixture(scope="module")
def calm(kafka_cluster, atlas_file, tmp_path_factory) -> dict:
    """The undisturbed run, one worker, every broker up."""
    tag = f"kcalm{os.getpid()}r{time.monotonic_ns() % 1000000}"  # a rerun gets its own topics
    out = _run(kafka_cluster, atlas_file, tmp_path_factory.mktemp("calm"), tag)
    assert len(out["escalations.v1"]) > 20 and out["incidents.v1"] and out["alerts.v1"]
    return out


def diff(rough: dict, calm: dict) -> list:
    """(id, field, rough value, calm value) of every record body that differs."""
    out = []
    for rid in sorted(set(rough) | set(calm)):
        a, b = rough.get(rid, {}).get("data"), calm.get(rid, {}).get("data")
        if a != b:
            keys = sorted(set(a or {}) | set(b or {}))
            out += [(rid, k, (a or {}).get(k), (b or {}).get(k)) for k in keys
                    if (a or {}).get(k) != (b or {}).get(k)] or [(rid, None, a, b)]
    return out


def assert_same(rough: dict, calm: dict) -> None:
    for topic in ("alerts.v1", "escalations.v1", "incidents.v1"):
        assert not diff(rough[topic], calm[topic]), (topic, diff(rough[topic], calm[topic])[:6])
    assert rough["alerts.v1"] == calm["alerts.v1"]
    assert rough["escalations.v1"] == calm["escalations.v1"]  # nothing lost, nothing new
    assert rough["incidents.v1"] == calm["incidents.v1"]  # final state of every incident


def test_a_broker_sigkilled_mid_scenario_and_restarted_changes_nothing(kafka_cluster, atlas_file,
                                                                         tmp_path, calm):
    victim = 2
    seen: list[str] = []

    def fault(step: str, _workers: list) -> None:
        seen.append(step)
        if step == "mid-inputs":
            kafka_cluster.kill(victim)
        elif step == "after-ack":
            kafka_cluster.restart(victim)

    try:
        tag = f"kbroker{os.getpid()}r{time.monotonic_ns() % 1000000}"
        rough = _run(kafka_cluster, atlas_file, tmp_path, tag, fault=fault)
    finally:
        kafka_cluster.restart(victim)  # the session's cluster stays whole for the next tests
    assert seen == ["mid-inputs", "after-alerts", "after-ack"]
    assert_same(rough, calm)


def test_rebalances_while_records_flow_change_nothing(kafka_cluster, atlas_file, tmp_path, calm):
    tag = f"krebal{os.getpid()}r{time.monotonic_ns() % 1000000}"
    p = _pipeline(kafka_cluster, atlas_file, tmp_path, tag)
    joined: list = []

    def fault(step: str, workers: list) -> None:
        if step == "mid-inputs":  # a fourth worker joins: the group rebalances
            joined.append(p.start_worker("worker-joined"))
            workers.append(joined[-1])
        elif step == "after-alerts":  # the first leaves (SIGTERM): the group rebalances again
            p.stop_worker(workers.pop(0))

    run_scenario(p, tag, workers=3, fault=fault)
    assert joined, "the fourth worker was not started"
    assert_same(outputs(p), calm)
