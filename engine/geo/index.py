"""Exact nearest-k and radius queries over responders, with moving observers.

How it stays exact: a scipy ``cKDTree`` over 3-D unit vectors finds candidates by chord
length (chord order is great-circle order, see :mod:`engine.geo.distance`). The tree's
answer is widened by ``CHORD_MARGIN`` (about 6 mm on the ground) so that floating-point
disagreement between chord and haversine can never drop a point; the candidates are
then measured with :func:`~engine.geo.distance.haversine_rad_m`, the function the
brute-force reference ranks by, and sorted by ``(distance, id)``. The answer therefore
equals brute force bit for bit, ties included.

Moving points: rebuilding a 100k-point tree takes tens of milliseconds, too slow per
GPS fix. A moved point is marked stale in the tree and copied into a small side buffer
that every query scans by brute force (one 3-column dot product). When the buffer
outgrows ``buffer_limit`` the tree is rebuilt once and the buffer emptied, so an update
costs O(1) plus an amortised share of one rebuild.

Each kind gets its own tree, so a "nearest key zone" query never wades through
thousands of door-front points.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable

import numpy as np
from numpy.typing import NDArray
from scipy.spatial import cKDTree

from engine.geo.distance import FloatArray, chord_for_metres, haversine_rad_m, unit_vectors
from engine.geo.points import Filter, Hit, IndexedPoint

IntArray = NDArray[np.intp]
BoolArray = NDArray[np.bool_]

CHORD_MARGIN = 1e-9
"""Slack on unit-sphere chords (1e-9 ≈ 6 mm): far above rounding error, far below any
distance that matters, so widening by it only ever adds a few candidates."""

SQUARED_CHORD_SLACK = 1e-11
"""Slack on squared chords from the buffer's ``2 - 2·dot`` shortcut, whose cancellation
error is about 1e-16; widening only adds candidates, never drops one."""

_EMPTY = np.empty(0, dtype=np.intp)

_BALL_FIRST_MIN_POINTS = 256
"""Below this a k-nearest query is cheap enough that guessing a ball radius is no gain."""


def _initial_guess(xyz: FloatArray) -> float:
    """A chord radius expected to hold about three points of a uniform spread over the
    points' bounding box (area ≈ half the squared diagonal)."""
    if len(xyz) == 0:
        return 0.0
    diagonal = float(np.linalg.norm(xyz.max(axis=0) - xyz.min(axis=0)))
    return max(diagonal * math.sqrt(3.0 / (2.0 * math.pi * len(xyz))), 1e-7)


def default_buffer_limit(n: int) -> int:
    """Moved points kept beside the tree before a rebuild: about n/64, within [64, 4096].
    Balances the brute-force scan every query pays against the amortised rebuild."""
    return max(64, min(4096, n // 64))


class _Layer:
    """The points of one kind: a tree over their positions at the last rebuild plus a
    brute-force buffer of points moved since."""

    def __init__(self, points: list[IndexedPoint], buffer_limit: int | None) -> None:
        self.kind = points[0].kind
        self.ids = [p.id for p in points]
        self.pos = {pid: i for i, pid in enumerate(self.ids)}
        self.phi: FloatArray = np.array([math.radians(p.lat) for p in points], dtype=np.float64)
        self.lam: FloatArray = np.array([math.radians(p.lon) for p in points], dtype=np.float64)
        self.xyz = unit_vectors(self.phi, self.lam)
        self.radius: FloatArray = np.array(
            [math.nan if p.radius_m is None else p.radius_m for p in points], dtype=np.float64
        )
        has_radius = ~np.isnan(self.radius)
        self.has_radius = bool(has_radius.any())
        self.max_radius = float(self.radius[has_radius].max()) if self.has_radius else 0.0
        self.available: BoolArray = np.array([p.available for p in points], dtype=np.bool_)
        self.buffer_limit = (
            default_buffer_limit(len(points)) if buffer_limit is None else max(0, buffer_limit)
        )
        # Scratch mask for "exclude": set, read, and cleared within one query.
        self._excluded: BoolArray = np.zeros(len(points), dtype=np.bool_)
        # Side buffer of moved points: positions and their current unit vectors.
        self.buf_pos: IntArray = np.zeros(self.buffer_limit + 1, dtype=np.intp)
        self.buf_xyz: FloatArray = np.zeros((self.buffer_limit + 1, 3), dtype=np.float64)
        self._guess = _initial_guess(self.xyz)
        self.rebuild()

    def rebuild(self) -> None:
        # The tree keeps its own copy: later moves write into self.xyz in place.
        self.tree = cKDTree(self.xyz.copy(), balanced_tree=False, compact_nodes=False)
        self.stale: BoolArray = np.zeros(len(self.ids), dtype=np.bool_)
        self.slot: dict[int, int] = {}  # stale position -> buffer slot
        self.nbuf = 0

    def move(self, i: int, phi: float, lam: float) -> None:
        self.phi[i] = phi
        self.lam[i] = lam
        cos_phi = math.cos(phi)
        v = (cos_phi * math.cos(lam), cos_phi * math.sin(lam), math.sin(phi))
        self.xyz[i] = v
        slot = self.slot.get(i)
        if slot is None:
            if self.nbuf >= self.buffer_limit:
                self.rebuild()  # the tree now holds the new position
                return
            slot = self.nbuf
            self.nbuf += 1
            self.slot[i] = slot
            self.stale[i] = True
            self.buf_pos[slot] = i
        self.buf_xyz[slot] = v

    def _filtering(self, flt: Filter) -> bool:
        return self.nbuf > 0 or flt.available_only or bool(flt.exclude)

    def _keep(self, idx: IntArray, flt: Filter, in_tree: bool) -> BoolArray:
        """Which of ``idx`` pass the filter (and, for tree answers, are not stale)."""
        keep: BoolArray = ~self.stale[idx] if in_tree else np.ones(idx.size, dtype=np.bool_)
        if flt.available_only:
            keep &= self.available[idx]
        if flt.exclude:
            keep &= ~self._excluded[idx]
        return keep

    def _mark_excluded(self, ids: Collection[str], value: bool) -> None:
        for pid in ids:
            i = self.pos.get(pid)
            if i is not None:
                self._excluded[i] = value

    def nearest_hits(self, q: FloatArray, phi: float, lam: float, k: int, flt: Filter) -> list[Hit]:
        """A measured superset of this layer's k nearest passing points, complete up to
        the k-th chord plus margin (so haversine ranking cannot promote a missing point)."""
        if not flt.exclude:
            return self._nearest_hits(q, phi, lam, k, flt)
        self._mark_excluded(flt.exclude, True)
        try:
            return self._nearest_hits(q, phi, lam, k, flt)
        finally:
            self._mark_excluded(flt.exclude, False)

    def _nearest_hits(
        self, q: FloatArray, phi: float, lam: float, k: int, flt: Filter
    ) -> list[Hit]:
        hits = self._ball_first(q, phi, lam, k, flt)
        if hits is None:
            hits = self.measure(self._tree_nearest(q, k, flt), phi, lam)
        if self.nbuf:
            hits.extend(self.measure(self._buffer_nearest(q, k, flt), phi, lam))
        return hits

    def _ball_first(
        self, q: FloatArray, phi: float, lam: float, k: int, flt: Filter
    ) -> list[Hit] | None:
        """Try a ball of the guessed radius first: scipy's ball query costs about half
        its k-nearest query. The ball is a complete answer when its k-th passing point,
        plus margin, lies inside it; otherwise None, and the guess adapts."""
        if self.tree.n < _BALL_FIRST_MIN_POINTS:
            return None
        r = self._guess * math.sqrt(k)
        found: list[int] = self.tree.query_ball_point(q, r)
        if self._filtering(flt) and found:
            arr = np.asarray(found, dtype=np.intp)
            found = arr[self._keep(arr, flt, in_tree=True)].tolist()
        if len(found) < k:
            self._guess = min(self._guess * 1.5, 2.0)
            return None
        if len(found) > 4 * k + 8:
            self._guess *= 0.85
        hits = self.measure(found, phi, lam)
        kth = min(hits)[0] if k == 1 else sorted(hits)[k - 1][0]
        if chord_for_metres(kth) + 2 * CHORD_MARGIN > r:
            self._guess = min(self._guess * 1.5, 2.0)
            return None
        return hits

    def _tree_nearest(self, q: FloatArray, k: int, flt: Filter) -> list[int]:
        """Positions from k-nearest queries, widened until complete."""
        n = self.tree.n
        if n == 0:
            return []
        if not self._filtering(flt):
            # Fast path: one query with two spares is almost always complete.
            want = min(n, k + 2)
            d, i = self.tree.query(q, k=want)
            if want == 1:
                return [int(i)]
            dl: list[float] = d.tolist()
            bound = dl[k - 1] + CHORD_MARGIN if want >= k else math.inf
            if want >= n or dl[-1] > bound:
                il: list[int] = i.tolist()
                return [j for j, dj in zip(il, dl, strict=True) if dj <= bound]
        # General case: the answer is complete once the last returned chord exceeds the
        # k-th passing chord plus margin. Otherwise ask for four times more.
        want = min(n, 2 * k + len(flt.exclude) + 2)
        while True:
            d, i = self.tree.query(q, k=want)
            d = np.atleast_1d(d)
            i = np.atleast_1d(i)
            keep = self._keep(i, flt, in_tree=True)
            good, good_d = i[keep], d[keep]
            if good.size >= k:
                bound = float(good_d[k - 1]) + CHORD_MARGIN
                if want >= n or d[-1] > bound:
                    result: list[int] = good[good_d <= bound].tolist()
                    return result
            elif want >= n:
                everything: list[int] = good.tolist()
                return everything
            want = min(n, want * 4)

    def _buffer_d2(self, q: FloatArray) -> tuple[IntArray, FloatArray]:
        """Moved points and their squared chords to q (2 - 2·dot, see the slack)."""
        pos = self.buf_pos[: self.nbuf]
        d2: FloatArray = 2.0 - 2.0 * (self.buf_xyz[: self.nbuf] @ q)
        return pos, d2

    def _buffer_nearest(self, q: FloatArray, k: int, flt: Filter) -> list[int]:
        pos, d2 = self._buffer_d2(q)
        if flt.available_only or flt.exclude:
            keep = self._keep(pos, flt, in_tree=False)
            pos, d2 = pos[keep], d2[keep]
        if pos.size > k:
            kth = np.partition(d2, k - 1)[k - 1]
            pos = pos[d2 <= kth + SQUARED_CHORD_SLACK]
        result: list[int] = pos.tolist()
        return result

    def ball_candidates(self, q: FloatArray, chord: float, flt: Filter) -> IntArray:
        """Every passing point with chord <= ``chord`` (callers add the margin)."""
        self._mark_excluded(flt.exclude, True)
        try:
            parts: list[IntArray] = []
            if self.tree.n:
                i = np.asarray(self.tree.query_ball_point(q, chord), dtype=np.intp)
                if self._filtering(flt):
                    i = i[self._keep(i, flt, in_tree=True)]
                parts.append(i)
            if self.nbuf:
                pos, d2 = self._buffer_d2(q)
                near = d2 <= chord * chord + SQUARED_CHORD_SLACK
                parts.append(pos[near & self._keep(pos, flt, in_tree=False)])
        finally:
            self._mark_excluded(flt.exclude, False)
        if not parts:
            return _EMPTY
        return np.concatenate(parts) if len(parts) > 1 else parts[0]

    def measure(self, idx: Iterable[int], phi: float, lam: float) -> list[Hit]:
        ids, kind, lat, lon = self.ids, self.kind, self.phi, self.lam
        return [Hit(haversine_rad_m(phi, lam, lat.item(i), lon.item(i)), ids[i], kind) for i in idx]


class SpatialIndex:
    """Nearest-k and radius queries in great-circle metres, exactly equal to brute force.

    Pure and in-memory; not thread-safe (one worker task owns it). Availability and
    positions change through :meth:`set_available` and :meth:`move`.
    """

    def __init__(self, points: Iterable[IndexedPoint], *, buffer_limit: int | None = None) -> None:
        by_kind: dict[str, list[IndexedPoint]] = {}
        self._kind_of: dict[str, str] = {}
        for p in points:
            if p.id in self._kind_of:
                raise ValueError(f"duplicate id {p.id!r} in spatial index")
            _check_lat_lon(p.lat, p.lon)
            self._kind_of[p.id] = p.kind
            by_kind.setdefault(p.kind, []).append(p)
        self._layers = {kind: _Layer(pts, buffer_limit) for kind, pts in sorted(by_kind.items())}
        self._all_layers = list(self._layers.values())

    def __len__(self) -> int:
        return len(self._kind_of)

    def __contains__(self, point_id: object) -> bool:
        return point_id in self._kind_of

    @property
    def kinds(self) -> tuple[str, ...]:
        return tuple(self._layers)

    def position(self, point_id: str) -> tuple[float, float]:
        """Current (lat, lon) in degrees."""
        layer, i = self._locate(point_id)
        return math.degrees(layer.phi.item(i)), math.degrees(layer.lam.item(i))

    def is_available(self, point_id: str) -> bool:
        layer, i = self._locate(point_id)
        return bool(layer.available[i])

    def set_available(self, point_id: str, available: bool) -> None:
        layer, i = self._locate(point_id)
        layer.available[i] = available

    def move(self, point_id: str, lat: float, lon: float) -> None:
        """A new position fix for a moving point (an observer's rider or car)."""
        _check_lat_lon(lat, lon)
        layer, i = self._locate(point_id)
        layer.move(i, math.radians(lat), math.radians(lon))

    def nearest(self, lat: float, lon: float, k: int = 1, flt: Filter | None = None) -> list[Hit]:
        """The k nearest points passing ``flt``, by (distance, id)."""
        if k < 1:
            raise ValueError("k must be at least 1")
        flt = flt or _NO_FILTER
        phi, lam, q = _query_point(lat, lon)
        hits: list[Hit] = []
        for layer in self._layers_for(flt):
            hits.extend(layer.nearest_hits(q, phi, lam, k, flt))
        hits.sort()
        del hits[k:]
        return hits

    def within(
        self, lat: float, lon: float, radius_m: float, flt: Filter | None = None
    ) -> list[Hit]:
        """Every point passing ``flt`` within ``radius_m`` (inclusive), by (distance, id)."""
        if not radius_m >= 0:
            raise ValueError("radius_m must be >= 0")
        flt = flt or _NO_FILTER
        phi, lam, q = _query_point(lat, lon)
        chord = chord_for_metres(radius_m) + CHORD_MARGIN
        hits: list[Hit] = []
        for layer in self._layers_for(flt):
            idx = layer.ball_candidates(q, chord, flt).tolist()
            hits.extend(h for h in layer.measure(idx, phi, lam) if h.distance_m <= radius_m)
        hits.sort()
        return hits

    def within_own_radius(self, lat: float, lon: float, flt: Filter | None = None) -> list[Hit]:
        """Every point passing ``flt`` whose own ``radius_m`` reaches the location (a
        door-front point answers for 100 m around it), by (distance, id). Points without
        a radius never match."""
        flt = flt or _NO_FILTER
        phi, lam, q = _query_point(lat, lon)
        hits: list[Hit] = []
        for layer in self._layers_for(flt):
            if not layer.has_radius:
                continue
            chord = chord_for_metres(layer.max_radius) + CHORD_MARGIN
            idx = layer.ball_candidates(q, chord, flt).tolist()
            reach = layer.radius
            # A NaN radius compares False, so points without one drop out here.
            hits.extend(
                h
                for i, h in zip(idx, layer.measure(idx, phi, lam), strict=True)
                if h.distance_m <= reach.item(i)
            )
        hits.sort()
        return hits

    def _locate(self, point_id: str) -> tuple[_Layer, int]:
        kind = self._kind_of.get(point_id)
        if kind is None:
            raise KeyError(point_id)
        layer = self._layers[kind]
        return layer, layer.pos[point_id]

    def _layers_for(self, flt: Filter) -> list[_Layer]:
        if flt.kinds is None:
            return self._all_layers
        return [self._layers[k] for k in sorted(flt.kinds) if k in self._layers]


_NO_FILTER = Filter()


def _check_lat_lon(lat: float, lon: float) -> None:
    if not (-90.0 <= lat <= 90.0 and -180.0 <= lon <= 180.0):
        raise ValueError(f"coordinates out of range: lat={lat}, lon={lon}")


def _query_point(lat: float, lon: float) -> tuple[float, float, FloatArray]:
    _check_lat_lon(lat, lon)
    phi, lam = math.radians(lat), math.radians(lon)
    cos_phi = math.cos(phi)
    q = np.array((cos_phi * math.cos(lam), cos_phi * math.sin(lam), math.sin(phi)))
    return phi, lam, q
