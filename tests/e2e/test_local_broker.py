"""`engine broker start|stop|status` on ports of its own: idempotent start, clean stop."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.kafka_broker import free_port

pytestmark = pytest.mark.e2e


def _java_pids_of(data_dir: Path) -> list[int]:
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes()
        except OSError:
            continue
        if b"kafka.Kafka" in cmdline and str(data_dir).encode() in cmdline:
            pids.append(int(proc.name))
    return pids


def test_start_twice_status_stop_leaves_no_process(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "ENGINE_DATA_DIR": str(tmp_path),
        "ENGINE_BROKER_PORT": str(free_port()),
        "ENGINE_BROKER_CONTROLLER_PORT": str(free_port()),
    }

    def engine(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "engine.cli", "broker", *args],
            env=env, capture_output=True, text=True, timeout=180, check=False,
        )  # fmt: skip

    try:
        first = engine("start")
        assert first.returncode == 0, first.stderr
        assert "Apache Kafka 4." in first.stdout
        assert "started" in first.stdout
        assert len(_java_pids_of(tmp_path)) == 1

        second = engine("start")
        assert second.returncode == 0, second.stderr
        assert "already running" in second.stdout
        assert len(_java_pids_of(tmp_path)) == 1

        status = engine("status")
        assert status.returncode == 0
        assert "running:   yes" in status.stdout
        assert "answers:   yes" in status.stdout
        assert "Apache Kafka 4." in status.stdout
        assert f"127.0.0.1:{env['ENGINE_BROKER_PORT']}" in status.stdout
    finally:
        stopped = engine("stop")
    assert stopped.returncode == 0, stopped.stderr
    assert "clean shutdown" in stopped.stdout
    assert _java_pids_of(tmp_path) == []
    log = (tmp_path / "broker/logs/server.log").read_text(encoding="utf-8")
    after_sigterm = log.split("Terminating process due to signal SIGTERM")[-1]
    assert "Request Handler on Controller 1] shut down completely" in after_sigterm
    after = engine("status")
    assert after.returncode == 3
    assert "running:   no" in after.stdout
