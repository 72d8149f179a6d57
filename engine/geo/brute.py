"""Brute-force reference for :class:`engine.geo.index.SpatialIndex`: measures every point.

Used by the property tests and the benchmark as the definition of the right answer: same
API, same ranking distance (:func:`~engine.geo.distance.haversine_rad_m`), same
(distance, id) order. numpy haversine over all points prunes; the few survivors within
the pruning slack are re-measured with the scalar function and ranked.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np
from numpy.typing import NDArray

from engine.geo.distance import FloatArray, haversine_many_m, haversine_rad_m, prune_slack_m
from engine.geo.points import Filter, Hit, IndexedPoint

_NO_FILTER = Filter()


class BruteForceIndex:
    def __init__(self, points: Iterable[IndexedPoint]) -> None:
        pts = list(points)
        self.ids = [p.id for p in pts]
        self.kinds = [p.kind for p in pts]
        self.pos = {p.id: i for i, p in enumerate(pts)}
        if len(self.pos) != len(pts):
            raise ValueError("duplicate id in brute-force index")
        self.phi: FloatArray = np.array([math.radians(p.lat) for p in pts], dtype=np.float64)
        self.lam: FloatArray = np.array([math.radians(p.lon) for p in pts], dtype=np.float64)
        self.radius: FloatArray = np.array(
            [math.nan if p.radius_m is None else p.radius_m for p in pts], dtype=np.float64
        )
        self.available = np.array([p.available for p in pts], dtype=np.bool_)
        self._kind_arr = np.array(self.kinds, dtype=np.str_)
        self._id_arr = np.array(self.ids, dtype=np.str_)

    def __len__(self) -> int:
        return len(self.pos)

    def set_available(self, point_id: str, available: bool) -> None:
        self.available[self.pos[point_id]] = available

    def move(self, point_id: str, lat: float, lon: float) -> None:
        i = self.pos[point_id]
        self.phi[i] = math.radians(lat)
        self.lam[i] = math.radians(lon)

    def _mask(self, flt: Filter) -> NDArray[np.bool_] | None:
        mask: NDArray[np.bool_] | None = None
        if flt.kinds is not None:
            mask = np.isin(self._kind_arr, np.array(sorted(flt.kinds), dtype=np.str_))
        if flt.available_only:
            mask = self.available.copy() if mask is None else mask & self.available
        if flt.exclude:
            out = np.isin(self._id_arr, np.array(sorted(flt.exclude), dtype=np.str_))
            mask = ~out if mask is None else mask & ~out
        return mask

    def _ranked(self, idx: Iterable[int], lat: float, lon: float) -> list[Hit]:
        phi, lam = math.radians(lat), math.radians(lon)
        hits = [
            Hit(
                haversine_rad_m(phi, lam, self.phi.item(i), self.lam.item(i)),
                self.ids[i],
                self.kinds[i],
            )
            for i in idx
        ]
        hits.sort()
        return hits

    def _approx(self, lat: float, lon: float, flt: Filter) -> tuple[NDArray[np.intp], FloatArray]:
        d = haversine_many_m(math.radians(lat), math.radians(lon), self.phi, self.lam)
        mask = self._mask(flt)
        if mask is None:
            return np.arange(d.size), d
        idx = np.nonzero(mask)[0]
        return idx, d[idx]

    def nearest(self, lat: float, lon: float, k: int = 1, flt: Filter | None = None) -> list[Hit]:
        idx, d = self._approx(lat, lon, flt or _NO_FILTER)
        if d.size > k:
            kth = float(np.partition(d, k - 1)[k - 1])
            idx = idx[d <= kth + 2 * prune_slack_m(kth)]
        return self._ranked(idx.tolist(), lat, lon)[:k]

    def within(
        self, lat: float, lon: float, radius_m: float, flt: Filter | None = None
    ) -> list[Hit]:
        idx, d = self._approx(lat, lon, flt or _NO_FILTER)
        idx = idx[d <= radius_m + prune_slack_m(radius_m)]
        return [h for h in self._ranked(idx.tolist(), lat, lon) if h.distance_m <= radius_m]

    def within_own_radius(self, lat: float, lon: float, flt: Filter | None = None) -> list[Hit]:
        idx, d = self._approx(lat, lon, flt or _NO_FILTER)
        reach = self.radius[idx]
        idx = idx[d <= reach + prune_slack_m(float(np.nanmax(reach, initial=0.0)))]
        return [
            h
            for h in self._ranked(idx.tolist(), lat, lon)
            if h.distance_m <= self.radius.item(self.pos[h.id])
        ]
