"""Detectors through the embedded broker: the same input log twice gives identical alerts.

Input goes in where integrators put it (devices.v1, subjects.v1, pings.v1, reports.v1), through
ingest and the detectors of a real worker; ticks are written after the data they close, as the
archive replayer does.
"""

from __future__ import annotations

import os
from datetime import datetime

import orjson
import pytest
import yaml
from kafka import KafkaConsumer

from pipeline.detect.config import DEFAULT_FILE
from pipeline.detect.wiring import tick_envelope
from pipeline.devices import device_envelope
from pipeline.envelope import iso_ms, validator
from pipeline.settings import Settings
from pipeline.subjects import subject_envelope
from tests.integration.conftest import Pipeline, read_until_quiet, wait_committed
from tests.unit.pipeline.helpers import T0_MS, envelope
from topics.admin import create

pytestmark = [pytest.mark.integration, pytest.mark.engines]
MIN = 60_000
DEVICES = [
    {"device_id": "door-s1", "kind": "door", "lon": 0.5, "lat": 0.5, "subject_id": "s1",
     "heartbeat_s": 604800},
    {"device_id": "water-s2", "kind": "water_meter", "lon": 1.5, "lat": 0.5, "subject_id": "s2",
     "heartbeat_s": 3600},
    {"device_id": "rg-1", "kind": "rain_gauge", "lon": 1.2, "lat": 1.2, "zone_id": "H1",
     "heartbeat_s": 600},
]
SUBJECTS = [{"subject_id": "s1", "profile": "living_alone_24h", "grid_id": "g1",
             "devices": ["door-s1"], "call": ["grid_worker", "family"]},
            {"subject_id": "s2", "profile": "living_alone_12h", "grid_id": "g2",
             "devices": ["water-s2"]}]


def input_log() -> tuple[list, list]:
    """Pings and reports over 30 minutes of event time."""
    pings, reports = [], []
    for m in range(30):
        t = T0_MS + m * MIN
        pings.append(("rg-1", {"device_id": "rg-1", "kind": "rain_gauge", "value": 3.0,
                               "unit": "mm", "observed_at": iso_ms(t)}))
        if m % 10 == 0:
            pings.append(("door-s1", {"device_id": "door-s1", "kind": "door", "value": 1,
                                      "unit": "bool", "observed_at": iso_ms(t)}))
            pings.append(("water-s2", {"device_id": "water-s2", "kind": "water_meter",
                                       "value": 0.02, "unit": "m3", "observed_at": iso_ms(t)}))
    for i in range(11):  # one fallen wall, eleven reports
        reports.append((f"R{i}", {"report_id": f"R{i}", "reporter_id": f"W{i % 3}",
                                  "category": "safety_hazard", "severity": "medium",
                                  "text": "围墙开裂", "lon": 0.5 + i * 0.0001, "lat": 1.5,
                                  "observed_at": iso_ms(T0_MS + i * MIN)}))
    def ts(d: dict) -> int:  # written when observed, as a live source would
        return int(datetime.fromisoformat(d["observed_at"]).timestamp() * 1000)

    return ([(k.encode(), orjson.dumps(envelope("gridwatch.ping.v1", d, f"p-{k}-{d['observed_at']}")),
              ts(d)) for k, d in pings],
            [(k.encode(), orjson.dumps(envelope("gridwatch.report.v1", d, f"r-{k}")), ts(d))
             for k, d in reports])


def run_once(broker, atlas_file, workdir, tag: str) -> list[tuple[bytes, bytes]]:
    prefix = f"itdet{tag}.{os.getpid()}."
    s = Settings.from_env({}, broker=broker.bootstrap, topic_prefix=prefix, embedded=broker.embedded)
    create(s)
    cfg = yaml.safe_load(DEFAULT_FILE.read_text())
    cfg["clock"]["allowed_lateness"] = "2h"  # input partitions interleave freely: nothing is late
    det = workdir / f"detectors-{tag}.yaml"
    det.write_text(yaml.safe_dump(cfg, allow_unicode=True))
    p = Pipeline(s, atlas_file, workdir, {"GRIDWATCH_CLOCK": "off", "GRIDWATCH_DETECTORS": str(det),
                                          "GRIDWATCH_APP_ID": f"gw-{tag}-{os.getpid()}"})
    p.produce("devices.v1", [(d["device_id"].encode(), orjson.dumps(device_envelope(d, iso_ms(T0_MS))))
                             for d in DEVICES])
    p.produce("subjects.v1", [(r["subject_id"].encode(), orjson.dumps(subject_envelope(r, iso_ms(T0_MS))))
                              for r in SUBJECTS])
    proc = p.start_worker(f"worker-{tag}")
    try:
        # hostile records on the detectors' own inputs: recorded in the DLQ, the worker goes on
        p.produce("located.v1", [(b"g1", b"{not json"), (b"g1", b'{"data": {"grid_id": "g1"}}')])
        pings, reports = input_log()
        p.produce("pings.v1", pings)
        p.produce("reports.v1", reports)
        n = len(pings) + len(reports)
        p.collect("located.v1", n, timeout_s=90)
        wait_committed(broker.bootstrap, f"gw-{tag}-{os.getpid()}", s.topic("located.v1"), n + 2,
                       "the detectors to consume the located events")
        flush = T0_MS + 2 * 24 * 60 * MIN  # two days later: every timer is due
        ticks = [(b"tick", orjson.dumps(tick_envelope(flush, part))) for part in range(s.partitions)]
        from kafka import KafkaProducer
        prod = KafkaProducer(bootstrap_servers=broker.bootstrap)
        for part, (k, v) in enumerate(ticks):
            prod.send(s.topic("clock.v1"), key=k, value=v, partition=part)
        prod.send(s.topic("clock.v1"), key=b"tick", value=b'{"data": {"tick": "later"}}', partition=0)
        prod.flush()
        prod.close()
        return settle(s), dlq_codes(s)
    finally:
        p.stop_worker(proc)


def dlq_codes(s: Settings) -> list[tuple[str, str]]:
    c = KafkaConsumer(s.topic("dlq.v1"), bootstrap_servers=s.broker, auto_offset_reset="earliest",
                      consumer_timeout_ms=2000)
    try:
        return sorted((orjson.loads(m.value)["data"]["code"],
                       orjson.loads(m.value)["data"]["source"]["topic"][len(s.topic_prefix):]) for m in c)
    finally:
        c.close()


def settle(s: Settings, quiet_s: float = 4.0, timeout_s: float = 60) -> list[tuple[bytes, bytes]]:
    """Every alert record, once none has arrived for `quiet_s`."""
    got = read_until_quiet(s.broker, [s.topic("alerts.v1")], quiet_s, timeout_s)
    return sorted((m.key, m.value) for m in got)


def test_same_input_log_twice_gives_identical_alerts(broker, atlas_file, tmp_path):
    first, dlq = run_once(broker, atlas_file, tmp_path, "a")
    second, _ = run_once(broker, atlas_file, tmp_path, "b")
    assert first == second
    # the tick without CloudEvents attributes is refused by the gate before its data is read
    assert dlq == [("bad_envelope", "clock.v1"), ("bad_located", "located.v1"), ("bad_record", "located.v1")]
    alerts = [orjson.loads(v) for _, v in first]
    for a in alerts:  # what integrators are promised in topics/schemas/alert.json
        validator("alert.json")(a["data"])
    by_kind: dict[str, list] = {}
    for a in alerts:
        by_kind.setdefault(a["data"]["kind"], []).append(a["data"])
    (silent,) = by_kind["inactivity"]
    assert (silent["subject_id"], silent["grid_id"], silent["status"]) == ("s1", "g1", "firing")
    assert silent["observed_at"] == iso_ms(T0_MS + 20 * MIN + 24 * 60 * MIN)
    assert [a["evidence"]["device_id"] for a in by_kind["device_offline"]] == ["water-s2"]
    (cluster,) = by_kind["report_cluster"]
    assert (cluster["grid_id"], cluster["evidence"]["count"]) == ("g3", 11)
    zone = sorted(by_kind["landslide"], key=lambda a: a["observed_at"])
    # 3 mm a minute: blue, yellow, orange, red, then held while the silent gauge is stale
    assert [a["severity"] for a in zone] == ["blue", "yellow", "orange", "red"]
    assert {a["zone_id"] for a in zone} == {"H1"} and len({a["alert_id"] for a in zone}) == 1
    assert [a["status"] for a in by_kind["sensor_stale"]] == ["firing"]
    assert all(a["data"]["path"][-1] == a["data"]["grid_id"] == a["subject"] for a in alerts)


def test_a_killed_worker_is_replaced_without_forgetting_a_silent_subject(broker, atlas_file, tmp_path):
    """s1 is active at T0, then silent. The worker that saw the activity is SIGKILLed; its
    replacement rebuilds the partition from the located log, so the flush tick raises
    inactivity at T0 + 24 h (without the rebuild it would start watching s1 at the tick)."""
    import signal

    tag = "kill"
    s = Settings.from_env({}, broker=broker.bootstrap, topic_prefix=f"itdet{tag}.{os.getpid()}.",
                          embedded=broker.embedded)
    create(s)
    group = f"gw-{tag}-{os.getpid()}"
    p = Pipeline(s, atlas_file, tmp_path, {"GRIDWATCH_CLOCK": "off", "GRIDWATCH_APP_ID": group})
    p.produce("devices.v1", [(d["device_id"].encode(), orjson.dumps(device_envelope(d, iso_ms(T0_MS))))
                             for d in DEVICES[:1]])
    p.produce("subjects.v1", [(b"s1", orjson.dumps(subject_envelope(SUBJECTS[0], iso_ms(T0_MS))))])
    first = p.start_worker("first")
    try:
        activity = {"device_id": "door-s1", "kind": "door", "value": 1, "unit": "bool",
                    "observed_at": iso_ms(T0_MS)}
        p.produce("pings.v1", [(b"door-s1", orjson.dumps(envelope("gridwatch.ping.v1", activity, "p1")),
                                T0_MS)])
        p.collect("located.v1", 1)
        wait_committed(broker.bootstrap, group, s.topic("located.v1"), 1, "the first worker's commit")
    finally:
        p.stop_worker(first, signal.SIGKILL)
    second = p.start_worker("second")
    try:
        from kafka import KafkaProducer
        prod = KafkaProducer(bootstrap_servers=broker.bootstrap)
        flush = T0_MS + 25 * 60 * MIN
        for part in range(s.partitions):
            prod.send(s.topic("clock.v1"), key=b"tick", partition=part,
                      value=orjson.dumps(tick_envelope(flush, part)))
        prod.flush()
        prod.close()
        wait_committed(broker.bootstrap, group, s.topic("clock.v1"), s.partitions,
                       "the second worker to take every tick", 90)
        alerts = [orjson.loads(v)["data"] for _, v in settle(s)]
    finally:
        p.stop_worker(second)
    assert [(a["kind"], a["subject_id"], a["observed_at"]) for a in alerts] == [
        ("inactivity", "s1", iso_ms(T0_MS + 24 * 60 * MIN))]
    log = (tmp_path / "second.log").read_text()
    assert "detector_partition_rebuilt" in log
