"""Delivery channels (通知渠道): one interface for every way a person is reached, one module each.

A channel is a module of this package that defines ``CHANNEL``, an instance of `Channel`:

- ``name``: the roster field a person's address is given in, and the last part of every
  notification id sent through it (``<incident>:<step>:<person>:<name>``);
- ``parse(value)``: the address from the roster (a string, or a mapping where the channel needs
  more, such as a robot's signing secret), or ValueError saying what is wrong;
- ``send(ctx, delivery, escalation)``: deliver once, or raise `DeliveryError` whose
  ``retriable`` says whether trying again can help (alertmanager's ``Notify() (retry, err)``).

The notifier plans, sends, retries and falls back through this interface only; rosters
validate addresses through it. A new channel is its module plus a test (docs/extending.md).
"""

from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass, field
from functools import cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pipeline.delivery.notify import Delivery
    from pipeline.settings import Settings


class DeliveryError(Exception):
    """A send failed; `retriable` says whether trying again can help, `retry_after` (seconds)
    when the endpoint said when (429/503 ``Retry-After``)."""

    def __init__(self, message: str, retriable: bool = True, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retriable = retriable
        self.retry_after = retry_after


def retry_after(headers: Any) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or an HTTP date), capped at 10 min."""
    value = (headers or {}).get("Retry-After")
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        from email.utils import parsedate_to_datetime

        try:
            import time as _time

            seconds = parsedate_to_datetime(value).timestamp() - _time.time()
        except (TypeError, ValueError):
            return None
    return max(0.0, min(seconds, 600.0))


@dataclass(frozen=True)
class Address:
    """Where a channel reaches one person; `secret` (a robot's signing key) is never logged."""

    target: str
    secret: str | None = field(default=None, repr=False)


@dataclass
class Breaker:
    """Per-endpoint circuit breaker: open for `cool_s` after `threshold` failures in a row."""

    failures: int = 0
    open_until: float = 0.0
    threshold: int = 5
    cool_s: float = 30.0

    def allow(self, now: float) -> bool:
        return now >= self.open_until

    def record(self, ok: bool, now: float) -> None:
        if ok:
            self.failures = 0
            return
        self.failures += 1
        if self.failures >= self.threshold:
            self.open_until, self.failures = now + self.cool_s, 0


@dataclass
class SendContext:
    """What a channel may use to send: settings, the notifier's HTTP session, breakers."""

    settings: Settings
    http: Any = None  # aiohttp.ClientSession
    breakers: dict[str, Breaker] = field(default_factory=dict)
    names: dict[str, str] = field(default_factory=dict)  # unit code -> name (the atlas), for wording
    shapes: dict[str, Any] = field(default_factory=dict)  # grid or hazard zone id -> polygon (CAP)

    def breaker(self, endpoint: str) -> Breaker:
        return self.breakers.setdefault(endpoint, Breaker())


class Channel:
    """Base class of a channel; see the module docstring."""

    name: str = ""
    order: int = 100  # where it comes in a person's list of channels (lower first)
    #: also told when an incident is acknowledged or ends (incident tools that keep state:
    #: PagerDuty, Alertmanager receivers), not only when someone is called
    wants_updates: bool = False

    def parse(self, value: Any) -> Address:
        raise NotImplementedError

    async def send(self, ctx: SendContext, d: Delivery, esc: dict) -> None:
        raise NotImplementedError


@cache
def registry() -> dict[str, Channel]:
    """Every channel module of this package, by name, in their `order`."""
    found: list[Channel] = []
    for mod in pkgutil.iter_modules(__path__):
        channel = getattr(importlib.import_module(f"{__name__}.{mod.name}"), "CHANNEL", None)
        if isinstance(channel, Channel):
            found.append(channel)
    return {c.name: c for c in sorted(found, key=lambda c: (c.order, c.name))}


def channel(name: str) -> Channel:
    """The channel called `name`, or DeliveryError (not retriable) naming the known ones."""
    try:
        return registry()[name]
    except KeyError:
        raise DeliveryError(f"unknown channel {name!r}; known: {', '.join(registry())}",
                            retriable=False)
