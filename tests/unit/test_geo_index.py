"""The spatial index answers exactly what brute force gives, ties and filters included."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.geo.brute import BruteForceIndex
from engine.geo.index import SpatialIndex
from engine.geo.points import Filter, Hit, IndexedPoint

pytestmark = pytest.mark.unit

KINDS = ("key_zone", "unit", "observer")

# Coordinates on a coarse grid around Tangxia so that duplicates and equidistant points
# (ties) are common; the grid step is about 11 m.
grid_lat = st.integers(0, 40).map(lambda i: 22.80 + i * 1e-4)
grid_lon = st.integers(0, 40).map(lambda i: 114.05 + i * 1e-4)


@st.composite
def point_sets(draw: st.DrawFn, max_size: int = 60) -> list[IndexedPoint]:
    n = draw(st.integers(1, max_size))
    ids = draw(
        st.lists(st.text("abcXYZ019", min_size=1, max_size=4), min_size=n, max_size=n, unique=True)
    )
    return [
        IndexedPoint(
            id=pid,
            kind=draw(st.sampled_from(KINDS)),
            lat=draw(grid_lat),
            lon=draw(grid_lon),
            radius_m=draw(st.one_of(st.none(), st.sampled_from([0.0, 50.0, 100.0, 250.0]))),
            available=draw(st.booleans()),
        )
        for pid in ids
    ]


@st.composite
def filters(draw: st.DrawFn, ids: list[str]) -> Filter:
    kinds = draw(st.one_of(st.none(), st.sets(st.sampled_from((*KINDS, "school")))))
    exclude = draw(st.sets(st.sampled_from(ids))) if ids else set()
    return Filter.of(kinds=kinds, available_only=draw(st.booleans()), exclude=exclude)


def both(
    points: list[IndexedPoint], buffer_limit: int | None
) -> tuple[SpatialIndex, BruteForceIndex]:
    return SpatialIndex(points, buffer_limit=buffer_limit), BruteForceIndex(points)


@settings(max_examples=300, deadline=None)
@given(data=st.data(), points=point_sets())
def test_nearest_equals_brute_force(data: st.DataObject, points: list[IndexedPoint]) -> None:
    index, brute = both(points, buffer_limit=None)
    flt = data.draw(filters([p.id for p in points]))
    k = data.draw(st.integers(1, 12))
    lat, lon = data.draw(grid_lat), data.draw(grid_lon)
    assert index.nearest(lat, lon, k, flt) == brute.nearest(lat, lon, k, flt)


@settings(max_examples=300, deadline=None)
@given(data=st.data(), points=point_sets())
def test_radius_queries_equal_brute_force(data: st.DataObject, points: list[IndexedPoint]) -> None:
    index, brute = both(points, buffer_limit=None)
    flt = data.draw(filters([p.id for p in points]))
    radius = data.draw(st.sampled_from([0.0, 11.1, 50.0, 100.0, 333.0, 5000.0]))
    lat, lon = data.draw(grid_lat), data.draw(grid_lon)
    assert index.within(lat, lon, radius, flt) == brute.within(lat, lon, radius, flt)
    assert index.within_own_radius(lat, lon, flt) == brute.within_own_radius(lat, lon, flt)


@settings(max_examples=200, deadline=None)
@given(data=st.data(), points=point_sets(), buffer_limit=st.sampled_from([0, 1, 3, 1000]))
def test_moves_and_availability_keep_answers_exact(
    data: st.DataObject, points: list[IndexedPoint], buffer_limit: int
) -> None:
    index, brute = both(points, buffer_limit=buffer_limit)
    ids = [p.id for p in points]
    for _ in range(data.draw(st.integers(1, 25))):
        pid = data.draw(st.sampled_from(ids))
        if data.draw(st.booleans()):
            lat, lon = data.draw(grid_lat), data.draw(grid_lon)
            index.move(pid, lat, lon)
            brute.move(pid, lat, lon)
        else:
            available = data.draw(st.booleans())
            index.set_available(pid, available)
            brute.set_available(pid, available)
        flt = data.draw(filters(ids))
        lat, lon = data.draw(grid_lat), data.draw(grid_lon)
        k = data.draw(st.integers(1, 8))
        assert index.nearest(lat, lon, k, flt) == brute.nearest(lat, lon, k, flt)
        assert index.within(lat, lon, 120.0, flt) == brute.within(lat, lon, 120.0, flt)
        assert index.within_own_radius(lat, lon, flt) == brute.within_own_radius(lat, lon, flt)


@settings(max_examples=50, deadline=None)
@given(
    points=st.lists(st.tuples(st.floats(-90, 90), st.floats(-180, 180)), min_size=1, max_size=300),
    query=st.tuples(st.floats(-90, 90), st.floats(-180, 180)),
    k=st.integers(1, 5),
)
def test_whole_globe_including_poles_and_antimeridian(
    points: list[tuple[float, float]], query: tuple[float, float], k: int
) -> None:
    pts = [IndexedPoint(f"p{i:03d}", "unit", lat, lon) for i, (lat, lon) in enumerate(points)]
    index, brute = both(pts, buffer_limit=None)
    assert index.nearest(*query, k) == brute.nearest(*query, k)
    assert index.within(*query, 2_000_000.0) == brute.within(*query, 2_000_000.0)


def test_ties_go_to_the_smaller_id() -> None:
    pts = [IndexedPoint(pid, "unit", 22.8, 114.05) for pid in ("b", "c", "a")]
    index = SpatialIndex(pts)
    assert [h.id for h in index.nearest(22.8, 114.05, 2)] == ["a", "b"]


def test_large_set_uses_the_ball_first_path_and_stays_exact() -> None:
    # Above the ball-first threshold, with repeated queries that adapt the radius guess.
    pts = [
        IndexedPoint(
            f"u{i:04d}",
            "unit",
            22.80 + (i % 50) * 2e-4,
            114.05 + (i // 50) * 2e-4,
            available=i % 3 != 0,
        )
        for i in range(2500)
    ]
    index, brute = both(pts, buffer_limit=16)
    flt = Filter.of(available_only=True, exclude={"u0001", "u0052"})
    for j in range(200):
        lat, lon = 22.80 + (j % 17) * 6e-4, 114.05 + (j % 13) * 7e-4
        for k in (1, 3, 10):
            assert index.nearest(lat, lon, k) == brute.nearest(lat, lon, k)
            assert index.nearest(lat, lon, k, flt) == brute.nearest(lat, lon, k, flt)
        if j % 5 == 0:
            index.move(f"u{j:04d}", lat, lon)
            brute.move(f"u{j:04d}", lat, lon)


def test_hits_carry_kind_and_metres() -> None:
    index = SpatialIndex([IndexedPoint("z1", "key_zone", 22.8, 114.05)])
    (hit,) = index.nearest(22.8009, 114.05)
    assert hit == Hit(pytest.approx(100.08, abs=0.01), "z1", "key_zone")  # type: ignore[arg-type]
    assert index.nearest(22.8, 114.05, 1, Filter.of(kinds="unit")) == []


def test_bad_input_is_refused() -> None:
    with pytest.raises(ValueError, match="duplicate id"):
        SpatialIndex([IndexedPoint("a", "unit", 0, 0), IndexedPoint("a", "unit", 1, 1)])
    index = SpatialIndex([IndexedPoint("a", "unit", 0, 0)])
    with pytest.raises(ValueError, match="out of range"):
        index.nearest(114.05, 22.8)
    with pytest.raises(ValueError, match="k must be"):
        index.nearest(0, 0, 0)
    with pytest.raises(KeyError):
        index.move("nope", 0, 0)
    assert math.isclose(index.position("a")[0], 0.0)
