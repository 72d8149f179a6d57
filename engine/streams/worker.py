"""The stream worker: one consumer group, Kafka transactions, the pure core in between.

Topology (DESIGN.md §3-4)::

    incidents[p] (key: area) ───────┐
    commands[p] (key: area) ────────┤
    engine-area-events[p] ──────────┴─▶ AreaTask p ─▶ decisions, callouts, incident-state,
                                          │ AreaCore     deadletter, audit, area-events
                                          └──────────▶ engine-area-state[p] (changelog)
    acks[q], unit-status[q] ─▶ RouteTask ─▶ engine-area-events (keyed by area)

One consumer (group ``<prefix>tangxia-engine-worker``, range assignor, read committed)
over the four input topics: ``incidents``, ``engine-area-events`` and
``engine-area-state`` have the same partition count, so partition p of both inputs goes
to one member, which owns the areas hashed to p and their state.

Each polled batch is split by task; each task handles its records (deadline ticks from
the worker's clock included, at most once a second), then commits every output, its
changelog records and its input offsets in one transaction of its own producer. The
next poll starts at once: a lone incident is published without waiting for company.
A transaction that fails is aborted: the task drops its uncommitted state, is opened
again (new producer, state restored, inputs rewound to the committed offsets) and the
records are handled again. A task whose producer was fenced lost its partition to
another worker: it is closed and publishes nothing.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.coordinator.assignors.range import RangePartitionAssignor
from aiokafka.errors import KafkaError, ProducerFenced
from aiokafka.structs import ConsumerRecord

from engine import clock as engine_clock
from engine.config import Settings
from engine.kafka.connection import consumer_kwargs
from engine.metrics import WorkerMetrics, incident_labels, stage_label
from engine.models import IncidentType, Priority
from engine.streams.changelog import restore
from engine.streams.core import Effects
from engine.streams.sources import Sources, SourceWatch
from engine.streams.tasks import AreaTask, RouteTask, Task

log = logging.getLogger(__name__)

READY = "worker ready"
"""Logged once partitions are assigned and their state restored (tests wait for it)."""
TICK_S = 1.0
HOUSEKEEPING_S = 5.0
MAX_BATCH = 2000
COMMIT_TIMEOUT_S = 30.0
FULL_GC_S = 600.0
SLOW_S = 0.5
"""A batch handled or committed slower than this is logged (with its size)."""
REOPEN_BACKOFF_S = (0.2, 0.5, 1.0, 2.0, 5.0)

Records = list[ConsumerRecord[bytes, bytes]]


class Worker:
    def __init__(
        self,
        settings: Settings,
        sources: Sources,
        metrics: WorkerMetrics | None = None,
        clock: Callable[[], datetime] = engine_clock.now,
    ) -> None:
        """Registry and plan are loaded (and validated) before anything connects: a bad
        file stops the worker before it consumes a record."""
        self.settings = settings
        self.watch = SourceWatch(sources)
        self.metrics = metrics or WorkerMetrics()
        self.clock = clock
        self.group_id = f"{settings.topic_prefix}tangxia-engine-worker"
        self.inputs = {
            "area": [
                settings.topic("incidents"),
                settings.topic("area-events"),
                settings.topic("commands"),
            ],
            "route": [settings.topic("acks"), settings.topic("unit-status")],
        }
        self.tasks: dict[TopicPartition, Task] = {}
        self.consumer: AIOKafkaConsumer | None = None
        self._lock = asyncio.Lock()
        self._stopping = asyncio.Event()
        self._last_tick = 0.0
        self._last_housekeeping = 0.0
        self._last_full_gc = time.monotonic()
        self.assignments = 0
        _initialise_series(self.metrics, self.watch.worlds)
        gc.collect()
        gc.freeze()  # the registry: long-lived, never garbage (see _collect_garbage)

    # --- lifecycle --------------------------------------------------------------------
    def stop(self) -> None:
        self._stopping.set()

    async def run(self) -> None:
        consumer = AIOKafkaConsumer(
            group_id=self.group_id,
            partition_assignment_strategy=(RangePartitionAssignor,),
            max_poll_records=MAX_BATCH,
            **consumer_kwargs(self.settings),
        )
        self.consumer = consumer
        consumer.subscribe([*self.inputs["area"], *self.inputs["route"]], listener=_Listener(self))
        await consumer.start()
        try:
            while not self._stopping.is_set():
                batch = await consumer.getmany(timeout_ms=200, max_records=MAX_BATCH)
                async with self._lock:
                    await self._process(batch)
                self._collect_garbage(idle=not batch)
                await self._housekeeping()
        finally:
            async with self._lock:
                await self._close_tasks(list(self.tasks))
            await consumer.stop()

    # --- batches ----------------------------------------------------------------------
    async def _process(self, batch: dict[TopicPartition, Records]) -> None:
        by_task: dict[int, tuple[Task, Records]] = {}
        for tp, records in batch.items():
            task = self.tasks.get(tp)
            if task is None:  # revoked or fenced meanwhile
                continue
            by_task.setdefault(id(task), (task, []))[1].extend(records)
        tick = time.monotonic() - self._last_tick >= TICK_S
        if tick:
            self._last_tick = time.monotonic()
            for task in set(self.tasks.values()):
                if isinstance(task, AreaTask):
                    by_task.setdefault(id(task), (task, []))
        if by_task:
            now = self.clock()
            await asyncio.gather(*(self._run(t, rs, now, tick) for t, rs in by_task.values()))

    async def _run(self, task: Task, records: Records, now: datetime, tick: bool) -> None:
        began = time.monotonic()
        cp, effects = task.handle(records, now, tick)
        if time.monotonic() - began > SLOW_S:
            log.warning("%s: slow batch, %.0f ms to handle %d records", task.name,
                        (time.monotonic() - began) * 1000, len(records))  # fmt: skip
        if cp.empty:
            return
        started = time.monotonic()
        try:
            assert task.producer is not None
            async with asyncio.timeout(COMMIT_TIMEOUT_S):
                await cp.commit(task.producer, self.group_id)
        except Exception as exc:
            task.aborted()
            await self._recover(task, exc)
            return
        task.committed()
        took = time.monotonic() - started
        self.metrics.commit_seconds.observe(took)
        if took > SLOW_S:
            log.warning("%s: slow commit, %.0f ms for %d records in, %d out",
                        task.name, took * 1000, len(records), len(cp.outputs))  # fmt: skip
        self.metrics.batch_records.observe(len(records))
        self.metrics.transactions.labels(result="committed").inc()
        for fx in effects:
            _count(self.metrics, fx)

    async def _recover(self, task: Task, exc: BaseException) -> None:
        """After a failed transaction: closed for good if fenced (the partition is
        another worker's now), else opened again and its inputs rewound."""
        consumer = self.consumer
        assert consumer is not None
        if isinstance(exc, ProducerFenced):
            self.metrics.transactions.labels(result="fenced").inc()
            log.warning("%s fenced: its partitions belong to another worker now", task.name)
            consumer.pause(*task.inputs)
            await self._close_tasks([tp for tp, t in self.tasks.items() if t is task])
            return
        self.metrics.transactions.labels(result="aborted").inc()
        log.warning("%s: transaction failed (%s: %s); handling its records again",
                    task.name, type(exc).__name__, exc)  # fmt: skip
        await task.close()
        for attempt in range(10_000):
            if self._stopping.is_set():
                return
            try:
                await self._open(task)
                await self._rewind(task)
                return
            except ProducerFenced:
                await self._recover(task, ProducerFenced())
                return
            except (KafkaError, OSError, TimeoutError) as again:
                await task.close()
                delay = REOPEN_BACKOFF_S[min(attempt, len(REOPEN_BACKOFF_S) - 1)]
                log.warning("%s: reopening failed (%s); again in %.1f s",
                            task.name, type(again).__name__, delay)  # fmt: skip
                await asyncio.sleep(delay)

    async def _rewind(self, task: Task) -> None:
        """Inputs back to the committed offsets: the aborted batch is read again."""
        consumer = self.consumer
        assert consumer is not None
        for tp in task.inputs:
            if tp not in consumer.assignment():
                continue
            offset = await consumer.committed(tp)
            if offset is None:
                await consumer.seek_to_beginning(tp)
            else:
                consumer.seek(tp, offset)

    def _collect_garbage(self, idle: bool) -> None:
        """The state is hundreds of thousands of long-lived objects: a full cyclic
        collection over them stalled batches for 0.2-0.6 s, collecting nothing. So what
        survived a batch is frozen (refcounting still frees it; only cyclic garbage
        waits), and everything is collected at an idle moment every few minutes."""
        if idle and time.monotonic() - self._last_full_gc >= FULL_GC_S:
            self._last_full_gc = time.monotonic()
            gc.unfreeze()
            gc.collect()
        gc.freeze()

    # --- partitions -------------------------------------------------------------------
    async def _open(self, task: Task) -> None:
        await task.open()  # fences the previous owner first ...
        if isinstance(task, AreaTask):  # ... so its aborted writes are not restored
            states = await restore(self.settings, [task.partition])
            task.restore(self.watch.worlds, self.watch.plan, states[task.partition])

    async def assigned(self, assigned: set[TopicPartition]) -> None:
        async with self._lock:
            consumer = self.consumer
            assert consumer is not None
            new: dict[str, Task] = {}
            for tp in sorted(assigned):
                if tp in self.tasks:
                    continue
                if tp.topic in self.inputs["area"]:
                    name = f"{self.group_id}-{self.inputs['area'][0]}-{tp.partition}"
                    task = new.get(name) or AreaTask(
                        self.settings, name, set(), partition=tp.partition
                    )
                else:
                    name = f"{self.group_id}-{tp.topic}-{tp.partition}"
                    task = new.get(name) or RouteTask(
                        self.settings, name, set(), worlds=self.watch.worlds
                    )
                new[name] = task
                task.inputs.add(tp)
            await asyncio.gather(*(self._open(t) for t in new.values()))
            for task in new.values():
                for tp in task.inputs:
                    self.tasks[tp] = task
                await self._rewind(task)
                consumer.resume(*task.inputs)
            self.assignments += 1
            areas = sorted(t.partition for t in new.values() if isinstance(t, AreaTask))
            log.warning("%s: %d tasks opened (area partitions %s), state restored",
                        READY, len(new), areas)  # fmt: skip

    async def revoked(self, revoked: set[TopicPartition]) -> None:
        async with self._lock:
            await self._close_tasks([tp for tp in revoked if tp in self.tasks])

    async def _close_tasks(self, tps: list[TopicPartition]) -> None:
        tasks = {id(self.tasks[tp]): self.tasks[tp] for tp in tps if tp in self.tasks}
        for tp in tps:
            self.tasks.pop(tp, None)
        for task in tasks.values():
            task.aborted()  # nothing is pending between batches; this is a safeguard
            await task.close()

    # --- every few seconds --------------------------------------------------------------
    async def _housekeeping(self) -> None:
        if time.monotonic() - self._last_housekeeping < HOUSEKEEPING_S:
            return
        self._last_housekeeping = time.monotonic()
        consumer = self.consumer
        assert consumer is not None
        for tp in sorted(consumer.assignment()):
            highwater = consumer.highwater(tp)
            position = await consumer.position(tp)
            if highwater is not None and position is not None:
                labels = {"topic": tp.topic, "partition": str(tp.partition)}
                self.metrics.consumer_lag.labels(**labels).set(max(0, highwater - position))
        counts: dict[str, int] = {}
        for task in set(self.tasks.values()):
            if isinstance(task, AreaTask) and task.core is not None:
                for state, n in task.core.open_counts().items():
                    counts[state] = counts.get(state, 0) + n
        for state, n in counts.items():
            self.metrics.open_incidents.labels(state=state).set(n)
        changed = await self.watch.reload(self.metrics)
        if changed:
            for task in set(self.tasks.values()):
                if isinstance(task, AreaTask) and task.core is not None:
                    task.core.replace_worlds(self.watch.worlds)
                    task.core.replace_plan(self.watch.plan)
                elif isinstance(task, RouteTask):
                    task.worlds = self.watch.worlds


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, worker: Worker) -> None:
        self.worker = worker

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        await self.worker.revoked(set(revoked))

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        await self.worker.assigned(set(assigned))


# --- metrics ------------------------------------------------------------------------------
def _initialise_series(metrics: WorkerMetrics, worlds: dict[str, Any]) -> None:
    """Every (type, priority, area) series at zero from the start, so that the first
    incident of a kind is an increase that rate() and the SLO rules can see."""
    per_incident = (*metrics.histograms(), metrics.incidents, metrics.escalations,
                    metrics.unanswered)  # fmt: skip
    for area in worlds:
        for kind in IncidentType:
            for priority in Priority:
                labels = incident_labels(kind.value, priority.value, area)
                for metric in per_incident:
                    metric.labels(**labels)
    for result in ("committed", "aborted", "fenced"):
        metrics.transactions.labels(result=result)


def _count(metrics: WorkerMetrics, fx: Effects) -> None:
    incident = fx.incident
    labels = (
        incident_labels(incident.type.value, incident.priority.value, incident.area)
        if incident is not None
        else None
    )
    histograms = {
        "raise_to_decision": metrics.raise_to_decision,
        "callout_to_ack": metrics.callout_to_ack,
        "raise_to_first_ack": metrics.raise_to_first_ack,
        "raise_to_quorum": metrics.raise_to_quorum,
        "raise_to_on_scene": metrics.raise_to_on_scene,
    }
    if labels is not None:
        for name, seconds in fx.latencies:
            histograms[name].labels(**labels).observe(max(seconds, 0.0))
    for note in fx.notes:
        head, _, rest = note.partition(":")
        if head == "deadletter":
            metrics.deadletters.labels(reason=rest).inc()
        elif head == "decision":
            stage, _, kind = rest.partition(":")
            metrics.decisions.labels(stage=stage_label(int(stage)), kind=kind).inc()
        elif head == "callout":
            priority, _, channel = rest.partition(":")
            metrics.callouts.labels(priority=priority, channel=channel).inc()
        elif head == "forwarded":
            metrics.incidents_forwarded.labels(reason=rest).inc()
        elif head == "ack":
            metrics.acks.labels(kind=rest).inc()
        elif head == "ack_ignored":
            metrics.acks_ignored.inc()
        elif labels is None:
            continue
        elif head == "incident":
            metrics.incidents.labels(**labels).inc()
        elif head == "escalated":
            metrics.escalations.labels(**labels).inc()
        elif head == "unanswered":
            metrics.unanswered.labels(**labels).inc()


__all__ = ["READY", "Worker"]
