"""Builders for input records used across pipeline tests."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson

from pipeline.ingest import RawRecord

T0 = datetime(2026, 7, 1, 12, 0, tzinfo=UTC)
T0_MS = int(T0.timestamp() * 1000)


def envelope(type_: str, data: dict, id_: str = "e1") -> dict:
    return {"specversion": "1.0", "id": id_, "source": "test", "type": type_,
            "time": "2026-07-01T12:00:00Z", "datacontenttype": "application/json", "data": data}


def report(report_id: str = "R1", lon: float = 0.5, lat: float = 0.5, **extra: object) -> dict:
    data = {"report_id": report_id, "reporter_id": "W1", "category": "safety_hazard",
            "severity": "high", "text": "围墙开裂", "lon": lon, "lat": lat,
            "observed_at": "2026-07-01T20:00:00+08:00"}
    data.update(extra)
    return envelope("gridwatch.report.v1", data, f"ev-{report_id}")


def ping(device_id: str = "D1", kind: str = "door", **extra: object) -> dict:
    data = {"device_id": device_id, "kind": kind, "observed_at": "2026-07-01T12:00:00Z"}
    data.update(extra)
    return envelope("gridwatch.ping.v1", data, f"ev-{device_id}-{kind}")


def raw(topic: str, value: dict | bytes | None, offset: int = 0, key: bytes | None = b"k",
        ts: int | None = T0_MS) -> RawRecord:
    body = value if isinstance(value, bytes) or value is None else orjson.dumps(value)
    return RawRecord(topic, 0, offset, ts, key, body)
