"""Property tests of the decision: deterministic, never a busy or out-of-range zone,
the nearest eligible zone by brute force, escalation distances never decrease, quorum
arithmetic, door-front coverage equal to a brute-force radius check."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from engine.geo.distance import distance_m, haversine_rad_m
from engine.models import Incident, IncidentType, Priority
from engine.registry.registry import load_registry
from engine.rules.availability import Availability, Commitment
from engine.rules.decide import NoStageLeft, decide, escalate
from engine.rules.nearby import haversine_pre_m
from engine.rules.plan import LoadedPlan
from engine.rules.world import World
from tests.areas import TANGXIA
from tests.conftest import REPO

pytestmark = pytest.mark.unit

MIN_LAT, MIN_LON, MAX_LAT, MAX_LON = TANGXIA.bbox()
SETTINGS = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


_ANCHORS = sorted(
    (p.location.lat, p.location.lon)
    for p in load_registry(REPO / "data" / "tangxia").placed.values()
)


@st.composite
def incidents(draw: st.DrawFn) -> Incident:
    """Somewhere within about 400 m of a registry point (where incidents happen), and
    inside the town."""
    lat0, lon0 = draw(st.sampled_from(_ANCHORS))
    lat = lat0 + draw(st.floats(-0.004, 0.004))
    lon = lon0 + draw(st.floats(-0.004, 0.004))
    assume(TANGXIA.contains(lat, lon))
    minutes = draw(st.integers(0, 7 * 24 * 60 - 1))
    return Incident(
        id=f"INC-P-{draw(st.integers(0, 10**6)):07d}",
        type=draw(st.sampled_from(list(IncidentType))),
        priority=draw(st.sampled_from(list(Priority))),
        location={"lat": lat, "lon": lon},  # type: ignore[arg-type]
        area="tangxia",
        raised_at=datetime(2026, 11, 29, 16, 0, tzinfo=UTC) + timedelta(minutes=minutes),
    )


@st.composite
def availabilities(draw: st.DrawFn, world: World) -> Availability:
    zones = sorted(world.registry.key_zones)
    busy = draw(
        st.lists(
            st.tuples(st.sampled_from(zones), st.sampled_from(list(Priority))),
            max_size=60,
            unique_by=lambda t: t[0],
        )
    )
    down = draw(st.lists(st.sampled_from(zones), max_size=30, unique=True))
    units = sorted(world.registry.units)
    units_down = draw(st.lists(st.sampled_from(units), max_size=200, unique=True))
    return Availability(
        commitments={z: Commitment(f"INC-B-{i}", p) for i, (z, p) in enumerate(busy)},
        unavailable=frozenset(down) | frozenset(units_down),
    )


def _eligible_zones(
    world: World, plan: LoadedPlan, incident: Incident, availability: Availability, skip: set[str]
) -> list[tuple[float, str]]:
    """Brute force: every zone that may be called, by (distance, id)."""
    response = plan.plan.response_for(incident.type, incident.priority)
    assert response is not None
    out = []
    for z in world.registry.key_zones.values():
        if z.id in skip or z.id in availability.unavailable:
            continue
        held = availability.commitments.get(z.id)
        if held is not None and held.priority not in response.preempt:
            continue
        d = distance_m(incident.location.lat, incident.location.lon, z.location.lat, z.location.lon)
        out.append((d, z.id))
    return sorted(out)


@SETTINGS
@given(data=st.data())
def test_decision_is_deterministic(
    tangxia_world: World, default_plan: LoadedPlan, data: st.DataObject
) -> None:
    incident = data.draw(incidents())
    availability = data.draw(availabilities(tangxia_world))
    a = decide(incident, tangxia_world, availability, default_plan, incident.raised_at)
    b = decide(incident, tangxia_world, availability, default_plan, incident.raised_at)
    assert a.to_json() == b.to_json()


def test_determinism_does_not_depend_on_cache_state(default_plan: LoadedPlan) -> None:
    """Two worlds, one warmed by other queries first: byte-identical decisions."""
    registry = load_registry(REPO / "data" / "tangxia")
    cold, warm = World.build(registry), World.build(registry)
    at = datetime(2026, 11, 30, 8, 30, tzinfo=UTC)
    for i in range(200):  # warm the per-cell caches elsewhere in town
        lat = MIN_LAT + (MAX_LAT - MIN_LAT) * ((i * 37) % 100) / 100
        lon = MIN_LON + (MAX_LON - MIN_LON) * ((i * 61) % 100) / 100
        if TANGXIA.contains(lat, lon):
            probe = Incident(
                id="W",
                type="theft",
                priority="P3",
                location={"lat": lat, "lon": lon},
                area="tangxia",
                raised_at=at,
            )  # type: ignore[arg-type]
            decide(probe, warm, Availability(), default_plan, at)
    incident = Incident(
        id="X",
        type="fire",
        priority="P1",
        location={"lat": 22.8031, "lon": 114.0842},
        area="tangxia",
        raised_at=at,
    )  # type: ignore[arg-type]
    assert (
        decide(incident, cold, Availability(), default_plan, at).to_json()
        == decide(incident, warm, Availability(), default_plan, at).to_json()
    )


@SETTINGS
@given(data=st.data())
def test_zone_is_the_nearest_eligible_and_never_busy_or_out_of_range(
    tangxia_world: World, default_plan: LoadedPlan, data: st.DataObject
) -> None:
    incident = data.draw(incidents())
    availability = data.draw(availabilities(tangxia_world))
    d = decide(incident, tangxia_world, availability, default_plan, incident.raised_at)
    response = default_plan.plan.response_for(incident.type, incident.priority)
    assert response is not None
    stage = response.stages[0]
    eligible = [
        (dist, z)
        for dist, z in _eligible_zones(tangxia_world, default_plan, incident, availability, set())
        if dist <= stage.max_distance_m
    ]
    if not eligible:
        assert d.zone is None
        assert d.command_centre  # never silently calls nobody
        assert any(r.kind == "command_centre" for r in d.recipients)
        return
    assert d.zone is not None
    assert d.zone.id == eligible[0][1]
    assert math.isclose(d.zone.distance_m, eligible[0][0], abs_tol=1e-6)
    assert d.zone.distance_m <= stage.max_distance_m
    assert d.zone.id not in availability.unavailable
    held = availability.commitments.get(d.zone.id)
    if held is not None:  # only ever a preemptable commitment, and the reasons say so
        assert held.priority in response.preempt
        assert held.incident_id in d.preempted
    # its linked units: the nearest available ones of that zone that have someone to
    # call (a unit with no volunteer of its own is reached through the zone team)
    zone = tangxia_world.registry.key_zones[d.zone.id]
    lat, lon = incident.location.lat, incident.location.lon
    linked = sorted(
        (distance_m(lat, lon, u.location.lat, u.location.lon), u.id)
        for uid in zone.linked_units
        if uid not in availability.unavailable and uid in tangxia_world.addresses
        for u in [tangxia_world.registry.units[uid]]
    )
    assert [u.id for u in d.units] == [uid for _, uid in linked[: stage.linked_units]]


@SETTINGS
@given(data=st.data())
def test_escalation_distances_never_decrease_and_nobody_is_called_twice(
    tangxia_world: World, default_plan: LoadedPlan, data: st.DataObject
) -> None:
    incident = data.draw(incidents())
    availability = data.draw(availabilities(tangxia_world))
    now = incident.raised_at
    decisions = [decide(incident, tangxia_world, availability, default_plan, now)]
    while True:
        now += timedelta(minutes=2)
        try:
            decisions.append(
                escalate(incident, tangxia_world, availability, default_plan, now, decisions)
            )
        except NoStageLeft:
            break
    response = default_plan.plan.response_for(incident.type, incident.priority)
    assert response is not None
    assert len(decisions) == len(response.stages)
    assert [d.stage for d in decisions] == list(range(len(decisions)))
    zone_distances = [z.distance_m for d in decisions for z in d.zones]
    assert zone_distances == sorted(zone_distances)
    called = [r.id for d in decisions for r in d.recipients if r.kind != "command_centre"]
    assert len(called) == len(set(called))
    deadlines = [d.ack_deadline for d in decisions]
    assert deadlines == sorted(deadlines)


@SETTINGS
@given(data=st.data())
def test_quorum_arithmetic(
    tangxia_world: World, default_plan: LoadedPlan, data: st.DataObject
) -> None:
    incident = data.draw(incidents())
    availability = data.draw(availabilities(tangxia_world))
    d = decide(incident, tangxia_world, availability, default_plan, incident.raised_at)
    response = default_plan.plan.response_for(incident.type, incident.priority)
    assert response is not None
    rule = response.stages[0].quorum
    assert d.ack_quorum == int(d.quorum_zone_team) + d.quorum_linked_units
    assert d.quorum_linked_units == min(rule.linked_units, len(d.units))
    assert d.quorum_zone_team == (rule.zone_team and d.zone is not None)
    timeout = response.stages[0].ack_timeout_s
    assert d.ack_deadline - d.decided_at == timedelta(seconds=timeout)


@SETTINGS
@given(incident=incidents())
def test_door_front_coverage_equals_brute_force(
    tangxia_world: World, default_plan: LoadedPlan, incident: Incident
) -> None:
    d = decide(incident, tangxia_world, Availability(), default_plan, incident.raised_at)
    response = default_plan.plan.response_for(incident.type, incident.priority)
    assert response is not None
    lat, lon = incident.location.lat, incident.location.lon
    brute = sorted(
        (distance_m(lat, lon, p.location.lat, p.location.lon), p.id)
        for p in tangxia_world.registry.frontage_points.values()
        if distance_m(lat, lon, p.location.lat, p.location.lon) <= p.radius_m
    )
    got = [r.id for r in d.recipients if r.kind == "frontage_point"]
    if response.stages[0].frontage:
        reachable = [pid for _, pid in brute if pid in tangxia_world.addresses]
        assert got == reachable[: default_plan.plan.frontage_max_points]
    else:
        assert got == []


@settings(max_examples=300, deadline=None)
@given(st.floats(-1.5, 1.5), st.floats(-3.1, 3.1), st.floats(-1.5, 1.5), st.floats(-3.1, 3.1))
def test_haversine_with_precomputed_cosines_is_bit_identical(
    p1: float, l1: float, p2: float, l2: float
) -> None:
    assert haversine_pre_m(p1, l1, math.cos(p1), p2, l2, math.cos(p2)) == haversine_rad_m(
        p1, l1, p2, l2
    )


@SETTINGS
@given(
    lat=st.floats(MIN_LAT, MAX_LAT),
    lon=st.floats(MIN_LON, MAX_LON),
    kind=st.sampled_from(["key_zone", "school", "frontage_point", "patrol_base", "watch_group"]),
    radius=st.sampled_from([100.0, 300.0, 1000.0, 2000.0, 3500.0]),
    take=st.integers(1, 40),
)
def test_cell_cache_answers_equal_the_index(
    tangxia_world: World, lat: float, lon: float, kind: str, radius: float, take: int
) -> None:
    from engine.geo.points import Filter

    index_hits = [
        (h.distance_m, h.id)
        for h in tangxia_world.index.within(lat, lon, radius, Filter(kinds=frozenset({kind})))
    ]
    assert tangxia_world.nearby.within(lat, lon, kind, radius) == index_hits
    ranked = list(tangxia_world.nearby.ranked(lat, lon, kind, radius))
    assert ranked == index_hits
    far = []
    for hit in tangxia_world.nearby.ranked_far(lat, lon, kind):
        far.append(hit)
        if len(far) == take:
            break
    nearest = tangxia_world.index.nearest(lat, lon, take, Filter(kinds=frozenset({kind})))
    assert far == [(h.distance_m, h.id) for h in nearest]
