"""Coverage: the share of the area (grid cells), of the units and of the buildings
within 300 m, 500 m and 1 km of a key zone team that can be called, hour by hour, and
within reach of the plan's quorum (the zone team and N of its linked units).

Each hour is evaluated at its middle (HH:30, the plan's time zone): the zone teams
on duty then (a duty roster may give them windows; the registry gives none), the
patrol teams on shift and the school-gate posts on duty (school days only). A row
"all zones" has every zone team that can be called. Results for one set of zone teams
are computed once and reused by every hour with the same set.

Quorum reach at radius r: the rules call the nearest available zone team and its
nearest linked units, and the stage is answered when the team and N units accept
(N = min(quorum, units called), as :func:`engine.rules.decide.decide` sets it). A
point is within reach of that quorum when the zone team and N of its callable linked
units all lie within r of it (and the zone within the stage's search radius). The
plan's first stages are grouped by what that needs.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np

from engine.geo.distance import FloatArray
from engine.planning.grid import Grid
from engine.planning.nearest import IntArray, Points, nearest, pair_m, within
from engine.planning.network import Network
from engine.rules.plan import LoadedPlan, Plan
from engine.rules.world import World

RADII_M: tuple[float, ...] = (300.0, 500.0, 1000.0)
POPULATIONS = ("area", "units", "buildings")


@dataclass(frozen=True)
class QuorumRule:
    """What a first stage needs answered: the zone team (or not) and ``units`` linked
    units, with the zone team found within ``max_distance_m``."""

    zone_team: bool
    units: int
    max_distance_m: float
    responses: tuple[str, ...]

    @property
    def label(self) -> str:
        return ("zone+" if self.zone_team else "units ") + str(self.units)


def quorum_rules(plan: Plan, radii: Sequence[float] = RADII_M) -> tuple[QuorumRule, ...]:
    """The distinct quorums of the plan's first stages (search radii beyond the largest
    coverage radius make no difference and are merged), most demanding first."""
    cap = max(radii)
    groups: dict[tuple[bool, int, float], list[str]] = {}
    for r in plan.responses:
        s = r.stages[0]
        if not s.key_zones:
            continue
        units = min(s.quorum.linked_units, s.linked_units)
        key = (s.quorum.zone_team, units, min(s.max_distance_m, cap))
        groups.setdefault(key, []).append(r.name)
    rules = [QuorumRule(zt, n, d, tuple(names)) for (zt, n, d), names in groups.items()]
    return tuple(sorted(rules, key=lambda q: (-q.units, -q.zone_team, q.max_distance_m)))


@dataclass
class Distances:
    """Distance from every cell, unit (and so building) to the nearest zone team of one
    set, which zone that is, and the quorum reach distance per rule."""

    zones: IntArray
    """positions in the network of the zones in the set"""
    cells: FloatArray
    cell_zone: IntArray
    units: FloatArray
    unit_zone: IntArray
    quorum_cells: dict[QuorumRule, FloatArray] = field(default_factory=dict)
    quorum_units: dict[QuorumRule, FloatArray] = field(default_factory=dict)


class Coverage:
    """Coverage computations over one network and grid, cached per set of zone teams."""

    def __init__(self, network: Network, grid: Grid, radii: Sequence[float] = RADII_M) -> None:
        self.network = network
        self.grid = grid
        self.cells = Points(grid.lat, grid.lon)
        self.radii = tuple(radii)
        self._cache: dict[frozenset[int], Distances] = {}
        self.computed = 0
        """sets of zone teams worked out (the rest came from the cache)"""

    def distances(self, zone_set: frozenset[int], rules: Iterable[QuorumRule] = ()) -> Distances:
        found = self._cache.get(zone_set)
        if found is None:
            self.computed += 1
            net = self.network
            zones = np.array(sorted(zone_set), dtype=np.intp)
            sites = net.zones.take(zones)
            ids = [net.zone_ids[i] for i in zones.tolist()]
            d_cells, c_zone = nearest(sites, ids, self.cells)
            d_units, u_zone = nearest(sites, ids, net.units)
            found = Distances(
                zones, d_cells, _globalise(zones, c_zone), d_units, _globalise(zones, u_zone)
            )
            self._cache[zone_set] = found
        for rule in rules:
            if rule not in found.quorum_cells:
                found.quorum_cells[rule] = self._quorum(
                    self.cells, found.cells, found.cell_zone, rule
                )
                found.quorum_units[rule] = self._quorum(
                    self.network.units, found.units, found.unit_zone, rule
                )
        return found

    def _quorum(
        self, points: Points, d_zone: FloatArray, zone_of: IntArray, rule: QuorumRule
    ) -> FloatArray:
        """Per point: the radius within which the chosen zone team and the units its
        quorum needs all lie (inf: no zone team within the search radius)."""
        net = self.network
        reach: FloatArray = np.where(rule.zone_team, d_zone, 0.0)
        reach[~(d_zone <= rule.max_distance_m)] = np.inf
        order = np.argsort(zone_of, kind="stable")
        bounds = np.searchsorted(zone_of[order], np.arange(len(net.zone_ids) + 1))
        for z in np.unique(zone_of[zone_of >= 0]).tolist():
            members = order[bounds[z] : bounds[z + 1]]
            units = net.zone_units[z]
            need = min(rule.units, units.size)
            if need == 0:
                continue
            rows = np.repeat(members, units.size)
            cols = np.tile(units, members.size)
            d = pair_m(points, rows, net.units, cols).reshape(members.size, units.size)
            nth = np.partition(d, need - 1, axis=1)[:, need - 1]
            reach[members] = np.maximum(reach[members], nth)
        return reach

    def shares(
        self, d_cells: FloatArray, d_units: FloatArray, exact: Distances | None = None
    ) -> dict[str, dict[str, float]]:
        """{population: {radius: share}} for distances to cells and units; with
        ``exact`` (the zone distances these are), verdicts at a radius are the scalar
        distance's (see :func:`engine.planning.nearest.within`)."""
        net = self.network
        out: dict[str, dict[str, float]] = {p: {} for p in POPULATIONS}
        n_b = int(net.building.sum())
        for r in self.radii:
            if exact is not None:
                in_cells = within(d_cells, r, (self.cells, net.zones, exact.cell_zone))
                in_units = within(d_units, r, (net.units, net.zones, exact.unit_zone))
            else:
                in_cells, in_units = d_cells <= r, d_units <= r
            key = _radius_key(r)
            out["area"][key] = share(int(in_cells.sum()), len(self.grid))
            out["units"][key] = share(int(in_units.sum()), len(net.unit_ids))
            out["buildings"][key] = share(int((in_units & net.building).sum()), n_b)
        return out


def _globalise(zones: IntArray, local: IntArray) -> IntArray:
    """Positions in the set -> positions in the network (-1 stays -1)."""
    if zones.size == 0:
        return local
    out: IntArray = np.where(local >= 0, zones[np.maximum(local, 0)], -1)
    return out


def share(count: int, total: int) -> float:
    """count / total, 0 for an empty total."""
    return count / total if total else 0.0


def _radius_key(r: float) -> str:
    return f"{r:g}"


def hour_instants(day: date, tz: str) -> list[datetime]:
    """The middle of each hour of ``day`` in the plan's time zone."""
    zone = ZoneInfo(tz)
    return [datetime.combine(day, time(h, 30), tzinfo=zone) for h in range(24)]


def coverage_report(
    world: World,
    network: Network,
    grid: Grid,
    plan: LoadedPlan,
    instants: Sequence[datetime],
    radii: Sequence[float] = RADII_M,
    coverage: Coverage | None = None,
) -> dict[str, Any]:
    """The coverage table as JSON-ready data (see the module docstring)."""
    cov = coverage or Coverage(network, grid, radii)
    rules = quorum_rules(plan.plan, radii)
    tz = ZoneInfo(plan.plan.timezone)
    rows: list[dict[str, Any]] = []
    for local in [None, *[t.astimezone(tz) for t in instants]]:
        zone_set = network.zones_on_duty(local)
        dist = cov.distances(zone_set, rules)
        row: dict[str, Any] = {
            "label": "all zones" if local is None else f"{local:%H}:00",
            "at": None if local is None else local.isoformat(),
            "zones_available": len(zone_set),
            "zone": cov.shares(dist.cells, dist.units, dist),
            "quorum": {
                q.label: cov.shares(dist.quorum_cells[q], dist.quorum_units[q]) for q in rules
            },
        }
        if local is not None:
            patrols = network.patrols_on_duty(world, local)
            posts = network.school_posts_on_duty(world, plan.plan, local)
            row["patrols_on_duty"] = len(patrols)
            row["school_posts_on_duty"] = len(posts)
            row["any_on_duty"] = _any_on_duty(cov, dist, patrols, posts)
        rows.append(row)
    net = network
    return {
        "area": grid.area.id,
        "grid_step_m": grid.step_m,
        "cells": len(grid),
        "area_km2": round(len(grid) * grid.cell_area_m2 / 1e6, 3),
        "units": len(net.unit_ids),
        "buildings": int(net.building.sum()),
        "zones": len(net.zone_ids),
        "radii_m": list(radii),
        "plan": {"name": plan.plan.name, "version": plan.version},
        "quorum_rules": [
            {
                "label": q.label,
                "zone_team": q.zone_team,
                "linked_units": q.units,
                "max_distance_m": q.max_distance_m,
                "responses": list(q.responses),
            }
            for q in rules
        ],
        "rows": rows,
        "zone_sets_computed": cov.computed,
    }


def _any_on_duty(
    cov: Coverage, dist: Distances, patrols: frozenset[int], posts: frozenset[int]
) -> dict[str, dict[str, float]]:
    """Shares within reach of a zone team, an on-shift patrol team or a school-gate post
    on duty: whoever is out there at that hour."""
    net = cov.network
    d_cells, d_units = dist.cells, dist.units
    for pts, chosen in ((net.patrols, patrols), (net.schools, posts)):
        if not chosen:
            continue
        idx = np.array(sorted(chosen), dtype=np.intp)
        sites = pts.take(idx)
        ids = [str(i) for i in idx.tolist()]
        d_cells = np.minimum(d_cells, nearest(sites, ids, cov.cells)[0])
        d_units = np.minimum(d_units, nearest(sites, ids, net.units)[0])
    return cov.shares(d_cells, d_units)


def worst_cells(grid: Grid, d_cells: FloatArray, n: int, spacing_m: float) -> list[int]:
    """The ``n`` cells farthest from any zone team, at least ``spacing_m`` apart (the
    farthest first; a cell next to one already listed says nothing new)."""
    order = np.argsort(-d_cells, kind="stable")
    cells = Points(grid.lat, grid.lon)
    picked: list[int] = []
    for i in order.tolist():
        if not np.isfinite(d_cells[i]) and picked:
            continue
        if all(cells.scalar_m(i, cells, j) >= spacing_m for j in picked):
            picked.append(i)
            if len(picked) == n:
                break
    return picked


def day_instants(day: date | None, at: datetime | None, tz: str) -> list[datetime]:
    if at is not None:
        return [at]
    if day is None:
        day = datetime.now(ZoneInfo(tz)).date()
    return hour_instants(day, tz)


__all__ = [
    "RADII_M",
    "Coverage",
    "QuorumRule",
    "coverage_report",
    "day_instants",
    "hour_instants",
    "quorum_rules",
    "worst_cells",
]
