"""Restoring the areas' state from the ``area-state`` changelog, read committed.

Called when partitions are assigned, after the task's transactional producer started
(which fenced any earlier owner and aborted its open transaction, so the last stable
offset has moved past it) and before any input record of those partitions is handled.
A value that is not JSON (nothing but the worker should write here) is skipped with an
error in the log: the state of one incident is lost, the area goes on.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from engine.config import Settings
from engine.kafka.connection import consumer_kwargs

log = logging.getLogger(__name__)


async def restore(settings: Settings, partitions: list[int]) -> dict[int, dict[str, Any]]:
    """partition -> {store key: JSON value} of the changelog's committed records."""
    topic = settings.topic("area-state")
    tps = [TopicPartition(topic, p) for p in partitions]
    states: dict[int, dict[str, Any]] = {p: {} for p in partitions}
    if not tps:
        return states
    consumer = AIOKafkaConsumer(group_id=None, **consumer_kwargs(settings))
    await consumer.start()
    try:
        consumer.assign(tps)
        ends = await consumer.end_offsets(tps)  # the last stable offsets (read committed)
        await consumer.seek_to_beginning(*tps)
        pending = {tp for tp in tps if ends[tp] > 0}
        while pending:
            for tp in list(pending):
                if await consumer.position(tp) >= ends[tp]:
                    pending.discard(tp)
            if not pending:
                break
            batch = await consumer.getmany(*pending, timeout_ms=500, max_records=10_000)
            for tp, records in batch.items():
                state = states[tp.partition]
                for r in records:
                    if r.offset >= ends[tp] or r.key is None:
                        continue
                    key = r.key.decode("utf-8", "replace")
                    if r.value is None:
                        state.pop(key, None)
                        continue
                    try:
                        state[key] = json.loads(r.value)
                    except (UnicodeDecodeError, json.JSONDecodeError):
                        log.error("%s[%d]@%d: not JSON, skipped", tp.topic, tp.partition, r.offset)
    finally:
        await consumer.stop()
    return states


__all__ = ["restore"]
