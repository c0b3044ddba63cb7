"""Topic declarations as frozen dataclasses: name, partitions, key, retention, schema.

Topics are never auto-created: `gridwatch topics create` provisions exactly these, and a
worker refuses to start when one is missing or has another partition count. Input topics and
the tables that join them must be co-partitioned (same count, same key), so partition counts
come from one setting, ``GRIDWATCH_PARTITIONS`` (default 4). The clock topic is co-partitioned
with ``located.v1`` too, so each detector partition sees its own ticks.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import orjson

DAY_MS = 24 * 3600 * 1000
SCHEMA_DIR = Path(__file__).resolve().parent / "schemas"
#: where the web server serves topics/schemas: each schema's ``$id`` is this path plus its file name,
#: and an envelope's ``dataschema`` names it
SCHEMA_PATH = "/schemas/"


@dataclass(frozen=True)
class TopicSpec:
    """One topic of the registry. `name` is without the deployment prefix."""

    name: str
    key: str  # what the record key holds
    schema: str  # file name in topics/schemas/
    description: str
    compacted: bool = False
    retention_ms: int = 7 * DAY_MS
    partitions: int | None = None  # None: the deployment's partition count
    internal: bool = False  # owned by gridwatch (tables); not for integrators

    def full_name(self, prefix: str) -> str:
        """The topic's name in Kafka."""
        return f"{prefix}{self.name}"

    def partition_count(self, default: int) -> int:
        """Partitions for this deployment."""
        return self.partitions or default

    def configs(self) -> dict[str, str]:
        """Topic configs for creation."""
        if self.compacted:
            return {"cleanup.policy": "compact"}
        return {"cleanup.policy": "delete", "retention.ms": str(self.retention_ms)}

    @property
    def schema_path(self) -> str:
        """Where this topic's JSON Schema is served (its ``$id``), e.g. ``/schemas/report.json``."""
        return SCHEMA_PATH + self.schema

    @property
    def event_type(self) -> str:
        """The CloudEvents type of this topic's records: ``gridwatch.<schema name>.v1``."""
        return f"gridwatch.{self.schema.removesuffix('.json')}.v1"

    def load_schema(self) -> dict:
        """This topic's JSON Schema."""
        return orjson.loads((SCHEMA_DIR / self.schema).read_bytes())


TOPICS: tuple[TopicSpec, ...] = (
    TopicSpec("reports.v1", "report_id", "report.json",
              "Grid-worker reports (网格员上报) in, CloudEvents envelope."),
    TopicSpec("pings.v1", "device_id", "ping.json",
              "Sensor pings in (door, water meter, rain gauge, GNSS, crack meter...)."),
    TopicSpec("devices.v1", "device_id", "device.json",
              "Device registry: fixed location, kind, subject. Compacted; tombstone deletes.",
              compacted=True),
    TopicSpec("located.v1", "grid_id", "located.json",
              "Reports and pings with their grid, parent path, police grid and hazard zones."),
    TopicSpec("unlocated.v1", "source id", "unlocated.json",
              "Valid input outside every grid, for triage (never dropped)."),
    TopicSpec("subjects.v1", "subject_id", "subject.json",
              "Subject registry (关爱对象): people under care, their devices and profile. Compacted.",
              compacted=True),
    TopicSpec("rosters.v1", "roster name", "roster.json",
              "Duty rosters (值班表) for delivery; the newest valid document per name wins. Compacted.",
              compacted=True),
    TopicSpec("alerts.v1", "grid_id", "alert.json", "Detector alerts (inactivity, landslide...)."),
    TopicSpec("levels.v1", "zone_id", "level.json",
              "Monitoring-point level changes, repartitioned by hazard zone for the zone level.",
              internal=True),
    TopicSpec("incidents.v1", "incident_id", "incident.json",
              "Current state of every incident; a tombstone when an ended one is forgotten. Compacted.",
              compacted=True),
    TopicSpec("escalations.v1", "incident_id", "escalation.json",
              "Every incident transition: what, when, to whom."),
    TopicSpec("notifications.v1", "notification_id", "notification.json",
              "Delivery attempts and outcomes."),
    TopicSpec("commands.v1", "incident_id", "command.json",
              "Acknowledge, resolve, assign, comment... from people."),
    TopicSpec("incident-commands.v1", "grid_id", "command.json",
              "Commands routed to the partition of their incident's grid.", internal=True),
    TopicSpec("kpi-deltas.v1", "unit", "kpi_delta.json",
              "KPI counter changes per unit (grid, community, town...) for the KPI stage.",
              internal=True),
    TopicSpec("kpis.v1", "unit", "kpi.json",
              "Current KPIs per unit and per kind (MTTA, MTTR, breach and closure rates, backlog). "
              "Compacted.", compacted=True),
    TopicSpec("clock.v1", "partition", "clock.json",
              "Event-time ticks, one per partition (co-partitioned with located.v1), so "
              "deadlines fire when no events arrive."),
    TopicSpec("dlq-redrives.v1", "DLQ record id", "dlq_redrive.json",
              "Which DLQ records were redriven, when and where to (so none is redriven twice). "
              "Compacted.", compacted=True),
    TopicSpec("dlq.v1", "source topic", "dlq.json",
              "Every rejected input with original bytes, source position, code and reason.",
              retention_ms=30 * DAY_MS),
)

BY_NAME = {t.name: t for t in TOPICS}
#: CloudEvents type -> the served path of its data's JSON Schema (the envelope's ``dataschema``)
DATASCHEMAS = {t.event_type: t.schema_path for t in TOPICS}


def topic_names(prefix: str) -> dict[str, str]:
    """Short name -> full Kafka name for every topic."""
    return {t.name: t.full_name(prefix) for t in TOPICS}
