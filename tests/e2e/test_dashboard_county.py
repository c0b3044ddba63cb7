"""The command center on a generated county (嵩县's real boundary, its real town names): names
along the ladder, the header figures, the open/ended split and the map layers, in Debian's
Chromium. A screenshot is kept in var/artifacts/county.png."""

from __future__ import annotations

import os
import shutil
import sys
import time
from pathlib import Path

import orjson
import pytest
from kafka import KafkaProducer

from geo.generate import GenerateOptions, boundary_from_file, generate_atlas, load_town_names
from geo.layers import write_atlas
from pipeline.envelope import iso_ms, make_event
from pipeline.settings import Settings
from pipeline.web.auth import hash_token
from tests.integration.conftest import REPO, Pipeline
from tests.integration.test_web_api import Api, free_port
from topics.admin import create

pytestmark = pytest.mark.e2e
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CENTER = "tok-center-county-0123456789"


def incident(iid: str, grid, kind: str, severity: str, state: str, now: int, key: str) -> dict:
    return {"incident_id": iid, "dedup_key": key, "kind": kind, "severity": severity,
            "grid_id": grid.code, "path": list(grid.path), "category": None, "state": state,
            "level": "grid_worker", "unit": grid.code, "rule": "x", "opened_at": iso_ms(now - 600_000),
            "acknowledged_at": iso_ms(now - 300_000) if state != "dispatched" else None,
            "resolved_at": None, "closed_at": iso_ms(now - 60_000) if state == "closed" else None,
            "deadlines": {"acknowledge": iso_ms(now + 600_000) if state == "dispatched" else None,
                          "resolve": iso_ms(now + 7_200_000)},
            "breaches": [], "loud": False, "assignee": None, "alert_ids": [], "step": 2,
            "parent_id": None, "to_check": None}


def test_names_kpis_open_and_ended_and_layers_on_a_county(embedded_broker, shared_data, tmp_path):
    if not Path(CHROMIUM).exists():
        pytest.fail("Debian chromium is not installed (make test installs it)")
    from playwright.sync_api import expect, sync_playwright

    from geo.locate import Locator

    geom, _, _ = boundary_from_file(str(shared_data / "410325.geojson"))
    names = load_town_names(str(shared_data / "410325-towns.json"))
    atlas = generate_atlas(geom, "410325", "嵩县", GenerateOptions(seed=3, grids=60, hazards=3), names)
    path = tmp_path / "county.geojson"
    write_atlas(atlas, str(path))
    loc = Locator(atlas)
    deting = next(g for g in loc.grids if g.code.startswith("410325105"))  # 德亭镇
    zone = atlas.hazard.iloc[0]
    point = atlas.monitoring.iloc[0]
    tag = f"county{os.getpid()}"
    s = Settings.from_env({}, broker=embedded_broker.bootstrap, topic_prefix=f"{tag}.", embedded=True)
    create(s)
    now = int(time.time() * 1000)
    rows = [incident("a~inactivity:s1~1", deting, "inactivity", "high", "dispatched", now,
                     "inactivity:s1"),
            incident("b~landslide~1", deting, "landslide", "orange", "dispatched", now,
                     f"landslide:{zone['id']}"),
            incident("c~sensor_stale~1", deting, "sensor_stale", "low", "acknowledged", now,
                     f"sensor_stale:{point['id']}"),
            incident("d~report_cluster~1", deting, "report_cluster", "medium", "closed", now,
                     "report_cluster:x")]
    prod = KafkaProducer(bootstrap_servers=s.broker)
    for inc in rows:
        prod.send(s.topic("incidents.v1"), key=inc["incident_id"].encode(),
                  value=orjson.dumps(make_event("gridwatch.incident.v1", inc["incident_id"] + "@2",
                                                inc["opened_at"], inc)))
    prod.send(s.topic("kpis.v1"), key=b"410325", value=orjson.dumps(make_event(
        "gridwatch.kpi.v1", "kpi:410325", iso_ms(now),
        {"unit": "410325", "opened": 4, "closed": 1, "closure_rate": 0.25, "mtta_s": 300, "mttr_s": 540})))
    prod.flush()
    prod.close()
    (tmp_path / "tokens.yaml").write_text(
        f"tokens:\n  - {{name: center, role: command_center, sha256: {hash_token(CENTER)}}}\n")
    p = Pipeline(s, str(path), tmp_path)
    port = free_port()
    env = dict(p.env(), GRIDWATCH_TOKENS=str(tmp_path / "tokens.yaml"), GRIDWATCH_WEB_PORT=str(port))
    import subprocess

    web = subprocess.Popen([sys.executable, "-m", "ops.cli", "web"], env=env, cwd=REPO,
                           stdout=open(tmp_path / "web.log", "ab"), stderr=subprocess.STDOUT,
                           start_new_session=True)
    try:
        Api(port).wait_ready(tmp_path / "web.log")
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True,
                                         args=["--no-sandbox", "--disable-gpu", "--no-first-run"])
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(f"http://127.0.0.1:{port}/")
            page.fill("#token", CENTER)
            page.click("#login button")
            page.wait_for_selector("body[data-ready=true]", timeout=60_000)
            # the header: open now, 办结率 from the county's KPIs
            expect(page.locator("#header-kpis .kpi-open_now b")).to_have_text("3", timeout=30_000)
            expect(page.locator("#header-kpis .kpi-closure_rate b")).to_have_text("25.0 %")
            # open first, by name along the ladder (codes on hover), the ended one in its tab
            expect(page.locator("#tab-open")).to_contain_text("(3)")
            first = page.locator("#incidents tbody tr .where").first
            expect(first).to_contain_text("德亭镇 › ")
            assert "410325105" in first.get_attribute("title")
            page.fill("#search", "德亭镇第1村")  # search by name (or code)
            expect(page.locator("#tab-open")).to_contain_text("(3)")
            page.fill("#search", "no-such-place")
            expect(page.locator("#tab-open")).to_contain_text("(0)")
            page.fill("#search", "")
            expect(page.locator("#incidents tbody")).to_contain_text("独居老人无活动")  # kinds in Chinese
            page.click("#tab-ended")
            expect(page.locator("#incidents tbody tr")).to_have_count(1)
            expect(page.locator("#incidents tbody tr td.state")).to_have_text("已结案")
            # layers: 19 towns outlined, zones by level, the silent point stale
            for kind in ("towns", "hazards", "points"):
                page.check(f"input[data-layer={kind}]")
            page.wait_for_function("() => document.body.dataset.layer_points !== undefined", timeout=30_000)
            assert page.get_attribute("body", "data-layer_towns") == "19"
            assert page.get_attribute("body", "data-layer_hazards") == "3"
            page.wait_for_function("() => [...document.querySelectorAll('path.leaflet-interactive')]"
                                   ".some(p => p.getAttribute('fill') === '#ef6c00')", timeout=10_000)
            assert page.locator("path.point-stale").count() == 1
            assert page.locator("#legend").inner_text().count("严重") >= 1  # no English in zh
            (REPO / "var" / "artifacts").mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(REPO / "var" / "artifacts" / "county.png"))
            assert errors == []
            browser.close()
    finally:
        web.terminate()
        web.wait(20)
