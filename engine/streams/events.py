"""The worker's internal topic ``area-events``: everything that changes an area's state
besides a correctly keyed incident, keyed by dispatch area and co-partitioned with
``incidents`` (same partition count, same key), so faust assigns partition p of both to
the same worker and one actor handles an area's events in order.

Envelope (JSON): ``{"kind": ..., "at": RFC 3339, ...}`` with kinds

- ``incident``: an incident that arrived keyed otherwise (forwarded once, counted)
- ``ack``: a handset reply or delivery report, routed here from ``acks``
- ``status``: a unit-status change, routed here from ``unit-status``
- ``cancel`` / ``close``: an operator ended the incident
- ``tick`` / ``prune``: never on the topic; the worker makes them itself from its own
  clock (an ack deadline passed; a long-ended incident leaves the state) and applies
  them to the core like any other event

The ``at`` of an operator's event must carry a UTC offset; the worker applies it at its
own clock time, so a wrong clock on the sending side cannot move a deadline.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from engine.models import Ack, Incident, UnitStatus

EventKind = Literal["incident", "ack", "status", "tick", "cancel", "close", "prune"]


class AreaEvent(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: EventKind
    at: datetime
    area: str = Field(max_length=64)
    incident: Incident | None = None
    ack: Ack | None = None
    status: UnitStatus | None = None
    incident_id: str | None = Field(default=None, max_length=64)
    who: str | None = Field(default=None, max_length=100)
    why: str | None = Field(default=None, max_length=500)
    source: dict[str, Any] | None = Field(default=None, max_length=8)
    """where a forwarded record came from: topic, partition, offset, key"""

    @field_validator("at")
    @classmethod
    def _aware(cls, v: datetime) -> datetime:
        if v.tzinfo is None or v.utcoffset() is None:
            raise ValueError("at needs a UTC offset (RFC 3339)")
        return v

    def to_bytes(self) -> bytes:
        return self.model_dump_json(exclude_none=True).encode("utf-8")

    @classmethod
    def from_bytes(cls, data: bytes) -> AreaEvent:
        return cls.model_validate(json.loads(data))
