"""Detector wiring without faust: the host for a deployment's settings and the records the
detector stage reads and writes (ticks, point levels). The faust agents (pipeline.detect_agents),
the replayer, the benchmarks and the demo share these."""

from __future__ import annotations

from typing import Any

import orjson

from pipeline.detect.config import load_config
from pipeline.detect.host import DetectorHost
from pipeline.detect.landslide import PointLevel, level_name
from pipeline.envelope import iso_ms, make_event
from pipeline.settings import Settings
from pipeline.sink import partition_for
from pipeline.subjects import load_subjects_file, subject_from_data

LEVEL_INDEX = {"none": -1, "blue": 0, "yellow": 1, "orange": 2, "red": 3}


def tick_envelope(tick_ms: int, partition: int) -> dict:
    """A clock.v1 record: the same tick value always has the same id."""
    return make_event("gridwatch.clock.v1", f"tick:{partition}:{tick_ms}", iso_ms(tick_ms),
                      {"tick": tick_ms, "at": iso_ms(tick_ms), "source": "ticker"},
                      source="gridwatch/clock")


def level_record(change: PointLevel, zone: str) -> tuple[bytes, bytes]:
    """(key, value) of a levels.v1 record for one zone of a point."""
    data = {"point_id": change.point_id, "zone_id": zone, "grid_id": change.grid_id,
            "path": list(change.path), "level": level_name(change.level),
            "previous": level_name(change.previous), "at": iso_ms(change.at_ms),
            "at_ms": change.at_ms, "evidence": change.evidence}
    ev = make_event("gridwatch.level.v1", f"level:{change.point_id}:{zone}:{change.at_ms}",
                    iso_ms(change.at_ms), data, subject=zone, source="gridwatch/detectors")
    return zone.encode(), orjson.dumps(ev)


def change_from_record(data: dict) -> PointLevel:
    return PointLevel(data["point_id"], (data["zone_id"],), data["grid_id"],
                      tuple(data.get("path") or ()), LEVEL_INDEX[data["level"]],
                      LEVEL_INDEX[data["previous"]], data["at_ms"], data["evidence"])


def build_host(settings: Settings, subjects: dict | None = None) -> DetectorHost:
    """The detector host for these settings (config validated here, at start-up)."""
    cfg = load_config(settings.detectors_file)
    reg = subjects if subjects is not None else {}
    if settings.subjects_file:
        reg.update(load_subjects_file(settings.subjects_file))
    return DetectorHost(cfg, reg, partition_of=lambda g: partition_for(g.encode(), settings.partitions))


def subject_follower(settings: Settings, kafka_config: dict, host: DetectorHost) -> Any:
    """A follower of subjects.v1 feeding the host's registry."""
    from pipeline.devices import RegistryFollower

    return RegistryFollower(settings.topic("subjects.v1"), kafka_config, host.subjects,  # type: ignore[arg-type]
                            settings.max_message_bytes, short="subjects.v1", key_field="subject_id",
                            transform=subject_from_data)
