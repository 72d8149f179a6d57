"""Parsing records off the wire: a valid model, or a DeadLetter saying why not.

Pure: bytes in, a value out, and no exception ever escapes (a record that makes the
parser raise anything is a dead letter naming the exception type): whatever a producer
writes, the worker goes on. An incident without ``id`` or ``raised_at`` gets them derived
from its place in the log (topic, partition, offset, record timestamp), so that reading
the same record again after a crash gives the same incident, not a new one.
"""

from __future__ import annotations

import base64
import hashlib
import json
import reprlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from engine.geo.areas import Area
from engine.models import SUPPORTED_VERSIONS, DeadLetter, Incident
from engine.rules.intake import OutOfArea, with_area

M = TypeVar("M", bound=BaseModel)

_ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"

MAX_VALUE_BYTES = 256 * 1024
"""A record value above this is not parsed: it is dead-lettered (truncated)."""
MAX_CLOCK_SKEW = timedelta(minutes=5)
"""How far ahead of the worker's clock a producer's timestamp may be."""


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

    @property
    def key_text(self) -> str:
        return (self.key or b"").decode("utf-8", "replace")

    def dead_letter(self, value: bytes | None, error: str, reason: str) -> DeadLetter:
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


def _json_object(value: bytes | None, origin: Origin) -> dict[str, Any] | DeadLetter:
    """The value as a JSON object of a known schema version, or why not."""
    if value is None:
        return origin.dead_letter(value, "empty value (tombstone) on a data topic", "invalid")
    if len(value) > MAX_VALUE_BYTES:
        return origin.dead_letter(
            value, f"value of {len(value)} bytes; at most {MAX_VALUE_BYTES}", "too_large"
        )
    try:
        raw = json.loads(value)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        return origin.dead_letter(value, f"not JSON: {exc}", "not_json")
    except RecursionError:
        return origin.dead_letter(value, "JSON nested too deeply", "invalid")
    if not isinstance(raw, dict):
        return origin.dead_letter(value, "not a JSON object", "invalid")
    version = raw.get("schema_version", 1)
    if type(version) is not int or version not in SUPPORTED_VERSIONS:
        return origin.dead_letter(
            value,
            f"schema_version {reprlib.repr(version)}: this engine reads "
            f"{sorted(SUPPORTED_VERSIONS)}",
            "unsupported_version",
        )
    return raw


def _guarded(origin: Origin, value: bytes | None, build: Any) -> Any:
    """``build()``, or a dead letter naming the exception it raised."""
    try:
        return build()
    except ValidationError as exc:
        reason, message = _first_error(exc)
        return origin.dead_letter(value, message, reason)
    except RecursionError:
        return origin.dead_letter(value, "value nested too deeply", "invalid")
    except OutOfArea as exc:
        return origin.dead_letter(value, str(exc), "out_of_area")
    except Exception as exc:  # anything else a hostile value provokes: never a crash
        return origin.dead_letter(value, f"{type(exc).__name__}: {exc}", "invalid")


def parse(model: type[M], value: bytes | None, origin: Origin) -> M | DeadLetter:
    """A model from a record value, or the DeadLetter to publish instead."""
    raw = _json_object(value, origin)
    if isinstance(raw, DeadLetter):
        return raw
    result: M | DeadLetter = _guarded(origin, value, lambda: model.model_validate(raw))
    return result


def derived_id(origin: Origin) -> str:
    """A stable id for an incident that came without one: same record, same id."""
    digest = hashlib.sha256(f"{origin.topic}/{origin.partition}/{origin.offset}".encode()).digest()
    tail = "".join(_ALPHABET[b % len(_ALPHABET)] for b in digest[:6])
    return f"INC-{origin.timestamp:%Y%m%d}-{tail}"


def parse_incident(
    value: bytes | None, origin: Origin, areas: Sequence[Area], now: datetime | None = None
) -> Incident | DeadLetter:
    """A valid incident with its area, or why not (not JSON, wrong schema, unknown enum,
    unsupported version, out of area, raised more than :data:`MAX_CLOCK_SKEW` after
    ``now``). Dead letters keep the original bytes."""
    raw = _json_object(value, origin)
    if isinstance(raw, DeadLetter):
        return raw

    def build() -> Incident:
        if "id" not in raw:  # (setdefault would hash for every incident)
            raw["id"] = derived_id(origin)
        if "raised_at" not in raw:
            raw["raised_at"] = origin.timestamp.isoformat()
        return with_area(Incident.model_validate(raw), areas)

    parsed: Incident | DeadLetter = _guarded(origin, value, build)
    if isinstance(parsed, Incident) and now is not None:
        return not_ahead(parsed, parsed.raised_at, "raised_at", now, origin, value)
    return parsed


T = TypeVar("T")


def not_ahead(
    record: T, at: datetime, field: str, now: datetime, origin: Origin, value: bytes | None
) -> T | DeadLetter:
    """``record``, or a ``clock_skew`` dead letter when its ``field`` (``at``) is more
    than :data:`MAX_CLOCK_SKEW` ahead of the worker's clock ``now``."""
    if at - now > MAX_CLOCK_SKEW:
        error = (
            f"{field} {at.isoformat()} is {(at - now).total_seconds():.0f} s ahead of the "
            f"worker's clock; at most {MAX_CLOCK_SKEW.total_seconds():.0f} s"
        )
        return origin.dead_letter(value, error, "clock_skew")
    return record
