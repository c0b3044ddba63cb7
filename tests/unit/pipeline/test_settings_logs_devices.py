import io
import json

import orjson
import pytest
import structlog

from pipeline.devices import load_devices_file
from pipeline.errors import ConfigError
from pipeline.logs import configure, get_logger, redact_pii
from pipeline.settings import Settings


def test_defaults_and_overrides():
    s = Settings.from_env({}, broker="h:1")
    assert s.broker == "h:1" and s.topic("located.v1") == "gridwatch.located.v1"
    s = Settings.from_env({"GRIDWATCH_TOPIC_PREFIX": "shadow.", "GRIDWATCH_PARTITIONS": "12"})
    assert s.topic("dlq.v1") == "shadow.dlq.v1" and s.partitions == 12


@pytest.mark.parametrize(("env", "needle"), [
    ({"GRIDWATCH_PARTITIONS": "zero"}, "GRIDWATCH_PARTITIONS='zero' is not an integer"),
    ({"GRIDWATCH_PARTITIONS": "0"}, "out of range"),
    ({"GRIDWATCH_SNAP_M": "-5"}, "GRIDWATCH_SNAP_M"),
    ({"GRIDWATCH_EMBEDDED": "maybe"}, "not a boolean"),
    ({"GRIDWATCH_TOPIC_PREFIX": "a/b;rm -rf"}, "GRIDWATCH_TOPIC_PREFIX"),
    ({"GRIDWATCH_LOG_LEVEL": "loud"}, "GRIDWATCH_LOG_LEVEL"),
    ({"GRIDWATCH_SECURITY_PROTOCOL": "SASL_SSL"}, "SASL needs"),
    ({"GRIDWATCH_MAX_MESSAGE_BYTES": "99999999999"}, "out of range"),
    ({"GRIDWATCH_WEB_BACKLOG": "-1"}, "GRIDWATCH_WEB_BACKLOG"),
    ({"GRIDWATCH_WEB_BACKLOG": "all"}, "not an integer"),
])
def test_bad_config_is_a_readable_error(env, needle):
    with pytest.raises(ConfigError) as exc:
        Settings.from_env(env)
    assert needle in str(exc.value)


def test_sasl_settings_pass_through():
    s = Settings.from_env({"GRIDWATCH_SECURITY_PROTOCOL": "SASL_SSL",
                           "GRIDWATCH_SASL_MECHANISM": "SCRAM-SHA-512",
                           "GRIDWATCH_SASL_USERNAME": "u", "GRIDWATCH_SASL_PASSWORD": "s3cr3t-pw"})
    cfg = s.kafka_python_config()
    assert cfg["security_protocol"] == "SASL_SSL" and cfg["sasl_plain_password"] == "s3cr3t-pw"
    assert "s3cr3t-pw" not in repr(s)


def test_pii_is_redacted_from_logs():
    out = redact_pii(None, "info", {
        "event": "report from 13812345678, id 41032519450101123X",
        "name": "张三", "phone": "13812345678", "grid_id": "410325105001001",
        "nested": {"contact": "李四", "note": "call 0379-66881234"}})
    text = json.dumps(out, ensure_ascii=False)
    for secret in ("13812345678", "41032519450101123X", "张三", "李四", "66881234"):
        assert secret not in text
    assert out["grid_id"] == "410325105001001"  # codes are not PII


def test_configured_logger_writes_json_without_pii():
    buf = io.StringIO()
    configure("info", stream=buf)
    with structlog.contextvars.bound_contextvars(topic="t", partition=1, offset=7):
        get_logger().info("dlq", phone="13900001111", grid_id="g1")
    line = orjson.loads(buf.getvalue().splitlines()[-1])
    assert line["phone"] == "[redacted]" and line["offset"] == 7 and line["grid_id"] == "g1"


def test_devices_file_formats_and_errors(tmp_path):
    good = [{"device_id": "D1", "kind": "door", "lon": 112.0, "lat": 34.0}]
    (tmp_path / "d.json").write_bytes(orjson.dumps(good))
    (tmp_path / "d.csv").write_text("device_id,kind,lon,lat,heartbeat_s\nD1,door,112.0,34.0,600\n")
    assert load_devices_file(str(tmp_path / "d.json")) == good
    assert load_devices_file(str(tmp_path / "d.csv"))[0]["heartbeat_s"] == 600
    (tmp_path / "bad.json").write_bytes(orjson.dumps([{"device_id": "D1", "kind": "door",
                                                      "lon": 500, "lat": 34}]))
    with pytest.raises(ConfigError, match="device 1"):
        load_devices_file(str(tmp_path / "bad.json"))
    (tmp_path / "junk.json").write_bytes(b"\x00\x01")
    with pytest.raises(ConfigError, match="cannot parse"):
        load_devices_file(str(tmp_path / "junk.json"))
    with pytest.raises(ConfigError, match="no such"):
        load_devices_file(str(tmp_path / "missing.json"))
