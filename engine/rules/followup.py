"""What happens after the first call-out: acknowledgements, missed deadlines, cancel
and close. Pure functions over :class:`Dispatch`, the rules' record of one incident,
which the worker keeps in a Kafka-backed table.

Lifecycle (one table, rules below)::

    raised -> dispatched -> acknowledged -> on_scene -> closed
                  |  ^            |
          timeout |  | quorum     +-> on_scene (an on-scene report also counts as accept)
                  v  |
              escalated --(ladder exhausted)--> unanswered
    any open state --cancel--> cancelled;  any open state --close--> closed

Rules: a quorum is counted over everyone called at every stage so far (a late accept
from stage 0 still counts after an escalation); the quorum rule is the latest stage's.
A deadline that passes after the quorum was met changes nothing. Replies for a closed
or cancelled incident, from a handset that was not called, or a repeat of a (radio,
kind) already kept, are ignored and not stored.
"""

from __future__ import annotations

from dataclasses import dataclass
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
from engine.rules.availability import Availability
from engine.rules.callouts import stand_down
from engine.rules.decide import KEY_ZONE, UNIT, NoStageLeft, escalate
from engine.rules.decision import DispatchDecision
from engine.rules.plan import LoadedPlan
from engine.rules.world import World

OPEN = frozenset(
    {
        Lifecycle.RAISED,
        Lifecycle.DISPATCHED,
        Lifecycle.ESCALATED,
        Lifecycle.ACKNOWLEDGED,
        Lifecycle.ON_SCENE,
    }
)
AWAITING_QUORUM = frozenset({Lifecycle.DISPATCHED, Lifecycle.ESCALATED})


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

    @property
    def stage(self) -> int:
        return self.decisions[-1].stage if self.decisions else 0

    @property
    def deadline(self) -> datetime | None:
        """When the current stage times out, while a quorum is still awaited."""
        if self.status in AWAITING_QUORUM and self.decisions:
            return self.decisions[-1].ack_deadline
        return None

    def zones(self) -> list[str]:
        return [r.id for d in self.decisions for r in d.recipients if r.kind == KEY_ZONE]

    def held_zones(self) -> list[str]:
        """The zones this incident holds while open: called and not released."""
        released = set(self.released)
        return [z for z in self.zones() if z not in released]

    def entities_of(self, address: str) -> list[str]:
        """The called groups a handset or phone was paged for."""
        return sorted(
            {
                r.id
                for d in self.decisions
                for r in d.recipients
                if address in (getattr(r, "contacts", None) or ())
            }
        )

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

    @property
    def met(self) -> bool:
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
    accepted = set(dispatch.accepted) | set(dispatch.on_scene)
    return QuorumStatus(
        zone_team_needed=bool(rule.get("zone_team", False)),
        zone_team_ok=any(kinds.get(e) == KEY_ZONE for e in accepted),
        units_needed=int(rule.get("linked_units", 0)),
        units_ok=sum(1 for e in accepted if kinds.get(e) == UNIT),
    )


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
        status=Lifecycle.DISPATCHED,
        decisions=(decision.to_model(),),
        timeline=(raised, dispatched),
        updated_at=now,
    )


def _called_summary(decision: DispatchDecision) -> str:
    zone = decision.zone.id if decision.zone is not None else "no zone"
    return (
        f"stage {decision.stage}: {zone} + {len(decision.units)} linked units, "
        f"{len(decision.recipients)} groups called ({decision.response})"
    )


# --- acks ---------------------------------------------------------------------------
AckEffect = Literal["recorded", "quorum_met", "on_scene", "ignored"]


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
    if dispatch.status not in OPEN:
        return AckOutcome(dispatch, "ignored", f"incident is {dispatch.status.value}")
    entities = dispatch.entities_of(ack.radio_id)
    if not entities:
        return AckOutcome(dispatch, "ignored", f"{ack.radio_id} was not called for this incident")
    if any(a.radio_id == ack.radio_id and a.kind is ack.kind for a in dispatch.acks):
        return AckOutcome(dispatch, "ignored", f"{ack.radio_id} already sent {ack.kind.value}")
    if ack.kind is AckKind.DELIVERED:
        return AckOutcome(_record(dispatch, ack), "recorded", "delivery report")

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
    if not before and quorum_status(updated).met:
        quorum_met_at = ack.at
        if status in AWAITING_QUORUM:
            status = Lifecycle.ACKNOWLEDGED
        effect = "quorum_met"
        what += "; quorum met"
    if ack.kind is AckKind.ON_SCENE and status is not Lifecycle.ON_SCENE:
        status = Lifecycle.ON_SCENE
        effect = "on_scene"
    entry = TimelineEntry(at=ack.at, state=status, who=ack.radio_id, what=what)
    updated = updated.model_copy(
        update={
            "status": status,
            "quorum_met_at": quorum_met_at,
            "timeline": (*updated.timeline, entry),
            "updated_at": max(updated.updated_at, ack.at),
        }
    )
    return AckOutcome(updated, effect, what)


def _record(dispatch: Dispatch, ack: Ack) -> Dispatch:
    """The ack kept: once per (radio, kind), which on_ack has checked."""
    return dispatch.model_copy(update={"acks": (*dispatch.acks, ack)})


# --- deadlines ----------------------------------------------------------------------
TimeoutEffect = Literal["escalated", "unanswered", "stale"]


@dataclass(frozen=True, slots=True)
class TimeoutOutcome:
    dispatch: Dispatch
    effect: TimeoutEffect
    decision: DispatchDecision | None


def on_timeout(
    dispatch: Dispatch,
    world: World,
    availability: Availability,
    plan: LoadedPlan,
    now: datetime,
) -> TimeoutOutcome:
    """The current stage's deadline passed: escalate, or declare the incident unanswered.
    Stale timers (quorum met, closed, or a deadline not yet reached) change nothing."""
    deadline = dispatch.deadline
    if deadline is None or now < deadline or quorum_status(dispatch).met:
        return TimeoutOutcome(dispatch, "stale", None)
    try:
        decision = escalate(
            dispatch.incident, world, availability, plan, now, list(dispatch.decisions)
        )
    except NoStageLeft:
        entry = TimelineEntry(
            at=now,
            state=Lifecycle.UNANSWERED,
            who="engine",
            what="no quorum after the last stage; command centre must act",
        )
        done = dispatch.model_copy(
            update={
                "status": Lifecycle.UNANSWERED,
                "timeline": (*dispatch.timeline, entry),
                "updated_at": now,
            }
        )
        return TimeoutOutcome(done, "unanswered", None)
    entry = TimelineEntry(
        at=now, state=Lifecycle.ESCALATED, who="engine", what=_called_summary(decision)
    )
    escalated = dispatch.model_copy(
        update={
            "status": Lifecycle.ESCALATED,
            "decisions": (*dispatch.decisions, decision.to_model()),
            "timeline": (*dispatch.timeline, entry),
            "updated_at": now,
        }
    )
    return TimeoutOutcome(escalated, "escalated", decision)


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
    entry = TimelineEntry(at=now, state=to, who=who, what=why)
    ended = dispatch.model_copy(
        update={"status": to, "timeline": (*dispatch.timeline, entry), "updated_at": now}
    )
    messages = stand_down(dispatch, world, plan, cancelled=to is Lifecycle.CANCELLED)
    return EndOutcome(ended, dispatch.zones(), messages)
