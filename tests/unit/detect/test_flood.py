"""The water-level (内涝) plugin detector, a worked example of adding a detector: its module
(pipeline/detect/plugins/flood.py), its section in the detectors file, this test. Through the
DetectorHost as the worker runs it (located events in, alerts out), and its config checks."""

from __future__ import annotations

import pytest
import yaml

from pipeline.detect.config import DEFAULT_FILE, config_from_dict, load_config
from pipeline.detect.host import DetectorHost
from pipeline.detect.plugins import registry
from pipeline.errors import ConfigError

from .helpers import GRID, MIN, PATH, T0, ping


def feed(h: DetectorHost, depths_m: list[float], t: int, step: int = 5 * MIN, unit: str = "m",
         device: str = "wl-1", **kw) -> tuple[int, list]:
    alerts = []
    for d in depths_m:
        t += step
        out = h.on_located(0, ping(device, "water_level", t, d, unit, **kw))
        assert not out.rejected, out.rejected
        alerts += out.alerts
    return t, alerts


def test_the_plugin_is_registered_and_configured_from_the_default_file():
    assert "flood" in registry() and "water_level" in registry()["flood"].kinds
    assert load_config().plugins["flood"].levels_m["red"] == 0.8


def test_a_storm_raises_levels_with_persistence_and_clears_after_the_water_drains():
    h = DetectorHost(load_config())
    t, alerts = feed(h, [0.05, 0.2, 0.2, 0.35, 0.36, 0.6, 0.1, 0.55, 0.58], T0)
    got = [(a.status, a.severity, a.evidence["level"]) for a in alerts]
    # one reading at a level is a splash; two in a row publish it (the lower of the two)
    assert got == [("firing", "low", "blue"), ("firing", "medium", "yellow"),
                   ("firing", "high", "orange")]
    assert alerts[0].alert_id == alerts[2].alert_id and alerts[0].kind == "flood"
    assert alerts[0].grid_id == GRID and alerts[0].path == PATH
    assert alerts[0].at_ms == T0 + 3 * 5 * MIN
    t, alerts = feed(h, [0.0] * 8, t)  # drained: 30 minutes below, then down at once
    assert [(a.status, a.evidence["level"]) for a in alerts] == [("resolved", "none")]
    assert alerts[0].at_ms == t - 8 * 5 * MIN + 5 * MIN + 30 * MIN


def test_a_tick_steps_the_level_down_when_the_gauge_falls_silent_below_it():
    h = DetectorHost(load_config())
    t, _ = feed(h, [0.3, 0.3, 0.1], T0)
    assert h.on_tick(0, t + 29 * MIN).alerts == []
    out = h.on_tick(0, t + 31 * MIN)
    assert [(a.status, a.evidence["level"], a.at_ms) for a in out.alerts] == [
        ("resolved", "none", t + 30 * MIN)]


def test_units_a_gauges_own_levels_and_bad_readings():
    h = DetectorHost(load_config())
    _, alerts = feed(h, [90, 95], T0, unit="cm")  # red at 0.8 m
    assert [a.severity for a in alerts] == ["critical"]
    river = DetectorHost(load_config())  # a river gauge registered with its own levels
    own = {"blue": 2.0, "yellow": 2.5, "orange": 3.0, "red": 3.5}
    alerts = []
    for i, d in enumerate((2.1, 2.2, 2.6, 2.7)):
        ev = ping("river-1", "water_level", T0 + i * MIN, d, "m")
        ev["device"]["levels_m"] = own
        alerts += river.on_located(0, ev).alerts
    assert [a.evidence["level"] for a in alerts] == ["blue", "yellow"]
    out = h.on_located(0, ping("wl-2", "water_level", T0, 5, "kg"))
    assert [r.code for r in out.rejected] == ["bad_unit"]
    out = h.on_located(0, ping("wl-2", "water_level", T0, -3, "m"))
    assert [r.code for r in out.rejected] == ["implausible_reading"]
    out = h.on_located(0, ping("wl-2", "water_level", T0))  # no value
    assert [r.code for r in out.rejected] == ["bad_located"]


def test_the_section_is_validated_readably_and_absent_means_off():
    raw = yaml.safe_load(DEFAULT_FILE.read_text())
    bad = {**raw, "flood": {"levels_m": {"blue": 0.5, "yellow": 0.3}}}
    with pytest.raises(ConfigError, match="levels overlap"):
        config_from_dict(bad)
    with pytest.raises(ConfigError, match="unknown section 'floods'"):
        config_from_dict({**raw, "floods": {}})
    off = config_from_dict({k: v for k, v in raw.items() if k != "flood"})
    h = DetectorHost(off)
    out = h.on_located(0, ping("wl-1", "water_level", T0, 0.9, "m"))
    assert out.alerts == [] and h.stats.ignored == 1
