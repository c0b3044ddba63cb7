"""Rosters (值班表): who is on duty for a unit and role, at an event time.

A YAML file (and, later, a compacted topic) lists people with their contact channels, and
duties: for a unit (a grid, community, town... code) and a role (a ladder level such as
``grid_worker`` or a department such as ``police_grid``), shifts by time of day and kind of
day (working days, rest days, all days, or named weekdays; working days follow China's official
calendar with its holidays and make-up workdays), plus substitutes called with the person on
shift. When nobody is on duty for a unit, the roster falls back to the unit's territorial
parent (属地兜底) and says so.

Times are local (China Standard Time, UTC+8). A shift ``from`` after ``to`` wraps midnight and
belongs to the day it starts on.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from pipeline.delivery.channels import Address
from pipeline.incident.sla import is_workday
from pipeline.yaml_config import load_model, model_from_dict

CST = timedelta(hours=8)
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
DAY_KINDS = ("all", "workdays", "restdays")


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Person(BaseModel):
    """Someone on a roster. Besides these fields, each channel of the registry
    (`pipeline.delivery.channels`) is a field named after it: ``webhook``, ``email``,
    ``dingtalk``...; its value is that channel's address, checked by the channel."""

    model_config = ConfigDict(frozen=True, extra="allow")

    name: str = Field(min_length=1, max_length=64)  # personal data: never logged
    webhook: str | dict[str, Any] | None = None  # a URL, or {url, secret}: the receiver's own key
    email: str | None = None  # one plain address, parsed strictly
    lang: str = Field("zh", pattern="^(zh|en)$")
    webhook_format: str = Field("json", pattern="^(json|cap)$")  # cap: OASIS CAP 1.2 XML body

    @model_validator(mode="after")
    def _reachable(self) -> Person:
        from pipeline.delivery.channels import registry

        known = registry()
        for key in self.model_extra or {}:
            if key not in known:
                raise ValueError(f"unknown channel {key!r}; channels: {', '.join(known)}")
        if not self.addresses():
            raise ValueError(f"a person needs at least one channel ({', '.join(known)})")
        return self

    def addresses(self) -> list[tuple[str, Address]]:
        """(channel, address) for every channel this person has, in the registry's order;
        ValueError naming the channel when an address is not valid for it."""
        from pipeline.delivery.channels import registry

        out = []
        for name, ch in registry().items():
            value = getattr(self, name, None) if name in ("webhook", "email") else \
                (self.model_extra or {}).get(name)
            if value is not None:
                try:
                    out.append((name, ch.parse(value)))
                except ValueError as exc:
                    raise ValueError(f"{name}: {exc}")
        return out


def _clock(value: str) -> time:
    if value == "24:00":
        return time.max
    try:
        return time.fromisoformat(value)
    except ValueError:
        raise ValueError(f"{value!r} is not a time of day (HH:MM)")


class Shift(_Frozen):
    who: str
    days: str | tuple[str, ...] = "all"
    start: str = Field("00:00", alias="from")
    end: str = Field("24:00", alias="to")

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    @field_validator("days")
    @classmethod
    def _days(cls, v: str | tuple[str, ...]) -> str | tuple[str, ...]:
        names = (v,) if isinstance(v, str) else v
        for d in names:
            if d not in DAY_KINDS and d not in WEEKDAYS:
                raise ValueError(f"unknown days {d!r}; use {', '.join(DAY_KINDS)} or weekday names")
        return v

    @field_validator("start", "end")
    @classmethod
    def _time(cls, v: str) -> str:
        _clock(v)
        return v

    def _day_matches(self, day: datetime) -> bool:
        names = (self.days,) if isinstance(self.days, str) else self.days
        for d in names:
            if d == "all" or (d == "workdays" and is_workday(day.date())) \
                    or (d == "restdays" and not is_workday(day.date())) or d == WEEKDAYS[day.weekday()]:
                return True
        return False

    def covers(self, local: datetime) -> bool:
        """Is a local time inside this shift?"""
        t0, t1 = _clock(self.start), _clock(self.end)
        t = local.time()
        if t0 < t1:
            return t0 <= t < t1 and self._day_matches(local)
        # wraps midnight: the evening part belongs to today, the morning part to yesterday
        return (t >= t0 and self._day_matches(local)) or \
            (t < t1 and self._day_matches(local - timedelta(days=1)))


class Duty(_Frozen):
    unit: str = Field(min_length=1, max_length=64)
    role: str = Field(pattern=r"^[a-z_]{1,40}$")
    shifts: tuple[Shift, ...] = Field(min_length=1)
    substitutes: tuple[str, ...] = ()


class Roster(_Frozen):
    version: int = Field(1, ge=1, le=1)
    name: str = Field("default", pattern=r"^[A-Za-z0-9_.-]{1,64}$")  # its key on rosters.v1
    people: dict[str, Person]
    duties: tuple[Duty, ...] = ()

    @model_validator(mode="after")
    def _known_people(self) -> Roster:
        for n, duty in enumerate(self.duties):
            for who in [s.who for s in duty.shifts] + list(duty.substitutes):
                if who not in self.people:
                    raise ValueError(f"duties.{n} ({duty.unit}/{duty.role}): unknown person {who!r}")
        return self


@dataclass(frozen=True)
class OnDuty:
    """Who to call: person ids in order (on shift first, then substitutes), and where found."""

    people: tuple[str, ...]
    unit: str  # the unit whose duty matched
    fell_back: bool  # True when found at a parent (属地兜底), not the unit asked for


def on_duty(roster: Roster, path: tuple[str, ...], unit: str, role: str, at_ms: int) -> OnDuty | None:
    """The people on duty for `role` at `unit` (a code on `path`) at event time `at_ms`,
    falling back up `path` to the first parent with someone on duty; None if nobody at all."""
    local = datetime.fromtimestamp(at_ms / 1000, UTC).replace(tzinfo=None) + CST
    start = path.index(unit) if unit in path else len(path) - 1
    for i in range(start, -1, -1):
        u = path[i]
        found: list[str] = []
        for duty in roster.duties:
            if duty.unit == u and duty.role == role:
                on = [s.who for s in duty.shifts if s.covers(local)]
                if on:
                    found += on + [w for w in duty.substitutes if w not in on]
        if found:
            return OnDuty(tuple(dict.fromkeys(found)), u, u != unit)
    return None


def load_roster(path: str | Path) -> Roster:
    """Load and validate a roster file; ConfigError lists every problem by place."""
    return load_model(Roster, Path(path), "roster")


def roster_from_dict(raw: object, source: str = "roster") -> Roster:
    return model_from_dict(Roster, raw, source)
