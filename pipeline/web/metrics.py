"""/metrics in Prometheus text format (prometheus-client), one registry per web process.

- ``gridwatch_topic_records{topic}``: records written to each registry topic (end offsets;
  input topics count events in, output topics events out); refreshed at most every 10 s
- ``gridwatch_consumer_lag{group,topic}``: each gridwatch consumer group's lag
- ``gridwatch_dlq_records_total{code}``: DLQ records by error code
- ``gridwatch_open_incidents{kind,level,severity}``, ``gridwatch_sla_breaches_total{kind,deadline}``
- ``gridwatch_stream_latency_seconds``: an output record's Kafka timestamp to its push on the
  live stream (histogram); ``gridwatch_http_request_seconds{route,status}`` (histogram)
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily


class _BoardCollector:
    """Figures read off the board and the cached broker figures at scrape time."""

    def __init__(self) -> None:
        self.board: Any = None
        self.offsets: dict[str, int] = {}
        self.lag: dict[tuple[str, str], int] = {}

    def collect(self) -> Any:
        b = self.board
        yield _family(GaugeMetricFamily, "gridwatch_topic_records",
                      "Records written to a topic (end offsets).", ["topic"],
                      {(t,): n for t, n in self.offsets.items()})
        yield _family(GaugeMetricFamily, "gridwatch_consumer_lag", "Records a consumer group is behind.",
                      ["group", "topic"], self.lag)
        if b is None:
            return
        yield _family(CounterMetricFamily, "gridwatch_dlq_records", "DLQ records by error code.", ["code"],
                      {(c,): n for c, n in b.dlq.items()})
        yield _family(CounterMetricFamily, "gridwatch_web_records", "Records the web board has read.",
                      ["topic"], {(t,): n for t, n in b.records.items()})
        yield _family(GaugeMetricFamily, "gridwatch_open_incidents", "Open incidents.",
                      ["kind", "level", "severity"], b.open_counts())
        yield _family(CounterMetricFamily, "gridwatch_sla_breaches",
                      "SLA breaches (acknowledge or resolve deadline).", ["kind", "deadline"], b.breaches)


def _family(cls: Any, name: str, doc: str, labels: list[str], values: Mapping[tuple, float]) -> Any:
    """A metric family with one sample per label tuple, in a stable order."""
    fam = cls(name, doc, labels=labels)
    for key, n in sorted(values.items()):
        fam.add_metric(list(key), n)
    return fam


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self._board = _BoardCollector()
        self.registry.register(self._board)  # type: ignore[arg-type]
        self.stream_latency = Histogram(
            "gridwatch_stream_latency_seconds", "Output record timestamp to its push on the live stream.",
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10), registry=self.registry)
        self.request_seconds = Histogram(
            "gridwatch_http_request_seconds", "HTTP request handling time.", ["route", "status"],
            buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5), registry=self.registry)
        self.stream_clients = Gauge("gridwatch_stream_clients", "Live-stream clients connected.",
                                    registry=self.registry)
        self._fetched = 0.0

    def http(self, route: str, status: int, seconds: float) -> None:
        self.request_seconds.labels(route, str(status)).observe(seconds)

    async def render(self, board: Any, ctx: Any) -> tuple[bytes, str]:
        self._board.board = board
        if time.monotonic() - self._fetched > 10:
            self._fetched = time.monotonic()
            try:
                self._board.offsets, self._board.lag = await asyncio.to_thread(_broker_figures, ctx.settings)
            except Exception:  # the scrape still answers with what the board knows
                pass
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


def _broker_figures(settings: Any) -> tuple[dict[str, int], dict[tuple[str, str], int]]:
    from ops.lag import lag, topic_partitions

    offsets: dict[str, int] = {}
    for r in topic_partitions(settings):
        offsets[r["topic"]] = offsets.get(r["topic"], 0) + r["end"]
    lags: dict[tuple[str, str], int] = {}
    for r in lag(settings):
        key = (r["group"], r["topic"])
        lags[key] = lags.get(key, 0) + r["lag"]
    return offsets, lags
