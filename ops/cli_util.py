"""Shared CLI plumbing: JSON output and turning library errors into readable messages."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any

import click
import orjson

from geo.errors import GeoError


def emit_json(obj: Any) -> None:
    """Print one JSON document (non-ASCII kept, so Chinese names stay readable)."""
    sys.stdout.write(orjson.dumps(obj, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS,
                                  default=str).decode() + "\n")


def readable_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Report known, non-retriable errors as one line and exit 1 instead of a traceback."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except GeoError as exc:
            raise click.ClickException(str(exc)) from exc
        except (ValueError, OSError) as exc:
            if getattr(exc, "gridwatch_user_error", False):
                raise click.ClickException(str(exc)) from exc
            raise

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
