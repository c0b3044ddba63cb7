"""Who gets which message for an escalation (pure): recipients, channels, wording, ids.

Calls go out for the transitions that ask someone to act: ``dispatched`` (the level's people
and every parallel responder), ``repeated``, ``escalated`` and ``unanswered_at_top`` (the
level's people). Recipients come from the roster at the escalation's event time, falling back
to the territorial parent. Every (escalation, person, channel) has a deterministic notification
id ``<incident id>:<step>:<person>:<channel>``, the idempotency key of its delivery.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from pipeline.delivery.links import DEFAULT_ACTIONS, ActionLink, expiry, link_url, nonce_for, sign_link
from pipeline.delivery.roster import Roster, on_duty
from pipeline.detect.host import event_ms

CALLS = frozenset({"dispatched", "repeated", "escalated", "unanswered_at_top"})
UPDATES = frozenset({"acknowledge", "resolve", "verify", "cancel", "merge"})
EVENT_ZH = {"landslide": "地质灾害预警", "inactivity": "独居老人无活动", "device_offline": "设备离线",
            "sensor_stale": "监测设备数据中断", "report_cluster": "网格上报事件"}
TRANSITION_ZH = {"dispatched": "派单", "repeated": "再次呼叫", "escalated": "升级上报",
                 "unanswered_at_top": "最高层级仍无人响应", "opened": "立案", "breach": "超时",
                 "acknowledge": "签收", "arrive": "到场", "resolve": "办结", "verify": "核查结案",
                 "reopen": "重新派单", "cancel": "撤销", "merge": "合并", "comment": "批注",
                 "assign": "指派", "alert_added": "新增告警", "alert_resolved": "告警解除",
                 "severity_changed": "等级变化", "fanned_out": "分派各网格", "child_progress": "网格进展"}


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


ROLE_ZH = {"grid_worker": "网格员", "grid_leader": "网格长", "community": "村(社区)值班",
           "town": "镇(街道)值班", "district": "县(区)值班", "city": "市级值班",
           "police_grid": "警格民警"}
SEVERITY_ZH = {"low": "一般", "medium": "较重", "high": "严重", "critical": "特别严重",
               "blue": "蓝色", "yellow": "黄色", "orange": "橙色", "red": "红色"}
CST = timedelta(hours=8)


def local_time(iso: str | None, lang: str) -> str:
    """An ISO time as people read it in China Standard Time (UTC+8, no daylight saving)."""
    if not iso:
        return ""
    t = datetime.fromisoformat(iso).astimezone(UTC) + CST
    return f"{t.month}月{t.day}日 {t:%H:%M}" if lang != "en" else f"{t:%Y-%m-%d %H:%M} (UTC+8)"


def place(esc: dict, names: dict[str, str] | None, lang: str) -> str:
    """镇 › 村 › 网格 by name (the county left out), codes where a name is unknown."""
    path = list(esc.get("path") or [esc.get("grid_id") or esc["to"][0]])
    shown = [(names or {}).get(c) or c for c in (path[1:] if len(path) > 1 else path)]
    return " › ".join(shown)


def render(esc: dict, lang: str, names: dict[str, str] | None = None) -> tuple[str, str]:
    """(subject, text) of a message in Chinese or English: what, where by name, when in local
    time, who is called, how many calls a catch-up stands for, and the deadline."""
    kind, where = esc.get("kind", "incident"), place(esc, names, lang)
    deadline = local_time(esc.get("deadline"), lang)
    when = local_time(esc["at"], lang)
    count = int(esc.get("count") or 1)  # calls one record stands for after a catch-up
    if lang == "en":
        subject = f"[gridwatch] {kind} {esc.get('severity', '')}: {esc['transition']} to {esc['level']}"
        text = (f"{where}: {kind} (severity {esc.get('severity')}). At {when} it was "
                f"{esc['transition']} to the {esc['level'].replace('_', ' ')}."
                + (f" {count} calls went unanswered while the clock caught up." if count > 1 else "")
                + (f" Please acknowledge by {deadline}." if deadline else "")
                + f" Incident {esc['incident_id']}.")
        return subject, text
    event = EVENT_ZH.get(kind, kind)
    sev = SEVERITY_ZH.get(str(esc.get("severity")), esc.get("severity") or "")
    step = TRANSITION_ZH.get(esc["transition"], esc["transition"])
    subject = f"【网格预警】{event}·{sev} {step}"
    text = (f"{where}:{event}(等级 {sev})。{when} {step}至{ROLE_ZH.get(esc['level'], esc['level'])}。"
            + (f"期间共 {count} 次呼叫未获响应。" if count > 1 else "")
            + (f"请于 {deadline} 前签收。" if deadline else "")
            + f"事件编号 {esc['incident_id']}。")
    return subject, text


def plan(esc: dict, roster: Roster) -> tuple[list[Delivery], list[str]]:
    """Deliveries for one escalation body, and the roles nobody is on duty for (reported).

    Calls go to every channel of the people on duty; an acknowledgement or an end
    (`UPDATES`) only to the channels that keep incident state (``wants_updates``: PagerDuty,
    Alertmanager), so their incident follows ours."""
    from pipeline.delivery.channels import registry

    update = esc["transition"] in UPDATES
    if esc["transition"] not in CALLS and not update:
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
            if not update:  # nobody to call is worth reporting; nobody to update is not
                missing.append(role)
            continue
        for person_id in duty.people:
            person = roster.people[person_id]
            for channel, address in person.addresses():
                if update and not getattr(registry().get(channel), "wants_updates", False):
                    continue
                nid = f"{esc['incident_id']}:{esc['step']}:{person_id}:{channel}"
                out.append(Delivery(nid, person_id, channel, address.target, person.lang, role,
                                    duty.unit, duty.fell_back, person.webhook_format,
                                    address.secret))
    return out, missing


def links(esc: dict, public_url: str | None, d: Delivery | None = None,
          link_key: str | None = None, now_s: int | None = None) -> dict:
    """The links of one person's message: the signed action page (`pipeline.delivery.links`)
    with ``acknowledge``/``resolve`` anchors, and the dashboard. Empty without a public URL;
    without a link key (or a person) only the dashboard, which asks for a token."""
    if not public_url:
        return {}
    out = {"dashboard": f"{public_url.rstrip('/')}/"}
    if d is None or not link_key:
        return out
    deadline = event_ms(esc["deadline"]) // 1000 if esc.get("deadline") else None
    sent = now_s if now_s is not None else int(time.time())
    link = ActionLink(esc["incident_id"], d.person, d.unit, DEFAULT_ACTIONS, expiry(deadline, sent),
                      nonce_for(d.notification_id))
    url = link_url(public_url, sign_link(link_key, link))
    return {"act": url, "acknowledge": f"{url}#acknowledge", "resolve": f"{url}#resolve", **out}


def incident_from_escalation(esc: dict) -> dict:
    """The incident fields CAP needs, from an escalation body (the notifier has no state)."""
    state = "dispatched" if esc["transition"] in CALLS else "acknowledged"
    return {"incident_id": esc["incident_id"], "kind": esc.get("kind", "incident"),
            "severity": esc.get("severity", "medium"), "grid_id": esc.get("grid_id", esc["to"][0]),
            "path": esc.get("path") or [esc["to"][0]], "state": state, "level": esc["level"],
            "opened_at": esc["at"]}
