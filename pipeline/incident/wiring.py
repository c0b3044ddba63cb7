"""Incident wiring without faust: the host for a deployment's settings and command decoding,
shared by the faust agents (pipeline.incident_agents) and the replayer."""

from __future__ import annotations

from typing import Any

import fastjsonschema
import orjson

from pipeline.detect.host import event_ms
from pipeline.envelope import check_size, validator
from pipeline.errors import Rejected
from pipeline.incident.fanout import zone_grids_from
from pipeline.incident.host import IncidentHost
from pipeline.incident.policy import load_policy
from pipeline.settings import Settings

LINK_TYPE = "gridwatch.incident_link.v1"


def build_incident_host(settings: Settings, lateness_ms: int, locator: Any = None,
                        subjects: Any = None) -> IncidentHost:
    """The incident host with the validated policy (a bad file stops start-up) and, given the
    worker's locator, area fan-out of zone incidents."""
    zone_grids = zone_grids_from(locator, subjects if subjects is not None else {}) if locator else None
    return IncidentHost(load_policy(settings.policy_file), lateness_ms, zone_grids)


def decode_command(value: bytes | None, max_bytes: int) -> dict:
    """A commands.v1 record -> its validated data, or `Rejected`."""
    try:
        doc = orjson.loads(check_size(value, max_bytes))
        data = doc["data"]
        validator("command.json")(data)
    except Rejected:
        raise
    except fastjsonschema.JsonSchemaValueException as exc:
        raise Rejected("bad_command", f"command: {exc.message}")
    except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
        raise Rejected("bad_command", f"not a command envelope: {exc}")
    if "~" not in data["incident_id"]:
        raise Rejected("unknown_incident", f"{data['incident_id']!r} is not a gridwatch incident id")
    try:
        event_ms(data["at"])
    except ValueError:
        raise Rejected("bad_command", f"at={data['at']!r} is not an ISO 8601 time")
    return data
