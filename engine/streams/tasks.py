"""The worker's tasks: one per input partition it owns, each with its own transactional
producer (transactional id = group, topic, partition), so that whoever owns the
partition next fences this one.

- :class:`AreaTask`: partition p of ``incidents``, ``engine-area-events`` and
  ``commands`` (assigned together), the areas whose key hashes to p: an
  :class:`~engine.streams.core.AreaCore` over the state restored from partition p of
  ``area-state``, deadlines included.
- :class:`RouteTask`: partition q of ``acks`` or ``unit-status``: stateless; routes each
  valid record to its area's partition of ``engine-area-events``.

A task turns a batch into a :class:`~engine.streams.checkpoint.Checkpoint` and the
:class:`~engine.streams.core.Effects` to count once it committed; it never raises for a
record (bad ones become dead letters).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.partitioner import DefaultPartitioner
from aiokafka.structs import ConsumerRecord
from pydantic import BaseModel

from engine.config import Settings
from engine.kafka.connection import transactional_producer_kwargs
from engine.models import Ack, Command, DeadLetter, UnitStatus
from engine.rules.plan import LoadedPlan
from engine.rules.world import World
from engine.streams.checkpoint import Checkpoint
from engine.streams.core import AreaCore, Effects, Out
from engine.streams.events import AreaEvent
from engine.streams.intake import Origin, not_ahead, parse, parse_incident

log = logging.getLogger(__name__)

_partitioner = DefaultPartitioner()


def area_partition(area: str, partitions: int) -> int:
    """The partition of ``incidents`` (and its co-partitioned topics) for an area key."""
    every = list(range(partitions))
    return int(_partitioner(area.encode("utf-8"), every, every))


def origin_of(r: ConsumerRecord[bytes, bytes]) -> Origin:
    return Origin(r.topic, r.partition, r.offset, int(r.timestamp), r.key)


def _dead(origin: Origin, letter: DeadLetter) -> Effects:
    fx = Effects()
    fx.dead_letter(origin.key_text, letter)
    return fx


def _forward(event: AreaEvent, note: str) -> Effects:
    fx = Effects(incident=event.incident)
    fx.out.append(Out("area-events", event.area, event.to_bytes()))
    fx.notes.append(note)
    return fx


@dataclass(eq=False)
class Task:
    """What every task has: its input partitions and its transactional producer."""

    settings: Settings
    name: str
    """the transactional id"""
    inputs: set[TopicPartition]
    producer: AIOKafkaProducer | None = field(default=None, repr=False)

    async def open(self) -> None:
        """Start the producer: InitProducerId fences every earlier producer with this
        transactional id and aborts its open transaction."""
        producer = AIOKafkaProducer(**transactional_producer_kwargs(self.settings, self.name))
        try:
            await producer.start()
        except BaseException:
            await producer.stop()
            raise
        self.producer = producer

    async def close(self) -> None:
        producer, self.producer = self.producer, None
        if producer is not None:
            try:
                await producer.stop()
            except Exception as exc:  # a fenced or broken producer: nothing to keep
                log.info("%s: producer stopped with %s", self.name, type(exc).__name__)

    def topic(self, logical: str) -> str:
        return self.settings.topic(logical)

    def checkpoint(self, effects: Iterable[Effects]) -> Checkpoint:
        cp = Checkpoint()
        for fx in effects:
            for o in fx.out:
                cp.send(self.topic(o.topic), o.key, o.value)
        return cp

    def handle(
        self, records: list[ConsumerRecord[bytes, bytes]], now: datetime, tick: bool
    ) -> tuple[Checkpoint, list[Effects]]:
        raise NotImplementedError

    def committed(self) -> None:
        """The last checkpoint committed."""

    def aborted(self) -> None:
        """The last checkpoint was not committed."""


@dataclass(eq=False)
class AreaTask(Task):
    partition: int = 0
    core: AreaCore | None = None

    def restore(self, worlds: dict[str, World], plan: LoadedPlan, state: dict[str, Any]) -> None:
        self.core = AreaCore(worlds, plan, state)

    def handle(
        self, records: list[ConsumerRecord[bytes, bytes]], now: datetime, tick: bool
    ) -> tuple[Checkpoint, list[Effects]]:
        core = self.core
        assert core is not None, "restore() first"
        effects: list[Effects] = []
        offsets: list[tuple[TopicPartition, int]] = []
        incidents, commands = self.topic("incidents"), self.topic("commands")
        for r in records:
            origin = origin_of(r)
            if r.topic == incidents:
                effects.append(self._incident(core, origin, r.value, now))
            elif r.topic == commands:
                effects.append(self._command(core, origin, r.value, now))
            else:
                effects.append(self._event(core, origin, r.value, now))
            offsets.append((TopicPartition(r.topic, r.partition), r.offset))
        if tick:
            for kind, area, incident_id in core.due(now):
                event = AreaEvent(kind=kind, at=now, area=area, incident_id=incident_id)
                effects.append(core.on_event(event, now))
        cp = self.checkpoint(effects)
        for tp, offset in offsets:
            cp.consumed(tp, offset)
        changelog = self.topic("area-state")
        for key, value in core.pending_writes():
            cp.send(changelog, key, _state_bytes(value), partition=self.partition)
        return cp, effects

    def _incident(
        self, core: AreaCore, origin: Origin, value: bytes | None, now: datetime
    ) -> Effects:
        parsed = parse_incident(value, origin, core.areas, now)
        if isinstance(parsed, DeadLetter):
            return _dead(origin, parsed)
        assert parsed.area is not None
        home = area_partition(parsed.area, self.settings.partitions_of("incidents"))
        if origin.key != parsed.area.encode() or origin.partition != home:
            reason = "unkeyed" if origin.key is None else "other_key"
            event = AreaEvent(
                kind="incident", at=now, area=parsed.area, incident=parsed, source=_source(origin)
            )
            return _forward(event, f"forwarded:{reason}")
        fx = core.on_incident(parsed, now)
        fx.notes.append("incident")
        return fx

    def _command(
        self, core: AreaCore, origin: Origin, value: bytes | None, now: datetime
    ) -> Effects:
        command = parse(Command, value, origin)
        if not isinstance(command, DeadLetter):
            command = not_ahead(command, command.at, "at", now, origin, value)
        if isinstance(command, DeadLetter):
            return _dead(origin, command)
        return core.on_command(command, now)

    def _event(self, core: AreaCore, origin: Origin, value: bytes | None, now: datetime) -> Effects:
        event = parse(AreaEvent, value, origin)
        if isinstance(event, DeadLetter):
            return _dead(origin, event)
        if event.kind in ("tick", "prune"):  # the worker's own clock decides these
            return _dead(origin, origin.dead_letter(value, f"{event.kind} on the topic", "invalid"))
        if event.kind == "incident" and event.incident is not None:
            at = event.incident.raised_at
            event = not_ahead(event, at, "raised_at", now, origin, value)
            if isinstance(event, DeadLetter):
                return _dead(origin, event)
        fx = core.on_event(event, now)
        if event.kind == "incident":
            fx.notes.append("incident")
        return fx

    def committed(self) -> None:
        if self.core is not None:
            self.core.apply_writes()

    def aborted(self) -> None:
        if self.core is not None:
            self.core.discard_writes()


@dataclass(eq=False)
class RouteTask(Task):
    worlds: dict[str, World] = field(default_factory=dict)

    def handle(
        self, records: list[ConsumerRecord[bytes, bytes]], now: datetime, tick: bool
    ) -> tuple[Checkpoint, list[Effects]]:
        effects: list[Effects] = []
        acks = self.topic("acks")
        for r in records:
            origin = origin_of(r)
            if r.topic == acks:
                effects.append(self._ack(origin, r.value, now))
            else:
                effects.extend(self._status(origin, r.value, now))
        cp = self.checkpoint(effects)
        for r in records:
            cp.consumed(TopicPartition(r.topic, r.partition), r.offset)
        return cp, effects

    def _ack(self, origin: Origin, value: bytes | None, now: datetime) -> Effects:
        ack = parse(Ack, value, origin)
        if not isinstance(ack, DeadLetter):
            ack = not_ahead(ack, ack.at, "at", now, origin, value)
        if isinstance(ack, DeadLetter):
            return _dead(origin, ack)
        area = self._area_of_ack(ack)
        if area is None:
            letter = origin.dead_letter(
                value,
                "cannot tell the dispatch area of this ack (no known 'area' field and "
                "several areas loaded)",
                "unknown_incident",
            )
            return _dead(origin, letter)
        return _forward(
            AreaEvent(kind="ack", at=ack.at, area=area, ack=ack), f"ack:{ack.kind.value}"
        )

    def _status(self, origin: Origin, value: bytes | None, now: datetime) -> list[Effects]:
        status = parse(UnitStatus, value, origin)
        if not isinstance(status, DeadLetter):
            status = not_ahead(status, status.at, "at", now, origin, value)
        if isinstance(status, DeadLetter):
            return [_dead(origin, status)]
        areas = [a for a, w in self.worlds.items() if _knows(w, status.unit_id)]
        if not areas:
            log.info("unit-status for %s: not in any loaded registry, ignored", status.unit_id)
            return []
        return [
            _forward(AreaEvent(kind="status", at=status.at, area=a, status=status), "status")
            for a in areas
        ]

    def _area_of_ack(self, ack: Ack) -> str | None:
        """The ack's area: its own ``area`` field (our gateway copies it from the
        call-out) when it names a loaded area, else the only area loaded."""
        area = getattr(ack, "area", None)
        if isinstance(area, str) and area in self.worlds:
            return area
        if len(self.worlds) == 1:
            return next(iter(self.worlds))
        return None


def _state_bytes(value: Any) -> bytes | None:
    """A changelog value: JSON, or None (a tombstone) for a deletion."""
    if value is None:
        return None
    if isinstance(value, BaseModel):
        return value.model_dump_json().encode("utf-8")
    return json.dumps(value, separators=(",", ":")).encode("utf-8")


def _knows(world: World, unit_id: str) -> bool:
    reg = world.registry
    return unit_id in reg.placed or unit_id in reg.radios or unit_id in reg.volunteers


def _source(origin: Origin) -> dict[str, Any]:
    return {
        "topic": origin.topic,
        "partition": origin.partition,
        "offset": origin.offset,
        "key": None if origin.key is None else origin.key.decode("utf-8", "replace")[:64],
    }


__all__ = ["AreaTask", "RouteTask", "Task", "area_partition"]
