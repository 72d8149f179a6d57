"""A scenario file: timed incidents, operator commands and faults, and how the simulated
handsets behave (YAML; refused with file, line and field when wrong)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from engine.errors import ConfigError
from engine.models import COMMAND_ACTIONS, IncidentType, Location, Priority
from engine.yamlfile import parse_yaml


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Handsets(_Strict):
    """The simulator's behaviour for every handset (``engine simulate handsets``)."""

    reply: Literal["accept", "decline", "on-scene", "silent", "mixed"] = "mixed"
    reply_delay_s: float = Field(default=20.0, ge=0, le=600)
    on_scene_after_s: float = Field(default=90.0, ge=0, le=3600)
    silent: list[str] = Field(default_factory=list, max_length=200)
    """key zones, units or groups whose people never answer"""


class ScenarioIncident(_Strict):
    at_s: float = Field(ge=0, description="seconds after the start")
    name: str = Field(min_length=1, max_length=40, description="how actions refer to it")
    type: IncidentType
    priority: Priority
    location: Location
    address: str | None = Field(default=None, max_length=200)
    description: str | None = Field(default=None, max_length=2000)


class ScenarioAction(_Strict):
    at_s: float = Field(ge=0)
    command: str | None = None
    """an operator command on ``incident`` (escalate, note, close, ...)"""
    incident: str | None = None
    reason: str | None = Field(default=None, max_length=500)
    zone_id: str | None = None
    fault: Literal["kill_worker"] | None = None
    """SIGKILL the worker; it is started again at once (state comes back from Kafka)"""

    @model_validator(mode="after")
    def _one_thing(self) -> ScenarioAction:
        if (self.command is None) == (self.fault is None):
            raise ValueError("an action is either a 'command' (with 'incident') or a 'fault'")
        if self.command is not None:
            if self.command not in COMMAND_ACTIONS:
                raise ValueError(f"command must be one of {', '.join(COMMAND_ACTIONS)}")
            if not self.incident:
                raise ValueError("a command needs the 'incident' it is for (its name)")
        return self


class Scenario(_Strict):
    name: str = Field(min_length=1, max_length=80)
    description: str = ""
    handsets: Handsets = Handsets()
    ack_timeout_s: float | None = Field(
        default=None, gt=0, description="every stage's ack deadline (default: the plan's)"
    )
    incidents: list[ScenarioIncident] = Field(min_length=1, max_length=2000)
    actions: list[ScenarioAction] = Field(default_factory=list, max_length=2000)
    settle_s: float = Field(
        default=120.0, gt=0, le=3600, description="after the last event, how long to wait"
    )

    @model_validator(mode="after")
    def _names(self) -> Scenario:
        names = [i.name for i in self.incidents]
        if len(set(names)) != len(names):
            raise ValueError("incident names must be unique")
        unknown = {a.incident for a in self.actions if a.incident} - set(names)
        if unknown:
            raise ValueError(f"actions name unknown incidents: {sorted(unknown)}")
        return self


def load_scenario(path: Path) -> Scenario:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read scenario: {exc.strerror or exc}") from exc
    return parse_yaml(Scenario, data, str(path), "scenario", "a mapping with 'incidents'")
