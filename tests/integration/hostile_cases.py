"""Hostile inputs for every input topic and route, generated from valid templates (seeded, so
every run sends the same cases) plus hand-written ones.

Each template is a valid record of its topic; `mutations` yields, for a template, the classic
ways integrators break records: raw bytes that are not JSON, envelopes with attributes missing
or of the wrong type, and every data field removed or replaced by hostile values (wrong types,
huge and control strings, times in 0001 and 2099, naive times, out-of-range numbers).
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

import orjson

from pipeline.detect.wiring import tick_envelope
from pipeline.envelope import iso_ms, make_event

HOSTILE_VALUES: list[Any] = [
    None, True, 0, -1, 1e308, -1e308, 2**63, "", " ", "x" * 5000, "\u0000", "\u202e\u0000evil",
    "😀" * 200, "<script>alert(1)</script>", "'; DROP TABLE grids; --", [], {}, [1, 2],
    {"$ne": 1}, "2099-01-01T00:00:00Z", "0001-01-01T00:00:00+01:00", "0001-01-01Z",
    "2026-12-01T00:00:00", "1999-12-31T23:59:59Z", "9999-99-99T99:99:99Z", "NaN", "../../etc/passwd",
]
RAW: list[bytes | None] = [
    None, b"", b"{nope", b"[]", b"null", b"1", b'"a string"', b"\xff\xfe\x00\x01", b"\xef\xbb\xbf{}",
    b"[" * 2000 + b"]" * 2000, b'{"a":' * 600 + b"1" + b"}" * 600, b"\x00" * 64,
    b'{"specversion": "1.0"}', b"{}" * 10,
]
ENVELOPE_FIELDS = ("specversion", "id", "source", "type", "time", "data")


def report(now_ms: int, i: int) -> dict:
    data = {"report_id": f"R-h{i}", "reporter_id": "W1", "category": "city_appearance",
            "severity": "low", "text": "垃圾堆放", "lon": 0.5, "lat": 0.5, "observed_at": iso_ms(now_ms)}
    return make_event("gridwatch.report.v1", f"r{i}", iso_ms(now_ms), data, source="hostile")


def ping(now_ms: int, i: int) -> dict:
    data = {"device_id": "door-h1", "kind": "door", "value": 1, "unit": "bool",
            "observed_at": iso_ms(now_ms)}
    return make_event("gridwatch.ping.v1", f"p{i}", iso_ms(now_ms), data, source="hostile")


def device(now_ms: int, i: int) -> dict:
    data = {"device_id": f"dev-h{i}", "kind": "door", "lon": 0.5, "lat": 0.5, "subject_id": "s-h1"}
    return make_event("gridwatch.device.v1", f"d{i}", iso_ms(now_ms), data, source="hostile")


def subject(now_ms: int, i: int) -> dict:
    data = {"subject_id": f"s-x{i}", "profile": "living_alone_24h", "grid_id": "g1",
            "devices": [f"dev-h{i}"]}
    return make_event("gridwatch.subject.v1", f"s{i}", iso_ms(now_ms), data, source="hostile")


def command(now_ms: int, i: int) -> dict:
    data = {"command_id": f"c-h{i}", "incident_id": "g1~inactivity:s-nobody~1", "action": "comment",
            "actor": "duty-1", "scope": "g1", "at": iso_ms(now_ms), "reason": "hostile"}
    return make_event("gridwatch.command.v1", f"c{i}", iso_ms(now_ms), data, source="hostile")


def tick(now_ms: int, i: int) -> dict:
    return tick_envelope(now_ms - now_ms % 1000, i % 4)


TEMPLATES = {"reports.v1": report, "pings.v1": ping, "devices.v1": device,
             "subjects.v1": subject, "commands.v1": command, "clock.v1": tick}


def mutations(template: dict, rng: random.Random, fields_per_value: int = 3) -> Iterator[bytes | None]:
    """Hostile variants of one valid envelope."""
    yield from RAW
    yield b"x" * 70_000  # over the 64 kB input limit
    for name in ENVELOPE_FIELDS:
        yield orjson.dumps({k: v for k, v in template.items() if k != name})
        yield orjson.dumps({**template, name: rng.choice(HOSTILE_VALUES)})
    yield orjson.dumps({**template, "type": "gridwatch.alert.v1"})
    data = template["data"]
    for name in data:
        yield orjson.dumps({**template, "data": {k: v for k, v in data.items() if k != name}})
    for value in HOSTILE_VALUES:
        for name in rng.sample(sorted(data), min(fields_per_value, len(data))):
            yield orjson.dumps({**template, "data": {**data, name: value}}, option=orjson.OPT_NON_STR_KEYS)
    yield orjson.dumps({**template, "data": {**data, "unexpected": "field"}})


def kafka_cases(now_ms: int, seed: int = 17) -> dict[str, list[bytes | None]]:
    """Topic short name -> hostile values (and a few valid ones, which must come out too)."""
    rng = random.Random(seed)
    out: dict[str, list[bytes | None]] = {}
    for short, make in TEMPLATES.items():
        values = list(mutations(make(now_ms, 0), rng))
        values += [orjson.dumps(make(now_ms, i)) for i in range(1, 4)]  # valid ones interleaved
        rng.shuffle(values)
        out[short] = values
    return out
