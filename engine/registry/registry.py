"""The loaded registry: an immutable snapshot with the lookups dispatch needs.

``load_registry`` is what the worker and the rules use: it either returns a complete,
valid :class:`Registry` or raises :class:`~engine.errors.ConfigError` listing every
problem, so a bad reload can be refused while the old snapshot stays in use.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import TypeVar

from engine.errors import ConfigError
from engine.geo.areas import Area
from engine.geo.index import SpatialIndex
from engine.geo.points import IndexedPoint
from engine.registry.checks import check_links
from engine.registry.files import read_registry_dir
from engine.registry.models import (
    EquipmentPoint,
    FrontagePoint,
    KeyZone,
    Kind,
    Observer,
    PatrolBase,
    Placed,
    Radio,
    School,
    Unit,
    Volunteer,
    WatchGroup,
)
from engine.registry.problems import Problem, Severity, errors

log = logging.getLogger(__name__)

P = TypeVar("P", bound=Placed)


@dataclass(frozen=True)
class Registry:
    """Everything dispatch knows about responders, by id. Read-only mappings; build a
    new one (``load_registry``) to change it."""

    area: str | None
    placed: Mapping[str, Placed]
    volunteers: Mapping[str, Volunteer]
    radios: Mapping[str, Radio]
    _members: Mapping[str, tuple[str, ...]] = field(repr=False)
    _radio_of_holder: Mapping[str, str] = field(repr=False)
    _by_kind: Mapping[Kind, Mapping[str, Placed]] = field(repr=False)
    outline: Area | None = field(default=None, repr=False)
    """the dispatch area's outline (``area.geojson``), when the registry names its area"""

    @classmethod
    def build(
        cls,
        area: str | None,
        placed: Iterable[Placed],
        volunteers: Iterable[Volunteer],
        radios: Iterable[Radio],
        outline: Area | None = None,
    ) -> Registry:
        """From entities already checked (``load_registry`` does that)."""
        vols = sorted(volunteers, key=lambda v: v.id)
        members: dict[str, list[str]] = defaultdict(list)
        for v in vols:
            if v.group_id is not None:
                members[v.group_id].append(v.id)
        rads = sorted(radios, key=lambda r: r.id)
        all_placed = sorted(placed, key=lambda p: p.id)
        by_kind: dict[Kind, dict[str, Placed]] = {k: {} for k in Kind}
        for p in all_placed:
            by_kind[p.kind][p.id] = p
        return cls(
            area=area,
            placed=MappingProxyType({p.id: p for p in all_placed}),
            volunteers=MappingProxyType({v.id: v for v in vols}),
            radios=MappingProxyType({r.id: r for r in rads}),
            outline=outline,
            _members=MappingProxyType({g: tuple(ids) for g, ids in members.items()}),
            _radio_of_holder=MappingProxyType({r.holder: r.id for r in rads}),
            _by_kind=MappingProxyType({k: MappingProxyType(v) for k, v in by_kind.items()}),
        )

    def of_kind(self, kind: Kind, cls: type[P]) -> Mapping[str, P]:
        """The placed entities of one kind, by id (``cls`` names their model for typing)."""
        return self._by_kind[kind]  # type: ignore[return-value]

    @property
    def key_zones(self) -> Mapping[str, KeyZone]:
        return self.of_kind(Kind.KEY_ZONE, KeyZone)

    @property
    def watch_groups(self) -> Mapping[str, WatchGroup]:
        return self.of_kind(Kind.WATCH_GROUP, WatchGroup)

    @property
    def units(self) -> Mapping[str, Unit]:
        return self.of_kind(Kind.UNIT, Unit)

    @property
    def frontage_points(self) -> Mapping[str, FrontagePoint]:
        return self.of_kind(Kind.FRONTAGE_POINT, FrontagePoint)

    @property
    def schools(self) -> Mapping[str, School]:
        return self.of_kind(Kind.SCHOOL, School)

    @property
    def patrol_bases(self) -> Mapping[str, PatrolBase]:
        return self.of_kind(Kind.PATROL_BASE, PatrolBase)

    @property
    def observers(self) -> Mapping[str, Observer]:
        return self.of_kind(Kind.OBSERVER, Observer)

    @property
    def equipment_points(self) -> Mapping[str, EquipmentPoint]:
        return self.of_kind(Kind.EQUIPMENT_POINT, EquipmentPoint)

    def get(self, entity_id: str) -> Placed | Volunteer | Radio:
        """Any entity by id; KeyError if there is none."""
        for table in (self.placed, self.volunteers, self.radios):
            found = table.get(entity_id)
            if found is not None:
                return found
        raise KeyError(entity_id)

    def linked_units(self, group_id: str) -> tuple[Unit, ...]:
        """The "1+10" units of a key zone or watch group, in the registry's order."""
        group = self.placed[group_id]
        if not isinstance(group, KeyZone | WatchGroup):
            raise KeyError(f"{group_id!r} is a {group.kind}, not a zone or watch group")
        return tuple(self.placed[u] for u in group.linked_units)  # type: ignore[misc]

    def members(self, group_id: str) -> tuple[Volunteer, ...]:
        """Volunteers whose ``group_id`` is this group, by id."""
        return tuple(self.volunteers[v] for v in self._members.get(group_id, ()))

    def radio_of(self, volunteer_id: str) -> Radio | None:
        radio_id = self._radio_of_holder.get(volunteer_id)
        return None if radio_id is None else self.radios[radio_id]

    def radios_of_group(self, group_id: str) -> tuple[Radio, ...]:
        """Handsets held by the group's members (the rest are reached by SMS)."""
        found = (self.radio_of(v) for v in self._members.get(group_id, ()))
        return tuple(r for r in found if r is not None)

    def counts(self) -> dict[str, int]:
        by_kind = {k.value: 0 for k in Kind}
        for p in self.placed.values():
            by_kind[p.kind.value] += 1
        return {**by_kind, "volunteers": len(self.volunteers), "radios": len(self.radios)}

    def index_points(self, kinds: Iterable[Kind] | None = None) -> Iterator[IndexedPoint]:
        wanted = None if kinds is None else frozenset(kinds)
        for p in self.placed.values():
            if wanted is None or p.kind in wanted:
                radius = p.radius_m if isinstance(p, FrontagePoint) else None
                yield IndexedPoint(p.id, p.kind.value, p.location.lat, p.location.lon, radius)

    def spatial_index(self, kinds: Iterable[Kind] | None = None) -> SpatialIndex:
        """A fresh index over the placed entities (every one available to start with)."""
        return SpatialIndex(self.index_points(kinds))


@dataclass(frozen=True)
class CheckResult:
    registry: Registry | None  # None when there are errors
    problems: tuple[Problem, ...]

    @property
    def errors(self) -> list[Problem]:
        return errors(list(self.problems))

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if p.severity is Severity.WARNING]


def check_registry(path: Path | str, encoding: str | None = None) -> CheckResult:
    """Reads and checks a registry directory; every problem is returned, none raised.
    Raises ConfigError only when ``path`` is not a directory."""
    path = Path(path)
    if not path.is_dir():
        raise ConfigError(f"registry {path}: not a directory")
    parsed = read_registry_dir(path, encoding)
    check_links(parsed)
    problems = tuple(parsed.problems)
    if errors(list(problems)):
        return CheckResult(None, problems)
    registry = Registry.build(
        parsed.area.id if parsed.area else None,
        (p for p, _ in parsed.placed),
        (v for v, _ in parsed.volunteers),
        (r for r, _ in parsed.radios),
        parsed.area,
    )
    return CheckResult(registry, problems)


def load_registry(path: Path | str, encoding: str | None = None) -> Registry:
    """The registry at ``path``, or ConfigError listing every error. Warnings are logged."""
    result = check_registry(path, encoding)
    for warning in result.warnings:
        log.warning("%s", warning)
    if result.registry is None:
        listed = "\n".join(f"  {p}" for p in result.errors)
        raise ConfigError(f"registry {path} refused, {len(result.errors)} error(s):\n{listed}")
    return result.registry
