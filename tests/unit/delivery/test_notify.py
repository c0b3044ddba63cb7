"""Planning deliveries for escalations: who, which channels, deterministic ids."""

from pipeline.delivery.notify import plan, render
from pipeline.delivery.roster import roster_from_dict

from .test_roster import GRID, PATH, ROSTER, TOWN

ROSTER_P = {**ROSTER, "duties": [*ROSTER["duties"], {"unit": GRID, "role": "police_grid",
                                                      "shifts": [{"who": "li"}]}]}


def esc(transition="dispatched", level="grid_worker", to=(GRID, "police_grid"),
        at="2026-09-30T02:00:00.000Z"):
    return {"incident_id": f"{GRID}~inactivity:s1~1", "step": 2, "transition": transition,
            "level": level, "to": list(to), "at": at, "kind": "inactivity", "severity": "high",
            "grid_id": GRID, "path": list(PATH), "deadline": "2026-09-30T02:15:00.000Z"}


def test_dispatch_reaches_the_level_and_the_parallel_responders():
    deliveries, missing = plan(esc(), roster_from_dict(ROSTER_P))  # 10:00 Beijing, a working day
    assert missing == []
    assert [(d.person, d.channel, d.role) for d in deliveries] == [
        ("wang", "webhook", "grid_worker"), ("chen", "email", "grid_worker"), ("li", "email", "police_grid")]
    assert deliveries[0].notification_id == f"{GRID}~inactivity:s1~1:2:wang:webhook"


def test_escalation_to_a_level_with_nobody_is_reported_and_other_transitions_send_nothing():
    deliveries, missing = plan(esc("escalated", "district", to=(PATH[0],)), roster_from_dict(ROSTER))
    assert deliveries == [] and missing == ["district"]
    assert plan(esc("acknowledge"), roster_from_dict(ROSTER)) == ([], [])
    deliveries, _ = plan(esc("escalated", "town", to=(TOWN,)), roster_from_dict(ROSTER))
    assert [(d.person, d.lang) for d in deliveries] == [("town", "en")]


def test_messages_in_both_languages():
    names = {PATH[1]: "德亭镇", PATH[2]: "张村", PATH[3]: "张村第一网格"}
    subject, text = render(esc(), "zh", names)
    assert subject == "【网格预警】独居老人无活动·严重 派单"
    # names, not codes; the deadline in China Standard Time (02:15Z is 10:15 in Beijing)
    assert text.startswith("德亭镇 › 张村 › 张村第一网格:独居老人无活动")
    assert "9月30日 10:00 派单至网格员" in text and "请于 9月30日 10:15 前签收" in text
    subject, text = render(esc(), "en", names)
    assert "inactivity" in subject and "Please acknowledge by 2026-09-30 10:15 (UTC+8)" in text
    assert "德亭镇 › 张村" in text
    assert PATH[1] in render(esc(), "zh")[1]  # without the atlas: codes


def test_links_and_cap_from_an_escalation():
    from pipeline.delivery.cap import incident_to_cap, validate_cap
    from pipeline.delivery.links import read_link
    from pipeline.delivery.notify import incident_from_escalation, links

    assert links(esc(), None) == {}
    assert links(esc(), "https://gw.example/") == {"dashboard": "https://gw.example/"}  # no key
    (d, *_), _ = plan(esc(), roster_from_dict(ROSTER_P))
    sent = 1_790_734_500 - 3600  # an hour before the acknowledge deadline
    urls = links(esc(), "https://gw.example/", d, "k" * 32, now_s=sent)
    assert urls["act"].startswith("https://gw.example/act/")
    assert urls["acknowledge"] == urls["act"] + "#acknowledge"
    link = read_link("k" * 32, urls["act"].rsplit("/", 1)[1], sent)
    assert (link.incident_id, link.person, link.unit) == (f"{GRID}~inactivity:s1~1", "wang", GRID)
    assert link.expires_s == sent + 24 * 3600  # the later of the deadline and 24 h
    assert "王" not in urls["act"] and "wang" not in urls["act"]  # nothing readable: base64 JSON
    assert validate_cap(incident_to_cap(incident_from_escalation(esc()), "某网格")) == []


def test_circuit_breaker_opens_after_five_failures_and_cools_down():
    from pipeline.delivery.channels import Breaker

    b = Breaker()
    for _ in range(4):
        b.record(False, 100.0)
    assert b.allow(100.0)
    b.record(False, 100.0)
    assert not b.allow(100.0) and not b.allow(129.9) and b.allow(130.0)
    b.record(True, 131.0)
    assert b.failures == 0


def test_a_48_hour_catch_up_sends_one_message_per_person_per_level():
    """Round 1 sent ~190 calls per open incident after 48 h down with 15-minute limits."""
    from collections import Counter

    import orjson

    from pipeline.incident.lifecycle import open_incident, step_time
    from pipeline.incident.policy import load_policy
    from pipeline.incident.records import escalation_record

    rule = next(r for r in load_policy().rules if r.match.kind == "inactivity")
    start = 1_790_000_000_000  # 2026-09-21 (a Monday), 21:33 Beijing
    inc, _ = open_incident("inc", "inactivity:s1", "inactivity", "high", GRID, PATH, "a1", rule, start)
    events = step_time(inc, start + 48 * 3_600_000)
    records = [orjson.loads(escalation_record(ev, inc)[1])["data"] for ev in events]
    roster = roster_from_dict(ROSTER)
    per_person = Counter()
    for body in records:
        for d in plan(body, roster)[0]:
            per_person[(d.person, body["level"])] += 1
    assert per_person and max(per_person.values()) == 1, per_person
    assert len(records) <= 8 and sum(r["count"] for r in records) > 10
    top = next(r for r in records if r["count"] > 1)
    assert f"期间共 {top['count']} 次呼叫未获响应" in render(top, "zh")[1]
    assert f"{top['count']} calls went unanswered" in render(top, "en")[1]


def test_acknowledgements_and_ends_update_only_the_channels_that_keep_incident_state():
    roster = {**ROSTER, "people": {**ROSTER["people"], "wang": {
        **ROSTER["people"]["wang"], "pagerduty": {"routing_key": "R" * 32},
        "alertmanager": "https://am.example/hook"}}}
    calls, _ = plan(esc(), roster_from_dict(roster))
    assert {d.channel for d in calls if d.person == "wang"} == {"webhook", "pagerduty", "alertmanager"}
    for transition in ("acknowledge", "resolve", "cancel"):
        updates, missing = plan(esc(transition, to=(GRID,)), roster_from_dict(roster))
        assert sorted(d.channel for d in updates) == ["alertmanager", "pagerduty"] and missing == []
    assert plan(esc("comment", to=(GRID,)), roster_from_dict(roster)) == ([], [])
