"""Simulator (模拟器): realistic, seeded input for demos, tests and benchmarks.

It plays a county's day in event time: grid workers' reports (some from Chinese map apps in
GCJ-02), door and water-meter activity of people under care (one 83-year-old goes silent at
19:00), heartbeats, and a storm over the hazard zones (rain gauges, GNSS displacement), plus a
small share of bad input (malformed JSON, missing fields, a time far in the future, oversized
bodies, unknown kinds, unregistered devices, points outside every grid) that must land in the
DLQ or the unlocated path. Same seed, same atlas: the same records, byte for byte.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np
import orjson
import shapely

from geo.coords import wgs84_to_gcj02
from geo.layers import Atlas
from geo.locate import Locator
from pipeline.envelope import iso

CATEGORIES = ("public_facilities", "roads_traffic", "city_appearance", "street_order",
              "safety_hazard", "dispute", "fraud_risk", "emergency")
TEXTS = {"public_facilities": "路灯不亮", "roads_traffic": "路面塌陷", "city_appearance": "垃圾堆放",
         "street_order": "占道经营", "safety_hazard": "围墙开裂有倒塌风险", "dispute": "邻里纠纷",
         "fraud_risk": "疑似电信诈骗", "emergency": "山体落石"}
#: the share of each category in municipal case statistics (数字城管 case mixes: city appearance,
#: public facilities and street order make most cases; emergencies are rare), and severities
CATEGORY_SHARE = (0.22, 0.09, 0.38, 0.18, 0.04, 0.07, 0.015, 0.005)
SEVERITY_SHARE = {"default": (0.72, 0.24, 0.04), "safety_hazard": (0.3, 0.45, 0.25),
                  "emergency": (0.0, 0.3, 0.7), "fraud_risk": (0.4, 0.4, 0.2)}
#: reports among the non-gauge events: ~150 cases a simulated day for the demo county, about what
#: a county's grid workers file (most inputs are sensor pings)
REPORT_SHARE = 0.055
START = datetime(2026, 7, 1, 0, 0, tzinfo=UTC)


@dataclass(frozen=True)
class SimRecord:
    """One record to publish: registry short topic, key, value, record timestamp (ms)."""

    topic: str
    key: bytes
    value: bytes
    timestamp_ms: int
    expect: str  # "located", "unlocated" or "dlq": what the pipeline should make of it


def _envelope(type_: str, id_: str, t: datetime, data: dict) -> bytes:
    return orjson.dumps({"specversion": "1.0", "id": id_, "source": "gridwatch/simulator",
                         "type": type_, "time": iso(t), "datacontenttype": "application/json",
                         "data": data})


class Simulator:
    """Seeded event source over an atlas."""

    def __init__(self, atlas: Atlas, seed: int = 7, subjects: int = 40,
                 bad_share: float = 0.02) -> None:
        self.rng = np.random.default_rng(seed)
        self.loc = Locator(atlas)
        self.bad_share = bad_share
        self.atlas = atlas
        n = len(self.loc.grids)
        picks = self.rng.choice(n, size=min(subjects, n), replace=False)
        self.subjects = []
        for i, g in enumerate(sorted(picks.tolist())):
            x, y = self._point_in(g)
            self.subjects.append({"subject_id": f"S{i + 1:04d}", "grid": g, "lon": x, "lat": y})
        self.gauges = []
        self._turn = itertools.count()
        if atlas.monitoring is not None:
            for row in atlas.monitoring.itertuples():
                self.gauges.append({"device_id": str(row.id).replace("-", "."),
                                    "kind": str(row.kind), "lon": row.geometry.x,
                                    "lat": row.geometry.y, "zone": str(row.zone)})

    def _point_in(self, g: int) -> tuple[float, float]:
        geom = self.loc.grid_geoms[g]
        xmin, ymin, xmax, ymax = geom.bounds
        while True:
            x, y = self.rng.uniform(xmin, xmax), self.rng.uniform(ymin, ymax)
            if shapely.contains_xy(geom, x, y):
                return round(float(x), 6), round(float(y), 6)

    def devices(self) -> list[dict]:
        """Device registrations: two per subject (door, water meter), plus every gauge."""
        rows = []
        for s in self.subjects:
            for kind, suffix in (("door", "D"), ("water_meter", "W")):
                rows.append({"device_id": f"{s['subject_id']}.{suffix}", "kind": kind,
                             "lon": s["lon"], "lat": s["lat"], "subject_id": s["subject_id"],
                             "heartbeat_s": 4 * 3600})  # battery devices: a heartbeat every 4 h
        for gauge in self.gauges:
            rows.append({"device_id": gauge["device_id"], "kind": gauge["kind"],
                         "lon": round(gauge["lon"], 7), "lat": round(gauge["lat"], 7),
                         "zone_id": gauge["zone"], "heartbeat_s": 600})
        return rows

    def subject_rows(self) -> list[dict]:
        """Subject registrations (subjects.v1): the people whose doors and meters are watched."""
        return [{"subject_id": s["subject_id"], "grid_id": self.loc.grids[s["grid"]].code,
                 "profile": "living_alone_24h" if i % 4 else "living_alone_12h",
                 "devices": [f"{s['subject_id']}.D", f"{s['subject_id']}.W"],
                 "call": ["grid_worker", "family"]} for i, s in enumerate(self.subjects)]

    def events(self, count: int, step_s: float = 20.0, start: datetime = START
               ) -> Iterator[SimRecord]:
        """`count` records in event-time order, `step_s` seconds of event time apart."""
        silent = self.subjects[0]["subject_id"] if self.subjects else None
        storm_from = start + timedelta(hours=14)
        for i in range(count):
            t = start + timedelta(seconds=i * step_s)
            ts = int(t.timestamp() * 1000)
            r = self.rng.random()
            if self.gauges and i % 3 == 0:  # gauges take turns, each reporting regularly
                yield self._gauge(i, t, ts, storm=t >= storm_from)
            elif r < self.bad_share:
                yield self._bad(i, t, ts)
            elif r < self.bad_share + REPORT_SHARE:
                yield self._report(i, t, ts)
            else:
                s = self.subjects[int(self.rng.integers(len(self.subjects)))]
                # the 83-year-old: nothing from 19:00 (Beijing) on day 1 to 20:00 on day 2
                quiet = s["subject_id"] == silent and \
                    start + timedelta(hours=11) <= t < start + timedelta(hours=36)
                kind = "door" if self.rng.random() < 0.6 else "water_meter"
                if quiet and kind == "door":
                    kind = "heartbeat"  # the door sensor is alive, the door stays shut
                suffix = "D" if kind in ("door", "heartbeat") else "W"
                data: dict = {"device_id": f"{s['subject_id']}.{suffix}", "kind": kind,
                              "subject_id": s["subject_id"], "observed_at": iso(t)}
                if kind == "water_meter":  # a silent household still reports, with no use
                    used = 0.0 if quiet else round(float(self.rng.uniform(0.005, 0.05)), 4)
                    data.update(value=used, unit="m3")
                yield SimRecord("pings.v1", data["device_id"].encode(),
                                _envelope("gridwatch.ping.v1", f"ping-{i}", t, data), ts, "located")

    def _report(self, i: int, t: datetime, ts: int) -> SimRecord:
        g = int(self.rng.integers(len(self.loc.grids)))
        x, y = self._point_in(g)
        cat = CATEGORIES[int(self.rng.choice(len(CATEGORIES), p=CATEGORY_SHARE))]
        shares = SEVERITY_SHARE.get(cat, SEVERITY_SHARE["default"])
        data = {"report_id": f"R{i:07d}", "reporter_id": f"W{g:05d}", "category": cat,
                "severity": ("low", "medium", "high")[int(self.rng.choice(3, p=shares))],
                "text": TEXTS[cat], "lon": x, "lat": y, "observed_at": iso(t)}
        if self.rng.random() < 0.3:  # sent from a Chinese map app
            gx, gy = wgs84_to_gcj02(x, y)
            data.update(lon=round(float(gx), 7), lat=round(float(gy), 7), crs="gcj02")
        return SimRecord("reports.v1", data["report_id"].encode(),
                         _envelope("gridwatch.report.v1", f"report-{i}", t, data), ts, "located")

    def _gauge(self, i: int, t: datetime, ts: int, storm: bool) -> SimRecord:
        gauge = self.gauges[next(self._turn) % len(self.gauges)]
        kind = gauge["kind"]
        if kind == "rain_gauge":
            value = float(self.rng.uniform(8, 25)) if storm else float(self.rng.uniform(0, 0.5))
        else:
            value = float(self.rng.uniform(0.5, 3)) if storm else float(self.rng.uniform(0, 0.1))
        data = {"device_id": gauge["device_id"], "kind": kind, "value": round(value, 2),
                "unit": "mm", "observed_at": iso(t)}
        return SimRecord("pings.v1", gauge["device_id"].encode(),
                         _envelope("gridwatch.ping.v1", f"ping-{i}", t, data), ts, "located")

    def _bad(self, i: int, t: datetime, ts: int) -> SimRecord:
        kind = int(self.rng.integers(7))
        base = {"report_id": f"R{i:07d}", "reporter_id": "W0", "category": "other",
                "severity": "low", "text": "x", "lon": 0.0, "lat": 0.0, "observed_at": iso(t)}
        if kind == 0:
            return SimRecord("reports.v1", b"bad", b"{not json", ts, "dlq")
        if kind == 1:
            data = dict(base)
            del data["category"]
            return SimRecord("reports.v1", b"bad", _envelope("gridwatch.report.v1", f"b{i}", t,
                                                             data), ts, "dlq")
        if kind == 2:
            data = dict(base, observed_at=iso(t + timedelta(days=400)))
            return SimRecord("reports.v1", b"bad", _envelope("gridwatch.report.v1", f"b{i}", t,
                                                             data), ts, "dlq")
        if kind == 3:
            data = dict(base, text="长" * 70000)
            return SimRecord("reports.v1", b"bad", _envelope("gridwatch.report.v1", f"b{i}", t,
                                                             data), ts, "dlq")
        if kind == 4:
            data = {"device_id": "X1", "kind": "teleporter", "observed_at": iso(t)}
            return SimRecord("pings.v1", b"X1", _envelope("gridwatch.ping.v1", f"b{i}", t, data),
                             ts, "dlq")
        if kind == 5:
            data = {"device_id": "NOT.REGISTERED", "kind": "door", "observed_at": iso(t)}
            return SimRecord("pings.v1", b"NOT.REGISTERED",
                             _envelope("gridwatch.ping.v1", f"b{i}", t, data), ts, "dlq")
        data = dict(base, lon=121.47, lat=31.23)  # Shanghai: outside this county's grids
        return SimRecord("reports.v1", b"far", _envelope("gridwatch.report.v1", f"b{i}", t, data),
                         ts, "unlocated")
