"""Landslide levels: a storm walks the levels up and back down with persistence and hysteresis."""

import math

import pytest
import yaml

from pipeline.detect.config import DEFAULT_FILE, config_from_dict
from pipeline.detect.host import DetectorHost
from pipeline.detect.landslide import NONE, ZoneLevels, evaluate, level_name, new_point

from .helpers import HOUR, MIN, T0, host, ping

STEP = 10 * MIN


def storm_config(**landslide):
    raw = yaml.safe_load(DEFAULT_FILE.read_text())
    raw["landslide"].update(
        rain_mm={"blue": {"1h": 10}, "yellow": {"1h": 20}, "orange": {"1h": 30}, "red": {"1h": 40}},
        intensity_duration=None, persistence=2, hysteresis="2h")
    raw["landslide"].update(landslide)
    return config_from_dict(raw)


def feed(h, mm_per_reading, readings, t, device="rg1", zone="Z1"):
    changes, alerts = [], []
    for _ in range(readings):
        t += STEP
        out = h.on_located(0, ping(device, "rain_gauge", t, mm_per_reading, "mm", zone=zone))
        changes += [(level_name(c.level), c.at_ms) for c in out.levels]
        alerts += out.alerts
    return t, changes, alerts


def test_storm_walks_up_and_back_down_with_hysteresis():
    h = DetectorHost(storm_config())
    t, seen = T0, []
    for mm, n in ((2, 12), (4, 12), (6, 12), (4, 18), (2, 18), (0, 18)):
        t, changes, _ = feed(h, mm, n, t)
        seen += changes
    levels = [lv for lv, _ in seen]
    assert levels == ["blue", "yellow", "orange", "yellow", "blue", "none"]
    # blue: the 1h sum reaches 10 mm at the 5th reading; persistence 2 -> published at the 6th
    assert seen[0][1] == T0 + 6 * STEP
    # orange -> yellow: the 1h sum falls below 30 mm at the 4th reading of the 4 mm phase
    # (34, 32, 30, then 28 mm), and the level holds for the 2 h hysteresis
    drop = T0 + 40 * STEP
    assert seen[3][1] == drop + 2 * HOUR


def test_one_noisy_displacement_sample_does_not_flap():
    cfg = storm_config(persistence=2).landslide
    st = new_point("gnss1", "displacement", "g", ("g",), ("Z1",))
    changes = []
    for hr in range(0, 96):
        mm = hr / 24 + (30.0 if hr == 60 else 0.0)  # steady creep, one 30 mm outlier
        st.readings.add(T0 + hr * HOUR, mm)
        st.last_ms = T0 + hr * HOUR
        _, ch = evaluate(st, cfg, T0 + hr * HOUR)
        changes += [ch] if ch else []
    assert changes == []
    assert st.level == NONE


def test_gap_in_a_rain_gauge_is_reported_stale_and_level_is_held():
    h = DetectorHost(storm_config())
    t, changes, _ = feed(h, 6, 12, T0)  # orange by now
    assert changes[-1][0] == "orange"
    last = t
    alerts = []
    for tick in range(t + MIN, t + 4 * HOUR, MIN):  # gauge silent; clock ticks go on
        out = h.on_tick(0, tick)
        alerts += out.alerts
        assert out.levels == [], "a silent gauge must not read as zero rain"
    (stale,) = alerts
    assert (stale.kind, stale.status, stale.route) == ("sensor_stale", "firing", "maintenance")
    # the gauge reports every 10 min: stale after 2 x its learned interval, not a global 30 min
    assert stale.at_ms == last + 20 * MIN and stale.evidence["stale_after_ms"] == 20 * MIN
    assert stale.evidence["level_held"] == "orange"
    out = h.on_located(0, ping("rg1", "rain_gauge", t + 4 * HOUR, 0.0, "mm", zone="Z1"))
    resolved = [a for a in out.alerts if a.kind == "sensor_stale"]
    assert resolved[0].status == "resolved"
    assert resolved[0].evidence == {"point_id": "rg1", "gap_from": last, "gap_to": t + 4 * HOUR}


def test_default_table_rain_windows_and_id_threshold():
    h = host()
    # 12.5 mm per 10 min for 3 h: 75 mm/h, 225 mm in 3 h -> red on the 3 h window (>= 120)
    t, changes, _ = feed(h, 12.5, 18, T0)
    assert changes[-1][0] == "red"
    st = h.partition(0).points["rg1"]
    _, change = evaluate(st, h.cfg.landslide, t)
    assert change is None
    # the I-D threshold on its own: 31 mm over 3 h in a drizzle -> blue (9.93 mm/h needed)
    h2 = host()
    _, changes2, _ = feed(h2, 31 / 18, 18, T0)
    assert [c[0] for c in changes2] == ["blue"]


def gnss(h, t, mm):
    return h.on_located(0, ping("gnss1", "gnss_displacement", t, mm, "mm", zone="Z1"))


def test_tangential_angle_levels_and_noise():
    cfg = storm_config(persistence=2).landslide
    st = new_point("gnss1", "displacement", "g", ("g",), ("Z1",))
    hours = range(0, 72)
    levels = []
    # constant creep at the baseline 1 mm/day (45 degrees: not above yellow's 45)...
    for hr in hours:
        st.readings.add(T0 + hr * HOUR, hr / 24)
        st.last_ms = T0 + hr * HOUR
        _, ch = evaluate(st, cfg, T0 + hr * HOUR)
        levels += [ch] if ch else []
    assert levels == []
    # ...then 20 mm/day (atan(20) = 87 degrees): red after persistence
    base = 71 / 24
    for hr in range(72, 130):
        st.readings.add(T0 + hr * HOUR, base + (hr - 71) * 20 / 24)
        st.last_ms = T0 + hr * HOUR
        _, ch = evaluate(st, cfg, T0 + hr * HOUR)
        levels += [ch] if ch else []
    assert [level_name(c.level) for c in levels] == ["yellow", "orange", "red"]
    assert levels[-1].evidence["tangential_angle_deg"] > 85
    assert levels[-1].evidence["acceleration_mm_day2"] > 0  # speeding up
    st.level = NONE  # once the whole window is in the fast phase, the angle is atan(20 / 1)
    _, ch = evaluate(st, storm_config(persistence=1).landslide, T0 + 130 * HOUR)
    assert ch.evidence["tangential_angle_deg"] == pytest.approx(math.degrees(math.atan(20)), abs=0.01)


def test_zone_level_is_the_worst_of_its_points():
    h = DetectorHost(storm_config())
    zones = ZoneLevels()
    alerts = []
    t = T0
    for i in range(8):
        for mm, device in ((2, "rgA"), (6, "rgB")):
            out = h.on_located(0, ping(device, "rain_gauge", t + i * STEP, mm, "mm", zone="Z1"))
            for c in out.levels:
                for z in c.zones:
                    alerts += zones.apply(z, c)
    assert [a.severity for a in alerts] == ["blue", "yellow", "orange"]
    assert len({a.alert_id for a in alerts}) == 1  # one episode for the zone
    assert alerts[-1].evidence["points"] == {"rgA": "blue", "rgB": "orange"}
    assert zones.zones["Z1"].level != NONE


def test_unusable_readings_are_rejected_with_reasons():
    h = host()
    out = h.on_located(0, ping("rg1", "rain_gauge", T0, 300.0, "mm"))
    assert [r.code for r in out.rejected] == ["implausible_reading"]
    out = h.on_located(0, ping("g1", "gnss_displacement", T0, 3.0, "deg"))
    assert [r.code for r in out.rejected] == ["unusable_reading"]
    h.on_located(0, ping("rg1", "rain_gauge", T0 + 100 * HOUR, 1.0, "mm"))
    out = h.on_located(0, ping("rg1", "rain_gauge", T0 + HOUR, 1.0, "mm"))
    assert [r.code for r in out.rejected] == ["late_event"]
    assert "older than the 72 h" in out.rejected[0].reason


def hourly(h, values, t, device="rg-h", heartbeat_s=None, sweep_every=5 * MIN):
    """An hourly gauge, with the detectors' clock sweeping every 5 min between readings."""
    changes, alerts = [], []
    for mm in values:
        t += HOUR
        for tick in range(t - HOUR + sweep_every, t, sweep_every):
            out = h.on_tick(0, tick)
            changes += [(level_name(c.level), c.at_ms) for c in out.levels]
            alerts += out.alerts
        if mm is not None:
            out = h.on_located(0, ping(device, "rain_gauge", t, mm, "mm", zone="Z1",
                                       heartbeat_s=heartbeat_s))
            changes += [(level_name(c.level), c.at_ms) for c in out.levels]
            alerts += out.alerts
    return t, changes, alerts


def test_one_high_hourly_reading_alone_gives_no_level():
    """Round 1: sweeps re-evaluated the same window and counted as the second evaluation, so
    one 131 mm reading published yellow about 55 minutes later."""
    h = DetectorHost(storm_config(hysteresis="2h"))
    _, changes, _ = hourly(h, [0, 25, 0, 0], T0)  # one reading over yellow's 20 mm in 1 h
    assert changes == []


def test_two_consecutive_high_hourly_readings_raise_the_level_at_the_second():
    h = DetectorHost(storm_config(hysteresis="2h"))
    t, changes, _ = hourly(h, [0, 25, 25], T0)
    assert changes == [("yellow", t)]  # at the second reading, not at a sweep in between


def test_a_sweep_lowers_the_level_after_the_hysteresis():
    h = DetectorHost(storm_config(hysteresis="2h"))
    t, _, _ = hourly(h, [25, 25], T0)
    # no more rain: readings of 0 mm every hour; the 1 h window empties, the level steps down
    # once 2 h of event time below it have passed, possibly at a sweep
    _, changes, _ = hourly(h, [0, 0, 0, 0], t)
    assert [c[0] for c in changes] == ["none"]
    assert changes[0][1] >= t + HOUR + 2 * HOUR - 5 * MIN


def test_the_same_rule_on_ten_minute_series():
    h = DetectorHost(storm_config())
    _, changes, _ = feed(h, 3, 6, T0)  # 18 mm/h: blue after the second reading over 10 mm
    assert changes and changes[0][0] == "blue"
    first_over = T0 + 4 * STEP  # the 4th reading brings the 1 h sum to 12 mm
    assert changes[0][1] == first_over + STEP


def test_an_hourly_gauge_is_not_stale_between_its_readings():
    """Round 1: stale_after 30m flagged every hourly gauge between its readings."""
    h = DetectorHost(storm_config())
    _, _, alerts = hourly(h, [1, 1, 1, 1, 1, 1], T0)
    assert [a for a in alerts if a.kind == "sensor_stale"] == []
    # and silent for three hours (past 2 x its learned 1 h interval) it is
    _, _, alerts = hourly(h, [None, None, None], T0 + 6 * HOUR)
    stale = [a for a in alerts if a.kind == "sensor_stale"]
    assert len(stale) == 1 and stale[0].at_ms == T0 + 6 * HOUR + 2 * HOUR


def test_a_registered_interval_decides_staleness_from_the_first_reading():
    h = DetectorHost(storm_config())
    _, _, alerts = hourly(h, [1, None, None, None], T0, heartbeat_s=3600)
    stale = [a for a in alerts if a.kind == "sensor_stale"]
    assert len(stale) == 1 and stale[0].evidence["stale_after_ms"] == 2 * HOUR
