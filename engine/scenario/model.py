"""A scenario file: timed incidents, operator commands and faults, and how the simulated
handsets behave (YAML; refused with file, line and field when wrong)."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from engine.broadcast.model import BroadcastIn
from engine.errors import ConfigError
from engine.geo.areas import Area
from engine.models import COMMAND_ACTIONS, IncidentType, Location, Priority
from engine.yamlfile import parse_yaml


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Handsets(_Strict):
    """The simulator's behaviour for every handset (``engine simulate handsets``)."""

    reply: Literal["accept", "decline", "on-scene", "silent", "mixed"] = "mixed"
    reply_delay_s: float = Field(default=20.0, ge=0, le=600)
    spread: float = Field(default=0.4, ge=0, le=0.9)
    """each handset answers after reply_delay_s times 1 - spread .. 1 + spread (fixed per
    handset: people do not all answer in the same second, and the order is the same on
    every run)"""
    on_scene_after_s: float = Field(default=90.0, ge=0, le=3600)
    silent: list[str] = Field(default_factory=list, max_length=200)
    """key zones, units or groups whose people never answer"""
    decline: list[str] = Field(default_factory=list, max_length=200)
    """... whose people always decline"""
    offline: list[str] = Field(default_factory=list, max_length=200)
    """... whose handsets and phones are off: nothing reaches them"""
    positions_every_s: float | None = Field(default=None, gt=0, le=3600)
    """patrol riders move: their handsets report a GPS fix this often, walking a beat"""
    sms_delay_s: tuple[float, float] | None = None
    """the network's delay per SMS, a range in seconds (broadcasts feel it)"""

    @model_validator(mode="after")
    def _delay(self) -> Handsets:
        if (
            self.sms_delay_s is not None
            and not 0 <= self.sms_delay_s[0] <= self.sms_delay_s[1] <= 60
        ):
            raise ValueError("sms_delay_s is [min, max] seconds, 0 <= min <= max <= 60")
        return self


class ScenarioIncident(_Strict):
    at_s: float = Field(ge=0, description="seconds after the start")
    name: str = Field(min_length=1, max_length=40, description="how actions refer to it")
    type: IncidentType
    priority: Priority
    location: Location
    address: str | None = Field(default=None, max_length=200)
    description: str | None = Field(default=None, max_length=2000)


class Burst(_Strict):
    """Many incidents at once (a typhoon night): ``count`` raised evenly over ``over_s``
    from ``at_s``, at seeded random places inside the dispatch area, types and
    priorities drawn by weight. Named ``<name>-001``..."""

    at_s: float = Field(default=0.0, ge=0)
    over_s: float = Field(gt=0, le=3600)
    count: int = Field(ge=1, le=5000)
    name: str = Field(min_length=1, max_length=30)
    types: dict[IncidentType, float] = Field(min_length=1)
    priorities: dict[Priority, float] = Field(min_length=1)
    description: str | None = Field(default=None, max_length=2000)
    seed: int = 1

    @model_validator(mode="after")
    def _weights(self) -> Burst:
        for field, weights in (("types", self.types), ("priorities", self.priorities)):
            if any(w <= 0 for w in weights.values()):
                raise ValueError(f"{field}: every weight must be > 0")
        return self


class ScenarioAction(_Strict):
    at_s: float = Field(ge=0)
    command: str | None = None
    """an operator command on ``incident`` (escalate, note, close, ...)"""
    incident: str | None = None
    reason: str | None = Field(default=None, max_length=500)
    zone_id: str | None = None
    fault: Literal["kill_worker", "kill_gateway", "unplug_radio"] | None = None
    """``kill_worker``/``kill_gateway``: SIGKILL it and start it again at once (state comes
    back from Kafka); ``unplug_radio``: the serial cable is pulled for ``for_s``"""
    for_s: float = Field(default=5.0, gt=0, le=600)
    unit: str | None = Field(default=None, max_length=64)
    """a unit going off or on duty (with ``available`` and ``reason``), as an admin would"""
    available: bool | None = None
    broadcast: BroadcastIn | None = None
    """a notice to many, as ``POST /v1/broadcasts`` takes it"""

    @model_validator(mode="after")
    def _one_thing(self) -> ScenarioAction:
        kinds = [
            k for k in ("command", "fault", "unit", "broadcast") if getattr(self, k) is not None
        ]
        if len(kinds) != 1:
            raise ValueError(
                "an action is exactly one of 'command' (with 'incident'), 'fault', "
                "'unit' (with 'available') or 'broadcast'"
            )
        if self.unit is not None and self.available is None:
            raise ValueError("a 'unit' action needs 'available: true|false'")
        if self.command is not None:
            if self.command not in COMMAND_ACTIONS:
                raise ValueError(f"command must be one of {', '.join(COMMAND_ACTIONS)}")
            if not self.incident:
                raise ValueError("a command needs the 'incident' it is for (its name)")
        return self


class Scenario(_Strict):
    name: str = Field(min_length=1, max_length=80)
    description: str = ""
    starts_at: AwareDatetime | None = None
    """the engine's clock as the processes start, some seconds before the first event (a
    drill: the 16:30 school run at any hour); without it, the wall clock"""
    handsets: Handsets = Handsets()
    ack_timeout_s: float | None = Field(
        default=None, gt=0, description="every stage's ack deadline (default: the plan's)"
    )
    incidents: list[ScenarioIncident] = Field(default_factory=list, max_length=2000)
    bursts: list[Burst] = Field(default_factory=list, max_length=20)
    actions: list[ScenarioAction] = Field(default_factory=list, max_length=2000)
    settle_s: float = Field(
        default=120.0, gt=0, le=3600, description="after the last event, how long to wait"
    )

    @model_validator(mode="after")
    def _names(self) -> Scenario:
        if not self.incidents and not self.bursts:
            raise ValueError("a scenario needs 'incidents' or 'bursts'")
        if sum(b.count for b in self.bursts) + len(self.incidents) > 5000:
            raise ValueError("at most 5000 incidents in one scenario")
        names = [i.name for i in self.incidents]
        names += [f"{b.name}-{n:03d}" for b in self.bursts for n in range(1, b.count + 1)]
        if len(set(names)) != len(names):
            raise ValueError("incident names must be unique")
        unknown = {a.incident for a in self.actions if a.incident} - set(names)
        if unknown:
            raise ValueError(f"actions name unknown incidents: {sorted(unknown)}")
        return self


def all_incidents(scenario: Scenario, area: Area) -> list[ScenarioIncident]:
    """The scenario's incidents with its bursts expanded (seeded: the same every run),
    in the order they are raised."""
    out = list(scenario.incidents)
    min_lat, min_lon, max_lat, max_lon = area.bbox()
    for b in scenario.bursts:
        rng = random.Random(b.seed)
        types, type_w = zip(*b.types.items(), strict=True)
        prios, prio_w = zip(*b.priorities.items(), strict=True)
        for n in range(b.count):
            while True:  # rejection sampling inside the outline
                lat, lon = rng.uniform(min_lat, max_lat), rng.uniform(min_lon, max_lon)
                if area.contains(lat, lon):
                    break
            out.append(
                ScenarioIncident(
                    at_s=round(b.at_s + b.over_s * n / b.count, 3),
                    name=f"{b.name}-{n + 1:03d}",
                    type=rng.choices(types, type_w)[0],
                    priority=rng.choices(prios, prio_w)[0],
                    location=Location(lat=round(lat, 6), lon=round(lon, 6)),
                    description=b.description,
                )
            )
    return sorted(out, key=lambda i: i.at_s)


def load_scenario(path: Path) -> Scenario:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read scenario: {exc.strerror or exc}") from exc
    return parse_yaml(Scenario, data, str(path), "scenario", "a mapping with 'incidents'")
