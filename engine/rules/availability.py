"""Who can be called right now: the dynamic half of a decision's input.

Plain frozen values; the worker builds one from its tables, ``engine decide`` from the
decisions it has made so far. The rules never mutate it: :meth:`Availability.commit`
returns a new value.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from types import MappingProxyType

from engine.geo.index import SpatialIndex
from engine.geo.points import IndexedPoint
from engine.models import Priority

_EMPTY: Mapping[str, object] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class Commitment:
    """A zone team is busy with this open incident."""

    incident_id: str
    priority: Priority


@dataclass(frozen=True, slots=True)
class Fix:
    """A mobile observer's reported position."""

    lat: float
    lon: float
    at: datetime


@dataclass(frozen=True, slots=True)
class Availability:
    commitments: Mapping[str, Commitment] = field(default_factory=dict)
    """zone or watch-group id -> the open incident it is committed to"""
    unavailable: frozenset[str] = frozenset()
    """any entity id marked unavailable (zones, units, patrols, observers, volunteers)"""
    offline_radios: frozenset[str] = frozenset()
    """radio ids the gateway reported offline"""
    observer_fixes: Mapping[str, Fix] = field(default_factory=dict)

    def commit(self, group_ids: list[str], incident_id: str, priority: Priority) -> Availability:
        commitments = dict(self.commitments)
        for gid in group_ids:
            commitments[gid] = Commitment(incident_id, priority)
        return replace(self, commitments=commitments)

    def release(self, incident_id: str) -> Availability:
        kept = {z: c for z, c in self.commitments.items() if c.incident_id != incident_id}
        return replace(self, commitments=kept)


class ObserverFixes(Mapping[str, Fix]):
    """Observer fixes with a spatial index over them, for lookout broadcasts.

    The one mutable piece of availability: the worker calls :meth:`update` between
    decisions as fixes arrive (an index move, microseconds); a decision only reads.
    The index answers exactly what a scan of the fixes would, so decisions do not
    depend on whether this or a plain dict of fixes is passed.
    """

    def __init__(self, fixes: Mapping[str, Fix] | None = None) -> None:
        self._fixes: dict[str, Fix] = dict(fixes or {})
        self._index = self._build()

    def _build(self) -> SpatialIndex:
        return SpatialIndex(
            IndexedPoint(oid, "observer", f.lat, f.lon) for oid, f in sorted(self._fixes.items())
        )

    def update(self, observer_id: str, fix: Fix) -> None:
        known = observer_id in self._fixes
        self._fixes[observer_id] = fix
        if known:
            self._index.move(observer_id, fix.lat, fix.lon)
        else:
            self._index = self._build()  # a new rider: rare, rebuild

    def within(self, lat: float, lon: float, radius_m: float) -> list[tuple[float, str]]:
        return [(h.distance_m, h.id) for h in self._index.within(lat, lon, radius_m)]

    def __getitem__(self, key: str) -> Fix:
        return self._fixes[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._fixes)

    def __len__(self) -> int:
        return len(self._fixes)
