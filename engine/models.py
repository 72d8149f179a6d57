"""Wire models: the JSON values on the Kafka topics of DESIGN.md §4.

These field names are a public contract shared with other producers and consumers:
add fields freely, never rename. Every record carries ``schema_version``; a reader
refuses a version it does not know (the worker sends such records to ``deadletter``).
"""

from __future__ import annotations

import base64
import json
import secrets
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from engine import clock

SCHEMA_VERSION = 1
"""The version this code writes. Readers accept exactly the versions in SUPPORTED_VERSIONS."""
SUPPORTED_VERSIONS = frozenset({1})

# Crockford-style alphabet without look-alikes (0/O, 1/I/L): ids are read out over radio
# and typed back on a handset keypad.
_ID_ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"


def new_incident_id(now: datetime | None = None) -> str:
    """A sortable, radio-friendly id: ``INC-YYYYMMDD-XXXXXX``.

    The last four characters are what a volunteer replies with on SMS (``1 K7Q2``), so
    they are random and free of look-alike characters.
    """
    at = now or utcnow()
    tail = "".join(secrets.choice(_ID_ALPHABET) for _ in range(6))
    return f"INC-{at:%Y%m%d}-{tail}"


def utcnow() -> datetime:
    return clock.now()


class IncidentType(StrEnum):
    FIRE = "fire"
    MEDICAL = "medical"
    FIGHT = "fight"
    THEFT = "theft"
    TRAFFIC = "traffic"
    MISSING_PERSON = "missing_person"
    SUSPICIOUS = "suspicious"
    FRAUD = "fraud"
    FLOOD = "flood"
    SCHOOL_GATE = "school_gate"
    OTHER = "other"


INCIDENT_TYPE_ZH: dict[IncidentType, str] = {
    IncidentType.FIRE: "火情",
    IncidentType.MEDICAL: "急救",
    IncidentType.FIGHT: "打架",
    IncidentType.THEFT: "盗窃",
    IncidentType.TRAFFIC: "交通事故",
    IncidentType.MISSING_PERSON: "寻人",
    IncidentType.SUSPICIOUS: "可疑情况",
    IncidentType.FRAUD: "诈骗",
    IncidentType.FLOOD: "水浸",
    IncidentType.SCHOOL_GATE: "校门警情",
    IncidentType.OTHER: "其他",
}


class Priority(StrEnum):
    P1 = "P1"
    P2 = "P2"
    P3 = "P3"
    P4 = "P4"


class Channel(StrEnum):
    SMS = "sms"
    POC_GROUP = "poc_group"
    POC_SINGLE = "poc_single"


class AckKind(StrEnum):
    SENT = "sent"  # the module took it (SMS accepted, PoC call made)
    DELIVERED = "delivered"  # the handset has it (SMS status report, PoC call answered)
    FAILED = "failed"  # the network gave up on it (status report, PoC call failed)
    ACCEPT = "accept"
    DECLINE = "decline"
    ON_SCENE = "on_scene"


class Lifecycle(StrEnum):
    RAISED = "raised"
    DISPATCHED = "dispatched"
    ACKNOWLEDGED = "acknowledged"
    ON_SCENE = "on_scene"
    CLOSED = "closed"
    ESCALATED = "escalated"
    UNANSWERED = "unanswered"
    CANCELLED = "cancelled"


class Record(BaseModel):
    """Base of every topic value: frozen, unknown fields kept, versioned."""

    model_config = ConfigDict(frozen=True, extra="allow", use_enum_values=False)

    schema_version: int = SCHEMA_VERSION

    @field_validator("schema_version")
    @classmethod
    def _known_version(cls, v: int) -> int:
        if v not in SUPPORTED_VERSIONS:
            raise ValueError(
                f"unsupported schema_version {v}; this engine reads {sorted(SUPPORTED_VERSIONS)}"
            )
        return v

    def to_json_bytes(self) -> bytes:
        return self.model_dump_json(exclude_none=False).encode("utf-8")


MAX_EXTRA_FIELDS = 32
MAX_EXTRA_BYTES = 8 * 1024
"""Fields beyond the contract are kept (other clients add their own), within bounds:
an incident's extras live in the worker's state and on the live board for a day."""


class BoundedExtras(Record):
    """An input record: unknown fields kept, but few and small."""

    @model_validator(mode="after")
    def _bounded_extras(self) -> BoundedExtras:
        extra = self.__pydantic_extra__ or {}
        if len(extra) > MAX_EXTRA_FIELDS:
            raise ValueError(f"{len(extra)} fields beyond the schema; at most {MAX_EXTRA_FIELDS}")
        if extra and len(json.dumps(extra, default=str)) > MAX_EXTRA_BYTES:
            raise ValueError(f"fields beyond the schema exceed {MAX_EXTRA_BYTES} bytes")
        return self


Latitude = Annotated[float, Field(ge=-90.0, le=90.0, allow_inf_nan=False)]
Longitude = Annotated[float, Field(ge=-180.0, le=180.0, allow_inf_nan=False)]
AwareDatetime = Annotated[datetime, Field(description="RFC 3339 timestamp with offset")]


class Location(BaseModel):
    """A WGS84 point in degrees (not GeoJSON order: named fields, lat first)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    lat: Latitude
    lon: Longitude


def _require_tz(v: datetime) -> datetime:
    if v.tzinfo is None or v.utcoffset() is None:
        raise ValueError("timestamp needs a UTC offset (RFC 3339), e.g. 2026-11-29T08:30:00+08:00")
    return v


class Incident(BoundedExtras):
    """Raised by an operator or a field report; key on ``incidents`` is the dispatch area."""

    id: str = Field(default_factory=new_incident_id, min_length=1, max_length=64)
    type: IncidentType
    priority: Priority
    location: Location
    area: str | None = Field(default=None, description="dispatch area id, e.g. 'tangxia'")
    address: str | None = Field(default=None, max_length=200)
    description: str | None = Field(default=None, max_length=2000)
    reporter: str | None = Field(default=None, max_length=100)
    raised_at: AwareDatetime = Field(default_factory=utcnow)

    _tz = field_validator("raised_at")(_require_tz)


class UnitStatus(BoundedExtras):
    """Availability and, for mobile units, position. Key: unit id (or radio id)."""

    unit_id: str = Field(min_length=1)
    available: bool | None = None
    radio_online: bool | None = None
    location: Location | None = None
    reason: str | None = None
    source: str | None = Field(default=None, description="operator, gateway, handset, ...")
    at: AwareDatetime = Field(default_factory=utcnow)

    _tz = field_validator("at")(_require_tz)


class ZoneChoice(BaseModel):
    model_config = ConfigDict(frozen=True, extra="allow")

    id: str
    distance_m: float = Field(ge=0)


class Recipient(BaseModel):
    """Someone called by a decision, and why (e.g. 'linked unit of zone K-012')."""

    model_config = ConfigDict(frozen=True, extra="allow")

    id: str
    kind: str
    reason: str
    distance_m: float | None = Field(default=None, ge=0)
    radio_id: str | None = None


class Decision(Record):
    incident_id: str
    stage: int = Field(ge=0, description="0 for the first call-out, 1.. for escalations")
    zone: ZoneChoice | None
    units: list[ZoneChoice] = Field(default_factory=list)
    recipients: list[Recipient] = Field(default_factory=list)
    reasons: list[str] = Field(default_factory=list)
    ack_quorum: int = Field(ge=0)
    ack_deadline: AwareDatetime
    plan_version: str
    decided_at: AwareDatetime

    _tz = field_validator("ack_deadline", "decided_at")(_require_tz)


class CallOut(Record):
    """One per handset per call-out; the gateway never pages twice for one key."""

    idempotency_key: str
    incident_id: str
    stage: int = Field(ge=0)
    radio_id: str
    channel: Channel
    text: str = Field(min_length=1)
    priority: Priority

    @staticmethod
    def key_for(incident_id: str, stage: int, radio_id: str) -> str:
        return f"{incident_id}/{stage}/{radio_id}"


class Ack(BoundedExtras):
    incident_id: str
    radio_id: str
    kind: AckKind
    at: AwareDatetime = Field(default_factory=utcnow)

    _tz = field_validator("at")(_require_tz)


class TimelineEntry(BaseModel):
    model_config = ConfigDict(frozen=True, extra="allow")

    at: AwareDatetime
    state: Lifecycle
    who: str
    what: str


class IncidentState(Record):
    """The live board's row for one incident (compacted topic, key = incident id)."""

    incident_id: str
    state: Lifecycle
    incident: Incident
    stage: int = Field(default=0, ge=0)
    zone_id: str | None = None
    acks: list[Ack] = Field(default_factory=list)
    timeline: list[TimelineEntry] = Field(default_factory=list)
    updated_at: AwareDatetime


class DeadLetter(Record):
    """A record that could not be used, kept whole so nothing is lost."""

    original_b64: str = Field(description="the original value bytes, base64")
    original_key_b64: str | None = None
    topic: str
    partition: int | None = None
    offset: int | None = None
    error: str
    reason: Literal[
        "not_json",
        "invalid",
        "unsupported_version",
        "out_of_area",
        "duplicate",
        "unknown_incident",
        "unknown_unit",
        "too_large",
        "clock_skew",
        "duplicate_id",
        "engine_error",
        "stale",  # a call-out older than the gateway's TTL: not paged
        "not_allowed",  # a number neither in the directory nor on the allow-list
        "too_long",  # a call-out over the SMS part cap
        "other",
    ] = "invalid"
    original_size: int | None = Field(
        default=None, description="bytes of the original value, when it was truncated"
    )
    at: AwareDatetime = Field(default_factory=utcnow)

    @classmethod
    def for_bytes(cls, value: bytes | None, *, topic: str, error: str, **kw: object) -> DeadLetter:
        """A dead letter that always fits in one request: the original is kept whole up
        to :data:`MAX_DEAD_ORIGINAL` bytes (then truncated, its size noted), the error
        text up to :data:`MAX_DEAD_ERROR` characters."""
        original = value or b""
        if len(original) > MAX_DEAD_ORIGINAL:
            kw = {**kw, "original_size": len(original)}
            original = original[:MAX_DEAD_ORIGINAL]
        if len(error) > MAX_DEAD_ERROR:
            error = error[: MAX_DEAD_ERROR - 1] + "…"
        return cls.model_validate(
            {
                "original_b64": base64.b64encode(original).decode("ascii"),
                "topic": topic,
                "error": error,
                **kw,
            }
        )


MAX_DEAD_ORIGINAL = 64 * 1024
MAX_DEAD_ERROR = 1000


TOPIC_MODELS: dict[str, type[Record]] = {
    "incidents": Incident,
    "unit-status": UnitStatus,
    "decisions": Decision,
    "callouts": CallOut,
    "acks": Ack,
    "incident-state": IncidentState,
    "deadletter": DeadLetter,
}
"""Logical topic name (DESIGN.md §4) to the model of its values."""


CommandAction = Literal[
    "escalate", "repage", "reassign", "note", "priority", "move", "cancel", "close", "reopen"
]
COMMAND_ACTIONS: tuple[str, ...] = (
    "escalate", "repage", "reassign", "note", "priority", "move", "cancel", "close", "reopen"
)  # fmt: skip


class Command(Record):
    """An operator's command on one incident (topic ``commands``, key = dispatch area).

    ``actor`` and ``role`` come from the sender's credentials (the API's bearer token, the
    CLI's operator name), never from a request body. The worker validates the command
    against the incident's state, applies it or refuses it, and writes a
    :class:`CommandResult` to ``audit``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    command_id: str = Field(min_length=1, max_length=64)
    action: CommandAction
    incident_id: str = Field(min_length=1, max_length=64)
    area: str = Field(min_length=1, max_length=64)
    actor: str = Field(min_length=1, max_length=100)
    role: str = Field(default="operator", max_length=20)
    at: AwareDatetime
    reason: str | None = Field(default=None, max_length=500)
    """why (reassign, cancel, close, reopen), or the note's text"""
    zone_id: str | None = Field(default=None, max_length=64)
    """reassign: the zone the operator chose"""
    priority: Priority | None = None
    type: IncidentType | None = None
    location: Location | None = None
    address: str | None = Field(default=None, max_length=200)

    _tz = field_validator("at")(_require_tz)


class CommandResult(Record):
    """The outcome of one command, on ``audit`` (kind ``command``): applied, or refused
    with the reason. The API answers the operator's request when it reads this."""

    kind: Literal["command"] = "command"
    command_id: str
    action: str
    incident_id: str
    area: str
    actor: str
    role: str
    result: Literal["applied", "refused"]
    reason: str
    """what was done (applied) or why not (refused)"""
    at: AwareDatetime
    stage: int | None = None
