"""Whatever a producer writes, the worker's tasks never raise: at least 10,000
generated malformed records per input topic through intake and the core (the same
`handle` the worker runs between poll and commit), each one accounted for."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from aiokafka.structs import ConsumerRecord
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.config import Settings
from engine.rules.plan import LoadedPlan
from engine.rules.world import World
from engine.streams.tasks import AreaTask, RouteTask, Task, area_partition

pytestmark = pytest.mark.unit

SETTINGS = Settings(partitions=2)
NOW = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)
EXAMPLES = 200
PER_EXAMPLE = 50  # 200 x 50 = 10,000 records per input topic

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
timestamps = st.one_of(
    st.just("2026-11-30T08:00:00"),  # naive
    st.just("2036-11-30T08:00:00+00:00"),  # ten years ahead
    st.just("2026-11-30T07:59:00+08:00"),
    st.text(max_size=30),
    json_values,
)

VALID = {
    "incidents": {
        "type": "fire",
        "priority": "P1",
        "location": {"lat": 22.8031, "lon": 114.0842},
        "raised_at": "2026-11-30T07:59:50+00:00",
    },
    "acks": {
        "incident_id": "INC-20261130-AAAAAA",
        "radio_id": "R001",
        "kind": "accept",
        "at": "2026-11-30T07:59:50+00:00",
        "area": "tangxia",
    },
    "unit-status": {"unit_id": "KZ001", "available": False, "at": "2026-11-30T07:59:50+00:00"},
    "area-events": {
        "kind": "close",
        "at": "2026-11-30T07:59:50+00:00",
        "area": "tangxia",
        "incident_id": "INC-20261130-AAAAAA",
    },
}


@st.composite
def mutated(draw: st.DrawFn, topic: str) -> bytes:
    """A valid value with fields dropped, replaced or added; or garbage."""
    choice = draw(st.integers(0, 9))
    if choice == 0:
        return draw(st.binary(max_size=64))
    if choice == 1:
        return json.dumps(draw(json_values)).encode()
    record: dict[str, Any] = dict(VALID[topic])
    for key in draw(st.lists(st.sampled_from(sorted(record)), max_size=3)):
        action = draw(st.integers(0, 2))
        if action == 0:
            record.pop(key, None)
        elif action == 1:
            record[key] = draw(json_values)
        else:
            record[key] = draw(timestamps)
    if draw(st.booleans()):
        record[draw(st.sampled_from(["schema_version", "extra", "location", "id"]))] = draw(
            json_values
        )
    return json.dumps(record, allow_nan=True).encode()


def _records(topic: str, values: list[bytes], partition: int) -> list[ConsumerRecord[bytes, bytes]]:
    name = SETTINGS.topic(topic)
    ts = int(NOW.timestamp() * 1000)
    return [
        ConsumerRecord(name, partition, offset, ts, 0, b"tangxia", v, None, 7, len(v), ())
        for offset, v in enumerate(values)
    ]


def _task(topic: str, world: World, plan: LoadedPlan) -> tuple[Task, int]:
    if topic in ("incidents", "area-events"):
        partition = area_partition("tangxia", SETTINGS.partitions)
        task = AreaTask(SETTINGS, "t", set(), partition=partition)
        task.restore({"tangxia": world}, plan, {})
        return task, partition
    return RouteTask(SETTINGS, "t", set(), worlds={"tangxia": world}), 0


@pytest.mark.parametrize("topic", sorted(VALID))
def test_no_exception_escapes_and_every_record_is_accounted_for(
    topic: str, tangxia_world: World, default_plan: LoadedPlan
) -> None:
    seen = {"records": 0, "dead": 0}

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(st.lists(mutated(topic), min_size=PER_EXAMPLE, max_size=PER_EXAMPLE))
    def run(values: list[bytes]) -> None:
        task, partition = _task(topic, tangxia_world, default_plan)
        records = _records(topic, values, partition)
        cp, effects = task.handle(records, NOW, tick=True)  # must not raise
        assert list(cp.offsets.values()) == [len(records)]  # every record accounted for
        for o in cp.outputs:
            assert o.value is None or len(o.value) < 200_000  # every output fits a request
        seen["records"] += len(records)
        seen["dead"] += sum(n.startswith("deadletter:") for fx in effects for n in fx.notes)
        task.committed()

    run()
    assert seen["records"] >= 10_000
    assert seen["dead"] > seen["records"] // 4  # most were refused, with a reason
