"""`engine tail TOPIC`: print a topic's records as JSON lines (no consumer group)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from engine.config import Settings
from engine.errors import KafkaUnavailable, UsageError
from engine.kafka.connection import consumer_kwargs, partitions_of


def record_to_json(
    topic: str, partition: int, offset: int, key: bytes | None, value: bytes | None, ts_ms: int
) -> dict[str, Any]:
    """A record as a JSON-ready dict; values that are not UTF-8 JSON are shown in base64."""
    decoded: Any
    try:
        decoded = json.loads(value) if value is not None else None
    except (UnicodeDecodeError, json.JSONDecodeError):
        decoded = {"_raw_b64": base64.b64encode(value or b"").decode("ascii")}
    return {
        "topic": topic,
        "partition": partition,
        "offset": offset,
        "key": key.decode("utf-8", "replace") if key is not None else None,
        "timestamp": datetime.fromtimestamp(ts_ms / 1000, UTC).isoformat(),
        "value": decoded,
    }


async def tail(
    settings: Settings,
    topic: str,
    *,
    from_beginning: bool,
    max_records: int | None = None,
    idle_timeout_s: float | None = None,
) -> AsyncIterator[dict[str, Any]]:
    """Yield records of every partition of ``topic`` until ``max_records`` or until no
    record arrived for ``idle_timeout_s`` (both None: forever)."""
    partitions = await partitions_of(settings, topic)
    if not partitions:
        raise UsageError(f"topic {topic!r} does not exist (run `engine topics ensure`)")
    consumer = AIOKafkaConsumer(**consumer_kwargs(settings), group_id=None)
    try:
        await consumer.start()
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(tps)
        if from_beginning:
            await consumer.seek_to_beginning(*tps)
        else:
            await consumer.seek_to_end(*tps)
        seen = 0
        while max_records is None or seen < max_records:
            try:
                async with asyncio.timeout(idle_timeout_s):
                    msg = await consumer.getone()
            except TimeoutError:
                return
            seen += 1
            yield record_to_json(
                msg.topic, msg.partition, msg.offset, msg.key, msg.value, msg.timestamp
            )
    except (KafkaError, OSError) as exc:
        raise KafkaUnavailable(f"tailing {topic} at {settings.kafka_bootstrap}: {exc}") from exc
    finally:
        with contextlib.suppress(Exception):
            await consumer.stop()


def bare_value(record: dict[str, Any]) -> Any:
    """What `engine tail --bare` prints for a record: its value alone (the JSON the
    producer wrote), which `engine decide` and `engine plan compare` read directly."""
    return record["value"]


async def read_since(settings: Settings, topic: str, since_ms: int) -> list[dict[str, Any]]:
    """Every record of ``topic`` with a timestamp at or after ``since_ms`` (epoch ms),
    up to the end of each partition as it was when the read began, partition by
    partition in offset order (as :func:`record_to_json` shows them)."""
    partitions = await partitions_of(settings, topic)
    if not partitions:
        raise UsageError(f"topic {topic!r} does not exist (run `engine topics ensure`)")
    consumer = AIOKafkaConsumer(**consumer_kwargs(settings), group_id=None)
    out: list[dict[str, Any]] = []
    try:
        await consumer.start()
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(tps)
        ends = await consumer.end_offsets(tps)
        starts = await consumer.offsets_for_times(dict.fromkeys(tps, since_ms))
        for tp in tps:
            found = starts.get(tp)
            if found is None or found.offset >= ends[tp]:
                continue
            consumer.seek(tp, found.offset)
            idle = 0
            while await consumer.position(tp) < ends[tp] and idle < 5:
                batch = await consumer.getmany(tp, timeout_ms=1000)
                # only control records (transaction markers) may be left below the end
                idle = 0 if batch.get(tp) else idle + 1
                for msg in batch.get(tp, []):
                    if msg.offset < ends[tp]:
                        out.append(
                            record_to_json(
                                msg.topic, msg.partition, msg.offset, msg.key, msg.value,
                                msg.timestamp,
                            )
                        )  # fmt: skip
    except (KafkaError, OSError) as exc:
        raise KafkaUnavailable(f"reading {topic} at {settings.kafka_bootstrap}: {exc}") from exc
    finally:
        with contextlib.suppress(Exception):
            await consumer.stop()
    return out
