"""Builders of located events (the data body) for detector tests."""

from __future__ import annotations

from datetime import UTC, datetime

from pipeline.detect.config import load_config
from pipeline.detect.host import DetectorHost
from pipeline.envelope import iso_ms

T0 = int(datetime(2026, 7, 1, 0, 0, tzinfo=UTC).timestamp() * 1000)  # 08:00 in Beijing
MIN = 60_000
HOUR = 60 * MIN
GRID = "410325100001001"
PATH = ("410325", "410325100", "410325100001", GRID)


def ping(device: str, kind: str, t: int, value: float | None = None, unit: str | None = None,
         subject: str | None = None, zone: str | None = None, heartbeat_s: int | None = None,
         grid: str = GRID) -> dict:
    inp: dict = {"device_id": device, "kind": kind, "observed_at": iso_ms(t)}
    if value is not None:
        inp["value"] = value
    if unit is not None:
        inp["unit"] = unit
    if subject is not None:
        inp["subject_id"] = subject
    device_info = {k: v for k, v in (("zone_id", zone), ("heartbeat_s", heartbeat_s)) if v}
    return {"source_type": "ping", "source_id": f"{device}@{t}", "grid_id": grid,
            "path": [*PATH[:-1], grid], "police_grid": None, "hazard_zones": [],
            "lon": 112.1, "lat": 34.1, "snapped_m": None, "location_from": "device",
            "observed_at": iso_ms(t), "input": inp, "device": device_info}


def report(report_id: str, category: str, t: int, lon: float = 112.1, lat: float = 34.1,
           severity: str = "medium", text: str = "围墙开裂", grid: str = GRID) -> dict:
    inp = {"report_id": report_id, "reporter_id": "w1", "category": category,
           "severity": severity, "text": text, "lon": lon, "lat": lat, "observed_at": iso_ms(t)}
    return {"source_type": "report", "source_id": report_id, "grid_id": grid,
            "path": [*PATH[:-1], grid], "police_grid": None, "hazard_zones": [], "lon": lon,
            "lat": lat, "snapped_m": None, "location_from": "event", "observed_at": iso_ms(t),
            "input": inp}


def host(**kw) -> DetectorHost:
    return DetectorHost(load_config(), **kw)
