"""Report clustering (网格员上报归并): many reports of one thing make one alert.

Each report is classified: its category (or an alias) maps to a configured municipal case
category (CJ/T 315: public facilities, roads and traffic, city appearance, street order, safety
hazards, disputes, fraud risk, emergencies...), unknown ones to the fallback; its severity is the
highest of what the reporter chose, the category's floor and any configured keyword in the text.

Reports of the same category within `cluster_distance_m` of a cluster's first report and within
`cluster_window` of its last report join it (ten reports of one fallen wall). Like Alertmanager
grouping, a new cluster's first alert waits `group_wait` of event time for more reports (an
``immediate`` category or a critical report goes at once), then an updated alert with the new
count goes out at most once per `group_interval`. Duplicate report ids never count twice.
Clusters are formed within one partition (grids hash to partitions by grid id). Report ids are
remembered for `dedupe_window` of event time after their cluster closes; a report older than
that behind the watermark is recorded as late (DLQ ``late_event``), not clustered again.
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass, field

from pipeline.detect.alerts import Alert
from pipeline.detect.config import SEVERITIES, ReportsConfig
from pipeline.errors import Rejected

_M_PER_DEG = 111_320.0


@dataclass(slots=True)
class Cluster:
    """An open group of reports of one category in one place.

    Until its first alert goes out, the cluster's id, grid and centre follow its earliest report
    (by event time, then id), so the id does not depend on the order reports arrived in.
    """

    cluster_id: str
    category: str
    grid_id: str
    path: tuple[str, ...]
    lon: float
    lat: float
    first_ms: int
    last_ms: int
    severity: int
    anchor: tuple[int, str] = (0, "")  # (time, id) of the earliest report
    seq: int = 0  # this partition's cluster number (timer entries refer to it)
    report_ids: dict[str, int] = field(default_factory=dict)  # id -> observed ms
    grids: set[str] = field(default_factory=set)
    due_ms: int = 0  # when the next alert record may go out (0: nothing pending)
    sent_count: int = 0
    last_sent_ms: int = 0


class Classifier:
    """Category and severity of one report."""

    def __init__(self, cfg: ReportsConfig) -> None:
        self.cfg = cfg
        self.alias = {}
        for name, cat in cfg.categories.items():
            self.alias[name] = name
            for a in cat.aliases:
                self.alias[a] = name
        self.keywords = [(SEVERITIES.index(sev), words) for sev, words in cfg.keywords.items()]

    def classify(self, category: str, severity: str, text: str) -> tuple[str, int]:
        cat = self.alias.get(category, self.cfg.fallback_category)
        sev = max(SEVERITIES.index(severity) if severity in SEVERITIES else 0,
                  SEVERITIES.index(self.cfg.categories[cat].severity))
        for level, words in self.keywords:
            if level > sev and any(w in text for w in words):
                sev = level
        return cat, sev


def distance_m(lon1: float, lat1: float, lon2: float, lat2: float) -> float:
    """Equirectangular distance: exact enough within a few kilometres."""
    x = (lon2 - lon1) * math.cos(math.radians((lat1 + lat2) / 2)) * _M_PER_DEG
    y = (lat2 - lat1) * _M_PER_DEG
    return math.hypot(x, y)


class ReportClusterer:
    """One partition's open clusters."""

    def __init__(self, cfg: ReportsConfig) -> None:
        self.cfg = cfg
        self.classifier = Classifier(cfg)
        # open clusters by (category, cell); cells are cluster_distance_m high and wide enough
        # in longitude for any latitude up to 60 degrees (all of China), so 3 x 3 cells cover
        # every cluster within reach
        self.open: dict[tuple[str, int, int], list[Cluster]] = {}
        self.by_seq: dict[int, Cluster] = {}
        self._cell_lat = cfg.cluster_distance_m / _M_PER_DEG
        self._cell_lon = cfg.cluster_distance_m / (_M_PER_DEG * 0.5)
        self._timers: list[tuple[int, int]] = []  # (due, cluster seq)
        self._swept_ms = 0
        self._seq = 0
        self.seen: dict[str, int] = {}  # report id -> observed ms, for dedupe after a cluster closes
        self._seen_heap: list[tuple[int, str]] = []  # (observed ms, report id): expiry order

    def _cell(self, category: str, lon: float, lat: float) -> tuple[str, int, int]:
        return category, int(lon // self._cell_lon), int(lat // self._cell_lat)

    def _place(self, c: Cluster, add: bool) -> None:
        key = self._cell(c.category, c.lon, c.lat)
        if add:
            self.open.setdefault(key, []).append(c)
            return
        cell = self.open[key]
        cell.remove(c)
        if not cell:
            del self.open[key]

    def _find(self, category: str, lon: float, lat: float, t: int) -> Cluster | None:
        """The nearest open cluster within reach (searching the 3 x 3 cells around the point)."""
        best, best_d = None, self.cfg.cluster_distance_m
        _, cx, cy = self._cell(category, lon, lat)
        for dx in (-1, 0, 1):
            for dy in (-1, 0, 1):
                for c in self.open.get((category, cx + dx, cy + dy), ()):
                    if abs(t - c.last_ms) > self.cfg.cluster_window and not c.first_ms <= t <= c.last_ms:
                        continue
                    d = distance_m(c.lon, c.lat, lon, lat)
                    if d < best_d or (d == best_d and (best is None or c.seq < best.seq)):
                        best, best_d = c, d
        return best

    def report(self, report_id: str, category: str, severity: str, text: str, grid_id: str,
               path: tuple[str, ...], lon: float, lat: float, t_ms: int) -> list[Alert]:
        """Add one located report; return an alert when it must go out at once."""
        if report_id in self.seen:
            return []  # a duplicate of a report already clustered
        if self._swept_ms and t_ms < self._swept_ms - self.cfg.dedupe_window:
            raise Rejected("late_event", f"report {report_id} observed {(self._swept_ms - t_ms) // 60_000}"
                                         " min behind the watermark, beyond dedupe_window; not clustered")
        cat, sev = self.classifier.classify(category, severity, text)
        c = self._find(cat, lon, lat, t_ms)
        if c is None:
            self._seq += 1
            c = Cluster("", cat, grid_id, path, lon, lat, t_ms, t_ms, sev, (t_ms, report_id), self._seq)
            self._place(c, True)
            self.by_seq[c.seq] = c
        elif not c.sent_count and (t_ms, report_id) < c.anchor:
            self._place(c, False)
            c.anchor, c.grid_id, c.path, c.lon, c.lat = (t_ms, report_id), grid_id, path, lon, lat
            self._place(c, True)
        c.report_ids[report_id] = t_ms
        self.seen[report_id] = t_ms
        heapq.heappush(self._seen_heap, (t_ms, report_id))
        c.grids.add(grid_id)
        c.first_ms, c.last_ms = min(c.first_ms, t_ms), max(c.last_ms, t_ms)
        c.severity = max(c.severity, sev)
        urgent = self.cfg.categories[cat].immediate or c.severity == len(SEVERITIES) - 1
        if urgent and not c.sent_count:
            return [self._emit(c, t_ms)]
        due = c.last_sent_ms + self.cfg.group_interval if c.sent_count else c.first_ms + self.cfg.group_wait
        if not c.due_ms or due < c.due_ms:  # an earlier report moves the first alert earlier
            c.due_ms = due
            heapq.heappush(self._timers, (due, c.seq))
        return []

    def _emit(self, c: Cluster, at: int) -> Alert:
        if not c.cluster_id:
            c.cluster_id = f"report_cluster:{c.grid_id}:{c.category}:{c.anchor[1]}"
        c.sent_count, c.last_sent_ms, c.due_ms = len(c.report_ids), at, 0
        ids = sorted(c.report_ids, key=lambda r: (c.report_ids[r], r))
        evidence = {"category": c.category, "label": self.cfg.categories[c.category].label,
                    "count": len(ids), "report_ids": ids[: self.cfg.max_ids],
                    "first_report": c.first_ms, "last_report": c.last_ms,
                    "grids": sorted(c.grids), "center": [c.lon, c.lat],
                    "distance_m": self.cfg.cluster_distance_m}
        return Alert(c.cluster_id, "report_cluster", c.grid_id, SEVERITIES[c.severity], "firing", at,
                     f"n{len(ids)}", evidence, path=c.path, reason="reports")

    def advance(self, now_ms: int) -> list[Alert]:
        """Send what group_wait/group_interval allow; close clusters past their window."""
        out: list[Alert] = []
        while self._timers and self._timers[0][0] <= now_ms:
            due, seq = heapq.heappop(self._timers)
            c = self.by_seq.get(seq)
            if c is not None and c.due_ms == due:
                if len(c.report_ids) != c.sent_count:
                    out.append(self._emit(c, max(due, c.last_ms)))
                c.due_ms = 0
        if now_ms - self._swept_ms < 60_000:
            return out
        self._swept_ms = now_ms
        horizon = now_ms - self.cfg.dedupe_window
        heap, seen = self._seen_heap, self.seen
        while heap and heap[0][0] < horizon:  # forget ids past the dedupe window, oldest first
            t, rid = heapq.heappop(heap)
            if seen.get(rid) == t:
                del seen[rid]
        for c in [c for c in self.by_seq.values()
                  if not c.due_ms and now_ms - c.last_ms > self.cfg.cluster_window]:
            del self.by_seq[c.seq]
            self._place(c, False)
        return out
