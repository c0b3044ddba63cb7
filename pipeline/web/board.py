"""The command center's board (一屏观全域): current incidents, KPIs, recent reports and
escalations, kept from the output topics, and the live stream's fan-out.

`Board.apply` is pure (a record in, events to publish out) and tested without Kafka;
`BoardFollower` reads the topics with aiokafka (no consumer group: every web process has the
whole picture) and marks the board ready once it has read what was there at start. The
compacted topics (incidents, KPIs) are read from their beginning; the history topics
(`HISTORY`: located reports, escalations, DLQ) only from their last ``backlog`` records per
partition, so a web process starts in seconds whatever the retention.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any

import orjson

from pipeline.incident.lifecycle import OPEN_STATES
from pipeline.web.auth import Principal

COALESCED = "__coalesced__"  # a marker in a subscriber's queue: send its `latest` states now
FOLLOWED = ("incidents.v1", "escalations.v1", "kpis.v1", "located.v1", "dlq.v1")
HISTORY = frozenset({"escalations.v1", "located.v1", "dlq.v1"})
TIMELINE = 100
LEVEL_RANK = {"grid_worker": 0, "grid_leader": 1, "community": 2, "town": 3, "district": 4, "city": 5}
SEVERITY_RANK = {"low": 0, "blue": 0, "medium": 1, "yellow": 1, "high": 2, "orange": 2,
                 "critical": 3, "red": 3}


@dataclass(eq=False)  # identity: each client is its own subscriber
class Subscriber:
    """One live-stream client: what it may see, and its queue (bounded: a slow client is cut)."""

    principal: Principal
    queue: asyncio.Queue = field(default_factory=lambda: asyncio.Queue(maxsize=1000))
    dropped: bool = False
    #: incident states waiting while the client is behind: the newest state of each wins
    latest: dict = field(default_factory=dict)


@dataclass
class Board:
    incidents: dict[str, dict] = field(default_factory=dict)
    kpis: dict[str, dict] = field(default_factory=dict)
    reports: deque = field(default_factory=lambda: deque(maxlen=500))
    escalations: deque = field(default_factory=lambda: deque(maxlen=1000))
    #: per incident: its last TIMELINE escalations (an incident's detail); dropped with it
    timelines: dict[str, deque] = field(default_factory=dict)
    records: Counter = field(default_factory=Counter)  # per topic
    dlq: Counter = field(default_factory=Counter)  # per code
    breaches: Counter = field(default_factory=Counter)  # (kind, which deadline)
    bad_records: int = 0
    subscribers: set = field(default_factory=set)
    ready: bool = False

    def apply(self, topic: str, value: bytes | None,
              key: bytes | None = None) -> list[tuple[str, dict, list]]:
        """One record of a followed topic -> [(event name, data, grid path)] for the stream."""
        self.records[topic] += 1
        if value is None:  # a tombstone: the worker forgot an ended incident
            if topic != "incidents.v1" or not key:
                return []
            iid = key.decode(errors="replace")
            self.timelines.pop(iid, None)
            gone = self.incidents.pop(iid, None)
            if not gone:
                return []
            return [("incident_removed", {"incident_id": gone["incident_id"]}, gone.get("path") or [])]
        if topic == "located.v1" and b'"source_type":"report"' not in value:
            return []  # pings: counted, not kept
        try:
            doc = orjson.loads(value)
            data = doc["data"]
            return self._apply(topic, doc, data)
        except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError):
            self.bad_records += 1
            return []

    def _apply(self, topic: str, doc: dict, data: dict) -> list[tuple[str, dict, list]]:
        if topic == "incidents.v1":
            self.incidents[data["incident_id"]] = data
            return [("incident", data, data.get("path") or [])]
        if topic == "escalations.v1":
            self.escalations.append(data)
            iid = str(data.get("incident_id"))
            line = self.timelines.get(iid)
            if line is None:
                line = self.timelines[iid] = deque(maxlen=TIMELINE)
            line.append(data)
            if data.get("transition") == "breach":
                self.breaches[(data.get("kind") or "-", data.get("reason") or "-")] += 1
            return [("escalation", data, data.get("path") or [])]
        if topic == "kpis.v1":
            self.kpis[data["unit"]] = data
            return [("kpi", data, [data["unit"]])]
        if topic == "dlq.v1":
            self.dlq[str(data.get("code"))] += 1
            return []
        inp = data.get("input") or {}
        report = {"report_id": inp.get("report_id"), "grid_id": data.get("grid_id"),
                  "path": data.get("path") or [], "category": inp.get("category"),
                  "severity": inp.get("severity"), "text": inp.get("text", ""),
                  "observed_at": data.get("observed_at")}
        self.reports.append(report)
        return [("report", report, report["path"])]

    # -- queries -------------------------------------------------------------------------
    def incidents_for(self, who: Principal, unit: str | None = None, status: str | None = None,
                      level: str | None = None, kind: str | None = None, since: str | None = None,
                      until: str | None = None, limit: int = 200, category: str | None = None,
                      severity: str | None = None) -> list[dict]:
        """Incidents the principal may see, newest first, filtered."""
        out = []
        exact = {k: v for k, v in (("level", level), ("kind", kind), ("category", category),
                                   ("severity", severity)) if v}
        for inc in self.incidents.values():
            path = inc.get("path") or []
            if not who.may_see(path) or (unit and unit not in path):
                continue
            if status == "open" and inc.get("state") not in OPEN_STATES:
                continue
            if status and status != "open" and inc.get("state") != status:
                continue
            if any(inc.get(k) != v for k, v in exact.items()):
                continue
            opened = inc.get("opened_at") or ""
            if (since and opened < since) or (until and opened > until):
                continue
            out.append(inc)
        out.sort(key=lambda i: i.get("opened_at") or "", reverse=True)
        return out[:limit]

    def worst_by_grid(self, who: Principal) -> dict[str, dict]:
        """Per grid: the worst open incident's severity, level and count (the map's colours)."""
        worst: dict[str, dict] = {}
        for inc in self.incidents.values():
            if inc.get("state") not in OPEN_STATES or not who.may_see(inc.get("path") or []):
                continue
            g = inc.get("grid_id")
            cur = worst.get(g)
            rank = (SEVERITY_RANK.get(inc.get("severity"), 0), LEVEL_RANK.get(inc.get("level"), 0))
            if cur is None or rank > cur["rank"]:
                worst[g] = {"severity": inc.get("severity"), "level": inc.get("level"), "rank": rank,
                            "open": (cur or {}).get("open", 0) + 1}
            else:
                cur["open"] += 1
        for w in worst.values():
            w["rank"] = list(w["rank"])
        return worst

    def open_counts(self) -> Counter:
        """Open incidents per (kind, level, severity) for /metrics."""
        return Counter((i.get("kind") or "-", i.get("level") or "-", i.get("severity") or "-")
                       for i in self.incidents.values() if i.get("state") in OPEN_STATES)

    # -- live stream ---------------------------------------------------------------------
    def publish(self, events: list[tuple[str, dict, list]]) -> None:
        """Queue events for every subscriber that may see them. A client falling behind (its
        queue half full) gets incident states coalesced: only the newest of each incident, sent
        when it catches up (`COALESCED` in its queue); one that stops reading is cut."""
        for sub in list(self.subscribers):
            for name, data, path in events:
                if not sub.principal.may_see(path):
                    continue
                if name == "incident" and (sub.latest or sub.queue.qsize() >= sub.queue.maxsize // 2):
                    first = not sub.latest
                    sub.latest[data["incident_id"]] = data
                    if not first:
                        continue
                    name, data = COALESCED, {}
                try:
                    sub.queue.put_nowait((name, data))
                except asyncio.QueueFull:  # a client that does not read is cut, not waited for
                    sub.dropped = True
                    self.subscribers.discard(sub)


class BoardFollower:
    """Reads the followed topics into the board; latency of each pushed record is observed.
    `run` may be called again after it failed: it resumes where it stopped."""

    def __init__(self, board: Board, topic_names: dict[str, str], kafka_config: dict,
                 on_latency: Any = None, backlog: int = 50_000) -> None:
        self.board = board
        self.backlog = backlog  # records per partition of a history topic read at start
        self.names = topic_names  # short -> full
        self.short = {v: k for k, v in topic_names.items()}
        self.kafka_config = kafka_config
        self.on_latency = on_latency
        self.error: str | None = None
        self.positions: dict[Any, int] = {}  # next offset per partition: a restarted run resumes

    async def run(self) -> None:
        from aiokafka import AIOKafkaConsumer, TopicPartition

        from pipeline.clients import partitions_of

        consumer = AIOKafkaConsumer(**self.kafka_config, enable_auto_commit=False, group_id=None,
                                    fetch_max_wait_ms=50, max_partition_fetch_bytes=8 << 20)
        await consumer.start()
        try:
            tps = []
            for full in self.names.values():
                for p in await partitions_of(consumer, full):
                    tps.append(TopicPartition(full, p))
            consumer.assign(tps)
            await consumer.seek_to_beginning(*tps)
            await self._seek_history(consumer, [tp for tp in tps if self.short[tp.topic] in HISTORY])
            for tp in tps:  # after a failure: where the last run stopped, nothing read twice
                if tp in self.positions:
                    consumer.seek(tp, self.positions[tp])
            idle = 0
            while True:
                batch = await consumer.getmany(timeout_ms=200, max_records=5000)
                if not batch:
                    idle += 1
                    if idle >= 3 and not self.board.ready:  # read what was there: ready
                        self.board.ready = True
                    continue
                idle = 0
                now = time.time()
                for tp, msgs in batch.items():
                    short = self.short[tp.topic]
                    self.positions[tp] = msgs[-1].offset + 1
                    for m in msgs:
                        events = self.board.apply(short, m.value, m.key)
                        if self.board.ready and events:
                            self.board.publish(events)
                            if self.on_latency and m.timestamp and short != "located.v1":
                                lag = now - m.timestamp / 1000.0
                                if 0 <= lag < 3600:  # simulated timestamps are not latencies
                                    self.on_latency(lag)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # recorded for /readyz; the server keeps answering
            self.error = f"{type(exc).__name__}: {exc}"
            self.board.ready = False
        finally:
            with contextlib.suppress(Exception):
                await consumer.stop()

    async def _seek_history(self, consumer: Any, tps: list) -> None:
        if not tps:
            return
        first = await consumer.beginning_offsets(tps)
        end = await consumer.end_offsets(tps)
        for tp in tps:
            consumer.seek(tp, max(first[tp], end[tp] - self.backlog))
