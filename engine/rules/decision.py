"""The rules' decision value: NamedTuples, cheap to build on the hot path,
converted to the wire model (:class:`engine.models.Decision`) only when published.

Attribute names follow the wire model (``zone.id``, ``zone.distance_m``,
``recipients[i].contacts``), so code reading history works with either.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, NamedTuple

from engine.models import Decision, IncidentType, Priority


class Pick(NamedTuple):
    """A chosen zone or unit and its great-circle distance to the scene in metres
    (full precision here; rounded to 0.1 m on the wire)."""

    id: str
    distance_m: float


class Called(NamedTuple):
    """One called group (a zone team, a unit, a door-front point...) and its people."""

    id: str
    kind: str
    reason: str
    distance_m: float | None
    name_zh: str
    contacts: tuple[str, ...]
    """addresses: a radio id, or ``sms:<volunteer id>``"""
    zone: str | None = None
    """for linked units: the zone or watch group they were called with"""
    posts: int | None = None
    """for school gates: the posts on duty"""

    @property
    def radio_id(self) -> str | None:
        return next((a for a in self.contacts if not a.startswith("sms:")), None)

    def to_wire(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "kind": self.kind,
            "reason": self.reason,
            "distance_m": None if self.distance_m is None else round(self.distance_m, 1),
            "radio_id": self.radio_id,
            "name_zh": self.name_zh,
            "contacts": list(self.contacts),
        }
        if self.zone is not None:
            out["zone"] = self.zone
        if self.posts is not None:
            out["posts"] = self.posts
        return out


class DispatchDecision(NamedTuple):
    """One stage's decision. A NamedTuple: immutable, and built in well under a
    microsecond on the hot path (a frozen dataclass of this size costs several)."""

    incident_id: str
    stage: int
    type: IncidentType
    priority: Priority
    area: str | None
    response: str
    zone: Pick | None
    zones: tuple[Pick, ...]
    units: tuple[Pick, ...]
    recipients: tuple[Called, ...]
    reasons: tuple[str, ...]
    quorum_zone_team: bool
    quorum_linked_units: int
    ack_deadline: datetime
    plan_version: str
    decided_at: datetime
    final_stage: bool
    command_centre: bool
    equipment: tuple[dict[str, Any], ...] = ()
    preempted: tuple[str, ...] = ()

    @property
    def ack_quorum(self) -> int:
        return int(self.quorum_zone_team) + self.quorum_linked_units

    def to_model(self) -> Decision:
        """The wire model (validated)."""
        return Decision.model_validate(self.to_wire())

    def to_wire(self) -> dict[str, Any]:
        def pick(p: Pick) -> dict[str, Any]:
            return {"id": p.id, "distance_m": round(p.distance_m, 1)}

        return {
            "schema_version": 1,
            "incident_id": self.incident_id,
            "stage": self.stage,
            "zone": pick(self.zone) if self.zone is not None else None,
            "units": [pick(u) for u in self.units],
            "recipients": [r.to_wire() for r in self.recipients],
            "reasons": list(self.reasons),
            "ack_quorum": self.ack_quorum,
            "ack_deadline": self.ack_deadline,
            "plan_version": self.plan_version,
            "decided_at": self.decided_at,
            "type": self.type.value,
            "priority": self.priority.value,
            "area": self.area,
            "response": self.response,
            "zones": [pick(z) for z in self.zones],
            "quorum": {
                "zone_team": self.quorum_zone_team,
                "linked_units": self.quorum_linked_units,
            },
            "equipment": list(self.equipment),
            "preempted": list(self.preempted),
            "command_centre": self.command_centre,
            "final_stage": self.final_stage,
        }

    def to_json(self) -> str:
        """Canonical JSON: what 'same inputs give byte-identical JSON' is measured on."""
        return self.to_model().model_dump_json()
