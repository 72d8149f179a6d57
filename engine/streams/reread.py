"""Reading an input partition range again, outside faust's consumer.

faust-streaming 0.15.3 can commit an offset past records its agent never received (its
fetcher drops records of partitions it has just paused, or of a batch cut short by a
rebalance, and then fills the "gap" as if acknowledged). The area agent therefore keeps
its own record of the next offset it has handled, per input partition, in its state
table; when faust hands it a record past that point, or nothing arrives while the
partition holds more, the missing range is read here, by a consumer in no group (it
never commits), and handled in order before anything later.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from mode import Service

from engine.config import Settings
from engine.kafka.connection import client_kwargs

FETCH_TIMEOUT_MS = 1000
EMPTY_FETCHES_BEFORE_GIVING_UP = 30
"""A range below the partition's end always arrives; thirty empty fetches (30 s) in a
row means the broker is not answering, and the caller's crash-and-restart is better."""


@dataclass(frozen=True, slots=True)
class Reread:
    """One record read again: what the area agent needs of a consumer record."""

    topic: str
    partition: int
    offset: int
    timestamp_ms: int
    key: bytes | None
    value: bytes | None


class Rereader(Service):
    """A group-less consumer started on first use."""

    def __init__(self, settings: Settings, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.settings = settings
        self._consumer: AIOKafkaConsumer | None = None
        self._lock = asyncio.Lock()

    async def _get(self) -> AIOKafkaConsumer:
        async with self._lock:  # the first callers race to start it: one does
            if self._consumer is None:
                consumer = AIOKafkaConsumer(
                    group_id=None,
                    enable_auto_commit=False,
                    auto_offset_reset="earliest",
                    **client_kwargs(self.settings),
                )
                await consumer.start()
                self._consumer = consumer
            return self._consumer

    async def first(self, topic: str, partition: int) -> int:
        """The first offset still in the log."""
        tp = TopicPartition(topic, partition)
        return int((await (await self._get()).beginning_offsets([tp]))[tp])

    async def end(self, topic: str, partition: int) -> int:
        """The offset after the last record."""
        tp = TopicPartition(topic, partition)
        return int((await (await self._get()).end_offsets([tp]))[tp])

    async def read(self, topic: str, partition: int, start: int, end: int) -> AsyncIterator[Reread]:
        """The records with start <= offset < end, in offset order. One reader at a
        time (the area agent); no lock is held while the caller handles a record, so
        :meth:`first` and :meth:`end` may be asked meanwhile."""
        consumer = await self._get()
        tp = TopicPartition(topic, partition)
        consumer.assign([tp])
        consumer.seek(tp, start)
        empty = 0
        while True:
            batch = await consumer.getmany(tp, timeout_ms=FETCH_TIMEOUT_MS, max_records=500)
            records = batch.get(tp, [])
            if not records:
                if await consumer.position(tp) >= end:
                    return
                empty += 1
                if empty >= EMPTY_FETCHES_BEFORE_GIVING_UP:
                    raise TimeoutError(f"re-reading {topic}[{partition}] {start}..{end}")
                continue
            empty = 0
            for r in records:
                if r.offset >= end:
                    return
                yield Reread(topic, partition, r.offset, int(r.timestamp), r.key, r.value)
            if records[-1].offset + 1 >= end:
                return

    async def on_stop(self) -> None:
        if self._consumer is not None:
            await self._consumer.stop()
            self._consumer = None


__all__ = ["Reread", "Rereader"]
