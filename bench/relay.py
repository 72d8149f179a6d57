"""The floor the worker is measured against: a bare aiokafka relay of the same two-hop
shape and client settings as the worker, with no dispatch work at all.

    .venv/bin/python bench/relay.py   (environment: ENGINE_KAFKA_BOOTSTRAP, ENGINE_TOPIC_PREFIX)

One consumer in a group over ``incidents`` (read committed, manual commits, range
assignor), one transactional producer per input partition; for each polled batch it
writes one record per incident to ``decisions`` (the incident's id and area) and
commits the records and the input offsets in one transaction, as the worker does.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition  # noqa: E402
from aiokafka.coordinator.assignors.range import RangePartitionAssignor  # noqa: E402

from engine.config import load_settings  # noqa: E402
from engine.kafka.connection import (  # noqa: E402
    consumer_kwargs,
    transactional_producer_kwargs,
)


async def main() -> None:
    settings = load_settings()
    group = f"{settings.topic_prefix}relay"
    source, sink = settings.topic("incidents"), settings.topic("decisions")
    consumer = AIOKafkaConsumer(
        source,
        group_id=group,
        partition_assignment_strategy=(RangePartitionAssignor,),
        max_poll_records=2000,
        **consumer_kwargs(settings),
    )
    producers: dict[TopicPartition, AIOKafkaProducer] = {}
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    await consumer.start()
    print("relay ready", flush=True)
    try:
        while not stop.is_set():
            batch = await consumer.getmany(timeout_ms=200, max_records=2000)
            jobs = []
            for tp, records in batch.items():
                if tp not in producers:
                    p = AIOKafkaProducer(
                        **transactional_producer_kwargs(settings, f"{group}-{tp.partition}")
                    )
                    await p.start()
                    producers[tp] = p
                jobs.append(relay(producers[tp], tp, records, sink, group))
            await asyncio.gather(*jobs)
    finally:
        for p in producers.values():
            await p.stop()
        await consumer.stop()


async def relay(producer: AIOKafkaProducer, tp: TopicPartition, records: list, sink: str,
                group: str) -> None:  # fmt: skip
    async with producer.transaction():
        for r in records:
            value = json.loads(r.value)
            out = {"incident_id": value.get("id"), "area": value.get("area"), "stage": 0}
            await producer.send(sink, json.dumps(out).encode(), key=r.key)
        await producer.send_offsets_to_transaction({tp: records[-1].offset + 1}, group)


if __name__ == "__main__":
    asyncio.run(main())
