"""YAML configuration files validated by pydantic models, with errors a person can act on."""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from pipeline.errors import ConfigError

M = TypeVar("M", bound=BaseModel)


def readable(exc: ValidationError, source: str) -> str:
    """A pydantic error as lines a person can act on: one per problem, with its place."""
    lines = [f"{source}: {exc.error_count()} problem(s)"]
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"]) or "(root)"
        lines.append(f"  {where}: {err['msg'].removeprefix('Value error, ')}")
    return "\n".join(lines)


def model_from_dict(model: type[M], raw: Any, source: str) -> M:
    """Validate an already-parsed mapping; ConfigError lists every problem."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: expected a mapping at the top level")
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(readable(exc, source))


def load_model(model: type[M], path: Path, what: str) -> M:
    """Read a YAML file into `model`; missing file, bad YAML and bad values are ConfigErrors."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such {what} file")
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc})")
    return model_from_dict(model, raw, str(path))
