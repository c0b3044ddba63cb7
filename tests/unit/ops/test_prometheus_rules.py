"""deploy/prometheus/rules.yml: valid for promtool, and only about metrics the code defines."""

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.unit.ops.metric_names import SCRAPE_SERIES, defined_metrics, expr_metrics

REPO = Path(__file__).resolve().parents[3]
RULES = REPO / "deploy" / "prometheus" / "rules.yml"


def rules() -> list[dict]:
    return [r for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"]]


def test_promtool_check_rules():
    promtool = shutil.which("promtool")
    if promtool is None:
        msg = "promtool missing (apt-get install prometheus; `make browser` does)"
        if os.environ.get("GRIDWATCH_TEST_KAFKA") == "required":
            pytest.fail(msg + " (GRIDWATCH_TEST_KAFKA=required)")
        pytest.skip(msg)
    done = subprocess.run([promtool, "check", "rules", str(RULES)], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"SUCCESS: {len(rules())} rules found" in done.stdout


def test_every_rule_has_for_severity_and_annotations():
    names = [r["alert"] for r in rules()]
    assert len(names) == len(set(names))
    for r in rules():
        assert r["for"], r["alert"]
        assert r["labels"]["severity"] in ("critical", "warning", "info"), r["alert"]
        assert r["annotations"]["summary"] and r["annotations"]["description"], r["alert"]
    assert {"GridwatchIngestStalled", "GridwatchClockNotTicking", "GridwatchDlqGrowth",
            "GridwatchSlaBreach", "GridwatchDeliveryFailures", "GridwatchCircuitOpen"} <= set(names)


def test_rules_name_only_metrics_the_code_defines():
    defined = defined_metrics()
    for r in rules():
        used = expr_metrics(r["expr"])
        assert used - SCRAPE_SERIES, f"{r['alert']}: no gridwatch metric in {r['expr']!r}"
        assert used - SCRAPE_SERIES <= defined, (r["alert"], sorted(used - SCRAPE_SERIES - defined))


def test_metric_names_follow_the_conventions():
    for name in defined_metrics():
        assert name == name.lower() and name.startswith("gridwatch_"), name
        assert not name.endswith(("_ms", "_milliseconds", "_kb", "_mb")), f"{name}: use base units"


def test_expr_metrics_ignores_label_values():
    assert expr_metrics('sum by (stage) (rate(gridwatch_a_total{stage="gridwatch_b"}[5m])) and up') \
        == {"gridwatch_a_total", "up"}
