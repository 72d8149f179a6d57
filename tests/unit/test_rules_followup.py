"""Acks, deadlines, escalation, cancel: the follow-ups of a decision."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from engine.models import Ack, Incident, Lifecycle
from engine.rules.availability import Availability
from engine.rules.callouts import callouts_for, paged_before
from engine.rules.decide import decide
from engine.rules.followup import (
    Dispatch,
    on_ack,
    on_cancel,
    on_close,
    on_timeout,
    open_dispatch,
    quorum_status,
)
from engine.rules.plan import LoadedPlan
from engine.rules.world import World

pytestmark = pytest.mark.unit

CST = timezone(timedelta(hours=8))
T0 = datetime(2026, 11, 30, 14, 0, tzinfo=CST)


@pytest.fixture
def fire(tangxia_world: World, default_plan: LoadedPlan) -> tuple[Incident, Dispatch]:
    incident = Incident(
        id="INC-20261130-K7Q2AB",
        type="fire",
        priority="P1",
        location={"lat": 22.8031, "lon": 114.0842},
        area="tangxia",
        address="林村新围路12号",
        raised_at=T0,
    )  # type: ignore[arg-type]
    decision = decide(incident, tangxia_world, Availability(), default_plan, T0)
    return incident, open_dispatch(incident, decision, T0)


def _ack(incident: Incident, address: str, kind: str, seconds: int) -> Ack:
    return Ack(
        incident_id=incident.id, radio_id=address, kind=kind, at=T0 + timedelta(seconds=seconds)
    )  # type: ignore[arg-type]


def _contact(dispatch: Dispatch, kind: str, nth: int = 0) -> str:
    recipients = [r for r in dispatch.decisions[-1].recipients if r.kind == kind]
    return str(recipients[nth].contacts[0])  # type: ignore[attr-defined]


def _unit_only_contact(dispatch: Dispatch, nth: int) -> str:
    """A contact of the nth unit (among units that have one) who is not a zone-team
    member, so an accept counts for that unit and not for the zone team."""
    zone_people = {
        a
        for d in dispatch.decisions
        for r in d.recipients
        if r.kind == "key_zone"
        for a in r.contacts  # type: ignore[attr-defined]
    }
    per_unit = []
    for r in dispatch.decisions[-1].recipients:
        if r.kind != "unit":
            continue
        own = [a for a in r.contacts if a not in zone_people]  # type: ignore[attr-defined]
        if own:
            per_unit.append(own[0])
    return str(per_unit[nth])


def _zone_member_at_unit(dispatch: Dispatch) -> str:
    """A zone-team member stationed at a linked unit that has not accepted yet (the
    generated Tangxia data puts each team member at one of the zone's units): an accept
    counts for both."""
    found = [
        a
        for r in dispatch.decisions[0].recipients
        if r.kind == "unit" and r.id not in dispatch.accepted
        for a in r.contacts  # type: ignore[attr-defined]
        if "KZ118" in dispatch.entities_of(a)
    ]
    return str(found[0])


def test_quorum_needs_the_zone_team_and_three_units(fire: tuple[Incident, Dispatch]) -> None:
    incident, d = fire
    assert d.status is Lifecycle.DISPATCHED
    assert d.deadline == T0 + timedelta(seconds=45)
    for i in range(2):  # the shop staff of two linked units
        out = on_ack(d, _ack(incident, _unit_only_contact(d, i), "accept", 5 + i))
        d = out.dispatch
        assert out.effect == "recorded"
    assert quorum_status(d).units_ok == 2 and not quorum_status(d).zone_team_ok
    assert not quorum_status(d).met
    member = _zone_member_at_unit(d)  # zone team + a third unit at once
    out = on_ack(d, _ack(incident, member, "accept", 20))
    assert out.effect == "quorum_met"
    assert quorum_status(out.dispatch).units_ok == 3
    assert out.dispatch.status is Lifecycle.ACKNOWLEDGED
    assert out.dispatch.quorum_met_at == T0 + timedelta(seconds=20)
    assert out.dispatch.deadline is None  # no escalation pending


def test_declines_and_delivery_reports_do_not_count(fire: tuple[Incident, Dispatch]) -> None:
    incident, d = fire
    d = on_ack(d, _ack(incident, _contact(d, "key_zone"), "decline", 3)).dispatch
    d = on_ack(d, _ack(incident, _unit_only_contact(d, 0), "delivered", 4)).dispatch
    status = quorum_status(d)
    assert not status.zone_team_ok and status.units_ok == 0
    assert len(d.acks) == 2


def test_on_scene_counts_as_accept_and_moves_state(fire: tuple[Incident, Dispatch]) -> None:
    incident, d = fire
    out = on_ack(d, _ack(incident, _unit_only_contact(d, 0), "on_scene", 90))
    assert out.effect == "on_scene"
    assert out.dispatch.status is Lifecycle.ON_SCENE
    assert quorum_status(out.dispatch).units_ok == 1


def test_replies_from_strangers_or_for_closed_incidents_are_ignored(
    fire: tuple[Incident, Dispatch], tangxia_world: World, default_plan: LoadedPlan
) -> None:
    incident, d = fire
    stranger = on_ack(d, _ack(incident, "sms:V99999", "accept", 5))
    assert stranger.effect == "ignored" and "was not called" in stranger.reason
    assert stranger.dispatch.accepted == ()
    closed = on_close(d, tangxia_world, default_plan, T0 + timedelta(minutes=30), "op7", "done")
    late = on_ack(closed.dispatch, _ack(incident, _contact(d, "key_zone"), "accept", 3000))
    assert late.effect == "ignored" and late.reason == "incident is closed"
    assert late.dispatch is closed.dispatch  # counted by the caller, never stored


def test_duplicate_ack_changes_nothing(fire: tuple[Incident, Dispatch]) -> None:
    incident, d = fire
    ack = _ack(incident, _unit_only_contact(d, 0), "accept", 5)
    once = on_ack(d, ack).dispatch
    twice = on_ack(once, ack).dispatch
    assert twice.acks == once.acks and twice.accepted == once.accepted


def test_missed_deadline_escalates_to_the_next_zone_then_unanswered(
    fire: tuple[Incident, Dispatch], tangxia_world: World, default_plan: LoadedPlan
) -> None:
    _, d = fire
    early = on_timeout(d, tangxia_world, Availability(), default_plan, T0 + timedelta(seconds=44))
    assert early.effect == "stale" and early.dispatch is d

    first_zone = d.decisions[0].zone
    assert first_zone is not None
    out = on_timeout(d, tangxia_world, Availability(), default_plan, T0 + timedelta(seconds=45))
    assert out.effect == "escalated" and out.decision is not None
    assert out.dispatch.status is Lifecycle.ESCALATED
    assert out.decision.stage == 1
    assert out.decision.zone is not None and out.decision.zone.id != first_zone.id
    assert out.decision.zone.distance_m >= first_zone.distance_m
    assert any(r.kind == "patrol_base" for r in out.decision.recipients)  # ladder adds patrol

    now = T0 + timedelta(seconds=45)
    d = out.dispatch
    while True:
        now += timedelta(minutes=2)
        step = on_timeout(d, tangxia_world, Availability(), default_plan, now)
        d = step.dispatch
        if step.effect != "escalated":
            break
    assert step.effect == "unanswered"
    assert d.status is Lifecycle.UNANSWERED
    assert any(r.kind == "command_centre" for r in d.decisions[-1].recipients)
    assert len(d.decisions) == 3  # fire-urgent has three stages


def test_late_accept_from_stage_0_still_counts_after_escalation(
    fire: tuple[Incident, Dispatch], tangxia_world: World, default_plan: LoadedPlan
) -> None:
    incident, d = fire
    stage0 = d
    d = on_timeout(
        d, tangxia_world, Availability(), default_plan, T0 + timedelta(seconds=45)
    ).dispatch
    for i in range(2):  # stage-0 people answering late
        d = on_ack(d, _ack(incident, _unit_only_contact(stage0, i), "accept", 50 + i)).dispatch
    assert not quorum_status(d).met
    out = on_ack(d, _ack(incident, _zone_member_at_unit(d), "accept", 60))
    assert out.effect == "quorum_met" and out.dispatch.status is Lifecycle.ACKNOWLEDGED
    stale = on_timeout(
        out.dispatch, tangxia_world, Availability(), default_plan, T0 + timedelta(hours=1)
    )
    assert stale.effect == "stale"


def test_cancel_stands_everyone_down_once(
    fire: tuple[Incident, Dispatch], tangxia_world: World, default_plan: LoadedPlan
) -> None:
    _, d = fire
    out = on_cancel(d, tangxia_world, default_plan, T0 + timedelta(minutes=2), "op3", "false alarm")
    assert out.dispatch.status is Lifecycle.CANCELLED
    assert out.released_zones == [d.decisions[0].zone.id]  # type: ignore[union-attr]
    paged = paged_before(d.decisions)
    assert {c.radio_id for c in out.stand_down} == paged
    assert all("警情已取消" in c.text and c.to for c in out.stand_down)
    again = on_cancel(
        out.dispatch, tangxia_world, default_plan, T0 + timedelta(minutes=3), "op3", "x"
    )
    assert again.stand_down == [] and again.dispatch is out.dispatch


def test_callouts_one_per_person_with_stable_keys(
    tangxia_world: World, default_plan: LoadedPlan
) -> None:
    incident = Incident(
        id="INC-20261130-K7Q2AB",
        type="fire",
        priority="P1",
        location={"lat": 22.8031, "lon": 114.0842},
        area="tangxia",
        address="林村新围路12号",
        raised_at=T0,
    )  # type: ignore[arg-type]
    decision = decide(incident, tangxia_world, Availability(), default_plan, T0)
    a = callouts_for(decision, incident, tangxia_world, default_plan)
    b = callouts_for(decision, incident, tangxia_world, default_plan)
    assert [c.model_dump_json() for c in a] == [c.model_dump_json() for c in b]
    keys = [c.idempotency_key for c in a]
    assert len(keys) == len(set(keys))
    assert {c.radio_id for c in a} == paged_before([decision])
    first = a[0]
    assert first.idempotency_key == f"{incident.id}/0/{first.radio_id}"
    assert first.text.startswith("[塘厦义警]P1 火情 #Q2AB 林村新围路12号")
    assert first.text.endswith("回1接警 2不能 3到场")
    assert all(c.to and len(c.to) == 11 for c in a)
    # an escalation never pages someone already paged
    later = callouts_for(decision, incident, tangxia_world, default_plan, paged_before([decision]))
    assert later == []
