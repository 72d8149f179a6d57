"""The API's read model without Kafka: records in, board, grid, audit and live events out,
within its bounds."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from engine.api import readmodel
from engine.api.readmodel import ReadModel

pytestmark = pytest.mark.unit


def _b(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc).encode()


def _state(incident_id: str, state: str = "dispatched", **kw: Any) -> bytes:
    return _b({
        "incident_id": incident_id, "state": state, "stage": 0, "zone_id": "KZ1",
        "incident": {"id": incident_id, "type": "fire", "priority": "P1", "area": "tangxia",
                     "raised_at": "2026-12-01T08:00:00+00:00"},
        "updated_at": "2026-12-01T08:00:01+00:00", "accepted": [], "on_scene_units": [], **kw,
    })  # fmt: skip


DECISION = {
    "incident_id": "I1", "stage": 0, "decided_at": "2026-12-01T08:00:01+00:00",
    "ack_deadline": "2026-12-01T08:00:46+00:00", "reasons": ["nearest KZ1"],
    "zone": {"id": "KZ1"},
    "recipients": [
        {"id": "KZ1", "kind": "key_zone", "name_zh": "一号", "contacts": ["R1"]},
        {"id": "U1", "kind": "unit", "name_zh": "甲", "contacts": ["sms:V1"]},
        {"id": "U2", "kind": "unit", "name_zh": "乙", "contacts": ["sms:V2"]},
        {"id": "U3", "kind": "unit", "name_zh": "丙", "contacts": ["sms:V3"]},
    ],
}  # fmt: skip


def test_grid_board_and_audit_from_the_topics() -> None:
    m = ReadModel()
    m.apply("incident-state", _state("I1", accepted=["KZ1"]))
    m.apply("decisions", _b(DECISION))
    for radio, kind in (("R1", "accept"), ("sms:V1", "delivered"), ("sms:V2", "decline"),
                        ("sms:V3", "sent")):  # fmt: skip
        m.apply("acks", _b({"incident_id": "I1", "radio_id": radio, "kind": kind,
                            "at": "2026-12-01T08:00:05+00:00"}))  # fmt: skip
    view = m.view("I1")
    assert view is not None
    grid = {g["id"]: g["status"] for g in view.grid()}
    assert grid == {"KZ1": "accepted", "U1": "delivered", "U2": "declined", "U3": "sent"}
    assert view.summary()["ack_deadline"] == DECISION["ack_deadline"]
    assert [i["id"] for i in m.listing("open")] == ["I1"]
    m.apply("incident-state", _state("I1", "closed"))
    assert m.listing("open") == [] and len(m.listing("all")) == 1
    m.apply("audit", _b({"kind": "command", "command_id": "c1", "action": "close",
                         "incident_id": "I1", "actor": "li", "result": "applied",
                         "reason": "closed by li", "at": "2026-12-01T08:01:00+00:00"}))  # fmt: skip
    kinds = [e["kind"] for e in m.audit_entries(None, "I1", None, 10)]
    assert kinds == ["command", "reply_accepted", "reply_accepted", "decision"]
    assert [e["actor"] for e in m.audit_entries("li", None, None, 10)] == ["li"]


@pytest.mark.parametrize(
    ("topic", "value"),
    [("incident-state", b"not json"), ("decisions", b"[1, 2]"), ("acks", b"{}"),
     ("unit-status", b'{"x": 1}'), ("audit", b"\xff\xfe")],
)  # fmt: skip
def test_a_bad_record_is_counted_and_skipped(topic: str, value: bytes) -> None:
    m = ReadModel()
    m.apply(topic, value)
    assert m.bad_records == 1
    m.apply("incident-state", _state("I2"))
    assert m.view("I2") is not None


def test_bounded_incidents_evict_ended_ones_first(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(readmodel, "MAX_INCIDENTS", 3)
    m = ReadModel()
    m.apply("incident-state", _state("A"))
    m.apply("incident-state", _state("B", "closed"))
    m.apply("incident-state", _state("C"))
    m.apply("incident-state", _state("D"))
    assert list(m.incidents) == ["A", "C", "D"]


def test_a_slow_subscriber_is_dropped_not_buffered(monkeypatch: pytest.MonkeyPatch) -> None:
    async def go() -> None:
        monkeypatch.setattr(readmodel, "SUBSCRIBER_QUEUE", 5)
        m = ReadModel()
        slow = m.subscribe()
        for n in range(20):
            m.apply("incident-state", _state(f"I{n}"))
        assert slow not in m.subscribers
        events = [slow.get_nowait() for _ in range(slow.qsize())]
        assert events[-1] is None  # told to go: its client reconnects
        assert len(events) <= 5

    asyncio.run(go())


def test_command_waiters_get_their_outcome() -> None:
    async def go() -> dict[str, Any]:
        m = ReadModel()
        waiter: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        m.command_waiters["c9"] = waiter
        m.apply("audit", _b({"kind": "command", "command_id": "c9", "result": "refused",
                             "reason": "incident is closed", "incident_id": "X"}))  # fmt: skip
        return await asyncio.wait_for(waiter, 1)

    assert asyncio.run(go())["reason"] == "incident is closed"
