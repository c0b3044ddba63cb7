"""The faust application: `create_app(settings)` builds it; agents only move messages.

Concerns:
- ingest: ``reports.v1`` and ``pings.v1`` -> `IngestCore` -> ``located.v1`` (keyed by grid id),
  ``unlocated.v1``, ``dlq.v1``, vectorised per batch. Engine ``batch`` (default,
  pipeline.batch_ingest) or ``agent`` (faust agents with ``stream.take_events``); a batch size
  of 1 with the agent engine is the naive one-event-at-a-time baseline of the benchmark.
- registry: followers of the compacted ``devices.v1`` and ``subjects.v1`` topics.
- detectors: ``located.v1`` + ``clock.v1`` -> ``alerts.v1`` (pipeline.detect_agents), the
  zone-level agent on ``levels.v1`` and, in live mode, the clock ticker of the partitions each worker owns.
- incidents: ``alerts.v1`` + routed commands + ``clock.v1`` -> ``escalations.v1``,
  ``incidents.v1``, KPIs (pipeline.incident_agents).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import faust
from aiokafka import AIOKafkaProducer
from faust.transport.drivers import TRANSPORTS

from geo.layers import load_atlas
from geo.locate import Locator
from pipeline import detect_agents, incident_agents
from pipeline.batch_ingest import BatchIngest
from pipeline.detect.host import DetectorHost
from pipeline.detect.wiring import build_host, subject_follower
from pipeline.devices import DeviceFollower, load_devices_file
from pipeline.envelope import STRUCTURED
from pipeline.errors import ConfigError
from pipeline.gate import DlqPolicy
from pipeline.health import write_heartbeat
from pipeline.incident.wiring import build_incident_host
from pipeline.ingest import IngestCore, RawRecord, redrive_count
from pipeline.logs import get_logger, log_rejections
from pipeline.settings import Settings, aiokafka_config, durable_producer
from pipeline.sink import BatchSink


@dataclass
class Runtime:
    """What the agents share inside one worker process."""

    settings: Settings
    core: IngestCore
    follower: DeviceFollower
    host: DetectorHost


def _credentials(settings: Settings) -> Any:
    if settings.security_protocol.startswith("SASL"):
        ssl_context = None
        if settings.security_protocol == "SASL_SSL":
            import ssl

            ssl_context = ssl.create_default_context(cafile=settings.ssl_cafile)
        return faust.SASLCredentials(username=settings.sasl_username,
                                     password=settings.sasl_password,
                                     mechanism=settings.sasl_mechanism, ssl_context=ssl_context)
    if settings.security_protocol == "SSL":
        import ssl

        return faust.SSLCredentials(ssl.create_default_context(cafile=settings.ssl_cafile))
    return None


def quiet_client_logs() -> None:
    """Kafka clients log every record at DEBUG; keep them at WARNING on the hot path."""
    for name in ("aiokafka", "kafka", "faust", "mode"):
        logging.getLogger(name).setLevel(logging.WARNING)


def build_core(settings: Settings) -> IngestCore:
    """The ingest core with the atlas and any devices file loaded."""
    if not settings.atlas:
        raise ConfigError("GRIDWATCH_ATLAS is not set: point it at an atlas file "
                          "(gridwatch grids generate -o grids.geojson)")
    locator = Locator(load_atlas(settings.atlas), snap_m=settings.snap_m)
    devices: dict[str, dict] = {}
    if settings.devices_file:
        devices.update({d["device_id"]: d for d in load_devices_file(settings.devices_file)})
    return IngestCore(locator, settings, devices)


def create_app(settings: Settings, core: IngestCore | None = None) -> faust.App:
    """Build the gridwatch faust app for these settings."""
    session = settings.group_session_timeout_s
    timeouts: dict[str, Any] = dict(broker_session_timeout=session,
                                    broker_heartbeat_interval=max(0.5, session / 6))
    if settings.embedded:  # Tansu holds a group join until the rebalance timeout
        timeouts.update(broker_rebalance_timeout=6.0, broker_max_poll_interval=10.0)
    TRANSPORTS.aliases.setdefault("gridwatch", "pipeline.kafka_transport:Transport")
    Path(settings.data_dir, "faust").mkdir(parents=True, exist_ok=True)
    app = faust.App(
        settings.app_id,
        # gridwatch://: faust's aiokafka driver with idempotent producers (not on Tansu)
        broker=[f"{'kafka' if settings.embedded else 'gridwatch'}://{b}"
                for b in settings.broker.split(",")],
        broker_credentials=_credentials(settings),
        store="memory://",
        topic_allow_declare=False,
        topic_disable_leader=True,
        consumer_auto_offset_reset="earliest",
        web_enabled=False,
        producer_linger_ms=5,
        producer_acks=-1,
        producer_max_request_size=max(1_048_576, settings.max_message_bytes * 4),
        stream_buffer_maxsize=max(4096, settings.batch_size * 2),
        broker_commit_every=settings.batch_size,
        broker_commit_interval=1.0,
        datadir=f"{settings.data_dir}/faust",
        **timeouts,
    )
    core = core or build_core(settings)
    follower = DeviceFollower(settings.topic("devices.v1"), aiokafka_config(settings),
                              core.devices, settings.max_message_bytes)  # type: ignore[arg-type]
    host = build_host(settings)
    subjects = subject_follower(settings, aiokafka_config(settings), host)
    runtime = Runtime(settings, core, follower, host)
    app.gridwatch = runtime  # type: ignore[attr-defined]
    log = get_logger(component="ingest")
    out_names = {short: settings.topic(short)
                 for short in ("located.v1", "unlocated.v1", "dlq.v1")}

    sink_box: dict[str, BatchSink] = {}

    async def get_sink() -> BatchSink:
        if "sink" not in sink_box:
            producer = AIOKafkaProducer(**aiokafka_config(settings), **durable_producer(settings),
                                        linger_ms=5,
                                        max_batch_size=1 << 20,
                                        max_request_size=max(1 << 21, settings.max_message_bytes * 4))
            await producer.start()
            sink_box["sink"] = BatchSink(producer, out_names,
                                         {k: settings.partitions for k in out_names})
        return sink_box["sink"]

    async def ingest(stream: Any, short: str) -> None:
        quiet_client_logs()
        await follower.ready.wait()
        sink = await get_sink()
        async for events in stream.take_events(settings.batch_size, settings.batch_within_s):
            records = [RawRecord(short, e.message.partition, e.message.offset,
                                 int(e.message.timestamp * 1000) if e.message.timestamp else None,
                                 e.message.key, e.message.value, redrive_count(e.message.headers),
                                 e.message.headers or ())
                       for e in events]
            outputs = core.process(records)
            if settings.batch_size == 1:  # the naive baseline: one awaited send per record
                for o in outputs:
                    await (await sink.producer.send(out_names[o.topic], o.value, key=o.key,
                                                    timestamp_ms=o.timestamp_ms,
                                                    headers=STRUCTURED))
            else:
                await sink.send(outputs)  # acknowledged before these offsets are committed
            log_rejections(log, outputs)

    if settings.ingest_engine == "batch":
        @app.task
        async def batch_ingest() -> None:
            quiet_client_logs()
            await follower.ready.wait()
            await BatchIngest(settings, core, await get_sink(), follower,
                              aiokafka_config(settings)).run()

    for short in ("reports.v1", "pings.v1") if settings.ingest_engine == "agent" else ():
        topic = app.topic(settings.topic(short), key_serializer="raw", value_serializer="raw",
                          partitions=settings.partitions)

        async def agent(stream: Any, _short: str = short) -> None:
            await ingest(stream, _short)

        agent.__name__ = f"ingest_{short.split('.')[0]}"
        app.agent(topic, name=f"gridwatch.ingest.{short}")(agent)

    detect_agents.register(app, settings, host, subjects)
    incident_agents.register(app, settings, build_incident_host(
        settings, host.cfg.clock.allowed_lateness, core.locator, host.subjects))

    async def send_dlq(key: bytes, value: bytes) -> None:
        await (await get_sink()).producer.send_and_wait(out_names["dlq.v1"], value, key=key,
                                                        headers=STRUCTURED)

    registry_dlq = DlqPolicy(send_dlq, settings.max_message_bytes, log)
    follower.dlq = subjects.dlq = registry_dlq

    @app.task
    async def follow_devices() -> None:
        await follower.run()

    @app.task
    async def follow_subjects() -> None:
        await subjects.run()

    @app.on_before_shutdown.connect
    async def close_sink(app: faust.App, **_: Any) -> None:
        if "sink" in sink_box:
            await sink_box["sink"].producer.stop()

    @app.timer(interval=10.0)
    async def report_stats() -> None:
        s = core.stats
        log.info("stats", inputs=s.inputs, located=s.located, unlocated=s.unlocated, dlq=s.dlq,
                 devices=len(core.devices), devices_rejected=follower.rejected)

    @app.timer(interval=5.0)
    async def heartbeat() -> None:
        parts = sorted({tp.partition for tp in app.consumer.assignment()})
        write_heartbeat(settings.data_dir, parts)

    return app


def run_worker(settings: Settings) -> None:
    """Check topics, then run one faust worker until SIGINT/SIGTERM."""
    from topics.admin import check

    check(settings)
    app = create_app(settings)
    from pipeline.logs import logging_config
    from pipeline.telemetry import start_metrics_server

    start_metrics_server(settings, "worker")  # the default registry: pipeline/telemetry.py

    level = "WARNING" if settings.log_level != "debug" else "INFO"
    # faust's worker replaces the root handler: hand it ours, so faust's, aiokafka's and
    # aiohttp's lines pass the same redaction as gridwatch's own (`pipeline.logs`)
    worker = faust.Worker(app, loglevel=level, quiet=True, redirect_stdouts=False,
                          logging_config=logging_config(getattr(logging, level)))
    worker.execute_from_commandline()
