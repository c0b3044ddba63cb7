"""Faust wiring of incidents: thin agents around the pure `IncidentHost`.

- ``route_commands``: ``commands.v1`` (keyed by incident id, as integrators send them) ->
  validated -> ``incident-commands.v1`` keyed by the incident's grid (the id starts with it), so
  a command meets its incident on the grid's partition; malformed commands go to the DLQ.
- ``incidents``: ``alerts.v1`` + ``incident-commands.v1`` + ``clock.v1`` (co-partitioned) ->
  host -> ``escalations.v1`` (every transition), ``incidents.v1`` (current state, compacted),
  ``kpi-deltas.v1`` (keyed by unit); rejected commands -> DLQ with the code and reason.
- ``kpis``: ``kpi-deltas.v1`` -> sums per unit -> ``kpis.v1`` (compacted).

Recovery as for the detectors: a worker taking over a partition replays its committed history
(alerts, routed commands and ticks in event-time order) with outputs discarded.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from typing import Any

import faust
import orjson
from faust.types import TP

from pipeline.clients import committed_offsets, read_partition
from pipeline.detect.host import decode_record, event_ms
from pipeline.envelope import STRUCTURED, check_size, make_event, structured_from_binary, validator
from pipeline.errors import Rejected
from pipeline.gate import DlqPolicy, TimeBounds, record_ms
from pipeline.incident.host import Changes, IncidentHost
from pipeline.incident.kpi import deltas, summary, units
from pipeline.incident.records import escalation_record, incident_record, kpi_delta_record
from pipeline.incident.wiring import LINK_TYPE, decode_command
from pipeline.logs import get_logger
from pipeline.settings import Settings, aiokafka_config
from pipeline.telemetry import ESCALATIONS, PARTITION_REBUILD_SECONDS, PARTITION_REBUILDS, SLA_BREACHES


def register(app: faust.App, settings: Settings, host: IncidentHost) -> None:
    """Add the command router, the incident agent and the KPI agent to the app."""
    log = get_logger(component="incidents")
    raw = dict(key_serializer="raw", value_serializer="raw", partitions=settings.partitions)
    names = {short: settings.topic(short) for short in
             ("alerts.v1", "commands.v1", "incident-commands.v1", "clock.v1", "escalations.v1",
              "incidents.v1", "kpi-deltas.v1", "kpis.v1", "dlq.v1")}
    t = {short: app.topic(name, **raw) for short, name in names.items()}
    source = app.topic(names["alerts.v1"], names["incident-commands.v1"], names["clock.v1"], **raw)
    kafka_cfg = aiokafka_config(settings)
    max_bytes = settings.max_message_bytes

    bounds = TimeBounds.of(settings)
    sign_key = settings.command_verify_key()  # None: producers of commands.v1 are trusted

    async def send_dlq(key: bytes, value: bytes) -> None:
        await t["dlq.v1"].send(key=key, value=value, headers=STRUCTURED)

    policy = DlqPolicy(send_dlq, max_bytes, log)

    @app.agent(t["commands.v1"], name="gridwatch.route_commands")
    async def route_commands(stream: Any) -> None:
        async for event in stream.events():
            msg = event.message
            async with policy.guard(msg, "route_commands"):
                value = msg.value  # the DLQ keeps msg.value; a binary-mode one is routed structured
                if msg.headers:
                    value = structured_from_binary(msg.headers, value, max_bytes,
                                                   record_ms(msg)) or value
                data = decode_command(value, max_bytes, record_ms(msg), bounds, sign_key)
                grid = data["incident_id"].split("~", 1)[0]
                await t["incident-commands.v1"].send(key=grid.encode(), value=value,
                                                     timestamp=msg.timestamp, headers=STRUCTURED)

    async def emit(changes: Changes) -> None:
        for ev in changes.escalations:
            inc = changes.incidents[ev.incident_id]
            key, value = escalation_record(ev, inc)
            await t["escalations.v1"].send(key=key, value=value, headers=STRUCTURED)
            ESCALATIONS.labels(ev.action).inc()
            if ev.action == "breach":
                SLA_BREACHES.labels(ev.reason or "unknown").inc()
            d = deltas(inc, ev)
            if d:
                for unit in units(inc):
                    k, v = kpi_delta_record(unit, ev, d)
                    await t["kpi-deltas.v1"].send(key=k, value=v, headers=STRUCTURED)
        for inc in changes.incidents.values():
            key, value = incident_record(inc)
            await t["incidents.v1"].send(key=key, value=value, headers=STRUCTURED)
        for iid in changes.forgotten:  # a tombstone: compaction drops the ended incident
            await t["incidents.v1"].send(key=iid.encode(), value=None)
        for grid, link in changes.links:
            env = make_event(LINK_TYPE, f"{link['link']}:{link['incident_id']}:{link['at']}",
                             link["at"], link, subject=link["incident_id"], source="gridwatch/incidents")
            await t["incident-commands.v1"].send(key=grid.encode(), value=orjson.dumps(env),
                                                 headers=STRUCTURED)

    def apply(partition: int, topic: str, value: bytes | None, ts: int | None) -> Changes:
        if topic == names["clock.v1"]:
            return host.on_tick(partition, decode_record(value, True, max_bytes, ts, bounds)[1])
        if topic == names["incident-commands.v1"]:
            doc = orjson.loads(check_size(value, max_bytes))
            if isinstance(doc, dict) and doc.get("type") == LINK_TYPE:  # from another partition
                return host.on_link(partition, doc["data"])
            return host.on_command(partition, decode_command(value, max_bytes, ts, bounds, sign_key))
        doc = orjson.loads(check_size(value, max_bytes))
        validator("alert.json")(doc["data"])
        return host.on_alert(partition, doc["data"])

    rebuilt: set[int] = set()
    processed: dict[int, int] = {}
    revokes: dict[int, int] = {}  # partition -> times revoked: a rebuild a revoke overtook is redone

    async def rebuild(partition: int) -> None:
        started = time.monotonic()
        generation = revokes.get(partition, 0)
        host.drop(partition)
        tops = (names["alerts.v1"], names["incident-commands.v1"], names["clock.v1"])
        upto = await asyncio.to_thread(committed_offsets, settings, app.conf.id, partition, tops)
        # alerts, commands and ticks in event-time order (ties: alerts, commands, ticks), so
        # an acknowledgement meets the incident at the level the ticks before it had raised it to
        history: list[tuple[int, int, int, str, bytes, int]] = []
        for order, topic in enumerate(tops):
            offset = 0
            async for ts, value in read_partition(kafka_cfg, topic, partition, upto[topic], True):
                with contextlib.suppress(Exception):
                    data = orjson.loads(value)["data"]
                    at = int(data["tick"]) if order == 2 else \
                        event_ms(data["observed_at"] if order == 0 else data["at"])
                    history.append((at, order, offset, topic, value, ts))
                offset += 1
        for _, _, _, topic, value, ts in sorted(history, key=lambda h: h[:3]):
            with contextlib.suppress(Exception):
                apply(partition, topic, value, ts)
        if revokes.get(partition, 0) != generation:  # revoked while rebuilding: state is partial
            host.drop(partition)
            log.info("incident_rebuild_superseded", partition=partition)
            return
        processed[partition] = upto[names["alerts.v1"]] - 1
        rebuilt.add(partition)
        PARTITION_REBUILDS.labels("incidents").inc()
        PARTITION_REBUILD_SECONDS.labels("incidents").observe(time.monotonic() - started)
        log.info("incident_partition_rebuilt", partition=partition, records=len(history),
                 incidents=len(host.partition(partition).incidents))

    def drop_partition(partition: int) -> None:
        host.drop(partition)
        rebuilt.discard(partition)
        processed.pop(partition, None)

    def has_backlog(partition: int) -> bool:
        try:
            hw = app.consumer.highwater(TP(names["alerts.v1"], partition))
        except Exception:
            return False
        return hw is not None and processed.get(partition, -1) + 1 < hw

    @app.agent(source, name="gridwatch.incidents")
    async def incidents(stream: Any) -> None:
        async for event in stream.events():
            msg = event.message
            if msg.partition not in rebuilt:
                while msg.partition not in rebuilt:
                    await rebuild(msg.partition)
                if TP(msg.topic, msg.partition) not in app.consumer.assignment():
                    drop_partition(msg.partition)  # revoked meanwhile: its new owner rebuilds it
                    continue
            if msg.topic == names["clock.v1"] and has_backlog(msg.partition):
                continue  # as for the detectors: a tick never runs ahead of alerts
            if msg.topic == names["alerts.v1"]:
                processed[msg.partition] = msg.offset
            async with policy.guard(msg, "incidents"):
                try:
                    changes = apply(msg.partition, msg.topic, msg.value, record_ms(msg))
                except Rejected:
                    if msg.topic == names["clock.v1"]:
                        continue  # bad ticks are the detectors' to record (one DLQ record each)
                    raise
                for rej in changes.rejected:
                    await policy.write(msg, rej.code, rej.reason, rej.retriable, "incidents")
                await emit(changes)

    kpi_parts: dict[int, dict[str, Counter]] = {}

    async def rebuild_kpis(partition: int) -> dict[str, Counter]:
        book: dict[str, Counter] = {}
        name = names["kpi-deltas.v1"]
        upto = await asyncio.to_thread(committed_offsets, settings, app.conf.id, partition, (name,))
        async for value in read_partition(kafka_cfg, name, partition, upto[name]):
            with contextlib.suppress(Exception):
                data = orjson.loads(value)["data"]
                book.setdefault(data["unit"], Counter()).update(data["delta"])
        kpi_parts[partition] = book
        return book

    @app.agent(t["kpi-deltas.v1"], name="gridwatch.kpis")
    async def kpis(stream: Any) -> None:
        async for event in stream.events():
            msg = event.message
            book = kpi_parts.get(msg.partition)
            if book is None:
                book = await rebuild_kpis(msg.partition)
            async with policy.guard(msg, "kpis"):
                doc = orjson.loads(msg.value)
                data = doc["data"]
                counter = book.setdefault(data["unit"], Counter())
                counter.update(data["delta"])
                env = make_event("gridwatch.kpi.v1", f"kpi:{data['unit']}:{data['event_id']}",
                                 doc["time"], summary(data["unit"], counter), subject=data["unit"],
                                 source="gridwatch/kpis")
                await t["kpis.v1"].send(key=data["unit"].encode(), value=orjson.dumps(env),
                                        headers=STRUCTURED)

    @app.on_partitions_revoked.connect
    async def forget(app: faust.App, revoked: set, **_: Any) -> None:
        for tp in revoked:
            if tp.topic == names["alerts.v1"]:
                revokes[tp.partition] = revokes.get(tp.partition, 0) + 1
                drop_partition(tp.partition)
            if tp.topic == names["kpi-deltas.v1"]:
                kpi_parts.pop(tp.partition, None)
