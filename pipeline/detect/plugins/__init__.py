"""Pluggable detectors (检测器插件): one interface, one module each, found by the host.

A plugin is a module of this package that defines ``DETECTOR``, an instance of `Detector`:

- ``name``: its section in the detectors file (validated by ``config_model``; a plugin whose
  section is absent is off) and the ``kind`` of the alerts it raises;
- ``kinds`` and ``units``: the ping kinds it consumes and their units, added to the ping
  schema's lists when ingest loads it (the host rejects a reading without a number before a
  plugin sees it);
- ``new_state(cfg)``: a plain dataclass, one per partition and device or area it watches;
- ``on_reading(state, cfg, reading)`` and ``on_time(state, cfg, now_ms)``: pure functions of
  (state, input) that return alerts (bytewax's ``on_item``/``on_notify``); ``snapshot(state)``
  a JSON-ready view for ops.

Time is the partition's watermark, as for the built-in detectors: `Reading.t_ms` is event
time, `on_time` is called with the watermark after every event and tick. The host keeps the
states, routes by kind, and counts; a plugin never sees Kafka.
"""

from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass
from functools import cache
from typing import Any

from pydantic import BaseModel

from pipeline.detect.alerts import Alert


@dataclass(frozen=True, slots=True)
class Reading:
    """One numeric sensor reading, located."""

    device_id: str
    kind: str
    value: float
    unit: str | None
    t_ms: int  # event time
    grid_id: str
    path: tuple[str, ...]
    device: dict  # the registered device (zone, thresholds it carries), may be empty


class Detector:
    """Base class of a plugin detector; see the module docstring."""

    name: str = ""
    kinds: frozenset[str] = frozenset()
    units: frozenset[str] = frozenset()  # units its readings may carry (added to ping.json's)
    config_model: type[BaseModel] = BaseModel

    def new_state(self, cfg: Any) -> Any:
        raise NotImplementedError

    def on_reading(self, state: Any, cfg: Any, reading: Reading) -> list[Alert]:
        raise NotImplementedError

    def on_time(self, state: Any, cfg: Any, now_ms: int) -> list[Alert]:
        return []

    def snapshot(self, state: Any) -> dict:
        return {}


@cache
def registry() -> dict[str, Detector]:
    """Every plugin module of this package, by name."""
    found: dict[str, Detector] = {}
    for mod in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        det = getattr(importlib.import_module(f"{__name__}.{mod.name}"), "DETECTOR", None)
        if isinstance(det, Detector):
            found[det.name] = det
    return found


@cache
def kinds() -> dict[str, Detector]:
    """Ping kind -> the plugin that consumes it."""
    return {k: d for d in registry().values() for k in d.kinds}
