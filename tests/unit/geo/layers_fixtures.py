"""Small hand-made layers for geo tests."""

from __future__ import annotations

import geopandas as gpd
import shapely

from geo.layers import Atlas, LayerSpec, normalise


def units(rows: list[tuple[str, str | None, str, shapely.Geometry]]) -> gpd.GeoDataFrame:
    """A governance layer from (id, parent, level, geometry) rows."""
    gdf = gpd.GeoDataFrame(
        [{"id": i, "parent": p, "level": lv, "name": f"n{i}", "geometry": g}
         for i, p, lv, g in rows], geometry="geometry", crs="EPSG:4326")
    return normalise(gdf, LayerSpec("<test>"))


def box(x0: float, y0: float, x1: float, y1: float) -> shapely.Polygon:
    return shapely.box(x0, y0, x1, y1)


def two_by_two() -> Atlas:
    """County 0..2 x 0..2 with one town, one community and four 1x1 grids."""
    rows = [("C", None, "county", box(0, 0, 2, 2)), ("T", "C", "town", box(0, 0, 2, 2)),
            ("M", "T", "community", box(0, 0, 2, 2)),
            ("g4", "M", "grid", box(1, 1, 2, 2)), ("g1", "M", "grid", box(0, 0, 1, 1)),
            ("g2", "M", "grid", box(1, 0, 2, 1)), ("g3", "M", "grid", box(0, 1, 1, 2))]
    police = gpd.GeoDataFrame([{"id": "P1", "geometry": box(0, 0, 2, 1)},
                               {"id": "P2", "geometry": box(0, 1, 2, 2)}],
                              geometry="geometry", crs="EPSG:4326")
    hazard = gpd.GeoDataFrame([{"id": "H1", "risk": "high", "geometry": box(0.5, 0.5, 1.5, 1.5)},
                               {"id": "H2", "risk": "low", "geometry": box(0.9, 0.9, 1.1, 1.1)}],
                              geometry="geometry", crs="EPSG:4326")
    return Atlas(governance=units(rows), police=normalise(police, LayerSpec("<t>", "police")),
                 hazard=normalise(hazard, LayerSpec("<t>", "hazard")))
