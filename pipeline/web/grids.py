"""Grid polygons as GeoJSON for the map, simplified per zoom level and cached, and unit paths
for scope checks (a unit's path: its codes from the top level down)."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import orjson
import shapely

from pipeline.web.auth import Principal


def simplified(geoms: list, tolerance: float) -> list:
    """Grid polygons simplified together (`coverage_simplify`: neighbours keep one shared edge,
    no gaps or overlaps at low zoom) and rounded to 6 decimals (~0.1 m)."""
    if not geoms:
        return []
    arr = shapely.from_wkb(shapely.to_wkb(geoms))
    try:
        arr = shapely.coverage_simplify(arr, tolerance)
    except Exception:  # not a clean coverage (an atlas with overlaps): each on its own
        arr = shapely.simplify(arr, tolerance, preserve_topology=True)
    return list(shapely.set_precision(arr, 1e-6))


class GridShapes:
    """The atlas's leaf grids (网格) and every unit's path."""

    def __init__(self, atlas: Any) -> None:
        self.features: list[tuple[str, str, tuple[str, ...], Any]] = []
        self.paths: dict[str, tuple[str, ...]] = {}
        self.names: dict[str, str] = {}  # every unit's name (镇, 村/社区, 网格), for people
        if atlas is None:
            return
        gov = atlas.governance
        self.names = {str(i): str(n) for i, n in zip(gov["id"], gov["name"], strict=True) if n}
        parent = dict(zip(gov["id"].astype(str), gov["parent"], strict=True))
        for unit in parent:
            chain, cur = [], unit
            while cur is not None and cur not in chain and len(chain) < 16:
                chain.append(cur)
                cur = parent.get(cur)
            self.paths[unit] = tuple(reversed(chain))
        leaf = set(parent) - {p for p in parent.values() if p is not None}
        for row in gov.itertuples():
            if str(row.id) in leaf:
                self.features.append((str(row.id), str(row.name or ""), self.paths[str(row.id)],
                                      row.geometry))
        self._cached = lru_cache(maxsize=32)(self._build)

    def path_of(self, unit: str) -> tuple[str, ...]:
        return self.paths.get(unit, (unit,))

    def grid_at(self, lon: float, lat: float) -> str | None:
        """The leaf grid a WGS84 point falls in (None outside every grid, or without an atlas)."""
        if not self.features:
            return None
        tree = getattr(self, "_tree", None)
        if tree is None:
            tree = self._tree = shapely.STRtree([f[3] for f in self.features])
        hits = tree.query(shapely.Point(lon, lat), predicate="intersects")
        return self.features[int(min(hits))][0] if len(hits) else None

    def geojson(self, zoom: int, who: Principal) -> bytes:
        """A FeatureCollection of the grids the principal may see, simplified for `zoom`."""
        if not self.features:
            return b'{"type":"FeatureCollection","features":[]}'
        scope = None if who.sees_all else who.scope
        return self._cached(zoom, scope)

    def _build(self, zoom: int, scope: str | None) -> bytes:
        # about half a screen pixel at this zoom (256-pixel tiles), in degrees
        tolerance = 360.0 / (256 * 2**zoom) / 2
        rows = [f for f in self.features if scope is None or scope in f[2]]
        geoms = simplified([f[3] for f in rows], tolerance)
        feats = [{"type": "Feature", "id": code,
                  "properties": {"grid_id": code, "name": name, "path": list(path)},
                  "geometry": orjson.loads(shapely.to_geojson(g))}
                 for (code, name, path, _), g in zip(rows, geoms, strict=True)]
        return orjson.dumps({"type": "FeatureCollection", "features": feats,
                             "zoom": zoom, "tolerance_deg": tolerance})
