"""A grid worker acts from the message: the link in a real delivered e-mail (aiosmtpd) opens
the phone page in Debian's Chromium at a phone's size (390x844), 签收 is tapped, the worker
records the acknowledgement and the incident stops climbing; an expired link says so.

Everything runs as shipped: a worker on the live clock, the notifier, `gridwatch web`.
A screenshot is kept in var/artifacts/phone.png.
"""

from __future__ import annotations

import email
import email.policy
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest
import yaml
from aiosmtpd.controller import Controller
from kafka import KafkaProducer

from pipeline.detect.alerts import Alert
from pipeline.settings import Settings
from pipeline.web.auth import hash_token
from tests.integration.conftest import REPO, Pipeline, read_all
from tests.integration.test_web_api import Api, free_port
from topics.admin import create

pytestmark = pytest.mark.e2e
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = REPO / "var" / "artifacts"
LINK_KEY = "e2e-link-key-0123456789abcdef"
PHONE = {"width": 390, "height": 844}


class Mailbox:
    def __init__(self) -> None:
        self.messages: list[email.message.EmailMessage] = []

    async def handle_DATA(self, server, session, envelope):
        self.messages.append(email.message_from_bytes(envelope.content, policy=email.policy.default))
        return "250 OK"


def wait_for(pred, what: str, timeout_s: float = 60):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        got = pred()
        if got:
            return got
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


def start(args: list[str], env: dict, log: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "ops.cli", *args], env=env, cwd=REPO,
                            stdout=open(log, "ab"), stderr=subprocess.STDOUT, start_new_session=True)


def test_a_grid_worker_acknowledges_from_the_e_mail_on_a_phone(broker, atlas_file, tmp_path):
    if not Path(CHROMIUM).exists():
        pytest.fail("Debian chromium is not installed (make test installs it: apt-get install chromium)")
    from playwright.sync_api import expect, sync_playwright

    tag = f"act{os.getpid()}"
    s = Settings.from_env({}, broker=broker.bootstrap, topic_prefix=f"{tag}.", embedded=True)
    create(s)
    port = free_port()
    p = Pipeline(s, atlas_file, tmp_path, {"GRIDWATCH_APP_ID": tag, "GRIDWATCH_LINK_KEY": LINK_KEY,
                                           "GRIDWATCH_PUBLIC_URL": f"http://127.0.0.1:{port}"})
    box = Mailbox()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        smtp_port = sock.getsockname()[1]
    smtp = Controller(box, hostname="127.0.0.1", port=smtp_port)
    smtp.start()
    roster = {"people": {"wang": {"name": "王网格员", "email": "wang@example.cn", "lang": "zh"}},
              "duties": [{"unit": "g1", "role": "grid_worker", "shifts": [{"who": "wang"}]}]}
    (tmp_path / "roster.yaml").write_text(yaml.safe_dump(roster, allow_unicode=True))
    center = hash_token("tok-center-act-0123456789")
    (tmp_path / "tokens.yaml").write_text(
        f"tokens:\n  - {{name: center, role: command_center, sha256: {center}}}\n")
    env = dict(p.env(), GRIDWATCH_ROSTER=str(tmp_path / "roster.yaml"), GRIDWATCH_SMTP_HOST="127.0.0.1",
               GRIDWATCH_SMTP_PORT=str(smtp_port), GRIDWATCH_TOKENS=str(tmp_path / "tokens.yaml"),
               GRIDWATCH_WEB_PORT=str(port))
    worker = p.start_worker()  # the live clock, as shipped
    notifier = start(["notifier"], env, tmp_path / "notifier.log")
    web = start(["web"], env, tmp_path / "web.log")
    try:
        Api(port).wait_ready(tmp_path / "web.log")
        now = int(time.time() * 1000)
        alert = Alert("inactivity:s-act:1", "inactivity", "g1", "high", "firing", now, "firing",
                      {"deadline": now}, path=("C", "T", "M", "g1"), subject_id="s-act",
                      reason="no_activity")
        key, value = alert.encode()
        prod = KafkaProducer(bootstrap_servers=s.broker)
        prod.send(s.topic("alerts.v1"), key=key, value=value, timestamp_ms=now)
        prod.flush()
        prod.close()
        mail = wait_for(lambda: box.messages, "the dispatch e-mail to the grid worker", 90)[0]
        text = mail.get_body(("plain",)).get_content()
        found = re.search(r"^act: (\S+)", text, re.M)
        assert found, text
        link = found.group(1)
        assert link.startswith(f"http://127.0.0.1:{port}/act/") and "wang" not in link

        expired = subprocess.run([sys.executable, "-m", "ops.cli", "link", alert.grid_id + "~x~1",
                                  "--person", "wang", "--hours", "-1"], env=env, cwd=REPO,
                                 capture_output=True, text=True, timeout=60)
        assert expired.returncode == 0, expired.stderr
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=[
                "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"])
            page = browser.new_page(viewport=PHONE, device_scale_factor=2, is_mobile=True, has_touch=True)
            page.goto(link)
            page.wait_for_selector("body[data-ready=true]", timeout=30_000)
            expect(page.locator("#where")).to_contain_text("›")  # names along the ladder, not codes
            expect(page.locator("#state")).to_have_text("待签收", timeout=30_000)
            assert page.locator("#map polygon").count() >= 1
            expect(page.locator("#timeline li[data-transition=dispatched]")).to_have_count(1)
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "phone.png"), full_page=True)
            page.locator("#do-acknowledge").tap()
            expect(page.locator("#done")).to_have_attribute("data-action", "acknowledge", timeout=30_000)
            expect(page.locator("#do-acknowledge")).to_be_disabled()

            page.goto(expired.stdout.strip())
            page.wait_for_selector("body[data-ready=true]", timeout=30_000)
            expect(page.locator("#error")).to_contain_text("过期")
            browser.close()

        def acknowledged():
            for m in read_all(s.broker, [s.topic("escalations.v1")]):
                d = orjson.loads(m.value)["data"]
                if d["transition"] == "acknowledge":
                    return d
            return None

        ack = wait_for(acknowledged, "the worker to record the acknowledgement", 60)
        assert (ack["actor"], ack["level"]) == ("wang", "grid_worker")
        state = wait_for(lambda: [orjson.loads(m.value)["data"] for m in
                                  read_all(s.broker, [s.topic("incidents.v1")])
                                  if m.value and b"acknowledged" in m.value], "the incident state")
        assert state[-1]["state"] == "acknowledged" and state[-1]["deadlines"]["acknowledge"] is None
    finally:
        for proc in (web, notifier):
            proc.terminate()
            proc.wait(20)
        p.stop_worker(worker)
        smtp.stop()
