"""Session-wide fixtures: the real Kafka broker, per-test topic namespaces, tier markers,
and a guard that fails a test leaving threads behind."""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.config import Settings
from engine.kafka.connection import probe
from engine.kafka.topics import ensure_topics
from engine.registry.registry import load_registry
from engine.rules.plan import LoadedPlan, load_plan
from engine.rules.world import World
from tests.kafka_broker import SessionBroker, session_broker

REPO = Path(__file__).resolve().parents[1]

TIERS = ("unit", "integration", "e2e")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Every test belongs to exactly one tier, so `-m unit` etc. select everything."""
    for item in items:
        tiers = [t for t in TIERS if item.get_closest_marker(t)]
        if len(tiers) != 1:
            raise pytest.UsageError(f"{item.nodeid}: needs exactly one of {TIERS}, has {tiers}")


@pytest.fixture(scope="session")
def kafka(
    tmp_path_factory: pytest.TempPathFactory, pytestconfig: pytest.Config
) -> Iterator[SessionBroker]:
    """The real broker for this session (see tests/kafka_broker.py for where from)."""
    with session_broker(tmp_path_factory.mktemp("kafka")) as broker:
        info = asyncio.run(probe(Settings(kafka_bootstrap=broker.bootstrap)))
        reporter = pytestconfig.pluginmanager.get_plugin("terminalreporter")
        capture = pytestconfig.pluginmanager.get_plugin("capturemanager")
        if reporter is not None and capture is not None:
            # Shown in the log even under output capture: which broker the tests used.
            with capture.global_and_fixture_disabled():
                reporter.write_line(
                    f"\n[kafka] tests talk to Apache Kafka "
                    f"{broker.version or '(release unknown)'} ({broker.source}) at "
                    f"{broker.bootstrap}; wire protocol "
                    f"{info.protocol_generation}, brokers {', '.join(info.brokers)}"
                )
        yield broker


@pytest.fixture
def kafka_settings(kafka: SessionBroker, tmp_path: Path) -> Settings:
    """Settings on the session broker with this test's own topics (unique prefix),
    created with `ensure_topics`: tests never see each other's records."""
    settings = Settings(
        kafka_bootstrap=kafka.bootstrap,
        topic_prefix=f"t-{uuid.uuid4().hex[:10]}-",
        partitions=2,
        data_dir=tmp_path,
    )
    report = asyncio.run(ensure_topics(settings))
    assert report.ok, report.mismatched
    return settings


@pytest.fixture(scope="session")
def tangxia_world() -> World:
    """The shipped Tangxia registry prepared for dispatch (built once: about a second)."""
    return World.build(load_registry(REPO / "data" / "tangxia"))


@pytest.fixture(scope="session")
def default_plan() -> LoadedPlan:
    return load_plan()


@pytest.fixture(autouse=True)
def _no_leaked_threads() -> Iterator[None]:
    before = set(threading.enumerate())
    yield
    leaked = [t for t in threading.enumerate() if t not in before and t.is_alive() and not t.daemon]
    assert not leaked, f"test left threads running: {leaked}"
