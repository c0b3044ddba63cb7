"""Running a replay: read a log (Kafka or the archive), pace it, feed the core or a shadow
namespace, compare with what was recorded."""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from typing import Any

from pipeline.errors import ConfigError
from pipeline.replay import OUTPUT_TOPICS, PIPELINE_LOG, RAW_LOG, CoreReplayer, LogRecord, by_id, log_order
from pipeline.settings import Settings


@dataclass(frozen=True)
class Source:
    """Where a replay reads: ``kafka`` (by time range) or ``archive`` (a directory)."""

    kind: str
    archive: str | None = None
    since_ms: int | None = None
    until_ms: int | None = None

    def __post_init__(self) -> None:
        if self.kind not in ("kafka", "archive"):
            raise ConfigError(f"--from {self.kind!r}: use kafka or archive")
        if self.kind == "archive" and not self.archive:
            raise ConfigError("--from archive needs --archive DIR")
        if self.since_ms is not None and self.until_ms is not None and self.until_ms < self.since_ms:
            raise ConfigError("--until is before --since")

    def streams(self, settings: Settings, shorts: Iterable[str]) -> tuple[list[Iterator[LogRecord]], int]:
        if self.kind == "archive":
            from pipeline.archive import partition_streams

            return partition_streams(self.archive, shorts, self.since_ms, self.until_ms)  # type: ignore[arg-type]
        from ops.logio import kafka_streams

        return kafka_streams(settings, shorts, self.since_ms, self.until_ms)

    def records(self, settings: Settings, shorts: Iterable[str]) -> tuple[Iterator[LogRecord], int]:
        """The log of these topics in log order, and (an upper bound of) its length."""
        streams, total = self.streams(settings, shorts)
        return log_order(streams), total


class Pacer:
    """Sleeps so records go out at ``speed`` times the pace of their timestamps (0: full speed)."""

    def __init__(self, speed: float) -> None:
        if speed < 0:
            raise ConfigError(f"--speed {speed}: must be 0 (full speed) or positive")
        self.speed = speed
        self.t0: int | None = None
        self.w0 = 0.0

    def __call__(self, rec: LogRecord) -> None:
        if not self.speed:
            return
        if self.t0 is None:
            self.t0, self.w0 = rec.timestamp_ms, time.monotonic()
            return
        ahead = (rec.timestamp_ms - self.t0) / 1000.0 / self.speed - (time.monotonic() - self.w0)
        if ahead > 0:
            time.sleep(ahead)


def _progress(records: Iterator[LogRecord], total: int, enabled: bool | None) -> Iterator[LogRecord]:
    from tqdm import tqdm

    # disable=None: tqdm shows the bar only when stderr is a terminal
    return iter(tqdm(records, total=total or None, unit="rec", mininterval=0.5, leave=False,
                     disable=None if enabled is None else not enabled))


def replay_core(settings: Settings, source: Source, speed: float = 0.0,
                progress: bool | None = None, reingest: bool = False) -> dict[str, Any]:
    """Replay through the pure core; returns figures and the replayer (key ``replayer``)."""
    from pipeline.app import build_core

    records, total = source.records(settings, RAW_LOG if reingest else PIPELINE_LOG)
    replayer = CoreReplayer(settings, build_core(settings))
    pace = Pacer(speed)
    started = time.perf_counter()
    n = 0
    for rec in _progress(records, total, progress):
        pace(rec)
        replayer.feed(rec)
        n += 1
    replayer.flush()
    seconds = time.perf_counter() - started
    st = replayer.stats
    return {"target": "core", "source": source.kind, "reingest": reingest, "records": n, "inputs": st.inputs,
            "ticks": st.ticks, "commands": st.commands, "registry": st.registry,
            "outputs": dict(sorted(st.outputs.items())), "rejected": dict(sorted(st.rejected.items())),
            "seconds": round(seconds, 3), "events_per_s": round(n / seconds) if seconds else None,
            "speed": speed or "full", "replayer": replayer}


def recorded_outputs(settings: Settings, source: Source) -> dict[str, dict[str, dict]]:
    """What the pipeline wrote to the output topics, by id (duplicates collapse).

    Output records carry the time they were produced, which follows the inputs' by a moment:
    the time range is widened by a minute at its end so they are all read.
    """
    widened = replace(source, until_ms=source.until_ms + 60_000) if source.until_ms is not None else source
    records, _ = widened.records(settings, OUTPUT_TOPICS)
    return by_id((r.topic, r.key, r.value) for r in records)


def compare(recorded: dict[str, dict[str, dict]], replayed: dict[str, dict[str, dict]]) -> dict[str, Any]:
    """Per output topic: how many records match by id and body, and which differ."""
    out: dict[str, Any] = {"identical": True}
    for topic in OUTPUT_TOPICS:
        a, b = recorded.get(topic, {}), replayed.get(topic, {})
        missing = sorted(set(a) - set(b))
        extra = sorted(set(b) - set(a))
        differ = sorted(k for k in set(a) & set(b) if a[k] != b[k])
        out[topic] = {"recorded": len(a), "replayed": len(b), "same": len(a) - len(missing) - len(differ),
                      "missing": missing[:20], "extra": extra[:20], "differ": differ[:20]}
        out["identical"] &= not (missing or extra or differ)
    return out


def replay_shadow(settings: Settings, source: Source, shadow_prefix: str, speed: float = 0.0,
                  progress: bool | None = None) -> dict[str, Any]:
    """Copy the log's raw inputs into the shadow namespace, paced; a shadow worker does the rest."""
    from ops.logio import publish_shadow

    records, total = source.records(settings, RAW_LOG)
    started = time.perf_counter()
    n = publish_shadow(settings, shadow_prefix, _progress(records, total, progress), Pacer(speed))
    seconds = time.perf_counter() - started
    return {"target": "shadow", "source": source.kind, "prefix": shadow_prefix, "records": n,
            "seconds": round(seconds, 3), "events_per_s": round(n / seconds) if seconds else None,
            "speed": speed or "full",
            "worker": f"GRIDWATCH_TOPIC_PREFIX={shadow_prefix} GRIDWATCH_APP_ID=gridwatch-shadow "
                      "GRIDWATCH_CLOCK=off gridwatch worker"}
