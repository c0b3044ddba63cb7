"""PagerDuty Events API v2 (https://developer.pagerduty.com/docs/events-api-v2/overview/): an
alert event to a service's Events API v2 integration.

Roster: ``pagerduty: {routing_key: <the integration's 32-character key>}``, optionally with
``url`` (default https://events.pagerduty.com/v2/enqueue; the EU service's
https://events.eu.pagerduty.com/v2/enqueue, or a test receiver). The body::

    {"routing_key": ..., "event_action": "trigger", "dedup_key": <incident id>,
     "payload": {"summary": <subject and text, at most 1024 characters>, "source": <grid id>,
                 "severity": "error", "timestamp": <transition time>, "component": <kind>,
                 "group": <unit called>, "class": <transition>, "custom_details": {...}},
     "links": [{"href": <act link>, "text": "Acknowledge"}]}

``event_action``: acknowledge for the acknowledge transition, resolve for resolve, verify,
cancel and merge, else trigger; one incident is one PagerDuty alert (``dedup_key``). Severity:
critical/red -> critical, high/orange -> error, medium/yellow -> warning, low/blue -> info
(anything else: warning). 202 is delivered; 429 and 5xx are worth a retry; 400 (an invalid
event) and other answers are not. The routing key is a secret: never in an error.
"""

from __future__ import annotations

import re
from typing import Any

from pipeline.delivery.channels import Address, Channel, DeliveryError, SendContext

URL = re.compile(r"https?://[^\s/?#]+\S*")
DEFAULT_URL = "https://events.pagerduty.com/v2/enqueue"
ROUTING_KEY = re.compile(r"[A-Za-z0-9]{32}")
SEVERITY = {"critical": "critical", "red": "critical", "high": "error", "orange": "error",
            "medium": "warning", "yellow": "warning", "low": "info", "blue": "info"}
RESOLVE = frozenset({"resolve", "verify", "cancel", "merge"})
SUMMARY_MAX = 1024


def event_action(transition: str) -> str:
    if transition == "acknowledge":
        return "acknowledge"
    return "resolve" if transition in RESOLVE else "trigger"


def event(esc: dict, routing_key: str, subject: str, text: str, urls: dict[str, str]) -> dict:
    """The Events API v2 event for one escalation."""
    summary = f"{subject} {text}".strip()
    if len(summary) > SUMMARY_MAX:
        summary = summary[:SUMMARY_MAX - 1] + "…"
    kind = str(esc.get("kind") or "incident")
    details = {k: esc[k] for k in ("incident_id", "step", "transition", "level", "severity", "grid_id",
                                   "path", "deadline", "count") if esc.get(k) is not None}
    out: dict[str, Any] = {
        "routing_key": routing_key, "event_action": event_action(esc["transition"]),
        "dedup_key": str(esc["incident_id"])[:255],
        "payload": {"summary": summary, "source": str(esc.get("grid_id") or esc["to"][0]),
                    "severity": SEVERITY.get(str(esc.get("severity")), "warning"),
                    "timestamp": esc["at"], "component": kind, "group": str(esc["to"][0]),
                    "class": str(esc["transition"]), "custom_details": details}}
    if urls.get("act"):
        out["links"] = [{"href": urls["act"], "text": "Acknowledge"}]
    return out


class PagerDuty(Channel):
    name = "pagerduty"
    wants_updates = True
    order = 40

    def parse(self, value: Any) -> Address:
        if not isinstance(value, dict) or set(value) - {"routing_key", "url"}:
            raise ValueError("pagerduty takes {routing_key: ..., url: ...} (url optional)")
        key, url = value.get("routing_key"), value.get("url", DEFAULT_URL)
        if not isinstance(key, str) or not ROUTING_KEY.fullmatch(key):
            raise ValueError("pagerduty routing_key must be the 32-character integration key "
                             "of an Events API v2 integration")
        if not isinstance(url, str) or not URL.fullmatch(url) or len(url) > 2048:
            raise ValueError("pagerduty url must be an http(s) URL (default the Events API v2 endpoint)")
        return Address(url, key)

    async def send(self, ctx: SendContext, d: Any, esc: dict) -> None:
        import orjson

        from pipeline.delivery.channels._http import answer_json, post, status_error
        from pipeline.delivery.notify import links, render

        if not d.secret:
            raise DeliveryError("pagerduty needs a routing_key", retriable=False)
        subject, text = render(esc, d.lang, ctx.names)
        urls = links(esc, ctx.settings.public_url, d, ctx.settings.link_key)
        body = orjson.dumps(event(esc, d.secret, subject, text, urls))

        def judge(status: int, raw: bytes) -> None:
            if status == 202:
                return
            failed = status_error(status, "PagerDuty HTTP")
            if failed is None:  # another 2xx: not what the API answers for an accepted event
                failed = DeliveryError(f"PagerDuty HTTP {status} (expected 202)", retriable=False)
            answer = answer_json(raw)
            if isinstance(answer, dict) and answer.get("message"):
                errors = answer.get("errors")
                said = "; ".join(map(str, errors))[:300] if isinstance(errors, list) else ""
                failed = DeliveryError(f"{failed}: {str(answer['message'])[:200]}"
                                       + (f" ({said})" if said else ""), retriable=failed.retriable)
            raise failed

        await post(ctx, d.address, body, judge, redact=[(d.secret, "<routing key>")])


CHANNEL = PagerDuty()
