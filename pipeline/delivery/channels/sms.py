"""SMS (短信) through an HTTP gateway that takes a template and its parameters, as Chinese SMS
services do (Aliyun, Tencent Cloud: a registered signature and template, not free text).

Roster: ``sms: "+8613812345678"``, a mainland mobile number: 1[3-9] and nine digits, with an
optional +86 or 0086 prefix (spaces and hyphens are ignored); kept as +86 and 11 digits.

The gateway (settings ``sms_url``, ``sms_template``, ``sms_sign``, ``sms_token``: environment
GRIDWATCH_SMS_URL, GRIDWATCH_SMS_TEMPLATE, GRIDWATCH_SMS_SIGN, GRIDWATCH_SMS_TOKEN) receives
``POST`` JSON::

    {"phone": "+8613812345678", "sign_name": ..., "template_id": ...,
     "params": {"event": ..., "grid": ..., "deadline": ..., "link": <act link>},
     "segments": n}

with ``Authorization: Bearer <token>`` (when a token is set) and ``Idempotency-Key: <notification
id>``. ``segments`` is how many messages the rendered text costs: one up to 70 characters, else
67 a segment (UCS-2 concatenation, as Chinese operators count). A 2xx answering
``{"code": "OK"}`` is delivered; 429 and 5xx are worth a retry; other 4xx, and a 2xx with another
code, are not. The number is personal data: never logged nor in an error (masked 138****5678).
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime, timedelta
from typing import Any

from pipeline.delivery.channels import Address, Channel, DeliveryError, SendContext

MOBILE = re.compile(r"(?:\+86|0086)?(1[3-9]\d{9})")
SEGMENT, LONG_SEGMENT = 70, 67
CST = timedelta(hours=8)


def normalize(value: Any) -> str:
    """The number as ``+86`` and 11 digits, or ValueError (not repeating the number)."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        raise ValueError("sms must be a mobile number written as a quoted string (\"+86...\")")
    m = MOBILE.fullmatch(re.sub(r"[\s-]", "", value))
    if not m:
        raise ValueError("sms must be a mainland China mobile number: 11 digits starting 13-19, "
                         "optionally after +86 or 0086")
    return f"+86{m.group(1)}"


def mask(phone: str) -> str:
    """138****5678: what an error or a log may show of a number."""
    national = phone.removeprefix("+86")
    return f"{national[:3]}****{national[-4:]}"


def segments(text: str) -> int:
    """Messages `text` takes: 1 up to 70 characters (UTF-16 units), else ceil(n / 67)."""
    n = len(text.encode("utf-16-le")) // 2
    return 1 if n <= SEGMENT else math.ceil(n / LONG_SEGMENT)


def local_time(iso: str | None, lang: str) -> str:
    """A deadline in Beijing time as a person reads it on a phone: 9月30日 10:15, or
    2026-09-30 10:15 in English; 尽快 (ASAP) without one."""
    from pipeline.detect.host import event_ms

    if not iso:
        return "尽快" if lang == "zh" else "ASAP"
    try:
        at = datetime.fromtimestamp(event_ms(iso) / 1000, UTC) + CST
    except (ValueError, TypeError, OverflowError):
        return str(iso)[:32]
    return f"{at.month}月{at.day}日 {at:%H:%M}" if lang == "zh" else f"{at:%Y-%m-%d %H:%M}"


class Sms(Channel):
    name = "sms"
    order = 80

    def parse(self, value: Any) -> Address:
        return Address(normalize(value))

    async def send(self, ctx: SendContext, d: Any, esc: dict) -> None:
        import orjson

        from pipeline.delivery.channels._http import answer_json, post, status_error
        from pipeline.delivery.notify import EVENT_ZH, links, render

        s = ctx.settings
        url, template, sign = (getattr(s, "sms_url", None), getattr(s, "sms_template", None),
                               getattr(s, "sms_sign", None))
        token = getattr(s, "sms_token", None)
        if not url or not template or not sign:
            raise DeliveryError("no SMS gateway configured (GRIDWATCH_SMS_URL, GRIDWATCH_SMS_TEMPLATE "
                                "and GRIDWATCH_SMS_SIGN)", retriable=False)
        phone, masked = d.address, mask(d.address)
        _, text = render(esc, d.lang, ctx.names)
        urls = links(esc, s.public_url, d, s.link_key)
        kind, grid = esc.get("kind", "incident"), str(esc.get("grid_id") or esc["to"][0])
        params = {"event": EVENT_ZH.get(kind, kind) if d.lang == "zh" else kind,
                  "grid": ctx.names.get(grid) or grid,  # its name when the atlas is known
                  "deadline": local_time(esc.get("deadline"), d.lang),
                  "link": urls.get("act") or urls.get("dashboard") or ""}
        body = orjson.dumps({"phone": phone, "sign_name": sign, "template_id": template,
                             "params": params, "segments": segments(text)})
        headers = {"Idempotency-Key": d.notification_id}
        if token:
            headers["Authorization"] = f"Bearer {token}"

        def judge(status: int, raw: bytes) -> None:
            failed = status_error(status, "SMS gateway HTTP")
            if failed:
                raise DeliveryError(f"{failed} for {masked}", retriable=failed.retriable)
            answer = answer_json(raw)
            code = answer.get("code") if isinstance(answer, dict) else None
            if code != "OK":
                said = f"code {str(code)[:80]!r}" if code is not None else "no code"
                raise DeliveryError(f"SMS gateway refused the message for {masked}: {said}",
                                    retriable=False)

        national = phone.removeprefix("+86")
        await post(ctx, url, body, judge, check=False, headers=headers,
                   redact=[(phone, masked), (national, masked), *([(token, "<token>")] if token else [])])


CHANNEL = Sms()
