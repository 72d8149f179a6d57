"""Helpers for the observability tests: Debian's promtool/prometheus, kubeconform, and
the metric names every process exports (the dashboard and rules may use only these)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from engine.api.metrics import ApiMetrics
from engine.metrics import WorkerMetrics, incident_labels, stage_label
from engine.radio.metrics import GatewayMetrics

REPO = Path(__file__).resolve().parents[1]
DEPLOY = REPO / "deploy"
PROMETHEUS_DIR = DEPLOY / "prometheus"
RULE_FILES = sorted((PROMETHEUS_DIR / "rules").glob("*.yml"))


def tool(name: str, install: str) -> str:
    """Path of a required binary; a clear failure (not a skip) when it is missing."""
    found = shutil.which(name)
    if found is None:
        for extra in (Path.home() / "go" / "bin", Path("/usr/local/go/bin")):
            if (extra / name).is_file() and os.access(extra / name, os.X_OK):
                return str(extra / name)
        pytest.fail(f"{name} not found: {install}", pytrace=False)
    return found


def promtool() -> str:
    return tool("promtool", "apt-get install prometheus (Debian ships promtool in it)")


def run(*argv: str, stdin: str | None = None, cwd: Path | None = None) -> tuple[int, str]:
    proc = subprocess.run(
        argv, input=stdin, capture_output=True, text=True, timeout=300, cwd=cwd, check=False
    )
    return proc.returncode, proc.stdout + proc.stderr


def touched_worker() -> WorkerMetrics:
    """A WorkerMetrics with a sample in every metric (so every name is exposed)."""
    m = WorkerMetrics()
    labels = incident_labels("fire", "P1", "tangxia")
    for h in m.histograms():
        h.labels(**labels).observe(0.42)
    for c in (m.incidents, m.escalations, m.unanswered):
        c.labels(**labels).inc()
    m.decisions.labels(stage_label(0), "dispatch").inc()
    m.callouts.labels("P1", "sms").inc()
    m.acks.labels("accept").inc()
    m.deadletters.labels("invalid_json").inc()
    m.incidents_forwarded.labels("unkeyed").inc()
    m.acks_ignored.inc()
    m.transactions.labels("committed").inc()
    m.commit_seconds.observe(0.012)
    m.batch_records.observe(14)
    m.plan_reloads.labels("ok").inc()
    m.registry_reloads.labels("error").inc()
    m.open_incidents.labels("dispatched").set(2)
    m.consumer_lag.labels("incidents", "0").set(0)
    return m


def touched_gateway() -> GatewayMetrics:
    g = GatewayMetrics()
    g.callouts_sent.labels("sms").inc()
    g.callouts_skipped.labels("duplicate").inc()
    g.decision_to_callout.observe(0.3)
    g.replies.labels("accept").inc()
    g.replies_rejected.labels("unknown_number").inc()
    g.serial_errors.labels("timeout").inc()
    g.reconnects.inc()
    g.modem_restarts.inc()
    g.link_up.set(1)
    g.poc_network_up.set(1)
    g.queue_depth.set(0)
    g.broadcast_messages.labels("sent", "sms").inc()
    g.broadcast_queue_depth.set(3)
    g.broadcast_replies.inc()
    g.callout_behind_broadcast.observe(1.2)
    return g


def touched_api() -> ApiMetrics:
    a = ApiMetrics()
    a.requests.labels("GET", "/v1/incidents", "200").observe(0.01)
    a.sse_clients.set(1)
    a.raised.inc()
    a.commands.labels("escalate", "applied").inc()
    a.broadcasts.labels("create", "accepted").inc()
    a.broadcast_messages_left.set(2570)
    return a


def exposition(registry: CollectorRegistry) -> str:
    return generate_latest(registry).decode()


def exported_series_names() -> dict[str, str]:
    """Every sample name the worker, gateway and API expose (``_bucket``, ``_total``...),
    mapped to its family's type, plus Prometheus's own ``up``."""
    names: dict[str, str] = {"up": "gauge", "scrape_duration_seconds": "gauge"}
    registries = (touched_worker().registry, touched_gateway().registry, touched_api().registry)
    for registry in registries:
        for family in text_string_to_metric_families(exposition(registry)):
            for sample in family.samples:
                names[sample.name] = family.type
    return names


def recording_rule_names() -> set[str]:
    import yaml

    names: set[str] = set()
    for path in RULE_FILES:
        for group in yaml.safe_load(path.read_text())["groups"]:
            names.update(r["record"] for r in group["rules"] if "record" in r)
    return names


# --- PromQL: the metric names an expression reads ----------------------------------------

_PROMQL_WORDS = """abs absent absent_over_time avg avg_over_time bool bottomk by ceil changes clamp
    clamp_max clamp_min count count_over_time count_values day_of_month day_of_week
    day_of_year days_in_month delta deriv exp floor group group_left group_right
    histogram_quantile holt_winters hour idelta ignoring increase inf irate label_join
    label_replace last_over_time ln log10 log2 max max_over_time min min_over_time minute
    month nan offset on or and unless predict_linear present_over_time quantile
    quantile_over_time rate resets round scalar sgn sort sort_desc sqrt stddev
    stddev_over_time stdvar stdvar_over_time sum sum_over_time time timestamp topk vector
    without year"""
_FUNCTIONS_AND_KEYWORDS = frozenset(_PROMQL_WORDS.split())
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_MATCHERS = re.compile(r"\{[^{}]*\}")
_RANGE = re.compile(r"\[[^\]]*\]")
_GROUPING = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_IDENT = re.compile(r"(?<![\w:.])([A-Za-z_:][\w:]*)")
_NUMBER_SUFFIX = re.compile(r"\b\d+(\.\d+)?(e[+-]?\d+)?([smhdwy]|ms)?\b", re.IGNORECASE)


def promql_metric_names(expr: str) -> set[str]:
    """Metric (and recording-rule) names that ``expr`` selects. A lexer, not a parser:
    strings, label matchers, ranges and grouping lists are removed first, then every
    remaining identifier that is not a function or keyword is a name. ``promtool``
    checks the syntax separately."""
    text = _STRING.sub('""', expr)
    text = _MATCHERS.sub("", text)
    text = _RANGE.sub("", text)
    text = _GROUPING.sub(" ", text)
    text = _NUMBER_SUFFIX.sub(" ", text)
    names = set()
    for match in _IDENT.finditer(text):
        word = match.group(1)
        if word.lower() in _FUNCTIONS_AND_KEYWORDS:
            continue
        names.add(word)
    return names
