"""A real Prometheus (Debian's ``prometheus`` binary, on loopback) scrapes a running
``engine worker`` and ``engine gateway`` (against the handset simulator and the real
broker), loads deploy/prometheus/rules, and answers through its HTTP API: after a real
incident, the histograms were scraped and the recording rules evaluate."""

from __future__ import annotations

import asyncio
import json
import math
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
import yaml

from engine.config import Settings
from engine.kafka.produce import produce_incidents
from engine.models import Incident
from engine.rules.intake import with_area
from tests.areas import TANGXIA
from tests.prom_helpers import REPO, RULE_FILES, tool
from tests.worker_process import running_worker

pytestmark = pytest.mark.integration

REGISTRY = REPO / "data" / "tangxia"
WITHIN = 90.0  # generous bound for a loaded CI box; never a timing assertion
T = TypeVar("T")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _env(settings: Settings) -> dict[str, str]:
    env = dict(os.environ)
    env["ENGINE_KAFKA_BOOTSTRAP"] = settings.kafka_bootstrap
    env["ENGINE_TOPIC_PREFIX"] = settings.topic_prefix
    env["ENGINE_DATA_DIR"] = str(settings.data_dir)
    return env


def _engine(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "engine.cli", *args],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def _stop(proc: subprocess.Popen[str]) -> str:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        _, err = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate()
    return err or ""


def _eventually(what: str, probe: Callable[[], T | None], within: float = WITHIN) -> T:
    deadline = time.monotonic() + within
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = probe()
        except OSError as exc:  # not listening yet
            last = exc
        if last is not None and not isinstance(last, Exception):
            found: T = last
            return found
        time.sleep(0.5)
    pytest.fail(f"{what}: not within {within}s (last: {last!r})")


class Prometheus:
    def __init__(self, port: int) -> None:
        self.base = f"http://127.0.0.1:{port}"

    def get(self, path: str, **params: str) -> Any:
        url = f"{self.base}{path}?{urllib.parse.urlencode(params)}"
        with urllib.request.urlopen(url, timeout=10) as response:
            body = json.loads(response.read())
        assert body["status"] == "success", body
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        data = self.get("/api/v1/query", query=expr)
        assert data["resultType"] == "vector", data
        result: list[dict[str, Any]] = data["result"]
        return result

    def values(self, expr: str) -> list[float]:
        return [float(r["value"][1]) for r in self.query(expr)]


@pytest.fixture
def handsets(tmp_path: Path) -> Iterator[Path]:
    link = tmp_path / "ttyUSB0"
    sim = _engine(
        "simulate", "handsets", "--registry", str(REGISTRY), "--reply-delay", "0.1",
        "--link", str(link),
    )  # fmt: skip
    try:
        assert sim.stdout is not None
        assert sim.stdout.readline().strip() == str(link), _stop(sim)
        yield link
    finally:
        _stop(sim)


@pytest.fixture
def gateway(handsets: Path, kafka_settings: Settings) -> Iterator[int]:
    port = _free_port()
    proc = _engine(
        "gateway", "--device", str(handsets), "--registry", str(REGISTRY),
        "--metrics-port", str(port), env=_env(kafka_settings),
    )  # fmt: skip
    try:
        url = f"http://127.0.0.1:{port}/metrics"

        def up() -> bool | None:
            assert proc.poll() is None, _stop(proc)
            with urllib.request.urlopen(url, timeout=5) as response:
                return b"engine_radio_link_up 1.0" in response.read() or None

        _eventually("the gateway's modem link up", up)
        yield port
    finally:
        err = _stop(proc)
        assert proc.returncode == 0, err


@pytest.fixture
def worker(kafka_settings: Settings, tmp_path: Path) -> Iterator[int]:
    """A real `engine worker`; yields its metrics port."""
    port = _free_port()
    with running_worker(kafka_settings, tmp_path / "worker.log", metrics_port=port):
        yield port


@pytest.fixture
def prometheus(tmp_path: Path, gateway: int, worker: int) -> Iterator[Prometheus]:
    binary = tool("prometheus", "apt-get install prometheus")
    port = _free_port()
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(p) for p in RULE_FILES],
        "scrape_configs": [
            {"job_name": "worker", "static_configs": [
                {"targets": [f"127.0.0.1:{worker}"]}]},
            {"job_name": "gateway", "static_configs": [{"targets": [f"127.0.0.1:{gateway}"]}]},
        ],
    }  # fmt: skip
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    proc = subprocess.Popen(
        [
            binary,
            f"--config.file={tmp_path / 'prometheus.yml'}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--log.level=warn",
        ],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        prom = Prometheus(port)

        def ready() -> bool | None:
            assert proc.poll() is None, _stop(proc)
            with urllib.request.urlopen(f"{prom.base}/-/ready", timeout=5) as response:
                return response.status == 200 or None

        _eventually("prometheus ready", ready)
        yield prom
    finally:
        _stop(proc)


def test_prometheus_scrapes_histograms_and_evaluates_rules(
    prometheus: Prometheus, kafka_settings: Settings
) -> None:
    _eventually(
        "both targets up",
        lambda: sorted(prometheus.values("up")) == [1.0, 1.0] or None,
    )
    _eventually(
        "the worker's transactions series scraped",
        lambda: prometheus.values('engine_transactions_total{job="worker"}') or None,
    )

    # Raise a real P1 fire: the worker decides, the gateway pages the handsets for real.
    incident = with_area(
        Incident.model_validate(
            {"type": "fire", "priority": "P1", "location": {"lat": 22.8031, "lon": 114.0842}}
        ),
        [TANGXIA],
    )
    asyncio.run(produce_incidents(kafka_settings, [incident]))
    _eventually(
        "the worker's raise -> decision histogram scraped with the one incident",
        lambda: prometheus.values(
            'engine_raise_to_decision_seconds_count{job="worker",type="fire",priority="P1"}')
        == [1.0] or None,
    )  # fmt: skip
    _eventually(
        "consumer lag per partition scraped",
        lambda: prometheus.values('engine_consumer_lag{job="worker"}') or None,
    )

    # Scraped: the gateway's histogram moved, the worker's carries its bounded labels.
    _eventually(
        "the gateway's decision -> call-out histogram scraped with the call-outs sent",
        lambda: [v for v in prometheus.values(
            'engine_decision_to_callout_seconds_count{job="gateway"}') if v >= 1.0] or None,
    )  # fmt: skip
    buckets = prometheus.query(
        'engine_raise_to_decision_seconds_bucket{job="worker",type="fire",priority="P1"}'
    )
    assert {b["metric"]["le"] for b in buckets} >= {"0.01", "5.0", "60.0", "+Inf"}
    assert {(b["metric"]["type"], b["metric"]["priority"], b["metric"]["area"])
            for b in buckets} == {("fire", "P1", "tangxia")}  # fmt: skip
    every = prometheus.query('engine_raise_to_decision_seconds_count{job="worker"}')
    assert {s["metric"]["area"] for s in every} == {"tangxia"}  # bounded: one area loaded
    for b in buckets:
        assert set(b["metric"]) == {"__name__", "job", "instance", "type", "priority",
                                    "area", "le"}  # fmt: skip

    # Evaluated: recording rules from deploy/prometheus/rules over the scraped data.
    p99 = _eventually(
        "priority:engine_raise_to_decision_seconds:p99_5m evaluates",
        lambda: [
            v for v in prometheus.values('priority:engine_raise_to_decision_seconds:p99_5m'
                                         '{priority="P1"}') if not math.isnan(v)
        ] or None,
    )  # fmt: skip
    assert 0.0 < p99[0] <= 5.0  # one real decision, well inside the 5 s P1 objective
    error_ratio = _eventually(
        "slo:engine_p1_callout_5s:error_ratio_rate5m evaluates",
        lambda: [
            v for v in prometheus.values("slo:engine_p1_callout_5s:error_ratio_rate5m")
            if not math.isnan(v)
        ] or None,
    )  # fmt: skip
    assert error_ratio == [0.0]  # the one P1 call-out was within 5 s
    _eventually(
        "the gateway's leg recorded",
        lambda: prometheus.values(":engine_decision_to_callout_seconds:p99_5m") or None,
    )

    # Every rule loaded and evaluates without error; nothing pages on a healthy system.
    groups = prometheus.get("/api/v1/rules")["groups"]
    rules = [r for g in groups for r in g["rules"]]
    assert len(rules) >= 50
    assert [r["name"] for r in rules if r["health"] != "ok"] == []
    firing = [a["labels"]["alertname"] for a in prometheus.get("/api/v1/alerts")["alerts"]]
    assert "EngineRadioLinkDown" not in firing
    assert "EngineWorkersAllDown" not in firing
