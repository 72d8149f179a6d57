"""The whole product path, every part a real process: `engine raise` -> Kafka -> `engine
worker` -> decisions and call-outs -> `engine gateway` -> AT commands over a pty ->
`engine simulate handsets` -> SMS replies -> acks -> worker -> incident-state."""

from __future__ import annotations

import os
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.config import Settings
from tests.kafka_broker import free_port
from tests.worker_process import read_until, running_worker

pytestmark = pytest.mark.e2e

REGISTRY = Path(__file__).resolve().parents[2] / "data" / "tangxia"


def _env(settings: Settings) -> dict[str, str]:
    return {
        **os.environ,
        "ENGINE_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
        "ENGINE_TOPIC_PREFIX": settings.topic_prefix,
        "ENGINE_DATA_DIR": str(settings.data_dir),
    }


def _start(settings: Settings, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "engine.cli", *args],
        env=_env(settings), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def _stop(proc: subprocess.Popen[str]) -> str:
    proc.terminate()
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    return err


@pytest.fixture
def handsets(kafka_settings: Settings, tmp_path: Path) -> Iterator[Path]:
    link = tmp_path / "ttyUSB0"
    sim = _start(
        kafka_settings, "simulate", "handsets", "--registry", str(REGISTRY),
        "--reply", "accept", "--reply-delay", "0.2", "--on-scene-after", "1", "--link", str(link),
    )  # fmt: skip
    assert sim.stdout is not None
    assert sim.stdout.readline().strip() == str(link)
    try:
        yield link
    finally:
        _stop(sim)


def test_incident_to_handsets_and_back(
    kafka_settings: Settings, handsets: Path, tmp_path: Path
) -> None:
    port = free_port()
    gateway = _start(
        kafka_settings, "gateway", "--device", str(handsets), "--registry", str(REGISTRY),
        "--metrics-port", "0",
    )  # fmt: skip
    try:
        with running_worker(kafka_settings, tmp_path / "worker.log", metrics_port=port):
            raised = subprocess.run(
                [sys.executable, "-m", "engine.cli", "raise", "--type", "fire", "--priority",
                 "P1", "--lat", "22.8031", "--lon", "114.0842", "--address", "林村新围路12号"],
                env=_env(kafka_settings), capture_output=True, text=True, timeout=60, check=True,
            )  # fmt: skip
            incident_id = raised.stdout.strip()
            states = read_until(
                kafka_settings, "incident-state",
                lambda r: any(s["value"]["state"] == "on_scene" for s in r), timeout=90,
            )  # fmt: skip
            acks = read_until(kafka_settings, "acks", lambda r: len(r) >= 12, timeout=30)
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:
                exposition = resp.read().decode()
    finally:
        _stop(gateway)
    timeline = [s["value"]["state"] for s in states if s["value"]["incident_id"] == incident_id]
    assert timeline[0] == "dispatched"
    assert "acknowledged" in timeline
    assert timeline[-1] == "on_scene"
    kinds = {a["value"]["kind"] for a in acks}
    assert {"sent", "delivered", "accept"} <= kinds
    assert all(a["value"].get("area") == "tangxia" for a in acks)  # routed by area
    assert 'engine_raise_to_quorum_seconds_count{area="tangxia",priority="P1",type="fire"} 1.0' in (
        exposition
    )
    assert (
        'engine_raise_to_decision_seconds_count{area="tangxia",priority="P1",type="fire"} 1.0'
        in (exposition)
    )
