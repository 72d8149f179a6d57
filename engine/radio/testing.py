"""Helpers shared by the radio tests and the demo (no pytest import here)."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable
from typing import TypeVar

from engine.radio.at_connection import AtConnection
from engine.radio.at_events import AtEvent
from engine.radio.transport import ModemLink

E = TypeVar("E")


def cut(data: bytes, cuts: Iterable[int]) -> list[bytes]:
    """``data`` split at the given offsets (any order, duplicates and overshoot ignored)."""
    points = sorted({c for c in cuts if 0 < c < len(data)})
    return [data[a:b] for a, b in itertools.pairwise([0, *points, len(data)])]


def feed_all(conn: AtConnection, chunks: Iterable[bytes], now: float = 0.0) -> list[AtEvent]:
    events: list[AtEvent] = []
    for chunk in chunks:
        events += conn.feed(chunk, now)
    return events


async def next_event(
    link: ModemLink, kind: type[E], where: Callable[[E], bool] = lambda _e: True
) -> E:
    """The next event of ``kind`` matching ``where``; others are skipped. Wrap in a timeout."""
    while True:
        event = await link.events.get()
        if isinstance(event, kind) and where(event):
            return event
