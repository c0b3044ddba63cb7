"""The DingTalk (钉钉) robot channel against a real HTTP server that checks what DingTalk checks:
the signature (timestamp + HMAC-SHA256 of "<timestamp>\\n<secret>"), the markdown body, and
answers with DingTalk's errcodes. A worked example of a channel: this module, its test, a
roster field; nothing else in gridwatch names it."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time

import aiohttp
import pytest
from aiohttp import web

from pipeline.delivery.channels import DeliveryError, SendContext, channel, registry
from pipeline.delivery.notify import plan
from pipeline.delivery.roster import roster_from_dict
from pipeline.errors import ConfigError
from pipeline.settings import Settings

from .test_notify import esc
from .test_roster import GRID, ROSTER

SECRET = "SECabc123"


class Robot:
    """A DingTalk robot: /ok delivers, /fast is rate-limited once, /token is a revoked token."""

    def __init__(self) -> None:
        self.got: list[dict] = []
        self.fast_left = 1

    async def handle(self, request: web.Request) -> web.Response:
        q = request.query
        ts, sign = q.get("timestamp", ""), q.get("sign", "")
        want = base64.b64encode(hmac.new(SECRET.encode(), f"{ts}\n{SECRET}".encode(),
                                         hashlib.sha256).digest()).decode()
        if request.path != "/nosign" and (sign != want or abs(int(ts or 0) - time.time() * 1000) > 3600_000):
            return web.json_response({"errcode": 310000, "errmsg": "sign not match"})
        body = await request.json()
        self.got.append({"path": request.path, "body": body})
        if request.path == "/fast" and self.fast_left:
            self.fast_left -= 1
            return web.json_response({"errcode": 130101, "errmsg": "send too fast"})
        if request.path == "/token":
            return web.json_response({"errcode": 300001, "errmsg": "token is not exist"})
        return web.json_response({"errcode": 0, "errmsg": "ok"})


@pytest.fixture
async def robot():
    r = Robot()
    app = web.Application()
    app.router.add_post("/{tail:.*}", r.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield r, f"http://127.0.0.1:{port}"
    await runner.cleanup()


def roster_with(address: object) -> dict:
    people = {**ROSTER["people"], "wang": {"name": "王", "dingtalk": address}}
    return {**ROSTER, "people": people}


async def send_to(base_path: str, roster: dict) -> list:
    deliveries, _ = plan(esc(to=(GRID,)), roster_from_dict(roster))
    ctx = SendContext(Settings.from_env({"GRIDWATCH_PUBLIC_URL": "https://gw.example.cn",
                                         "GRIDWATCH_LINK_KEY": "k" * 32}))
    async with aiohttp.ClientSession() as ctx.http:
        out = []
        for d in deliveries:
            if d.channel == "dingtalk":
                try:
                    await channel("dingtalk").send(ctx, d, esc(to=(GRID,)))
                    out.append("delivered")
                except DeliveryError as exc:
                    out.append(("error", str(exc), exc.retriable))
        return out


def test_the_channel_is_found_by_the_registry_in_its_order():
    assert list(registry())[:2] == ["webhook", "dingtalk"] and "email" in registry()


async def test_a_signed_markdown_message_is_delivered(robot):
    r, base = robot
    assert await send_to(base, roster_with({"url": f"{base}/ok?access_token=t1", "secret": SECRET})) \
        == ["delivered"]
    (got,) = r.got
    md = got["body"]["markdown"]
    assert got["body"]["msgtype"] == "markdown" and "独居老人无活动" in md["title"]
    assert "请于" in md["text"] and "[签收](https://gw.example.cn/act/" in md["text"]


async def test_errcodes_say_whether_a_retry_can_help(robot):
    _, base = robot
    fast = await send_to(base, roster_with({"url": f"{base}/fast?access_token=t", "secret": SECRET}))
    assert fast == [("error", "DingTalk errcode 130101: send too fast", True)]
    token = await send_to(base, roster_with({"url": f"{base}/token?access_token=t", "secret": SECRET}))
    assert token == [("error", "DingTalk errcode 300001: token is not exist", False)]
    wrong = await send_to(base, roster_with({"url": f"{base}/ok?access_token=t", "secret": "SECwrong"}))
    assert wrong == [("error", "DingTalk errcode 310000: sign not match", False)]
    unsigned = await send_to(base, roster_with(f"{base}/nosign?access_token=t"))
    assert unsigned == ["delivered"]


async def test_an_unreachable_robot_is_retriable():
    from pipeline.broker import free_port

    out = await send_to("", roster_with(f"http://127.0.0.1:{free_port()}/x"))
    assert out and out[0][0] == "error" and out[0][2] is True


def test_the_roster_refuses_a_bad_dingtalk_address_readably():
    for bad, says in (("ftp://x", "webhook URL"), ({"url": "https://x", "secret": 5}, "secret"),
                      ({"url": "https://x", "token": "t"}, "url and secret only")):
        with pytest.raises(ConfigError, match=says):
            roster_from_dict(roster_with(bad))
    with pytest.raises(ConfigError, match="unknown channel 'wechat'"):
        roster_from_dict({**ROSTER, "people": {**ROSTER["people"], "wang": {"name": "王", "wechat": "x"}}})
    wang = roster_from_dict(roster_with("https://oapi.dingtalk.com/robot/send?access_token=t")).people["wang"]
    assert [name for name, _ in wang.addresses()] == ["dingtalk"]
