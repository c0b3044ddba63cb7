"""Map layers for the command center (图层): towns and villages outlined, hazard zones coloured by
their current level, monitoring points with their state, police grids.

Geometry comes from the atlas once (simplified per zoom, 6 decimals, cached); state comes from
the board at request time: a hazard zone's level is the severity of its open ``landslide``
incident (blue/yellow/orange/red, none), a monitoring point is ``stale`` while a
``sensor_stale`` incident is open for it, ``offline`` while a ``device_offline`` one is, else
``ok``. Scoped callers get the units of their subtree only; zones and points are shown when
they touch it.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import orjson
import shapely

from pipeline.web.auth import Principal

KINDS = ("towns", "villages", "hazards", "points", "police")
OPEN = frozenset({"dispatched", "acknowledged", "on_site"})


class MapLayers:
    """The atlas's non-grid layers as GeoJSON, with live state from the board."""

    def __init__(self, atlas: Any, paths: dict[str, tuple[str, ...]]) -> None:
        self.rows: dict[str, list[tuple[str, str, Any, dict]]] = {k: [] for k in KINDS}
        if atlas is None:
            return
        gov = atlas.governance
        for row in gov.itertuples():
            kind = {"town": "towns", "community": "villages"}.get(str(row.level))
            if kind:
                self.rows[kind].append((str(row.id), str(row.name or ""), row.geometry,
                                        {"path": list(paths.get(str(row.id), ()))}))
        for kind, layer in (("hazards", atlas.hazard), ("police", atlas.police),
                            ("points", atlas.monitoring)):
            if layer is None:
                continue
            for row in layer.itertuples():
                extra = {k: getattr(row, k) for k in ("risk", "zone", "kind") if hasattr(row, k)}
                self.rows[kind].append((str(row.id), str(row.name or ""), row.geometry,
                                        {k: str(v) for k, v in extra.items() if v is not None}))
        self._geometry = lru_cache(maxsize=64)(self._build)

    def _build(self, kind: str, zoom: int) -> list[tuple[str, str, dict, dict]]:
        tolerance = 360.0 / (256 * 2**zoom) / 2
        rows = self.rows[kind]
        geoms = shapely.set_precision(shapely.simplify([r[2] for r in rows], tolerance,
                                                       preserve_topology=True), 1e-6) if rows else []
        return [(code, name, orjson.loads(shapely.to_geojson(g)), props)
                for (code, name, _, props), g in zip(rows, geoms, strict=True)]

    def geojson(self, kind: str, zoom: int, who: Principal, incidents: dict[str, dict]) -> bytes:
        """One layer for the caller, with the board's current state."""
        if kind not in self.rows or not self.rows[kind]:
            return b'{"type":"FeatureCollection","features":[]}'
        state = _states(incidents)
        feats = []
        for code, name, geometry, props in self._geometry(kind, zoom):
            if kind in ("towns", "villages") and not (who.sees_all or who.scope in props["path"]
                                                      or code == who.scope):
                continue
            extra: dict = {}
            if kind == "hazards":
                extra["level"] = state.get(f"landslide:{code}", "none")
            elif kind == "points":
                extra["state"] = state.get(f"sensor_stale:{code}") or state.get(f"device_offline:{code}") \
                    or "ok"
            feats.append({"type": "Feature", "id": code,
                          "properties": {"id": code, "name": name, **props, **extra},
                          "geometry": geometry})
        return orjson.dumps({"type": "FeatureCollection", "kind": kind, "features": feats})


def _states(incidents: dict[str, dict]) -> dict[str, str]:
    """dedup key -> what its open incident says (a zone's level, a point's trouble)."""
    out: dict[str, str] = {}
    for inc in incidents.values():
        if inc.get("state") not in OPEN:
            continue
        key = str(inc.get("dedup_key") or "")
        kind = inc.get("kind")
        if kind == "landslide" and "@" not in key:  # the zone incident, not a grid's child
            out[key] = str(inc.get("severity") or "none")
        elif kind == "sensor_stale":
            out[key] = "stale"
        elif kind == "device_offline":
            out[key] = "offline"
    return out
