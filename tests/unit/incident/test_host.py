"""IncidentHost: grouping, inhibition, ticks, commands, and the KPIs they produce."""

from collections import Counter

import orjson

from pipeline.envelope import iso_ms
from pipeline.incident.host import IncidentHost, dedup_key
from pipeline.incident.kpi import deltas, summary, units
from pipeline.incident.policy import policy_from_dict

from .test_lifecycle import PATH, POLICY, T0

MIN = 60_000


def alert(kind="inactivity", status="firing", at=T0, severity="high", zone=None, subject="s1",
          alert_id=None, evidence=None):
    return {"alert_id": alert_id or f"{kind}:{subject or zone}:{T0}", "kind": kind,
            "grid_id": PATH[-1], "path": list(PATH), "zone_id": zone, "subject_id": subject,
            "severity": severity, "status": status, "route": "duty", "reason": "x",
            "observed_at": iso_ms(at), "evidence": evidence or {}}


def command(cid, action, inc_id, at, scope=PATH[-1], **extra):
    return {"command_id": cid, "incident_id": inc_id, "action": action, "actor": "a1",
            "scope": scope, "at": iso_ms(at), **extra}


def test_alert_opens_groups_and_records_resolution():
    h = IncidentHost(policy_from_dict(POLICY))
    out = h.on_alert(0, alert())
    (inc,) = out.incidents.values()
    assert inc.incident_id == f"{PATH[-1]}~inactivity:s1~{T0}"
    assert [e.action for e in out.escalations] == ["opened", "dispatched"]
    out = h.on_alert(0, alert(alert_id="inactivity:s1:second", at=T0 + MIN))
    assert [e.action for e in out.escalations] == ["alert_added"]
    out = h.on_alert(0, alert(status="resolved", at=T0 + 2 * MIN))
    assert [e.action for e in out.escalations] == ["alert_resolved"]
    assert inc.status == "dispatched"  # people close incidents, not sensors


def test_ticks_escalate_and_commands_stop_it_then_kpis():
    h = IncidentHost(policy_from_dict(POLICY))
    inc = next(iter(h.on_alert(0, alert()).incidents.values()))
    out = h.on_tick(0, T0 + 50 * MIN)
    assert [(e.action, e.level) for e in out.escalations] == [
        ("breach", "grid_worker"), ("escalated", "grid_leader"), ("escalated", "community"),
        ("escalated", "town")]
    rej = h.on_command(0, command("c0", "acknowledge", "nope", T0 + 51 * MIN))
    assert rej.rejected[0].code == "unknown_incident"
    rej = h.on_command(0, command("c1", "verify", inc.incident_id, T0 + 51 * MIN, scope=PATH[-3]))
    assert rej.rejected[0].code == "illegal_transition"
    out = h.on_command(0, command("c2", "acknowledge", inc.incident_id, T0 + 52 * MIN, scope=PATH[-3]))
    assert [e.action for e in out.escalations] == ["acknowledge"]
    assert h.on_tick(0, T0 + 100 * MIN).escalations == []  # acknowledged: no more climbing
    h.on_command(0, command("c3", "resolve", inc.incident_id, T0 + 90 * MIN, scope=PATH[-3]))
    h.on_command(0, command("c4", "verify", inc.incident_id, T0 + 95 * MIN, scope=PATH[-3]))
    assert inc.status == "closed"
    # a new silence of the same subject opens a new incident
    out = h.on_alert(0, alert(alert_id="inactivity:s1:later", at=T0 + 200 * MIN))
    assert [e.action for e in out.escalations] == ["opened", "dispatched"]


def test_kpis_from_the_transitions():
    policy = policy_from_dict(POLICY)
    h = IncidentHost(policy)
    book: dict[str, Counter] = {}

    def feed(changes):
        for ev in changes.escalations:
            inc = changes.incidents[ev.incident_id]
            for unit in units(inc):
                book.setdefault(unit, Counter()).update(deltas(inc, ev))

    changes = h.on_alert(0, alert())
    feed(changes)
    inc_id = next(iter(changes.incidents))
    feed(h.on_tick(0, T0 + 20 * MIN))  # ack breached at 15 min
    feed(h.on_command(0, command("c1", "acknowledge", inc_id, T0 + 20 * MIN)))
    feed(h.on_command(0, command("c2", "resolve", inc_id, T0 + 60 * MIN)))
    feed(h.on_command(0, command("c3", "verify", inc_id, T0 + 70 * MIN)))
    town = summary(PATH[-3], book[PATH[-3]])
    assert town["opened"] == 1 and town["closed"] == 1 and town["backlog"] == 0
    assert town["mtta_s"] == 20 * 60 and town["mttr_s"] == 60 * 60
    assert town["ack_breach_rate"] == 1.0 and town["resolve_breach_rate"] == 0.0
    assert town["closure_rate"] == 1.0
    assert summary("kind:inactivity", book["kind:inactivity"])["opened"] == 1


def test_orange_landslide_zone_inhibits_stale_sensors_inside_it():
    h = IncidentHost(policy_from_dict(POLICY))
    h.on_alert(0, alert("landslide", severity="orange", zone="Z1", subject=None,
                        alert_id="landslide:Z1:1"))
    out = h.on_alert(0, alert("sensor_stale", severity="low", zone="Z1", subject=None,
                              alert_id="sensor_stale:rg1:1", evidence={"point_id": "rg1"}))
    assert out.escalations == []
    out = h.on_alert(0, alert("sensor_stale", severity="low", zone="Z2", subject=None,
                              alert_id="sensor_stale:rg9:1", evidence={"point_id": "rg9"}))
    assert [e.action for e in out.escalations] == ["opened", "dispatched"]


def test_dedup_keys():
    assert dedup_key(alert()) == "inactivity:s1"
    assert dedup_key(alert("landslide", zone="Z1", subject=None)) == "landslide:Z1"
    assert dedup_key(alert("device_offline", subject="s1", evidence={"device_id": "d1"})) == \
        "device_offline:s1"
    assert dedup_key(alert("report_cluster", subject=None, alert_id="rc:1")) == "report_cluster:rc:1"


def test_ended_incidents_are_forgotten_after_retention_and_open_ones_never():
    DAY = 86_400_000
    h = IncidentHost(policy_from_dict({**POLICY, "retain_ended_days": 2}))
    closed = next(iter(h.on_alert(0, alert()).incidents.values()))
    loud = next(iter(h.on_alert(0, alert(subject="s2", at=T0 + MIN)).incidents.values()))
    for i, action in enumerate(("acknowledge", "resolve", "verify")):
        h.on_command(0, command(f"c{i}", action, closed.incident_id, T0 + (i + 1) * 10 * MIN))
    ended = T0 + 30 * MIN
    part = h.partition(0)
    h.on_tick(0, ended + 2 * DAY - MIN)  # within retention: a late comment, then reopen, work
    assert not h.on_command(0, command("c3", "comment", closed.incident_id, ended + DAY)).rejected
    out = h.on_command(0, command("c4", "reopen", closed.incident_id, ended + 2 * DAY - MIN))
    assert out.escalations[0].action == "reopen" and closed.status == "dispatched"
    h.on_tick(0, ended + 5 * DAY)  # reopened: not forgotten, however old
    assert closed.incident_id in part.incidents
    h.on_command(0, command("c5", "cancel", closed.incident_id, ended + 5 * DAY, reason="false alarm"))
    assert h.on_tick(0, ended + 7 * DAY - MIN).forgotten == []
    assert closed.incident_id in part.incidents
    out = h.on_tick(0, ended + 7 * DAY + 6 * MIN)  # the watermark trails the tick by the lateness
    assert out.forgotten == [closed.incident_id]  # a tombstone for incidents.v1
    assert closed.incident_id not in part.incidents and not part.ended_at
    late = h.on_command(0, command("c6", "comment", closed.incident_id, ended + 8 * DAY))
    assert late.rejected[0].code == "unknown_incident"
    assert loud.incident_id in part.incidents and loud.loud  # never acknowledged: kept, still calling


def test_retention_is_validated():
    import pytest

    from pipeline.errors import ConfigError

    for bad in (0, -1, 100_000, "a month"):
        with pytest.raises(ConfigError, match="retain_ended_days"):
            policy_from_dict({**POLICY, "retain_ended_days": bad})


def test_a_report_cluster_incident_carries_its_category_into_its_record():
    from pipeline.incident.records import incident_record

    h = IncidentHost(policy_from_dict(POLICY))
    out = h.on_alert(0, alert(kind="report_cluster", subject=None, severity="medium",
                              evidence={"category": "safety_hazard"}))
    (inc,) = out.incidents.values()
    assert orjson.loads(incident_record(inc)[1])["data"]["category"] == "safety_hazard"
    (care,) = h.on_alert(0, alert()).incidents.values()
    assert orjson.loads(incident_record(care)[1])["data"]["category"] is None
