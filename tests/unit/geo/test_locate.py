import numpy as np
import pytest
import shapely

from geo.area import buffer_point, grids_in_area
from geo.index import PolygonIndex
from geo.locate import Locator
from tests.unit.geo.layers_fixtures import two_by_two


@pytest.fixture(scope="module")
def loc() -> Locator:
    return Locator(two_by_two(), snap_m=20_000)


def test_interior_points_get_their_grid_and_full_path(loc):
    res = loc.locate(np.array([0.5, 1.5, 0.5]), np.array([0.5, 0.5, 1.5]))
    assert [loc.grids[i].code for i in res.grid] == ["g1", "g2", "g3"]
    assert loc.grids[res.grid[0]].path == ("C", "T", "M", "g1")


def test_shared_edge_and_vertex_go_to_smallest_code(loc):
    # (1, 0.5) is on the g1/g2 edge; (1, 1) is the vertex of all four grids
    res = loc.locate(np.array([1.0, 1.0, 1.5]), np.array([0.5, 1.0, 1.0]))
    assert [loc.grids[i].code for i in res.grid] == ["g1", "g1", "g2"]


def test_outer_boundary_is_located_not_lost(loc):
    res = loc.locate(np.array([0.0, 2.0]), np.array([0.3, 2.0]))
    assert [loc.grids[i].code for i in res.grid] == ["g1", "g4"]


def test_unlocated_without_snap_and_snapped_within_distance():
    plain = Locator(two_by_two())
    res = plain.locate(np.array([2.05, 5.0]), np.array([0.5, 5.0]))
    assert res.grid.tolist() == [-1, -1]
    snapping = Locator(two_by_two(), snap_m=10_000)  # 0.05 deg is about 5.5 km here
    res = snapping.locate(np.array([2.05, 5.0]), np.array([0.5, 5.0]))
    assert snapping.grids[res.grid[0]].code == "g2" and res.snapped[0]
    assert 5_000 < res.snap_distance_m[0] < 6_000
    assert res.grid[1] == -1 and not res.snapped[1]


def test_police_and_overlapping_hazards(loc):
    res = loc.locate(np.array([1.0, 0.2]), np.array([1.0, 0.2]))
    assert [loc.police_ids[i] for i in res.police] == ["P1", "P1"]
    hz = res.hazards_of()
    assert [loc.hazard_ids[z] for z in hz[0]] == ["H1", "H2"]
    assert hz[1] == []


def test_scalar_path_agrees_with_batch_on_random_points(loc):
    rng = np.random.default_rng(0)
    x, y = rng.uniform(-0.5, 2.5, 5000), rng.uniform(-0.5, 2.5, 5000)
    # include exact edges and vertices
    x[:9], y[:9] = np.repeat([0.0, 1.0, 2.0], 3), np.tile([0.0, 1.0, 2.0], 3)
    batch = loc.index.locate(x, y)
    assert [loc.index.locate_one(a, b) for a, b in zip(x, y, strict=True)] == batch.tolist()
    inside = (x >= 0) & (x <= 2) & (y >= 0) & (y <= 2)
    assert ((batch >= 0) == inside).all()


def test_index_matches_strtree_on_irregular_cells():
    rng = np.random.default_rng(5)
    pts = shapely.multipoints(rng.uniform(0, 1, (500, 2)))
    cells = shapely.intersection(shapely.get_parts(shapely.voronoi_polygons(pts)),
                                 shapely.box(0, 0, 1, 1))
    idx = PolygonIndex(cells, cells_per_polygon=8)
    x, y = rng.uniform(0, 1, 20000), rng.uniform(0, 1, 20000)
    got = idx.locate(x, y)
    tree = shapely.STRtree(cells)
    p, c = tree.query(shapely.points(x, y), predicate="intersects")
    expect = np.full(len(x), -1)
    for pi, ci in zip(p[::-1], c[::-1], strict=True):
        expect[pi] = ci if expect[pi] < 0 else min(expect[pi], ci)
    assert (got == expect).all()
    pairs = idx.locate_all(x, y)
    assert len(pairs[0]) == len(p)


def test_area_query_shares(loc):
    hits = grids_in_area(loc, shapely.box(0.5, 0.5, 1.5, 1.0))
    assert [h.grid_id for h in hits] == ["g1", "g2", "g3", "g4"]
    shares = {h.grid_id: h for h in hits}
    assert shares["g1"].grid_share == pytest.approx(0.25, rel=0.01)
    assert shares["g3"].grid_share == pytest.approx(0.0, abs=1e-9)  # touches only
    assert sum(h.area_share for h in hits) == pytest.approx(1.0, rel=1e-4)


def test_buffer_point_is_metric(loc):
    circle = buffer_point(loc, 1.5, 1.5, 1000.0)
    hits = grids_in_area(loc, circle)
    assert [h.grid_id for h in hits] == ["g4"]
    assert sum(h.area_m2 for h in hits) == pytest.approx(np.pi * 1e6, rel=0.01)


def test_parents_are_derived_by_containment_when_the_layer_has_none(tmp_path):
    import geopandas as gpd

    from geo.layers import Atlas, LayerSpec, load_layer

    rows = [{"code": "C", "lv": "county", "geometry": shapely.box(0, 0, 2, 2)},
            {"code": "T1", "lv": "town", "geometry": shapely.box(0, 0, 1, 2)},
            {"code": "T2", "lv": "town", "geometry": shapely.box(1, 0, 2, 2)},
            {"code": "G9", "lv": "grid", "geometry": shapely.box(1.2, 0.2, 1.8, 0.8)},
            {"code": "G1", "lv": "grid", "geometry": shapely.box(0.2, 0.2, 0.8, 0.8)}]
    path = tmp_path / "noparents.gpkg"
    gpd.GeoDataFrame(rows, geometry="geometry", crs="EPSG:4326").to_file(path, layer="units")
    layer = load_layer(LayerSpec(str(path), layer="units", id_field="code", parent_field=None,
                                 level_field="lv"))
    loc = Locator(Atlas(governance=layer))
    res = loc.locate(np.array([0.5, 1.5]), np.array([0.5, 0.5]))
    assert [loc.grids[i].path for i in res.grid] == [("C", "T1", "G1"), ("C", "T2", "G9")]
