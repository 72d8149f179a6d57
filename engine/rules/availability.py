"""Who can be called right now: the dynamic half of a decision's input.

Plain frozen values; the worker builds one from its tables, ``engine decide`` from the
decisions it has made so far. The rules never mutate it: :meth:`Availability.commit`
returns a new value.
"""

from __future__ import annotations

import math
from collections.abc import Container, Iterator, KeysView, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from math import asin, sin, sqrt  # compiled (mypyc): sin, sqrt are C calls
from types import MappingProxyType

from engine.geo.distance import EARTH_RADIUS_M
from engine.models import Priority
from engine.rules.nearby import CELL_DEG, _half_diagonal_m

_EMPTY: Mapping[str, object] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class Commitment:
    """A zone team is busy with this open incident."""

    incident_id: str
    priority: Priority


@dataclass(frozen=True, slots=True)
class Fix:
    """A mobile observer's reported position."""

    lat: float
    lon: float
    at: datetime


@dataclass(frozen=True, slots=True)
class Availability:
    commitments: Mapping[str, Commitment] = field(default_factory=dict)
    """zone or watch-group id -> the open incident it is committed to"""
    unavailable: frozenset[str] = frozenset()
    """any entity id marked unavailable (zones, units, patrols, observers, volunteers)"""
    offline_radios: frozenset[str] = frozenset()
    """radio ids the gateway reported offline"""
    observer_fixes: Mapping[str, Fix] = field(default_factory=dict)
    patrol_fixes: Mapping[str, Fix] = field(default_factory=dict)
    """patrol base id -> the freshest position reported by the patrol or a member"""

    def commit(self, group_ids: list[str], incident_id: str, priority: Priority) -> Availability:
        commitments = dict(self.commitments)
        for gid in group_ids:
            commitments[gid] = Commitment(incident_id, priority)
        return replace(self, commitments=commitments)

    def release(self, incident_id: str) -> Availability:
        kept = {z: c for z, c in self.commitments.items() if c.incident_id != incident_id}
        return replace(self, commitments=kept)


class ObserverFixes(Mapping[str, Fix]):
    """Observer fixes on a grid of cells, for lookout broadcasts.

    The one mutable piece of availability: the worker calls :meth:`update` between
    decisions as fixes arrive (a move between two cells' buckets, O(1)); a decision
    only reads. :meth:`within` answers exactly what a scan of every fix would: the
    cells it visits cover a box that holds every point within the radius (see
    :func:`_box`), and each candidate is measured with
    :func:`engine.rules.nearby.haversine_pre_m`, bit for bit
    :func:`engine.geo.distance.haversine_rad_m` (the brute-force reference's distance).
    """

    def __init__(self, fixes: Mapping[str, Fix] | None = None) -> None:
        self._fixes: dict[str, Fix] = {}
        self._cells: dict[tuple[int, int], dict[str, _Rec]] = {}
        self._cell_of: dict[str, tuple[int, int]] = {}
        self._near: dict[tuple[int, int, float], tuple[_Cand, ...] | None] = {}
        """(row, column, radius) of a query cell (:data:`engine.rules.nearby.CELL_DEG`)
        -> every fix within radius + h of the cell's centre (h: its half-diagonal),
        so a complete candidate list for any query from that cell (triangle
        inequality); None: asked once (the list is built when asked again, so fixes
        that change between every two queries cost no extra scan). Emptied by
        :meth:`update`."""
        for oid, fix in sorted((fixes or {}).items()):
            self.update(oid, fix)

    def update(self, observer_id: str, fix: Fix) -> None:
        if self._near:
            self._near = {}
        old = self._cell_of.get(observer_id)
        if old is not None:
            bucket = self._cells[old]
            del bucket[observer_id]
            if not bucket:
                del self._cells[old]
        phi = math.radians(fix.lat)
        cell = (math.floor(fix.lat / _CELL_DEG), math.floor(fix.lon / _CELL_DEG))
        self._cells.setdefault(cell, {})[observer_id] = (
            phi,
            math.radians(fix.lon),
            math.cos(phi),
            fix.at,
        )
        self._cell_of[observer_id] = cell
        self._fixes[observer_id] = fix

    def within(self, lat: float, lon: float, radius_m: float) -> list[tuple[float, str]]:
        """Every fix within ``radius_m`` as (distance, id), sorted by distance then id."""
        return [(d, oid) for d, oid, _ in self.within_at(lat, lon, radius_m)]

    def within_at(
        self, lat: float, lon: float, radius_m: float
    ) -> list[tuple[float, str, datetime]]:
        """As :meth:`within`, with each fix's time: (distance, id, at), sorted."""
        cands = self._candidates(lat, lon, radius_m)
        if cands is None:
            out = [(d, oid, rec[3]) for d, oid, rec in self._scan(lat, lon, radius_m)]
        else:
            phi, lam = math.radians(lat), math.radians(lon)
            cos_phi = math.cos(phi)
            out = []
            for oid, p_phi, p_lam, p_cos, at in cands:
                # haversine_pre_m inlined (same operations, same order)
                sin_dphi = sin((p_phi - phi) * 0.5)
                sin_dlam = sin((p_lam - lam) * 0.5)
                a = sin_dphi * sin_dphi + cos_phi * p_cos * sin_dlam * sin_dlam
                d = _TWO_R * asin(sqrt(a if a < 1.0 else 1.0))
                if d <= radius_m:
                    out.append((d, oid, at))
        out.sort()
        return out

    def fresh_within(
        self,
        lat: float,
        lon: float,
        radius_m: float,
        oldest: datetime,
        skip: Container[str],
    ) -> list[tuple[float, str, str]]:
        """The fixes :meth:`within_at` lists, less those older than ``oldest`` and
        those of ids in ``skip``, as (distance, id, "fix"), in no particular order
        (a lookout's candidates; ids in ``skip`` are not even measured)."""
        cands = self._candidates(lat, lon, radius_m)
        if cands is None:
            return [
                (d, oid, "fix")
                for d, oid, rec in self._scan(lat, lon, radius_m)
                if oid not in skip and rec[3] >= oldest
            ]
        phi, lam = math.radians(lat), math.radians(lon)
        cos_phi = math.cos(phi)
        out = []
        for oid, p_phi, p_lam, p_cos, at in cands:
            if oid in skip:
                continue
            sin_dphi = sin((p_phi - phi) * 0.5)
            sin_dlam = sin((p_lam - lam) * 0.5)
            a = sin_dphi * sin_dphi + cos_phi * p_cos * sin_dlam * sin_dlam
            d = _TWO_R * asin(sqrt(a if a < 1.0 else 1.0))
            if d <= radius_m and at >= oldest:  # times compared as a scan would
                out.append((d, oid, "fix"))
        return out

    def _candidates(self, lat: float, lon: float, radius_m: float) -> tuple[_Cand, ...] | None:
        """The query cell's cached candidates (see ``_near``), or None: scan instead."""
        key = (math.floor(lat / CELL_DEG), math.floor(lon / CELL_DEG), radius_m)
        near = self._near
        found = near.get(key)
        if found is not None:
            return found
        if key not in near:  # first time asked: remembered, not built
            if len(near) >= _NEAR_LIMIT:
                near.clear()
            near[key] = None
            return None
        row, col = key[0], key[1]
        reach = radius_m + _half_diagonal_m((row, col)) + 1.0  # +1 m: rounding slack
        c_lat, c_lon = (row + 0.5) * CELL_DEG, (col + 0.5) * CELL_DEG
        found = tuple((oid, *rec) for _, oid, rec in sorted(self._scan(c_lat, c_lon, reach)))
        near[key] = found
        return found

    def _scan(self, lat: float, lon: float, radius_m: float) -> list[tuple[float, str, _Rec]]:
        """Every fix within ``radius_m`` as (distance, id, record), unsorted: the grid
        cells of the box that holds the circle, each fix measured exactly."""
        phi, lam = math.radians(lat), math.radians(lon)
        cos_phi = math.cos(phi)
        box = _box(lat, lon, phi, cos_phi, radius_m)
        out: list[tuple[float, str, _Rec]] = []
        if box is None:  # near a pole or the antimeridian: measure every fix
            buckets: list[dict[str, _Rec]] = list(self._cells.values())
            tphi = tlam = math.inf
        else:
            r0, r1, c0, c1, tphi, tlam = box
            cells = self._cells
            buckets = [
                b
                for r in range(r0, r1 + 1)
                for c in range(c0, c1 + 1)
                if (b := cells.get((r, c))) is not None
            ]
        for bucket in buckets:
            for oid, rec in bucket.items():
                p_phi, p_lam, p_cos, _ = rec
                dp = p_phi - phi
                if dp > tphi or dp < -tphi:
                    continue  # outside the box: farther than the radius
                dl = p_lam - lam
                if dl > tlam or dl < -tlam:
                    continue
                # haversine_pre_m inlined (same operations, same order)
                sin_dphi = sin((p_phi - phi) * 0.5)
                sin_dlam = sin((p_lam - lam) * 0.5)
                a = sin_dphi * sin_dphi + cos_phi * p_cos * sin_dlam * sin_dlam
                d = _TWO_R * asin(sqrt(a if a < 1.0 else 1.0))
                if d <= radius_m:
                    out.append((d, oid, rec))
        return out

    def keys(self) -> KeysView[str]:
        return self._fixes.keys()  # the dict's own view: a C-level membership test

    def __getitem__(self, key: str) -> Fix:
        return self._fixes[key]

    def __contains__(self, key: object) -> bool:
        return key in self._fixes

    def __iter__(self) -> Iterator[str]:
        return iter(self._fixes)

    def __len__(self) -> int:
        return len(self._fixes)


_Rec = tuple[float, float, float, datetime]
"""A fix as the grid keeps it: lat and lon in radians, cos(lat), time."""
_Cand = tuple[str, float, float, float, datetime]
"""A cached candidate: id, then its :data:`_Rec`."""
_NEAR_LIMIT = 4096
"""Cached query cells before the cache is emptied (bounded memory)."""

_CELL_DEG = 0.005
"""Grid cell of the fixes, degrees (about 550 m north-south)."""
_TWO_R = 2.0 * EARTH_RADIUS_M


def _box(
    lat: float, lon: float, phi: float, cos_phi: float, radius_m: float
) -> tuple[int, int, int, int, float, float] | None:
    """Rows and columns of the cells that hold every point within ``radius_m``, and the
    widened bounds on |dphi| and |dlam| in radians (a point outside them is farther
    than the radius), or None when the box would reach a pole or wrap the antimeridian.

    With central angle t = radius / R, a point within the radius has
    hav(dphi) <= hav(t), so |dphi| <= t; and cos(phi1)·cos(phi2)·hav(dlam) <= hav(t)
    with cos(phi2) >= cos(|phi| + t), so sin(|dlam|/2) <= sin(t/2) / sqrt(cos(phi1)·
    cos(|phi| + t)). Both bounds are widened by 1 % plus a millionth of a degree, far
    above rounding error; a wider box only adds candidates that the exact measure drops.
    """
    t = radius_m / EARTH_RADIUS_M
    far = abs(phi) + t
    if far >= 1.5:  # within ~4.1 degrees of a pole
        return None
    s = math.sin(t * 0.5) / math.sqrt(cos_phi * math.cos(far))
    if s >= 0.5:
        return None
    dlat = math.degrees(t) * 1.01 + 1e-6
    dlon = math.degrees(2.0 * math.asin(s)) * 1.01 + 1e-6
    if lon - dlon < -180.0 or lon + dlon >= 180.0:
        return None
    return (
        math.floor((lat - dlat) / _CELL_DEG),
        math.floor((lat + dlat) / _CELL_DEG),
        math.floor((lon - dlon) / _CELL_DEG),
        math.floor((lon + dlon) / _CELL_DEG),
        t * 1.01 + 1e-9,
        2.0 * math.asin(s) * 1.01 + 1e-9,
    )
