"""The WeCom (企业微信) group robot channel against a real HTTP server that checks what WeCom
documents for a robot's markdown message: POST /cgi-bin/webhook/send?key=KEY, JSON
{"msgtype": "markdown", "markdown": {"content": ...}} with content at most 4096 bytes of UTF-8;
answers HTTP 200 with WeCom's errcodes."""

from __future__ import annotations

import pytest
from aiohttp import web

from pipeline.delivery.channels.wecom import MAX_BYTES, fit
from pipeline.delivery.notify import render
from pipeline.errors import ConfigError

from .receiver import deliveries, error, no_one_named, roster_with, send, serve
from .test_notify import esc
from .test_roster import GRID

KEY = "693a91f6-7xxx-4bc4-97a0-0ec2sifa5aaa"


class Robot:
    """A WeCom robot: KEY delivers; "busy" is rate-limited once; "down" answers 503."""

    def __init__(self) -> None:
        self.got: list[dict] = []
        self.busy_left = 1

    async def handle(self, request: web.Request) -> web.Response:
        if request.method != "POST" or request.path != "/cgi-bin/webhook/send":
            return web.Response(status=404)
        key = request.query.get("key", "")
        if key == "down":
            return web.Response(status=503, text="upstream unavailable")
        if request.content_type != "application/json":
            return web.json_response({"errcode": 40008, "errmsg": "invalid message type"})
        body = await request.json()
        self.got.append(body)
        if set(body) != {"msgtype", "markdown"} or body["msgtype"] != "markdown" \
                or set(body["markdown"]) != {"content"} or not isinstance(body["markdown"]["content"], str):
            return web.json_response({"errcode": 40008, "errmsg": "invalid message type"})
        if len(body["markdown"]["content"].encode()) > MAX_BYTES:
            return web.json_response({"errcode": 40058,
                                      "errmsg": "markdown.content exceed max length 4096"})
        if key == "busy" and self.busy_left:
            self.busy_left -= 1
            return web.json_response({"errcode": 45009, "errmsg": "api freq out of limit"})
        if key != KEY and key != "busy":
            return web.json_response({"errcode": 93000, "errmsg": f"invalid webhook url, key {key}"})
        return web.json_response({"errcode": 0, "errmsg": "ok"})


@pytest.fixture
async def robot():
    r = Robot()
    async with serve(r.handle) as base:
        yield r, base


def hook(base: str, key: str = KEY) -> str:
    return f"{base}/cgi-bin/webhook/send?key={key}"


async def test_a_markdown_message_with_the_action_links_is_delivered(robot):
    r, base = robot
    assert await send("wecom", hook(base)) == ["delivered"]
    (body,) = r.got
    md = body["markdown"]["content"]
    subject, text = render(esc(to=(GRID,)), "zh")
    assert md.startswith(f"### {subject}\n{text}\n\n[处置](https://gw.example.cn/act/")
    assert "独居老人无活动" in subject
    act = md.split("[处置](", 1)[1].split(")", 1)[0]
    assert act.startswith("https://gw.example.cn/act/")
    assert f"[签收]({act}#acknowledge)" in md and f"[办结]({act}#resolve)" in md
    assert md.endswith("[指挥中心](https://gw.example.cn/)")
    assert no_one_named(md)


async def test_a_long_message_is_cut_to_4096_bytes_and_keeps_its_links(robot):
    r, base = robot
    long = {**esc(to=(GRID,)), "kind": "山体滑坡隐患点位" * 400}  # ~9.6 kB of UTF-8
    assert await send("wecom", hook(base), long) == ["delivered"]
    md = r.got[0]["markdown"]["content"]
    assert len(md.encode()) <= MAX_BYTES and "…\n\n[处置](https://gw.example.cn/act/" in md
    assert md.endswith("[指挥中心](https://gw.example.cn/)")
    for limit in range(10, 40):  # never half a character, whatever the limit
        cut = fit("汉字" * 50, "", limit)
        assert len(cut.encode()) <= limit and cut.endswith("…")
    assert fit("short", " [a](b)") == "short [a](b)"


async def test_rate_limit_and_server_errors_are_retriable(robot):
    _, base = robot
    assert error(await send("wecom", hook(base, "busy"))) == ("WeCom errcode 45009: api freq out of limit",
                                                            True)
    assert error(await send("wecom", hook(base, "down"))) == ("HTTP 503", True)
    from pipeline.broker import free_port

    message, retriable = error(await send("wecom", f"http://127.0.0.1:{free_port()}/x?key=gone"))
    assert retriable and "gone" not in message


async def test_an_invalid_webhook_is_not_retriable_and_the_key_is_never_in_the_error(robot):
    _, base = robot
    message, retriable = error(await send("wecom", hook(base, "revoked-robot-key")))
    assert message == "WeCom errcode 93000: invalid webhook url, key <key>" and retriable is False
    assert "revoked-robot-key" not in message and no_one_named(message)


def test_the_roster_checks_a_wecom_address_readably():
    from pipeline.delivery.roster import roster_from_dict

    for bad, says in (("ftp://x", "webhook URL"), ({"url": "https://x"}, "webhook URL"),
                      ("https://qyapi.weixin.qq.com/cgi-bin/webhook/send", "no key=")):
        with pytest.raises(ConfigError, match=says):
            roster_from_dict(roster_with("wecom", bad))
    (d,) = deliveries("wecom", "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=k1")
    assert d.address.endswith("?key=k1") and d.notification_id.endswith(":wang:wecom")
