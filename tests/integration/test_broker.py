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
