"""The Alertmanager-compatible channel against a real HTTP receiver that checks the webhook
message exactly as https://prometheus.io/docs/alerting/latest/configuration/#webhook_config
documents it (version 4), so receivers written for Alertmanager take it."""

from __future__ import annotations

import re

import pytest
from aiohttp import web

from pipeline.delivery.channels import SendContext, channel
from pipeline.delivery.channels.alertmanager import fingerprint, label_set, rfc3339
from pipeline.delivery.notify import render
from pipeline.errors import ConfigError

from .receiver import deliveries, error, no_one_named, roster_with, send, serve, settings
from .test_notify import esc
from .test_roster import GRID

TOP = {"version", "groupKey", "truncatedAlerts", "status", "receiver", "groupLabels", "commonLabels",
       "commonAnnotations", "externalURL", "alerts"}
ALERT = {"status", "labels", "annotations", "startsAt", "endsAt", "generatorURL", "fingerprint"}
LABELS = {"alertname", "incident_id", "kind", "severity", "grid_id", "level"}
RFC3339 = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?(Z|[+-]\d\d:\d\d)")


def problems(m: dict) -> list[str]:
    """What a strict Alertmanager webhook receiver would refuse in message `m`."""
    out = []
    if set(m) != TOP:
        out.append(f"top-level fields {sorted(set(m) ^ TOP)}")
        return out
    if m["version"] != "4" or m["status"] not in ("firing", "resolved") or not isinstance(m["receiver"], str):
        out.append("version/status/receiver")
    for kv in ("groupLabels", "commonLabels", "commonAnnotations"):
        if not isinstance(m[kv], dict) or not all(isinstance(v, str) for v in m[kv].values()):
            out.append(f"{kv} must map strings to strings")
    if m["groupKey"] != f"{{}}:{label_set(m['groupLabels'])}":
        out.append("groupKey")
    if not isinstance(m["truncatedAlerts"], int) or not isinstance(m["alerts"], list) or not m["alerts"]:
        out.append("alerts")
        return out
    for a in m["alerts"]:
        if set(a) != ALERT:
            out.append(f"alert fields {sorted(set(a) ^ ALERT)}")
            continue
        if set(a["labels"]) != LABELS or not all(isinstance(v, str) and v for v in a["labels"].values()):
            out.append("labels")
        if not RFC3339.fullmatch(a["startsAt"]) or not RFC3339.fullmatch(a["endsAt"]):
            out.append("times are not RFC 3339")
        if a["status"] == "firing" and a["endsAt"] != "0001-01-01T00:00:00Z":
            out.append("a firing alert's endsAt is Go's zero time")
        fp = a["fingerprint"]
        if not isinstance(fp, str) or not re.fullmatch(r"[0-9a-f]{16}", fp) or fp != fingerprint(a["labels"]):
            out.append("fingerprint")
        if not set(m["commonLabels"].items()) <= set(a["labels"].items()) or \
                not set(m["groupLabels"].items()) <= set(m["commonLabels"].items()):
            out.append("common/group labels are not the alerts' own")
    return out


class Receiver:
    """/ok accepts a valid message (400 otherwise), /busy answers 503, /gone 404, /limit 429."""

    def __init__(self) -> None:
        self.got: list[dict] = []

    async def handle(self, request: web.Request) -> web.Response:
        codes = {"/busy": 503, "/gone": 404, "/limit": 429}
        if request.path in codes:
            return web.Response(status=codes[request.path])
        if request.method != "POST" or request.content_type != "application/json":
            return web.Response(status=415)
        m = await request.json()
        self.got.append(m)
        wrong = problems(m)
        return web.json_response({"problems": wrong}, status=400 if wrong else 200)


@pytest.fixture
async def receiver():
    r = Receiver()
    async with serve(r.handle) as base:
        yield r, base


async def test_a_firing_alert_in_the_webhook_format(receiver):
    r, base = receiver
    assert await send("alertmanager", f"{base}/ok") == ["delivered"]
    (m,) = r.got
    subject, text = render(esc(to=(GRID,)), "zh")
    (a,) = m["alerts"]
    assert m["status"] == a["status"] == "firing" and m["receiver"] == "gridwatch"
    assert a["labels"] == {"alertname": "gridwatch_inactivity", "incident_id": f"{GRID}~inactivity:s1~1",
                           "kind": "inactivity", "severity": "high", "grid_id": GRID, "level": "grid_worker"}
    assert m["groupLabels"] == {"incident_id": f"{GRID}~inactivity:s1~1"}
    assert m["groupKey"] == f'{{}}:{{incident_id="{GRID}~inactivity:s1~1"}}'
    assert a["annotations"]["summary"] == subject and a["annotations"]["description"] == text
    assert a["annotations"]["runbook_url"].startswith("https://gw.example.cn/act/")
    assert m["commonLabels"] == a["labels"] and m["commonAnnotations"] == a["annotations"]
    assert a["startsAt"] == "2026-09-30T02:00:00Z" and a["endsAt"] == "0001-01-01T00:00:00Z"
    assert m["externalURL"] == a["generatorURL"] == "https://gw.example.cn/"
    assert m["truncatedAlerts"] == 0 and no_one_named(str(m))


async def test_the_transitions_that_end_a_call_are_resolved(receiver):
    r, base = receiver
    (d,) = deliveries("alertmanager", f"{base}/ok")
    ctx = SendContext(settings())
    import aiohttp

    async with aiohttp.ClientSession() as ctx.http:
        for transition in ("resolve", "verify", "cancel", "merge", "acknowledge", "escalated"):
            body = {**esc(transition, to=(GRID,)), "at": "2026-09-30T03:04:05.120Z"}
            await channel("alertmanager").send(ctx, d, body)
    assert [m["status"] for m in r.got] == ["resolved"] * 4 + ["firing"] * 2
    assert [m["alerts"][0]["endsAt"] for m in r.got] == ["2026-09-30T03:04:05.12Z"] * 4 + \
        ["0001-01-01T00:00:00Z"] * 2


def test_fingerprints_and_times_are_the_ones_prometheus_computes():
    # prometheus/common model: LabelsToSignature / LabelSet.Fingerprint test vector
    vector = {"name": "garland, briggs", "fear": "love is not enough"}
    assert int(fingerprint(vector), 16) == 5799056148416392346
    assert fingerprint({}) == "cbf29ce484222325"  # FNV-1a offset basis: the empty label set
    assert label_set({"b": "2", "a": 'say "1"'}) == '{a="say \\"1\\"", b="2"}'
    assert rfc3339("2026-09-30T10:00:00.000+08:00") == "2026-09-30T02:00:00Z"


async def test_server_errors_and_rate_limits_are_retriable(receiver):
    _, base = receiver
    assert error(await send("alertmanager", f"{base}/busy")) == ("HTTP 503", True)
    assert error(await send("alertmanager", f"{base}/limit")) == ("HTTP 429", True)


async def test_a_refusing_receiver_is_not_retriable_and_nothing_personal_is_said(receiver):
    _, base = receiver
    message, retriable = error(await send("alertmanager", f"{base}/gone"))
    assert (message, retriable) == ("HTTP 404", False) and no_one_named(message)


async def test_private_addresses_are_refused_unless_allowed_like_webhooks(receiver):
    _, base = receiver
    message, retriable = error(await send("alertmanager", f"{base}/ok", s=settings(
        {"GRIDWATCH_WEBHOOK_ALLOW": ""})))
    assert "loopback" in message and "GRIDWATCH_WEBHOOK_ALLOW" in message and retriable is False


def test_the_roster_checks_an_alertmanager_address():
    from pipeline.delivery.roster import roster_from_dict

    for bad in ("ftp://x", {"url": "https://x"}, "https://" + "x" * 2050):
        with pytest.raises(ConfigError, match="alertmanager must be the receiver's http"):
            roster_from_dict(roster_with("alertmanager", bad))
