"""Parsing records off the wire: a valid model, or a DeadLetter saying why not.

Pure: bytes in, a value out. An incident without ``id`` or ``raised_at`` gets them
derived from its place in the log (topic, partition, offset, record timestamp), so that
re-reading the same record after a crash gives the same incident, not a new one.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TypeVar

from pydantic import BaseModel, ValidationError

from engine.models import SUPPORTED_VERSIONS, DeadLetter, Incident
from engine.rules.intake import OutOfArea, with_area

M = TypeVar("M", bound=BaseModel)

_ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"


@dataclass(frozen=True, slots=True)
class Origin:
    topic: str
    partition: int
    offset: int
    timestamp_ms: int
    key: bytes | None

    @property
    def timestamp(self) -> datetime:
        return datetime.fromtimestamp(self.timestamp_ms / 1000, UTC)

    def dead_letter(self, value: bytes | None, error: str, reason: str) -> DeadLetter:
        import base64

        return DeadLetter.for_bytes(
            value,
            topic=self.topic,
            error=error,
            reason=reason,
            partition=self.partition,
            offset=self.offset,
            original_key_b64=base64.b64encode(self.key).decode("ascii") if self.key else None,
        )


def _first_error(exc: ValidationError) -> tuple[str, str]:
    """(reason, message) for the first problem, in the dead-letter vocabulary."""
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err["loc"]) or "(record)"
    message = f"{where}: {err['msg']}"
    if err["loc"] and err["loc"][0] == "schema_version":
        return "unsupported_version", message
    return "invalid", message


def parse(model: type[M], value: bytes | None, origin: Origin) -> M | DeadLetter:
    """A model from a record value, or the DeadLetter to publish instead."""
    if value is None:
        return origin.dead_letter(value, "empty value (tombstone) on a data topic", "invalid")
    try:
        raw = json.loads(value)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        return origin.dead_letter(value, f"not JSON: {exc}", "not_json")
    if not isinstance(raw, dict):
        return origin.dead_letter(value, "not a JSON object", "invalid")
    version = raw.get("schema_version", 1)
    if version not in SUPPORTED_VERSIONS:
        return origin.dead_letter(
            value,
            f"schema_version {version!r}: this engine reads {sorted(SUPPORTED_VERSIONS)}",
            "unsupported_version",
        )
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        reason, message = _first_error(exc)
        return origin.dead_letter(value, message, reason)


def derived_id(origin: Origin) -> str:
    """A stable id for an incident that came without one: same record, same id."""
    digest = hashlib.sha256(f"{origin.topic}/{origin.partition}/{origin.offset}".encode()).digest()
    tail = "".join(_ALPHABET[b % len(_ALPHABET)] for b in digest[:6])
    return f"INC-{origin.timestamp:%Y%m%d}-{tail}"


def parse_incident(value: bytes | None, origin: Origin) -> Incident | DeadLetter:
    """A valid incident with its area, or why not (not JSON, wrong schema, unknown enum,
    unsupported version, out of area). Dead letters keep the original bytes."""
    original = value
    if value is not None:
        try:
            raw = json.loads(value)
        except (UnicodeDecodeError, json.JSONDecodeError):
            raw = None
        if isinstance(raw, dict):
            raw.setdefault("id", derived_id(origin))
            raw.setdefault("raised_at", origin.timestamp.isoformat())
            value = json.dumps(raw).encode("utf-8")
    parsed = parse(Incident, value, origin)
    if isinstance(parsed, DeadLetter):
        return origin.dead_letter(original, parsed.error, parsed.reason)
    try:
        return with_area(parsed)
    except OutOfArea as exc:
        return origin.dead_letter(original, str(exc), "out_of_area")
