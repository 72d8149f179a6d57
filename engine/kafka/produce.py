"""Producing records: the idempotent producer and the incident key (dispatch area)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from aiokafka.structs import RecordMetadata

from engine.config import Settings
from engine.errors import KafkaUnavailable, UsageError
from engine.geo.areas import area_by_id, area_of
from engine.kafka.connection import producer_kwargs
from engine.models import Incident


def with_area(incident: Incident) -> Incident:
    """The incident with ``area`` set: kept if given and known, else derived from the
    location. Raises UsageError for an unknown area or a location outside every area."""
    if incident.area is not None:
        if area_by_id(incident.area) is None:
            raise UsageError(f"unknown dispatch area {incident.area!r}")
        return incident
    area = area_of(incident.location.lat, incident.location.lon)
    if area is None:
        loc = incident.location
        raise UsageError(
            f"location lat={loc.lat} lon={loc.lon} is outside every dispatch area "
            "(Tangxia is about lat 22.74-22.87, lon 114.00-114.16; lat and lon swapped?)"
        )
    return incident.model_copy(update={"area": area.id})


@contextlib.asynccontextmanager
async def producer(settings: Settings) -> AsyncIterator[AIOKafkaProducer]:
    p = AIOKafkaProducer(**producer_kwargs(settings))
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
