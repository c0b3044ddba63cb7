"""`gridwatch bench replay`: events/s of a replay through the pure core (no Kafka), in one run.

The log is built in memory first, as the archive or Kafka reader would hand it over: located
envelopes (bytes) on 4 partitions - activity pings of people under care, rain-gauge readings in
hazard zones, grid-worker reports - with clock ticks every 30 s of event time on every partition,
merged in log order. Timed is `CoreReplayer.feed` for every record: decode, detectors, zone
levels, incidents and escalation records, as `gridwatch replay` runs them.

Baseline (same run, same log): the stages joined as the live agents are, through their records:
every alert serialised, parsed again and checked against ``alert.json`` before the incidents see
it, and murmur2 computed for every record routed (the core hands the alert body over directly
and caches partitions per key).
"""

from __future__ import annotations

import gc
import random
import time
from typing import Any

import orjson

from pipeline.detect.inactivity import Subject
from pipeline.detect.wiring import tick_envelope
from pipeline.envelope import iso_ms, make_event
from pipeline.replay import CoreReplayer, LogRecord, log_order
from pipeline.settings import Settings
from pipeline.sink import partition_for

T0 = 1_782_864_000_000  # 2026-07-01T00:00Z
MIN = 60_000
PARTITIONS = 4


class _Hops(CoreReplayer):
    """The baseline: stages joined through serialised, re-validated records."""

    def _part(self, key: bytes) -> int:
        return partition_for(key, self._n)

    def _alerts(self, alerts: list) -> None:
        from pipeline.envelope import validator

        check = validator("alert.json")
        for a in alerts:
            key, value = a.encode()
            self._out("alerts.v1", key, value)
            data = orjson.loads(value)["data"]
            check(data)
            self._changes(self.incidents.on_alert(self._part(key), data))


class _NoCore:
    """The ingest core is not used when replaying located records."""

    locator = None


def _located(kind: str, source_id: str, grid: str, t: int, inp: dict, device: dict | None = None,
             zones: list[str] | None = None) -> bytes:
    data = {"source_type": kind, "source_id": source_id, "grid_id": grid,
            "path": ["410325", grid[:9], grid[:12], grid], "police_grid": None,
            "hazard_zones": zones or [], "lon": 112.1, "lat": 34.1, "snapped_m": None,
            "location_from": "device" if kind == "ping" else "event", "observed_at": iso_ms(t),
            "input": inp}
    if device:
        data["device"] = device
    return orjson.dumps(make_event("gridwatch.located.v1", f"located:{kind}:{source_id}", iso_ms(t),
                                   data, subject=grid))


def build_log(events: int, subjects: int, seed: int = 7) -> tuple[list[LogRecord], dict[str, Subject]]:
    """A located log of `events` records (plus ticks) over two days of event time."""
    rng = random.Random(seed)
    registry = {f"s{i}": Subject(f"s{i}", "living_alone_24h" if i % 3 else "living_alone_12h",
                                 devices=(f"door{i}",), grid_id=f"410325100{i % 50:03d}{i % 7:03d}")
                for i in range(subjects)}
    span = 2 * 24 * 60 * MIN
    step = max(1, span // events)
    parts: list[list[LogRecord]] = [[] for _ in range(2 * PARTITIONS)]
    offsets = [0] * (2 * PARTITIONS)
    next_tick = T0

    def add(slot: int, topic: str, t: int, key: bytes, value: bytes) -> None:
        parts[slot].append(LogRecord(topic, slot % PARTITIONS, offsets[slot], t, key, value))
        offsets[slot] += 1

    for n in range(events):
        t = T0 + n * step
        while next_tick <= t:
            for p in range(PARTITIONS):
                add(PARTITIONS + p, "clock.v1", next_tick, b"tick",
                    orjson.dumps(tick_envelope(next_tick, p)))
            next_tick += 30_000
        r = rng.random()
        if r < 0.02:  # a rain gauge in one of 20 zones
            z = rng.randrange(20)
            grid = f"410325200{z:03d}001"
            inp = {"device_id": f"rg{z}", "kind": "rain_gauge", "value": round(rng.random() * 4, 1),
                   "unit": "mm", "observed_at": iso_ms(t)}
            value = _located("ping", f"rg{z}@{t}", grid, t, inp, {"zone_id": f"Z{z}", "heartbeat_s": 600},
                             [f"Z{z}"])
        elif r < 0.03:  # a grid-worker report
            grid = f"410325300{rng.randrange(30):03d}001"
            inp = {"report_id": f"R{n}", "reporter_id": "W1", "category": "street_order",
                   "severity": "low", "text": "占道经营", "lon": 112.1, "lat": 34.1,
                   "observed_at": iso_ms(t)}
            value = _located("report", f"R{n}", grid, t, inp)
        else:  # a door opening of someone under care
            i = rng.randrange(subjects)
            grid = registry[f"s{i}"].grid_id or ""
            inp = {"device_id": f"door{i}", "kind": "door", "value": 1, "unit": "bool",
                   "observed_at": iso_ms(t)}
            value = _located("ping", f"door{i}@{t}", grid, t, inp,
                             {"subject_id": f"s{i}", "heartbeat_s": 86400})
        add(partition_for(grid.encode(), PARTITIONS), "located.v1", t, grid.encode(), value)
    return list(log_order(parts)), registry


def _run(log: list[LogRecord], registry: dict[str, Subject], hops: bool) -> dict[str, Any]:
    from pipeline.detect.wiring import build_host
    from pipeline.incident.wiring import build_incident_host

    settings = Settings.from_env({}, partitions=PARTITIONS)
    host = build_host(settings, dict(registry))
    incidents = build_incident_host(settings, host.cfg.clock.allowed_lateness)
    rp = (_Hops if hops else CoreReplayer)(settings, _NoCore(), host, incidents)  # type: ignore[arg-type]
    gc.collect()
    start = time.perf_counter()
    rp.feed_all(log)
    seconds = time.perf_counter() - start
    return {"records": len(log), "seconds": round(seconds, 3), "events_per_s": round(len(log) / seconds),
            "outputs": dict(sorted(rp.stats.outputs.items()))}


def run_replay_bench(events: int = 300_000, subjects: int = 20_000) -> dict[str, Any]:
    log, registry = build_log(events, subjects)
    ticks = sum(r.topic == "clock.v1" for r in log)
    return {"workload": {"located": len(log) - ticks, "ticks": ticks, "subjects": subjects,
                         "partitions": PARTITIONS, "event_time_h": 48},
            "replay_core": _run(log, registry, hops=False),
            "baseline_stages_through_records": _run(log, registry, hops=True)}
