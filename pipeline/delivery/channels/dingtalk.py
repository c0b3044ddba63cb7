"""DingTalk (钉钉) group robot: a markdown message to the robot's webhook, signed (加签).

Roster: ``dingtalk: https://oapi.dingtalk.com/robot/send?access_token=...`` or, for a robot with
signing on, ``dingtalk: {url: ..., secret: SEC...}``. A signed request adds ``timestamp`` (ms)
and ``sign`` = base64(HMAC-SHA256(secret, "<timestamp>\\n<secret>")) to the query, as DingTalk
documents. DingTalk answers HTTP 200 with ``errcode``: 0 is delivered; 130101 (sending too fast,
20 messages a minute per robot) and HTTP 5xx/429 are worth a retry; any other code (bad token,
signature, keyword or IP rules) is not.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import time
from typing import Any
from urllib.parse import quote_plus

from pipeline.delivery.channels import Address, Channel, DeliveryError, SendContext

URL = re.compile(r"^https?://\S+$")
RETRY_CODES = frozenset({130101, -1})  # too fast; "system busy"


def signed_url(url: str, secret: str | None, now_ms: int) -> str:
    """The robot URL with ``timestamp`` and ``sign`` when the robot has a secret."""
    if not secret:
        return url
    digest = hmac.new(secret.encode(), f"{now_ms}\n{secret}".encode(), hashlib.sha256).digest()
    sep = "&" if "?" in url else "?"
    return f"{url}{sep}timestamp={now_ms}&sign={quote_plus(base64.b64encode(digest).decode())}"


class DingTalk(Channel):
    name = "dingtalk"
    order = 20

    def parse(self, value: Any) -> Address:
        url, secret = (value.get("url"), value.get("secret")) if isinstance(value, dict) else (value, None)
        if isinstance(value, dict) and set(value) - {"url", "secret"}:
            raise ValueError("dingtalk takes url and secret only")
        if not isinstance(url, str) or not URL.match(url) or len(url) > 2048:
            raise ValueError("dingtalk needs the robot's http(s) webhook URL")
        if secret is not None and (not isinstance(secret, str) or not 1 <= len(secret) <= 256):
            raise ValueError("dingtalk secret must be a string (the robot's SEC... key)")
        return Address(url, secret)

    async def send(self, ctx: SendContext, d: Any, esc: dict) -> None:
        import aiohttp
        import orjson

        from pipeline.delivery.notify import links, render

        breaker = ctx.breaker(d.address)
        if not breaker.allow(time.monotonic()):
            raise DeliveryError("circuit open for this robot")
        subject, text = render(esc, d.lang, ctx.names)
        urls = links(esc, ctx.settings.public_url, d, ctx.settings.link_key)
        labels = {"act": "处置 act", "acknowledge": "签收", "resolve": "办结", "dashboard": "指挥中心"}
        actions = " ".join(f"[{labels.get(k, k)}]({v})" for k, v in urls.items())
        body = orjson.dumps({"msgtype": "markdown",
                             "markdown": {"title": subject[:64],
                                          "text": f"#### {subject}\n\n{text}\n\n{actions}".strip()}})
        url = signed_url(d.address, d.secret, int(time.time() * 1000))
        timeout = aiohttp.ClientTimeout(total=ctx.settings.notify_timeout_s)
        try:
            async with ctx.http.post(url, data=body, timeout=timeout,
                                     headers={"Content-Type": "application/json"}) as r:
                raw = await r.read()
                status = r.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            breaker.record(False, time.monotonic())
            raise DeliveryError(f"{type(exc).__name__}: {exc}")
        if status >= 300:
            breaker.record(False, time.monotonic())
            raise DeliveryError(f"HTTP {status}", retriable=status >= 500 or status == 429)
        try:
            answer = orjson.loads(raw)
            code = int(answer.get("errcode", -1))
        except (orjson.JSONDecodeError, AttributeError, TypeError, ValueError):
            breaker.record(False, time.monotonic())
            raise DeliveryError("the robot answered something that is not DingTalk JSON")
        if code != 0:
            breaker.record(False, time.monotonic())
            reason = str(answer.get("errmsg", ""))[:200]
            raise DeliveryError(f"DingTalk errcode {code}: {reason}", retriable=code in RETRY_CODES)
        breaker.record(True, time.monotonic())


CHANNEL = DingTalk()
