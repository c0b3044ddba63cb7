"""The governance hierarchy (层级): parents, ancestor paths, and parents derived by containment."""

from __future__ import annotations

import itertools

import geopandas as gpd
import numpy as np
import shapely

from geo.layers import LEVELS


def level_rank(level: str) -> int:
    """Depth of a level name (city=0 ... microgrid=5); unknown levels sort last."""
    return LEVELS.index(level) if level in LEVELS else len(LEVELS)


def leaf_level(gdf: gpd.GeoDataFrame) -> str:
    """The deepest governance level present (usually ``grid``, or ``microgrid``)."""
    return max(gdf["level"].unique(), key=level_rank)


def derive_parents(gdf: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """Fill missing ``parent`` values by containment in the next level up.

    A feature's parent is the feature one level higher that covers its point-on-surface; the
    smallest code wins if several do (a sign of overlapping parents, which validation reports).
    """
    out = gdf.copy()
    ranks = np.array([level_rank(lv) for lv in out["level"]])
    present = sorted(set(ranks.tolist()))
    parents = list(out["parent"])
    for upper, lower in itertools.pairwise(present):
        up = out[ranks == upper].sort_values("id")
        low_pos = np.flatnonzero((ranks == lower) & np.array([p is None for p in parents]))
        if not len(up) or not len(low_pos):
            continue
        tree = shapely.STRtree(up.geometry.values)
        reps = shapely.point_on_surface(out.geometry.values[low_pos])
        src, dst = tree.query(reps, predicate="within")
        order = np.lexsort((dst, src))
        src, dst = src[order], dst[order]
        first = np.flatnonzero(np.r_[True, src[1:] != src[:-1]]) if len(src) else src
        up_ids = up["id"].to_numpy()
        for s, d in zip(src[first], dst[first], strict=True):
            parents[low_pos[s]] = up_ids[d]
    out["parent"] = parents
    return out


def ancestor_paths(gdf: gpd.GeoDataFrame) -> dict[str, tuple[str, ...]]:
    """For every feature, its codes from the top of the hierarchy down to itself."""
    parent = dict(zip(gdf["id"], gdf["parent"], strict=True))
    paths: dict[str, tuple[str, ...]] = {}
    for code in parent:
        chain = [code]
        seen = {code}
        p = parent.get(code)
        while p is not None and p in parent and p not in seen:
            chain.append(p)
            seen.add(p)
            p = parent.get(p)
        paths[code] = tuple(reversed(chain))
    return paths
