"""Response plans: which groups to call for each incident type and priority, the ack
quorum and timeout of each stage, and the escalation ladder.

A plan is a YAML file validated by pydantic. ``plan_version`` is a hash of the file's
bytes, stamped on every decision, so a replay can tell which plan decided what.
"""

from __future__ import annotations

import hashlib
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from engine.errors import ConfigError
from engine.models import IncidentType, Priority
from engine.registry.models import Equipment
from engine.yamlfile import parse_yaml


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Quorum(_Frozen):
    """Accepts needed before the stage counts as answered: the zone team itself (any
    member's accept) and at least ``linked_units`` distinct linked units."""

    zone_team: bool = True
    linked_units: int = Field(default=3, ge=0)

    @property
    def size(self) -> int:
        return int(self.zone_team) + self.linked_units


class Stage(_Frozen):
    """What one stage adds. Stage 0 is the first call-out; each later stage is one rung
    of the escalation ladder, run when the previous stage missed its quorum in time.
    Stages add recipients; nobody already called is called again."""

    key_zones: int = Field(
        default=1, ge=0, description="more key zone teams (next nearest not yet called)"
    )
    linked_units: int = Field(default=10, ge=0, description="linked units per zone: 1+10")
    max_distance_m: float = Field(default=2000, gt=0, description="zone search radius")
    watch_groups: int = Field(default=0, ge=0, description="nearest watch groups (1+10 each)")
    frontage: bool = Field(default=True, description="door-front points covering the scene")
    patrol: bool = Field(default=False, description="nearest on-duty patrol team")
    schools_within_m: float | None = Field(
        default=None, gt=0, description="school-gate posts on duty within this radius"
    )
    observers_within_m: float | None = Field(
        default=None, gt=0, description="lookout broadcast to mobile observers"
    )
    command_centre: bool = Field(default=False, description="alert the command centre")
    quorum: Quorum = Quorum()
    ack_timeout_s: float = Field(default=45, gt=0, le=3600)


class Response(_Frozen):
    """A response for some incident types and priorities; the first match wins."""

    name: str = Field(min_length=1)
    types: tuple[IncidentType, ...] = Field(min_length=1)
    priorities: tuple[Priority, ...] = (Priority.P1, Priority.P2, Priority.P3, Priority.P4)
    stages: tuple[Stage, ...] = Field(min_length=1)
    preempt: tuple[Priority, ...] = Field(
        default=(), description="may take a zone team committed to these priorities"
    )
    equipment: tuple[Equipment, ...] = Field(
        default=(), description="name the nearest point holding these"
    )
    emergency: bool = Field(
        default=True, description="an emergency call-out: never the publicity vanguard"
    )

    @model_validator(mode="after")
    def _check(self) -> Response:
        for p in self.preempt:
            if p in self.priorities and _rank(p) <= min(_rank(q) for q in self.priorities):
                raise ValueError(f"preempt {p} would let a response preempt its own priority")
        return self


class CommandCentre(_Frozen):
    id: str = "command-centre"
    name_zh: str = "塘厦义警指挥中心"
    radio_id: str | None = Field(default=None, description="handset on the centre's desk")
    sms_number: str | None = Field(default=None, pattern=r"^1\d{10}$")


class LadderStep(_Frozen):
    """One rung of a recipient's channel ladder: how to reach a contact that holds a PoC
    handset, ``after_s`` seconds after the stage's call-out, if nothing was delivered
    to (nor heard from) that contact by then.

    ``poc_group``: a group call to the handset's talk group (spoken text); ``poc_single``:
    a single call to the handset (spoken text); ``sms``: a text to the handset's SIM;
    ``sms_phone``: a text to the holder's own phone (a PoC outage is not a phone outage).
    """

    channel: Literal["poc_group", "poc_single", "sms", "sms_phone"]
    after_s: float = Field(default=0, ge=0, le=3600)


class Plan(_Frozen):
    name: str = Field(min_length=1)
    timezone: str = Field(default="Asia/Shanghai", description="for duty windows")
    observer_max_age_s: float = Field(
        default=300, gt=0, description="an observer fix older than this is not used"
    )
    observer_home_fallback: bool = Field(
        default=False, description="use an observer's registry position when it has no fix"
    )
    school_days: tuple[int, ...] = Field(
        default=(1, 2, 3, 4, 5), description="ISO weekdays with gate duty (1 = Monday)"
    )
    frontage_max_points: int = Field(default=20, ge=1, description="cap per stage")
    observers_max: int = Field(default=50, ge=1, description="cap per lookout broadcast")
    command_centre: CommandCentre = CommandCentre()
    responses: tuple[Response, ...] = Field(min_length=1)
    ladders: dict[str, tuple[LadderStep, ...]] = Field(
        default_factory=dict,
        description="recipient kind -> the channel ladder for its contacts with a PoC "
        "handset (first step at 0 s); kinds not listed, and contacts without a handset, "
        "get one SMS. Every PoC step's text also goes by SMS to the handset, as the record.",
    )

    @model_validator(mode="after")
    def _ladders_ordered(self) -> Plan:
        for kind, steps in self.ladders.items():
            if not steps:
                raise ValueError(f"ladders.{kind}: at least one step")
            if steps[0].after_s != 0:
                raise ValueError(f"ladders.{kind}: the first step is at after_s 0")
            times = [s.after_s for s in steps]
            if times != sorted(times) or len(set(times)) != len(times):
                raise ValueError(f"ladders.{kind}: after_s must increase step by step")
            channels = [s.channel for s in steps]
            if len(set(channels)) != len(channels):
                raise ValueError(f"ladders.{kind}: a channel at most once per ladder")
        return self

    @model_validator(mode="after")
    def _every_type_and_priority_covered(self) -> Plan:
        missing = [
            f"{t.value}/{p.value}"
            for t in IncidentType
            for p in Priority
            if self.response_for(t, p) is None
        ]
        if missing:
            raise ValueError(
                "no response for "
                + ", ".join(missing[:8])
                + (" ..." if len(missing) > 8 else "")
                + "; add a catch-all response (types: all types, no priorities limit)"
            )
        return self

    def response_for(self, kind: IncidentType, priority: Priority) -> Response | None:
        for response in self.responses:
            if kind in response.types and priority in response.priorities:
                return response
        return None


def _rank(p: Priority) -> int:
    return int(p.value[1])


class LoadedPlan:
    """A validated plan with its version (hash of the file's bytes) and origin."""

    __slots__ = ("origin", "plan", "version")

    def __init__(self, plan: Plan, version: str, origin: str) -> None:
        self.plan = plan
        self.version = version
        self.origin = origin


def plan_version(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()[:16]


DEFAULT_PLAN_RESOURCE = "plan-tangxia.yaml"


def default_plan_bytes() -> bytes:
    return resources.files("engine.resources").joinpath(DEFAULT_PLAN_RESOURCE).read_bytes()


def load_plan(path: Path | str | None = None) -> LoadedPlan:
    """The plan at ``path`` (default: the shipped Tangxia plan), or ConfigError with the
    file, line, column and field path of every problem."""
    if path is None:
        data, origin = default_plan_bytes(), f"<built-in {DEFAULT_PLAN_RESOURCE}>"
    else:
        origin = str(path)
        try:
            data = Path(path).read_bytes()
        except OSError as exc:
            raise ConfigError(f"{origin}: cannot read plan: {exc.strerror or exc}") from exc
    return parse_plan(data, origin)


def parse_plan(data: bytes, origin: str) -> LoadedPlan:
    plan = parse_yaml(Plan, data, origin, "plan", "a mapping with 'name' and 'responses'")
    return LoadedPlan(plan, plan_version(data), origin)


def plan_json_schema() -> dict[str, Any]:
    schema = Plan.model_json_schema()
    schema["$id"] = "https://tangxia-engine.invalid/schemas/plan.schema.json"
    return schema
