"""Webhook (JSON or CAP 1.2 XML POST), signed (Standard Webhooks, and the older
X-Gridwatch-Signature) with the receiver's own secret or the deployment's, with an idempotency
key. Only to public addresses unless allowed (`pipeline.delivery.ssrf`); redirects are never
followed (a 3xx is a failure, not retried).

Roster: ``webhook: https://...`` or, with a per-receiver secret,
``webhook: {url: https://..., secret: whsec_...}`` (used instead of GRIDWATCH_WEBHOOK_SECRETS).
"""

from __future__ import annotations

import re
import time
from typing import Any

from pipeline.delivery.channels import Address, Channel, DeliveryError, SendContext, retry_after

URL = re.compile(r"https?://[^\s/?#]+\S*")


class Webhook(Channel):
    name = "webhook"
    order = 10

    def parse(self, value: Any) -> Address:
        url, secret = (value.get("url"), value.get("secret")) if isinstance(value, dict) else (value, None)
        if isinstance(value, dict) and set(value) - {"url", "secret"}:
            raise ValueError("webhook takes url and secret only")
        if not isinstance(url, str) or not URL.fullmatch(url) or len(url) > 2048:
            raise ValueError("webhook must be an http(s) URL of at most 2048 characters")
        if secret is not None and (not isinstance(secret, str) or not 16 <= len(secret) <= 256
                                   or not secret.isascii() or not secret.isprintable()):
            raise ValueError("webhook secret must be 16 to 256 printable ASCII characters "
                             "(e.g. whsec_ and base64 of 32 random bytes)")
        return Address(url, secret)

    async def send(self, ctx: SendContext, d: Any, esc: dict) -> None:
        import aiohttp
        import orjson

        from pipeline.delivery.cap import cap_area, incident_to_cap, validate_cap
        from pipeline.delivery.notify import incident_from_escalation, links, render
        from pipeline.delivery.signing import HEADER, sign, standard_headers
        from pipeline.delivery.ssrf import Refused, check_url

        breaker = ctx.breaker(d.address)
        if not breaker.allow(time.monotonic()):
            raise DeliveryError("circuit open for this endpoint")
        await check_url(d.address, ctx.settings.webhook_allow)  # after DNS, at send time
        subject, text = render(esc, d.lang, ctx.names)
        if d.fmt == "cap":
            from pipeline.delivery.notify import place

            body = incident_to_cap(incident_from_escalation(esc), place(esc, ctx.names, "zh"),
                                   cap_area(esc, ctx.shapes), step=esc.get("step"), sent_at=esc["at"],
                                   deadline=esc.get("deadline"))
            problems = validate_cap(body)  # checked on the way out, not only by `gridwatch cap`
            if problems:
                raise DeliveryError(f"CAP does not validate: {problems[0][:200]}", retriable=False)
            content_type = "application/cap+xml"
        else:
            urls = links(esc, ctx.settings.public_url, d, ctx.settings.link_key)
            body = orjson.dumps({"notification_id": d.notification_id, "subject": subject,
                                 "text": text, "role": d.role, "unit": d.unit,
                                 "links": urls, "escalation": esc})
            content_type = "application/json"
        headers = {"Content-Type": content_type, "Idempotency-Key": d.notification_id}
        secrets = [d.secret] if d.secret else list(ctx.settings.webhook_secrets)
        if secrets:  # the receiver's own secret, else the deployment's (current first)
            now = int(time.time())
            headers.update(standard_headers(secrets, d.notification_id, now, body))
            headers[HEADER] = sign(secrets, now, body)
        timeout = aiohttp.ClientTimeout(total=ctx.settings.notify_timeout_s)
        try:
            async with ctx.http.post(d.address, data=body, headers=headers, timeout=timeout,
                                     allow_redirects=False) as r:
                if 300 <= r.status < 400:
                    breaker.record(False, time.monotonic())
                    raise DeliveryError(f"HTTP {r.status}: the receiver redirects; redirects are not "
                                        "followed (use the final URL in the roster)", retriable=False)
                if r.status >= 400:
                    breaker.record(False, time.monotonic())
                    raise DeliveryError(f"HTTP {r.status}", retriable=r.status >= 500 or r.status == 429,
                                        retry_after=retry_after(r.headers))
        except (aiohttp.ClientError, TimeoutError) as exc:
            breaker.record(False, time.monotonic())
            refused = getattr(exc, "os_error", None)
            if isinstance(refused, Refused):  # the session's resolver: an address that changed
                raise DeliveryError(str(refused), retriable=False)
            raise DeliveryError(f"{type(exc).__name__}: {exc}")
        breaker.record(True, time.monotonic())


CHANNEL = Webhook()
