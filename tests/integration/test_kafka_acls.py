"""Kafka principals and ACLs on Apache Kafka (SASL/SCRAM-SHA-256, StandardAuthorizer): an ingest
principal can write reports and pings only; writing commands, rosters or escalations is refused
by the broker, and the pipeline (a worker on its own principal, as shipped) keeps running."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest
from kafka import KafkaProducer
from kafka.errors import TopicAuthorizationFailedError

from pipeline.devices import device_envelope
from pipeline.envelope import iso_ms, make_event
from pipeline.settings import Settings
from tests.integration.conftest import REPO, Pipeline, read_all

pytestmark = pytest.mark.kafka
USERS = {name: f"{name}-secret-0123" for name in ("admin", "ingest", "web", "worker", "notifier",
                                                   "archiver")}


@pytest.fixture(scope="module")
def sasl_kafka(tmp_path_factory):
    import shutil

    from pipeline.kafka_cluster import KafkaCluster

    if shutil.which("java") is None or shutil.which("mvn") is None:
        if os.environ.get("GRIDWATCH_TEST_KAFKA") == "required":
            pytest.fail("Apache Kafka tests need java and mvn (GRIDWATCH_TEST_KAFKA=required)")
        pytest.skip("Apache Kafka tests need java and mvn")
    with KafkaCluster(1, tmp_path_factory.mktemp("sasl-kafka"), cache=REPO / "var" / "kafka",
                      users=USERS) as cluster:
        yield cluster


def producer(cluster, user: str) -> KafkaProducer:
    return KafkaProducer(bootstrap_servers=cluster.bootstrap, max_block_ms=10_000, retries=0,
                         **cluster.client_config(user))


def test_each_principal_writes_only_its_topics_and_the_pipeline_keeps_running(sasl_kafka, atlas_file,
                                                                              tmp_path):
    tag = f"acl{os.getpid()}"
    env = dict(os.environ, GRIDWATCH_BROKER=sasl_kafka.bootstrap, GRIDWATCH_TOPIC_PREFIX=f"{tag}.",
               GRIDWATCH_APP_ID=tag, GRIDWATCH_EMBEDDED="false", GRIDWATCH_REPLICATION_FACTOR="1")
    made = subprocess.run([sys.executable, "-m", "ops.cli", "topics", "create", "--acls", "--json"],
                          env={**env, **sasl_kafka.env("admin")}, cwd=REPO, capture_output=True,
                          text=True, timeout=120)
    assert made.returncode == 0, made.stderr
    assert orjson.loads(made.stdout)["acls"] > 100
    s = Settings.from_env({}, broker=sasl_kafka.bootstrap, topic_prefix=f"{tag}.", app_id=tag)

    now = int(time.time() * 1000)
    ping = make_event("gridwatch.ping.v1", "p1", iso_ms(now), {"device_id": "door-a", "kind": "door",
                                                                "value": 1, "observed_at": iso_ms(now)})
    command = make_event("gridwatch.command.v1", "c1", iso_ms(now), {
        "command_id": "c1", "incident_id": "g1~x~1", "action": "cancel", "actor": "town-head",
        "scope": "C", "at": iso_ms(now), "reason": "forged"})
    forged = {"commands.v1": command, "rosters.v1": {"data": {"name": "default"}},
              "escalations.v1": {"data": {"incident_id": "g1~x~1", "transition": "dispatched"}},
              "devices.v1": {"data": {"device_id": "evil"}}, "clock.v1": {"data": {"tick": 1}}}
    ingest = producer(sasl_kafka, "ingest")
    try:
        ingest.send(s.topic("reports.v1"), b"{}", key=b"r").get(20)  # allowed (the gate judges it)
        for short, value in forged.items():  # refused by the broker itself
            with pytest.raises(TopicAuthorizationFailedError):
                ingest.send(s.topic(short), orjson.dumps(value), key=b"x").get(20)
    finally:
        ingest.close()
    web = producer(sasl_kafka, "web")
    try:
        web.send(s.topic("commands.v1"), orjson.dumps(command), key=b"g1~x~1").get(20)
        with pytest.raises(TopicAuthorizationFailedError):
            web.send(s.topic("escalations.v1"), b"{}", key=b"x").get(20)
    finally:
        web.close()

    # the admin registers a device; a worker on the worker principal locates the ingest's ping
    admin = producer(sasl_kafka, "admin")
    door = {"device_id": "door-a", "kind": "door", "lon": 0.5, "lat": 0.5}
    admin.send(s.topic("devices.v1"), orjson.dumps(device_envelope(door, iso_ms(now))), key=b"door-a").get(20)
    admin.close()
    p = Pipeline(s, atlas_file, tmp_path, {**sasl_kafka.env("worker"), "GRIDWATCH_EMBEDDED": "false",
                                           "GRIDWATCH_APP_ID": tag, "GRIDWATCH_SESSION_TIMEOUT_S": "8"})
    worker = p.start_worker()
    try:
        ingest = producer(sasl_kafka, "ingest")
        ingest.send(s.topic("pings.v1"), orjson.dumps(ping), key=b"door-a", timestamp_ms=now).get(20)
        ingest.close()
        deadline = time.monotonic() + 120
        located: list = []
        while not located and time.monotonic() < deadline:
            located = read_all(sasl_kafka.bootstrap, [s.topic("located.v1")],
                               **sasl_kafka.client_config("admin"))
            time.sleep(1)
        log = Path(tmp_path / "worker.log").read_text()
        assert located, log[-3000:]
        assert orjson.loads(located[0].value)["data"]["grid_id"] == "g1"
        assert "TopicAuthorization" not in log and "GroupAuthorization" not in log, log[-3000:]
        assert worker.poll() is None  # still running
    finally:
        p.stop_worker(worker)
