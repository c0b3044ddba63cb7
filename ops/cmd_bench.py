"""`gridwatch bench`: benchmarks that print figures and their baselines, never assert."""

from __future__ import annotations

import click

from ops.cli_util import emit_json, readable_errors


@click.group()
def bench() -> None:
    """Benchmarks (figures and a baseline measured in the same run)."""


def _print(result: dict, as_json: bool) -> None:
    if as_json:
        emit_json(result)
        return
    for section, values in result.items():
        click.echo(f"{section}: {values}")


@bench.command("geo")
@click.option("--grids", type=click.IntRange(10, 200_000), default=10_000, show_default=True)
@click.option("--points", type=click.IntRange(1000, 20_000_000), default=1_000_000,
              show_default=True)
@click.option("--adcode", default="410325", show_default=True)
@click.option("--json", "as_json", is_flag=True)
@readable_errors
def bench_geo(grids: int, points: int, adcode: str, as_json: bool) -> None:
    """Points located per second and lookup latency vs sjoin and a per-point loop."""
    from ops.bench_geo import run_geo_bench

    _print(run_geo_bench(grids=grids, points=points, adcode=adcode), as_json)


@bench.command("dashboard")
@click.option("--incidents", type=click.IntRange(100, 100_000), default=5000, show_default=True)
@click.option("--rate", type=click.FloatRange(1, 10_000), default=200.0, show_default=True,
              help="Incident updates a second on the live stream.")
@click.option("--seconds", type=click.FloatRange(5, 600), default=30.0, show_default=True)
@click.option("--workdir", default="var/bench-dashboard", show_default=True)
@click.option("--json", "as_json", is_flag=True)
@readable_errors
def bench_dashboard(incidents: int, rate: float, seconds: float, workdir: str, as_json: bool) -> None:
    """The dashboard in Chromium under county load: input latency and long tasks, today's
    rendering against the earlier one (?render=legacy) in the same run."""
    from ops.bench_dashboard import run_dashboard_bench

    _print(run_dashboard_bench(incidents, rate, seconds, workdir), as_json)


@bench.command("pipeline")
@click.option("--events", type=click.IntRange(1000, 5_000_000), default=100_000,
              show_default=True)
@click.option("--rate", type=click.FloatRange(10, 100_000), default=5000.0, show_default=True,
              help="Paced input rate for the latency figures.")
@click.option("--seconds", type=click.FloatRange(1, 600), default=10.0, show_default=True)
@click.option("--workdir", default="var/bench", show_default=True)
@click.option("--json", "as_json", is_flag=True)
@readable_errors
def bench_pipeline(events: int, rate: float, seconds: float, workdir: str, as_json: bool) -> None:
    """Sustained events/s, latency p50/p99 and peak RSS, batched vs naive, on the embedded broker."""
    from ops.bench_pipeline import run_pipeline_bench

    _print(run_pipeline_bench(events=events, rate=rate, seconds=seconds, workdir=workdir), as_json)


@bench.command("detectors")
@click.option("--subjects", type=click.IntRange(100, 5_000_000), default=100_000, show_default=True)
@click.option("--events", type=click.IntRange(1000, 20_000_000), default=300_000, show_default=True)
@click.option("--points", type=click.IntRange(10, 100_000), default=500, show_default=True)
@click.option("--reports", type=click.IntRange(100, 5_000_000), default=50_000, show_default=True)
@click.option("--memory-subjects", type=click.IntRange(1000, 5_000_000), default=200_000,
              show_default=True, help="Subjects tracked for the memory figure.")
@click.option("--json", "as_json", is_flag=True)
@readable_errors
def bench_detectors(subjects: int, events: int, points: int, reports: int, memory_subjects: int,
                    as_json: bool) -> None:
    """Events/s per detector (pure Python) and memory per subject and monitoring point."""
    from ops.bench_detectors import run_detectors_bench

    _print(run_detectors_bench(subjects=subjects, events=events, points=points, reports=reports,
                               memory_subjects=memory_subjects), as_json)


@bench.command("replay")
@click.option("--events", type=click.IntRange(1000, 20_000_000), default=300_000, show_default=True,
              help="Located records in the log (clock ticks come on top).")
@click.option("--subjects", type=click.IntRange(10, 5_000_000), default=2_000, show_default=True)
@click.option("--json", "as_json", is_flag=True)
@readable_errors
def bench_replay(events: int, subjects: int, as_json: bool) -> None:
    """Events/s of a replay through the pure core (no Kafka), with a baseline."""
    from ops.bench_replay import run_replay_bench

    _print(run_replay_bench(events=events, subjects=subjects), as_json)
