"""The worker's internal topic ``area-events``: everything that changes an area's state
besides a correctly keyed incident, keyed by dispatch area and co-partitioned with
``incidents`` (same partition count, same key), so faust assigns partition p of both to
the same worker and one actor handles an area's events in order.

Envelope (JSON): ``{"kind": ..., "at": RFC 3339, ...}`` with kinds

- ``incident``: an incident that arrived keyed otherwise (forwarded once, counted)
- ``ack``: a handset reply or delivery report, routed here from ``acks``
- ``status``: a unit-status change, routed here from ``unit-status``
- ``tick``: an ack deadline passed (from the worker's timer)
- ``cancel`` / ``close``: an operator ended the incident
- ``prune``: drop a long-ended incident from the state table
- ``sweep``: no area (``area`` is empty); sent by the worker's timer to partition p when
  partition p of ``incidents`` or ``area-events`` holds records past the worker's
  recorded position, so the agent checks that faust has not skipped them
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from engine.models import Ack, Incident, UnitStatus

EventKind = Literal["incident", "ack", "status", "tick", "cancel", "close", "prune", "sweep"]


class AreaEvent(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: EventKind
    at: datetime
    area: str
    incident: Incident | None = None
    ack: Ack | None = None
    status: UnitStatus | None = None
    incident_id: str | None = None
    who: str | None = None
    why: str | None = None
    source: dict[str, Any] | None = None
    """where a forwarded record came from: topic, partition, offset, key"""

    def to_bytes(self) -> bytes:
        return self.model_dump_json(exclude_none=True).encode("utf-8")

    @classmethod
    def from_bytes(cls, data: bytes) -> AreaEvent:
        return cls.model_validate(json.loads(data))
