"""Replay (回放) through the pure core: inputs of a recorded log -> the outputs the pipeline made.

No Kafka and no faust: `CoreReplayer` chains the same pure pieces the agents wrap -
`IngestCore` (validate, locate), `DetectorHost` (+ `ZoneLevels`), `IncidentHost` (with the
command router and links between partitions) - and feeds them one log in *log order*: records
merged by their Kafka timestamp, each partition in offset order (``heapq.merge``, so a partition
is never reordered). Clock ticks come from the log (``clock.v1``), so the outputs are the same on
every replay and equal to the live run's (ids and bodies).

What is replayed: by default the pipeline's own log (`PIPELINE_LOG`): ``located.v1`` - ingest's
output, each partition in exactly the order the detectors read it live - with ``clock.v1``,
``commands.v1`` and ``subjects.v1``. With ``reingest`` the raw inputs (`RAW_LOG`: reports, pings,
devices) go through ingest again (after an ingest fix or with another atlas); their order then
comes from the input records' timestamps, which is the live order when sources stamp records as
they send them (Kafka's default), not for a backfill of old records sent in a burst.

Inside one tick the incident partition sees the tick before the alerts the detectors raise at
it, as it does live (both agents read ``clock.v1``; the alerts come a hop later).
"""

from __future__ import annotations

import heapq
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson

from pipeline.detect.alerts import Alert
from pipeline.detect.host import DetectorHost, Output, decode_located, decode_record
from pipeline.detect.landslide import ZoneLevels
from pipeline.detect.wiring import build_host, change_from_record, level_record
from pipeline.errors import Rejected
from pipeline.gate import TimeBounds
from pipeline.incident.host import Changes, IncidentHost
from pipeline.incident.records import escalation_record, incident_record
from pipeline.ingest import IngestCore, Outgoing, RawRecord
from pipeline.settings import Settings
from pipeline.sink import partition_for
from pipeline.subjects import subject_from_data

#: the order that breaks timestamp ties (registries first, the clock last)
_TIES = ("devices.v1", "subjects.v1", "reports.v1", "pings.v1", "located.v1", "commands.v1", "clock.v1")
#: what a replay reads by default: the pipeline's own ordered log from ingest's output on
PIPELINE_LOG = ("subjects.v1", "located.v1", "commands.v1", "clock.v1")
#: what a replay with ``reingest`` reads: the raw inputs
RAW_LOG = ("devices.v1", "subjects.v1", "reports.v1", "pings.v1", "commands.v1", "clock.v1")
#: topics whose records a replay reproduces and a what-if diff compares
OUTPUT_TOPICS = ("alerts.v1", "escalations.v1", "incidents.v1")
_RANK = {t: i for i, t in enumerate(_TIES)}
_INGEST = frozenset({"reports.v1", "pings.v1", "devices.v1"})


@dataclass(frozen=True, slots=True)
class LogRecord:
    """One record of a recorded log (Kafka or the archive); topic is the short name."""

    topic: str
    partition: int
    offset: int
    timestamp_ms: int
    key: bytes | None
    value: bytes | None
    redrive_count: int = 0

    def order(self) -> tuple[int, int, int, int]:
        return (self.timestamp_ms, _RANK.get(self.topic, 99), self.partition, self.offset)


def log_order(streams: Iterable[Iterable[LogRecord]]) -> Iterator[LogRecord]:
    """Merge per-partition streams (each in offset order) into one log ordered by timestamp."""
    return heapq.merge(*streams, key=LogRecord.order)


@dataclass
class ReplayStats:
    inputs: int = 0
    ticks: int = 0
    commands: int = 0
    registry: int = 0
    outputs: Counter = field(default_factory=Counter)  # per topic
    rejected: Counter = field(default_factory=Counter)  # per code


class CoreReplayer:
    """Feeds log records through ingest, detectors and incidents; collects their outputs.

    ``on_output(topic, key, value)`` receives every output record (alerts, levels,
    escalations, incidents, links, DLQ) in the order the pipeline would produce it; by default
    alerts, escalations and incidents are kept in ``self.outputs``.
    """

    def __init__(self, settings: Settings, core: IngestCore,
                 detectors: DetectorHost | None = None, incidents: IncidentHost | None = None,
                 keep: Iterable[str] = OUTPUT_TOPICS, batch: int = 4096) -> None:
        from pipeline.incident.wiring import build_incident_host

        self.settings = settings
        self.core = core
        self.detectors = detectors or build_host(settings)
        self.incidents = incidents or build_incident_host(
            settings, self.detectors.cfg.clock.allowed_lateness, core.locator, self.detectors.subjects)
        self.zones: dict[int, ZoneLevels] = {}
        self.keep = frozenset(keep)
        self.outputs: list[tuple[str, bytes, bytes | None]] = []  # None: a tombstone
        self.stats = ReplayStats()
        self.batch = batch
        self._pending: list[RawRecord] = []
        self._parts: dict[bytes, int] = {}
        self._n = settings.partitions
        self.bounds = TimeBounds.of(settings)

    # -- routing -------------------------------------------------------------------------
    def _part(self, key: bytes) -> int:
        p = self._parts.get(key)
        if p is None:
            p = self._parts[key] = partition_for(key, self._n)
        return p

    def _out(self, topic: str, key: bytes, value: bytes | None) -> None:
        self.stats.outputs[topic] += 1
        if topic in self.keep:
            self.outputs.append((topic, key, value))

    def _reject(self, code: str) -> None:
        self.stats.rejected[code] += 1

    # -- feeding -------------------------------------------------------------------------
    def feed(self, rec: LogRecord) -> None:
        """One record of the log (records must come in log order)."""
        if rec.topic == "located.v1":
            self.flush()
            self.stats.inputs += 1
            self._located(rec.partition, rec.value)
            return
        if rec.topic in _INGEST:
            self._pending.append(RawRecord(rec.topic, rec.partition, rec.offset, rec.timestamp_ms,
                                           rec.key, rec.value, rec.redrive_count))
            if len(self._pending) >= self.batch:
                self.flush()
            return
        self.flush()  # anything else may depend on what ingest has not located yet
        if rec.topic == "clock.v1":
            self._tick(rec)
        elif rec.topic == "subjects.v1":
            self._subject(rec)
        elif rec.topic == "commands.v1":
            self._command(rec)

    def feed_all(self, records: Iterable[LogRecord]) -> ReplayStats:
        for rec in records:
            self.feed(rec)
        self.flush()
        return self.stats

    def flush(self) -> None:
        """Run the pending ingest batch through the core and everything downstream."""
        if not self._pending:
            return
        batch, self._pending = self._pending, []
        self.stats.inputs += sum(r.topic != "devices.v1" for r in batch)
        self.stats.registry += sum(r.topic == "devices.v1" for r in batch)
        for o in self.core.process(batch):
            self._ingested(o)

    def _ingested(self, o: Outgoing) -> None:
        self._out(o.topic, o.key, o.value)
        if o.topic != "located.v1":
            if o.rejection:
                self._reject(o.rejection[3])
            return
        self._located(self._part(o.key), o.value)

    def _located(self, p: int, value: bytes | None) -> None:
        try:
            data, t = decode_located(value, self.settings.max_message_bytes)
        except Rejected as rej:
            self._reject(rej.code)
            return
        self._detected(self.detectors.on_located(p, data, t))

    def _tick(self, rec: LogRecord) -> None:
        try:
            _, tick = decode_record(rec.value, True, self.settings.max_message_bytes,
                                    rec.timestamp_ms, self.bounds)
        except Rejected as rej:
            self._reject(rej.code)
            return
        self.stats.ticks += 1
        self._changes(self.incidents.on_tick(rec.partition, tick))
        self._detected(self.detectors.on_tick(rec.partition, tick))

    def _subject(self, rec: LogRecord) -> None:
        self.stats.registry += 1
        reg = self.detectors.subjects
        try:
            if rec.value is None:
                if rec.key is not None:
                    reg.pop(rec.key.decode("utf-8", "replace"), None)  # type: ignore[attr-defined]
            else:
                s = subject_from_data(orjson.loads(rec.value)["data"])
                reg[s.subject_id] = s  # type: ignore[index]
        except Exception:  # the live follower skips what it cannot read, and so does replay
            self._reject("bad_subject")
            return
        self.detectors.subjects_version += 1

    def _command(self, rec: LogRecord) -> None:
        from pipeline.incident.wiring import decode_command

        self.stats.commands += 1
        try:
            data = decode_command(rec.value, self.settings.max_message_bytes, rec.timestamp_ms,
                                  self.bounds, self.settings.command_verify_key())
        except Rejected as rej:
            self._reject(rej.code)
            return
        grid = data["incident_id"].split("~", 1)[0]
        self._changes(self.incidents.on_command(self._part(grid.encode()), data))

    # -- downstream ----------------------------------------------------------------------
    def _detected(self, out: Output) -> None:
        for rej in out.rejected:
            self._reject(rej.code)
        self._alerts(out.alerts)
        for change in out.levels:
            for zone in change.zones:
                key, value = level_record(change, zone)
                self._out("levels.v1", key, value)
                zp = self._part(key)
                zones = self.zones.get(zp)
                if zones is None:
                    zones = self.zones[zp] = ZoneLevels()
                data = orjson.loads(value)["data"]
                self._alerts(zones.apply(zone, change_from_record(data)))

    def _alerts(self, alerts: list[Alert]) -> None:
        for a in alerts:
            key, value = a.encode()
            self._out("alerts.v1", key, value)
            self._changes(self.incidents.on_alert(self._part(key), a.data()))

    def _changes(self, changes: Changes) -> None:
        for rej in changes.rejected:
            self._reject(rej.code)
        for ev in changes.escalations:
            key, value = escalation_record(ev, changes.incidents[ev.incident_id])
            self._out("escalations.v1", key, value)
        for inc in changes.incidents.values():
            key, value = incident_record(inc)
            self._out("incidents.v1", key, value)
        for iid in changes.forgotten:
            self._out("incidents.v1", iid.encode(), None)
        for grid, link in changes.links:
            self._changes(self.incidents.on_link(self._part(grid.encode()), link))


def by_id(records: Iterable[tuple[str, bytes, Any]]) -> dict[str, dict[str, dict]]:
    """Output records -> {topic: {envelope id: envelope}}; incidents keep their newest state
    (a tombstone removes one).

    Redelivered records (same id, as after a crash) collapse into one.
    """
    out: dict[str, dict[str, dict]] = {t: {} for t in OUTPUT_TOPICS}
    for topic, key, value in records:
        if topic not in out:
            continue
        if value is None:
            if topic == "incidents.v1" and key:
                out[topic].pop(key.decode(), None)
            continue
        doc = orjson.loads(value)
        if topic == "incidents.v1":
            out[topic][doc["data"]["incident_id"]] = doc
        else:
            out[topic][doc["id"]] = doc
    return out
