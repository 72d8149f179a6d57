"""Deterministic synthetic registry for a town, matching the article's counts.

Same town and seed, byte-identical files: one seeded ``random.Random`` drawn from in a
fixed order, only ``random()`` and ``randrange()`` (stable across Python versions),
everything written sorted by id, coordinates rounded to 6 decimals (about 0.1 m), no
timestamps. Points are drawn inside the town outline, not its bounding box; linked
units lie 30-400 m from their zone. The outline is written too (``area.geojson``):
Tangxia's is a hand-drawn approximation of its land area (not surveyed boundary data);
any other town id gets a synthetic outline, about 10 km across, placed on a grid north
and west of Tangxia by the seed, so towns generated with seeds that differ modulo 24
never overlap (Dongguan has 32 towns and districts; the many-areas example needs a few).
"""

from __future__ import annotations

import csv
import io
import json
import math
import random
import re
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.errors import UsageError
from engine.geo.areas import AREA_FILE, Area, area_geojson
from engine.geo.distance import EARTH_RADIUS_M
from engine.registry import names
from engine.registry.files import MANIFEST, RADIOS_CSV, VOLUNTEERS_CSV
from engine.registry.models import RADIO_COLUMNS, VOLUNTEER_COLUMNS, Equipment, Kind, Role

LonLat = tuple[float, float]


@dataclass(frozen=True)
class TownPlan:
    """How many of everything; Tangxia's numbers are from the article (DESIGN.md §1)."""

    key_zones: int = 140
    watch_groups: int = 549
    frontage_points: int = 1210
    observers: int = 518
    patrol_members: int = 2698
    publicity: int = 2570
    radios: int = 550
    roles: dict[Role, int] = field(
        default_factory=lambda: {
            Role.SECURITY_GUARD: 2833,
            Role.PROPERTY_STAFF: 278,
            Role.BUILDING_HEAD: 2645,
            Role.SHOP_MANAGER: 3640,
            Role.PARENT: 620,
            Role.VOLUNTEER: 3788,  # 13,804 in all
        }
    )
    schools: dict[str, int] = field(
        default_factory=lambda: {"kindergarten": 38, "primary": 24, "secondary": 10}
    )
    equipment_points: int = 20
    aed_points: int = 12
    equipment: dict[Equipment, int] = field(
        default_factory=lambda: {
            Equipment.VEST: 7000,
            Equipment.SHOULDER_LAMP: 7000,
            Equipment.WHISTLE: 7000,
            Equipment.SHIELD: 100,
            Equipment.RESTRAINT_FORK: 100,
            Equipment.BATON: 100,
        }
    )
    zone_members: int = 10
    watch_members: int = 6

    @property
    def volunteers(self) -> int:
        return sum(self.roles.values())


PLANS = {"tangxia": TownPlan()}
"""Towns with counts of their own; any other town gets Tangxia's."""

OUTLINES: dict[str, Area] = {
    "tangxia": Area(
        id="tangxia",
        name_zh="塘厦镇",
        outline=(
            (114.012, 22.812), (114.026, 22.838), (114.048, 22.856), (114.071, 22.866),
            (114.097, 22.862), (114.121, 22.851), (114.143, 22.834), (114.156, 22.811),
            (114.152, 22.786), (114.137, 22.764), (114.112, 22.748), (114.084, 22.743),
            (114.058, 22.749), (114.036, 22.763), (114.019, 22.785),
        ),
    ),
}  # fmt: skip
"""Hand-drawn outlines of the towns the project ships (lon, lat)."""

TOWN_ID = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")


def town_outline(town: str, seed: int, name: str | None = None) -> Area:
    """The shipped outline of ``town``, else a synthetic one: 14 vertices at 4-5.5 km
    from a centre on a 6 x 4 grid (cell 0.12 deg lon x 0.11 deg lat) picked by the seed."""
    if town in OUTLINES:
        return OUTLINES[town]
    if not TOWN_ID.match(town):
        raise UsageError(f"--town {town!r}: a lower-case id like 'humen' (a-z, 0-9, _ -)")
    rng = random.Random(f"outline/{town}/{seed}")
    cell = seed % 24
    lat0 = 22.93 + 0.11 * (cell // 6)
    lon0 = 113.55 + 0.12 * (cell % 6)
    ring: list[LonLat] = []
    for k in range(14):
        bearing = 2 * math.pi * k / 14
        r = 4000 + 1500 * rng.random()
        dlat = math.degrees(r * math.cos(bearing) / EARTH_RADIUS_M)
        dlon = math.degrees(r * math.sin(bearing) / (EARTH_RADIUS_M * math.cos(math.radians(lat0))))
        ring.append(_rounded(lon0 + dlon, lat0 + dlat))
    return Area(id=town, name_zh=name or town, outline=tuple(ring))


GATE_WINDOWS = {
    "kindergarten": ("08:00-08:40", "16:30-17:30"),
    "primary": ("07:20-08:00", "11:30-12:10", "13:50-14:20", "16:30-17:30"),
    "secondary": ("07:00-07:40", "17:00-17:50"),
}
SCHOOL_NAMES = {"kindergarten": "幼儿园", "primary": "小学", "secondary": "中学"}
UNIT_TYPES = (("shop", 45), ("building", 30), ("security_post", 15), ("property_office", 10))
FEATURE_FILES = {
    Kind.KEY_ZONE: "key_zones.geojson",
    Kind.WATCH_GROUP: "watch_groups.geojson",
    Kind.UNIT: "units.geojson",
    Kind.FRONTAGE_POINT: "frontage_points.geojson",
    Kind.SCHOOL: "schools.geojson",
    Kind.PATROL_BASE: "patrol_bases.geojson",
    Kind.OBSERVER: "observers.geojson",
    Kind.EQUIPMENT_POINT: "equipment_points.geojson",
}


class _Draw:
    """The one source of randomness, plus point sampling inside the outline."""

    def __init__(self, area: Area, seed: int) -> None:
        self.rng = random.Random(f"{area.id}/{seed}")
        self.area = area
        self.min_lat, self.min_lon, self.max_lat, self.max_lon = area.bbox()

    def below(self, n: int) -> int:
        return self.rng.randrange(n)

    def pick(self, items: Sequence[Any]) -> Any:
        return items[self.rng.randrange(len(items))]

    def weighted(self, items: Sequence[tuple[str, int]]) -> str:
        roll = self.rng.randrange(sum(w for _, w in items))
        for item, weight in items:
            if roll < weight:
                return item
            roll -= weight
        raise AssertionError("unreachable")

    def shuffle(self, items: list[Any]) -> None:
        """Fisher-Yates with randrange (``random.shuffle`` may change between versions)."""
        for i in range(len(items) - 1, 0, -1):
            j = self.rng.randrange(i + 1)
            items[i], items[j] = items[j], items[i]

    def point(self) -> LonLat:
        """Uniform over the outline, by rejection from its bounding box."""
        while True:
            lat = self.min_lat + self.rng.random() * (self.max_lat - self.min_lat)
            lon = self.min_lon + self.rng.random() * (self.max_lon - self.min_lon)
            if self.area.contains(lat, lon):
                return _rounded(lon, lat)

    def near(self, centre: LonLat, min_m: float, max_m: float) -> LonLat:
        """Uniform over the ring around ``centre`` (area-uniform), inside the outline."""
        lon0, lat0 = centre
        for _ in range(100):
            r = math.sqrt(min_m**2 + self.rng.random() * (max_m**2 - min_m**2))
            bearing = self.rng.random() * 2 * math.pi
            dlat = math.degrees(r * math.cos(bearing) / EARTH_RADIUS_M)
            dlon = math.degrees(
                r * math.sin(bearing) / (EARTH_RADIUS_M * math.cos(math.radians(lat0)))
            )
            if self.area.contains(lat0 + dlat, lon0 + dlon):
                return _rounded(lon0 + dlon, lat0 + dlat)
        return centre  # the centre is inside; a ring that never is would be a tiny town


def _rounded(lon: float, lat: float) -> LonLat:
    return round(lon, 6), round(lat, 6)


@dataclass
class _Feature:
    id: str
    kind: Kind
    at: LonLat
    props: dict[str, Any]


@dataclass
class _Town:
    features: list[_Feature] = field(default_factory=list)
    volunteers: list[dict[str, str]] = field(default_factory=list)
    radios: list[dict[str, str]] = field(default_factory=list)

    def add(self, fid: str, kind: Kind, at: LonLat, name_zh: str, **props: Any) -> _Feature:
        feature = _Feature(
            fid, kind, at, {"id": fid, "kind": kind.value, "name_zh": name_zh, **props}
        )
        self.features.append(feature)
        return feature


def generate(town: str, seed: int, name: str | None = None) -> dict[str, bytes]:
    """File name -> contents of a synthetic registry for ``town``."""
    area = town_outline(town, seed, name)
    plan = PLANS.get(town, TownPlan())
    draw = _Draw(area, seed)
    t = _Town()
    centres = [(c, draw.point()) for c in names.COMMUNITIES]

    zones = _zones_and_units(draw, t, plan, centres)
    shops = [f for f in t.features if f.kind is Kind.UNIT and f.props["unit_type"] == "shop"]
    frontage = _frontage_points(draw, t, plan, shops)
    schools = _schools(draw, t, plan, centres)
    observers = [_observer(draw, t, i + 1) for i in range(plan.observers)]
    _equipment_points(draw, t, plan, centres)
    pools = _volunteer_pools(draw, t, plan)

    def enlist(group: _Feature | None, prefer: Sequence[Role], unit: str = "") -> str:
        role = next((r for r in prefer if pools[r]), None) or next(r for r in Role if pools[r])
        vid = pools[role].popleft()
        row = t.volunteers[int(vid[1:]) - 1]
        row["group_id"] = group.id if group else ""
        row["unit_id"] = unit
        return vid

    for obs in observers:
        obs.props["holder"] = enlist(obs, (Role.VOLUNTEER,))
    leaders: list[tuple[str, str]] = []  # (volunteer id, talk group) in radio order
    school_leads = []
    for school in schools:
        posts = [enlist(school, (Role.PARENT, Role.VOLUNTEER)) for _ in range(7 + draw.below(3))]
        school_leads.append((posts[0], "TG-SCHOOL"))
    for point in frontage:
        enlist(point, (Role.SHOP_MANAGER,), point.props["unit_id"])
    for zone, units in zones:
        is_key = zone.kind is Kind.KEY_ZONE
        count = plan.zone_members if is_key else plan.watch_members
        prefer = (
            (Role.SECURITY_GUARD, Role.PROPERTY_STAFF, Role.SHOP_MANAGER)
            if is_key
            else (Role.BUILDING_HEAD, Role.PROPERTY_STAFF, Role.SHOP_MANAGER)
        )
        members = [enlist(zone, prefer, units[i % len(units)]) for i in range(count)]
        if is_key:
            leaders.append((members[0], f"TG-{zone.id}"))
    leaders.extend(school_leads)
    leaders.extend(_patrol_teams(draw, t, plan, centres, enlist))
    for _ in range(plan.publicity):
        vid = enlist(None, (Role.SHOP_MANAGER, Role.VOLUNTEER, Role.BUILDING_HEAD))
        t.volunteers[int(vid[1:]) - 1]["publicity"] = "1"
    _radios(t, plan, leaders)
    return _render(t, area, seed, plan)


def _zones_and_units(
    draw: _Draw, t: _Town, plan: TownPlan, centres: list[tuple[str, LonLat]]
) -> list[tuple[_Feature, list[str]]]:
    zones: list[tuple[_Feature, list[str]]] = []
    unit_seq = 0
    for kind, count, prefix in (
        (Kind.KEY_ZONE, plan.key_zones, "KZ"),
        (Kind.WATCH_GROUP, plan.watch_groups, "WG"),
    ):
        for n in range(1, count + 1):
            community, centre = draw.pick(centres)
            at = draw.near(centre, 0, 3000)
            units = []
            for _ in range(10 + draw.below(5)):
                unit_seq += 1
                uid = f"U{unit_seq:05d}"
                unit_type = draw.weighted(UNIT_TYPES)
                t.add(
                    uid,
                    Kind.UNIT,
                    draw.near(at, 30, 400),
                    _unit_name(draw, community, unit_type, unit_seq),
                    unit_type=unit_type,
                )
                units.append(uid)
            name = (
                f"先莞队{community}{n:03d}号防区"
                if kind is Kind.KEY_ZONE
                else f"{community}邻里守望{n:03d}组"
            )
            zone = t.add(
                f"{prefix}{n:03d}", kind, at, name, community=community, linked_units=units
            )
            zones.append((zone, units))
    return zones


def _unit_name(draw: _Draw, community: str, unit_type: str, seq: int) -> str:
    if unit_type == "shop":
        return f"{community}{draw.pick(names.SHOPS)}{seq:05d}"
    if unit_type == "building":
        return f"{community}{draw.pick(names.BUILDINGS)}{1 + draw.below(30)}栋"
    if unit_type == "security_post":
        return f"{community}{draw.pick(names.SECURITY_POSTS)}"
    return f"{community}{draw.pick(names.PROPERTY_OFFICES)}"


def _frontage_points(
    draw: _Draw, t: _Town, plan: TownPlan, shops: list[_Feature]
) -> list[_Feature]:
    """A door-front point at each of ``plan.frontage_points`` distinct shops."""
    chosen = list(shops)
    draw.shuffle(chosen)
    if len(chosen) < plan.frontage_points:
        raise UsageError(f"only {len(chosen)} shops for {plan.frontage_points} frontage points")
    chosen = sorted(chosen[: plan.frontage_points], key=lambda f: f.id)
    return [
        t.add(
            f"FP{n:04d}",
            Kind.FRONTAGE_POINT,
            shop.at,
            f"{shop.props['name_zh']}门前三包点",
            radius_m=100,
            unit_id=shop.id,
        )
        for n, shop in enumerate(chosen, 1)
    ]


def _schools(
    draw: _Draw, t: _Town, plan: TownPlan, centres: list[tuple[str, LonLat]]
) -> list[_Feature]:
    out = []
    n = 0
    for school_type, count in plan.schools.items():
        for i in range(1, count + 1):
            n += 1
            community, centre = draw.pick(centres)
            name = f"塘厦{community}第{i}{SCHOOL_NAMES[school_type]}"
            out.append(
                t.add(
                    f"SCH{n:03d}",
                    Kind.SCHOOL,
                    draw.near(centre, 0, 2500),
                    name,
                    school_type=school_type,
                    gate_windows=list(GATE_WINDOWS[school_type]),
                    min_posts=6,
                )
            )
    return out


def _observer(draw: _Draw, t: _Town, n: int) -> _Feature:
    vehicle = draw.weighted((("e_bike", 60), ("motorbike", 15), ("car", 25)))
    platform = draw.pick(
        ("滴滴", "货拉拉") if vehicle == "car" else ("美团", "饿了么", "顺丰", "京东")
    )
    return t.add(
        f"OB{n:03d}",
        Kind.OBSERVER,
        draw.point(),
        f"流动观察哨{n:03d}({platform})",
        holder="",
        vehicle=vehicle,
        platform=platform,
    )


def _equipment_points(
    draw: _Draw, t: _Town, plan: TownPlan, centres: list[tuple[str, LonLat]]
) -> None:
    for n in range(1, plan.equipment_points + 1):
        community, centre = centres[(n - 1) % len(centres)]
        items: dict[str, int] = {}
        for item, total in plan.equipment.items():
            share, extra = divmod(total, plan.equipment_points)
            items[item.value] = share + (1 if n <= extra else 0)
        if n <= plan.aed_points:
            items[Equipment.AED.value] = 1
        t.add(
            f"EQ{n:02d}",
            Kind.EQUIPMENT_POINT,
            draw.near(centre, 0, 300),
            f"{community}警务室义警装备点",
            items=items,
        )


def _volunteer_pools(draw: _Draw, t: _Town, plan: TownPlan) -> dict[Role, deque[str]]:
    roles = [role for role, count in plan.roles.items() for _ in range(count)]
    draw.shuffle(roles)
    pools: dict[Role, deque[str]] = {role: deque() for role in Role}
    phones = _unique_numbers(draw, len(roles))
    for i, role in enumerate(roles, 1):
        vid = f"V{i:05d}"
        pools[role].append(vid)
        t.volunteers.append(
            {
                "id": vid,
                "name_zh": names.person_name(draw.rng),
                "role": role.value,
                "phone": phones[i - 1],
                "group_id": "",
                "unit_id": "",
                "publicity": "0",
            }
        )
    return pools


def _unique_numbers(draw: _Draw, count: int) -> list[str]:
    """Distinct synthetic mobile numbers; never 14x, which the radios' SIMs use."""
    seen: set[str] = set()
    out: list[str] = []
    while len(out) < count:
        number = f"1{draw.pick('356789')}{draw.below(10**9):09d}"
        if number not in seen:
            seen.add(number)
            out.append(number)
    return out


def _patrol_teams(
    draw: _Draw, t: _Town, plan: TownPlan, centres: list[tuple[str, LonLat]], enlist: Any
) -> list[tuple[str, str]]:
    """Teams of 5-7 until ``plan.patrol_members`` are placed; returns team leaders."""
    leaders = []
    left, n = plan.patrol_members, 0
    while left > 0:
        n += 1
        size = min(left, 5 + draw.below(3))
        if 0 < left - size < 5:
            size = left  # no team smaller than five
        left -= size
        community, centre = draw.pick(centres)
        mode = draw.weighted((("car", 1), ("foot", 2)))
        shifts = (
            draw.pick((["08:00-20:00"], ["20:00-08:00"]))
            if mode == "car"
            else draw.pick((["07:00-09:00", "17:00-19:00"], ["19:00-23:00"], ["09:00-12:00"]))
        )
        team = t.add(
            f"PT{n:03d}",
            Kind.PATROL_BASE,
            draw.near(centre, 0, 1500),
            f"{community}义警{'车巡' if mode == 'car' else '步巡'}{n:03d}队",
            mode=mode,
            shifts=shifts,
        )
        members = [enlist(team, (Role.VOLUNTEER, Role.SECURITY_GUARD)) for _ in range(size)]
        leaders.append((members[0], f"TG-{team.id}"))
    return leaders


def _radios(t: _Town, plan: TownPlan, leaders: list[tuple[str, str]]) -> None:
    group_ids: dict[str, str] = {}  # the vendor numbers talk groups in creation order
    for n, (holder, group) in enumerate(leaders[: plan.radios], 1):
        group_id = group_ids.setdefault(group, f"{860200000 + len(group_ids) + 1}")
        t.radios.append(
            {
                "id": f"R{n:03d}",
                "poc_id": f"{860100000 + n}",
                "sms_number": f"1440{n:07d}",
                "talk_group": group,
                "holder": holder,
                "talk_group_id": group_id,
            }
        )


def _render(t: _Town, area: Area, seed: int, plan: TownPlan) -> dict[str, bytes]:
    files: dict[str, bytes] = {}
    for kind, name in FEATURE_FILES.items():
        feats = sorted((f for f in t.features if f.kind is kind), key=lambda f: f.id)
        lines = [
            json.dumps(
                {
                    "type": "Feature",
                    "geometry": {"type": "Point", "coordinates": list(f.at)},
                    "properties": f.props,
                },
                ensure_ascii=False,
                separators=(",", ":"),
            )
            for f in feats
        ]
        body = ",\n".join(lines)
        files[name] = f'{{"type":"FeatureCollection","features":[\n{body}\n]}}\n'.encode()
    files[VOLUNTEERS_CSV] = _csv(VOLUNTEER_COLUMNS, sorted(t.volunteers, key=lambda r: r["id"]))
    files[RADIOS_CSV] = _csv(RADIO_COLUMNS, sorted(t.radios, key=lambda r: r["id"]))
    files[AREA_FILE] = area_geojson(area)
    counts = {kind.value: sum(f.kind is kind for f in t.features) for kind in FEATURE_FILES}
    manifest = {
        "area": area.id,
        "synthetic": True,
        "generator": f"engine registry generate --town {area.id} --seed {seed}",
        "counts": {
            **counts,
            "volunteers": len(t.volunteers),
            "radios": len(t.radios),
            "patrol_members": plan.patrol_members,
        },
        "note": "Synthetic sample data: fictional names and numbers, random placement.",
    }
    files[MANIFEST] = (
        json.dumps(manifest, ensure_ascii=False, indent=2, sort_keys=True) + "\n"
    ).encode()
    return files


def _csv(columns: Sequence[str], rows: list[dict[str, str]]) -> bytes:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(columns), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue().encode("utf-8")


def write_registry(out: Path, files: dict[str, bytes]) -> None:
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out}: exists and is not a directory")
    out.mkdir(parents=True, exist_ok=True)
    for name, data in sorted(files.items()):
        (out / name).write_bytes(data)


def known_towns() -> list[str]:
    """Towns with a shipped outline; any other id gets a synthetic one."""
    return sorted(OUTLINES)
