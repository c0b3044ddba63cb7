"""Subject registry (关爱对象台账): people under care, their devices and inactivity profile.

Sources, like the device registry: a file (JSON list, JSON Lines or YAML) loaded at start
(``GRIDWATCH_SUBJECTS_FILE``) and the compacted ``subjects.v1`` topic followed by every worker.
The registry holds no names or phone numbers: who to call is a list of roster roles, resolved
by delivery. A subject whose profile is not in the detectors configuration gets the default
profile (the worker logs it once at start for the file).
"""

from __future__ import annotations

from pipeline.detect.inactivity import Subject
from pipeline.devices import load_devices_file, registry_envelope


def subject_from_data(data: dict) -> Subject:
    """A validated subjects.v1 data body -> Subject."""
    return Subject(data["subject_id"], data["profile"], data.get("grid_id"),
                   data.get("household_id"), tuple(data.get("devices", ())),
                   tuple(data.get("call", ())))


def load_subjects_file(path: str) -> dict[str, Subject]:
    """Read and validate a subjects file; ConfigError names the first bad entry."""
    rows = load_devices_file(path, schema="subject.json", what="subject")
    return {r["subject_id"]: subject_from_data(r) for r in rows}


def subject_envelope(row: dict, time: str) -> dict:
    """The subjects.v1 envelope for one registration."""
    return registry_envelope("subject", row["subject_id"], row, time)
