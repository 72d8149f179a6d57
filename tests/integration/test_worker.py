"""The stream worker on the real broker: `engine worker` as a process, records produced
and read back with Kafka clients."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer

from engine.config import Settings
from engine.kafka.produce import produce_incidents
from engine.models import Ack, Incident
from tests.worker_process import (
    READY,
    SHORT_PLAN,
    WorkerProcess,
    make_incident,
    read_until,
    running_worker,
    write_plan,
)

pytestmark = pytest.mark.integration


async def _produce_raw(settings: Settings, records: list[tuple[bytes | None, bytes]]) -> None:
    """A plain aiokafka producer: no project code involved in producing."""
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap)
    await producer.start()
    try:
        for key, value in records:
            await producer.send_and_wait(settings.topic("incidents"), value, key=key)
    finally:
        await producer.stop()


def _values(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r["value"] for r in records]


def test_raised_incident_yields_decision_callouts_and_state(
    kafka_settings: Settings, tmp_path: Path
) -> None:
    with running_worker(kafka_settings, tmp_path / "worker.log"):
        incident = make_incident(1)
        asyncio.run(produce_incidents(kafka_settings, [incident]))
        [decision] = _values(read_until(kafka_settings, "decisions", lambda r: len(r) >= 1))
        assert decision["incident_id"] == incident.id
        assert decision["stage"] == 0
        assert decision["zone"]["id"] == "KZ118"
        assert len(decision["units"]) == 10
        callouts = _values(read_until(kafka_settings, "callouts", lambda r: len(r) >= 11))
        assert {c["incident_id"] for c in callouts} == {incident.id}
        keys = [c["idempotency_key"] for c in callouts]
        assert len(keys) == len(set(keys))
        assert all(k.startswith(f"{incident.id}/0/") for k in keys)
        states = _values(read_until(kafka_settings, "incident-state", lambda r: len(r) >= 1))
        assert states[-1]["state"] == "dispatched"
        assert [t["state"] for t in states[-1]["timeline"]] == ["raised", "dispatched"]


def test_bad_records_go_to_deadletter_and_the_next_is_still_decided(
    kafka_settings: Settings, tmp_path: Path
) -> None:
    good = make_incident(2)
    bad = [
        (b"tangxia", b"\xff\xfe not json"),
        (b"tangxia", b'{"type": "fire", "priority": "P1"}'),  # wrong schema: no location
        (
            b"tangxia",
            b'{"type": "arson", "priority": "P1", "location": {"lat": 22.8, "lon": 114.08}}',
        ),
        (
            b"tangxia",
            b'{"schema_version": 7, "type": "fire", "priority": "P1", '
            b'"location": {"lat": 22.8, "lon": 114.08}}',
        ),
        (
            b"tangxia",
            b'{"type": "fire", "priority": "P1", "location": {"lat": 23.02, "lon": 113.75}}',
        ),
    ]
    with running_worker(kafka_settings, tmp_path / "worker.log"):
        asyncio.run(_produce_raw(kafka_settings, [*bad, (b"tangxia", good.to_json_bytes())]))
        letters = _values(read_until(kafka_settings, "deadletter", lambda r: len(r) >= 5))
        decisions = _values(read_until(kafka_settings, "decisions", lambda r: len(r) >= 1))
    assert [d["incident_id"] for d in decisions] == [good.id]
    assert [x["reason"] for x in letters] == [
        "not_json", "invalid", "invalid", "unsupported_version", "out_of_area",
    ]  # fmt: skip
    import base64

    for (_, raw), letter in zip(bad, letters, strict=True):
        assert base64.b64decode(letter["original_b64"]) == raw  # the original bytes
        assert letter["topic"] == kafka_settings.topic("incidents")
        assert letter["partition"] is not None and letter["offset"] is not None
    assert "location" in letters[1]["error"]
    assert "type" in letters[2]["error"]


def test_duplicate_incident_id_yields_one_decision(
    kafka_settings: Settings, tmp_path: Path
) -> None:
    incident = make_incident(3)
    with running_worker(kafka_settings, tmp_path / "worker.log"):
        asyncio.run(produce_incidents(kafka_settings, [incident, incident]))
        marker = make_incident(4, lat=22.78, lon=114.10)
        asyncio.run(produce_incidents(kafka_settings, [incident, marker]))
        decisions = _values(read_until(kafka_settings, "decisions", lambda r: any(
            d["value"]["incident_id"] == marker.id for d in r)))  # fmt: skip
    assert [d["incident_id"] for d in decisions].count(incident.id) == 1


def test_plain_producer_unkeyed_record_is_forwarded_and_decided(
    kafka_settings: Settings, tmp_path: Path
) -> None:
    """Any Kafka client can drive it: documented JSON, no key, no id, no raised_at."""
    value = json.dumps(
        {"type": "medical", "priority": "P1", "location": {"lat": 22.8190, "lon": 114.1052},
         "address": "塘厦镇石潭埔路8号", "reporter": "13800000000"}, ensure_ascii=False
    ).encode()  # fmt: skip
    with running_worker(kafka_settings, tmp_path / "worker.log"):
        asyncio.run(_produce_raw(kafka_settings, [(None, value), (b"wrong-key", value)]))
        decisions = _values(read_until(kafka_settings, "decisions", lambda r: len(r) >= 2))
    assert len(decisions) == 2
    assert len({d["incident_id"] for d in decisions}) == 2  # two records, two incidents
    assert all(d["incident_id"].startswith("INC-") for d in decisions)
    assert all(d["area"] == "tangxia" for d in decisions)


def test_acks_reaching_quorum_move_the_state(kafka_settings: Settings, tmp_path: Path) -> None:
    incident = make_incident(5)
    with running_worker(kafka_settings, tmp_path / "worker.log", plan=write_plan(tmp_path, 300)):
        asyncio.run(produce_incidents(kafka_settings, [incident]))
        [decision] = _values(read_until(kafka_settings, "decisions", lambda r: len(r) >= 1))
        zone = decision["recipients"][0]
        assert zone["kind"] == "key_zone"
        # three zone members stationed at linked units: zone team + 3 units
        members_at_units = [
            a for r in decision["recipients"] if r["kind"] == "unit"
            for a in r["contacts"] if a in zone["contacts"]
        ][:3]  # fmt: skip
        now = datetime.now(UTC)
        acks = [
            Ack(incident_id=incident.id, radio_id=a, kind="accept", at=now)  # type: ignore[arg-type]
            for a in members_at_units
        ]
        acks.append(Ack(incident_id="INC-NOPE", radio_id="R001", kind="accept", at=now))  # type: ignore[arg-type]
        asyncio.run(_produce_acks(kafka_settings, acks))
        states = _values(read_until(kafka_settings, "incident-state", lambda r: any(
            s["value"]["state"] == "acknowledged" for s in r)))  # fmt: skip
        letters = _values(read_until(kafka_settings, "deadletter", lambda r: len(r) >= 1))
    final = states[-1]
    assert final["state"] == "acknowledged"
    assert final["quorum"]["met"] is True
    assert [t["state"] for t in final["timeline"]][:2] == ["raised", "dispatched"]
    assert any("quorum met" in t["what"] for t in final["timeline"])
    assert [x["reason"] for x in letters] == ["unknown_incident"]


async def _produce_acks(settings: Settings, acks: list[Ack]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap)
    await producer.start()
    try:
        for ack in acks:
            await producer.send_and_wait(
                settings.topic("acks"), ack.to_json_bytes(), key=ack.incident_id.encode()
            )
    finally:
        await producer.stop()


def test_missed_deadline_escalates_to_the_next_zone(
    kafka_settings: Settings, tmp_path: Path
) -> None:
    incident = make_incident(6)
    with running_worker(kafka_settings, tmp_path / "worker.log", plan=write_plan(tmp_path, 2)):
        asyncio.run(produce_incidents(kafka_settings, [incident]))
        decisions = _values(read_until(kafka_settings, "decisions", lambda r: len(r) >= 3))
        states = _values(read_until(kafka_settings, "incident-state", lambda r: any(
            s["value"]["state"] == "unanswered" for s in r)))  # fmt: skip
    assert [d["stage"] for d in decisions] == [0, 1, 2]
    assert decisions[1]["zone"]["id"] != decisions[0]["zone"]["id"]
    assert decisions[1]["zone"]["distance_m"] >= decisions[0]["zone"]["distance_m"]
    assert decisions[2]["command_centre"] is True
    assert [s["state"] for s in states][-1] == "unanswered"
    assert "escalated" in [s["state"] for s in states]


def test_pending_escalation_survives_a_worker_restart(
    kafka_settings: Settings, tmp_path: Path
) -> None:
    incident = make_incident(7)
    plan = write_plan(tmp_path, 6)
    log = tmp_path / "worker.log"
    worker = WorkerProcess(kafka_settings, log, plan=plan)
    worker.start()
    try:
        asyncio.run(produce_incidents(kafka_settings, [incident]))
        read_until(kafka_settings, "decisions", lambda r: len(r) >= 1)
    finally:
        assert worker.stop() == 0
    time.sleep(7)  # the deadline passes while no worker runs
    decided_at = datetime.now(UTC)
    with running_worker(kafka_settings, log, plan=plan):
        decisions = _values(read_until(kafka_settings, "decisions", lambda r: len(r) >= 2))
    assert [d["stage"] for d in decisions[:2]] == [0, 1]
    assert datetime.fromisoformat(decisions[1]["decided_at"]) >= decided_at - timedelta(seconds=1)


def test_plan_reload_is_validated_and_a_bad_one_keeps_the_old(
    kafka_settings: Settings, tmp_path: Path
) -> None:
    plan = write_plan(tmp_path, 300)
    with running_worker(kafka_settings, tmp_path / "worker.log", plan=plan) as worker:
        asyncio.run(produce_incidents(kafka_settings, [make_incident(8)]))
        [first] = _values(read_until(kafka_settings, "decisions", lambda r: len(r) >= 1))
        plan.write_text("name: broken\nresponses: [{name: x, types: [arson]}]\n", "utf-8")
        _wait_for_log(worker, "plan reload refused")
        asyncio.run(produce_incidents(kafka_settings, [make_incident(9, lat=22.78, lon=114.10)]))
        by_id = {d["incident_id"]: d for d in _values(
            read_until(kafka_settings, "decisions", lambda r: len(r) >= 2))}  # fmt: skip
        assert by_id["INC-T-00009"]["plan_version"] == first["plan_version"]
        plan.write_text(SHORT_PLAN.replace("TIMEOUT", "200"), encoding="utf-8")
        _wait_for_log(worker, "plan reloaded")
        asyncio.run(produce_incidents(kafka_settings, [make_incident(10, lat=22.76, lon=114.11)]))
        by_id = {d["incident_id"]: d for d in _values(
            read_until(kafka_settings, "decisions", lambda r: len(r) >= 3))}  # fmt: skip
        assert by_id["INC-T-00010"]["plan_version"] != first["plan_version"]
    assert "responses.0.types.0" in worker.log.read_text()


def _wait_for_log(worker: WorkerProcess, text: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in worker.log.read_text(errors="replace"):
            return
        time.sleep(0.3)
    raise AssertionError(f"{text!r} not in the worker log:\n{worker.tail()}")


def test_a_second_worker_shares_partitions_and_takes_over_when_one_dies(
    kafka_settings: Settings, tmp_path: Path
) -> None:
    """Two workers, one consumer group, two partitions. SIGKILL one: the survivor is
    reassigned its partition and decides what arrives there."""
    plan = write_plan(tmp_path, 600)
    first = WorkerProcess(kafka_settings, tmp_path / "a.log", plan=plan)
    second = WorkerProcess(kafka_settings, tmp_path / "b.log", plan=plan)
    first.start()
    second.start()
    first.wait_ready()  # the rebalance that gave each one partition
    try:
        assignments = [w.log.read_text() for w in (first, second)]
        assert all(READY in a for a in assignments)
        first.kill()
        second.wait_ready(timeout=120)  # reassigned after the session times out
        # one incident on each partition of `incidents`: one of them was the dead
        # worker's, so deciding both shows the survivor took it over
        incidents = [make_incident(20), make_incident(21, lat=22.78, lon=114.10)]
        asyncio.run(_produce_to_partitions(kafka_settings, incidents))
        decisions = _values(read_until(kafka_settings, "decisions", lambda r: len(r) >= 2))
        assert sorted(d["incident_id"] for d in decisions) == [i.id for i in incidents]
    finally:
        if second.proc is not None and second.proc.poll() is None:
            second.stop()


async def _produce_to_partitions(settings: Settings, incidents: list[Incident]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap)
    await producer.start()
    try:
        for partition, incident in enumerate(incidents):
            await producer.send_and_wait(
                settings.topic("incidents"), incident.to_json_bytes(), key=None,
                partition=partition,
            )  # fmt: skip
    finally:
        await producer.stop()
