"""`gridwatch notifier` (delivery service) and `gridwatch cap` (CAP 1.2 for an incident)."""

from __future__ import annotations

import sys
import time

import click
import orjson

from ops.cli_util import emit_json, readable_errors
from ops.cmd_runtime import broker_opt, broker_settings, prefix_opt, settings_from


@click.command()
@broker_opt
@prefix_opt
@click.option("--roster", "roster_file", type=click.Path(dir_okay=False),
              help="Roster file (GRIDWATCH_ROSTER).")
@readable_errors
def notifier(broker: str | None, topic_prefix: str | None, roster_file: str | None) -> None:
    """Deliver escalations to the people on duty (webhook, e-mail) until SIGINT/SIGTERM."""
    import asyncio
    import signal

    from pipeline.delivery.roster import load_roster
    from pipeline.delivery.service import Notifier
    from pipeline.logs import configure
    from pipeline.telemetry import start_metrics_server

    s = settings_from(broker=broker, topic_prefix=topic_prefix, roster_file=roster_file)
    configure(s.log_level)
    start_metrics_server(s, "notifier")
    roster = load_roster(s.roster_file) if s.roster_file else None  # else from rosters.v1

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await Notifier(s, roster).run(stop)

    asyncio.run(main())


@click.command()
@click.argument("incident_id")
@broker_opt
@prefix_opt
@click.option("--atlas", type=click.Path(dir_okay=False), help="Atlas for the area polygon.")
@readable_errors
def cap(incident_id: str, broker: str | None, topic_prefix: str | None, atlas: str | None) -> None:
    """Print an incident as OASIS CAP 1.2 XML (validated against the XSD; exit 1 if not found)."""
    from kafka import KafkaConsumer

    from pipeline.delivery.cap import incident_to_cap, validate_cap
    from pipeline.errors import ConfigError

    s = broker_settings(broker=broker, topic_prefix=topic_prefix, atlas=atlas)
    consumer = KafkaConsumer(s.topic("incidents.v1"), auto_offset_reset="earliest",
                             consumer_timeout_ms=2000, **s.kafka_python_config())
    found = None
    for m in consumer:
        if m.key == incident_id.encode() and m.value:
            found = orjson.loads(m.value)["data"]
    consumer.close()
    if found is None:
        raise ConfigError(f"no incident {incident_id} on {s.topic('incidents.v1')}")
    polygon, desc = None, found["grid_id"]
    if s.atlas:
        from geo.layers import load_atlas
        from geo.locate import Locator

        loc = Locator(load_atlas(s.atlas))
        zone = found["dedup_key"].split(":", 1)[1] if found["kind"] == "landslide" else None
        if zone and loc.hazards is not None and (loc.hazards["id"].astype(str) == zone).any():
            polygon, desc = loc.hazards[loc.hazards["id"].astype(str) == zone].geometry.iloc[0], zone
        elif found["grid_id"] in loc.by_code:
            info = loc.grids[loc.by_code[found["grid_id"]]]
            polygon, desc = loc.grid_geoms[loc.by_code[found["grid_id"]]], " ".join(info.names)
    xml = incident_to_cap(found, desc, polygon)
    problems = validate_cap(xml)
    if problems:
        raise ConfigError("CAP output does not validate: " + "; ".join(problems[:5]))
    sys.stdout.write(xml.decode("utf-8") + "\n")


@click.group()
def roster() -> None:
    """Duty rosters (值班表): check a file, publish it to rosters.v1."""


@roster.command("check")
@click.argument("path", type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="The result as JSON (problems too).")
@readable_errors
def roster_check(path: str, as_json: bool) -> None:
    """Validate a roster file; exit 1 listing every problem."""
    from pipeline.delivery.roster import load_roster

    r = load_roster(path)
    if as_json:
        emit_json({"ok": True, "path": path, "name": r.name, "people": len(r.people),
                   "duties": len(r.duties)})
        return
    click.echo(f"{path}: ok ({len(r.people)} people, {len(r.duties)} duties)")


@roster.command("load")
@click.argument("path", type=click.Path(dir_okay=False))
@broker_opt
@prefix_opt
@readable_errors
def roster_load(path: str, broker: str | None, topic_prefix: str | None) -> None:
    """Validate a roster file and publish it to rosters.v1 (the notifier switches to it)."""
    from kafka import KafkaProducer

    from pipeline.delivery.roster import load_roster
    from pipeline.envelope import iso_ms, make_event

    r = load_roster(path)
    s = broker_settings(broker=broker, topic_prefix=topic_prefix)
    env = make_event("gridwatch.roster.v1", f"roster:{r.name}", iso_ms(int(time.time() * 1000)),
                     r.model_dump(by_alias=True),
                     subject=r.name, source="gridwatch/rosters")
    producer = KafkaProducer(max_request_size=16 << 20, **s.kafka_python_config())
    producer.send(s.topic("rosters.v1"), key=r.name.encode(), value=orjson.dumps(env))
    producer.flush()
    producer.close()
    click.echo(f"published roster {r.name!r} ({len(r.people)} people) to {s.topic('rosters.v1')}")
