"""Per-endpoint queues (按接收端排队): one slow or rate-limited receiver never holds back
other people's messages.

Every endpoint (a channel and address: one webhook URL, one robot, one mailbox) has its own
FIFO queue and one worker task, so its messages keep their order and its retries, back-off and
``Retry-After`` pauses delay only itself. `submit` returns a future that completes when the job
has run; the notifier commits an escalation once every delivery it planned has completed (and
commits in offset order, so a crash re-sends at most what was in flight).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

Job = Callable[[], Awaitable[Any]]


@dataclass
class _Endpoint:
    queue: asyncio.Queue = field(default_factory=asyncio.Queue)
    task: asyncio.Task | None = None
    sent: int = 0


class EndpointQueues:
    """Queues by endpoint key; workers start on first use and stop with `close`."""

    def __init__(self, idle_s: float = 300.0) -> None:
        self.endpoints: dict[str, _Endpoint] = {}
        self.idle_s = idle_s

    def submit(self, endpoint: str, job: Job) -> asyncio.Future:
        """Queue `job` behind the endpoint's earlier ones; the future holds its result."""
        ep = self.endpoints.get(endpoint)
        if ep is None:
            ep = self.endpoints[endpoint] = _Endpoint()
        done: asyncio.Future = asyncio.get_running_loop().create_future()
        ep.queue.put_nowait((job, done))
        if ep.task is None or ep.task.done():
            ep.task = asyncio.create_task(self._work(endpoint, ep))
        return done

    async def _work(self, endpoint: str, ep: _Endpoint) -> None:
        while True:
            try:
                job, done = await asyncio.wait_for(ep.queue.get(), self.idle_s)
            except TimeoutError:
                if ep.queue.empty():
                    self.endpoints.pop(endpoint, None)  # an idle endpoint costs nothing
                    return
                continue
            try:
                done.set_result(await job())
            except Exception as exc:  # the job's own failure: its future says so
                done.set_exception(exc)
            ep.sent += 1

    def depth(self) -> dict[str, int]:
        """Messages waiting per endpoint (for the log line and metrics)."""
        return {k: ep.queue.qsize() for k, ep in self.endpoints.items() if ep.queue.qsize()}

    async def close(self) -> None:
        for ep in self.endpoints.values():
            if ep.task is not None:
                ep.task.cancel()
        await asyncio.gather(*(ep.task for ep in self.endpoints.values() if ep.task),
                             return_exceptions=True)
        self.endpoints.clear()
