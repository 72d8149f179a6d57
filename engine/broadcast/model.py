"""The broadcast request and the records on ``broadcasts`` and ``broadcast-messages``.

``broadcasts`` (key: the broadcast id) holds what happens to a broadcast: its ``notice``
(what, to whom, how many messages), a ``cancel``, one ``report`` per message and outcome
(``sent``, ``delivered``, ``failed``, ``cancelled``, ``expired``) from the gateways, and
the ``reply`` of a recipient ("收到"), recorded there and never acked to an incident.
``broadcast-messages`` (key: the message's idempotency key, so several gateways in one
consumer group share the partitions) holds one record per SMS or PoC group call.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime
from enum import StrEnum
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator, model_validator

from engine.models import Record, utcnow

MAX_TEXT = 200
MAX_TEXT_EN = 300
MAX_EXPIRES_IN_S = 7 * 24 * 3600
DEFAULT_EXPIRES_IN_S = 12 * 3600
_ID_ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"


class Target(StrEnum):
    PUBLICITY = "publicity"  # 宣传先锋队
    WATCH_GROUPS = "watch_groups"  # 邻里守望联防组
    OBSERVERS = "observers"  # 流动观察哨
    KEY_ZONES = "key_zones"  # 先莞队 members
    UNITS = "units"  # the people who guard the linked units


class BroadcastPriority(StrEnum):
    INFO = "info"
    WARNING = "warning"
    URGENT = "urgent"


PRIORITY_RANK: dict[BroadcastPriority, int] = {
    BroadcastPriority.URGENT: 0,
    BroadcastPriority.WARNING: 1,
    BroadcastPriority.INFO: 2,
}
"""Among broadcast messages (all below every call-out): urgent first."""

PRIORITY_TAG: dict[BroadcastPriority, str] = {
    BroadcastPriority.INFO: "通知",
    BroadcastPriority.WARNING: "预警",
    BroadcastPriority.URGENT: "紧急",
}


class Near(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    lat: float = Field(ge=-90, le=90, allow_inf_nan=False)
    lon: float = Field(ge=-180, le=180, allow_inf_nan=False)


class BroadcastIn(BaseModel):
    """A broadcast as an operator asks for it (API body, CLI options): unknown fields
    are refused, every field is bounded."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    text: str = Field(min_length=1, max_length=MAX_TEXT)
    text_en: str | None = Field(default=None, max_length=MAX_TEXT_EN)
    to: list[Target] = Field(min_length=1, max_length=len(Target))
    area: str | None = Field(default=None, max_length=64)
    near: Near | None = None
    radius_m: float | None = Field(default=None, gt=0, le=50_000, allow_inf_nan=False)
    priority: BroadcastPriority = BroadcastPriority.INFO
    expires_in_s: int | None = Field(default=None, ge=60, le=MAX_EXPIRES_IN_S)
    idempotency_key: str | None = Field(
        default=None, min_length=1, max_length=100, pattern=r"^[\x21-\x7e]+$"
    )

    @field_validator("text", "text_en")
    @classmethod
    def _not_blank(cls, v: str | None) -> str | None:
        if v is None:
            return v
        v = v.strip()
        if not v:
            raise ValueError("must not be blank")
        if any(ord(c) < 0x20 and c not in "\n" for c in v):
            raise ValueError("control characters are not allowed")
        return v

    @model_validator(mode="after")
    def _circle(self) -> BroadcastIn:
        if (self.near is None) != (self.radius_m is None):
            raise ValueError("near and radius_m go together")
        if len(set(self.to)) != len(self.to):
            raise ValueError("a target is named twice")
        return self


class Notice(Record):
    """``kind: notice`` on ``broadcasts``: the broadcast as expanded."""

    kind: Literal["notice"] = "notice"
    broadcast_id: str
    text: str
    text_en: str | None = None
    message_text: str
    to: list[Target]
    area: str | None = None
    near: Near | None = None
    radius_m: float | None = None
    priority: BroadcastPriority
    created_at: AwareDatetime = Field(default_factory=utcnow)
    expires_at: AwareDatetime
    actor: str
    role: str | None = None
    idempotency_key: str | None = None
    recipients: int = Field(ge=0)
    messages: int = Field(ge=0)
    poc_groups: int = Field(ge=0)
    poc_group_people: int = Field(default=0, ge=0)
    sms: int = Field(ge=0)
    unlocated: int = Field(default=0, ge=0)


class Cancel(Record):
    kind: Literal["cancel"] = "cancel"
    broadcast_id: str
    actor: str
    role: str | None = None
    reason: str | None = Field(default=None, max_length=500)
    at: AwareDatetime = Field(default_factory=utcnow)


class MessageChannel(StrEnum):
    SMS = "sms"
    POC_GROUP = "poc_group"


class Message(Record):
    """One record on ``broadcast-messages``: an SMS to one person, or one PoC group call
    to a talk group (``radio_id`` is a handset of the group: its talk group is dialled)."""

    broadcast_id: str
    idempotency_key: str
    radio_id: str
    channel: MessageChannel
    text: str = Field(min_length=1)
    priority: BroadcastPriority
    expires_at: AwareDatetime
    people: int = Field(default=1, ge=1)
    talk_group: str | None = None

    @staticmethod
    def key_for(broadcast_id: str, recipient: str) -> str:
        return f"bc/{broadcast_id}/{recipient}"


REPORT_STATUSES = ("sent", "delivered", "failed", "cancelled", "expired")


def new_broadcast_id(now: datetime, actor: str = "", idempotency_key: str | None = None) -> str:
    """``BC-YYYYMMDD-XXXXXX``; the same (actor, idempotency key) gives the same id, so a
    retried request names the broadcast it already made."""
    if idempotency_key is None:
        tail = "".join(secrets.choice(_ID_ALPHABET) for _ in range(6))
    else:
        digest = hashlib.sha256(f"{actor}\x1f{idempotency_key}".encode()).digest()
        tail = "".join(_ID_ALPHABET[b % len(_ID_ALPHABET)] for b in digest[:6])
    return f"BC-{now:%Y%m%d}-{tail}"


def message_text(text: str, text_en: str | None, priority: BroadcastPriority) -> str:
    """What the SMS says: ``[塘厦义警·预警]`` then the notice, then the English."""
    head = f"[塘厦义警·{PRIORITY_TAG[priority]}]{text}"
    return f"{head}\n{text_en}" if text_en else head
