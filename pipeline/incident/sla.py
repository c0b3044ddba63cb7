"""SLA deadlines (时限) in clock time, working hours or working days on China's calendar.

Working days come from `chinese_calendar` (public holidays and the make-up workdays, 调休, that
move a weekend day into the week). Working hours are configurable windows of the local day
(China Standard Time, UTC+8, no daylight saving), by default 08:30-12:00 and 14:00-17:30.

Rules, written down because the standard leaves them to local practice:
- ``working_hours``: time counts only inside working windows of working days; a deadline that
  ends exactly at a window's close is that close.
- ``working_days``: N working days counted from the first working day *after* the start day;
  the deadline is the close of business (last window's end) of the Nth (``受理之日起N个工作日``,
  the day of acceptance not counted).
- Years the calendar package does not cover yet fall back to Monday-Friday; the result says
  so (``calendar_fallback``) so an operator can see it and update the package.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache

import chinese_calendar

CST = timedelta(hours=8)
DEFAULT_WINDOWS = ((time(8, 30), time(12, 0)), (time(14, 0), time(17, 30)))
UNITS = ("minutes", "hours", "working_hours", "working_days")


@lru_cache(maxsize=4096)
def _workday(day: date) -> tuple[bool, bool]:
    """(is a working day, decided by the fallback)."""
    try:
        return chinese_calendar.is_workday(day), False
    except NotImplementedError:
        return day.weekday() < 5, True


def is_workday(day: date) -> bool:
    """Is this local date a working day (holidays and make-up workdays included)?"""
    return _workday(day)[0]


@dataclass(frozen=True)
class Deadline:
    at_ms: int
    calendar_fallback: bool = False


def _local(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC).replace(tzinfo=None) + CST


def _ms(local: datetime) -> int:
    return int((local - CST).replace(tzinfo=UTC).timestamp() * 1000)


def deadline(start_ms: int, amount: float, unit: str,
             windows: tuple[tuple[time, time], ...] = DEFAULT_WINDOWS) -> Deadline:
    """The deadline `amount` `unit` after `start_ms` (epoch ms)."""
    if amount < 0:
        raise ValueError("an SLA amount cannot be negative")
    if unit == "minutes":
        return Deadline(start_ms + int(amount * 60_000))
    if unit == "hours":
        return Deadline(start_ms + int(amount * 3_600_000))
    if unit == "working_hours":
        return _working_hours(start_ms, amount, windows)
    if unit == "working_days":
        return _working_days(start_ms, int(amount), windows)
    raise ValueError(f"unknown SLA unit {unit!r}; use one of {', '.join(UNITS)}")


def _working_hours(start_ms: int, hours: float, windows: tuple[tuple[time, time], ...]) -> Deadline:
    left = timedelta(hours=hours)
    now = _local(start_ms)
    fallback = False
    for _ in range(3660):  # at most ten years of days
        day = now.date()
        work, fb = _workday(day)
        fallback |= fb
        if work:
            for w0, w1 in windows:
                begin = max(now, datetime.combine(day, w0))
                end = datetime.combine(day, w1)
                if begin >= end:
                    continue
                if end - begin >= left:
                    return Deadline(_ms(begin + left), fallback)
                left -= end - begin
        now = datetime.combine(day + timedelta(days=1), time(0, 0))
    raise ValueError("working-hours deadline beyond ten years")


def _working_days(start_ms: int, days: int, windows: tuple[tuple[time, time], ...]) -> Deadline:
    day = _local(start_ms).date()
    fallback = False
    counted = 0
    for _ in range(3660):
        if counted == days:
            break
        day += timedelta(days=1)
        work, fb = _workday(day)
        fallback |= fb
        counted += work
    close = windows[-1][1]
    if days == 0:  # close of business today (or of the next working day)
        day = _local(start_ms).date()
        while not is_workday(day):
            day += timedelta(days=1)
    return Deadline(_ms(datetime.combine(day, close)), fallback)
