"""Operator commands on one incident, as pure functions over :class:`Dispatch`.

Each command is checked against the incident's state and either applied (a new
dispatch, maybe a new stage and its call-outs) or refused with a reason the operator
reads. Who gave the command (``Command.actor``) goes into the timeline; the rules never
trust a name from anywhere else.

============  ==============================  ==============================================
command       allowed when                    what it does
============  ==============================  ==============================================
escalate      open                            the plan's next stage now
repage        open                            the current stage again, to those who have
                                              not answered (new idempotency keys)
reassign      open                            the operator's zone (and its linked units),
                                              the incident's other zones released
note          known (open or ended)           a timeline entry
priority      open, priority or type changes  re-decided at the new priority/type
move          open, inside the area           re-decided at the corrected location
cancel/close  open or unanswered              ended, everyone paged told to stand down
reopen        unanswered or closed, < 24 h    decided again from the first stage
============  ==============================  ==============================================

A new stage made by a command is numbered after the last one, so its call-outs have
keys of their own; people already paged are not paged again (``reopen`` excepted: they
were stood down).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import cast

from engine.models import CallOut, Command, Lifecycle, TimelineEntry
from engine.rules.availability import Availability
from engine.rules.callouts import callouts_for, channel_reasons
from engine.rules.decide import NoStageLeft, decide, escalate
from engine.rules.decision import DispatchDecision
from engine.rules.followup import (
    OPEN,
    Dispatch,
    on_cancel,
    on_close,
    quorum_status,
    start_stage,
)
from engine.rules.plan import LoadedPlan
from engine.rules.world import World

REOPEN_WITHIN = timedelta(hours=24)
REOPENABLE = frozenset({Lifecycle.UNANSWERED, Lifecycle.CLOSED})


@dataclass(frozen=True, slots=True)
class CommandOutcome:
    dispatch: Dispatch
    """the incident after the command (the same object when refused)"""
    applied: bool
    reason: str
    """what was done, or why not: shown to the operator"""
    decision: DispatchDecision | None = None
    callouts: list[CallOut] = field(default_factory=list)
    release: bool = False
    """the incident's zones are released before ``commit`` is held"""
    commit: list[str] = field(default_factory=list)
    """zones the incident holds from now on"""


def refused(dispatch: Dispatch, reason: str) -> CommandOutcome:
    return CommandOutcome(dispatch, False, reason)


def apply_command(
    dispatch: Dispatch,
    command: Command,
    world: World,
    availability: Availability,
    plan: LoadedPlan,
    now: datetime,
    inside_area: Callable[[float, float], bool],
) -> CommandOutcome:
    """Check ``command`` against ``dispatch`` and apply it at ``now``."""
    if command.action == "note":
        return _note(dispatch, command, now)
    if command.action == "reopen":
        return _reopen(dispatch, command, world, availability, plan, now)
    if command.action in ("cancel", "close"):
        return _end(dispatch, command, world, plan, now)
    if dispatch.status not in OPEN:
        return refused(dispatch, f"incident is {dispatch.status.value}")
    if command.action == "move":
        loc = command.location
        if loc is None:
            return refused(dispatch, "move needs a location")
        if not inside_area(loc.lat, loc.lon):
            return refused(
                dispatch,
                f"{loc.lat:.6f},{loc.lon:.6f} is outside dispatch area {dispatch.incident.area}",
            )
    return _HANDLERS[command.action](dispatch, command, world, availability, plan, now)


# --- new stages -------------------------------------------------------------------------
def _escalate(
    dispatch: Dispatch,
    command: Command,
    world: World,
    availability: Availability,
    plan: LoadedPlan,
    now: datetime,
) -> CommandOutcome:
    try:
        decision = escalate(
            dispatch.incident, world, availability, plan, now, list(dispatch.decisions)
        )
    except NoStageLeft:
        return refused(
            dispatch, f"no further stage in the plan's ladder (stage {dispatch.stage} was the last)"
        )
    why = f"escalated by {command.actor}" + (f": {command.reason}" if command.reason else "")
    return _new_stage(
        dispatch, command, decision, world, plan, now, why, release=False,
        waiting=Lifecycle.ESCALATED,
    )  # fmt: skip


def _reassign(
    dispatch: Dispatch,
    command: Command,
    world: World,
    availability: Availability,
    plan: LoadedPlan,
    now: datetime,
) -> CommandOutcome:
    zone_id = command.zone_id
    if not zone_id or zone_id not in world.registry.key_zones:
        return refused(dispatch, f"{zone_id!r} is not a key zone of {dispatch.incident.area}")
    if zone_id in dispatch.zones() and zone_id not in dispatch.released:
        return refused(dispatch, f"{zone_id} is already called for this incident")
    # The rules choose as usual, with every other key zone out of reach: the operator's
    # zone gets its linked units, its busy or unreachable team is reported as such.
    others = frozenset(world.registry.key_zones) - {zone_id}
    only = Availability(
        commitments=availability.commitments,
        unavailable=availability.unavailable | others,
        offline_radios=availability.offline_radios,
        observer_fixes=availability.observer_fixes,
    )
    decision = decide(dispatch.incident, world, only, plan, now)
    if decision.zone is None or decision.zone.id != zone_id:
        detail = "; ".join(r for r in decision.reasons if zone_id in r) or (
            "out of the stage's range of the scene, or nobody of its team reachable"
        )
        return refused(dispatch, f"{zone_id} cannot be called: {detail}")
    why = f"reassigned to {zone_id} by {command.actor}" + (
        f": {command.reason}" if command.reason else ""
    )
    return _new_stage(dispatch, command, decision, world, plan, now, why, release=True)


def _redecide(
    dispatch: Dispatch,
    command: Command,
    world: World,
    availability: Availability,
    plan: LoadedPlan,
    now: datetime,
) -> CommandOutcome:
    """``priority`` and ``move``: the incident corrected, then decided again."""
    incident = dispatch.incident
    update: dict[str, object]
    if command.action == "priority":
        update = {
            k: v
            for k, v in (("priority", command.priority), ("type", command.type))
            if v is not None
        }
        if not update:
            return refused(dispatch, "priority needs a new priority or type")
        if all(getattr(incident, k) == v for k, v in update.items()):
            return refused(dispatch, "priority and type are unchanged")
        what = ", ".join(
            f"{k} {getattr(incident, k).value} -> {getattr(v, 'value', v)}"
            for k, v in update.items()
        )
    else:
        assert command.location is not None
        update = {"location": command.location}
        if command.address is not None:
            update["address"] = command.address
        what = f"moved to {command.location.lat:.6f},{command.location.lon:.6f}"
    corrected = incident.model_copy(update=update)
    decision = decide(corrected, world, availability, plan, now)
    why = f"{what} by {command.actor}" + (f": {command.reason}" if command.reason else "")
    base = dispatch.model_copy(update={"incident": corrected})
    return _new_stage(base, command, decision, world, plan, now, why, release=True)


def _reopen(
    dispatch: Dispatch,
    command: Command,
    world: World,
    availability: Availability,
    plan: LoadedPlan,
    now: datetime,
) -> CommandOutcome:
    if dispatch.status not in REOPENABLE:
        return refused(
            dispatch, f"incident is {dispatch.status.value}: only unanswered or closed reopen"
        )
    if now - dispatch.updated_at > REOPEN_WITHIN:
        return refused(dispatch, "incident ended more than 24 h ago")
    decision = decide(dispatch.incident, world, availability, plan, now)
    why = f"reopened by {command.actor}" + (f": {command.reason}" if command.reason else "")
    # The answers of before belong to the ended response (they stay in the timeline);
    # everyone is paged again, for they were stood down or never answered.
    fresh = dispatch.model_copy(
        update={
            "accepted": (),
            "declined": (),
            "on_scene": (),
            "acks": (),
            "quorum_met_at": None,
            "released": tuple(sorted(set(dispatch.zones()))),
        }
    )
    return _new_stage(
        fresh, command, decision, world, plan, now, why, release=True, page_again=True
    )


def _new_stage(
    dispatch: Dispatch,
    command: Command,
    decision: DispatchDecision,
    world: World,
    plan: LoadedPlan,
    now: datetime,
    why: str,
    *,
    release: bool,
    page_again: bool = False,
    waiting: Lifecycle = Lifecycle.DISPATCHED,
) -> CommandOutcome:
    # after the last stage run (issue 13: substitutes and re-decisions repeat a stage)
    stage = dispatch.decisions[-1].stage + 1 if dispatch.decisions else 0
    decision = decision._replace(stage=stage, reasons=(why, *decision.reasons))
    decision = channel_reasons(decision, world, plan)
    incident = dispatch.incident
    new_zones = [z.id for z in decision.zones]
    released = set(dispatch.released)
    if release:
        released |= set(dispatch.zones()) - set(new_zones)
    released -= set(new_zones)
    updated = dispatch.model_copy(
        update={
            "decisions": (*dispatch.decisions, decision.to_model()),
            "released": tuple(sorted(released)),
            "updated_at": now,
        }
    )
    if page_again:
        callouts = callouts_for(decision, incident, world, plan, frozenset())
    else:  # each contact's first ladder step now, the later ones recorded (issue 13)
        updated, callouts = start_stage(updated, decision, world, plan)
    status = waiting
    if dispatch.status is Lifecycle.ON_SCENE:
        status = Lifecycle.ON_SCENE
    elif updated.accepted and quorum_status(updated).met:
        status = Lifecycle.ACKNOWLEDGED
    zone = decision.zone.id if decision.zone is not None else "no zone"
    what = (
        f"{why}; stage {stage}: {zone} + {len(decision.units)} linked units, "
        f"{len(callouts)} call-outs"
    )
    updated = updated.model_copy(
        update={
            "status": status,
            "timeline": (*dispatch.timeline, _entry(command, now, status, what)),
        }
    )
    return CommandOutcome(
        updated, True, what, decision, callouts, release=release, commit=new_zones
    )


_REPLIES = frozenset({"accept", "decline", "on_scene"})
"""Ack kinds that are a person's answer (sent, delivered, failed are reports)."""


# --- the current stage again ------------------------------------------------------------
def _repage(
    dispatch: Dispatch,
    command: Command,
    world: World,
    availability: Availability,
    plan: LoadedPlan,
    now: datetime,
) -> CommandOutcome:
    last = dispatch.decisions[-1]
    answered = {a.radio_id for a in dispatch.acks if a.kind.value in _REPLIES}
    # the wire decision has the rules decision's attribute names (see decision.py)
    every = callouts_for(cast(DispatchDecision, last), dispatch.incident, world, plan)
    n = 1 + sum(1 for e in dispatch.timeline if getattr(e, "command", None) == "repage")
    callouts = [
        c.model_copy(
            update={
                "idempotency_key": f"{dispatch.incident.id}/{last.stage}/repage{n}/{c.radio_id}"
            }
        )
        for c in every
        if c.radio_id not in answered
    ]
    if not callouts:
        return refused(dispatch, f"everyone paged at stage {last.stage} has answered")
    what = f"stage {last.stage} paged again by {command.actor}: {len(callouts)} not answered"
    if command.reason:
        what += f" ({command.reason})"
    updated = dispatch.model_copy(
        update={
            "timeline": (*dispatch.timeline, _entry(command, now, dispatch.status, what)),
            "updated_at": now,
        }
    )
    return CommandOutcome(updated, True, what, None, callouts)


# --- notes and the end ------------------------------------------------------------------
def _note(dispatch: Dispatch, command: Command, now: datetime) -> CommandOutcome:
    text = (command.reason or "").strip()
    if not text:
        return refused(dispatch, "a note needs text")
    updated = dispatch.model_copy(
        update={
            "timeline": (*dispatch.timeline, _entry(command, now, dispatch.status, text)),
            "updated_at": max(dispatch.updated_at, now),
        }
    )
    return CommandOutcome(updated, True, "note added")


def _end(
    dispatch: Dispatch, command: Command, world: World, plan: LoadedPlan, now: datetime
) -> CommandOutcome:
    if dispatch.status not in OPEN and dispatch.status is not Lifecycle.UNANSWERED:
        return refused(dispatch, f"incident is already {dispatch.status.value}")
    end = on_cancel if command.action == "cancel" else on_close
    why = command.reason or command.action
    outcome = end(dispatch, world, plan, now, command.actor, why)
    reopened = sum(1 for e in dispatch.timeline if getattr(e, "command", None) == "reopen")
    stand_down = outcome.stand_down
    if reopened:  # the stand-down of an earlier end used the plain keys
        stand_down = [
            c.model_copy(
                update={"idempotency_key": c.idempotency_key.replace("/end/", f"/end{reopened}/")}
            )
            for c in stand_down
        ]
    last = outcome.dispatch.timeline[-1]
    ended = outcome.dispatch.model_copy(
        update={
            "timeline": (
                *outcome.dispatch.timeline[:-1],
                _entry(command, now, last.state, last.what),
            ),
            "released": tuple(sorted(set(dispatch.zones()))),
        }
    )
    what = f"{outcome.dispatch.status.value} by {command.actor}: {len(stand_down)} stood down"
    return CommandOutcome(ended, True, what, None, stand_down, release=True)


def _entry(command: Command, now: datetime, state: Lifecycle, what: str) -> TimelineEntry:
    return TimelineEntry.model_validate(
        {
            "at": now,
            "state": state,
            "who": command.actor,
            "what": what,
            "command": command.action,
            "command_id": command.command_id,
        }
    )


_Handler = Callable[[Dispatch, Command, World, Availability, LoadedPlan, datetime], CommandOutcome]
_HANDLERS: dict[str, _Handler] = {
    "escalate": _escalate,
    "repage": _repage,
    "reassign": _reassign,
    "priority": _redecide,
    "move": _redecide,
}
"""the commands that need an open incident and may call people"""
