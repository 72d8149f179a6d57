"""Producing records: the idempotent producer and the incident key (dispatch area)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from aiokafka.structs import RecordMetadata

from engine.config import Settings
from engine.errors import KafkaUnavailable
from engine.kafka.connection import producer_kwargs, transactional_producer_kwargs
from engine.models import Incident

__all__ = ["produce_incidents", "producer"]


@contextlib.asynccontextmanager
async def producer(
    settings: Settings, transactional_id: str | None = None
) -> AsyncIterator[AIOKafkaProducer]:
    """A started producer (transactional with ``transactional_id``), stopped after."""
    kwargs = (
        producer_kwargs(settings)
        if transactional_id is None
        else transactional_producer_kwargs(settings, transactional_id)
    )
    p = AIOKafkaProducer(**kwargs)
    try:
        await p.start()
    except (KafkaError, OSError) as exc:
        with contextlib.suppress(Exception):
            await p.stop()
        raise KafkaUnavailable(f"no Kafka answers at {settings.kafka_bootstrap}: {exc}") from exc
    try:
        yield p
    finally:
        await p.stop()


async def produce_incidents(
    settings: Settings, incidents: Sequence[Incident]
) -> list[RecordMetadata]:
    """Send incidents keyed by area; returns once every record is acknowledged (acks=all)."""
    topic = settings.topic("incidents")
    async with producer(settings) as p:
        futures = []
        for incident in incidents:
            assert incident.area is not None, "call with_area() first"
            futures.append(
                await p.send(topic, incident.to_json_bytes(), key=incident.area.encode("utf-8"))
            )
        try:
            return [await f for f in futures]
        except KafkaError as exc:
            raise KafkaUnavailable(f"producing to {topic} failed: {exc}") from exc
