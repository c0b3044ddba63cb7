"""The hostile-input suite: 700+ generated and hand-written Kafka records over every input topic
and 200+ HTTP requests over every route, against a real worker and a real web server on the
live clock, as shipped. Asserted: every input accounted for (an output, a DLQ record with its
position, or a 4xx), no 5xx, no stage crash, no escalation caused by hostile records, the
worker's memory bounded, and SIGTERM still stops it within 10 s.
"""

from __future__ import annotations

import base64
import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import orjson
import pytest
from kafka import KafkaProducer

from pipeline.devices import device_envelope
from pipeline.envelope import decode, iso_ms, parse_time, validator
from pipeline.errors import Rejected
from pipeline.gate import TimeBounds, decode_tick
from pipeline.settings import Settings
from pipeline.subjects import subject_envelope
from pipeline.web.auth import hash_token
from tests.integration.conftest import REPO, Pipeline, engine_env, read_all
from tests.integration.hostile_cases import HOSTILE_VALUES, kafka_cases, report
from topics.admin import create

pytestmark = pytest.mark.engines  # the embedded broker and Apache Kafka
TOKENS = {"admin": ("tok-admin-hostile-0123456789", "admin", None),
          "duty": ("tok-duty-hostile-0123456789", "responder", "g1"),
          "app": ("tok-app-hostile-0123456789", "ingest", None)}


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def raw_http(port: int, request: bytes, timeout_s: float = 10) -> int:
    """Send raw bytes, return the status code of the answer (0 when the server closed)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout_s) as sock:
        sock.sendall(request)
        data = b""
        while b"\r\n" not in data:
            chunk = sock.recv(4096)
            if not chunk:
                return 0
            data += chunk
    return int(data.split(b" ", 2)[1])


def request(method: str, path: str, token: str | None = None, body: bytes | None = None,
            headers: dict[bytes, bytes] | None = None) -> bytes:
    lines = [f"{method} {path} HTTP/1.1".encode(), b"Host: 127.0.0.1", b"Connection: close"]
    if token is not None:
        lines.append(b"Authorization: Bearer " + token.encode("utf-8", "surrogateescape"))
    for k, v in (headers or {}).items():
        lines.append(k + b": " + v)
    if body is not None:
        lines += [b"Content-Type: application/json", f"Content-Length: {len(body)}".encode()]
    return b"\r\n".join(lines) + b"\r\n\r\n" + (body or b"")


def http_cases(now_ms: int, rng: random.Random) -> list[bytes]:
    admin, duty, app = (TOKENS[n][0] for n in ("admin", "duty", "app"))
    iid = "g1~inactivity:s-nobody~1"
    reads = ["/api/v1/incidents", f"/api/v1/incidents/{iid}", "/api/v1/grids", "/api/v1/grid-status",
             "/api/v1/kpis", "/api/v1/reports", "/api/v1/me", "/metrics", "/api/openapi.yaml"]
    out: list[bytes] = []
    for path in reads:  # no token, bad tokens, bytes in headers
        out += [request("GET", path), request("GET", path, "nope"),
                request("GET", path, headers={b"Authorization": b"Bearer \xff\xfe\xe4\xb8\xad"}),
                request("GET", path, headers={b"Authorization": b"Basic YWRtaW46YWRtaW4="}),
                request("GET", path, admin, headers={b"X-Junk": bytes(range(128, 256))})]
    for query in ("?since=last-week", "?limit=-1", "?limit=99999999999", "?status=%00", "?zoom=1e309",
                  "?unit=../../etc", "?kind=" + "x" * 4000, "?since=0001-01-01T00:00:00Z", "?q=%ff%fe"):
        for path in ("/api/v1/incidents", "/api/v1/grids", "/api/v1/kpis", "/api/v1/reports"):
            out.append(request("GET", path + query, admin))
    good = report(now_ms, 900)["data"]
    bodies = [b"", b"{nope", b"[]", b"null", b"\xff" * 10, b"x" * 70_000, b"[" * 3000,
              orjson.dumps(good)]
    for name in good:
        bodies.append(orjson.dumps({k: v for k, v in good.items() if k != name}))
        for value in rng.sample(HOSTILE_VALUES, 4):
            bodies.append(orjson.dumps({**good, "report_id": f"R-w{len(bodies)}", name: value}))
    out += [request("POST", "/api/v1/reports", app, b) for b in bodies]
    out += [request("POST", "/api/v1/reports", t, orjson.dumps(good)) for t in (duty, "nope", None)]
    commands = [{"action": ["comment"]}, {"action": "cancel"}, {"action": "comment", "at": "2099-01-01Z"},
                {"action": "explode"}, {"action": None}, {}, {"action": "comment", "reason": 5},
                {"action": "comment", "reason": "x" * 3000}, {"action": "acknowledge", "actor": "root"},
                {"action": "merge"}, {"action": "comment", "command_id": "../x"}]
    for cmd in commands:
        for token in (admin, duty, app):
            out.append(request("POST", f"/api/v1/incidents/{iid}/commands", token, orjson.dumps(cmd)))
    for name in ("action", "reason", "assignee", "command_id"):  # every hostile value per field
        for value in HOSTILE_VALUES:
            body = orjson.dumps({"action": "comment", "reason": "x", name: value})
            out.append(request("POST", f"/api/v1/incidents/{iid}/commands", admin, body))
    for path in ("/api/v1/incidents/%00/commands", "/api/v1/incidents/" + "g" * 3000 + "/commands",
                 "/api/v1/incidents/..%2f..%2f/commands"):
        out.append(request("POST", path, admin, b'{"action": "comment", "reason": "x"}'))
    out += [request("DELETE", "/api/v1/incidents", admin), request("PUT", "/api/v1/reports", app, b"{}"),
            request("GET", "/static/../../etc/passwd"), request("GET", "/" + "a" * 5000),
            request("POST", "/api/v1/reports", app, b"{}", {b"Content-Encoding": b"gzip"}),
            request("POST", "/api/v1/reports", app, b"{}", {b"Expect": b"\xff-continue"}),
            b"GARBAGE\r\n\r\n", b"GET / HTTP/9.9\r\n\r\n", b"\x16\x03\x01\x00\xa5\x01"]
    return out


@pytest.fixture
def namespace(broker, atlas_file, tmp_path):
    s = Settings.from_env({}, broker=broker.bootstrap, topic_prefix=f"hostile{os.getpid()}.",
                          embedded=broker.embedded)
    create(s)
    return s, Pipeline(s, atlas_file, tmp_path, {"GRIDWATCH_APP_ID": f"hostile{os.getpid()}"})


def start_web(s: Settings, atlas: str, workdir: Path) -> tuple[subprocess.Popen, int]:
    lines = ["tokens:"] + [f"  - {{name: {n}, role: {role}, sha256: {hash_token(tok)}"
                           + (f", scope: {scope}}}" if scope else "}")
                           for n, (tok, role, scope) in TOKENS.items()]
    (workdir / "tokens.yaml").write_text("\n".join(lines) + "\n")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = dict(os.environ, **engine_env(s), GRIDWATCH_BROKER=s.broker, GRIDWATCH_TOPIC_PREFIX=s.topic_prefix,
               GRIDWATCH_ATLAS=atlas, GRIDWATCH_TOKENS=str(workdir / "tokens.yaml"),
               GRIDWATCH_WEB_PORT=str(port), GRIDWATCH_INTAKE_RATE="1000", GRIDWATCH_INTAKE_BURST="1000",
               GRIDWATCH_COMMAND_RATE="1000", GRIDWATCH_COMMAND_BURST="1000")
    proc = subprocess.Popen([sys.executable, "-m", "ops.cli", "web"], env=env, cwd=REPO,
                            stdout=open(workdir / "web.log", "ab"), stderr=subprocess.STDOUT,
                            start_new_session=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if raw_http(port, request("GET", "/readyz")) == 200:
                return proc, port
        except OSError:
            pass
        time.sleep(0.3)
    raise AssertionError((workdir / "web.log").read_text()[-3000:])


def test_hostile_inputs_on_every_path(namespace, tmp_path):
    s, p = namespace
    now = int(time.time() * 1000)
    door = {"device_id": "door-h1", "kind": "door", "lon": 0.5, "lat": 0.5, "subject_id": "s-h1"}
    p.produce("devices.v1", [(b"door-h1", orjson.dumps(device_envelope(door, iso_ms(now))))])
    care = {"subject_id": "s-h1", "profile": "living_alone_24h", "grid_id": "g1", "devices": ["door-h1"]}
    p.produce("subjects.v1", [(b"s-h1", orjson.dumps(subject_envelope(care, iso_ms(now))))])
    worker = p.start_worker()  # the live clock, as shipped
    web, port = start_web(s, p.atlas, tmp_path)
    try:
        time.sleep(8)  # joined, rebuilt, ticking
        rss_before = rss_kb(worker.pid)
        cases = kafka_cases(now)
        prod = KafkaProducer(bootstrap_servers=s.broker, max_request_size=4 << 20)
        for short, values in cases.items():
            for i, value in enumerate(values):
                prod.send(s.topic(short), key=f"k{i}".encode(), value=value, timestamp_ms=now)
        prod.flush()
        prod.close()
        statuses = Counter(raw_http(port, req) for req in http_cases(now, random.Random(5)))
        assert sum(statuses.values()) >= 200
        assert not [st for st in statuses if st >= 500], statuses  # never a 5xx
        assert statuses[202] >= 1  # valid reports were taken

        expect = expected_dlq(s)
        dlq = wait_for_dlq(s, expect)
        for short, want in expect.items():  # every refused record is in the DLQ, by position
            assert dlq.get(short, set()) == want, (short, len(dlq.get(short, ())), len(want))
        located = read_all(s.broker, [s.topic("located.v1"), s.topic("unlocated.v1")])
        ingested = sum(len(read_all(s.broker, [s.topic(t)])) for t in ("reports.v1", "pings.v1"))
        assert len(located) + len(expect["reports.v1"]) + len(expect["pings.v1"]) == ingested
        routed = dlq.get("incident-commands.v1", set())  # well-formed commands: no such incident
        assert len(routed) + len(expect["commands.v1"]) == len(read_all(s.broker, [s.topic("commands.v1")]))
        assert read_all(s.broker, [s.topic("escalations.v1")]) == []  # nothing hostile paged anyone
        assert rss_kb(worker.pid) - rss_before < 300_000  # kB: bounded
        log = (tmp_path / "worker.log").read_text()
        assert "Traceback" not in log and "rashed" not in log, log[-3000:]
        started = time.monotonic()
        p.stop_worker(worker)
        assert time.monotonic() - started < 10 and worker.returncode is not None
    finally:
        p.stop_worker(worker)
        web.send_signal(signal.SIGTERM)
        web.wait(20)


def expected_dlq(s: Settings) -> dict[str, set[tuple[int, int]]]:
    """What the gate must refuse, by (partition, offset), from what is on each input topic."""
    bounds = TimeBounds.of(s)
    out: dict[str, set[tuple[int, int]]] = {}
    for short in ("reports.v1", "pings.v1", "devices.v1", "subjects.v1", "commands.v1", "clock.v1"):
        refused = set()
        for m in read_all(s.broker, [s.topic(short)]):
            if short in ("devices.v1", "subjects.v1") and m.value is None:
                continue  # a tombstone deletes
            if not refused_by_gate(short, m, bounds, s):
                continue
            refused.add((m.partition, m.offset))
        out[short] = refused
    return out


def refused_by_gate(short: str, m, bounds: TimeBounds, s: Settings) -> bool:
    from pipeline.gate import decode_command

    try:
        if short == "clock.v1":
            decode_tick(m.value, s.max_message_bytes, m.timestamp, bounds)
        elif short == "commands.v1":
            decode_command(m.value, s.max_message_bytes, m.timestamp, bounds)
        else:
            doc = decode(short, m.value, s.max_message_bytes)
            if short in ("reports.v1", "pings.v1"):
                t = parse_time(doc["data"]["observed_at"], "observed_at")
                bounds.check(int(t.timestamp() * 1000), "observed_at", m.timestamp)
                if short == "pings.v1" and doc["data"]["device_id"] != "door-h1":
                    return True  # unknown device
    except Rejected:
        return True
    return False


def wait_for_dlq(s: Settings, expect: dict, timeout_s: float = 120) -> dict[str, set[tuple[int, int]]]:
    deadline = time.monotonic() + timeout_s
    want = sum(map(len, expect.values()))
    while True:
        got: dict[str, set[tuple[int, int]]] = {}
        for m in read_all(s.broker, [s.topic("dlq.v1")]):
            ev = orjson.loads(m.value)
            validator("dlq.json")(ev["data"])  # every DLQ record matches its own schema
            src = ev["data"]["source"]
            short = src["topic"][len(s.topic_prefix):]
            assert m.key.decode() == short  # one key rule
            assert base64.b64decode(ev["data"]["original_b64"]) is not None
            got.setdefault(short, set()).add((src["partition"], src["offset"]))
        have = sum(len(got.get(k, ())) for k in expect)
        if have >= want or time.monotonic() > deadline:
            return got
        time.sleep(1)
