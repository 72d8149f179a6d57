"""The decision's fast paths answer exactly what the plain ones do: the observer-fix
grid against a scan of every fix (poles and the antimeridian included), ranked cell
queries in dense data against the index, patrol duty segments against ``on_duty``."""

from __future__ import annotations

import itertools
import random
from datetime import UTC, datetime, time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.geo.distance import distance_m
from engine.geo.index import SpatialIndex
from engine.geo.points import IndexedPoint
from engine.rules.availability import Fix, ObserverFixes
from engine.rules.decision import DispatchDecision
from engine.rules.nearby import Nearby
from engine.rules.world import World

pytestmark = pytest.mark.unit

NOW = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)


def test_dispatch_decision_field_order_is_what_decide_builds_positionally() -> None:
    assert DispatchDecision._fields == (
        "incident_id", "stage", "type", "priority", "area", "response", "zone", "zones",
        "units", "recipients", "reasons", "quorum_zone_team", "quorum_linked_units",
        "ack_deadline", "plan_version", "decided_at", "final_stage", "command_centre",
        "equipment", "preempted",
    )  # fmt: skip


@pytest.mark.parametrize(
    ("lat0", "lon0"), [(22.8, 114.1), (60.0, 10.0), (86.0, 0.0), (0.0, 179.99), (-40.0, -179.99)]
)
def test_observer_grid_equals_a_scan_of_every_fix(lat0: float, lon0: float) -> None:
    rng = random.Random(f"{lat0},{lon0}")

    def point() -> tuple[float, float]:
        lat = min(90.0, max(-90.0, lat0 + rng.uniform(-0.1, 0.1)))
        return lat, min(180.0, max(-180.0, lon0 + rng.uniform(-0.1, 0.1)))

    fixes = {f"O{i:04d}": Fix(*point(), NOW) for i in range(1500)}
    grid = ObserverFixes(fixes)
    for i in range(0, 1500, 3):  # moved riders
        fix = Fix(*point(), NOW)
        fixes[f"O{i:04d}"] = fix
        grid.update(f"O{i:04d}", fix)
    for _ in range(120):
        lat, lon = point()
        radius = rng.choice([5.0, 500.0, 2000.0, 5000.0])
        brute = sorted(
            (d, oid)
            for oid, f in fixes.items()
            if (d := distance_m(lat, lon, f.lat, f.lon)) <= radius
        )
        assert grid.within(lat, lon, radius) == brute


def test_ranked_in_dense_data_equals_the_index() -> None:
    rng = random.Random(11)

    def near(x: float) -> float:
        return x + rng.uniform(-0.03, 0.03)

    points = [IndexedPoint(f"P{i:05d}", "k", near(22.8), near(114.0)) for i in range(8000)]
    points += [IndexedPoint(f"Q{i:05d}", "k", p.lat, p.lon) for i, p in enumerate(points[:300])]
    index = SpatialIndex(points)
    nearby = Nearby(index, points)
    for _ in range(400):
        lat, lon = 22.8 + rng.uniform(-0.035, 0.035), 114 + rng.uniform(-0.035, 0.035)
        radius = rng.choice([30.0, 300.0, 1500.0])
        k = rng.choice([1, 5, 70, 10**6])
        full = [(h.distance_m, h.id) for h in index.within(lat, lon, radius)]
        assert list(itertools.islice(nearby.ranked(lat, lon, "k", radius), k)) == full[:k]


@settings(max_examples=200, deadline=None)
@given(st.times())
def test_patrol_duty_segments_equal_on_duty(tangxia_world: World, at: time) -> None:
    from bisect import bisect_right

    nearby = tangxia_world.patrol_on_duty[bisect_right(tangxia_world.patrol_starts, at) - 1]
    listed = (
        set()
        if nearby is None
        else {pid for _, pid in nearby.ranked_far(22.8, 114.1, "patrol_base")}
    )
    expected = {
        b.id
        for b in tangxia_world.registry.placed.values()
        if b.kind.value == "patrol_base" and tangxia_world.addresses.get(b.id) and b.on_duty(at)  # type: ignore[attr-defined]
    }
    assert listed == expected
