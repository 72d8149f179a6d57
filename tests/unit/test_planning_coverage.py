"""Coverage and siting on registries whose figures are known by hand, a property
(coverage never falls when a zone team is added), and the fast path against the
brute-force reference on the shipped Tangxia data."""

from __future__ import annotations

import math
from datetime import date, datetime
from zoneinfo import ZoneInfo

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.geo.areas import Area
from engine.geo.brute import BruteForceIndex
from engine.geo.distance import distance_m
from engine.geo.points import IndexedPoint
from engine.models import Location
from engine.planning.coverage import Coverage, coverage_report, hour_instants, quorum_rules
from engine.planning.grid import METRES_PER_DEGREE, build_grid, points_in_polygon
from engine.planning.network import Network, parse_duty
from engine.planning.siting import losses, suggest_sites, unlinked_units
from engine.registry.models import KeyZone, Placed, Unit, UnitType, Volunteer
from engine.registry.registry import Registry
from engine.rules.plan import LoadedPlan
from engine.rules.world import World
from tests.areas import TANGXIA

pytestmark = pytest.mark.unit

LAT0, LON0 = 22.80, 114.08
KM_LAT = 1000 / METRES_PER_DEGREE
KM_LON = 1000 / (METRES_PER_DEGREE * math.cos(math.radians(LAT0 + KM_LAT / 2)))
SQUARE = Area(
    id="square",
    name_zh="一平方公里",
    outline=(
        (LON0, LAT0),
        (LON0 + KM_LON, LAT0),
        (LON0 + KM_LON, LAT0 + KM_LAT),
        (LON0, LAT0 + KM_LAT),
    ),
)
"""A 1 km square (in the grid's own projection: its cells tile it exactly)."""
CENTRE = (LAT0 + KM_LAT / 2, LON0 + KM_LON / 2)


def north_of(lat: float, lon: float, metres: float) -> tuple[float, float]:
    return lat + metres / METRES_PER_DEGREE, lon


def hand_registry(
    zones: dict[str, tuple[float, float]],
    units: dict[str, tuple[float, float, UnitType]],
    links: dict[str, list[str]],
) -> Registry:
    placed: list[Placed] = [
        KeyZone(
            id=z, name_zh=f"防区{z}", location=Location(lat=lat, lon=lon),
            linked_units=tuple(links.get(z, ())),
        )
        for z, (lat, lon) in zones.items()
    ]  # fmt: skip
    placed += [
        Unit(id=u, name_zh=f"单位{u}", location=Location(lat=lat, lon=lon), unit_type=t)
        for u, (lat, lon, t) in units.items()
    ]
    vols = [
        Volunteer(id=f"V{i:03d}", name_zh="张三", role="volunteer", phone=f"139{i:08d}",
                  group_id=e if e in zones else None, unit_id=e if e in units else None)
        for i, e in enumerate([*zones, *units])
    ]  # fmt: skip
    return Registry.build("square", placed, vols, [])


def network_of(registry: Registry, **kwargs: object) -> tuple[World, Network]:
    world = World.build(registry)
    return world, Network.from_world(world, **kwargs)  # type: ignore[arg-type]


# units due north of the zone at the centre: 100, 450, 700 and 1200 m; the first
# three linked to it; U2 and U4 are buildings
UNITS = {
    "U1": (*north_of(*CENTRE, 100), UnitType.SHOP),
    "U2": (*north_of(*CENTRE, 450), UnitType.BUILDING),
    "U3": (*north_of(*CENTRE, 700), UnitType.SECURITY_POST),
    "U4": (*north_of(*CENTRE, 1200), UnitType.BUILDING),
}


@pytest.fixture(scope="module")
def centre_zone() -> tuple[World, Network]:
    return network_of(hand_registry({"KZ1": CENTRE}, UNITS, {"KZ1": ["U1", "U2", "U3"]}))


def test_one_zone_in_the_middle_of_a_1km_square(
    centre_zone: tuple[World, Network], default_plan: LoadedPlan
) -> None:
    world, net = centre_zone
    grid = build_grid(SQUARE, 10.0)
    assert len(grid) == 100 * 100  # the square, tiled exactly by 10 m cells
    report = coverage_report(world, net, grid, default_plan, [])
    (row,) = report["rows"]
    area = row["zone"]["area"]
    # a disc of radius r inside the square: pi r^2 / 1 km^2 (grid error ~ perimeter x 5 m)
    assert area["300"] == pytest.approx(math.pi * 0.09, abs=0.003)
    assert area["500"] == pytest.approx(math.pi * 0.25, abs=0.003)
    assert area["1000"] == 1.0  # the corners are 707 m away
    # units: 100, 450, 700, 1200 m
    assert row["zone"]["units"] == {"300": 0.25, "500": 0.5, "1000": 0.75}
    assert row["zone"]["buildings"] == {"300": 0.0, "500": 0.5, "1000": 0.5}
    # quorum reach: max(zone, n-th nearest linked unit) by hand, per unit
    #   U1: zone 100, linked 0/350/600;  U2: 450, 0/250/350;  U3: 700, 0/250/600
    q = row["quorum"]
    assert q["zone+3"]["units"] == {"300": 0.0, "500": 0.25, "1000": 0.75}
    assert q["zone+2"]["units"] == {"300": 0.0, "500": 0.5, "1000": 0.75}
    assert q["zone+1"]["units"] == {"300": 0.25, "500": 0.5, "1000": 0.75}


def test_zone_in_a_corner_covers_a_quarter_disc_and_a_far_zone_nothing(
    default_plan: LoadedPlan,
) -> None:
    grid = build_grid(SQUARE, 10.0)
    world, net = network_of(hand_registry({"KZ1": (LAT0, LON0)}, {}, {}))
    (row,) = coverage_report(world, net, grid, default_plan, [])["rows"]
    assert row["zone"]["area"]["1000"] == pytest.approx(math.pi / 4, abs=0.004)
    assert row["zone"]["area"]["500"] == pytest.approx(math.pi / 16, abs=0.003)
    world, net = network_of(hand_registry({"KZ1": north_of(LAT0, LON0, -2000)}, {}, {}))
    (row,) = coverage_report(world, net, grid, default_plan, [])["rows"]
    assert row["zone"]["area"] == {"300": 0.0, "500": 0.0, "1000": 0.0}


def test_a_zone_off_duty_leaves_its_hours_uncovered(default_plan: LoadedPlan) -> None:
    registry = hand_registry({"KZ1": CENTRE}, UNITS, {"KZ1": ["U1"]})
    duty = parse_duty({"KZ1": ["08:00-20:00"]}, "roster")
    world, net = network_of(registry, duty=duty)
    grid = build_grid(SQUARE, 50.0)
    rows = coverage_report(
        world, net, grid, default_plan, hour_instants(date(2026, 11, 30), "Asia/Shanghai")
    )["rows"]
    by_label = {r["label"]: r for r in rows}
    assert by_label["all zones"]["zones_available"] == 1
    assert by_label["07:00"]["zones_available"] == 0
    assert by_label["07:00"]["zone"]["units"]["1000"] == 0.0
    assert by_label["08:00"]["zones_available"] == 1
    assert by_label["08:00"]["zone"]["units"]["1000"] == 0.75
    assert by_label["20:00"]["zones_available"] == 0


def test_an_unavailable_zone_or_unit_is_left_out(default_plan: LoadedPlan) -> None:
    registry = hand_registry({"KZ1": CENTRE}, UNITS, {"KZ1": ["U1", "U2", "U3"]})
    grid = build_grid(SQUARE, 50.0)
    world, net = network_of(registry, unavailable=["KZ1"])
    (row,) = coverage_report(world, net, grid, default_plan, [])["rows"]
    assert row["zones_available"] == 0 and row["zone"]["area"]["1000"] == 0.0
    world, net = network_of(registry, unavailable=["U1"])
    (row,) = coverage_report(world, net, grid, default_plan, [])["rows"]
    assert row["zone"]["units"] == {"300": 0.25, "500": 0.5, "1000": 0.75}  # still people
    # U1 cannot be called, so zone+1 needs U2 or U3: from U1's spot, U2 at 350 m
    assert row["quorum"]["zone+1"]["units"] == {"300": 0.0, "500": 0.5, "1000": 0.75}


def test_quorum_rules_group_the_plans_first_stages(default_plan: LoadedPlan) -> None:
    rules = {q.label: q.responses for q in quorum_rules(default_plan.plan)}
    assert list(rules) == ["zone+3", "zone+2", "zone+1"]
    assert "fire-urgent" in rules["zone+3"] and "routine" in rules["zone+1"]


coords = st.tuples(
    st.floats(LAT0 - KM_LAT, LAT0 + 2 * KM_LAT), st.floats(LON0 - KM_LON, LON0 + 2 * KM_LON)
)


@settings(max_examples=40, deadline=None)
@given(
    zones=st.lists(coords, min_size=0, max_size=5),
    extra=coords,
    units=st.lists(coords, min_size=1, max_size=12),
)
def test_coverage_never_falls_when_a_zone_is_added(
    zones: list[tuple[float, float]], extra: tuple[float, float], units: list[tuple[float, float]]
) -> None:
    registry = hand_registry(
        {f"KZ{i}": z for i, z in enumerate(zones)},
        {f"U{i}": (lat, lon, UnitType.BUILDING if i % 2 else UnitType.SHOP)
         for i, (lat, lon) in enumerate(units)},
        {},
    )  # fmt: skip
    grid = build_grid(SQUARE, 100.0)
    world = World.build(registry)
    before = Coverage(Network.from_world(world), grid)
    after = Coverage(Network.from_world(world, extra_zones={"NEW": extra}), grid)
    b = before.distances(before.network.zones_on_duty(None))
    a = after.distances(after.network.zones_on_duty(None))
    assert np.all(a.cells <= b.cells) and np.all(a.units <= b.units)
    shares_b, shares_a = before.shares(b.cells, b.units, b), after.shares(a.cells, a.units, a)
    for population, by_radius in shares_b.items():
        for r, share in by_radius.items():
            assert shares_a[population][r] >= share


@given(st.lists(st.tuples(st.floats(22.70, 22.90), st.floats(113.98, 114.18)), max_size=200))
def test_points_in_polygon_agrees_with_the_areas_own_test(pts: list[tuple[float, float]]) -> None:
    lat = np.array([p[0] for p in pts], dtype=np.float64)
    lon = np.array([p[1] for p in pts], dtype=np.float64)
    got = points_in_polygon(lon, lat, TANGXIA.outline).tolist()
    assert got == [TANGXIA.contains(a, b) for a, b in pts]


def test_tangxia_nearest_zone_equals_brute_force(tangxia_world: World) -> None:
    """Every cell of a 200 m grid and every unit: the same nearest zone team as the
    brute-force reference, the same distance (to a micrometre), the same verdicts."""
    roster = {z: (("08:00-20:00",) if i % 7 == 0 else ()) for i, z in
              enumerate(sorted(tangxia_world.registry.key_zones))}  # fmt: skip
    duty = parse_duty({z: list(w) for z, w in roster.items() if w}, "roster")
    net = Network.from_world(tangxia_world, duty=duty)
    grid = build_grid(TANGXIA, 200.0)
    cov = Coverage(net, grid)
    night = datetime(2026, 11, 30, 3, 30, tzinfo=ZoneInfo("Asia/Shanghai"))
    for zone_set in (net.zones_on_duty(None), net.zones_on_duty(night)):
        dist = cov.distances(zone_set)
        brute = BruteForceIndex(
            IndexedPoint(net.zone_ids[i], "key_zone", float(net.zones.lat[i]),
                         float(net.zones.lon[i])) for i in sorted(zone_set)
        )  # fmt: skip
        for pts, d, site in ((cov.cells, dist.cells, dist.cell_zone),
                             (net.units, dist.units, dist.unit_zone)):  # fmt: skip
            want = [
                brute.nearest(float(a), float(b))[0] for a, b in zip(pts.lat, pts.lon, strict=True)
            ]
            assert [net.zone_ids[i] for i in site.tolist()] == [h.id for h in want]
            assert np.max(np.abs(d - np.array([h.distance_m for h in want]))) < 1e-6
            for r in (300.0, 500.0, 1000.0):
                assert int((d <= r).sum()) == sum(h.distance_m <= r for h in want)
    assert len(net.zones_on_duty(night)) == 140 - 20


def test_siting_on_a_hand_made_town(default_plan: LoadedPlan) -> None:
    """One zone in the south-west corner; a cluster of 5 units 900 m away across the
    square, another of 2 units: the new zone goes to the 5."""
    sw = (LAT0, LON0)
    ne = north_of(LAT0 + 0.8 * KM_LAT - 0.0, LON0 + 0.8 * KM_LON, 0)
    units = {f"A{i}": (*north_of(*ne, 20 * i), UnitType.BUILDING) for i in range(5)}
    units |= {
        f"B{i}": (*north_of(LAT0 + 0.9 * KM_LAT, LON0, 20 * i), UnitType.SHOP) for i in range(2)
    }
    units |= {
        "N1": (*north_of(*sw, 100), UnitType.SHOP),
        "N2": (*north_of(*sw, 200), UnitType.SHOP),
    }
    _, net = network_of(hand_registry({"KZ1": sw}, units, {"KZ1": ["N1", "B0"]}))
    cov = Coverage(net, build_grid(SQUARE, 25.0))
    first, second = suggest_sites(cov, 500.0, 3)
    assert (
        first["at_unit"] == "A0" and first["units_gained"] == 5 and first["buildings_gained"] == 5
    )
    assert second["units_gained"] == 2 and second["at_unit"] == "B0"
    assert first["units_share"] == [2 / 9, 7 / 9]
    (loss,) = losses(cov, 500.0)
    assert (loss["zone"], loss["units_lost"]) == ("KZ1", 2)
    unlinked = unlinked_units(net, 1000.0)
    # N1 linked within 1 km; B0 linked but 900 m north (linked); the rest are not
    assert unlinked["callable_units"] == 9 and unlinked["unlinked"] == 7
    assert distance_m(*sw, *units["B0"][:2]) < 1000
