"""The engine's clock: the wall clock, shifted for drills and scenarios.

``ENGINE_CLOCK_OFFSET_S`` (seconds, default 0) moves every process's idea of "now" by
the same amount, so a drill can play the 16:30 school-gate rush on a school day at any
hour, and a scenario played twice sees the same duty windows and shifts. The scenario
runner gives the same offset to every process it starts; Kafka's own record timestamps
stay real. In production it is unset.
"""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime, timedelta

from engine.errors import ConfigError


def _offset_from_env() -> float:
    raw = os.environ.get("ENGINE_CLOCK_OFFSET_S", "").strip()
    if not raw:
        return 0.0
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"ENGINE_CLOCK_OFFSET_S: not a number of seconds: {raw!r}") from None
    if value != value or abs(value) > 400 * 86400:  # NaN, or more than a year and a bit
        raise ConfigError(f"ENGINE_CLOCK_OFFSET_S: out of range: {raw!r}")
    return value


OFFSET_S = _offset_from_env()
_OFFSET = timedelta(seconds=OFFSET_S)


def now() -> datetime:
    """Aware UTC "now" on the engine's clock."""
    return datetime.now(UTC) + _OFFSET


def time_s() -> float:
    """Unix seconds on the engine's clock (``time.time`` shifted)."""
    return time.time() + OFFSET_S


def offset_to(local_start: datetime) -> float:
    """The offset that makes the engine's clock read ``local_start`` (aware) now."""
    return (local_start - datetime.now(UTC)).total_seconds()
