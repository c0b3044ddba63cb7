"""Who gets which message for an escalation (pure): recipients, channels, wording, ids.

Calls go out for the transitions that ask someone to act: ``dispatched`` (the level's people
and every parallel responder), ``repeated``, ``escalated`` and ``unanswered_at_top`` (the
level's people). Recipients come from the roster at the escalation's event time, falling back
to the territorial parent. Every (escalation, person, channel) has a deterministic notification
id ``<incident id>:<step>:<person>:<channel>``, the idempotency key of its delivery.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pipeline.delivery.roster import Roster, on_duty
from pipeline.detect.host import event_ms

CALLS = frozenset({"dispatched", "repeated", "escalated", "unanswered_at_top"})
EVENT_ZH = {"landslide": "地质灾害预警", "inactivity": "独居老人无活动", "device_offline": "设备离线",
            "sensor_stale": "监测设备数据中断", "report_cluster": "网格上报事件"}
TRANSITION_ZH = {"dispatched": "派单", "repeated": "再次呼叫", "escalated": "升级上报",
                 "unanswered_at_top": "最高层级仍无人响应"}


@dataclass(frozen=True)
class Delivery:
    notification_id: str
    person: str
    channel: str  # a name of the channel registry: webhook, dingtalk, email...
    address: str
    lang: str
    role: str
    unit: str  # where the duty was found
    fell_back: bool
    fmt: str = "json"  # webhook body: json or cap
    secret: str | None = field(default=None, repr=False)  # a robot's signing key (DingTalk)


def render(esc: dict, lang: str) -> tuple[str, str]:
    """(subject, text) of a message in Chinese or English."""
    kind, path = esc.get("kind", "incident"), " / ".join(esc.get("path") or [])
    deadline = esc.get("deadline")
    count = int(esc.get("count") or 1)  # calls one record stands for after a catch-up
    if lang == "en":
        subject = f"[gridwatch] {kind} {esc.get('severity', '')}: {esc['transition']} to {esc['level']}"
        text = (f"Incident {esc['incident_id']} ({kind}, severity {esc.get('severity')}) in grid "
                f"{esc.get('grid_id')} ({path}) was {esc['transition']} to {esc['level']} at {esc['at']}."
                + (f" {count} calls went unanswered while the clock caught up." if count > 1 else "")
                + (f" Please acknowledge by {deadline}." if deadline else ""))
        return subject, text
    event = EVENT_ZH.get(kind, kind)
    subject = f"【网格预警】{event} {esc.get('severity', '')} {TRANSITION_ZH.get(esc['transition'], '')}"
    text = (f"事件 {esc['incident_id']}({event},等级 {esc.get('severity')}),网格 {esc.get('grid_id')}"
            f"({path}),{esc['at']} {TRANSITION_ZH.get(esc['transition'], esc['transition'])}至 "
            f"{esc['level']}。" + (f"期间共 {count} 次呼叫未获响应。" if count > 1 else "")
            + (f"请于 {deadline} 前确认。" if deadline else ""))
    return subject, text


def plan(esc: dict, roster: Roster) -> tuple[list[Delivery], list[str]]:
    """Deliveries for one escalation body, and the roles nobody is on duty for (reported)."""
    if esc["transition"] not in CALLS:
        return [], []
    path = tuple(esc.get("path") or (esc["to"][0],))
    unit, at = esc["to"][0], event_ms(esc["at"])
    roles = [(esc["level"], unit)]
    if esc["transition"] == "dispatched":
        roles += [(r, path[-1]) for r in esc["to"][1:]]  # parallel responders, at the grid
    out: list[Delivery] = []
    missing: list[str] = []
    for role, where in roles:
        duty = on_duty(roster, path, where, role, at)
        if duty is None:
            missing.append(role)
            continue
        for person_id in duty.people:
            person = roster.people[person_id]
            for channel, address in person.addresses():
                nid = f"{esc['incident_id']}:{esc['step']}:{person_id}:{channel}"
                out.append(Delivery(nid, person_id, channel, address.target, person.lang, role,
                                    duty.unit, duty.fell_back, person.webhook_format,
                                    address.secret))
    return out, missing


def links(esc: dict, public_url: str | None) -> dict:
    """Acknowledge/resolve/view links for a message (when the HTTP API's address is known)."""
    if not public_url:
        return {}
    base = f"{public_url.rstrip('/')}/incidents/{esc['incident_id']}"
    return {"view": base, "acknowledge": f"{base}/acknowledge", "resolve": f"{base}/resolve"}


def incident_from_escalation(esc: dict) -> dict:
    """The incident fields CAP needs, from an escalation body (the notifier has no state)."""
    state = "dispatched" if esc["transition"] in CALLS else "acknowledged"
    return {"incident_id": esc["incident_id"], "kind": esc.get("kind", "incident"),
            "severity": esc.get("severity", "medium"), "grid_id": esc.get("grid_id", esc["to"][0]),
            "path": esc.get("path") or [esc["to"][0]], "state": state, "level": esc["level"],
            "opened_at": esc["at"]}
