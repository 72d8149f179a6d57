"""`engine plan compare`: recorded incidents replayed through two plans, the whole
lifecycle included, and what changes.

For each incident and each plan: the stage-0 decision (:func:`engine.rules.decide.
decide`, at the incident's ``raised_at``, every zone team free, as ``engine decide
--independent``), then the replies in time order (:func:`engine.rules.followup.on_ack`)
and each missed deadline (:func:`~engine.rules.followup.on_timeout`: escalate, or
unanswered when the ladder is exhausted), until the quorum is met or the incident is
unanswered. Replies are either the acks recorded for the incident (a handset that
was not called under a plan is ignored by it, as the worker ignores it; someone a
plan calls who was never called in reality stays silent), or a reply model for a
what-if: each called group answers or not, and when, from a hash of (incident id,
group id), so both plans meet the same people behaving the same way and every
difference comes from the plan.

What is reported per incident: whether the stage-0 decision differs at all (its
wire JSON less ``plan_version``), the zone team chosen and its distance, the people
called (contact addresses over every stage), the time to quorum, the stages used,
escalated, unanswered.
"""

from __future__ import annotations

import hashlib
import heapq
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from engine.models import Ack, AckKind, Incident, Lifecycle
from engine.rules.availability import Availability
from engine.rules.decide import decide
from engine.rules.decision import DispatchDecision
from engine.rules.followup import AWAITING_QUORUM, on_ack, on_timeout, open_dispatch
from engine.rules.plan import LoadedPlan
from engine.rules.world import World


@dataclass(frozen=True)
class ReplyModel:
    """Each called group accepts with probability ``accept`` after a delay uniform in
    [``min_s``, ``max_s``] seconds from its call-out, through its first contact; the
    rest stay silent. Deterministic per (seed, incident id, group id)."""

    accept: float = 0.6
    min_s: float = 10.0
    max_s: float = 120.0
    seed: str = "plan-compare"

    def __str__(self) -> str:
        return (
            f"reply model: {100 * self.accept:g}% of called groups accept, "
            f"{self.min_s:g}-{self.max_s:g} s after their call-out"
        )

    def delay_s(self, incident_id: str, entity_id: str) -> float | None:
        digest = hashlib.blake2b(
            f"{self.seed}|{incident_id}|{entity_id}".encode(), digest_size=16
        ).digest()
        u1 = int.from_bytes(digest[:8], "big") / 2**64
        u2 = int.from_bytes(digest[8:], "big") / 2**64
        if u1 >= self.accept:
            return None
        return self.min_s + u2 * (self.max_s - self.min_s)


@dataclass(frozen=True)
class Outcome:
    """One incident's replay under one plan."""

    decision0: dict[str, Any]
    """stage 0's wire JSON, less plan_version"""
    zone: str | None
    zone_distance_m: float | None
    people: frozenset[str]
    stages: int
    quorum_s: float | None
    status: Lifecycle

    @property
    def escalated(self) -> bool:
        return self.stages > 1

    @property
    def unanswered(self) -> bool:
        return self.status is Lifecycle.UNANSWERED


def _model_acks(
    decision: DispatchDecision, incident_id: str, model: ReplyModel
) -> list[tuple[datetime, int, Ack]]:
    out = []
    for n, r in enumerate(decision.recipients):
        if not r.contacts:
            continue
        delay = model.delay_s(incident_id, r.id)
        if delay is None:
            continue
        at = decision.decided_at + timedelta(seconds=delay)
        ack = Ack(incident_id=incident_id, radio_id=r.contacts[0], kind=AckKind.ACCEPT, at=at)
        out.append((at, decision.stage * 10_000 + n, ack))
    return out


def replay_one(
    incident: Incident,
    world: World,
    plan: LoadedPlan,
    recorded: Sequence[Ack] | None,
    model: ReplyModel,
) -> Outcome:
    """The lifecycle of one incident under ``plan`` (see the module docstring)."""
    availability = Availability()
    first = decide(incident, world, availability, plan, incident.raised_at)
    dispatch = open_dispatch(incident, first, incident.raised_at)
    queue: list[tuple[datetime, int, Ack]] = []
    if recorded is not None:
        queue = [(a.at, n, a) for n, a in enumerate(recorded)]
    else:
        queue = _model_acks(first, incident.id, model)
    heapq.heapify(queue)
    while dispatch.status in AWAITING_QUORUM:
        deadline = dispatch.deadline
        if queue and (deadline is None or queue[0][0] <= deadline):
            dispatch = on_ack(dispatch, heapq.heappop(queue)[2]).dispatch
            continue
        if deadline is None:
            break
        step = on_timeout(dispatch, world, availability, plan, deadline)
        if step.effect == "stale":
            # the stage needs nobody's accept (no zone team found and no unit called):
            # its quorum counts as met at once and the deadline changes nothing
            break
        dispatch = step.dispatch
        if step.decision is not None and recorded is None:
            for item in _model_acks(step.decision, incident.id, model):
                heapq.heappush(queue, item)
    wire = first.to_wire()
    wire.pop("plan_version")
    people = frozenset(
        a
        for d in dispatch.decisions
        for r in d.recipients
        for a in (getattr(r, "contacts", None) or ())  # wire extras (see Dispatch.entities_of)
    )
    met = dispatch.quorum_met_at
    return Outcome(
        decision0=wire,
        zone=first.zone.id if first.zone is not None else None,
        zone_distance_m=round(first.zone.distance_m, 1) if first.zone is not None else None,
        people=people,
        stages=len(dispatch.decisions),
        quorum_s=None if met is None else (met - incident.raised_at).total_seconds(),
        status=dispatch.status,
    )


CHANGE_KINDS: dict[str, str] = {
    "decision": "decision0",
    "zone": "zone",
    "zone_distance": "zone_distance_m",
    "people": "people",
    "time_to_quorum": "quorum_s",
    "stages": "stages",
    "escalated": "escalated",
    "unanswered": "unanswered",
}
"""What a change is called -> the :class:`Outcome` attribute it compares."""


def changes(old: Outcome, new: Outcome) -> list[str]:
    """What differs, in :data:`CHANGE_KINDS` order."""
    return [k for k, attr in CHANGE_KINDS.items() if getattr(old, attr) != getattr(new, attr)]


def compare_plans(
    incidents: Iterable[Incident],
    world: World,
    old: LoadedPlan,
    new: LoadedPlan,
    acks: Mapping[str, Sequence[Ack]] | None = None,
    model: ReplyModel | None = None,
) -> dict[str, Any]:
    """The comparison as JSON-ready data. ``acks`` (incident id -> recorded acks)
    drives the replies; without it, ``model`` (default :class:`ReplyModel`)."""
    model = model or ReplyModel()
    rows: list[dict[str, Any]] = []
    old_out: list[Outcome] = []
    new_out: list[Outcome] = []
    for inc in incidents:
        recorded = None if acks is None else acks.get(inc.id, ())
        a = replay_one(inc, world, old, recorded, model)
        b = replay_one(inc, world, new, recorded, model)
        old_out.append(a)
        new_out.append(b)
        what = changes(a, b)
        if not what:
            continue
        rows.append(
            {
                "incident_id": inc.id,
                "type": inc.type.value,
                "priority": inc.priority.value,
                "changes": what,
                "old": _outcome_json(a),
                "new": _outcome_json(b),
                "people_added": len(b.people - a.people),
                "people_dropped": len(a.people - b.people),
            }
        )
    by_kind = {k: sum(1 for r in rows if k in r["changes"]) for k in CHANGE_KINDS}
    return {
        "old_plan": {"name": old.plan.name, "version": old.version, "origin": old.origin},
        "new_plan": {"name": new.plan.name, "version": new.version, "origin": new.origin},
        "replies": "recorded acks" if acks is not None else str(model),
        "incidents": len(old_out),
        "changed": len(rows),
        "changed_by_kind": by_kind,
        "old": _summary(old_out),
        "new": _summary(new_out),
        "incidents_changed": rows,
    }


def _outcome_json(o: Outcome) -> dict[str, Any]:
    return {
        "zone": o.zone,
        "zone_distance_m": o.zone_distance_m,
        "ack_quorum": o.decision0["ack_quorum"],
        "people": len(o.people),
        "stages": o.stages,
        "quorum_s": None if o.quorum_s is None else round(o.quorum_s, 1),
        "status": o.status.value,
    }


def _summary(outcomes: Sequence[Outcome]) -> dict[str, Any]:
    times = [o.quorum_s for o in outcomes if o.quorum_s is not None]
    dists = [o.zone_distance_m for o in outcomes if o.zone_distance_m is not None]
    n = len(outcomes)
    return {
        "quorum_met": len(times),
        "escalated": sum(o.escalated for o in outcomes),
        "unanswered": sum(o.unanswered for o in outcomes),
        "no_zone": n - len(dists),
        "median_quorum_s": round(statistics.median(times), 1) if times else None,
        "mean_quorum_s": round(statistics.fmean(times), 1) if times else None,
        "mean_people_called": round(statistics.fmean(len(o.people) for o in outcomes), 2)
        if n
        else None,
        "mean_zone_distance_m": round(statistics.fmean(dists), 1) if dists else None,
    }
