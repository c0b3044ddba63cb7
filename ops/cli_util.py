"""Shared CLI plumbing: JSON output and turning library errors into readable messages."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any

import click
import orjson

from geo.errors import GeoError
from pipeline.errors import GridwatchError


def emit_json(obj: Any) -> None:
    """Print one JSON document (non-ASCII kept, so Chinese names stay readable)."""
    sys.stdout.write(orjson.dumps(obj, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS,
                                  default=str).decode() + "\n")


def readable_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Report gridwatch's own errors (bad input, config, topics, broker) as one line, exit 1."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except (GeoError, GridwatchError) as exc:
            raise click.ClickException(str(exc)) from exc

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
