"""The SMS channel against a real HTTP gateway that checks the documented request: POST JSON
{"phone", "sign_name", "template_id", "params": {"event", "grid", "deadline", "link"},
"segments"} with a bearer token, answering {"code": "OK"} as Aliyun/Tencent-style gateways do.
The number is personal data: it must never be in an error, only masked (138****5678)."""

from __future__ import annotations

import math
import re

import pytest
from aiohttp import web

from pipeline.delivery.channels.sms import mask, normalize, segments
from pipeline.delivery.notify import render
from pipeline.errors import ConfigError

from .receiver import deliveries, error, no_one_named, roster_with, send, serve, settings
from .test_notify import esc
from .test_roster import GRID

PHONE = "+8613812345678"
TOKEN = "sms-gateway-token-0123456789"
PHONE_RE = re.compile(r"\+861[3-9]\d{9}")


class Gateway:
    """An SMS gateway: answers by number; 13900000429 is throttled, 13900000500 fails, 13900000400
    is refused (and, like real gateways, the refusal repeats the number), 13900000001 is over its
    daily quota (a 200 with another code)."""

    def __init__(self) -> None:
        self.got: list[dict] = []

    async def handle(self, request: web.Request) -> web.Response:
        if request.method != "POST" or request.path != "/v1/sms/send":
            return web.Response(status=404)
        if request.headers.get("Authorization") != f"Bearer {TOKEN}":
            return web.json_response({"code": "Unauthorized", "message": "bad token"}, status=401)
        if request.content_type != "application/json":
            return web.json_response({"code": "InvalidContentType"}, status=415)
        body = await request.json()
        self.got.append({"body": body, "idempotency": request.headers.get("Idempotency-Key")})
        problems = [
            set(body) != {"phone", "sign_name", "template_id", "params", "segments"},
            not isinstance(body.get("phone"), str) or not PHONE_RE.fullmatch(body["phone"]),
            body.get("sign_name") != "网格预警", body.get("template_id") != "SMS_468090123",
            not isinstance(body.get("params"), dict)
            or set(body["params"]) != {"event", "grid", "deadline", "link"}
            or not all(isinstance(v, str) and v for v in body["params"].values()),
            not isinstance(body.get("segments"), int) or body["segments"] < 1]
        if any(problems):
            return web.json_response({"code": "InvalidParameter", "message": str(problems)}, status=400)
        national = body["phone"][3:]
        if national == "13900000429":
            return web.json_response({"code": "Throttling", "message": "slow down"}, status=429)
        if national == "13900000500":
            return web.json_response({"code": "isp.SYSTEM_ERROR"}, status=500)
        if national == "13900000400":
            return web.json_response({"code": "isv.MOBILE_NUMBER_ILLEGAL",
                                      "message": f"号码 {national} 非法"}, status=400)
        if national == "13900000001":
            return web.json_response({"code": f"isv.DAY_LIMIT_CONTROL {national}"})
        return web.json_response({"code": "OK", "message": "OK", "request_id": "F655A8D5"})


@pytest.fixture
async def gateway():
    g = Gateway()
    async with serve(g.handle) as base:
        yield g, settings(sms_url=f"{base}/v1/sms/send", sms_template="SMS_468090123",
                          sms_sign="网格预警", sms_token=TOKEN)


async def test_a_templated_message_is_delivered_with_its_segments(gateway):
    g, s = gateway
    assert await send("sms", "138 1234 5678", s=s) == ["delivered"]
    ((d,),) = [deliveries("sms", PHONE)]
    (got,) = g.got
    body = got["body"]
    assert body["phone"] == PHONE and body["sign_name"] == "网格预警"
    assert body["template_id"] == "SMS_468090123" and got["idempotency"] == d.notification_id
    params = body["params"]
    assert params["event"] == "独居老人无活动" and params["grid"] == GRID
    assert params["deadline"] == "9月30日 10:15"  # 02:15 UTC in Beijing time
    assert params["link"].startswith("https://gw.example.cn/act/")
    _, text = render(esc(to=(GRID,)), "zh")
    n = len(text)
    assert body["segments"] == (1 if n <= 70 else math.ceil(n / 67)) == segments(text)
    assert no_one_named(str(body))


def test_segments_follow_the_70_and_67_character_rule():
    assert [segments("短" * n) for n in (0, 1, 70, 71, 134, 135, 201, 202)] == [1, 1, 1, 2, 2, 3, 3, 4]
    assert segments("a" * 70) == 1 and segments("a" * 71) == 2  # Chinese gateways count every character
    assert segments("😀" * 35) == 1 and segments("😀" * 36) == 2  # UCS-2: two units each


async def test_throttling_and_gateway_errors_are_retriable(gateway):
    _, s = gateway
    assert error(await send("sms", "+8613900000429", s=s)) == ("SMS gateway HTTP 429 for 139****0429", True)
    assert error(await send("sms", "13900000500", s=s)) == ("SMS gateway HTTP 500 for 139****0500", True)


async def test_a_refused_number_is_not_retriable_and_never_shown(gateway):
    _, s = gateway
    message, retriable = error(await send("sms", "008613900000400", s=s))
    assert message == "SMS gateway HTTP 400 for 139****0400" and retriable is False
    message, retriable = error(await send("sms", "13900000001", s=s))  # the gateway's code names it
    assert message == "SMS gateway refused the message for 139****0001: code 'isv.DAY_LIMIT_CONTROL " \
        "139****0001'" and retriable is False
    assert "13900000001" not in message and no_one_named(message)
    bad_token = settings(sms_url=s.sms_url, sms_template="SMS_468090123", sms_sign="网格预警",
                         sms_token="wrong-token-value")
    message, retriable = error(await send("sms", PHONE, s=bad_token))
    assert message == "SMS gateway HTTP 401 for 138****5678" and not retriable
    assert "wrong-token-value" not in message and "13812345678" not in message


async def test_without_a_gateway_nothing_is_sent_and_that_is_final():
    message, retriable = error(await send("sms", PHONE, s=settings()))
    assert "GRIDWATCH_SMS_URL" in message and retriable is False


def test_the_roster_takes_mainland_mobile_numbers_only_and_never_repeats_one():
    from pipeline.delivery.roster import roster_from_dict

    for good in ("13812345678", "+8613812345678", "008613812345678", "+86 138-1234-5678", 13812345678):
        assert normalize(good) == PHONE
    assert mask(PHONE) == "138****5678"
    for bad in ("12812345678", "+8513812345678", "1381234567", "138123456789", "+86", "tel:13812345678",
                True, ["13812345678"]):
        with pytest.raises(ConfigError, match="sms must be") as caught:
            roster_from_dict(roster_with("sms", bad))
        digits = re.sub(r"\D", "", str(bad))
        assert not digits or digits == "86" or digits not in str(caught.value)
