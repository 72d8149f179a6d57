"""Dispatch areas: which town or district a WGS84 point belongs to.

The key of the ``incidents`` topic is the dispatch area (DESIGN.md §4), so that one
area's incidents and zone commitments share one partition. An incident without an
``area`` gets one from its location here.

Outlines are data, not code: each registry directory holds its area's outline in
``area.geojson`` (a Polygon Feature with the area's ``id`` and ``name``), and every
process works with the areas of the registries it loaded.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.errors import ConfigError

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


AREA_FILE = "area.geojson"
"""A registry's dispatch area: one GeoJSON Feature, a Polygon, with ``id`` and ``name``."""
_ID = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")


def area_from_geojson(doc: Any) -> Area:
    """An area from a parsed GeoJSON Feature (or a FeatureCollection of one). Raises
    ValueError naming the field at fault."""
    if isinstance(doc, dict) and doc.get("type") == "FeatureCollection":
        features = doc.get("features")
        if not isinstance(features, list) or len(features) != 1:
            raise ValueError("features: exactly one Feature, the area's outline")
        doc = features[0]
    if not isinstance(doc, dict) or doc.get("type") != "Feature":
        raise ValueError("type: must be a GeoJSON Feature")
    props = doc.get("properties")
    if not isinstance(props, dict):
        raise ValueError("properties: missing")
    area_id, name = props.get("id"), props.get("name")
    if not isinstance(area_id, str) or not _ID.match(area_id):
        raise ValueError(f"properties.id: a lower-case area id like 'tangxia', got {area_id!r}")
    if not isinstance(name, str) or not name.strip():
        raise ValueError("properties.name: the area's name, e.g. '塘厦镇'")
    geometry = doc.get("geometry")
    if not isinstance(geometry, dict) or geometry.get("type") != "Polygon":
        raise ValueError("geometry.type: must be a Polygon")
    rings = geometry.get("coordinates")
    if not isinstance(rings, list) or not rings or not isinstance(rings[0], list):
        raise ValueError("geometry.coordinates: a list of rings, the outer one first")
    ring: list[LonLat] = []
    for i, point in enumerate(rings[0]):
        if (
            not isinstance(point, list)
            or len(point) < 2
            or not all(isinstance(c, int | float) and not isinstance(c, bool) for c in point[:2])
            or not (-180 <= point[0] <= 180 and -90 <= point[1] <= 90)
        ):
            raise ValueError(f"geometry.coordinates[0][{i}]: [lon, lat] in degrees, got {point!r}")
        ring.append((float(point[0]), float(point[1])))
    if len(ring) > 1 and ring[0] == ring[-1]:
        ring.pop()  # GeoJSON closes rings explicitly; Area closes them implicitly
    if len(ring) < 3:
        raise ValueError("geometry.coordinates[0]: at least three distinct points")
    return Area(id=area_id, name_zh=name, outline=tuple(ring))


def load_area(path: Path) -> Area:
    """The area of an ``area.geojson`` file; ConfigError naming the file and field."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8-sig"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: missing: the dispatch area's outline") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{path}: unreadable: {exc}") from exc
    try:
        return area_from_geojson(doc)
    except ValueError as exc:
        raise ConfigError(f"{path}: {exc}") from exc


def area_geojson(area: Area) -> bytes:
    """The ``area.geojson`` of an area (ring closed, as GeoJSON wants)."""
    ring = [list(p) for p in (*area.outline, area.outline[0])]
    doc = {
        "type": "Feature",
        "properties": {"id": area.id, "name": area.name_zh},
        "geometry": {"type": "Polygon", "coordinates": [ring]},
    }
    return (json.dumps(doc, ensure_ascii=False) + "\n").encode("utf-8")


def area_of(lat: float, lon: float, areas: Iterable[Area]) -> Area | None:
    """The first area whose outline contains the point, or None (out of area)."""
    for area in areas:
        min_lat, min_lon, max_lat, max_lon = area.bbox()
        if min_lat <= lat <= max_lat and min_lon <= lon <= max_lon and area.contains(lat, lon):
            return area
    return None


def area_by_id(area_id: str, areas: Iterable[Area]) -> Area | None:
    return next((a for a in areas if a.id == area_id), None)
