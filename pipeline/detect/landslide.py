"""Landslide warning (地质灾害预警): rain windows, I-D threshold, tangential angle, hysteresis.

Per monitoring point (a rain gauge, GNSS station or crack meter): rolling rain sums over 1, 3,
6, 24 and 72 h; the intensity-duration check I >= a*D^b; displacement velocity, acceleration and
the improved tangential angle alpha = atan(v / v0) (v0 the slope's constant-velocity rate, so
45 degrees means steady creep). The configured table maps each figure to blue/yellow/orange/red
(注意/警示/警戒/警报); the point's raw level is the worst of them.

The published level rises only after `persistence` *readings* in a row above it (to the lowest
level seen in that streak): an evaluation counts toward raising only when a reading newer than
the last one counted arrived; the periodic sweep (windows slide as event time moves) may lower
a level and may break a streak, never extend one. It steps down only after `hysteresis` of
event time below it, so one noisy reading does not flap.

A point is stale when silent longer than `stale_grace` x its own reporting interval: the
``heartbeat_s`` of its device registration, else learned from its readings (the median of its
last gaps), else, before its second reading, `stale_after` (a network mixes 5-, 10- and
60-minute gauges). A stale point is
reported (``sensor_stale``, maintenance route) and its level is held, not decayed as if no rain
fell; the gap is recorded.

A zone's level is the worst of its points (`ZoneLevels`); a change raises a ``landslide`` alert
for the zone, which the incident layer fans out to every grid and household it touches.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from pipeline.detect.alerts import MAINTENANCE, Alert
from pipeline.detect.config import LEVELS, RAIN_WINDOWS, WINDOW_MS, LandslideConfig
from pipeline.detect.series import Series
from pipeline.errors import Rejected

NONE = -1  # below blue
RAIN, DISPLACEMENT = "rain", "displacement"
SENSOR_KINDS = {"rain_gauge": RAIN, "gnss_displacement": DISPLACEMENT, "crack_meter": DISPLACEMENT}
DAY_MS = 86_400_000
MAX_WINDOW_MS = max(WINDOW_MS.values())
RAIN_WINDOW_MS = tuple(WINDOW_MS[w] for w in RAIN_WINDOWS)
TRIM_EVERY = 256  # readings past the longest window before they are dropped


def level_name(level: int) -> str:
    return LEVELS[level] if level >= 0 else "none"


@dataclass(slots=True)
class PointState:
    """One monitoring point: recent readings and its published level."""

    point_id: str
    sensor: str  # rain or displacement
    grid_id: str
    path: tuple[str, ...]
    zones: tuple[str, ...]
    readings: Series = field(default_factory=Series)  # mm per reading (rain) or cumulative mm
    last_ms: int = 0  # newest reading
    eval_ms: int = 0  # newest evaluation time
    level: int = NONE
    streak: int = 0  # readings in a row above `level`
    streak_min: int = NONE
    counted_ms: int = 0  # the newest reading counted in the streak (a sweep adds nothing)
    interval_ms: int = 0  # registered reporting interval (device heartbeat_s), 0: learn it
    gaps_ms: tuple[int, ...] = ()  # the last gaps between readings, to learn the interval
    below_since: int = 0
    stale_since: int = 0  # last reading before a firing sensor_stale alert
    gaps: int = 0


@dataclass(frozen=True, slots=True)
class PointLevel:
    """A point's published level changed (goes to the zone aggregation)."""

    point_id: str
    zones: tuple[str, ...]
    grid_id: str
    path: tuple[str, ...]
    level: int
    previous: int
    at_ms: int
    evidence: dict


def new_point(point_id: str, sensor: str, grid_id: str, path: tuple[str, ...],
              zones: tuple[str, ...]) -> PointState:
    """A monitoring point with the right series for its sensor."""
    series = Series(RAIN_WINDOW_MS if sensor == RAIN else ())
    return PointState(point_id, sensor, grid_id, path, zones, series)


_COMPILED: dict[int, tuple[LandslideConfig, list, list]] = {}


def _compiled(cfg: LandslideConfig) -> tuple[list, list]:
    """Rain thresholds as [(level, [(window index, mm)...])] from red down, and the I-D checks
    as [(window index, hours, mm needed)] (I >= a*D^b over D hours means sum >= a*D^(b+1))."""
    hit = _COMPILED.get(id(cfg))
    if hit is None or hit[0] is not cfg:
        table = [(lv, [(RAIN_WINDOWS.index(w), mm - 1e-9) for w, mm in cfg.rain_mm.get(name, {}).items()])
                 for lv, name in reversed(list(enumerate(LEVELS)))]
        idt = cfg.intensity_duration
        checks = []
        if idt is not None:
            for i, w in enumerate(RAIN_WINDOWS):
                d = WINDOW_MS[w] / 3_600_000
                if d >= idt.min_duration_h:
                    checks.append((i, d, idt.a * d ** (idt.b + 1)))
        hit = _COMPILED[id(cfg)] = (cfg, table, checks)
    return hit[1], hit[2]


def _rain_level(st: PointState, cfg: LandslideConfig, at: int) -> int:
    series = st.readings
    sums = series.sums_at(at)
    if series.start[-1] > TRIM_EVERY:
        series.trim(series.times[series.start[-1]])
    table, checks = _compiled(cfg)
    level = NONE
    for lv, thresholds in table:  # plain loops: this runs on every reading and sweep
        for i, mm in thresholds:
            if sums[i] >= mm:
                level = lv
                break
        if level != NONE:
            break
    if checks and cfg.intensity_duration is not None:
        id_level = LEVELS.index(cfg.intensity_duration.level)
        if id_level > level:
            for i, _, need in checks:
                if sums[i] > 0 and sums[i] >= need:
                    return id_level
    return level


def _rain_figures(st: PointState, cfg: LandslideConfig, at: int) -> dict:
    """The evidence behind a rain level (built only when something is emitted)."""
    sums = st.readings.sums_at(at)
    figures: dict = {"rain_mm": {w: round(max(0.0, v), 2) for w, v in zip(RAIN_WINDOWS, sums, strict=True)}}
    for i, d, need in _compiled(cfg)[1]:
        if sums[i] > 0 and sums[i] >= need:
            figures["id_exceeded"] = {"duration_h": d, "intensity_mm_h": round(sums[i] / d, 2),
                                      "threshold_mm_h": round(need / d, 2)}
            break
    return figures


def _displacement_figures(st: PointState, cfg: LandslideConfig, at: int) -> tuple[int, dict]:
    w = cfg.angle_window
    series = st.readings
    if len(series) > TRIM_EVERY and series.times[0] < at - 3 * w:
        series.trim(at - 3 * w)
    now = series.value_at(at)
    before = series.value_at(at - w)
    if now is None or before is None or now[0] - before[0] < w // 2:
        return NONE, {"displacement": "insufficient history"}
    days = (now[0] - before[0]) / DAY_MS
    v = (now[1] - before[1]) / days
    # rounded before comparing, so float noise at exactly the baseline rate is not "above 45"
    angle = round(math.degrees(math.atan(v / cfg.baseline_velocity_mm_per_day)), 2) if v > 0 else 0.0
    figures: dict = {"velocity_mm_day": round(v, 3), "tangential_angle_deg": angle,
                     "cumulative_mm": now[1]}
    earlier = series.value_at(before[0] - w)
    if earlier is not None and before[0] - earlier[0] >= w // 2:
        v0 = (before[1] - earlier[1]) / ((before[0] - earlier[0]) / DAY_MS)
        figures["acceleration_mm_day2"] = round((v - v0) / days, 4)
    level = NONE
    for lv, name in enumerate(LEVELS):
        deg = cfg.tangential_angle_deg.get(name)
        if deg is not None and angle > deg:
            level = lv
    return level, figures


def stale_after_ms(st: PointState, cfg: LandslideConfig) -> int:
    """How long this point may be silent: `stale_grace` x its interval (registered, else
    learned), else the configured `stale_after`."""
    interval = st.interval_ms
    if not interval and st.gaps_ms:
        interval = sorted(st.gaps_ms)[len(st.gaps_ms) // 2]
    return int(interval * cfg.stale_grace) if interval else cfg.stale_after


def evaluate(st: PointState, cfg: LandslideConfig, at: int) -> tuple[list[Alert], PointLevel | None]:
    """Re-evaluate a point at event time `at` (never earlier than its last evaluation)."""
    alerts: list[Alert] = []
    at = max(at, st.eval_ms)
    st.eval_ms = at
    new_data = st.last_ms > st.counted_ms  # only a new reading may extend a rising streak
    limit = stale_after_ms(st, cfg)
    if st.last_ms and not st.stale_since and at - st.last_ms > limit:
        st.stale_since = st.last_ms
        alerts.append(Alert(f"sensor_stale:{st.point_id}:{st.last_ms}", "sensor_stale", st.grid_id,
                            "low", "firing", st.last_ms + limit, "firing",
                            {"point_id": st.point_id, "sensor": st.sensor, "last_reading": st.last_ms,
                             "stale_after_ms": limit, "level_held": level_name(st.level)},
                            MAINTENANCE, st.path, st.zones[0] if st.zones else None,
                            reason="no_reading"))
    if st.sensor == RAIN:
        raw, figures = _rain_level(st, cfg, at), None
    else:
        raw, figures = _displacement_figures(st, cfg, at)
    previous = st.level
    if raw > st.level and not new_data:
        pass  # a sweep or a re-evaluation without a new reading does not extend a streak
    elif raw > st.level:
        st.below_since = 0
        st.streak_min = raw if st.streak == 0 else min(st.streak_min, raw)
        st.streak += 1
        st.counted_ms = st.last_ms
        if st.streak >= cfg.persistence:
            st.level, st.streak = st.streak_min, 0
    elif raw < st.level:
        st.streak = 0
        if st.stale_since:
            st.below_since = 0  # hold the level while the sensor is silent
        elif not st.below_since:
            st.below_since = at
        elif at - st.below_since >= cfg.hysteresis:
            st.level, st.below_since = raw, 0
    else:
        st.streak, st.below_since = 0, 0
    change = None
    if st.level != previous:
        if figures is None:
            figures = _rain_figures(st, cfg, at)
        figures.update(raw_level=level_name(raw), complete=not st.stale_since, gaps=st.gaps)
        change = PointLevel(st.point_id, st.zones, st.grid_id, st.path, st.level, previous, at,
                            {"point_id": st.point_id, "sensor": st.sensor, **figures})
    return alerts, change


def apply_reading(st: PointState, cfg: LandslideConfig, t_ms: int, value: float,
                  unit: str | None, horizon_ms: int) -> list[Alert]:
    """Store one reading; resolves a stale alert when the sensor is back.

    Raises `Rejected` for readings that cannot be used (wrong unit, implausible rain, older than
    everything kept); the caller records them in the DLQ.
    """
    if unit not in (None, "mm"):
        raise Rejected("unusable_reading", f"{st.point_id}: unit {unit!r}; expected mm")
    if st.sensor == RAIN and value > cfg.max_reading_mm:
        raise Rejected("implausible_reading",
                       f"{st.point_id}: {value} mm in one reading is above max_reading_mm "
                       f"({cfg.max_reading_mm}); check the gauge")
    keep = MAX_WINDOW_MS if st.sensor == RAIN else 3 * cfg.angle_window
    if st.eval_ms and t_ms <= max(st.eval_ms, horizon_ms) - keep:
        raise Rejected("late_event", f"{st.point_id}: reading at {t_ms} is older than the "
                                     f"{keep // 3_600_000} h this point keeps (evaluated to {st.eval_ms})")
    alerts: list[Alert] = []
    st.readings.add(t_ms, value)  # keyed by time: a duplicate reading replaces, never adds
    if st.stale_since and t_ms > st.stale_since:
        alerts.append(Alert(f"sensor_stale:{st.point_id}:{st.stale_since}", "sensor_stale",
                            st.grid_id, "low", "resolved", t_ms, "resolved",
                            {"point_id": st.point_id, "gap_from": st.stale_since, "gap_to": t_ms},
                            MAINTENANCE, st.path, st.zones[0] if st.zones else None,
                            reason="reading_resumed"))
        st.stale_since = 0
        st.gaps += 1
    if t_ms > st.last_ms:
        if st.last_ms:
            st.gaps_ms = (*st.gaps_ms[-4:], t_ms - st.last_ms)
        st.last_ms = t_ms
    return alerts


@dataclass(slots=True)
class ZoneState:
    zone_id: str
    points: dict[str, int] = field(default_factory=dict)
    level: int = NONE
    episode_ms: int = 0


class ZoneLevels:
    """Zone level = worst of its points; a change is a ``landslide`` alert for the zone."""

    def __init__(self) -> None:
        self.zones: dict[str, ZoneState] = {}

    def apply(self, zone_id: str, change: PointLevel) -> list[Alert]:
        z = self.zones.get(zone_id)
        if z is None:
            z = self.zones[zone_id] = ZoneState(zone_id)
        if change.level == NONE:
            z.points.pop(change.point_id, None)
        else:
            z.points[change.point_id] = change.level
        level = max(z.points.values(), default=NONE)
        if level == z.level:
            return []
        previous, z.level = z.level, level
        if previous == NONE:
            z.episode_ms = change.at_ms
        alert_id = f"landslide:{zone_id}:{z.episode_ms}"
        evidence = {"zone_level": level_name(level), "previous": level_name(previous),
                    "points": {p: level_name(v) for p, v in sorted(z.points.items())},
                    "trigger": change.evidence}
        status = "resolved" if level == NONE else "firing"
        severity = level_name(level if level != NONE else previous)
        return [Alert(alert_id, "landslide", change.grid_id, severity, status, change.at_ms,
                      f"{level_name(level)}:{change.at_ms}", evidence, path=change.path,
                      zone_id=zone_id, reason="level_down" if level < previous else "level_up")]
