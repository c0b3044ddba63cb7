"""One error style for the CLI: a broker nobody runs is one line on stderr and exit 3, in seconds,
for every command that needs it; ``--json`` commands print JSON (failures too)."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace
from typing import ClassVar

import orjson
import pytest
import yaml
from click.testing import CliRunner

from ops.cli import main
from ops.cli_util import EXIT_FAILED, EXIT_UNREACHABLE
from pipeline.broker import free_port

REPO = Path(__file__).resolve().parents[3]
LINE = re.compile(r"^gridwatch: broker 127\.0\.0\.1:(\d+) is not reachable \((\w+)\): "
                  r"start it or set GRIDWATCH_BROKER$")
DETECTORS = str(REPO / "pipeline" / "detect" / "default_detectors.yaml")


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, str]:
    d = tmp_path_factory.mktemp("cli")
    (d / "devices.json").write_text('[{"device_id": "D1", "kind": "door", "lon": 0.5, "lat": 0.5}]')
    (d / "subjects.yaml").write_text("- {subject_id: s1, profile: living_alone_24h}\n")
    (d / "roster.yaml").write_text(yaml.safe_dump(_roster(), allow_unicode=True))
    return {"devices": str(d / "devices.json"), "subjects": str(d / "subjects.yaml"),
            "roster": str(d / "roster.yaml"), "archive": str(d / "archive")}


def _roster() -> dict:
    return {"name": "default", "people": {"night": {"name": "夜班", "webhook": "http://127.0.0.1:9/ok"}},
            "duties": [{"unit": "g1", "role": "grid_worker", "shifts": [{"who": "night"}]}]}


def _cli(args: list[str], broker: str) -> tuple[subprocess.CompletedProcess, float]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GRIDWATCH_")}
    env["GRIDWATCH_BROKER"] = broker
    started = time.monotonic()
    res = subprocess.run([sys.executable, "-m", "ops.cli", *args], env=env, cwd=REPO,
                         capture_output=True, text=True, timeout=60)
    return res, time.monotonic() - started


COMMANDS = [
    ["topics", "create"], ["topics", "describe"], ["topics", "describe", "--partitions"],
    ["dlq", "ls"], ["dlq", "show", "0:1"], ["dlq", "redrive", "--dry-run"],
    ["replay", "--no-compare"], ["replay", "--to", "shadow"], ["whatif", "--detectors", DETECTORS],
    ["archive", "run", "--dir", "{archive}", "--once"], ["cap", "g1~x~1"],
    ["lag"], ["status"], ["devices", "load", "{devices}"], ["subjects", "load", "{subjects}"],
    ["roster", "load", "{roster}"],
]


@pytest.mark.parametrize("args", COMMANDS, ids=" ".join)
def test_an_unreachable_broker_is_one_line_and_exit_3(args, files):
    port = free_port()  # nobody listens there
    res, seconds = _cli([a.format(**files) for a in args], f"127.0.0.1:{port}")
    lines = res.stderr.splitlines()
    assert res.returncode == EXIT_UNREACHABLE, res.stderr[-2000:]
    assert len(lines) == 1 and LINE.match(lines[0]), res.stderr[-2000:]
    assert LINE.match(lines[0]).group(1) == str(port) and res.stdout == ""
    assert seconds < 15, seconds


def test_status_json_with_the_broker_down_is_json_and_exit_3():
    res, seconds = _cli(["status", "--json"], f"127.0.0.1:{free_port()}")
    doc = orjson.loads(res.stdout)
    assert res.returncode == EXIT_UNREACHABLE and seconds < 15
    assert (doc["healthy"], doc["reachable"], doc["ok"], doc["exit_code"]) == (False, False, False, 3)
    assert LINE.match(res.stderr.strip()) and doc["error"] in res.stderr


def test_something_listening_that_is_not_kafka_is_unreachable_too():
    """A TCP connection is accepted, but no Kafka answers: the metadata check says so in seconds."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(64)  # accepts into the backlog, never answers
    try:
        res, seconds = _cli(["dlq", "ls"], f"127.0.0.1:{srv.getsockname()[1]}")
    finally:
        srv.close()
    assert res.returncode == EXIT_UNREACHABLE and len(res.stderr.splitlines()) == 1, res.stderr
    assert LINE.match(res.stderr.strip()) and seconds < 15


def test_input_is_checked_before_the_broker(files, tmp_path):
    bad = tmp_path / "r.yaml"
    bad.write_text("name: default\npeople: {x: {name: x}}\n")  # nobody reachable
    res, _ = _cli(["roster", "load", str(bad)], f"127.0.0.1:{free_port()}")
    assert res.returncode == EXIT_FAILED and res.stderr.startswith("gridwatch: ")
    assert "at least one channel" in res.stderr and "Traceback" not in res.stderr
    res, _ = _cli(["replay", "--since", "yesterday"], f"127.0.0.1:{free_port()}")
    assert res.returncode == EXIT_FAILED and "is not an ISO 8601 time" in res.stderr
    res, _ = _cli(["dlq", "ls", "--nope"], f"127.0.0.1:{free_port()}")
    assert res.returncode == 2  # usage
    # a replay of the archive through the core needs no broker: no broker check
    res, _ = _cli(["replay", "--from", "archive", "--archive", str(tmp_path)], f"127.0.0.1:{free_port()}")
    assert res.returncode == EXIT_FAILED and "GRIDWATCH_ATLAS is not set" in res.stderr, res.stderr


# --json where it was added: roster check, devices/subjects load, dlq show, archive run

def _run(*args: str):
    return CliRunner().invoke(main, list(args))


def test_roster_check_json(files, tmp_path):
    res = _run("roster", "check", files["roster"], "--json")
    assert res.exit_code == 0, res.output
    assert orjson.loads(res.stdout) == {"ok": True, "path": files["roster"], "name": "default",
                                        "people": 1, "duties": 1}
    bad = tmp_path / "r.yaml"
    bad.write_text("name: default\npeople: {x: {name: x}}\n")
    res = _run("roster", "check", str(bad), "--json")
    doc = orjson.loads(res.stdout)
    assert res.exit_code == EXIT_FAILED and doc["ok"] is False and doc["exit_code"] == 1
    assert "at least one channel" in doc["error"] and res.stderr.startswith("gridwatch: ")


class FakeProducer:
    sent: ClassVar[list] = []

    def __init__(self, **_: object) -> None:
        pass

    def send(self, topic: str, key: bytes, value: bytes) -> None:
        FakeProducer.sent.append((topic, key, orjson.loads(value)))

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass


@pytest.fixture
def no_broker_check(monkeypatch):
    """The broker check passes (these tests are about the output, not the broker)."""
    import ops.cmd_dlq
    import ops.cmd_replay
    import ops.cmd_runtime

    for mod in (ops.cmd_runtime, ops.cmd_dlq, ops.cmd_replay):
        monkeypatch.setattr(mod, "broker_settings", ops.cmd_runtime.settings_from)


@pytest.mark.parametrize("kind", ["devices", "subjects"])
def test_registry_load_json(kind, files, monkeypatch, no_broker_check):
    import kafka

    monkeypatch.setattr(kafka, "KafkaProducer", FakeProducer)
    FakeProducer.sent = []
    res = _run(kind, "load", files[kind], "--json", "--prefix", "t.")
    assert res.exit_code == 0, res.output
    assert orjson.loads(res.stdout) == {"ok": True, "published": 1, "what": kind[:-1],
                                        "topic": f"t.{kind}.v1", "path": files[kind]}
    ((topic, _, env),) = FakeProducer.sent
    assert topic == f"t.{kind}.v1" and env["dataschema"] == f"/schemas/{kind[:-1]}.json"


def test_dlq_show_json(monkeypatch, no_broker_check):
    import base64

    import ops.dlq

    data = {"code": "not_json", "reason": "not JSON", "retriable": False,
            "source": {"topic": "reports.v1", "partition": 0, "offset": 7, "timestamp_ms": 0},
            "original_b64": base64.b64encode(b"{nope").decode(), "redrive_count": 0}
    entry = ops.dlq.DlqEntry(2, 9, 1_782_864_000_000, data)
    monkeypatch.setattr(ops.dlq, "read_dlq", lambda *a, **k: [entry])
    for args in (["dlq", "show", "2:9", "--json"], ["dlq", "show", "2:9"]):  # JSON either way
        res = _run(*args)
        doc = orjson.loads(res.stdout)
        assert res.exit_code == 0 and doc["position"] == "2:9" and doc["original"] == "{nope"
    res = _run("dlq", "show", "0:0", "--json")
    assert res.exit_code == EXIT_FAILED and orjson.loads(res.stdout)["ok"] is False


def test_archive_run_json(monkeypatch, no_broker_check, tmp_path):
    import ops.logio
    import pipeline.logs

    class FakeSink:
        def __init__(self, settings: object, root: str, flush_s: float) -> None:
            self.records, self.stop = 0, threading.Event()
            self.writer = SimpleNamespace(segments_written=3)

        def run(self, until_caught_up: bool = False) -> int:
            assert until_caught_up
            self.records = 42
            return 42

    monkeypatch.setattr(ops.logio, "ArchiveSink", FakeSink)
    monkeypatch.setattr(signal, "signal", lambda *_: None)  # leave pytest's SIGTERM alone
    monkeypatch.setattr(pipeline.logs, "configure", lambda *_: None)  # and its logging
    res = _run("archive", "run", "--dir", str(tmp_path), "--once", "--json")
    assert res.exit_code == 0, res.output
    assert orjson.loads(res.stdout) == {"ok": True, "archived": 42, "dir": str(tmp_path), "segments": 3}
