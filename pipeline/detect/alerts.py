"""Alerts (告警): what a detector emits, with a deterministic id and its evidence.

An alert's id names the episode (kind, entity, the event time the episode started), so the same
input log always yields the same ids, and a redelivered alert is recognisable downstream. The
envelope id adds the step (``firing``, ``resolved`` or ``n<count>`` for a growing cluster).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import orjson

from pipeline.envelope import iso_ms, make_event

ALERT_TYPE = "gridwatch.alert.v1"
#: who should act: people on duty for the grid, or the maintenance team for devices
DUTY, MAINTENANCE = "duty", "maintenance"


@dataclass(frozen=True, slots=True)
class Alert:
    """One alert record for ``alerts.v1`` (keyed by grid id)."""

    alert_id: str
    kind: str  # inactivity, device_offline, landslide, sensor_stale, report_cluster
    grid_id: str
    severity: str
    status: str  # firing or resolved
    at_ms: int  # event time of the decision
    step: str  # distinguishes records of one alert: firing, resolved, n3...
    evidence: dict = field(default_factory=dict)
    route: str = DUTY
    path: tuple[str, ...] = ()
    zone_id: str | None = None
    subject_id: str | None = None
    reason: str | None = None

    def data(self) -> dict:
        """The alert body (schema topics/schemas/alert.json)."""
        return {"alert_id": self.alert_id, "kind": self.kind, "grid_id": self.grid_id,
                "path": list(self.path), "zone_id": self.zone_id, "subject_id": self.subject_id,
                "severity": self.severity, "status": self.status, "route": self.route,
                "reason": self.reason, "observed_at": iso_ms(self.at_ms),
                "evidence": self.evidence}

    def envelope(self) -> dict:
        """CloudEvents envelope with a deterministic id (alert id + step)."""
        return make_event(ALERT_TYPE, f"{self.alert_id}:{self.step}", iso_ms(self.at_ms),
                          self.data(), subject=self.grid_id, source="gridwatch/detectors")

    def encode(self) -> tuple[bytes, bytes]:
        """(key, value) for ``alerts.v1``."""
        return self.grid_id.encode(), orjson.dumps(self.envelope())
