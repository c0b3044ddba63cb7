"""Records the detectors cannot use get a code and a reason; nothing stops the host."""

import orjson
import pytest

from pipeline.detect.host import decode_record
from pipeline.detect.wiring import tick_envelope
from pipeline.envelope import iso_ms
from pipeline.errors import Rejected

from .helpers import T0, host, ping, report


def env(data) -> bytes:
    return orjson.dumps({"specversion": "1.0", "id": "x", "type": "t", "data": data})


def tick(data) -> bytes:
    """A clock.v1 envelope as the ticker writes it, with this data."""
    return orjson.dumps({**tick_envelope(T0, 0), "data": data})


GOOD_PING = ping("d1", "door", T0, subject="s1")


@pytest.mark.parametrize("value,is_tick,code", [
    (None, False, "not_json"),
    (b"{nope", False, "bad_record"),
    (b"[1, 2]", False, "bad_record"),
    (orjson.dumps({"data": "x"}), False, "bad_record"),
    (b"x" * 70_000, False, "too_large"),
    (tick({"tick": "soon", "at": "2026-07-01T00:00:00Z"}), True, "bad_tick"),
    (tick({"tick": True, "at": "2026-07-01T00:00:00Z"}), True, "bad_tick"),
    (tick({"tick": 10**16, "at": "2026-07-01T00:00:00Z"}), True, "bad_tick"),
    (tick({"tick": T0, "at": "2099-07-01T00:00:00Z"}), True, "bad_tick"),  # they disagree
    (tick({"tick": T0, "at": iso_ms(T0)[:-1]}), True, "bad_time"),  # no offset
    (env({"tick": T0, "at": iso_ms(T0)}), True, "bad_envelope"),  # no source, no time
    (orjson.dumps({**tick_envelope(T0, 0), "type": "gridwatch.command.v1"}), True, "unknown_type"),
    (env({**GOOD_PING, "grid_id": 7}), False, "bad_located"),
    (env({**GOOD_PING, "observed_at": "yesterday"}), False, "bad_located"),
    (env({**GOOD_PING, "observed_at": "1900-01-01T00:00:00+00:00"}), False, "bad_located"),
    (env({**GOOD_PING, "source_type": "rumour"}), False, "bad_located"),
    (env({**GOOD_PING, "input": {"device_id": "d1"}}), False, "bad_located"),
    (env(ping("rg", "rain_gauge", T0) | {"input": {"device_id": "rg", "kind": "rain_gauge",
                                                  "value": "lots"}}), False, "bad_located"),
    (env({**report("r1", "dispute", T0), "lon": None}), False, "bad_located"),
])
def test_hostile_records_are_rejected_with_a_code(value, is_tick, code):
    with pytest.raises(Rejected) as err:
        decode_record(value, is_tick, 65_536)
    assert err.value.code == code
    assert err.value.reason


def test_good_records_decode_and_the_host_keeps_going():
    h = host()
    what, data = decode_record(env(GOOD_PING), False, 65_536)
    assert what == "located"
    h.on_located(0, data)
    assert decode_record(orjson.dumps(tick_envelope(T0 + 1000, 0)), True, 65_536) == ("tick", T0 + 1000)
    # an unknown report category still clusters, under the fallback
    out = h.on_located(0, report("r1", "not-a-category", T0, severity="critical"))
    assert out.alerts[0].evidence["category"] == "other"
