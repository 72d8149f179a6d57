"""Plan compare's lifecycle replay: recorded acks, the reply model, and its terms."""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime, timedelta

import pytest
import yaml

from engine.models import Ack, AckKind, Incident, IncidentType, Lifecycle, Location, Priority
from engine.planning.cli import _since, _values
from engine.planning.compare import ReplyModel, compare_plans, replay_one
from engine.rules.availability import Availability
from engine.rules.decide import decide
from engine.rules.followup import open_dispatch
from engine.rules.plan import LoadedPlan, default_plan_bytes, parse_plan
from engine.rules.world import World

pytestmark = pytest.mark.unit

AT = datetime(2026, 11, 30, 6, 0, tzinfo=UTC)  # 14:00 in Tangxia, a Monday


def fire(lat: float = 22.8031, lon: float = 114.0842, **kw: object) -> Incident:
    return Incident(
        id=kw.pop("id", "INC-FIRE"), type=IncidentType.FIRE, priority=Priority.P1,
        location=Location(lat=lat, lon=lon), area="tangxia", raised_at=AT, **kw,
    )  # type: ignore[arg-type]  # fmt: skip


def with_quorum(units: int) -> LoadedPlan:
    raw = yaml.safe_load(default_plan_bytes())
    raw["responses"][0]["stages"][0]["quorum"]["linked_units"] = units  # fire-urgent
    return parse_plan(yaml.safe_dump(raw, allow_unicode=True).encode(), "lowered.yaml")


def test_recorded_acks_meet_the_quorum_at_the_last_needed_accept(
    tangxia_world: World, default_plan: LoadedPlan
) -> None:
    inc = fire()
    first = decide(inc, tangxia_world, Availability(), default_plan, AT)
    called = open_dispatch(inc, first, AT)
    # the zone team's handset is also unit U01407's guard: its accept counts for both
    assert called.entities_of("R118") == ["KZ118", "U01407"]
    assert called.entities_of("sms:V00785") == ["U01409"]
    assert called.entities_of("sms:V00784") == ["U01408"]
    acks = [
        Ack(incident_id=inc.id, radio_id=a, kind=AckKind.ACCEPT, at=AT + timedelta(seconds=s))
        for a, s in (("R118", 5), ("sms:V00785", 12), ("sms:V00784", 20), ("sms:V05717", 31))
    ]
    # fire P1: the team and 3 units: R118 (team + 1 unit), then 2 more units at 20 s
    out = replay_one(inc, tangxia_world, default_plan, acks, ReplyModel())
    assert (out.quorum_s, out.stages, out.status) == (20.0, 1, Lifecycle.ACKNOWLEDGED)
    # with the quorum lowered to the team and 2 units, met at 12 s
    out = replay_one(inc, tangxia_world, with_quorum(2), acks, ReplyModel())
    assert (out.quorum_s, out.stages) == (12.0, 1)
    # raised to the team and 4 units: the fourth unit's accept at 31 s
    out = replay_one(inc, tangxia_world, with_quorum(4), acks, ReplyModel())
    assert (out.quorum_s, out.stages) == (31.0, 1)
    # an accept from a handset the plan never called is ignored: the ladder runs out
    stranger = [Ack(incident_id=inc.id, radio_id="R999", kind=AckKind.ACCEPT, at=AT)]
    out = replay_one(inc, tangxia_world, default_plan, stranger, ReplyModel())
    assert (out.quorum_s, out.status) == (None, Lifecycle.UNANSWERED)


def test_silence_escalates_up_the_whole_ladder(
    tangxia_world: World, default_plan: LoadedPlan
) -> None:
    out = replay_one(fire(), tangxia_world, default_plan, [], ReplyModel())
    ladder = default_plan.plan.responses[0].stages  # fire-urgent: three stages
    assert (out.stages, out.status, out.quorum_s) == (len(ladder), Lifecycle.UNANSWERED, None)
    assert out.escalated and out.unanswered


def test_no_zone_in_range_still_escalates(tangxia_world: World, default_plan: LoadedPlan) -> None:
    """Stage 0 finds no zone team (5 km outside the town) and calls no unit. An empty
    quorum is met only by someone's accept (issue 13: it used to count as met at once,
    so the incident was never escalated); with nobody answering, every stage runs."""
    out = replay_one(fire(lat=22.70, lon=114.08), tangxia_world, default_plan, [], ReplyModel())
    ladder = default_plan.plan.responses[0].stages
    assert (out.zone, out.stages, out.status) == (None, len(ladder), Lifecycle.UNANSWERED)


def test_the_reply_model_is_the_same_for_both_plans(
    tangxia_world: World, default_plan: LoadedPlan
) -> None:
    model = ReplyModel()
    assert model.delay_s("INC-1", "KZ001") == model.delay_s("INC-1", "KZ001")
    draws = [model.delay_s(f"INC-{i}", "KZ001") for i in range(2000)]
    answered = [d for d in draws if d is not None]
    assert 0.55 < len(answered) / len(draws) < 0.65
    assert min(answered) >= 10 and max(answered) <= 120
    incs = [fire(lat=22.78 + i * 0.001, id=f"INC-{i}") for i in range(30)]
    same = compare_plans(incs, tangxia_world, default_plan, default_plan)
    assert same["changed"] == 0 and same["old"] == same["new"]
    lower = compare_plans(incs, tangxia_world, default_plan, with_quorum(1))
    assert lower["changed"] == 30 and lower["changed_by_kind"]["decision"] == 30
    assert lower["new"]["escalated"] <= lower["old"]["escalated"]
    assert lower["new"]["mean_quorum_s"] <= lower["old"]["mean_quorum_s"]


def test_durations_and_tail_records() -> None:
    assert _since("7d") == 7 * 86400 and _since("90s") == 90 and _since("1.5h") == 5400
    for bad in ("7", "7w", "-1d", ""):
        with pytest.raises(argparse.ArgumentTypeError):
            _since(bad)
    value = {"type": "fire"}
    tailed = {"topic": "incidents", "partition": 0, "offset": 3, "key": "tangxia", "value": value}
    lines = [json.dumps(tailed), "", json.dumps(value)]
    assert _values(lines, "f") == [(1, value), (3, value)]
