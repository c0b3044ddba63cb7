"""The HTTP API as a real server (`gridwatch web`) on the embedded broker: roles and scopes,
bad bodies, the intake rate limit, the live stream's latency, /metrics parsed by
prometheus-client."""

from __future__ import annotations

import http.client
import itertools
import json
import os
import socket
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest
from kafka import KafkaConsumer, KafkaProducer
from prometheus_client.parser import text_string_to_metric_families

from pipeline.envelope import iso_ms, make_event
from pipeline.settings import Settings
from pipeline.web.auth import hash_token
from tests.integration.conftest import REPO, engine_env
from topics.admin import create

pytestmark = [pytest.mark.integration, pytest.mark.engines]
_runs = itertools.count()
TOKENS = {"admin": "tok-admin-0123456789", "center": "tok-center-0123456789",
          "duty-g1": "tok-duty-g1-0123456789", "app": "tok-ingest-0123456789"}
ROLES = {"admin": ("admin", None), "center": ("command_center", None), "duty-g1": ("responder", "g1"),
         "app": ("ingest", None)}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def incident(grid: str, state: str = "dispatched", sev: str = "high") -> dict:
    return {"incident_id": f"{grid}~inactivity:s-{grid}~1", "dedup_key": f"inactivity:s-{grid}",
            "kind": "inactivity", "severity": sev, "grid_id": grid, "path": ["C", "T", "M", grid],
            "state": state, "level": "grid_worker", "unit": grid, "rule": "care",
            "opened_at": "2026-07-01T12:00:00.000Z", "deadlines": {"acknowledge": "2026-07-01T12:15:00.000Z",
                                                                  "resolve": "2026-07-01T14:00:00.000Z"},
            "breaches": [], "loud": False, "step": 2, "alert_ids": []}


class Api:
    def __init__(self, port: int) -> None:
        self.port = port

    def wait_ready(self, log: Path, timeout_s: float = 60) -> None:
        """Until /readyz says 200 (the server's log in the failure message)."""
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                if self.call("GET", "/readyz")[0] == 200:
                    return
            except OSError:
                pass
            assert time.monotonic() < deadline, log.read_text()[-2000:]
            time.sleep(0.3)

    def call(self, method: str, path: str, who: str | None = None, body: object = None,
             raw: bytes | None = None, headers: dict | None = None) -> tuple[int, dict | str, dict]:
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        h = dict(headers or {})
        if who:
            h["Authorization"] = f"Bearer {TOKENS[who]}"
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        if data is not None:
            h.setdefault("Content-Type", "application/json")
        c.request(method, path, body=data, headers=h)
        r = c.getresponse()
        text = r.read().decode()
        c.close()
        try:
            return r.status, json.loads(text), dict(r.getheaders())
        except json.JSONDecodeError:
            return r.status, text, dict(r.getheaders())


class Stream(threading.Thread):
    """An SSE client in a thread: events with the time they arrived."""

    def __init__(self, port: int, who: str) -> None:
        super().__init__(daemon=True)
        self.port, self.who = port, who
        self.events: list[tuple[float, str, dict]] = []
        self.hello = threading.Event()

    def run(self) -> None:
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        c.request("GET", "/api/v1/stream", headers={"Authorization": f"Bearer {TOKENS[self.who]}"})
        r = c.getresponse()
        name = None
        while True:
            raw = r.readline()  # de-chunked by http.client
            if not raw:
                return
            line = raw.decode().rstrip("\r\n")
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: "):
                if name == "hello":
                    self.hello.set()
                else:
                    self.events.append((time.monotonic(), name or "", json.loads(line[6:])))


@pytest.fixture
def server(broker, atlas_file, tmp_path):
    s = Settings.from_env({}, broker=broker.bootstrap, topic_prefix=f"web{next(_runs)}.{os.getpid()}.",
                          embedded=broker.embedded)
    create(s)
    lines = ["tokens:"] + [f"  - {{name: {n}, role: {ROLES[n][0]}, sha256: {hash_token(t)}"
                           + (f", scope: {ROLES[n][1]}}}" if ROLES[n][1] else "}") for n, t in TOKENS.items()]
    (tmp_path / "tokens.yaml").write_text("\n".join(lines) + "\n")
    prod = KafkaProducer(bootstrap_servers=broker.bootstrap)
    for grid, state in (("g1", "dispatched"), ("g4", "dispatched"), ("g2", "closed")):
        inc = incident(grid, state)
        prod.send(s.topic("incidents.v1"), key=inc["incident_id"].encode(),
                  value=orjson.dumps(make_event("gridwatch.incident.v1", inc["incident_id"] + "@2",
                                                inc["opened_at"], inc)))
    for unit in ("g1", "g4", "M"):
        prod.send(s.topic("kpis.v1"), key=unit.encode(),
                  value=orjson.dumps(make_event("gridwatch.kpi.v1", f"kpi:{unit}", "2026-07-01T12:00:00Z",
                                                {"unit": unit, "opened": 1})))
    prod.send(s.topic("dlq.v1"), key=b"reports.v1",
              value=orjson.dumps(make_event("gridwatch.dlq.v1", "d1", "2026-07-01T12:00:00Z",
                                            {"code": "not_json", "reason": "x", "source": {}})))
    prod.flush()
    port = free_port()
    env = dict(os.environ, **engine_env(s), GRIDWATCH_BROKER=broker.bootstrap,
               GRIDWATCH_TOPIC_PREFIX=s.topic_prefix, GRIDWATCH_ATLAS=atlas_file,
               GRIDWATCH_TOKENS=str(tmp_path / "tokens.yaml"), GRIDWATCH_WEB_PORT=str(port),
               GRIDWATCH_INTAKE_RATE="0.2", GRIDWATCH_INTAKE_BURST="10")
    log = open(tmp_path / "web.log", "ab")
    proc = subprocess.Popen([sys.executable, "-m", "ops.cli", "web"], env=env, cwd=REPO, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)
    api = Api(port)
    api.wait_ready(tmp_path / "web.log")
    yield api, s, prod
    prod.close()
    proc.terminate()
    proc.wait(20)


def test_roles_and_scopes(server):
    api, s, _ = server
    assert api.call("GET", "/healthz")[0] == 200
    assert api.call("GET", "/api/v1/incidents")[0] == 401
    status, body, _ = api.call("GET", "/api/v1/incidents", headers={"Authorization": "Bearer nope"})
    assert status == 401 and "token" in body["error"]
    ids = {who: sorted(i["grid_id"] for i in api.call("GET", "/api/v1/incidents", who)[1]["incidents"])
           for who in ("admin", "center", "duty-g1")}
    assert ids == {"admin": ["g1", "g2", "g4"], "center": ["g1", "g2", "g4"], "duty-g1": ["g1"]}
    open_now = api.call("GET", "/api/v1/incidents?status=open", "center")[1]["incidents"]
    assert sorted(i["grid_id"] for i in open_now) == ["g1", "g4"]
    assert api.call("GET", "/api/v1/incidents?since=last-week", "center")[0] == 400
    status, body, _ = api.call("GET", "/api/v1/incidents", "app")
    assert status == 403 and "ingest" in body["error"]
    # a responder cannot see or act on another grid's incident, nor tell it from an unknown id
    assert api.call("GET", "/api/v1/incidents/g4~inactivity:s-g4~1", "duty-g1")[0] == 404
    status, body, _ = api.call("POST", "/api/v1/incidents/g4~inactivity:s-g4~1/commands", "duty-g1",
                               {"action": "acknowledge"})
    assert status == 404 and "no incident" in body["error"]
    assert api.call("GET", "/api/v1/incidents/g9~nothing~1", "admin")[0] == 404
    # its own: accepted onto commands.v1 with its name as actor and its unit as scope
    status, body, _ = api.call("POST", "/api/v1/incidents/g1~inactivity:s-g1~1/commands", "duty-g1",
                               {"action": "acknowledge"}, headers={"Idempotency-Key": "ack-1"})
    assert (status, body["accepted"]) == (202, "ack-1")
    status, body, _ = api.call("POST", "/api/v1/incidents/g2~inactivity:s-g2~1/commands", "center",
                               {"action": "acknowledge"})
    assert status == 409 and "closed" in body["error"]
    c = KafkaConsumer(s.topic("commands.v1"), bootstrap_servers=s.broker, auto_offset_reset="earliest",
                      consumer_timeout_ms=2000)
    (msg,) = list(c)
    c.close()
    cmd = orjson.loads(msg.value)["data"]
    assert (cmd["command_id"], cmd["actor"], cmd["scope"], cmd["action"]) == \
        ("ack-1", "duty-g1", "g1", "acknowledge")
    assert iso_ms(msg.timestamp) == cmd["at"]  # stamped with its own time: a replay orders by it
    # grids and KPIs follow the scope too
    assert len(api.call("GET", "/api/v1/grids?zoom=10", "admin")[1]["features"]) == 4
    assert [f["id"] for f in api.call("GET", "/api/v1/grids?zoom=10", "duty-g1")[1]["features"]] == ["g1"]
    assert set(api.call("GET", "/api/v1/kpis", "duty-g1")[1]["kpis"]) == {"g1"}
    assert set(api.call("GET", "/api/v1/kpis", "center")[1]["kpis"]) == {"g1", "g4", "M"}
    assert api.call("GET", "/api/v1/kpis?unit=g4", "duty-g1")[0] == 403
    me = api.call("GET", "/api/v1/me", "duty-g1")[1]
    assert (me["role"], me["scope"], me["may_act"]) == ("responder", "g1", True)


def test_intake_validation_size_and_rate_limit(server):
    api, s, _ = server
    good = {"report_id": "R-web-1", "reporter_id": "W1", "category": "safety_hazard", "severity": "medium",
            "text": "<script>alert(1)</script> 围墙开裂", "lon": 0.5, "lat": 0.5,
            "observed_at": datetime.now(UTC).isoformat(timespec="seconds")}  # the server's clock is the wall
    assert api.call("POST", "/api/v1/reports", "duty-g1", good)[0] == 403
    cases = [(b"{not json", 400, "not JSON"), (b"[1, 2]", 400, "JSON object"),
             (json.dumps({**good, "lat": 95}).encode(), 400, "lat"),
             (json.dumps({**good, "category": "ufo"}).encode(), 400, "category"),
             (json.dumps({**good, "observed_at": "yesterday"}).encode(), 400, "observed_at"),
             (json.dumps({**good, "text": "x" * 100_000}).encode(), 413, "limit")]
    for raw, code, needle in cases:
        status, body, _ = api.call("POST", "/api/v1/reports", "admin", raw=raw)
        assert status == code and needle in body["error"], (raw[:40], status, body)
    assert api.call("POST", "/api/v1/incidents/g1~inactivity:s-g1~1/commands", "admin",
                    {"action": "explode"})[0] == 400
    statuses = [api.call("POST", "/api/v1/reports", "app", {**good, "report_id": f"R-{i}"})
                for i in range(12)]
    assert [st for st, _, _ in statuses][:10] == [202] * 10  # the burst; invalid ones count too
    status, body, headers = statuses[10]
    assert status == 429 and int(headers["Retry-After"]) >= 1 and "slow down" in body["error"]
    c = KafkaConsumer(s.topic("reports.v1"), bootstrap_servers=s.broker, auto_offset_reset="earliest",
                      consumer_timeout_ms=2000)
    got = sorted(orjson.loads(m.value)["data"]["report_id"] for m in c)
    c.close()
    assert got == sorted(f"R-{i}" for i in range(10))  # rate-limited and invalid ones never got there


def test_live_stream_within_a_second_and_scoped_and_metrics(server):
    api, s, prod = server
    center, duty = Stream(api.port, "center"), Stream(api.port, "duty-g1")
    for st in (center, duty):
        st.start()
        assert st.hello.wait(10)
    delays = []
    for grid, step in (("g4", 3), ("g1", 3)):
        data = {"incident_id": f"{grid}~inactivity:s-{grid}~1", "step": step, "transition": "escalated",
                "level": "grid_leader", "to": [grid], "actor": None, "reason": None,
                "at": "2026-07-01T12:15:00.000Z", "kind": "inactivity", "severity": "high", "grid_id": grid,
                "path": ["C", "T", "M", grid]}
        ev = make_event("gridwatch.escalation.v1", f"{data['incident_id']}:{step}", data["at"], data)
        fut = prod.send(s.topic("escalations.v1"), key=data["incident_id"].encode(), value=orjson.dumps(ev))
        prod.flush()
        fut.get(10)
        landed = time.monotonic()
        deadline = landed + 5
        while not [e for e in center.events if e[1] == "escalation" and e[2]["grid_id"] == grid]:
            assert time.monotonic() < deadline, "the escalation did not reach the stream"
            time.sleep(0.01)
        got = next(e for e in center.events if e[1] == "escalation" and e[2]["grid_id"] == grid)
        delays.append(got[0] - landed)
    print(f"stream delivery after the record landed: {[round(d, 3) for d in delays]} s")
    assert max(delays) < 1.0
    time.sleep(0.5)
    assert [e[2]["grid_id"] for e in duty.events if e[1] == "escalation"] == ["g1"]  # g4 is not its grid
    # /metrics: admin may, a responder may not; the text parses with prometheus-client's parser
    assert api.call("GET", "/metrics", "duty-g1")[0] == 403
    status, text, _ = api.call("GET", "/metrics", "admin")
    assert status == 200
    fams = {f.name: f for f in text_string_to_metric_families(text)}
    assert sum(smp.value for smp in fams["gridwatch_open_incidents"].samples) == 2
    dlq = fams["gridwatch_dlq_records"].samples
    assert [smp.value for smp in dlq if smp.labels.get("code") == "not_json"] == [1]
    count = [smp.value for smp in fams["gridwatch_stream_latency_seconds"].samples
             if smp.name.endswith("_count")]
    assert count and count[0] >= 2
    assert any(smp.labels.get("topic") == "incidents.v1" for smp in fams["gridwatch_topic_records"].samples)
    assert "gridwatch_consumer_lag" in fams and "gridwatch_http_request_seconds" in fams
