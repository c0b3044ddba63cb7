import geopandas as gpd
import shapely

from geo.layers import Atlas, LayerSpec, load_atlas, normalise, write_atlas
from geo.validate import repair_atlas, validate_atlas
from tests.unit.geo.layers_fixtures import box, two_by_two, units

BOWTIE = shapely.Polygon([(0, 0), (1, 1), (1, 0), (0, 1), (0, 0)])


def codes(atlas: Atlas) -> set[tuple[str, str | None]]:
    return {(f.code, f.feature_id) for f in validate_atlas(atlas)}


def test_clean_layer_has_no_findings():
    assert validate_atlas(two_by_two()) == []


def test_every_hierarchy_finding():
    rows = [("C", None, "county", box(0, 0, 3, 2)),
            ("a", "C", "grid", box(0, 0, 1.2, 2)),   # overlaps b
            ("b", "C", "grid", box(1, 0, 2, 2)),
            ("c", "C", "grid", box(2.5, 0, 3.5, 1)),  # half outside, leaves a gap
            ("d", "X", "grid", box(0, 0, 0.1, 0.1)),  # unknown parent
            ("e", "C", "hamlet", box(0, 0, 0.1, 0.1))]
    found = codes(Atlas(governance=units(rows)))
    assert ("sibling_overlap", "a") in found
    assert ("not_inside_parent", "c") in found
    assert ("gap_in_parent", "C") in found
    assert ("unknown_parent", "d") in found
    assert ("unknown_level", "e") in found
    assert ("sibling_overlap", "b") not in found  # each pair reported once


def test_duplicates_empty_and_wrong_type():
    rows = [("C", None, "county", box(0, 0, 2, 1)),
            ("a", "C", "grid", box(0, 0, 1, 1)), ("a", "C", "grid", box(1, 0, 2, 1)),
            ("z", "C", "grid", shapely.Polygon()),
            ("p", "C", "grid", shapely.Point(0.5, 0.5))]
    found = codes(Atlas(governance=units(rows)))
    assert {("duplicate_id", "a"), ("empty_geometry", "z"), ("not_polygonal", "p")} <= found


def test_self_intersection_is_reported_and_repairable(tmp_path):
    rows = [("C", None, "county", box(0, 0, 1, 1)), ("g", "C", "grid", BOWTIE)]
    atlas = Atlas(governance=units(rows))
    found = validate_atlas(atlas)
    bad = [f for f in found if f.code == "invalid_geometry"]
    assert bad and bad[0].feature_id == "g" and "Self-intersection" in bad[0].message
    fixed, repaired = repair_atlas(atlas)
    assert repaired == {"governance": ["g"]}
    g = fixed.governance.set_index("id").geometry["g"]
    assert g.is_valid and g.geom_type == "MultiPolygon" and abs(g.area - 0.5) < 1e-12
    assert not [f for f in validate_atlas(fixed) if f.code == "invalid_geometry"]
    # the same through a file: loading does not crash, the finding survives the round trip
    path = tmp_path / "bad.geojson"
    write_atlas(Atlas(governance=units(rows)), str(path))
    assert "invalid_geometry" in {f.code for f in validate_atlas(load_atlas(str(path)))}


def test_crs_findings(tmp_path):
    gdf = gpd.GeoDataFrame([{"id": "C", "level": "county", "geometry": box(500000, 3.7e6,
                                                                            510000, 3.71e6)}],
                           geometry="geometry", crs=None)
    path = tmp_path / "nocrs.shp"  # a Shapefile without .prj declares no CRS
    gdf.to_file(path, driver="ESRI Shapefile")
    from geo.layers import load_layer
    layer = load_layer(LayerSpec(str(path), parent_field=None))
    found = {f.code for f in validate_atlas(Atlas(governance=layer))}
    assert {"crs_missing", "coords_out_of_range"} <= found
    utm = gdf.set_crs("EPSG:32649")
    mismatch = normalise(utm, LayerSpec("<t>", crs="EPSG:4490", parent_field=None))
    found = {f.code for f in validate_atlas(Atlas(governance=mismatch))}
    assert "crs_mismatch" in found
    assert "coords_out_of_range" not in found  # reprojected to lon/lat


def test_police_overlap_and_unknown_zone():
    atlas = two_by_two()
    atlas.police = normalise(gpd.GeoDataFrame(
        [{"id": "P1", "geometry": box(0, 0, 2, 1.5)}, {"id": "P2", "geometry": box(0, 1, 2, 2)}],
        geometry="geometry", crs="EPSG:4326"), LayerSpec("<t>", "police"))
    atlas.monitoring = normalise(gpd.GeoDataFrame(
        [{"id": "M1", "zone": "H9", "geometry": shapely.Point(1, 1)}],
        geometry="geometry", crs="EPSG:4326"), LayerSpec("<t>", "monitoring"))
    found = codes(atlas)
    assert ("sibling_overlap", "P1") in found and ("unknown_zone", "M1") in found
