"""IncidentHost: alerts, ticks and commands of each partition -> incidents and escalations.

Pure (no faust), like `pipeline.detect.host.DetectorHost`. Alerts arrive keyed by grid id, so
every incident lives on the partition of its grid; commands are routed there too (the
incident id starts with the grid id). Grouping: a firing alert whose dedup key (kind and
subject, device, zone or cluster) has an open incident joins it instead of opening another;
a resolved alert is recorded on its incident (people close incidents, not sensors).
Memory: an ended incident (closed, cancelled, merged) is dropped `Policy.retain_ended_days` of
event time after it ended (a tombstone on the compacted ``incidents.v1`` says so, so the topic
and the boards reading it stay bounded too); a later command for it is rejected as
``unknown_incident``.
Inhibition: while a zone has an open landslide incident at or above the policy's
``inhibit_min_level``, stale-sensor and device alerts inside that zone are recorded, not opened.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from dataclasses import dataclass, field

from pipeline.detect.clock import Watermark
from pipeline.detect.host import event_ms
from pipeline.envelope import iso_ms
from pipeline.errors import Rejected
from pipeline.gate import TimeBounds
from pipeline.incident.lifecycle import (
    ENDED,
    Escalation,
    Incident,
    apply_command,
    next_due,
    open_incident,
    step_time,
)
from pipeline.incident.policy import Policy, Rule

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
    """What one step produced: transitions, the incidents whose state changed, and links to
    incidents on other partitions (grid id, link body) for ``incident-commands.v1``."""

    escalations: list[Escalation] = field(default_factory=list)
    incidents: dict[str, Incident] = field(default_factory=dict)
    rejected: list[Rejected] = field(default_factory=list)
    links: list[tuple[str, dict]] = field(default_factory=list)
    forgotten: list[str] = field(default_factory=list)  # ended incidents dropped: tombstones

    def add(self, inc: Incident, events: list[Escalation]) -> None:
        if events:
            self.escalations += events
            self.incidents[inc.incident_id] = inc


class IncidentPartition:
    def __init__(self, lateness_ms: int, retain_ended_ms: int = 30 * 86_400_000) -> None:
        self.watermark = Watermark(lateness_ms)
        self.retain_ended_ms = retain_ended_ms
        self.incidents: dict[str, Incident] = {}
        self.open_by_key: dict[str, str] = {}
        self.loud_zones: dict[str, str] = {}  # zone -> landslide level of its open incident
        self._timers: list[tuple[int, str]] = []
        self.ended_at: dict[str, int] = {}  # ended incident -> when it ended
        self._forget: list[tuple[int, str]] = []  # (when to drop it, incident id)

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
        while self._forget and self._forget[0][0] <= now:
            due, iid = heapq.heappop(self._forget)
            inc = self.incidents.get(iid)
            still = self.ended_at.get(iid) == due - self.retain_ended_ms  # not reopened or touched since
            if inc is not None and inc.status in ENDED and still:
                del self.incidents[iid], self.ended_at[iid]
                out.forgotten.append(iid)

    def ended(self, inc: Incident, at_ms: int) -> None:
        """`inc` ended at `at_ms`: forget it once the retention has passed (reopening resets)."""
        if inc.status in ENDED:
            self.ended_at[inc.incident_id] = at_ms
            heapq.heappush(self._forget, (at_ms + self.retain_ended_ms, inc.incident_id))
        else:
            self.ended_at.pop(inc.incident_id, None)


class IncidentHost:
    """Every partition's incidents in one process."""

    def __init__(self, policy: Policy, lateness_ms: int = 300_000,
                 zone_grids: Callable[[str], list[dict]] | None = None,
                 bounds: TimeBounds | None = None) -> None:
        self.policy = policy
        self.lateness_ms = lateness_ms
        #: how far a command's time may be from its partition's clock (`pipeline.gate`)
        self.bounds = bounds or TimeBounds()
        self.partitions: dict[int, IncidentPartition] = {}
        #: zone id -> the grids it touches: [{grid_id, path, households, subjects, share}]
        self.zone_grids = zone_grids

    def partition(self, p: int) -> IncidentPartition:
        if p not in self.partitions:
            self.partitions[p] = IncidentPartition(
                self.lateness_ms, int(self.policy.retain_ended_days * 86_400_000))
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
                                        alert["alert_id"], rule, at, category)
            part.incidents[iid] = inc
            part.open_by_key[key] = iid
            out.add(inc, events)
            if rule.fan_out and zone and self.zone_grids is not None:
                self._fan_out(inc, zone, at, out)
        if alert["kind"] == "landslide" and zone and alert["status"] == "firing" \
                and LEVEL_RANK.get(alert["severity"], -1) >= LEVEL_RANK[self.policy.inhibit_min_level]:
            part.loud_zones[zone] = alert["severity"]
        for changed in list(out.incidents.values()):
            part.schedule(changed)
        part.advance(out)
        return out

    def _fan_out(self, parent: Incident, zone: str, at: int, out: Changes) -> None:
        """Open a linked child incident on every grid the zone touches."""
        parent.children = {}
        for g in self.zone_grids(zone):  # type: ignore[misc]
            child_id = f"{g['grid_id']}~{parent.dedup_key}@{g['grid_id']}~{at}"
            parent.children[child_id] = "dispatched"
            out.links.append((g["grid_id"], {
                "link": "open_child", "incident_id": child_id, "parent_id": parent.incident_id,
                "parent_grid": parent.grid_id, "dedup_key": f"{parent.dedup_key}@{g['grid_id']}",
                "kind": parent.kind, "severity": parent.severity, "grid_id": g["grid_id"],
                "category": parent.category,
                "path": list(g["path"]), "rule": parent.rule.model_dump(), "at": iso_ms(at),
                "to_check": {"households": g.get("households"), "subjects": g.get("subjects", []),
                             "share": g.get("share")}}))
        out.add(parent, [parent._event("fanned_out", at, reason=f"{len(parent.children)} grids")])

    def on_link(self, p: int, link: dict) -> Changes:
        """A link from another partition: open a child, or a child's progress for its parent."""
        out = Changes()
        part = self.partition(p)
        at = event_ms(link["at"])
        if link["link"] == "open_child":
            if link["incident_id"] in part.incidents:
                return out  # a redelivered link
            rule = Rule.model_validate(link["rule"])
            inc, events = open_incident(link["incident_id"], link["dedup_key"], link["kind"],
                                        link["severity"], link["grid_id"], tuple(link["path"]),
                                        link["parent_id"], rule, at, link.get("category"))
            inc.parent_id, inc.to_check = link["parent_id"], link.get("to_check")
            inc.parent_grid = link["parent_grid"]
            part.incidents[inc.incident_id] = inc
            out.add(inc, events)
            part.schedule(inc)
        elif link["link"] == "child_state":
            parent = part.incidents.get(link["parent_id"])
            if parent is None or parent.children is None or link["incident_id"] not in parent.children:
                out.rejected.append(Rejected("unknown_incident", f"no parent {link['parent_id']}"))
                return out
            if parent.children[link["incident_id"]] != link["state"]:
                parent.children[link["incident_id"]] = link["state"]
                done = sum(st in ENDED for st in parent.children.values())
                acked = sum(st != "dispatched" for st in parent.children.values())
                out.add(parent, [parent._event("child_progress", at,
                                               reason=f"{acked} acknowledged, {done} done of "
                                                      f"{len(parent.children)}")])
        return out

    def on_command(self, p: int, cmd: dict) -> Changes:
        """One command body (``commands.v1`` schema), routed to the incident's partition."""
        out = Changes()
        part = self.partition(p)
        inc = part.incidents.get(cmd["incident_id"])
        if inc is None:
            out.rejected.append(Rejected("unknown_incident", f"no incident {cmd['incident_id']}"))
            return out
        at = cmd.get("at_ms") or event_ms(cmd["at"])
        try:  # a command never moves the partition's clock (`pipeline.gate`)
            self.bounds.check(at, "at", None, part.watermark.now_ms)
            merge_into = cmd.get("merge_into")  # a merge's target: checked on this partition
            events = apply_command(inc, cmd["command_id"], cmd["action"], cmd["actor"], cmd["scope"],
                                   at, cmd.get("reason"), cmd.get("assignee"), merge_into,
                                   part.incidents.get(merge_into) if merge_into else None)
        except Rejected as rej:
            out.rejected.append(rej)
            return out
        out.add(inc, events)
        if inc.status in ENDED:
            part.open_by_key.pop(inc.dedup_key, None)
        if events:
            part.ended(inc, at)
        if inc.parent_id and events:  # tell the zone incident how its grid is doing
            out.links.append((inc.parent_grid, {"link": "child_state", "incident_id": inc.incident_id,
                                                "parent_id": inc.parent_id, "state": inc.status,
                                                "at": cmd["at"]}))
        part.schedule(inc)
        part.advance(out)
        return out
