"""Webhook signatures: HMAC-SHA256 over timestamp and body, in one header.

    X-Gridwatch-Signature: t=1782864000,v1=5257a869e7ecebeda32affa62cdca3fa51cad7e77a0e56ff536d0ce8e108d8bd

``v1`` is hex(HMAC-SHA256(secret, f"{t}.{body}")) with ``t`` the Unix time of sending in
seconds and ``body`` the exact bytes of the request body. While a secret is being rotated the
header carries one ``v1=`` per secret. A receiver recomputes the HMAC with its secret, compares
in constant time, and refuses a ``t`` more than five minutes from its own clock (replay
protection). Each request also carries ``Idempotency-Key: <notification id>``: the same key
means the same message, already seen.
"""

from __future__ import annotations

import hashlib
import hmac

HEADER = "X-Gridwatch-Signature"
TOLERANCE_S = 300


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """hex HMAC-SHA256 of ``f"{timestamp}."`` + body."""
    return hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def sign(secrets: list[str], timestamp: int, body: bytes) -> str:
    """The header value for these secrets (the current one first)."""
    return ",".join([f"t={timestamp}", *(f"v1={signature(s, timestamp, body)}" for s in secrets)])


def verify(secret: str, header: str, body: bytes, now: int, tolerance_s: int = TOLERANCE_S) -> bool:
    """Does the header sign this body with this secret, recently enough?"""
    try:
        parts = [p.split("=", 1) for p in header.split(",")]
        fields = [(k.strip(), v.strip()) for k, v in parts]
        timestamp = int(next(v for k, v in fields if k == "t"))
    except (ValueError, StopIteration):
        return False
    if abs(now - timestamp) > tolerance_s:
        return False
    want = signature(secret, timestamp, body)
    return any(k == "v1" and hmac.compare_digest(v, want) for k, v in fields)
