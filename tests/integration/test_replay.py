"""A scenario run live on the embedded broker, archived, then replayed from the archive and from
Kafka through the pure core (outputs identical to the live run's, also when the raw inputs go
through ingest again), a what-if with a lower rain threshold (only the expected landslide
records are added), and a shadow replay (a shadow worker locates the inputs as live did; no live
topic moves)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import replace

import orjson
import pytest
import yaml
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from pipeline.detect.config import DEFAULT_FILE
from pipeline.detect.wiring import tick_envelope
from pipeline.devices import device_envelope
from pipeline.envelope import iso_ms
from pipeline.replay import by_id
from pipeline.settings import Settings
from pipeline.subjects import subject_envelope
from tests.integration.conftest import REPO, Pipeline, read_until_quiet, wait_committed
from tests.unit.pipeline.helpers import T0_MS, envelope
from topics.admin import create

pytestmark = [pytest.mark.integration, pytest.mark.engines]
MIN = 60_000
HOUR = 60 * MIN
DEVICES = [
    {"device_id": "door-s1", "kind": "door", "lon": 0.5, "lat": 0.5, "subject_id": "s1",
     "heartbeat_s": 604800},
    {"device_id": "rg-1", "kind": "rain_gauge", "lon": 1.2, "lat": 1.2, "zone_id": "H1",
     "heartbeat_s": 600},
]
SUBJECTS = [{"subject_id": "s1", "profile": "living_alone_24h", "grid_id": "g1", "devices": ["door-s1"]}]


def scenario_inputs() -> tuple[list, list]:
    """24 mm of rain in an hour (under blue: 35 mm, and the I-D curve), a door ping, eleven
    reports of one wall."""
    pings = [("door-s1", {"device_id": "door-s1", "kind": "door", "value": 1, "unit": "bool",
                          "observed_at": iso_ms(T0_MS)})]
    pings += [("rg-1", {"device_id": "rg-1", "kind": "rain_gauge", "value": 2.0, "unit": "mm",
                        "observed_at": iso_ms(T0_MS + i * 5 * MIN)}) for i in range(12)]
    reports = [(f"R{i}", {"report_id": f"R{i}", "reporter_id": f"W{i % 3}", "category": "safety_hazard",
                          "severity": "medium", "text": "围墙开裂", "lon": 0.5 + i * 0.0001, "lat": 1.5,
                          "observed_at": iso_ms(T0_MS + i * MIN)}) for i in range(11)]

    def rec(kind: str, k: str, d: dict) -> tuple:  # written when observed, as a live source would
        ev = envelope(f"gridwatch.{kind}.v1", d, f"{kind}-{k}-{d['observed_at']}")
        return k.encode(), orjson.dumps(ev), iso_to_ms(d["observed_at"])

    return [rec("ping", k, d) for k, d in pings], [rec("report", k, d) for k, d in reports]


def iso_to_ms(s: str) -> int:
    from datetime import datetime

    return int(datetime.fromisoformat(s).timestamp() * 1000)


class Live:
    """Drives the live run: ticks and commands written with their event time as timestamp."""

    def __init__(self, p: Pipeline, group: str) -> None:
        self.p, self.group = p, group
        self.s = p.settings
        self.prod = KafkaProducer(bootstrap_servers=self.s.broker)
        self.ticks = 0

    def tick(self, at: int) -> None:
        for part in range(self.s.partitions):
            self.prod.send(self.s.topic("clock.v1"), key=b"tick", partition=part, timestamp_ms=at,
                           value=orjson.dumps(tick_envelope(at, part)))
        self.prod.flush()
        self.ticks += self.s.partitions
        wait_committed(self.s.broker, self.group, self.s.topic("clock.v1"), self.ticks, f"tick {iso_ms(at)}")
        time.sleep(1.5)  # alerts raised at this tick reach the incidents

    def command(self, cid: str, action: str, incident_id: str, at: int, **extra: str) -> None:
        data = {"command_id": cid, "incident_id": incident_id, "action": action, "actor": "duty-1",
                "scope": "g1", "at": iso_ms(at), **extra}
        self.prod.send(self.s.topic("commands.v1"), key=incident_id.encode(), timestamp_ms=at,
                       value=orjson.dumps(envelope("gridwatch.command.v1", data, cid)))
        self.prod.flush()
        time.sleep(2.0)


def outputs(p: Pipeline, quiet_s: float = 3.0) -> dict:
    """The live outputs by id, once nothing new has arrived for `quiet_s`."""
    topics = [p.settings.topic(t) for t in ("alerts.v1", "escalations.v1", "incidents.v1")]
    got = read_until_quiet(p.settings.broker, topics, quiet_s)
    return by_id((m.topic[len(p.settings.topic_prefix):], m.key, m.value) for m in got)


def cli(p: Pipeline, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ops.cli", *args], env=dict(p.env(), **(env or {})),
                          cwd=REPO, capture_output=True, text=True, timeout=300)


def run_scenario(p: Pipeline, group: str, crash_at: tuple[str, ...] = (), workers: int = 1,
                 fault: Callable[[str, list], None] | None = None) -> int:
    """The scenario with `workers` workers; at each step named in `crash_at` the newest worker is
    killed with SIGKILL and a new one started (the fault test), and `fault(step, workers)` is
    called at every step (steps: mid-inputs, after-alerts, after-ack). Returns how many workers
    were killed."""
    import signal

    s = p.settings
    before = T0_MS - MIN  # registrations come first
    p.produce("devices.v1", [(d["device_id"].encode(), orjson.dumps(device_envelope(d, iso_ms(T0_MS))),
                              before) for d in DEVICES])
    p.produce("subjects.v1", [(r["subject_id"].encode(), orjson.dumps(subject_envelope(r, iso_ms(T0_MS))),
                               before) for r in SUBJECTS])
    procs = [p.start_worker(f"worker{'-w' + str(i) if i else ''}") for i in range(workers)]
    running = list(procs)
    killed = 0
    live = Live(p, group)

    def step(name: str) -> None:
        nonlocal killed
        if name in crash_at:
            p.stop_worker(running.pop(), signal.SIGKILL)
            killed += 1
            running.append(p.start_worker(f"worker-{killed}"))
        if fault:
            fault(name, running)

    try:
        # inputs in groups, each located before the next is sent: ingest reads several input
        # partitions at once, and only this keeps the located order the same from run to run
        pings, reports = scenario_inputs()
        p.produce("pings.v1", pings[:1])
        p.collect("located.v1", 1)
        p.produce("pings.v1", pings[1:7])
        step("mid-inputs")
        p.produce("pings.v1", pings[7:])
        p.collect("located.v1", len(pings), timeout_s=90)
        for i, r in enumerate(reports, 1):  # their input partitions differ: one at a time
            p.produce("reports.v1", [r])
            p.collect("located.v1", len(pings) + i)
        n = len(pings) + len(reports)
        wait_committed(s.broker, group, s.topic("located.v1"), n, "the detectors to take the inputs")
        for at in (T0_MS + 2 * HOUR, T0_MS + 26 * HOUR):  # the door has been silent a day by then
            live.tick(at)
        step("after-alerts")
        esc = [d for d in outputs(p, 1.0)["escalations.v1"].values()
               if d["data"]["kind"] == "inactivity" and d["data"]["transition"] == "dispatched"]
        assert esc, "the inactivity incident was not dispatched"
        incident = esc[0]["data"]["incident_id"]
        live.tick(T0_MS + 26 * HOUR + 20 * MIN)  # unacknowledged: climbs
        live.command("c-ack", "acknowledge", incident, T0_MS + 26 * HOUR + 25 * MIN)
        step("after-ack")
        live.tick(T0_MS + 26 * HOUR + 40 * MIN)
        live.command("c-res", "resolve", incident, T0_MS + 26 * HOUR + 50 * MIN, reason="resident was away")
        live.tick(T0_MS + 3 * 24 * HOUR)
    finally:
        for proc in running:
            p.stop_worker(proc)
    return killed


def test_archive_replay_and_whatif(broker, atlas_file, tmp_path):
    tag = f"rp{os.getpid()}r{time.monotonic_ns() % 1000000}"
    s = Settings.from_env({}, broker=broker.bootstrap, topic_prefix=f"{tag}.", embedded=broker.embedded)
    create(s)
    p = Pipeline(s, atlas_file, tmp_path, {"GRIDWATCH_CLOCK": "off", "GRIDWATCH_APP_ID": tag})
    run_scenario(p, tag)
    live = outputs(p)
    kinds = {d["data"]["kind"] for d in live["alerts.v1"].values()}
    assert {"inactivity", "report_cluster", "sensor_stale"} <= kinds and "landslide" not in kinds
    transitions = [d["data"]["transition"] for d in live["escalations.v1"].values()
                   if d["data"]["kind"] == "inactivity"]
    assert {"dispatched", "escalated", "acknowledge", "resolve"} <= set(transitions)

    arch = tmp_path / "archive"
    r = cli(p, "archive", "run", "--dir", str(arch), "--once")
    assert r.returncode == 0, r.stderr
    r = cli(p, "archive", "ls", "--dir", str(arch), "--json")
    assert r.returncode == 0, r.stderr
    listed = {row["topic"]: row for row in json.loads(r.stdout)}
    assert listed["pings.v1"]["records"] == 13 and listed["reports.v1"]["records"] == 11
    assert listed["alerts.v1"]["records"] >= len(live["alerts.v1"])

    sources = (["--from", "archive", "--archive", str(arch)], ["--from", "kafka"],
               ["--from", "archive", "--archive", str(arch), "--reingest"])  # raw inputs through ingest
    for i, source in enumerate(sources):
        out = tmp_path / f"out-{i}.jsonl"
        r = cli(p, "replay", *source, "--json", "--out", str(out))
        assert r.returncode == 0, r.stdout + r.stderr
        result = json.loads(r.stdout)
        assert result["compare"]["identical"], result["compare"]
        assert result["events_per_s"] > 0 and result["inputs"] == 24 and result["ticks"] == 20
        rows = [orjson.loads(line) for line in out.read_bytes().splitlines()]
        replayed = by_id((row["topic"], row["key"].encode(),
                          None if row["value"] is None else orjson.dumps(row["value"])) for row in rows)
        assert replayed == live  # ids and bodies, every alert, escalation and final incident

    # what-if: blue at 20 mm in an hour instead of 35
    cfg = yaml.safe_load(DEFAULT_FILE.read_text())
    cfg["landslide"]["rain_mm"]["blue"]["1h"] = 20
    lower = tmp_path / "lower.yaml"
    lower.write_text(yaml.safe_dump(cfg, allow_unicode=True))
    r = cli(p, "whatif", "--from", "archive", "--archive", str(arch), "--detectors", str(lower), "--json")
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert d["summary"]["removed"] == 0 and d["summary"]["changed"] == 0, d["summary"]
    assert d["summary"]["unchanged"] == len(live["alerts.v1"]) + len(live["escalations.v1"])
    added = d["added"]
    assert {r["kind"] for r in added} == {"landslide"}
    assert next((r["what"], r["status"], r["level"]) for r in added if r["what"] == "alert") == \
        ("alert", "firing", "blue")
    assert any(r["what"] == "escalation" and r["status"] == "dispatched" for r in added)
    r = cli(p, "whatif", "--from", "archive", "--archive", str(arch), "--detectors", str(lower))
    assert r.returncode == 0 and "added" in r.stdout and "landslide" in r.stdout
    check_shadow(p, arch, atlas_file, tmp_path, tag)


def check_shadow(p: Pipeline, arch, atlas_file: str, tmp_path, tag: str) -> None:
    """Shadow: the raw inputs copied into their own namespace, a shadow worker with its own
    consumer group locates them exactly as live did, and nothing live moves."""
    s = p.settings

    def live_ends() -> dict:
        c = KafkaConsumer(bootstrap_servers=s.broker)
        tps = [TopicPartition(s.topic(t), part) for t in ("pings.v1", "reports.v1", "located.v1",
                                                          "alerts.v1", "escalations.v1", "clock.v1")
               for part in range(s.partitions)]
        ends = c.end_offsets(tps)
        c.close()
        return ends

    before = live_ends()
    shadow = replace(s, topic_prefix=f"{tag}-shadow.")
    r = cli(p, "replay", "--from", "archive", "--archive", str(arch), "--to", "shadow",
            "--shadow-prefix", shadow.topic_prefix, "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["records"] == 2 + 1 + 11 + 13 + 2 + 20  # devices .. clock
    r = cli(p, "replay", "--to", "shadow", "--shadow-prefix", s.topic_prefix)
    assert r.returncode != 0 and "live prefix" in r.stderr
    sp = Pipeline(shadow, atlas_file, tmp_path / "shadow", {"GRIDWATCH_CLOCK": "off",
                                                             "GRIDWATCH_APP_ID": f"{tag}-shadow"})
    sp.workdir.mkdir()
    worker = sp.start_worker()
    try:
        shadow_located = {m.key + m.value for m in sp.collect("located.v1", 24, timeout_s=90)}
    finally:
        sp.stop_worker(worker)
    live_located = {m.key + m.value for m in p.collect("located.v1", 24)}
    assert shadow_located == live_located
    assert live_ends() == before
