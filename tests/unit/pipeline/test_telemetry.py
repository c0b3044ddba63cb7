"""pipeline/telemetry.py: the metrics server and the counters the stages and the notifier keep."""

from __future__ import annotations

import socket
import urllib.request
from types import SimpleNamespace

import pytest
from prometheus_client import REGISTRY

from pipeline import telemetry
from pipeline.delivery.channels import Breaker
from pipeline.delivery.service import Notifier
from pipeline.errors import ConfigError
from pipeline.gate import DlqPolicy
from pipeline.ingest import IngestStats
from pipeline.settings import Settings


def value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _Log:
    def __getattr__(self, _name: str):
        return lambda *a, **kw: None


def test_metrics_port_setting():
    assert Settings.from_env({}).metrics_port is None
    s = Settings.from_env({"GRIDWATCH_METRICS_PORT": "9464", "GRIDWATCH_METRICS_HOST": "0.0.0.0"})
    assert (s.metrics_port, s.metrics_host) == (9464, "0.0.0.0")
    assert Settings.from_env({}).metrics_host == "127.0.0.1"
    for bad in ("0", "65536", "http"):
        with pytest.raises(ConfigError, match="GRIDWATCH_METRICS_PORT"):
            Settings.from_env({"GRIDWATCH_METRICS_PORT": bad})


def test_no_port_no_server():
    assert telemetry.start_metrics_server(Settings(), "worker") is None


def test_server_serves_prometheus_text():
    stats = IngestStats(inputs=3, located=2, dlq=1)
    telemetry.track_ingest(stats)
    telemetry.tick_applied(7, 1_000)
    server = telemetry.start_metrics_server(Settings(metrics_port=free_port()), "worker")
    assert server is not None
    try:
        port = server.server_address[1]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:
            ctype, body = resp.headers["Content-Type"], resp.read().decode()
    finally:
        server.shutdown()
        server.server_close()
        telemetry.forget_partition(7)
    assert ctype.startswith("text/plain") and "version=0.0.4" in ctype
    assert "# TYPE gridwatch_records_total counter" in body
    assert 'gridwatch_records_total{stage="ingest",topic="in"}' in body
    assert "# TYPE gridwatch_clock_tick_age_seconds gauge" in body
    assert 'gridwatch_clock_tick_age_seconds{partition="7"}' in body
    assert "# TYPE gridwatch_partition_rebuild_seconds histogram" in body


def test_bind_failure_warns_and_goes_on():
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert telemetry.start_metrics_server(Settings(metrics_port=port), "notifier") is None
    assert telemetry.start_metrics_server(
        Settings(metrics_port=free_port(), metrics_host="no-such-host.invalid"), "archiver") is None


def test_ingest_records_read_at_scrape():
    before = value("gridwatch_records_total", stage="ingest", topic="located.v1")
    stats = IngestStats()
    telemetry.track_ingest(stats)
    stats.located += 5
    assert value("gridwatch_records_total", stage="ingest", topic="located.v1") == before + 5


async def test_dlq_policy_write_counts():
    sent = []

    async def send(key: bytes, value_: bytes) -> None:
        sent.append(key)

    policy = DlqPolicy(send, 1000, _Log())
    msg = SimpleNamespace(topic="gridwatch.alerts.v1", partition=0, offset=4, key=b"k", value=b"{}",
                          timestamp=1.0)
    before = value("gridwatch_dlq_records_total", stage="incidents", code="bad_json")
    await policy.write(msg, "bad_json", "not JSON", stage="incidents")
    await policy.write(msg, "bad_json", "not JSON", stage="incidents")
    assert len(sent) == 2
    assert value("gridwatch_dlq_records_total", stage="incidents", code="bad_json") == before + 2


async def test_notifier_record_counts_deliveries_and_gauges():
    n = Notifier(Settings(), None)

    class Producer:
        async def send_and_wait(self, *a, **kw):
            return None

    n.producer = Producer()
    esc = {"incident_id": "G1~x", "step": "n1", "to": ["G1"]}
    before = value("gridwatch_deliveries_total", channel="none", outcome="failed")
    await n._record(esc, None, "failed", 1, "no one on duty", role="duty")
    assert value("gridwatch_deliveries_total", channel="none", outcome="failed") == before + 1
    n.breakers["webhook:a"] = Breaker(open_until=float("inf"))
    n.breakers["webhook:b"] = Breaker()
    assert value("gridwatch_endpoint_circuit_open") == 1
    assert value("gridwatch_endpoint_queue_depth") == 0
