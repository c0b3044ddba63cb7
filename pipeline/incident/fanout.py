"""Area fan-out (区域联动): the grids, households and people under care a hazard zone touches.

Built on `geo.area.grids_in_area`, so a zone incident reaches exactly the grids the zone's
polygon intersects; each child carries the grid's household count (when the atlas has one) and
the registered people under care living there, to check or evacuate.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import lru_cache
from typing import Any

from geo.area import grids_in_area
from geo.locate import Locator


def zone_grids_from(locator: Locator, subjects: Mapping[str, Any]) -> Callable[[str], list[dict]]:
    """A zone id -> [{grid_id, path, households, subjects, share}] function for `IncidentHost`."""
    hazards = locator.hazards
    households: dict[str, int] = {}
    if "households" in locator.units.columns:
        households = {str(k): int(v) for k, v in zip(locator.units["id"], locator.units["households"],
                                                        strict=True) if v == v and v is not None}

    @lru_cache(maxsize=1024)
    def area(zone: str) -> tuple[tuple[str, float], ...]:
        if hazards is None:
            return ()
        rows = hazards[hazards["id"].astype(str) == zone]
        if rows.empty:
            return ()
        hits = grids_in_area(locator, rows.geometry.iloc[0])
        return tuple((h.grid_id, round(h.grid_share, 4)) for h in hits)

    def zone_grids(zone: str) -> list[dict]:
        out = []
        for grid, share in area(zone):
            info = locator.grids[locator.by_code[grid]]
            out.append({"grid_id": grid, "path": list(info.path), "share": share,
                        "households": households.get(grid),
                        "subjects": sorted(s.subject_id for s in subjects.values() if s.grid_id == grid)})
        return out

    return zone_grids
