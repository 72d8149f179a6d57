"""Great-circle distance: known values, symmetry, and agreement of the numpy variant."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.geo.distance import (
    EARTH_RADIUS_M,
    chord_for_metres,
    distance_m,
    haversine_many_m,
    prune_slack_m,
    unit_vectors,
)

pytestmark = pytest.mark.unit

lat = st.floats(-90, 90)
lon = st.floats(-180, 180)


def test_one_degree_of_meridian() -> None:
    assert distance_m(0, 0, 1, 0) == pytest.approx(EARTH_RADIUS_M * math.pi / 180)


def test_short_distance_in_tangxia_is_accurate() -> None:
    # 0.001° of latitude at 22.8° N: 111.2 m on the WGS84 ellipsoid, 111.195 m on the sphere.
    assert distance_m(22.8, 114.1, 22.801, 114.1) == pytest.approx(111.2, rel=3e-3)
    assert distance_m(22.8, 114.1, 22.8, 114.1) == 0.0


def test_antipodes() -> None:
    assert distance_m(0, 0, 0, 180) == pytest.approx(math.pi * EARTH_RADIUS_M)


@given(lat, lon, lat, lon)
def test_symmetric_and_numpy_variant_within_slack(a: float, b: float, c: float, d: float) -> None:
    m = distance_m(a, b, c, d)
    assert m == pytest.approx(distance_m(c, d, a, b), abs=1e-6)
    many = haversine_many_m(math.radians(a), math.radians(b), np.radians([c]), np.radians([d]))
    assert abs(float(many[0]) - m) <= prune_slack_m(m)


@given(lat, lon, lat, lon)
def test_chord_matches_great_circle(a: float, b: float, c: float, d: float) -> None:
    v = unit_vectors(np.radians([a, c]), np.radians([b, d]))
    chord = float(np.linalg.norm(v[0] - v[1]))
    assert chord == pytest.approx(chord_for_metres(distance_m(a, b, c, d)), abs=1e-12)
