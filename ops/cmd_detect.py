"""`gridwatch detectors` (check the configuration) and `gridwatch subjects` (the registry)."""

from __future__ import annotations

import click

from ops.cli_util import emit_json, readable_errors
from ops.cmd_runtime import add_registry_load


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


add_registry_load(subjects, "subject", "JSON, JSON Lines, YAML")


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
