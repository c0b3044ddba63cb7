"""The PagerDuty channel against a real HTTP server that checks an Events API v2 event as
PagerDuty documents it (POST /v2/enqueue; routing_key, event_action, dedup_key, payload with
summary ≤ 1024 characters, source, severity critical/error/warning/info, timestamp; links) and
answers as PagerDuty does: 202, 400 for an invalid event, 429 when throttled, 5xx."""

from __future__ import annotations

from datetime import datetime

import aiohttp
import pytest
from aiohttp import web

from pipeline.delivery.channels import SendContext, channel
from pipeline.delivery.channels.pagerduty import SEVERITY, event
from pipeline.delivery.notify import render
from pipeline.errors import ConfigError

from .receiver import deliveries, error, no_one_named, roster_with, send, serve, settings
from .test_notify import esc
from .test_roster import GRID

KEY = "e93facc04764012d7bfb002500d5d1a6"  # an integration key: 32 characters
THROTTLED, BROKEN, UNKNOWN = "T" * 32, "B" * 32, "U" * 32
PAYLOAD = {"summary", "source", "severity", "timestamp", "component", "group", "class", "custom_details"}


def invalid(e: dict) -> list[str]:
    """What PagerDuty's Events API v2 refuses (its 400 ``errors``) in event `e`."""
    out = []
    if not isinstance(e.get("routing_key"), str) or len(e["routing_key"]) != 32:
        out.append("Length of 'routing_key' is incorrect (should be 32 characters)")
    if e.get("event_action") not in ("trigger", "acknowledge", "resolve"):
        out.append("'event_action' is missing or blank")
    if not isinstance(e.get("dedup_key"), str) or not 1 <= len(e["dedup_key"]) <= 255:
        out.append("'dedup_key' is invalid")
    if set(e) - {"routing_key", "event_action", "dedup_key", "payload", "links", "images", "client",
                 "client_url"}:
        out.append("unknown fields")
    p = e.get("payload")
    if e.get("event_action") == "trigger":
        if not isinstance(p, dict) or set(p) != PAYLOAD:
            return [*out, "'payload' fields"]
        if not isinstance(p["summary"], str) or not 1 <= len(p["summary"]) <= 1024:
            out.append("'payload.summary' is missing, blank or too long")
        if not p["source"]:
            out.append("'payload.source' is missing or blank")
        if p["severity"] not in ("critical", "error", "warning", "info"):
            out.append("'payload.severity' is invalid (must be one of: critical, error, warning, info)")
        try:
            datetime.fromisoformat(p["timestamp"])
        except (TypeError, ValueError):
            out.append("'payload.timestamp' is invalid")
        if not isinstance(p["custom_details"], dict):
            out.append("'payload.custom_details' must be an object")
    links = e.get("links", [])
    if not isinstance(links, list) or any(set(x) != {"href", "text"} for x in links):
        out.append("'links' is invalid")
    return out


class Events:
    """/v2/enqueue: KEY and UNKNOWN are well formed (UNKNOWN: no such integration)."""

    def __init__(self) -> None:
        self.got: list[dict] = []

    async def handle(self, request: web.Request) -> web.Response:
        if request.method != "POST" or request.path != "/v2/enqueue":
            return web.Response(status=404)
        e = await request.json()
        self.got.append(e)
        wrong = invalid(e)
        if e.get("routing_key") == THROTTLED:
            return web.json_response({"status": "throttle event", "message": "Requests for this service "
                                      "are arriving too quickly. Please retry later."}, status=429)
        if e.get("routing_key") == BROKEN:
            return web.Response(status=502, text="Bad Gateway")
        if e.get("routing_key") == UNKNOWN:
            wrong = [f"Invalid routing key {UNKNOWN}"]
        if wrong:
            return web.json_response({"status": "invalid event", "message": "Event object is invalid",
                                      "errors": wrong}, status=400)
        return web.json_response({"status": "success", "message": "Event processed",
                                  "dedup_key": e["dedup_key"]}, status=202)


@pytest.fixture
async def events():
    ev = Events()
    async with serve(ev.handle) as base:
        yield ev, f"{base}/v2/enqueue"


async def test_a_trigger_event_as_the_events_api_takes_it(events):
    ev, url = events
    assert await send("pagerduty", {"routing_key": KEY, "url": url}) == ["delivered"]
    (e,) = ev.got
    subject, text = render(esc(to=(GRID,)), "zh")
    assert e["routing_key"] == KEY and e["event_action"] == "trigger"
    assert e["dedup_key"] == f"{GRID}~inactivity:s1~1"
    p = e["payload"]
    assert p["summary"] == f"{subject} {text}" and p["severity"] == "error"  # high
    assert (p["source"], p["component"], p["group"], p["class"]) == (GRID, "inactivity", GRID, "dispatched")
    assert p["timestamp"] == "2026-09-30T02:00:00.000Z"
    details = p["custom_details"]
    assert details["incident_id"] == e["dedup_key"] and details["level"] == "grid_worker"
    (link,) = e["links"]
    assert link["text"] == "Acknowledge" and link["href"].startswith("https://gw.example.cn/act/")
    assert no_one_named(str(e))


async def test_acknowledge_and_the_ends_of_an_incident_map_to_their_actions(events):
    ev, url = events
    (d,) = deliveries("pagerduty", {"routing_key": KEY, "url": url})
    ctx = SendContext(settings())
    async with aiohttp.ClientSession() as ctx.http:
        for transition in ("acknowledge", "resolve", "verify", "cancel", "merge", "escalated", "reopen"):
            await channel("pagerduty").send(ctx, d, esc(transition, to=(GRID,)))
    assert [e["event_action"] for e in ev.got] == ["acknowledge"] + ["resolve"] * 4 + ["trigger"] * 2
    assert {e["dedup_key"] for e in ev.got} == {f"{GRID}~inactivity:s1~1"}  # one PagerDuty alert


def test_severities_and_the_summary_limit():
    assert SEVERITY == {"critical": "critical", "red": "critical", "high": "error", "orange": "error",
                        "medium": "warning", "yellow": "warning", "low": "info", "blue": "info"}
    for sev, want in (("red", "critical"), ("low", "info"), ("yellow", "warning"), ("odd", "warning")):
        assert event({**esc(), "severity": sev}, KEY, "s", "t", {})["payload"]["severity"] == want
    long = event(esc(), KEY, "标题", "很长" * 1000, {})
    assert len(long["payload"]["summary"]) == 1024 and long["payload"]["summary"].endswith("…")
    assert invalid(long) == [] and "links" not in long  # no link key: no link


async def test_throttling_and_server_errors_are_retriable(events):
    _, url = events
    message, retriable = error(await send("pagerduty", {"routing_key": THROTTLED, "url": url}))
    assert message.startswith("PagerDuty HTTP 429: Requests for this service") and retriable is True
    assert error(await send("pagerduty", {"routing_key": BROKEN, "url": url})) == ("PagerDuty HTTP 502", True)


async def test_an_invalid_event_is_not_retriable_and_the_key_is_never_in_the_error(events):
    _, url = events
    message, retriable = error(await send("pagerduty", {"routing_key": UNKNOWN, "url": url}))
    assert message == "PagerDuty HTTP 400: Event object is invalid (Invalid routing key <routing key>)"
    assert retriable is False and UNKNOWN not in message and no_one_named(message)


def test_the_roster_checks_a_pagerduty_address():
    from pipeline.delivery.roster import roster_from_dict

    for bad, says in (("R0" * 16, "routing_key: ..."), ({"routing_key": "short"}, "32-character"),
                      ({"routing_key": KEY, "url": "ftp://x"}, "http"),
                      ({"routing_key": KEY, "service": "x"}, "routing_key: ...")):
        with pytest.raises(ConfigError, match=says) as caught:
            roster_from_dict(roster_with("pagerduty", bad))
        assert KEY not in str(caught.value)
    (d,) = deliveries("pagerduty", {"routing_key": KEY})
    assert d.address == "https://events.pagerduty.com/v2/enqueue" and d.secret == KEY
    assert KEY not in repr(d)
