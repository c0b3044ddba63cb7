"""The HTTP API against hostile or clumsy clients, on a real aiohttp server with a fake producer.

Raw sockets send what a well-behaved client library would not: undecodable header bytes, a body
in two writes, chunked bodies over the limit. Nothing here may answer 500.
"""

from __future__ import annotations

import asyncio
import random
import re
from typing import Any

import orjson
import pytest
import yaml
from aiohttp.test_utils import TestClient, TestServer

from pipeline.envelope import iso_ms, parse_time
from pipeline.settings import Settings
from pipeline.web.auth import TokenBook, TokenEntry, hash_token
from pipeline.web.board import Board
from pipeline.web.grids import GridShapes
from pipeline.web.metrics import Metrics
from pipeline.web.server import (
    COMMAND_BODY,
    MAX_BODY,
    OPENAPI,
    RecentKeys,
    TokenBucket,
    WebContext,
    build_app,
)

NOW = int(parse_time("2026-07-01T12:00:00Z", "now").timestamp() * 1000)
ADMIN, DUTY, APP = "gw_admin-token", "gw_duty-token", "gw_app-token"
INC = "g1~x~1"
CMD_PATH = f"/api/v1/incidents/{INC}/commands"
REPORT = {"report_id": "R1", "reporter_id": "W1", "category": "safety_hazard", "severity": "low",
          "text": "围墙开裂", "lon": 0.5, "lat": 0.5, "observed_at": "2026-07-01T11:59:00Z"}


class FakeProducer:
    def __init__(self) -> None:
        self.sent: list[tuple[str, dict, bytes, int]] = []

    async def send_and_wait(self, topic: str, value: bytes, key: bytes, timestamp_ms: int,
                            headers: list | None = None) -> None:
        self.sent.append((topic, orjson.loads(value), key, timestamp_ms))

    async def stop(self) -> None:
        pass


def _context(settings: Settings | None = None) -> WebContext:
    book = TokenBook([TokenEntry(name="admin", sha256=hash_token(ADMIN), role="admin"),
                      TokenEntry(name="duty-g1", sha256=hash_token(DUTY), role="responder", scope="g1"),
                      TokenEntry(name="app", sha256=hash_token(APP), role="ingest")])
    board = Board()
    data = {"incident_id": INC, "grid_id": "g1", "path": ["C", "T", "M", "g1"], "state": "dispatched",
            "severity": "high", "level": "grid_worker", "kind": "inactivity",
            "opened_at": "2026-07-01T11:00:00Z"}
    board.apply("incidents.v1", orjson.dumps({"id": "i", "data": data}))
    return WebContext(settings or Settings.from_env({}), book, board, GridShapes(None), Metrics(),
                      TokenBucket(1000.0, 1000), lambda: NOW, producer=FakeProducer(),
                      command_rate=TokenBucket(1000.0, 1000))


@pytest.fixture
async def api():
    ctx = _context()
    app = build_app(ctx)
    app.on_startup.clear()  # no broker: no follower, no topic checks
    async with TestClient(TestServer(app)) as client:
        yield client, ctx


def _auth(token: str = ADMIN, **extra: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", **extra}


async def _raw(client: TestClient, chunks: list[bytes], gap_s: float = 0.0) -> tuple[int, dict | bytes]:
    """Send `chunks` as separate socket writes `gap_s` apart; the status and (JSON) body."""
    reader, writer = await asyncio.open_connection(client.server.host, client.server.port)
    try:
        for i, chunk in enumerate(chunks):
            if i and gap_s:
                await asyncio.sleep(gap_s)
            writer.write(chunk)
            await writer.drain()
        data = await asyncio.wait_for(reader.read(), 10)  # Connection: close -> until EOF
    finally:
        writer.close()
    head, _, body = data.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    try:
        return status, orjson.loads(body)
    except orjson.JSONDecodeError:
        return status, body


def _request(method: str, path: str, headers: dict[str, bytes | str], body: bytes = b"") -> bytes:
    lines = [f"{method} {path} HTTP/1.1".encode(), b"Host: localhost", b"Connection: close"]
    lines += [k.encode() + b": " + (v.encode() if isinstance(v, str) else v) for k, v in headers.items()]
    if body:
        lines += [b"Content-Type: application/json", f"Content-Length: {len(body)}".encode()]
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


# 1. header bytes

@pytest.mark.parametrize("value", [
    b"Bearer \xff\xfe\xfd", b"Bearer \xe4\xb8\xad\xe6\x96\x87", b"Bearer gw_\xe9t\xe9", b"Bearer \x80",
    b"\xff\xfe Bearer", b"Bearer " + bytes(range(0x80, 0x100)),
])
async def test_bearer_with_non_ascii_bytes_is_401_not_500(api, value):
    client, _ = api
    for method, path, body in (("GET", "/api/v1/me", b""), ("GET", "/api/v1/incidents", b""),
                               ("POST", CMD_PATH, b'{"action": "comment", "reason": "x"}')):
        status, answer = await _raw(client, [_request(method, path, {"Authorization": value}, body)])
        assert status == 401, (path, value, answer)
        assert "bearer token" in answer["error"]


async def test_any_bytes_in_any_header_is_never_a_500(api):
    client, _ = api
    rng = random.Random(7)
    values = [bytes(rng.randrange(0x80, 0x100) for _ in range(rng.randrange(1, 40))) for _ in range(12)]
    values += [b"\xe4\xb8\xad" * 30, b"x" * 300, b"\xc3\x28", b"\xed\xa0\x80"]  # bad UTF-8, a surrogate
    body = b'{"action": "comment", "reason": "x"}'
    for value in values:
        for name in ("Idempotency-Key", "Content-Type", "Accept", "X-Anything", "Authorization"):
            sent = b"Bearer " + value if name == "Authorization" else value
            headers: dict[str, bytes | str] = {"Authorization": f"Bearer {ADMIN}", name: sent}
            status, answer = await _raw(client, [_request("POST", CMD_PATH, headers, body)])
            assert status in (202, 400, 401), (name, value, status, answer)
            if status == 401 or name == "Idempotency-Key":
                assert status in (400, 401) and answer["status"] == status
    for raw in (b"X-\xff\xfe: v", b"\xe4\xb8\xad: v", b"X-A: a\x00b", b"X-A: a\x01b", b"X-A: \xff\r"):
        req = _request("POST", CMD_PATH, {"Authorization": f"Bearer {ADMIN}"}, body)
        status, answer = await _raw(client, [req.replace(b"Host:", raw + b"\r\nHost:", 1)])
        assert status in (202, 400), (raw, status, answer)
    for path in ("/api/v1/incidents/%ff%fe", "/api/v1/kpis?unit=%ff%fe", "/api/v1/incidents?unit=%ed%a0%80"):
        r = await client.get(path, headers=_auth(DUTY))
        assert r.status in (200, 403, 404), (path, await r.text())


async def test_an_expect_or_content_encoding_header_with_any_bytes_is_never_a_500(api):
    client, _ = api
    body = b'{"action": "comment", "reason": "x"}'
    for path in (CMD_PATH, "/nope", "/healthz", "/static/app.js"):
        for name, value in (("Expect", b"\xff\xfe"), ("Expect", b"100-continue\xff"), ("Expect", b"gzip"),
                            ("Content-Encoding", b"gzip"), ("Content-Encoding", b"deflate"),
                            ("Content-Encoding", b"\xff\xfe"), ("Content-Encoding", b"br")):
            headers: dict[str, bytes | str] = {"Authorization": f"Bearer {ADMIN}", name: value}
            status, answer = await _raw(client, [_request("POST", path, headers, body)])
            assert 400 <= status < 500 or status == 202, (path, name, value, status, answer)
            if name == "Expect":
                assert status == 417 and "100-continue" in answer["error"], answer
    status, answer = await _raw(client, [_request("POST", CMD_PATH, {"Authorization": f"Bearer {ADMIN}",
                                                                      "Expect": "100-continue"}, body)])
    assert status == 100 and b" 202 Accepted" in answer  # then the answer itself
    r = await client.post(CMD_PATH, data=b"\x1f\x8b not gzip", headers=_auth(**{"Content-Encoding": "gzip"}))
    assert r.status == 400 and "content-encoding" in (await r.json())["error"]


async def test_unknown_routes_and_methods_answer_readable_404_and_405(api):
    client, _ = api
    r = await client.get("/nope/\u4e2d", headers={"Expect": "100-continue"})
    assert r.status == 404 and "no such route" in (await r.json())["error"]
    r = await client.post("/healthz")
    assert r.status == 405 and r.headers["Allow"] == "GET, HEAD" and "GET" in (await r.json())["error"]
    assert (await client.get("/static/app.js")).status == 200
    assert (await client.get("/static/nope.js")).status == 404


# 2. types before use

@pytest.mark.parametrize("field, value", [
    (f, v) for f in ("action", "reason", "assignee", "command_id")
    for v in (["comment"], 5, 1.5, {"a": 1}, None, True)
])
async def test_wrong_json_types_in_a_command_are_400_naming_the_field(api, field, value):
    client, ctx = api
    body: dict[str, Any] = {"action": "comment", "reason": "x", field: value}
    r = await client.post(CMD_PATH, json=body, headers=_auth())
    answer = await r.json()
    assert r.status == 400 and field in answer["error"], (field, value, answer)
    assert ctx.producer.sent == []


@pytest.mark.parametrize("field", ["incident_id", "at", "actor", "scope", "colour"])
async def test_unknown_or_server_set_fields_in_a_command_are_400_naming_them(api, field):
    client, ctx = api
    for value in ("x", 5, None, ["x"], {"x": 1}):
        r = await client.post(CMD_PATH, json={"action": "comment", "reason": "x", field: value},
                              headers=_auth())
        answer = await r.json()
        assert r.status == 400 and field in answer["error"], (field, value, answer)
    assert ctx.producer.sent == []


@pytest.mark.parametrize("field", [*sorted(REPORT), "media", "crs"])
async def test_wrong_json_types_in_a_report_are_400_naming_the_field(api, field):
    client, ctx = api
    for value in (["x"], {"a": 1}, None, True) + (() if field in ("lon", "lat") else (5,)):
        r = await client.post("/api/v1/reports", json={**REPORT, field: value}, headers=_auth(APP))
        answer = await r.json()
        assert r.status == 400 and field in answer["error"], (field, value, answer)
    assert ctx.producer.sent == []


@pytest.mark.parametrize("raw", [b"", b"null", b"[]", b'"x"', b"5", b"{", b'{"action": "\\ud800"}',
                                 b"\xff\xfe", b'{"action": 1e999}', b"[" * 5000 + b"]" * 5000])
async def test_bodies_that_are_not_a_json_object_are_400(api, raw):
    client, _ = api
    for path, token in ((CMD_PATH, ADMIN), ("/api/v1/reports", APP)):
        r = await client.post(path, data=raw, headers=_auth(token, **{"Content-Type": "application/json"}))
        assert r.status == 400, (path, raw[:20], await r.text())
        assert (await r.json())["status"] == 400


async def test_unknown_fields_in_a_report_are_400_naming_them(api):
    client, ctx = api
    r = await client.post("/api/v1/reports", json={**REPORT, "colour": "red", "at": 1}, headers=_auth(APP))
    answer = await r.json()
    assert r.status == 400 and "at, colour" in answer["error"] and "observed_at" in answer["error"], answer
    assert ctx.producer.sent == []


async def test_the_rate_limit_answers_429_with_retry_after(api):
    client, ctx = api
    ctx.intake = TokenBucket(rate=0.1, burst=1)
    assert (await client.post("/api/v1/reports", json=REPORT, headers=_auth(APP))).status == 202
    r = await client.post("/api/v1/reports", json=REPORT, headers=_auth(APP))
    answer = await r.json()
    assert r.status == 429 and int(r.headers["Retry-After"]) >= 1 and "slow down" in answer["error"]
    assert answer["retry_after_s"] > 0


# 3. bodies read whole, with a limit

async def test_a_body_in_two_writes_half_a_second_apart_is_read_whole(api):
    client, ctx = api
    for path, token, body in ((CMD_PATH, ADMIN, orjson.dumps({"action": "comment", "reason": "ok " * 50})),
                              ("/api/v1/reports", APP, orjson.dumps(REPORT))):
        req = _request("POST", path, {"Authorization": f"Bearer {token}"}, body)
        cut = len(req) - len(body) // 2
        status, answer = await _raw(client, [req[:cut], req[cut:]], gap_s=0.5)
        assert status == 202, (path, answer)
    assert [t for t, *_ in ctx.producer.sent] == [ctx.settings.topic("commands.v1"),
                                                  ctx.settings.topic("reports.v1")]


async def test_a_19_kB_report_in_pieces_is_accepted(api):
    client, ctx = api
    report = {**REPORT, "text": "围墙开裂" * 1000,
              "media": [f"https://media.example/{i}/" + "a" * 1900 for i in range(4)]}
    body = orjson.dumps(report)
    assert 18_000 < len(body) < MAX_BODY
    req = _request("POST", "/api/v1/reports", {"Authorization": f"Bearer {APP}"}, body)
    status, answer = await _raw(client, [req[i:i + 4096] for i in range(0, len(req), 4096)], gap_s=0.05)
    assert status == 202, answer
    assert ctx.producer.sent[0][1]["data"] == report


async def test_an_oversized_body_is_413_with_or_without_a_content_length(api):
    client, ctx = api
    big = orjson.dumps({**REPORT, "text": "x" * (MAX_BODY + 10)})
    r = await client.post("/api/v1/reports", data=big, headers=_auth(APP))
    assert r.status == 413 and "limit" in (await r.json())["error"]

    def chunked() -> bytes:
        head = (b"POST /api/v1/reports HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"
                b"Authorization: Bearer " + APP.encode() + b"\r\nTransfer-Encoding: chunked\r\n\r\n")
        parts = [big[i:i + 8192] for i in range(0, len(big), 8192)]
        return head + b"".join(b"%x\r\n" % len(p) + p + b"\r\n" for p in parts) + b"0\r\n\r\n"

    status, answer = await _raw(client, [chunked()])
    assert status == 413 and "limit" in answer["error"], answer
    exactly = orjson.dumps({**REPORT, "text": "x" * 10})
    r = await client.post("/api/v1/reports", data=exactly, headers=_auth(APP))
    assert r.status == 202
    assert len(ctx.producer.sent) == 1


# 4. idempotency keys

async def test_an_idempotency_key_reused_with_a_different_body_is_422(api):
    client, ctx = api
    same = {"action": "comment", "reason": "checked the wall"}
    for _ in range(2):  # a retry of the same command stays the same command
        r = await client.post(CMD_PATH, json=same, headers=_auth(**{"Idempotency-Key": "k-1"}))
        assert r.status == 202 and (await r.json())["accepted"] == "k-1"
    r = await client.post(CMD_PATH, json={**same, "reason": "something else"},
                          headers=_auth(**{"Idempotency-Key": "k-1"}))
    answer = await r.json()
    assert r.status == 422 and "k-1" in answer["error"] and "different" in answer["error"], answer
    r = await client.post(CMD_PATH, json={**same, "command_id": "c-1"}, headers=_auth())
    assert r.status == 202
    r = await client.post(CMD_PATH, json={"action": "assign", "command_id": "c-1"}, headers=_auth())
    assert r.status == 422 and "c-1" in (await r.json())["error"]
    r = await client.post(CMD_PATH, json={**same, "command_id": "c-2"},
                          headers=_auth(**{"Idempotency-Key": "k-2"}))
    assert r.status == 400 and "Idempotency-Key" in (await r.json())["error"]
    assert [s[1]["data"]["command_id"] for s in ctx.producer.sent] == ["k-1", "k-1", "c-1"]
    # a retry after the board shows its effect is still the same command; a new one is a 409
    ack = {"action": "acknowledge"}
    assert (await client.post(CMD_PATH, json=ack, headers=_auth(**{"Idempotency-Key": "a-1"}))).status == 202
    ctx.board.incidents[INC]["state"] = "acknowledged"
    assert (await client.post(CMD_PATH, json=ack, headers=_auth(**{"Idempotency-Key": "a-1"}))).status == 202
    r = await client.post(CMD_PATH, json=ack, headers=_auth(**{"Idempotency-Key": "a-2"}))
    assert r.status == 409 and "acknowledged" in (await r.json())["error"]
    r = await client.post(CMD_PATH, json=ack, headers=_auth(**{"Idempotency-Key": "a-2"}))
    assert r.status == 409  # a refused command's key was not taken


def test_the_idempotency_memory_is_bounded():
    keys = RecentKeys(limit=3)
    assert keys.claim("a", b"1") and keys.claim("a", b"1") and not keys.claim("a", b"2")
    for k in ("b", "c", "d"):
        assert keys.claim(k, b"x")
    assert len(keys) == 3 and keys.claim("a", b"2")  # "a" was the oldest: forgotten
    assert RecentKeys().limit >= 10_000


# 5. what the worker would refuse

@pytest.mark.parametrize("action", ["cancel", "merge"])
async def test_a_command_the_worker_would_refuse_for_want_of_a_reason_is_400(api, action):
    client, ctx = api
    for body in ({"action": action}, {"action": action, "reason": ""}):
        r = await client.post(CMD_PATH, json=body, headers=_auth())
        answer = await r.json()
        assert r.status == 400 and "reason" in answer["error"], answer
    r = await client.post(CMD_PATH, json={"action": action, "reason": "a false alarm"}, headers=_auth())
    assert r.status == 202
    cmd = ctx.producer.sent[0][1]["data"]
    assert (cmd["action"], cmd["reason"], cmd["at"]) == (action, "a false alarm", iso_ms(NOW))


async def test_a_report_observed_too_far_from_the_server_clock_or_without_an_offset_is_400(api):
    client, ctx = api
    s = ctx.settings
    cases = [(iso_ms(NOW + (s.max_future_s + 60) * 1000), "future"),
             (iso_ms(NOW - (s.max_past_s + 60) * 1000), "past"),
             ("2026-07-01T11:59:00", "UTC offset"), ("2026-07-01 11:59", "UTC offset"),
             ("soon", "ISO 8601")]
    for observed, needle in cases:
        r = await client.post("/api/v1/reports", json={**REPORT, "observed_at": observed}, headers=_auth(APP))
        answer = await r.json()
        assert r.status == 400 and "observed_at" in answer["error"] and needle in answer["error"], answer
    assert ctx.producer.sent == []
    for observed in (iso_ms(NOW + (s.max_future_s - 60) * 1000), iso_ms(NOW - (s.max_past_s - 60) * 1000),
                     "2026-07-01T20:00:00+08:00"):
        r = await client.post("/api/v1/reports", json={**REPORT, "observed_at": observed}, headers=_auth(APP))
        assert r.status == 202, (observed, await r.text())


async def test_a_command_that_passes_the_api_passes_the_workers_schema(api):
    from pipeline.incident.wiring import decode_command

    client, ctx = api
    for body in ({"action": "acknowledge"}, {"action": "assign", "assignee": "duty-g2"},
                 {"action": "comment", "reason": "围墙开裂 <b>x</b>", "command_id": "c.1:a-b_2"}):
        r = await client.post(CMD_PATH, json=body, headers=_auth(DUTY))
        assert r.status == 202, await r.text()
    for _, ev, _, _ in ctx.producer.sent:
        decode_command(orjson.dumps(ev), 1 << 20)  # raises Rejected if the worker would refuse it


# 6. the OpenAPI document

def _nulls(node: Any, where: str = "") -> list[str]:
    """Places holding null: a plain flow-map scalar with a comma splits into a key without value."""
    if node is None:
        return [where]
    if isinstance(node, dict):
        return [w for k, v in node.items() for w in _nulls(v, f"{where}/{k}")]
    if isinstance(node, list):
        return [w for i, v in enumerate(node) for w in _nulls(v, f"{where}[{i}]")]
    return []


def test_the_openapi_document_lists_the_errors_each_route_can_answer():
    doc = yaml.safe_load(OPENAPI.read_text())
    assert _nulls(doc) == []
    refs = re.findall(r'\$ref: "#/([^"]+)"', OPENAPI.read_text())
    assert refs
    for ref in refs:  # every local reference resolves
        node = doc
        for part in ref.split("/"):
            node = node[part]
    assert set(doc["components"]["schemas"]["Command"]["properties"]) == set(COMMAND_BODY)
    ops = {(path, method): op for path, item in doc["paths"].items() for method, op in item.items()}
    for (path, method), op in ops.items():
        codes = set(op["responses"])
        assert set(op) <= {"summary", "description", "parameters", "requestBody", "responses", "security",
                           "x-signed-link"}
        assert all(isinstance(c, str) and c.isdigit() for c in codes), (path, codes)
        if path in ("/healthz", "/readyz"):
            assert "401" not in codes
            continue
        if op.get("x-signed-link"):  # the link is the credential: forged 403, expired 410
            assert {"403", "410"} <= codes and "401" not in codes, (path, codes)
            continue
        assert "401" in codes, (path, method)
        if method == "post":
            assert {"400", "413", "503"} <= codes, (path, codes)
    command = ops["/api/v1/incidents/{incident_id}/commands", "post"]
    assert {"403", "404", "409", "422"} <= set(command["responses"])
    assert "429" in ops["/api/v1/reports", "post"]["responses"]
    assert "503" in ops["/readyz", "get"]["responses"]
    for path in ("/api/v1/incidents", "/api/v1/grids"):
        assert "400" in ops[path, "get"]["responses"]
    assert "404" in ops["/api/v1/incidents/{incident_id}", "get"]["responses"]
