"""Escalation policy (分级响应): who is called first, how long they have, where it goes next.

A YAML file validated at start (pydantic). Rules are matched in order by alert kind, category
(report clusters) and minimum severity; the first match wins and a ``default`` rule is
required. A rule gives the starting level on the ladder, the acknowledge timeout and resolve
deadline (each level may override them), how many times a level is called before the incident
moves up, the highest level, and parallel responders from overlapping layers (``police_grid``,
departments: the 吹哨报到 whistle). The ladder follows the grid's parents: grid worker and grid
leader (网格员, 网格长) at the grid, then community/village, town/street, district/county, city.
The matched rule is copied into the incident when it opens (a snapshot), so editing the file
never changes incidents in flight.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from pipeline.incident.sla import UNITS
from pipeline.yaml_config import load_model, model_from_dict

LADDER = ("grid_worker", "grid_leader", "community", "town", "district", "city")
#: position in a grid's path (codes from the top level down) that each level answers for,
#: counted from the grid (-1) upwards
PATH_INDEX = {"grid_worker": -1, "grid_leader": -1, "community": -2, "town": -3, "district": -4,
              "city": -5}
SEVERITY_ORDER = ("low", "medium", "high", "critical", "blue", "yellow", "orange", "red")
_RANK = {"low": 0, "medium": 1, "high": 2, "critical": 3, "blue": 0, "yellow": 1, "orange": 2,
         "red": 3}


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Limit(_Frozen):
    """An SLA amount: 15 minutes, 4 working_hours, 3 working_days..."""

    amount: float = Field(gt=0, le=10_000)
    unit: str = "minutes"

    @field_validator("unit")
    @classmethod
    def _unit(cls, v: str) -> str:
        if v not in UNITS:
            raise ValueError(f"unknown unit {v!r}; use one of {', '.join(UNITS)}")
        return v


class Match(_Frozen):
    kind: str | None = None
    category: str | None = None
    min_severity: str | None = None

    @field_validator("min_severity")
    @classmethod
    def _sev(cls, v: str | None) -> str | None:
        if v is not None and v not in SEVERITY_ORDER:
            raise ValueError(f"unknown severity {v!r}; use one of {', '.join(SEVERITY_ORDER)}")
        return v

    def matches(self, kind: str, category: str | None, severity: str) -> bool:
        return ((self.kind is None or self.kind == kind)
                and (self.category is None or self.category == category)
                and (self.min_severity is None or _RANK.get(severity, 0) >= _RANK[self.min_severity]))


class Rule(_Frozen):
    """What happens to incidents this rule matches (snapshotted into each incident)."""

    name: str
    match: Match = Match()
    start: str = "grid_worker"
    top: str = "district"
    ack: Limit
    resolve: Limit
    repeats: int = Field(1, ge=1, le=20)  # calls at a level before moving up
    level_ack: dict[str, Limit] = {}  # per-level acknowledge timeouts overriding `ack`
    parallel: tuple[str, ...] = ()  # police_grid, departments (emergency, health, ...)
    fan_out: bool = False  # a zone incident opens a child per grid it touches
    #: at the top, each unanswered call multiplies the acknowledge timeout by this, up to
    #: `top_repeat_max` (15 min, 30, 60, ... 4 h): someone keeps being called, nobody is paged
    #: every quarter hour for two days
    top_backoff: float = Field(2.0, ge=1, le=10)
    top_repeat_max: Limit = Limit(amount=4, unit="hours")

    @model_validator(mode="after")
    def _ladder(self) -> Rule:
        for name in (self.start, self.top, *self.level_ack):
            if name not in LADDER:
                raise ValueError(f"unknown level {name!r}; the ladder is {', '.join(LADDER)}")
        if LADDER.index(self.top) < LADDER.index(self.start):
            raise ValueError(f"top {self.top!r} is below start {self.start!r}")
        return self

    def ack_limit(self, level: str) -> Limit:
        return self.level_ack.get(level, self.ack)


class Policy(_Frozen):
    version: int = Field(1, ge=1, le=1)
    rules: tuple[Rule, ...] = ()
    default: Rule
    #: a zone landslide incident at or above this level inhibits device and stale-sensor
    #: incidents inside the zone (they are recorded on nothing: people are already there)
    inhibit_min_level: str = "orange"
    #: days (of event time) an ended incident (closed, cancelled, merged) stays in the worker's
    #: memory for late comments and reopening; then only its record on incidents.v1 remains
    retain_ended_days: float = Field(30, gt=0, le=3650)

    @field_validator("inhibit_min_level")
    @classmethod
    def _level(cls, v: str) -> str:
        if v not in ("blue", "yellow", "orange", "red"):
            raise ValueError(f"unknown level {v!r}; use blue, yellow, orange or red")
        return v

    @model_validator(mode="after")
    def _unique(self) -> Policy:
        names = [r.name for r in (*self.rules, self.default)]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise ValueError(f"rule names must be unique: {', '.join(sorted(dup))}")
        return self

    def rule_for(self, kind: str, category: str | None, severity: str) -> Rule:
        """The first rule matching an alert, else the default."""
        for rule in self.rules:
            if rule.match.matches(kind, category, severity):
                return rule
        return self.default


DEFAULT_FILE = Path(__file__).resolve().parent / "default_policy.yaml"


def load_policy(path: str | Path | None = None) -> Policy:
    """Load and validate a policy file (the packaged default when None); ConfigError lists
    every problem by place."""
    return load_model(Policy, Path(path) if path else DEFAULT_FILE, "policy")


def policy_from_dict(raw: Any, source: str = "policy") -> Policy:
    """Validate an already-parsed policy mapping."""
    return model_from_dict(Policy, raw, source)


def responsible(path: tuple[str, ...], level: str) -> str:
    """The unit (grid or parent code) a ladder level answers for; the top when the path is short."""
    idx = PATH_INDEX[level]
    return path[idx] if len(path) >= -idx else path[0]
