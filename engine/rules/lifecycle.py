"""An incident's lifecycle as one explicit table: (state, event) -> state, in the style
of ``engine/radio/at_state.py`` (and h11's ``_state.py``).

Rules, read with the table:

- ``raised`` becomes ``dispatched`` when stage 0 is decided (even with nobody found:
  the command centre is then among those called).
- While a stage awaits its quorum (``dispatched``, ``escalated``): the quorum met makes
  it ``acknowledged``; a deadline missed, or declines that make the quorum impossible,
  run the next stage (``escalated``) or, with none left, make it ``unanswered``.
- A substitute for a linked unit that declined, or a ladder step, changes no state.
- An on-scene report is also an accept: from any open state (and ``unanswered``) it
  makes the incident ``on_scene``.
- A late accept after ``unanswered`` brings the incident back to ``acknowledged``.
- A zone team taken by a higher-priority incident (``preempted``) re-decides the stage:
  back to ``dispatched`` (or stays ``escalated``) to await the new team's quorum; an
  incident already on scene stays so (its people are there).
- ``cancel`` ends any open or unanswered incident; ``close`` likewise. Ended incidents
  take no event: a pair missing from the table is refused (:class:`IllegalTransition`).
"""

from __future__ import annotations

from enum import StrEnum

from engine.models import Lifecycle

S = Lifecycle


class Event(StrEnum):
    DECIDED = "decided"
    QUORUM_MET = "quorum_met"
    ACCEPTED_LATE = "accepted_late"
    ON_SCENE = "on_scene"
    ESCALATED = "escalated"
    EXHAUSTED = "exhausted"
    SUBSTITUTED = "substituted"
    LADDER_STEP = "ladder_step"
    PREEMPTED = "preempted"
    CANCEL = "cancel"
    CLOSE = "close"


E = Event

OPEN = frozenset({S.RAISED, S.DISPATCHED, S.ESCALATED, S.ACKNOWLEDGED, S.ON_SCENE})
AWAITING_QUORUM = frozenset({S.DISPATCHED, S.ESCALATED})
ENDED = frozenset({S.CLOSED, S.CANCELLED})

TABLE: dict[tuple[Lifecycle, Event], Lifecycle] = {
    (S.RAISED, E.DECIDED): S.DISPATCHED,
    # awaiting a quorum
    (S.DISPATCHED, E.QUORUM_MET): S.ACKNOWLEDGED,
    (S.ESCALATED, E.QUORUM_MET): S.ACKNOWLEDGED,
    (S.DISPATCHED, E.ESCALATED): S.ESCALATED,
    (S.ESCALATED, E.ESCALATED): S.ESCALATED,
    (S.DISPATCHED, E.EXHAUSTED): S.UNANSWERED,
    (S.ESCALATED, E.EXHAUSTED): S.UNANSWERED,
    # changes nothing but who is called
    **{(s, E.SUBSTITUTED): s for s in (S.DISPATCHED, S.ESCALATED, S.ACKNOWLEDGED, S.ON_SCENE)},
    **{(s, E.LADDER_STEP): s for s in (S.DISPATCHED, S.ESCALATED)},
    # quorum after on scene, or again after a preemption re-decided
    (S.ACKNOWLEDGED, E.QUORUM_MET): S.ACKNOWLEDGED,
    (S.ON_SCENE, E.QUORUM_MET): S.ON_SCENE,
    # on scene
    **{
        (s, E.ON_SCENE): S.ON_SCENE
        for s in (S.DISPATCHED, S.ESCALATED, S.ACKNOWLEDGED, S.ON_SCENE, S.UNANSWERED)
    },
    # a late accept
    (S.UNANSWERED, E.ACCEPTED_LATE): S.ACKNOWLEDGED,
    (S.UNANSWERED, E.QUORUM_MET): S.ACKNOWLEDGED,
    # a zone team taken by a higher priority
    (S.DISPATCHED, E.PREEMPTED): S.DISPATCHED,
    (S.ESCALATED, E.PREEMPTED): S.ESCALATED,
    (S.ACKNOWLEDGED, E.PREEMPTED): S.DISPATCHED,
    (S.ON_SCENE, E.PREEMPTED): S.ON_SCENE,
    # operators end it
    **{(s, E.CANCEL): S.CANCELLED for s in (*OPEN, S.UNANSWERED)},
    **{(s, E.CLOSE): S.CLOSED for s in (*OPEN, S.UNANSWERED)},
}


class IllegalTransition(ValueError):
    """An event the table has no row for in this state."""


def next_state(state: Lifecycle, event: Event) -> Lifecycle:
    try:
        return TABLE[(state, event)]
    except KeyError:
        raise IllegalTransition(f"{event.value} is not allowed in state {state.value}") from None


def allowed(state: Lifecycle, event: Event) -> bool:
    return (state, event) in TABLE
