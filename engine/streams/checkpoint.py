"""One Kafka transaction's worth of a worker task: outputs, state changelog records and
the input offsets they account for.

The order of steps, in one place (as quix-streams' ``Checkpoint``): the task handles a
batch into a checkpoint (outputs and changelog records collected, nothing sent); the
commit begins a transaction, sends every record, adds the input offsets to it
(``send_offsets_to_transaction``) and commits; only then does the task make its new
state visible. A failure anywhere aborts the transaction: no output, no state, no offset
becomes visible to a read-committed reader, and the batch is handled again.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from aiokafka import AIOKafkaProducer, TopicPartition


@dataclass(frozen=True, slots=True)
class Output:
    topic: str
    key: bytes | None
    value: bytes | None
    partition: int | None = None
    """None: the producer's partitioner (murmur2 of the key, as every Kafka client)"""


@dataclass(slots=True)
class Checkpoint:
    outputs: list[Output] = field(default_factory=list)
    offsets: dict[TopicPartition, int] = field(default_factory=dict)
    """input partition -> next offset to read (the last handled + 1)"""

    def send(
        self, topic: str, key: str | bytes | None, value: bytes | None, partition: int | None = None
    ) -> None:
        raw_key = key.encode("utf-8") if isinstance(key, str) else key
        self.outputs.append(Output(topic, raw_key, value, partition))

    def consumed(self, tp: TopicPartition, offset: int) -> None:
        self.offsets[tp] = max(self.offsets.get(tp, 0), offset + 1)

    @property
    def empty(self) -> bool:
        return not self.outputs and not self.offsets

    async def commit(self, producer: AIOKafkaProducer, group_id: str) -> None:
        """Everything in one transaction; raises (after aborting) if any step fails."""
        async with producer.transaction():
            for o in self.outputs:
                await producer.send(o.topic, o.value, key=o.key, partition=o.partition)
            if self.offsets:
                await producer.send_offsets_to_transaction(self.offsets, group_id)


__all__ = ["Checkpoint", "Output"]
