"""Detector configuration (研判参数): thresholds, windows and categories from one YAML file.

Validated once at start-up (pydantic); a bad file stops the worker with every problem listed
by its place in the file: an unknown category, a negative window, levels whose thresholds do
not rise (blue < yellow < orange < red). The packaged `default_detectors.yaml` documents every
key; ``GRIDWATCH_DETECTORS`` points a deployment at its own copy.
"""

from __future__ import annotations

import itertools
import re
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic.functional_validators import BeforeValidator

from pipeline.yaml_config import load_model, model_from_dict

DEFAULT_FILE = Path(__file__).resolve().parent / "default_detectors.yaml"
LEVELS = ("blue", "yellow", "orange", "red")  # 注意 / 警示 / 警戒 / 警报
SEVERITIES = ("low", "medium", "high", "critical")
RAIN_WINDOWS = ("1h", "3h", "6h", "24h", "72h")
_UNITS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}
_DURATION = re.compile(r"^\s*(-?\d+(?:\.\d+)?)\s*(ms|s|m|h|d)\s*$")


def parse_duration(value: Any) -> int:
    """'90s', '15m', '24h', '3d' (or a number of seconds) -> milliseconds, never negative."""
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a duration")
    if isinstance(value, int | float):
        ms = int(value * 1000)
    else:
        m = _DURATION.match(str(value))
        if not m:
            raise ValueError(f"{value!r} is not a duration (use e.g. 90s, 15m, 24h, 3d)")
        ms = int(float(m.group(1)) * _UNITS[m.group(2)])
    if ms < 0:
        raise ValueError(f"{value!r} is negative; durations must be >= 0")
    return ms


def _severity(value: Any) -> str:
    if value not in SEVERITIES:
        raise ValueError(f"unknown severity {value!r}; use one of {', '.join(SEVERITIES)}")
    return value


Duration = Annotated[int, BeforeValidator(parse_duration)]
Severity = Annotated[str, BeforeValidator(_severity)]
WINDOW_MS = {w: parse_duration(w) for w in RAIN_WINDOWS}


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ClockConfig(_Frozen):
    allowed_lateness: Duration = parse_duration("5m")
    tick_interval: Duration = parse_duration("30s")

    @field_validator("tick_interval")
    @classmethod
    def _positive(cls, v: int) -> int:
        if v < 1000:
            raise ValueError("tick_interval must be at least 1s")
        return v


class Profile(_Frozen):
    """How quiet is too quiet for one kind of person under care."""

    quiet_window: Duration
    night: tuple[int, int] | None = None  # local hours [start, end) that do not count as quiet
    heartbeat_grace: float = Field(1.5, ge=1.0, le=10.0)  # x the device's heartbeat interval
    auto_resolve: bool = True
    severity: Severity = "high"
    call: tuple[str, ...] = ("grid_worker",)

    @field_validator("quiet_window")
    @classmethod
    def _window(cls, v: int) -> int:
        if v < 60_000:
            raise ValueError("quiet_window must be at least 1m")
        return v

    @field_validator("night")
    @classmethod
    def _night(cls, v: tuple[int, int] | None) -> tuple[int, int] | None:
        if v is not None and (not all(0 <= h <= 23 for h in v) or v[0] == v[1]):
            raise ValueError("night is [start_hour, end_hour], hours 0-23, start != end")
        return v


class InactivityConfig(_Frozen):
    water_activity_l: float = Field(10.0, gt=0)  # a water reading at or above this is activity
    plug_activity_w: float = Field(5.0, gt=0)  # a smart-plug reading at or above this is activity
    default_heartbeat: Duration = parse_duration("1h")
    default_profile: str = "living_alone_24h"
    profiles: dict[str, Profile]

    @model_validator(mode="after")
    def _default_known(self) -> InactivityConfig:
        if self.default_profile not in self.profiles:
            raise ValueError(f"default_profile {self.default_profile!r} is not in profiles")
        return self


class IDThreshold(_Frozen):
    """Intensity-duration threshold I = a * D^b (I mm/h, D h), e.g. Caine 1980: 14.82, -0.39."""

    a: float = Field(gt=0)
    b: float = Field(lt=0)
    level: str = "yellow"
    min_duration_h: float = Field(1.0, gt=0)


class LandslideConfig(_Frozen):
    stale_after: Duration = parse_duration("2h")  # before a point's second reading (interval unknown)
    stale_grace: float = Field(2.0, ge=1.0, le=20.0)  # x the point's own reporting interval
    persistence: int = Field(2, ge=1, le=100)  # readings in a row above a level before stepping up
    hysteresis: Duration = parse_duration("6h")  # time below a level before stepping down
    max_reading_mm: float = Field(100.0, gt=0)  # one rain reading above this is implausible
    rain_mm: dict[str, dict[str, float]]
    intensity_duration: IDThreshold | None = None
    tangential_angle_deg: dict[str, float]
    baseline_velocity_mm_per_day: float = Field(1.0, gt=0)
    angle_window: Duration = parse_duration("24h")

    @field_validator("rain_mm")
    @classmethod
    def _rain(cls, v: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
        for level, windows in v.items():
            if level not in LEVELS:
                raise ValueError(f"unknown level {level!r}; use {', '.join(LEVELS)}")
            for w, mm in windows.items():
                if w not in RAIN_WINDOWS:
                    raise ValueError(f"{level}: unknown window {w!r}; use {', '.join(RAIN_WINDOWS)}")
                if mm <= 0:
                    raise ValueError(f"{level}.{w}: threshold must be > 0 mm")
        for w in RAIN_WINDOWS:
            seq = [(lv, v[lv][w]) for lv in LEVELS if lv in v and w in v[lv]]
            for (lo, a), (hi, b) in itertools.pairwise(seq):
                if b <= a:
                    raise ValueError(f"levels overlap on {w}: {hi} ({b} mm) must be above {lo} ({a} mm)")
        return v

    @field_validator("tangential_angle_deg")
    @classmethod
    def _angles(cls, v: dict[str, float]) -> dict[str, float]:
        for level, deg in v.items():
            if level not in LEVELS:
                raise ValueError(f"unknown level {level!r}; use {', '.join(LEVELS)}")
            if not 0 < deg < 90:
                raise ValueError(f"{level}: angle must be between 0 and 90 degrees")
        seq = [(lv, v[lv]) for lv in LEVELS if lv in v]
        for (lo, a), (hi, b) in itertools.pairwise(seq):
            if b <= a:
                raise ValueError(f"levels overlap: {hi} ({b}°) must be above {lo} ({a}°)")
        return v

    @model_validator(mode="after")
    def _id_level(self) -> LandslideConfig:
        if self.intensity_duration and self.intensity_duration.level not in LEVELS:
            raise ValueError(f"intensity_duration.level {self.intensity_duration.level!r}: "
                             f"use {', '.join(LEVELS)}")
        return self


class Category(_Frozen):
    label: str  # the operator's term, e.g. 公共设施
    severity: Severity = "low"  # floor: a report is at least this severe
    aliases: tuple[str, ...] = ()
    immediate: bool = False  # alert at once instead of waiting for group_wait


class ReportsConfig(_Frozen):
    cluster_distance_m: float = Field(200.0, gt=0, le=50_000)
    cluster_window: Duration = parse_duration("2h")
    group_wait: Duration = parse_duration("5m")
    group_interval: Duration = parse_duration("15m")
    dedupe_window: Duration = parse_duration("24h")  # report ids remembered this long
    max_ids: int = Field(50, ge=1, le=10_000)  # report ids listed in an alert's evidence
    fallback_category: str = "other"
    keywords: dict[str, tuple[str, ...]] = {}  # severity -> words in the text that raise it
    categories: dict[str, Category]

    @model_validator(mode="after")
    def _known(self) -> ReportsConfig:
        if self.fallback_category not in self.categories:
            raise ValueError(f"fallback_category {self.fallback_category!r} is not a category")
        for sev in self.keywords:
            if sev not in SEVERITIES:
                raise ValueError(f"keywords: unknown severity {sev!r}")
        seen: dict[str, str] = {}
        for name, cat in self.categories.items():
            for alias in (name, *cat.aliases):
                if alias in seen and seen[alias] != name:
                    raise ValueError(f"alias {alias!r} belongs to both {seen[alias]} and {name}")
                seen[alias] = name
        return self


class DetectorConfig(_Frozen):
    version: int = Field(1, ge=1, le=1)
    clock: ClockConfig = ClockConfig()
    inactivity: InactivityConfig
    landslide: LandslideConfig
    reports: ReportsConfig
    #: sections of plugin detectors (pipeline/detect/plugins/), by plugin name; absent: off
    plugins: dict[str, Any] = {}

    @model_validator(mode="before")
    @classmethod
    def _plugin_sections(cls, raw: Any) -> Any:
        if not isinstance(raw, dict):
            return raw
        from pipeline.detect.plugins import registry

        core = set(cls.model_fields) - {"plugins"}
        known = registry()
        plugins: dict[str, Any] = {}
        for key in [k for k in raw if k not in core]:
            if key not in known:
                raise ValueError(f"unknown section {key!r}; core sections: {', '.join(sorted(core))}; "
                                 f"plugins: {', '.join(known) or 'none'}")
            try:
                plugins[key] = known[key].config_model.model_validate(raw[key])
            except ValidationError as exc:
                problems = "; ".join(f"{key}.{'.'.join(str(p) for p in e['loc'])}: {e['msg']}"
                                     for e in exc.errors())
                raise ValueError(problems)
        return {k: v for k, v in raw.items() if k in core} | {"plugins": plugins}


def load_config(path: str | Path | None = None) -> DetectorConfig:
    """Load and validate a detectors file (the packaged default when `path` is None)."""
    return load_model(DetectorConfig, Path(path) if path else DEFAULT_FILE, "detectors")


def config_from_dict(raw: Any, source: str = "detectors config") -> DetectorConfig:
    """Validate an already-parsed mapping."""
    return model_from_dict(DetectorConfig, raw, source)
