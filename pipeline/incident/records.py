"""Incident outputs as (key, value) records: escalations.v1, incidents.v1, kpi-deltas.v1."""

from __future__ import annotations

from collections import Counter

import orjson

from pipeline.envelope import iso_ms, make_event
from pipeline.incident.lifecycle import Escalation, Incident
from pipeline.incident.policy import responsible

SOURCE = "gridwatch/incidents"


def _iso(ms: int) -> str | None:
    return iso_ms(ms) if ms else None


def escalation_record(ev: Escalation, inc: Incident | None = None) -> tuple[bytes, bytes]:
    data = {"incident_id": ev.incident_id, "step": ev.step, "transition": ev.action,
            "level": ev.level, "to": [ev.unit, *ev.parallel], "actor": ev.actor,
            "reason": ev.reason, "at": iso_ms(ev.at_ms), "count": ev.count}
    if inc is not None:  # what delivery needs to word a message and find people
        data.update(kind=inc.kind, severity=inc.severity, grid_id=inc.grid_id, path=list(inc.path),
                    deadline=iso_ms(inc.ack_due_ms) if inc.status == "dispatched" else None)
    env = make_event("gridwatch.escalation.v1", ev.event_id, iso_ms(ev.at_ms), data,
                     subject=ev.incident_id, source=SOURCE)
    return ev.incident_id.encode(), orjson.dumps(env)


def incident_record(inc: Incident) -> tuple[bytes, bytes]:
    data = {"incident_id": inc.incident_id, "dedup_key": inc.dedup_key, "kind": inc.kind,
            "severity": inc.severity, "grid_id": inc.grid_id, "path": list(inc.path),
            "category": inc.category, "state": inc.status, "level": inc.level,
            "unit": responsible(inc.path, inc.level),
            "rule": inc.rule.name, "opened_at": iso_ms(inc.opened_ms),
            "acknowledged_at": _iso(inc.acked_ms), "resolved_at": _iso(inc.resolved_ms),
            "closed_at": _iso(inc.closed_ms),
            "deadlines": {"acknowledge": _iso(inc.ack_due_ms) if inc.status == "dispatched" else None,
                          "resolve": iso_ms(inc.resolve_due_ms)},
            "breaches": sorted(inc.breaches), "loud": inc.loud, "assignee": inc.assignee,
            "alert_ids": inc.alert_ids[-50:], "step": inc.step, "parent_id": inc.parent_id,
            "to_check": inc.to_check}
    if inc.children is not None:
        states = list(inc.children.values())
        data["children"] = {"total": len(states),
                            "acknowledged": sum(st != "dispatched" for st in states),
                            "done": sum(st in ("closed", "cancelled", "merged") for st in states)}
    env = make_event("gridwatch.incident.v1", f"{inc.incident_id}@{inc.step}",
                     iso_ms(max(inc.opened_ms, inc.acked_ms, inc.resolved_ms, inc.closed_ms)), data,
                     subject=inc.grid_id, source=SOURCE)
    return inc.incident_id.encode(), orjson.dumps(env)


def kpi_delta_record(unit: str, ev: Escalation, delta: Counter) -> tuple[bytes, bytes]:
    data = {"unit": unit, "event_id": ev.event_id, "delta": dict(delta)}
    env = make_event("gridwatch.kpi_delta.v1", f"{ev.event_id}:{unit}", iso_ms(ev.at_ms), data,
                     subject=unit, source=SOURCE)
    return unit.encode(), orjson.dumps(env)
