"""Faust wiring of the detectors: thin agents around the pure `DetectorHost`.

- ``detect``: ``located.v1`` + ``clock.v1`` (co-partitioned: partition p of both goes to the
  same worker) -> host -> ``alerts.v1`` (keyed by grid), ``levels.v1`` (keyed by zone),
  ``dlq.v1`` (unusable or too-late readings, with the located record's position).
- ``zones``: ``levels.v1`` -> `ZoneLevels` (worst point of each hazard zone) -> ``alerts.v1``.
- ``clock_ticker``: in live mode each worker writes the ticks of the ``clock.v1`` partitions
  it owns (its consumer-group assignment, co-partitioned with ``located.v1``), one per
  ``tick_interval``; the tick is the wall clock floored to the interval, so two workers ticking
  around a rebalance write the same value and the second is ignored (ticks never go back).
  Only here does wall time enter; replay and tests write ticks themselves (``GRIDWATCH_CLOCK=off``).

Recovery: detector state is in memory, and the host is deterministic, so a worker that takes
over a partition (restart, crash, rebalance) first replays that partition of ``located.v1``
from the start of the topic's retention up to the group's committed offset, with the committed
ticks of ``clock.v1`` between them in log order (record timestamps), every output discarded
(they were sent before); the zone agent does the
same with its partition of ``levels.v1``. The first live record
follows. Alerts between the last commit and a crash come out again with the same ids.

A tick never runs ahead of data: while partition p of ``located.v1`` has records this worker
has not processed yet (a backlog after downtime or a slow start), its ticks are skipped and
counted (``ticks_deferred``), so the backlog is judged on event time, not declared late.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

import faust
import orjson
from faust.types import TP

from pipeline.clients import committed_offsets, read_partition
from pipeline.detect.alerts import Alert
from pipeline.detect.host import DetectorHost, Output, decode_located, decode_record
from pipeline.detect.landslide import ZoneLevels
from pipeline.detect.wiring import (
    change_from_record,
    level_record,
    tick_envelope,
)
from pipeline.envelope import STRUCTURED
from pipeline.gate import DlqPolicy, TimeBounds, record_ms
from pipeline.logs import get_logger
from pipeline.settings import Settings, aiokafka_config
from pipeline.telemetry import (
    ALERTS,
    DETECTOR_EVENTS,
    PARTITION_REBUILD_SECONDS,
    PARTITION_REBUILDS,
    forget_partition,
    tick_applied,
)


def register(app: faust.App, settings: Settings, host: DetectorHost, follower: Any) -> None:
    """Add the detector agents, the zone agent and the ticker to the app."""
    log = get_logger(component="detect")
    raw = dict(key_serializer="raw", value_serializer="raw", partitions=settings.partitions)
    located_name, clock_name = settings.topic("located.v1"), settings.topic("clock.v1")
    source = app.topic(located_name, clock_name, **raw)
    alerts = app.topic(settings.topic("alerts.v1"), **raw)
    levels_name = settings.topic("levels.v1")
    levels = app.topic(levels_name, **raw)
    dlq = app.topic(settings.topic("dlq.v1"), **raw)

    async def send_alerts(items: list[Alert]) -> None:
        for a in items:
            key, value = a.encode()
            await alerts.send(key=key, value=value, headers=STRUCTURED)
            ALERTS.labels(a.kind).inc()

    async def send_dlq(key: bytes, value: bytes) -> None:
        await dlq.send(key=key, value=value, headers=STRUCTURED)

    policy = DlqPolicy(send_dlq, settings.max_message_bytes, log)
    bounds = TimeBounds.of(settings)

    async def emit(out: Output, msg: Any) -> None:
        await send_alerts(out.alerts)
        for change in out.levels:
            for zone in change.zones:
                key, value = level_record(change, zone)
                await levels.send(key=key, value=value, headers=STRUCTURED)
        for rej in out.rejected:
            await policy.write(msg, rej.code, rej.reason, rej.retriable, "detectors")

    processed: dict[int, int] = {}  # located partition -> last offset handled
    rebuilt: set[int] = set()
    revokes: dict[int, int] = {}  # partition -> times revoked: a rebuild a revoke overtook is redone
    kafka_cfg = aiokafka_config(settings)

    async def rebuild(partition: int) -> None:
        """Replay this partition's committed history into a fresh host partition."""
        started = time.monotonic()
        generation = revokes.get(partition, 0)
        host.drop(partition)
        upto = await asyncio.to_thread(committed_offsets, settings, app.conf.id, partition,
                                       (located_name, clock_name))
        # ticks interleave with the located history in log order (record timestamps, as
        # `gridwatch replay` orders a log), so timers fire where they fired live
        ticks: list[tuple[int, int]] = []
        async for ts, value in read_partition(kafka_cfg, clock_name, partition, upto[clock_name], True):
            with contextlib.suppress(Exception):
                ticks.append((ts, decode_record(value, True, settings.max_message_bytes, ts,
                                                bounds)[1]))
        n = next_tick = 0
        async for ts, value in read_partition(kafka_cfg, located_name, partition, upto[located_name], True):
            while next_tick < len(ticks) and ticks[next_tick][0] < ts:
                host.on_tick(partition, ticks[next_tick][1])
                next_tick += 1
            try:
                data, t = decode_located(value, settings.max_message_bytes)
                host.on_located(partition, data, t)
                n += 1
            except Exception:  # rejected when it was first read; nothing new to record
                continue
        for _, tick in ticks[next_tick:]:
            host.on_tick(partition, tick)
        last_tick = ticks[-1][1] if ticks else 0
        if revokes.get(partition, 0) != generation:  # revoked while rebuilding: state is partial
            host.drop(partition)
            log.info("detector_rebuild_superseded", partition=partition)
            return
        processed[partition] = upto[located_name] - 1
        rebuilt.add(partition)
        PARTITION_REBUILDS.labels("detectors").inc()
        PARTITION_REBUILD_SECONDS.labels("detectors").observe(time.monotonic() - started)
        if last_tick:
            tick_applied(partition, last_tick)
        log.info("detector_partition_rebuilt", partition=partition, located_events=n,
                 last_tick=last_tick or None, seconds=round(time.monotonic() - started, 2),
                 upto={"located": upto[located_name], "clock": upto[clock_name]})

    def drop_partition(partition: int) -> None:
        host.drop(partition)
        forget_partition(partition)
        rebuilt.discard(partition)
        processed.pop(partition, None)

    def has_backlog(partition: int) -> bool:
        try:
            hw = app.consumer.highwater(TP(located_name, partition))
        except Exception:  # no fetch yet for that partition
            return False
        return hw is not None and processed.get(partition, -1) + 1 < hw

    @app.agent(source, name="gridwatch.detect")
    async def detect(stream: Any) -> None:
        await follower.ready.wait()
        async for event in stream.events():
            msg = event.message
            host.subjects_version = follower.version
            if msg.partition not in rebuilt:
                while msg.partition not in rebuilt:
                    await rebuild(msg.partition)
                if TP(msg.topic, msg.partition) not in app.consumer.assignment():
                    drop_partition(msg.partition)  # revoked meanwhile: its new owner rebuilds it
                    continue
            if msg.topic != clock_name:
                processed[msg.partition] = msg.offset
            async with policy.guard(msg, "detectors"):  # never stop the stream: DLQ and go on
                what, item = decode_record(msg.value, msg.topic == clock_name,
                                           settings.max_message_bytes, record_ms(msg), bounds)
                if what == "tick":
                    if has_backlog(msg.partition):
                        host.stats.ticks_deferred += 1
                        continue
                    out = host.on_tick(msg.partition, item)
                    tick_applied(msg.partition, item)
                else:
                    out = host.on_located(msg.partition, item)
                    DETECTOR_EVENTS.inc()
                await emit(out, msg)

    zone_parts: dict[int, ZoneLevels] = {}  # levels.v1 partition -> its zones

    async def rebuild_zones(partition: int) -> ZoneLevels:
        """Replay this levels.v1 partition's committed history (outputs discarded)."""
        zones = ZoneLevels()
        upto = await asyncio.to_thread(committed_offsets, settings, app.conf.id, partition,
                                       (levels_name,))
        async for value in read_partition(kafka_cfg, levels_name, partition, upto[levels_name]):
            with contextlib.suppress(Exception):
                data = orjson.loads(value)["data"]
                zones.apply(data["zone_id"], change_from_record(data))
        zone_parts[partition] = zones
        return zones

    @app.agent(levels, name="gridwatch.zones")
    async def zone_levels(stream: Any) -> None:
        async for event in stream.events():
            msg = event.message
            zones = zone_parts.get(msg.partition) or await rebuild_zones(msg.partition)
            async with policy.guard(msg, "zones"):
                data = orjson.loads(msg.value)["data"]
                await send_alerts(zones.apply(data["zone_id"], change_from_record(data)))

    @app.on_partitions_revoked.connect
    async def forget(app: faust.App, revoked: set, **_: Any) -> None:
        for tp in revoked:
            if tp.topic == levels_name:
                zone_parts.pop(tp.partition, None)
            if tp.topic == located_name:
                revokes[tp.partition] = revokes.get(tp.partition, 0) + 1
                drop_partition(tp.partition)

    if settings.clock == "live":
        interval = host.cfg.clock.tick_interval
        clock_topic = app.topic(clock_name, **raw)
        ticker = ClockTicker(settings.partitions)

        @app.timer(min(interval / 1000.0, 5.0), name="gridwatch.clock_ticker")
        async def clock_ticker() -> None:
            # the owner of partition p of clock.v1 (faust assigns it with located.v1 p to one
            # worker of the group) writes its ticks: one writer per partition, handed over by
            # every rebalance, a dead worker's partitions taken over after the session timeout
            owned = {tp.partition for tp in app.consumer.assignment() if tp.topic == clock_name}
            if owned != ticker.owned:
                log.info("clock_ticking", partitions=sorted(owned))  # which worker ticks what
            ticker.owned = owned
            tick = int(time.time() * 1000) // interval * interval  # the only wall-clock read
            for p in ticker.due(owned, tick):
                await clock_topic.send(key=b"tick", value=orjson.dumps(tick_envelope(tick, p)),
                                       partition=p, headers=STRUCTURED)
                ticker.sent(p, tick)
                log.debug("tick_written", partition=p, tick=tick)

    @app.timer(interval=10.0)
    async def detector_stats() -> None:
        s = host.stats
        log.info("detector_stats", events=s.events, ticks=s.ticks, ticks_deferred=s.ticks_deferred,
                 late=s.late, late_max_s=s.late_max_ms // 1000, ignored=s.ignored,
                 rejected=s.rejected, alerts=s.alerts, subjects=len(host.subjects),
                 partitions=sorted(host.partitions))


class ClockTicker:
    """Which owned clock.v1 partitions need a tick now (时钟): one per partition per interval.

    `due` is asked every few seconds with the partitions this worker owns and the wall clock
    floored to the interval; a partition gets the tick once. A partition newly owned (after a
    rebalance or a takeover) gets the current tick at once, so a dead ticker's partitions miss
    at most one interval plus the group's session timeout. A duplicate from the previous owner
    carries the same value and is a no-op downstream (ticks never go back).
    """

    def __init__(self, partitions: int) -> None:
        self.partitions = partitions
        self.last: dict[int, int] = {}
        self.owned: set[int] = set()  # as of the last call, for the log

    def due(self, owned: set[int], tick_ms: int) -> list[int]:
        for p in set(self.last) - owned:
            del self.last[p]  # handed over: the next owner ticks it
        return sorted(p for p in owned if 0 <= p < self.partitions and self.last.get(p, -1) < tick_ms)

    def sent(self, partition: int, tick_ms: int) -> None:
        self.last[partition] = tick_ms


