"""`gridwatch bench dashboard`: the command-center page under county-scale load, in Debian's
Chromium (headless, Playwright), today's rendering against round 1's in the same run.

A real `gridwatch web` on the embedded broker is fed `incidents` open incidents on the demo-sized
test atlas, then `rate` incident updates a second on the live stream for `seconds`. The page is
measured with the Performance API: input latency (a click on the incident tabs -> the next
frame, p50/p95) and long tasks (PerformanceObserver ``longtask``: count, longest). The same run
is repeated with ``?render=legacy`` (the whole incident table rebuilt on every stream event,
as round 1 rendered) as the baseline.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import orjson

from pipeline.broker import EmbeddedBroker, free_port
from pipeline.envelope import iso_ms, make_event
from pipeline.settings import Settings
from pipeline.web.auth import hash_token

TOKEN = "tok-bench-dashboard-0123456789"
MEASURE_JS = """() => {
  window.__lat = []; window.__long = [];
  new PerformanceObserver((l) => { for (const e of l.getEntries()) window.__long.push(e.duration); })
    .observe({type: "longtask", buffered: false});
  const tabs = [document.querySelector('#tab-open'), document.querySelector('#tab-ended')];
  let i = 0;
  window.__clicker = setInterval(() => {
    const target = tabs[i++ % 2] || document.querySelector('#incidents');
    const t0 = performance.now();
    target.click();
    requestAnimationFrame(() => window.__lat.push(performance.now() - t0));
  }, 250);
}"""


def _incident(i: int, state: str, now_ms: int) -> dict:
    grid = ("g1", "g2", "g3", "g4")[i % 4]
    return {"incident_id": f"{grid}~inactivity:s{i}~{now_ms}", "dedup_key": f"inactivity:s{i}",
            "kind": "inactivity", "severity": ("low", "medium", "high", "critical")[i % 4],
            "grid_id": grid, "path": ["C", "T", "M", grid], "category": None, "state": state,
            "level": ("grid_worker", "grid_leader", "community", "town")[i % 4], "unit": grid,
            "rule": "care", "opened_at": iso_ms(now_ms - i * 1000), "acknowledged_at": None,
            "resolved_at": None, "closed_at": None,
            "deadlines": {"acknowledge": iso_ms(now_ms + (i % 90) * 60_000),
                          "resolve": iso_ms(now_ms + 7_200_000)},
            "breaches": [], "loud": False, "assignee": None, "alert_ids": [], "step": 2 + i % 5,
            "parent_id": None, "to_check": None}


def _feed(settings: Settings, incidents: int, rate: float, seconds: float, stop: threading.Event,
          warm: threading.Event) -> None:
    from kafka import KafkaProducer

    prod = KafkaProducer(bootstrap_servers=settings.broker, linger_ms=5)
    topic = settings.topic("incidents.v1")
    now = int(time.time() * 1000)
    for i in range(incidents):
        inc = _incident(i, "dispatched", now)
        prod.send(topic, key=inc["incident_id"].encode(),
                  value=orjson.dumps(make_event("gridwatch.incident.v1", f"{inc['incident_id']}@2",
                                                inc["opened_at"], inc)))
    prod.flush()
    warm.wait()
    n, start = 0, time.monotonic()
    while not stop.is_set() and time.monotonic() - start < seconds:
        i = n % incidents
        state = ("acknowledged", "on_site", "dispatched")[n // incidents % 3]
        inc = _incident(i, state, now)
        prod.send(topic, key=inc["incident_id"].encode(),
                  value=orjson.dumps(make_event("gridwatch.incident.v1", f"{inc['incident_id']}@{n}",
                                                inc["opened_at"], inc)))
        n += 1
        time.sleep(max(0.0, start + n / rate - time.monotonic()))
    prod.flush()
    prod.close()


def _measure(port: int, render: str, settings: Settings, incidents: int, rate: float,
             seconds: float) -> dict[str, Any]:
    from playwright.sync_api import sync_playwright

    stop, warm = threading.Event(), threading.Event()
    feeder = threading.Thread(target=_feed, args=(settings, incidents, rate, seconds, stop, warm),
                              daemon=True)
    feeder.start()
    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, headless=True,
                                     args=["--no-sandbox", "--disable-gpu", "--no-first-run"])
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        page.goto(f"http://127.0.0.1:{port}/" + ("?render=legacy" if render == "legacy" else ""))
        page.fill("#token", TOKEN)
        page.click("#login button")
        page.wait_for_selector("body[data-ready=true]", timeout=120_000)
        deadline = time.monotonic() + 120
        while page.evaluate("() => S.incidents.size") < incidents and time.monotonic() < deadline:
            time.sleep(0.5)
        loaded = page.evaluate("() => S.incidents.size")
        page.evaluate(MEASURE_JS)
        started = time.monotonic()
        warm.set()
        feeder.join(seconds + 60)
        stop.set()
        elapsed = time.monotonic() - started
        lat = sorted(page.evaluate("() => window.__lat"))
        longs = page.evaluate("() => window.__long")
        browser.close()

    def pct(q: float) -> float | None:
        return round(lat[min(len(lat) - 1, int(q * len(lat)))], 1) if lat else None

    return {"open_incidents": loaded, "events_per_s": round(rate, 1), "seconds": round(elapsed, 1),
            "input_samples": len(lat), "input_latency_p50_ms": pct(0.5),
            "input_latency_p95_ms": pct(0.95), "long_tasks": len(longs),
            "long_task_max_ms": round(max(longs), 1) if longs else 0.0}


def _atlas(path: Path) -> str:
    import geopandas as gpd
    import shapely

    from geo.layers import Atlas, LayerSpec, normalise, write_atlas

    rows = [("C", None, "county", "县", shapely.box(0, 0, 2, 2)),
            ("T", "C", "town", "镇", shapely.box(0, 0, 2, 2)),
            ("M", "T", "community", "村", shapely.box(0, 0, 2, 2))]
    rows += [(g, "M", "grid", f"第{i + 1}网格", b) for i, (g, b) in enumerate(
        (("g1", shapely.box(0, 0, 1, 1)), ("g2", shapely.box(1, 0, 2, 1)),
         ("g3", shapely.box(0, 1, 1, 2)), ("g4", shapely.box(1, 1, 2, 2))))]
    gov = gpd.GeoDataFrame([{"id": i, "parent": p, "level": lv, "name": n, "geometry": g}
                            for i, p, lv, n, g in rows], geometry="geometry", crs="EPSG:4326")
    write_atlas(Atlas(governance=normalise(gov, LayerSpec("<bench>", "governance"))), str(path))
    return str(path)


def run_dashboard_bench(incidents: int = 5000, rate: float = 200.0, seconds: float = 30.0,
                        workdir: str = "var/bench-dashboard") -> dict[str, Any]:
    """Both renderings, each in a fresh `gridwatch web`, on one broker, under the same load."""
    from topics.admin import create

    wd = Path(workdir)
    wd.mkdir(parents=True, exist_ok=True)
    (wd / "tokens.yaml").write_text(
        f"tokens:\n  - {{name: center, role: command_center, sha256: {hash_token(TOKEN)}}}\n")
    atlas = _atlas(wd / "atlas.geojson")
    out: dict[str, Any] = {"machine": f"{os.cpu_count()} cores", "load": {
        "open_incidents": incidents, "events_per_s": rate, "seconds": seconds}}
    with EmbeddedBroker(log_path=str(wd / "broker.log")) as broker:
        for render in ("today", "legacy"):
            s = Settings.from_env({}, broker=broker.bootstrap, topic_prefix=f"bd{render}.", embedded=True)
            create(s)
            port = free_port()
            env = dict(os.environ, GRIDWATCH_BROKER=broker.bootstrap, GRIDWATCH_EMBEDDED="true",
                       GRIDWATCH_TOPIC_PREFIX=s.topic_prefix, GRIDWATCH_ATLAS=atlas,
                       GRIDWATCH_TOKENS=str(wd / "tokens.yaml"), GRIDWATCH_WEB_PORT=str(port))
            web = subprocess.Popen([sys.executable, "-m", "ops.cli", "web"], env=env,
                                   stdout=open(wd / f"web-{render}.log", "ab"), stderr=subprocess.STDOUT)
            try:
                _wait_ready(port)
                out[render] = _measure(port, render, s, incidents, rate, seconds)
            finally:
                web.terminate()
                web.wait(20)
    out["baseline"] = "legacy: round 1's rendering (the table rebuilt on every stream event)"
    return out


def _wait_ready(port: int, timeout_s: float = 60) -> None:
    import urllib.request

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    raise RuntimeError(f"gridwatch web did not get ready on port {port}")
