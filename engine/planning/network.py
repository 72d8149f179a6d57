"""The registry as planning sees it: key zone teams, their linked units, patrol bases
and school gates, each with whether anyone can be called for it and when it is on duty.

"Can be called" is the rules' own test: the entity has contacts in the dispatch
:class:`~engine.rules.world.World` (the publicity vanguard never counts) and is not in
the ``unavailable`` set. Zone teams have no duty windows in the registry; a duty roster
(zone id -> daily windows, local time) may give them some, and a zone it does not name
is on duty all day.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import datetime

import numpy as np

from engine.errors import ConfigError
from engine.planning.nearest import BoolArray, IntArray, Points
from engine.registry.models import TimeWindow, UnitType
from engine.rules.plan import Plan
from engine.rules.world import World

DutyRoster = Mapping[str, tuple[TimeWindow, ...]]


@dataclass(frozen=True)
class Network:
    zone_ids: tuple[str, ...]
    zones: Points
    zone_callable: BoolArray
    zone_units: tuple[IntArray, ...]
    """per zone: positions in ``units`` of its linked units that can be called"""
    unit_ids: tuple[str, ...]
    units: Points
    unit_callable: BoolArray
    building: BoolArray
    """units that are buildings (楼栋): with all units, the population proxy"""
    patrol_ids: tuple[str, ...]
    patrols: Points
    school_ids: tuple[str, ...]
    schools: Points
    duty: DutyRoster

    @classmethod
    def from_world(
        cls,
        world: World,
        *,
        unavailable: Collection[str] = (),
        duty: DutyRoster | None = None,
        extra_zones: Mapping[str, tuple[float, float]] | None = None,
    ) -> Network:
        """``extra_zones``: hypothetical zone teams (id -> lat, lon), callable, with no
        linked units: what siting proposes."""
        reg = world.registry
        off = frozenset(unavailable)

        def can_call(entity_id: str) -> bool:
            return entity_id in world.callee and entity_id not in off

        unit_ids = tuple(sorted(reg.units))
        units = [reg.units[u] for u in unit_ids]
        unit_pos = {u: i for i, u in enumerate(unit_ids)}
        unit_callable = np.array([can_call(u) for u in unit_ids], dtype=np.bool_)
        zone_ids = tuple(sorted(reg.key_zones))
        zones = [reg.key_zones[z] for z in zone_ids]
        zone_units = [
            np.array(
                sorted(unit_pos[u] for u in z.linked_units if unit_callable[unit_pos[u]]),
                dtype=np.intp,
            )
            for z in zones
        ]
        zone_lat = [z.location.lat for z in zones]
        zone_lon = [z.location.lon for z in zones]
        callable_zones = [can_call(z) for z in zone_ids]
        for zid, (lat, lon) in sorted((extra_zones or {}).items()):
            if zid in reg.placed:
                raise ConfigError(f"proposed zone {zid!r} already exists in the registry")
            zone_ids += (zid,)
            zone_lat.append(lat)
            zone_lon.append(lon)
            callable_zones.append(True)
            zone_units.append(np.empty(0, dtype=np.intp))
        roster = dict(duty or {})
        unknown = sorted(set(roster) - set(zone_ids))
        if unknown:
            raise ConfigError(f"duty roster names unknown zones: {', '.join(unknown[:5])}")
        patrol_ids = tuple(sorted(p for p in reg.patrol_bases if can_call(p)))
        school_ids = tuple(sorted(s for s in reg.schools if can_call(s)))
        return cls(
            zone_ids=zone_ids,
            zones=Points(zone_lat, zone_lon),
            zone_callable=np.array(callable_zones, dtype=np.bool_),
            zone_units=tuple(zone_units),
            unit_ids=unit_ids,
            units=Points([u.location.lat for u in units], [u.location.lon for u in units]),
            unit_callable=unit_callable,
            building=np.array([u.unit_type is UnitType.BUILDING for u in units], dtype=np.bool_),
            patrol_ids=patrol_ids,
            patrols=Points(
                [reg.patrol_bases[p].location.lat for p in patrol_ids],
                [reg.patrol_bases[p].location.lon for p in patrol_ids],
            ),
            school_ids=school_ids,
            schools=Points(
                [reg.schools[s].location.lat for s in school_ids],
                [reg.schools[s].location.lon for s in school_ids],
            ),
            duty=roster,
        )

    def zones_on_duty(self, local: datetime | None) -> frozenset[int]:
        """Positions of the zone teams that can be called at ``local`` (None: every zone
        team that can be called, whatever the roster says)."""
        at = None if local is None else local.time()
        out = []
        for i, zid in enumerate(self.zone_ids):
            if not self.zone_callable[i]:
                continue
            windows = self.duty.get(zid)
            if at is not None and windows is not None and not any(w.contains(at) for w in windows):
                continue
            out.append(i)
        return frozenset(out)

    def patrols_on_duty(self, world: World, local: datetime) -> frozenset[int]:
        at = local.time()
        bases = world.registry.patrol_bases
        return frozenset(i for i, p in enumerate(self.patrol_ids) if bases[p].on_duty(at))

    def school_posts_on_duty(self, world: World, plan: Plan, local: datetime) -> frozenset[int]:
        if local.isoweekday() not in plan.school_days:
            return frozenset()
        at = local.time()
        schools = world.registry.schools
        return frozenset(
            i
            for i, s in enumerate(self.school_ids)
            if any(w.contains(at) for w in schools[s].gate_windows)
        )


def parse_duty(raw: object, origin: str) -> dict[str, tuple[TimeWindow, ...]]:
    """A duty roster from parsed JSON or YAML: ``{zone id: ["HH:MM-HH:MM", ...]}``."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{origin}: a duty roster maps zone ids to lists of HH:MM-HH:MM")
    out: dict[str, tuple[TimeWindow, ...]] = {}
    for zid, windows in raw.items():
        if not isinstance(windows, list):
            raise ConfigError(f"{origin}: {zid}: a list of HH:MM-HH:MM windows")
        try:
            out[str(zid)] = tuple(TimeWindow.model_validate(w) for w in windows)
        except ValueError as exc:
            raise ConfigError(f"{origin}: {zid}: {exc}") from exc
    return out
