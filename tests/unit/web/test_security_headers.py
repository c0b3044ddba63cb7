"""Security review, web API: headers on every response, no probing of incident ids, reasons
without exception text on /readyz, ingest tokens bound to a reporter, per-token limits on
live streams and commands, and merge_into passed through."""

from __future__ import annotations

import asyncio
import re
from dataclasses import replace
from types import SimpleNamespace

import orjson
import pytest
from aiohttp.test_utils import TestClient, TestServer

from pipeline.errors import ConfigError
from pipeline.settings import Settings
from pipeline.web.auth import TokenBook, TokenEntry, hash_token
from pipeline.web.server import CSP, STATIC, TokenBucket, build_app

from .test_http_hostile import ADMIN, APP, CMD_PATH, DUTY, INC, REPORT, _auth, _context

BOUND = "gw_bound-app-token"
OTHER = "gw_g4-incident"
WANT = {"X-Content-Type-Options": "nosniff", "X-Frame-Options": "DENY", "Referrer-Policy": "no-referrer"}


def _ctx(settings: Settings | None = None):
    ctx = _context(settings)
    entries = [TokenEntry(name="admin", sha256=hash_token(ADMIN), role="admin"),
               TokenEntry(name="duty-g1", sha256=hash_token(DUTY), role="responder", scope="g1"),
               TokenEntry(name="app", sha256=hash_token(APP), role="ingest"),
               TokenEntry(name="app-w1", sha256=hash_token(BOUND), role="ingest", reporter_id="W1")]
    ctx.tokens = TokenBook(entries)
    data = {"incident_id": OTHER, "grid_id": "g4", "path": ["C", "T", "N", "g4"], "state": "dispatched",
            "severity": "high", "level": "grid_worker", "kind": "inactivity",
            "opened_at": "2026-07-01T11:00:00Z"}
    ctx.board.apply("incidents.v1", orjson.dumps({"id": "i", "data": data}))
    return ctx


async def _client(ctx):
    app = build_app(ctx)
    app.on_startup.clear()  # no broker
    client = TestClient(TestServer(app))
    await client.start_server()
    return client


@pytest.fixture
async def api():
    ctx = _ctx()
    client = await _client(ctx)
    yield client, ctx
    await client.close()


def _secure(resp) -> None:
    for name, value in WANT.items():
        assert resp.headers.get(name) == value, (resp.url, name, dict(resp.headers))
    csp = resp.headers.get("Content-Security-Policy", "")
    assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp, csp


async def test_every_response_carries_the_security_headers(api):
    client, _ = api
    for method, path, headers in (("GET", "/healthz", {}), ("GET", "/readyz", {}), ("GET", "/", {}),
                                  ("GET", "/static/app.js", {}), ("GET", "/static/nope.js", {}),
                                  ("GET", "/api/v1/incidents", {}), ("GET", "/api/v1/incidents", _auth()),
                                  ("GET", "/api/openapi.yaml", _auth()), ("GET", "/nowhere", {}),
                                  ("DELETE", "/api/v1/incidents", _auth()),
                                  ("POST", CMD_PATH, _auth(APP))):
        async with client.request(method, path, headers=headers) as r:
            _secure(r)
    async with client.get("/api/v1/stream", headers=_auth()) as r:  # prepared by the handler itself
        assert r.status == 200
        _secure(r)
        await r.content.readuntil(b"\n\n")


def test_the_csp_allows_what_the_dashboard_loads_and_nothing_else():
    """The dashboard loads its own scripts and styles only (Leaflet vendored, no map tiles,
    no inline script or style element), so 'self' is enough; the header equals the page's own
    meta policy plus what only a header can say (frame-ancestors)."""
    for page in ("index.html", "act.html"):
        html = (STATIC / page).read_text()
        assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html), page  # no inline script
        assert "<style" not in html and " style=" not in html, page
        assert not re.search(r"(?:src|href)=\"(?:https?:)?//", html), page  # nothing off-site
        meta = re.search(r'http-equiv="Content-Security-Policy"\s+content="([^"]+)"', html).group(1)
        for directive in meta.split(";"):
            assert directive.strip() in CSP, (page, directive)
    app_js = (STATIC / "app.js").read_text()
    assert "tileLayer" not in app_js and "://" not in re.sub(r"http://www\.w3\.org/2000/svg", "", app_js)


async def test_an_incident_outside_the_scope_answers_exactly_as_an_unknown_id(api):
    client, ctx = api
    path = f"/api/v1/incidents/{OTHER}"
    async with client.get(path, headers=_auth(DUTY)) as r:
        hidden = (r.status, await r.read())
    async with client.post(path + "/commands", json={"action": "acknowledge"}, headers=_auth(DUTY)) as r:
        hidden_cmd = (r.status, await r.read())
    del ctx.board.incidents[OTHER]
    async with client.get(path, headers=_auth(DUTY)) as r:
        unknown = (r.status, await r.read())
    async with client.post(path + "/commands", json={"action": "acknowledge"}, headers=_auth(DUTY)) as r:
        unknown_cmd = (r.status, await r.read())
    assert hidden == unknown and hidden[0] == 404, (hidden, unknown)
    assert hidden_cmd == unknown_cmd and hidden_cmd[0] == 404
    assert ctx.producer.sent == []


async def test_readyz_gives_reasons_never_exception_text():
    ctx = _ctx()
    ctx.producer = None
    ctx.topics_ok = False
    ctx.follower = SimpleNamespace(error="KafkaConnectionError: Unable to bootstrap from "
                                         "[('10.20.30.40', 9092, <AddressFamily.AF_INET: 2>)]")
    client = await _client(ctx)
    try:
        async with client.get("/readyz") as r:
            body = await r.json()
    finally:
        await client.close()
    assert r.status == 503 and body["ready"] is False
    text = orjson.dumps(body).decode()
    assert "10.20.30.40" not in text and "Kafka" not in text and "Error" not in text, text
    assert body["reasons"][0] == "broker not reachable"
    assert any(x.startswith("board catching up") for x in body["reasons"]), body


async def test_an_ingest_token_with_a_reporter_id_posts_only_as_that_reporter(api):
    client, ctx = api
    r = await client.post("/api/v1/reports", json={**REPORT, "reporter_id": "W2"}, headers=_auth(BOUND))
    answer = await r.json()
    assert r.status == 403 and "W1" in answer["error"] and "W2" in answer["error"], answer
    assert ctx.producer.sent == []
    r = await client.post("/api/v1/reports", json={**REPORT, "reporter_id": "W1"}, headers=_auth(BOUND))
    assert r.status == 202
    r = await client.post("/api/v1/reports", json={**REPORT, "report_id": "R2", "reporter_id": "W9"},
                          headers=_auth(APP))  # an unbound token: any reporter, as before
    assert r.status == 202
    assert ctx.tokens.lookup(f"Bearer {BOUND}").reporter_id == "W1"


def test_a_reporter_id_on_a_token_that_cannot_post_reports_is_refused(tmp_path):
    f = tmp_path / "t.yaml"
    f.write_text("tokens:\n  - {name: d, role: responder, scope: g1, reporter_id: W1, sha256: "
                 + "a" * 64 + "}\n")
    with pytest.raises(ConfigError, match="only an ingest"):
        TokenBook.load(f)
    f.write_text("tokens:\n  - {name: a, role: ingest, reporter_id: W1, sha256: " + "a" * 64 + "}\n")
    assert TokenBook.load(f).lookup("Bearer x") is None and len(TokenBook.load(f)) == 1


async def test_live_streams_are_limited_per_token():
    ctx = _ctx(replace(Settings.from_env({}), streams_per_token=2))
    client = await _client(ctx)
    try:
        opened = []
        for _ in range(2):
            r = await client.get("/api/v1/stream", headers=_auth())
            assert r.status == 200
            await r.content.readuntil(b"\n\n")
            opened.append(r)
        r = await client.get("/api/v1/stream", headers=_auth())
        answer = await r.json()
        assert r.status == 429 and "2 live streams" in answer["error"] and r.headers["Retry-After"]
        other = await client.get("/api/v1/stream", headers=_auth(DUTY))  # another token: its own limit
        assert other.status == 200
        other.close()
        for sub in list(ctx.board.subscribers):  # the streams end (as at shutdown)
            sub.queue.put_nowait(None)
        for r in opened:
            await r.read()
        for _ in range(50):
            if not ctx.streams:
                break
            await asyncio.sleep(0.02)
        assert ctx.streams == {}
        again = await client.get("/api/v1/stream", headers=_auth())
        assert again.status == 200
        again.close()
    finally:
        await client.close()


async def test_commands_are_rate_limited_per_token():
    ctx = _ctx()
    now = [0.0]
    ctx.command_rate = TokenBucket(1.0, 3, clock=lambda: now[0])
    client = await _client(ctx)
    try:
        statuses = []
        for i in range(4):
            r = await client.post(CMD_PATH, json={"action": "comment", "reason": f"n{i}"}, headers=_auth())
            statuses.append(r.status)
        assert statuses == [202, 202, 202, 429]
        assert int(r.headers["Retry-After"]) >= 1 and "slow down" in (await r.json())["error"]
        r = await client.post(CMD_PATH, json={"action": "comment", "reason": "x"}, headers=_auth(DUTY))
        assert r.status == 202  # per token
        now[0] = 1.0
        r = await client.post(CMD_PATH, json={"action": "comment", "reason": "later"}, headers=_auth())
        assert r.status == 202
    finally:
        await client.close()
    tuned = Settings.from_env({"GRIDWATCH_COMMAND_RATE": "5", "GRIDWATCH_COMMAND_BURST": "9"})
    assert (tuned.command_rate, tuned.command_burst) == (5.0, 9)


async def test_merge_into_is_an_allowed_command_field_for_a_merge_only(api):
    client, ctx = api
    r = await client.post(CMD_PATH, json={"action": "merge", "reason": "dup", "merge_into": "g1~y~1"},
                          headers=_auth())
    assert r.status == 202, await r.text()
    assert ctx.producer.sent[-1][1]["data"]["merge_into"] == "g1~y~1"
    r = await client.post(CMD_PATH, json={"action": "comment", "reason": "x", "merge_into": "g1~y~1"},
                          headers=_auth())
    assert r.status == 400 and "merge_into" in (await r.json())["error"]
    r = await client.post(CMD_PATH, json={"action": "merge", "reason": "dup", "merge_into": "g" * 129},
                          headers=_auth())
    assert r.status == 400 and "merge_into" in (await r.json())["error"]
    assert INC in ctx.board.incidents


def test_token_new_binds_an_ingest_token_to_a_reporter(tmp_path):
    from click.testing import CliRunner

    from ops.cli import main

    r = CliRunner().invoke(main, ["token", "new", "--name", "app-w1", "--role", "ingest",
                                  "--reporter-id", "W1"])
    assert r.exit_code == 0, r.output
    token = r.stderr.split("(shown once): ")[1].strip()
    (tmp_path / "t.yaml").write_text("tokens:\n" + r.stdout)
    assert TokenBook.load(tmp_path / "t.yaml").lookup(f"Bearer {token}").reporter_id == "W1"
    r = CliRunner().invoke(main, ["token", "new", "--name", "d", "--role", "responder", "--scope", "g1",
                                  "--reporter-id", "W1"])
    assert r.exit_code != 0 and "only an ingest" in r.output


async def test_an_ingest_token_bound_to_a_unit_posts_only_reports_located_inside_it():
    """Round 1: ingest tokens accepted a `scope` that was ignored."""
    import time as _time

    from aiohttp.test_utils import TestClient, TestServer

    from pipeline.envelope import iso_ms as _iso
    from pipeline.web.auth import TokenBook, TokenEntry, hash_token
    from pipeline.web.grids import GridShapes
    from pipeline.web.server import build_app
    from tests.unit.geo.layers_fixtures import two_by_two
    from tests.unit.web.test_http_hostile import REPORT, _context

    ctx = _context()
    ctx.tokens = TokenBook([TokenEntry(name="app-g1", sha256=hash_token("tok-app-g1-0123456789"),
                                       role="ingest", scope="g1")])
    ctx.shapes = GridShapes(two_by_two())
    app = build_app(ctx)
    app.on_startup.clear()
    auth = {"Authorization": "Bearer tok-app-g1-0123456789"}
    now = _iso(ctx.clock()) if callable(ctx.clock) else _iso(int(_time.time() * 1000))
    async with TestClient(TestServer(app)) as client:
        inside = await client.post("/api/v1/reports", json={**REPORT, "observed_at": now}, headers=auth)
        assert inside.status == 202, await inside.text()
        for lon, lat in ((1.5, 1.5), (5.0, 5.0)):  # g4; outside every grid
            r = await client.post("/api/v1/reports", headers=auth,
                                  json={**REPORT, "report_id": f"R{lon}", "lon": lon, "lat": lat,
                                        "observed_at": now})
            assert r.status == 403 and "reports for unit g1" in (await r.json())["error"]
    assert len(ctx.producer.sent) == 1
