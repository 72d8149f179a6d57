"""The worker's state machine for the areas of one input partition, free of Kafka.

One :class:`AreaCore` per partition of ``incidents`` (and ``area-events``) handles one
event at a time and returns the records to publish. State lives in one
``MutableMapping`` store, restored from the partition's changelog (``area-state``) when
the partition is assigned: ``incident/<id>`` (the dispatch) and ``unit/<id>`` (the merged
unit status). Availability (zone commitments, unavailable units, offline radios, observer
fixes) and the deadline index are derived from the store and cached.

Dispatch logic stays in :mod:`engine.rules`; this module only feeds it and records what
it said. State writes are held back (:meth:`AreaCore.pending_writes`) so that the
adapter commits them to the changelog in the same Kafka transaction as the outputs, and
only then makes them visible (:meth:`AreaCore.apply_writes`); an aborted transaction
drops them (:meth:`AreaCore.discard_writes`) and the batch is handled again.

Nothing an event carries may stop the area: an exception while handling one event (a
bug in the rules, say) is caught here; the event's state changes are rolled back, it is
dead-lettered (``engine_error``) and, for an incident, the command centre is told to
dispatch it by hand.
"""

from __future__ import annotations

import logging
from collections.abc import MutableMapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from engine.geo.areas import Area, area_by_id
from engine.models import (
    Ack,
    CallOut,
    Command,
    CommandResult,
    DeadLetter,
    Decision,
    Incident,
    Lifecycle,
    Record,
    UnitStatus,
)
from engine.rules.availability import Availability, Commitment, Fix, ObserverFixes
from engine.rules.callouts import manual_dispatch
from engine.rules.commands import CommandOutcome, apply_command
from engine.rules.decide import decide
from engine.rules.followup import (
    AWAITING_QUORUM,
    OPEN,
    Dispatch,
    first_callout,
    on_cancel,
    on_close,
    on_preempted,
    on_reply,
    on_timeout,
    stored_deadline,
)
from engine.rules.plan import LoadedPlan
from engine.rules.world import World
from engine.streams.events import AreaEvent

log = logging.getLogger(__name__)

_OPEN_VALUES = frozenset(s.value for s in OPEN)
_AWAITING_VALUES = frozenset(s.value for s in AWAITING_QUORUM)

_PREFIX = {"dispatches": "incident/", "statuses": "unit/"}

_ABSENT = object()
"""In the rollback journal: the key had no pending write before the event."""

ENDED_KEEP = timedelta(hours=24)
"""How long an ended incident stays in the state table (late replies are still
recognised and recorded as ignored), before a prune removes it."""


@dataclass(frozen=True, slots=True)
class Out:
    """One record to publish: logical topic, key, value."""

    topic: str
    key: str
    value: bytes


@dataclass(slots=True)
class Effects:
    """What handling one event produced, for the adapter to publish and count."""

    out: list[Out] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    """metric events: 'decided', 'duplicate', 'escalated', 'unanswered', 'quorum_met',
    'on_scene', 'ack_ignored', 'unknown_incident', 'cancelled', 'closed', 'deadletter:<reason>'"""
    latencies: list[tuple[str, float]] = field(default_factory=list)
    """(stage name, seconds) for the latency histograms"""
    incident: Incident | None = None
    """the incident concerned, for metric labels"""

    def publish(self, topic: str, key: str, record: Record) -> None:
        self.out.append(Out(topic, key, record.to_json_bytes()))
        if isinstance(record, CallOut):
            self.notes.append(f"callout:{record.priority.value}:{record.channel.value}")
        elif isinstance(record, Decision):
            kind = (
                "no_zone" if record.zone is None else ("escalation" if record.stage else "dispatch")
            )
            self.notes.append(f"decision:{record.stage}:{kind}")

    def dead_letter(self, key: str, letter: DeadLetter) -> None:
        self.publish("deadletter", key, letter)
        self.notes.append(f"deadletter:{letter.reason}")


class AreaCore:
    def __init__(
        self,
        worlds: dict[str, World],
        plan: LoadedPlan,
        store: MutableMapping[str, Any],
    ) -> None:
        self.worlds = worlds
        self.areas = _areas(worlds)
        self.plan = plan
        # incident/<id> -> Dispatch, unit/<id> -> UnitStatus (JSON-ready dicts)
        self.store = store
        # Writes wait here until the adapter has committed them with the outputs they
        # record, in one transaction, and calls apply_writes().
        self._pending: dict[tuple[str, str], Any] = {}
        # what the event being handled overwrote in _pending (see _guard)
        self._journal: dict[tuple[str, str], Any] = {}
        # incident id -> (kind, when): the next deadline tick or prune of each incident
        self._due: dict[str, tuple[str, datetime]] = {}
        self._built = False
        self._commitments: dict[str, dict[str, Commitment]] = {}
        self._unavailable: set[str] = set()
        self._offline: set[str] = set()
        self._fixes = ObserverFixes()
        self._patrol_fixes: dict[str, Fix] = {}  # patrol base id -> freshest fix (issue 13)
        self._frozen: tuple[frozenset[str], frozenset[str]] | None = None

    # --- caches -------------------------------------------------------------------
    def invalidate(self) -> None:
        """Forget derived availability (after a rebalance moved partitions)."""
        self._built = False

    def replace_worlds(self, worlds: dict[str, World]) -> None:
        self.worlds = worlds
        self.areas = _areas(worlds)

    def replace_plan(self, plan: LoadedPlan) -> None:
        self.plan = plan

    def _read(self, table: str, key: str) -> Any:
        if (table, key) in self._pending:
            return self._pending[(table, key)]
        return self.store.get(_PREFIX[table] + key)

    def entries(self, table: str) -> list[tuple[str, Any]]:
        """(key, value) of one kind of state held locally, without its prefix, writes
        not yet committed included."""
        prefix = _PREFIX[table]
        n = len(prefix)
        merged = {k[n:]: v for k, v in self.store.items() if k.startswith(prefix)}
        for (t, key), value in self._pending.items():
            if t != table:
                continue
            if value is None:
                merged.pop(key, None)
            else:
                merged[key] = value
        return list(merged.items())

    def _load_dispatch(self, incident_id: str) -> Dispatch | None:
        """The dispatch as an object. Restored state holds JSON; it is validated on
        first use and kept as the object, so a busy incident is not parsed per event."""
        value = self._read("dispatches", incident_id)
        if value is None or isinstance(value, Dispatch):
            return value
        dispatch = Dispatch.model_validate(value)
        if ("dispatches", incident_id) not in self._pending:
            self.store[_PREFIX["dispatches"] + incident_id] = dispatch
        return dispatch

    def _store(self, dispatch: Dispatch) -> None:
        self._put(("dispatches", dispatch.incident.id), dispatch)
        self._index_due(dispatch.incident.id, dispatch)

    def _put(self, key: tuple[str, str], value: Any) -> None:
        """A pending write; what it replaces is journalled, for the event's rollback."""
        self._journal.setdefault(key, self._pending.get(key, _ABSENT))
        self._pending[key] = value

    def pending_writes(self) -> list[tuple[str, Any]]:
        """(store key, value or None for a deletion) of the events handled since the
        last apply or discard: the changelog records of the transaction. A value is a
        pydantic model (a dispatch) or a JSON-ready dict (a unit status)."""
        return [(_PREFIX[table] + key, value) for (table, key), value in self._pending.items()]

    def apply_writes(self) -> None:
        """Make the state changes of the events handled since the last call visible.
        Call it only once they were committed (with their outputs) to Kafka."""
        for (table, key), value in self._pending.items():
            if value is None:
                self.store.pop(_PREFIX[table] + key, None)
            else:
                self.store[_PREFIX[table] + key] = value
        self._pending.clear()

    def discard_writes(self) -> None:
        """Forget the state changes not committed (their transaction was aborted), and
        the availability derived with them."""
        self._pending.clear()
        self.invalidate()

    def _guard(
        self,
        event: str,
        original: bytes,
        incident: Incident | None,
        handle: Any,
        failed: Any = None,
    ) -> Effects:
        """``handle()``; if it raises, the event's state changes are rolled back and the
        event is dead-lettered, an incident also sent to the command centre by hand."""
        self._journal = {}
        try:
            fx: Effects = handle()
            return fx
        except Exception as exc:
            log.exception("handling %s failed; rolled back, dead-lettered", event)
            for key, value in self._journal.items():
                if value is _ABSENT:
                    self._pending.pop(key, None)
                else:
                    self._pending[key] = value
            self.invalidate()
            fx = Effects(incident=incident)
            if incident is not None:
                for c in manual_dispatch(incident, self.plan):
                    fx.publish("callouts", c.radio_id, _with_area(c, incident.area or ""))
            letter = DeadLetter.for_bytes(
                original,
                topic={"incident": "incidents", "command": "commands"}.get(event, "area-events"),
                error=f"{type(exc).__name__}: {exc}",
                reason="engine_error",
            )
            fx.dead_letter(incident.area or "" if incident else "", letter)
            fx.notes.append("engine_error")
            if failed is not None:
                failed(fx, f"engine error ({type(exc).__name__}); dead-lettered")
            return fx

    def availability(self, area: str) -> Availability:
        if not self._built:
            self._rebuild()
        if self._frozen is None:
            self._frozen = (frozenset(self._unavailable), frozenset(self._offline))
        unavailable, offline = self._frozen
        return Availability(
            commitments=self._commitments.setdefault(area, {}),
            unavailable=unavailable,
            offline_radios=offline,
            observer_fixes=self._fixes,
            patrol_fixes=self._patrol_fixes,
        )

    def _rebuild(self) -> None:
        """Availability of every local area from the stores (after start or rebalance)."""
        self._unavailable, self._offline = set(), set()
        self._patrol_fixes = {}
        fixes: dict[str, Fix] = {}
        for unit_id, raw in self.entries("statuses"):
            status = UnitStatus.model_validate(raw)
            self._apply_status(unit_id, status, fixes)
        self._fixes = ObserverFixes(fixes)
        self._frozen = None
        self._commitments = {}
        self._due = {}
        for incident_id, value in self.entries("dispatches"):
            self._index_due(incident_id, value)
            if _status_of(value) not in _OPEN_VALUES:
                continue
            d = self._load_dispatch(incident_id)
            assert d is not None
            held = self._commitments.setdefault(d.incident.area or "", {})
            for zone in d.held_zones():
                held[zone] = Commitment(d.incident.id, d.incident.priority)
        self._built = True

    def _apply_status(self, unit_id: str, status: UnitStatus, fixes: dict[str, Fix]) -> None:
        for flag, into in (
            (status.available, self._unavailable),
            (status.radio_online, self._offline),
        ):
            if flag is False:
                into.add(unit_id)
            elif flag is True:
                into.discard(unit_id)
        if status.location is not None and self._is_observer(unit_id):
            fixes[unit_id] = Fix(status.location.lat, status.location.lon, status.at)
        elif status.location is not None:
            patrol = self._patrol_of(unit_id)
            held = self._patrol_fixes.get(patrol or "")
            if patrol is not None and (held is None or held.at <= status.at):
                self._patrol_fixes[patrol] = Fix(
                    status.location.lat, status.location.lon, status.at
                )

    def _patrol_of(self, unit_id: str) -> str | None:
        """The patrol base a position report is for: the base itself or a member."""
        for w in self.worlds.values():
            placed = w.registry.placed.get(unit_id)
            if placed is not None:
                return unit_id if placed.kind.value == "patrol_base" else None
            radio = w.registry.radios.get(unit_id)  # a handset's fix: its holder's
            member = w.registry.volunteers.get(radio.holder if radio else unit_id)
            if member is not None and member.group_id is not None:
                group = w.registry.placed.get(member.group_id)
                if group is not None and group.kind.value == "patrol_base":
                    return group.id
        return None

    def _index_due(self, incident_id: str, value: Dispatch | dict[str, Any]) -> None:
        """Where the incident is due next: its stage's ack deadline while it awaits a
        quorum, its prune a day after it ended, or nowhere. (Restored JSON is read as
        it is: a restore does not validate every ended incident.)"""
        status = _status_of(value)
        deadline: datetime | None
        if isinstance(value, Dispatch):
            deadline, ended = value.deadline, value.updated_at
        else:
            deadline = stored_deadline(value)
            ended = datetime.fromisoformat(value["updated_at"])
        if status in _AWAITING_VALUES and deadline is not None:
            self._due[incident_id] = ("tick", deadline)
        elif status not in _OPEN_VALUES:
            self._due[incident_id] = ("prune", ended + ENDED_KEEP)
        else:
            self._due.pop(incident_id, None)

    def _is_observer(self, unit_id: str) -> bool:
        return any(unit_id in w.registry.observers for w in self.worlds.values())

    def _commit(self, dispatch: Dispatch, zones: list[str]) -> None:
        if not self._built:
            self._rebuild()
        held = self._commitments.setdefault(dispatch.incident.area or "", {})
        for zone in zones:
            held[zone] = Commitment(dispatch.incident.id, dispatch.incident.priority)

    def _release(self, dispatch: Dispatch) -> None:
        if not self._built:
            self._rebuild()
        held = self._commitments.setdefault(dispatch.incident.area or "", {})
        for zone, c in list(held.items()):
            if c.incident_id == dispatch.incident.id:
                del held[zone]

    # --- incidents ----------------------------------------------------------------
    def on_incident(self, incident: Incident, now: datetime) -> Effects:
        """Decide a new incident (stage 0) at ``now`` (the worker's clock)."""
        return self._guard(
            "incident",
            incident.to_json_bytes(),
            incident,
            lambda: self._on_incident(incident, now),
        )

    def _on_incident(self, incident: Incident, now: datetime) -> Effects:
        fx = Effects(incident=incident)
        area = incident.area or ""
        world = self.worlds.get(area)
        if world is None:
            letter = DeadLetter.for_bytes(
                incident.to_json_bytes(),
                topic="incidents",
                error=f"no registry loaded for dispatch area {area!r}",
                reason="out_of_area",
            )
            fx.dead_letter(area, letter)
            return fx
        known = self._load_dispatch(incident.id)
        if known is not None:
            if _same_incident(known.incident, incident):
                fx.notes.append("duplicate")
                log.info(
                    "duplicate incident %s ignored", incident.id, extra={"incident_id": incident.id}
                )
            else:
                letter = DeadLetter.for_bytes(
                    incident.to_json_bytes(),
                    topic="incidents",
                    error=f"incident id {incident.id} is already used by another incident",
                    reason="duplicate_id",
                )
                fx.dead_letter(area, letter)
            return fx
        availability = self.availability(area)
        decision = decide(incident, world, availability, self.plan, now)
        opened = first_callout(incident, decision, world, self.plan, now)
        decision, dispatch = opened.decision, opened.dispatch
        for c in opened.callouts:
            fx.publish("callouts", c.radio_id, _with_area(c, area))
        fx.publish("decisions", incident.id, decision.to_model())
        fx.publish("incident-state", incident.id, dispatch.to_incident_state())
        fx.notes.append("decided")
        log.info(
            "decided %s: zone %s, %d groups called (%s)",
            incident.id,
            decision.zone.id if decision.zone else "none",
            len(decision.recipients),
            decision.response,
            extra={"incident_id": incident.id},
        )
        fx.latencies.append(
            ("raise_to_decision", max(0.0, (now - incident.raised_at).total_seconds()))
        )
        self._store(dispatch)
        self._commit(dispatch, [z.id for z in decision.zones])
        for other in decision.preempted:
            self._redecide_preempted(other, incident, [z.id for z in decision.zones], now, fx)
        return fx

    def _redecide_preempted(
        self, incident_id: str, by: Incident, zones: list[str], now: datetime, fx: Effects
    ) -> None:
        """``by`` took zone team(s) from ``incident_id``: that incident is decided again
        at once (the next available zone) and its timeline says why (issue 13, item 5)."""
        dispatch = self._load_dispatch(incident_id)
        if dispatch is None or dispatch.incident.area not in self.worlds:
            return
        area = dispatch.incident.area or ""
        outcome = on_preempted(
            dispatch, by, zones, self.worlds[area], self.availability(area), self.plan, now
        )
        if outcome.decision is None:
            return
        for c in outcome.callouts:
            fx.publish("callouts", c.radio_id, _with_area(c, area))
        fx.publish("decisions", incident_id, outcome.dispatch.decisions[-1])
        fx.publish("incident-state", incident_id, outcome.dispatch.to_incident_state())
        self._store(outcome.dispatch)
        self._commit(outcome.dispatch, [z.id for z in outcome.decision.zones])
        fx.notes.append("preempted")

    # --- area events --------------------------------------------------------------
    def on_event(self, event: AreaEvent, now: datetime) -> Effects:
        """Apply one area event at ``now`` (the worker's clock; acks and unit statuses
        keep their own time, for the latency figures)."""
        if event.kind == "incident" and event.incident is not None:
            return self.on_incident(event.incident, now)
        return self._guard("area event", event.to_bytes(), None, lambda: self._on_event(event, now))

    def _on_event(self, event: AreaEvent, now: datetime) -> Effects:
        if event.kind == "ack" and event.ack is not None:
            return self._on_ack(event.ack, now)
        if event.kind == "status" and event.status is not None:
            return self._on_status(event.status)
        if event.kind == "tick" and event.incident_id:
            return self._on_tick(event.incident_id, now)
        if event.kind in ("cancel", "close") and event.incident_id:
            return self._on_end(event, now)
        if event.kind == "prune" and event.incident_id:
            return self._on_prune(event.incident_id, now)
        fx = Effects()
        fx.notes.append("ignored_event")
        return fx

    def _on_ack(self, ack: Ack, now: datetime) -> Effects:
        fx = Effects()
        dispatch = self._load_dispatch(ack.incident_id)
        if dispatch is None:
            letter = DeadLetter.for_bytes(
                ack.to_json_bytes(),
                topic="acks",
                error=f"ack for unknown incident {ack.incident_id}",
                reason="unknown_incident",
            )
            fx.dead_letter(ack.incident_id, letter)
            fx.notes.append("unknown_incident")
            return fx
        fx.incident = dispatch.incident
        before = dispatch.status
        area = dispatch.incident.area or ""
        world = self.worlds.get(area)
        if world is None:
            fx.notes.append("ack_ignored")
            return fx
        outcome = on_reply(dispatch, ack, world, self.availability(area), self.plan, now)
        updated = outcome.dispatch
        for c in outcome.callouts:  # a substitute, or the next stage at once
            fx.publish("callouts", c.radio_id, _with_area(c, area))
        if outcome.decision is not None:
            fx.publish("decisions", dispatch.incident.id, updated.decisions[-1])
            self._commit(updated, [z.id for z in outcome.decision.zones])
            fx.notes.append(outcome.effect)  # 'substituted' or 'escalated'
        elif outcome.effect == "unanswered":
            self._release(updated)
            fx.notes.append("unanswered")
        if before is Lifecycle.UNANSWERED and updated.status in OPEN:  # a late accept
            self._commit(updated, updated.zones())
        if outcome.effect == "ignored":
            fx.notes.append("ack_ignored")
        elif outcome.effect in ("quorum_met", "on_scene"):
            fx.notes.append(outcome.effect)
        raised = dispatch.incident.raised_at
        if ack.kind.value in _REPLIES and not _had_reply(dispatch):
            fx.latencies.append(("raise_to_first_ack", (ack.at - raised).total_seconds()))
            stage_at = dispatch.decisions[-1].decided_at if dispatch.decisions else raised
            fx.latencies.append(("callout_to_ack", (ack.at - stage_at).total_seconds()))
        if outcome.effect == "quorum_met":
            fx.latencies.append(("raise_to_quorum", (ack.at - raised).total_seconds()))
        if updated.status is Lifecycle.ON_SCENE and before is not Lifecycle.ON_SCENE:
            fx.latencies.append(("raise_to_on_scene", (ack.at - raised).total_seconds()))
        if updated != dispatch:
            fx.publish("incident-state", dispatch.incident.id, updated.to_incident_state())
            self._store(updated)
        return fx

    def _on_status(self, status: UnitStatus) -> Effects:
        fx = Effects()
        merged = self._read("statuses", status.unit_id) or {}
        update = status.model_dump(mode="json", exclude_none=True)
        self._put(("statuses", status.unit_id), {**merged, **update})
        if self._built:  # keep the derived sets current without a rebuild
            fixes: dict[str, Fix] = {}
            self._apply_status(status.unit_id, status, fixes)
            for unit_id, fix in fixes.items():
                self._fixes.update(unit_id, fix)
            self._frozen = None
        fx.notes.append("status")
        return fx

    def _on_tick(self, incident_id: str, at: datetime) -> Effects:
        fx = Effects()
        dispatch = self._load_dispatch(incident_id)
        if dispatch is None or dispatch.incident.area not in self.worlds:
            return fx
        fx.incident = dispatch.incident
        world = self.worlds[dispatch.incident.area]
        availability = self.availability(dispatch.incident.area)
        outcome = on_timeout(dispatch, world, availability, self.plan, at)
        if outcome.effect == "stale":
            self._due.pop(incident_id, None)  # asked again only when its state changes
            return fx
        updated = outcome.dispatch
        incident = dispatch.incident
        for c in outcome.callouts:  # ladder steps due, and a new stage's call-outs
            fx.publish("callouts", c.radio_id, _with_area(c, incident.area or ""))
        if outcome.decision is not None:
            fx.publish("decisions", incident.id, updated.decisions[-1])
            self._commit(updated, [z.id for z in outcome.decision.zones])
            fx.notes.append("escalated")
        elif outcome.effect == "ladder":
            fx.notes.append("ladder")
        else:
            self._release(updated)
            fx.notes.append("unanswered")
        fx.publish("incident-state", incident_id, updated.to_incident_state())
        self._store(updated)
        return fx

    def _on_end(self, event: AreaEvent, now: datetime) -> Effects:
        fx = Effects()
        assert event.incident_id is not None
        dispatch = self._load_dispatch(event.incident_id)
        if dispatch is None or dispatch.incident.area not in self.worlds:
            fx.notes.append("unknown_incident")
            return fx
        fx.incident = dispatch.incident
        world = self.worlds[dispatch.incident.area]
        end = on_cancel if event.kind == "cancel" else on_close
        outcome = end(
            dispatch, world, self.plan, now, event.who or "operator", event.why or event.kind
        )
        if outcome.dispatch is dispatch:
            return fx  # already ended
        for c in outcome.stand_down:
            fx.publish("callouts", c.radio_id, _with_area(c, dispatch.incident.area or ""))
        fx.publish("incident-state", dispatch.incident.id, outcome.dispatch.to_incident_state())
        self._store(outcome.dispatch)
        self._release(outcome.dispatch)
        fx.notes.append("cancelled" if event.kind == "cancel" else "closed")
        return fx

    def _on_prune(self, incident_id: str, at: datetime) -> Effects:
        fx = Effects()
        dispatch = self._load_dispatch(incident_id)
        if (
            dispatch is not None
            and dispatch.status not in OPEN
            and at - dispatch.updated_at >= ENDED_KEEP
        ):
            self._put(("dispatches", incident_id), None)
            self._due.pop(incident_id, None)
            fx.notes.append("pruned")
        return fx

    # --- operator commands --------------------------------------------------------------
    def on_command(self, command: Command, now: datetime) -> Effects:
        """Apply or refuse an operator's command at ``now``; either way its outcome goes
        to ``audit`` (the API answers the operator when it reads it)."""

        def failed(fx: Effects, reason: str) -> None:
            _result(fx, command, "refused", reason, now)

        return self._guard(
            "command",
            command.to_json_bytes(),
            None,
            lambda: self._on_command(command, now),
            failed,
        )

    def _on_command(self, command: Command, now: datetime) -> Effects:
        fx = Effects()
        dispatch = self._load_dispatch(command.incident_id)
        world = self.worlds.get(command.area)
        if dispatch is None or world is None or dispatch.incident.area != command.area:
            _result(fx, command, "refused", f"unknown incident {command.incident_id}", now)
            fx.notes.append("command_refused")
            return fx
        fx.incident = dispatch.incident
        outline = area_by_id(command.area, self.areas)
        outcome = apply_command(
            dispatch,
            command,
            world,
            self.availability(command.area),
            self.plan,
            now,
            outline.contains if outline is not None else (lambda _lat, _lon: True),
        )
        if not outcome.applied:
            _result(fx, command, "refused", outcome.reason, now)
            fx.notes.append("command_refused")
            return fx
        self._apply_outcome(fx, dispatch, outcome)
        _result(fx, command, "applied", outcome.reason, now, outcome.dispatch.stage)
        fx.notes.append(f"command:{command.action}")
        return fx

    def _apply_outcome(self, fx: Effects, before: Dispatch, outcome: CommandOutcome) -> None:
        updated = outcome.dispatch
        area = updated.incident.area or ""
        for c in outcome.callouts:
            fx.publish("callouts", c.radio_id, _with_area(c, area))
        if outcome.decision is not None:
            fx.publish("decisions", updated.incident.id, outcome.decision.to_model())
        fx.publish("incident-state", updated.incident.id, updated.to_incident_state())
        self._store(updated)
        if outcome.release or updated.status not in OPEN:
            self._release(updated)
        if updated.status in OPEN and outcome.commit:
            self._commit(updated, outcome.commit)

    # --- for the timer ------------------------------------------------------------
    def due(self, now: datetime) -> list[tuple[str, str, str]]:
        """(kind, area, incident id) of local incidents whose deadline passed or that
        ended long enough ago to prune, from the deadline index (no scan of the store)."""
        if not self._built:
            self._rebuild()
        out = []
        for incident_id, (kind, when) in self._due.items():
            if when <= now:
                dispatch = self._load_dispatch(incident_id)
                if dispatch is not None:
                    out.append((kind, dispatch.incident.area or "", incident_id))
        return out

    def open_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for _, value in self.entries("dispatches"):
            state = str(_status_of(value))
            counts[state] = counts.get(state, 0) + 1
        return counts


def _areas(worlds: dict[str, World]) -> list[Area]:
    """The dispatch areas of the loaded registries (each registry's outline)."""
    return [w.registry.outline for w in worlds.values() if w.registry.outline is not None]


def _result(
    fx: Effects,
    command: Command,
    result: Literal["applied", "refused"],
    reason: str,
    now: datetime,
    stage: int | None = None,
) -> None:
    record = CommandResult(
        command_id=command.command_id,
        action=command.action,
        incident_id=command.incident_id,
        area=command.area,
        actor=command.actor,
        role=command.role,
        result=result,
        reason=reason,
        at=now,
        stage=stage,
    )
    fx.publish("audit", command.incident_id, record)


def _with_area(callout: CallOut, area: str) -> CallOut:
    """Call-outs carry the area so the gateway can route replies back to its owner."""
    return callout.model_copy(update={"area": area})


def _same_incident(stored: Incident, incident: Incident) -> bool:
    """The same incident sent again (the substance agrees; times and extras may not)."""
    fields = ("type", "priority", "location", "area", "address", "description")
    return all(getattr(stored, f) == getattr(incident, f) for f in fields)


def _status_of(value: Dispatch | dict[str, Any]) -> str | None:
    if isinstance(value, Dispatch):
        return value.status.value
    status = value.get("status")
    return None if status is None else str(status)


def _had_reply(dispatch: Dispatch) -> bool:
    return any(a.kind.value in _REPLIES for a in dispatch.acks)


_REPLIES = frozenset({"accept", "decline", "on_scene"})
"""Ack kinds that are a person's reply (the others are delivery reports)."""
