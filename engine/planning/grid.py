"""A regular grid of cells over a dispatch area's outline: the "share of the area".

Cells are squares of ``step_m`` metres in a local equirectangular projection at the
outline's middle latitude, so every cell has the same ground area (across Tangxia's
14 km north-south, cos(latitude) varies by 0.1 %). A cell counts when its centre lies
inside the outline, by :func:`engine.geo.areas.point_in_polygon`'s even-odd rule,
evaluated here on arrays with the same arithmetic (so the same verdict per point).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from engine.geo.areas import Area, LonLat
from engine.geo.distance import EARTH_RADIUS_M, FloatArray

BoolArray = NDArray[np.bool_]
IntArray = NDArray[np.intp]

METRES_PER_DEGREE = math.radians(1.0) * EARTH_RADIUS_M


@dataclass(frozen=True)
class Grid:
    """Cell centres inside the outline (``lat``, ``lon``, degrees) and where each lies
    in the bounding raster (``row`` from the south, ``col`` from the west), for maps."""

    area: Area
    step_m: float
    lat: FloatArray
    lon: FloatArray
    row: IntArray
    col: IntArray
    shape: tuple[int, int]
    """(rows, cols) of the raster over the outline's bounding box"""
    origin: tuple[float, float]
    """(lat, lon) of the raster's south-west corner"""
    step_deg: tuple[float, float]
    """(dlat, dlon) of one cell"""

    def __len__(self) -> int:
        return int(self.lat.size)

    @property
    def cell_area_m2(self) -> float:
        return self.step_m * self.step_m

    def raster(self, values: FloatArray) -> FloatArray:
        """Per-cell values on the bounding raster (NaN outside the outline)."""
        out: FloatArray = np.full(self.shape, np.nan)
        out[self.row, self.col] = values
        return out


def build_grid(area: Area, step_m: float) -> Grid:
    if not step_m > 0:
        raise ValueError("grid step must be positive")
    min_lat, min_lon, max_lat, max_lon = area.bbox()
    mid = math.radians((min_lat + max_lat) / 2)
    dlat = step_m / METRES_PER_DEGREE
    dlon = step_m / (METRES_PER_DEGREE * math.cos(mid))
    rows = max(1, math.ceil((max_lat - min_lat) / dlat))
    cols = max(1, math.ceil((max_lon - min_lon) / dlon))
    r, c = np.mgrid[0:rows, 0:cols]
    r, c = r.ravel(), c.ravel()
    lat = min_lat + (r + 0.5) * dlat
    lon = min_lon + (c + 0.5) * dlon
    inside = points_in_polygon(lon, lat, area.outline)
    return Grid(
        area=area,
        step_m=step_m,
        lat=lat[inside],
        lon=lon[inside],
        row=r[inside].astype(np.intp),
        col=c[inside].astype(np.intp),
        shape=(rows, cols),
        origin=(min_lat, min_lon),
        step_deg=(dlat, dlon),
    )


def points_in_polygon(x: FloatArray, y: FloatArray, poly: tuple[LonLat, ...]) -> BoolArray:
    """:func:`engine.geo.areas.point_in_polygon` for many points at once (the same
    operations per point and edge, so the same answer)."""
    inside: BoolArray = np.zeros(x.shape, dtype=np.bool_)
    n = len(poly)
    j = n - 1
    for i in range(n):
        xi, yi = poly[i]
        xj, yj = poly[j]
        crosses = (yi > y) != (yj > y)
        if yj != yi:
            x_cross = xi + (y - yi) * (xj - xi) / (yj - yi)
            inside ^= crosses & (x < x_cross)
        j = i
    return inside
