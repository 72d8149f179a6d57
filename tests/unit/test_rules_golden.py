"""Golden scenarios from the article, recipients spelled out. Each expected list was
checked against a brute-force haversine ranking of the shipped data (asserted again
below, so a data change cannot silently turn these into hard-coded answers)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from engine.geo.distance import distance_m
from engine.models import Incident
from engine.rules.availability import Availability, Commitment, Fix
from engine.rules.decide import decide
from engine.rules.decision import DispatchDecision
from engine.rules.plan import LoadedPlan
from engine.rules.world import World

pytestmark = pytest.mark.unit

CST = timezone(timedelta(hours=8))


def _ids(d: DispatchDecision, kind: str) -> list[str]:
    return [r.id for r in d.recipients if r.kind == kind]


def _nearest_zones(world: World, lat: float, lon: float) -> list[str]:
    zones = world.registry.key_zones.values()
    return [
        z.id
        for _, z in sorted(
            ((distance_m(lat, lon, z.location.lat, z.location.lon), z) for z in zones),
            key=lambda t: (t[0], t[1].id),
        )
    ]


def test_school_gate_scuffle_at_1630_on_a_school_day(
    tangxia_world: World, default_plan: LoadedPlan
) -> None:
    """A fight 44 m from 塘厦沙湖口第10幼儿园 at 16:30 on a Monday: the gate-duty posts of
    the schools within 300 m are told first, then the nearest zone team and its units,
    the door-front points and the nearest on-duty patrol."""
    school = tangxia_world.registry.schools["SCH010"]
    lat, lon = school.location.lat + 0.0004, school.location.lon
    at = datetime(2026, 11, 30, 16, 30, tzinfo=CST)
    assert at.isoweekday() == 1
    incident = Incident(
        id="INC-GOLD-SCHOOL",
        type="fight",
        priority="P2",
        location={"lat": lat, "lon": lon},
        area="tangxia",
        raised_at=at,
    )  # type: ignore[arg-type]
    d = decide(incident, tangxia_world, Availability(), default_plan, at)

    assert [r.kind for r in d.recipients[:3]] == ["school"] * 3  # told first
    assert _ids(d, "school") == ["SCH010", "SCH008", "SCH013"]
    assert d.zone is not None and d.zone.id == "KZ076"
    assert _nearest_zones(tangxia_world, lat, lon)[0] == "KZ076"
    assert _ids(d, "unit") == [
        "U00908", "U00911", "U00915", "U00912", "U00907",
        "U00910", "U00914", "U00909", "U00916", "U00913",
    ]  # fmt: skip
    assert _ids(d, "frontage_point") == ["FP0130", "FP0429"]
    assert _ids(d, "patrol_base") == ["PT225"]
    assert any("护学岗在岗（16:30-17:30）" in r.reason for r in d.recipients)
    assert (d.quorum_zone_team, d.quorum_linked_units, d.ack_quorum) == (True, 3, 4)
    assert {e["item"] for e in d.equipment} == {"shield", "restraint_fork"}

    # the same scuffle on a Saturday: no gate duty, no school posts
    saturday = at + timedelta(days=5)
    d_sat = decide(incident, tangxia_world, Availability(), default_plan, saturday)
    assert _ids(d_sat, "school") == []


def test_theft_at_a_shop(tangxia_world: World, default_plan: LoadedPlan) -> None:
    """A theft at 蛟乙塘茶餐厅00225 at 14:00: the shop's own zone team KZ019 is the
    nearest; the shop itself heads the linked units; its door-front point is told."""
    shop = tangxia_world.registry.units["U00225"]
    at = datetime(2026, 11, 30, 14, 0, tzinfo=CST)
    incident = Incident(
        id="INC-GOLD-THEFT",
        type="theft",
        priority="P3",
        location=shop.location,
        area="tangxia",
        address=shop.name_zh,
        raised_at=at,
    )
    d = decide(incident, tangxia_world, Availability(), default_plan, at)
    assert d.response == "public-order"
    assert d.zone is not None and d.zone.id == "KZ019"
    assert "U00225" in tangxia_world.registry.key_zones["KZ019"].linked_units
    assert _ids(d, "unit") == [
        "U00225", "U00227", "U00222", "U00224", "U00220",
        "U00223", "U00226", "U00221", "U00219", "U00228",
    ]  # fmt: skip
    assert d.units[0].distance_m == 0.0
    assert _ids(d, "frontage_point") == ["FP0035"]
    assert _ids(d, "patrol_base") == ["PT072"]
    assert not d.command_centre


def test_night_fire_when_the_nearest_zone_is_busy(
    tangxia_world: World, default_plan: LoadedPlan
) -> None:
    """A fire at 新塘公寓1栋 at 02:10. The nearest team, KZ048 (66 m), is busy with
    another incident of the same priority, so KZ012 (193 m), the next nearest, goes;
    the reasons say why KZ048 was skipped. At night no school gate is staffed."""
    building = tangxia_world.registry.units["U00143"]
    lat, lon = building.location.lat, building.location.lon
    at = datetime(2026, 12, 1, 2, 10, tzinfo=CST)
    incident = Incident(
        id="INC-GOLD-FIRE",
        type="fire",
        priority="P1",
        location=building.location,
        area="tangxia",
        address=building.name_zh,
        raised_at=at,
    )
    assert _nearest_zones(tangxia_world, lat, lon)[:2] == ["KZ048", "KZ012"]
    busy = Availability(commitments={"KZ048": Commitment("INC-OTHER-1", "P2")})  # type: ignore[arg-type]
    d = decide(incident, tangxia_world, busy, default_plan, at)
    assert d.zone is not None and d.zone.id == "KZ012"
    assert round(d.zone.distance_m) == 193
    assert "跳过 KZ048：正在处置 INC-OTHER-1 | skipped KZ048: committed to INC-OTHER-1" in d.reasons
    assert _ids(d, "unit") == [
        "U00132", "U00139", "U00130", "U00137", "U00134",
        "U00131", "U00135", "U00138", "U00141", "U00133",
    ]  # fmt: skip
    assert _ids(d, "school") == []
    assert d.preempted == ()

    # a P4 commitment may be preempted by a P1 fire: the nearest team goes, with a reason
    low = Availability(commitments={"KZ048": Commitment("INC-NOISE", "P4")})  # type: ignore[arg-type]
    d_pre = decide(incident, tangxia_world, low, default_plan, at)
    assert d_pre.zone is not None and d_pre.zone.id == "KZ048"
    assert d_pre.preempted == ("INC-NOISE",)
    assert any(r.startswith("抢占 KZ048") for r in d_pre.reasons)


MISSING_CHILD_OBSERVERS = [
    "OB486", "OB489", "OB017", "OB463", "OB186", "OB422", "OB265", "OB327", "OB179",
    "OB381", "OB205", "OB475", "OB302", "OB080", "OB048", "OB010", "OB300", "OB507",
    "OB208", "OB088", "OB301", "OB259", "OB143", "OB254", "OB229", "OB252", "OB228",
    "OB354", "OB068", "OB382", "OB292", "OB136", "OB170", "OB073", "OB418",
]  # fmt: skip


def test_missing_child_lookout_to_observers_within_2km(
    tangxia_world: World, default_plan: LoadedPlan
) -> None:
    """A 7-year-old lost near 石潭埔 at 19:05: every mobile observer whose fix is at most
    five minutes old and within 2 km gets the lookout, nearest first; OB145, the
    nearest of all, last reported 30 minutes ago and is left out."""
    at = datetime(2026, 11, 30, 19, 5, tzinfo=CST)
    lat, lon = 22.8190, 114.1052
    observers = tangxia_world.registry.observers.values()
    fixes = {
        o.id: Fix(o.location.lat, o.location.lon, at - timedelta(seconds=60)) for o in observers
    }
    fixes["OB145"] = Fix(fixes["OB145"].lat, fixes["OB145"].lon, at - timedelta(minutes=30))
    incident = Incident(
        id="INC-GOLD-CHILD",
        type="missing_person",
        priority="P2",
        location={"lat": lat, "lon": lon},
        area="tangxia",
        description="7岁男孩走失",
        raised_at=at,
    )  # type: ignore[arg-type]
    d = decide(incident, tangxia_world, Availability(observer_fixes=fixes), default_plan, at)
    assert _ids(d, "observer") == MISSING_CHILD_OBSERVERS

    brute = sorted(
        (distance_m(lat, lon, f.lat, f.lon), oid)
        for oid, f in fixes.items()
        if f.at >= at - timedelta(minutes=5)
    )
    assert [oid for dist, oid in brute if dist <= 2000] == MISSING_CHILD_OBSERVERS
    assert d.zone is not None and d.zone.id == "KZ119"
    assert "协查通报发送给 35 个流动观察哨 | lookout sent to 35 mobile observers" in d.reasons
