"""Webhook (JSON or CAP 1.2 XML POST), signed per deployment secret, with an idempotency key."""

from __future__ import annotations

import re
import time
from typing import Any

from pipeline.delivery.channels import Address, Channel, DeliveryError, SendContext

URL = re.compile(r"^https?://\S+$")


class Webhook(Channel):
    name = "webhook"
    order = 10

    def parse(self, value: Any) -> Address:
        if not isinstance(value, str) or not URL.match(value) or len(value) > 2048:
            raise ValueError("webhook must be an http(s) URL of at most 2048 characters")
        return Address(value)

    async def send(self, ctx: SendContext, d: Any, esc: dict) -> None:
        import aiohttp
        import orjson

        from pipeline.delivery.cap import incident_to_cap
        from pipeline.delivery.notify import incident_from_escalation, links, render
        from pipeline.delivery.signing import HEADER, sign

        breaker = ctx.breaker(d.address)
        if not breaker.allow(time.monotonic()):
            raise DeliveryError("circuit open for this endpoint")
        subject, text = render(esc, d.lang)
        if d.fmt == "cap":
            area = " / ".join(esc.get("path") or [d.unit])
            body = incident_to_cap(incident_from_escalation(esc), area)
            content_type = "application/cap+xml"
        else:
            body = orjson.dumps({"notification_id": d.notification_id, "subject": subject,
                                 "text": text, "role": d.role, "unit": d.unit,
                                 "links": links(esc, ctx.settings.public_url), "escalation": esc})
            content_type = "application/json"
        headers = {"Content-Type": content_type, "Idempotency-Key": d.notification_id}
        if ctx.settings.webhook_secrets:
            headers[HEADER] = sign(list(ctx.settings.webhook_secrets), int(time.time()), body)
        timeout = aiohttp.ClientTimeout(total=ctx.settings.notify_timeout_s)
        try:
            async with ctx.http.post(d.address, data=body, headers=headers, timeout=timeout) as r:
                if r.status >= 300:
                    breaker.record(False, time.monotonic())
                    raise DeliveryError(f"HTTP {r.status}", retriable=r.status >= 500 or r.status == 429)
        except (aiohttp.ClientError, TimeoutError) as exc:
            breaker.record(False, time.monotonic())
            raise DeliveryError(f"{type(exc).__name__}: {exc}")
        breaker.record(True, time.monotonic())


CHANNEL = Webhook()
