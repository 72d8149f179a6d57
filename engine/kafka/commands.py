"""Sending an operator command and waiting for the worker's outcome (the CLI's path;
the API has its read model follow ``audit`` instead)."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from engine.config import Settings
from engine.kafka.connection import consumer_kwargs, partitions_of
from engine.kafka.produce import producer
from engine.models import Command


async def send_command(settings: Settings, command: Command, timeout_s: float) -> dict[str, Any]:
    """The outcome record of ``command`` from ``audit`` ({"result": "applied"|"refused",
    "reason": ...}); TimeoutError when the worker has not answered in ``timeout_s``."""
    audit = settings.topic("audit")
    tps = [TopicPartition(audit, p) for p in await partitions_of(settings, audit)]
    consumer = AIOKafkaConsumer(group_id=None, **consumer_kwargs(settings))
    await consumer.start()
    try:
        consumer.assign(tps)
        await consumer.seek_to_end(*tps)
        for tp in tps:  # resolve the positions now: the outcome comes after them
            await consumer.position(tp)
        async with producer(settings) as p:
            await p.send_and_wait(
                settings.topic("commands"), command.to_json_bytes(), key=command.area.encode()
            )
        deadline = time.monotonic() + timeout_s
        while (left := deadline - time.monotonic()) > 0:
            batch = await consumer.getmany(timeout_ms=int(min(left, 0.5) * 1000))
            for records in batch.values():
                for r in records:
                    try:
                        doc = json.loads(r.value or b"")
                    except ValueError:
                        continue
                    if isinstance(doc, dict) and doc.get("command_id") == command.command_id:
                        return doc
        raise TimeoutError(f"no outcome for command {command.command_id} in {timeout_s:.0f} s")
    finally:
        await consumer.stop()


def run(settings: Settings, command: Command, timeout_s: float) -> dict[str, Any]:
    return asyncio.run(send_command(settings, command, timeout_s))
