"""Shared CLI plumbing: JSON output, exit codes, and turning errors into one readable line.

Every command is wrapped in `readable_errors`, the one error policy of the CLI: gridwatch's own
errors become ``gridwatch: <message>`` on stderr and exit 1; a broker that is not reachable
(`ensure_reachable`, or a Kafka client that cannot connect) becomes ``gridwatch: broker HOST:PORT
is not reachable (...): start it or set GRIDWATCH_BROKER`` and exit 3. With ``--json`` the same
failure is also a JSON document on stdout. Commands check the broker (`broker_settings` in
`ops.cmd_runtime`) after validating their input and before the first Kafka client.
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from typing import IO, Any

import click
import orjson

from geo.errors import GeoError
from pipeline.errors import BrokerUnavailable, GridwatchError

#: exit codes of every command (docs/configuration.md "Commands")
EXIT_OK = 0
EXIT_FAILED = 1  # not healthy (status), differs (topics describe, replay), invalid input, not found
EXIT_USAGE = 2  # bad options or arguments (click)
EXIT_UNREACHABLE = 3  # the broker is not reachable


def emit_json(obj: Any) -> None:
    """Print one JSON document (non-ASCII kept, so Chinese names stay readable)."""
    sys.stdout.write(orjson.dumps(obj, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS,
                                  default=str).decode() + "\n")


class Failure(click.ClickException):
    """A command's failure: ``gridwatch: <message>`` on stderr, and its exit code."""

    def __init__(self, message: str, exit_code: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.exit_code = exit_code

    def show(self, file: IO[Any] | None = None) -> None:
        click.echo(f"gridwatch: {self.format_message()}", file=file, err=file is None)


def unreachable_message(broker: str, cause: str) -> str:
    """The one sentence for a broker that is not there."""
    return f"broker {broker} is not reachable ({cause}): start it or set GRIDWATCH_BROKER"


def _broker_named(kwargs: dict[str, Any]) -> str:
    """The broker a command was pointed at: --broker, else GRIDWATCH_BROKER, else the default."""
    from pipeline.settings import Settings

    return kwargs.get("broker") or os.environ.get("GRIDWATCH_BROKER") or Settings.broker


def _kafka_unreachable(exc: Exception) -> bool:
    """A Kafka client's way of saying it could not connect (the broker went away mid-command)."""
    name = type(exc).__name__
    if not type(exc).__module__.startswith(("kafka.", "aiokafka.")):
        return False
    return name in ("NoBrokersAvailable", "KafkaConnectionError") or (
        name == "KafkaTimeoutError" and "bootstrap" in str(exc))


def _failure(exc: Exception, kwargs: dict[str, Any]) -> tuple[Failure, dict[str, Any]] | None:
    """The failure (line, exit code) and the JSON fields for an exception, or None: not ours."""
    if (isinstance(exc, BrokerUnavailable) and exc.bootstrap) or _kafka_unreachable(exc):
        broker = getattr(exc, "bootstrap", None) or _broker_named(kwargs)
        return (Failure(unreachable_message(broker, type(exc).__name__), EXIT_UNREACHABLE),
                {"reachable": False, "broker": broker, "detail": " ".join(str(exc).split())[:500]})
    if isinstance(exc, GeoError | GridwatchError):
        return Failure(str(exc)), {}
    if type(exc).__module__.startswith("kafka.") and type(exc).__name__.endswith("Error"):
        return Failure(f"the broker answered with an error ({type(exc).__name__}: {exc})"), {}
    return None


def readable_errors(fn: Callable[..., Any] | None = None, *,
                    json_fields: dict[str, Any] | None = None) -> Any:
    """The CLI's one error policy (see the module): wrap every command in it. `json_fields` are
    added to the JSON document a ``--json`` command prints when it fails (status: healthy=false)."""
    if fn is None:
        return functools.partial(readable_errors, json_fields=json_fields)

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except click.ClickException:
            raise
        except Exception as exc:
            found = _failure(exc, kwargs)
            if found is None:
                raise
            failure, fields = found
            if kwargs.get("as_json"):
                emit_json({"ok": False, "exit_code": failure.exit_code, "error": failure.message,
                           **fields, **(json_fields or {})})
            raise failure from exc

    return wrapper


def parse_range(value: str, name: str) -> tuple[int, int]:
    """Parse ``300-1500`` (or one number) into a positive (low, high) pair."""
    try:
        parts = [int(p) for p in value.split("-")]
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a range like 300-1500", param_hint=name)
    if len(parts) == 1:
        parts = parts * 2
    if len(parts) != 2 or parts[0] < 1 or parts[1] < parts[0]:
        raise click.BadParameter(f"{value!r}: need low-high with 1 <= low <= high",
                                 param_hint=name)
    return parts[0], parts[1]


def parse_time_option(value: str | None, name: str) -> int | None:
    """An ISO 8601 option (with offset) -> epoch ms, or ConfigError naming the option."""
    if value is None:
        return None
    from pipeline.envelope import parse_time
    from pipeline.errors import ConfigError, Rejected

    try:
        return int(parse_time(value, name).timestamp() * 1000)
    except Rejected as exc:
        raise ConfigError(exc.reason)
