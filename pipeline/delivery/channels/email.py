"""E-mail over SMTP (optional STARTTLS and login); Message-ID derived from the notification id."""

from __future__ import annotations

import asyncio
import hashlib
import re
import smtplib
from email import errors as email_errors
from email.message import EmailMessage
from typing import Any

from pipeline.delivery.channels import Address, Channel, DeliveryError, SendContext

LOCAL = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*")  # dot-atom
DOMAIN = re.compile(r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+"
                    r"(?:[A-Za-z]{2,63}|xn--[A-Za-z0-9-]{1,59})")


def strict_address(value: Any) -> str:
    """One plain ASCII address ``local@host.domain``, or ValueError saying what is wrong (the
    address itself is personal data: the message does not repeat it). Checked three ways: the
    dot-atom and host-name grammar, `email.utils.parseaddr` (one address, no display name or
    comment) and `email.headerregistry.Address` (what the message header will hold)."""
    from email.headerregistry import Address as MailAddress
    from email.utils import parseaddr

    if not isinstance(value, str):
        raise ValueError("email must be one address (name@host.domain)")
    if "\r" in value or "\n" in value:
        raise ValueError("email contains a CR or LF (a header injection)")
    if any(c.isspace() for c in value):
        raise ValueError("email contains a space")
    if "," in value or ";" in value:
        raise ValueError("email holds more than one address (a comma or semicolon): give one")
    if not value.isascii() or not value.isprintable():
        raise ValueError("email must be printable ASCII (an internationalised domain as xn--...)")
    if len(value) > 254:
        raise ValueError("email is longer than 254 characters")
    local, at, domain = value.rpartition("@")
    if not at or not domain or "." not in domain:
        raise ValueError("email has no domain (name@host.domain)")
    if not local:
        raise ValueError("email has nothing before the @")
    display, parsed = parseaddr(value)
    try:
        header = MailAddress(addr_spec=value)
    except (ValueError, TypeError, IndexError, email_errors.HeaderParseError):
        header = None
    if display or parsed != value or header is None or header.username != local \
            or header.domain != domain or len(local) > 64 or not LOCAL.fullmatch(local) \
            or not DOMAIN.fullmatch(domain):
        raise ValueError("email must be one plain address name@host.domain (no quotes, comments, "
                         "brackets or empty labels)")
    return value


class Email(Channel):
    name = "email"
    order = 90

    def parse(self, value: Any) -> Address:
        return Address(strict_address(value))

    async def send(self, ctx: SendContext, d: Any, esc: dict) -> None:
        await asyncio.to_thread(self._send_sync, ctx, d, esc)

    @staticmethod
    def _send_sync(ctx: SendContext, d: Any, esc: dict) -> None:
        from pipeline.delivery.notify import links, render

        s = ctx.settings
        if not s.smtp_host:
            raise DeliveryError("no SMTP server configured (GRIDWATCH_SMTP_HOST)", retriable=False)
        subject, text = render(esc, d.lang, ctx.names)
        msg = EmailMessage()
        msg["Subject"], msg["From"], msg["To"] = subject, s.smtp_from, d.address
        # a Message-ID must be a dot-atom: a digest of the notification id, which also travels
        # in its own header (mail systems drop repeated Message-IDs)
        msg["Message-ID"] = f"<{hashlib.sha1(d.notification_id.encode()).hexdigest()}@gridwatch>"
        msg["X-Gridwatch-Notification"] = d.notification_id
        urls = links(esc, s.public_url, d, s.link_key)
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
