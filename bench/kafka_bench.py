"""What the broker-driven benchmarks share: where their broker comes from and what
machine they ran on."""

from __future__ import annotations

import contextlib
import os
import platform
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from engine.broker.local import LocalBroker
from engine.config import Settings
from tests.kafka_broker import free_port


@contextlib.contextmanager
def bench_broker(root: Path) -> Iterator[str]:
    """ENGINE_KAFKA_BOOTSTRAP if set, else the local broker on free ports for the run."""
    bootstrap = os.environ.get("ENGINE_KAFKA_BOOTSTRAP")
    if bootstrap:
        yield bootstrap
        return
    broker = LocalBroker(Settings(data_dir=root / "broker", broker_port=free_port(),
                                  broker_controller_port=free_port()))  # fmt: skip
    broker.start()
    try:
        yield broker.bootstrap
    finally:
        broker.stop()


def machine() -> dict[str, Any]:
    cpu = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    import aiokafka

    return {"date": datetime.now(UTC).isoformat(timespec="seconds"), "cores": os.cpu_count(),
            "cpu": cpu, "python": platform.python_version(), "aiokafka": aiokafka.__version__,
            "load_avg_at_start": os.getloadavg()}  # fmt: skip
