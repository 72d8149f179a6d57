"""How far a point lies outside an area's outline (for "far outside the service area")."""

from __future__ import annotations

import math

from engine.geo.areas import Area
from engine.geo.distance import EARTH_RADIUS_M


def metres_outside(area: Area, lat: float, lon: float) -> float:
    """0 inside the outline, else the distance to its nearest edge in metres.

    Uses a local equirectangular projection at the point's latitude: within a town
    (tens of km) its error is well under 1 %, plenty for a "how far outside" check.
    """
    if area.contains(lat, lon):
        return 0.0
    kx = math.radians(1.0) * EARTH_RADIUS_M * math.cos(math.radians(lat))
    ky = math.radians(1.0) * EARTH_RADIUS_M
    pts = [((x - lon) * kx, (y - lat) * ky) for x, y in area.outline]
    best = math.inf
    for (ax, ay), (bx, by) in zip(pts, pts[1:] + pts[:1], strict=True):
        dx, dy = bx - ax, by - ay
        length2 = dx * dx + dy * dy
        t = 0.0 if length2 == 0 else max(0.0, min(1.0, -(ax * dx + ay * dy) / length2))
        best = min(best, math.hypot(ax + t * dx, ay + t * dy))
    return best
