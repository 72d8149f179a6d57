"""Exact "what is near here" lookups for the decision hot path, cached per grid cell.

The spatial index (:mod:`engine.geo.index`) answers any query exactly, but each call
costs tens of microseconds of numpy and scipy overhead, and a decision makes several.
Incidents cluster in the same streets, so the candidates are cached per grid cell
(about 280 m square): for a cell with centre c and half-diagonal h, every point
within r of any location in the cell lies within r + h of c (triangle inequality on
the sphere), so ``index.within(c, r + h)`` is a complete candidate list. Each query
then measures its few candidates with the same haversine the index uses and keeps
those within r: the answer equals the index's (and brute force's), ties by id.

When a cell's candidate list would be long (dense data, e.g. 100k zones), the cache
stores nothing for it and the query goes to the index directly, which is then the
faster path anyway. For a kind so dense that most cells would overflow (judged from
its point count over its bounding box), the cache is not even tried: finding out
that a cell overflows costs a large radius query. Either path gives the same answer,
so this choice affects speed only.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable, Container, Iterable, Iterator
from dataclasses import dataclass
from itertools import islice
from math import asin, sin, sqrt  # compiled (mypyc): sin, sqrt are C calls

from engine.geo.distance import EARTH_RADIUS_M, haversine_rad_m
from engine.geo.index import SpatialIndex
from engine.geo.points import Filter, IndexedPoint

CELL_DEG = 0.0025
"""Grid cell size in degrees: about 280 m north-south at Tangxia's latitude."""
_BOUND_SLACK_M = 1e-3
"""Slack on the triangle-inequality bound for rounding in the haversines (~1e-9 m)."""
MAX_CANDIDATES = 96
"""Above this many candidates per cell the index is queried directly."""
RANKED_CAP = 64
"""Candidates a cell lists for ranked queries in dense data (the nearest its centre)."""
CACHE_LIMIT = 200_000
"""Cached (cell, query) entries before the cache is cleared (bounded memory)."""


_TWO_R = 2.0 * EARTH_RADIUS_M


def haversine_pre_m(
    phi1: float, lam1: float, cos1: float, phi2: float, lam2: float, cos2: float
) -> float:
    """:func:`engine.geo.distance.haversine_rad_m` with ``cos(phi)`` of both points
    precomputed: the same operations in the same order, so bit-for-bit the same result
    (a unit test holds it to that), at about half the cost on the hot path."""
    sin_dphi = sin((phi2 - phi1) * 0.5)
    sin_dlam = sin((lam2 - lam1) * 0.5)
    a = sin_dphi * sin_dphi + cos1 * cos2 * sin_dlam * sin_dlam
    return _TWO_R * asin(sqrt(a if a < 1.0 else 1.0))


@dataclass(frozen=True, slots=True)
class _Point:
    id: str
    phi: float
    lam: float
    cos_phi: float


class Nearby:
    """Per-cell candidate cache over a static :class:`SpatialIndex`."""

    def __init__(self, index: SpatialIndex, points: Iterable[IndexedPoint]) -> None:
        """``points``: those ``index`` holds."""
        self._index = index
        rows = list(points)
        self._pos = {p.id: (math.radians(p.lat), math.radians(p.lon)) for p in rows}
        self._density = _densities(rows)
        self._cache: dict[tuple[object, ...], tuple[_Point, ...] | None] = {}
        self._sorted: dict[
            tuple[object, ...], tuple[float, tuple[tuple[float, _Point], ...], float]
        ] = {}

    def ranked(
        self, lat: float, lon: float, kind: str, radius_m: float
    ) -> Iterator[tuple[float, str]]:
        """Points of ``kind`` within ``radius_m``, lazily, in (distance, id) order: the
        same sequence as :meth:`within`, but a caller that stops after the first few
        pays only for those. Candidates are visited by their distance ``dc`` from the
        cell centre; a point's true distance is at least ``dc - h``, so once that bound
        passes the best measured distance, that one is the next answer.

        In dense data a cell lists only its ``RANKED_CAP`` points nearest the centre,
        and knows that every other point has ``dc >= complete``, hence a true distance
        of at least ``complete - h``: an answer below that is safe, and at that bound
        the walk continues from the index (skipping what it already yielded)."""
        entry = self._ranked_candidates(lat, lon, kind, radius_m)
        if entry is None:
            yield from self._ranked_direct(lat, lon, kind, radius_m)
            return
        h, cands, complete = entry
        limit = complete - h - _BOUND_SLACK_M
        phi, lam = math.radians(lat), math.radians(lon)
        cos_phi = math.cos(phi)
        heap: list[tuple[float, str]] = []
        push, pop = heapq.heappush, heapq.heappop
        i, n, yielded = 0, len(cands), 0
        while True:
            while i < n and (not heap or cands[i][0] - h - _BOUND_SLACK_M <= heap[0][0]):
                p = cands[i][1]
                # haversine_pre_m written out (same operations, same order: same bits)
                sin_dphi = sin((p.phi - phi) * 0.5)
                sin_dlam = sin((p.lam - lam) * 0.5)
                a = sin_dphi * sin_dphi + cos_phi * p.cos_phi * sin_dlam * sin_dlam
                push(heap, (_TWO_R * asin(sqrt(a if a < 1.0 else 1.0)), p.id))
                i += 1
            d = heap[0][0] if heap else math.inf
            if d >= limit:  # an unlisted point may come first, or tie
                if limit <= radius_m:
                    yield from islice(self._ranked_direct(lat, lon, kind, radius_m), yielded, None)
                return  # (else every unlisted point, and d, lie beyond the radius)
            if d > radius_m:
                return
            yield pop(heap)
            yielded += 1

    def _ranked_direct(
        self, lat: float, lon: float, kind: str, radius_m: float
    ) -> Iterator[tuple[float, str]]:
        """:meth:`ranked` straight from the index: nearest-k batches, k growing
        fourfold. ``index.nearest`` answers the k first points in (distance, id) order
        exactly, so each batch starts with the previous one."""
        flt = Filter(kinds=frozenset({kind}))
        k, done = 8, 0
        while True:
            hits = self._index.nearest(lat, lon, k, flt)
            for h in hits[done:]:
                if h.distance_m > radius_m:
                    return
                yield h.distance_m, h.id
            if len(hits) < k:
                return
            done, k = len(hits), k * 4

    def has(self, point_id: str) -> bool:
        """Whether the index holds ``point_id``."""
        return point_id in self._pos

    def ranked_far(
        self, lat: float, lon: float, kind: str, tiers: tuple[float, ...] = (2000.0, 8000.0)
    ) -> Iterator[tuple[float, str]]:
        """Every point of ``kind`` in (distance, id) order, however far: the cached
        rings of ``tiers`` first (each ring yields only what the inner ring did not),
        then the index for whatever lies beyond the last ring."""
        inner = -1.0
        for radius in tiers:
            for d, pid in self.ranked(lat, lon, kind, radius):
                if d > inner:
                    yield d, pid
            inner = radius
        flt = Filter(kinds=frozenset({kind}))
        done: set[str] = set()
        k = 16
        while True:
            hits = self._index.nearest(lat, lon, k, flt)
            for h in hits:  # each batch extends the previous one in the same order
                if h.distance_m > inner and h.id not in done:
                    done.add(h.id)
                    yield h.distance_m, h.id
            if len(hits) < k:
                return
            k *= 4

    def first_far(
        self, lat: float, lon: float, kind: str, tiers: tuple[float, ...] = (2000.0, 8000.0)
    ) -> tuple[float, str] | None:
        """The first answer of :meth:`ranked_far` (None: no point of ``kind``), without
        the generators while each ring's cell lists every candidate. A ring's first
        answer is :meth:`ranked`'s, found by the same walk (candidates by centre
        distance until the bound passes the best measured one); when it lies beyond
        the ring's radius, the ring yields nothing (every point of ``kind`` within the
        radius would have been a candidate), and the next ring is asked."""
        phi, lam = math.radians(lat), math.radians(lon)
        cos_phi = math.cos(phi)
        inner = -1.0
        for radius in tiers:
            entry = self._ranked_candidates(lat, lon, kind, radius)
            if entry is None or entry[2] != math.inf:
                break  # dense cell: the generators
            h, cands, _ = entry
            best: tuple[float, str] | None = None
            for dc, p in cands:
                if best is not None and dc - h - _BOUND_SLACK_M > best[0]:
                    break
                # haversine_pre_m written out (same operations, same order: same bits)
                sin_dphi = sin((p.phi - phi) * 0.5)
                sin_dlam = sin((p.lam - lam) * 0.5)
                a = sin_dphi * sin_dphi + cos_phi * p.cos_phi * sin_dlam * sin_dlam
                got = (_TWO_R * asin(sqrt(a if a < 1.0 else 1.0)), p.id)
                if best is None or got < best:
                    best = got
            if best is not None and best[0] <= radius:
                if best[0] > inner:
                    return best
                break  # (cannot happen: the inner ring yielded nothing) the generators
            inner = radius
        return next(self.ranked_far(lat, lon, kind, tiers), None)

    def _ranked_candidates(
        self, lat: float, lon: float, kind: str, radius_m: float
    ) -> tuple[float, tuple[tuple[float, _Point], ...], float] | None:
        """(h, candidates by (centre distance, id), complete) for the query's cell:
        every point of ``kind`` within ``radius_m + h`` of the centre that is not
        listed lies at least ``complete`` from the centre (inf: all are listed)."""
        cell = (math.floor(lat / CELL_DEG), math.floor(lon / CELL_DEG))
        key = (kind, radius_m, cell)
        found = self._sorted.get(key)
        if found is not None:
            return found
        h = _half_diagonal_m(cell)
        c_lat = (cell[0] + 0.5) * CELL_DEG
        c_lon = (cell[1] + 0.5) * CELL_DEG
        cands = self._candidates(lat, lon, kind, radius_m)
        by_centre: tuple[tuple[float, _Point], ...]
        complete = math.inf
        if cands is not None:
            c_phi, c_lam = math.radians(c_lat), math.radians(c_lon)
            by_centre = tuple(
                sorted(
                    ((haversine_rad_m(c_phi, c_lam, p.phi, p.lam), p) for p in cands),
                    key=lambda t: (t[0], t[1].id),
                )
            )
        else:  # dense: the RANKED_CAP nearest the centre, in (distance, id) order
            flt = Filter(kinds=frozenset({kind}))
            hits = self._index.nearest(c_lat, c_lon, RANKED_CAP + 1, flt)
            reach = radius_m + h + 1.0  # beyond: never within the radius of the cell
            if len(hits) > RANKED_CAP:
                complete = hits[RANKED_CAP].distance_m
                hits = hits[:RANKED_CAP]
            if complete > reach:
                complete = math.inf
            by_centre = tuple(
                (hit.distance_m, _Point(hit.id, *self._pos[hit.id], math.cos(self._pos[hit.id][0])))
                for hit in hits
                if hit.distance_m <= reach
            )
        if len(self._sorted) >= CACHE_LIMIT:
            self._sorted.clear()
        entry = (h, by_centre, complete)
        self._sorted[key] = entry
        return entry

    def within(
        self,
        lat: float,
        lon: float,
        kind: str,
        radius_m: float,
        unless: Container[str] | None = None,
    ) -> list[tuple[float, str]]:
        """Every point of ``kind`` within ``radius_m`` of (lat, lon), as (distance, id)
        sorted by distance then id: exactly ``index.within``'s answer, less the ids in
        ``unless`` (dropped before they are measured)."""
        cands = self._candidates(lat, lon, kind, radius_m)
        if cands is None:
            flt = Filter(kinds=frozenset({kind}))
            hits = self._index.within(lat, lon, radius_m, flt)
            if unless is None:
                return [(h.distance_m, h.id) for h in hits]
            return [(h.distance_m, h.id) for h in hits if h.id not in unless]
        phi, lam = math.radians(lat), math.radians(lon)
        cos_phi = math.cos(phi)
        out = []
        for p in cands:
            if unless is not None and p.id in unless:
                continue
            # haversine_pre_m written out (same operations, same order: same bits)
            sin_dphi = sin((p.phi - phi) * 0.5)
            sin_dlam = sin((p.lam - lam) * 0.5)
            a = sin_dphi * sin_dphi + cos_phi * p.cos_phi * sin_dlam * sin_dlam
            d = _TWO_R * asin(sqrt(a if a < 1.0 else 1.0))
            if d <= radius_m:
                out.append((d, p.id))
        out.sort()
        return out

    def covering(
        self,
        lat: float,
        lon: float,
        kind: str,
        radius_of: Callable[[str], float],
        max_radius: float,
    ) -> list[tuple[float, str]]:
        """Points of ``kind`` whose own radius reaches (lat, lon) (door-front points)."""
        phi, lam = math.radians(lat), math.radians(lon)
        cos_phi = math.cos(phi)
        cands = self._candidates(lat, lon, kind, max_radius)
        if cands is None:
            flt = Filter(kinds=frozenset({kind}))
            hits = self._index.within_own_radius(lat, lon, flt)
            return [(h.distance_m, h.id) for h in hits]
        out = []
        for p in cands:
            # haversine_pre_m written out (same operations, same order: same bits)
            sin_dphi = sin((p.phi - phi) * 0.5)
            sin_dlam = sin((p.lam - lam) * 0.5)
            a = sin_dphi * sin_dphi + cos_phi * p.cos_phi * sin_dlam * sin_dlam
            d = _TWO_R * asin(sqrt(a if a < 1.0 else 1.0))
            if d <= radius_of(p.id):
                out.append((d, p.id))
        out.sort()
        return out

    def _candidates(
        self, lat: float, lon: float, kind: str, radius_m: float
    ) -> tuple[_Point, ...] | None:
        cell = (math.floor(lat / CELL_DEG), math.floor(lon / CELL_DEG))
        key = (kind, radius_m, cell)
        try:
            return self._cache[key]
        except KeyError:
            pass
        density = self._density.get(kind, 0.0)
        if density * math.pi * (radius_m + 200.0) ** 2 > 2 * MAX_CANDIDATES:
            return None  # too dense to cache: not stored, the test is cheap
        if len(self._cache) >= CACHE_LIMIT:
            self._cache.clear()
        c_lat = (cell[0] + 0.5) * CELL_DEG
        c_lon = (cell[1] + 0.5) * CELL_DEG
        reach = radius_m + _half_diagonal_m(cell) + 1.0  # +1 m: rounding slack
        hits = self._index.within(c_lat, c_lon, reach, Filter(kinds=frozenset({kind})))
        found: tuple[_Point, ...] | None
        if len(hits) > MAX_CANDIDATES:
            found = None
        else:
            found = tuple(
                _Point(h.id, *self._pos[h.id], math.cos(self._pos[h.id][0])) for h in hits
            )
        self._cache[key] = found
        return found


def _half_diagonal_m(cell: tuple[int, int]) -> float:
    """Largest distance from the cell's centre to any of its corners."""
    c_phi = math.radians((cell[0] + 0.5) * CELL_DEG)
    c_lam = math.radians((cell[1] + 0.5) * CELL_DEG)
    corners = [
        (math.radians((cell[0] + a) * CELL_DEG), math.radians((cell[1] + b) * CELL_DEG))
        for a in (0, 1)
        for b in (0, 1)
    ]
    return max(haversine_rad_m(c_phi, c_lam, p, q) for p, q in corners)


def _densities(points: list[IndexedPoint]) -> dict[str, float]:
    """Points per square metre of each kind over the kind's bounding box (at least
    1 km on a side): a rough guess of how many candidates a cell would hold."""
    box: dict[str, list[float]] = {}
    count: dict[str, int] = {}
    for p in points:
        b = box.get(p.kind)
        if b is None:
            box[p.kind] = [p.lat, p.lat, p.lon, p.lon]
        else:
            b[0], b[1] = min(b[0], p.lat), max(b[1], p.lat)
            b[2], b[3] = min(b[2], p.lon), max(b[3], p.lon)
        count[p.kind] = count.get(p.kind, 0) + 1
    out = {}
    for kind, (lat0, lat1, lon0, lon1) in box.items():
        h = max((lat1 - lat0) * 111_000.0, 1000.0)
        w = max((lon1 - lon0) * 111_000.0 * math.cos(math.radians((lat0 + lat1) / 2)), 1000.0)
        out[kind] = count[kind] / (h * w)
    return out
