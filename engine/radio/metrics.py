"""The gateway's Prometheus metrics (DESIGN.md §6): base units, bounded labels only.

Each :class:`GatewayMetrics` owns its own registry, so two gateways in one process
(tests, a restart) never collide, and ``/metrics`` shows exactly the gateway.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

DEFAULT_PORT = 9102

DECISION_TO_CALLOUT_BUCKETS = (
    0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
)  # fmt: skip


class GatewayMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry(auto_describe=True)
        r = self.registry
        self.callouts_sent = Counter(
            "engine_radio_callouts_sent",
            "Call-outs the modem accepted, by channel",
            ["channel"],
            registry=r,
        )
        self.callouts_skipped = Counter(
            "engine_radio_callouts_skipped",
            "Call-outs not sent: duplicate, refused, not_allowed, too_long, stale",
            ["reason"],
            registry=r,
        )
        self.decision_to_callout = Histogram(
            "engine_decision_to_callout_seconds",
            "From the decision (call-out produced) to the modem accepting the call-out",
            buckets=DECISION_TO_CALLOUT_BUCKETS,
            registry=r,
        )
        self.replies = Counter(
            "engine_radio_replies", "Handset replies published as acks", ["kind"], registry=r
        )
        self.delivery_reports = Counter(
            "engine_radio_delivery_reports",
            "Status reports and PoC call results published as acks",
            ["kind"],
            registry=r,
        )
        self.replies_rejected = Counter(
            "engine_radio_replies_rejected",
            "Handset replies rejected and not acked, by reason",
            ["reason"],
            registry=r,
        )
        self.link_up = Gauge(
            "engine_radio_link_up", "1 when the modem port is open and answering", registry=r
        )
        self.poc_network_up = Gauge(
            "engine_radio_poc_network_up", "1 when the PoC handset reports its network up",
            registry=r,
        )  # fmt: skip
        self.serial_errors = Counter(
            "engine_radio_serial_errors",
            "Commands that failed: timeout, aborted (port lost, modem restart), refused",
            ["kind"],
            registry=r,
        )
        self.reconnects = Counter(
            "engine_radio_reconnects", "Times the serial port was reopened", registry=r
        )
        self.modem_restarts = Counter(
            "engine_radio_modem_restarts", "Modem restarts detected (init replayed)", registry=r
        )
        self.bookkeeping_failures = Counter(
            "engine_radio_bookkeeping_failures",
            "Pages the modem accepted whose ack or commit failed: the gateway exits",
            registry=r,
        )
        self.sent_log_bad_lines = Counter(
            "engine_radio_sent_log_bad_lines",
            "Torn, non-UTF-8 or unreadable sent-log lines skipped at start",
            registry=r,
        )
        self.queue_depth = Gauge(
            "engine_radio_queue_depth", "Call-outs waiting for the modem", registry=r
        )
        # broadcasts (issue 17): the lowest lane, never ahead of a call-out
        self.broadcast_messages = Counter(
            "engine_radio_broadcast_messages",
            "Broadcast messages by outcome (sent, failed, cancelled, expired, duplicate) "
            "and channel",
            ["result", "channel"],
            registry=r,
        )
        self.broadcast_queue_depth = Gauge(
            "engine_radio_broadcast_queue_depth",
            "Broadcast messages read and waiting for a free modem",
            registry=r,
        )
        self.broadcast_replies = Counter(
            "engine_radio_broadcast_replies",
            "Replies to a broadcast (recorded on broadcasts, never acks)",
            registry=r,
        )
        self.callout_behind_broadcast = Histogram(
            "engine_radio_callout_behind_broadcast_seconds",
            "How long a call-out waited for the broadcast message in flight",
            buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0, 30.0),
            registry=r,
        )

    def serve(self, port: int = DEFAULT_PORT, addr: str = "0.0.0.0") -> None:
        """``/metrics`` on ``port`` (prometheus-client's daemon thread)."""
        start_http_server(port, addr=addr, registry=self.registry)
