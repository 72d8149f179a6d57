"""The first slice through the pipe, on the real broker."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from engine.config import Settings
from engine.kafka.connection import partitions_of, probe
from engine.kafka.produce import produce_incidents
from engine.kafka.tail import tail
from engine.kafka.topics import ensure_topics
from engine.models import Incident
from engine.rules.intake import with_area
from tests.areas import TANGXIA
from tests.kafka_broker import SessionBroker

pytestmark = pytest.mark.integration


async def _read_all(settings: Settings, logical: str, n: int) -> list[dict[str, object]]:
    return [
        r
        async for r in tail(
            settings, settings.topic(logical), from_beginning=True, max_records=n,
            idle_timeout_s=10,
        )
    ]  # fmt: skip


def test_incident_round_trip_through_kafka_4(
    kafka: SessionBroker, kafka_settings: Settings
) -> None:
    info = asyncio.run(probe(kafka_settings))
    assert info.protocol_generation == "4.x", info.api_versions.get(1)
    if kafka.version is not None:  # known for the local broker and the docker image
        assert kafka.version.split(".")[0] == "4", kafka.version

    incident = with_area(
        Incident.model_validate(
            {
                "type": "fire",
                "priority": "P1",
                "location": {"lat": 22.8031, "lon": 114.0842},
                "address": "塘厦镇林村新围路12号",
                "raised_at": datetime(2026, 11, 29, 20, 15, tzinfo=UTC),
            }
        ),
        [TANGXIA],
    )
    [meta] = asyncio.run(produce_incidents(kafka_settings, [incident]))
    assert meta.topic == kafka_settings.topic("incidents")

    [record] = asyncio.run(_read_all(kafka_settings, "incidents", 1))
    assert record["key"] == "tangxia"
    assert (record["partition"], record["offset"]) == (meta.partition, meta.offset)
    assert Incident.model_validate(record["value"]) == incident


def test_one_area_lands_on_one_partition(kafka_settings: Settings) -> None:
    incidents = [
        with_area(
            Incident.model_validate(
                {"type": t, "priority": "P2", "location": {"lat": 22.79, "lon": 114.07}}
            ),
            [TANGXIA],
        )
        for t in ("theft", "fight", "medical", "flood")
    ]
    metas = asyncio.run(produce_incidents(kafka_settings, incidents))
    assert len({m.partition for m in metas}) == 1
    assert [m.offset for m in metas] == sorted(m.offset for m in metas)
    records = asyncio.run(_read_all(kafka_settings, "incidents", 4))
    assert [r["value"]["id"] for r in records] == [i.id for i in incidents]  # type: ignore[index]


def test_topics_ensure_is_idempotent_and_reports_drift(kafka_settings: Settings) -> None:
    again = asyncio.run(ensure_topics(kafka_settings))
    assert again.created == []
    assert again.mismatched == {}
    # the 7 of DESIGN.md §4 + area-events, area-state, audit, commands, broadcasts,
    # broadcast-messages
    assert len(again.unchanged) == 13

    assert asyncio.run(partitions_of(kafka_settings, kafka_settings.topic("incidents"))) == {0, 1}
    drifted = kafka_settings.model_copy(update={"partitions": 4, "retention_days": 60})
    report = asyncio.run(ensure_topics(drifted))
    assert not report.ok
    assert report.created == []
    assert "partitions 2, configured 4" in report.mismatched[kafka_settings.topic("incidents")]
    # nothing was altered
    assert asyncio.run(partitions_of(kafka_settings, kafka_settings.topic("incidents"))) == {0, 1}
