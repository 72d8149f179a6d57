"""Issue 13, golden scenarios: reaching people (channel ladders, item 1), a quorum that
heals (substitutes, impossible quorum, late accept, item 4) and preemption told (item
5), on the shipped Tangxia registry and plan, with the reasons the decisions give.

The night fire at 林村新围路12号 (22.8031, 114.0842) calls KZ118 (478 m) and ten of its
eleven linked units; KZ118's handset R118 (talk group TG-KZ118) is held by V05701."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

from engine.models import Ack, Incident, Lifecycle, UnitStatus
from engine.rules.availability import Availability, Commitment
from engine.rules.decide import decide
from engine.rules.followup import (
    Dispatch,
    first_callout,
    on_preempted,
    on_reply,
    on_timeout,
    quorum_status,
)
from engine.rules.lifecycle import TABLE, Event, IllegalTransition, next_state
from engine.rules.plan import LoadedPlan
from engine.rules.world import World
from engine.streams.core import AreaCore
from engine.streams.events import AreaEvent

pytestmark = pytest.mark.unit

CST = timezone(timedelta(hours=8))
T0 = datetime(2026, 11, 30, 22, 40, tzinfo=CST)  # a Monday night
SCENE = {"lat": 22.8031, "lon": 114.0842}


def _fire(n: str = "NGHT01", priority: str = "P1", kind: str = "fire") -> Incident:
    return Incident(
        id=f"INC-20261130-{n}",
        type=kind,
        priority=priority,
        location=SCENE,
        area="tangxia",
        address="林村新围路12号",
        raised_at=T0,
    )  # type: ignore[arg-type]


def _open(world: World, plan: LoadedPlan, availability: Availability | None = None) -> Dispatch:
    incident = _fire()
    decision = decide(incident, world, availability or Availability(), plan, T0)
    return first_callout(incident, decision, world, plan, T0).dispatch


def _ack(address: str, kind: str, seconds: float) -> Ack:
    return Ack(
        incident_id=_fire().id,
        radio_id=address,
        kind=kind,
        at=T0 + timedelta(seconds=seconds),
    )  # type: ignore[arg-type]


# --- item 1: channels per recipient, a ladder each ------------------------------------
def test_zone_team_called_by_talk_group_then_single_call_then_the_holders_phone(
    tangxia_world: World, default_plan: LoadedPlan
) -> None:
    incident = _fire()
    decision = decide(incident, tangxia_world, Availability(), default_plan, T0)
    opened = first_callout(incident, decision, tangxia_world, default_plan, T0)
    assert opened.decision.zone is not None and opened.decision.zone.id == "KZ118"
    assert opened.decision.reasons[-2] == (
        "呼叫方式 先莞队：PoC组呼 → 20秒未送达 PoC单呼 → 40秒未送达 本人手机短信 | "
        "channels for key_zone: PoC group call, then PoC single call after 20 s without "
        "delivery, then SMS to the holder's own phone after 40 s without delivery"
    )
    by_key = {c.idempotency_key: c for c in opened.callouts}
    group = by_key[f"{incident.id}/0/R118/poc_group"]
    record = by_key[f"{incident.id}/0/R118"]
    assert (group.channel.value, group.radio_id, group.text) == ("poc_group", "R118", record.text)
    why = (group.model_extra or {})["reason"]
    assert why == "阶梯第1/3步：PoC组呼 | ladder step 1/3: PoC group call"
    assert record.channel.value == "sms" and (record.model_extra or {})["record"] is True
    # everyone without a handset: one SMS, no ladder
    assert sum(c.channel.value == "sms" for c in opened.callouts) == 12
    assert [(s.channel, s.address, (s.due - T0).seconds) for s in opened.dispatch.ladder] == [
        ("poc_single", "R118", 20),
        ("sms_phone", "sms:V05701", 40),
    ]

    # nothing delivered: at 20 s a single call, at 40 s the holder's own phone
    d = opened.dispatch
    assert d.deadline == T0 + timedelta(seconds=20)
    steps = []
    for seconds in (20, 40):
        at = T0 + timedelta(seconds=seconds)
        out = on_timeout(d, tangxia_world, Availability(), default_plan, at)
        assert out.effect == "ladder" and out.decision is None
        [call] = out.callouts
        steps.append((call.idempotency_key, call.channel.value, (call.model_extra or {})["reason"]))
        d = out.dispatch
    assert steps == [
        (
            f"{incident.id}/0/R118/poc_single",
            "poc_single",
            "阶梯第2/3步：20秒内未送达也未回复，PoC单呼 | ladder step 2/3: nothing delivered "
            "or heard in 20 s, PoC single call",
        ),
        (
            f"{incident.id}/0/sms:V05701",
            "sms",
            "阶梯第3/3步：40秒内未送达也未回复，本人手机短信 | ladder step 3/3: nothing delivered "
            "or heard in 40 s, SMS to the holder's own phone",
        ),
    ]
    assert d.deadline == T0 + timedelta(seconds=45)  # only the stage's own deadline is left
    # a reply from the holder's phone counts for the zone team
    assert "KZ118" in on_reply(d, _ack("sms:V05701", "accept", 41), tangxia_world,
                               Availability(), default_plan, T0).dispatch.accepted  # fmt: skip


def test_a_delivery_report_stops_the_contacts_ladder(
    tangxia_world: World, default_plan: LoadedPlan
) -> None:
    d = _open(tangxia_world, default_plan)
    sent = on_reply(d, _ack("R118", "sent", 1), tangxia_world, Availability(), default_plan, T0)
    assert len(sent.dispatch.ladder) == 2  # the module took it: not yet the handset
    got = on_reply(sent.dispatch, _ack("R118", "delivered", 3), tangxia_world, Availability(),
                   default_plan, T0)  # fmt: skip
    assert got.dispatch.ladder == ()
    assert got.dispatch.deadline == T0 + timedelta(seconds=45)
    out = on_timeout(got.dispatch, tangxia_world, Availability(), default_plan,
                     T0 + timedelta(seconds=20))  # fmt: skip
    assert (out.effect, out.callouts) == ("stale", [])


def test_an_offline_handset_is_not_laddered_its_holder_gets_an_sms(
    tangxia_world: World, default_plan: LoadedPlan
) -> None:
    """R118 reported offline before the call-out: its holder is texted on the phone at
    once; no PoC call is tried (a PoC outage is not a phone outage)."""
    d = _open(tangxia_world, default_plan, Availability(offline_radios=frozenset({"R118"})))
    zone = d.decisions[0].recipients[0]
    assert zone.id == "KZ118" and "sms:V05701" in zone.contacts  # type: ignore[attr-defined]
    assert ("sms:V05701", "sms") in d.sent
    assert not any(ch.startswith("poc") for _, ch in d.sent) and d.ladder == ()


# --- item 4: a quorum that heals ------------------------------------------------------
def test_declined_unit_is_replaced_by_the_zones_spare_then_by_the_nearest_other_zone(
    tangxia_world: World, default_plan: LoadedPlan
) -> None:
    """U01416 was off duty when the call-out went (so KZ118's ten callable units were
    nine); it is back by the time U01409 declines (V00785, its guard, who is not in the
    zone team: a zone member's decline would count for the zone team too): KZ118's own
    spare comes first."""
    d = _open(tangxia_world, default_plan, Availability(unavailable=frozenset({"U01416"})))
    assert "U01416" not in {r.id for r in d.decisions[0].recipients}
    out = on_reply(d, _ack("sms:V00785", "decline", 5), tangxia_world, Availability(),
                   default_plan, T0 + timedelta(seconds=5))  # fmt: skip
    assert out.effect == "substituted" and out.substituted == ("U01409", "U01416")
    assert out.decision is not None
    sub = out.dispatch.decisions[-1]
    assert (sub.stage, sub.ack_deadline) == (0, d.decisions[0].ack_deadline)  # same stage
    assert sub.reasons == [
        "U01409 不能前往，由 KZ118 的备用联动单位 U01416（567米）替补 | U01409 declined: "
        "substitute U01416, a spare linked unit of KZ118 (567 m)"
    ]
    assert (sub.model_extra or {})["substitution"] == {"replaces": "U01409", "by": "U01416"}
    # its guard V05747 is in the zone team and was paged already: not paged twice
    assert out.callouts == [] and "sms:V05747" in d.paged()
    assert out.dispatch.status is Lifecycle.DISPATCHED
    assert out.dispatch.timeline[-1].what == sub.reasons[0]

    # KZ118 has no spare left: the next decline goes to the nearest other zone's unit
    again = on_reply(out.dispatch, _ack("sms:V00784", "decline", 6), tangxia_world,
                     Availability(), default_plan, T0 + timedelta(seconds=6))  # fmt: skip
    assert again.effect == "substituted" and again.substituted is not None
    replaced, by = again.substituted
    assert replaced == "U01408"
    assert again.dispatch.decisions[-1].reasons == [
        "U01408 不能前往，KZ118 无备用单位，由最近的其他防区 KZ063 的联动单位 U00752（614米）"
        "替补 | U01408 declined, no spare unit in KZ118: substitute U00752, linked unit of "
        "the nearest other zone KZ063 (614 m)"
    ]
    assert by == "U00752"
    assert [c.idempotency_key for c in again.callouts] == [f"{_fire().id}/0/sms:V03067"]

    # a repeated decline changes nothing; the unit is not replaced twice
    same = on_reply(again.dispatch, _ack("sms:V00784", "decline", 7), tangxia_world,
                    Availability(), default_plan, T0)  # fmt: skip
    assert same.effect == "ignored" and same.callouts == []


def test_a_declining_zone_team_makes_the_quorum_impossible_escalate_at_once(
    tangxia_world: World, default_plan: LoadedPlan
) -> None:
    d = _open(tangxia_world, default_plan)
    at = T0 + timedelta(seconds=8)
    out = on_reply(d, _ack("R118", "decline", 8), tangxia_world, Availability(), default_plan, at)
    assert out.effect == "escalated" and out.decision is not None
    assert out.dispatch.status is Lifecycle.ESCALATED
    stage1 = out.dispatch.decisions[-1]
    assert stage1.stage == 1 and stage1.decided_at == at  # not at the 45 s deadline
    assert stage1.reasons[0] == (
        "先莞队 KZ118 不能前往，本级确认已无法达到，立即升级 | zone team KZ118 declined: "
        "the quorum cannot be met, escalating now"
    )
    assert stage1.zone is not None and stage1.zone.id != "KZ118"
    assert out.callouts and all(c.stage == 1 for c in out.callouts)


def test_a_late_accept_after_unanswered_brings_it_back(
    tangxia_world: World, default_plan: LoadedPlan
) -> None:
    d = _open(tangxia_world, default_plan)
    at = T0
    while d.status is not Lifecycle.UNANSWERED:
        at = d.decisions[-1].ack_deadline
        d = on_timeout(d, tangxia_world, Availability(), default_plan, at).dispatch
    out = on_reply(d, _ack("sms:V05713", "accept", 200), tangxia_world, Availability(),
                   default_plan, at)  # fmt: skip
    assert out.effect == "accepted_late"
    assert out.dispatch.status is Lifecycle.ACKNOWLEDGED
    assert out.dispatch.timeline[-1].what.endswith("late accept: acknowledged again")


def test_no_zone_found_still_escalates(tangxia_world: World, default_plan: LoadedPlan) -> None:
    """The known bug: a stage with no zone team and no unit had an empty quorum that
    counted as met, so the incident was never escalated."""
    incident = Incident.model_validate(
        {**_fire().model_dump(mode="json"), "location": {"lat": 22.70, "lon": 114.08}}
    )
    decision = decide(incident, tangxia_world, Availability(), default_plan, T0)
    assert decision.zone is None
    d = first_callout(incident, decision, tangxia_world, default_plan, T0).dispatch
    assert not quorum_status(d).met
    out = on_timeout(d, tangxia_world, Availability(), default_plan, decision.ack_deadline)
    assert out.effect == "escalated"


# --- item 5: preemption told ------------------------------------------------------------
def test_p1_taking_a_p3_zone_team_re_decides_the_p3_at_once(
    tangxia_world: World, default_plan: LoadedPlan
) -> None:
    core = AreaCore({"tangxia": tangxia_world}, default_plan, {})
    noise = _fire("NOISE1", "P3", "other")
    core.on_incident(noise, T0)
    core.apply_writes()
    fire = _fire("FIRE01", "P1", "fire")
    fx = core.on_incident(fire, T0 + timedelta(seconds=30))
    decisions = [json.loads(o.value) for o in fx.out if o.topic == "decisions"]
    p1 = next(d for d in decisions if d["incident_id"] == fire.id)
    p3 = next(d for d in decisions if d["incident_id"] == noise.id)
    assert p1["zone"]["id"] == "KZ118" and p1["preempted"] == [noise.id]
    assert p3["stage"] == 0 and p3["zone"]["id"] not in ("KZ118", None)
    assert p3["preempted_by"] == {"incident_id": fire.id, "zones": ["KZ118"]}
    assert p3["reasons"][0] == (
        f"先莞队 KZ118 被 P1 警情 {fire.id} 调用，立即重新派警 | zone team KZ118 taken by "
        f"P1 incident {fire.id}: re-decided at once"
    )
    state = next(
        json.loads(o.value)
        for o in reversed(fx.out)
        if o.topic == "incident-state" and json.loads(o.value)["incident_id"] == noise.id
    )
    assert state["zone_id"] == p3["zone"]["id"]
    assert state["timeline"][-1]["what"].startswith(p3["reasons"][0])
    calls = [json.loads(o.value) for o in fx.out if o.topic == "callouts"]
    assert any(c["incident_id"] == noise.id for c in calls)
    assert "preempted" in fx.notes
    core.apply_writes()
    held = core.availability("tangxia").commitments
    assert held["KZ118"].incident_id == fire.id
    assert held[p3["zone"]["id"]].incident_id == noise.id


def test_on_preempted_with_nothing_taken_changes_nothing(
    tangxia_world: World, default_plan: LoadedPlan
) -> None:
    d = _open(tangxia_world, default_plan)
    held = Availability(commitments={"KZ001": Commitment("X", "P1")})  # type: ignore[arg-type]
    out = on_preempted(d, _fire("OTHER1"), ["KZ001"], tangxia_world, held, default_plan, T0)
    assert out.decision is None and out.dispatch is d


# --- item 7: the lifecycle table ------------------------------------------------------
def test_lifecycle_table_refuses_what_it_does_not_list() -> None:
    assert next_state(Lifecycle.UNANSWERED, Event.ACCEPTED_LATE) is Lifecycle.ACKNOWLEDGED
    assert next_state(Lifecycle.ACKNOWLEDGED, Event.PREEMPTED) is Lifecycle.DISPATCHED
    with pytest.raises(IllegalTransition):
        next_state(Lifecycle.CLOSED, Event.QUORUM_MET)
    ended = {Lifecycle.CLOSED, Lifecycle.CANCELLED}
    assert not any(state in ended for state, _ in TABLE)


# --- item 6: live positions -----------------------------------------------------------
def _fight_patrol(core: AreaCore) -> dict[str, object]:
    fight = _fire("FIGHT1", "P2", "fight")
    fx = core.on_incident(fight, T0)
    decision = next(json.loads(o.value) for o in fx.out if o.topic == "decisions")
    [patrol] = [r for r in decision["recipients"] if r["kind"] == "patrol_base"]
    return patrol  # type: ignore[no-any-return]


def _position(core: AreaCore, unit_id: str, lat: float, lon: float, age_s: float) -> None:
    at = T0 - timedelta(seconds=age_s)
    status = UnitStatus(unit_id=unit_id, location={"lat": lat, "lon": lon}, at=at)  # type: ignore[arg-type]
    core.on_event(AreaEvent(kind="status", at=at, area="tangxia", status=status), at)
    core.apply_writes()


def test_patrols_are_called_by_where_they_are(
    tangxia_world: World, default_plan: LoadedPlan
) -> None:
    """A fight at 22:40: PT260's base is nearest (523 m). A member of PT021 (base 908 m
    away) reports a position 15 m from the scene: PT021 is called, by its live position.
    A fix older than the plan's five minutes is not used: the base counts, and says so."""
    core = AreaCore({"tangxia": tangxia_world}, default_plan, {})
    assert _fight_patrol(core)["id"] == "PT260"

    core = AreaCore({"tangxia": tangxia_world}, default_plan, {})
    _position(core, "V02237", 22.8032, 114.0843, age_s=30)  # a member of PT021
    patrol = _fight_patrol(core)
    assert patrol["id"] == "PT021" and patrol["distance_m"] == 15.1
    assert patrol["reason"] == (
        "最近的在岗巡防队（实时位置，15米） | nearest on-duty patrol (15 m from its live position)"
    )

    # the same fix relayed from the member's handset (R233, V02237's) by the gateway
    core = AreaCore({"tangxia": tangxia_world}, default_plan, {})
    _position(core, "R233", 22.8032, 114.0843, age_s=30)
    assert _fight_patrol(core)["id"] == "PT021"

    core = AreaCore({"tangxia": tangxia_world}, default_plan, {})
    _position(core, "PT260", 22.90, 114.20, age_s=900)  # stale, and far away
    patrol = _fight_patrol(core)
    assert patrol["id"] == "PT260"
    assert patrol["reason"] == (
        "最近的在岗巡防队（位置已过时 900 秒，按驻点计 523米） | nearest on-duty patrol "
        "(523 m from its base: its last fix is 900 s old)"
    )


def test_an_accept_never_escalates_even_when_the_quorum_cannot_be_met(
    tangxia_world: World, default_plan: LoadedPlan
) -> None:
    """KZ118 declined (stage 1 ran at once); KZ063 declines too: stage 2 runs (no zone
    team left in the plan's ladder), where nobody can make the zone-team quorum. A unit's
    accept there is recorded; it must not run a stage or end the incident."""
    d = _open(tangxia_world, default_plan)
    d = on_reply(d, _ack("R118", "decline", 5), tangxia_world, Availability(), default_plan,
                 T0 + timedelta(seconds=5)).dispatch  # fmt: skip
    assert d.stage == 1
    zone1 = next(r for r in d.decisions[-1].recipients if r.kind == "key_zone")
    d = on_reply(d, _ack(zone1.contacts[0], "decline", 6), tangxia_world, Availability(),  # type: ignore[attr-defined]
                 default_plan, T0 + timedelta(seconds=6)).dispatch  # fmt: skip
    assert d.stage == 2 and d.status is Lifecycle.ESCALATED
    out = on_reply(d, _ack("sms:V00784", "accept", 7), tangxia_world, Availability(),
                   default_plan, T0 + timedelta(seconds=7))  # fmt: skip
    assert out.effect == "recorded" and out.decision is None
    assert out.dispatch.status is Lifecycle.ESCALATED


def test_a_unit_that_cannot_be_reached_is_replaced_too(
    tangxia_world: World, default_plan: LoadedPlan
) -> None:
    """U01410's only contact is V05717's phone; the network gives up on it (a failed
    status report): U01410 is replaced at once, as if it had declined. A failure at one
    of two contacts (U01409: V00785 and V05713) replaces nobody."""
    d = _open(tangxia_world, default_plan)
    half = on_reply(d, _ack("sms:V00785", "failed", 3), tangxia_world, Availability(),
                    default_plan, T0 + timedelta(seconds=3))  # fmt: skip
    assert half.effect == "recorded" and half.callouts == []
    out = on_reply(half.dispatch, _ack("sms:V05717", "failed", 4), tangxia_world,
                   Availability(), default_plan, T0 + timedelta(seconds=4))  # fmt: skip
    assert out.effect == "substituted" and out.substituted == ("U01410", "U00752")
    assert "U01410" not in out.dispatch.declined  # unreachable, not a refusal
    assert (
        out.dispatch.decisions[-1]
        .reasons[0]
        .split(" | ")[1]
        .startswith("U01410 could not be reached, no spare unit in KZ118: substitute U00752")
    )
