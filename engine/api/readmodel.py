"""The API's read model: what the board, the incident page and the audit page show.

Rebuilt at every start from the topics (read committed, from the beginning):
``incident-state`` (compacted: each incident's latest state), ``decisions``,
``callouts``, ``acks``, ``unit-status`` and ``audit``. The state itself is pure
(:class:`ReadModel.apply` takes one record); :class:`Follower` is the Kafka adapter.
Memory is bounded: at most :data:`MAX_INCIDENTS` incidents (the oldest ended ones go
first), :data:`MAX_PER_INCIDENT` call-outs and acks each per incident, and
:data:`MAX_AUDIT` audit entries.

Every change is offered to the live subscribers (server-sent events); a subscriber too
slow to keep up is dropped (its client reconnects and reads the state again) rather
than buffered without bound.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from engine import clock as engine_clock
from engine.broadcast.progress import BroadcastBook
from engine.config import Settings
from engine.errors import KafkaUnavailable
from engine.kafka.connection import consumer_kwargs, topic_partitions

log = logging.getLogger(__name__)

TOPICS = (
    "incident-state", "decisions", "callouts", "acks", "unit-status", "audit", "broadcasts",
)  # fmt: skip
MAX_INCIDENTS = 20_000
MAX_PER_INCIDENT = 500
MAX_AUDIT = 50_000
SUBSCRIBER_QUEUE = 1_000
FETCH_WAIT_MS = 20
ENDED = frozenset({"closed", "cancelled", "unanswered"})
REPLIES = frozenset({"accept", "decline", "on_scene"})


@dataclass
class IncidentView:
    id: str
    state: dict[str, Any] | None = None
    decisions: list[dict[str, Any]] = field(default_factory=list)
    callouts: list[dict[str, Any]] = field(default_factory=list)
    acks: list[dict[str, Any]] = field(default_factory=list)
    audit: list[dict[str, Any]] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        s = self.state or {}
        incident = s.get("incident") or {}
        last = self.decisions[-1] if self.decisions else {}
        delivered = {a["radio_id"] for a in self.acks if a.get("kind") == "delivered"}
        return {
            "id": self.id,
            "state": s.get("state"),
            "type": incident.get("type"),
            "priority": incident.get("priority"),
            "address": incident.get("address"),
            "location": incident.get("location"),
            "area": incident.get("area"),
            "raised_at": incident.get("raised_at"),
            "updated_at": s.get("updated_at"),
            "stage": s.get("stage", 0),
            "zone_id": s.get("zone_id"),
            "ack_deadline": last.get("ack_deadline"),
            "quorum": s.get("quorum"),
            "accepted": s.get("accepted", []),
            "on_scene": s.get("on_scene_units", []),
            "called": len(self.callouts),
            "delivered": len(delivered),
        }

    def detail(self) -> dict[str, Any]:
        return {
            **self.summary(),
            "incident": (self.state or {}).get("incident"),
            "timeline": (self.state or {}).get("timeline", []),
            "decisions": self.decisions,
            "callouts": self.callouts,
            "acks": self.acks,
            "audit": self.audit,
            "grid": self.grid(),
        }

    def grid(self) -> list[dict[str, Any]]:
        """The 1+10 grid: each group called (zone team, linked units, others) with what
        its people did: paged, sent (the module took it), failed (not delivered),
        delivered, accepted, declined, on scene."""
        s = self.state or {}
        accepted = set(s.get("accepted", []))
        on_scene = set(s.get("on_scene_units", []))
        by_radio: dict[str, set[str]] = {}
        for a in self.acks:
            by_radio.setdefault(a["radio_id"], set()).add(a.get("kind", ""))
        declined = {
            r["id"]
            for d in self.decisions
            for r in d.get("recipients", [])
            if any("decline" in by_radio.get(c, set()) for c in r.get("contacts", []))
        }
        rows: dict[str, dict[str, Any]] = {}
        for d in self.decisions:
            for r in d.get("recipients", []):
                if r["id"] in rows:
                    continue
                contacts = r.get("contacts", [])
                kinds = (
                    set().union(*(by_radio.get(c, set()) for c in contacts)) if contacts else set()
                )
                if r["id"] in on_scene:
                    status = "on_scene"
                elif r["id"] in accepted:
                    status = "accepted"
                elif r["id"] in declined:
                    status = "declined"
                elif "delivered" in kinds:
                    status = "delivered"
                elif "failed" in kinds:
                    status = "failed"
                elif "sent" in kinds:
                    status = "sent"
                else:
                    status = "paged"
                rows[r["id"]] = {
                    "id": r["id"],
                    "kind": r.get("kind"),
                    "name_zh": r.get("name_zh"),
                    "distance_m": r.get("distance_m"),
                    "stage": d.get("stage", 0),
                    "status": status,
                }
        return list(rows.values())


class ReadModel:
    def __init__(self) -> None:
        self.incidents: OrderedDict[str, IncidentView] = OrderedDict()
        self.units: dict[str, dict[str, Any]] = {}
        self.audit: deque[dict[str, Any]] = deque(maxlen=MAX_AUDIT)
        self.subscribers: set[asyncio.Queue[dict[str, Any] | None]] = set()
        self.command_waiters: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self.records = 0
        self.bad_records = 0
        self.broadcasts = BroadcastBook()

    # --- reading ----------------------------------------------------------------------
    def view(self, incident_id: str) -> IncidentView | None:
        return self.incidents.get(incident_id)

    def listing(self, status: str = "open", since: str | None = None) -> list[dict[str, Any]]:
        out = []
        for v in self.incidents.values():
            if v.state is None:
                continue
            s = v.summary()
            if status == "open" and s["state"] in ENDED:
                continue
            if since and (s["updated_at"] or "") < since:
                continue
            out.append(s)
        out.sort(key=lambda s: (s["priority"] or "P9", s["raised_at"] or ""))
        return out

    def audit_entries(
        self, actor: str | None, incident: str | None, since: str | None, limit: int
    ) -> list[dict[str, Any]]:
        out = []
        for e in reversed(self.audit):
            if actor and e.get("actor") != actor:
                continue
            if incident and e.get("incident_id") != incident:
                continue
            if since and (e.get("at") or "") < since:
                break  # newest first: the rest are older
            out.append(e)
            if len(out) >= limit:
                break
        return out

    # --- live subscribers -------------------------------------------------------------
    def subscribe(self) -> asyncio.Queue[dict[str, Any] | None]:
        q: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue(maxsize=SUBSCRIBER_QUEUE)
        self.subscribers.add(q)
        return q

    def unsubscribe(self, q: asyncio.Queue[dict[str, Any] | None]) -> None:
        self.subscribers.discard(q)

    def _publish(self, event: dict[str, Any]) -> None:
        for q in list(self.subscribers):
            try:
                q.put_nowait(event)
            except asyncio.QueueFull:  # too slow: dropped, its client reconnects
                self.subscribers.discard(q)
                with contextlib.suppress(asyncio.QueueEmpty):
                    q.get_nowait()
                q.put_nowait(None)

    # --- applying records -------------------------------------------------------------
    def apply(self, logical: str, value: bytes | None) -> None:
        """One record of a read topic. A record that is not what the topic holds is
        counted and skipped: the board must keep up whatever one producer wrote."""
        self.records += 1
        if value is None:
            return
        try:
            doc = json.loads(value)
            if not isinstance(doc, dict):
                raise ValueError("not an object")
            _APPLY[logical](self, doc)
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            self.bad_records += 1
            log.warning("read model: %s record skipped: %s", logical, exc)

    def _incident(self, incident_id: str) -> IncidentView:
        view = self.incidents.get(incident_id)
        if view is None:
            view = self.incidents[incident_id] = IncidentView(str(incident_id)[:64])
            if len(self.incidents) > MAX_INCIDENTS:
                self._evict()
        return view

    def _evict(self) -> None:
        ended = next(
            (k for k, v in self.incidents.items() if (v.state or {}).get("state") in ENDED),
            None,
        )
        self.incidents.pop(ended if ended is not None else next(iter(self.incidents)))

    def _on_state(self, doc: dict[str, Any]) -> None:
        view = self._incident(doc["incident_id"])
        view.state = doc
        self._publish({"type": "incident", "incident": view.summary()})

    def _on_decision(self, doc: dict[str, Any]) -> None:
        view = self._incident(doc["incident_id"])
        view.decisions.append(doc)
        self._entry(
            {
                "at": doc.get("decided_at"),
                "kind": "decision",
                "actor": "engine",
                "incident_id": view.id,
                "what": (doc.get("reasons") or [""])[0],
                "stage": doc.get("stage"),
                "zone": (doc.get("zone") or {}).get("id"),
            }
        )

    def _on_callout(self, doc: dict[str, Any]) -> None:
        view = self._incident(doc["incident_id"])
        if len(view.callouts) < MAX_PER_INCIDENT:
            view.callouts.append(
                {
                    k: doc.get(k)
                    for k in (
                        "radio_id",
                        "stage",
                        "channel",
                        "group",
                        "kind",
                        "idempotency_key",
                        "stand_down",
                    )
                }
            )

    def _on_ack(self, doc: dict[str, Any]) -> None:
        view = self._incident(doc["incident_id"])
        if len(view.acks) < MAX_PER_INCIDENT:
            view.acks.append({k: doc.get(k) for k in ("radio_id", "kind", "at", "stage", "note")})
        if doc.get("kind") in REPLIES:  # not the module's sent/delivered/failed reports
            self._entry(
                {
                    "at": doc.get("at"),
                    "kind": "reply_accepted",
                    "actor": doc.get("radio_id"),
                    "incident_id": view.id,
                    "what": doc.get("kind"),
                }
            )
        self._publish({"type": "ack", "incident_id": view.id, "ack": view.acks[-1:]})

    def _on_status(self, doc: dict[str, Any]) -> None:
        unit = str(doc["unit_id"])[:64]
        merged = {**self.units.get(unit, {}), **{k: v for k, v in doc.items() if v is not None}}
        self.units[unit] = merged
        source = str(doc.get("source") or "")
        if source.startswith("operator:"):
            self._entry(
                {
                    "at": doc.get("at"),
                    "kind": "unit_status",
                    "actor": source.removeprefix("operator:"),
                    "incident_id": None,
                    "what": f"{unit} available={doc.get('available')} ({doc.get('reason')})",
                }
            )
        self._publish({"type": "unit", "unit": {"id": unit, **merged}})

    def _on_broadcast(self, doc: dict[str, Any]) -> None:
        """Broadcasts' notices, cancels, per-message reports and replies (issue 17)."""
        progress = self.broadcasts.apply(doc)
        if progress is None:
            if doc.get("kind") not in ("report", "reply"):  # a report of one dropped is fine
                raise ValueError("not a broadcast record")
            return
        kind = doc.get("kind")
        # the live board hears of a notice, a cancel, a reply, and every 50th report
        if (
            kind != "report"
            or progress.finished % 50 == 0
            or progress.finished >= progress.messages
        ):
            self._publish(
                {"type": "broadcast", "broadcast": progress.summary(engine_clock.time_s())}
            )

    def _on_audit(self, doc: dict[str, Any]) -> None:
        if doc.get("kind") == "command":
            entry = {
                "at": doc.get("at"),
                "kind": "command",
                "actor": doc.get("actor"),
                "incident_id": doc.get("incident_id"),
                "action": doc.get("action"),
                "result": doc.get("result"),
                "what": doc.get("reason"),
                "command_id": doc.get("command_id"),
            }
            waiter = self.command_waiters.pop(str(doc.get("command_id")), None)
            if waiter is not None and not waiter.done():
                waiter.set_result(doc)
        else:
            entry = {
                "at": doc.get("at"),
                "kind": str(doc.get("kind") or "audit"),
                "actor": doc.get("radio_id") or "unknown",
                "incident_id": doc.get("incident_id"),
                "result": "refused",
                "what": doc.get("reason"),
            }
        view = self.incidents.get(str(entry["incident_id"]))
        if view is not None and len(view.audit) < MAX_PER_INCIDENT:
            view.audit.append(entry)
        self._entry(entry)

    def _entry(self, entry: dict[str, Any]) -> None:
        self.audit.append(entry)
        self._publish({"type": "audit", "entry": entry})


_APPLY: dict[str, Callable[[ReadModel, dict[str, Any]], None]] = {
    "incident-state": ReadModel._on_state,
    "decisions": ReadModel._on_decision,
    "callouts": ReadModel._on_callout,
    "acks": ReadModel._on_ack,
    "unit-status": ReadModel._on_status,
    "audit": ReadModel._on_audit,
    "broadcasts": ReadModel._on_broadcast,
}


class Follower:
    """Reads the topics into the model from the beginning, then follows them.
    ``caught_up`` once every partition reached the end it had at start."""

    def __init__(self, settings: Settings, model: ReadModel) -> None:
        self.settings = settings
        self.model = model
        self.caught_up = asyncio.Event()
        self.last_fetch = 0.0
        self._logical = {settings.topic(t): t for t in TOPICS}
        self._positions: dict[TopicPartition, int] = {}
        """where each partition was read to: a restart after an error goes on from here"""

    async def run(self) -> None:
        while True:
            try:
                await self._follow()
            except asyncio.CancelledError:
                raise
            except (KafkaError, KafkaUnavailable, OSError) as exc:
                log.warning("read model: Kafka error %s; starting again in 2 s", exc)
                await asyncio.sleep(2.0)

    async def _follow(self) -> None:
        found = await topic_partitions(self.settings, list(self._logical))
        tps = [TopicPartition(t, p) for t, ps in found.items() for p in sorted(ps)]
        # A short fetch wait: a read-committed fetch is not woken when a transaction
        # commits, so the broker's default 500 ms wait would be the board's latency.
        consumer = AIOKafkaConsumer(
            group_id=None, fetch_max_wait_ms=FETCH_WAIT_MS, **consumer_kwargs(self.settings)
        )
        await consumer.start()
        try:
            consumer.assign(tps)
            fresh = [tp for tp in tps if tp not in self._positions]
            if fresh:
                await consumer.seek_to_beginning(*fresh)
            for tp in tps:
                if tp in self._positions:
                    consumer.seek(tp, self._positions[tp])
            ends = await consumer.end_offsets(tps)
            pending = {tp for tp, end in ends.items() if end > self._positions.get(tp, 0)}
            while True:
                batch = await consumer.getmany(timeout_ms=500, max_records=5000)
                self.last_fetch = time.monotonic()
                for tp, records in batch.items():
                    logical = self._logical[tp.topic]
                    for r in records:
                        self.model.apply(logical, r.value)
                    if records:
                        self._positions[tp] = records[-1].offset + 1
                if pending:
                    for tp in list(pending):
                        if await consumer.position(tp) >= ends[tp]:
                            pending.discard(tp)
                if not pending and not self.caught_up.is_set():
                    log.info("read model caught up: %d records", self.model.records)
                    self.caught_up.set()
        finally:
            await consumer.stop()
