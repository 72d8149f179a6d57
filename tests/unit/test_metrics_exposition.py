"""Every process's /metrics passes `promtool check metrics` (DESIGN.md §6), with base
units and bounded labels: the worker's (engine/metrics.py), the gateway's
(engine/radio/metrics.py)."""

from __future__ import annotations

import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from engine.metrics import (
    LATENCY_BUCKETS,
    WorkerMetrics,
    incident_labels,
    stage_label,
)
from tests.prom_helpers import exposition, promtool, run, touched_gateway, touched_worker

pytestmark = pytest.mark.unit

WORKER_HISTOGRAMS = {
    "engine_raise_to_decision_seconds",
    "engine_callout_to_ack_seconds",
    "engine_raise_to_first_ack_seconds",
    "engine_raise_to_quorum_seconds",
    "engine_raise_to_on_scene_seconds",
}
WORKER_COUNTERS = {
    "engine_incidents",
    "engine_decisions",
    "engine_escalations",
    "engine_unanswered",
    "engine_callouts",
    "engine_acks",
    "engine_deadletters",
    "engine_incidents_forwarded",
    "engine_acks_ignored",
    "engine_transactions",
    "engine_plan_reload",
    "engine_registry_reload",
}
BOUNDED_LABELS = {
    "type", "priority", "area", "stage", "kind", "reason", "result", "state", "topic",
    "partition", "channel", "le",
}  # fmt: skip


def _check(text: str) -> None:
    code, out = run(promtool(), "check", "metrics", stdin=text)
    assert code == 0 and not out.strip(), out


def test_worker_exposition_passes_promtool() -> None:
    _check(exposition(touched_worker().registry))


def test_gateway_exposition_passes_promtool() -> None:
    _check(exposition(touched_gateway().registry))


def test_fresh_registries_pass_promtool() -> None:
    """What Prometheus scrapes right after start, before anything happened."""
    _check(exposition(WorkerMetrics().registry))


def test_worker_names_types_and_bounded_labels() -> None:
    families = {
        f.name: f for f in text_string_to_metric_families(exposition(touched_worker().registry))
    }
    for name in WORKER_HISTOGRAMS:
        assert families[name].type == "histogram", name
        assert families[name].documentation, name
    for name in WORKER_COUNTERS:
        assert families[name].type == "counter", name
        assert any(s.name == f"{name}_total" for s in families[name].samples), name
    assert families["engine_open_incidents"].type == "gauge"
    assert families["engine_consumer_lag"].type == "gauge"
    assert families["engine_commit_seconds"].type == "histogram"
    assert families["engine_batch_records"].type == "histogram"
    labels = {k for f in families.values() for s in f.samples for k in s.labels}
    assert labels <= BOUNDED_LABELS, labels - BOUNDED_LABELS
    hist_labels = {
        k for name in WORKER_HISTOGRAMS for s in families[name].samples for k in s.labels
    }
    assert hist_labels == {"type", "priority", "area", "le"}


def test_buckets_span_tens_of_ms_to_minutes_and_hit_slo_thresholds() -> None:
    assert LATENCY_BUCKETS[0] == 0.01
    assert LATENCY_BUCKETS[-1] >= 300
    assert list(LATENCY_BUCKETS) == sorted(set(LATENCY_BUCKETS))
    for threshold in (5.0, 15.0, 60.0):  # P1 call-out, NENA, NFPA 1225
        assert threshold in LATENCY_BUCKETS


def test_label_values_are_bounded() -> None:
    assert incident_labels("fire", "P1", "tangxia") == {
        "type": "fire", "priority": "P1", "area": "tangxia",
    }  # fmt: skip
    odd = incident_labels("INC-20261129-XYK7Q2", "urgent!", "塘厦镇 林村 12号")
    assert odd == {"type": "other", "priority": "other", "area": "other"}
    assert incident_labels("medical", "P4", None)["area"] == "unknown"
    assert [stage_label(s) for s in (0, 1, 4, 5, 17)] == ["0", "1", "4", "5+", "5+"]


def test_serve_metrics_on_a_free_port_and_stop() -> None:
    worker = touched_worker()
    server = worker.serve(0, addr="127.0.0.1")
    try:
        url = f"http://127.0.0.1:{server.port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as response:
            body = response.read().decode()
    finally:
        server.close()
    assert "engine_raise_to_decision_seconds_bucket" in body
    _check(body)
