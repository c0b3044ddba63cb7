"""Area queries (区域查询): which grids a polygon touches, and how much of each.

Used to fan a hazard-zone or storm warning out to every grid it touches. Shares are computed
in the atlas's metric CRS: ``grid_share`` is the part of the grid's area inside the polygon,
``area_share`` the part of the polygon's area inside the grid.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import shapely
from shapely.geometry.base import BaseGeometry

from geo.locate import Locator


@dataclass(frozen=True)
class AreaHit:
    """One grid touched by a query polygon."""

    grid_id: str
    grid_share: float
    area_share: float
    area_m2: float


def grids_in_area(locator: Locator, polygon: BaseGeometry, min_share: float = 0.0
                  ) -> list[AreaHit]:
    """Every grid whose polygon intersects `polygon` (WGS84), smallest code first."""
    cand = np.sort(locator.index.tree.query(polygon, predicate="intersects"))
    if not len(cand):
        return []
    # intersect in WGS84 (exact shared edges), measure areas in metres
    inter = shapely.area(locator.to_metric(shapely.intersection(locator.grid_geoms[cand], polygon)))
    grid_area = shapely.area(locator.grid_geoms_metric[cand])
    total = max(locator.to_metric(np.array([polygon], dtype=object))[0].area, 1e-12)
    hits = []
    for i, a, g in zip(cand.tolist(), inter.tolist(), grid_area.tolist(), strict=True):
        share = a / g if g > 0 else 0.0
        if share > min_share or (min_share == 0.0 and a >= 0.0):
            hits.append(AreaHit(str(locator.grid_ids[i]), share, a / total, a))
    return hits


def buffer_point(locator: Locator, lon: float, lat: float, radius_m: float) -> BaseGeometry:
    """A circle of `radius_m` metres around a WGS84 point, as a WGS84 polygon."""
    pt = locator.to_metric(np.array([shapely.Point(lon, lat)], dtype=object))[0]
    return locator.from_metric(np.array([pt.buffer(radius_m, 32)], dtype=object))[0]
