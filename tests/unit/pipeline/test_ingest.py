import base64
import hashlib

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from geo.coords import wgs84_to_gcj02
from geo.locate import Locator
from pipeline.ingest import IngestCore
from pipeline.settings import Settings
from tests.unit.geo.layers_fixtures import two_by_two
from tests.unit.pipeline.helpers import T0_MS, envelope, ping, raw, report


@pytest.fixture(scope="module")
def locator() -> Locator:
    return Locator(two_by_two())


@pytest.fixture
def core(locator) -> IngestCore:
    c = IngestCore(locator, Settings(max_message_bytes=4096))
    c.devices["D1"] = {"device_id": "D1", "kind": "door", "lon": 1.5, "lat": 1.5}
    return c


def one(core: IngestCore, rec) -> tuple[str, dict]:
    out = core.process([rec])
    assert len(out) == 1
    return out[0].topic, orjson.loads(out[0].value)


def test_report_is_located_with_path_police_and_hazards(core):
    topic, ev = one(core, raw("reports.v1", report(lon=1.0, lat=1.0)))
    assert topic == "located.v1"
    d = ev["data"]
    assert (d["grid_id"], d["path"]) == ("g1", ["C", "T", "M", "g1"])
    assert d["police_grid"] == "P1" and d["hazard_zones"] == ["H1", "H2"]
    assert ev["id"] == "located:report:R1" and ev["subject"] == "g1"
    assert d["observed_at"] == "2026-07-01T12:00:00.000Z"  # normalised to UTC


def test_gcj02_report_is_converted_before_locating(core):
    # a WGS84 point sent as GCJ-02 (hundreds of metres away) comes back as the WGS84 point
    gx, gy = wgs84_to_gcj02(112.0, 34.0)
    _, ev = one(core, raw("reports.v1", report(lon=float(gx), lat=float(gy), crs="gcj02")))
    assert ev["data"]["lon"] == pytest.approx(112.0, abs=1e-7)
    assert ev["data"]["lat"] == pytest.approx(34.0, abs=1e-7)


def test_ping_takes_the_registered_device_location(core):
    topic, ev = one(core, raw("pings.v1", ping("D1")))
    assert topic == "located.v1" and ev["data"]["grid_id"] == "g4"
    assert ev["data"]["location_from"] == "device"


def test_device_registration_and_tombstone(core):
    reg = envelope("gridwatch.device.v1", {"device_id": "D9", "kind": "door", "lon": 0.2,
                                           "lat": 1.7})
    assert core.process([raw("devices.v1", reg, key=b"D9")]) == []
    assert one(core, raw("pings.v1", ping("D9")))[1]["data"]["grid_id"] == "g3"
    assert core.process([raw("devices.v1", None, key=b"D9")]) == []
    topic, ev = one(core, raw("pings.v1", ping("D9")))
    assert topic == "dlq.v1" and ev["data"]["code"] == "unknown_device"
    assert ev["data"]["retriable"] is True


def test_outside_every_grid_goes_to_unlocated(core):
    topic, ev = one(core, raw("reports.v1", report(lon=50.0, lat=50.0)))
    assert topic == "unlocated.v1" and ev["data"]["source_id"] == "R1"


BAD = [
    (b"{not json", "not_json"),
    (b"[1, 2]", "not_object"),
    (orjson.dumps({"specversion": "0.3", "id": "x"}), "bad_envelope"),
    (orjson.dumps(envelope("gridwatch.ping.v1", {})), "unknown_type"),
    (orjson.dumps(report(category="aliens")), "bad_data"),
    (orjson.dumps(report(lat=91.0)), "bad_data"),
    (orjson.dumps(report(observed_at="yesterday")), "bad_time"),
    (orjson.dumps(report(observed_at="2026-07-01T12:00:00")), "bad_time"),
    (orjson.dumps(report(observed_at="2027-07-01T12:00:00Z")), "time_out_of_range"),
    (orjson.dumps(report(observed_at="2026-01-01T12:00:00Z")), "time_out_of_range"),
    (orjson.dumps(report(observed_at="1999-07-01T12:00:00Z")), "time_out_of_range"),
    (orjson.dumps(report(text="长" * 3000)), "too_large"),
    (orjson.dumps(report(lon=1e308)), "bad_data"),
    (orjson.dumps(report(media=["javascript:alert(1)"])), "bad_data"),
    (orjson.dumps(report(extra_field="x")), "bad_data"),
    (b"\xff\xfe\x00garbage", "not_json"),
    (b"[" * 1500 + b"]" * 1500, "not_json"),
    (None, "not_json"),
]


@pytest.mark.parametrize(("body", "code"), BAD)
def test_each_class_of_bad_input_lands_in_the_dlq_with_reason(core, body, code):
    rec = raw("reports.v1", body, offset=42, key=b"K")
    topic, ev = one(core, rec)
    assert topic == "dlq.v1", ev
    d = ev["data"]
    assert d["code"] == code, d["reason"]
    assert d["reason"]
    assert d["source"] == {"topic": "gridwatch.reports.v1", "partition": 0, "offset": 42,
                           "timestamp_ms": T0_MS}
    limit = core.settings.max_message_bytes
    if len(body or b"") <= limit:
        assert base64.b64decode(d["original_b64"]) == (body or b"") and "original_size" not in d
    else:  # kept up to the input limit, so the DLQ record always fits the producer's limit
        assert base64.b64decode(d["original_b64"]) == body[:limit] and d["original_truncated"]
        assert d["original_size"] == len(body)
        assert d["original_sha256"] == hashlib.sha256(body).hexdigest()
    assert base64.b64decode(d["original_key_b64"]) == b"K"
    # the same rejection rides on the record for the runtime's log line
    (dlq,) = core.process([rec])
    assert dlq.rejection == ("gridwatch.reports.v1", 0, 42, code, d["reason"])


def test_unknown_ping_kind_and_missing_value(core):
    _, ev = one(core, raw("pings.v1", ping("D1", kind="teleporter")))
    assert ev["data"]["code"] == "bad_data" and "kind" in ev["data"]["reason"]
    _, ev = one(core, raw("pings.v1", ping("D1", kind="rain_gauge")))
    assert ev["data"]["code"] == "bad_data" and "value" in ev["data"]["reason"]


def test_batch_keeps_order_and_counts(core):
    recs = [raw("reports.v1", report("A", 0.5, 0.5), 0), raw("reports.v1", b"x", 1),
            raw("reports.v1", report("B", 1.5, 0.5), 2), raw("reports.v1", report("C", 9, 9), 3)]
    out = core.process(recs)
    assert [o.topic for o in out] == ["located.v1", "dlq.v1", "located.v1", "unlocated.v1"]
    assert [o.key for o in out] == [b"g1", b"reports.v1", b"g2", b"C"]
    assert all(o.timestamp_ms == T0_MS for o in out)
    s = core.stats
    assert (s.inputs, s.located, s.unlocated, s.dlq) == (4, 2, 1, 1)


def test_same_input_gives_byte_identical_output(locator):
    recs = [raw("reports.v1", report(f"R{i}", 0.1 * i, 0.15 * i), i) for i in range(15)]
    a = IngestCore(locator, Settings()).process(recs)
    b = IngestCore(locator, Settings()).process(recs)
    assert a == b


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(
    st.binary(max_size=300),
    st.recursive(st.none() | st.booleans() | st.floats() | st.text(max_size=20),
                 lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=8), c,
                                                                     max_size=4),
                 max_leaves=20).map(orjson.dumps),
    st.builds(lambda lon, lat, t: orjson.dumps(report(lon=lon, lat=lat, observed_at=t)),
              st.floats(allow_nan=False), st.floats(allow_nan=False),
              st.text(max_size=30)),
), max_size=20))
def test_any_input_yields_exactly_one_output_and_never_crashes(locator, bodies):
    core = IngestCore(locator, Settings(max_message_bytes=4096))
    recs = [raw("reports.v1", b, i) for i, b in enumerate(bodies)]
    out = core.process(recs)
    assert len(out) == len(recs)
    assert all(o.topic in ("located.v1", "unlocated.v1", "dlq.v1") for o in out)
    assert not any(orjson.loads(o.value)["data"].get("code") == "internal_error" for o in out)


def test_traceparent_is_carried_to_the_output(core):
    tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    ev_in = report("T1", 0.5, 0.5)
    ev_in["traceparent"] = tp
    _, ev = one(core, raw("reports.v1", ev_in))
    assert ev["traceparent"] == tp
    _, ev = one(core, raw("reports.v1", report("T2", 0.5, 0.5)))
    assert "traceparent" not in ev
