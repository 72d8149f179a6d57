"""The registry prepared for dispatch: spatial indexes and, for every callable entity,
the people to call and how to reach them. Built once per registry (load or reload),
read-only afterwards, so a decision is a handful of index queries and lookups.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import time
from types import MappingProxyType

from engine.geo.index import SpatialIndex
from engine.geo.points import IndexedPoint
from engine.registry.models import (
    Equipment,
    EquipmentPoint,
    FrontagePoint,
    KeyZone,
    Kind,
    Observer,
    PatrolBase,
    School,
    TimeWindow,
    Volunteer,
    WatchGroup,
)
from engine.registry.registry import Registry
from engine.rules import reasons as R
from engine.rules.nearby import Nearby

INDEXED_KINDS = (
    Kind.KEY_ZONE,
    Kind.WATCH_GROUP,
    Kind.FRONTAGE_POINT,
    Kind.SCHOOL,
    Kind.PATROL_BASE,
    Kind.EQUIPMENT_POINT,
    Kind.OBSERVER,
)
"""Kinds in the world's index. For observers that is their home position (where they
usually ride); live fixes come with availability."""


@dataclass(frozen=True, slots=True)
class Contact:
    """One person to reach. ``radio_id`` when they hold a PoC handset (the call-out goes
    to the handset's SMS number, key = radio id); otherwise SMS to their phone, with
    the address ``sms:<volunteer id>``."""

    volunteer_id: str
    radio_id: str | None
    sms_number: str

    @property
    def address(self) -> str:
        return self.radio_id if self.radio_id is not None else f"sms:{self.volunteer_id}"


@dataclass(frozen=True)
class World:
    registry: Registry
    index: SpatialIndex
    contacts: Mapping[str, tuple[Contact, ...]]
    """entity id -> the people to call for it (publicity vanguard never included)"""
    nearby: Nearby
    linked_positions: Mapping[str, tuple[tuple[str, float, float, float], ...]]
    """zone or watch group id -> (unit id, lat rad, lon rad, cos lat) of each linked unit"""
    sms_numbers: dict[str, str]
    """contact address -> the SMS number behind it (handset SIM or the volunteer's phone)"""
    names: dict[str, str]
    """entity id -> Chinese name (plain dicts here: the hot path reads them per recipient)"""
    addresses: dict[str, tuple[str, ...]]
    """entity id -> its contacts' addresses (everyone reachable when all are available)"""
    max_frontage_radius_m: float
    callee: dict[str, tuple[str | None, tuple[str, ...], frozenset[str]]]
    """entity id -> (name, addresses, people): ``names``, ``addresses`` and the volunteer
    and radio ids behind them (to test availability) in one lookup, for every entity
    with someone to call"""
    linked_why: dict[str, str]
    """zone or watch group id -> the reason given to each of its linked units"""
    frontage_radius: dict[str, float]
    """door-front point id -> its radius in metres"""
    school_duty: dict[str, tuple[tuple[TimeWindow, ...], int]]
    """school id -> (gate windows, posts)"""
    patrol_starts: tuple[time, ...]
    patrol_on_duty: tuple[Nearby | None, ...]
    """The day cut at every shift start and end: ``patrol_on_duty[i]`` indexes exactly
    the bases with contacts on duty from ``patrol_starts[i]`` until the next start
    (None: nobody).
    See :func:`_duty_segments` for why that is exact."""
    observer_ids: frozenset[str]
    equipment: dict[str, Nearby]
    """equipment item -> the points holding it, each item its own index (kind = item),
    so "the nearest point with an AED" is the first answer of one ranked query"""

    @classmethod
    def build(cls, registry: Registry) -> World:
        def contact(v: Volunteer) -> Contact:
            radio = registry.radio_of(v.id)
            if radio is not None:
                return Contact(v.id, radio.id, radio.sms_number)
            return Contact(v.id, None, v.phone)

        people: dict[str, list[Volunteer]] = defaultdict(list)
        for v in registry.volunteers.values():
            if v.publicity:
                continue  # 宣传先锋队: broadcasts only, never an emergency call-out
            if v.group_id is not None:
                people[v.group_id].append(v)
            if v.unit_id is not None and v.unit_id != v.group_id:
                people[v.unit_id].append(v)
        for p in registry.placed.values():
            if isinstance(p, FrontagePoint) and p.unit_id is not None:
                people[p.id].extend(people.get(p.unit_id, ()))
            elif isinstance(p, Observer):
                holder = registry.volunteers.get(p.holder)
                if holder is not None and not holder.publicity:
                    people[p.id].append(holder)

        contacts: dict[str, tuple[Contact, ...]] = {}
        for entity_id, vols in people.items():
            unique = sorted({v.id: v for v in vols}.values(), key=lambda v: v.id)
            contacts[entity_id] = tuple(contact(v) for v in unique)

        points = list(registry.index_points(INDEXED_KINDS))
        index = SpatialIndex(points)
        linked: dict[str, tuple[tuple[str, float, float, float], ...]] = {}
        for group in registry.placed.values():
            if isinstance(group, KeyZone | WatchGroup):
                rows = []
                for uid in group.linked_units:
                    loc = registry.placed[uid].location
                    phi = math.radians(loc.lat)
                    rows.append((uid, phi, math.radians(loc.lon), math.cos(phi)))
                linked[group.id] = tuple(rows)
        names = {p.id: p.name_zh for p in registry.placed.values()}
        addresses = {e: tuple(c.address for c in cs) for e, cs in contacts.items()}
        people_sets = {
            e: frozenset([c.volunteer_id for c in cs] + [c.radio_id for c in cs if c.radio_id])
            for e, cs in contacts.items()
        }
        holding: dict[str, list[IndexedPoint]] = defaultdict(list)
        for p in registry.placed.values():
            if isinstance(p, EquipmentPoint):
                for item in Equipment:
                    if p.has(item):
                        holding[item.value].append(
                            IndexedPoint(p.id, item.value, p.location.lat, p.location.lon)
                        )
        equipment = {}
        for item_name, held in holding.items():
            equipment[item_name] = Nearby(SpatialIndex(held), held)
        starts, on_duty = _duty_segments(registry, addresses)
        return cls(
            registry=registry,
            index=index,
            nearby=Nearby(index, points),
            linked_positions=MappingProxyType(linked),
            sms_numbers={
                **{f"sms:{v.id}": v.phone for v in registry.volunteers.values()},
                **{r.id: r.sms_number for r in registry.radios.values()},
            },
            names=names,
            addresses=addresses,
            callee={e: (names.get(e), addresses[e], people_sets[e]) for e in contacts},
            linked_why={g: R.both(f"{g} 的联动单位", f"linked unit of {g}") for g in linked},
            frontage_radius={
                p.id: p.radius_m for p in registry.placed.values() if isinstance(p, FrontagePoint)
            },
            school_duty={
                p.id: (p.gate_windows, p.min_posts)
                for p in registry.placed.values()
                if isinstance(p, School)
            },
            patrol_starts=starts,
            patrol_on_duty=on_duty,
            observer_ids=frozenset(
                p.id for p in registry.placed.values() if isinstance(p, Observer)
            ),
            equipment=equipment,
            max_frontage_radius_m=max(
                (p.radius_m or 0.0 for p in points if p.kind == Kind.FRONTAGE_POINT.value),
                default=0.0,
            ),
            contacts=MappingProxyType(contacts),
        )


def _duty_segments(
    registry: Registry, addresses: Mapping[str, tuple[str, ...]]
) -> tuple[tuple[time, ...], tuple[Nearby | None, ...]]:
    """Patrol bases on duty that have someone to call, per stretch of the day between
    shift boundaries. (A base with no contacts at all can never be called, whatever
    the availability, so leaving it out changes no answer; it only spares a search
    through every base when none can be called.)

    A base is on duty at ``t`` when one of its windows contains ``t``, and
    :meth:`TimeWindow.contains` only compares ``t`` with the window's start and end.
    Between two consecutive boundaries b_i <= t < b_(i+1) (all starts and ends, plus
    00:00), every such comparison with a boundary x comes out as it does for b_i
    (x <= t exactly when x <= b_i, as no boundary lies in (b_i, t]), so evaluating
    :meth:`PatrolBase.on_duty` at b_i gives the answer for the whole stretch."""
    bases = [
        p for p in registry.placed.values() if isinstance(p, PatrolBase) and addresses.get(p.id)
    ]
    cuts = {time(0, 0)}
    for b in bases:
        for w in b.shifts:
            cuts.update((w.start, w.end))
    starts = tuple(sorted(cuts))
    on_duty: list[Nearby | None] = []
    for t in starts:
        points = [
            IndexedPoint(b.id, Kind.PATROL_BASE.value, b.location.lat, b.location.lon)
            for b in bases
            if b.on_duty(t)
        ]
        if not points:
            on_duty.append(None)
            continue
        on_duty.append(Nearby(SpatialIndex(points), points))
    return starts, tuple(on_duty)
