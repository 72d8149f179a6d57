"""What the spatial indexes hold and answer: plain values shared by the index and the
brute-force reference."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import NamedTuple


@dataclass(frozen=True, slots=True)
class IndexedPoint:
    """One thing on the map. ``radius_m`` is the point's own reach (a door-front point
    answers for 100 m around it); ``available`` is the starting availability."""

    id: str
    kind: str
    lat: float
    lon: float
    radius_m: float | None = None
    available: bool = True


class Hit(NamedTuple):
    """A query answer. Tuple order is the ranking: by distance, ties to the smaller id."""

    distance_m: float
    id: str
    kind: str


@dataclass(frozen=True, slots=True)
class Filter:
    """Which points a query may return: ``kinds`` None means every kind."""

    kinds: frozenset[str] | None = None
    available_only: bool = False
    exclude: frozenset[str] = frozenset()

    @classmethod
    def of(
        cls,
        kinds: Collection[str] | str | None = None,
        available_only: bool = False,
        exclude: Collection[str] = (),
    ) -> Filter:
        if isinstance(kinds, str):
            kinds = (kinds,)
        return cls(
            kinds=None if kinds is None else frozenset(kinds),
            available_only=available_only,
            exclude=frozenset(exclude),
        )
