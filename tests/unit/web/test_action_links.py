"""Signed action links: the page and its API on a real aiohttp server with a fake producer."""

from __future__ import annotations

import time

import pytest
from aiohttp.test_utils import TestClient, TestServer

from pipeline.delivery.links import ActionLink, LinkError, read_link, sign_link
from pipeline.settings import Settings
from pipeline.web.server import build_app

from .test_http_hostile import INC, _context

KEY = "link-key-0123456789abcdef"


def token(**over) -> str:
    fields = dict(incident_id=INC, person="wang", unit="g1",
                  actions=("acknowledge", "arrive", "resolve", "comment"),
                  expires_s=int(time.time()) + 3600, nonce="n1")
    return sign_link(KEY, ActionLink(**{**fields, **over}))


@pytest.fixture
async def client():
    ctx = _context(Settings.from_env({"GRIDWATCH_LINK_KEY": KEY}))
    app = build_app(ctx)
    app.on_startup.clear()
    async with TestClient(TestServer(app)) as c:
        yield c, ctx


def test_links_are_signed_and_expire():
    t = token()
    assert read_link(KEY, t, int(time.time())).person == "wang"
    for bad in (t[:-2] + "xx", t.replace(".", ""), "", "a.b", "é.é", t + "." + t):
        with pytest.raises(LinkError) as err:
            read_link(KEY, bad, int(time.time()))
        assert err.value.status == 403 and "not valid" in err.value.reason
    with pytest.raises(LinkError) as err:
        read_link(KEY, token(expires_s=int(time.time()) - 1), int(time.time()))
    assert err.value.status == 410 and "expired" in err.value.reason
    with pytest.raises(LinkError):
        read_link("another-key-0123456789", t, int(time.time()))


async def test_the_page_opens_from_the_link_alone_and_get_never_acts(client):
    c, ctx = client
    r = await c.get(f"/act/{token()}")
    assert r.status == 200 and "签收" in await r.text()
    r = await c.get(f"/api/v1/act/{token()}")
    body = await r.json()
    assert r.status == 200 and body["incident"]["incident_id"] == INC
    assert body["may"] == ["acknowledge", "arrive", "resolve", "comment"]
    assert ctx.producer.sent == []  # opening (or a mail scanner prefetching) writes nothing


async def test_a_tap_writes_the_command_through_the_same_path(client):
    c, ctx = client
    r = await c.post(f"/api/v1/act/{token()}", json={"action": "acknowledge"})
    assert r.status == 202, await r.text()
    ((topic, ev, key, _),) = ctx.producer.sent
    assert topic.endswith("commands.v1") and key == INC.encode()
    data = ev["data"]
    assert (data["action"], data["actor"], data["scope"]) == ("acknowledge", "wang", "g1")
    assert data["command_id"] == "link-n1-acknowledge"
    r = await c.post(f"/api/v1/act/{token()}", json={"action": "acknowledge"})
    assert r.status == 409 and "already used" in (await r.json())["error"]
    assert len(ctx.producer.sent) == 1


@pytest.mark.parametrize(("tok", "body", "status", "needle"), [
    (lambda: token(expires_s=int(time.time()) - 60), {"action": "acknowledge"}, 410, "expired"),
    (lambda: token()[:-3] + "abc", {"action": "acknowledge"}, 403, "not valid"),
    (lambda: token(actions=("comment",)), {"action": "acknowledge"}, 400, "allows comment"),
    (lambda: token(), {"action": "resolve"}, 400, "reason"),
    (lambda: token(), {"action": "acknowledge", "reason": 5}, 400, "reason"),
    (lambda: token(), {"action": ["acknowledge"]}, 400, "action"),
    (lambda: token(incident_id="g9~x~1"), {"action": "acknowledge"}, 404, "no longer"),
])
async def test_refusals_are_readable(client, tok, body, status, needle):
    c, ctx = client
    r = await c.post(f"/api/v1/act/{tok()}", json=body)
    assert r.status == status and needle in (await r.json())["error"]
    assert ctx.producer.sent == []


async def test_the_incident_moved_on(client):
    c, ctx = client
    ctx.board.incidents[INC]["state"] = "acknowledged"
    r = await c.post(f"/api/v1/act/{token()}", json={"action": "acknowledge"})
    assert r.status == 409 and "acknowledged now" in (await r.json())["error"]
    r = await c.get(f"/api/v1/act/{token()}")
    assert (await r.json())["may"] == ["arrive", "resolve", "comment"]


async def test_without_a_link_key_links_are_refused(client):
    c, ctx = client
    object.__setattr__(ctx, "settings", Settings.from_env({}))
    r = await c.get(f"/api/v1/act/{token()}")
    assert r.status == 503 and "GRIDWATCH_LINK_KEY" in (await r.json())["error"]
