"""Operator commands applied by the worker's core: real rules, a dict store, no Kafka."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from engine.models import Ack, Command, Incident
from engine.rules.plan import LoadedPlan
from engine.rules.world import World
from engine.streams.core import AreaCore, Effects

pytestmark = pytest.mark.unit

T0 = datetime(2026, 11, 30, 6, 0, tzinfo=UTC)
INC = "INC-20261130-CMD001"


@pytest.fixture
def core(tangxia_world: World, default_plan: LoadedPlan) -> AreaCore:
    c = AreaCore({"tangxia": tangxia_world}, default_plan, {})
    c.on_incident(_theft(), T0)
    c.apply_writes()
    return c


def _theft(**kw: Any) -> Incident:
    fields: dict[str, Any] = {
        "id": INC,
        "type": "theft",
        "priority": "P3",
        "location": {"lat": 22.8031, "lon": 114.0842},
        "area": "tangxia",
        "raised_at": T0,
        **kw,
    }
    return Incident.model_validate(fields)


def _cmd(action: str, seconds: float = 5, **kw: Any) -> Command:
    return Command.model_validate(
        {
            "command_id": f"c-{action}-{seconds}",
            "action": action,
            "incident_id": INC,
            "area": "tangxia",
            "actor": "duty-officer-li",
            "at": T0 + timedelta(seconds=seconds),
            **kw,
        }
    )


def _run(core: AreaCore, command: Command) -> tuple[dict[str, Any], Effects]:
    fx = core.on_command(command, command.at)
    core.apply_writes()
    [audit] = [json.loads(o.value) for o in fx.out if o.topic == "audit"]
    assert audit["command_id"] == command.command_id
    assert audit["actor"] == "duty-officer-li"
    return audit, fx


def _records(fx: Effects, topic: str) -> list[dict[str, Any]]:
    return [json.loads(o.value) for o in fx.out if o.topic == topic]


def _state(fx: Effects) -> dict[str, Any]:
    [state] = _records(fx, "incident-state")
    return state


def test_escalate_calls_the_next_stage_now_and_names_the_operator(core: AreaCore) -> None:
    audit, fx = _run(core, _cmd("escalate", reason="crowd gathering"))
    assert audit["result"] == "applied" and audit["stage"] == 1
    [decision] = _records(fx, "decisions")
    assert decision["stage"] == 1
    assert decision["reasons"][0] == "escalated by duty-officer-li: crowd gathering"
    assert _state(fx)["state"] == "escalated"
    paged_at_0 = {c["radio_id"] for c in _records(_first(core), "callouts")}
    new = {c["radio_id"] for c in _records(fx, "callouts")}
    assert new and not new & paged_at_0  # nobody paged twice
    assert all(c["idempotency_key"].startswith(f"{INC}/1/") for c in _records(fx, "callouts"))
    assert _state(fx)["timeline"][-1]["who"] == "duty-officer-li"


def _first(core: AreaCore) -> Effects:
    """The stage-0 outputs, made again by a fresh core (same inputs, same records)."""
    fresh = AreaCore(core.worlds, core.plan, {})
    return fresh.on_incident(_theft(), T0)


def test_repage_pages_only_those_who_have_not_answered(core: AreaCore) -> None:
    callouts = _records(_first(core), "callouts")
    answered = callouts[0]["radio_id"]
    core.on_event(_ack_event(answered, "accept"), T0)
    core.apply_writes()
    audit, fx = _run(core, _cmd("repage"))
    assert audit["result"] == "applied"
    again = _records(fx, "callouts")
    assert {c["radio_id"] for c in again} == {c["radio_id"] for c in callouts} - {answered}
    assert all("/0/repage1/" in c["idempotency_key"] for c in again)
    _, fx2 = _run(core, _cmd("repage", 9))
    assert all("/0/repage2/" in c["idempotency_key"] for c in _records(fx2, "callouts"))


def _ack_event(radio: str, kind: str) -> Any:
    from engine.streams.events import AreaEvent

    ack = Ack(incident_id=INC, radio_id=radio, kind=kind, at=T0 + timedelta(seconds=2))  # type: ignore[arg-type]
    return AreaEvent(kind="ack", at=ack.at, area="tangxia", ack=ack)


def test_reassign_moves_the_incident_to_the_operators_zone(core: AreaCore) -> None:
    first_zone = _records(_first(core), "decisions")[0]["zone"]["id"]
    ranked = core.worlds["tangxia"].nearby.ranked(22.8031, 114.0842, "key_zone", 3000.0)
    other = next(z for _, z in ranked if z != first_zone)  # the next nearest
    audit, fx = _run(core, _cmd("reassign", zone_id=other, reason="closer by road"))
    assert audit["result"] == "applied", audit
    [decision] = _records(fx, "decisions")
    assert decision["zone"]["id"] == other
    assert decision["reasons"][0].startswith(f"reassigned to {other} by duty-officer-li")
    held = core.availability("tangxia").commitments
    assert held[other].incident_id == INC and first_zone not in held
    core.invalidate()  # rebuilt from the stored state: the same commitments
    held = core.availability("tangxia").commitments
    assert held[other].incident_id == INC and first_zone not in held


def test_reassign_refuses_an_unknown_zone(core: AreaCore) -> None:
    audit, fx = _run(core, _cmd("reassign", zone_id="KZ-NOPE"))
    assert audit["result"] == "refused" and "not a key zone" in audit["reason"]
    assert _records(fx, "incident-state") == []


def test_priority_and_move_re_decide(core: AreaCore) -> None:
    audit, fx = _run(core, _cmd("priority", priority="P1"))
    assert audit["result"] == "applied"
    assert _state(fx)["incident"]["priority"] == "P1"
    assert _records(fx, "decisions")[0]["priority"] == "P1"
    audit, _ = _run(core, _cmd("priority", 6, priority="P1"))
    assert audit["result"] == "refused" and "unchanged" in audit["reason"]
    audit, fx = _run(core, _cmd("move", 7, location={"lat": 22.81, "lon": 114.09}))
    assert audit["result"] == "applied"
    assert _state(fx)["incident"]["location"] == {"lat": 22.81, "lon": 114.09}
    audit, _ = _run(core, _cmd("move", 8, location={"lat": 23.5, "lon": 113.0}))
    assert audit["result"] == "refused" and "outside dispatch area" in audit["reason"]


def test_close_then_commands_are_refused_until_reopen(core: AreaCore) -> None:
    audit, fx = _run(core, _cmd("close", reason="handled"))
    assert audit["result"] == "applied" and _state(fx)["state"] == "closed"
    stood_down = _records(fx, "callouts")
    assert stood_down and all("/end/" in c["idempotency_key"] for c in stood_down)
    assert core.availability("tangxia").commitments == {}
    for action in ("escalate", "repage", "close", "cancel"):
        audit, _ = _run(core, _cmd(action, 10))
        assert audit["result"] == "refused", action
        assert "closed" in audit["reason"]
    audit, fx = _run(core, _cmd("note", 11, reason="owner came back"))
    assert audit["result"] == "applied"
    assert _state(fx)["timeline"][-1]["what"] == "owner came back"
    audit, fx = _run(core, _cmd("reopen", 12, reason="thief seen again"))
    assert audit["result"] == "applied" and _state(fx)["state"] == "dispatched"
    assert _records(fx, "callouts")  # everyone paged again
    assert core.availability("tangxia").commitments
    audit, fx = _run(core, _cmd("close", 13))
    assert all("/end1/" in c["idempotency_key"] for c in _records(fx, "callouts"))


def test_reopen_refused_for_open_or_old_incidents(core: AreaCore) -> None:
    audit, _ = _run(core, _cmd("reopen"))
    assert audit["result"] == "refused" and "only unanswered or closed" in audit["reason"]
    _run(core, _cmd("cancel", 6))
    audit, _ = _run(core, _cmd("reopen", 7))
    assert audit["result"] == "refused"  # cancelled is not reopened
    c = _cmd("close", 8)
    assert _run(core, c)[0]["result"] == "refused"


def test_unknown_incident_is_refused_with_a_result(core: AreaCore) -> None:
    cmd = _cmd("escalate").model_copy(update={"incident_id": "INC-NOPE"})
    fx = core.on_command(cmd, cmd.at)
    [audit] = _records(fx, "audit")
    assert audit["result"] == "refused" and "unknown incident" in audit["reason"]


def test_a_fault_while_applying_still_answers(
    core: AreaCore, monkeypatch: pytest.MonkeyPatch
) -> None:
    import engine.streams.core as core_module

    def boom(*_: Any, **__: Any) -> Any:
        raise RuntimeError("bug")

    monkeypatch.setattr(core_module, "apply_command", boom)
    fx = core.on_command(_cmd("escalate"), T0)
    [audit] = _records(fx, "audit")
    assert audit["result"] == "refused" and "engine error" in audit["reason"]
    assert [d["reason"] for d in _records(fx, "deadletter")] == ["engine_error"]
