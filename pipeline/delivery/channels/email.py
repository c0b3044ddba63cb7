"""E-mail over SMTP (optional STARTTLS and login); Message-ID derived from the notification id."""

from __future__ import annotations

import asyncio
import hashlib
import re
import smtplib
from email.message import EmailMessage
from typing import Any

from pipeline.delivery.channels import Address, Channel, DeliveryError, SendContext

ADDRESS = re.compile(r"^[^@\s,;<>]+@[^@\s,;<>]+\.[^@\s,;<>]+$")


class Email(Channel):
    name = "email"
    order = 90

    def parse(self, value: Any) -> Address:
        if not isinstance(value, str) or not ADDRESS.match(value) or len(value) > 254:
            raise ValueError("email must be one address (name@host.domain)")
        return Address(value)

    async def send(self, ctx: SendContext, d: Any, esc: dict) -> None:
        await asyncio.to_thread(self._send_sync, ctx, d, esc)

    @staticmethod
    def _send_sync(ctx: SendContext, d: Any, esc: dict) -> None:
        from pipeline.delivery.notify import links, render

        s = ctx.settings
        if not s.smtp_host:
            raise DeliveryError("no SMTP server configured (GRIDWATCH_SMTP_HOST)", retriable=False)
        subject, text = render(esc, d.lang)
        msg = EmailMessage()
        msg["Subject"], msg["From"], msg["To"] = subject, s.smtp_from, d.address
        # a Message-ID must be a dot-atom: a digest of the notification id, which also travels
        # in its own header (mail systems drop repeated Message-IDs)
        msg["Message-ID"] = f"<{hashlib.sha1(d.notification_id.encode()).hexdigest()}@gridwatch>"
        msg["X-Gridwatch-Notification"] = d.notification_id
        urls = links(esc, s.public_url)
        msg.set_content(text + "".join(f"\n{k}: {v}" for k, v in urls.items()))
        try:
            with smtplib.SMTP(s.smtp_host, s.smtp_port, timeout=s.notify_timeout_s) as smtp:
                if s.smtp_starttls:
                    smtp.starttls()
                if s.smtp_user:
                    smtp.login(s.smtp_user, s.smtp_password or "")
                smtp.send_message(msg)
        except (OSError, smtplib.SMTPException) as exc:
            raise DeliveryError(f"{type(exc).__name__}: {exc}")


CHANNEL = Email()
