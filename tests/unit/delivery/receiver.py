"""What the channel tests share: a real HTTP receiver on a free local port, settings with the
public URL and link key (and any channel settings), and one send through a channel for a person
planned from a roster, as the notifier does it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import asdict
from types import SimpleNamespace
from typing import Any

import aiohttp
from aiohttp import web

from pipeline.delivery.channels import DeliveryError, SendContext, channel
from pipeline.delivery.notify import Delivery, plan
from pipeline.delivery.roster import roster_from_dict
from pipeline.settings import Settings

from .test_notify import esc
from .test_roster import GRID, ROSTER

NAME = "王网格员"  # personal data: must appear in no message to a shared system nor in any error
PUBLIC = "https://gw.example.cn"


@asynccontextmanager
async def serve(handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> AsyncIterator[str]:
    """A real aiohttp server answering every path with `handler`; yields its base URL."""
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


def settings(env: dict[str, str] | None = None, **extra: Any) -> Any:
    """Settings with links on and loopback receivers allowed; `extra` adds attributes the
    Settings class may not have yet (the SMS gateway's), as a channel reads them."""
    base = Settings.from_env({"GRIDWATCH_PUBLIC_URL": PUBLIC, "GRIDWATCH_LINK_KEY": "k" * 32,
                              "GRIDWATCH_WEBHOOK_ALLOW": "127.0.0.1", **(env or {})})
    return SimpleNamespace(**{**asdict(base), **extra}) if extra else base


def roster_with(name: str, address: object) -> dict:
    """The test roster where 王网格员 (wang) has `address` on channel `name`, and nothing else."""
    return {**ROSTER, "people": {**ROSTER["people"], "wang": {"name": NAME, name: address}}}


def deliveries(name: str, address: object) -> list[Delivery]:
    """The deliveries through channel `name` of a dispatch to the grid, where wang is on shift
    with `address` as their only channel."""
    planned, _ = plan(esc(to=(GRID,)), roster_from_dict(roster_with(name, address)))
    return [d for d in planned if d.channel == name]


async def send(name: str, address: object, body: dict | None = None, s: Any = None) -> list:
    """Send `body` (default: the dispatch) to every planned delivery of channel `name`:
    "delivered" or the DeliveryError, one a delivery."""
    ctx = SendContext(s if s is not None else settings())
    out: list = []
    async with aiohttp.ClientSession() as ctx.http:
        for d in deliveries(name, address):
            try:
                await channel(name).send(ctx, d, body or esc(to=(GRID,)))
                out.append("delivered")
            except DeliveryError as exc:
                out.append(exc)
    return out


def error(out: list) -> tuple[str, bool]:
    """(message, retriable) of the one failure in `out`."""
    (exc,) = out
    assert isinstance(exc, DeliveryError), exc
    return str(exc), exc.retriable


def no_one_named(*texts: str) -> bool:
    """No person's name (nor roster id) of the roster in any of `texts`."""
    names = [NAME, *(p["name"] for p in ROSTER["people"].values())]
    return not any(n in t for t in texts for n in names)
