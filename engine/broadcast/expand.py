"""From a broadcast's target to its recipients and messages (pure: no I/O, no clock).

Recipients are people (volunteers), each once whatever groups they are in:

- ``publicity``: volunteers marked ``publicity`` (宣传先锋队);
- ``watch_groups``: members of the neighbourhood watch groups;
- ``observers``: the riders and drivers of the mobile observation posts (holder and
  members), placed at their live position when one is known;
- ``key_zones``: members of the key response zone teams;
- ``units``: the people who guard a linked unit (``unit_id``).

A circle (``near`` + ``radius_m``) keeps the people whose place is inside it: their
group's place (an observer's live fix first), else their unit's. People with no place
(most of the publicity vanguard) are left out of a circle and counted as ``unlocated``.

Then the channel. Handsets are grouped by their PoC talk group: a talk group whose
every handset belongs to a recipient, that has the vendor's talk-group id and at least
``min_group`` handsets, gets one PoC group call instead of one text per handset (nobody
outside the target hears it; one call is cheaper than ``min_group`` texts). Every other
recipient gets one SMS: on their handset if they hold one, else on their own phone.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from engine.broadcast.model import MessageChannel, Target
from engine.geo.distance import distance_m
from engine.registry.models import Placed, Radio, Volunteer
from engine.registry.registry import Registry

MIN_GROUP = 2
"""Handsets a talk group needs before one group call replaces their texts."""

LatLon = tuple[float, float]


@dataclass(frozen=True)
class Circle:
    lat: float
    lon: float
    radius_m: float

    def contains(self, where: LatLon) -> bool:
        return distance_m(self.lat, self.lon, where[0], where[1]) <= self.radius_m


@dataclass(frozen=True)
class Recipient:
    volunteer_id: str
    groups: tuple[str, ...]  # the targets that named this person
    radio_id: str | None  # their handset, if any


@dataclass(frozen=True)
class PlannedMessage:
    """One message to send: ``recipient`` names it in the idempotency key
    (``sms:V00001``, ``R001`` or ``tg:860200001``)."""

    recipient: str
    radio_id: str
    channel: MessageChannel
    people: tuple[str, ...]
    talk_group: str | None = None


@dataclass(frozen=True)
class Expansion:
    recipients: tuple[Recipient, ...]
    messages: tuple[PlannedMessage, ...]
    unlocated: int = 0
    by_target: Mapping[str, int] = field(default_factory=dict)

    @property
    def poc_groups(self) -> int:
        return sum(1 for m in self.messages if m.channel is MessageChannel.POC_GROUP)

    @property
    def poc_group_people(self) -> int:
        return sum(len(m.people) for m in self.messages if m.channel is MessageChannel.POC_GROUP)

    @property
    def sms(self) -> int:
        return sum(1 for m in self.messages if m.channel is MessageChannel.SMS)


def people_of(
    registry: Registry,
    target: Target,
    positions: Mapping[str, LatLon] | None = None,
) -> list[tuple[str, LatLon | None]]:
    """(volunteer id, place or None) for everyone a target names, registry order."""
    positions = positions or {}
    vols = registry.volunteers.values()
    out: list[tuple[str, LatLon | None]] = []
    if target is Target.PUBLICITY:
        for v in vols:
            if v.publicity:
                out.append((v.id, _place_of(registry, v, positions)))
    elif target is Target.WATCH_GROUPS:
        out = _members(registry, registry.watch_groups, positions)
    elif target is Target.KEY_ZONES:
        out = _members(registry, registry.key_zones, positions)
    elif target is Target.OBSERVERS:
        out = _members(registry, registry.observers, positions)
        seen = {v for v, _ in out}
        for ob in registry.observers.values():
            if ob.holder not in seen and ob.holder in registry.volunteers:
                seen.add(ob.holder)
                out.append((ob.holder, positions.get(ob.id) or _loc(ob)))
    elif target is Target.UNITS:
        for v in vols:
            if v.unit_id is not None and v.unit_id in registry.units:
                out.append((v.id, _loc(registry.units[v.unit_id])))
    return out


def expand(
    registries: Iterable[Registry],
    targets: Iterable[Target],
    *,
    circle: Circle | None = None,
    positions: Mapping[str, LatLon] | None = None,
    min_group: int = MIN_GROUP,
) -> Expansion:
    """Everyone the targets name (in the circle, if any), each once, and the messages
    that reach them: PoC group calls where a whole talk group is named, SMS otherwise."""
    wanted = list(dict.fromkeys(targets))
    groups_of: dict[str, list[str]] = {}
    registry_of: dict[str, Registry] = {}
    unlocated: set[str] = set()
    by_target: dict[str, int] = {}
    regs = list(registries)
    for reg in regs:
        for target in wanted:
            count = 0
            for vid, place in people_of(reg, target, positions):
                if circle is not None:
                    if place is None:
                        unlocated.add(vid)
                        continue
                    if not circle.contains(place):
                        continue
                count += 1
                if vid not in groups_of:
                    groups_of[vid] = []
                    registry_of[vid] = reg
                if target.value not in groups_of[vid]:
                    groups_of[vid].append(target.value)
            by_target[target.value] = by_target.get(target.value, 0) + count
    unlocated -= set(groups_of)  # placed through another target
    recipients = []
    for vid in sorted(groups_of):
        radio = registry_of[vid].radio_of(vid)
        recipients.append(Recipient(vid, tuple(groups_of[vid]), radio.id if radio else None))
    messages = plan_messages(regs, recipients, min_group=min_group)
    return Expansion(tuple(recipients), messages, len(unlocated), by_target)


def plan_messages(
    registries: Iterable[Registry], recipients: Iterable[Recipient], *, min_group: int = MIN_GROUP
) -> tuple[PlannedMessage, ...]:
    """Group calls for talk groups wholly among the recipients (and big enough), one
    SMS for everyone else. Deterministic: same input, same messages, same order."""
    radios: dict[str, Radio] = {}
    talk_groups: dict[str, list[Radio]] = defaultdict(list)  # vendor id -> all its handsets
    for reg in registries:
        for r in reg.radios.values():
            radios[r.id] = r
            if r.talk_group_id is not None:
                talk_groups[r.talk_group_id].append(r)
    recipients = list(recipients)
    by_radio = {p.radio_id: p for p in recipients if p.radio_id is not None}
    called: dict[str, list[Radio]] = defaultdict(list)
    for p in recipients:
        radio = radios.get(p.radio_id or "")
        if radio is not None and radio.talk_group_id is not None:
            called[radio.talk_group_id].append(radio)
    in_group_call: set[str] = set()
    out: list[PlannedMessage] = []
    for tg in sorted(called):
        members = sorted(called[tg], key=lambda r: r.id)
        if len(members) < max(1, min_group) or len(members) != len(talk_groups[tg]):
            continue  # too small to gain, or someone outside the target would hear it
        people = tuple(sorted(by_radio[r.id].volunteer_id for r in members))
        in_group_call.update(people)
        out.append(
            PlannedMessage(
                recipient=f"tg:{tg}",
                radio_id=members[0].id,
                channel=MessageChannel.POC_GROUP,
                people=people,
                talk_group=members[0].talk_group,
            )
        )
    for p in recipients:
        if p.volunteer_id in in_group_call:
            continue
        address = p.radio_id if p.radio_id is not None else f"sms:{p.volunteer_id}"
        out.append(PlannedMessage(address, address, MessageChannel.SMS, (p.volunteer_id,)))
    return tuple(out)


def _loc(p: Placed) -> LatLon:
    return (p.location.lat, p.location.lon)


def _place_of(registry: Registry, v: Volunteer, positions: Mapping[str, LatLon]) -> LatLon | None:
    if v.group_id is not None:
        group = registry.placed.get(v.group_id)
        if group is not None:
            return positions.get(group.id) or _loc(group)
    if v.unit_id is not None:
        unit = registry.placed.get(v.unit_id)
        if unit is not None:
            return _loc(unit)
    return None


def _members(
    registry: Registry, groups: Mapping[str, Placed], positions: Mapping[str, LatLon]
) -> list[tuple[str, LatLon | None]]:
    out: list[tuple[str, LatLon | None]] = []
    for gid, group in groups.items():
        place = positions.get(gid) or _loc(group)
        for v in registry.members(gid):
            out.append((v.id, place))
    return out
