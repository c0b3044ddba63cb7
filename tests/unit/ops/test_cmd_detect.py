"""The detectors and subjects commands, and the detectors benchmark's output shape."""

import orjson
from click.testing import CliRunner

from ops.cli import main


def run(*args: str):
    return CliRunner().invoke(main, list(args))


def test_detectors_check_default_and_json():
    res = run("detectors", "check")
    assert res.exit_code == 0 and ": ok" in res.output
    cfg = orjson.loads(run("detectors", "check", "--json").output)
    assert cfg["landslide"]["rain_mm"]["red"]["1h"] == 80


def test_detectors_check_lists_every_problem(tmp_path):
    bad = tmp_path / "d.yaml"
    bad.write_text("clock: {allowed_lateness: -5m, tick_interval: 0s}\n")
    res = run("detectors", "check", str(bad))
    assert res.exit_code == 1
    assert "clock.allowed_lateness: '-5m' is negative" in res.output
    assert "clock.tick_interval: tick_interval must be at least 1s" in res.output
    assert "reports: Field required" in res.output
    assert "Traceback" not in res.output


def test_subjects_load_rejects_a_bad_file_before_touching_the_broker(tmp_path):
    bad = tmp_path / "subjects.yaml"
    bad.write_text("- {subject_id: 's 1', profile: living_alone_24h}\n")
    res = run("subjects", "load", str(bad), "--broker", "127.0.0.1:1")
    assert res.exit_code == 1
    assert "subject 1" in res.output and "Traceback" not in res.output
    res = run("subjects", "load", str(tmp_path / "missing.json"), "--broker", "127.0.0.1:1")
    assert "no such subjects file" in res.output


def test_bench_detectors_prints_figures_and_a_baseline():
    res = run("bench", "detectors", "--subjects", "200", "--events", "2000", "--points", "10",
              "--reports", "200", "--memory-subjects", "1000", "--json")
    assert res.exit_code == 0, res.output
    out = orjson.loads(res.output)
    assert out["inactivity"]["events_per_s"] > 0
    assert out["inactivity"]["tick_cost_ms"]["baseline_full_scan"] >= 0
    assert out["inactivity_memory"]["bytes_per_subject_state"] > 0
    assert out["landslide"]["bytes_per_point_72h"] > 0 and out["reports"]["events"] == 200


def test_policy_check(tmp_path):
    res = run("policy", "check")
    assert res.exit_code == 0 and "care: grid_worker -> town" in res.output
    bad = tmp_path / "p.yaml"
    bad.write_text("default: {name: d, start: mayor, ack: {amount: 1}, resolve: {amount: 1}}\n")
    res = run("policy", "check", str(bad))
    assert res.exit_code == 1 and "unknown level 'mayor'" in res.output


def test_status_on_an_unreachable_broker_is_a_readable_error():
    res = run("status", "--broker", "127.0.0.1:1")
    assert res.exit_code == 3 and "Traceback" not in res.output  # 3: the broker is not reachable
    assert res.stderr.strip() == ("gridwatch: broker 127.0.0.1:1 is not reachable (BrokerUnavailable): "
                                  "start it or set GRIDWATCH_BROKER")
