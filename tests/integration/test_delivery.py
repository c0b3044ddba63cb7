"""The notifier against a real HTTP receiver and a real SMTP server (aiosmtpd)."""

from __future__ import annotations

import email
import email.policy
import hashlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import orjson
import pytest
import yaml
from aiosmtpd.controller import Controller
from kafka import KafkaConsumer, KafkaProducer

from pipeline.delivery.cap import validate_cap
from pipeline.delivery.signing import HEADER, verify
from pipeline.envelope import make_event
from pipeline.settings import Settings
from tests.integration.conftest import REPO, engine_env
from topics.admin import create

pytestmark = [pytest.mark.integration, pytest.mark.engines]
SECRET = "it-secret"
PATH = ["C", "T", "M", "g1"]


class Receiver(BaseHTTPRequestHandler):
    """/ok accepts, /flaky fails three times then accepts, /down always fails, /slow is slow."""

    calls: ClassVar[list[dict]] = []
    flaky_left = 3
    lock = threading.Lock()

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        signed = verify(SECRET, self.headers.get(HEADER, ""), body, now=int(time.time()))
        with Receiver.lock:
            status = 200
            if self.path == "/down":
                status = 500
            elif self.path == "/flaky" and Receiver.flaky_left > 0:
                Receiver.flaky_left -= 1
                status = 503
            Receiver.calls.append({"path": self.path, "status": status, "signed": signed,
                                   "key": self.headers.get("Idempotency-Key"),
                                   "type": self.headers.get("Content-Type"), "raw": body,
                                   "body": orjson.loads(body) if body.startswith(b"{") else None})
        if self.path == "/slow":
            time.sleep(0.15)
        self.send_response(status)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


class Mailbox:
    def __init__(self) -> None:
        self.messages: list = []

    async def handle_DATA(self, server, session, envelope):
        self.messages.append((envelope.rcpt_tos, envelope.content.decode("utf-8", "replace")))
        return "250 OK"


@pytest.fixture
def servers():
    http = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=http.serve_forever, daemon=True).start()
    box = Mailbox()
    with socket.socket() as sock:  # aiosmtpd's controller needs a concrete port
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    smtp = Controller(box, hostname="127.0.0.1", port=port)
    smtp.start()
    Receiver.calls, Receiver.flaky_left = [], 3
    yield f"http://127.0.0.1:{http.server_address[1]}", smtp, box
    smtp.stop()
    http.shutdown()


def escalation(step: int, transition: str, level: str, unit: str, incident: str = "g1~inactivity:s1~1",
               parallel: tuple = ()) -> bytes:
    data = {"incident_id": incident, "step": step, "transition": transition, "level": level,
            "to": [unit, *parallel], "actor": None, "reason": None, "at": "2026-09-30T02:00:00.000Z",
            "kind": "inactivity", "severity": "high", "grid_id": "g1", "path": PATH,
            "deadline": "2026-09-30T02:15:00.000Z"}
    return orjson.dumps(make_event("gridwatch.escalation.v1", f"{incident}:{step}", data["at"], data))


def start_notifier(s: Settings, tmp_path, base: str, smtp, name: str,
                   roster_file: bool = True) -> subprocess.Popen:
    roster = {"people": {"wang": {"name": "王", "webhook": f"{base}/ok", "email": "wang@example.cn"},
                         "flaky": {"name": "F", "webhook": f"{base}/flaky"},
                         "down": {"name": "D", "webhook": f"{base}/down"},
                         "comm": {"name": "社区", "webhook": f"{base}/ok", "lang": "en"},
                         "slow": {"name": "S", "webhook": f"{base}/slow"},
                         "alarm": {"name": "预警平台", "webhook": f"{base}/ok", "webhook_format": "cap"}},
              "duties": [{"unit": "g1", "role": "grid_worker", "shifts": [{"who": "wang"}]},
                         {"unit": "g1", "role": "grid_leader", "shifts": [{"who": "down"}]},
                         {"unit": "M", "role": "community", "shifts": [{"who": "comm"}]},
                         {"unit": "T", "role": "town", "shifts": [{"who": "flaky"}]},
                         {"unit": "T", "role": "district", "shifts": [{"who": "slow"}]},
                         {"unit": "C", "role": "city", "shifts": [{"who": "alarm"}]}]}
    path = tmp_path / "roster.yaml"
    path.write_text(yaml.safe_dump(roster, allow_unicode=True))
    env = dict(os.environ, **engine_env(s), GRIDWATCH_BROKER=s.broker,
               GRIDWATCH_TOPIC_PREFIX=s.topic_prefix, GRIDWATCH_ROSTER=str(path),
               GRIDWATCH_WEBHOOK_SECRETS=SECRET,
               GRIDWATCH_SMTP_HOST="127.0.0.1", GRIDWATCH_SMTP_PORT=str(smtp.port),
               GRIDWATCH_NOTIFY_BACKOFF_S="0.05", GRIDWATCH_NOTIFY_ATTEMPTS="4",
               GRIDWATCH_APP_ID=s.app_id,
               GRIDWATCH_WEBHOOK_ALLOW="127.0.0.1")  # the test receivers are on loopback
    if not roster_file:
        del env["GRIDWATCH_ROSTER"]
    log = open(tmp_path / f"{name}.log", "ab")
    return subprocess.Popen([sys.executable, "-m", "ops.cli", "notifier"], env=env, cwd=REPO,
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def stop(proc: subprocess.Popen, sig=signal.SIGTERM) -> None:
    os.killpg(proc.pid, sig)
    proc.wait(30)


def wait_for(pred, what: str, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def notifications(s: Settings) -> list[dict]:
    c = KafkaConsumer(s.topic("notifications.v1"), bootstrap_servers=s.broker,
                      auto_offset_reset="earliest", consumer_timeout_ms=1500)
    try:
        return [orjson.loads(m.value)["data"] for m in c]
    finally:
        c.close()


def test_signed_webhook_email_retries_fallback_and_restart(broker, tmp_path, servers):
    base, smtp, box = servers
    s = Settings.from_env({}, broker=broker.bootstrap, topic_prefix=f"dlv{os.getpid()}.",
                          embedded=broker.embedded, app_id=f"dlv{os.getpid()}")
    create(s)
    prod = KafkaProducer(bootstrap_servers=broker.bootstrap)

    def send(*records: bytes) -> None:
        for r in records:
            prod.send(s.topic("escalations.v1"), key=b"g1~inactivity:s1~1", value=r)
        prod.flush()

    proc = start_notifier(s, tmp_path, base, smtp, "n1")
    try:
        # 1. a dispatch: one signed webhook and one e-mail to the grid worker on duty
        send(escalation(2, "dispatched", "grid_worker", "g1"))
        wait_for(lambda: box.messages and any(c["path"] == "/ok" for c in Receiver.calls),
                 "webhook and e-mail")
        (call,) = [c for c in Receiver.calls if c["path"] == "/ok"]
        assert call["signed"] and call["key"] == "g1~inactivity:s1~1:2:wang:webhook"
        assert "独居老人无活动" in call["body"]["subject"]
        (rcpts, content), = box.messages
        mail = email.message_from_string(content, policy=email.policy.default)
        assert rcpts == ["wang@example.cn"]
        nid = "g1~inactivity:s1~1:2:wang:email"
        assert mail["X-Gridwatch-Notification"] == nid
        assert mail["Message-ID"] == f"<{hashlib.sha1(nid.encode()).hexdigest()}@gridwatch>"
        assert "独居老人无活动" in mail["Subject"] and "请于" in mail.get_content()
        # a public-warning platform takes CAP 1.2, signed like any webhook
        send(escalation(4, "unanswered_at_top", "city", "C"))
        wait_for(lambda: any(c["type"] == "application/cap+xml" for c in Receiver.calls), "CAP")
        (cap_call,) = [c for c in Receiver.calls if c["type"] == "application/cap+xml"]
        assert cap_call["signed"] and validate_cap(cap_call["raw"]) == []
        # 2. a receiver failing three times then accepting: exactly one accepted delivery
        send(escalation(5, "escalated", "town", "T"))
        wait_for(lambda: any(c["path"] == "/flaky" and c["status"] == 200 for c in Receiver.calls), "flaky")
        flaky = [c["status"] for c in Receiver.calls if c["path"] == "/flaky"]
        assert flaky == [503, 503, 503, 200]
        # 3. a receiver down for good: the next level (community, at M) is called instead
        send(escalation(3, "escalated", "grid_leader", "g1"))
        wait_for(lambda: any((c["key"] or "").endswith(":fallback:comm:webhook")
                             for c in Receiver.calls), "the fallback to the community")
        assert [c["status"] for c in Receiver.calls if c["path"] == "/down"] == [500] * 4
        # 4. a batch, stopped in the middle and restarted: nothing is sent twice
        send(*(escalation(10 + n, "escalated", "district", "T", incident=f"g1~report:{n}~1")
               for n in range(20)))
        wait_for(lambda: sum(c["path"] == "/slow" for c in Receiver.calls) >= 5, "part of the batch")
        stop(proc)
        proc = start_notifier(s, tmp_path, base, smtp, "n2")
        wait_for(lambda: sum(c["path"] == "/slow" for c in Receiver.calls) >= 20, "the rest of the batch", 90)
        time.sleep(2)
        slow_keys = [c["key"] for c in Receiver.calls if c["path"] == "/slow"]
        assert len(slow_keys) == len(set(slow_keys)) == 20
        # 5. the same with SIGKILL: nothing is lost; a send in flight at the kill may come again,
        # with the same Idempotency-Key, so the receiver recognises it
        send(*(escalation(10 + n, "escalated", "district", "T", incident=f"g1~report:k{n}~1")
               for n in range(20)))
        wait_for(lambda: sum(c["path"] == "/slow" for c in Receiver.calls) >= 25, "part of the batch")
        stop(proc, signal.SIGKILL)
        proc = start_notifier(s, tmp_path, base, smtp, "n3")
        wait_for(lambda: len({c["key"] for c in Receiver.calls if c["path"] == "/slow"}) >= 40,
                 "the rest of the batch after SIGKILL", 90)
        time.sleep(2)
        slow_keys = [c["key"] for c in Receiver.calls if c["path"] == "/slow"]
        assert len(set(slow_keys)) == 40 and len(slow_keys) - 40 <= 4  # at most the sends in flight
    finally:
        stop(proc)
        prod.close()
    outcomes = [(n["notification_id"].split(":")[-2], n["channel"], n["outcome"]) for n in notifications(s)]
    assert ("wang", "webhook", "delivered") in outcomes and ("wang", "email", "delivered") in outcomes
    assert [o for o in outcomes if o[0] == "flaky"] == [("flaky", "webhook", "retrying")] * 3 + [
        ("flaky", "webhook", "delivered")]
    assert [o[2] for o in outcomes if o[0] == "down"] == ["retrying"] * 3 + ["failed"]


def test_roster_published_to_the_topic_is_used_and_a_bad_file_is_refused(broker, tmp_path, servers):
    base, smtp, _ = servers
    s = Settings.from_env({}, broker=broker.bootstrap, topic_prefix=f"dlr{os.getpid()}.",
                          embedded=broker.embedded, app_id=f"dlr{os.getpid()}")
    create(s)
    good = tmp_path / "duty.yaml"
    good.write_text(yaml.safe_dump({"name": "default", "people": {
        "night": {"name": "夜班", "webhook": f"{base}/ok"}},
        "duties": [{"unit": "g1", "role": "grid_worker", "shifts": [{"who": "night"}]}]},
        allow_unicode=True))
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: default\npeople: {x: {name: x}}\n")  # nobody reachable
    env = dict(os.environ, GRIDWATCH_BROKER=s.broker, GRIDWATCH_TOPIC_PREFIX=s.topic_prefix)
    run = [sys.executable, "-m", "ops.cli", "roster", "load"]
    assert subprocess.run([*run, str(good)], env=env, cwd=REPO, capture_output=True).returncode == 0
    res = subprocess.run([*run, str(bad)], env=env, cwd=REPO, capture_output=True, text=True)
    assert res.returncode == 1 and "at least one channel" in res.stdout + res.stderr
    proc = start_notifier(s, tmp_path, base, smtp, "nr", roster_file=False)
    prod = KafkaProducer(bootstrap_servers=broker.bootstrap)
    try:
        prod.send(s.topic("escalations.v1"), key=b"k", value=escalation(2, "dispatched", "grid_worker", "g1"))
        prod.flush()
        wait_for(lambda: any((c["key"] or "").endswith(":night:webhook") for c in Receiver.calls),
                 "a delivery to the person on the published roster")
    finally:
        prod.close()
        stop(proc)
