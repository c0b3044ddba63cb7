"""`gridwatch bench detectors`: pure-Python detector speed and state size, in one run.

Every figure goes through `DetectorHost` as the faust agent calls it (a decoded located body
per event; JSON decoding is measured separately). Inputs are pre-built so the timings are the
detectors' own. Memory is measured with tracemalloc: bytes held per tracked subject (state and
timer, registry entry counted apart) and per monitoring point holding 72 h of 10-minute rain
readings. The baseline, measured in the same run, is the timer check a naive detector would do
on every clock tick: `step_time` over every subject, against the lazy timer heap.
"""

from __future__ import annotations

import gc
import random
import time
import tracemalloc
from typing import Any

import orjson

from pipeline.detect.config import load_config
from pipeline.detect.host import DetectorHost
from pipeline.detect.inactivity import Subject, step_time
from pipeline.envelope import iso_ms

T0 = 1_782_864_000_000  # 2026-07-01T00:00Z
MIN = 60_000


def _ping(device: str, kind: str, t: int, value: float | None, unit: str | None, grid: str,
          subject: str | None = None, zone: str | None = None) -> dict:
    inp: dict[str, Any] = {"device_id": device, "kind": kind, "observed_at": iso_ms(t)}
    if value is not None:
        inp["value"], inp["unit"] = value, unit
    device_facts: dict[str, Any] = {"heartbeat_s": 86400}
    if subject:
        device_facts["subject_id"] = subject
    if zone:
        device_facts["zone_id"] = zone
    return {"source_type": "ping", "source_id": f"{device}@{t}", "grid_id": grid,
            "path": ["410325", grid[:9], grid[:12], grid], "lon": 112.1, "lat": 34.1,
            "observed_at": iso_ms(t), "input": inp, "device": device_facts}


def _rate(host: DetectorHost, items: list[tuple[str, Any]]) -> tuple[float, int]:
    """Events per second through the host; alerts counted include level changes."""
    gc.collect()
    alerts = 0
    start = time.perf_counter()
    for what, item in items:
        out = host.on_tick(0, item) if what == "tick" else host.on_located(0, item)
        alerts += len(out.alerts) + len(out.levels)
    return len(items) / (time.perf_counter() - start), alerts


def _inactivity(subjects: int, events: int, rng: random.Random) -> dict:
    registry = {f"s{i}": Subject(f"s{i}", "living_alone_24h" if i % 3 else "living_alone_12h",
                                 devices=(f"door{i}", f"water{i}")) for i in range(subjects)}
    span = 2 * 24 * 60 * MIN
    step = span // events
    items: list[tuple[str, Any]] = []
    next_tick = T0
    for n in range(events):
        t = T0 + n * step
        while next_tick <= t:
            items.append(("tick", next_tick))
            next_tick += 30_000
        i = rng.randrange(subjects)
        grid = f"410325100{i % 50:03d}{i % 7:03d}"
        if rng.random() < 0.5:
            items.append(("ev", _ping(f"door{i}", "door", t, 1, "bool", grid, f"s{i}")))
        else:
            items.append(("ev", _ping(f"water{i}", "water_meter", t, rng.choice([0.0, 0.02]), "m3",
                                      grid, f"s{i}")))
    host = DetectorHost(load_config(), registry)
    rate, alerts = _rate(host, items)
    det = host.partition(0).inactivity
    # the baseline: what one tick costs when every subject is checked, against the heap
    now = host.partition(0).watermark.now_ms + 30_000
    profile = det.cfg.profiles["living_alone_24h"]
    states = list(det.states.values())
    start = time.perf_counter()
    for st in states:
        if not st.inactive_since:
            step_time(st, profile, T0, det.heartbeats)  # nothing is due this early: pure checking cost
    scan_ms = (time.perf_counter() - start) * 1000
    start = time.perf_counter()
    det.advance(now)
    heap_ms = (time.perf_counter() - start) * 1000
    return {"events_per_s": round(rate), "events": events, "ticks": sum(1 for w, _ in items if w == "tick"),
            "alerts": alerts, "tracked_subjects": len(det.states),
            "tick_cost_ms": {"lazy_heap": round(heap_ms, 3), "baseline_full_scan": round(scan_ms, 1)}}


def _memory_per_subject(n: int) -> dict:
    cfg = load_config()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    registry = {}
    for i in range(n):  # as the subjects file loader builds it: the key is the subject's id string
        sid = f"subject-{i:07d}"
        registry[sid] = Subject(sid, "living_alone_24h", f"410325100{i % 999:03d}001", f"hh-{i:07d}",
                                (f"door-{i:07d}", f"water-{i:07d}"), ("grid_worker", "family"))
    reg_bytes = tracemalloc.get_traced_memory()[0] - base
    host = DetectorHost(cfg, registry)
    det = host.partition(0).inactivity
    before = tracemalloc.get_traced_memory()[0]
    path = ("410325", "410325100", "410325100001", "410325100001001")
    for i in range(n):
        sid = f"subject-{i:07d}"  # a fresh string, as decoded from an event
        t = T0 + i
        det.ping(sid, path[-1], path, f"door-{i:07d}", "door", 1, "bool", t, 3600_000)
        det.ping(sid, path[-1], path, f"water-{i:07d}", "water_meter", 0.02, "m3", t + 1, 3600_000)
    state_bytes = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    per_state = state_bytes / n
    per_reg = reg_bytes / n
    return {"subjects": n, "bytes_per_subject_state": round(per_state),
            "bytes_per_registry_entry": round(per_reg),
            "projected_1m_subjects_mb": round((per_state + per_reg) * 1_000_000 / 2**20)}


def _landslide(points: int, hours: int) -> dict:
    host = DetectorHost(load_config())
    items: list[tuple[str, Any]] = []
    rng = random.Random(3)
    for step in range(hours * 6):
        t = T0 + step * 10 * MIN
        for p in range(points):
            grid = f"410325100{p % 50:03d}001"
            if p % 5 == 4:
                items.append(("ev", _ping(f"gnss{p}", "gnss_displacement", t, step * 0.05 + rng.random(),
                                          "mm", grid, zone=f"Z{p // 10}")))
            else:
                mm = max(0.0, rng.gauss(2.0, 2.0)) if 200 <= step <= 260 else 0.2
                items.append(("ev", _ping(f"rg{p}", "rain_gauge", t, round(mm, 1), "mm", grid,
                                          zone=f"Z{p // 10}")))
    tracemalloc.start()
    rate, alerts = _rate(host, items)
    mem = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    pd = host.partition(0)
    return {"events_per_s": round(rate), "events": len(items), "points": len(pd.points),
            "alerts_and_level_changes": alerts,
            "bytes_per_point_72h": round(mem / max(1, len(pd.points))),
            "readings_kept_per_gauge": max(len(s.readings) for s in pd.points.values())}


def _reports(reports: int, rng: random.Random) -> dict:
    host = DetectorHost(load_config())
    cats = ["safety_hazard", "city_appearance", "roads_traffic", "dispute", "public_facilities"]
    items: list[tuple[str, Any]] = []
    for n in range(reports):
        t = T0 + n * 3000
        grid = f"410325100{rng.randrange(50):03d}001"
        if rng.random() < 0.4:  # a few hot spots (a fallen wall, a flooded underpass...)
            spot = rng.randrange(20)
            lon, lat = 112.0 + spot * 0.01 + rng.random() * 0.001, 34.0 + rng.random() * 0.001
        else:
            lon, lat = 112.0 + rng.random() * 0.3, 34.0 + rng.random() * 0.3
        inp = {"report_id": f"R{n}", "reporter_id": "w", "category": rng.choice(cats),
               "severity": "medium", "text": "围墙开裂", "lon": lon, "lat": lat,
               "observed_at": iso_ms(t)}
        items.append(("ev", {"source_type": "report", "source_id": f"R{n}", "grid_id": grid,
                             "path": [grid], "lon": lon, "lat": lat, "observed_at": iso_ms(t),
                             "input": inp}))
    rate, alerts = _rate(host, items)
    return {"events_per_s": round(rate), "events": reports, "alerts": alerts}


def _decode_cost(n: int = 50_000) -> dict:
    body = orjson.dumps({"specversion": "1.0", "id": "x", "type": "gridwatch.located.v1",
                         "data": _ping("door1", "door", T0, 1, "bool", "410325100001001", "s1")})
    start = time.perf_counter()
    for _ in range(n):
        orjson.loads(body)
    return {"located_json_decodes_per_s": round(n / (time.perf_counter() - start))}


def run_detectors_bench(subjects: int = 100_000, events: int = 300_000, points: int = 500,
                        reports: int = 50_000, memory_subjects: int = 200_000, seed: int = 11) -> dict:
    """All detector figures; a few tens of seconds with the defaults."""
    rng = random.Random(seed)
    return {"inactivity": _inactivity(subjects, events, rng),
            "inactivity_memory": _memory_per_subject(memory_subjects),
            "landslide": _landslide(points, 80),
            "reports": _reports(reports, rng),
            "decode": _decode_cost()}
