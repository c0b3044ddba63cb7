"""Structured JSON logs (structlog) with personal data redacted by a processor.

Names, phone numbers and national ID numbers never reach a log line: values under sensitive
keys are replaced, and phone/ID patterns inside any string are masked. Context such as topic,
partition, offset, grid id and trace id is bound with ``structlog.contextvars``.
"""

from __future__ import annotations

import logging
import re
import sys
from typing import Any

import structlog

SENSITIVE_KEYS = frozenset({
    "name", "full_name", "resident_name", "reporter_name", "contact", "phone", "mobile", "tel",
    "telephone", "id_number", "id_card", "idcard", "sfz", "address", "text", "password",
    "token", "sasl_password",
})
_PATTERNS = (
    (re.compile(r"(?<!\d)\d{17}[\dXx](?!\d)"), "[id-number]"),  # 居民身份证号
    (re.compile(r"(?<!\d)(?:\+?86[- ]?)?1[3-9]\d{9}(?!\d)"), "[phone]"),  # mobile
    (re.compile(r"(?<!\d)0\d{2,3}-\d{7,8}(?!\d)"), "[phone]"),  # landline
)
REDACTED = "[redacted]"


def _scrub(value: Any, depth: int = 0) -> Any:
    if isinstance(value, str):
        for pattern, mask in _PATTERNS:
            value = pattern.sub(mask, value)
        return value
    if depth > 6:
        return value
    if isinstance(value, dict):
        return {k: REDACTED if str(k).lower() in SENSITIVE_KEYS else _scrub(v, depth + 1)
                for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_scrub(v, depth + 1) for v in value]
    return value


def redact_pii(_logger: Any, _method: str, event_dict: dict) -> dict:
    """structlog processor: drop sensitive keys' values and mask phone/ID patterns."""
    return {k: REDACTED if k.lower() in SENSITIVE_KEYS else _scrub(v)
            for k, v in event_dict.items()}


def configure(level: str = "info", json: bool = True, stream: Any = None) -> None:
    """Configure structlog (and stdlib logging, which faust uses) once per process."""
    lvl = getattr(logging, level.upper())
    processors: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        redact_pii,
    ]
    processors.append(structlog.processors.JSONRenderer() if json
                      else structlog.dev.ConsoleRenderer(colors=False))
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(lvl),
        logger_factory=structlog.PrintLoggerFactory(stream or sys.stderr),
        cache_logger_on_first_use=False,
    )
    logging.basicConfig(level=max(lvl, logging.WARNING), stream=stream or sys.stderr)


def get_logger(**bind: Any) -> Any:
    """A bound structlog logger."""
    return structlog.get_logger("gridwatch").bind(**bind)


def log_rejections(log: Any, outputs: Any) -> None:
    """One info line per DLQ record: source position, code and reason (never the payload)."""
    for o in outputs:
        if o.rejection is not None:
            topic, partition, offset, code, reason = o.rejection
            log.info("rejected", topic=topic, partition=partition, offset=offset, code=code,
                     reason=reason[:300])
