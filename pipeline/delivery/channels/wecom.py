"""WeCom (企业微信) group robot (群机器人): a markdown message to the robot's webhook.

Roster: ``wecom: https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=<robot key>``. The body is
``{"msgtype": "markdown", "markdown": {"content": ...}}``: the subject as a heading, the message,
and the action links as markdown links (``[签收](url)``). WeCom takes at most 4096 bytes of
UTF-8 content: a longer message is cut on a character boundary (marked with …), never the
links. WeCom answers HTTP 200 with ``{"errcode": 0, "errmsg": "ok"}`` when delivered; errcode
45009 (api freq out of limit: 20 messages a minute per robot), -1 (system busy) and HTTP
429/5xx are worth a retry; any other code (93000 invalid webhook url, 40008 invalid message
type...) is not. The key is a secret: errors never show the URL.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qs, urlsplit

from pipeline.delivery.channels import Address, Channel, DeliveryError, SendContext

URL = re.compile(r"https?://[^\s/?#]+\S*")
MAX_BYTES = 4096
RETRY_CODES = frozenset({45009, -1})  # api freq out of limit; system busy
LABELS = {"zh": {"act": "处置", "acknowledge": "签收", "resolve": "办结", "dashboard": "指挥中心"},
          "en": {"act": "Act", "acknowledge": "Acknowledge", "resolve": "Resolve",
                 "dashboard": "Dashboard"}}


def fit(head: str, tail: str, limit: int = MAX_BYTES) -> str:
    """`head` + `tail` in at most `limit` bytes of UTF-8, cutting `head` (on a character
    boundary, marked with …) so that `tail` (the links) stays whole when it can."""
    whole = head + tail
    if len(whole.encode()) <= limit:
        return whole
    if len(tail.encode()) > limit // 2:  # links that long: keep what fits of everything
        head, tail = whole, ""
    room = limit - len(tail.encode()) - len("…".encode())
    cut = head.encode()[:room].decode("utf-8", errors="ignore")
    return f"{cut}…{tail}"


def content(subject: str, text: str, urls: dict[str, str], lang: str) -> str:
    """The markdown content of one message, at most 4096 bytes."""
    labels = LABELS.get(lang, LABELS["zh"])
    actions = " ".join(f"[{labels.get(k, k)}]({v})" for k, v in urls.items())
    return fit(f"### {subject}\n{text}", f"\n\n{actions}" if actions else "")


class WeCom(Channel):
    name = "wecom"
    order = 30

    def parse(self, value: Any) -> Address:
        if not isinstance(value, str) or not URL.fullmatch(value) or len(value) > 2048:
            raise ValueError("wecom needs the robot's http(s) webhook URL "
                             "(https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=...)")
        if not parse_qs(urlsplit(value).query).get("key", [""])[0]:
            raise ValueError("wecom webhook URL has no key= (copy the robot's whole webhook address)")
        return Address(value)

    async def send(self, ctx: SendContext, d: Any, esc: dict) -> None:
        import orjson

        from pipeline.delivery.channels._http import answer_json, post, status_error
        from pipeline.delivery.notify import links, render

        subject, text = render(esc, d.lang, ctx.names)
        urls = links(esc, ctx.settings.public_url, d, ctx.settings.link_key)
        body = orjson.dumps({"msgtype": "markdown",
                             "markdown": {"content": content(subject, text, urls, d.lang)}})

        def judge(status: int, raw: bytes) -> None:
            failed = status_error(status)
            if failed:
                raise failed
            answer = answer_json(raw)
            if not isinstance(answer, dict) or not isinstance(answer.get("errcode"), int):
                raise DeliveryError("the robot answered something that is not WeCom JSON")
            code = answer["errcode"]
            if code != 0:
                reason = str(answer.get("errmsg", ""))[:200]
                raise DeliveryError(f"WeCom errcode {code}: {reason}", retriable=code in RETRY_CODES)

        key = parse_qs(urlsplit(d.address).query).get("key", [""])[0]
        await post(ctx, d.address, body, judge, redact=[(key, "<key>")])


CHANNEL = WeCom()
