"""Alertmanager-compatible webhook: the JSON Prometheus Alertmanager POSTs to a ``webhook_config``
receiver (https://prometheus.io/docs/alerting/latest/configuration/#webhook_config), so
receivers written for Alertmanager (chat bridges, ticketing, SMS relays) take gridwatch's calls.

Roster: ``alertmanager: https://receiver.example/hook``. One message is one group of one alert::

    {"version": "4", "groupKey": "{}:{incident_id=\\"...\\"}", "truncatedAlerts": 0,
     "status": "firing", "receiver": "gridwatch", "groupLabels": {"incident_id": ...},
     "commonLabels": <the alert's labels>, "commonAnnotations": <the alert's annotations>,
     "externalURL": <the dashboard>,
     "alerts": [{"status": "firing",
                 "labels": {"alertname": "gridwatch_<kind>", "incident_id", "kind", "severity",
                            "grid_id", "level"},
                 "annotations": {"summary": <subject>, "description": <text>,
                                 "runbook_url": <act link>},
                 "startsAt": <the transition's time>, "endsAt": "0001-01-01T00:00:00Z",
                 "generatorURL": <the dashboard>, "fingerprint": <16 hex digits>}]}

``status`` is ``resolved`` (and ``endsAt`` the transition's time) for the transitions that end
the call: resolve, verify, cancel, merge; else ``firing``. ``fingerprint`` is Prometheus's
label-set fingerprint (FNV-1a 64 of the sorted labels), as Alertmanager computes it. Times are
RFC 3339 as Go writes them. Only to public addresses unless allowed (GRIDWATCH_WEBHOOK_ALLOW),
like webhooks; 2xx is delivered, 429 and 5xx are worth a retry, other 4xx are not.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from pipeline.delivery.channels import Address, Channel, SendContext

URL = re.compile(r"https?://[^\s/?#]+\S*")
RESOLVED = frozenset({"resolve", "verify", "cancel", "merge"})
GO_ZERO_TIME = "0001-01-01T00:00:00Z"  # Alertmanager's endsAt of a firing alert
RECEIVER = "gridwatch"
FNV_OFFSET, FNV_PRIME, SEPARATOR = 14695981039346656037, 1099511628211, 0xFF


def fingerprint(labels: dict[str, str]) -> str:
    """Prometheus's `model.LabelSet.Fingerprint`: FNV-1a 64 over name, 0xFF, value, 0xFF of
    every label in name order; 16 lower-case hex digits."""
    h = FNV_OFFSET
    for name in sorted(labels):
        for part in (name.encode(), labels[name].encode()):
            for byte in (*part, SEPARATOR):
                h = ((h ^ byte) * FNV_PRIME) & 0xFFFFFFFFFFFFFFFF
    return f"{h:016x}"


def label_set(labels: dict[str, str]) -> str:
    """Prometheus's `LabelSet.String`: ``{a="1", b="2"}``, names sorted, values quoted."""
    import json

    return "{" + ", ".join(f"{k}={json.dumps(labels[k], ensure_ascii=False)}" for k in sorted(labels)) + "}"


def rfc3339(iso: str) -> str:
    """An ISO time as Go's time.Time marshals it (RFC 3339, UTC, no trailing zero fraction)."""
    at = datetime.fromisoformat(iso).astimezone(UTC)
    out = at.strftime("%Y-%m-%dT%H:%M:%S")
    if at.microsecond:
        out += f".{at.microsecond:06d}".rstrip("0")
    return out + "Z"


def message(esc: dict, subject: str, text: str, urls: dict[str, str]) -> dict:
    """The Alertmanager webhook message (version 4) for one escalation."""
    kind = str(esc.get("kind") or "incident")
    labels = {"alertname": f"gridwatch_{kind}", "incident_id": str(esc["incident_id"]), "kind": kind,
              "severity": str(esc.get("severity") or "unknown"),
              "grid_id": str(esc.get("grid_id") or esc["to"][0]), "level": str(esc["level"])}
    annotations = {"summary": subject, "description": text}
    if urls.get("act"):
        annotations["runbook_url"] = urls["act"]
    status = "resolved" if esc["transition"] in RESOLVED else "firing"
    at = rfc3339(esc["at"])
    group = {"incident_id": labels["incident_id"]}
    dashboard = urls.get("dashboard", "")
    return {"version": "4", "groupKey": f"{{}}:{label_set(group)}", "truncatedAlerts": 0,
            "status": status, "receiver": RECEIVER, "groupLabels": group,
            "commonLabels": dict(labels), "commonAnnotations": dict(annotations),
            "externalURL": dashboard,
            "alerts": [{"status": status, "labels": labels, "annotations": annotations,
                        "startsAt": at, "endsAt": at if status == "resolved" else GO_ZERO_TIME,
                        "generatorURL": dashboard, "fingerprint": fingerprint(labels)}]}


class Alertmanager(Channel):
    name = "alertmanager"
    wants_updates = True
    order = 50

    def parse(self, value: Any) -> Address:
        if not isinstance(value, str) or not URL.fullmatch(value) or len(value) > 2048:
            raise ValueError("alertmanager must be the receiver's http(s) URL (at most 2048 characters)")
        return Address(value)

    async def send(self, ctx: SendContext, d: Any, esc: dict) -> None:
        import orjson

        from pipeline.delivery.channels._http import post, status_error
        from pipeline.delivery.notify import links, render

        subject, text = render(esc, d.lang, ctx.names)
        urls = links(esc, ctx.settings.public_url, d, ctx.settings.link_key)
        body = orjson.dumps(message(esc, subject, text, urls))

        def judge(status: int, raw: bytes) -> None:
            failed = status_error(status)
            if failed:
                raise failed

        await post(ctx, d.address, body, judge)


CHANNEL = Alertmanager()
