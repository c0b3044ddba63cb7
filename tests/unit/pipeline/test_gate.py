"""The validation gate: each finding of the hostile-input review as a named test."""

from __future__ import annotations

import asyncio
import base64
import re
from pathlib import Path
from types import SimpleNamespace

import orjson
import pytest

from pipeline.detect.wiring import tick_envelope
from pipeline.envelope import dlq_event, dlq_key, iso_ms, make_event, validator
from pipeline.errors import DLQ_CODES, Rejected
from pipeline.gate import DlqPolicy, TimeBounds, decode_command, decode_tick
from pipeline.incident.host import IncidentHost
from pipeline.incident.policy import load_policy
from topics.registry import SCHEMA_DIR

REPO = Path(__file__).resolve().parents[3]
T0 = 1_782_864_000_000  # 2026-07-01T00:00Z
MIN = 60_000
Y2099 = 4_070_908_800_000
PATH = ("C", "T", "M", "g1")


def command(cid: str, action: str, iid: str, at: str, scope: str = "g1", **extra) -> bytes:
    data = {"command_id": cid, "incident_id": iid, "action": action, "actor": "duty-1",
            "scope": scope, "at": at, **extra}
    return orjson.dumps(make_event("gridwatch.command.v1", cid, at, data, source="test"))


def alert(at_ms: int) -> dict:
    return {"alert_id": "inactivity:s1:1", "kind": "inactivity", "grid_id": "g1", "path": list(PATH),
            "severity": "high", "status": "firing", "observed_at": iso_ms(at_ms), "subject_id": "s1"}


def opened_host() -> tuple[IncidentHost, str]:
    h = IncidentHost(load_policy())
    changes = h.on_alert(0, alert(T0))
    return h, next(iter(changes.incidents))


def test_a_refused_command_dated_2099_moves_no_clock():
    """Round 1: an out-of-scope comment dated 2099 froze the partition's clock, and the next
    record made step_time emit 75,121 escalation records."""
    h, iid = opened_host()
    before = h.partition(0).watermark.now_ms
    data = decode_command(command("c1", "comment", iid, "2099-01-01T00:00:00Z", scope="elsewhere",
                                  reason="x"), 65_536)
    changes = h.on_command(0, data)
    assert [r.code for r in changes.rejected] == ["out_of_scope"]
    assert h.partition(0).watermark.now_ms == before
    # an accepted command does not move it either: a command changes only its own incident
    ok = decode_command(command("c2", "comment", iid, iso_ms(T0 + 2 * MIN), reason="seen"), 65_536)
    assert h.on_command(0, ok).escalations and h.partition(0).watermark.now_ms == before
    # ticks go on raising it: the ladder climbs as it should
    climbed = h.on_tick(0, T0 + 20 * MIN).escalations
    assert [e.action for e in climbed][:1] == ["breach"] and len(climbed) < 5


def test_a_tick_dated_2099_is_refused_against_its_record_timestamp():
    value = orjson.dumps(tick_envelope(Y2099, 0))
    with pytest.raises(Rejected) as err:
        decode_tick(value, 65_536, record_ms=T0)
    assert err.value.code == "time_out_of_range" and "record timestamp" in err.value.reason
    assert decode_tick(orjson.dumps(tick_envelope(T0, 0)), 65_536, record_ms=T0 + 1000) == T0
    assert decode_tick(orjson.dumps(tick_envelope(T0 - 90 * 86_400_000, 0)), 65_536,
                       record_ms=T0) == T0 - 90 * 86_400_000  # an old tick is a harmless no-op


def test_even_an_accepted_jump_to_2099_is_bounded():
    h, _ = opened_host()
    out = h.on_tick(0, Y2099)
    assert len(out.escalations) <= 8
    assert max(e.count for e in out.escalations) > 100_000  # counted, not looped


@pytest.mark.parametrize(("value", "code"), [
    (orjson.dumps({"data": {"incident_id": "g1~x~1"}}), "bad_envelope"),
    (orjson.dumps({**orjson.loads(command("c", "comment", "g1~x~1", "2026-07-01T00:00:00Z")),
                   "type": "gridwatch.clock.v1"}), "unknown_type"),
    (command("c", "comment", "g1~x~1", "2026-07-01T00:00:00.000"), "bad_time"),  # no offset
    (command("c", "comment", "g1~x~1", "0001-01-01T00:00:00+01:00"), "time_out_of_range"),
    (command("c", "comment", "g1~x~1", "0001-01-01T00:00:00.000Z"), "time_out_of_range"),
    (command("c", "comment", "g1~x~1", "2026-13-01T00:00:00Z+"), "bad_time"),
    (command("c", ["comment"], "g1~x~1", "2026-07-01T00:00:00Z"), "bad_command"),  # type: ignore[arg-type]
    (command("c", "comment", "nope", "2026-07-01T00:00:00Z"), "unknown_incident"),
    (command("c", "comment", "g1~x~1", "2026-07-01T00:00:00Z", extra="x"), "bad_command"),
    (b"{" * 10, "not_json"),
    (b"[]", "not_object"),
    (b"x" * 1_048_576, "too_large"),
    (None, "not_json"),
])
def test_commands_pass_the_whole_gate(value, code):
    with pytest.raises(Rejected) as err:
        decode_command(value, 65_536, record_ms=T0)
    assert err.value.code == code and err.value.reason


def test_a_command_far_from_its_record_timestamp_is_refused():
    value = command("c", "acknowledge", "g1~x~1", iso_ms(T0))
    assert decode_command(value, 65_536, record_ms=T0 + 60_000)["at_ms"] == T0
    for written in (T0 - 10 * MIN, T0 + 31 * 86_400_000):
        with pytest.raises(Rejected) as err:
            decode_command(value, 65_536, record_ms=written)
        assert err.value.code == "time_out_of_range"


def test_a_command_older_than_the_partition_clock_allows_is_refused():
    bounds = TimeBounds(max_future_ms=300_000, max_past_ms=86_400_000)
    with pytest.raises(Rejected) as err:
        bounds.check(T0, "at", None, clock_ms=T0 + 2 * 86_400_000)
    assert "partition's clock" in err.value.reason


def test_a_dlq_record_always_fits_the_producer_limit():
    """Round 1: a 1 MB command's DLQ record (1.33 MB) exceeded the producer's 1 MB limit and
    the record was lost."""
    big = b"x" * 1_048_576
    ev = dlq_event("gridwatch.commands.v1", 0, 7, T0, b"k", big, "too_large", "too big",
                   keep_bytes=65_536)
    size = len(orjson.dumps(ev))
    assert size < 4 * 65_536 and size < 1_048_576
    d = ev["data"]
    assert d["original_truncated"] and d["original_size"] == len(big)
    assert base64.b64decode(d["original_b64"]) == big[:65_536]
    validator("dlq.json")(d)


def test_the_dlq_schema_lists_every_code_used_in_the_code():
    schema = orjson.loads((SCHEMA_DIR / "dlq.json").read_bytes())
    assert schema["properties"]["code"]["enum"] == list(DLQ_CODES)
    used = set()
    for path in [*REPO.glob("pipeline/**/*.py"), *REPO.glob("ops/*.py")]:
        text = path.read_text()
        used |= set(re.findall(r'Rejected\(\s*"([a-z_]+)"', text))
        used |= set(re.findall(r'"(internal_error)"', text))
    assert used and used <= set(DLQ_CODES), sorted(used - set(DLQ_CODES))


def test_one_key_rule_for_dlq_records():
    for topic in ("gridwatch.commands.v1", "x.y.clock.v1", "located.v1", "gridwatch.reports.v1",
                  "gw.incident-commands.v1"):
        assert dlq_key(topic) == topic.split(".", topic.count(".") - 1)[-1].encode()


class Recorder:
    def __init__(self) -> None:
        self.sent: list[tuple[bytes, dict]] = []

    async def __call__(self, key: bytes, value: bytes) -> None:
        self.sent.append((key, orjson.loads(value)))


def _msg(value: bytes | None) -> SimpleNamespace:
    return SimpleNamespace(topic="gw.commands.v1", partition=1, offset=5, key=b"k", value=value,
                           timestamp=T0 / 1000)


@pytest.mark.parametrize("stage", ["route_commands", "incidents", "detectors", "zones", "kpis"])
def test_no_stage_crash_loses_the_record(stage):
    """Every stage's work on one record runs under the one policy: a crash becomes an
    ``internal_error`` DLQ record with the exception type, and the loop goes on."""
    sent = Recorder()
    policy = DlqPolicy(sent, 65_536, SimpleNamespace(warning=lambda *a, **k: None,
                                                     error=lambda *a, **k: None))

    async def run() -> list[str]:
        done = []
        for value in (b"boom", b"fine", b"refuse"):
            async with policy.guard(_msg(value), stage):
                if value == b"boom":
                    raise KeyError("year 0")
                if value == b"refuse":
                    raise Rejected("bad_command", "not a command")
                done.append(value.decode())
        return done

    assert asyncio.run(run()) == ["fine"]
    assert [(k, d["data"]["code"]) for k, d in sent.sent] == [(b"commands.v1", "internal_error"),
                                                              (b"commands.v1", "bad_command")]
    crash = sent.sent[0][1]["data"]
    assert f"{stage}: KeyError" in crash["reason"]
    assert base64.b64decode(crash["original_b64"]) == b"boom"
    assert crash["source"] == {"topic": "gw.commands.v1", "partition": 1, "offset": 5,
                               "timestamp_ms": T0}
    for _, ev in sent.sent:
        validator("dlq.json")(ev["data"])


def test_cancellation_is_not_swallowed():
    policy = DlqPolicy(Recorder(), 65_536, None)

    async def run() -> None:
        async with policy.guard(_msg(b"x"), "incidents"):
            raise asyncio.CancelledError

    with pytest.raises(asyncio.CancelledError):
        asyncio.run(run())


def test_the_readme_lists_every_dlq_code():
    text = (REPO / "docs" / "runbooks.md").read_text()  # the README's "Bad input" section lives here
    section = text[text.index("## Bad input"):]
    assert all(f"| `{code}` |" in section for code in DLQ_CODES)


def test_a_refused_registration_gets_a_dlq_record_not_just_a_counter():
    """Round 1: 52 bad devices.v1 and 49 bad subjects.v1 records were only counted in a log line."""
    from pipeline.devices import RegistryFollower

    registry: dict = {}
    follower = RegistryFollower("gw.devices.v1", {}, registry, 65_536)
    sent = Recorder()
    follower.dlq = DlqPolicy(sent, 65_536, SimpleNamespace(warning=lambda *a, **k: None))
    bad = SimpleNamespace(topic="gw.devices.v1", partition=3, offset=9, key=b"d1",
                          value=b'{"specversion": "1.0"}', timestamp=T0)

    async def run() -> None:
        rej = follower.apply(bad.key, bad.value)
        assert rej is not None and registry == {}
        await follower._refused(bad, rej)

    asyncio.run(run())
    ((key, ev),) = sent.sent
    assert key == b"devices.v1" and ev["data"]["code"] == "bad_envelope"
    assert ev["data"]["source"] == {"topic": "gw.devices.v1", "partition": 3, "offset": 9,
                                    "timestamp_ms": T0}
    assert ev["id"] == "dlq:gw.devices.v1:3:9"  # the same id from every worker


KEY = "command-key-0123456789abcdef"


def test_commands_are_verified_when_the_deployment_signs_them():
    """Round 1: `actor` and `scope` were taken as written: anyone could act as anyone."""
    from pipeline.gate import sign_command

    env = orjson.loads(command("c1", "acknowledge", "g1~x~1", iso_ms(T0)))
    signed = orjson.dumps(sign_command(KEY, env))
    assert decode_command(signed, 65_536, key=KEY)["actor"] == "duty-1"
    forged = {**orjson.loads(signed), "data": {**env["data"], "actor": "town-head", "scope": "T"}}
    for value, needle in ((orjson.dumps(env), "not signed"), (orjson.dumps(forged), "does not match"),
                          (orjson.dumps(sign_command("another-key-0123456789", env)), "does not match"),
                          (orjson.dumps({**env, "gwsignature": "é" * 43}), "does not match")):
        with pytest.raises(Rejected) as err:
            decode_command(value, 65_536, key=KEY)
        assert err.value.code == "bad_signature" and needle in err.value.reason
    assert decode_command(orjson.dumps(env), 65_536)["actor"] == "duty-1"  # no key: trusted


def test_the_trusted_producers_setting_accepts_unsigned_commands():
    from pipeline.settings import Settings

    assert Settings.from_env({"GRIDWATCH_COMMAND_KEY": KEY}).command_verify_key() == KEY
    assert Settings.from_env({"GRIDWATCH_COMMAND_KEY": KEY, "GRIDWATCH_TRUSTED_PRODUCERS": "true"}) \
        .command_verify_key() is None
    assert Settings.from_env({}).command_verify_key() is None
    with pytest.raises(Exception, match="at least 16"):
        Settings.from_env({"GRIDWATCH_COMMAND_KEY": "short"})


async def test_the_web_server_signs_what_it_writes_and_the_worker_accepts_it():
    from aiohttp.test_utils import TestClient, TestServer

    from pipeline.settings import Settings
    from pipeline.web.server import build_app
    from tests.unit.web.test_http_hostile import ADMIN, CMD_PATH, _context

    ctx = _context(Settings.from_env({"GRIDWATCH_COMMAND_KEY": KEY}))
    app = build_app(ctx)
    app.on_startup.clear()
    async with TestClient(TestServer(app)) as client:
        r = await client.post(CMD_PATH, json={"action": "acknowledge"},
                              headers={"Authorization": f"Bearer {ADMIN}"})
        assert r.status == 202, await r.text()
    ((_, ev, _, _),) = ctx.producer.sent
    assert ev["gwsignature"]
    assert decode_command(orjson.dumps(ev), 65_536, key=KEY)["action"] == "acknowledge"
