"""Apache Kafka itself (KRaft) on loopback, started the way the embedded broker is.

`KafkaCluster` resolves ``org.apache.kafka:kafka_2.13`` and its dependencies with Maven into a
cache under ``var/kafka/<version>/libs`` (once; later starts are offline), formats KRaft storage,
starts N combined broker+controller nodes (the controller quorum is all of them) on free
loopback ports, waits until the cluster answers with every broker registered, and stops every
process on exit, Ctrl-C or SIGTERM. `kill(node)` and `restart(node)` are for fault tests.

`BROKER_CONFIG` is the one broker configuration: this runner, the test fixture and
``docker-compose.yml`` (as ``KAFKA_*`` variables, checked by tests/unit/ops/test_compose.py) all
take it from here; only node ids, ports, listeners and data dirs differ per place.
"""

from __future__ import annotations

import base64
import os
import shutil
import signal
import subprocess
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from pipeline.broker import free_port, wait_for_kafka
from pipeline.errors import BrokerUnavailable, ConfigError

KAFKA_VERSION = "4.1.1"
LOG4J_VERSION = "2.24.3"


def replication_settings(nodes: int) -> dict[str, str]:
    """Replication of Kafka's own topics and the defaults for a cluster of `nodes` brokers:
    RF min(3, nodes); min.insync.replicas RF-1 when RF >= 3 (one broker may be down and writes
    with acks=all still succeed), else 1."""
    rf = min(3, nodes)
    isr = rf - 1 if rf >= 3 else 1
    return {
        "offsets.topic.replication.factor": str(rf),
        "transaction.state.log.replication.factor": str(rf),
        "transaction.state.log.min.isr": str(isr),
        "share.coordinator.state.topic.replication.factor": str(rf),
        "share.coordinator.state.topic.min.isr": str(isr),
        "default.replication.factor": str(rf),
        "min.insync.replicas": str(isr),
    }


# The broker configuration every place shares (docker-compose.yml repeats it as KAFKA_* vars).
BROKER_CONFIG: dict[str, str] = {
    "process.roles": "broker,controller",
    "controller.listener.names": "CONTROLLER",
    "inter.broker.listener.name": "PLAINTEXT",
    "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
    "auto.create.topics.enable": "false",  # topics are declared (gridwatch topics create)
    "group.initial.rebalance.delay.ms": "0",  # workers join at once; faust rebalances itself
    "unclean.leader.election.enable": "false",  # never lose acknowledged records
    "log.message.timestamp.type": "CreateTime",  # event time travels with each record
    "message.max.bytes": str(4 << 20),  # GRIDWATCH_MAX_MESSAGE_BYTES x 4, DLQ records included
    # a producer cannot date a record more than an hour ahead of the broker's clock, so the
    # gate's "event time within GRIDWATCH_MAX_FUTURE_S of the record timestamp" cannot be
    # sidestepped by forging the timestamp too (a tick dated 2099 would freeze the clock)
    "log.message.timestamp.after.max.ms": "3600000",
}


COMPOSE_ADMIN_PASSWORD = "${GRIDWATCH_KAFKA_ADMIN_PASSWORD:?set the Kafka admin password}"


def compose_env(node_id: int, nodes: int, host: str) -> dict[str, str]:
    """The ``KAFKA_*`` environment of one broker of docker-compose.yml (apache/kafka image:
    ``.`` becomes ``_``, ``_`` becomes ``__`` and ``-`` becomes ``___``): BROKER_CONFIG with
    the same SASL/SCRAM listeners and ACL authorizer as `KafkaCluster(users=...)`."""
    cfg = {**BROKER_CONFIG, **replication_settings(nodes),
           **sasl_config(9092, 9093, COMPOSE_ADMIN_PASSWORD),
           "node.id": str(node_id),
           "controller.quorum.voters": ",".join(f"{i}@kafka{i}:9093" for i in range(1, nodes + 1)),
           "listeners": "SASL_PLAINTEXT://:9092,CONTROLLER://:9093",
           "advertised.listeners": f"SASL_PLAINTEXT://{host}:9092",
           "log.dirs": "/var/lib/kafka/data"}
    return {"KAFKA_" + k.upper().replace("_", "__").replace("-", "___").replace(".", "_"): v
            for k, v in cfg.items()}


POM = """<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>gridwatch</groupId><artifactId>kafka-runtime</artifactId><version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka_2.13</artifactId>
      <version>{kafka}</version></dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-core</artifactId>
      <version>{log4j}</version></dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-slf4j-impl</artifactId>
      <version>{log4j}</version></dependency>
  </dependencies>
</project>
"""

LOG4J2 = """status = error
appender.out.type = Console
appender.out.name = out
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = {level}
rootLogger.appenderRef.out.ref = out
logger.kafka.name = kafka
logger.kafka.level = {level}
logger.state.name = state.change.logger
logger.state.level = WARN
"""


def default_cache() -> Path:
    """Where the jars live: ``GRIDWATCH_KAFKA_CACHE`` or ``var/kafka`` of the working dir."""
    return Path(os.environ.get("GRIDWATCH_KAFKA_CACHE") or "var/kafka").resolve()


def resolve_jars(cache: Path | None = None, version: str = KAFKA_VERSION) -> Path:
    """The folder with Kafka's jars, fetched by Maven the first time; offline after that."""
    if shutil.which("java") is None:
        raise ConfigError("Apache Kafka needs Java 17 (java on PATH): install it, "
                          "or use the embedded broker")
    root = (cache or default_cache()) / version
    libs, stamp = root / "libs", root / "libs" / ".complete"
    if stamp.exists():
        return libs
    if shutil.which("mvn") is None:
        raise ConfigError("Apache Kafka's jars are fetched with Maven (mvn on PATH): install it, "
                          "or use the embedded broker")
    root.mkdir(parents=True, exist_ok=True)
    (root / "pom.xml").write_text(POM.format(kafka=version, log4j=LOG4J_VERSION))
    tmp = root / "libs.part"
    shutil.rmtree(tmp, ignore_errors=True)
    proc = subprocess.run(["mvn", "-q", "-B", "-f", str(root / "pom.xml"),
                           "dependency:copy-dependencies", f"-DoutputDirectory={tmp}",
                           "-DincludeScope=runtime"], capture_output=True, text=True,
                          stdin=subprocess.DEVNULL)
    if proc.returncode != 0:
        tail = (proc.stdout + proc.stderr).strip().splitlines()[-5:]
        raise BrokerUnavailable(f"Maven could not fetch Apache Kafka {version}: " + " | ".join(tail))
    (tmp / ".complete").write_text(version)
    shutil.rmtree(libs, ignore_errors=True)
    tmp.rename(libs)
    return libs


def sasl_config(port: int, controller_port: int, admin_password: str) -> dict[str, str]:
    """Broker settings for SASL/SCRAM-SHA-256 clients and ACL authorization (KRaft): clients and
    brokers on a SASL_PLAINTEXT listener (TLS in front in production: SASL_SSL), the controllers
    on their own loopback listener; ``admin`` is the super user; nothing without an ACL."""
    jaas = ("org.apache.kafka.common.security.scram.ScramLoginModule required "
            f'username="admin" password="{admin_password}";')
    return {"listeners": f"SASL_PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}",
            "advertised.listeners": f"SASL_PLAINTEXT://127.0.0.1:{port}",
            "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT",
            "inter.broker.listener.name": "SASL_PLAINTEXT",
            "sasl.enabled.mechanisms": "SCRAM-SHA-256",
            "sasl.mechanism.inter.broker.protocol": "SCRAM-SHA-256",
            "listener.name.sasl_plaintext.scram-sha-256.sasl.jaas.config": jaas,
            "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
            "super.users": "User:admin;User:ANONYMOUS",  # ANONYMOUS: the controller listener only
            "allow.everyone.if.no.acl.found": "false"}


def cluster_id() -> str:
    """A KRaft cluster id (a UUID in URL-safe base64, as `kafka-storage random-uuid` prints)."""
    return base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")


@dataclass
class Node:
    """One combined broker+controller process."""

    node_id: int
    port: int
    controller_port: int
    data_dir: Path
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


class KafkaCluster:
    """Context manager around N Apache Kafka KRaft nodes on loopback."""

    embedded = False

    def __init__(self, brokers: int = 3, workdir: str | Path | None = None,
                 cache: Path | None = None, heap_mb: int = 384, log_level: str = "WARN",
                 users: dict[str, str] | None = None) -> None:
        """With `users` (name -> password; ``admin`` required, the super user) the cluster
        authenticates clients with SASL/SCRAM-SHA-256 and authorizes them by ACL
        (StandardAuthorizer, nothing allowed without an ACL)."""
        if not 1 <= brokers <= 9:
            raise ConfigError(f"--brokers {brokers}: use 1 to 9")
        if users is not None and "admin" not in users:
            raise ConfigError("a SASL cluster needs an 'admin' user (its super user)")
        self.users = users
        self.workdir = Path(workdir or "var/kafka-cluster").resolve()
        self.cache, self.heap_mb, self.log_level = cache, heap_mb, log_level
        self.nodes = [Node(i, free_port(), free_port(), self.workdir / f"node{i}")
                      for i in range(1, brokers + 1)]
        self.libs: Path | None = None

    @property
    def bootstrap(self) -> str:
        return ",".join(n.address for n in self.nodes)

    def node_config(self, node: Node) -> dict[str, str]:
        voters = ",".join(f"{n.node_id}@127.0.0.1:{n.controller_port}" for n in self.nodes)
        config = {**BROKER_CONFIG, **replication_settings(len(self.nodes)),
                  "node.id": str(node.node_id), "controller.quorum.voters": voters,
                  "listeners": f"PLAINTEXT://127.0.0.1:{node.port},CONTROLLER://127.0.0.1:{node.controller_port}",
                  "advertised.listeners": f"PLAINTEXT://127.0.0.1:{node.port}",
                  "log.dirs": str(node.data_dir / "log")}
        if self.users is not None:
            config.update(sasl_config(node.port, node.controller_port, self.users["admin"]))
        return config

    def client_config(self, user: str = "admin") -> dict[str, str]:
        """kafka-python settings for one of the cluster's users ({} without SASL)."""
        if self.users is None:
            return {}
        return {"security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": "SCRAM-SHA-256",
                "sasl_plain_username": user, "sasl_plain_password": self.users[user]}

    def env(self, user: str = "admin") -> dict[str, str]:
        """GRIDWATCH_* settings for a gridwatch process connecting as `user`."""
        if self.users is None:
            return {}
        return {"GRIDWATCH_SECURITY_PROTOCOL": "sasl_plaintext",
                "GRIDWATCH_SASL_MECHANISM": "SCRAM-SHA-256", "GRIDWATCH_SASL_USERNAME": user,
                "GRIDWATCH_SASL_PASSWORD": self.users[user]}

    def _java(self, main: str, *args: str) -> list[str]:
        assert self.libs is not None
        log4j = self.workdir / "log4j2.properties"
        return ["java", "-Xms64m", f"-Xmx{self.heap_mb}m", "-XX:+UseSerialGC",
                "-XX:TieredStopAtLevel=1", "-Djava.awt.headless=true",
                f"-Dlog4j2.configurationFile={log4j}", "-cp", f"{self.libs}/*", main, *args]

    def _format(self, cid: str) -> None:
        for node in self.nodes:
            node.data_dir.mkdir(parents=True, exist_ok=True)
            props = node.data_dir / "server.properties"
            props.write_text("".join(f"{k}={v}\n" for k, v in self.node_config(node).items()))
            if (node.data_dir / "log" / "meta.properties").exists():
                continue
            scram = [a for name, pw in (self.users or {}).items()
                     for a in ("--add-scram", f"SCRAM-SHA-256=[name={name},password={pw}]")]
            proc = subprocess.run(self._java("kafka.tools.StorageTool", "format", "-t", cid,
                                             "-c", str(props), *scram),
                                  capture_output=True, text=True, stdin=subprocess.DEVNULL)
            if proc.returncode != 0:
                raise BrokerUnavailable(f"kafka-storage format failed for node {node.node_id}: "
                                        + (proc.stdout + proc.stderr).strip()[-400:])

    def _spawn(self, node: Node) -> None:
        log = open(node.data_dir / "kafka.log", "ab")
        try:
            node.proc = subprocess.Popen(
                self._java("kafka.Kafka", str(node.data_dir / "server.properties")),
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True)
        finally:
            log.close()

    def start(self, timeout_s: float = 120.0) -> KafkaCluster:
        """Fetch the jars if needed, format, start every node, wait until all are registered."""
        self.libs = resolve_jars(self.cache)
        self.workdir.mkdir(parents=True, exist_ok=True)
        (self.workdir / "log4j2.properties").write_text(LOG4J2.format(level=self.log_level))
        try:
            self._format(cluster_id())
            for node in self.nodes:
                self._spawn(node)
            self.wait_ready(timeout_s)
        except BaseException:
            self.stop()
            raise
        return self

    def wait_ready(self, timeout_s: float = 120.0, nodes: int | None = None) -> None:
        """Until `nodes` (default: all) brokers are in the cluster metadata."""
        from kafka import KafkaAdminClient

        want = len(self.nodes) if nodes is None else nodes
        deadline = time.monotonic() + timeout_s
        wait_for_kafka(self.bootstrap, timeout_s, **self.client_config())
        seen = 0
        while time.monotonic() < deadline:
            dead = [n.node_id for n in self.nodes if n.proc is not None and n.proc.poll() is not None
                    and n.proc.returncode not in (-9, -15)]
            if dead:
                raise BrokerUnavailable(f"Kafka node(s) {dead} exited: see {self.workdir}/node*/kafka.log")
            try:
                admin = KafkaAdminClient(bootstrap_servers=self.bootstrap, request_timeout_ms=5000,
                                         **self.client_config())
                try:
                    brokers = admin.describe_cluster().get("brokers") or []
                    seen = sum(1 for b in brokers if not b.get("is_fenced"))
                finally:
                    admin.close()
                if seen >= want:
                    return
            except Exception:
                pass
            time.sleep(0.3)
        raise BrokerUnavailable(f"only {seen} of {want} Kafka brokers registered within {timeout_s:.0f}s")

    def kill(self, node_id: int, sig: int = signal.SIGKILL) -> None:
        """Send `sig` to one node (fault tests) and wait for it to exit."""
        node = self.nodes[node_id - 1]
        if node.alive:
            assert node.proc is not None
            os.killpg(node.proc.pid, sig)
            node.proc.wait(30)

    def restart(self, node_id: int, timeout_s: float = 120.0) -> None:
        """Start a stopped node again with its data and ports; wait until it is registered."""
        node = self.nodes[node_id - 1]
        if not node.alive:
            self._spawn(node)
        self.wait_ready(timeout_s)

    def stop(self) -> None:
        """SIGTERM every node (a controlled shutdown), SIGKILL what is left after 20 s."""
        live = [n for n in self.nodes if n.alive]
        for n in live:
            assert n.proc is not None
            try:
                os.killpg(n.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + 20
        for n in live:
            assert n.proc is not None
            try:
                n.proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(n.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                n.proc.wait(10)

    def __enter__(self) -> KafkaCluster:
        return self.start()

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
