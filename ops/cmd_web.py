"""`gridwatch web` and `gridwatch token new`: the command center's HTTP side and its tokens."""

from __future__ import annotations

import click

from ops.cli_util import readable_errors
from ops.cmd_runtime import broker_opt, prefix_opt, settings_from


@click.command()
@broker_opt
@prefix_opt
@click.option("--atlas", type=click.Path(dir_okay=False), help="Atlas for the map (GRIDWATCH_ATLAS).")
@click.option("--tokens", "tokens_file", type=click.Path(dir_okay=False),
              help="Tokens file (GRIDWATCH_TOKENS).")
@click.option("--host", "web_host", help="Listen address (GRIDWATCH_WEB_HOST, default 127.0.0.1).")
@click.option("--port", "web_port", type=click.IntRange(1, 65535), help="Port (GRIDWATCH_WEB_PORT, 6066).")
@readable_errors
def web(broker: str | None, topic_prefix: str | None, atlas: str | None, tokens_file: str | None,
        web_host: str | None, web_port: int | None) -> None:
    """Serve the API, the live stream, the dashboard, /healthz, /readyz and /metrics."""
    from pipeline.logs import configure
    from pipeline.web.auth import require_file
    from pipeline.web.server import run_web

    s = settings_from(broker=broker, topic_prefix=topic_prefix, atlas=atlas, tokens_file=tokens_file,
                      web_host=web_host, web_port=web_port)
    configure(s.log_level)
    book = require_file(s.tokens_file)
    click.echo(f"gridwatch web on http://{s.web_host}:{s.web_port}/ ({len(book)} token(s))")
    run_web(s, book)


@click.group()
def token() -> None:
    """API tokens (stored hashed)."""


@token.command("new")
@click.option("--name", required=True, help="Who (becomes the actor of commands); no personal data.")
@click.option("--role", required=True, type=click.Choice(["admin", "command_center", "responder", "ingest"]))
@click.option("--scope", help="The unit a responder answers for (its grid subtree).")
@click.option("--reporter-id", help="ingest: the only reporter_id its reports may carry (403 otherwise).")
@readable_errors
def token_new(name: str, role: str, scope: str | None, reporter_id: str | None) -> None:
    """Print a new token (to give its holder, once) and the line for the tokens file."""
    from pipeline.web.auth import TokenEntry, hash_token, new_token

    tok = new_token()
    try:
        entry = TokenEntry(name=name, sha256=hash_token(tok), role=role, scope=scope,  # type: ignore[arg-type]
                           reporter_id=reporter_id)
    except ValueError as exc:
        from pydantic import ValidationError

        msg = "; ".join(".".join(str(x) for x in e["loc"]) + ": " * bool(e["loc"])
                        + e["msg"].removeprefix("Value error, ") for e in exc.errors()) \
            if isinstance(exc, ValidationError) else str(exc)
        raise click.BadParameter(msg)
    click.echo(f"# token for {name} (shown once): {tok}", err=True)
    line = f"  - {{name: {entry.name}, role: {entry.role}, sha256: '{entry.sha256}'"
    line += f", scope: '{entry.scope}'" if entry.scope else ""
    click.echo(line + (f", reporter_id: '{entry.reporter_id}'}}" if entry.reporter_id else "}"))
