"""Integration fixtures: one embedded Tansu broker per session, real worker processes.

Each test group uses its own topic prefix so groups never see each other's records.
"""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import orjson
import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition

from pipeline.envelope import validator
from pipeline.settings import Settings
from topics.admin import create

REPO = Path(__file__).resolve().parents[2]
_prefixes = itertools.count(1)


def engine_env(settings: Settings) -> dict[str, str]:
    """Worker environment for the test's engine. On Apache Kafka the group session timeout is
    8 s (shipped: 20 s) so that tests killing a worker do not wait for the default; the live
    clock tests run the shipped value."""
    if settings.embedded:
        return {"GRIDWATCH_EMBEDDED": "true"}
    return {"GRIDWATCH_EMBEDDED": "false", "GRIDWATCH_SESSION_TIMEOUT_S": "8"}


@dataclass
class Pipeline:
    """A topic namespace on the session broker, with helpers to run workers and move data."""

    settings: Settings
    atlas: str
    workdir: Path

    extra_env: dict[str, str] | None = None

    def env(self) -> dict[str, str]:
        return dict(os.environ, **{**engine_env(self.settings), **(self.extra_env or {})},
                    GRIDWATCH_BROKER=self.settings.broker,
                    GRIDWATCH_TOPIC_PREFIX=self.settings.topic_prefix,
                    GRIDWATCH_ATLAS=self.atlas, GRIDWATCH_DATA_DIR=str(self.workdir / "data"),
                    GRIDWATCH_BATCH_WITHIN_S="0.02")

    def start_worker(self, name: str = "worker") -> subprocess.Popen:
        log = open(self.workdir / f"{name}.log", "ab")
        return subprocess.Popen([sys.executable, "-m", "ops.cli", "worker"], env=self.env(),
                                stdout=log, stderr=subprocess.STDOUT, cwd=REPO,
                                start_new_session=True)

    @staticmethod
    def stop_worker(proc: subprocess.Popen, sig: int = signal.SIGTERM) -> None:
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)

    def produce(self, short: str, records: list[tuple],
                timestamp_ms: int | None = None) -> None:
        """Write (key, value) or (key, value, timestamp_ms) records."""
        p = KafkaProducer(bootstrap_servers=self.settings.broker, linger_ms=2)
        for key, value, *ts in records:
            p.send(self.settings.topic(short), key=key, value=value,
                   timestamp_ms=ts[0] if ts else timestamp_ms)
        p.flush()
        p.close()

    def collect(self, short: str, n: int, timeout_s: float = 60.0) -> list:
        """At least `n` records from the start of a topic, or fail after the timeout."""
        got = self.collect_upto(short, n, timeout_s)
        assert len(got) >= n, f"only {len(got)} of {n} records on {short} after {timeout_s}s"
        return got

    def collect_upto(self, short: str, n: int, timeout_s: float) -> list:
        """Up to `n` records from the start of a topic within the timeout (no failure)."""
        deadline = time.monotonic() + timeout_s
        while True:
            got = read_all(self.settings.broker, [self.settings.topic(short)])
            if len(got) >= n or time.monotonic() > deadline:
                return got[:n] if len(got) > n else got
            time.sleep(0.2)

    @staticmethod
    def values(msgs: list) -> list[dict]:
        return [orjson.loads(m.value) for m in msgs]


def read_all(bootstrap: str, topics: list[str], quiet_s: float = 0.3, cap_s: float = 30,
             **client: str) -> list:
    """Every record of `topics` now: a fresh consumer assigned every partition from the start,
    read to the end offsets (and `quiet_s` beyond: the embedded broker's end offset can trail)."""
    c = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None, **client)
    got: list = []
    try:
        tps = [TopicPartition(t, p) for t in topics for p in sorted(c.partitions_for_topic(t) or ())]
        if not tps:
            return got
        c.assign(tps)
        c.seek_to_beginning(*tps)
        ends = c.end_offsets(tps)
        start = last = time.monotonic()
        while time.monotonic() - start < cap_s:
            batch = c.poll(timeout_ms=100)
            for records in batch.values():
                got += records
            if batch:
                last = time.monotonic()
            if all(c.position(tp) >= ends[tp] for tp in tps) and time.monotonic() - last >= quiet_s:
                break
    finally:
        c.close()
    for m in got:  # every DLQ record any test reads matches the schema integrators are given
        if m.topic.endswith("dlq.v1") and m.value is not None:
            validator("dlq.json")(orjson.loads(m.value)["data"])
    return got


def read_until_quiet(bootstrap: str, topics: list[str], quiet_s: float,
                     timeout_s: float = 120) -> list:
    """Every record of `topics` from the start, once no new one has arrived for `quiet_s` (or
    at the timeout), in (topic, partition, offset) order."""
    got: list = []
    changed = time.monotonic()
    deadline = changed + timeout_s
    while time.monotonic() - changed < quiet_s and time.monotonic() < deadline:
        now = read_all(bootstrap, topics, quiet_s=min(quiet_s, 0.3))
        if len(now) != len(got):
            got, changed = now, time.monotonic()
        else:
            time.sleep(0.2)
    return sorted(got, key=lambda m: (m.topic, m.partition, m.offset))


def committed(bootstrap: str, group: str, topic: str) -> int:
    """Records of `topic` the consumer group has committed (summed over partitions)."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        offsets = admin.list_group_offsets(group).get(group) or {}
    finally:
        admin.close()
    return sum(m.offset for tp, m in offsets.items() if tp.topic == topic and m.offset > 0)


def wait_committed(bootstrap: str, group: str, topic: str, n: int, what: str,
                   timeout_s: float = 60) -> None:
    """Wait until `group` has committed `n` records of `topic` (processed, outputs sent)."""
    deadline = time.monotonic() + timeout_s
    while committed(bootstrap, group, topic) < n:
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


@pytest.fixture
def make_pipeline(broker, atlas_file, tmp_path):
    def make(create_topics: bool = True) -> Pipeline:
        prefix = f"it{next(_prefixes)}.{os.getpid()}."
        s = Settings.from_env({}, broker=broker.bootstrap, topic_prefix=prefix,
                              embedded=broker.embedded)
        if create_topics:
            create(s)
        return Pipeline(s, atlas_file, tmp_path)
    return make
