"""Per-endpoint queues: a slow receiver holds back only its own messages; Retry-After is kept."""

from __future__ import annotations

import asyncio
import time

from aiohttp import web
from aiohttp.test_utils import TestServer

from pipeline.delivery.channels import retry_after
from pipeline.delivery.notify import Delivery
from pipeline.delivery.queues import EndpointQueues
from pipeline.delivery.service import Notifier
from pipeline.settings import Settings


def test_retry_after_in_seconds_or_as_a_date():
    assert retry_after({"Retry-After": "3"}) == 3.0
    assert retry_after({"Retry-After": "99999"}) == 600.0  # capped
    assert retry_after({"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}) == 0.0  # in the past
    assert retry_after({"Retry-After": "soon"}) is None and retry_after({}) is None


async def test_order_is_kept_per_endpoint_and_endpoints_are_independent():
    q = EndpointQueues()
    seen: list[str] = []

    async def job(name: str, delay: float) -> str:
        await asyncio.sleep(delay)
        seen.append(name)
        return name

    slow = [q.submit("slow", lambda i=i: job(f"s{i}", 0.2)) for i in range(3)]
    fast = [q.submit("fast", lambda i=i: job(f"f{i}", 0.0)) for i in range(3)]
    assert await asyncio.gather(*fast) == ["f0", "f1", "f2"]
    assert not any(f.done() for f in slow[1:])  # the slow endpoint is still on its first
    assert await asyncio.gather(*slow) == ["s0", "s1", "s2"]
    assert seen.index("f2") < seen.index("s0")
    await q.close()


async def test_a_slow_receiver_does_not_delay_another_persons_message():
    """Real HTTP receivers: one answers after 3 s (then 429 with Retry-After), one at once."""
    hits: dict[str, list[float]] = {"slow": [], "fast": []}
    started = time.monotonic()

    async def slow(request: web.Request) -> web.Response:
        hits["slow"].append(time.monotonic() - started)
        if len(hits["slow"]) == 1:
            await asyncio.sleep(3)
            return web.Response(status=429, headers={"Retry-After": "1"})
        return web.Response(status=200)

    async def fast(request: web.Request) -> web.Response:
        hits["fast"].append(time.monotonic() - started)
        return web.Response(status=200)

    app = web.Application()
    app.router.add_post("/slow", slow)
    app.router.add_post("/fast", fast)
    async with TestServer(app) as server:
        s = Settings.from_env({"GRIDWATCH_WEBHOOK_ALLOW": "127.0.0.1", "GRIDWATCH_NOTIFY_TIMEOUT_S": "10",
                               "GRIDWATCH_NOTIFY_BACKOFF_S": "0.01"})
        n = Notifier(s, None)
        records: list[tuple[str, str]] = []

        async def record(esc, d, outcome, attempt, error=None, role=None):  # no broker here
            records.append((d.person if d else "-", outcome))
            if outcome == "delivered":
                n.done.add(d.notification_id)

        n._record = record  # type: ignore[method-assign]
        from pipeline.delivery.ssrf import guarded_session

        n.http = guarded_session(s.webhook_allow)
        esc = {"incident_id": "g1~x~1", "step": 2, "transition": "dispatched", "level": "grid_worker",
               "to": ["g1"], "at": "2026-07-01T00:00:00.000Z", "path": ["C", "T", "M", "g1"]}

        def delivery(person: str) -> Delivery:
            return Delivery(f"g1~x~1:2:{person}:webhook", person, "webhook",
                            str(server.make_url(f"/{person}")), "zh", "grid_worker", "g1", False)

        a = n.queues.submit("webhook:slow", lambda: n.deliver(delivery("slow"), esc, fallback=False))
        b = n.queues.submit("webhook:fast", lambda: n.deliver(delivery("fast"), esc, fallback=False))
        assert await b is True
        assert hits["fast"][0] < 1.0 and not a.done()  # delivered while the slow one hangs
        assert await a is True
        assert len(hits["slow"]) == 2 and hits["slow"][1] - hits["slow"][0] >= 3 + 1 - 0.1
        assert ("slow", "retrying") in records and ("slow", "delivered") in records
        await n.queues.close()
        await n.http.close()
