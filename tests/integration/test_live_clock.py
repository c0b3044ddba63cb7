"""The live clock as shipped (default GRIDWATCH_CLOCK, nothing writes ticks but the workers):
one alert in, and the incident climbs its ladder by itself, on time. On Apache Kafka also with
three workers, the ticking one SIGKILLed: another takes its partitions' ticks over within the
group's session timeout, and the unacknowledged incident still climbs.

The only test settings are a short acknowledge limit (6 s, in the policy) and a 1 s tick
interval (in the detectors file): both are configuration, the clock mode is the shipped one.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest
import yaml
from kafka import KafkaConsumer, KafkaProducer

from pipeline.detect.alerts import Alert
from pipeline.detect.config import DEFAULT_FILE
from pipeline.envelope import iso_ms
from pipeline.settings import Settings
from pipeline.sink import partition_for
from tests.integration.conftest import REPO, Pipeline
from topics.admin import create

pytestmark = [pytest.mark.integration, pytest.mark.engines]
ACK_S = 6
TICK_S = 1
LADDER = ["grid_worker", "grid_leader", "community", "town"]


def live_pipeline(broker, atlas_file: str, workdir: Path, tag: str, **env: str) -> Pipeline:
    s = Settings.from_env({}, broker=broker.bootstrap, topic_prefix=f"{tag}.", embedded=broker.embedded)
    create(s)
    policy = {"version": 1, "rules": [
        {"name": "care", "match": {"kind": "inactivity"}, "start": "grid_worker", "top": "town",
         "ack": {"amount": ACK_S / 60, "unit": "minutes"}, "resolve": {"amount": 1, "unit": "hours"}}],
        "default": {"name": "default", "ack": {"amount": 1, "unit": "hours"},
                    "resolve": {"amount": 1, "unit": "working_days"}}}
    detectors = yaml.safe_load(DEFAULT_FILE.read_text())
    detectors["clock"]["tick_interval"] = f"{TICK_S}s"
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "policy.yaml").write_text(yaml.safe_dump(policy))
    (workdir / "detectors.yaml").write_text(yaml.safe_dump(detectors))
    extra = {"GRIDWATCH_POLICY": str(workdir / "policy.yaml"), "GRIDWATCH_APP_ID": tag,
             "GRIDWATCH_DETECTORS": str(workdir / "detectors.yaml"), **env}
    extra.pop("GRIDWATCH_CLOCK", None)
    p = Pipeline(s, atlas_file, workdir, extra)
    assert "GRIDWATCH_CLOCK" not in p.env() or p.env()["GRIDWATCH_CLOCK"] == "live"
    return p


def send_alert(p: Pipeline, at_ms: int) -> None:
    """One inactivity alert for grid g1, written as the detectors write it."""
    alert = Alert("inactivity:s1:live", "inactivity", "g1", "high", "firing", at_ms, "firing",
                  {"silent_since": iso_ms(at_ms - 86_400_000)}, path=("C", "T", "M", "g1"),
                  subject_id="s1", reason="no activity for 24h")
    key, value = alert.encode()
    prod = KafkaProducer(bootstrap_servers=p.settings.broker)
    prod.send(p.settings.topic("alerts.v1"), key=key, value=value, timestamp_ms=at_ms)
    prod.flush()
    prod.close()


def escalations(p: Pipeline, want: int, timeout_s: float) -> list:
    """Escalation records (with their Kafka timestamps) until `want` of them are dispatches or
    escalations, or the timeout."""
    c = KafkaConsumer(p.settings.topic("escalations.v1"), bootstrap_servers=p.settings.broker,
                      auto_offset_reset="earliest", consumer_timeout_ms=500)
    got: list = []
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline and len({
                orjson.loads(m.value)["id"] for m in got
                if orjson.loads(m.value)["data"]["transition"] in ("dispatched", "escalated")}) < want:
            got.extend(c)
    finally:
        c.close()
    return got


def assert_climbs_on_time(records: list, opened_ms: int, late_s: float) -> None:
    """dispatched at the grid worker, then one level up every ACK_S seconds of event time,
    each written at most `late_s` after its deadline (wall clock of the record)."""
    first: dict[str, object] = {}  # by envelope id: a redelivered step (same id) counts once
    for r in records:
        first.setdefault(orjson.loads(r.value)["id"], r)
    rows = [orjson.loads(r.value)["data"] | {"written_ms": r.timestamp} for r in first.values()]
    climb = [r for r in rows if r["transition"] in ("dispatched", "escalated")]
    assert [r["level"] for r in climb][:4] == LADDER, [(r["transition"], r["level"]) for r in rows]
    for i, r in enumerate(climb[:4]):
        due = opened_ms + i * ACK_S * 1000
        assert _ms(r["at"]) == due, (i, r["at"], iso_ms(due))
        assert r["written_ms"] - due <= late_s * 1000, (r["level"], r["written_ms"] - due)


def _ms(iso: str) -> int:
    from datetime import datetime

    return int(datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp() * 1000)


def test_live_clock_escalates_an_unacknowledged_incident_by_itself(broker, atlas_file, tmp_path):
    tag = f"live{os.getpid()}r{time.monotonic_ns() % 1000000}{'k' if not broker.embedded else 'e'}"
    p = live_pipeline(broker, atlas_file, tmp_path / "live", tag)
    proc = p.start_worker()
    try:
        ticks = wait_ticks(p, 1, 90)
        assert ticks, "no worker wrote a tick in live mode"
        opened = int(time.time() * 1000)
        send_alert(p, opened)
        got = escalations(p, 4, 90)
        alive = health_check(p)
    finally:
        p.stop_worker(proc)
    assert_climbs_on_time(got, opened, late_s=TICK_S + 5)
    # the container health check asks the worker itself: alive while it runs, not after
    assert alive.returncode == 0 and alive.stdout.startswith("healthy"), alive.stdout + alive.stderr
    time.sleep(2.5)
    dead = health_check(p, "2")
    assert dead.returncode == 1 and dead.stdout.startswith("unhealthy"), dead.stdout


def health_check(p: Pipeline, max_age: str = "30") -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ops.cli", "worker", "--check", "--max-age", max_age],
                          env=p.env(), cwd=REPO, capture_output=True, text=True, timeout=60)


def wait_ticks(p: Pipeline, n: int, timeout_s: float, partition: int | None = None,
               after_ms: int = 0) -> list[dict]:
    """Ticks on clock.v1 (of one partition, written after `after_ms`), at least `n` or timeout."""
    c = KafkaConsumer(p.settings.topic("clock.v1"), bootstrap_servers=p.settings.broker,
                      auto_offset_reset="earliest", consumer_timeout_ms=500)
    got: list[dict] = []
    deadline = time.monotonic() + timeout_s
    try:
        while len(got) < n and time.monotonic() < deadline:
            got += [orjson.loads(m.value)["data"] | {"partition": m.partition} for m in c
                    if (partition is None or m.partition == partition) and m.timestamp > after_ms]
    finally:
        c.close()
    return got


def ticking(log: Path) -> set[int]:
    """The partitions a worker says it ticks, from its last `clock_ticking` line."""
    owned: set[int] = set()
    for line in log.read_text(errors="replace").splitlines():
        if '"clock_ticking"' in line:
            owned = set(json.loads(line[line.index("{"):])["partitions"])
    return owned


@pytest.mark.kafka
def test_killed_ticker_is_replaced_and_the_incident_still_climbs(kafka_cluster, atlas_file, tmp_path):
    """Three workers in live mode with the shipped session timeout; the one ticking the alert's
    partition is SIGKILLed right after the incident opens."""
    tag = f"tk{os.getpid()}r{time.monotonic_ns() % 1000000}"
    p = live_pipeline(kafka_cluster, atlas_file, tmp_path / "tk", tag, GRIDWATCH_SESSION_TIMEOUT_S="")
    session_s = Settings.from_env({}).group_session_timeout_s  # the shipped default on Kafka
    part = partition_for(b"g1", p.settings.partitions)
    procs = {f"w{i}": p.start_worker(f"w{i}") for i in range(3)}
    try:
        deadline = time.monotonic() + 120
        owner = None
        while owner is None and time.monotonic() < deadline:
            owners = [n for n in procs if part in ticking(p.workdir / f"{n}.log")]
            claimed = set().union(*(ticking(p.workdir / f"{n}.log") for n in procs))
            if len(owners) == 1 and claimed == set(range(p.settings.partitions)):
                owner = owners[0]
            time.sleep(0.5)
        assert owner, "the three workers never settled on one ticker per partition"
        opened = int(time.time() * 1000)
        send_alert(p, opened)
        first = escalations(p, 1, 60)
        assert "dispatched" in [orjson.loads(m.value)["data"]["transition"] for m in first]
        killed_ms = int(time.time() * 1000)
        p.stop_worker(procs.pop(owner), signal.SIGKILL)
        after = wait_ticks(p, 2, session_s + 60, partition=part, after_ms=killed_ms + 500)
        got = escalations(p, 4, session_s + 60)
        heirs = [n for n in procs if part in ticking(p.workdir / f"{n}.log")]
    finally:
        for proc in procs.values():
            p.stop_worker(proc)
    assert len(after) >= 2, f"no ticks on partition {part} after its ticker died"
    assert len(heirs) == 1, heirs
    # the levels due while nobody ticked come when the heir takes over (bounded by the session
    # timeout), each at its own deadline; the ones after that on time
    assert_climbs_on_time(got, opened, late_s=session_s + 3 * TICK_S + 10)
    heir_log = (p.workdir / f"{heirs[0]}.log").read_text()
    assert re.search(rf'"partition": {part}, "records": [1-9]\d*, .*"incident_partition_rebuilt"', heir_log)
