from __future__ import annotations

from pathlib import Path

import pytest

from engine.broker.jars import POM, resolve_jars
from engine.broker.local import LocalBroker
from engine.config import Settings
from engine.errors import BrokerError

pytestmark = pytest.mark.unit


def _props(tmp_path: Path) -> dict[str, str]:
    broker = LocalBroker(
        Settings(data_dir=tmp_path, broker_port=19092, broker_controller_port=19093)
    )
    lines = broker.server_properties().splitlines()
    return dict(line.split("=", 1) for line in lines if line and not line.startswith("#"))


def test_kraft_combined_mode_on_loopback(tmp_path: Path) -> None:
    props = _props(tmp_path)
    assert props["process.roles"] == "broker,controller"
    assert props["listeners"] == "PLAINTEXT://127.0.0.1:19092,CONTROLLER://127.0.0.1:19093"
    assert props["controller.quorum.bootstrap.servers"] == "127.0.0.1:19093"
    assert props["offsets.topic.replication.factor"] == "1"
    assert props["transaction.state.log.replication.factor"] == "1"
    assert props["group.initial.rebalance.delay.ms"] == "0"


def test_pom_fetches_kafka_4_and_a_log4j2_binding() -> None:
    text = POM.read_text(encoding="utf-8")
    assert "<packaging>pom</packaging>" in text
    assert "<artifactId>kafka_2.13</artifactId>" in text
    assert "<kafka.version>4." in text
    assert "log4j-slf4j2-impl" in text
    assert "log4j-core" in text


def test_without_maven_or_kafka_home_says_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("KAFKA_HOME", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))  # no mvn on PATH
    with pytest.raises(BrokerError, match=r"neither Maven .* nor KAFKA_HOME"):
        resolve_jars(tmp_path / "cache")


def test_kafka_home_without_jars_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KAFKA_HOME", str(tmp_path))
    with pytest.raises(BrokerError, match=r"has no libs/kafka_2\.13"):
        resolve_jars()


def test_stop_when_not_running(tmp_path: Path) -> None:
    broker = LocalBroker(Settings(data_dir=tmp_path))
    assert broker.stop() == (False, "broker not running")
    assert broker.pid() is None
