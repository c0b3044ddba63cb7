"""Urban waterlogging / water level (内涝、水位): levels from a gauge's depth, with persistence.

A water-level gauge (``kind: water_level``, metres) at an underpass, a low street or a river
bank reports its depth; the configured table maps depth to blue/yellow/orange/red (注意/警示/
警戒/警报; e.g. 0.15 m a kerb, 0.27 m a car's exhaust, 0.5 m a car's door sill, 0.8 m people in
danger). A device may carry its own ``levels_m`` in the registry (a river gauge's warning and
danger levels), which win over the table. The level rises only after ``persistence`` readings in
a row at or above it and steps down only after ``clear_after`` of event time below it, so one
wave or a splash does not flap. Each change is an alert ``flood`` for the gauge's grid:
``firing`` when it first rises, ``l<level>`` when it changes, ``resolved`` when it clears.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from pipeline.detect.alerts import Alert
from pipeline.detect.config import LEVELS, Duration, parse_duration
from pipeline.detect.plugins import Detector, Reading
from pipeline.errors import Rejected

SEVERITY = {"blue": "low", "yellow": "medium", "orange": "high", "red": "critical"}
UNIT_M = {"m": 1.0, "cm": 0.01, "mm": 0.001}


class FloodConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    levels_m: dict[str, float]  # level -> depth at or above which it holds
    persistence: int = Field(2, ge=1, le=100)  # readings in a row before stepping up
    clear_after: Duration = parse_duration("30m")  # below a level this long before stepping down
    max_depth_m: float = Field(20.0, gt=0)  # a reading above this is implausible

    @field_validator("levels_m")
    @classmethod
    def _levels(cls, v: dict[str, float]) -> dict[str, float]:
        seq = [(lv, v[lv]) for lv in LEVELS if lv in v]
        if set(v) - set(LEVELS) or not seq:
            raise ValueError(f"levels_m: use some of {', '.join(LEVELS)}")
        for (lo, a), (hi, b) in itertools.pairwise(seq):
            if b <= a:
                raise ValueError(f"levels overlap: {hi} ({b} m) must be above {lo} ({a} m)")
        return v


@dataclass
class Gauge:
    device_id: str
    grid_id: str
    path: tuple[str, ...]
    level: int = -1  # published level (-1: none)
    episode_ms: int = 0  # when the current episode started (the alert id)
    streak: int = 0  # readings in a row at or above `candidate`
    candidate: int = -1
    below_since: int = 0  # first reading below the published level (0: not below)
    last_depth: float = 0.0
    last_ms: int = 0


@dataclass
class FloodState:
    gauges: dict[str, Gauge] = field(default_factory=dict)


def raw_level(depth: float, table: dict[str, float]) -> int:
    return max((i for i, lv in enumerate(LEVELS) if lv in table and depth >= table[lv]), default=-1)


class FloodDetector(Detector):
    name = "flood"
    kinds = frozenset({"water_level"})
    units = frozenset({"m", "cm", "mm"})
    config_model = FloodConfig

    def new_state(self, cfg: FloodConfig) -> FloodState:
        return FloodState()

    def on_reading(self, state: FloodState, cfg: FloodConfig, r: Reading) -> list[Alert]:
        scale = UNIT_M.get(r.unit or "m")
        if scale is None:
            raise Rejected("bad_unit", f"water_level in {r.unit!r}: use m, cm or mm")
        depth = r.value * scale
        if not 0 <= depth <= cfg.max_depth_m:
            raise Rejected("implausible_reading", f"water depth {depth:.2f} m outside 0..{cfg.max_depth_m} m")
        g = state.gauges.get(r.device_id)
        if g is None:
            g = state.gauges[r.device_id] = Gauge(r.device_id, r.grid_id, r.path)
        if r.t_ms < g.last_ms:
            return []  # an older reading than one applied: the newer depth stands
        g.last_depth, g.last_ms = depth, r.t_ms
        table = r.device.get("levels_m") if isinstance(r.device.get("levels_m"), dict) else cfg.levels_m
        lv = raw_level(depth, table)
        if lv > g.level:
            g.streak = g.streak + 1 if g.candidate >= 0 and lv >= g.candidate > g.level else 1
            g.candidate = lv if g.streak == 1 else min(g.candidate, lv)
            g.below_since = 0
            if g.streak >= cfg.persistence:
                return self._publish(g, g.candidate, r.t_ms, depth)
            return []
        g.streak, g.candidate = 0, -1
        if lv < g.level:  # the host calls on_time next, which steps down once clear_after passed
            g.below_since = g.below_since or r.t_ms
        else:
            g.below_since = 0
        return []

    def on_time(self, state: FloodState, cfg: FloodConfig, now_ms: int) -> list[Alert]:
        out: list[Alert] = []
        for g in state.gauges.values():
            if g.level >= 0 and g.below_since and now_ms - g.below_since >= cfg.clear_after:
                table = cfg.levels_m
                out += self._publish(g, raw_level(g.last_depth, table), g.below_since + cfg.clear_after,
                                     g.last_depth)
        return out

    def _publish(self, g: Gauge, level: int, at_ms: int, depth: float) -> list[Alert]:
        previous, g.level, g.below_since, g.streak, g.candidate = g.level, level, 0, 0, -1
        if previous < 0:
            g.episode_ms = at_ms
        status, step = ("resolved", "resolved") if level < 0 else \
            ("firing", "firing" if previous < 0 else f"l{LEVELS[level]}:{at_ms}")
        name = LEVELS[max(level, previous)] if level < 0 else LEVELS[level]
        return [Alert(f"flood:{g.device_id}:{g.episode_ms}", self.name, g.grid_id, SEVERITY[name],
                      status, at_ms, step, {"device_id": g.device_id, "depth_m": round(depth, 3),
                                            "level": LEVELS[level] if level >= 0 else "none",
                                            "previous": LEVELS[previous] if previous >= 0 else "none"},
                      path=g.path, reason=f"water {depth:.2f} m")]

    def snapshot(self, state: FloodState) -> dict[str, Any]:
        return {d: {"level": LEVELS[g.level] if g.level >= 0 else "none", "depth_m": g.last_depth}
                for d, g in state.gauges.items()}


DETECTOR = FloodDetector()
