"""Validate layers (图层校验) feature by feature, and repair invalid polygons on request.

Every finding names its code, severity, layer, feature and a sentence an operator can act on.
Codes: ``empty_geometry``, ``invalid_geometry``, ``not_polygonal``, ``duplicate_id``,
``unknown_level``, ``unknown_parent``, ``not_inside_parent``, ``sibling_overlap``,
``gap_in_parent``, ``crs_missing``, ``crs_mismatch``, ``coords_out_of_range``,
``unknown_zone`` (a monitoring point naming a hazard zone that does not exist).

Area tolerances are relative (a share of the smaller feature's or the parent's area), so the
same figure works for a county and for a micro-grid; the default 1e-4 is 0.01 %.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field

import geopandas as gpd
import numpy as np
import shapely

from geo.hierarchy import level_rank
from geo.layers import LEVELS, Atlas

DEFAULT_TOLERANCE = 1e-4


@dataclass(frozen=True)
class Finding:
    """One thing wrong with one feature (or a pair of features)."""

    code: str
    severity: str  # "error" or "warning"
    layer: str
    feature_id: str | None
    message: str
    detail: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        """JSON-ready form."""
        return asdict(self)


def _polygonal(g: shapely.Geometry) -> shapely.Geometry:
    parts = [p for p in shapely.get_parts(g) if p.geom_type in ("Polygon", "MultiPolygon")]
    if not parts:
        return shapely.Polygon()
    return shapely.union_all(parts) if len(parts) > 1 else parts[0]


def repair(gdf: gpd.GeoDataFrame) -> tuple[gpd.GeoDataFrame, list[str]]:
    """Make invalid polygons valid (``make_valid``), keeping only their polygonal parts."""
    geoms = gdf.geometry.to_numpy()
    bad = np.flatnonzero(~shapely.is_valid(geoms) & ~shapely.is_empty(geoms))
    if not len(bad):
        return gdf, []
    fixed = geoms.copy()
    fixed[bad] = [_polygonal(g) for g in shapely.make_valid(geoms[bad])]
    out = gdf.copy()
    out = out.set_geometry(gpd.GeoSeries(fixed, crs=gdf.crs, index=gdf.index))
    return out, gdf["id"].to_numpy()[bad].astype(str).tolist()


def _crs_findings(gdf: gpd.GeoDataFrame, layer: str) -> list[Finding]:
    out = []
    if gdf.attrs.get("assumed_crs"):
        out.append(Finding("crs_missing", "warning", layer, None,
                           f"the file declares no CRS; assumed {gdf.attrs['assumed_crs']}"))
    if gdf.attrs.get("crs_mismatch"):
        have, want = gdf.attrs["crs_mismatch"]
        out.append(Finding("crs_mismatch", "error", layer, None,
                           f"the file declares {have} but the layer spec says {want}"))
    if len(gdf):
        xmin, ymin, xmax, ymax = gdf.total_bounds
        if xmin < -180 or xmax > 180 or ymin < -90 or ymax > 90:
            out.append(Finding("coords_out_of_range", "error", layer, None,
                               f"coordinates {xmin:.1f},{ymin:.1f} .. {xmax:.1f},{ymax:.1f} are "
                               "not longitude/latitude: wrong or missing CRS?"))
    return out


def _geometry_findings(gdf: gpd.GeoDataFrame, layer: str, polygons: bool) -> list[Finding]:
    out = []
    ids = gdf["id"].astype(str).tolist()
    geoms = gdf.geometry.to_numpy()
    for code, n in sorted(Counter(ids).items()):
        if n > 1:
            out.append(Finding("duplicate_id", "error", layer, code, f"id {code} is used {n} times"))
    missing = shapely.is_missing(geoms) | shapely.is_empty(geoms)
    for i in np.flatnonzero(missing):
        out.append(Finding("empty_geometry", "error", layer, ids[i], "feature has no geometry"))
    kinds = shapely.get_type_id(geoms)
    want = (3, 6) if polygons else (0, 4)
    for i in np.flatnonzero(~missing & ~np.isin(kinds, want)):
        out.append(Finding("not_polygonal" if polygons else "not_point", "error", layer, ids[i],
                           f"geometry is a {shapely.get_type_id(geoms[i])} "
                           f"({geoms[i].geom_type}), expected "
                           f"{'Polygon/MultiPolygon' if polygons else 'Point'}"))
    invalid = ~missing & ~shapely.is_valid(geoms)
    for i in np.flatnonzero(invalid):
        out.append(Finding("invalid_geometry", "error", layer, ids[i],
                           f"invalid geometry: {shapely.is_valid_reason(geoms[i])}; "
                           "repair with --repair (make_valid, polygonal parts kept)"))
    return out


def _overlaps(geoms: np.ndarray, ids: list[str], layer: str, tol: float,
              same_group: np.ndarray | None = None) -> list[Finding]:
    tree = shapely.STRtree(geoms)
    a, b = tree.query(geoms, predicate="intersects")
    keep = a < b
    if same_group is not None:
        keep &= same_group[a] == same_group[b]
    a, b = a[keep], b[keep]
    if not len(a):
        return []
    interior = shapely.relate_pattern(geoms[a], geoms[b], "2********")
    a, b = a[interior], b[interior]
    inter = shapely.area(shapely.intersection(geoms[a], geoms[b]))
    smaller = np.minimum(shapely.area(geoms[a]), shapely.area(geoms[b]))
    out = []
    for i, j, ar, sm in zip(a, b, inter, smaller, strict=True):
        share = ar / sm if sm > 0 else 1.0
        if share > tol:
            out.append(Finding("sibling_overlap", "error", layer, ids[i],
                               f"{ids[i]} overlaps {ids[j]} by {share:.4%} of the smaller one",
                               {"other": ids[j], "share": round(float(share), 6)}))
    return out


def _hierarchy_findings(gdf: gpd.GeoDataFrame, tol: float) -> list[Finding]:
    out: list[Finding] = []
    ids = gdf["id"].astype(str).tolist()
    geoms = gdf.geometry.to_numpy()
    ok = ~(shapely.is_missing(geoms) | shapely.is_empty(geoms)) & shapely.is_valid(geoms)
    by_id = {c: i for i, c in enumerate(ids)}
    levels = gdf["level"].tolist()
    parents = gdf["parent"].tolist()
    for i, lv in enumerate(levels):
        if lv not in LEVELS:
            out.append(Finding("unknown_level", "error", "governance", ids[i],
                               f"level {lv!r} is not one of {', '.join(LEVELS)}"))
    top = min(level_rank(lv) for lv in levels) if levels else 0
    for i, p in enumerate(parents):
        if p is None:
            if level_rank(levels[i]) > top:
                out.append(Finding("unknown_parent", "error", "governance", ids[i],
                                   f"{levels[i]} {ids[i]} has no parent and none contains it"))
            continue
        if p not in by_id:
            out.append(Finding("unknown_parent", "error", "governance", ids[i],
                               f"parent {p} of {ids[i]} is not in the layer"))
            continue
        j = by_id[p]
        if ok[i] and ok[j]:
            outside = shapely.difference(geoms[i], geoms[j]).area
            share = outside / geoms[i].area if geoms[i].area > 0 else 0.0
            if share > tol:
                out.append(Finding("not_inside_parent", "error", "governance", ids[i],
                                   f"{share:.4%} of {ids[i]} lies outside its parent {p}",
                                   {"parent": p, "share": round(float(share), 6)}))
    group = np.array([f"{lv}|{p}" for lv, p in zip(levels, parents, strict=True)])
    okidx = np.flatnonzero(ok)
    out += _overlaps(geoms[okidx], [ids[i] for i in okidx], "governance", tol, group[okidx])
    children: dict[str, list[int]] = {}
    for i, p in enumerate(parents):
        if p is not None and ok[i]:
            children.setdefault(p, []).append(i)
    for p, kids in sorted(children.items()):
        j = by_id.get(p)
        if j is None or not ok[j]:
            continue
        covered = shapely.union_all(geoms[kids])
        gap = shapely.difference(geoms[j], covered)
        share = gap.area / geoms[j].area if geoms[j].area > 0 else 0.0
        if share > tol:
            rp = shapely.point_on_surface(gap)
            out.append(Finding("gap_in_parent", "error", "governance", p,
                               f"{share:.4%} of {p} is covered by none of its children, "
                               f"e.g. near {rp.x:.6f},{rp.y:.6f}",
                               {"share": round(float(share), 6), "near": [rp.x, rp.y]}))
    return out


def validate_atlas(atlas: Atlas, tolerance: float = DEFAULT_TOLERANCE) -> list[Finding]:
    """Every finding for every layer of an atlas."""
    out: list[Finding] = []
    for name, gdf in atlas.layers().items():
        out += _crs_findings(gdf, name)
        out += _geometry_findings(gdf, name, polygons=name != "monitoring")
    out += _hierarchy_findings(atlas.governance, tolerance)
    if atlas.police is not None:
        g = atlas.police
        valid = shapely.is_valid(g.geometry.to_numpy()) & ~shapely.is_empty(g.geometry.to_numpy())
        ids = g["id"].astype(str).to_numpy()
        out += _overlaps(g.geometry.to_numpy()[valid], ids[valid].tolist(), "police", tolerance)
    if atlas.monitoring is not None and "zone" in atlas.monitoring.columns:
        zones = set(atlas.hazard["id"]) if atlas.hazard is not None else set()
        for code, z in zip(atlas.monitoring["id"], atlas.monitoring["zone"], strict=True):
            if z is not None and z not in zones:
                out.append(Finding("unknown_zone", "error", "monitoring", str(code),
                                   f"monitoring point {code} names hazard zone {z}, "
                                   "which is not in the hazard layer"))
    return out


def repair_atlas(atlas: Atlas) -> tuple[Atlas, dict[str, list[str]]]:
    """Repair invalid polygons in every polygon layer; returns what was repaired per layer."""
    repaired: dict[str, list[str]] = {}
    for name in ("governance", "police", "hazard"):
        gdf = getattr(atlas, name)
        if gdf is None:
            continue
        fixed, ids = repair(gdf)
        if ids:
            setattr(atlas, name, fixed)
            repaired[name] = ids
    return atlas, repaired
