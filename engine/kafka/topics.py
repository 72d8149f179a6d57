"""`engine topics ensure`: every topic of DESIGN.md §4 with its settings.

The comparison of wanted and existing topics is pure (:func:`compare`), so it is unit
tested without a broker; :func:`ensure_topics` is the thin admin-client adapter.
Existing topics with other settings are reported, never altered silently: changing
partitions of a keyed topic moves keys between partitions, a decision for an operator.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import KafkaError

from engine.config import ALL_TOPICS, Settings
from engine.errors import KafkaUnavailable
from engine.kafka.connection import client_kwargs

DAY_MS = 24 * 60 * 60 * 1000

# Logical topics whose history is the audit trail of a response: kept >= retention_days.
AUDIT_TOPICS = frozenset(
    {"incidents", "decisions", "callouts", "acks", "deadletter", "audit", "broadcasts"}
)


@dataclass(frozen=True, slots=True)
class TopicSpec:
    logical: str
    name: str
    partitions: int
    replication_factor: int
    configs: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ExistingTopic:
    name: str
    partitions: int
    replication_factor: int
    configs: dict[str, str]


@dataclass(frozen=True, slots=True)
class TopicReport:
    created: list[str]
    unchanged: list[str]
    mismatched: dict[str, list[str]]  # topic -> differences, one line each

    @property
    def ok(self) -> bool:
        return not self.mismatched


def wanted_topics(settings: Settings) -> list[TopicSpec]:
    rf = settings.replication_factor
    specs = []
    for logical in ALL_TOPICS:
        configs = {"min.insync.replicas": str(min(2, rf))}
        if logical in ("incident-state", "area-state"):
            # the live board needs the latest state per incident, forever
            configs["cleanup.policy"] = "compact"
        else:
            configs["cleanup.policy"] = "delete"
            days = settings.retention_days if logical in AUDIT_TOPICS else 7
            configs["retention.ms"] = str(days * DAY_MS)
        specs.append(
            TopicSpec(
                logical=logical,
                name=settings.topic(logical),
                partitions=settings.partitions_of(logical),
                replication_factor=rf,
                configs=configs,
            )
        )
    return specs


def compare(
    wanted: list[TopicSpec], existing: dict[str, ExistingTopic]
) -> tuple[list[TopicSpec], list[str], dict[str, list[str]]]:
    """(to create, unchanged names, mismatches by name) for the wanted topics."""
    to_create: list[TopicSpec] = []
    unchanged: list[str] = []
    mismatched: dict[str, list[str]] = {}
    for spec in wanted:
        have = existing.get(spec.name)
        if have is None:
            to_create.append(spec)
            continue
        diffs = []
        if have.partitions != spec.partitions:
            diffs.append(f"partitions {have.partitions}, configured {spec.partitions}")
        if have.replication_factor != spec.replication_factor:
            diffs.append(
                f"replication factor {have.replication_factor}, "
                f"configured {spec.replication_factor}"
            )
        for key, value in sorted(spec.configs.items()):
            if have.configs.get(key) != value:
                diffs.append(f"{key}={have.configs.get(key)}, configured {value}")
        if diffs:
            mismatched[spec.name] = diffs
        else:
            unchanged.append(spec.name)
    return to_create, unchanged, mismatched


async def _describe(
    admin: AIOKafkaAdminClient, names: list[str], keys: set[str]
) -> dict[str, ExistingTopic]:
    present = set(await admin.list_topics())
    names = [n for n in names if n in present]
    if not names:
        return {}
    meta = {t["topic"]: t for t in await admin.describe_topics(names)}
    responses = await admin.describe_configs(
        [ConfigResource(ConfigResourceType.TOPIC, n) for n in names]
    )
    configs: dict[str, dict[str, str]] = {}
    for response in responses:
        for resource in response.to_object()["resources"]:
            entries = resource["config_entries"]
            configs[resource["resource_name"]] = {
                e["config_names"]: e["config_value"] for e in entries if e["config_names"] in keys
            }
    out = {}
    for name in names:
        partitions = meta[name]["partitions"]
        rf = len(partitions[0]["replicas"]) if partitions else 0
        out[name] = ExistingTopic(name, len(partitions), rf, configs.get(name, {}))
    return out


async def ensure_topics(settings: Settings) -> TopicReport:
    wanted = wanted_topics(settings)
    keys = {k for spec in wanted for k in spec.configs}
    admin = AIOKafkaAdminClient(**client_kwargs(settings), request_timeout_ms=15000)
    try:
        try:
            await admin.start()
        except (KafkaError, OSError) as exc:
            raise KafkaUnavailable(
                f"no Kafka answers at {settings.kafka_bootstrap}: {exc}"
            ) from exc
        existing = await _describe(admin, [s.name for s in wanted], keys)
        to_create, unchanged, mismatched = compare(wanted, existing)
        created: list[str] = []
        if to_create:
            response = await admin.create_topics(
                [
                    NewTopic(s.name, s.partitions, s.replication_factor, topic_configs=s.configs)
                    for s in to_create
                ]
            )
            raced = _raise_on_errors(response.to_object())
            created = [s.name for s in to_create if s.name not in raced]
            # The broker's metadata lags a CreateTopics answer: return only once every
            # topic is visible, so the next caller (or a second `ensure`) sees them.
            await _wait_visible(admin, [s.name for s in wanted])
            if raced:  # created meanwhile by someone else: check them like any other
                again = await _describe(admin, sorted(raced), keys)
                _, more_unchanged, more_mismatched = compare(
                    [s for s in wanted if s.name in raced], again
                )
                unchanged += more_unchanged
                mismatched.update(more_mismatched)
        return TopicReport(created=created, unchanged=unchanged, mismatched=mismatched)
    finally:
        with contextlib.suppress(Exception):
            await admin.close()


TOPIC_ALREADY_EXISTS = 36


def _raise_on_errors(obj: dict[str, Any]) -> set[str]:
    """Raise on real errors; return the topics another client created first."""
    raced = set()
    errors = []
    for t in obj.get("topic_errors", []):
        if t["error_code"] == TOPIC_ALREADY_EXISTS:
            raced.add(t["topic"])
        elif t["error_code"] != 0:
            errors.append(f"{t['topic']}: error {t['error_code']} {t.get('error_message') or ''}")
    if errors:
        raise KafkaUnavailable("creating topics failed: " + "; ".join(e.strip() for e in errors))
    return raced


async def _wait_visible(
    admin: AIOKafkaAdminClient, names: list[str], within_s: float = 15.0
) -> None:
    deadline = asyncio.get_running_loop().time() + within_s
    while True:
        present = set(await admin.list_topics())
        missing = [n for n in names if n not in present]
        if not missing:
            return
        if asyncio.get_running_loop().time() > deadline:
            raise KafkaUnavailable(
                f"topics created but not visible after {within_s:.0f} s: {missing}"
            )
        await asyncio.sleep(0.1)
