"""The API's own metrics (its ``/metrics`` on the API port)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

REQUEST_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class ApiMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.requests = Histogram(
            "engine_api_request_seconds",
            "HTTP request latency of the operator API, by route and status",
            ["method", "route", "status"],
            buckets=REQUEST_BUCKETS,
            registry=self.registry,
        )
        self.sse_clients = Gauge(
            "engine_api_sse_clients",
            "live-board clients connected to /v1/events",
            registry=self.registry,
        )
        self.raised = Counter(
            "engine_api_incidents_raised_total",
            "incidents raised through the API (acknowledged by Kafka)",
            registry=self.registry,
        )
        self.commands = Counter(
            "engine_api_commands_total",
            "operator commands by action and outcome (applied, refused, timeout)",
            ["action", "result"],
            registry=self.registry,
        )

        self.broadcasts = Counter(
            "engine_api_broadcasts_total",
            "broadcast requests by action (create, cancel) and outcome (accepted, refused, "
            "quiet_hours, unknown)",
            ["action", "result"],
            registry=self.registry,
        )
        self.broadcast_messages_left = Gauge(
            "engine_api_broadcast_messages_left",
            "messages of running broadcasts not sent yet (all gateways)",
            registry=self.registry,
        )

    def exposition(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
