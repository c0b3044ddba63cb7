import numpy as np
import pytest

from geo.coords import (
    bd09_to_gcj02,
    bd09_to_wgs84,
    gcj02_to_wgs84,
    metric_crs,
    out_of_china,
    to_wgs84,
    wgs84_to_gcj02,
)

# Published reference points (eviltransform test fixtures): (wgs lat, lon), (gcj lat, lon)
REFERENCE = [
    ((31.1774276, 121.5272106), (31.17530398364597, 121.531541859215)),  # Shanghai
    ((22.543847, 113.912316), (22.540796131694766, 113.9171764808363)),  # Shenzhen
    ((39.911954, 116.377817), (39.91334545536069, 116.38404722455657)),  # Beijing
]
@pytest.mark.parametrize(("wgs", "gcj"), REFERENCE)
def test_forward_matches_published_points(wgs, gcj):
    lon, lat = wgs84_to_gcj02(wgs[1], wgs[0])
    assert float(lon) == pytest.approx(gcj[1], abs=1e-9)
    assert float(lat) == pytest.approx(gcj[0], abs=1e-9)


@pytest.mark.parametrize(("wgs", "gcj"), REFERENCE)
def test_inverse_recovers_published_points(wgs, gcj):
    lon, lat = gcj02_to_wgs84(gcj[1], gcj[0])
    # 1e-8 degrees is about 1 mm
    assert float(lon) == pytest.approx(wgs[1], abs=1e-8)
    assert float(lat) == pytest.approx(wgs[0], abs=1e-8)


def test_bd09_to_gcj02_matches_published_point():
    lon, lat = bd09_to_gcj02(116.43351, 39.90851)
    assert float(lon) == pytest.approx(116.42703, abs=1e-5)
    assert float(lat) == pytest.approx(39.90245, abs=1e-5)
    back = bd09_to_wgs84(116.43351, 39.90851)
    assert np.allclose(wgs84_to_gcj02(*back), (lon, lat), atol=1e-9)


def test_round_trip_over_china_is_below_a_millimetre():
    rng = np.random.default_rng(3)
    lon, lat = rng.uniform(73.5, 135, 20000), rng.uniform(18, 53.5, 20000)
    back = gcj02_to_wgs84(*wgs84_to_gcj02(lon, lat))
    assert np.abs(back[0] - lon).max() < 1e-8
    assert np.abs(back[1] - lat).max() < 1e-8


def test_offset_is_hundreds_of_metres_in_china_and_zero_outside():
    lon, lat = wgs84_to_gcj02([112.0, 2.35], [34.2, 48.85])  # Song County, Paris
    assert 0.001 < lon[0] - 112.0 < 0.01
    assert (lon[1], lat[1]) == (2.35, 48.85)
    assert out_of_china([2.35], [48.85])[0]


def test_to_wgs84_dispatches_by_crs():
    x, y = np.array([112.0]), np.array([34.0])
    assert to_wgs84(x, y, "cgcs2000")[0][0] == 112.0
    assert to_wgs84(x, y, "gcj02")[0][0] != 112.0
    with pytest.raises(ValueError):
        to_wgs84(x, y, "epsg:3857")


def test_metric_crs_is_the_utm_zone():
    assert metric_crs(112.0, 34.0) == "EPSG:32649"
    assert metric_crs(-70.0, -33.0) == "EPSG:32719"
