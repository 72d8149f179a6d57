"""Run `engine worker` as a real process for tests: start, wait until it says it is
ready, stop with SIGTERM or kill with SIGKILL. Output goes to a log file, shown when a
test fails."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from engine.config import Settings
from engine.kafka.tail import tail
from engine.models import Incident
from engine.rules.intake import with_area
from tests.areas import TANGXIA

READY = "worker ready"  # logged once partitions are assigned and their state restored


class WorkerProcess:
    def __init__(
        self,
        settings: Settings,
        log: Path,
        plan: Path | None = None,
        metrics_port: int = 0,
        registries: list[Path] | None = None,
    ) -> None:
        self.settings = settings
        self.registries = registries or []
        self.log = log
        self.plan = plan
        self.metrics_port = metrics_port
        self.proc: subprocess.Popen[bytes] | None = None
        self._ready_seen = 0

    def start(self, timeout: float = 90.0) -> None:
        self.launch()
        self.wait_ready(timeout)

    def launch(self) -> None:
        """Start the process without waiting for it to be ready."""
        env = {
            **os.environ,
            "ENGINE_KAFKA_BOOTSTRAP": self.settings.kafka_bootstrap,
            "ENGINE_TOPIC_PREFIX": self.settings.topic_prefix,
            "ENGINE_PARTITIONS": str(self.settings.partitions),
            "ENGINE_DATA_DIR": str(self.settings.data_dir),
        }
        args = [sys.executable, "-m", "engine.cli", "-v", "worker",
                "--metrics-port", str(self.metrics_port)]  # fmt: skip
        if self.plan is not None:
            args += ["--plan", str(self.plan)]
        for registry in self.registries:
            args += ["--registry", str(registry)]
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(args, env=env, stdout=out, stderr=subprocess.STDOUT)
        self._ready_seen = self._ready_count()

    def _ready_count(self) -> int:
        try:
            return self.log.read_text(errors="replace").count(READY)
        except OSError:
            return 0

    def wait_ready(self, timeout: float = 90.0) -> None:
        """Until the worker has partitions assigned and their state restored (again)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise AssertionError(f"worker exited {self.proc.returncode}:\n{self.tail()}")
            if self._ready_count() > self._ready_seen:
                self._ready_seen = self._ready_count()
                return
            time.sleep(0.1)
        raise AssertionError(f"worker not ready in {timeout} s:\n{self.tail()}")

    def stop(self) -> int:
        """SIGTERM and wait for a clean exit."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"worker ignored SIGTERM:\n{self.tail()}") from None

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def tail(self, lines: int = 60) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


@contextmanager
def running_worker(settings: Settings, log: Path, **kwargs: Any) -> Iterator[WorkerProcess]:
    worker = WorkerProcess(settings, log, **kwargs)
    worker.start()
    try:
        yield worker
    finally:
        if worker.proc is not None and worker.proc.poll() is None:
            worker.stop()


def read_until(
    settings: Settings,
    logical: str,
    done: Callable[[list[dict[str, Any]]], bool],
    timeout: float = 60.0,
) -> list[dict[str, Any]]:
    """Records of a topic from the beginning, until ``done(records)`` or the timeout."""

    async def run() -> list[dict[str, Any]]:
        records: list[dict[str, Any]] = []
        deadline = time.monotonic() + timeout
        topic = settings.topic(logical)
        while time.monotonic() < deadline:
            records = [
                r async for r in tail(settings, topic, from_beginning=True, idle_timeout_s=1.0)
            ]
            if done(records):
                return records
            await asyncio.sleep(0.5)
        return records

    return asyncio.run(run())


SHORT_PLAN = """\
name: short-timeouts-for-tests
responses:
  - name: everything
    types: [fire, medical, fight, theft, traffic, missing_person, suspicious, fraud,
            flood, school_gate, other]
    stages:
      - {key_zones: 1, linked_units: 10, max_distance_m: 3000, ack_timeout_s: TIMEOUT,
         quorum: {zone_team: true, linked_units: 2}}
      - {key_zones: 1, linked_units: 10, max_distance_m: 5000, frontage: false,
         ack_timeout_s: TIMEOUT, quorum: {zone_team: true, linked_units: 2}}
      - {key_zones: 0, frontage: false, command_centre: true, ack_timeout_s: TIMEOUT,
         quorum: {zone_team: true, linked_units: 2}}
"""


def write_plan(tmp_path: Path, timeout_s: float) -> Path:
    path = tmp_path / "plan.yaml"
    path.write_text(SHORT_PLAN.replace("TIMEOUT", str(timeout_s)), encoding="utf-8")
    return path


def make_incident(n: int, lat: float = 22.8031, lon: float = 114.0842, **kw: Any) -> Incident:
    return with_area(
        Incident.model_validate(
            {
                "id": f"INC-T-{n:05d}",
                "type": kw.pop("type", "fire"),
                "priority": kw.pop("priority", "P1"),
                "location": {"lat": lat, "lon": lon},
                "raised_at": kw.pop("raised_at", datetime.now(UTC)).isoformat(),
                **kw,
            }
        ),
        [TANGXIA],
    )


def spread_incidents(n: int, start: int) -> list[Incident]:
    """Incidents spread over the town (a grid of points inside the outline)."""
    min_lat, min_lon, max_lat, max_lon = TANGXIA.bbox()
    out: list[Incident] = []
    i = 0
    while len(out) < n:
        lat = min_lat + (max_lat - min_lat) * ((i * 37) % 97) / 97
        lon = min_lon + (max_lon - min_lon) * ((i * 61) % 89) / 89
        i += 1
        if TANGXIA.contains(lat, lon):
            kind = ("fire", "theft", "fight", "medical", "other")[len(out) % 5]
            out.append(make_incident(start + len(out), lat=lat, lon=lon, type=kind, priority="P2"))
    return out
