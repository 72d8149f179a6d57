"""Call-out ordering and the commit-prefix arithmetic of the gateway (pure)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.models import CallOut, Channel, Priority
from engine.radio.gateway_queue import CalloutQueue, OffsetTracker, Pending

pytestmark = pytest.mark.unit


def pending(priority: Priority, offset: int, partition: int = 0) -> Pending:
    radio = f"R{offset:03d}"
    callout = CallOut(
        idempotency_key=CallOut.key_for("INC-20261129-K7Q2XY", 0, radio),
        incident_id="INC-20261129-K7Q2XY",
        stage=0,
        radio_id=radio,
        channel=Channel.SMS,
        text="[塘厦义警]P1 火情 #Q2XY 回1接警 2不能 3到场",
        priority=priority,
    )
    return Pending(callout, partition, offset)


def test_p1_before_p4_and_fifo_within_a_priority() -> None:
    q = CalloutQueue()
    arrivals = [Priority.P4, Priority.P2, Priority.P1, Priority.P4, Priority.P1]
    for offset, prio in enumerate(arrivals):
        q.push(pending(prio, offset))
    order = []
    while (item := q.pop()) is not None:
        order.append((item.callout.priority.value, item.offset))
    assert order == [("P1", 2), ("P1", 4), ("P2", 1), ("P4", 0), ("P4", 3)]


def test_drop_partitions_keeps_the_rest_in_order() -> None:
    q = CalloutQueue()
    q.push(pending(Priority.P3, 0, partition=0))
    q.push(pending(Priority.P1, 1, partition=1))
    q.push(pending(Priority.P2, 2, partition=0))
    dropped = q.drop_partitions({1})
    assert [d.offset for d in dropped] == [1]
    assert [q.pop(), q.pop(), q.pop()] == [pending(Priority.P2, 2), pending(Priority.P3, 0), None]


def test_commit_moves_only_over_a_finished_prefix() -> None:
    t = OffsetTracker()
    for offset in (10, 11, 12, 13):
        t.track(0, offset)
    assert t.finish(0, 12) is None  # 10 and 11 still out
    assert t.finish(0, 10) == 11
    assert t.finish(0, 13) is None
    assert t.finish(0, 11) == 14  # everything read is finished: next to read is 14
    assert t.finish(0, 11) is None  # twice is harmless
    assert t.outstanding(0) == frozenset()


def test_partitions_are_independent_and_forgotten_on_revoke() -> None:
    t = OffsetTracker()
    t.track(0, 5)
    t.track(1, 7)
    assert t.finish(1, 7) == 8
    t.forget([0])
    assert t.finish(0, 5) is None
    assert t.committed(1) == 8


def test_tracking_out_of_order_is_a_bug() -> None:
    t = OffsetTracker()
    t.track(0, 3)
    with pytest.raises(ValueError, match="out of order"):
        t.track(0, 3)


@given(st.permutations(range(12)), st.integers(min_value=0, max_value=5))
def test_committed_position_is_always_the_first_unfinished(order: list[int], start: int) -> None:
    t = OffsetTracker()
    offsets = [start + 2 * i for i in range(12)]  # gaps, as after compaction
    for o in offsets:
        t.track(0, o)
    finished: set[int] = set()
    last = None
    for i in order:
        moved = t.finish(0, offsets[i])
        finished.add(offsets[i])
        unfinished = [o for o in offsets if o not in finished]
        expected = unfinished[0] if unfinished else offsets[-1] + 1
        if moved is not None:
            last = moved
        assert (last or offsets[0]) <= expected
        if moved is not None:
            assert moved == expected
    assert last == offsets[-1] + 1
