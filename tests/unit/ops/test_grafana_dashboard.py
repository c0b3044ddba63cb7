"""deploy/grafana/gridwatch.json: a loadable dashboard whose queries name defined metrics."""

import json
from pathlib import Path

from tests.unit.ops.metric_names import SCRAPE_SERIES, defined_metrics, expr_metrics

REPO = Path(__file__).resolve().parents[3]
DASHBOARD = REPO / "deploy" / "grafana" / "gridwatch.json"


def load() -> dict:
    return json.loads(DASHBOARD.read_text(encoding="utf-8"))


def test_dashboard_keys_and_panels():
    d = load()
    assert d["title"] and d["uid"] and d["schemaVersion"] == 39
    ids = [p["id"] for p in d["panels"]]
    assert len(ids) == len(set(ids))
    variables = {v["name"]: v for v in d["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    graphs = [p for p in d["panels"] if p["type"] != "row"]
    assert graphs and {p["type"] for p in graphs} <= {"timeseries", "stat"}
    for p in graphs:
        assert p["title"] and p["gridPos"]["w"] > 0 and p["targets"], p["id"]
        assert p["datasource"]["uid"] == "${datasource}", p["title"]
        for t in p["targets"]:
            assert t["refId"] and t["expr"].strip(), p["title"]


def test_every_expr_names_defined_metrics():
    defined = defined_metrics()
    seen: set[str] = set()
    for p in load()["panels"]:
        for t in p.get("targets", []):
            used = expr_metrics(t["expr"]) - SCRAPE_SERIES
            assert used, f"{p['title']}: no gridwatch metric in {t['expr']!r}"
            assert used <= defined, (p["title"], sorted(used - defined))
            seen |= used
    for family in ("gridwatch_records_total", "gridwatch_dlq_records_total",
                   "gridwatch_clock_tick_age_seconds", "gridwatch_deliveries_total",
                   "gridwatch_archived_records_total", "gridwatch_escalations_total"):
        assert family in seen
