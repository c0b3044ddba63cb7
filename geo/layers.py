"""Grid layers (图层): governance hierarchy, police grids (警格), hazard zones, monitoring points.

A layer is read from GeoJSON, GeoPackage or Shapefile through geopandas/pyogrio and normalised
into a GeoDataFrame in EPSG:4326 with the standard columns ``id``, ``parent``, ``level``,
``name`` and ``geometry`` (plus whatever else the file carries). A `LayerSpec` says which
source fields hold these and which CRS to assume when the file declares none.

An `Atlas` is the set of layers one deployment routes by. Its file form ("atlas file") is
either a GeoPackage with the layers ``governance``, ``police``, ``hazard`` and ``monitoring``,
or one GeoJSON FeatureCollection whose features carry a ``layer`` property.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import geopandas as gpd
import orjson
import pandas as pd
import shapely

from geo.errors import LayerReadError, LayerSchemaError

#: Governance levels from the top down (市 > 区/县 > 镇/街道 > 社区/村 > 网格 > 微网格).
LEVELS: tuple[str, ...] = ("city", "county", "town", "community", "grid", "microgrid")
LayerKind = Literal["governance", "police", "hazard", "monitoring"]
ATLAS_LAYERS: tuple[LayerKind, ...] = ("governance", "police", "hazard", "monitoring")
STANDARD_COLUMNS = ("id", "parent", "level", "name")
_SUFFIXES = {".geojson": "GeoJSON", ".json": "GeoJSON", ".gpkg": "GPKG", ".shp": "ESRI Shapefile"}


@dataclass(frozen=True)
class LayerSpec:
    """How to read one layer: where it is and which source fields mean what."""

    path: str
    kind: LayerKind = "governance"
    layer: str | None = None  # layer name inside a GeoPackage
    id_field: str = "id"
    parent_field: str | None = "parent"  # None: derive parents by containment
    level_field: str | None = "level"
    level: str | None = None  # a fixed level for every feature (overrides level_field)
    name_field: str | None = "name"
    crs: str | None = None  # CRS to assume when the file declares none


@dataclass
class Atlas:
    """The layers one deployment routes by; only ``governance`` is required."""

    governance: gpd.GeoDataFrame
    police: gpd.GeoDataFrame | None = None
    hazard: gpd.GeoDataFrame | None = None
    monitoring: gpd.GeoDataFrame | None = None
    meta: dict = field(default_factory=dict)

    def layers(self) -> dict[str, gpd.GeoDataFrame]:
        """The present layers by name."""
        return {k: v for k in ATLAS_LAYERS if (v := getattr(self, k)) is not None}


def _format_of(path: str) -> str:
    suffix = Path(path).suffix.lower()
    if suffix not in _SUFFIXES:
        raise LayerReadError(
            f"{path}: unsupported format {suffix or '(no suffix)'}; "
            "use .geojson, .gpkg or .shp"
        )
    return _SUFFIXES[suffix]


def read_vector(path: str, layer: str | None = None) -> gpd.GeoDataFrame:
    """Read a vector file with a readable error for missing or broken files."""
    if not os.path.exists(path):
        raise LayerReadError(f"{path}: no such file")
    _format_of(path)
    try:
        return gpd.read_file(path, layer=layer, engine="pyogrio")
    except Exception as exc:  # pyogrio raises many types; all mean "cannot read"
        raise LayerReadError(f"{path}: cannot read as a vector layer ({exc})") from exc


def normalise(gdf: gpd.GeoDataFrame, spec: LayerSpec) -> gpd.GeoDataFrame:
    """Rename the spec's fields to the standard columns and reproject to EPSG:4326.

    The original CRS is kept in ``gdf.attrs['source_crs']`` and the spec's assumption, if one
    was needed, in ``gdf.attrs['assumed_crs']`` so validation can report it.
    """
    required = [("id", spec.id_field)]
    if spec.kind == "governance" and spec.parent_field:
        required.append(("parent", spec.parent_field))  # None: parents derived by containment
    for label, fname in required:
        if fname not in gdf.columns:
            raise LayerSchemaError(
                f"{spec.path}: field {fname!r} ({label}) not found; fields are "
                f"{sorted(c for c in gdf.columns if c != 'geometry')}"
            )
    out = gdf.copy()
    out.attrs = {}
    source_crs = gdf.crs.to_string() if gdf.crs is not None else None
    if source_crs is None:
        out = out.set_crs(spec.crs or "EPSG:4326", allow_override=True)
        out.attrs["assumed_crs"] = spec.crs or "EPSG:4326"
    out.attrs["source_crs"] = source_crs
    if spec.crs and source_crs and gpd.GeoSeries(crs=spec.crs).crs != gdf.crs:
        out.attrs["crs_mismatch"] = (source_crs, spec.crs)
    if out.crs is not None and not out.crs.equals("EPSG:4326"):
        out = out.to_crs("EPSG:4326")
    renames = {spec.id_field: "id"}
    if spec.parent_field and spec.parent_field in gdf.columns:
        renames[spec.parent_field] = "parent"
    if spec.level_field and not spec.level and spec.level_field in gdf.columns:
        renames[spec.level_field] = "level"
    if spec.name_field and spec.name_field in gdf.columns:
        renames[spec.name_field] = "name"
    clash = [c for c in STANDARD_COLUMNS if c in out.columns and c not in renames.values()
             and c not in renames]
    out = out.drop(columns=clash).rename(columns=renames)
    out["id"] = out["id"].astype(str)
    if "parent" not in out.columns:
        out["parent"] = None
    out["parent"] = pd.Series([None if _blank(p) else str(p) for p in out["parent"]],
                              index=out.index, dtype=object)
    if spec.level:
        out["level"] = spec.level
    elif "level" not in out.columns:
        out["level"] = "grid" if spec.kind == "governance" else spec.kind
    if "name" not in out.columns:
        out["name"] = out["id"]
    out["name"] = out["name"].fillna(out["id"]).astype(str)
    out.attrs["kind"] = spec.kind
    return out


def _blank(v: object) -> bool:
    return v is None or v == "" or (isinstance(v, float) and pd.isna(v))


def load_layer(spec: LayerSpec) -> gpd.GeoDataFrame:
    """Read and normalise one layer."""
    return normalise(read_vector(spec.path, spec.layer), spec)


def load_atlas(path: str) -> Atlas:
    """Read an atlas file (GeoPackage with named layers, or GeoJSON with a ``layer`` field)."""
    fmt = _format_of(path)
    if not os.path.exists(path):
        raise LayerReadError(f"{path}: no such file")
    found: dict[str, gpd.GeoDataFrame] = {}
    if fmt == "GPKG":
        import pyogrio

        names = {row[0] for row in pyogrio.list_layers(path)}
        for kind in ATLAS_LAYERS:
            if kind in names:
                found[kind] = read_vector(path, kind)
    else:
        gdf = read_vector(path)
        if "layer" not in gdf.columns:
            found["governance"] = gdf
        else:
            for kind in ATLAS_LAYERS:
                part = gdf[gdf["layer"] == kind].drop(columns=["layer"])
                if len(part):
                    found[kind] = part.reset_index(drop=True)
    if "governance" not in found:
        raise LayerSchemaError(f"{path}: no governance layer (the grids) in this atlas file")
    layers = {k: normalise(v, LayerSpec(path=path, kind=k)) for k, v in found.items()}
    return Atlas(**layers)


def _feature_rows(kind: str, gdf: gpd.GeoDataFrame) -> list[dict]:
    rows = []
    props_cols = [c for c in gdf.columns if c != "geometry"]
    records = gdf[props_cols].to_dict("records")
    geoms = shapely.to_geojson(gdf.geometry.values)
    for rec, geom in zip(records, geoms, strict=True):
        props = {"layer": kind}
        for k, v in rec.items():
            if v is None or (isinstance(v, float) and pd.isna(v)):
                props[k] = None
            elif hasattr(v, "item"):
                props[k] = v.item()
            else:
                props[k] = v
        rows.append({"type": "Feature", "properties": props, "geometry": orjson.loads(geom)})
    return rows


def write_atlas(atlas: Atlas, path: str, precision: int = 7) -> None:
    """Write an atlas as GeoPackage (.gpkg) or one deterministic GeoJSON file.

    The GeoJSON form is byte-identical for identical input: features in layer order, keys
    sorted, coordinates rounded to `precision` decimals (1e-7 degrees is about 1 cm).
    """
    fmt = _format_of(path)
    layers = atlas.layers()
    if fmt == "GPKG":
        if os.path.exists(path):
            os.remove(path)
        for kind, gdf in layers.items():
            gdf.to_file(path, layer=kind, driver="GPKG", engine="pyogrio")
        return
    if fmt != "GeoJSON":
        raise LayerReadError(f"{path}: atlas output must be .geojson or .gpkg")
    features = []
    for kind, gdf in layers.items():
        geoms = gdf.geometry.to_numpy().copy()
        valid = shapely.is_valid(geoms)  # invalid ones are written as they are, to be reported
        geoms[valid] = shapely.set_precision(geoms[valid], 10.0**-precision)
        rounded = gdf.set_geometry(gpd.GeoSeries(geoms, index=gdf.index, crs=gdf.crs))
        features.extend(_feature_rows(kind, rounded))
    doc = {"type": "FeatureCollection", "name": "gridwatch-atlas",
           "meta": atlas.meta, "features": features}
    Path(path).write_bytes(orjson.dumps(doc, option=orjson.OPT_SORT_KEYS) + b"\n")
