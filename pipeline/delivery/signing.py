"""Webhook signatures: the Standard Webhooks scheme (primary) and the older gridwatch header.

Standard Webhooks (https://www.standardwebhooks.com), three headers on every signed request::

    webhook-id: g1~inactivity:s1~1782950400000:2:wang:webhook      (the notification id)
    webhook-timestamp: 1782864000                                  (Unix seconds of sending)
    webhook-signature: v1,<base64 HMAC-SHA256>

``v1,`` + base64(HMAC-SHA256(key, f"{id}.{timestamp}.{body}")) with ``body`` the exact bytes
of the request body, so the id and the time are signed together with the content (a
receiver's replay and duplicate checks cannot be fooled by changing either). The key is the
secret's UTF-8 bytes, or for a secret written ``whsec_<base64>`` (the form Standard Webhooks
libraries generate) the decoded bytes. While a secret is being rotated ``webhook-signature``
carries one space-separated ``v1,...`` per secret. A receiver recomputes the HMAC with its
secret, compares in constant time, and refuses a timestamp more than five minutes from its
own clock; ``webhook-id`` (also sent as ``Idempotency-Key``) names the message: the same id
means the same message, already seen.

The older header, kept for receivers written against it (it signs time and body, not the id)::

    X-Gridwatch-Signature: t=1782864000,v1=5257a869e7ecebeda32affa62cdca3fa51cad7e77a0e56ff536d0ce8e108d8bd

``v1`` is hex(HMAC-SHA256(secret, f"{t}.{body}")), one ``v1=`` per secret.

`verify` and `verify_standard` answer False, never raise, for anything malformed: missing
parts, non-ASCII text, digits that are not ASCII digits, bytes instead of text.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Mapping
from typing import Any

HEADER = "X-Gridwatch-Signature"
ID_HEADER, TIMESTAMP_HEADER, SIGNATURE_HEADER = "webhook-id", "webhook-timestamp", "webhook-signature"
TOLERANCE_S = 300
_MAX_HEADER = 8192


def _key(secret: str) -> bytes:
    """The HMAC key of a secret: ``whsec_<base64>`` decoded, else its UTF-8 bytes."""
    if secret.startswith("whsec_"):
        try:
            return base64.b64decode(secret[6:], validate=True)
        except (binascii.Error, ValueError):
            pass  # not base64 after all: the text is the key
    return secret.encode()


def _timestamp(text: Any) -> int | None:
    """Unix seconds from ASCII digits only (int() would take ``１２``, ``+1`` or ``1_0``)."""
    if not isinstance(text, str) or not text.isascii() or not text.isdigit() or len(text) > 12:
        return None
    return int(text)


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """hex HMAC-SHA256 of ``f"{timestamp}."`` + body (the X-Gridwatch-Signature scheme)."""
    return hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def sign(secrets: list[str], timestamp: int, body: bytes) -> str:
    """The X-Gridwatch-Signature value for these secrets (the current one first)."""
    return ",".join([f"t={timestamp}", *(f"v1={signature(s, timestamp, body)}" for s in secrets)])


def standard_signature(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """``v1,`` + base64 HMAC-SHA256 of ``f"{id}.{timestamp}."`` + body (Standard Webhooks)."""
    mac = hmac.new(_key(secret), f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


def standard_headers(secrets: list[str], msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """The three Standard Webhooks headers for these secrets (the current one first)."""
    return {ID_HEADER: msg_id, TIMESTAMP_HEADER: str(timestamp),
            SIGNATURE_HEADER: " ".join(standard_signature(s, msg_id, timestamp, body) for s in secrets)}


def verify(secret: str, header: Any, body: bytes, now: int, tolerance_s: int = TOLERANCE_S) -> bool:
    """Does the X-Gridwatch-Signature header sign this body with this secret, recently enough?"""
    if not isinstance(header, str) or not header.isascii() or len(header) > _MAX_HEADER:
        return False
    fields = []
    for part in header.split(","):
        key, sep, value = part.partition("=")
        if not sep:
            return False
        fields.append((key.strip(), value.strip()))
    timestamp = _timestamp(next((v for k, v in fields if k == "t"), None))
    if timestamp is None or abs(now - timestamp) > tolerance_s:
        return False
    want = signature(secret, timestamp, body)
    return any(k == "v1" and hmac.compare_digest(v, want) for k, v in fields)


def verify_standard(secret: str, headers: Mapping[str, Any], body: bytes, now: int,
                    tolerance_s: int = TOLERANCE_S) -> bool:
    """Do the Standard Webhooks headers (any letter case) sign this body, id and time with this
    secret, recently enough?"""
    try:
        lower = {str(k).lower(): v for k, v in headers.items()}
    except AttributeError:
        return False
    msg_id, stamp, sigs = (lower.get(h) for h in (ID_HEADER, TIMESTAMP_HEADER, SIGNATURE_HEADER))
    for value in (msg_id, sigs):
        if not isinstance(value, str) or not value or not value.isascii() or len(value) > _MAX_HEADER:
            return False
    timestamp = _timestamp(stamp)
    if timestamp is None or abs(now - timestamp) > tolerance_s:
        return False
    want = standard_signature(secret, msg_id, timestamp, body)  # type: ignore[arg-type]
    return any(hmac.compare_digest(s, want) for s in sigs.split(" ") if s.startswith("v1,"))  # type: ignore[union-attr]
