"""Prometheus metrics shared by the engine's processes (DESIGN.md §6, issue 7).

Base units (seconds), counters end in ``_total`` (prometheus-client adds the suffix),
label values bounded: incident type, priority, dispatch area, stage, kind, reason,
state, topic and partition; never an incident id, a radio id or a volunteer.

- :data:`LATENCY_BUCKETS`: one bucket layout for every per-stage latency histogram, from
  tens of milliseconds (the automatic part) to ten minutes (on scene). Its bounds include
  the SLO thresholds exactly (5 s for P1 raise -> call-out, 15 s NENA, 60 s NFPA 1225),
  so the recording rules read ``le="5"`` / ``le="60"`` without interpolation.
- :class:`WorkerMetrics`: the stream worker's metrics (``engine worker``, port 9101).
  Each instance owns its registry, like :class:`engine.radio.metrics.GatewayMetrics`
  (gateway, port 9102), so two in one process (tests) never collide.
- :func:`serve_metrics`: ``/metrics`` over HTTP on a port, stoppable.
- :func:`incident_labels`: the bounded (type, priority, area) label values.

The API process (port 8080, ``/metrics`` beside its routes) does not exist yet; its
metrics will live here too when it lands.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from wsgiref.simple_server import WSGIServer

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    start_http_server,
)

from engine.models import IncidentType, Priority

WORKER_PORT = 9101
GATEWAY_PORT = 9102
API_PORT = 8080

LATENCY_BUCKETS: tuple[float, ...] = (
    0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 15.0, 30.0, 60.0,
    120.0, 300.0, 600.0,
)  # fmt: skip
"""Seconds. Tens of ms (rules, Kafka round trips) up to 10 min (volunteers on scene)."""

INCIDENT_LABELS = ("type", "priority", "area")
"""Labels of the per-incident histograms and counters: all bounded sets."""

OTHER = "other"
_TYPES = frozenset(t.value for t in IncidentType)
_PRIORITIES = frozenset(p.value for p in Priority)
_AREA = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")
MAX_STAGE_LABEL = 5
"""Escalation stages above this are counted as ``"5+"``: the label set stays bounded."""


def incident_labels(incident_type: str, priority: str, area: str | None) -> dict[str, str]:
    """Bounded label values for an incident: an unknown type or priority becomes
    ``other``; an area id that does not look like one (Dongguan has 32 towns and
    districts, ids like ``tangxia``) becomes ``other``, a missing one ``unknown``."""
    t = str(incident_type)
    p = str(priority)
    a = "unknown" if not area else str(area).lower()
    return {
        "type": t if t in _TYPES else OTHER,
        "priority": p if p in _PRIORITIES else OTHER,
        "area": a if a == "unknown" or _AREA.match(a) else OTHER,
    }


def stage_label(stage: int) -> str:
    """``0``..``4`` as themselves, anything above as ``5+``."""
    return str(stage) if stage < MAX_STAGE_LABEL else f"{MAX_STAGE_LABEL}+"


class WorkerMetrics:
    """The stream worker's metrics. ``engine/streams`` updates them; the dashboard
    (deploy/grafana) and the rules (deploy/prometheus) read them by these names."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry(auto_describe=True)
        r = self.registry
        b = LATENCY_BUCKETS
        # --- latency per stage (histograms, seconds) -------------------------------------
        self.raise_to_decision = Histogram(
            "engine_raise_to_decision_seconds",
            "From an incident's raised_at to its stage-0 decision and call-out records "
            "produced to Kafka: the engine's automatic part (SLO: P1 within 5 s, 99%)",
            INCIDENT_LABELS, buckets=b, registry=r,
        )  # fmt: skip
        self.callout_to_ack = Histogram(
            "engine_callout_to_ack_seconds",
            "From a stage's decision (call-outs produced) to the first handset accept for "
            "that stage: how fast volunteers answer",
            INCIDENT_LABELS, buckets=b, registry=r,
        )  # fmt: skip
        self.raise_to_first_ack = Histogram(
            "engine_raise_to_first_ack_seconds",
            "From raised_at to the first handset accept of any stage: the call is "
            "processed, a volunteer has it (SLO: NFPA 1225, 90% within 60 s)",
            INCIDENT_LABELS, buckets=b, registry=r,
        )  # fmt: skip
        self.raise_to_quorum = Histogram(
            "engine_raise_to_quorum_seconds",
            "From raised_at to the decision's ack quorum reached (enough groups accepted)",
            INCIDENT_LABELS, buckets=b, registry=r,
        )  # fmt: skip
        self.raise_to_on_scene = Histogram(
            "engine_raise_to_on_scene_seconds",
            "From raised_at to the first on-scene report (handset reply 3)",
            INCIDENT_LABELS, buckets=b, registry=r,
        )  # fmt: skip
        # --- counters --------------------------------------------------------------------
        self.incidents = Counter(
            "engine_incidents",
            "Incidents accepted from the incidents topic (valid, first time seen)",
            INCIDENT_LABELS, registry=r,
        )  # fmt: skip
        self.decisions = Counter(
            "engine_decisions",
            "Decisions produced, by stage (0 first call-out, 1.. escalations, 5+ capped) "
            "and kind (dispatch, escalation, no_zone, cancel, close)",
            ["stage", "kind"], registry=r,
        )  # fmt: skip
        self.escalations = Counter(
            "engine_escalations",
            "Escalations: a stage's ack deadline passed without quorum and the next "
            "stage called more groups",
            INCIDENT_LABELS, registry=r,
        )  # fmt: skip
        self.unanswered = Counter(
            "engine_unanswered",
            "Call-out stages whose ack deadline passed with no accept at all: the zone "
            "team and its linked units did not acknowledge",
            INCIDENT_LABELS, registry=r,
        )  # fmt: skip
        self.callouts = Counter(
            "engine_callouts",
            "Call-out records produced to the callouts topic (one per handset), by channel",
            ["priority", "channel"], registry=r,
        )  # fmt: skip
        self.acks = Counter(
            "engine_acks",
            "Acks consumed from the acks topic, by kind (delivered, accept, decline, "
            "on_scene)",
            ["kind"], registry=r,
        )  # fmt: skip
        self.deadletters = Counter(
            "engine_deadletters",
            "Records sent to the deadletter topic instead of being processed, by reason "
            "(invalid_json, invalid_schema, schema_version, unknown_area, ...)",
            ["reason"], registry=r,
        )  # fmt: skip
        self.incidents_forwarded = Counter(
            "engine_incidents_forwarded",
            "Incidents keyed otherwise (or unkeyed), re-produced keyed by their dispatch "
            "area to the area's partition: one extra hop each",
            ["reason"], registry=r,
        )  # fmt: skip
        self.acks_ignored = Counter(
            "engine_acks_ignored",
            "Replies and delivery reports that changed nothing (a repeat, an ended "
            "incident, a handset not called): counted, never stored",
            registry=r,
        )
        self.commit_seconds = Histogram(
            "engine_commit_seconds",
            "Time to commit one task's batch (outputs, state, input offsets) in one "
            "Kafka transaction",
            buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
            registry=r,
        )
        self.batch_records = Histogram(
            "engine_batch_records",
            "Input records handled per task per batch",
            buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000),
            registry=r,
        )
        self.transactions = Counter(
            "engine_transactions",
            "The worker's Kafka transactions (one per task per batch), by result: "
            "committed, aborted (handled again), fenced (the partition moved)",
            ["result"], registry=r,
        )  # fmt: skip
        self.plan_reloads = Counter(
            "engine_plan_reload",
            "Response plan reloads, by result (ok, error: the previous plan stays)",
            ["result"], registry=r,
        )  # fmt: skip
        self.registry_reloads = Counter(
            "engine_registry_reload",
            "Registry (zones, units, radios) reloads, by result (ok, error: the previous "
            "registry stays)",
            ["result"], registry=r,
        )  # fmt: skip
        # --- gauges ----------------------------------------------------------------------
        self.open_incidents = Gauge(
            "engine_open_incidents",
            "Incidents not closed or cancelled, held by this worker, by lifecycle state",
            ["state"], registry=r,
        )  # fmt: skip
        self.consumer_lag = Gauge(
            "engine_consumer_lag",
            "Records behind the end of each assigned partition (high watermark minus "
            "the consumer's position), by topic and partition",
            ["topic", "partition"], registry=r,
        )  # fmt: skip

    def histograms(self) -> tuple[Histogram, ...]:
        return (
            self.raise_to_decision,
            self.callout_to_ack,
            self.raise_to_first_ack,
            self.raise_to_quorum,
            self.raise_to_on_scene,
        )

    def serve(self, port: int = WORKER_PORT, addr: str = "0.0.0.0") -> MetricsServer:
        return serve_metrics(self.registry, port, addr)


@dataclass
class MetricsServer:
    """A running ``/metrics`` endpoint (a daemon thread). :meth:`close` stops it."""

    server: WSGIServer
    thread: threading.Thread

    @property
    def port(self) -> int:
        return int(self.server.server_port)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


def serve_metrics(registry: CollectorRegistry, port: int, addr: str = "0.0.0.0") -> MetricsServer:
    """Serve ``registry`` at ``http://addr:port/metrics`` (port 0: any free port; read
    it back from :attr:`MetricsServer.port`)."""
    server, thread = start_http_server(port, addr=addr, registry=registry)
    return MetricsServer(server, thread)
