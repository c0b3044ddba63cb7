"""Incident wiring without faust: the host for a deployment's settings and command decoding,
shared by the faust agents (pipeline.incident_agents) and the replayer."""

from __future__ import annotations

from typing import Any

from pipeline.gate import TimeBounds
from pipeline.gate import decode_command as gate_decode_command
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
    return IncidentHost(load_policy(settings.policy_file), lateness_ms, zone_grids,
                        TimeBounds.of(settings))


def decode_command(value: bytes | None, max_bytes: int, record_ms: int | None = None,
                   bounds: TimeBounds | None = None, key: str | None = None) -> dict:
    """A commands.v1 record -> its validated data, or `Rejected` (`pipeline.gate`); with
    `key` (the deployment's GRIDWATCH_COMMAND_KEY) its signature is checked too."""
    return gate_decode_command(value, max_bytes, record_ms, bounds, key=key)
