"""Inactivity: a silent person alerts once at the right time; a silent device does not."""

from pipeline.detect.clock import quiet_deadline
from pipeline.detect.config import load_config
from pipeline.detect.inactivity import Heartbeats, Subject, SubjectState, is_activity, step_time

from .helpers import HOUR, MIN, T0, host, ping


def run_ticks(h, start: int, end: int, step: int = 30 * 1000 * 20):
    alerts = []
    for t in range(start, end + 1, step):
        alerts += h.on_tick(0, t).alerts
    return alerts


def test_silent_subject_alerts_exactly_once_at_the_deadline():
    h = host(subjects={"s1": Subject("s1", "living_alone_24h", devices=("door1",))})
    assert h.on_located(0, ping("door1", "door", T0, subject="s1", heartbeat_s=600)).alerts == []
    # the door keeps heartbeating (value 0: closed, not activity) every 10 minutes
    alerts = []
    for t in range(T0 + 10 * MIN, T0 + 30 * HOUR, 10 * MIN):
        alerts += h.on_located(0, ping("door1", "heartbeat", t, subject="s1")).alerts
        alerts += h.on_tick(0, t).alerts
    fired = [a for a in alerts if a.kind == "inactivity"]
    assert len(fired) == 1
    a = fired[0]
    assert (a.status, a.at_ms, a.subject_id, a.grid_id) == ("firing", T0 + 24 * HOUR, "s1", a.path[-1])
    assert a.alert_id == f"inactivity:s1:{T0}"
    assert a.evidence["last_activity"] == T0
    assert not [a for a in alerts if a.kind == "device_offline"]


def test_activity_after_the_alert_resolves_it_with_a_reason():
    h = host()
    h.on_located(0, ping("door1", "door", T0, subject="s1", heartbeat_s=3600))
    for t in range(T0, T0 + 25 * HOUR, 30 * MIN):
        h.on_located(0, ping("door1", "heartbeat", t, subject="s1"))
    out = h.on_located(0, ping("door1", "door", T0 + 25 * HOUR + 5 * MIN, subject="s1"))
    (resolved,) = out.alerts
    assert (resolved.status, resolved.reason, resolved.alert_id) == (
        "resolved", "activity_resumed", f"inactivity:s1:{T0}")


def test_dead_sensor_gives_device_offline_not_inactivity():
    h = host()
    h.on_located(0, ping("door1", "door", T0, subject="s1", heartbeat_s=3600))
    alerts = run_ticks(h, T0, T0 + 48 * HOUR)
    kinds = [(a.kind, a.status, a.route) for a in alerts]
    assert kinds == [("device_offline", "firing", "maintenance")]
    # 1 h heartbeat x 1.5 grace after the last ping
    assert alerts[0].at_ms == T0 + int(1.5 * HOUR)
    back = h.on_located(0, ping("door1", "heartbeat", T0 + 49 * HOUR, subject="s1"))
    assert [(a.kind, a.status, a.reason) for a in back.alerts] == [
        ("device_offline", "resolved", "heartbeat_resumed")]


def test_device_dying_after_the_deadline_still_lets_inactivity_fire():
    h = host()
    h.on_located(0, ping("door1", "door", T0, subject="s1", heartbeat_s=3600))
    for t in range(T0, T0 + 24 * HOUR + 1, 30 * MIN):  # heartbeats up to the deadline
        h.on_located(0, ping("door1", "heartbeat", t, subject="s1"))
    alerts = run_ticks(h, T0 + 24 * HOUR, T0 + 30 * HOUR)
    assert sorted(a.kind for a in alerts) == ["device_offline", "inactivity"]


def test_water_meter_below_threshold_is_not_activity():
    cfg = load_config().inactivity
    assert not is_activity("water_meter", 0.005, "m3", cfg)  # 5 L
    assert is_activity("water_meter", 0.012, "m3", cfg)
    assert is_activity("water_meter", 12, "L", cfg)
    assert not is_activity("heartbeat", None, None, cfg)
    assert not is_activity("door", 0, "bool", cfg)
    assert is_activity("smart_plug", 60, "W", cfg)


def test_night_hours_do_not_count_as_quiet():
    # last activity 19:00 Beijing (11:00 UTC); 12 h window, nights 22:00-06:00 excluded:
    # 3 h until 22:00, pause, then 9 h from 06:00 -> 15:00 the next day (07:00 UTC)
    start = T0 + 3 * HOUR  # 11:00 UTC = 19:00 CST
    assert quiet_deadline(start, 12 * HOUR, (22, 6)) == start + 20 * HOUR
    assert quiet_deadline(start, 12 * HOUR, None) == start + 12 * HOUR


def test_late_activity_proves_the_alert_false():
    h = host()
    h.on_located(0, ping("door1", "door", T0, subject="s1", heartbeat_s=86400))
    alerts = run_ticks(h, T0, T0 + 25 * HOUR)
    assert [a.kind for a in alerts] == ["inactivity"]
    # a door opening 23 h in, delivered only now (a gateway was offline)
    out = h.on_located(0, ping("door1", "door", T0 + 23 * HOUR, subject="s1"))
    assert [(a.status, a.reason) for a in out.alerts] == [("resolved", "late_activity")]
    assert h.stats.late == 1


def test_registered_subject_never_heard_from_is_watched_from_registration():
    subjects = {"s9": Subject("s9", "living_alone_24h", grid_id="g9", devices=("gate9",))}
    h = host(subjects=subjects, partition_of=lambda g: 0)
    alerts = run_ticks(h, T0, T0 + 3 * HOUR)
    assert [(a.kind, a.evidence["device_id"]) for a in alerts] == [("device_offline", "gate9")]


def test_step_time_is_a_pure_function_of_state():
    prof = load_config().inactivity.profiles["living_alone_24h"]
    hb = Heartbeats(3600_000)
    st = SubjectState("s1", "g", ("g",), armed_ms=T0, last_activity_ms=T0, seen={"d": T0 + 23 * HOUR})
    assert step_time(st, prof, T0 + 24 * HOUR - 1, hb) == []
    (a,) = step_time(st, prof, T0 + 24 * HOUR, hb)
    assert a.kind == "inactivity" and st.inactive_since == T0
    assert step_time(st, prof, T0 + 24 * HOUR + 1, hb) == []  # once
