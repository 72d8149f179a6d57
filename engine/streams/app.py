"""The faust app: Kafka topics in, the pure rules in between, records out.

Topology (DESIGN.md §3-4)::

    incidents (key: area) ─────────────┐
    area-events (internal, key: area) ─┴─▶ area agent ─▶ decisions, callouts,
    acks (key: incident) ─▶ ack router ─▶ area-events     incident-state, deadletter
    unit-status (key: unit) ─▶ status router ─▶ area-events
      (the routers: a plain consumer group, engine.streams.routers)
    timer (1 s) ─▶ area-events (deadline ticks)

``incidents``, ``area-events`` and the state tables' changelogs have the same partition
count, and faust assigns co-partitioned topics together: partition p of all of them goes
to one worker, whose area agent (concurrency 1: faust-streaming can commit past an
unfinished message with more) applies an area's events in order. A correctly keyed
incident is decided with no repartition hop; everything else takes one hop through
``area-events``.

Delivery: at-least-once. Outputs go through an idempotent producer (acks=all) and are
awaited before the agent takes its next event. faust's committed offsets are not trusted
(0.15.3 can commit past records its agent never got): the agent records, in the state
table, the next offset it has handled per input partition, skips what is below it and
reads again, itself, whatever faust skipped (engine.streams.reread). A re-read incident
is a duplicate (its id is in the state table) or, if the crash came before the state was
written, is decided again from the same state and event time, giving the same records
and idempotency keys.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import faust
from aiokafka import AIOKafkaProducer
from aiokafka.partitioner import DefaultPartitioner
from faust.sensors.prometheus import FaustMetrics, PrometheusMonitor
from mode import CrashingSupervisor, Service
from prometheus_client import CollectorRegistry

from engine.config import Settings
from engine.errors import ConfigError
from engine.kafka.connection import client_kwargs, producer_kwargs
from engine.metrics import (
    FaustSensorsCollector,
    WorkerMetrics,
    incident_labels,
    stage_label,
)
from engine.models import Ack, DeadLetter, Incident, IncidentType, Priority, UnitStatus
from engine.registry.registry import load_registry
from engine.rules.plan import LoadedPlan, load_plan
from engine.rules.world import World
from engine.streams.core import AreaCore, Effects
from engine.streams.events import AreaEvent
from engine.streams.intake import Origin, parse, parse_incident
from engine.streams.reread import Rereader
from engine.streams.routers import Routers

log = logging.getLogger(__name__)

M = TypeVar("M", Ack, UnitStatus)

TICK_RESEND_S = 5.0
"""A due deadline is re-announced at most this often until the agent handled it."""
RELOAD_CHECK_S = 5.0
LAG_CHECK_S = 5.0
SWEEP_S = 5.0
"""How often the worker checks that its inputs have no records faust left undelivered."""


@dataclass
class Sources:
    """Where the registry and plan come from, for reloads."""

    registries: list[Path]
    plan: Path | None


def load_worlds(registries: list[Path]) -> dict[str, World]:
    """Area id -> World for each registry directory (ConfigError if one is invalid)."""
    worlds: dict[str, World] = {}
    for path in registries:
        registry = load_registry(path)
        area = registry.area
        if area is None:
            raise ConfigError(f"registry {path}: registry.json must name its dispatch area")
        if area in worlds:
            raise ConfigError(f"registry {path}: area {area!r} is loaded twice")
        worlds[area] = World.build(registry)
    return worlds


class Outputs(Service):
    """The worker's idempotent producer for everything it publishes."""

    def __init__(self, settings: Settings, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.settings = settings
        self.producer: AIOKafkaProducer | None = None
        self._lock = asyncio.Lock()

    async def on_start(self) -> None:
        await self._ensure_producer()

    async def on_stop(self) -> None:
        if self.producer is not None:
            await self.producer.stop()

    async def _ensure_producer(self) -> AIOKafkaProducer:
        # Agents may get their first records before this service's on_start ran (a
        # restart with a backlog): whoever comes first starts the producer.
        async with self._lock:
            if self.producer is None:
                producer = AIOKafkaProducer(**producer_kwargs(self.settings))
                await producer.start()
                self.producer = producer
        return self.producer

    async def send_to(self, topic: str, partition: int, key: str, value: bytes) -> None:
        producer = self.producer or await self._ensure_producer()
        await (await producer.send(topic, value, key=key.encode("utf-8"), partition=partition))

    async def send_all(self, records: list[tuple[str, str, bytes]]) -> None:
        """Send and wait until every record is acknowledged by all in-sync replicas."""
        producer = self.producer or await self._ensure_producer()
        futures = [
            await producer.send(topic, value, key=key.encode("utf-8"))
            for topic, key, value in records
        ]
        for f in futures:
            await f


def build_app(
    settings: Settings,
    sources: Sources,
    metrics: WorkerMetrics | None = None,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> tuple[faust.App, AreaCore]:
    """The worker app. Registry and plan are loaded (and validated) before anything
    connects: a bad file stops the worker before it consumes a record."""
    worlds = load_worlds(sources.registries)
    plan = load_plan(sources.plan)
    metrics = metrics or WorkerMetrics()
    _initialise_series(metrics, worlds)
    partitions = settings.partitions_of("incidents")
    app_id = f"{settings.topic_prefix}tangxia-engine-worker"
    app = faust.App(
        app_id,
        broker=[f"kafka://{hp.strip()}" for hp in settings.kafka_bootstrap.split(",")],
        broker_credentials=_credentials(settings),
        store="memory://",
        datadir=str(settings.data_dir.resolve() / "faust"),  # not the current directory
        topic_partitions=partitions,
        topic_replication_factor=settings.replication_factor,
        processing_guarantee="at_least_once",
        consumer_auto_offset_reset="earliest",
        broker_commit_interval=0.5,
        broker_commit_every=100,
        web_enabled=False,
        table_standby_replicas=0,
        producer_acks=-1,
        stream_wait_empty=True,
        logging_config=None,
    )
    incidents_name = settings.topic("incidents")
    # created by `engine topics ensure` (ensure_topics), co-partitioned with incidents
    area_events_name = settings.topic("area-events")
    area_input = app.topic(
        incidents_name, area_events_name, key_serializer="raw", value_serializer="raw"
    )

    # faust's own sensors (events, commits, send latency), re-exported in seconds
    faust_registry = CollectorRegistry()
    app.monitor = PrometheusMonitor(metrics=FaustMetrics.create(faust_registry, "faust"))
    metrics.registry.register(FaustSensorsCollector(faust_registry))

    # JSON keys and values (faust's table serializer default). One table for dispatches,
    # unit statuses and input positions: see engine.streams.core.
    store = app.Table("area-state", default=None, partitions=partitions)
    core = AreaCore(worlds, plan, store)
    outputs = Outputs(settings)
    app.service(outputs)  # type: ignore[arg-type]  # faust accepts instances too
    rereader = Rereader(settings)
    app.service(rereader)  # type: ignore[arg-type]
    partitioner = DefaultPartitioner()
    topic_names = {logical: settings.topic(logical) for logical in
                   ("decisions", "callouts", "incident-state", "deadletter")}  # fmt: skip

    def expected_partition(area: str) -> int:
        key = area.encode("utf-8")
        return int(partitioner(key, list(range(partitions)), list(range(partitions))))

    async def publish(fx: Effects) -> None:
        """Outputs first, acknowledged by Kafka; only then the state that records them."""
        await outputs.send_all([(topic_names[o.topic], o.key, o.value) for o in fx.out])
        core.apply_writes()
        _count(metrics, fx)

    async def forward(event: AreaEvent) -> None:
        await outputs.send_all([(area_events_name, event.area, event.to_bytes())])

    async def dead_letter(letter: DeadLetter, key: str) -> None:
        await outputs.send_all([(topic_names["deadletter"], key, letter.to_json_bytes())])
        metrics.deadletters.labels(reason=letter.reason).inc()

    async def handle(origin: Origin, value: bytes | None, rereading: bool = False) -> None:
        """One input record to the end: outputs acknowledged, state written."""
        if origin.topic == incidents_name:
            parsed = parse_incident(value, origin)
            if isinstance(parsed, DeadLetter):
                await dead_letter(parsed, (origin.key or b"").decode("utf-8", "replace"))
                return
            assert parsed.area is not None
            home = expected_partition(parsed.area)
            if origin.key != parsed.area.encode() or origin.partition != home:
                reason = "unkeyed" if origin.key is None else "other_key"
                await forward(AreaEvent(kind="incident", at=origin.timestamp, area=parsed.area,
                                        incident=parsed, source=_source(origin)))  # fmt: skip
                metrics.incidents_forwarded.labels(reason=reason).inc()
                return
            metrics.incidents.labels(**_labels(parsed)).inc()
            await publish(core.on_incident(parsed, max(origin.timestamp, parsed.raised_at)))
            return
        try:
            area_event = AreaEvent.from_bytes(value or b"")
        except ValueError as exc:
            await dead_letter(origin.dead_letter(value, str(exc)[:500], "invalid"), "")
            return
        if area_event.kind == "sweep":
            if not rereading:  # an old sweep read again asks nothing new
                await sweep(origin.partition)
            return
        if area_event.kind == "incident" and area_event.incident is not None:
            metrics.incidents.labels(**_labels(area_event.incident)).inc()
        await publish(core.on_event(area_event))

    async def take(origin: Origin, value: bytes | None) -> None:
        """Handle a record faust delivered exactly once and in offset order: a record
        at or past the recorded position is handled after any that faust skipped."""
        position = core.position(origin.topic, origin.partition)
        if position is None:  # nothing handled yet: the log's start is the position
            position = await rereader.first(origin.topic, origin.partition)
        if origin.offset < position:
            return  # handled already (re-delivered after a restart or read again)
        if origin.offset > position:
            await catch_up(origin.topic, origin.partition, position, origin.offset)
        await handle(origin, value)
        core.record_position(origin.topic, origin.partition, origin.offset + 1)

    async def catch_up(topic: str, partition: int, start: int, end: int) -> None:
        log.warning(
            "%s[%d] offsets %d..%d were skipped by the consumer; reading them again",
            topic, partition, start, end - 1,
        )  # fmt: skip
        label = "incidents" if topic == incidents_name else "area-events"
        metrics.records_reread.labels(topic=label).inc(end - start)
        async for r in rereader.read(topic, partition, start, end):
            origin = Origin(r.topic, r.partition, r.offset, r.timestamp_ms, r.key)
            await handle(origin, r.value, rereading=True)
            core.record_position(topic, partition, r.offset + 1)

    swept: dict[int, int] = {}  # partition -> incidents position at the previous sweep

    async def sweep(partition: int) -> None:
        """Records in the partition of ``incidents`` that faust has not delivered since
        the previous sweep (no progress, though the log holds more) are read here."""
        end = await rereader.end(incidents_name, partition)
        first = await rereader.first(incidents_name, partition)
        position = core.position(incidents_name, partition)
        position = first if position is None else max(position, first)
        if end > position and swept.get(partition) == position:
            await catch_up(incidents_name, partition, position, end)
        swept[partition] = core.position(incidents_name, partition) or position

    # An agent that fails stops the whole worker (CrashingSupervisor): a worker that is
    # up but no longer deciding is worse than one that exits and is restarted; at-least-
    # once delivery makes the restart safe.
    @app.agent(area_input, concurrency=1, supervisor_strategy=CrashingSupervisor)
    async def area_agent(stream: faust.StreamT[bytes]) -> None:
        async for event in stream.events():
            msg = event.message
            await take(_origin(msg), msg.value)

    async def valid(origin: Origin, value: bytes | None, model: type[M]) -> M | None:
        """A routed record parsed, or None after it went to deadletter."""
        parsed = parse(model, value, origin)
        if isinstance(parsed, DeadLetter):
            await dead_letter(parsed, (origin.key or b"").decode("utf-8", "replace"))
            return None
        return parsed

    async def route_ack(origin: Origin, value: bytes | None) -> None:
        ack = await valid(origin, value, Ack)
        if ack is None:
            return
        metrics.acks.labels(kind=ack.kind.value).inc()
        area = _area_of_ack(ack, core)
        if area is None:
            letter = origin.dead_letter(
                value,
                "cannot tell the dispatch area of this ack (no 'area' field and several "
                "areas loaded)",
                "unknown_incident",
            )
            await dead_letter(letter, ack.incident_id)
            return
        await forward(AreaEvent(kind="ack", at=ack.at, area=area, ack=ack))

    async def route_status(origin: Origin, value: bytes | None) -> None:
        status = await valid(origin, value, UnitStatus)
        if status is None:
            return
        areas = [a for a, w in core.worlds.items() if _knows(w, status.unit_id)]
        if not areas:
            log.info("unit-status for %s: not in any loaded registry, ignored", status.unit_id)
            return
        for area in areas:
            await forward(AreaEvent(kind="status", at=status.at, area=area, status=status))

    routers = Routers(
        settings,
        f"{app_id}-routers",
        {settings.topic("acks"): route_ack, settings.topic("unit-status"): route_status},
    )
    app.service(routers)  # type: ignore[arg-type]

    announced: dict[str, float] = {}

    @app.timer(interval=1.0)
    async def deadlines() -> None:
        now = clock()
        events = []
        for kind, area, incident_id in core.due(now):
            last = announced.get(incident_id, 0.0)
            if time.monotonic() - last < TICK_RESEND_S:
                continue
            announced[incident_id] = time.monotonic()
            events.append(AreaEvent(kind=kind, at=now, area=area, incident_id=incident_id))
        for e in events:
            await forward(e)
        for state, n in core.open_counts().items():
            metrics.open_incidents.labels(state=state).set(n)

    @app.timer(interval=SWEEP_S)
    async def sweeps() -> None:
        """Ask the agent to sweep partition p while its inputs hold records past the
        recorded positions (a sweep record is a later record: see take())."""
        for tp in sorted(app.consumer.assignment()):
            if tp.topic not in (incidents_name, area_events_name):
                continue
            end = await rereader.end(tp.topic, tp.partition)
            if end > (core.position(tp.topic, tp.partition) or 0):
                event = AreaEvent(kind="sweep", at=clock(), area="")
                await outputs.send_to(area_events_name, tp.partition, "", event.to_bytes())

    @app.timer(interval=LAG_CHECK_S)
    async def consumer_lag() -> None:
        """Records behind the end of every assigned partition (highwater - position)."""
        consumers = [app.consumer, routers.consumer]  # faust's, the routers' (or None)
        for consumer in consumers:
            if consumer is None:
                continue
            for tp in sorted(consumer.assignment()):
                position = await consumer.position(tp)
                highwater = consumer.highwater(tp)
                if position is not None and highwater is not None:
                    lag = max(0, int(highwater) - int(position))
                    labels = {"topic": tp.topic, "partition": str(tp.partition)}
                    metrics.consumer_lag.labels(**labels).set(lag)

    # modification times of what was loaded above: a later change is a reload
    stamps = {
        "plan": _mtime(sources.plan) if sources.plan else 0.0,
        "registry": max((_mtime(p) for p in sources.registries), default=0.0),
    }

    @app.timer(interval=RELOAD_CHECK_S)
    async def reload_sources() -> None:
        await _maybe_reload(core, sources, stamps, metrics)

    async def on_rebalance(sender: Any, *args: Any, **kwargs: Any) -> None:
        core.invalidate()  # local partitions, so local state, may have changed
        announced.clear()
        swept.clear()

    app.on_rebalance_complete.connect(on_rebalance)  # type: ignore[arg-type]

    return app, core


def _initialise_series(metrics: WorkerMetrics, worlds: dict[str, World]) -> None:
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


def _labels(incident: Incident) -> dict[str, str]:
    return incident_labels(incident.type.value, incident.priority.value, incident.area)


def _count(metrics: WorkerMetrics, fx: Effects) -> None:
    labels = _labels(fx.incident) if fx.incident is not None else None
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
        elif head == "escalated" and labels is not None:
            metrics.escalations.labels(**labels).inc()
        elif head == "unanswered" and labels is not None:
            metrics.unanswered.labels(**labels).inc()


def _origin(msg: Any) -> Origin:
    """Where a faust message came from (its timestamp is float seconds)."""
    return Origin(msg.topic, msg.partition, msg.offset, int(msg.timestamp * 1000), msg.key)


def _source(origin: Origin) -> dict[str, Any]:
    return {
        "topic": origin.topic,
        "partition": origin.partition,
        "offset": origin.offset,
        "key": None if origin.key is None else origin.key.decode("utf-8", "replace"),
    }


def _knows(world: World, unit_id: str) -> bool:
    reg = world.registry
    return unit_id in reg.placed or unit_id in reg.radios or unit_id in reg.volunteers


def _area_of_ack(ack: Ack, core: AreaCore) -> str | None:
    """The ack's area: its own ``area`` field (our gateway copies it from the call-out),
    else the only area this worker knows."""
    area = getattr(ack, "area", None)
    if isinstance(area, str) and area:
        return area
    if len(core.worlds) == 1:
        return next(iter(core.worlds))
    return None


def _credentials(settings: Settings) -> Any:
    opts = client_kwargs(settings)
    proto = settings.kafka_security_protocol
    if proto == "PLAINTEXT":
        return None
    if proto == "SSL":
        return faust.SSLCredentials(opts["ssl_context"])
    password = settings.kafka_sasl_password
    return faust.SASLCredentials(
        username=settings.kafka_sasl_username,
        password=password.get_secret_value() if password else None,
        mechanism=settings.kafka_sasl_mechanism,
        ssl_context=opts.get("ssl_context"),
    )


async def _maybe_reload(
    core: AreaCore, sources: Sources, stamps: dict[str, float], metrics: WorkerMetrics
) -> None:
    """Swap in a changed plan or registry once it validates; keep the old one if not."""
    files = {"plan": [sources.plan] if sources.plan else [], "registry": sources.registries}
    for what, paths in files.items():
        mtime = max((_mtime(p) for p in paths), default=0.0)
        if not paths or stamps.get(what) == mtime:
            continue
        stamps[what] = mtime
        try:
            if what == "plan":
                plan: LoadedPlan = await asyncio.to_thread(load_plan, sources.plan)
                core.replace_plan(plan)
                metrics.plan_reloads.labels(result="ok").inc()
                log.warning("plan reloaded: %s", plan.version)
            else:
                worlds = await asyncio.to_thread(load_worlds, sources.registries)
                core.replace_worlds(worlds)
                metrics.registry_reloads.labels(result="ok").inc()
                log.warning("registry reloaded: %s", ", ".join(sorted(worlds)))
        except ConfigError as exc:
            counter = metrics.plan_reloads if what == "plan" else metrics.registry_reloads
            counter.labels(result="error").inc()
            log.error("%s reload refused, the running one stays: %s", what, exc)


def _mtime(path: Path) -> float:
    """Newest modification time of a file or of the files in a directory."""
    try:
        if path.is_dir():
            return max((p.stat().st_mtime for p in path.iterdir()), default=0.0)
        return path.stat().st_mtime
    except OSError:
        return 0.0


__all__ = ["Sources", "build_app", "load_worlds"]
