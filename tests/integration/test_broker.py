"""The embedded broker starts, answers Kafka clients, and leaves no process behind."""

import os
import socket
import subprocess
import sys
import time

import pytest
from kafka import KafkaAdminClient

from pipeline.broker import EmbeddedBroker
from pipeline.errors import BrokerUnavailable

pytestmark = pytest.mark.integration


def test_start_answer_stop_no_orphan(tmp_path):
    log = tmp_path / "not" / "yet" / "broker.log"  # the folder is created on start
    with EmbeddedBroker(log_path=str(log)) as b:
        admin = KafkaAdminClient(bootstrap_servers=b.bootstrap)
        assert isinstance(admin.list_topics(), list)
        admin.close()
        pid = b.proc.pid
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", b.port), timeout=1).close()
    assert f"listening on: tcp://127.0.0.1:{b.port}" in log.read_text()


def test_broker_command_prints_where_it_listens_and_stops_on_sigterm():
    proc = subprocess.Popen([sys.executable, "-m", "ops.cli", "broker"], stdout=subprocess.PIPE,
                            text=True, start_new_session=True)
    line = proc.stdout.readline()
    assert "embedded broker listening on 127.0.0.1:" in line
    port = int(line.split("127.0.0.1:")[1].split()[0])
    socket.create_connection(("127.0.0.1", port), timeout=2).close()
    proc.terminate()
    assert proc.wait(15) == 0
    time.sleep(0.5)
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()


def test_unreachable_broker_is_a_clear_error():
    from pipeline.broker import free_port, wait_for_kafka

    started = time.monotonic()
    with pytest.raises(BrokerUnavailable, match="no Kafka answered"):
        wait_for_kafka(f"127.0.0.1:{free_port()}", timeout_s=2)
    assert time.monotonic() - started < 6, "the stated timeout was not honoured"


@pytest.mark.kafka
def test_kafka_engine_cli_starts_3_brokers_topics_get_rf3_and_a_report_comes_out_located(
        kafka_cluster, atlas_file, tmp_path):
    """`gridwatch broker --engine kafka` as a user runs it (the session's cluster fixture has
    fetched the jars), then `topics create`, `topics describe`, a worker and one report."""
    import orjson

    from pipeline.settings import Settings
    from tests.integration.conftest import REPO, Pipeline
    from tests.unit.pipeline.helpers import T0_MS, report

    env = dict(os.environ, GRIDWATCH_KAFKA_CACHE=str(REPO / "var" / "kafka"))
    proc = subprocess.Popen([sys.executable, "-m", "ops.cli", "broker", "--engine", "kafka",
                             "--dir", str(tmp_path / "cluster")], stdout=subprocess.PIPE,
                            text=True, start_new_session=True, env=env, cwd=tmp_path)
    try:
        line = proc.stdout.readline()
        assert "Apache Kafka (3 KRaft brokers) listening on 127.0.0.1:" in line, line
        bootstrap = line.split("listening on ")[1].split(";")[0]
        assert len(bootstrap.split(",")) == 3
        cli = [sys.executable, "-m", "ops.cli", "topics"]
        base = dict(os.environ, GRIDWATCH_BROKER=bootstrap)
        made = subprocess.run([*cli, "create"], env=base, cwd=REPO, capture_output=True, text=True)
        assert made.returncode == 0, made.stderr
        desc = subprocess.run([*cli, "describe", "--json"], env=base, cwd=REPO, capture_output=True,
                              text=True)
        rows = orjson.loads(desc.stdout)
        assert desc.returncode == 0 and all(r["replication_factor"] == 3 and r["ok"] for r in rows)
        assert {r["configs"]["min.insync.replicas"] for r in rows} == {"2"}
        p = Pipeline(Settings.from_env({}, broker=bootstrap), atlas_file, tmp_path)
        worker = p.start_worker()
        try:
            p.produce("reports.v1", [(b"R1", orjson.dumps(report("R1", 0.5, 1.5)))], T0_MS)
            located = p.values(p.collect("located.v1", 1, 90))
        finally:
            p.stop_worker(worker)
        assert located[0]["data"]["path"] == ["C", "T", "M", "g3"]
        pids = [int(x) for x in subprocess.run(["pgrep", "-f", str(tmp_path / "cluster")],
                                               capture_output=True, text=True).stdout.split()]
        assert len(pids) >= 3  # the three Java brokers
    finally:
        proc.terminate()
        code = proc.wait(60)
    assert code == 0
    time.sleep(0.5)
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def test_kafka_engine_without_java_says_so_in_one_line(tmp_path):
    bindir = tmp_path / "bin"  # an empty PATH: no java, no mvn
    bindir.mkdir()
    res = subprocess.run([sys.executable, "-m", "ops.cli", "broker", "--engine", "kafka",
                          "--dir", str(tmp_path / "c")], capture_output=True, text=True,
                         env=dict(os.environ, PATH=str(bindir),
                                  GRIDWATCH_KAFKA_CACHE=str(tmp_path / "cache")),
                         cwd=os.path.dirname(os.path.dirname(os.path.dirname(__file__))))
    assert res.returncode == 1
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "Java 17" in lines[0], res.stderr
