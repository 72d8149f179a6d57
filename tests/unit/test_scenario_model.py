"""Scenario files beyond incidents: bursts, duty changes, broadcasts, faults; the drill
clock; answers spread over time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from engine import clock
from engine.config import DEFAULT_REGISTRY
from engine.errors import ConfigError
from engine.geo.areas import load_area
from engine.radio.handset_sim import script_for
from engine.scenario.model import Scenario, all_incidents
from engine.yamlfile import parse_yaml

pytestmark = pytest.mark.unit

AREA = load_area(DEFAULT_REGISTRY / "area.geojson")
TYPHOON = """\
name: t
bursts:
  - {at_s: 5, over_s: 60, count: 200, name: typhoon, seed: 14,
     types: {flood: 5, other: 3}, priorities: {P1: 1, P3: 4}}
"""


def _load(text: str) -> Scenario:
    return parse_yaml(Scenario, text.encode(), "s.yaml", "scenario", "a mapping")


def test_a_burst_expands_inside_the_area_evenly_and_the_same_every_time() -> None:
    first = all_incidents(_load(TYPHOON), AREA)
    again = all_incidents(_load(TYPHOON), AREA)
    assert first == again and len(first) == 200
    assert [i.name for i in first[:2]] == ["typhoon-001", "typhoon-002"]
    assert first[0].at_s == 5 and first[-1].at_s == pytest.approx(5 + 60 * 199 / 200)
    assert all(AREA.contains(i.location.lat, i.location.lon) for i in first)
    assert {i.type.value for i in first} == {"flood", "other"}
    p1 = sum(1 for i in first if i.priority.value == "P1")
    assert 20 < p1 < 70  # about a fifth, by weight
    other_seed = all_incidents(_load(TYPHOON.replace("seed: 14", "seed: 15")), AREA)
    assert [i.location for i in other_seed] != [i.location for i in first]


@pytest.mark.parametrize(
    ("action", "error"),
    [
        ("{at_s: 1, fault: kill_worker, command: close, incident: a}", "exactly one of"),
        ("{at_s: 1, unit: U00519}", "needs 'available"),
        ("{at_s: 1, fault: unplug_radio, for_s: 0}", "greater than 0"),
        ("{at_s: 1, broadcast: {text: 台风, to: [everyone]}}", "publicity"),
        ("{at_s: 1, command: close}", "needs the 'incident'"),
    ],
)
def test_bad_actions_are_refused_with_the_field(action: str, error: str) -> None:
    text = f"""name: t
incidents:
  - {{at_s: 0, name: a, type: fire, priority: P1, location: {{lat: 22.8, lon: 114.08}}}}
actions:
  - {action}
"""
    with pytest.raises(ConfigError, match=error) as caught:
        _load(text)
    assert "s.yaml:5:" in str(caught.value)  # the action's line


def test_scenario_needs_incidents_or_bursts_and_sane_sms_delays() -> None:
    with pytest.raises(ConfigError, match="'incidents' or 'bursts'"):
        _load("name: t\n")
    with pytest.raises(ConfigError, match="sms_delay_s"):
        _load(TYPHOON + "handsets: {sms_delay_s: [3, 1]}\n")
    ok = _load(TYPHOON + "handsets: {sms_delay_s: [1, 3], decline: [U01681], offline: [KZ1]}\n")
    assert ok.handsets.sms_delay_s == (1.0, 3.0)


def test_the_drill_clock_is_shifted_by_the_offset(monkeypatch: pytest.MonkeyPatch) -> None:
    start = datetime(2026, 12, 7, 16, 30, tzinfo=UTC) + timedelta(hours=-8)
    offset = clock.offset_to(start)
    monkeypatch.setattr(clock, "_OFFSET", timedelta(seconds=offset))
    monkeypatch.setattr(clock, "OFFSET_S", offset)
    assert abs((clock.now() - start).total_seconds()) < 5
    assert abs(clock.time_s() - start.timestamp()) < 5
    monkeypatch.setenv("ENGINE_CLOCK_OFFSET_S", "soon")
    with pytest.raises(ConfigError, match="ENGINE_CLOCK_OFFSET_S"):
        clock._offset_from_env()
    monkeypatch.setenv("ENGINE_CLOCK_OFFSET_S", "nan")
    with pytest.raises(ConfigError, match="out of range"):
        clock._offset_from_env()


def test_answers_are_spread_per_handset_and_the_same_every_time() -> None:
    delays = [script_for("accept", i, 12.0, 40.0, 0.4).replies[0][0] for i in range(60)]
    assert all(12 * 0.6 <= d <= 12 * 1.4 for d in delays)
    assert len({round(d, 6) for d in delays}) == 60  # nobody answers in the same instant
    assert delays == [script_for("accept", i, 12.0, 40.0, 0.4).replies[0][0] for i in range(60)]
    assert script_for("accept", 7, 12.0, 40.0).replies[0][0] == 12.0  # no spread: as asked
