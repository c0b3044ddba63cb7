"""A sorted time series with rolling window sums kept up to date incrementally.

Readings arrive mostly in time order, sometimes late or twice. `add` inserts (or replaces a
reading at the same time, so a duplicate never counts twice) and corrects the sums of every
window it falls in; `sums_at` slides the windows forward. Each reading enters and leaves each
window once, so a rain gauge's 1/3/6/24/72 h sums cost O(1) per evaluation instead of a scan of
its 72 h of readings. Sums are recomputed exactly whenever old readings are trimmed.
"""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right


class Series:
    """Times (ms) and values, sorted by time; optional rolling sums over `windows` (ms)."""

    __slots__ = ("at", "end", "start", "sums", "times", "values", "windows")

    def __init__(self, windows: tuple[int, ...] = ()) -> None:
        self.windows = windows
        self.times: list[int] = []
        self.values: list[float] = []
        self.sums = [0.0] * len(windows)
        self.start = [0] * len(windows)  # first index inside each window
        self.end = 0  # first index after the evaluation time
        self.at = -(1 << 62)  # evaluation time of the sums (none yet)

    def __len__(self) -> int:
        return len(self.times)

    def add(self, t: int, v: float) -> None:
        """Insert a reading; a reading at an existing time replaces it."""
        times = self.times
        k = bisect_left(times, t)
        if k < len(times) and times[k] == t:
            delta, self.values[k] = v - self.values[k], v
            if t <= self.at:
                for i, w in enumerate(self.windows):
                    if t > self.at - w:
                        self.sums[i] += delta
            return
        times.insert(k, t)
        self.values.insert(k, v)
        if t <= self.at:  # a late reading inside the evaluated range
            self.end += 1
            for i, w in enumerate(self.windows):
                if t > self.at - w:
                    self.sums[i] += v
                else:
                    self.start[i] += 1

    def sums_at(self, at: int) -> list[float]:
        """Window sums over (at - w, at]; `at` never moves back (an earlier `at` is ignored)."""
        if at > self.at:
            self.at = at
            times, values, sums = self.times, self.values, self.sums
            n = len(times)
            while self.end < n and times[self.end] <= at:
                v = values[self.end]
                for i in range(len(sums)):
                    sums[i] += v
                self.end += 1
            for i, w in enumerate(self.windows):
                s, cut = self.start[i], at - w
                while s < self.end and times[s] <= cut:
                    sums[i] -= values[s]
                    s += 1
                self.start[i] = s
        return self.sums

    def value_at(self, t: int) -> tuple[int, float] | None:
        """The newest reading at or before t."""
        k = bisect_right(self.times, t) - 1
        return (self.times[k], self.values[k]) if k >= 0 else None

    def trim(self, before: int) -> None:
        """Forget readings older than `before` (must be outside every window)."""
        k = bisect_left(self.times, before)
        if k == 0:
            return
        k = min([k, self.end, *self.start])
        del self.times[:k], self.values[:k]
        self.end -= k
        self.start = [s - k for s in self.start]
        self.sums = [math.fsum(self.values[s:self.end]) for s in self.start]  # no drift
