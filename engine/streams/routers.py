"""The worker's stateless routers (``acks``, ``unit-status`` -> ``area-events``) on a
plain aiokafka consumer group, not on faust agents.

They hold no state, so they need none of faust's tables; and faust-streaming 0.15.3 can
commit past records its agents never received (see :mod:`engine.streams.reread`). Here
an offset is committed only after every record below it was routed and the forwards
were acknowledged by Kafka: a crash re-routes at most the last batch, and the area agent
takes a repeated ack or status as the same event again.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import CommitFailedError, RebalanceInProgressError
from mode import Service

from engine.config import Settings
from engine.kafka.connection import client_kwargs
from engine.streams.intake import Origin

log = logging.getLogger(__name__)

Route = Callable[[Origin, bytes | None], Awaitable[None]]
"""Handle one record to the end (forwards acknowledged); raise to stop the worker."""


class Routers(Service):
    """One consumer in group ``group_id`` over ``routes``' topics."""

    def __init__(
        self, settings: Settings, group_id: str, routes: dict[str, Route], **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.settings = settings
        self.group_id = group_id
        self.routes = routes
        self.consumer: AIOKafkaConsumer | None = None

    async def on_start(self) -> None:
        self.consumer = AIOKafkaConsumer(
            *self.routes,
            group_id=self.group_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            **client_kwargs(self.settings),
        )
        await self.consumer.start()
        self.add_future(self._run())

    async def on_stop(self) -> None:
        if self.consumer is not None:
            await self.consumer.stop()

    def assignment(self) -> set[TopicPartition]:
        return set(self.consumer.assignment()) if self.consumer is not None else set()

    async def _run(self) -> None:
        assert self.consumer is not None
        consumer = self.consumer
        try:
            while not self.should_stop:
                batch = await consumer.getmany(timeout_ms=1000, max_records=200)
                for tp, records in batch.items():
                    route = self.routes[tp.topic]
                    for r in records:
                        origin = Origin(r.topic, r.partition, r.offset, int(r.timestamp), r.key)
                        await route(origin, r.value)
                    await self._commit(consumer, tp, records[-1].offset + 1)
        except Exception as exc:
            if self.should_stop:
                return  # the consumer was stopped under a fetch: a clean stop
            # a worker that is up but routes nothing is worse than one that exits and
            # is restarted (the agents crash the worker the same way)
            log.exception("router stopped: %s", exc)
            await self.crash(exc)

    @staticmethod
    async def _commit(consumer: AIOKafkaConsumer, tp: TopicPartition, offset: int) -> None:
        try:
            await consumer.commit({tp: offset})
        except (CommitFailedError, RebalanceInProgressError) as exc:
            # the partition moved: its new owner routes these records again
            log.warning("commit of %s at %d refused (%s); they will be routed again", tp,
                        offset, type(exc).__name__)  # fmt: skip


__all__ = ["Route", "Routers"]
