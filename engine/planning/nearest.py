"""Many-to-many distance queries for planning: the nearest of some sites to each of
many points, and which points lie within a radius of a site.

The spatial index (:mod:`engine.geo.index`) answers one query at a time, exactly; a
coverage map asks 60,000 of them per hour of the day. Here one scipy ``cKDTree`` over
the sites' unit vectors answers all points in a single vectorised call (chord order is
great-circle order, see :mod:`engine.geo.distance`), and distances are measured with
the haversine on arrays. Where the answer could differ from the engine's scalar
:func:`~engine.geo.distance.haversine_rad_m` (two sites within a few millimetres of
being equally near; a distance within a micrometre of a radius), it is worked out
again with the scalar function, so ranks and covered/not-covered verdicts are those of
the brute force (:class:`engine.geo.brute.BruteForceIndex`); a test holds them to it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray
from scipy.spatial import cKDTree

from engine.geo.distance import (
    EARTH_RADIUS_M,
    FloatArray,
    chord_for_metres,
    haversine_rad_m,
    prune_slack_m,
    unit_vectors,
)
from engine.geo.index import CHORD_MARGIN

IntArray = NDArray[np.intp]
BoolArray = NDArray[np.bool_]


class Points:
    """Points in radians with their unit vectors (built once, queried many times)."""

    def __init__(
        self, lat: Sequence[float] | FloatArray, lon: Sequence[float] | FloatArray
    ) -> None:
        self.lat: FloatArray = np.asarray(lat, dtype=np.float64)
        self.lon: FloatArray = np.asarray(lon, dtype=np.float64)
        self.phi: FloatArray = np.radians(self.lat)
        self.lam: FloatArray = np.radians(self.lon)
        self.xyz: FloatArray = (
            unit_vectors(self.phi, self.lam) if self.lat.size else np.empty((0, 3))
        )

    def __len__(self) -> int:
        return int(self.lat.size)

    def take(self, idx: IntArray) -> Points:
        return Points(self.lat[idx], self.lon[idx])

    def scalar_m(self, i: int, other: Points, j: int) -> float:
        """The engine's distance between point ``i`` here and ``j`` of ``other``."""
        return haversine_rad_m(
            self.phi.item(i), self.lam.item(i), other.phi.item(j), other.lam.item(j)
        )


def pair_m(a: Points, ia: IntArray, b: Points, ib: IntArray) -> FloatArray:
    """Haversine metres between ``a[ia]`` and ``b[ib]``, element by element (numpy:
    within a few ulps of the scalar function)."""
    phi1, lam1, phi2, lam2 = a.phi[ia], a.lam[ia], b.phi[ib], b.lam[ib]
    s_phi = np.sin((phi2 - phi1) * 0.5)
    s_lam = np.sin((lam2 - lam1) * 0.5)
    h = s_phi * s_phi + np.cos(phi1) * np.cos(phi2) * s_lam * s_lam
    out: FloatArray = (2.0 * EARTH_RADIUS_M) * np.arcsin(np.sqrt(np.minimum(h, 1.0)))
    return out


def nearest(sites: Points, ids: Sequence[str], points: Points) -> tuple[FloatArray, IntArray]:
    """For each point, the distance to its nearest site and that site's position in
    ``sites``, ranked by (distance, id) as the engine ranks; (inf, -1) with no sites."""
    n = len(points)
    if len(sites) == 0 or n == 0:
        return np.full(n, math.inf), np.full(n, -1, dtype=np.intp)
    tree = cKDTree(sites.xyz)
    if len(sites) == 1:
        best: IntArray = np.zeros(n, dtype=np.intp)
        return pair_m(points, np.arange(n), sites, best), best
    chord, idx = tree.query(points.xyz, k=2)
    best = idx[:, 0].astype(np.intp)
    dist = pair_m(points, np.arange(n), sites, best)
    # A second site within the chord margin of the first may be the nearer one (or tie
    # and win on id): rank every site that close with the scalar distance.
    for i in np.nonzero(chord[:, 1] - chord[:, 0] <= 2 * CHORD_MARGIN)[0].tolist():
        near = tree.query_ball_point(points.xyz[i], chord[i, 0] + 2 * CHORD_MARGIN)
        ranked = sorted((points.scalar_m(i, sites, j), ids[j], j) for j in near)
        d, _, j = ranked[0]
        best[i], dist[i] = j, d
    return dist, best


def within(
    dist: FloatArray, radius_m: float, exact: tuple[Points, Points, IntArray] | None = None
) -> BoolArray:
    """``dist <= radius_m``; values within a micrometre of the radius are measured again
    with the scalar function when ``exact`` = (points, sites, site of each point)."""
    covered: BoolArray = dist <= radius_m
    if exact is not None:
        points, sites, site = exact
        close = np.nonzero(np.abs(dist - radius_m) <= prune_slack_m(radius_m))[0]
        for i in close.tolist():
            covered[i] = points.scalar_m(i, sites, int(site[i])) <= radius_m
    return covered


def ball(sites: Points, points: Points, radius_m: float) -> list[list[int]]:
    """For each site, the positions of ``points`` within ``radius_m`` (scalar distance,
    inclusive), in ascending position order."""
    if len(sites) == 0:
        return []
    if len(points) == 0:
        return [[] for _ in range(len(sites))]
    tree = cKDTree(points.xyz)
    found = tree.query_ball_point(sites.xyz, chord_for_metres(radius_m) + CHORD_MARGIN)
    out: list[list[int]] = []
    for s, cands in enumerate(found):
        if not cands:
            out.append([])
            continue
        cand = np.asarray(sorted(cands), dtype=np.intp)
        d = pair_m(sites, np.full(cand.size, s, dtype=np.intp), points, cand)
        sure = d <= radius_m - prune_slack_m(radius_m)
        unsure = np.nonzero(~sure & (d <= radius_m + prune_slack_m(radius_m)))[0]
        keep = sure.copy()
        for k in unsure.tolist():
            keep[k] = sites.scalar_m(s, points, int(cand[k])) <= radius_m
        out.append(cand[keep].tolist())
    return out
