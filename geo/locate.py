"""Locate points (定位): grid, its full parent path, police grid (警格) and hazard zones.

`Locator.locate` takes arrays of WGS84 longitude/latitude and answers for the whole batch at
once; `Locator.locate_one` is the scalar path. A point outside every grid is *unlocated*; with
``snap_m > 0`` it is snapped to the nearest grid within that many metres and flagged as
snapped. Nothing is dropped: callers route unlocated points to triage.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import geopandas as gpd
import numpy as np
import pyproj
import shapely
from numpy.typing import NDArray

from geo.coords import metric_crs
from geo.hierarchy import ancestor_paths, derive_parents, leaf_level
from geo.index import NONE, PolygonIndex
from geo.layers import Atlas


@dataclass(frozen=True)
class GridInfo:
    """What the pipeline attaches to a located event for one grid."""

    code: str
    name: str
    path: tuple[str, ...]  # codes from the top level down to this grid
    names: tuple[str, ...]


@dataclass
class LocateResult:
    """Batch answer; index arrays refer to `Locator.grids`, `.police_ids`, `.hazard_ids`."""

    grid: NDArray[np.int32]  # -1: unlocated
    snapped: NDArray[np.bool_]
    snap_distance_m: NDArray[np.float64]
    police: NDArray[np.int32]
    hazard_points: NDArray[np.int64]  # (point, zone) pairs, grouped by point
    hazard_zones: NDArray[np.int32]

    def hazards_of(self) -> list[list[int]]:
        """Hazard zone indices per point."""
        out: list[list[int]] = [[] for _ in range(len(self.grid))]
        for p, z in zip(self.hazard_points.tolist(), self.hazard_zones.tolist(), strict=True):
            out[p].append(z)
        return out


def _sorted(gdf: gpd.GeoDataFrame | None) -> gpd.GeoDataFrame | None:
    if gdf is None or not len(gdf):
        return None
    return gdf.sort_values("id", kind="stable").reset_index(drop=True)


class Locator:
    """Point location over an atlas. Build once per worker; reuse for every batch."""

    def __init__(self, atlas: Atlas, snap_m: float = 0.0, cells_per_polygon: int = 32) -> None:
        gov = derive_parents(atlas.governance)
        leaf = leaf_level(gov)
        grids = _sorted(gov[gov["level"] == leaf])
        assert grids is not None
        self.snap_m = float(snap_m)
        self.leaf_level = leaf
        self.grid_ids: NDArray[np.str_] = grids["id"].to_numpy(dtype=str)
        self.grid_geoms = grids.geometry.to_numpy()
        self.index = PolygonIndex(self.grid_geoms, cells_per_polygon)
        paths = ancestor_paths(gov)
        name_of = dict(zip(gov["id"], gov["name"], strict=True))
        self.grids: list[GridInfo] = [
            GridInfo(code, name_of[code], paths[code], tuple(name_of[c] for c in paths[code]))
            for code in self.grid_ids.tolist()
        ]
        self.by_code = {g.code: i for i, g in enumerate(self.grids)}
        self.units = gov
        police = _sorted(atlas.police)
        self.police_ids = police["id"].to_numpy(dtype=str) if police is not None else np.array([])
        self.police_index = PolygonIndex(police.geometry.to_numpy()) if police is not None else None
        hazard = _sorted(atlas.hazard)
        self.hazard_ids = hazard["id"].to_numpy(dtype=str) if hazard is not None else np.array([])
        self.hazards = hazard
        self.hazard_index = PolygonIndex(hazard.geometry.to_numpy(), 256) if hazard is not None else None
        cx, cy = shapely.centroid(shapely.union_all(shapely.envelope(self.grid_geoms))).coords[0]
        self.metric_crs = metric_crs(cx, cy)

    @cached_property
    def _to_metric(self) -> pyproj.Transformer:
        return pyproj.Transformer.from_crs("EPSG:4326", self.metric_crs, always_xy=True)

    @cached_property
    def _from_metric(self) -> pyproj.Transformer:
        return pyproj.Transformer.from_crs(self.metric_crs, "EPSG:4326", always_xy=True)

    def to_metric(self, geoms: NDArray[np.object_]) -> NDArray[np.object_]:
        """Project WGS84 geometries into the atlas's metric CRS."""
        return shapely.transform(geoms, lambda xy: np.column_stack(
            self._to_metric.transform(xy[:, 0], xy[:, 1])))

    def from_metric(self, geoms: NDArray[np.object_]) -> NDArray[np.object_]:
        """Project metric geometries back to WGS84."""
        return shapely.transform(geoms, lambda xy: np.column_stack(
            self._from_metric.transform(xy[:, 0], xy[:, 1])))

    @cached_property
    def grid_geoms_metric(self) -> NDArray[np.object_]:
        """Grid polygons in metres (for snapping and area shares)."""
        return self.to_metric(self.grid_geoms)

    @cached_property
    def _metric_tree(self) -> shapely.STRtree:
        return shapely.STRtree(self.grid_geoms_metric)

    def snap(self, lon: NDArray, lat: NDArray) -> tuple[NDArray[np.int32], NDArray[np.float64]]:
        """Nearest grid within ``snap_m`` metres for each point (-1 where none)."""
        out = np.full(len(lon), NONE, dtype=np.int32)
        dist = np.full(len(lon), np.nan)
        if self.snap_m <= 0 or not len(lon):
            return out, dist
        mx, my = self._to_metric.transform(np.asarray(lon), np.asarray(lat))
        pts = shapely.points(mx, my)
        (src, dst), d = self._metric_tree.query_nearest(
            pts, max_distance=self.snap_m, return_distance=True, all_matches=True)
        order = np.lexsort((dst, src))
        src, dst, d = src[order], dst[order], d[order]
        if len(src):
            first = np.flatnonzero(np.r_[True, src[1:] != src[:-1]])
            out[src[first]] = dst[first]
            dist[src[first]] = d[first]
        return out, dist

    def locate(self, lon: NDArray, lat: NDArray) -> LocateResult:
        """Locate a batch of WGS84 points."""
        lon = np.asarray(lon, dtype=float)
        lat = np.asarray(lat, dtype=float)
        grid = self.index.locate(lon, lat)
        snapped = np.zeros(len(lon), dtype=bool)
        dist = np.zeros(len(lon))
        miss = np.flatnonzero(grid < 0)
        if len(miss) and self.snap_m > 0:
            g, d = self.snap(lon[miss], lat[miss])
            ok = g >= 0
            grid[miss[ok]] = g[ok]
            snapped[miss[ok]] = True
            dist[miss[ok]] = d[ok]
        police = (self.police_index.locate(lon, lat) if self.police_index is not None
                  else np.full(len(lon), NONE, dtype=np.int32))
        if self.hazard_index is not None:
            hp, hz = self.hazard_index.locate_all(lon, lat)
        else:
            hp, hz = np.zeros(0, np.int64), np.zeros(0, np.int32)
        return LocateResult(grid, snapped, dist, police, hp, hz)

    def locate_one(self, lon: float, lat: float) -> GridInfo | None:
        """The grid of one point, or None if unlocated (no snapping: use `locate` for that)."""
        i = self.index.locate_one(lon, lat)
        return self.grids[i] if i >= 0 else None
