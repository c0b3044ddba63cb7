"""KPIs (考核指标) per unit of the grid hierarchy and per kind, kept incrementally.

Each escalation record turns into counter deltas for every unit on the incident's path (grid,
community, town, district...) and for ``kind:<kind>``; a KPI stage sums them per unit. From
the sums: MTTA (mean time from dispatch to acknowledgement), MTTR (dispatch to resolution),
mean time to arrive on site, breach rates (incidents not acknowledged in time / opened, not
resolved in time / opened),
closure rate 办结率 (verified and closed / opened minus cancelled or merged) and the open
backlog (not yet closed, cancelled or merged).
"""

from __future__ import annotations

from collections import Counter

from pipeline.incident.lifecycle import Escalation, Incident


def deltas(inc: Incident, ev: Escalation) -> Counter:
    """Counter changes one transition makes (empty for most)."""
    d: Counter = Counter()
    a = ev.action
    if a == "opened":
        d.update(opened=1, backlog=1)
    elif a in ("acknowledge", "arrive") and inc.acked_ms == ev.at_ms:
        d.update(acknowledged=1, ack_ms=ev.at_ms - inc.opened_ms)
    if a == "arrive":
        d.update(arrived=1, arrive_ms=ev.at_ms - inc.opened_ms)
    if a == "resolve":
        d.update(resolved=1, resolve_ms=ev.at_ms - inc.opened_ms)
    elif a == "verify":
        d.update(closed=1, backlog=-1)
    elif a in ("cancel", "merge"):
        d.update(cancelled=1, backlog=-1)
    elif a == "reopen":
        d.update(reopened=1)
    elif a == "breach":
        d.update(breaches=1, **{f"breach_{ev.reason}": 1})
    return d


def units(inc: Incident) -> list[str]:
    """Where an incident counts: every unit on its path, and its kind."""
    return [*inc.path, f"kind:{inc.kind}"]


def summary(unit: str, c: Counter) -> dict:
    """The published KPI record of one unit."""
    opened = c["opened"]
    handled = opened - c["cancelled"]
    return {"unit": unit, "opened": opened, "acknowledged": c["acknowledged"],
            "resolved": c["resolved"], "closed": c["closed"], "cancelled": c["cancelled"],
            "reopened": c["reopened"], "backlog": c["backlog"], "breaches": c["breaches"],
            "mtta_s": round(c["ack_ms"] / c["acknowledged"] / 1000, 1) if c["acknowledged"] else None,
            "mttr_s": round(c["resolve_ms"] / c["resolved"] / 1000, 1) if c["resolved"] else None,
            "mean_arrive_s": round(c["arrive_ms"] / c["arrived"] / 1000, 1) if c["arrived"] else None,
            "ack_breach_rate": round(c["breach_acknowledge"] / opened, 4) if opened else None,
            "resolve_breach_rate": round(c["breach_resolve"] / opened, 4) if opened else None,
            "closure_rate": round(c["closed"] / handled, 4) if handled > 0 else None}
