"""Settings for every engine process: frozen, from ENGINE_* variables and an optional
TOML or YAML file (``--config``). Environment variables win over the file.

Flat names keep the environment short (``ENGINE_KAFKA_BOOTSTRAP``); a file may group them
in tables: ``[kafka] bootstrap = ...`` is read as ``kafka_bootstrap``. Topic names nest:
``[topics] incidents = "..."`` or ``ENGINE_TOPICS__INCIDENTS``.

Secrets are ``SecretStr``: ``repr``, ``str`` and :func:`Settings.redacted` never show them.
"""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from engine.errors import ConfigError

SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]

DEFAULT_REGISTRY = Path(__file__).resolve().parents[1] / "data" / "tangxia"
"""The sample registry (Tangxia) that commands use when given none."""

LOGICAL_TOPICS = (
    "incidents",
    "unit-status",
    "decisions",
    "callouts",
    "acks",
    "incident-state",
    "deadletter",
)
"""The topics of DESIGN.md §4, by their logical names."""

INTERNAL_TOPICS = ("area-events", "area-state")
"""The worker's own topics, both co-partitioned with ``incidents``: ``area-events``
carries acks, unit status, operator actions and forwarded incidents to the owner of an
area; ``area-state`` (compacted) is the changelog of the areas' state, written in the
same transactions as the outputs and restored when a partition is assigned."""

GATEWAY_TOPICS = ("audit",)
"""``audit``: who did what. The radio gateway writes every handset reply it refused,
with the reason (a forged or misdirected reply leaves a trace, never an ack); the worker
writes the outcome of every operator command (applied, or refused with the reason)."""

API_TOPICS = ("commands",)
"""``commands``: operator commands (escalate, repage, reassign, note, priority, move,
cancel, close, reopen), written by the API and the CLI, keyed by dispatch area and
co-partitioned with ``incidents``: the worker applies them in order with the area's
other events and writes each outcome to ``audit``."""

BROADCAST_TOPICS = ("broadcasts", "broadcast-messages")
"""Broadcasts (issue 17). ``broadcasts`` (key: broadcast id): each broadcast's notice and
cancel (API, CLI), the gateways' per-message reports and the recipients' replies.
``broadcast-messages`` (key: the message's idempotency key): one record per SMS or PoC
group call, shared by the gateways of one consumer group."""

ALL_TOPICS = LOGICAL_TOPICS + INTERNAL_TOPICS + GATEWAY_TOPICS + API_TOPICS + BROADCAST_TOPICS

CO_PARTITIONED = ("area-events", "area-state", "commands")
"""Topics with the partition count of ``incidents``: partition p of each holds the
same dispatch areas."""


class TopicNames(BaseModel):
    """Actual topic names, per logical topic. Defaults are the logical names."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    incidents: str = "incidents"
    unit_status: str = "unit-status"
    decisions: str = "decisions"
    callouts: str = "callouts"
    acks: str = "acks"
    incident_state: str = "incident-state"
    deadletter: str = "deadletter"
    area_events: str = "engine-area-events"
    area_state: str = "engine-area-state"
    audit: str = "audit"
    commands: str = "commands"
    broadcasts: str = "broadcasts"
    broadcast_messages: str = "broadcast-messages"

    def name_of(self, logical: str) -> str:
        value: str = getattr(self, logical.replace("-", "_"))
        return value

    def items(self) -> Iterator[tuple[str, str]]:
        for logical in ALL_TOPICS:
            yield logical, self.name_of(logical)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="ENGINE_",
        env_nested_delimiter="__",
        frozen=True,
        extra="forbid",
        case_sensitive=False,
    )

    # --- Kafka connection -------------------------------------------------------------
    kafka_bootstrap: str = Field(
        default="127.0.0.1:9092", description="comma-separated host:port list"
    )
    kafka_security_protocol: SecurityProtocol = "PLAINTEXT"
    kafka_sasl_mechanism: SaslMechanism | None = None
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None
    kafka_ca_file: Path | None = Field(default=None, description="PEM CA bundle for SSL")
    kafka_client_id: str = "tangxia-engine"

    # --- topics ---------------------------------------------------------------------
    topic_prefix: str = Field(
        default="", description="prepended to every topic name (shared clusters, tests)"
    )
    topics: TopicNames = TopicNames()
    partitions: int = Field(
        default=6, ge=1, description="partitions of each keyed topic unless overridden"
    )
    topic_partitions: dict[str, int] = Field(
        default_factory=dict, description="per logical topic, e.g. {'incidents': 32}"
    )
    replication_factor: int = Field(default=1, ge=1)
    retention_days: int = Field(
        default=30, ge=30, description="incidents, decisions, acks: at least 30 days"
    )

    # --- local broker (engine broker ...) ----------------------------------------------
    data_dir: Path = Field(default=Path(".engine"), description="broker storage, logs, pid")
    broker_port: int = Field(default=9092, ge=1, le=65535)
    broker_controller_port: int = Field(default=9093, ge=1, le=65535)
    broker_heap: str = Field(default="512m", pattern=r"^\d+[kmg]$")
    jar_cache: Path | None = Field(
        default=None, description="where Maven copies the broker jars (default ~/.cache)"
    )

    # --- processes ------------------------------------------------------------------
    metrics_port: int = Field(default=9101, ge=0, le=65535)
    default_area: str = "tangxia"

    # --- radio gateway (issue 14: what it may page, how replies are checked) -----------
    radio_reply_key: SecretStr | None = Field(
        default=None,
        description="key of the per-recipient reply codes (default: a key file the "
        "gateway creates under data_dir)",
    )
    radio_reply_key_file: Path | None = Field(
        default=None, description="a file holding radio_reply_key (a mounted secret)"
    )
    radio_allow_numbers: tuple[str, ...] = Field(
        default=(),
        description="numbers outside the registry a call-out may text (the command centre)",
    )
    radio_max_sms_parts: int = Field(default=4, ge=1, le=10)
    radio_callout_ttl_s: float = Field(
        default=900.0, gt=0, description="older call-outs are dead-lettered as stale"
    )
    radio_reply_open_s: float = Field(
        default=24 * 3600.0, gt=0, description="how long a reply code is valid after its page"
    )
    radio_reply_rate: int = Field(
        default=6, ge=1, description="replies per number per radio_reply_rate_window_s"
    )
    radio_reply_rate_window_s: float = Field(default=60.0, gt=0)
    radio_broadcast_backlog: int = Field(
        default=64, ge=1, le=10_000,
        description="broadcast messages a gateway reads ahead (then it pauses reading them)",
    )  # fmt: skip

    # --- broadcasts (issue 17) ----------------------------------------------------------
    broadcast_quiet_hours: str = Field(
        default="22:00-07:00",
        pattern=r"^$|^\d\d:\d\d-\d\d:\d\d$",
        description="local time when held priorities are not broadcast ('' for none)",
    )
    broadcast_quiet_priorities: tuple[Literal["info", "warning"], ...] = Field(
        default=("info",), description="priorities held in quiet hours (never urgent)"
    )
    broadcast_timezone: str = Field(default="Asia/Shanghai", max_length=64)
    broadcast_min_group: int = Field(
        default=2, ge=1, description="handsets a talk group needs for one group call"
    )

    # --- operator API and console (issue 12) -------------------------------------------
    api_port: int = Field(default=8080, ge=0, le=65535)
    api_tokens_file: Path | None = Field(
        default=None, description="bearer-token hashes (default: data_dir/api-tokens.json)"
    )
    api_raise_per_minute: int = Field(
        default=60, ge=1, description="incidents one token may raise per minute"
    )
    api_command_timeout_s: float = Field(
        default=15.0, gt=0, description="how long a command request waits for the worker"
    )

    @property
    def tokens_path(self) -> Path:
        return self.api_tokens_file or self.data_dir / "api-tokens.json"

    @model_validator(mode="after")
    def _check(self) -> Settings:
        sasl = self.kafka_security_protocol.startswith("SASL")
        if sasl and not (self.kafka_sasl_mechanism and self.kafka_sasl_username):
            raise ValueError(
                "kafka_security_protocol SASL_* needs kafka_sasl_mechanism and "
                "kafka_sasl_username (and kafka_sasl_password)"
            )
        unknown = set(self.topic_partitions) - set(LOGICAL_TOPICS)
        if unknown:
            raise ValueError(
                f"topic_partitions names unknown topics {sorted(unknown)}; "
                f"known: {list(LOGICAL_TOPICS)}"
            )
        if self.broker_port == self.broker_controller_port:
            raise ValueError("broker_port and broker_controller_port must differ")
        return self

    # --- derived --------------------------------------------------------------------
    def topic(self, logical: str) -> str:
        """The real name of a logical topic (``incidents`` -> ``<prefix>incidents``)."""
        if logical not in ALL_TOPICS:
            raise KeyError(f"unknown topic {logical!r}; known: {', '.join(ALL_TOPICS)}")
        return self.topic_prefix + self.topics.name_of(logical)

    def partitions_of(self, logical: str) -> int:
        if logical in CO_PARTITIONED:
            logical = "incidents"
        return self.topic_partitions.get(logical, self.partitions)

    def redacted(self) -> dict[str, Any]:
        """JSON-ready dict with every secret masked: what `engine config show` prints."""
        data: dict[str, Any] = json.loads(self.model_dump_json())
        for name, field in type(self).model_fields.items():
            if field.annotation is not None and "SecretStr" in str(field.annotation):
                data[name] = None if getattr(self, name) is None else "**********"
        return data

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # No .env files: a deployment's config is its environment and its --config file.
        return init_settings, env_settings


_FLAT_GROUPS = ("kafka", "broker", "topic")


def _flatten(data: dict[str, Any]) -> dict[str, Any]:
    """``{"kafka": {"bootstrap": x}}`` -> ``{"kafka_bootstrap": x}``; other tables stay."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        key = key.replace("-", "_")
        if key in _FLAT_GROUPS and isinstance(value, dict):
            for sub_key, sub_value in value.items():
                out[f"{key}_{sub_key.replace('-', '_')}"] = sub_value
        else:
            out[key] = value
    return out


def _read_file(path: Path) -> tuple[dict[str, Any], str]:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config file: {exc.strerror or exc}") from exc
    suffix = path.suffix.lower()
    try:
        if suffix == ".toml":
            data: Any = tomllib.loads(text)
        elif suffix in {".yaml", ".yml"}:
            data = yaml.safe_load(text) or {}
        else:
            raise ConfigError(f"{path}: config file must end in .toml, .yaml or .yml")
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}:{mark.column + 1}" if mark is not None else ""
        raise ConfigError(f"{path}{where}: not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a table/mapping of settings")
    return data, text


def _line_of(text: str, loc: tuple[str | int, ...]) -> int | None:
    """Best-effort line number of a setting in a TOML/YAML file, for error messages."""
    if not loc:
        return None
    names = [str(p) for p in loc if isinstance(p, str)]
    candidates = {names[-1]}
    for group in _FLAT_GROUPS:  # kafka_bootstrap may be written as [kafka] bootstrap
        if names[0].startswith(group + "_"):
            candidates.add(names[0][len(group) + 1 :])
    for number, line in enumerate(text.splitlines(), start=1):
        for cand in candidates:
            pattern = rf"^\s*[\"']?{re.escape(cand).replace('_', '[_-]')}[\"']?\s*[=:]"
            if re.match(pattern, line):
                return number
    return None


def load_settings(config_file: str | Path | None = None, **overrides: Any) -> Settings:
    """Settings from defaults < file < ENGINE_* environment < ``overrides``.

    A bad file or value raises :class:`ConfigError` naming the file, line and field.
    """
    file_data: dict[str, Any] = {}
    text = ""
    path = Path(config_file) if config_file is not None else None
    if path is not None:
        raw, text = _read_file(path)
        file_data = _flatten(raw)

    class _FileSource(PydanticBaseSettingsSource):
        def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
            return file_data.get(field_name), field_name, False

        def __call__(self) -> dict[str, Any]:
            return dict(file_data)

    class _Loaded(Settings):
        @classmethod
        def settings_customise_sources(
            cls,
            settings_cls: type[BaseSettings],
            init_settings: PydanticBaseSettingsSource,
            env_settings: PydanticBaseSettingsSource,
            dotenv_settings: PydanticBaseSettingsSource,
            file_secret_settings: PydanticBaseSettingsSource,
        ) -> tuple[PydanticBaseSettingsSource, ...]:
            return init_settings, env_settings, _FileSource(settings_cls)

    try:
        loaded = _Loaded(**overrides)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            loc = tuple(err["loc"])
            field = ".".join(str(p) for p in loc) or "(settings)"
            line = _line_of(text, loc) if path is not None else None
            where = f"{path}:{line}" if line else (str(path) if path else "environment")
            problems.append(f"{where}: {field}: {err['msg']}")
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(problems)) from exc
    # Return the plain class so equality and pickling do not depend on the closure.
    return Settings.model_construct(**{k: getattr(loaded, k) for k in Settings.model_fields})
