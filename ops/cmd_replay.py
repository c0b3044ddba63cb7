"""`gridwatch archive|replay|whatif`: history, deterministic replay and threshold what-ifs."""

from __future__ import annotations

import signal
import sys
from collections.abc import Callable
from typing import Any

import click
import orjson

from ops.cli_util import EXIT_FAILED, emit_json, parse_time_option, readable_errors
from ops.cmd_runtime import broker_opt, broker_settings, prefix_opt, settings_from
from pipeline.envelope import iso_ms


@click.group()
def archive() -> None:
    """The archive: every topic in compressed, time-partitioned segment files."""


@archive.command("run")
@click.option("--dir", "root", required=True, type=click.Path(file_okay=False), help="Archive root.")
@broker_opt
@prefix_opt
@click.option("--flush-s", type=click.FloatRange(0.1, 3600), default=60.0, show_default=True,
              help="Write segments and commit at least this often.")
@click.option("--once", is_flag=True, help="Archive up to the current end offsets, then exit.")
@click.option("--json", "as_json", is_flag=True, help="What was archived, as JSON, when it stops.")
@readable_errors
def archive_run(root: str, broker: str | None, topic_prefix: str | None, flush_s: float, once: bool,
                as_json: bool) -> None:
    """Copy every registry topic into the archive (group <app id>-archive), until Ctrl-C."""
    from ops.logio import ArchiveSink
    from pipeline.logs import configure
    from pipeline.telemetry import start_metrics_server

    s = broker_settings(broker=broker, topic_prefix=topic_prefix)
    configure(s.log_level)
    start_metrics_server(s, "archiver")
    sink = ArchiveSink(s, root, flush_s)
    signal.signal(signal.SIGTERM, lambda *_: sink.stop.set())
    try:
        n = sink.run(until_caught_up=once)
    except KeyboardInterrupt:
        sink.stop.set()
        n = sink.records
    if as_json:
        emit_json({"ok": True, "archived": n, "dir": root, "segments": sink.writer.segments_written})
        return
    click.echo(f"archived {n} record(s) into {root} ({sink.writer.segments_written} segment(s))")


@archive.command("ls")
@click.option("--dir", "root", required=True, type=click.Path(file_okay=False), help="Archive root.")
@click.option("--json", "as_json", is_flag=True)
@readable_errors
def archive_ls(root: str, as_json: bool) -> None:
    """Per topic: segments, records, size on disk, time span."""
    from pipeline.archive import summary

    rows = summary(root)
    for r in rows:
        r["first"], r["last"] = iso_ms(r.pop("first_ms")), iso_ms(r.pop("last_ms"))
    if as_json:
        emit_json(rows)
        return
    click.echo(f"{'topic':22} {'segments':>8} {'records':>9} {'bytes':>11}  first .. last")
    for r in rows:
        click.echo(f"{r['topic']:22} {r['segments']:>8} {r['records']:>9} {r['bytes']:>11}  "
                   f"{r['first']} .. {r['last']}")


def source_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """--from, --archive, --since, --until, --detectors, --policy, broker and prefix."""
    for opt in reversed((
        click.option("--from", "from_", type=click.Choice(["kafka", "archive"]), default="kafka",
                     show_default=True, help="Read the log from Kafka or from the archive."),
        click.option("--archive", "archive_dir", type=click.Path(file_okay=False),
                     help="Archive root (with --from archive)."),
        click.option("--since", help="Start of the time range (ISO 8601 with offset)."),
        click.option("--until", help="End of the time range (ISO 8601 with offset)."),
        click.option("--detectors", "detectors_file", type=click.Path(dir_okay=False, exists=True),
                     help="Detector thresholds file (default GRIDWATCH_DETECTORS or the packaged one)."),
        click.option("--policy", "policy_file", type=click.Path(dir_okay=False, exists=True),
                     help="Escalation policy file (default GRIDWATCH_POLICY or the packaged one)."),
        broker_opt, prefix_opt,
    )):
        fn = opt(fn)
    return fn


def _setup(from_: str, archive_dir: str | None, since: str | None, until: str | None,
           detectors_file: str | None, policy_file: str | None, broker: str | None,
           topic_prefix: str | None, needs_broker: bool) -> tuple[Any, Any]:
    """Settings and the source, the options checked first; then the broker, when this run reads
    or writes Kafka."""
    from ops.replay import Source

    src = Source(from_, archive_dir, parse_time_option(since, "--since"), parse_time_option(until, "--until"))
    s = (broker_settings if needs_broker else settings_from)(
        broker=broker, topic_prefix=topic_prefix, detectors_file=detectors_file, policy_file=policy_file)
    return s, src


@click.command()
@source_options
@click.option("--to", "target", type=click.Choice(["core", "shadow"]), default="core", show_default=True,
              help="core: the pure pipeline in this process, no Kafka; shadow: copy the inputs into "
                   "the shadow namespace for a shadow worker.")
@click.option("--shadow-prefix", default="shadow.", show_default=True,
              help="Topic prefix of the shadow namespace (never the live one).")
@click.option("--speed", type=click.FloatRange(0, 1e9), default=0.0, show_default=True,
              help="0: full speed; 60: an hour of log per minute.")
@click.option("--reingest", is_flag=True,
              help="(core) replay the raw inputs through ingest too, instead of from located.v1.")
@click.option("--compare/--no-compare", default=True, show_default=True,
              help="(core) compare the outputs with those recorded in the same source.")
@click.option("--out", type=click.Path(dir_okay=False), help="(core) write the outputs as JSON Lines.")
@click.option("--progress/--no-progress", default=None, help="Progress bar (default: on a terminal).")
@click.option("--json", "as_json", is_flag=True, help="One JSON document with the figures (events/s).")
@readable_errors
def replay(from_: str, archive_dir: str | None, since: str | None, until: str | None,
           detectors_file: str | None, policy_file: str | None, broker: str | None,
           topic_prefix: str | None, target: str, shadow_prefix: str, speed: float,
           reingest: bool, compare: bool, out: str | None, progress: bool | None, as_json: bool) -> None:
    """Replay a recorded log deterministically (clock ticks from the log); exit 1 if the core's
    outputs differ from those recorded."""
    from ops import replay as rp
    from pipeline.replay import by_id

    s, src = _setup(from_, archive_dir, since, until, detectors_file, policy_file, broker, topic_prefix,
                    needs_broker=from_ == "kafka" or target == "shadow")
    if target == "shadow":
        result = rp.replay_shadow(s, src, shadow_prefix, speed, progress)
        _show(result, as_json)
        return
    result = rp.replay_core(s, src, speed, progress, reingest)
    replayer = result.pop("replayer")
    if out:
        with open(out, "wb") as fh:
            for topic, key, value in replayer.outputs:
                row = {"topic": topic, "key": key.decode(),
                       "value": None if value is None else orjson.loads(value)}  # None: tombstone
                fh.write(orjson.dumps(row) + b"\n")
    if compare:
        result["compare"] = rp.compare(rp.recorded_outputs(s, src), by_id(replayer.outputs))
    _show(result, as_json)
    if compare and not result["compare"]["identical"]:
        sys.exit(EXIT_FAILED)


def _show(result: dict, as_json: bool) -> None:
    if as_json:
        emit_json(result)
        return
    for k, v in result.items():
        click.echo(f"{k}: {v}")


@click.command()
@source_options
@click.option("--json", "as_json", is_flag=True, help="The diff as JSON.")
@click.option("--limit", type=click.IntRange(0, 100_000), default=50, show_default=True,
              help="Rows of each kind in the table.")
@readable_errors
def whatif(from_: str, archive_dir: str | None, since: str | None, until: str | None,
           detectors_file: str | None, policy_file: str | None, broker: str | None,
           topic_prefix: str | None, as_json: bool, limit: int) -> None:
    """Replay with other thresholds (--detectors) or policy (--policy) and diff the alerts and
    escalations against those recorded: added, removed, changed in level or time."""
    from ops import replay as rp
    from pipeline.replay import by_id
    from pipeline.whatif import diff, summary_by_kind

    if not (detectors_file or policy_file):
        raise click.UsageError("give --detectors and/or --policy: the what-if configuration")
    s, src = _setup(from_, archive_dir, since, until, detectors_file, policy_file, broker, topic_prefix,
                    needs_broker=from_ == "kafka")
    result = rp.replay_core(s, src, 0.0, False)
    d = diff(rp.recorded_outputs(s, src), by_id(result.pop("replayer").outputs))
    doc = {"summary": d.summary(), "by_kind": summary_by_kind(d), "added": d.added,
           "removed": d.removed, "changed": d.changed, "replay": result}
    if as_json:
        emit_json(doc)
        return
    click.echo("what-if: " + ", ".join(f"{k} {v}" for k, v in doc["summary"].items()))
    for row in doc["by_kind"]:
        click.echo(f"  {row['change']:8} {row['what']:10} {row['kind']:16} {row['count']}")
    for label, rows in (("+", d.added), ("-", d.removed), ("~", d.changed)):
        for r in rows[:limit]:
            extra = f"  (was {r['was_level']} at {r['was_at']})" if label == "~" else ""
            click.echo(f"{label} {r['what']:10} {r['at']}  {r['level']:12} {r['status']:16} "
                       f"{r['about']}{extra}")
