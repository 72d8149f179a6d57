"""Where to add or move: the best site for one more key zone team, the zone teams whose
loss would hurt most, and units no zone team links within 1 km.

Population is the registry's units (shops, buildings, security posts, property
offices), with buildings counted apart; the area is the coverage grid's cells. A unit
or cell is covered when a zone team that can be called lies within ``radius_m``
(500 m by default), every zone team on duty.

- Adding: candidates are the units' own positions (a zone team is recruited where
  people already are). Greedy: the candidate that newly covers the most units
  (ties: more buildings, then the smaller id), then the next given the first, and so
  on. Greedy is the standard heuristic for maximum coverage (within 1 - 1/e of the
  best set); for one zone it is exact.
- Losing: a zone team's loss uncovers what only it covers.
- Linking: a unit is linked within 1 km when a zone team listing it among its linked
  units lies within 1 km of it; for the others, the nearest zone team within 1 km is
  suggested (None: no zone team that close, a case for a new zone).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from engine.planning.coverage import Coverage, share
from engine.planning.nearest import BoolArray, IntArray, ball, nearest, within
from engine.planning.network import Network


def _covered(cov: Coverage, zones: IntArray, radius_m: float) -> tuple[BoolArray, BoolArray]:
    dist = cov.distances(frozenset(zones.tolist()))
    net = cov.network
    return (
        within(dist.units, radius_m, (net.units, net.zones, dist.unit_zone)),
        within(dist.cells, radius_m, (cov.cells, net.zones, dist.cell_zone)),
    )


def suggest_sites(cov: Coverage, radius_m: float = 500.0, count: int = 3) -> list[dict[str, Any]]:
    """The next ``count`` zone sites, greedily, each with what it adds."""
    net = cov.network
    zones = np.array(sorted(net.zones_on_duty(None)), dtype=np.intp)
    units_ok, cells_ok = _covered(cov, zones, radius_m)
    candidates = net.units
    reach_units = ball(candidates, net.units, radius_m)
    picks: list[dict[str, Any]] = []
    for rank in range(1, count + 1):
        best: tuple[int, int, str, int] | None = None
        for c, near in enumerate(reach_units):
            if not near:
                continue
            new = [u for u in near if not units_ok[u]]
            gain = len(new)
            if gain == 0:
                continue
            b = int(net.building[new].sum())
            key = (-gain, -b, net.unit_ids[c], c)
            if best is None or key < best:
                best = key
        if best is None:
            break
        c = best[3]
        site = candidates.take(np.array([c], dtype=np.intp))
        newly = [u for u in reach_units[c] if not units_ok[u]]
        cells_near = ball(site, cov.cells, radius_m)[0]
        cells_new = [i for i in cells_near if not cells_ok[i]]
        before_units, before_cells = int(units_ok.sum()), int(cells_ok.sum())
        units_ok[newly] = True
        cells_ok[cells_new] = True
        picks.append(
            {
                "rank": rank,
                "at_unit": net.unit_ids[c],
                "lat": round(float(candidates.lat[c]), 6),
                "lon": round(float(candidates.lon[c]), 6),
                "radius_m": radius_m,
                "units_gained": len(newly),
                "buildings_gained": int(net.building[newly].sum()),
                "cells_gained": len(cells_new),
                "area_km2_gained": round(len(cells_new) * cov.grid.cell_area_m2 / 1e6, 3),
                "units_share": [
                    share(before_units, len(units_ok)),
                    share(int(units_ok.sum()), len(units_ok)),
                ],
                "area_share": [
                    share(before_cells, len(cells_ok)),
                    share(int(cells_ok.sum()), len(cells_ok)),
                ],
            }
        )
    return picks


def losses(cov: Coverage, radius_m: float = 500.0, count: int = 5) -> list[dict[str, Any]]:
    """The zone teams whose loss would uncover the most units (ties: cells, then id)."""
    net = cov.network
    zones = np.array(sorted(net.zones_on_duty(None)), dtype=np.intp)
    sites = net.zones.take(zones)
    by_zone_units = ball(sites, net.units, radius_m)
    by_zone_cells = ball(sites, cov.cells, radius_m)
    unit_count = np.zeros(len(net.unit_ids), dtype=np.intp)
    cell_count = np.zeros(len(cov.grid), dtype=np.intp)
    for near in by_zone_units:
        unit_count[near] += 1
    for near in by_zone_cells:
        cell_count[near] += 1
    rows = []
    for k, z in enumerate(zones.tolist()):
        only_units = [u for u in by_zone_units[k] if unit_count[u] == 1]
        only_cells = [c for c in by_zone_cells[k] if cell_count[c] == 1]
        rows.append(
            {
                "zone": net.zone_ids[z],
                "units_lost": len(only_units),
                "buildings_lost": int(net.building[only_units].sum()),
                "cells_lost": len(only_cells),
                "area_km2_lost": round(len(only_cells) * cov.grid.cell_area_m2 / 1e6, 3),
            }
        )
    rows.sort(key=lambda r: (-r["units_lost"], -r["cells_lost"], r["zone"]))
    return rows[:count]


def unlinked_units(
    net: Network, link_radius_m: float = 1000.0, examples: int = 10
) -> dict[str, Any]:
    """Units that no zone team links within ``link_radius_m``, and what linking each
    to its nearest zone team (when one is that close) would add per zone."""
    zones = np.array(sorted(net.zones_on_duty(None)), dtype=np.intp)
    ids = [net.zone_ids[i] for i in zones.tolist()]
    d_near, near = nearest(net.zones.take(zones), ids, net.units)
    linked_by: dict[int, list[int]] = {}
    for z in zones.tolist():
        for u in net.zone_units[z].tolist():
            linked_by.setdefault(u, []).append(z)
    unlinked: list[int] = []
    for u in range(len(net.unit_ids)):
        if not net.unit_callable[u]:
            continue
        if not any(
            net.units.scalar_m(u, net.zones, z) <= link_radius_m for z in linked_by.get(u, [])
        ):
            unlinked.append(u)
    per_zone: dict[str, int] = {}
    without = 0
    for u in unlinked:
        if d_near[u] <= link_radius_m:
            zid = ids[int(near[u])]
            per_zone[zid] = per_zone.get(zid, 0) + 1
        else:
            without += 1
    top = sorted(per_zone.items(), key=lambda kv: (-kv[1], kv[0]))
    sample = sorted(unlinked, key=lambda u: -float(d_near[u]))[:examples]
    return {
        "link_radius_m": link_radius_m,
        "callable_units": int(net.unit_callable.sum()),
        "unlinked": len(unlinked),
        "linkable_to_a_zone_within_radius": len(unlinked) - without,
        "no_zone_within_radius": without,
        "by_nearest_zone": [{"zone": z, "units": n} for z, n in top[:examples]],
        "farthest_examples": [
            {
                "unit": net.unit_ids[u],
                "nearest_zone": ids[int(near[u])] if near[u] >= 0 else None,
                "distance_m": round(float(d_near[u]), 1),
            }
            for u in sample
        ],
    }


def siting_report(
    cov: Coverage, radius_m: float = 500.0, picks: int = 3, link_radius_m: float = 1000.0
) -> dict[str, Any]:
    return {
        "radius_m": radius_m,
        "add": suggest_sites(cov, radius_m, picks),
        "loss": losses(cov, radius_m),
        "unlinked": unlinked_units(cov.network, link_radius_m),
    }


__all__ = ["losses", "siting_report", "suggest_sites", "unlinked_units"]
