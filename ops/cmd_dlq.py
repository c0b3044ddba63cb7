"""`gridwatch dlq ls|show|redrive`: the dead-letter topic for people."""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import click

from ops.cli_util import EXIT_FAILED, emit_json, parse_time_option, readable_errors
from ops.cmd_runtime import broker_opt, broker_settings, prefix_opt

if TYPE_CHECKING:
    from ops.dlq import DlqEntry
    from pipeline.settings import Settings

filters = [
    click.option("--code", help="Only this error code (e.g. unknown_device)."),
    click.option("--since", help="Only records written at or after this ISO 8601 time."),
    click.option("--until", help="Only records written at or before this ISO 8601 time."),
    click.option("--source", help="Only records from this source topic (e.g. pings.v1)."),
]


def with_filters(fn: Callable[..., Any]) -> Callable[..., Any]:
    for opt in reversed(filters):
        fn = opt(fn)
    return fn


Opt = str | None


def _entries(broker: Opt, topic_prefix: Opt, code: Opt, since: Opt, until: Opt,
             source: Opt) -> tuple[Settings, list[DlqEntry]]:
    from ops.dlq import read_dlq

    since_ms, until_ms = parse_time_option(since, "--since"), parse_time_option(until, "--until")
    s = broker_settings(broker=broker, topic_prefix=topic_prefix)
    return s, read_dlq(s, code, since_ms, until_ms, source)


@click.group()
def dlq() -> None:
    """The dead-letter topic (死信): what was rejected, why, and sending it back after a fix."""


@dlq.command("ls")
@broker_opt
@prefix_opt
@with_filters
@click.option("--waiting", is_flag=True, help="Only records not redriven yet.")
@click.option("--json", "as_json", is_flag=True)
@readable_errors
def dlq_ls(broker: Opt, topic_prefix: Opt, code: Opt, since: Opt, until: Opt, source: Opt,
           waiting: bool, as_json: bool) -> None:
    """List DLQ records (position, time, code, source, reason, redriven?)."""
    _, entries = _entries(broker, topic_prefix, code, since, until, source)
    rows = [e.row() for e in entries if not (waiting and e.redriven)]
    if as_json:
        emit_json({"records": rows, "count": len(rows)})
        return
    for r in rows:
        mark = "redriven" if r["redriven"] else "waiting "
        click.echo(f"{r['position']:>9} {r['at'][:19]} {mark} {r['code']:20} {r['source']:32} "
                   f"{r['reason'][:70]}")
    click.echo(f"{len(rows)} record(s)")


@dlq.command("show")
@click.argument("position")
@broker_opt
@prefix_opt
@click.option("--json", "as_json", is_flag=True,
              help="The record as JSON (what it always prints); failures as JSON too.")
@readable_errors
def dlq_show(position: str, broker: Opt, topic_prefix: Opt, as_json: bool) -> None:
    """One DLQ record in full (PARTITION:OFFSET as `ls` prints it), original bytes decoded, as JSON."""
    from pipeline.errors import ConfigError

    _, entries = _entries(broker, topic_prefix, None, None, None, None)
    found = next((e for e in entries if f"{e.partition}:{e.offset}" == position), None)
    if found is None:
        raise ConfigError(f"no DLQ record at {position} (use the position `gridwatch dlq ls` prints)")
    raw = base64.b64decode(found.data["original_b64"])
    emit_json({**found.row(), "dlq_id": found.dlq_id, "redrive": found.redriven,
               "original": raw.decode("utf-8", "replace")[:20000], "original_bytes": len(raw)})


@dlq.command("redrive")
@broker_opt
@prefix_opt
@with_filters
@click.option("--dry-run", is_flag=True, help="Say what would be redriven; send nothing.")
@click.option("--json", "as_json", is_flag=True)
@readable_errors
def dlq_redrive(broker: Opt, topic_prefix: Opt, code: Opt, since: Opt, until: Opt, source: Opt,
                dry_run: bool, as_json: bool) -> None:
    """Send matching records back to their source topic (each DLQ record at most once)."""
    from ops.dlq import redrive

    s, entries = _entries(broker, topic_prefix, code, since, until, source)
    counts = redrive(s, entries, dry_run)
    counts["dry_run"] = dry_run
    if as_json:
        emit_json(counts)
    else:
        click.echo(", ".join(f"{k}: {v}" for k, v in counts.items()))


@click.command("lag")
@broker_opt
@prefix_opt
@click.option("--group", "groups", multiple=True, help="Consumer group (default: gridwatch's).")
@click.option("--json", "as_json", is_flag=True)
@readable_errors
def lag_cmd(broker: Opt, topic_prefix: Opt, groups: tuple[str, ...], as_json: bool) -> None:
    """Consumer lag per group, topic and partition (end offset - committed offset)."""
    from ops.lag import lag, totals

    s = broker_settings(broker=broker, topic_prefix=topic_prefix)
    rows = lag(s, list(groups) or None)
    if as_json:
        emit_json({"partitions": rows, "totals": totals(rows)})
        return
    for r in rows:
        click.echo(f"{r['group']:28} {r['topic']:22} p{r['partition']:<3} committed {r['committed']:>9} "
                   f"end {r['end']:>9} lag {r['lag']:>7}")
    for group, topics in totals(rows).items():
        click.echo(f"{group}: " + ", ".join(f"{t} {v}" for t, v in topics.items()))


@click.command("status")
@broker_opt
@prefix_opt
@click.option("--max-lag", type=click.IntRange(0, 10**9), default=10_000, show_default=True,
              help="Lag per group and topic above which the pipeline is not healthy.")
@click.option("--json", "as_json", is_flag=True)
@readable_errors(json_fields={"healthy": False})
def status_cmd(broker: Opt, topic_prefix: Opt, max_lag: int, as_json: bool) -> None:
    """Is the pipeline healthy? Topics, consumer lag, DLQ records waiting. Exit 1 when not, 3 when
    the broker is not reachable (with --json: {"healthy": false, "reachable": false, ...})."""
    import sys

    from ops.lag import status

    s = broker_settings(broker=broker, topic_prefix=topic_prefix)
    result = {**status(s, max_lag), "reachable": True}
    if as_json:
        emit_json(result)
    else:
        click.echo("healthy" if result["healthy"] else "NOT healthy")
        for p in result["problems"]:
            click.echo(f"  - {p}")
        click.echo(f"  DLQ records waiting: {result['dlq_waiting']}")
    if not result["healthy"]:
        sys.exit(EXIT_FAILED)
