"""A broadcast request -> its notice and messages (pure: registry, clock and settings in).

Refusals carry the HTTP status the API answers with (the CLI prints the reason):
409 for quiet hours, 422 for everything about the request itself.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime

from engine.broadcast.expand import MIN_GROUP, Circle, LatLon, expand
from engine.broadcast.model import (
    BroadcastIn,
    Message,
    MessageChannel,
    Notice,
    message_text,
    new_broadcast_id,
)
from engine.broadcast.policy import QuietHours, QuietHoursRefusal, check_and_expiry
from engine.registry.registry import Registry
from engine.wording import split_text


class BroadcastRefused(Exception):
    def __init__(self, reason: str, status: int = 422) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status


@dataclass(frozen=True)
class PlannedBroadcast:
    notice: Notice
    messages: tuple[Message, ...]

    def summary(self) -> dict[str, object]:
        n = self.notice
        return {
            "broadcast_id": n.broadcast_id,
            "recipients": n.recipients,
            "messages": n.messages,
            "poc_groups": n.poc_groups,
            "poc_group_people": n.poc_group_people,
            "sms": n.sms,
            "unlocated": n.unlocated,
            "priority": n.priority.value,
            "expires_at": n.expires_at.isoformat(),
            "state": "queued",
        }


def plan_broadcast(
    request: BroadcastIn,
    registries: Iterable[Registry],
    *,
    actor: str,
    now: datetime,
    role: str | None = None,
    quiet: QuietHours | None = None,
    positions: Mapping[str, LatLon] | None = None,
    min_group: int = MIN_GROUP,
    max_parts: int = 4,
    broadcast_id: str | None = None,
) -> PlannedBroadcast:
    regs = list(registries)
    if request.area is not None:
        regs = [r for r in regs if r.area == request.area]
        if not regs:
            raise BroadcastRefused(f"unknown dispatch area {request.area!r}")
    try:
        expires_at = check_and_expiry(request.priority, now, request.expires_in_s, quiet)
    except QuietHoursRefusal as exc:
        raise BroadcastRefused(str(exc), 409) from exc
    text = message_text(request.text, request.text_en, request.priority)
    try:
        parts = len(split_text(text))
    except ValueError as exc:
        raise BroadcastRefused(f"text cannot be split into SMS: {exc}") from exc
    if parts > max_parts:
        raise BroadcastRefused(f"text needs {parts} SMS parts, the cap is {max_parts}")
    circle = None
    if request.near is not None and request.radius_m is not None:
        circle = Circle(request.near.lat, request.near.lon, request.radius_m)
    found = expand(regs, request.to, circle=circle, positions=positions, min_group=min_group)
    if not found.messages:
        raise BroadcastRefused(
            "nobody to reach: the targets name no one"
            + (f" in the circle ({found.unlocated} without a known place)" if circle else "")
        )
    bid = broadcast_id or new_broadcast_id(now, actor, request.idempotency_key)
    notice = Notice(
        broadcast_id=bid,
        text=request.text,
        text_en=request.text_en,
        message_text=text,
        to=list(request.to),
        area=request.area,
        near=request.near,
        radius_m=request.radius_m,
        priority=request.priority,
        created_at=now,
        expires_at=expires_at,
        actor=actor,
        role=role,
        idempotency_key=request.idempotency_key,
        recipients=len(found.recipients),
        messages=len(found.messages),
        poc_groups=found.poc_groups,
        poc_group_people=found.poc_group_people,
        sms=found.sms,
        unlocated=found.unlocated,
    )
    messages = tuple(
        Message(
            broadcast_id=bid,
            idempotency_key=Message.key_for(bid, m.recipient),
            radio_id=m.radio_id,
            channel=m.channel,
            text=text,
            priority=request.priority,
            expires_at=expires_at,
            people=len(m.people),
            talk_group=m.talk_group if m.channel is MessageChannel.POC_GROUP else None,
        )
        for m in found.messages
    )
    return PlannedBroadcast(notice, messages)
