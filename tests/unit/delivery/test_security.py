"""Security review, delivery: SSRF rules for webhooks (after DNS, at send time, with an
allow-list), no redirects, per-receiver secrets, Standard Webhooks signatures, verification
that never raises, strict roster e-mail addresses, no URL queries in receipts."""

from __future__ import annotations

import base64
import hashlib
import hmac
import socket
import time

import aiohttp
import orjson
import pytest
from aiohttp import web

from pipeline.delivery.channels import DeliveryError, SendContext, channel
from pipeline.delivery.notify import plan
from pipeline.delivery.roster import roster_from_dict
from pipeline.delivery.signing import (
    HEADER,
    sign,
    standard_headers,
    standard_signature,
    verify,
    verify_standard,
)
from pipeline.delivery.ssrf import GuardedResolver, Refused, check_url, refusal
from pipeline.errors import ConfigError
from pipeline.settings import Settings

from .test_notify import esc
from .test_roster import GRID, ROSTER

DEPLOYMENT = "deployment-secret-0001"
OWN = "whsec_" + base64.b64encode(b"receiver's own 32-byte key......").decode()
BODY = b'{"incident_id": "g1~inactivity:s1~1"}'


class Receiver:
    """/ok accepts; /moved redirects to /ok."""

    def __init__(self) -> None:
        self.got: list[dict] = []

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.got.append({"path": request.path, "headers": dict(request.headers), "body": body})
        if request.path == "/moved":
            raise web.HTTPFound("/ok")
        return web.Response(status=200)


@pytest.fixture
async def receiver():
    r = Receiver()
    app = web.Application()
    app.router.add_post("/{tail:.*}", r.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield r, f"http://127.0.0.1:{port}", port
    await runner.cleanup()


def _delivery(address: object):
    people = {**ROSTER["people"], "wang": {"name": "王", "webhook": address}}
    deliveries, _ = plan(esc(to=(GRID,)), roster_from_dict({**ROSTER, "people": people}))
    (d,) = [d for d in deliveries if d.channel == "webhook"]
    return d


async def _send(address: object, env: dict | None = None, http: aiohttp.ClientSession | None = None):
    ctx = SendContext(Settings.from_env({"GRIDWATCH_WEBHOOK_SECRETS": DEPLOYMENT, **(env or {})}))
    async with (http or aiohttp.ClientSession()) as ctx.http:
        await channel("webhook").send(ctx, _delivery(address), esc(to=(GRID,)))


# 1. SSRF: refused after DNS, at send time, unless allowed

@pytest.mark.parametrize("host, kind", [
    ("127.0.0.1", "loopback"), ("localhost", "loopback"), ("[::1]", "loopback"),
    ("10.1.2.3", "private"), ("192.168.1.10", "private"), ("172.16.0.1", "private"),
    ("169.254.10.1", "link-local"), ("169.254.169.254", "metadata"), ("[fd00:ec2::254]", "metadata"),
    ("224.0.0.251", "multicast"), ("0.0.0.0", "unspecified"), ("[::ffff:10.0.0.1]", "private"),
    ("100.64.0.1", "non-public"), ("[fc00::1]", "private"),
])
async def test_webhooks_to_internal_addresses_are_refused_not_retried(receiver, host, kind):
    r, _, port = receiver
    with pytest.raises(DeliveryError) as err:
        await _send(f"http://{host}:{port}/ok")
    assert err.value.retriable is False and kind in str(err.value) and "refused" in str(err.value)
    assert r.got == []  # nothing was sent


async def test_a_name_is_checked_after_dns_resolution(monkeypatch):
    async def fake_getaddrinfo(self, host, port, **kw):
        ip = {"hooks.internal.example": "10.0.0.7", "hooks.public.example": "93.184.216.34"}[host]
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (ip, port))]

    import asyncio

    monkeypatch.setattr(asyncio.BaseEventLoop, "getaddrinfo", fake_getaddrinfo)
    with pytest.raises(DeliveryError) as err:
        await check_url("https://hooks.internal.example/x")
    why = str(err.value)
    assert not err.value.retriable and "10.0.0.7" in why and "GRIDWATCH_WEBHOOK_ALLOW" in why
    assert await check_url("https://hooks.public.example/x") == ["93.184.216.34"]
    assert await check_url("https://hooks.internal.example/x", ("hooks.internal.example",)) == ["10.0.0.7"]
    assert await check_url("https://hooks.internal.example/x", ("10.0.0.0/24",)) == ["10.0.0.7"]


async def test_the_allow_list_opens_an_on_premise_gateway_but_never_the_metadata_address(receiver):
    r, _, port = receiver
    for allow in ("127.0.0.1", "127.0.0.0/8", "localhost"):
        host = "localhost" if allow == "localhost" else "127.0.0.1"
        await _send(f"http://{host}:{port}/ok", {"GRIDWATCH_WEBHOOK_ALLOW": allow})
    assert [g["path"] for g in r.got] == ["/ok"] * 3
    assert refusal("meta", "169.254.169.254", ("169.254.0.0/16", "meta")) is not None
    assert refusal("meta", "fd00:ec2::254", ("fd00::/8",)) is not None
    assert Settings.from_env({"GRIDWATCH_WEBHOOK_ALLOW": " gw.corp.local , 10.8.0.0/16 "}).webhook_allow == \
        ("gw.corp.local", "10.8.0.0/16")
    with pytest.raises(ConfigError, match="GRIDWATCH_WEBHOOK_ALLOW"):
        Settings.from_env({"GRIDWATCH_WEBHOOK_ALLOW": "http://x/"})


class _FakeResolver:
    def __init__(self, ip: str) -> None:
        self.ip = ip

    async def resolve(self, host, port=0, family=socket.AF_INET):
        return [{"hostname": host, "host": self.ip, "port": port, "family": family, "proto": 0,
                 "flags": socket.AI_NUMERICHOST}]

    async def close(self) -> None:
        pass


async def test_the_connection_goes_only_to_a_checked_address_dns_rebinding(receiver, monkeypatch):
    """The check resolves a public address; the connection's own lookup answers loopback: the
    session's resolver refuses it (not retriable), nothing reaches the receiver."""
    r, _, port = receiver

    async def public(self, host, port, **kw):
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.216.34", port))]

    import asyncio

    monkeypatch.setattr(asyncio.BaseEventLoop, "getaddrinfo", public)
    http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(
        resolver=GuardedResolver((), inner=_FakeResolver("127.0.0.1"))))
    with pytest.raises(DeliveryError) as err:
        await _send(f"http://rebind.example:{port}/ok", http=http)
    assert err.value.retriable is False and "loopback" in str(err.value)
    assert r.got == []
    with pytest.raises(Refused):
        await GuardedResolver((), inner=_FakeResolver("10.0.0.1")).resolve("x", 80)
    assert (await GuardedResolver((), inner=_FakeResolver("93.184.216.34")).resolve("x", 80))[0]["host"]


async def test_redirects_are_never_followed(receiver):
    r, base, _ = receiver
    with pytest.raises(DeliveryError) as err:
        await _send(f"{base}/moved", {"GRIDWATCH_WEBHOOK_ALLOW": "127.0.0.1"})
    assert err.value.retriable is False and "302" in str(err.value) and "redirect" in str(err.value)
    assert [g["path"] for g in r.got] == ["/moved"]  # /ok never called


# 2. signatures: Standard Webhooks, per-receiver secrets

async def test_a_receivers_own_secret_signs_instead_of_the_deployment_secret(receiver):
    r, base, _ = receiver
    await _send({"url": f"{base}/ok", "secret": OWN}, {"GRIDWATCH_WEBHOOK_ALLOW": "127.0.0.1"})
    await _send(f"{base}/ok", {"GRIDWATCH_WEBHOOK_ALLOW": "127.0.0.1"})
    (own, shared) = r.got
    now = int(time.time())
    assert own["headers"]["webhook-id"] == "410325100001001~inactivity:s1~1:2:wang:webhook"
    assert own["headers"]["webhook-id"] == own["headers"]["Idempotency-Key"]
    assert verify_standard(OWN, own["headers"], own["body"], now)
    assert verify(OWN, own["headers"][HEADER], own["body"], now)  # the older header, same secret
    assert not verify_standard(DEPLOYMENT, own["headers"], own["body"], now)
    assert verify_standard(DEPLOYMENT, shared["headers"], shared["body"], now)
    assert not verify_standard(OWN, shared["headers"], shared["body"], now)


def test_standard_webhooks_signs_id_timestamp_and_body():
    key = base64.b64decode(OWN[6:])
    mac = hmac.new(key, b"msg_1.1782864000." + BODY, hashlib.sha256).digest()
    want = "v1," + base64.b64encode(mac).decode()
    assert standard_signature(OWN, "msg_1", 1_782_864_000, BODY) == want
    plain = hmac.new(b"plain-secret-0001", b"msg_1.1782864000." + BODY, hashlib.sha256).digest()
    assert standard_signature("plain-secret-0001", "msg_1", 1_782_864_000, BODY) == \
        "v1," + base64.b64encode(plain).decode()
    headers = standard_headers(["new-secret-00001", "old-secret-00001"], "msg_1", 1_782_864_000, BODY)
    assert headers["webhook-timestamp"] == "1782864000" and headers["webhook-signature"].count("v1,") == 2
    for secret in ("new-secret-00001", "old-secret-00001"):  # a rotation carries both
        assert verify_standard(secret, headers, BODY, now=1_782_864_100)
    assert not verify_standard("new-secret-00001", {**headers, "webhook-id": "msg_2"}, BODY, 1_782_864_100)
    assert not verify_standard("new-secret-00001", {**headers, "webhook-timestamp": "1782864001"}, BODY,
                               1_782_864_100)
    assert not verify_standard("new-secret-00001", headers, BODY, now=1_782_864_000 + 301)


@pytest.mark.parametrize("header", [
    "t=1782864000,v1=é", "t=1782864000,v1=中文", "t=１７８２８６４０００,v1=ab", "t=+1782864000,v1=ab",
    "t=1_782_864_000,v1=ab", "t=1782864000,v1", "t=1782864000,,", "", "t=" + "9" * 5000,
    b"t=1782864000,v1=ab", None, 5,
])
def test_verify_answers_false_for_any_malformed_header_never_raises(header):
    assert verify("s3cret", header, BODY, now=1_782_864_000) is False  # used to raise TypeError
    bad = {"webhook-id": "m", "webhook-timestamp": "1782864000", "webhook-signature": header}
    assert verify_standard("s3cret", bad, BODY, now=1_782_864_000) is False
    assert verify_standard("s3cret", {**bad, "webhook-signature": "v1,x", "webhook-id": header}, BODY,
                           1_782_864_000) is False
    assert verify_standard("s3cret", {**bad, "webhook-signature": "v1,x", "webhook-timestamp": header},
                           BODY, 1_782_864_000) is False
    assert verify_standard("s3cret", "not a mapping", BODY, 1_782_864_000) is False  # type: ignore[arg-type]
    good = sign(["s3cret"], 1_782_864_000, BODY)
    assert verify("s3cret", good, BODY, now=1_782_864_000)


@pytest.mark.parametrize("webhook, says", [
    ({"url": "https://gw.example/hook", "secret": "short"}, "16 to 256"),
    ({"url": "https://gw.example/hook", "secret": 5}, "16 to 256"),
    ({"url": "https://gw.example/hook", "token": "x"}, "url and secret only"),
    ("https://gw.example/hook\n", r"http\(s\) URL"),
    ("https:///nohost", r"http\(s\) URL"),
])
def test_the_roster_refuses_a_bad_webhook_address_readably(webhook, says):
    people = {**ROSTER["people"], "wang": {"name": "王", "webhook": webhook}}
    with pytest.raises(ConfigError, match=says) as err:
        roster_from_dict({**ROSTER, "people": people}, "roster.yaml")
    assert "people.wang" in str(err.value)


# 3. e-mail addresses, parsed strictly

@pytest.mark.parametrize("address, says", [
    ("a,b@c.d", "more than one"), ("a;b@c.d", "more than one"), ("wang li@example.cn", "space"),
    ("Wang <w@example.cn>", "space"), ("w@example.cn\r\nBcc: x@y.cn", "CR or LF"),
    ("w@example.cn\n", "CR or LF"), ("nodomain", "no domain"), ("w@", "no domain"),
    ("w@localhost", "no domain"), ("@example.cn", "before the @"), ("w\x00@example.cn", "ASCII"),
    ("w(comment)@example.cn", "plain address"), ("w@example..cn", "plain address"),
    (".w@example.cn", "plain address"), ('"w"@example.cn', "plain address"),
    ("w@-bad.example.cn", "plain address"),
])
def test_roster_email_addresses_are_parsed_strictly(address, says):
    people = {**ROSTER["people"], "li": {"name": "李", "email": address}}
    with pytest.raises(ConfigError) as err:
        roster_from_dict({**ROSTER, "people": people}, "roster.yaml")
    assert "people.li" in str(err.value) and says in str(err.value), str(err.value)
    assert address.strip() not in str(err.value) or len(address) < 3  # personal data is not echoed


def test_plain_addresses_are_still_accepted():
    for ok in ("li@example.cn", "li.wei+duty@mail.example.com.cn", "x_y-z@xn--fiqs8s.xn--fiqs8s"):
        people = {**ROSTER["people"], "li": {"name": "李", "email": ok}}
        assert roster_from_dict({**ROSTER, "people": people}).people["li"].email == ok


# 4. receipts carry no URL query (a robot's access_token)

async def test_the_error_on_notifications_v1_has_no_url_query():
    from pipeline.delivery.service import Notifier

    class Producer:
        def __init__(self) -> None:
            self.sent: list[dict] = []

        async def send_and_wait(self, topic, value, key=None, headers=None):
            self.sent.append(orjson.loads(value)["data"])

    n = Notifier(Settings.from_env({}), roster_from_dict(ROSTER))
    n.producer = Producer()
    d = _delivery("https://gw.example/hook")
    err = ("ClientConnectorError: Cannot connect to host oapi.dingtalk.com:443 "
           "https://oapi.dingtalk.com/robot/send?access_token=0123456789abcdef&timestamp=1&sign=x")
    await n._record(esc(to=(GRID,)), d, "retrying", 1, err)
    (data,) = n.producer.sent
    assert "access_token" not in data["error"] and "0123456789abcdef" not in data["error"]
    assert "https://oapi.dingtalk.com/robot/send" in data["error"]
