"""IncidentHost: alerts, ticks and commands of each partition -> incidents and escalations.

Pure (no faust), like `pipeline.detect.host.DetectorHost`. Alerts arrive keyed by grid id, so
every incident lives on the partition of its grid; commands are routed there too (the
incident id starts with the grid id). Grouping: a firing alert whose dedup key (kind and
subject, device, zone or cluster) has an open incident joins it instead of opening another;
a resolved alert is recorded on its incident (people close incidents, not sensors).
Inhibition: while a zone has an open landslide incident at or above the policy's
``inhibit_min_level``, stale-sensor and device alerts inside that zone are recorded, not opened.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from dataclasses import dataclass, field

from pipeline.detect.clock import Watermark
from pipeline.detect.host import event_ms
from pipeline.errors import Rejected
from pipeline.incident.lifecycle import (
    ENDED,
    Escalation,
    Incident,
    apply_command,
    next_due,
    open_incident,
    step_time,
)
from pipeline.incident.policy import Policy

INHIBITED_BY_ZONE = frozenset({"sensor_stale", "device_offline"})
LEVEL_RANK = {"blue": 0, "yellow": 1, "orange": 2, "red": 3}


def dedup_key(alert: dict) -> str:
    """What makes two alerts the same matter."""
    ev = alert.get("evidence") or {}
    entity = (alert.get("zone_id") if alert["kind"] == "landslide" else None) \
        or alert.get("subject_id") or ev.get("device_id") or ev.get("point_id")
    if alert["kind"] == "report_cluster" or not entity:
        entity = alert["alert_id"]
    return f"{alert['kind']}:{entity}"


@dataclass
class Changes:
    """What one step produced: transitions, and the incidents whose state changed."""

    escalations: list[Escalation] = field(default_factory=list)
    incidents: dict[str, Incident] = field(default_factory=dict)
    rejected: list[Rejected] = field(default_factory=list)

    def add(self, inc: Incident, events: list[Escalation]) -> None:
        if events:
            self.escalations += events
            self.incidents[inc.incident_id] = inc


class IncidentPartition:
    def __init__(self, lateness_ms: int) -> None:
        self.watermark = Watermark(lateness_ms)
        self.incidents: dict[str, Incident] = {}
        self.open_by_key: dict[str, str] = {}
        self.loud_zones: dict[str, str] = {}  # zone -> landslide level of its open incident
        self._timers: list[tuple[int, str]] = []

    def schedule(self, inc: Incident) -> None:
        due = next_due(inc)
        if due:
            heapq.heappush(self._timers, (due, inc.incident_id))

    def advance(self, out: Changes) -> None:
        now = self.watermark.now_ms
        while self._timers and self._timers[0][0] <= now:
            due, iid = heapq.heappop(self._timers)
            inc = self.incidents.get(iid)
            if inc is None or next_due(inc) != due:
                continue  # stale entry
            out.add(inc, step_time(inc, now))
            self.schedule(inc)


class IncidentHost:
    """Every partition's incidents in one process."""

    def __init__(self, policy: Policy, lateness_ms: int = 300_000,
                 on_open: Callable[[Incident], None] | None = None) -> None:
        self.policy = policy
        self.lateness_ms = lateness_ms
        self.partitions: dict[int, IncidentPartition] = {}
        self.on_open = on_open

    def partition(self, p: int) -> IncidentPartition:
        if p not in self.partitions:
            self.partitions[p] = IncidentPartition(self.lateness_ms)
        return self.partitions[p]

    def drop(self, p: int) -> None:
        self.partitions.pop(p, None)

    def on_tick(self, p: int, tick_ms: int) -> Changes:
        out = Changes()
        part = self.partition(p)
        if part.watermark.tick(tick_ms):
            part.advance(out)
        return out

    def on_alert(self, p: int, alert: dict) -> Changes:
        """One alert body from ``alerts.v1``."""
        out = Changes()
        part = self.partition(p)
        at = event_ms(alert["observed_at"])
        part.watermark.observe(at)
        key = dedup_key(alert)
        iid = part.open_by_key.get(key)
        inc = part.incidents.get(iid) if iid else None
        zone = alert.get("zone_id")
        if alert["status"] == "resolved":
            if inc is not None:
                out.add(inc, [inc._event("alert_resolved", at, reason=alert.get("reason"))])
            if alert["kind"] == "landslide" and zone:
                part.loud_zones.pop(zone, None)
        elif inc is not None:
            if alert["alert_id"] not in inc.alert_ids:
                inc.alert_ids.append(alert["alert_id"])
            if alert["severity"] != inc.severity:
                inc.severity = alert["severity"]
                out.add(inc, [inc._event("severity_changed", at, reason=alert["severity"])])
            else:
                out.add(inc, [inc._event("alert_added", at, reason=alert.get("reason"))])
        elif zone and alert["kind"] in INHIBITED_BY_ZONE and zone in part.loud_zones:
            pass  # inhibited: the zone's landslide incident already has people on it
        else:
            category = (alert.get("evidence") or {}).get("category")
            rule = self.policy.rule_for(alert["kind"], category, alert["severity"])
            iid = f"{alert['grid_id']}~{key}~{at}"
            inc, events = open_incident(iid, key, alert["kind"], alert["severity"], alert["grid_id"],
                                        tuple(alert.get("path") or (alert["grid_id"],)),
                                        alert["alert_id"], rule, at)
            part.incidents[iid] = inc
            part.open_by_key[key] = iid
            out.add(inc, events)
            if self.on_open:
                self.on_open(inc)
        if alert["kind"] == "landslide" and zone and alert["status"] == "firing" \
                and LEVEL_RANK.get(alert["severity"], -1) >= LEVEL_RANK[self.policy.inhibit_min_level]:
            part.loud_zones[zone] = alert["severity"]
        for changed in list(out.incidents.values()):
            part.schedule(changed)
        part.advance(out)
        return out

    def on_command(self, p: int, cmd: dict) -> Changes:
        """One command body (``commands.v1`` schema), routed to the incident's partition."""
        out = Changes()
        part = self.partition(p)
        inc = part.incidents.get(cmd["incident_id"])
        if inc is None:
            out.rejected.append(Rejected("unknown_incident", f"no incident {cmd['incident_id']}"))
            return out
        at = event_ms(cmd["at"])
        part.watermark.observe(at)
        try:
            events = apply_command(inc, cmd["command_id"], cmd["action"], cmd["actor"], cmd["scope"],
                                   at, cmd.get("reason"), cmd.get("assignee"))
        except Rejected as rej:
            out.rejected.append(rej)
            return out
        out.add(inc, events)
        if inc.status in ENDED:
            part.open_by_key.pop(inc.dedup_key, None)
        part.schedule(inc)
        part.advance(out)
        return out
