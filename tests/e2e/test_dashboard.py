"""The dashboard in headless Chromium (Debian's, driven by Playwright) against a real worker and
`gridwatch web` on the embedded broker: the page loads and draws the grids, a new incident shows
up live, an acknowledge click changes its state, the incident's timeline takes a comment, and a
report's `<script>` text is shown as text.
A screenshot is kept in var/artifacts/dashboard.png."""

from __future__ import annotations

import http.client
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest
from kafka import KafkaProducer

from pipeline.detect.alerts import Alert
from pipeline.envelope import iso_ms
from pipeline.settings import Settings
from pipeline.web.auth import hash_token
from tests.integration.conftest import REPO, Pipeline
from tests.integration.test_web_api import Api, free_port
from tests.unit.pipeline.helpers import T0_MS
from topics.admin import create

pytestmark = pytest.mark.e2e
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = REPO / "var" / "artifacts"
CENTER, APP = "tok-center-e2e-0123456789", "tok-app-e2e-0123456789"
COMMENT = "<b>已电话联系</b> family called"
HOSTILE = "<script>window.__pwned = 1</script><img src=x onerror=\"window.__pwned=2\"> 围墙开裂"


def start_web(p: Pipeline, tmp: Path, port: int) -> subprocess.Popen:
    (tmp / "tokens.yaml").write_text(
        "tokens:\n"
        f"  - {{name: center, role: command_center, sha256: {hash_token(CENTER)}}}\n"
        f"  - {{name: app, role: ingest, sha256: {hash_token(APP)}}}\n")
    env = dict(p.env(), GRIDWATCH_TOKENS=str(tmp / "tokens.yaml"), GRIDWATCH_WEB_PORT=str(port))
    return subprocess.Popen([sys.executable, "-m", "ops.cli", "web"], env=env, cwd=REPO,
                            stdout=open(tmp / "web.log", "ab"), stderr=subprocess.STDOUT,
                            start_new_session=True)


def test_dashboard_live_incident_acknowledge_and_literal_text(broker, atlas_file, tmp_path):
    if not Path(CHROMIUM).exists():
        pytest.fail("Debian chromium is not installed (make test installs it: apt-get install chromium)")
    from playwright.sync_api import expect, sync_playwright

    tag = f"e2e{os.getpid()}"
    s = Settings.from_env({}, broker=broker.bootstrap, topic_prefix=f"{tag}.", embedded=True)
    create(s)
    p = Pipeline(s, atlas_file, tmp_path, {"GRIDWATCH_CLOCK": "off", "GRIDWATCH_APP_ID": tag})
    worker = p.start_worker()
    port = free_port()
    web = start_web(p, tmp_path, port)
    api = Api(port)
    try:
        api.wait_ready(tmp_path / "web.log")
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=[
                "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync"])
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(f"http://127.0.0.1:{port}/")
            page.fill("#token", CENTER)
            page.click("#login button")
            page.wait_for_selector("body[data-ready=true]", timeout=30_000)
            # the four grids of the atlas are drawn as map polygons
            expect(page.locator("path.leaflet-interactive")).to_have_count(4)
            assert page.get_attribute("body", "data-grids") == "4"

            # a new incident, live: an inactivity alert for grid g1 reaches the worker
            alert = Alert("inactivity:s1:1", "inactivity", "g1", "high", "firing", T0_MS + 86_400_000,
                          "firing", {"deadline": T0_MS + 86_400_000}, path=("C", "T", "M", "g1"),
                          subject_id="s1", reason="no_activity")
            key, value = alert.encode()
            prod = KafkaProducer(bootstrap_servers=broker.bootstrap)
            prod.send(s.topic("alerts.v1"), key=key, value=value)
            prod.flush()
            row = page.locator("#incidents tbody tr", has_text="g1")
            expect(row).to_have_count(1, timeout=60_000)
            expect(row.locator("td.state")).to_have_text("已派遣", timeout=10_000)  # dispatched
            expect(page.locator("#live")).to_have_class("on")
            # the map colours the grid with an open incident
            page.wait_for_function("() => [...document.querySelectorAll('path.leaflet-interactive')]"
                                   ".some(p => p.getAttribute('fill') === '#ef6c00')", timeout=10_000)

            # acknowledge: the command goes through the worker and the row changes state
            row.locator("button.act-acknowledge").click()
            expect(row.locator("td.state")).to_have_text("已签收", timeout=60_000)  # acknowledged
            expect(row.locator("button.act-acknowledge")).to_have_count(0)

            # the incident's detail: its timeline, and a comment (markup in it stays text)
            row.locator("td").first.click()
            expect(page.locator("#detail")).to_be_visible()
            expect(page.locator("#timeline li[data-transition=dispatched]")).to_have_count(1)
            expect(page.locator("#timeline li[data-transition=acknowledge]")).to_have_count(1)
            page.fill("#comment-text", COMMENT)
            page.click("#comment button")
            said = page.locator("#timeline li[data-transition=comment] .what")
            expect(said).to_have_count(1, timeout=60_000)  # through commands.v1, the worker, the stream
            assert said.inner_text() == f"批注: {COMMENT}"
            assert page.locator("#timeline b").count() == 0

            # a report whose text carries markup is shown literally and runs nothing
            report = {"report_id": "R-xss", "reporter_id": "W1", "category": "safety_hazard",
                      "severity": "medium", "text": HOSTILE, "lon": 0.5, "lat": 0.5,
                      "observed_at": iso_ms(int(time.time() * 1000))}  # the API stamps it now
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            c.request("POST", "/api/v1/reports", body=orjson.dumps(report),
                      headers={"Authorization": f"Bearer {APP}", "Content-Type": "application/json"})
            assert c.getresponse().status == 202
            text = page.locator("#reports li .text", has_text="围墙开裂")
            expect(text).to_have_count(1, timeout=60_000)
            assert text.inner_text() == HOSTILE
            assert page.locator("#reports script, #reports img").count() == 0
            assert page.evaluate("() => window.__pwned") is None

            # English labels
            page.click("#lang")
            expect(row.locator("td.state")).to_have_text("acknowledged")
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "dashboard.png"), full_page=True)
            assert not errors, errors
            browser.close()
            prod.close()
    finally:
        web.terminate()
        web.wait(20)
        p.stop_worker(worker)
