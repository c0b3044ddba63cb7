"""Tokens, the intake rate limit, the board and the grid shapes, without a server or broker."""

from __future__ import annotations

import asyncio

import orjson
import pytest
import shapely
import yaml

from pipeline.errors import ConfigError
from pipeline.web.auth import Principal, TokenBook, TokenEntry, hash_token, new_token
from pipeline.web.board import Board, Subscriber
from pipeline.web.grids import GridShapes
from pipeline.web.server import OPENAPI, TokenBucket, build_app, context_from
from tests.unit.geo.layers_fixtures import two_by_two


def test_tokens_are_looked_up_by_hash_only(tmp_path):
    tok = new_token()
    assert len(tok) > 40 and new_token() != tok
    f = tmp_path / "t.yaml"
    f.write_text(f"tokens:\n  - {{name: duty-g1, role: responder, scope: g1, sha256: {hash_token(tok)}}}\n")
    book = TokenBook.load(f)
    assert tok not in f.read_text()
    assert book.lookup(f"Bearer {tok}") == Principal("duty-g1", "responder", "g1")
    for bad in (None, "", tok, f"Basic {tok}", "Bearer ", "Bearer wrong", "Bearer " + "x" * 10_000):
        assert book.lookup(bad) is None


@pytest.mark.parametrize("body, needle", [
    ("tokens:\n  - {name: a, role: responder, sha256: " + "a" * 64 + "}\n", "needs a scope"),
    ("tokens:\n  - {name: a, role: root, sha256: " + "a" * 64 + "}\n", "role"),
    ("tokens:\n  - {name: a, role: admin, sha256: secret}\n", "sha256"),
    ("tokens:\n  - {name: a, role: admin, sha256: " + "a" * 64 + "}\n  - {name: a, role: admin, sha256: "
     + "b" * 64 + "}\n", "unique"),
    ("tokens: [", "not valid YAML"),
    ("- a\n", "mapping"),
])
def test_bad_token_files_are_readable_errors(tmp_path, body, needle):
    f = tmp_path / "t.yaml"
    f.write_text(body)
    with pytest.raises(ConfigError, match=needle):
        TokenBook.load(f)
    with pytest.raises(ConfigError, match="no such"):
        TokenBook.load(tmp_path / "missing.yaml")


def test_scopes():
    center, duty, other = Principal("c", "command_center", None), Principal("d", "responder", "M"), \
        Principal("i", "ingest", None)
    path = ["C", "T", "M", "g1"]
    assert center.may_see(path) and duty.may_see(path) and not duty.may_see(["C", "T", "N", "g9"])
    assert not other.may_see(path)


def test_intake_bucket_with_an_injected_clock():
    now = [0.0]
    b = TokenBucket(rate=2.0, burst=3, clock=lambda: now[0])
    assert [b.take("a") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert b.take("a") == pytest.approx(0.5)
    assert b.take("b") == 0.0  # per principal
    now[0] = 0.5
    assert b.take("a") == 0.0 and b.take("a") > 0


def _inc(grid: str, state: str = "dispatched", sev: str = "high",
         opened: str = "2026-07-01T12:00:00Z", kind: str = "inactivity",
         category: str | None = None) -> bytes:
    data = {"incident_id": f"{grid}~x~1", "grid_id": grid, "path": ["C", "T", "M", grid], "state": state,
            "severity": sev, "level": "grid_worker", "kind": kind, "category": category, "opened_at": opened}
    return orjson.dumps({"id": "i", "data": data})


def test_board_keeps_state_filters_by_scope_and_survives_hostile_records():
    b = Board()
    for v in (b"{not json", b"[]", b'{"data": 5}', b'{"data": {}}', None):
        assert b.apply("incidents.v1", v) == []
    assert b.bad_records == 4
    b.apply("incidents.v1", _inc("g1"))
    b.apply("incidents.v1", _inc("g4", sev="critical", opened="2026-07-02T00:00:00Z"))
    b.apply("incidents.v1", _inc("g2", state="closed", kind="report_cluster", category="safety_hazard"))
    center, duty = Principal("c", "command_center", None), Principal("d", "responder", "g1")
    assert [i["grid_id"] for i in b.incidents_for(center)] == ["g4", "g1", "g2"]
    assert [i["grid_id"] for i in b.incidents_for(center, status="open")] == ["g4", "g1"]
    assert [i["grid_id"] for i in b.incidents_for(duty)] == ["g1"]
    assert [i["grid_id"] for i in b.incidents_for(center, since="2026-07-01T18:00:00.000Z")] == ["g4"]
    assert [i["grid_id"] for i in b.incidents_for(center, category="safety_hazard")] == ["g2"]
    assert [i["grid_id"] for i in b.incidents_for(center, kind="inactivity", severity="high")] == ["g1"]
    assert b.incidents_for(center, category="environment") == []
    worst = b.worst_by_grid(center)
    assert set(worst) == {"g1", "g4"} and worst["g4"]["severity"] == "critical"
    # an incident's timeline; a tombstone (the worker forgot an ended incident) removes both and
    # tells the stream
    for step in range(1, 120):
        b.apply("escalations.v1", orjson.dumps({"data": {"incident_id": "g2~x~1", "step": step}}))
    b.apply("escalations.v1", orjson.dumps({"data": {"incident_id": "g1~x~1", "step": 1}}))
    assert [e["step"] for e in b.timelines["g2~x~1"]] == list(range(20, 120))  # the last 100
    assert b.apply("incidents.v1", None, b"g2~x~1") == [("incident_removed", {"incident_id": "g2~x~1"},
                                                         ["C", "T", "M", "g2"])]
    assert "g2~x~1" not in b.incidents and b.apply("incidents.v1", None, b"g2~x~1") == []
    assert set(b.timelines) == {"g1~x~1"}
    ping = orjson.dumps({"data": {"source_type": "ping", "input": {}}})
    report = orjson.dumps({"data": {"source_type": "report", "grid_id": "g1", "path": ["C", "T", "M", "g1"],
                                    "input": {"report_id": "R1", "text": "<b>x</b>"}}}).replace(b", ", b",")
    assert b.apply("located.v1", ping) == [] and b.records["located.v1"] == 1
    (ev,) = b.apply("located.v1", report.replace(b'"source_type": "report"', b'"source_type":"report"'))
    assert ev[0] == "report" and ev[1]["text"] == "<b>x</b>"


def test_live_stream_fan_out_is_scoped_and_cuts_slow_clients():
    async def run() -> None:
        b = Board()
        center = Subscriber(Principal("c", "command_center", None))
        duty = Subscriber(Principal("d", "responder", "g1"))
        b.subscribers |= {center, duty}
        b.publish([("escalation", {"n": 1}, ["C", "T", "M", "g4"]),
                   ("escalation", {"n": 2}, ["C", "T", "M", "g1"])])
        assert center.queue.qsize() == 2 and duty.queue.qsize() == 1
        for i in range(1200):
            b.publish([("kpi", {"i": i}, ["M"])])
        assert center.dropped and center not in b.subscribers
    asyncio.run(run())


def test_grid_shapes_are_simplified_per_zoom_and_scoped():
    atlas = two_by_two()
    wiggly = shapely.Polygon([(x / 100, 0.002 * (x % 2)) for x in range(101)] + [(1, 1), (0, 1)])
    atlas.governance.loc[atlas.governance["id"] == "g1", "geometry"] = wiggly
    shapes = GridShapes(atlas)
    assert shapes.path_of("g1") == ("C", "T", "M", "g1") and shapes.path_of("nowhere") == ("nowhere",)
    everyone = Principal("a", "admin", None)
    coarse = orjson.loads(shapes.geojson(2, everyone))
    fine = orjson.loads(shapes.geojson(18, everyone))
    n = {z: len(next(f for f in fc["features"] if f["id"] == "g1")["geometry"]["coordinates"][0])
         for z, fc in ((2, coarse), (18, fine))}
    assert len(coarse["features"]) == 4 and n[2] < n[18]
    scoped = orjson.loads(shapes.geojson(10, Principal("d", "responder", "g3")))
    assert [f["id"] for f in scoped["features"]] == ["g3"]


def test_every_route_is_in_the_openapi_file_and_needs_a_token_but_health(tmp_path):
    from pipeline.settings import Settings

    app = build_app(context_from(Settings.from_env({}), TokenBook([])))
    doc = yaml.safe_load(OPENAPI.read_text())
    routes = {r.resource.canonical for r in app.router.routes() if r.resource is not None}
    api = {r for r in routes if r.startswith(("/api/v1", "/metrics", "/healthz", "/readyz"))}
    assert api <= set(doc["paths"]), api - set(doc["paths"])
    ops = [(p, op) for p, item in doc["paths"].items() for op in item.values() if isinstance(op, dict)]
    public = {p for p, op in ops if op.get("security") == [] and not op.get("x-signed-link")}
    assert public == {"/healthz", "/readyz"}
    assert {p for p, op in ops if op.get("x-signed-link")} == {"/api/v1/act/{token}"}
    assert TokenEntry(name="x", sha256="a" * 64, role="admin").scope is None


@pytest.mark.parametrize("args, env, needle", [
    (["web"], {}, "GRIDWATCH_TOKENS is not set"),
    (["web", "--tokens", "/nonexistent/tokens.yaml"], {}, "no such tokens file"),
    (["web", "--port", "0"], {}, "0"),
    (["token", "new", "--name", "bad name!", "--role", "admin"], {}, "name"),
    (["token", "new", "--name", "x", "--role", "root"], {}, "root"),
])
def test_web_cli_refuses_bad_input_readably(args, env, needle):
    from click.testing import CliRunner

    from ops.cli import main

    r = CliRunner().invoke(main, args, env={"GRIDWATCH_TOKENS": "", **env})
    assert r.exit_code != 0 and needle in r.output and "Traceback" not in r.output, r.output


def test_token_new_prints_a_line_the_tokens_file_accepts(tmp_path):
    from click.testing import CliRunner

    from ops.cli import main

    r = CliRunner().invoke(main, ["token", "new", "--name", "duty-g1", "--role", "responder",
                                  "--scope", "g1"])
    assert r.exit_code == 0
    token = r.stderr.split("(shown once): ")[1].strip()
    (tmp_path / "t.yaml").write_text("tokens:\n" + r.stdout)
    book = TokenBook.load(tmp_path / "t.yaml")
    assert book.lookup(f"Bearer {token}") == Principal("duty-g1", "responder", "g1")


def test_writes_while_the_broker_is_unreachable_get_503_with_a_reason():
    from aiohttp.test_utils import TestClient, TestServer

    from pipeline.envelope import iso_ms
    from pipeline.settings import Settings
    from pipeline.web.server import wall_clock

    tok = new_token()
    book = TokenBook([TokenEntry(name="a", sha256=hash_token(tok), role="admin")])
    ctx = context_from(Settings.from_env({}, broker="127.0.0.1:1"), book)  # nothing listens there
    report = {"report_id": "R1", "reporter_id": "W1", "category": "safety_hazard", "severity": "low",
              "text": "x", "lon": 0.5, "lat": 0.5, "observed_at": iso_ms(wall_clock())}  # the API's clock

    async def run() -> tuple[int, dict, int]:
        async with TestClient(TestServer(build_app(ctx))) as client:
            r = await client.post("/api/v1/reports", json=report, headers={"Authorization": f"Bearer {tok}"})
            body = await r.json()
            ready = await client.get("/readyz")
            return r.status, body, ready.status

    status, body, ready = asyncio.run(run())
    assert status == 503 and "not reachable" in body["error"]
    assert ready == 503
