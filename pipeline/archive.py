"""The archive (归档): every topic's records in compressed, time-partitioned segment files.

History outlives Kafka retention and the embedded broker's memory. Layout under the archive
root::

    <topic>/<YYYY-MM-DD>/<HH>/p<partition>.o<first>-<last>.t<first_ms>-<last_ms>.n<count>.jsonl.gz

one directory per topic (short name), day and hour (UTC) of the segment's first record; each
line is one record: ``offset``, ``timestamp`` (ms), ``key`` and ``value`` (UTF-8 text, or
``key_b64``/``value_b64`` for bytes that are not), ``headers``. A segment is written to a hidden
``.part`` file and renamed when complete, so readers never see half a segment; its name carries
its offsets, times and count, so ``archive ls`` reads no file. Segments written again after a
crash (the sink commits offsets only after its segments are renamed) overlap earlier ones;
readers skip offsets they have already yielded, so nothing is doubled.
"""

from __future__ import annotations

import base64
import gzip
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import orjson

from pipeline.errors import ConfigError
from pipeline.replay import LogRecord
from pipeline.telemetry import ARCHIVED_RECORDS

SEGMENT_RE = re.compile(r"^p(\d+)\.o(\d+)-(\d+)\.t(\d+)-(\d+)\.n(\d+)\.jsonl\.gz$")


@dataclass(frozen=True, slots=True)
class Segment:
    """One closed segment file, described by its name."""

    path: Path
    topic: str
    partition: int
    first_offset: int
    last_offset: int
    first_ms: int
    last_ms: int
    count: int

    @classmethod
    def parse(cls, path: Path, topic: str) -> Segment | None:
        m = SEGMENT_RE.match(path.name)
        if not m:
            return None
        p, o1, o2, t1, t2, n = (int(x) for x in m.groups())
        return cls(path, topic, p, o1, o2, t1, t2, n)


def _text(field: str, raw: bytes | None, line: dict) -> None:
    if raw is None:
        line[field] = None
        return
    try:
        line[field] = raw.decode("utf-8")
    except UnicodeDecodeError:
        line[f"{field}_b64"] = base64.b64encode(raw).decode()


def _raw(field: str, line: dict) -> bytes | None:
    if f"{field}_b64" in line:
        return base64.b64decode(line[f"{field}_b64"])
    v = line.get(field)
    return None if v is None else v.encode("utf-8")


@dataclass(slots=True)
class _Open:
    """A segment being filled."""

    topic: str
    partition: int
    first_offset: int
    first_ms: int
    last_offset: int = -1
    last_ms: int = 0
    count: int = 0
    nbytes: int = 0
    lines: list[bytes] = field(default_factory=list)
    hour: int = 0  # of the first record: the segment's folder

    def __post_init__(self) -> None:
        self.hour = self.first_ms // 3_600_000


class ArchiveWriter:
    """Buffers records per (topic, partition) and writes them out as segments on `roll`."""

    def __init__(self, root: str | Path, max_records: int = 100_000, max_bytes: int = 64 << 20) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.max_records = max_records
        self.max_bytes = max_bytes
        self.open: dict[tuple[str, int], _Open] = {}
        self.segments_written = 0  # a count, not a list: an archiver runs for months

    def add(self, topic: str, partition: int, offset: int, timestamp_ms: int, key: bytes | None,
            value: bytes | None, headers: Iterable[tuple[str, bytes]] = ()) -> None:
        """Buffer one record; a segment that is full or crosses an hour is written first."""
        seg = self.open.get((topic, partition))
        if seg is not None and (seg.hour != timestamp_ms // 3_600_000 or seg.count >= self.max_records
                                or seg.nbytes >= self.max_bytes):
            self._write(seg)
            seg = None
        if seg is None:
            seg = self.open[(topic, partition)] = _Open(topic, partition, offset, timestamp_ms,
                                                        offset, timestamp_ms)
        line: dict = {"offset": offset, "timestamp": timestamp_ms}
        _text("key", key, line)
        _text("value", value, line)
        hdrs = [[k, v.decode("utf-8", "replace") if isinstance(v, bytes) else v] for k, v in headers]
        if hdrs:
            line["headers"] = hdrs
        data = orjson.dumps(line) + b"\n"
        seg.lines.append(data)
        seg.nbytes += len(data)
        seg.count += 1
        seg.last_offset = offset
        seg.first_ms, seg.last_ms = min(seg.first_ms, timestamp_ms), max(seg.last_ms, timestamp_ms)

    def roll(self) -> list[Segment]:
        """Write every buffered segment; after this the consumed offsets may be committed."""
        done = []
        for seg in list(self.open.values()):
            done.append(self._write(seg))
        return done

    def _write(self, seg: _Open) -> Segment:
        del self.open[(seg.topic, seg.partition)]
        day = datetime.fromtimestamp(seg.hour * 3600, UTC)
        folder = self.root / seg.topic / day.strftime("%Y-%m-%d") / day.strftime("%H")
        folder.mkdir(parents=True, exist_ok=True)
        name = (f"p{seg.partition}.o{seg.first_offset}-{seg.last_offset}.t{seg.first_ms}-{seg.last_ms}"
                f".n{seg.count}.jsonl.gz")
        tmp = folder / f".{name}.part"
        with open(tmp, "wb") as fh:
            with gzip.GzipFile(fileobj=fh, mode="wb", compresslevel=6, mtime=0) as gz:
                gz.write(b"".join(seg.lines))
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, folder / name)
        _fsync_dir(folder)  # the rename itself survives a power cut before offsets are committed
        self.segments_written += 1
        ARCHIVED_RECORDS.labels(seg.topic).inc(seg.count)
        return Segment(folder / name, seg.topic, seg.partition, seg.first_offset, seg.last_offset,
                       seg.first_ms, seg.last_ms, seg.count)


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def segments(root: str | Path, topics: Iterable[str] | None = None) -> list[Segment]:
    """Every closed segment under the root (optionally of some topics), by topic, partition, offset."""
    base = Path(root)
    if not base.is_dir():
        raise ConfigError(f"archive {root}: no such directory (gridwatch archive run --dir {root})")
    wanted = set(topics) if topics is not None else None
    out = []
    for tdir in sorted(p for p in base.iterdir() if p.is_dir()):
        if wanted is not None and tdir.name not in wanted:
            continue
        for f in tdir.glob("*/*/p*.jsonl.gz"):
            seg = Segment.parse(f, tdir.name)
            if seg is not None:
                out.append(seg)
    return sorted(out, key=lambda s: (s.topic, s.partition, s.first_offset, -s.last_offset))


def read_segment(seg: Segment) -> Iterator[LogRecord]:
    """The records of one segment."""
    from pipeline.ingest import REDRIVE_HEADER

    n = 0
    try:
        with gzip.open(seg.path, "rb") as fh:
            for raw in fh:
                n += 1
                line = orjson.loads(raw)
                redrives = 0
                for k, v in line.get("headers") or ():
                    if k == REDRIVE_HEADER and str(v).isdigit():
                        redrives = int(v)
                yield LogRecord(seg.topic, seg.partition, int(line["offset"]), int(line["timestamp"]),
                                _raw("key", line), _raw("value", line), redrives)
    except (OSError, EOFError, orjson.JSONDecodeError, KeyError, TypeError, ValueError,
            AttributeError) as exc:
        raise ConfigError(f"archive segment {seg.path} is damaged at line {n}: "
                          f"{type(exc).__name__}: {exc}; move it aside and replay again") from exc


def partition_streams(root: str | Path, topics: Iterable[str], since_ms: int | None = None,
                      until_ms: int | None = None) -> tuple[list[Iterator[LogRecord]], int]:
    """One iterator per (topic, partition) in offset order, without overlaps, within the time
    range; and an upper bound of how many records they hold (for progress)."""
    by_tp: dict[tuple[str, int], list[Segment]] = {}
    total = 0
    for seg in segments(root, topics):
        if (since_ms is not None and seg.last_ms < since_ms) or \
                (until_ms is not None and seg.first_ms > until_ms):
            continue
        by_tp.setdefault((seg.topic, seg.partition), []).append(seg)
        total += seg.count

    def stream(segs: list[Segment]) -> Iterator[LogRecord]:
        seen = -1
        for seg in segs:
            if seg.last_offset <= seen:
                continue
            for rec in read_segment(seg):
                if rec.offset <= seen:
                    continue
                seen = rec.offset
                if (since_ms is None or rec.timestamp_ms >= since_ms) and \
                        (until_ms is None or rec.timestamp_ms <= until_ms):
                    yield rec

    return [stream(s) for _, s in sorted(by_tp.items())], total


def summary(root: str | Path) -> list[dict]:
    """Per topic: segments, records, bytes on disk, first and last record time, partitions."""
    rows: dict[str, dict] = {}
    for seg in segments(root):
        r = rows.setdefault(seg.topic, {"topic": seg.topic, "segments": 0, "records": 0, "bytes": 0,
                                        "first_ms": seg.first_ms, "last_ms": seg.last_ms,
                                        "partitions": set()})
        r["segments"] += 1
        r["records"] += seg.count
        r["bytes"] += seg.path.stat().st_size
        r["first_ms"] = min(r["first_ms"], seg.first_ms)
        r["last_ms"] = max(r["last_ms"], seg.last_ms)
        r["partitions"].add(seg.partition)
    out = []
    for r in rows.values():
        r["partitions"] = len(r["partitions"])
        out.append(r)
    return out
