"""CloudEvents Kafka protocol binding: structured mode out, binary mode accepted in, and the
data schemas' ``extensions`` object (docs/topics-and-schemas.md, "Schema versions and
compatibility")."""

from __future__ import annotations

import asyncio
import base64
from types import SimpleNamespace

import orjson
import pytest

from geo.locate import Locator
from pipeline.envelope import STRUCTURED, decode, structured_from_binary
from pipeline.errors import Rejected
from pipeline.gate import DlqPolicy, decode_command
from pipeline.ingest import IngestCore, Outgoing, RawRecord
from pipeline.settings import Settings
from pipeline.sink import BatchSink
from tests.unit.geo.layers_fixtures import two_by_two
from tests.unit.pipeline.helpers import T0_MS, envelope, ping, report

CONTENT_TYPE = ("content-type", b"application/cloudevents+json; charset=UTF-8")


def binary(env: dict, as_str: bool = False, drop: tuple[str, ...] = (), **extra: object) -> tuple:
    """The binary-mode form of a structured envelope: (headers, value)."""
    attrs = {k: v for k, v in env.items() if k not in ("data", "datacontenttype")}
    headers = [(f"ce_{k}", v if as_str else str(v).encode()) for k, v in attrs.items()
               if f"ce_{k}" not in drop]
    headers.append(("content-type", "application/json" if as_str else b"application/json"))
    headers += [(k, v) for k, v in extra.items()]
    return headers, orjson.dumps(env["data"])


# -- binary mode in -------------------------------------------------------------------------

@pytest.mark.parametrize("as_str", [False, True])
def test_a_binary_ping_converts_to_the_structured_envelope(as_str):
    env = {**ping("D1", "water_meter", value=1.5, unit="m3"), "subject": "S1",
           "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}
    headers, value = binary(env, as_str)
    converted = structured_from_binary(headers, value, 4096)
    assert converted is not None
    assert orjson.loads(converted) == env
    assert decode("pings.v1", converted, 4096) == decode("pings.v1", orjson.dumps(env), 4096)


def test_a_dict_of_headers_is_read_too():
    env = ping("D1")
    headers, value = binary(env)
    assert orjson.loads(structured_from_binary(dict(headers), value)) == env


def test_structured_records_and_tombstones_are_left_alone():
    env = ping("D1")
    assert structured_from_binary((), orjson.dumps(env)) is None
    assert structured_from_binary([("gridwatch-redrive-count", b"1")], orjson.dumps(env)) is None
    assert structured_from_binary([CONTENT_TYPE, ("ce_specversion", b"1.0")],
                                  orjson.dumps(env)) is None  # structured wins
    headers, _ = binary(env)
    assert structured_from_binary(headers, None) is None  # a tombstone stays one


def test_a_binary_record_without_ce_time_takes_the_record_timestamp():
    env = ping("D1")
    headers, value = binary(env, drop=("ce_time",))
    assert orjson.loads(structured_from_binary(headers, value, record_ms=T0_MS))["time"] == \
        "2026-07-01T12:00:00.000Z"


@pytest.mark.parametrize("headers, needle", [
    ([("ce_specversion", b"1.0"), ("ce_source", b"s"), ("ce_type", b"gridwatch.ping.v1"),
      ("ce_time", b"2026-07-01T12:00:00Z")], "ce_id"),
    ([("ce_specversion", b"1.0"), ("ce_id", b"\xff\xfe"), ("ce_source", b"s"),
      ("ce_type", b"gridwatch.ping.v1")], "not UTF-8"),
    ([("ce_specversion", b"1.0"), ("ce_id", b"1"), ("ce_source", b"s"),
      ("ce_type", b"gridwatch.ping.v1"), ("content-type", b"text/plain")], "content-type"),
    ([("ce_specversion", b"1.0"), ("ce_id", b"1"), ("ce_source", b"s"),
      ("ce_type", b"gridwatch.ping.v1"), ("ce_Bad-Name", b"x")], "not a CloudEvents attribute"),
])
def test_malformed_binary_headers_are_refused_as_bad_envelope(headers, needle):
    with pytest.raises(Rejected) as err:
        structured_from_binary(headers, orjson.dumps(ping()["data"]), 4096)
    assert err.value.code == "bad_envelope" and needle in err.value.reason


def test_a_binary_record_with_a_wrong_specversion_is_refused_by_the_envelope_schema():
    env = ping("D1")
    headers, value = binary({**env, "specversion": "0.3"})
    with pytest.raises(Rejected) as err:
        decode("pings.v1", structured_from_binary(headers, value, 4096), 4096)
    assert err.value.code == "bad_envelope"


def test_a_binary_command_is_decoded_like_a_structured_one():
    data = {"command_id": "c1", "incident_id": "g1~fire~1", "action": "acknowledge",
            "actor": "W1", "scope": "g1", "at": "2026-07-01T12:00:00Z"}
    env = envelope("gridwatch.command.v1", data)
    headers, value = binary(env)
    got = decode_command(structured_from_binary(headers, value, 4096), 4096, T0_MS)
    assert got == decode_command(orjson.dumps(env), 4096, T0_MS)


@pytest.fixture(scope="module")
def locator() -> Locator:
    return Locator(two_by_two())


@pytest.fixture
def core(locator) -> IngestCore:
    c = IngestCore(locator, Settings(max_message_bytes=4096))
    c.devices["D1"] = {"device_id": "D1", "kind": "door", "lon": 1.5, "lat": 1.5}
    return c


def test_ingest_locates_a_binary_mode_ping_as_it_does_the_structured_one(core):
    env = ping("D1")
    headers, value = binary(env)
    structured = core.process([RawRecord("pings.v1", 0, 0, T0_MS, b"D1", orjson.dumps(env))])
    binary_out = core.process([RawRecord("pings.v1", 0, 1, T0_MS, b"D1", value, 0, headers)])
    assert [o.topic for o in binary_out] == ["located.v1"]
    assert binary_out[0].value == structured[0].value
    assert orjson.loads(binary_out[0].value)["data"]["grid_id"] == "g4"


def test_a_malformed_binary_record_goes_to_the_dlq_with_its_original_bytes(core):
    env = ping("D1")
    headers, value = binary(env, drop=("ce_id",))
    (out,) = core.process([RawRecord("pings.v1", 0, 7, T0_MS, b"D1", value, 0, headers)])
    ev = orjson.loads(out.value)
    assert out.topic == "dlq.v1" and ev["data"]["code"] == "bad_envelope"
    assert "ce_id" in ev["data"]["reason"]
    assert base64.b64decode(ev["data"]["original_b64"]) == value  # as received, not converted


def test_a_binary_record_refused_later_keeps_its_original_bytes_too(core):
    headers, value = binary(report(category="aliens"))
    (out,) = core.process([RawRecord("reports.v1", 0, 3, T0_MS, b"R1", value, 0, headers)])
    ev = orjson.loads(out.value)
    assert ev["data"]["code"] == "bad_data"
    assert base64.b64decode(ev["data"]["original_b64"]) == value


def test_a_binary_device_registration_is_applied_by_the_follower():
    from pipeline.devices import RegistryFollower

    registry: dict = {}
    follower = RegistryFollower("gw.devices.v1", {}, registry, 65_536)
    reg = envelope("gridwatch.device.v1", {"device_id": "D9", "kind": "door", "lon": 0.2,
                                           "lat": 1.7})
    headers, value = binary(reg)
    assert follower.apply(b"D9", value, headers) is None and registry["D9"]["lon"] == 0.2
    rej = follower.apply(b"D8", value, [h for h in headers if h[0] != "ce_source"])
    assert rej is not None and rej.code == "bad_envelope"


# -- structured mode out --------------------------------------------------------------------

class FakeBatch:
    def __init__(self) -> None:
        self.records: list[dict] = []

    def append(self, *, key, value, timestamp, headers=()):
        self.records.append(dict(key=key, value=value, timestamp=timestamp, headers=headers))
        return object()

    def close(self) -> None:
        pass


class FakeProducer:
    def __init__(self) -> None:
        self.shipped: list[tuple[str, int, FakeBatch]] = []

    def create_batch(self) -> FakeBatch:
        return FakeBatch()

    async def send_batch(self, batch, topic, partition):
        self.shipped.append((topic, partition, batch))
        fut = asyncio.get_running_loop().create_future()
        fut.set_result(None)
        return fut


def test_every_record_the_sink_writes_says_structured_mode():
    producer = FakeProducer()
    sink = BatchSink(producer, {"located.v1": "gw.located.v1", "dlq.v1": "gw.dlq.v1"},
                     {"located.v1": 4, "dlq.v1": 4})
    outs = [Outgoing("located.v1", b"g1", b"{}", T0_MS), Outgoing("dlq.v1", b"pings.v1", b"{}", T0_MS)]
    assert asyncio.run(sink.send(outs)) == 2
    records = [r for _, _, b in producer.shipped for r in b.records]
    assert len(records) == 2
    assert all(r["headers"] == STRUCTURED == [CONTENT_TYPE] for r in records)


def test_the_dlq_policy_callbacks_write_structured_mode():
    """Each stage's DLQ callback adds the header; here the shape they all share."""
    sent: list[tuple[bytes, bytes, list]] = []

    async def send_dlq(key: bytes, value: bytes) -> None:  # as in pipeline/detect_agents.py
        sent.append((key, value, STRUCTURED))

    policy = DlqPolicy(send_dlq, 65_536, SimpleNamespace(warning=lambda *a, **k: None,
                                                         error=lambda *a, **k: None))
    msg = SimpleNamespace(topic="gw.commands.v1", partition=0, offset=1, key=b"k", value=b"x",
                          timestamp=T0_MS / 1000)
    asyncio.run(policy.write(msg, "bad_command", "no"))
    ((key, value, headers),) = sent
    assert key == b"commands.v1" and headers == [CONTENT_TYPE]
    assert base64.b64decode(orjson.loads(value)["data"]["original_b64"]) == b"x"


def test_every_producer_send_in_the_pipeline_passes_the_structured_header():
    """A source check: every send of a value in the stream stages names ``STRUCTURED``
    (tombstones, ``value=None``, carry no content type)."""
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[3] / "pipeline"
    files = ["detect_agents.py", "incident_agents.py", "app.py", "sink.py", "web/server.py",
             "delivery/service.py"]
    seen = 0
    for name in files:
        text = (root / name).read_text()
        for m in re.finditer(r"(?:producer|batch|topic|t\[\"[a-z0-9.-]+\"\]|alerts|levels|dlq)"
                             r"\.(?:send|send_and_wait|append)\(", text):
            depth, i = 1, m.end()
            while depth:  # the call's arguments, up to the matching parenthesis
                depth += {"(": 1, ")": -1}.get(text[i], 0)
                i += 1
            call = text[m.end():i]
            if "value=None" in call or "key=" not in call:
                continue  # a tombstone, or not a record send
            seen += 1
            assert "headers=STRUCTURED" in call, f"{name}: {call[:120]}"
    assert seen >= 15


# -- extensions in data ---------------------------------------------------------------------

@pytest.mark.parametrize("topic, env", [
    ("reports.v1", report()), ("pings.v1", ping()),
    ("devices.v1", envelope("gridwatch.device.v1", {"device_id": "D9", "kind": "door",
                                                    "lon": 0.2, "lat": 1.7})),
    ("subjects.v1", envelope("gridwatch.subject.v1", {"subject_id": "S1",
                                                      "profile": "living_alone_24h"})),
])
def test_a_producers_own_fields_pass_under_extensions_and_are_refused_elsewhere(topic, env):
    ok = {**env, "data": {**env["data"], "extensions": {"vendor_batch": 7, "fw": "1.2"}}}
    assert decode(topic, orjson.dumps(ok), 4096)["data"]["extensions"]["fw"] == "1.2"
    bad = {**env, "data": {**env["data"], "vendor_batch": 7}}
    with pytest.raises(Rejected) as err:
        decode(topic, orjson.dumps(bad), 4096)
    assert err.value.code == "bad_data" and "extensions" in err.value.reason
    too_many = {**env, "data": {**env["data"], "extensions": {f"k{i}": i for i in range(33)}}}
    with pytest.raises(Rejected):
        decode(topic, orjson.dumps(too_many), 4096)
    not_object = {**env, "data": {**env["data"], "extensions": [1]}}
    with pytest.raises(Rejected):
        decode(topic, orjson.dumps(not_object), 4096)


def test_unknown_envelope_attributes_are_ignored():
    env = {**ping(), "vendorext": "x", "partitionkey": "D1"}
    assert decode("pings.v1", orjson.dumps(env), 4096)["data"]["device_id"] == "D1"


def test_a_command_takes_extensions_but_the_web_command_body_does_not():
    import fastjsonschema

    from pipeline.web.server import _command_body_check

    data = {"command_id": "c1", "incident_id": "g1~fire~1", "action": "acknowledge",
            "actor": "W1", "scope": "g1", "at": "2026-07-01T12:00:00Z",
            "extensions": {"ticket": "T-1"}}
    assert decode_command(orjson.dumps(envelope("gridwatch.command.v1", data)), 4096,
                          T0_MS)["extensions"] == {"ticket": "T-1"}
    check = _command_body_check()
    check({"action": "acknowledge"})
    with pytest.raises(fastjsonschema.JsonSchemaValueException):
        check({"action": "acknowledge", "extensions": {"ticket": "T-1"}})
