"""Patrols called by where they are (issue 13, item 6).

Patrol members report positions (``unit-status`` with a location, for the patrol base
id or for a member's volunteer id); the worker keeps each on-duty patrol's freshest fix
(``Availability.patrol_fixes``). A patrol with a fix no older than the plan's
``observer_max_age_s`` is measured from that fix; one without, or with a stale fix, from
its base, and the reason says which. The answer is the same (distance, id) order as the
index's, over the merged distances.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator
from datetime import datetime, timedelta

from engine.geo.distance import distance_m
from engine.rules import reasons as R
from engine.rules.availability import Availability
from engine.rules.nearby import Nearby

PATROL_BASE = "patrol_base"


def ranked_live(
    nearby: Nearby,
    availability: Availability,
    lat: float,
    lon: float,
    now: datetime,
    max_age_s: float,
) -> Iterator[tuple[float, str, str]]:
    """(distance, base id, reason) of the on-duty, available patrols, nearest first."""
    unavailable = availability.unavailable
    oldest = now - timedelta(seconds=max_age_s)
    live: list[tuple[float, str]] = []
    stale: dict[str, float] = {}
    for base_id, fix in availability.patrol_fixes.items():
        if base_id in unavailable or not nearby.has(base_id):
            continue
        if fix.at >= oldest:
            live.append((distance_m(lat, lon, fix.lat, fix.lon), base_id))
        else:
            stale[base_id] = (now - fix.at).total_seconds()
    live.sort()
    fixed = {b for _, b in live}
    from_base = (
        (d, b)
        for d, b in nearby.ranked_far(lat, lon, PATROL_BASE)
        if b not in fixed and b not in unavailable
    )
    for d, base_id in heapq.merge(live, from_base):
        m = f"{d:.0f}"
        if base_id in fixed:
            why = R.both(
                f"最近的在岗巡防队（实时位置，{m}米）",
                f"nearest on-duty patrol ({m} m from its live position)",
            )
        elif base_id in stale:
            age = f"{stale[base_id]:.0f}"
            why = R.both(
                f"最近的在岗巡防队（位置已过时 {age} 秒，按驻点计 {m}米）",
                f"nearest on-duty patrol ({m} m from its base: its last fix is {age} s old)",
            )
        else:
            why = R.both(
                f"最近的在岗巡防队（无位置，按驻点计 {m}米）",
                f"nearest on-duty patrol ({m} m from its base: no position reported)",
            )
        yield d, base_id, why
