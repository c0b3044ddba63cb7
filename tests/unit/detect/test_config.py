"""Detector configuration: bad files stop start-up with a readable list of problems."""

import pytest
import yaml

from pipeline.detect.config import DEFAULT_FILE, config_from_dict, load_config, parse_duration
from pipeline.errors import ConfigError


def raw():
    return yaml.safe_load(DEFAULT_FILE.read_text())


def test_default_file_is_valid():
    cfg = load_config()
    assert cfg.inactivity.profiles["living_alone_24h"].quiet_window == 24 * 3600_000
    assert cfg.landslide.rain_mm["red"]["24h"] == 200


@pytest.mark.parametrize("value,ms", [("90s", 90_000), ("15m", 900_000), ("1.5h", 5_400_000),
                                      ("3d", 259_200_000), (30, 30_000)])
def test_durations(value, ms):
    assert parse_duration(value) == ms


@pytest.mark.parametrize("bad", ["-5m", "soon", "5 parsecs", True])
def test_bad_durations(bad):
    with pytest.raises(ValueError):
        parse_duration(bad)


def mutate(path, value):
    doc = raw()
    node = doc
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return doc


@pytest.mark.parametrize("path,value,message", [
    (("reports", "fallback_category"), "weather", "fallback_category 'weather' is not a category"),
    (("reports", "categories", "dispute", "severity"), "urgent", "unknown severity 'urgent'"),
    (("reports", "cluster_window"), "-10m", "reports.cluster_window: '-10m' is negative"),
    (("inactivity", "profiles", "living_alone_24h", "quiet_window"), "-1h", "negative"),
    (("landslide", "rain_mm", "orange", "1h"), 40,
     "levels overlap on 1h: orange (40.0 mm) must be above yellow"),
    (("landslide", "rain_mm", "purple"), {"1h": 5}, "unknown level 'purple'"),
    (("landslide", "rain_mm", "red", "2h"), 5, "unknown window '2h'"),
    (("landslide", "tangential_angle_deg", "orange"), 40, "levels overlap: orange (40.0°)"),
    (("inactivity", "default_profile"), "nobody", "default_profile 'nobody' is not in profiles"),
    (("inactivity", "profiles", "living_alone_12h", "night"), [25, 6], "hours 0-23"),
    (("clock", "tik_interval"), "30s", "clock.tik_interval: Extra inputs are not permitted"),
])
def test_bad_config_is_named(path, value, message):
    with pytest.raises(ConfigError) as err:
        config_from_dict(mutate(path, value), "det.yaml")
    assert message in str(err.value)
    assert str(err.value).startswith("det.yaml: ")


def test_bad_files(tmp_path):
    with pytest.raises(ConfigError, match="no such detectors file"):
        load_config(tmp_path / "missing.yaml")
    f = tmp_path / "bad.yaml"
    f.write_text("clock: [unclosed")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(f)
    f.write_text("- a list")
    with pytest.raises(ConfigError, match="expected a mapping"):
        load_config(f)
    f.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(ConfigError):
        load_config(f)
