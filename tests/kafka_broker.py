"""Where the test session's Kafka comes from, in this order:

1. ``ENGINE_KAFKA_BOOTSTRAP`` is set: that cluster (``make test`` starts the local broker
   and sets it; CI against a shared cluster sets it too).
2. A Docker daemon answers ``docker info``: testcontainers with the ``apache/kafka`` image.
3. Otherwise the project's own local broker (``engine broker``), started on free ports in
   a temporary directory and stopped at the end of the session.

Never a mock: the broker is a real Apache Kafka in every case.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from engine.broker.local import LocalBroker
from engine.config import Settings

KAFKA_IMAGE = "apache/kafka:4.1.1"


@dataclass(frozen=True)
class SessionBroker:
    bootstrap: str
    source: str  # "external", "docker", "local"
    version: str | None  # release, when we know it (local broker: from its jars)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def docker_daemon_answers() -> bool:
    """A real daemon check: the client binary alone is not enough."""
    if shutil.which("docker") is None:
        return False
    try:
        result = subprocess.run(
            ["docker", "info", "--format", "{{.ServerVersion}}"],
            capture_output=True,
            timeout=15,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return result.returncode == 0 and bool(result.stdout.strip())


@contextlib.contextmanager
def _docker_broker() -> Iterator[SessionBroker]:
    from testcontainers.core.container import DockerContainer
    from testcontainers.core.waiting_utils import wait_for_logs

    port = free_port()
    # Advertise the host port we bind, so clients outside the container can connect.
    container = (
        DockerContainer(KAFKA_IMAGE)
        .with_bind_ports(9092, port)
        .with_env("KAFKA_NODE_ID", "1")
        .with_env("KAFKA_PROCESS_ROLES", "broker,controller")
        .with_env("KAFKA_LISTENERS", "PLAINTEXT://:9092,CONTROLLER://:9093")
        .with_env("KAFKA_ADVERTISED_LISTENERS", f"PLAINTEXT://127.0.0.1:{port}")
        .with_env("KAFKA_CONTROLLER_LISTENER_NAMES", "CONTROLLER")
        .with_env(
            "KAFKA_LISTENER_SECURITY_PROTOCOL_MAP", "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT"
        )
        .with_env("KAFKA_CONTROLLER_QUORUM_VOTERS", "1@localhost:9093")
        .with_env("KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR", "1")
        .with_env("KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR", "1")
        .with_env("KAFKA_TRANSACTION_STATE_LOG_MIN_ISR", "1")
        .with_env("KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS", "0")
        .with_env("KAFKA_AUTO_CREATE_TOPICS_ENABLE", "false")
    )
    with container:
        wait_for_logs(container, "Kafka Server started", timeout=120)
        yield SessionBroker(f"127.0.0.1:{port}", "docker", KAFKA_IMAGE.split(":")[1])


@contextlib.contextmanager
def _local_broker(data_dir: Path) -> Iterator[SessionBroker]:
    port, controller = free_port(), free_port()
    settings = Settings(data_dir=data_dir, broker_port=port, broker_controller_port=controller)
    broker = LocalBroker(settings)
    _, message = broker.start()
    print(f"\n[tests] {message}")
    try:
        yield SessionBroker(broker.bootstrap, "local", broker.status().version)
    finally:
        broker.stop()


def local_broker_version(data_dir: str | None) -> str | None:
    """The release a local broker started by `make test` runs (from its data dir)."""
    if not data_dir:
        return None
    with contextlib.suppress(OSError):
        return (Path(data_dir) / "broker" / "version").read_text().strip() or None
    return None


@contextlib.contextmanager
def session_broker(tmp_dir: Path) -> Iterator[SessionBroker]:
    external = os.environ.get("ENGINE_KAFKA_BOOTSTRAP")
    if external:
        yield SessionBroker(
            external, "external", local_broker_version(os.environ.get("ENGINE_DATA_DIR"))
        )
    elif docker_daemon_answers():
        with _docker_broker() as broker:
            yield broker
    else:
        with _local_broker(tmp_dir) as broker:
            yield broker
