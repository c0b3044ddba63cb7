"""`gridwatch demo --duration` on a fresh work directory: exits 0 with its JSON summary."""

import subprocess
import sys

import orjson
import pytest

pytestmark = pytest.mark.e2e


def test_demo_with_duration_prints_a_summary(tmp_path):
    res = subprocess.run([sys.executable, "-m", "ops.cli", "demo", "--duration", "45", "--quiet",
                          "--rate", "300", "--workdir", str(tmp_path)],
                         capture_output=True, text=True, timeout=180)
    assert res.returncode == 0, res.stderr[-2000:] + res.stdout[-2000:]
    summary = orjson.loads(res.stdout[res.stdout.index("{"):])
    assert summary["events_in"] > 1000
    assert summary["all_accounted_for"]
    assert summary["located"] > 0 and summary["dlq"] > 0 and summary["unlocated"] > 0
    assert summary["expected"]["dlq"] == summary["dlq"]
    assert summary["first_output_after_s"] < 60
    # the detectors ran on the simulated county: the storm raised a hazard zone's level and
    # reports were grouped into cluster alerts; nothing the detectors read was unusable
    assert summary["alerts_by_kind"].get("landslide", 0) > 0
    assert summary["alerts_by_kind"].get("report_cluster", 0) > 0
    assert summary["dlq_detectors"] == 0
    # the dashboard was served (URL and a token printed) and everything was archived;
    assert "dashboard: http://127.0.0.1:" in res.stdout and "token: gw_" in res.stdout
    assert summary["archived_records"] >= summary["events_in"]
    # the duty desk worked incidents through the HTTP API: whole lifecycles, not only climbing
    desk = summary["duty_desk"]["commands"]
    assert desk.get("acknowledge", 0) > 0 and desk.get("verify", 0) > 0, summary["duty_desk"]
    assert list((tmp_path / "archive").glob("pings.v1/*/*/p*.jsonl.gz"))
