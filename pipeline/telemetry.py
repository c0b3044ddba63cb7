"""Prometheus metrics of the worker, the notifier and the archiver (prometheus-client, default
registry), served on ``GRIDWATCH_METRICS_PORT`` by `start_metrics_server`. The web server keeps
its own registry and ``/metrics`` route (`pipeline.web.metrics`). docs/operations.md lists them.

Names follow the Prometheus conventions: ``gridwatch_`` prefix, snake_case, ``_total`` on
counters (prometheus-client appends it), base units (``_seconds``).
"""

from __future__ import annotations

import time
import weakref
from typing import Any

from prometheus_client import REGISTRY, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from pipeline.logs import get_logger

# worker ------------------------------------------------------------------------------------
DLQ_RECORDS = Counter("gridwatch_dlq_records", "Records written to dlq.v1 by a stage, by error code.",
                      ["stage", "code"])
DETECTOR_EVENTS = Counter("gridwatch_detector_events", "Located events applied by the detectors.")
ALERTS = Counter("gridwatch_alerts", "Alert records the detectors wrote to alerts.v1.", ["kind"])
PARTITION_REBUILDS = Counter("gridwatch_partition_rebuilds",
                             "Partition state rebuilt from the committed history.", ["stage"])
PARTITION_REBUILD_SECONDS = Histogram(
    "gridwatch_partition_rebuild_seconds", "Time to rebuild one partition's state.", ["stage"],
    buckets=(0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600))
ESCALATIONS = Counter("gridwatch_escalations", "Incident transitions written to escalations.v1.",
                      ["transition"])
SLA_BREACHES = Counter("gridwatch_sla_breaches", "SLA breaches (acknowledge or resolve deadline).",
                       ["deadline"])
# notifier ----------------------------------------------------------------------------------
DELIVERIES = Counter("gridwatch_deliveries", "Delivery attempts recorded on notifications.v1.",
                     ["channel", "outcome"])
DELIVERY_SECONDS = Histogram("gridwatch_delivery_seconds", "Time of one send on a channel.", ["channel"],
                             buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))
ENDPOINT_CIRCUIT_OPEN = Gauge("gridwatch_endpoint_circuit_open", "Endpoints whose circuit breaker is open.")
ENDPOINT_QUEUE_DEPTH = Gauge("gridwatch_endpoint_queue_depth", "Messages waiting for their endpoint.")
# archiver ----------------------------------------------------------------------------------
ARCHIVED_RECORDS = Counter("gridwatch_archived_records", "Records written to the archive.", ["topic"])

_INGEST_FIELDS = (("inputs", "in"), ("located", "located.v1"), ("unlocated", "unlocated.v1"),
                  ("dlq", "dlq.v1"))


class _Sampled:
    """Figures read at scrape time: the ingest counters (IngestStats) and the clock tick age."""

    def __init__(self) -> None:
        self.ingest: dict[int, weakref.ref] = {}  # id -> IngestStats (a dataclass: unhashable)
        self.ticks: dict[int, int] = {}  # clock.v1 partition -> newest tick applied (epoch ms)

    def collect(self) -> Any:
        rec = CounterMetricFamily("gridwatch_records", "Records a stage read (topic=in) or wrote.",
                                  labels=["stage", "topic"])
        for attr, topic in _INGEST_FIELDS:
            live = [s for s in (r() for r in list(self.ingest.values())) if s is not None]
            rec.add_metric(["ingest", topic], sum(getattr(s, attr) for s in live))
        yield rec
        age = GaugeMetricFamily("gridwatch_clock_tick_age_seconds",
                                "Wall time since the newest clock tick the detectors applied.",
                                labels=["partition"])
        now = time.time() * 1000
        for p, tick in sorted(self.ticks.items()):
            age.add_metric([str(p)], max(0.0, (now - tick) / 1000))
        yield age


_SAMPLED = _Sampled()
REGISTRY.register(_SAMPLED)  # type: ignore[arg-type]


def track_ingest(stats: Any) -> None:
    """Export an IngestStats as ``gridwatch_records_total{stage="ingest"}`` (read at scrape)."""
    key = id(stats)
    _SAMPLED.ingest[key] = weakref.ref(stats, lambda _ref: _SAMPLED.ingest.pop(key, None))


def tick_applied(partition: int, tick_ms: int) -> None:
    """The detectors applied this tick on this partition (ticks never go back)."""
    if tick_ms > _SAMPLED.ticks.get(partition, 0):
        _SAMPLED.ticks[partition] = tick_ms


def forget_partition(partition: int) -> None:
    """A revoked partition: its new owner reports its tick age."""
    _SAMPLED.ticks.pop(partition, None)


def watch_notifier(notifier: Any) -> None:
    """Open breakers and queued messages of this notifier, read at scrape time."""
    ref = weakref.ref(notifier)

    def circuits() -> float:
        n, now = ref(), time.monotonic()
        return float(sum(not b.allow(now) for b in n.breakers.values())) if n else 0.0

    def depth() -> float:
        n = ref()
        return float(sum(n.queues.depth().values())) if n else 0.0

    ENDPOINT_CIRCUIT_OPEN.set_function(circuits)
    ENDPOINT_QUEUE_DEPTH.set_function(depth)


def start_metrics_server(settings: Any, process: str) -> Any:
    """Serve the default registry on GRIDWATCH_METRICS_HOST:GRIDWATCH_METRICS_PORT; None when
    no port is set or the port cannot be bound (a warning: the process goes on without it)."""
    if not settings.metrics_port:
        return None
    from prometheus_client import start_http_server

    log = get_logger(component="telemetry")
    try:
        server, _thread = start_http_server(settings.metrics_port, addr=settings.metrics_host)
    except Exception as exc:  # OSError (in use, no permission), gaierror (bad host)
        log.warning("metrics_server_failed", process=process, host=settings.metrics_host,
                    port=settings.metrics_port, error=f"{type(exc).__name__}: {exc}")
        return None
    log.info("metrics_server", process=process, host=settings.metrics_host, port=settings.metrics_port)
    return server
