"""Broadcasts on Kafka: write one (notice and messages in one transaction), cancel one,
read their progress back from ``broadcasts``."""

from __future__ import annotations

import contextlib

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from engine.broadcast.model import Cancel
from engine.broadcast.plan import PlannedBroadcast
from engine.broadcast.progress import BroadcastBook
from engine.broker.secure import BROADCAST_TXN_PREFIX
from engine.config import Settings
from engine.errors import KafkaUnavailable
from engine.kafka.connection import consumer_kwargs, partitions_of
from engine.kafka.produce import producer


async def write_broadcast(settings: Settings, planned: PlannedBroadcast) -> None:
    """The notice on ``broadcasts`` and every message on ``broadcast-messages``, all in
    one Kafka transaction: gateways (read committed) see all of it or none. The
    transactional id is the broadcast's, so a retry of the same broadcast fences an
    earlier attempt still running. Messages are dealt round the partitions in turn
    (keyed by their idempotency key all the same), so the gateways of one consumer group
    get equal shares whatever the keys hash to."""
    bid = planned.notice.broadcast_id
    txn = f"{settings.topic_prefix}{BROADCAST_TXN_PREFIX}{bid}"
    async with producer(settings, txn) as p:
        try:
            async with p.transaction():
                await p.send(
                    settings.topic("broadcasts"), planned.notice.to_json_bytes(), key=bid.encode()
                )
                topic = settings.topic("broadcast-messages")
                parts = sorted(await p.partitions_for(topic))
                for i, m in enumerate(planned.messages):
                    await p.send(
                        topic,
                        m.to_json_bytes(),
                        key=m.idempotency_key.encode(),
                        partition=parts[i % len(parts)],
                    )
        except KafkaError as exc:
            raise KafkaUnavailable(f"writing broadcast {bid} failed: {exc!r}") from exc


async def write_cancel(settings: Settings, cancel: Cancel) -> None:
    async with producer(settings) as p:
        try:
            await p.send_and_wait(
                settings.topic("broadcasts"),
                cancel.to_json_bytes(),
                key=cancel.broadcast_id.encode(),
            )
        except KafkaError as exc:
            raise KafkaUnavailable(f"writing the cancel failed: {exc!r}") from exc


async def read_book(settings: Settings) -> BroadcastBook:
    """Every broadcast's progress: ``broadcasts`` read from its start to its end now."""
    topic = settings.topic("broadcasts")
    book = BroadcastBook()
    parts = await partitions_of(settings, topic)
    if not parts:
        return book
    tps = [TopicPartition(topic, p) for p in sorted(parts)]
    consumer = AIOKafkaConsumer(group_id=None, **consumer_kwargs(settings))
    try:
        await consumer.start()
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        end = await consumer.end_offsets(tps)
        todo = {tp for tp in tps if await consumer.position(tp) < end[tp]}
        while todo:
            batch = await consumer.getmany(*todo, timeout_ms=1000, max_records=5000)
            for records in batch.values():
                for r in records:
                    book.apply_bytes(r.value)
            todo = {tp for tp in todo if await consumer.position(tp) < end[tp]}
    except KafkaError as exc:
        raise KafkaUnavailable(f"reading {topic}: {exc}") from exc
    finally:
        with contextlib.suppress(Exception):
            await consumer.stop()
    return book
