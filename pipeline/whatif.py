"""What-if diff (推演对比): recorded outputs against a replay's, alerts and escalations.

Records are paired by what they are about, not by envelope id (an id carries the step time, so
a moved alert would otherwise look removed and added):

- alerts: (alert id, status, n-th such record of that alert); a pair whose severity differs is
  *changed in level*, whose ``observed_at`` differs is *changed in time*;
- escalations: (incident id, transition, n-th such record of that incident); ``level`` and
  ``at`` likewise.

Unpaired recorded records are *removed*, unpaired replayed ones *added*. Incidents are compared by
their final state only in the summary counts.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field


@dataclass
class Diff:
    added: list[dict] = field(default_factory=list)
    removed: list[dict] = field(default_factory=list)
    changed: list[dict] = field(default_factory=list)
    same: int = 0

    def summary(self) -> dict[str, int]:
        return {"added": len(self.added), "removed": len(self.removed),
                "changed": len(self.changed), "unchanged": self.same}


def _alert_row(doc: dict) -> dict:
    d = doc["data"]
    return {"what": "alert", "id": doc["id"], "about": d["alert_id"], "kind": d["kind"],
            "grid_id": d["grid_id"], "status": d["status"], "level": d["severity"],
            "at": d["observed_at"]}


def _escalation_row(doc: dict) -> dict:
    d = doc["data"]
    return {"what": "escalation", "id": doc["id"], "about": d["incident_id"], "kind": d.get("kind"),
            "grid_id": d.get("grid_id"), "status": d["transition"], "level": d["level"],
            "at": d["at"], "to": d.get("to")}


def _keyed(rows: Iterable[dict]) -> dict[tuple, dict]:
    seen: Counter = Counter()
    out = {}
    for r in sorted(rows, key=lambda r: (r["at"], r["id"])):
        base = (r["what"], r["about"], r["status"])
        out[(*base, seen[base])] = r
        seen[base] += 1
    return out


def rows_of(outputs: dict[str, dict[str, dict]]) -> list[dict]:
    """Alert and escalation rows of ``replay.by_id`` output."""
    return [_alert_row(d) for d in outputs.get("alerts.v1", {}).values()] + \
        [_escalation_row(d) for d in outputs.get("escalations.v1", {}).values()]


def diff(recorded: dict[str, dict[str, dict]], replayed: dict[str, dict[str, dict]]) -> Diff:
    """Compare two ``replay.by_id`` results."""
    old, new = _keyed(rows_of(recorded)), _keyed(rows_of(replayed))
    out = Diff()
    for key in sorted(set(old) | set(new), key=lambda k: (k[0], str(k[1:]))):
        a, b = old.get(key), new.get(key)
        if a is None:
            out.added.append(b)  # type: ignore[arg-type]
        elif b is None:
            out.removed.append(a)
        elif (a["level"], a["at"]) != (b["level"], b["at"]):
            pairs = (("level", a["level"], b["level"]), ("time", a["at"], b["at"]))
            what = [w for w, x, y in pairs if x != y]
            out.changed.append({**b, "change": what, "was_level": a["level"], "was_at": a["at"]})
        else:
            out.same += 1
    return out


def summary_by_kind(d: Diff) -> list[dict]:
    """Counts per (record type, kind, change)."""
    c: Counter = Counter()
    for label, rows in (("added", d.added), ("removed", d.removed), ("changed", d.changed)):
        for r in rows:
            c[(r["what"], r.get("kind") or "-", label)] += 1
    return [{"what": w, "kind": k, "change": ch, "count": n} for (w, k, ch), n in sorted(c.items())]
