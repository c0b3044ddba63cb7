"""The validation gate (入口校验): every input record is checked here before it may move time or
state, and every rejection becomes a DLQ record through one error policy.

Each input topic has one decoder:

- ``reports.v1``, ``pings.v1``, ``devices.v1``, ``subjects.v1``, ``rosters.v1``:
  `pipeline.envelope.decode` (size, JSON, CloudEvents envelope, the type for the topic, the
  topic's JSON Schema); ingest adds the time checks (`check_time`) and the device registry.
- ``commands.v1``: `decode_command`, the same checks plus the command's ``at`` (an offset
  required; within the bounds below of the record timestamp, and of the incident partition's
  clock where the command is applied).
- ``clock.v1``: `decode_tick`, the same checks plus the tick itself: epoch milliseconds in
  2000..2100, equal to the envelope's ``data.at``, and not later than the record timestamp plus
  ``GRIDWATCH_MAX_FUTURE_S`` (a tick dated 2099 would freeze the partition's clock); an old
  tick is allowed (a no-op: the clock never goes back).

Time bounds (`TimeBounds`): an event time may be at most ``max_future_s`` after and
``max_past_s`` before the record timestamp, and a command not more than ``max_past_s`` older
than its partition's clock. Record timestamps themselves are bounded by the broker
(``log.message.timestamp.after.max.ms``, one hour, in `pipeline.kafka_cluster.BROKER_CONFIG`).
What may move a partition's clock is bounded by construction: ticks (checked here) and alerts
(written by the detectors from accepted readings); a command never moves it, so a forged
command can change only its own incident, and only once it is accepted.

`DlqPolicy` is the error policy of the stream stages: ``async with policy.guard(msg, stage)``
around the work on one record turns a `Rejected` into a DLQ record with its code and any other
exception into ``internal_error`` with the exception type, and the stage goes on.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import orjson

from pipeline.envelope import decode_as, dlq_event, dlq_key, iso_ms, parse_time
from pipeline.errors import Rejected
from pipeline.telemetry import DLQ_RECORDS

_MIN_MS, _MAX_MS = 946_684_800_000, 4_102_444_800_000  # 2000-01-01 .. 2100-01-01


@dataclass(frozen=True, slots=True)
class TimeBounds:
    """How far an event time may be from the record timestamp and the partition's clock."""

    max_future_ms: int = 300_000
    max_past_ms: int = 30 * 86_400_000

    @classmethod
    def of(cls, settings: Any) -> TimeBounds:
        return cls(int(settings.max_future_s * 1000), int(settings.max_past_s * 1000))

    def check(self, t_ms: int, field: str, record_ms: int | None, clock_ms: int = 0,
              past: bool = True) -> None:
        """`Rejected` (``time_out_of_range``) when `t_ms` is outside the bounds (with `past`
        False only the future bound: an old tick is a no-op, the clock never goes back)."""
        if record_ms is not None and record_ms > 0:
            if t_ms > record_ms + self.max_future_ms:
                raise Rejected("time_out_of_range", f"{field}={iso_ms(t_ms)} is more than "
                               f"{self.max_future_ms // 1000} s after the record timestamp "
                               f"({iso_ms(record_ms)})")
            if past and t_ms < record_ms - self.max_past_ms:
                raise Rejected("time_out_of_range", f"{field}={iso_ms(t_ms)} is more than "
                               f"{self.max_past_ms // 86_400_000} days before the record "
                               f"timestamp ({iso_ms(record_ms)})")
        if clock_ms > 0:
            if t_ms < clock_ms - self.max_past_ms:
                raise Rejected("time_out_of_range", f"{field}={iso_ms(t_ms)} is more than "
                               f"{self.max_past_ms // 86_400_000} days before the partition's "
                               f"clock ({iso_ms(clock_ms)})")


SIGNATURE = "gwsignature"  # a CloudEvents extension attribute: lowercase letters, <= 20


def _signed_bytes(env: dict) -> bytes:
    """What a command's signature covers: its id, source, type, time and data (canonical JSON)."""
    head = "\n".join(str(env.get(k, "")) for k in ("id", "source", "type", "time"))
    return head.encode() + b"\n" + orjson.dumps(env.get("data"), option=orjson.OPT_SORT_KEYS)


def sign_command(key: str, env: dict) -> dict:
    """The command envelope with its ``gwsignature`` (base64url HMAC-SHA256 with `key`)."""
    mac = hmac.new(key.encode(), _signed_bytes(env), hashlib.sha256).digest()
    return {**env, SIGNATURE: base64.urlsafe_b64encode(mac).decode().rstrip("=")}


def _check_signature(env: dict, key: str) -> None:
    given = env.get(SIGNATURE)
    if not isinstance(given, str) or not given:
        raise Rejected("bad_signature", "command is not signed (gwsignature): only the web server "
                                        "and action links may write commands here")
    want = sign_command(key, {k: v for k, v in env.items() if k != SIGNATURE})[SIGNATURE]
    if not hmac.compare_digest(given.encode("utf-8", "replace"), want.encode()):
        raise Rejected("bad_signature", "command signature does not match (forged or altered)")


def decode_command(value: bytes | None, max_bytes: int, record_ms: int | None = None,
                   bounds: TimeBounds | None = None, clock_ms: int = 0,
                   key: str | None = None) -> dict:
    """A ``commands.v1`` record -> its validated data (``at_ms`` added), or `Rejected`; with
    `key`, the record must carry a valid signature (`sign_command`)."""
    env = decode_as(value, max_bytes, "gridwatch.command.v1", "command.json", "bad_command",
                    "commands.v1")
    if key:
        _check_signature(env, key)
    data = env["data"]
    if "~" not in data["incident_id"]:
        raise Rejected("unknown_incident", f"{data['incident_id'][:128]!r} is not a gridwatch "
                                           "incident id")
    at = parse_time(data["at"], "at")
    at_ms = int(at.timestamp() * 1000)
    (bounds or TimeBounds()).check(at_ms, "at", record_ms, clock_ms)
    return {**data, "at_ms": at_ms}


def decode_tick(value: bytes | None, max_bytes: int, record_ms: int | None = None,
                bounds: TimeBounds | None = None) -> int:
    """A ``clock.v1`` record -> the tick in epoch milliseconds, or `Rejected`."""
    data = decode_as(value, max_bytes, "gridwatch.clock.v1", "clock.json", "bad_tick", "clock.v1")["data"]
    tick = data["tick"]
    if isinstance(tick, bool) or not _MIN_MS <= tick < _MAX_MS:
        raise Rejected("bad_tick", f"tick {tick!r} is not epoch milliseconds in 2000..2100")
    at = parse_time(data["at"], "at")
    if int(at.timestamp() * 1000) != tick:
        raise Rejected("bad_tick", f"tick {tick} and at={data['at'][:40]} disagree")
    (bounds or TimeBounds()).check(tick, "tick", record_ms, past=False)
    return int(tick)


def record_ms(msg: Any) -> int | None:
    """A faust message's record timestamp in epoch milliseconds (None when it has none)."""
    ts = getattr(msg, "timestamp", None)
    return int(ts * 1000) if isinstance(ts, int | float) and ts > 0 else None


Send = Callable[[bytes, bytes], Awaitable[Any]]


class DlqPolicy:
    """The one error policy of the stream stages: rejections and failures -> ``dlq.v1``."""

    def __init__(self, send: Send, keep_bytes: int, log: Any) -> None:
        self.send, self.keep_bytes, self.log = send, keep_bytes, log
        self.counts: dict[str, int] = {}

    async def write(self, msg: Any, code: str, reason: str, retriable: bool = False,
                    stage: str = "") -> None:
        ev = dlq_event(msg.topic, msg.partition, msg.offset, record_ms(msg), msg.key, msg.value,
                       code, reason, retriable, keep_bytes=self.keep_bytes)
        await self.send(dlq_key(msg.topic), orjson.dumps(ev))
        self.counts[code] = self.counts.get(code, 0) + 1
        DLQ_RECORDS.labels(stage or "unknown", code).inc()
        log = self.log.error if code == "internal_error" else self.log.warning
        log("input_rejected", stage=stage, code=code, reason=reason[:300], topic=msg.topic,
            partition=msg.partition, offset=msg.offset)

    def guard(self, msg: Any, stage: str) -> _Guard:
        """``async with policy.guard(msg, "incidents"):`` around the work on one record."""
        return _Guard(self, msg, stage)


class _Guard:
    def __init__(self, policy: DlqPolicy, msg: Any, stage: str) -> None:
        self.policy, self.msg, self.stage = policy, msg, stage

    async def __aenter__(self) -> _Guard:
        return self

    async def __aexit__(self, et: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> bool:
        if exc is None or not isinstance(exc, Exception):
            return False  # cancellation and exits pass through
        if isinstance(exc, Rejected):
            await self.policy.write(self.msg, exc.code, exc.reason, exc.retriable, self.stage)
        else:
            await self.policy.write(self.msg, "internal_error",
                                    f"{self.stage}: {type(exc).__name__}: {str(exc)[:500]}",
                                    stage=self.stage)
        return True
