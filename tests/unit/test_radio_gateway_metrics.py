"""The gateway's /metrics: the names DESIGN.md §6 asks for, base units, bounded labels."""

from __future__ import annotations

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from engine.radio.metrics import GatewayMetrics

pytestmark = pytest.mark.unit


def test_exposition_names_and_labels() -> None:
    m = GatewayMetrics()
    m.callouts_sent.labels("sms").inc()
    m.decision_to_callout.observe(0.2)
    m.replies_rejected.labels("unknown_number").inc()
    m.serial_errors.labels("timeout").inc()
    m.reconnects.inc()
    m.link_up.set(1)
    families = {
        f.name: f for f in text_string_to_metric_families(generate_latest(m.registry).decode())
    }
    assert families["engine_decision_to_callout_seconds"].type == "histogram"
    buckets = [
        float(s.labels["le"])
        for s in families["engine_decision_to_callout_seconds"].samples
        if s.name.endswith("_bucket") and s.labels["le"] != "+Inf"
    ]
    assert buckets[0] <= 0.01
    assert buckets[-1] >= 120
    for name in ("engine_radio_callouts_sent", "engine_radio_replies_rejected",
                 "engine_radio_serial_errors", "engine_radio_reconnects"):  # fmt: skip
        assert families[name].type == "counter"
        assert all(s.name.startswith(name) for s in families[name].samples)
    labels = {k for f in families.values() for s in f.samples for k in s.labels}
    assert labels <= {"channel", "reason", "kind", "le"}  # no incident or radio ids


def test_two_gateways_in_one_process_do_not_collide() -> None:
    GatewayMetrics()
    GatewayMetrics()
