"""The worker under faults, on the real broker: SIGKILL mid-stream, the broker stopped
and killed under it, a paused worker whose partitions moved, poison records. Counted
from what a read-committed reader sees, never argued."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import threading
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer

from engine.broker.local import LocalBroker
from engine.config import Settings
from engine.errors import KafkaUnavailable
from engine.kafka.produce import produce_incidents
from engine.kafka.topics import ensure_topics
from engine.models import Incident
from tests.kafka_broker import free_port
from tests.worker_process import (
    WorkerProcess,
    make_incident,
    read_until,
    running_worker,
    spread_incidents,
    write_plan,
)

pytestmark = pytest.mark.integration


def _stage0_counts(decisions: list[dict[str, Any]]) -> Counter[str]:
    return Counter(d["value"]["incident_id"] for d in decisions if d["value"]["stage"] == 0)


def _key_counts(callouts: list[dict[str, Any]]) -> Counter[str]:
    return Counter(c["value"]["idempotency_key"] for c in callouts)


def _decided(ids: set[str]) -> Any:
    return lambda r: set(_stage0_counts(r)) >= ids


class Stream:
    """Incidents produced in chunks from a thread, each chunk retried until Kafka
    acknowledged it (a broker down is waited out): ``acknowledged`` is what a producer
    was told is safe."""

    def __init__(self, settings: Settings, incidents: list[Incident], chunk: int, gap: float):
        self.settings, self.incidents, self.chunk, self.gap = settings, incidents, chunk, gap
        self.acknowledged: set[str] = set()
        self.thread = threading.Thread(target=self._run)

    def _run(self) -> None:
        for i in range(0, len(self.incidents), self.chunk):
            part = self.incidents[i : i + self.chunk]
            while True:
                try:
                    asyncio.run(produce_incidents(self.settings, part))
                    break
                except (KafkaUnavailable, OSError):
                    time.sleep(0.5)
            self.acknowledged.update(x.id for x in part)
            time.sleep(self.gap)

    def __enter__(self) -> Stream:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.thread.join()


def test_sigkill_three_times_during_3000_incidents_one_decision_each(
    kafka_settings: Settings, tmp_path: Path
) -> None:
    incidents = spread_incidents(3000, start=10_000)
    ids = {i.id for i in incidents}
    log = tmp_path / "worker.log"
    plan = write_plan(tmp_path, 600)
    worker = WorkerProcess(kafka_settings, log, plan=plan)
    worker.start()
    decided_at_kill = []
    try:
        with Stream(kafka_settings, incidents, chunk=50, gap=0.25):
            for _ in range(3):
                time.sleep(2.5)
                worker.kill()  # SIGKILL: no shutdown, no last commit
                seen = read_until(kafka_settings, "decisions", lambda r: True, timeout=3)
                decided_at_kill.append(len(_stage0_counts(seen)))
                worker.start()
        decisions = read_until(kafka_settings, "decisions", _decided(ids), timeout=240)
        callouts = read_until(kafka_settings, "callouts", lambda r: True, timeout=5)
    finally:
        if worker.proc is not None and worker.proc.poll() is None:
            worker.stop()
    assert decided_at_kill[0] < len(ids), "the first kill came too late to test anything"
    stage0 = _stage0_counts(decisions)
    assert set(stage0) == ids
    repeated = {i: n for i, n in stage0.items() if n != 1}
    assert not repeated, f"stage-0 decisions published more than once: {list(repeated)[:10]}"
    keys = _key_counts(callouts)
    assert keys and max(keys.values()) == 1, [k for k, n in keys.items() if n > 1][:10]
    print(f"\n[kill test] decided at each SIGKILL: {decided_at_kill}; {len(decisions)} "
          f"decisions, {len(keys)} call-outs, none twice")  # fmt: skip


@pytest.fixture
def own_broker(tmp_path: Path) -> Iterator[tuple[LocalBroker, Settings]]:
    """A broker of this test's own, to stop and kill under the worker."""
    broker_settings = Settings(
        data_dir=tmp_path / "broker",
        broker_port=free_port(),
        broker_controller_port=free_port(),
    )
    broker = LocalBroker(broker_settings)
    broker.start()
    settings = Settings(
        kafka_bootstrap=broker.bootstrap, partitions=2, data_dir=tmp_path, topic_prefix="t-"
    )
    try:
        assert asyncio.run(ensure_topics(settings)).ok
        yield broker, settings
    finally:
        broker.stop()


def _kill_broker(broker: LocalBroker) -> None:
    pid = broker.pid()
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    while broker._alive(pid):
        time.sleep(0.05)
    broker.pid_file.unlink(missing_ok=True)


def test_broker_stopped_and_killed_mid_stream_the_worker_recovers_by_itself(
    own_broker: tuple[LocalBroker, Settings], tmp_path: Path
) -> None:
    broker, settings = own_broker
    incidents = spread_incidents(600, start=20_000)
    with running_worker(settings, tmp_path / "worker.log", plan=write_plan(tmp_path, 600)) as w:
        with Stream(settings, incidents, chunk=20, gap=0.2) as stream:
            time.sleep(2.0)
            broker.stop()  # clean: SIGTERM, controlled shutdown
            time.sleep(3.0)
            broker.start()
            time.sleep(3.0)
            _kill_broker(broker)  # SIGKILL: no shutdown at all
            time.sleep(3.0)
            broker.start()
        acknowledged = stream.acknowledged
        decisions = read_until(settings, "decisions", _decided(acknowledged), timeout=240)
        callouts = read_until(settings, "callouts", lambda r: True, timeout=5)
        assert w.proc is not None and w.proc.poll() is None, "the worker died"
    stage0 = _stage0_counts(decisions)
    assert set(stage0) >= acknowledged, f"lost: {sorted(acknowledged - set(stage0))[:10]}"
    assert max(stage0.values()) == 1
    assert max(_key_counts(callouts).values()) == 1
    # it did see the broker go: its clients lost the connection (aiokafka's retries may
    # carry a transaction through, or it fails and the batch is handled again)
    assert "Unable connect to node" in w.log.read_text(errors="replace")


def test_a_paused_worker_whose_partitions_moved_publishes_nothing(
    kafka_settings: Settings, tmp_path: Path
) -> None:
    """SIGSTOP worker A with incidents whose deadlines fall due while it sleeps; worker B
    takes its partitions and escalates them; SIGCONT A: A's escalations would be
    duplicates, and none is published (its producers are fenced)."""
    plan = write_plan(tmp_path, 8)
    a = WorkerProcess(kafka_settings, tmp_path / "a.log", plan=plan)
    b = WorkerProcess(kafka_settings, tmp_path / "b.log", plan=plan)
    a.start()
    try:
        first = [make_incident(30 + n, lat=22.76 + n * 0.01, lon=114.10) for n in range(4)]
        asyncio.run(produce_incidents(kafka_settings, first))
        read_until(kafka_settings, "decisions", lambda r: len(r) >= len(first))
        assert a.proc is not None
        a.proc.send_signal(signal.SIGSTOP)
        b.start()  # joins; gets every partition once A's session timed out
        escalated = read_until(kafka_settings, "decisions", lambda r: sum(
            d["value"]["stage"] == 1 for d in r) >= len(first), timeout=60)  # fmt: skip
        a.proc.send_signal(signal.SIGCONT)
        time.sleep(12)  # A wakes up: ticks, polls, rejoins; then the deadlines pass again
        later = [make_incident(40, lat=22.80, lon=114.05)]
        asyncio.run(produce_incidents(kafka_settings, later))
        decisions = read_until(kafka_settings, "decisions", lambda r: any(
            d["value"]["incident_id"] == later[0].id for d in r), timeout=60)  # fmt: skip
    finally:
        for w in (a, b):
            if w.proc is not None and w.proc.poll() is None:
                w.proc.send_signal(signal.SIGCONT)
                w.stop()
    assert len(escalated) >= 2 * len(first)
    per_stage = Counter((d["value"]["incident_id"], d["value"]["stage"]) for d in decisions)
    assert max(per_stage.values()) == 1, [k for k, n in per_stage.items() if n > 1]
    assert "fenced" in a.log.read_text(errors="replace")  # A tried, and was refused


NAIVE = "2026-11-30T08:00:00"


def _poison() -> dict[str, list[bytes]]:
    """Per input topic, records that once stopped or blinded the worker."""
    loc = {"lat": 22.8, "lon": 114.08}
    ahead = (datetime.now(UTC) + timedelta(days=3650)).isoformat()
    deep = b"[" * 50_000 + b"]" * 50_000  # 100 KB: under the size cap
    huge = json.dumps({"type": "fire", "priority": "P1", "location": loc,
                       "description": "x" * 800_000}).encode()  # fmt: skip
    return {
        "incidents": [
            json.dumps(
                {"type": "fire", "priority": "P1", "location": loc, "schema_version": []}
            ).encode(),
            deep,
            huge,
            json.dumps(
                {"type": "fire", "priority": "P1", "location": loc, "raised_at": NAIVE}
            ).encode(),
            json.dumps(
                {"type": "fire", "priority": "P1", "location": loc, "raised_at": ahead}
            ).encode(),
            json.dumps(
                {
                    "type": "fire",
                    "priority": "P1",
                    "location": loc,
                    **{f"x{i}": i for i in range(100)},
                }
            ).encode(),
        ],
        "acks": [
            json.dumps(
                {"incident_id": "INC-X", "radio_id": "R1", "kind": "accept", "at": NAIVE}
            ).encode(),
            json.dumps(
                {
                    "incident_id": "INC-X",
                    "radio_id": "R1",
                    "kind": "accept",
                    "schema_version": {"a": 1},
                }
            ).encode(),
            deep,
        ],
        "unit-status": [
            json.dumps({"unit_id": "KZ001", "available": False, "at": NAIVE}).encode(),
            json.dumps({"unit_id": "KZ001", "available": False, "at": ahead}).encode(),
            huge,
        ],
        "area-events": [
            json.dumps(
                {"kind": "close", "at": NAIVE, "area": "tangxia", "incident_id": "INC-X"}
            ).encode(),
            json.dumps(
                {"kind": "tick", "at": ahead, "area": "tangxia", "incident_id": "INC-X"}
            ).encode(),
        ],
    }


async def _produce_plain(settings: Settings, topic: str, values: list[bytes]) -> None:
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap, max_request_size=2_000_000
    )
    await producer.start()
    try:
        for value in values:
            await producer.send_and_wait(settings.topic(topic), value, key=b"tangxia")
    finally:
        await producer.stop()


def test_poison_records_on_every_input_are_dead_lettered_and_the_worker_goes_on(
    kafka_settings: Settings, tmp_path: Path
) -> None:
    poison = _poison()
    expected = sum(len(v) for v in poison.values())
    with running_worker(
        kafka_settings, tmp_path / "worker.log", plan=write_plan(tmp_path, 600)
    ) as w:
        first = make_incident(50)
        asyncio.run(produce_incidents(kafka_settings, [first]))
        [decision] = [d["value"] for d in read_until(kafka_settings, "decisions", lambda r: r)]
        radio = decision["recipients"][0]["contacts"][0]
        for topic, values in poison.items():
            asyncio.run(_produce_plain(kafka_settings, topic, values))
        # the same reply 2,000 times: kept once
        reply = json.dumps({"incident_id": first.id, "radio_id": radio, "kind": "accept",
                            "at": datetime.now(UTC).isoformat()}).encode()  # fmt: skip
        asyncio.run(_produce_plain(kafka_settings, "acks", [reply] * 2000))
        good = make_incident(51, lat=22.78, lon=114.10)
        asyncio.run(produce_incidents(kafka_settings, [good]))
        decisions = read_until(kafka_settings, "decisions", lambda r: len(r) >= 2, timeout=90)
        letters = read_until(kafka_settings, "deadletter", lambda r: len(r) >= expected)
        states = read_until(kafka_settings, "incident-state", lambda r: any(
            s["value"]["incident_id"] == first.id and s["value"]["acks"] for s in r))  # fmt: skip
        assert w.proc is not None and w.proc.poll() is None, "the worker died"
    assert {d["value"]["incident_id"] for d in decisions} == {first.id, good.id}
    reasons = Counter(x["value"]["reason"] for x in letters)
    assert len(letters) == expected, reasons
    assert reasons["too_large"] == 2 and reasons["clock_skew"] == 2, reasons
    assert all(len(json.dumps(x["value"])) < 200_000 for x in letters)  # fits a request
    errors = " | ".join(x["value"]["error"] for x in letters)
    for fragment in ("schema_version", "nested too deeply", "UTC offset", "ahead of the"):
        assert fragment in errors, fragment
    last = [s["value"] for s in states if s["value"]["incident_id"] == first.id][-1]
    assert [(a["radio_id"], a["kind"]) for a in last["acks"]] == [(radio, "accept")]
