"""Checks across entities: duplicate ids, dangling links, the "1+10" rule, radios.

Single-entity problems (bad field values, coordinates) are found while reading, in
:mod:`engine.registry.files`; these need the whole registry.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from engine.geo.distance import distance_m
from engine.registry.files import Parsed
from engine.registry.models import (
    GROUP_KINDS,
    FrontagePoint,
    KeyZone,
    Kind,
    Observer,
    Placed,
    School,
    Volunteer,
    WatchGroup,
)
from engine.registry.problems import Where

MIN_LINKED_UNITS = 10
"""The "1+10" model: a zone team or watch group links ten or more nearby units."""

LINKED_UNIT_FAR_M = 1_000.0
"""A linked unit farther than this from its zone cannot converge "within a minute"."""


def check_links(parsed: Parsed) -> None:
    """Appends every cross-entity problem to ``parsed.problems``."""
    where_of: dict[str, Where] = {}
    placed: dict[str, Placed] = {}
    volunteers: dict[str, Volunteer] = {}
    everything: Iterable[tuple[object, Where]] = [
        *parsed.placed,
        *parsed.volunteers,
        *parsed.radios,
    ]
    for entity, where in everything:
        entity_id: str = entity.id  # type: ignore[attr-defined]
        first = where_of.get(entity_id)
        if first is not None:
            parsed.error(where, "id", f"duplicate id {entity_id!r} (first at {first})")
            continue
        where_of[entity_id] = where
        if isinstance(entity, Placed):
            placed[entity_id] = entity
        elif isinstance(entity, Volunteer):
            volunteers[entity_id] = entity

    for entity, where in parsed.placed:
        if placed.get(entity.id) is not entity:
            continue  # a duplicate, already reported
        if isinstance(entity, KeyZone | WatchGroup):
            _check_linked_units(entity, where, placed, parsed)
        elif isinstance(entity, FrontagePoint) and entity.unit_id is not None:
            _expect(parsed, where, "properties.unit_id", entity.unit_id, Kind.UNIT, placed)
        elif isinstance(entity, Observer) and entity.holder not in volunteers:
            parsed.error(
                where, "properties.holder", f"dangling link: no volunteer {entity.holder!r}"
            )

    members: Counter[str] = Counter()
    for volunteer, where in parsed.volunteers:
        if volunteer.group_id is not None:
            group = placed.get(volunteer.group_id)
            if group is None:
                parsed.error(where, "group_id", f"dangling link: no group {volunteer.group_id!r}")
            elif group.kind not in GROUP_KINDS:
                parsed.error(
                    where, "group_id", f"{volunteer.group_id!r} is a {group.kind}, not a group"
                )
            else:
                members[group.id] += 1
        if volunteer.unit_id is not None:
            _expect(parsed, where, "unit_id", volunteer.unit_id, Kind.UNIT, placed)

    for entity, where in parsed.placed:
        if isinstance(entity, School) and members[entity.id] < entity.min_posts:
            parsed.warn(
                where,
                "min_posts",
                f"gate duty needs {entity.min_posts} volunteers, "
                f"{members[entity.id]} have this school as group_id",
            )
    _check_radios(parsed, volunteers)


def _expect(
    parsed: Parsed, where: Where, fld: str, ref: str, kind: Kind, placed: dict[str, Placed]
) -> Placed | None:
    target = placed.get(ref)
    if target is None:
        parsed.error(where, fld, f"dangling link: no {kind} {ref!r}")
        return None
    if target.kind is not kind:
        parsed.error(where, fld, f"{ref!r} is a {target.kind}, not a {kind}")
        return None
    return target


def _check_linked_units(
    zone: KeyZone | WatchGroup, where: Where, placed: dict[str, Placed], parsed: Parsed
) -> None:
    fld = "properties.linked_units"
    seen: set[str] = set()
    for i, ref in enumerate(zone.linked_units):
        if ref in seen:
            parsed.error(where, f"{fld}[{i}]", f"unit {ref!r} listed twice")
            continue
        seen.add(ref)
        unit = _expect(parsed, where, f"{fld}[{i}]", ref, Kind.UNIT, placed)
        if unit is not None:
            far = distance_m(
                zone.location.lat, zone.location.lon, unit.location.lat, unit.location.lon
            )
            if far > LINKED_UNIT_FAR_M:
                parsed.warn(where, f"{fld}[{i}]", f"unit {ref!r} is {far:.0f} m from the zone")
    if len(seen) < MIN_LINKED_UNITS:
        parsed.error(
            where,
            fld,
            f"{len(seen)} linked units; the 1+10 model needs at least {MIN_LINKED_UNITS}",
        )


def _check_radios(parsed: Parsed, volunteers: dict[str, Volunteer]) -> None:
    """A handset, a SIM number and a holder each belong to one radio row."""
    by_holder: dict[str, Where] = {}
    by_poc: dict[str, Where] = {}
    by_sms: dict[str, Where] = {}
    for radio, where in parsed.radios:
        if radio.holder not in volunteers:
            parsed.error(where, "holder", f"dangling link: no volunteer {radio.holder!r}")
        for key, seen, fld, what in (
            (
                radio.holder,
                by_holder,
                "holder",
                "radio assigned twice: holder {!r} already has one",
            ),
            (radio.poc_id, by_poc, "poc_id", "radio assigned twice: handset {!r} already listed"),
            (radio.sms_number, by_sms, "sms_number", "SIM number {!r} already on another radio"),
        ):
            first = seen.get(key)
            if first is not None:
                parsed.error(where, fld, f"{what.format(key)} (first at {first})")
            else:
                seen[key] = where
    _check_one_number_one_address(parsed)


def _check_one_number_one_address(parsed: Parsed) -> None:
    """The gateway pages handsets by their SIM and volunteers (``sms:<id>``) by their own
    phone, and tells who answers by the sender's number: one number must never stand
    for two addresses, or a reply would be credited to the wrong one (and the gateway
    would refuse to start)."""
    phones: dict[str, tuple[str, Where]] = {}
    for volunteer, where in parsed.volunteers:
        first = phones.get(volunteer.phone)
        if first is not None:
            parsed.error(
                where,
                "phone",
                f"phone {volunteer.phone!r} is also the phone of volunteer {first[0]!r} "
                f"(first at {first[1]}): one number, two addresses to page",
            )
        else:
            phones[volunteer.phone] = (volunteer.id, where)
    for radio, where in parsed.radios:
        owner = phones.get(radio.sms_number)
        if owner is not None:
            parsed.error(
                where,
                "sms_number",
                f"SIM number {radio.sms_number!r} is also the phone of volunteer {owner[0]!r} "
                f"(at {owner[1]}): one number on two radios",
            )
