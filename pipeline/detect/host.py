"""DetectorHost: routes located events and clock ticks of each partition to the detectors.

Pure (no faust): the faust agents (pipeline.detect_agents), the archive replayer, the benchmark
and the tests all feed it decoded ``located.v1`` envelopes and ticks, partition by partition, and
send what it returns: alerts (``alerts.v1``), point level changes (``levels.v1``, keyed by zone,
aggregated by `ZoneLevels`) and rejections (``dlq.v1``, with code and reason).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson

from pipeline.detect.alerts import Alert
from pipeline.detect.clock import Watermark
from pipeline.detect.config import DetectorConfig
from pipeline.detect.inactivity import InactivityDetector, Subject
from pipeline.detect.landslide import SENSOR_KINDS, PointLevel, PointState, apply_reading, evaluate, new_point
from pipeline.detect.plugins import Reading
from pipeline.detect.plugins import kinds as plugin_kinds
from pipeline.detect.plugins import registry as plugin_registry
from pipeline.detect.reports import ReportClusterer
from pipeline.envelope import check_size
from pipeline.errors import Rejected
from pipeline.gate import TimeBounds, decode_tick

# every point is re-evaluated (windows slide, staleness) every 5 minutes of event time, besides
# at each of its own readings
POINT_SWEEP_MS = 5 * 60_000
_MIN_MS, _MAX_MS = 946_684_800_000, 4_102_444_800_000  # 2000-01-01 .. 2100-01-01


def decode_record(value: bytes | None, is_tick: bool, max_bytes: int,
                  record_ms: int | None = None, bounds: TimeBounds | None = None) -> tuple[str, Any]:
    """A located.v1 or clock.v1 record -> ("tick", ms) or ("located", data), or `Rejected`.

    Ticks pass the whole gate (`pipeline.gate.decode_tick`); of a located record only the
    fields the detectors read are checked (the writer, ingest, validated the rest).
    """
    if is_tick:
        return "tick", decode_tick(value, max_bytes, record_ms, bounds)
    return "located", _decode(value, max_bytes)[0]


def decode_located(value: bytes | None, max_bytes: int) -> tuple[dict, int]:
    """A located.v1 record -> (data, event time in ms), or `Rejected` (as `decode_record`)."""
    return _decode(value, max_bytes)


def _decode(value: bytes | None, max_bytes: int) -> tuple[Any, int]:
    try:
        doc = orjson.loads(check_size(value, max_bytes))
        data = doc["data"]
    except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
        raise Rejected("bad_record", f"not a gridwatch envelope with data: {exc}")
    if not isinstance(data, dict):
        raise Rejected("bad_record", "data is not an object")
    for key, kind in (("grid_id", str), ("observed_at", str), ("source_type", str), ("input", dict)):
        if not isinstance(data.get(key), kind):
            raise Rejected("bad_located", f"located event without a valid {key}")
    try:
        t = event_ms(data["observed_at"])
    except ValueError:
        raise Rejected("bad_located", f"observed_at {data['observed_at'][:40]!r} is not ISO 8601")
    if not _MIN_MS <= t < _MAX_MS:
        raise Rejected("bad_located", f"observed_at {data['observed_at']} is outside 2000..2100")
    inp = data["input"]
    need = ("report_id", "category", "severity") if data["source_type"] == "report" else ("device_id", "kind")
    missing = [k for k in need if not isinstance(inp.get(k), str)]
    if missing or data["source_type"] not in ("report", "ping"):
        lacks = ", ".join(missing) or "a known type"
        raise Rejected("bad_located", f"{data['source_type']!r} input lacks {lacks}")
    numeric = inp.get("kind") in SENSOR_KINDS or inp.get("kind") in plugin_kinds()
    if data["source_type"] == "ping" and numeric and not isinstance(inp.get("value"), int | float):
        raise Rejected("bad_located", f"{inp['kind']} reading without a numeric value")
    if data["source_type"] == "report" and not all(isinstance(data.get(k), int | float)
                                                   for k in ("lon", "lat")):
        raise Rejected("bad_located", "report without lon/lat")
    return data, t


def event_ms(observed_at: str) -> int:
    """Milliseconds since the epoch of an ISO 8601 time with offset."""
    return int(datetime.fromisoformat(observed_at).timestamp() * 1000)


@dataclass
class Output:
    """What one step produced."""

    alerts: list[Alert] = field(default_factory=list)
    levels: list[PointLevel] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)

    def extend(self, other: Output) -> None:
        self.alerts += other.alerts
        self.levels += other.levels
        self.rejected += other.rejected


@dataclass
class DetectorStats:
    events: int = 0
    ticks: int = 0
    ticks_deferred: int = 0  # skipped by the runtime while the partition had a backlog
    late: int = 0
    late_max_ms: int = 0  # how far behind the watermark the latest-arriving event was
    ignored: int = 0
    rejected: int = 0
    alerts: int = 0


class PartitionDetectors:
    """The detectors' state for one partition of ``located.v1``."""

    def __init__(self, cfg: DetectorConfig, subjects: Mapping[str, Subject]) -> None:
        self.cfg = cfg
        self.watermark = Watermark(cfg.clock.allowed_lateness)
        self.inactivity = InactivityDetector(cfg.inactivity, subjects)
        self.points: dict[str, PointState] = {}
        self.reports = ReportClusterer(cfg.reports)
        self.swept_ms = 0
        self.armed_version = -1
        detectors = plugin_registry()
        self.plugins = {name: (detectors[name], pcfg, detectors[name].new_state(pcfg))
                        for name, pcfg in cfg.plugins.items()}

    def advance(self, out: Output) -> None:
        now = self.watermark.now_ms
        out.alerts += self.inactivity.advance(now)
        out.alerts += self.reports.advance(now)
        for det, pcfg, state in self.plugins.values():
            out.alerts += det.on_time(state, pcfg, now)
        if now - self.swept_ms >= POINT_SWEEP_MS:
            self.swept_ms = now
            for st in self.points.values():
                alerts, change = evaluate(st, self.cfg.landslide, now)
                out.alerts += alerts
                if change:
                    out.levels.append(change)


class DetectorHost:
    """Every partition's detectors in one process, and the registries they read."""

    def __init__(self, cfg: DetectorConfig, subjects: Mapping[str, Subject] | None = None,
                 partition_of: Callable[[str], int] | None = None,
                 path_of: Callable[[str], tuple[str, ...]] | None = None) -> None:
        self.cfg = cfg
        self.subjects: Mapping[str, Subject] = subjects if subjects is not None else {}
        self.subjects_version = 0  # bump when the registry changes
        self.partition_of = partition_of
        self.path_of = path_of or (lambda g: (g,))
        self.partitions: dict[int, PartitionDetectors] = {}
        self.stats = DetectorStats()
        self._device_subject: dict[str, str] = {}
        self._indexed_version = -1
        self._paths: dict[str, tuple[str, ...]] = {}

    def partition(self, p: int) -> PartitionDetectors:
        pd = self.partitions.get(p)
        if pd is None:
            pd = self.partitions[p] = PartitionDetectors(self.cfg, self.subjects)
        return pd

    def drop(self, p: int) -> None:
        """Forget a partition (revoked from this worker)."""
        self.partitions.pop(p, None)

    def _subject_of_device(self, device_id: str) -> str | None:
        if self._indexed_version != self.subjects_version:
            self._device_subject = {d: s.subject_id for s in self.subjects.values() for d in s.devices}
            self._indexed_version = self.subjects_version
        return self._device_subject.get(device_id)

    def on_tick(self, p: int, tick_ms: int) -> Output:
        """A clock tick for partition p: fire what is due."""
        out = Output()
        pd = self.partition(p)
        self.stats.ticks += 1
        if pd.armed_version != self.subjects_version and self.partition_of is not None:
            pd.armed_version = self.subjects_version
            for s in self.subjects.values():  # registered but never heard from: watch them too
                if s.grid_id and s.subject_id not in pd.inactivity.states \
                        and self.partition_of(s.grid_id) == p:
                    pd.inactivity.arm(s, s.grid_id, self.path_of(s.grid_id), tick_ms)
        if pd.watermark.tick(tick_ms):
            pd.advance(out)
        self.stats.alerts += len(out.alerts)
        return out

    def on_located(self, p: int, data: dict, t: int | None = None) -> Output:
        """One located event (the ``data`` of a located.v1 envelope) of partition p; `t` is its
        event time in ms when the caller has parsed it already (`decode_located`)."""
        out = Output()
        pd = self.partition(p)
        self.stats.events += 1
        if t is None:
            t = event_ms(data["observed_at"])
        before = pd.watermark.now_ms, pd.watermark.max_event_ms  # restored if it is refused
        late = pd.watermark.observe(t)
        grid = data["grid_id"]
        path = self._paths.get(grid)
        if path is None:  # one shared tuple per grid: states hold no copies of paths
            path = self._paths[grid] = tuple(data.get("path") or (grid,))
        grid = path[-1]
        inp = data.get("input") or {}
        try:
            if data["source_type"] == "report":
                out.alerts += pd.reports.report(inp["report_id"], inp["category"], inp["severity"],
                                                inp.get("text", ""), grid, path, data["lon"],
                                                data["lat"], t)
            else:
                self._ping(pd, data, inp, grid, path, t, out)
        except Rejected as rej:  # a refused reading moves neither time nor state
            pd.watermark.now_ms, pd.watermark.max_event_ms = before
            out.rejected.append(rej)
            self.stats.rejected += 1
            return out
        if late:
            self.stats.late += 1
            self.stats.late_max_ms = max(self.stats.late_max_ms, pd.watermark.now_ms - t)
        pd.advance(out)
        self.stats.alerts += len(out.alerts)
        return out

    def _ping(self, pd: PartitionDetectors, data: dict, inp: dict, grid: str,
              path: tuple[str, ...], t: int, out: Output) -> None:
        kind, device_id = inp["kind"], inp["device_id"]
        device = data.get("device") or {}
        plugin = plugin_kinds().get(kind)
        if plugin is not None:
            if plugin.name not in pd.plugins:
                self.stats.ignored += 1  # its detector is not configured
                return
            value = inp.get("value")
            if not isinstance(value, int | float) or isinstance(value, bool):
                raise Rejected("bad_located", f"{kind} reading without a numeric value")
            det, pcfg, state = pd.plugins[plugin.name]
            out.alerts += det.on_reading(state, pcfg, Reading(device_id, kind, float(value),
                                                              inp.get("unit"), t, grid, path, device))
            return
        sensor = SENSOR_KINDS.get(kind)
        if sensor is not None:
            st = pd.points.get(device_id)
            if st is None:
                zones = (device["zone_id"],) if device.get("zone_id") else \
                    tuple(data.get("hazard_zones") or (f"point:{device_id}",))
                st = pd.points[device_id] = new_point(device_id, sensor, grid, path, zones)
                if device.get("heartbeat_s"):  # the registered reporting interval
                    st.interval_ms = int(device["heartbeat_s"]) * 1000
            try:
                out.alerts += apply_reading(st, self.cfg.landslide, t, float(inp["value"]),
                                            inp.get("unit"), pd.watermark.now_ms)
            except Rejected:
                if not st.last_ms:  # a point first heard of through a refused reading
                    del pd.points[device_id]
                raise
            alerts, change = evaluate(st, self.cfg.landslide, max(pd.watermark.now_ms, st.last_ms))
            out.alerts += alerts
            if change:
                out.levels.append(change)
            return
        subject_id = inp.get("subject_id") or device.get("subject_id") or self._subject_of_device(device_id)
        if subject_id is None:
            self.stats.ignored += 1  # e.g. tilt, or a device no one is watched through
            return
        hb = device.get("heartbeat_s")
        out.alerts += pd.inactivity.ping(subject_id, grid, path, device_id, kind, inp.get("value"),
                                         inp.get("unit"), t, hb * 1000 if hb else None)
