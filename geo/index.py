"""Point-in-polygon index: a uniform cell raster over an STRtree with prepared geometries.

Building: the layer's extent is cut into square cells (about `cells_per_polygon` per polygon).
Each cell box is queried against an STRtree once; a cell covered entirely by one polygon is an
*interior* cell and answers every point in it without a geometry test. Other cells keep their
candidate polygons (CSR arrays), tested with vectorised ``shapely.intersects_xy`` on prepared
geometries. A batch is therefore a few numpy operations plus one shapely call for the points in
mixed cells; a single point takes a few microseconds.

Edge rule (documented for operators): a point on the shared edge or vertex of several polygons
belongs to the polygon with the lowest index, and callers sort polygons by code, so **the grid
with the smallest code wins**. Polygons are closed sets (``covers`` semantics), so a point on a
layer's outer boundary is located, not lost.
"""

from __future__ import annotations

import math

import numpy as np
import shapely
from numpy.typing import NDArray

NONE = -1  # no polygon covers the cell
MIXED = -2  # the cell needs geometry tests


class PolygonIndex:
    """Locate points in a fixed set of polygons (indices into `geoms`)."""

    def __init__(self, geoms: NDArray[np.object_], cells_per_polygon: int = 32,
                 max_cells: int = 2_000_000) -> None:
        self.geoms = np.asarray(geoms, dtype=object)
        shapely.prepare(self.geoms)
        self.tree = shapely.STRtree(self.geoms)
        n = len(self.geoms)
        if n == 0:
            self.x0 = self.y0 = 0.0
            self.x1 = self.y1 = 0.0
            self.nx = self.ny = 1
            self.dx = self.dy = 1.0
            self.owner = np.full(1, NONE, dtype=np.int32)
            self.indptr = np.zeros(2, dtype=np.int64)
            self.indices = np.zeros(0, dtype=np.int32)
            self._finish()
            return
        xmin, ymin, xmax, ymax = shapely.total_bounds(self.geoms)
        w = max(xmax - xmin, 1e-9)
        h = max(ymax - ymin, 1e-9)
        cells = min(max_cells, max(1, n * cells_per_polygon))
        size = math.sqrt(w * h / cells)
        self.nx = max(1, math.ceil(w / size))
        self.ny = max(1, math.ceil(h / size))
        self.dx = w / self.nx
        self.dy = h / self.ny
        self.x0, self.y0 = xmin, ymin
        self.x1, self.y1 = xmax, ymax
        ix, iy = np.meshgrid(np.arange(self.nx), np.arange(self.ny))
        ix, iy = ix.ravel(), iy.ravel()
        boxes = shapely.box(xmin + ix * self.dx, ymin + iy * self.dy,
                            xmin + (ix + 1) * self.dx, ymin + (iy + 1) * self.dy)
        cell_idx, poly_idx = self.tree.query(boxes, predicate="intersects")
        order = np.lexsort((poly_idx, cell_idx))
        cell_idx, poly_idx = cell_idx[order], poly_idx[order]
        ncell = self.nx * self.ny
        counts = np.bincount(cell_idx, minlength=ncell)
        self.indptr = np.zeros(ncell + 1, dtype=np.int64)
        np.cumsum(counts, out=self.indptr[1:])
        self.indices = poly_idx.astype(np.int32)
        self.owner = np.full(ncell, MIXED, dtype=np.int32)
        self.owner[counts == 0] = NONE
        single = np.flatnonzero(counts == 1)
        sole = self.indices[self.indptr[single]]
        inside = shapely.contains(self.geoms[sole], boxes[single])
        self.owner[single[inside]] = sole[inside]
        self._finish()

    def _finish(self) -> None:
        self._owner_list = self.owner.tolist()
        self._indptr_list = self.indptr.tolist()
        self._indices_list = self.indices.tolist()
        self._geom_list = list(self.geoms)

    @property
    def interior_share(self) -> float:
        """Share of cells that answer without a geometry test (a tuning figure)."""
        return float(np.mean(self.owner >= 0))

    def _cells(self, x: NDArray, y: NDArray) -> NDArray[np.int64]:
        ix = np.floor((x - self.x0) / self.dx).astype(np.int64)
        iy = np.floor((y - self.y0) / self.dy).astype(np.int64)
        # points exactly on the max edge belong to the last cell
        ix = np.where(x == self.x1, self.nx - 1, ix)
        iy = np.where(y == self.y1, self.ny - 1, iy)
        valid = (ix >= 0) & (ix < self.nx) & (iy >= 0) & (iy < self.ny)
        return np.where(valid, iy * self.nx + ix, -1)

    def _mixed_pairs(self, x: NDArray, y: NDArray, pts: NDArray, cells: NDArray
                     ) -> tuple[NDArray, NDArray]:
        """(point, polygon) pairs that really intersect, for points in mixed cells."""
        starts = self.indptr[cells]
        counts = self.indptr[cells + 1] - starts
        total = int(counts.sum())
        if total == 0:
            return np.zeros(0, np.int64), np.zeros(0, np.int32)
        rep = np.repeat(np.arange(len(pts)), counts)
        offs = np.arange(total) - np.repeat(np.cumsum(counts) - counts, counts)
        cand = self.indices[np.repeat(starts, counts) + offs]
        p = pts[rep]
        hit = shapely.intersects_xy(self.geoms[cand], x[p], y[p])
        return p[hit], cand[hit]

    def locate(self, x: NDArray, y: NDArray) -> NDArray[np.int32]:
        """Index of the covering polygon for every point, -1 where none (edge rule above)."""
        x = np.asarray(x, dtype=float)
        y = np.asarray(y, dtype=float)
        cells = self._cells(x, y)
        out = np.where(cells >= 0, self.owner[np.maximum(cells, 0)], NONE).astype(np.int32)
        mixed = np.flatnonzero(out == MIXED)
        if len(mixed):
            out[mixed] = NONE
            p, c = self._mixed_pairs(x, y, mixed, cells[mixed])
            if len(p):
                # pairs are grouped by point with candidates ascending: first hit wins
                first = np.flatnonzero(np.r_[True, p[1:] != p[:-1]])
                out[p[first]] = c[first]
        return out

    def locate_all(self, x: NDArray, y: NDArray) -> tuple[NDArray, NDArray]:
        """Every (point, polygon) pair where the polygon covers the point (overlapping layers)."""
        x = np.asarray(x, dtype=float)
        y = np.asarray(y, dtype=float)
        cells = self._cells(x, y)
        owner = np.where(cells >= 0, self.owner[np.maximum(cells, 0)], NONE)
        direct = np.flatnonzero(owner >= 0)
        mixed = np.flatnonzero(owner == MIXED)
        p, c = self._mixed_pairs(x, y, mixed, cells[mixed])
        pts = np.concatenate([direct, p])
        polys = np.concatenate([owner[direct].astype(np.int32), c])
        order = np.lexsort((polys, pts))
        return pts[order], polys[order]

    def locate_one(self, x: float, y: float) -> int:
        """Scalar fast path for one point (no numpy temporaries)."""
        ix = int((x - self.x0) // self.dx)
        iy = int((y - self.y0) // self.dy)
        if x == self.x1:
            ix = self.nx - 1
        if y == self.y1:
            iy = self.ny - 1
        if ix < 0 or iy < 0 or ix >= self.nx or iy >= self.ny:
            return NONE
        cell = iy * self.nx + ix
        owner = self._owner_list[cell]
        if owner != MIXED:
            return owner
        geoms = self._geom_list
        for c in self._indices_list[self._indptr_list[cell]:self._indptr_list[cell + 1]]:
            if shapely.intersects_xy(geoms[c], x, y):
                return c
        return NONE
