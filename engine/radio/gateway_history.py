"""What earlier gateways paged, read back from ``sent`` Acks on the ``acks`` topic
(``delivered`` from gateways before issue 13), and which stored replies they published
(their ``reply_id``)."""

from __future__ import annotations

import contextlib
import json
import logging
from datetime import datetime

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from engine.config import Settings
from engine.errors import KafkaUnavailable
from engine.kafka.connection import client_kwargs, partitions_of
from engine.radio.sent_log import SentEntry

log = logging.getLogger(__name__)


async def read_delivered(settings: Settings, since: float) -> list[SentEntry]:
    return (await read_history(settings, since))[0]


async def read_history(settings: Settings, since: float) -> tuple[list[SentEntry], set[str]]:
    """Every ``sent`` (or ``delivered``) Ack with an ``idempotency_key`` at or after
    ``since`` (unix s), and the ``reply_id`` of every reply Ack, from the start of
    ``acks`` up to its end as of this call."""
    topic = settings.topic("acks")
    partitions = await partitions_of(settings, topic)
    replied: set[str] = set()
    if not partitions:
        return [], replied
    consumer = AIOKafkaConsumer(
        **client_kwargs(settings),
        group_id=None,
        enable_auto_commit=False,
        isolation_level="read_committed",
    )
    found: list[SentEntry] = []
    try:
        await consumer.start()
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        end = await consumer.end_offsets(tps)
        todo = {tp for tp in tps if await consumer.position(tp) < end[tp]}
        while todo:
            batch = await consumer.getmany(*todo, timeout_ms=1000)
            for records in batch.values():
                for record in records:
                    entry = _entry(record.value, replied)
                    if entry is not None and entry.at >= since:
                        found.append(entry)
            todo = {tp for tp in todo if await consumer.position(tp) < end[tp]}
    except KafkaError as exc:
        raise KafkaUnavailable(f"reading {topic} at {settings.kafka_bootstrap}: {exc}") from exc
    finally:
        with contextlib.suppress(Exception):
            await consumer.stop()
    log.info("%d sent call-outs read back from %s", len(found), topic)
    return found, replied


def _entry(value: bytes | None, replied: set[str] | None = None) -> SentEntry | None:
    try:
        data = json.loads(value or b"")
        if replied is not None and isinstance(data.get("reply_id"), str):
            replied.add(data["reply_id"])
        if data.get("kind") not in ("sent", "delivered") or not data.get("idempotency_key"):
            return None
        at = datetime.fromisoformat(str(data["at"])).timestamp()
        area = data.get("area")
        return SentEntry(
            str(data["idempotency_key"]),
            str(data["incident_id"]),
            str(data["radio_id"]),
            at,
            stage=int(data.get("stage") or 0),
            area=area if isinstance(area, str) else None,
            stand_down=data.get("stand_down") is True,
        )
    except (ValueError, TypeError, KeyError, AttributeError):
        return None
