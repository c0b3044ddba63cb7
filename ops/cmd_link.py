"""`gridwatch link`: print a signed action link by hand (ops re-send one to a person)."""

from __future__ import annotations

import time

import click
import orjson

from ops.cli_util import readable_errors


@click.command()
@click.argument("incident_id")
@click.option("--person", required=True, help="The person's roster id (the command's actor).")
@click.option("--unit", help="The unit they answer for (the command's scope); default: the grid "
                             "the incident id starts with.")
@click.option("--action", "actions", multiple=True,
              type=click.Choice(["acknowledge", "arrive", "resolve", "comment"]),
              help="An action the link allows (repeatable); default: all four.")
@click.option("--hours", type=click.FloatRange(-1000, 24 * 30), default=24.0, show_default=True,
              help="How long the link is valid (negative: an expired link, for a test).")
@click.option("--json", "as_json", is_flag=True, help="Print the link and its fields as JSON.")
@readable_errors
def link(incident_id: str, person: str, unit: str | None, actions: tuple[str, ...], hours: float,
         as_json: bool) -> None:
    """Print the signed action link for INCIDENT_ID and one person (GRIDWATCH_LINK_KEY and
    GRIDWATCH_PUBLIC_URL must be set, as for the notifier)."""
    from pipeline.delivery.links import DEFAULT_ACTIONS, ActionLink, link_url, nonce_for, sign_link
    from pipeline.errors import ConfigError
    from pipeline.settings import Settings

    s = Settings.from_env()
    if not s.link_key or not s.public_url:
        raise ConfigError("set GRIDWATCH_LINK_KEY and GRIDWATCH_PUBLIC_URL (as for the notifier)")
    if "~" not in incident_id:
        raise click.BadParameter(f"{incident_id!r} is not a gridwatch incident id", param_hint="INCIDENT_ID")
    now = int(time.time())
    a = ActionLink(incident_id, person, unit or incident_id.split("~", 1)[0], actions or DEFAULT_ACTIONS,
                   now + int(hours * 3600), nonce_for(f"manual:{incident_id}:{person}:{now}"))
    url = link_url(s.public_url, sign_link(s.link_key, a))
    if as_json:
        click.echo(orjson.dumps({"url": url, "incident_id": a.incident_id, "person": a.person,
                                 "unit": a.unit, "actions": list(a.actions),
                                 "expires_s": a.expires_s}).decode())
    else:
        click.echo(url)
