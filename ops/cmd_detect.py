"""`gridwatch detectors` (check the configuration) and `gridwatch subjects` (the registry)."""

from __future__ import annotations

import click

from ops.cli_util import emit_json, readable_errors
from ops.cmd_runtime import broker_opt, prefix_opt, publish_registry


@click.group()
def detectors() -> None:
    """Detector configuration: thresholds, windows, categories (研判参数)."""


@detectors.command("check")
@click.argument("path", required=False, type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print the validated configuration.")
@readable_errors
def detectors_check(path: str | None, as_json: bool) -> None:
    """Validate a detectors file (the packaged default without PATH); exit 1 listing problems."""
    from pipeline.detect.config import DEFAULT_FILE, load_config

    cfg = load_config(path)
    if as_json:
        emit_json(cfg.model_dump())
        return
    click.echo(f"{path or DEFAULT_FILE}: ok")
    click.echo(f"  inactivity profiles: {', '.join(cfg.inactivity.profiles)}")
    click.echo(f"  landslide levels: {', '.join(cfg.landslide.rain_mm)}; "
               f"angles {cfg.landslide.tangential_angle_deg}")
    click.echo(f"  report categories: {', '.join(cfg.reports.categories)}")


@click.group()
def subjects() -> None:
    """The subject registry (关爱对象, subjects.v1)."""


@subjects.command("load")
@click.argument("path", type=click.Path(dir_okay=False))
@broker_opt
@prefix_opt
@click.option("--time", "at", default="2026-01-01T00:00:00.000Z", show_default=True,
              help="Envelope time for the registrations.")
@readable_errors
def subjects_load(path: str, broker: str | None, topic_prefix: str | None, at: str) -> None:
    """Validate a subjects file (JSON, JSON Lines, YAML) and publish it to subjects.v1."""
    from pipeline.subjects import subject_envelope

    publish_registry(path, "subjects.v1", "subject_id", "subject.json", "subject", subject_envelope,
                     broker, topic_prefix, at)


@click.group()
def policy() -> None:
    """The escalation policy (分级响应): ladder, timeouts, deadlines, parallel responders."""


@policy.command("check")
@click.argument("path", required=False, type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print the validated policy.")
@readable_errors
def policy_check(path: str | None, as_json: bool) -> None:
    """Validate a policy file (the packaged default without PATH); exit 1 listing problems."""
    from pipeline.incident.policy import DEFAULT_FILE, load_policy

    pol = load_policy(path)
    if as_json:
        emit_json(pol.model_dump())
        return
    click.echo(f"{path or DEFAULT_FILE}: ok")
    for rule in (*pol.rules, pol.default):
        click.echo(f"  {rule.name}: {rule.start} -> {rule.top}, acknowledge within "
                   f"{rule.ack.amount:g} {rule.ack.unit}, resolve within {rule.resolve.amount:g} "
                   f"{rule.resolve.unit}")
