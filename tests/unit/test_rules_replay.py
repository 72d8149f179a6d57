"""`engine decide` (replay / shadow mode) over the shipped Tangxia data."""

from __future__ import annotations

import io
import json
import random
from datetime import UTC, datetime, timedelta

import pytest

from engine.geo.distance import distance_m
from engine.rules.cli import replay
from engine.rules.plan import LoadedPlan
from engine.rules.world import World
from tests.areas import TANGXIA

pytestmark = pytest.mark.unit


def _incident_lines(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    min_lat, min_lon, max_lat, max_lon = TANGXIA.bbox()
    kinds = ["fire", "medical", "fight", "theft", "traffic", "flood", "other", "fraud"]
    lines = []
    while len(lines) < n:
        lat, lon = rng.uniform(min_lat, max_lat), rng.uniform(min_lon, max_lon)
        if not TANGXIA.contains(lat, lon):
            continue
        at = datetime(2026, 11, 30, 6, 0, tzinfo=UTC) + timedelta(seconds=30 * len(lines))
        lines.append(
            json.dumps(
                {
                    "id": f"INC-R-{len(lines):04d}",
                    "type": rng.choice(kinds),
                    "priority": rng.choice(["P1", "P2", "P3", "P4"]),
                    "location": {"lat": lat, "lon": lon},
                    "raised_at": at.isoformat(),
                }
            )
        )
    return lines


def _run(
    world: World, plan: LoadedPlan, lines: list[str], independent: bool
) -> tuple[int, list[dict], str]:  # type: ignore[type-arg]
    out, err = io.StringIO(), io.StringIO()
    code = replay(
        io.StringIO("\n".join(lines) + "\n"),
        out,
        err,
        world,
        plan,
        at=None,
        independent=independent,
    )
    return code, [json.loads(line) for line in out.getvalue().splitlines()], err.getvalue()


def test_every_incident_gets_the_nearest_available_zone_with_its_units(
    tangxia_world: World, default_plan: LoadedPlan
) -> None:
    """Decisions in one run see each other: a zone committed by an earlier line is busy
    for later ones (unless the later one may preempt it)."""
    lines = _incident_lines(250, seed=11)
    code, decisions, err = _run(tangxia_world, default_plan, lines, independent=False)
    assert code == 0 and err == ""
    assert len(decisions) == len(lines)
    committed: dict[str, str] = {}  # zone -> priority of the incident holding it
    zones = tangxia_world.registry.key_zones
    for line, d in zip(lines, decisions, strict=True):
        incident = json.loads(line)
        response = default_plan.plan.response_for(incident["type"], incident["priority"])  # type: ignore[arg-type]
        assert response is not None
        lat, lon = incident["location"]["lat"], incident["location"]["lon"]
        eligible = sorted(
            (distance_m(lat, lon, z.location.lat, z.location.lon), z.id)
            for z in zones.values()
            if z.id not in committed or committed[z.id] in response.preempt
        )
        in_range = [
            (dist, zid) for dist, zid in eligible if dist <= response.stages[0].max_distance_m
        ]
        if not in_range:
            assert d["zone"] is None and d["command_centre"]
            continue
        assert d["zone"]["id"] == in_range[0][1], incident["id"]
        assert d["zone"]["distance_m"] == round(in_range[0][0], 1)
        zone = zones[d["zone"]["id"]]
        assert {u["id"] for u in d["units"]} <= set(zone.linked_units)
        assert len(d["units"]) == min(response.stages[0].linked_units, len(d["units"]))
        assert [u["distance_m"] for u in d["units"]] == sorted(u["distance_m"] for u in d["units"])
        committed[d["zone"]["id"]] = incident["priority"]


def test_independent_decisions_do_not_see_each_other(
    tangxia_world: World, default_plan: LoadedPlan
) -> None:
    line = _incident_lines(1, seed=3)[0]
    twice = [line, line.replace("INC-R-0000", "INC-R-0001")]
    _, linked, _ = _run(tangxia_world, default_plan, twice, independent=False)
    _, independent, _ = _run(tangxia_world, default_plan, twice, independent=True)
    assert linked[0]["zone"]["id"] != linked[1]["zone"]["id"]
    assert independent[0]["zone"]["id"] == independent[1]["zone"]["id"]


def test_bad_lines_are_reported_with_their_number_and_skipped(
    tangxia_world: World, default_plan: LoadedPlan
) -> None:
    good = _incident_lines(2, seed=5)
    lines = [
        good[0],
        "{not json",
        '{"type": "fire", "priority": "P9", "location": {"lat": 22.8, "lon": 114.08}}',
        '{"type": "fire", "priority": "P1", "location": {"lat": 23.02, "lon": 113.75}}',
        good[1],
    ]
    code, decisions, err = _run(tangxia_world, default_plan, lines, independent=False)
    assert code == 1
    assert [d["incident_id"] for d in decisions] == ["INC-R-0000", "INC-R-0001"]
    assert "line 2: not JSON" in err
    assert "line 3: priority: Input should be" in err
    assert "line 4: location lat=23.02 lon=113.75 is outside every dispatch area" in err


def test_replay_output_is_byte_identical(tangxia_world: World, default_plan: LoadedPlan) -> None:
    lines = _incident_lines(60, seed=9)
    first = _run(tangxia_world, default_plan, lines, independent=False)
    second = _run(tangxia_world, default_plan, lines, independent=False)
    assert first == second
