"""Event time (事件时间): the watermark every detector advances from, and local-time helpers.

A partition's watermark is the larger of the last clock tick and the newest event time seen
minus the allowed lateness. It never goes back. An event is *late* when its time is before the
watermark; the detectors' rule for late events (documented in docs/detectors.md "Late events"):

- applied where it still changes the truth: a late activity ping still updates the subject's
  last activity and resolves an inactivity alert it proves false; a late rain reading still
  enters the rolling sums of every window it falls in;
- recorded when it is older than everything a detector keeps (e.g. rain older than the 72 h
  window): it goes to the DLQ with code ``late_event`` and the watermark in the reason.
Decisions already emitted are never rewritten in place; a correction is a new alert record.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS
CST_OFFSET_MS = 8 * HOUR_MS  # China Standard Time, UTC+8 all year (no daylight saving)


@dataclass(slots=True)
class Watermark:
    """Per-partition event-time clock."""

    lateness_ms: int
    now_ms: int = 0  # 0 until the first event or tick
    max_event_ms: int = 0

    def observe(self, event_ms: int) -> bool:
        """Advance from an event's time; return True when the event is late."""
        late = self.now_ms > 0 and event_ms < self.now_ms
        if event_ms > self.max_event_ms:
            self.max_event_ms = event_ms
            self.now_ms = max(self.now_ms, event_ms - self.lateness_ms)
        return late

    def tick(self, tick_ms: int) -> bool:
        """Advance from a clock tick; False when the tick is not newer (a duplicate tick)."""
        if tick_ms <= self.now_ms:
            return False
        self.now_ms = tick_ms
        return True


def local_hour(ms: int) -> int:
    """Hour of the day in China Standard Time."""
    return ((ms + CST_OFFSET_MS) // HOUR_MS) % 24


@functools.lru_cache(maxsize=64)
def _night_hours(night: tuple[int, int]) -> frozenset[int]:
    n0, n1 = night
    return frozenset(h % 24 for h in range(n0, n0 + ((n1 - n0) % 24)))


def quiet_deadline(start_ms: int, window_ms: int, night: tuple[int, int] | None) -> int:
    """When `window_ms` of counted quiet time has passed after `start_ms`.

    Hours in `night` ([start, end) local, may wrap midnight) do not count: someone asleep is
    not silent. Without night hours this is just start + window.
    """
    if night is None:
        return start_ms + window_ms
    night_hours = _night_hours(night)
    t, left = start_ms, window_ms
    while left > 0:
        hour_end = t - (t + CST_OFFSET_MS) % HOUR_MS + HOUR_MS
        span = hour_end - t
        if local_hour(t) not in night_hours:
            if span >= left:
                return t + left
            left -= span
        t = hour_end
    return t
