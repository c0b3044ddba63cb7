"""CloudEvents ``dataschema``: every envelope of a registry topic's type names the served path of
its data's JSON Schema (the schema's ``$id``, the route the web server serves it at)."""

from __future__ import annotations

import orjson
import pytest

from pipeline.devices import device_envelope
from pipeline.envelope import INPUT_TYPES, dlq_event, make_event, validator
from topics.registry import BY_NAME, DATASCHEMAS, SCHEMA_DIR, TOPICS


def test_an_escalation_names_its_schema():
    ev = make_event("gridwatch.escalation.v1", "e1", "2026-07-01T00:00:00.000Z", {"x": 1})
    assert ev["dataschema"] == "/schemas/escalation.json"
    validator("envelope.json")(ev)  # still a valid envelope


@pytest.mark.parametrize("spec", TOPICS, ids=lambda t: t.name)
def test_every_registry_type_maps_to_its_topics_schema(spec):
    ev = make_event(spec.event_type, "i", "2026-07-01T00:00:00.000Z", {})
    assert ev["dataschema"] == spec.schema_path == f"/schemas/{spec.schema}"
    assert orjson.loads((SCHEMA_DIR / spec.schema).read_bytes())["$id"] == ev["dataschema"]


def test_the_types_gridwatch_writes_are_all_mapped():
    for short, type_ in INPUT_TYPES.items():
        assert DATASCHEMAS[type_] == BY_NAME[short].schema_path
    for name in ("alert", "incident", "escalation", "kpi_delta", "kpi", "dlq_redrive", "clock",
                 "notification", "located", "unlocated", "level", "command"):
        assert DATASCHEMAS[f"gridwatch.{name}.v1"] == f"/schemas/{name}.json"
    assert device_envelope({"device_id": "D1"}, "2026-07-01T00:00:00.000Z")["dataschema"] == \
        "/schemas/device.json"
    dlq = dlq_event("pings.v1", 0, 5, 1_782_864_000_000, None, b"x", "not_json", "not JSON")
    assert dlq["dataschema"] == "/schemas/dlq.json"


@pytest.mark.parametrize("type_", ["gridwatch.incident_link.v1", "com.example.other.v1",
                                   "gridwatch.report.v2"])
def test_types_without_a_registry_schema_carry_none(type_):
    assert "dataschema" not in make_event(type_, "i", "2026-07-01T00:00:00.000Z", {})
