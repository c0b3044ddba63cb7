"""What the HTTP channels share (not a channel: no ``CHANNEL``): one bounded POST through the
notifier's session with the endpoint's circuit breaker, the timeout, no redirects, the SSRF rules
for roster-given URLs, and error messages with secrets and personal data taken out.

A channel calls `post` with a ``judge(status, body)`` that raises `DeliveryError` when the
answer is not a delivery; `status_error` is the usual rule (429 and 5xx worth a retry).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

from pipeline.delivery.channels import DeliveryError, SendContext, retry_after

MAX_ANSWER = 64 * 1024  # the most of an answer read: a hostile receiver cannot fill memory


def status_error(status: int, what: str = "HTTP") -> DeliveryError | None:
    """None for a 2xx; else the failure: 3xx (a redirect, not followed) and other 4xx are not
    worth a retry, 429 and 5xx are."""
    if 200 <= status < 300:
        return None
    if 300 <= status < 400:
        return DeliveryError(f"{what} {status}: the endpoint redirects; redirects are not followed "
                             "(use the final URL)", retriable=False)
    return DeliveryError(f"{what} {status}", retriable=status == 429 or status >= 500)


def scrub(message: str, redact: Iterable[tuple[str, str]]) -> str:
    """`message` with every (secret, stand-in) pair replaced, longest secret first."""
    for secret, stand_in in sorted(redact, key=lambda p: -len(p[0])):
        if secret:
            message = message.replace(secret, stand_in)
    return message


async def post(ctx: SendContext, url: str, body: bytes, judge: Callable[[int, bytes], None], *,
               endpoint: str | None = None, headers: dict[str, str] | None = None,
               check: bool = True, redact: Iterable[tuple[str, str]] = ()) -> None:
    """POST `body` (JSON) to `url` once; `judge` says whether the answer is a delivery.

    `endpoint` keys the circuit breaker (default the URL), which counts the failures worth a
    retry (no answer, 429, 5xx) and not the refusal of one message; `check` applies the webhook SSRF
    rules (`pipeline.delivery.ssrf`, GRIDWATCH_WEBHOOK_ALLOW) to a URL from a roster; `redact`
    lists (secret, stand-in) pairs never to appear in an error (the URL itself always becomes
    ``<endpoint>``: it may hold a robot's key)."""
    import aiohttp

    from pipeline.delivery.ssrf import Refused, check_url

    redact = [(url, "<endpoint>"), *redact]
    breaker = ctx.breaker(endpoint or url)
    if not breaker.allow(time.monotonic()):
        raise DeliveryError("circuit open for this endpoint")
    if check:
        try:
            await check_url(url, ctx.settings.webhook_allow)
        except DeliveryError as exc:
            raise DeliveryError(scrub(str(exc), redact), retriable=exc.retriable)
    timeout = aiohttp.ClientTimeout(total=ctx.settings.notify_timeout_s)
    all_headers = {"Content-Type": "application/json", **(headers or {})}
    try:
        async with ctx.http.post(url, data=body, headers=all_headers, timeout=timeout,
                                 allow_redirects=False) as r:
            status = r.status
            wait = retry_after(r.headers) if status in (429, 503) else None
            answer = await r.content.read(MAX_ANSWER)
    except (aiohttp.ClientError, TimeoutError) as exc:
        breaker.record(False, time.monotonic())
        refused = getattr(exc, "os_error", None)
        if isinstance(refused, Refused):  # the session's resolver refused the address
            raise DeliveryError(scrub(str(refused), redact), retriable=False)
        said = str(exc)
        raise DeliveryError(scrub(f"{type(exc).__name__}: {said}" if said else type(exc).__name__,
                                  redact))
    try:
        judge(status, answer)
    except DeliveryError as exc:
        if exc.retriable:  # a refusal of this message (a 4xx) says the endpoint is up
            breaker.record(False, time.monotonic())
        raise DeliveryError(scrub(str(exc), redact), retriable=exc.retriable,
                            retry_after=wait if exc.retriable else None)
    breaker.record(True, time.monotonic())


def answer_json(raw: bytes) -> Any:
    """The answer as JSON, or None when it is not JSON."""
    import orjson

    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
