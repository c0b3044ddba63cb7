"""Structured JSON logs (structlog) with personal data and credentials redacted by a processor.

Names, phone numbers, e-mail addresses and national ID numbers never reach a log line: values
under sensitive keys are replaced, and phone, e-mail and ID patterns inside any value (strings,
numbers, keys, at any depth) are masked; URLs lose their query string, fragment and user info
(a DingTalk robot's ``access_token=``, a signed link). Every standard-library logger (faust,
mode, aiohttp, aiokafka, kafka-python) writes through the same processors: the root handler's
formatter is structlog's `ProcessorFormatter` (`logging_config`, also handed to faust's worker,
which would otherwise install its own handler). Context such as topic, partition, offset, grid
id and trace id is bound with ``structlog.contextvars``.
"""

from __future__ import annotations

import logging
import logging.config
import re
import sys
from typing import Any

import structlog

SENSITIVE_KEYS = frozenset({
    "name", "full_name", "resident_name", "reporter_name", "contact", "phone", "mobile", "tel",
    "telephone", "id_number", "id_card", "idcard", "sfz", "address", "text", "password",
    "token", "sasl_password", "email", "e_mail", "mail", "secret", "secrets", "webhook_secret",
    "webhook_secrets", "authorization", "access_token", "api_key", "link_key", "smtp_password",
    "cookie",
})
#: keys whose values are administrative codes (GB/T 2260 grid, community, town... codes are
#: 15 digits too): the 15-digit ID pattern is not applied under them (phones, 18-digit IDs and
#: e-mail addresses still are)
CODE_KEYS = frozenset({
    "grid_id", "grid", "unit", "units", "path", "scope", "parent_grid", "zone_id", "incident_id",
    "parent_id", "dedup_key", "to", "subject", "key", "notification", "notification_id",
    "alert_id", "event_id", "id", "source", "county", "town", "community",
})
REDACTED = "[redacted]"
MAX_DEPTH = 24  # deeper than this a value is replaced, never passed through unread

_D = "[0-9\uff10-\uff19]"  # a digit, ASCII or full-width (０-９)
_SEP = "[ \\-\u3000\uff0d.]?"  # one optional space, hyphen, ideographic space, full-width hyphen
_URL = re.compile(r"(?i)\b((?:https?|wss?|ftp|smtp|kafka)://)(?:[^\s/?#@\"'<>]*@)?"
                  r"([^\s?#\"'<>]*)(?:\?[^\s#\"'<>]*)?(?:#[^\s\"'<>]*)?")
_QUERY_SECRET = re.compile(r"(?i)\b(access_token|token|sign|signature|secret|password|passwd|"
                           r"api_key|apikey|key|auth)=[^&\s\"'<>]+")
_PATTERNS = (
    (re.compile(r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,}"), "[email]"),
    (re.compile(rf"(?<!{_D}){_D}{{17}}[0-9Xx\uff10-\uff19\uff38\uff58](?!{_D})"),
     "[id-number]"),  # 居民身份证号, 18 digits (the last may be X)
    (re.compile(rf"(?<![0-9\uff10-\uff19+＋])(?:(?:[+＋]|00|００)?(?:86|８６)[ \-\u3000\uff0d]?)?"
                rf"[1１][3-9３-９]{_D}{_SEP}{_D}{{4}}{_SEP}{_D}{{4}}(?!{_D})"), "[phone]"),  # mobile
    (re.compile(rf"(?<!{_D})[0０]{_D}{{2,3}}[\-\uff0d]{_D}{{7,8}}(?!{_D})"), "[phone]"),  # landline
)
#: a first-generation ID number (15 digits: area, yymmdd, sequence), not joined to an id by
#: ~ or @ (incident ids hold grid codes)
_ID15 = re.compile(rf"(?<![0-9\uff10-\uff19~@]){_D}{{6}}{_D}{{2}}(?:[0０][1-9１-９]|[1１][0-2０-２])"
                   rf"(?:[0０][1-9１-９]|[12１２]{_D}|[3３][01０１]){_D}{{3}}(?![0-9\uff10-\uff19~@])")


def strip_urls(text: str) -> str:
    """`text` with every URL's query string, fragment and user info removed (``?[redacted]``
    marks where a query was), and ``token=...``-like pairs outside URLs masked."""
    def url(m: re.Match) -> str:
        whole = m.group(0)
        cut = m.group(1) + m.group(2)
        return cut + ("?" + REDACTED if "?" in whole[len(m.group(1)):] or "#" in whole else "")
    text = _URL.sub(url, text)
    return _QUERY_SECRET.sub(lambda m: f"{m.group(1)}={REDACTED}", text)


def scrub_text(text: str, codes: bool = False) -> str:
    """`text` with URLs stripped and e-mail addresses, phone and ID numbers masked; `codes`:
    the text is an administrative code field (the 15-digit ID pattern is not applied)."""
    text = strip_urls(text)
    for pattern, mask in _PATTERNS:
        text = pattern.sub(mask, text)
    if not codes:
        text = _ID15.sub("[id-number]", text)
    return text


def _scrub(value: Any, depth: int = 0, codes: bool = False) -> Any:
    if isinstance(value, str):
        return scrub_text(value, codes)
    if value is None or isinstance(value, bool | float):
        return value
    if isinstance(value, int):  # a phone or ID number given as a number
        text = str(value)
        masked = scrub_text(text, codes)
        return value if masked == text else masked
    if isinstance(value, bytes | bytearray):
        return _scrub(bytes(value).decode("utf-8", "backslashreplace"), depth, codes)
    if depth >= MAX_DEPTH:
        return "[too deep]"
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            key = scrub_text(k) if isinstance(k, str) else k
            name = str(k).lower()
            out[key] = REDACTED if name in SENSITIVE_KEYS else _scrub(v, depth + 1, name in CODE_KEYS)
        return out
    if isinstance(value, list | tuple | set | frozenset):
        return [_scrub(v, depth + 1, codes) for v in value]
    return scrub_text(str(value), codes)  # anything else is logged as its text: scrub that


def redact_pii(_logger: Any, _method: str, event_dict: dict) -> dict:
    """structlog processor: drop sensitive keys' values, mask phone, e-mail and ID patterns at
    any depth, strip URL query strings."""
    out = {}
    for k, v in event_dict.items():
        name = str(k).lower()
        if name in SENSITIVE_KEYS:
            out[k] = REDACTED
        elif k in ("_record", "_from_structlog"):  # ProcessorFormatter's own bookkeeping
            out[k] = v
        else:
            out[k] = _scrub(v, 0, name in CODE_KEYS)
    return out


def _renderer(json: bool) -> Any:
    return structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer(colors=False)


def logging_config(level: int = logging.WARNING, json: bool = True, stream: Any = None) -> dict:
    """A `logging.config.dictConfig` document: one root handler whose formatter runs every
    standard-library record through the structlog processors (`redact_pii` included)."""
    pre_chain = [structlog.contextvars.merge_contextvars, structlog.stdlib.add_log_level,
                 structlog.stdlib.add_logger_name, structlog.processors.TimeStamper(fmt="iso", utc=True)]
    formatter = {"()": structlog.stdlib.ProcessorFormatter, "foreign_pre_chain": pre_chain,
                 "processors": [structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                                structlog.processors.format_exc_info, redact_pii, _renderer(json)]}
    return {"version": 1, "disable_existing_loggers": False,
            "formatters": {"gridwatch": formatter},
            "handlers": {"gridwatch": {"class": "logging.StreamHandler", "formatter": "gridwatch",
                                       "stream": stream or sys.stderr}},
            "root": {"level": level, "handlers": ["gridwatch"]}}


def configure(level: str = "info", json: bool = True, stream: Any = None) -> None:
    """Configure structlog, and stdlib logging (faust, aiohttp, aiokafka) through the same
    processors, once per process."""
    lvl = getattr(logging, level.upper())
    processors: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
        redact_pii,
        _renderer(json),
    ]
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(lvl),
        logger_factory=structlog.PrintLoggerFactory(stream or sys.stderr),
        cache_logger_on_first_use=False,
    )
    logging.config.dictConfig(logging_config(max(lvl, logging.WARNING), json, stream))


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
