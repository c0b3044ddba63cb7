"""Ingest core (接入): validate inputs, resolve coordinates, locate in batches, route.

Pure Python, no faust: the faust agents, the benchmark and the replayer all call
`IngestCore.process` with a batch of raw records and send what it returns. Every input yields
exactly one output: a located event (keyed by grid id), an unlocated event, or a DLQ record;
device registrations update the registry and yield nothing.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np
import orjson

from geo.coords import to_wgs84
from geo.locate import Locator
from pipeline.envelope import decode, dlq_event, iso, make_event, parse_time, structured_from_binary
from pipeline.errors import Rejected
from pipeline.settings import Settings
from pipeline.telemetry import DLQ_RECORDS, track_ingest

_DEVICE_FACTS = ("kind", "subject_id", "zone_id", "heartbeat_s")


@dataclass(frozen=True, slots=True)
class RawRecord:
    """A Kafka record as the core sees it (topic is the registry's short name)."""

    topic: str
    partition: int
    offset: int
    timestamp_ms: int | None
    key: bytes | None
    value: bytes | None
    redrive_count: int = 0  # from the ``gridwatch-redrive-count`` header of a redriven record
    headers: object = ()  # the record's headers: a CloudEvents binary-mode record has ce_* ones


REDRIVE_HEADER = "gridwatch-redrive-count"


def redrive_count(headers: object) -> int:
    """The redrive count a record's headers carry (0 for ordinary records)."""
    if not headers:
        return 0
    items = headers.items() if isinstance(headers, dict) else headers
    for key, value in items:  # type: ignore[union-attr]
        if key == REDRIVE_HEADER:
            try:
                return int(value)
            except (TypeError, ValueError):
                return 0
    return 0


@dataclass(frozen=True, slots=True)
class Outgoing:
    """A record to produce: registry short topic name, key, value, timestamp.

    DLQ records also carry the rejection (source position, code, reason) so the runtime can
    log it without parsing the record it just built.
    """

    topic: str
    key: bytes
    value: bytes
    timestamp_ms: int | None
    rejection: tuple[str, int, int, str, str] | None = None


@dataclass(slots=True)
class _Pending:
    rec: RawRecord
    kind: str  # "report" or "ping"
    source_id: str
    data: dict
    lon: float
    lat: float
    crs: str
    observed: str
    location_from: str
    trace: str | None
    device: dict | None = None


@dataclass
class IngestStats:
    """Counters since start (for logs, metrics and the demo summary)."""

    inputs: int = 0
    located: int = 0
    unlocated: int = 0
    dlq: int = 0
    devices: int = 0


class IngestCore:
    """Validate -> resolve coordinates -> locate (vectorised) -> route, for one batch."""

    def __init__(self, locator: Locator, settings: Settings,
                 devices: MutableMapping[str, dict] | None = None) -> None:
        self.locator = locator
        self.settings = settings
        self.devices: MutableMapping[str, dict] = devices if devices is not None else {}
        self.stats = IngestStats()
        track_ingest(self.stats)  # gridwatch_records_total{stage="ingest"}
        self._future = timedelta(seconds=settings.max_future_s)
        self._past = timedelta(seconds=settings.max_past_s)
        # per-grid output fragments, built once: no per-event allocation for paths
        self._paths = [list(g.path) for g in locator.grids]
        self._police = [str(p) for p in locator.police_ids]
        self._hazards = [str(h) for h in locator.hazard_ids]

    def _check_time(self, rec: RawRecord, observed: str) -> str:
        t = parse_time(observed, "observed_at")
        if rec.timestamp_ms is not None:
            ingest = datetime.fromtimestamp(rec.timestamp_ms / 1000.0, UTC)
            if t > ingest + self._future:
                raise Rejected("time_out_of_range",
                               f"observed_at {observed} is more than {self._future} after the "
                               f"record was written ({iso(ingest)})")
            if t < ingest - self._past:
                raise Rejected("time_out_of_range",
                               f"observed_at {observed} is more than {self._past.days} days "
                               f"before the record was written ({iso(ingest)})")
        return iso(t)

    def _admit(self, rec: RawRecord) -> _Pending | None:
        """Decode one record; device records update the registry and return None."""
        if rec.topic == "devices.v1" and rec.value is None:
            if rec.key is not None:
                self.devices.pop(rec.key.decode("utf-8", "replace"), None)
            return None
        value = rec.value  # the DLQ keeps rec.value, as received
        if rec.headers:  # CloudEvents binary mode -> the structured envelope, for decoding only
            value = structured_from_binary(rec.headers, value, self.settings.max_message_bytes,
                                           rec.timestamp_ms) or value
        doc = decode(rec.topic, value, self.settings.max_message_bytes)
        data = doc["data"]
        if rec.topic == "devices.v1":
            self.devices[data["device_id"]] = data
            self.stats.devices += 1
            return None
        observed = self._check_time(rec, data["observed_at"])
        if rec.topic == "reports.v1":
            return _Pending(rec, "report", data["report_id"], data, data["lon"], data["lat"],
                            data.get("crs", "wgs84"), observed, "event", doc.get("traceparent"))
        device = self.devices.get(data["device_id"])
        facts = None
        if device is not None:  # registry facts the detectors need travel with the ping
            facts = {k: device[k] for k in _DEVICE_FACTS if k in device}
        if "lon" in data:
            return _Pending(rec, "ping", doc["id"], data, data["lon"], data["lat"],
                            data.get("crs", "wgs84"), observed, "event", doc.get("traceparent"),
                            facts)
        if device is None:
            raise Rejected("unknown_device",
                           f"device {data['device_id']} has no coordinates and is not "
                           "registered on devices.v1; register it, then redrive",
                           retriable=True)
        return _Pending(rec, "ping", doc["id"], data, device["lon"], device["lat"],
                        device.get("crs", "wgs84"), observed, "device", doc.get("traceparent"),
                        facts)

    def process(self, records: list[RawRecord]) -> list[Outgoing]:
        """Route one batch; order of outputs follows the order of inputs."""
        out: list[Outgoing | None] = []
        pending: list[tuple[int, _Pending]] = []
        for rec in records:
            self.stats.inputs += rec.topic != "devices.v1"
            try:
                p = self._admit(rec)
            except Rejected as rej:
                out.append(self._dlq(rec, rej.code, rej.reason, rej.retriable))
                continue
            except Exception as exc:  # a bug must not stop the stream: record and go on
                out.append(self._dlq(rec, "internal_error", f"{type(exc).__name__}: {exc}"))
                continue
            if p is not None:
                pending.append((len(out), p))
                out.append(None)
        if pending:
            self._locate(pending, out)
        return [o for o in out if o is not None]

    def _locate(self, pending: list[tuple[int, _Pending]], out: list[Outgoing | None]) -> None:
        n = len(pending)
        lon = np.fromiter((p.lon for _, p in pending), float, n)
        lat = np.fromiter((p.lat for _, p in pending), float, n)
        crs = [p.crs for _, p in pending]
        if any(c not in ("wgs84", "cgcs2000") for c in crs):
            carr = np.array(crs)
            for c in set(crs) - {"wgs84", "cgcs2000"}:
                m = carr == c
                lon[m], lat[m] = to_wgs84(lon[m], lat[m], c)
        res = self.locator.locate(lon, lat)
        grid = res.grid.tolist()
        police = res.police.tolist()
        hazards = res.hazards_of() if len(res.hazard_points) else None
        snapped = res.snapped.tolist()
        for i, (slot, p) in enumerate(pending):
            g = grid[i]
            x, y = round(float(lon[i]), 7), round(float(lat[i]), 7)
            if g < 0:
                data = {"source_type": p.kind, "source_id": p.source_id, "lon": x, "lat": y,
                        "observed_at": p.observed, "input": p.data}
                ev = make_event("gridwatch.unlocated.v1", f"unlocated:{p.kind}:{p.source_id}",
                                p.observed, data, subject=p.source_id, trace=p.trace)
                out[slot] = Outgoing("unlocated.v1", p.source_id.encode(), orjson.dumps(ev),
                                     p.rec.timestamp_ms)
                self.stats.unlocated += 1
                continue
            code = self.locator.grids[g].code
            pol = police[i]
            data = {"source_type": p.kind, "source_id": p.source_id, "grid_id": code,
                    "path": self._paths[g],
                    "police_grid": self._police[pol] if pol >= 0 else None,
                    "hazard_zones": [self._hazards[z] for z in hazards[i]] if hazards else [],
                    "lon": x, "lat": y,
                    "snapped_m": round(float(res.snap_distance_m[i]), 1) if snapped[i] else None,
                    "location_from": p.location_from, "observed_at": p.observed,
                    "input": p.data}
            if p.device is not None:
                data["device"] = p.device
            ev = make_event("gridwatch.located.v1", f"located:{p.kind}:{p.source_id}",
                            p.observed, data, subject=code, trace=p.trace)
            out[slot] = Outgoing("located.v1", code.encode(), orjson.dumps(ev),
                                 p.rec.timestamp_ms)
            self.stats.located += 1

    def _dlq(self, rec: RawRecord, code: str, reason: str, retriable: bool = False) -> Outgoing:
        self.stats.dlq += 1
        DLQ_RECORDS.labels("ingest", code).inc()
        ev = dlq_event(self.settings.topic(rec.topic), rec.partition, rec.offset,
                       rec.timestamp_ms, rec.key, rec.value, code, reason, retriable,
                       rec.redrive_count, keep_bytes=self.settings.max_message_bytes)
        return Outgoing("dlq.v1", rec.topic.encode(), orjson.dumps(ev), rec.timestamp_ms,
                        (self.settings.topic(rec.topic), rec.partition, rec.offset, code, reason))
