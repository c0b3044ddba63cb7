"""A real faust worker on the embedded broker: locate, route, DLQ, restart, third-party read."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import orjson
import pytest
from kafka.partitioner.default import murmur2

from pipeline.devices import device_envelope
from pipeline.settings import Settings
from tests.integration.conftest import Pipeline
from tests.unit.pipeline.helpers import T0_MS, ping, report
from topics.admin import create

pytestmark = [pytest.mark.integration, pytest.mark.engines]


@pytest.fixture(scope="module")
def running(broker, atlas_file, tmp_path_factory):
    """One pipeline namespace with a worker for the whole module."""
    s = Settings.from_env({}, broker=broker.bootstrap, topic_prefix=f"itmod.{os.getpid()}.",
                          embedded=broker.embedded)
    create(s)
    p = Pipeline(s, atlas_file, tmp_path_factory.mktemp("worker"))
    reg = {"device_id": "D1", "kind": "door", "lon": 1.5, "lat": 1.5}
    p.produce("devices.v1", [(b"D1", orjson.dumps(device_envelope(reg, "2026-07-01T00:00:00Z")))])
    proc = p.start_worker()
    yield p
    p.stop_worker(proc)


def partition_for(key: bytes, partitions: int) -> int:
    return (murmur2(key) & 0x7FFFFFFF) % partitions


def test_report_and_ping_are_located_on_the_grid_partition(running):
    running.produce("reports.v1", [(b"R1", orjson.dumps(report("R1", 0.5, 1.5)))], T0_MS)
    running.produce("pings.v1", [(b"D1", orjson.dumps(ping("D1")))], T0_MS)
    msgs = running.collect("located.v1", 2)
    by_source = {orjson.loads(m.value)["data"]["source_id"]: m for m in msgs}
    r = by_source["R1"]
    d = orjson.loads(r.value)["data"]
    assert (d["grid_id"], d["path"], d["police_grid"]) == ("g3", ["C", "T", "M", "g3"], "P2")
    assert r.key == b"g3"
    assert r.partition == partition_for(b"g3", running.settings.partitions)
    assert r.timestamp == T0_MS  # event records keep the input's timestamp
    pm = next(m for k, m in by_source.items() if k != "R1")
    assert orjson.loads(pm.value)["data"]["grid_id"] == "g4"
    assert pm.partition == partition_for(b"g4", running.settings.partitions)


def test_every_class_of_bad_input_reaches_the_dlq(running):
    bad = {
        "not_json": b"{oops",
        "bad_envelope": orjson.dumps({"hello": "world"}),
        "bad_data": orjson.dumps(report("X1", category="aliens")),
        "bad_time": orjson.dumps(report("X2", observed_at="soon")),
        "time_out_of_range": orjson.dumps(report("X3", observed_at="2030-01-01T00:00:00Z")),
        "too_large": orjson.dumps(report("X4", text="x" * 70_000)),
    }
    running.produce("reports.v1", [(code.encode(), body) for code, body in bad.items()], T0_MS)
    running.produce("pings.v1", [(b"NOPE", orjson.dumps(ping("NOPE")))], T0_MS)
    running.produce("reports.v1", [(b"far", orjson.dumps(report("FAR", 60.0, 60.0)))], T0_MS)
    dlq = running.values(running.collect("dlq.v1", len(bad) + 1))
    got = {ev["data"]["code"] for ev in dlq}
    assert set(bad) | {"unknown_device"} <= got
    for ev in dlq:
        assert ev["data"]["reason"] and ev["data"]["source"]["topic"].startswith("itmod.")
    unl = running.values(running.collect("unlocated.v1", 1))
    assert unl[0]["data"]["source_id"] == "FAR"


def test_a_third_party_librdkafka_client_reads_located(running):
    from confluent_kafka import Consumer

    running.produce("reports.v1", [(b"R9", orjson.dumps(report("R9", 1.5, 0.5)))], T0_MS)
    running.collect("located.v1", 1)
    c = Consumer({"bootstrap.servers": running.settings.broker, "group.id": "third-party",
                  "auto.offset.reset": "earliest", "enable.auto.commit": False})
    c.subscribe([running.settings.topic("located.v1")])
    seen = {}
    deadline = time.monotonic() + 60
    while "R9" not in seen and time.monotonic() < deadline:
        m = c.poll(1.0)
        if m is None or m.error():
            continue
        ev = orjson.loads(m.value())
        seen[ev["data"]["source_id"]] = (m.key(), ev)
    c.close()
    key, ev = seen["R9"]
    assert key == b"g2" and ev["specversion"] == "1.0" and ev["type"] == "gridwatch.located.v1"


def test_worker_refuses_to_start_without_topics(make_pipeline):
    p = make_pipeline(create_topics=False)
    res = subprocess.run([sys.executable, "-m", "ops.cli", "worker"], env=p.env(),
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 1
    assert "topics are not ready" in res.stderr and "missing" in res.stderr


def test_worker_refuses_mis_partitioned_topics(make_pipeline):
    from kafka.admin import KafkaAdminClient, NewTopic

    p = make_pipeline(create_topics=False)
    admin = KafkaAdminClient(bootstrap_servers=p.settings.broker)
    admin.create_topics([NewTopic(p.settings.topic("located.v1"), 2, 1)])
    admin.close()
    create(p.settings)
    res = subprocess.run([sys.executable, "-m", "ops.cli", "worker"], env=p.env(),
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 1
    assert "located.v1: 2 partitions, registry says 4" in res.stderr


def test_restarted_worker_continues_where_it_left_off(make_pipeline):
    p = make_pipeline()
    proc = p.start_worker("first")
    first = [(f"A{i}".encode(), orjson.dumps(report(f"A{i}", 0.2 + 0.01 * i, 0.3)))
             for i in range(50)]
    p.produce("reports.v1", first, T0_MS)
    p.collect("located.v1", 50)
    p.stop_worker(proc)
    second = [(f"B{i}".encode(), orjson.dumps(report(f"B{i}", 1.2 + 0.01 * i, 1.3)))
              for i in range(50)]
    p.produce("reports.v1", second, T0_MS)
    proc = p.start_worker("second")
    try:
        located = p.values(p.collect("located.v1", 100))
    finally:
        p.stop_worker(proc)
    ids = [ev["id"] for ev in located]
    assert sorted(set(ids)) == sorted(f"located:report:{k.decode()}" for k, _ in first + second)
    assert len(ids) == len(set(ids)), "a record was processed twice after a clean restart"


def test_the_faust_agent_engine_routes_the_same_way(make_pipeline, monkeypatch):
    monkeypatch.setenv("GRIDWATCH_INGEST_ENGINE", "agent")
    p = make_pipeline()
    proc = p.start_worker("agent")
    try:
        p.produce("reports.v1", [(b"R1", orjson.dumps(report("R1", 0.5, 1.5))),
                                 (b"bad", b"{oops")], T0_MS)
        located = p.values(p.collect("located.v1", 1))
        dlq = p.values(p.collect("dlq.v1", 1))
    finally:
        p.stop_worker(proc)
    assert located[0]["data"]["path"] == ["C", "T", "M", "g3"]
    assert dlq[0]["data"]["code"] == "not_json"
