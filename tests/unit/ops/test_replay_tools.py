"""Archive segments, the core replayer, the what-if diff and the replay CLI's errors (no broker)."""

from __future__ import annotations

import gzip
import json

import orjson
import pytest
from click.testing import CliRunner

from ops.bench_replay import build_log, run_replay_bench
from ops.cli import main
from pipeline.archive import ArchiveWriter, partition_streams, segments, summary
from pipeline.errors import ConfigError
from pipeline.replay import CoreReplayer, LogRecord, by_id, log_order
from pipeline.whatif import diff

HOUR = 3_600_000
T = 1_782_864_000_000  # 2026-07-01T00:00Z


def test_segments_round_trip_bytes_tombstones_and_headers(tmp_path):
    w = ArchiveWriter(tmp_path)
    w.add("devices.v1", 0, 5, T, b"d1", b'{"a":"\xe4\xb8\xad"}', [("gridwatch-redrive-count", b"2")])
    w.add("devices.v1", 0, 6, T + 1, b"d1", None)  # a tombstone
    w.add("devices.v1", 0, 7, T + 2, b"\xff\xfe", b"\x00\x9f binary")
    w.add("devices.v1", 0, 8, T + HOUR, b"d2", b"{}")  # next hour: next segment
    w.roll()
    segs = segments(tmp_path)
    assert [(s.first_offset, s.last_offset, s.count) for s in segs] == [(5, 7, 3), (8, 8, 1)]
    assert segs[0].path.parent.name == "00" and segs[1].path.parent.name == "01"
    (stream,), total = partition_streams(tmp_path, ["devices.v1"])
    got = list(stream)
    assert total == 4 and [r.offset for r in got] == [5, 6, 7, 8]
    assert got[0].value == '{"a":"中"}'.encode() and got[0].redrive_count == 2
    assert got[1].value is None and got[2].key == b"\xff\xfe" and got[2].value == b"\x00\x9f binary"
    assert not list(tmp_path.rglob("*.part"))  # nothing half-written is left


def test_overlapping_segments_after_a_crash_yield_each_offset_once(tmp_path):
    w = ArchiveWriter(tmp_path)
    for o in range(10):
        w.add("pings.v1", 1, o, T + o, None, b"%d" % o)
    w.roll()
    for o in range(5, 15):  # offsets 5..9 written again: the commit after the first roll was lost
        w.add("pings.v1", 1, o, T + o, None, b"%d" % o)
    w.roll()
    (stream,), _ = partition_streams(tmp_path, ["pings.v1"])
    assert [r.offset for r in stream] == list(range(15))
    (stream,), _ = partition_streams(tmp_path, ["pings.v1"], since_ms=T + 3, until_ms=T + 11)
    assert [r.offset for r in stream] == list(range(3, 12))
    (row,) = summary(tmp_path)
    assert row["segments"] == 2 and row["records"] == 20 and row["partitions"] == 1


def test_a_damaged_segment_is_a_readable_error(tmp_path):
    w = ArchiveWriter(tmp_path)
    w.add("pings.v1", 0, 0, T, None, b"{}")
    (seg,) = w.roll()
    seg.path.write_bytes(gzip.compress(b'{"offset": 0, "timestamp": 1}\n{not json\n'))
    (stream,), _ = partition_streams(tmp_path, ["pings.v1"])
    with pytest.raises(ConfigError, match="damaged at line 2"):
        list(stream)
    seg.path.write_bytes(b"not gzip at all")
    (stream,), _ = partition_streams(tmp_path, ["pings.v1"])
    with pytest.raises(ConfigError, match="damaged"):
        list(stream)
    with pytest.raises(ConfigError, match="no such directory"):
        segments(tmp_path / "missing")


def _replay(log: list[LogRecord], registry: dict) -> CoreReplayer:
    from ops.bench_replay import _NoCore
    from pipeline.detect.wiring import build_host
    from pipeline.incident.wiring import build_incident_host
    from pipeline.settings import Settings

    s = Settings.from_env({}, partitions=4)
    host = build_host(s, dict(registry))
    rp = CoreReplayer(s, _NoCore(), host, build_incident_host(s, host.cfg.clock.allowed_lateness))  # type: ignore[arg-type]
    rp.feed_all(log)
    return rp


def test_core_replay_is_deterministic_and_survives_hostile_records():
    log, registry = build_log(6000, 40)
    hostile = [LogRecord("located.v1", 0, 10**6, T + 5, b"g", b"{not json"),
               LogRecord("located.v1", 0, 10**6 + 1, T + 6, b"g", b'{"data": {"grid_id": 1}}'),
               LogRecord("clock.v1", 0, 10**6, T + 7, b"tick", b'{"data": {"tick": "soon"}}'),
               LogRecord("commands.v1", 0, 0, T + 8, b"x", b'{"data": {"incident_id": "nope"}}'),
               LogRecord("subjects.v1", 0, 0, T + 9, b"s", b"[]"),
               LogRecord("located.v1", 0, 10**6 + 2, T + 10, b"g", b"x" * 100_000)]
    mixed = list(log_order([log, hostile]))
    a, b = _replay(mixed, registry), _replay(mixed, registry)
    assert a.outputs == b.outputs and a.outputs  # same bytes, same order
    # the tick and the command lack their CloudEvents attributes: the gate refuses them first
    assert a.stats.rejected == {"bad_record": 1, "too_large": 1, "bad_located": 1,
                                "bad_envelope": 2, "bad_subject": 1}
    assert by_id(a.outputs)["alerts.v1"] and a.stats.inputs == 6003


def _alert(aid: str, step: str, sev: str, at: str, status: str = "firing") -> tuple:
    doc = {"id": f"{aid}:{step}", "data": {"alert_id": aid, "kind": "landslide", "grid_id": "g1",
                                           "status": status, "severity": sev, "observed_at": at}}
    return "alerts.v1", b"g1", orjson.dumps(doc)


def _esc(iid: str, step: int, transition: str, level: str, at: str) -> tuple:
    doc = {"id": f"{iid}:{step}", "data": {"incident_id": iid, "step": step, "transition": transition,
                                           "level": level, "at": at, "kind": "landslide"}}
    return "escalations.v1", iid.encode(), orjson.dumps(doc)


def test_diff_pairs_records_by_what_they_are_about():
    old = by_id([_alert("A", "blue:1", "blue", "01:00"), _alert("A", "r", "blue", "05:00", "resolved"),
                 _alert("B", "blue:2", "blue", "02:00"), _esc("I", 1, "dispatched", "grid_worker", "01:00"),
                 _esc("I", 2, "escalated", "community", "02:00")])
    new = by_id([_alert("A", "yellow:1", "yellow", "01:00"), _alert("A", "r", "blue", "05:30", "resolved"),
                 _alert("C", "blue:3", "blue", "03:00"), _esc("I", 1, "dispatched", "grid_worker", "01:00"),
                 _esc("I", 2, "escalated", "town", "02:00")])
    d = diff(old, new)
    assert d.summary() == {"added": 1, "removed": 1, "changed": 3, "unchanged": 1}
    assert [r["about"] for r in d.added] == ["C"] and [r["about"] for r in d.removed] == ["B"]
    changes = {(r["what"], r["about"], r["status"]): r["change"] for r in d.changed}
    assert changes == {("alert", "A", "firing"): ["level"], ("alert", "A", "resolved"): ["time"],
                       ("escalation", "I", "escalated"): ["level"]}


def test_bench_replay_prints_figures_and_a_baseline_on_the_same_log():
    r = run_replay_bench(events=3000, subjects=30)
    assert r["replay_core"]["events_per_s"] > 0 and r["baseline_stages_through_records"]["events_per_s"] > 0
    assert r["replay_core"]["outputs"] == r["baseline_stages_through_records"]["outputs"]
    assert r["replay_core"]["outputs"]["alerts.v1"] > 0


@pytest.mark.parametrize("args, needle", [
    (["replay", "--from", "archive"], "needs --archive"),
    (["replay", "--from", "archive", "--archive", "/nonexistent/arch"], "no such directory"),
    (["replay", "--from", "archive", "--archive", "x", "--since", "2026-07-02T00:00:00+08:00",
      "--until", "2026-07-01T00:00:00+08:00"], "--until is before --since"),
    (["replay", "--since", "yesterday"], "since"),
    (["replay", "--speed", "-1"], "speed"),
    (["whatif", "--from", "archive", "--archive", "x"], "give --detectors"),
    (["archive", "ls", "--dir", "/nonexistent/arch"], "no such directory"),
])
def test_replay_cli_refuses_bad_options_readably(args, needle, tmp_path):
    r = CliRunner().invoke(main, args, env={"GRIDWATCH_ATLAS": str(tmp_path / "none.geojson")})
    assert r.exit_code != 0 and needle in r.output, r.output
    assert "Traceback" not in r.output


def test_shadow_prefix_may_not_be_the_live_one():
    from ops.logio import publish_shadow
    from pipeline.settings import Settings

    with pytest.raises(ConfigError, match="live prefix"):
        publish_shadow(Settings.from_env({}), "gridwatch.", iter(()))


def test_archive_ls_json(tmp_path):
    w = ArchiveWriter(tmp_path)
    w.add("alerts.v1", 2, 0, T, b"g", b"{}")
    w.roll()
    r = CliRunner().invoke(main, ["archive", "ls", "--dir", str(tmp_path), "--json"])
    (row,) = json.loads(r.output)
    assert r.exit_code == 0 and row["topic"] == "alerts.v1" and row["first"].startswith("2026-07-01")


def test_by_id_keeps_the_newest_incident_state_and_a_tombstone_removes_it():
    def inc(iid: str, state: str) -> tuple:
        return ("incidents.v1", iid.encode(), orjson.dumps({"id": f"{iid}@{state}",
                                                            "data": {"incident_id": iid, "state": state}}))

    out = by_id([inc("g1~a", "dispatched"), inc("g1~a", "closed"), inc("g2~b", "closed"),
                 ("incidents.v1", b"g2~b", None), ("alerts.v1", b"x", None)])
    assert {k: v["data"]["state"] for k, v in out["incidents.v1"].items()} == {"g1~a": "closed"}
    assert out["alerts.v1"] == {}
