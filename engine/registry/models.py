"""The registry's entities: who can respond, where they are, how to reach them.

Placed things come from GeoJSON Point features (their ``properties`` plus the geometry
as ``location``); volunteers and radios from CSV rows. Every entity has a stable string
``id`` and is frozen. Unknown fields are refused so a typo in a column or property name
shows up in ``engine registry check`` instead of silently losing data.
"""

from __future__ import annotations

from datetime import time
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from engine.models import Location

Id = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")]
"""Stable ids: ASCII, so they survive SMS, radio read-outs and Excel round trips."""

PhoneNumber = Annotated[str, Field(pattern=r"^1\d{10}$")]
"""Mainland China mobile number, 11 digits, no country code."""


class Kind(StrEnum):
    KEY_ZONE = "key_zone"  # 应急响应重点防区 (先莞队)
    WATCH_GROUP = "watch_group"  # 邻里守望联防组
    UNIT = "unit"  # a shop, building, security post or property office linked to a zone
    FRONTAGE_POINT = "frontage_point"  # 门前三包责任点
    SCHOOL = "school"  # 警校家护学岗
    PATROL_BASE = "patrol_base"  # 义警巡防组: one team and where it starts from
    OBSERVER = "observer"  # 流动观察哨: a rider or driver; the position moves
    EQUIPMENT_POINT = "equipment_point"  # shields, forks, batons, AEDs kept here


class UnitType(StrEnum):
    SHOP = "shop"
    BUILDING = "building"
    SECURITY_POST = "security_post"
    PROPERTY_OFFICE = "property_office"


class Role(StrEnum):
    BUILDING_HEAD = "building_head"  # 楼栋长
    SHOP_MANAGER = "shop_manager"  # 店长
    PROPERTY_STAFF = "property_staff"  # 物管员
    SECURITY_GUARD = "security_guard"  # 保安员
    VOLUNTEER = "volunteer"  # 志愿者, riders and drivers, charity groups
    PARENT = "parent"  # 学生家长


class SchoolType(StrEnum):
    KINDERGARTEN = "kindergarten"
    PRIMARY = "primary"
    SECONDARY = "secondary"


class PatrolMode(StrEnum):
    CAR = "car"  # 车巡
    FOOT = "foot"  # 步巡


class Vehicle(StrEnum):
    E_BIKE = "e_bike"
    MOTORBIKE = "motorbike"
    CAR = "car"


class Equipment(StrEnum):
    VEST = "vest"
    SHOULDER_LAMP = "shoulder_lamp"
    WHISTLE = "whistle"
    SHIELD = "shield"
    RESTRAINT_FORK = "restraint_fork"  # 钢叉
    BATON = "baton"
    AED = "aed"


class TimeWindow(BaseModel):
    """A daily window, local time. Written ``"HH:MM-HH:MM"``; an end before the start
    crosses midnight (a night patrol ``"20:00-08:00"``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    start: time
    end: time

    @model_validator(mode="before")
    @classmethod
    def _parse(cls, value: Any) -> Any:
        if isinstance(value, str):
            start, sep, end = value.partition("-")
            if not sep:
                raise ValueError(f"time window {value!r} is not HH:MM-HH:MM")
            return {"start": start.strip(), "end": end.strip()}
        return value

    def contains(self, at: time) -> bool:
        if self.start <= self.end:
            return self.start <= at < self.end
        return at >= self.start or at < self.end

    def __str__(self) -> str:
        return f"{self.start:%H:%M}-{self.end:%H:%M}"


class Entity(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    id: Id


class Placed(Entity):
    """A thing on the map. ``location`` comes from the feature's geometry."""

    kind: Kind
    name_zh: str = Field(min_length=1, max_length=80)
    location: Location


class KeyZone(Placed):
    """A key response zone team (先莞队) and its "1+10" linked units."""

    kind: Literal[Kind.KEY_ZONE] = Kind.KEY_ZONE
    community: str = ""
    linked_units: tuple[Id, ...]


class WatchGroup(Placed):
    """A neighbourhood watch group (邻里守望联防组), also dispatched "1+10"."""

    kind: Literal[Kind.WATCH_GROUP] = Kind.WATCH_GROUP
    community: str = ""
    linked_units: tuple[Id, ...]


class Unit(Placed):
    kind: Literal[Kind.UNIT] = Kind.UNIT
    unit_type: UnitType


class FrontagePoint(Placed):
    """A door-front responsibility point (门前三包): told of everything within radius_m."""

    kind: Literal[Kind.FRONTAGE_POINT] = Kind.FRONTAGE_POINT
    radius_m: float = Field(default=100.0, gt=0, le=1000)
    unit_id: Id | None = None


class School(Placed):
    """A school gate with gate duty (护学岗) in ``gate_windows``, at least ``min_posts``."""

    kind: Literal[Kind.SCHOOL] = Kind.SCHOOL
    school_type: SchoolType
    gate_windows: tuple[TimeWindow, ...] = Field(min_length=1)
    min_posts: int = Field(default=6, ge=1)


class PatrolBase(Placed):
    """One patrol team (义警巡防组) and the base it patrols from; members are the
    volunteers whose ``group_id`` names it."""

    kind: Literal[Kind.PATROL_BASE] = Kind.PATROL_BASE
    mode: PatrolMode
    shifts: tuple[TimeWindow, ...] = Field(min_length=1)

    def on_duty(self, at: time) -> bool:
        return any(w.contains(at) for w in self.shifts)


class Observer(Placed):
    """A mobile observation post (流动观察哨): a rider or driver. ``location`` is the
    last known fix; live positions arrive on ``unit-status``."""

    kind: Literal[Kind.OBSERVER] = Kind.OBSERVER
    holder: Id
    vehicle: Vehicle
    platform: str = ""


class EquipmentPoint(Placed):
    kind: Literal[Kind.EQUIPMENT_POINT] = Kind.EQUIPMENT_POINT
    items: dict[Equipment, Annotated[int, Field(ge=0)]]

    def has(self, item: Equipment) -> bool:
        return self.items.get(item, 0) > 0


AnyPlaced = (
    KeyZone | WatchGroup | Unit | FrontagePoint | School | PatrolBase | Observer | EquipmentPoint
)

PLACED_MODELS: dict[Kind, type[Placed]] = {
    Kind.KEY_ZONE: KeyZone,
    Kind.WATCH_GROUP: WatchGroup,
    Kind.UNIT: Unit,
    Kind.FRONTAGE_POINT: FrontagePoint,
    Kind.SCHOOL: School,
    Kind.PATROL_BASE: PatrolBase,
    Kind.OBSERVER: Observer,
    Kind.EQUIPMENT_POINT: EquipmentPoint,
}

GROUP_KINDS = frozenset(
    {
        Kind.KEY_ZONE,
        Kind.WATCH_GROUP,
        Kind.FRONTAGE_POINT,
        Kind.SCHOOL,
        Kind.PATROL_BASE,
        Kind.OBSERVER,
    }
)
"""Kinds a volunteer's ``group_id`` may name."""


class Volunteer(Entity):
    """One row of ``volunteers.csv``. ``group_id`` is the functional group the volunteer
    serves in; ``publicity`` marks the publicity vanguard (宣传先锋队: broadcasts only)."""

    name_zh: str = Field(min_length=1, max_length=40)
    role: Role
    phone: PhoneNumber
    group_id: Id | None = None
    unit_id: Id | None = None
    publicity: bool = False


class Radio(Entity):
    """One row of ``radios.csv``: a public-network PoC handset (公网对讲机)."""

    poc_id: str = Field(pattern=r"^\d{4,20}$")
    sms_number: PhoneNumber
    talk_group: str = Field(min_length=1, max_length=40)
    holder: Id
    talk_group_id: str | None = Field(
        default=None,
        pattern=r"^\d{1,10}$",
        description="the PoC vendor's numeric id of the talk group (what AT+POC dials)",
    )


VOLUNTEER_COLUMNS = ("id", "name_zh", "role", "phone", "group_id", "unit_id", "publicity")
RADIO_COLUMNS = ("id", "poc_id", "sms_number", "talk_group", "holder", "talk_group_id")
REQUIRED_VOLUNTEER_COLUMNS = ("id", "name_zh", "role", "phone")
REQUIRED_RADIO_COLUMNS = ("id", "poc_id", "sms_number", "talk_group", "holder")
