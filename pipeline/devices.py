"""Device registry (设备台账): fixed sensors' locations, so their pings need no coordinates.

Sources: a file (JSON list, JSON Lines or CSV with device_id, kind, lon, lat, ...) loaded at
start, and the compacted ``devices.v1`` topic, which every worker follows from the beginning
over all partitions (the registry is small and every worker needs all of it). A null value
deletes a device. Agents wait until the follower has caught up before their first batch.
"""

from __future__ import annotations

import asyncio
import csv
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import fastjsonschema
import orjson
import yaml

from pipeline.envelope import decode, make_event, structured_from_binary, validator
from pipeline.errors import ConfigError, Rejected

_NUMERIC = {"lon", "lat"}
_INTEGER = {"heartbeat_s"}


def load_devices_file(path: str, schema: str = "device.json", what: str = "device") -> list[dict]:
    """Read and validate a registry file (devices by default); ConfigError names the first bad row."""
    p = Path(path)
    if not p.exists():
        raise ConfigError(f"{path}: no such {what}s file")
    raw = p.read_bytes()
    rows: list[Any]
    try:
        if p.suffix.lower() == ".csv":
            reader = csv.DictReader(raw.decode("utf-8").splitlines())
            rows = []
            for r in reader:
                row: dict[str, Any] = {k: v for k, v in r.items() if v not in (None, "")}
                for k in _NUMERIC & row.keys():
                    row[k] = float(row[k])
                for k in _INTEGER & row.keys():
                    row[k] = int(row[k])
                rows.append(row)
        elif p.suffix.lower() in (".yaml", ".yml"):
            rows = yaml.safe_load(raw.decode("utf-8"))
        elif p.suffix.lower() == ".jsonl":
            rows = [orjson.loads(line) for line in raw.splitlines() if line.strip()]
        else:
            rows = orjson.loads(raw)
    except (ValueError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: cannot parse ({exc})")
    if not isinstance(rows, list):
        raise ConfigError(f"{path}: expected a list of {what}s")
    check = validator(schema)
    for n, row in enumerate(rows, 1):
        try:
            check(row)
        except fastjsonschema.JsonSchemaValueException as exc:
            raise ConfigError(f"{path}: {what} {n}: {exc.message}")
    return rows


def registry_envelope(kind: str, key: str, row: dict, time: str) -> dict:
    """The envelope of one registry entry (``kind`` device or subject), id ``<kind>:<key>``."""
    return make_event(f"gridwatch.{kind}.v1", f"{kind}:{key}", time, row, subject=key,
                      source=f"gridwatch/{kind}s")


def device_envelope(row: dict, time: str) -> dict:
    """The devices.v1 envelope for one registration."""
    return registry_envelope("device", row["device_id"], row, time)


class RegistryFollower:
    """Follows a compacted registry topic over all partitions into a dict (no consumer group).

    `short` is the registry topic (``devices.v1``, ``subjects.v1``), `key_field` the data field
    that names an entry, `transform` turns a validated data body into the stored value, and
    `version` counts changes so readers can refresh derived indexes.
    """

    def __init__(self, topic: str, kafka_config: dict[str, Any], registry: dict[str, Any],
                 max_bytes: int, short: str = "devices.v1", key_field: str = "device_id",
                 transform: Callable[[dict], Any] | None = None) -> None:
        self.topic = topic
        self.kafka_config = kafka_config
        self.registry = registry
        self.max_bytes = max_bytes
        self.short = short
        self.key_field = key_field
        self.transform = transform or (lambda d: d)
        self.ready = asyncio.Event()
        self.rejected = 0
        self.version = 0
        self.dlq: Any = None  # a `pipeline.gate.DlqPolicy`: refused registrations are kept there

    def apply(self, key: bytes | None, value: bytes | None, headers: object = (),
              record_ms: int | None = None) -> Rejected | None:
        """Apply one registry record (a null value deletes; `headers` of a CloudEvents
        binary-mode record are read as its envelope); a refused one changes nothing and is
        returned (`run` writes its DLQ record, with the value as received)."""
        self.version += 1
        if value is None:
            if key is not None:
                self.registry.pop(key.decode("utf-8", "replace"), None)
            return None
        try:
            if headers:
                value = structured_from_binary(headers, value, self.max_bytes, record_ms) or value
            doc = decode(self.short, value, self.max_bytes)
        except Rejected as rej:
            self.rejected += 1
            return rej
        self.registry[doc["data"][self.key_field]] = self.transform(doc["data"])
        return None

    async def _refused(self, m: Any, rej: Rejected) -> None:
        """The DLQ record of a refused registration. Every worker follows the whole registry,
        so each writes it, with the same id (``dlq:<topic>:<partition>:<offset>``): readers
        (``gridwatch dlq``) count ids, not records."""
        if self.dlq is None:
            return
        msg = SimpleNamespace(topic=m.topic, partition=m.partition, offset=m.offset, key=m.key,
                              value=m.value, timestamp=(m.timestamp or 0) / 1000.0)
        await self.dlq.write(msg, rej.code, rej.reason, rej.retriable, f"registry {self.short}")

    async def run(self) -> None:
        """Catch up, set `ready`, then keep following until cancelled."""
        from aiokafka import AIOKafkaConsumer, TopicPartition

        from pipeline.clients import partitions_of

        consumer = AIOKafkaConsumer(**self.kafka_config, enable_auto_commit=False,
                                    auto_offset_reset="earliest", group_id=None)
        await consumer.start()
        try:
            tps = [TopicPartition(self.topic, p) for p in await partitions_of(consumer, self.topic)]
            consumer.assign(tps)
            await consumer.seek_to_beginning(*tps)
            end = await consumer.end_offsets(tps) if tps else {}
            pos = {tp: 0 for tp in tps}
            if all(end[tp] == 0 for tp in tps):
                self.ready.set()
            while True:
                batch = await consumer.getmany(timeout_ms=200, max_records=5000)
                for tp, msgs in batch.items():
                    for m in msgs:
                        rej = self.apply(m.key, m.value, m.headers, m.timestamp)
                        if rej is not None:
                            await self._refused(m, rej)
                    if msgs:
                        pos[tp] = msgs[-1].offset + 1
                if not self.ready.is_set() and all(pos[tp] >= end[tp] for tp in tps):
                    self.ready.set()
        finally:
            await consumer.stop()


DeviceFollower = RegistryFollower  # the devices.v1 follower (the default arguments)
