"""The worker's state machine and intake without Kafka: dict stores, real rules."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from engine.models import Ack, DeadLetter, Incident, UnitStatus
from engine.rules.plan import LoadedPlan
from engine.rules.world import World
from engine.streams.core import AreaCore
from engine.streams.events import AreaEvent
from engine.streams.intake import Origin, derived_id, parse_incident
from tests.areas import TANGXIA

pytestmark = pytest.mark.unit

T0 = datetime(2026, 11, 30, 6, 0, tzinfo=UTC)


@pytest.fixture
def core(tangxia_world: World, default_plan: LoadedPlan) -> AreaCore:
    return AreaCore({"tangxia": tangxia_world}, default_plan, {})


def _fire(n: int = 1) -> Incident:
    return Incident(
        id=f"INC-20261130-K7Q2A{n}",
        type="fire",
        priority="P1",
        location={"lat": 22.8031, "lon": 114.0842},
        area="tangxia",
        raised_at=T0,
    )  # type: ignore[arg-type]


def test_state_is_written_only_after_the_outputs(core: AreaCore) -> None:
    fx = core.on_incident(_fire(), T0)
    assert [o.topic for o in fx.out][-2:] == ["decisions", "incident-state"]
    # 12 texts (one per address) and the zone team's talk group called by voice
    assert sum(o.topic == "callouts" for o in fx.out) == 13
    assert fx.notes.count("callout:P1:sms") == 12
    assert fx.notes.count("callout:P1:poc_group") == 1
    assert core.store == {}  # nothing recorded until the outputs are acknowledged
    assert core.on_incident(_fire(), T0).notes == ["duplicate"]  # but already known
    core.apply_writes()
    assert list(core.store) == [f"incident/{_fire().id}"]


def test_same_state_and_event_time_give_identical_records(
    tangxia_world: World, default_plan: LoadedPlan
) -> None:
    """What a worker re-reading an incident after a crash publishes again."""
    a = AreaCore({"tangxia": tangxia_world}, default_plan, {}).on_incident(_fire(), T0)
    b = AreaCore({"tangxia": tangxia_world}, default_plan, {}).on_incident(_fire(), T0)
    assert a.out == b.out


def test_second_incident_does_not_get_the_committed_zone(core: AreaCore) -> None:
    first = core.on_incident(_fire(1), T0)
    core.apply_writes()
    second = core.on_incident(_fire(2), T0)
    zone = [
        json.loads(o.value)["zone"]["id"]
        for o in (*first.out, *second.out)
        if o.topic == "decisions"
    ]
    assert zone[0] != zone[1]


def test_deadline_tick_escalates_and_unknown_ack_is_dead_lettered(core: AreaCore) -> None:
    core.on_incident(_fire(), T0)
    core.apply_writes()
    assert core.due(T0 + timedelta(seconds=19)) == []
    # the zone team's ladder: a single call at 20 s, the leader's phone at 40 s
    for seconds, channel in ((20, "poc_single"), (40, "sms")):
        at = T0 + timedelta(seconds=seconds)
        assert core.due(at) == [("tick", "tangxia", _fire().id)]
        fx = core.on_event(
            AreaEvent(kind="tick", at=at, area="tangxia", incident_id=_fire().id), at
        )
        assert fx.notes[-1] == "ladder"
        [call] = [json.loads(o.value) for o in fx.out if o.topic == "callouts"]
        assert call["channel"] == channel and call["kind"] == "key_zone"
        core.apply_writes()
    assert core.due(T0 + timedelta(seconds=44)) == []
    due = core.due(T0 + timedelta(seconds=45))
    assert due == [("tick", "tangxia", _fire().id)]
    at = T0 + timedelta(seconds=45)
    fx = core.on_event(AreaEvent(kind="tick", at=at, area="tangxia", incident_id=_fire().id), at)
    assert "escalated" in fx.notes
    decision = next(json.loads(o.value) for o in fx.out if o.topic == "decisions")
    assert decision["stage"] == 1
    ack = Ack(incident_id="INC-UNKNOWN", radio_id="R001", kind="accept", at=T0)  # type: ignore[arg-type]
    fx = core.on_event(AreaEvent(kind="ack", at=T0, area="tangxia", ack=ack), T0)
    [letter] = [json.loads(o.value) for o in fx.out]
    assert letter["reason"] == "unknown_incident"


def test_unavailable_unit_and_offline_radio_reach_the_rules(core: AreaCore) -> None:
    baseline = core.on_incident(_fire(1), T0)
    zone = next(json.loads(o.value)["zone"]["id"] for o in baseline.out if o.topic == "decisions")
    fresh = AreaCore(core.worlds, core.plan, {})
    fresh.on_event(
        AreaEvent(
            kind="status",
            at=T0,
            area="tangxia",
            status=UnitStatus(unit_id=zone, available=False, at=T0),
        ),
        T0,
    )  # type: ignore[arg-type]
    fresh.apply_writes()
    fx = fresh.on_incident(_fire(2), T0)
    other = next(json.loads(o.value)["zone"]["id"] for o in fx.out if o.topic == "decisions")
    assert other != zone


def test_closed_incident_is_pruned_after_a_day(core: AreaCore) -> None:
    core.on_incident(_fire(), T0)
    core.apply_writes()
    closed = T0 + timedelta(minutes=5)
    core.on_event(AreaEvent(kind="close", at=closed, area="tangxia",
                            incident_id=_fire().id, who="op"), closed)  # fmt: skip
    core.apply_writes()
    assert core.due(T0 + timedelta(hours=1)) == []
    later = T0 + timedelta(hours=25)
    assert core.due(later) == [("prune", "tangxia", _fire().id)]
    assert core.on_event(
        AreaEvent(kind="prune", at=later, area="tangxia", incident_id=_fire().id), later
    ).notes == ["pruned"]
    core.apply_writes()
    assert core.store == {}


ORIGIN = Origin("incidents", 0, 42, int(T0.timestamp() * 1000), b"tangxia")


@pytest.mark.parametrize(
    ("raw", "reason", "fragment"),
    [
        (b"\xff\xfe", "not_json", "not JSON"),
        (b"[1, 2]", "invalid", "not a JSON object"),
        (b'{"type": "fire", "priority": "P1"}', "invalid", "location"),
        (
            b'{"type": "arson", "priority": "P1", "location": {"lat": 22.8, "lon": 114.08}}',
            "invalid",
            "type",
        ),
        (
            b'{"schema_version": 2, "type": "fire", "priority": "P1", '
            b'"location": {"lat": 22.8, "lon": 114.08}}',
            "unsupported_version",
            "schema_version 2",
        ),
        (
            b'{"type": "fire", "priority": "P1", "location": {"lat": 23.02, "lon": 113.75}}',
            "out_of_area",
            "outside",
        ),
    ],
)
def test_bad_incident_records_become_dead_letters(raw: bytes, reason: str, fragment: str) -> None:
    letter = parse_incident(raw, ORIGIN, [TANGXIA])
    assert isinstance(letter, DeadLetter)
    assert letter.reason == reason
    assert fragment in letter.error
    assert base64.b64decode(letter.original_b64) == raw
    assert (letter.topic, letter.partition, letter.offset) == ("incidents", 0, 42)


def test_missing_id_and_time_come_from_the_log_position() -> None:
    raw = b'{"type": "fire", "priority": "P1", "location": {"lat": 22.8, "lon": 114.08}}'
    a, b = parse_incident(raw, ORIGIN, [TANGXIA]), parse_incident(raw, ORIGIN, [TANGXIA])
    assert isinstance(a, Incident) and isinstance(b, Incident)
    assert a.id == b.id == derived_id(ORIGIN)
    assert a.raised_at == T0 and a.area == "tangxia"
    other: Any = parse_incident(
        raw, Origin("incidents", 0, 43, ORIGIN.timestamp_ms, None), [TANGXIA]
    )
    assert other.id != a.id


def test_pending_writes_are_the_changelog_and_an_abort_forgets_them(core: AreaCore) -> None:
    core.on_incident(_fire(1), T0)
    [(key, value)] = core.pending_writes()
    assert key == f"incident/{_fire(1).id}" and value.status.value == "dispatched"
    core.discard_writes()  # the transaction was aborted
    assert core.pending_writes() == [] and core.store == {}
    again = core.on_incident(_fire(1), T0)  # handled again: decided again, not a duplicate
    assert "decided" in again.notes
    core.apply_writes()
    assert core.open_counts() == {"dispatched": 1}
    assert [key for key, _ in core.entries("dispatches")] == [_fire(1).id]


def test_a_reused_id_with_other_content_is_dead_lettered(core: AreaCore) -> None:
    core.on_incident(_fire(), T0)
    other = Incident.model_validate({**_fire().model_dump(), "type": "medical"})
    fx = core.on_incident(other, T0)
    [letter] = [json.loads(o.value) for o in fx.out]
    assert letter["reason"] == "duplicate_id"
    resent = _fire().model_copy(update={"raised_at": T0 + timedelta(seconds=3)})
    assert core.on_incident(resent, T0).notes == ["duplicate"]


def test_acks_are_kept_once_per_radio_and_kind(core: AreaCore) -> None:
    fx = core.on_incident(_fire(), T0)
    radio = next(json.loads(o.value)["radio_id"] for o in fx.out if o.topic == "callouts")
    core.apply_writes()
    ack = Ack(incident_id=_fire().id, radio_id=radio, kind="accept", at=T0)  # type: ignore[arg-type]
    first = core.on_event(AreaEvent(kind="ack", at=T0, area="tangxia", ack=ack), T0)
    assert [o.topic for o in first.out] == ["incident-state"]
    core.apply_writes()
    size = len(core.store[f"incident/{_fire().id}"].model_dump_json())
    for n in range(200):  # a flood of the same reply: counted, not stored
        again = ack.model_copy(update={"at": T0 + timedelta(seconds=n)})
        fx = core.on_event(AreaEvent(kind="ack", at=T0, area="tangxia", ack=again), T0)
        assert fx.out == [] and fx.notes == ["ack_ignored"]
    assert core.pending_writes() == []
    assert len(core.store[f"incident/{_fire().id}"].model_dump_json()) == size


def test_a_fault_in_the_rules_goes_to_people_and_the_area_goes_on(
    core: AreaCore, monkeypatch: pytest.MonkeyPatch
) -> None:
    import engine.streams.core as core_module

    real = core_module.decide

    def broken(incident: Incident, *args: Any) -> Any:
        if incident.id == _fire(1).id:
            raise ZeroDivisionError("a bug")
        return real(incident, *args)

    monkeypatch.setattr(core_module, "decide", broken)
    core.on_incident(_fire(3), T0)  # earlier in the same batch: its write must stay
    fx = core.on_incident(_fire(1), T0)
    records = [(o.topic, json.loads(o.value)) for o in fx.out]
    callouts = [v for t, v in records if t == "callouts"]
    assert callouts and all(c["manual_dispatch"] for c in callouts)
    assert {c["kind"] for c in callouts} == {"command_centre"}
    assert "人工派警" in callouts[0]["text"]
    [letter] = [v for t, v in records if t == "deadletter"]
    assert letter["reason"] == "engine_error" and "ZeroDivisionError" in letter["error"]
    # nothing of the failed incident is kept, the earlier one's write is
    assert [key for key, _ in core.pending_writes()] == [f"incident/{_fire(3).id}"]
    assert "decided" in core.on_incident(_fire(2), T0).notes  # the next is decided


def test_a_fault_after_the_state_write_rolls_that_write_back(
    core: AreaCore, monkeypatch: pytest.MonkeyPatch
) -> None:
    core.on_incident(_fire(3), T0)
    real = AreaCore._commit

    def broken(self: AreaCore, dispatch: Any, zones: list[str]) -> None:
        if dispatch.incident.id == _fire(1).id:
            raise RuntimeError("after the write")
        real(self, dispatch, zones)

    monkeypatch.setattr(AreaCore, "_commit", broken)
    fx = core.on_incident(_fire(1), T0)
    assert "engine_error" in fx.notes
    assert [key for key, _ in core.pending_writes()] == [f"incident/{_fire(3).id}"]
    assert [i for _, _, i in core.due(T0 + timedelta(hours=1))] == [_fire(3).id]
