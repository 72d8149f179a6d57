"""The gateway's waiting room, without I/O: call-outs by priority, offsets to commit.

Priority reorders call-outs, so Kafka offsets finish out of order. A partition's
committed offset may only move past offsets that are all finished (the modem accepted
them, or they were skipped as duplicates or dead letters): :class:`OffsetTracker`
computes that contiguous prefix.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Iterable
from dataclasses import dataclass, field

from engine.models import CallOut, Priority

PRIORITY_RANK: dict[Priority, int] = {p: i for i, p in enumerate(sorted(Priority))}
"""P1 first: lower rank is served first."""


@dataclass(frozen=True)
class Pending:
    """A call-out read from Kafka and not yet finished."""

    callout: CallOut
    partition: int
    offset: int
    decided_at: float | None = None  # unix seconds, for the decision->sent histogram
    broadcast: bool = False  # a broadcast message (issue 17): the lowest lane
    rank: int = 0  # within the broadcast lane: urgent 0, warning 1, info 2


@dataclass(order=True)
class _Entry:
    rank: int
    seq: int
    item: Pending = field(compare=False)


class CalloutQueue:
    """Highest priority first; first come, first served within one priority."""

    def __init__(self) -> None:
        self._heap: list[_Entry] = []
        self._seq = itertools.count()

    def __len__(self) -> int:
        return len(self._heap)

    def push(self, item: Pending) -> None:
        rank = item.rank if item.broadcast else PRIORITY_RANK[item.callout.priority]
        heapq.heappush(self._heap, _Entry(rank, next(self._seq), item))

    def pop(self) -> Pending | None:
        return heapq.heappop(self._heap).item if self._heap else None

    def drop_partitions(self, partitions: Iterable[int]) -> list[Pending]:
        """Remove what came from ``partitions`` (revoked in a rebalance): another
        consumer reads them again from the last commit."""
        gone = set(partitions)
        dropped = [e.item for e in self._heap if e.item.partition in gone]
        self._heap = [e for e in self._heap if e.item.partition not in gone]
        heapq.heapify(self._heap)
        return dropped


@dataclass
class _PartitionOffsets:
    outstanding: set[int] = field(default_factory=set)
    highest: int = -1
    committed: int | None = None  # the next offset to read, as Kafka stores it


class OffsetTracker:
    """Per partition: which read offsets are not finished, and what may be committed.

    Offsets must be tracked in the order they were read (ascending per partition, as a
    consumer delivers them); they may be finished in any order.
    """

    def __init__(self) -> None:
        self._parts: dict[int, _PartitionOffsets] = {}

    def track(self, partition: int, offset: int) -> None:
        part = self._parts.get(partition)
        if part is None:
            # Reading started here, so everything before is already committed.
            part = self._parts[partition] = _PartitionOffsets(committed=offset)
        if offset <= part.highest:
            raise ValueError(f"offset {offset} of partition {partition} tracked out of order")
        part.outstanding.add(offset)
        part.highest = offset

    def finish(self, partition: int, offset: int) -> int | None:
        """Mark done; the new commit position (next offset to read) if it moved."""
        part = self._parts.get(partition)
        if part is None or offset not in part.outstanding:
            return None  # revoked meanwhile, or finished twice
        part.outstanding.discard(offset)
        position = min(part.outstanding) if part.outstanding else part.highest + 1
        if part.committed is not None and position <= part.committed:
            return None
        part.committed = position
        return position

    def committed(self, partition: int) -> int | None:
        """The furthest commit position handed out for ``partition``."""
        part = self._parts.get(partition)
        return part.committed if part else None

    def outstanding(self, partition: int) -> frozenset[int]:
        part = self._parts.get(partition)
        return frozenset(part.outstanding) if part else frozenset()

    def forget(self, partitions: Iterable[int]) -> None:
        for p in partitions:
            self._parts.pop(p, None)
