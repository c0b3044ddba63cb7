"""Envelope (CloudEvents 1.0 attribute names) decoding, validation and construction.

Decoding is strict and fast: orjson, then compiled fastjsonschema validators for the envelope
and for the data body of the type the topic carries. Any failure raises `Rejected` with a DLQ
code and a sentence a person can act on.
"""

from __future__ import annotations

import base64
import hashlib
import re
from datetime import UTC, datetime
from functools import cache
from typing import Any

import fastjsonschema
import orjson

from pipeline.errors import Rejected
from topics.registry import BY_NAME, DATASCHEMAS, SCHEMA_DIR

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
#: absolute bounds on any event time, whatever the record timestamp says
MIN_TIME = datetime(2000, 1, 1, tzinfo=UTC)
MAX_TIME = datetime(2100, 1, 1, tzinfo=UTC)

#: event type expected on each input topic (short name)
INPUT_TYPES = {"reports.v1": "gridwatch.report.v1", "pings.v1": "gridwatch.ping.v1",
               "devices.v1": "gridwatch.device.v1", "subjects.v1": "gridwatch.subject.v1",
               "rosters.v1": "gridwatch.roster.v1"}

#: the Kafka headers of every record gridwatch writes (CloudEvents Kafka protocol binding,
#: structured mode: the value is the whole JSON envelope); tombstones carry none
STRUCTURED = [("content-type", b"application/cloudevents+json; charset=UTF-8")]
_ATTRIBUTE = re.compile(r"[a-z0-9]{1,20}")


@cache
def validator(schema_file: str) -> Any:
    """A compiled validator for one schema file of topics/schemas."""
    schema = orjson.loads((SCHEMA_DIR / schema_file).read_bytes())
    if schema_file == "ping.json":  # the kinds and units of plugin detectors are valid pings too
        from pipeline.detect.plugins import registry

        props = schema["properties"]
        for det in registry().values():
            props["kind"]["enum"] += sorted(det.kinds - set(props["kind"]["enum"]))
            props["unit"]["enum"] += sorted(det.units - set(props["unit"]["enum"]))
    return fastjsonschema.compile(schema)


def _schema_reason(exc: fastjsonschema.JsonSchemaValueException, where: str) -> str:
    path = exc.name.replace("data.", "", 1) if exc.name != "data" else "(root)"
    msg = exc.message.replace(exc.name, path) if exc.name else exc.message
    return f"{where}: {msg}"


def parse_time(value: str, field: str) -> datetime:
    """ISO 8601 with an offset (``Z`` or ``+08:00``); naive times are refused."""
    try:
        t = datetime.fromisoformat(value)
    except (TypeError, ValueError):
        raise Rejected("bad_time", f"{field}={value!r} is not an ISO 8601 time")
    if t.tzinfo is None:
        raise Rejected("bad_time", f"{field}={value!r} has no UTC offset (e.g. +08:00)")
    if not MIN_TIME <= t < MAX_TIME:
        raise Rejected("time_out_of_range", f"{field}={value} is outside 2000..2100")
    return t


def iso(t: datetime) -> str:
    """Canonical UTC form used in every output: ``2026-07-01T08:00:00.000Z``."""
    t = t.astimezone(UTC)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


def iso_ms(ms: int) -> str:
    """Canonical UTC form of epoch milliseconds."""
    return iso(datetime.fromtimestamp(ms / 1000.0, UTC))


def check_size(value: bytes | None, max_bytes: int) -> bytes:
    """The record value, or `Rejected` when it is null or larger than `max_bytes`."""
    if value is None:
        raise Rejected("not_json", "empty record value (null)")
    if len(value) > max_bytes:
        raise Rejected("too_large", f"record is {len(value)} bytes; the limit is {max_bytes}")
    return value


def json_object(value: bytes) -> dict:
    """JSON bytes -> a dict, or `Rejected` (``not_json``, ``not_object``)."""
    try:
        doc = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        raise Rejected("not_json", f"not JSON: {exc}")
    if not isinstance(doc, dict):
        raise Rejected("not_object", f"expected a JSON object, got {type(doc).__name__}")
    return doc


def _header_text(name: str, raw: object) -> str:
    if raw is None:
        return ""
    if isinstance(raw, str):
        return raw
    try:
        return bytes(raw).decode("utf-8")  # type: ignore[call-overload]
    except (TypeError, ValueError):
        raise Rejected("bad_envelope", f"binary-mode record: header {name!r} is not UTF-8 text")


def structured_from_binary(headers: object, value: bytes | None, max_bytes: int | None = None,
                           record_ms: int | None = None) -> bytes | None:
    """A CloudEvents binary-mode record (Kafka protocol binding: the attributes in ``ce_*``
    headers, the data alone in the value, ``content-type: application/json``) -> the bytes of
    the same event in structured mode, which every decoder reads.

    None when the record is not binary mode (no ``ce_specversion`` header, or a structured
    ``content-type: application/cloudevents+json``) or is a tombstone: use the value as it is.
    Header names and values may be str or bytes. A binary-mode record without ``ce_time`` takes
    its record timestamp (`record_ms`). `Rejected` (``bad_envelope``, or ``too_large`` /
    ``not_json`` for the value) when it cannot be one: a missing ``ce_id``, ``ce_source`` or
    ``ce_type``, a header that is not UTF-8, a content type that is not JSON.
    """
    if not headers or value is None:
        return None
    items = headers.items() if isinstance(headers, dict) else headers
    found: list[tuple[str, object]] = []
    for item in items:  # type: ignore[union-attr]
        try:
            key, raw = item
        except (TypeError, ValueError):
            continue
        name = key.decode("utf-8", "replace") if isinstance(key, bytes | bytearray) else key
        if isinstance(name, str) and (name[:3].lower() == "ce_" or name.lower() == "content-type"):
            found.append((name.lower(), raw))
    if not any(name == "ce_specversion" for name, _ in found):
        return None
    ctype = next((raw for name, raw in found if name == "content-type"), None)
    ctype_text = _header_text("content-type", ctype).strip() if ctype is not None else ""
    if ctype_text.lower().startswith("application/cloudevents"):
        return None  # structured mode: the value is the envelope
    attrs: dict[str, Any] = {}
    for name, raw in found:
        if name == "content-type":
            continue
        attr = name[3:]
        if not _ATTRIBUTE.fullmatch(attr) or attr in ("data", "datacontenttype"):
            raise Rejected("bad_envelope", f"binary-mode record: header {name[:40]!r} is not a "
                                           "CloudEvents attribute (ce_ + 1-20 of a-z 0-9)")
        attrs[attr] = _header_text(name, raw)
    missing = [f"ce_{a}" for a in ("id", "source", "type") if not attrs.get(a)]
    if missing:
        raise Rejected("bad_envelope", f"binary-mode record (ce_specversion header) has no "
                                       f"{', '.join(missing)} header: a CloudEvents record needs "
                                       "ce_id, ce_source and ce_type")
    media = ctype_text.split(";", 1)[0].strip().lower()
    if media and media != "application/json" and not media.endswith("+json"):
        raise Rejected("bad_envelope", f"binary-mode record: content-type {ctype_text[:80]!r}; "
                                       "gridwatch data is JSON (content-type: application/json)")
    if "time" not in attrs and record_ms is not None and record_ms > 0:
        attrs["time"] = iso_ms(record_ms)
    body = json_object(check_size(value, max_bytes) if max_bytes is not None else value)
    return orjson.dumps({**attrs, "datacontenttype": "application/json", "data": body})


def decode_as(value: bytes | None, max_bytes: int, want_type: str, schema: str,
              bad_code: str = "bad_data", where: str = "") -> dict:
    """Size, JSON, CloudEvents envelope, type and data schema of one record -> the envelope."""
    doc = json_object(check_size(value, max_bytes))
    try:
        validator("envelope.json")(doc)
    except fastjsonschema.JsonSchemaValueException as exc:
        raise Rejected("bad_envelope", _schema_reason(exc, "envelope"))
    if doc["type"] != want_type:
        raise Rejected("unknown_type", f"type {str(doc['type'])[:80]!r} does not belong on "
                                       f"{where or 'this topic'} (expected {want_type})")
    try:
        validator(schema)(doc["data"])
    except fastjsonschema.JsonSchemaValueException as exc:
        reason = _schema_reason(exc, "data")
        if exc.rule == "additionalProperties" and exc.name == "data" and _extensible(schema):
            reason += ": a producer's own fields go in the data's `extensions` object"
        raise Rejected(bad_code, reason)
    return doc


@cache
def _extensible(schema_file: str) -> bool:
    """Whether a data schema takes a producer's own fields under ``extensions``."""
    schema = orjson.loads((SCHEMA_DIR / schema_file).read_bytes())
    return "extensions" in schema.get("properties", {})


def decode(topic_short: str, value: bytes | None, max_bytes: int) -> dict:
    """Bytes -> validated envelope dict for an input topic, or raise `Rejected`."""
    return decode_as(value, max_bytes, INPUT_TYPES[topic_short], BY_NAME[topic_short].schema,
                     where=topic_short)


def make_event(type_: str, id_: str, time: str, data: dict, subject: str | None = None,
               source: str = "gridwatch", trace: str | None = None) -> dict:
    """An output envelope; `id_` must be deterministic so redeliveries can be recognised.

    `trace` is the input's W3C ``traceparent`` (CloudEvents distributed-tracing extension),
    carried through so one report can be followed from intake to escalation. ``dataschema`` is
    the path the web server serves the data's JSON Schema at (``/schemas/escalation.json``), for
    every type of a registry topic (`topics.registry.DATASCHEMAS`).
    """
    ev = {"specversion": "1.0", "id": id_, "source": source, "type": type_, "time": time,
          "datacontenttype": "application/json", "data": data}
    if type_ in DATASCHEMAS:
        ev["dataschema"] = DATASCHEMAS[type_]
    if subject is not None:
        ev["subject"] = subject
    if trace is not None:
        ev["traceparent"] = trace
    return ev


def dlq_key(topic: str) -> bytes:
    """The one key rule for DLQ records: the source topic's short name (``commands.v1``), so
    every rejection of one input topic lands on one DLQ partition, whatever the prefix."""
    names = [n for n in BY_NAME if topic == n or topic.endswith("." + n) or topic.endswith(n)]
    return max(names, key=len).encode() if names else topic.encode()  # incident-commands.v1


def dlq_event(topic: str, partition: int, offset: int, timestamp_ms: int | None,
              key: bytes | None, value: bytes | None, code: str, reason: str,
              retriable: bool = False, redrive_count: int = 0,
              keep_bytes: int = 65536) -> dict:
    """The DLQ record for a rejected input: original bytes, position, code, reason.

    The original is kept whole up to `keep_bytes` (the input limit); a larger one is cut there,
    with its size and SHA-256, so the DLQ record always fits the producer's limit.
    """
    original = value or b""
    data = {"code": code, "reason": reason[:2000], "retriable": retriable,
            "source": {"topic": topic, "partition": partition, "offset": offset,
                       "timestamp_ms": timestamp_ms},
            "original_b64": base64.b64encode(original[:keep_bytes]).decode(),
            "original_key_b64": base64.b64encode(key[:1024]).decode() if key is not None else None,
            "redrive_count": redrive_count}
    if len(original) > keep_bytes:
        data.update(original_truncated=True, original_size=len(original),
                    original_sha256=hashlib.sha256(original).hexdigest())
    when = iso_ms(timestamp_ms) if timestamp_ms is not None else iso(EPOCH)
    return make_event("gridwatch.dlq.v1", f"dlq:{topic}:{partition}:{offset}", when, data,
                      subject=code)
