"""The notifier (`gridwatch notifier`): escalations.v1 -> the delivery channels, with receipts.

Channels (webhook, DingTalk, e-mail...) are the modules of `pipeline.delivery.channels`; the
notifier plans, sends, retries and falls back through that one interface.

Its own service with its own consumer group (``<app_id>-notifier``), so delivery, which waits
on other people's servers, never slows the pipeline. For each escalation record it plans the
deliveries (`pipeline.delivery.notify.plan`), sends them concurrently and records every attempt
on ``notifications.v1`` (delivered, retrying, failed, no_one_on_duty); then it commits.

- Webhook: JSON POST signed the Standard Webhooks way (``webhook-id``, ``webhook-timestamp``,
  ``webhook-signature``; the older ``X-Gridwatch-Signature`` too, see
  `pipeline.delivery.signing`) with the receiver's own secret or the deployment's, and
  ``Idempotency-Key: <notification id>``; only to public addresses unless allowed
  (`pipeline.delivery.ssrf`), no redirects; a timeout, retries with exponential backoff and
  full jitter, and a circuit breaker per endpoint (open for 30 s after 5 failures in a row).
- Receipts on ``notifications.v1`` carry the error with URL queries, e-mail addresses and
  phone numbers removed (`pipeline.logs.scrub_text`): a robot URL's ``access_token`` never
  lands on a topic.
- E-mail over SMTP (optional STARTTLS and login), ``Message-ID`` a digest of the notification
  id, which also travels in ``X-Gridwatch-Notification``.
- A delivery that finally fails goes to the next level (the role above, at the parent unit),
  recorded as a fallback; nobody anywhere is recorded as ``no_one_on_duty``.
- Exactly once in effect: at start the notifier reads ``notifications.v1`` and never resends a
  notification id already delivered; a crash between sending and recording can repeat a send,
  which the receiver recognises by its ``Idempotency-Key`` (and e-mail by its Message-ID).
Attempt times are wall-clock: delivery happens in the real world, not in event time.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import deque
from typing import Any

import aiohttp
import orjson

from pipeline.delivery.channels import Breaker, DeliveryError, SendContext, channel
from pipeline.delivery.notify import Delivery, plan
from pipeline.delivery.queues import EndpointQueues
from pipeline.delivery.roster import Roster, on_duty
from pipeline.delivery.ssrf import guarded_session
from pipeline.envelope import STRUCTURED, iso_ms, make_event
from pipeline.gate import DlqPolicy
from pipeline.incident.policy import LADDER, responsible
from pipeline.logs import get_logger, scrub_text
from pipeline.settings import Settings, aiokafka_config, durable_producer
from pipeline.telemetry import DELIVERIES, DELIVERY_SECONDS, watch_notifier

ROSTER_MAX_BYTES = 16 << 20
MAX_INFLIGHT = 2000  # escalations being delivered at once, all endpoints together


def _digest(endpoint: str) -> str:
    import hashlib

    kind = endpoint.split(":", 1)[0] if endpoint.startswith(("webhook:", "email:", "sms:", "dingtalk:",
                                                             "wecom:", "pagerduty:", "alertmanager:")) \
        else "endpoint"
    return f"{kind}:{hashlib.sha256(endpoint.encode()).hexdigest()[:10]}"


def atlas_lookups(atlas_file: str | None) -> tuple[dict[str, str], dict[str, Any]]:
    """Every unit's name, and the polygons of grids and hazard zones (CAP ``<area>``), from the
    deployment's atlas (GRIDWATCH_ATLAS); empty without one."""
    if not atlas_file:
        return {}, {}
    from geo.layers import load_atlas

    atlas = load_atlas(atlas_file)
    gov = atlas.governance
    names = {str(i): str(n) for i, n in zip(gov["id"], gov["name"], strict=True) if n}
    shapes = {str(i): g for i, g in zip(gov["id"], gov.geometry, strict=True)}
    if atlas.hazard is not None:
        shapes.update({str(i): g for i, g in zip(atlas.hazard["id"], atlas.hazard.geometry, strict=True)})
    return names, shapes


class Notifier:
    def __init__(self, settings: Settings, roster: Roster | None) -> None:
        self.s = settings
        self.file_roster = roster
        self.rosters: dict[str, Roster] = {}  # from rosters.v1: the newest valid "default" wins
        self.done: set[str] = set()
        self.breakers: dict[str, Breaker] = {}
        self.log = get_logger(component="notifier")
        self.producer: Any = None
        self.http: aiohttp.ClientSession | None = None
        self.names, self.shapes = atlas_lookups(settings.atlas)  # 镇 › 村 › 网格 by name; CAP areas
        self.queues = EndpointQueues()  # one slow receiver holds back only its own messages
        watch_notifier(self)  # gridwatch_endpoint_circuit_open, gridwatch_endpoint_queue_depth

    @property
    def roster(self) -> Roster:
        found = self.rosters.get("default") or self.file_roster
        if found is None:
            raise DeliveryError("no roster: set GRIDWATCH_ROSTER or publish one to rosters.v1",
                                retriable=False)
        return found

    def _roster_follower(self) -> Any:
        from pipeline.delivery.roster import roster_from_dict
        from pipeline.devices import RegistryFollower
        from pipeline.errors import ConfigError

        def parse(data: dict) -> Roster | None:
            try:
                return roster_from_dict(data, "rosters.v1")
            except ConfigError as exc:  # keep the roster in force; say why the new one is refused
                self.log.error("roster_refused", problems=str(exc)[:2000])
                return self.rosters.get("default")

        return RegistryFollower(self.s.topic("rosters.v1"), aiokafka_config(self.s), self.rosters,
                                ROSTER_MAX_BYTES, short="rosters.v1", key_field="name", transform=parse)

    async def _record(self, esc: dict, d: Delivery | None, outcome: str, attempt: int,
                      error: str | None = None, role: str | None = None) -> None:
        nid = d.notification_id if d else f"{esc['incident_id']}:{esc['step']}:{role}:none"
        data = {"notification_id": nid, "incident_id": esc["incident_id"], "step": esc["step"],
                "channel": d.channel if d else "none", "recipient": d.person if d else "",
                "role": d.role if d else role, "unit": d.unit if d else esc["to"][0],
                "fallback": bool(d and d.fell_back), "outcome": outcome, "attempt": attempt,
                "error": scrub_text(error)[:1000] if error else error,  # no URL queries (tokens),
                "at": iso_ms(int(time.time() * 1000))}
        env = make_event("gridwatch.notification.v1", f"{nid}#{attempt}:{outcome}", data["at"], data,
                         subject=esc["incident_id"], source="gridwatch/notifier")
        await self.producer.send_and_wait(self.s.topic("notifications.v1"), orjson.dumps(env),
                                          key=nid.encode(), headers=STRUCTURED)
        DELIVERIES.labels(data["channel"], outcome).inc()
        if outcome == "delivered":
            self.done.add(nid)

    async def _send(self, d: Delivery, esc: dict) -> None:
        ctx = SendContext(self.s, self.http, self.breakers, self.names, self.shapes)
        started = time.monotonic()
        try:
            await channel(d.channel).send(ctx, d, esc)
        finally:
            DELIVERY_SECONDS.labels(d.channel).observe(time.monotonic() - started)

    async def deliver(self, d: Delivery, esc: dict, fallback: bool = True) -> bool:
        """Send with retries; on final failure, call the next level. True when delivered."""
        if d.notification_id in self.done:
            return True
        error = ""
        for attempt in range(1, self.s.notify_attempts + 1):
            try:
                await self._send(d, esc)
                await self._record(esc, d, "delivered", attempt)
                return True
            except DeliveryError as exc:
                error = str(exc)
                last = attempt == self.s.notify_attempts or not exc.retriable
                await self._record(esc, d, "failed" if last else "retrying", attempt, error)
                if last:
                    break
                backoff = self.s.notify_backoff_s * 2 ** (attempt - 1) * random.random()
                # Retry-After honoured (at most a minute here; the endpoint's queue waits, no other)
                await asyncio.sleep(max(backoff, min(exc.retry_after or 0.0, 60.0)))
        self.log.warning("delivery_failed", notification=d.notification_id, error=error)
        if fallback:
            await self._fall_back(d, esc)
        return False

    async def _fall_back(self, d: Delivery, esc: dict) -> None:
        path = tuple(esc.get("path") or (d.unit,))
        role = LADDER[LADDER.index(d.role) + 1] if d.role in LADDER[:-1] else d.role
        unit = responsible(path, role) if role in LADDER else (path[path.index(d.unit) - 1]
                                                               if d.unit in path[1:] else path[0])
        duty = on_duty(self.roster, path, unit, role, int(time.time() * 1000))
        if duty is None:
            await self._record(esc, None, "no_one_on_duty", 0, f"fallback for {d.notification_id}", role)
            return
        for person_id in duty.people:
            person = self.roster.people[person_id]
            for name, address in person.addresses():
                nid = f"{d.notification_id}:fallback:{person_id}:{name}"
                await self.deliver(Delivery(nid, person_id, name, address.target, person.lang, role,
                                            duty.unit, True, person.webhook_format, address.secret),
                                   esc, fallback=False)

    async def handle(self, esc: dict) -> None:
        try:
            roster = self.roster
        except DeliveryError as exc:
            await self._record(esc, None, "no_one_on_duty", 0, str(exc), esc["level"])
            return
        deliveries, missing = plan(esc, roster)
        # queued before anything is awaited: each endpoint gets its messages in offset order
        sends = [self.queues.submit(f"{d.channel}:{d.address}",
                                    lambda d=d: self.deliver(d, esc))  # type: ignore[misc]
                 for d in deliveries]
        for role in missing:
            await self._record(esc, None, "no_one_on_duty", 0, "nobody on duty, not even above", role)
        await asyncio.gather(*sends)

    def _report_endpoints(self) -> None:
        """A log line with the endpoints that have a backlog or an open circuit (their names are
        channel and a digest of the address: no address is logged)."""
        now = time.monotonic()
        open_ = sorted(_digest(k) for k, b in self.breakers.items() if not b.allow(now))
        depth = {_digest(k): v for k, v in self.queues.depth().items()}
        if open_ or depth:
            self.log.info("notifier_endpoints", circuits_open=open_, queued=depth,
                          endpoints=len(self.queues.endpoints))

    async def _handle_record(self, value: bytes | None, offset: int) -> None:
        try:
            esc = orjson.loads(value or b"")["data"]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            self.log.warning("bad_escalation", offset=offset)
            return
        await self.handle(esc)

    @staticmethod
    async def _commit_done(consumer: Any, inflight: dict[Any, deque]) -> None:
        """Commit, per partition, past every escalation handled so far in offset order (one
        still in flight holds the commit back, so a crash re-sends at most what was in flight;
        receipts on notifications.v1 stop a delivered one going out twice)."""
        done: dict[Any, int] = {}
        for tp, dq in inflight.items():
            while dq and dq[0][1].done():
                offset, fut = dq.popleft()
                if fut.exception() is not None:
                    pass  # deliver() records its own failures; nothing else can raise here
                done[tp] = offset + 1
        if done:
            await consumer.commit(done)

    async def _load_done(self) -> None:
        from pipeline.clients import read_partition

        cfg = aiokafka_config(self.s)
        from aiokafka import AIOKafkaConsumer, TopicPartition

        from pipeline.clients import partitions_of

        topic = self.s.topic("notifications.v1")
        probe = AIOKafkaConsumer(**cfg, group_id=None)
        await probe.start()
        try:
            parts = await partitions_of(probe, topic)
            ends = await probe.end_offsets([TopicPartition(topic, p) for p in parts]) if parts else {}
        finally:
            await probe.stop()
        for tp, end in ends.items():
            async for value in read_partition(cfg, topic, tp.partition, end):
                data = orjson.loads(value)["data"]
                if data["outcome"] == "delivered":
                    self.done.add(data["notification_id"])

    async def run(self, stop: asyncio.Event) -> None:
        from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

        cfg = aiokafka_config(self.s)
        self.producer = AIOKafkaProducer(**cfg, **durable_producer(self.s), linger_ms=5)
        await self.producer.start()
        self.http = guarded_session(self.s.webhook_allow)  # connects only to checked addresses
        consumer = AIOKafkaConsumer(self.s.topic("escalations.v1"), **cfg,
                                    group_id=f"{self.s.app_id}-notifier", enable_auto_commit=False,
                                    auto_offset_reset="earliest", fetch_max_wait_ms=50,
                                    **({"session_timeout_ms": 6000, "heartbeat_interval_ms": 1000,
                                        "max_poll_interval_ms": 60000, "rebalance_timeout_ms": 6000}
                                       if self.s.embedded else {}))
        follower = self._roster_follower()

        async def send_dlq(key: bytes, value: bytes) -> None:
            await self.producer.send_and_wait(self.s.topic("dlq.v1"), value, key=key,
                                              headers=STRUCTURED)

        follower.dlq = DlqPolicy(send_dlq, self.s.max_message_bytes, self.log)
        follow = asyncio.create_task(follower.run())
        try:
            await asyncio.wait_for(follower.ready.wait(), 60)
            await self._load_done()
            self.log.info("notifier_ready", delivered_before=len(self.done),
                          roster="topic" if self.rosters else "file")
            await consumer.start()
            inflight: dict[Any, deque] = {}  # partition -> [(offset, handling)] in offset order
            reported = time.monotonic()
            while not stop.is_set():
                if time.monotonic() - reported > 30:
                    reported = time.monotonic()
                    self._report_endpoints()
                batch = await consumer.getmany(timeout_ms=200, max_records=100)
                for tp, msgs in batch.items():
                    for m in msgs:
                        inflight.setdefault(tp, deque()).append((m.offset, asyncio.ensure_future(
                            self._handle_record(m.value, m.offset))))
                await self._commit_done(consumer, inflight)
                while sum(map(len, inflight.values())) > MAX_INFLIGHT:  # bounded memory
                    await asyncio.sleep(0.05)
                    await self._commit_done(consumer, inflight)
            started = [f for dq in inflight.values() for _, f in dq]
            if started:  # SIGTERM: what was started gets a 10 s grace; the rest is sent again
                await asyncio.wait(started, timeout=10)
            await self._commit_done(consumer, inflight)
        finally:
            await self.queues.close()
            follow.cancel()
            await consumer.stop()
            await self.http.close()
            await self.producer.stop()
