"""Dispatch areas: which town or district a WGS84 point belongs to.

The key of the ``incidents`` topic is the dispatch area (DESIGN.md §4), so that one
area's incidents and zone commitments share one partition. An incident without an
``area`` gets one from its location here.

The outline is a plausible hand-drawn approximation of Tangxia's land area (about
lat 22.74-22.87, lon 114.00-114.16), not surveyed boundary data; a deployment with
Dongguan's other 31 towns loads real outlines into ``AREAS``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

LonLat = tuple[float, float]


@dataclass(frozen=True, slots=True)
class Area:
    id: str
    name_zh: str
    outline: tuple[LonLat, ...]  # closed implicitly; GeoJSON order (lon, lat)

    def contains(self, lat: float, lon: float) -> bool:
        return point_in_polygon(lon, lat, self.outline)

    def bbox(self) -> tuple[float, float, float, float]:
        """(min_lat, min_lon, max_lat, max_lon)."""
        lons = [p[0] for p in self.outline]
        lats = [p[1] for p in self.outline]
        return min(lats), min(lons), max(lats), max(lons)


def point_in_polygon(x: float, y: float, poly: Sequence[LonLat]) -> bool:
    """Even-odd ray casting. Points exactly on an edge may fall either way; town
    outlines are not that precise, and callers treat the edge as 'near the boundary'."""
    inside = False
    n = len(poly)
    j = n - 1
    for i in range(n):
        xi, yi = poly[i]
        xj, yj = poly[j]
        if (yi > y) != (yj > y):
            x_cross = xi + (y - yi) * (xj - xi) / (yj - yi)
            if x < x_cross:
                inside = not inside
        j = i
    return inside


TANGXIA = Area(
    id="tangxia",
    name_zh="塘厦镇",
    outline=(
        (114.012, 22.812),
        (114.026, 22.838),
        (114.048, 22.856),
        (114.071, 22.866),
        (114.097, 22.862),
        (114.121, 22.851),
        (114.143, 22.834),
        (114.156, 22.811),
        (114.152, 22.786),
        (114.137, 22.764),
        (114.112, 22.748),
        (114.084, 22.743),
        (114.058, 22.749),
        (114.036, 22.763),
        (114.019, 22.785),
    ),
)

AREAS: tuple[Area, ...] = (TANGXIA,)


def area_of(lat: float, lon: float, areas: Iterable[Area] = AREAS) -> Area | None:
    """The first area whose outline contains the point, or None (out of area)."""
    for area in areas:
        min_lat, min_lon, max_lat, max_lon = area.bbox()
        if min_lat <= lat <= max_lat and min_lon <= lon <= max_lon and area.contains(lat, lon):
            return area
    return None


def area_by_id(area_id: str, areas: Iterable[Area] = AREAS) -> Area | None:
    return next((a for a in areas if a.id == area_id), None)
