"""What happens after the first call-out: acknowledgements, missed deadlines, cancel
and close. Pure functions over :class:`Dispatch`, the rules' record of one incident,
which the worker keeps in a Kafka-backed table.

The lifecycle is one (state, event) -> state table: :mod:`engine.rules.lifecycle`.
Since issue 13 the follow-ups also heal a stage: a linked unit that declines (or
cannot be reached) is replaced at once by the nearest free unit (the zone's own spare
units first, then the nearest other zone's); declines that make the quorum impossible
run the next stage at once; each contact's channel ladder (:mod:`engine.rules.ladder`)
is stepped on the worker's ticks; a zone team taken by a higher priority re-decides the
incident it leaves (:func:`on_preempted`).

Rules: a quorum is counted over everyone called at every stage so far (a late accept
from stage 0 still counts after an escalation); the quorum rule is the latest stage's.
A deadline that passes after the quorum was met changes nothing. Replies for a closed
or cancelled incident, from a handset that was not called, or a repeat of a (radio,
kind) already kept, are ignored and not stored. A reply to an ``unanswered`` incident
is kept: an accept brings it back to ``acknowledged``. An empty quorum (no zone team
and no linked unit could be called) is met only by someone's accept, so such a stage
still escalates at its deadline.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from engine.models import (
    Ack,
    AckKind,
    CallOut,
    Decision,
    Incident,
    IncidentState,
    Lifecycle,
    TimelineEntry,
)
from engine.rules import heal
from engine.rules.availability import Availability
from engine.rules.callouts import (
    channel_reasons,
    paged_before,
    plan_calls,
    stand_down,
    step_callout,
)
from engine.rules.decide import KEY_ZONE, UNIT, NoStageLeft, escalate, redecide
from engine.rules.decision import DispatchDecision
from engine.rules.ladder import PendingStep
from engine.rules.lifecycle import AWAITING_QUORUM as AWAITING_QUORUM
from engine.rules.lifecycle import OPEN as OPEN
from engine.rules.lifecycle import Event, next_state
from engine.rules.plan import LoadedPlan
from engine.rules.world import World


class Dispatch(BaseModel):
    """The rules' memory of one incident: its decisions and who answered."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    incident: Incident
    status: Lifecycle
    decisions: tuple[Decision, ...] = ()
    accepted: tuple[str, ...] = Field(default=(), description="entity ids that accepted")
    declined: tuple[str, ...] = ()
    on_scene: tuple[str, ...] = ()
    acks: tuple[Ack, ...] = ()
    timeline: tuple[TimelineEntry, ...] = ()
    quorum_met_at: datetime | None = None
    updated_at: datetime
    released: tuple[str, ...] = ()
    """zones an operator's command let go (reassign, move, priority, an end, reopen)"""
    ladder: tuple[PendingStep, ...] = ()
    """channel-ladder steps not yet taken (see engine.rules.ladder)"""
    sent: tuple[tuple[str, str], ...] = ()
    """(address, channel) of every call-out made for this incident"""
    aliases: tuple[tuple[str, str], ...] = ()
    """(address, entity) reached by a ladder step at an address its decision did not
    list (a handset holder's own phone): replies from there count for the entity"""
    withdrawn: tuple[str, ...] = ()
    """zone teams taken from this incident by a higher priority (see on_preempted)"""

    @property
    def stage(self) -> int:
        return self.decisions[-1].stage if self.decisions else 0

    @property
    def deadline(self) -> datetime | None:
        """When the current stage times out, while a quorum is still awaited."""
        if self.status in AWAITING_QUORUM and self.decisions:
            deadline = self.decisions[-1].ack_deadline
            if self.ladder:
                return min(deadline, min(s.due for s in self.ladder))
            return deadline
        return None

    @property
    def stage_deadline(self) -> datetime | None:
        """The current stage's ack deadline (ladder steps aside)."""
        return self.decisions[-1].ack_deadline if self.decisions else None

    def zones(self) -> list[str]:
        withdrawn = set(self.withdrawn)
        return [
            r.id
            for d in self.decisions
            for r in d.recipients
            if r.kind == KEY_ZONE and r.id not in withdrawn
        ]

    def held_zones(self) -> list[str]:
        """The zones this incident holds while open: called and not released."""
        released = set(self.released)
        return [z for z in self.zones() if z not in released]

    def entities_of(self, address: str) -> list[str]:
        """The called groups a handset or phone was paged for."""
        found = {
            r.id
            for d in self.decisions
            for r in d.recipients
            if address in (getattr(r, "contacts", None) or ())
        }
        found.update(e for a, e in self.aliases if a == address)
        return sorted(found)

    def paged(self) -> frozenset[str]:
        """Every address paged for this incident (decisions' contacts and ladder steps)."""
        return paged_before(self.decisions) | {a for a, _ in self.sent}

    def to_incident_state(self) -> IncidentState:
        latest = self.decisions[-1] if self.decisions else None
        return IncidentState(
            incident_id=self.incident.id,
            state=self.status,
            incident=self.incident,
            stage=self.stage,
            zone_id=latest.zone.id if latest is not None and latest.zone is not None else None,
            acks=list(self.acks),
            timeline=list(self.timeline),
            updated_at=self.updated_at,
            accepted=list(self.accepted),
            on_scene_units=list(self.on_scene),
            quorum=quorum_status(self).as_dict(),
        )


@dataclass(frozen=True, slots=True)
class QuorumStatus:
    zone_team_needed: bool
    zone_team_ok: bool
    units_needed: int
    units_ok: int

    anyone_ok: bool = True
    """someone accepted (an empty quorum is met only then)"""

    @property
    def met(self) -> bool:
        if not self.zone_team_needed and self.units_needed == 0:
            return self.anyone_ok
        return (self.zone_team_ok or not self.zone_team_needed) and (
            self.units_ok >= self.units_needed
        )

    def as_dict(self) -> dict[str, object]:
        return {
            "met": self.met,
            "zone_team_needed": self.zone_team_needed,
            "zone_team_ok": self.zone_team_ok,
            "units_needed": self.units_needed,
            "units_ok": self.units_ok,
        }


def quorum_status(dispatch: Dispatch) -> QuorumStatus:
    if not dispatch.decisions:
        return QuorumStatus(False, False, 0, 0)
    rule = getattr(dispatch.decisions[-1], "quorum", None) or {}
    kinds = {r.id: r.kind for d in dispatch.decisions for r in d.recipients}
    accepted = (set(dispatch.accepted) | set(dispatch.on_scene)) - set(dispatch.withdrawn)
    return QuorumStatus(
        zone_team_needed=bool(rule.get("zone_team", False)),
        zone_team_ok=any(kinds.get(e) == KEY_ZONE for e in accepted),
        units_needed=int(rule.get("linked_units", 0)),
        units_ok=sum(1 for e in accepted if kinds.get(e) == UNIT),
        anyone_ok=bool(accepted),
    )


def _zone_possible(dispatch: Dispatch) -> bool:
    rule = getattr(dispatch.decisions[-1], "quorum", None) or {}
    if not rule.get("zone_team", False):
        return True
    out = set(dispatch.declined) - set(dispatch.accepted) - set(dispatch.on_scene)
    out |= set(dispatch.withdrawn)
    return any(
        r.kind == KEY_ZONE and r.id not in out for d in dispatch.decisions for r in d.recipients
    )


def quorum_possible(dispatch: Dispatch) -> bool:
    """Can the current stage's quorum still be met by those called and not declined?"""
    if not dispatch.decisions:
        return True
    rule = getattr(dispatch.decisions[-1], "quorum", None) or {}
    kinds = {r.id: r.kind for d in dispatch.decisions for r in d.recipients}
    out = set(dispatch.declined) - set(dispatch.accepted) - set(dispatch.on_scene)
    out |= set(dispatch.withdrawn)
    zones_left = any(k == KEY_ZONE and e not in out for e, k in kinds.items())
    units_left = sum(1 for e, k in kinds.items() if k == UNIT and e not in out)
    if rule.get("zone_team", False) and not zones_left:
        return False
    return units_left >= int(rule.get("linked_units", 0))


# --- opening ------------------------------------------------------------------------
def open_dispatch(incident: Incident, decision: DispatchDecision, now: datetime) -> Dispatch:
    """The record of a newly decided incident (stage 0 sent)."""
    raised = TimelineEntry(
        at=incident.raised_at,
        state=Lifecycle.RAISED,
        who=incident.reporter or "operator",
        what="incident raised",
    )
    dispatched = TimelineEntry(
        at=now,
        state=Lifecycle.DISPATCHED,
        who="engine",
        what=_called_summary(decision),
    )
    return Dispatch(
        incident=incident,
        status=next_state(Lifecycle.RAISED, Event.DECIDED),
        decisions=(decision.to_model(),),
        timeline=(raised, dispatched),
        updated_at=now,
    )


@dataclass(frozen=True, slots=True)
class Opened:
    dispatch: Dispatch
    decision: DispatchDecision
    """the decision as published: the rules' one plus the channel reasons"""
    callouts: list[CallOut]


def first_callout(
    incident: Incident, decision: DispatchDecision, world: World, plan: LoadedPlan, now: datetime
) -> Opened:
    """A new incident's record, its stage-0 decision with the channel reasons, and the
    call-outs to send now (each contact's first ladder step)."""
    decision = channel_reasons(decision, world, plan)
    dispatch = open_dispatch(incident, decision, now)
    dispatch, calls = start_stage(dispatch, decision, world, plan)
    return Opened(dispatch, decision, calls)


def start_stage(
    dispatch: Dispatch, decision: DispatchDecision, world: World, plan: LoadedPlan
) -> tuple[Dispatch, list[CallOut]]:
    """The call-outs of a decision already in ``dispatch.decisions`` (stage, substitute
    or re-decision), its later ladder steps recorded; nobody paged before is paged."""
    already = paged_before(dispatch.decisions[:-1]) | {a for a, _ in dispatch.sent}
    calls, later = plan_calls(
        decision, dispatch.incident, world, plan, already, frozenset(dispatch.sent)
    )
    return _sent(dispatch, calls, later), calls


def _sent(dispatch: Dispatch, calls: list[CallOut], later: list[PendingStep]) -> Dispatch:
    aliases = list(dispatch.aliases)
    listed = paged_before(dispatch.decisions)
    for c in calls:
        group = (c.model_extra or {}).get("group")
        if c.radio_id not in listed and isinstance(group, str):
            aliases.append((c.radio_id, group))
    return dispatch.model_copy(
        update={
            "sent": (*dispatch.sent, *((c.radio_id, c.channel.value) for c in calls)),
            "ladder": (*dispatch.ladder, *later),
            "aliases": tuple(dict.fromkeys(aliases)),
        }
    )


def _called_summary(decision: DispatchDecision) -> str:
    zone = decision.zone.id if decision.zone is not None else "no zone"
    return (
        f"stage {decision.stage}: {zone} + {len(decision.units)} linked units, "
        f"{len(decision.recipients)} groups called ({decision.response})"
    )


# --- acks ---------------------------------------------------------------------------
AckEffect = Literal["recorded", "quorum_met", "on_scene", "ignored", "accepted_late"]


@dataclass(frozen=True, slots=True)
class AckOutcome:
    dispatch: Dispatch
    effect: AckEffect
    reason: str


def on_ack(dispatch: Dispatch, ack: Ack) -> AckOutcome:
    """Apply one handset reply or delivery report."""
    if ack.incident_id != dispatch.incident.id:
        raise ValueError(f"ack for {ack.incident_id} applied to {dispatch.incident.id}")
    # Ignored replies are counted by the caller, never stored: a flood of them must not
    # grow the incident's state.
    if dispatch.status not in OPEN and dispatch.status is not Lifecycle.UNANSWERED:
        return AckOutcome(dispatch, "ignored", f"incident is {dispatch.status.value}")
    entities = dispatch.entities_of(ack.radio_id)
    if not entities:
        return AckOutcome(dispatch, "ignored", f"{ack.radio_id} was not called for this incident")
    if any(a.radio_id == ack.radio_id and a.kind is ack.kind for a in dispatch.acks):
        return AckOutcome(dispatch, "ignored", f"{ack.radio_id} already sent {ack.kind.value}")
    if ack.kind is AckKind.SENT or ack.kind is AckKind.FAILED:
        return AckOutcome(_record(dispatch, ack), "recorded", f"{ack.kind.value} report")
    reached = _reached(dispatch, ack.radio_id)  # its ladder stops here
    if ack.kind is AckKind.DELIVERED:
        return AckOutcome(_record(reached, ack), "recorded", "delivery report")
    dispatch = reached

    accepted, declined, on_scene = (
        set(dispatch.accepted),
        set(dispatch.declined),
        set(dispatch.on_scene),
    )
    if ack.kind is AckKind.DECLINE:
        declined.update(entities)
    elif ack.kind is AckKind.ACCEPT:
        accepted.update(entities)
    else:  # on scene: also an accept
        accepted.update(entities)
        on_scene.update(entities)
    before = quorum_status(dispatch).met
    updated = _record(dispatch, ack).model_copy(
        update={
            "accepted": tuple(sorted(accepted)),
            "declined": tuple(sorted(declined)),
            "on_scene": tuple(sorted(on_scene)),
        }
    )
    status = updated.status
    what = f"{ack.radio_id} ({', '.join(entities)}): {ack.kind.value}"
    effect: AckEffect = "recorded"
    quorum_met_at = updated.quorum_met_at
    ladder = updated.ladder
    if not before and quorum_status(updated).met:
        quorum_met_at = ack.at
        if status in AWAITING_QUORUM or status is Lifecycle.UNANSWERED:
            status = next_state(status, Event.QUORUM_MET)
        ladder = ()  # enough people are coming: the ladders stop
        effect = "quorum_met"
        what += "; quorum met"
    elif status is Lifecycle.UNANSWERED and ack.kind is AckKind.ACCEPT:
        status = next_state(status, Event.ACCEPTED_LATE)
        effect = "accepted_late"
        what += "; late accept: acknowledged again"
    if ack.kind is AckKind.ON_SCENE and status is not Lifecycle.ON_SCENE:
        status = next_state(status, Event.ON_SCENE)
        effect = "on_scene"
    entry = TimelineEntry(at=ack.at, state=status, who=ack.radio_id, what=what)
    updated = updated.model_copy(
        update={
            "status": status,
            "quorum_met_at": quorum_met_at,
            "timeline": (*updated.timeline, entry),
            "updated_at": max(updated.updated_at, ack.at),
            "ladder": ladder,
        }
    )
    return AckOutcome(updated, effect, what)


def _reached(dispatch: Dispatch, address: str) -> Dispatch:
    """``address`` was reached: the remaining ladder steps of its contact are dropped."""
    contacts = {address} | {s.contact for s in dispatch.ladder if s.address == address}
    kept = tuple(s for s in dispatch.ladder if s.contact not in contacts)
    if len(kept) == len(dispatch.ladder):
        return dispatch
    return dispatch.model_copy(update={"ladder": kept})


def _record(dispatch: Dispatch, ack: Ack) -> Dispatch:
    """The ack kept: once per (radio, kind), which on_ack has checked."""
    return dispatch.model_copy(update={"acks": (*dispatch.acks, ack)})


# --- deadlines ----------------------------------------------------------------------
TimeoutEffect = Literal["escalated", "unanswered", "stale", "ladder"]


@dataclass(frozen=True, slots=True)
class TimeoutOutcome:
    dispatch: Dispatch
    effect: TimeoutEffect
    decision: DispatchDecision | None
    callouts: list[CallOut] = field(default_factory=list)
    """every call-out to send: ladder steps due, and the new stage's"""


def on_timeout(
    dispatch: Dispatch,
    world: World,
    availability: Availability,
    plan: LoadedPlan,
    now: datetime,
) -> TimeoutOutcome:
    """A deadline passed: ladder steps that are due are taken; when the stage's own
    deadline passed without a quorum, escalate, or declare the incident unanswered.
    Stale timers (quorum met, closed, or a deadline not yet reached) change nothing."""
    deadline = dispatch.deadline
    if deadline is None or now < deadline or quorum_status(dispatch).met:
        return TimeoutOutcome(dispatch, "stale", None)
    dispatch, calls = _ladder_steps(dispatch, now)
    stage_deadline = dispatch.stage_deadline
    if stage_deadline is None or now < stage_deadline:
        return TimeoutOutcome(dispatch, "ladder" if calls else "stale", None, calls)
    outcome = _next_stage(
        dispatch,
        world,
        availability,
        plan,
        now,
        "no quorum after the last stage; command centre must act",
    )
    return TimeoutOutcome(
        outcome.dispatch, outcome.effect, outcome.decision, [*calls, *outcome.callouts]
    )


def _ladder_steps(dispatch: Dispatch, now: datetime) -> tuple[Dispatch, list[CallOut]]:
    due = [s for s in dispatch.ladder if s.due <= now]
    if not due:
        return dispatch, []
    paged = set(dispatch.paged())
    used = set(dispatch.sent)
    calls = []
    for step in sorted(due, key=lambda s: (s.due, s.contact, s.step)):
        call = step_callout(dispatch.incident, step, paged, used)
        if call is not None:
            calls.append(call)
    left = tuple(s for s in dispatch.ladder if s.due > now)
    updated = _sent(dispatch.model_copy(update={"ladder": left}), calls, [])
    if calls:
        what = "; ".join(
            f"{c.radio_id} {c.channel.value} (ladder step {c.model_extra['ladder_step'] + 1})"  # type: ignore[index]
            for c in calls
        )
        entry = TimelineEntry(at=now, state=updated.status, who="engine", what=what)
        state = next_state(updated.status, Event.LADDER_STEP)
        updated = updated.model_copy(
            update={"status": state, "timeline": (*updated.timeline, entry), "updated_at": now}
        )
    return updated, calls


def _next_stage(
    dispatch: Dispatch,
    world: World,
    availability: Availability,
    plan: LoadedPlan,
    now: datetime,
    why_unanswered: str,
    why: str | None = None,
) -> TimeoutOutcome:
    """Run the next stage now, or declare the incident unanswered (no stage left)."""
    try:
        decision = escalate(
            dispatch.incident, world, availability, plan, now, list(dispatch.decisions)
        )
    except NoStageLeft:
        state = next_state(dispatch.status, Event.EXHAUSTED)
        entry = TimelineEntry(at=now, state=state, who="engine", what=why_unanswered)
        done = dispatch.model_copy(
            update={
                "status": state,
                "timeline": (*dispatch.timeline, entry),
                "updated_at": now,
                "ladder": (),
            }
        )
        return TimeoutOutcome(done, "unanswered", None)
    if why is not None:
        decision = decision._replace(reasons=(why, *decision.reasons))
    decision = channel_reasons(decision, world, plan)
    state = next_state(dispatch.status, Event.ESCALATED)
    summary = _called_summary(decision)
    entry = TimelineEntry(
        at=now, state=state, who="engine", what=f"{why}; {summary}" if why else summary
    )
    escalated = dispatch.model_copy(
        update={
            "status": state,
            "decisions": (*dispatch.decisions, decision.to_model()),
            "timeline": (*dispatch.timeline, entry),
            "updated_at": now,
        }
    )
    escalated, calls = start_stage(escalated, decision, world, plan)
    return TimeoutOutcome(escalated, "escalated", decision, calls)


# --- healing: substitutes and a quorum that cannot be met ---------------------------
@dataclass(frozen=True, slots=True)
class ReplyOutcome:
    """An ack applied, and what it set off: a substitute, or the next stage at once."""

    dispatch: Dispatch
    effect: str
    """an :data:`AckEffect`, or ``substituted``, ``escalated``, ``unanswered``"""
    reason: str
    decision: DispatchDecision | None = None
    callouts: list[CallOut] = field(default_factory=list)
    substituted: tuple[str, str] | None = None
    """(the unit replaced, its substitute)"""


def on_reply(
    dispatch: Dispatch,
    ack: Ack,
    world: World,
    availability: Availability,
    plan: LoadedPlan,
    now: datetime,
) -> ReplyOutcome:
    """:func:`on_ack`, then heal: a linked unit that declined or could not be reached is
    replaced at once by the next nearest free unit, with a reason; when declines make
    the stage's quorum impossible, the next stage runs at once."""
    out = on_ack(dispatch, ack)
    updated = out.dispatch
    if out.effect == "ignored" or updated.status not in AWAITING_QUORUM:
        return ReplyOutcome(updated, out.effect, out.reason)
    if ack.kind is not AckKind.DECLINE and ack.kind is not AckKind.FAILED:
        return ReplyOutcome(updated, out.effect, out.reason)  # only a loss can heal
    lost = _lost_units(dispatch, updated, ack)
    if not lost and quorum_possible(updated):
        return ReplyOutcome(updated, out.effect, out.reason)
    unit = lost[0] if lost else ack.radio_id
    # a zone team that can no longer come is not made up for by units: next stage
    found = (
        heal.substitute(updated, unit, world, availability, plan, now, ack.kind is AckKind.FAILED)
        if lost and _zone_possible(updated)
        else None
    )
    if found is not None:
        decision = found
        state = next_state(updated.status, Event.SUBSTITUTED)
        why = decision.reasons[0]
        entry = TimelineEntry(at=now, state=state, who="engine", what=why)
        healed = updated.model_copy(
            update={
                "status": state,
                "decisions": (*updated.decisions, heal.substitution_model(decision, unit)),
                "timeline": (*updated.timeline, entry),
                "updated_at": max(updated.updated_at, now),
            }
        )
        healed, calls = start_stage(healed, decision, world, plan)
        return ReplyOutcome(
            healed, "substituted", why, decision, calls, (unit, decision.recipients[0].id)
        )
    if quorum_possible(updated):
        return ReplyOutcome(updated, out.effect, out.reason)
    why = (
        heal.impossible_reason(unit)
        if _zone_possible(updated)
        else heal.zone_declined_reason(
            [e for e in updated.declined if e in updated.zones() and e not in updated.accepted]
        )
    )
    nxt = _next_stage(
        updated,
        world,
        availability,
        plan,
        now,
        f"{why}; no stage left: command centre must act",
        why,
    )
    return ReplyOutcome(nxt.dispatch, nxt.effect, why, nxt.decision, nxt.callouts)


def _lost_units(before: Dispatch, after: Dispatch, ack: Ack) -> list[str]:
    """Linked units newly out of the count by this ack: declined, or (a failed
    delivery) every one of its contacts failed; not if someone there accepted."""
    kinds = {r.id: r.kind for d in after.decisions for r in d.recipients}
    accepted = set(after.accepted) | set(after.on_scene)
    if ack.kind is AckKind.DECLINE:
        new = set(after.declined) - set(before.declined)
        if not new:  # declined before: already replaced then
            return []
        entities = sorted(new)
    elif ack.kind is AckKind.FAILED:
        failed = {a.radio_id for a in after.acks if a.kind is AckKind.FAILED}
        entities = [
            e
            for e in after.entities_of(ack.radio_id)
            if set(_contacts(after, e)) <= failed and e not in after.declined
        ]
    else:
        return []
    return [e for e in entities if kinds.get(e) == UNIT and e not in accepted]


def _contacts(dispatch: Dispatch, entity: str) -> list[str]:
    return [
        str(a)
        for d in dispatch.decisions
        for r in d.recipients
        if r.id == entity
        for a in (getattr(r, "contacts", None) or ())
    ]


# --- preemption ---------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class PreemptOutcome:
    dispatch: Dispatch
    decision: DispatchDecision | None
    callouts: list[CallOut]
    taken: list[str]
    reason: str


def on_preempted(
    dispatch: Dispatch,
    by: Incident,
    taken_zones: list[str] | tuple[str, ...],
    world: World,
    availability: Availability,
    plan: LoadedPlan,
    now: datetime,
) -> PreemptOutcome:
    """A higher-priority incident (``by``) took this incident's zone team(s): the
    current stage is decided again at once, with the next available zone, and the
    timeline says why. ``availability`` must already hold ``by``'s commitments."""
    taken = [z for z in dispatch.zones() if z in set(taken_zones)]
    if not taken or dispatch.status not in OPEN:
        return PreemptOutcome(dispatch, None, [], [], "nothing taken")
    why = heal.preempted_reason(taken, by.id, by.priority.value)
    withdrawn = dispatch.model_copy(
        update={"withdrawn": tuple(sorted({*dispatch.withdrawn, *taken}))}
    )
    decision = redecide(dispatch.incident, world, availability, plan, now, list(dispatch.decisions))
    decision = channel_reasons(decision._replace(reasons=(why, *decision.reasons)), world, plan)
    state = next_state(dispatch.status, Event.PREEMPTED)
    entry = TimelineEntry(
        at=now, state=state, who="engine", what=f"{why}; {_called_summary(decision)}"
    )
    model = Decision.model_validate(
        {**decision.to_wire(), "preempted_by": {"incident_id": by.id, "zones": taken}}
    )
    redecided = withdrawn.model_copy(
        update={
            "status": state,
            "decisions": (*withdrawn.decisions, model),
            "timeline": (*withdrawn.timeline, entry),
            "updated_at": max(withdrawn.updated_at, now),
            "quorum_met_at": None if state in AWAITING_QUORUM else withdrawn.quorum_met_at,
        }
    )
    redecided, calls = start_stage(redecided, decision, world, plan)
    return PreemptOutcome(redecided, decision, calls, taken, why)


def stored_deadline(value: dict[str, object]) -> datetime | None:
    """When a restored (JSON) dispatch is next due: its stage deadline or its earliest
    ladder step, whichever is first (the worker's deadline index, without validating)."""
    decisions = value.get("decisions") or []
    assert isinstance(decisions, list)
    ack_deadline = decisions[-1]["ack_deadline"] if decisions else None
    deadline = datetime.fromisoformat(ack_deadline) if ack_deadline else None
    ladder = value.get("ladder") or []
    assert isinstance(ladder, list)
    for step in ladder:
        due = datetime.fromisoformat(step["due"])
        deadline = due if deadline is None else min(deadline, due)
    return deadline


# --- cancel and close ---------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class EndOutcome:
    dispatch: Dispatch
    released_zones: list[str]
    stand_down: list[CallOut]
    """one message to everyone paged: no one keeps running to a cancelled scene"""


def on_cancel(
    dispatch: Dispatch, world: World, plan: LoadedPlan, now: datetime, who: str, why: str
) -> EndOutcome:
    return _end(dispatch, world, plan, now, who, why, Lifecycle.CANCELLED)


def on_close(
    dispatch: Dispatch, world: World, plan: LoadedPlan, now: datetime, who: str, why: str
) -> EndOutcome:
    return _end(dispatch, world, plan, now, who, why, Lifecycle.CLOSED)


def _end(
    dispatch: Dispatch,
    world: World,
    plan: LoadedPlan,
    now: datetime,
    who: str,
    why: str,
    to: Lifecycle,
) -> EndOutcome:
    if dispatch.status not in OPEN and dispatch.status is not Lifecycle.UNANSWERED:
        return EndOutcome(dispatch, [], [])
    to = next_state(dispatch.status, Event.CANCEL if to is Lifecycle.CANCELLED else Event.CLOSE)
    entry = TimelineEntry(at=now, state=to, who=who, what=why)
    ended = dispatch.model_copy(
        update={
            "status": to,
            "timeline": (*dispatch.timeline, entry),
            "updated_at": now,
            "ladder": (),
        }
    )
    messages = stand_down(dispatch, world, plan, cancelled=to is Lifecycle.CANCELLED)
    return EndOutcome(ended, dispatch.zones(), messages)
