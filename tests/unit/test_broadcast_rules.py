"""Broadcasts without I/O: who is reached (each person once, the circle), PoC group calls
instead of texts, quiet hours and expiry, progress and the time left."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from engine.broadcast.expand import Circle, expand
from engine.broadcast.model import BroadcastIn, BroadcastPriority, MessageChannel, Target
from engine.broadcast.plan import BroadcastRefused, plan_broadcast
from engine.broadcast.policy import QuietHours, check_and_expiry
from engine.broadcast.progress import BroadcastBook, eta_s
from engine.models import Location
from engine.registry.models import (
    KeyZone,
    Observer,
    Radio,
    Role,
    Unit,
    UnitType,
    Vehicle,
    Volunteer,
    WatchGroup,
)
from engine.registry.registry import Registry

pytestmark = pytest.mark.unit

HERE = Location(lat=22.8000, lon=114.0800)
FAR = Location(lat=22.8300, lon=114.1200)  # about 5 km away


def vol(
    vid: str, group: str | None = None, unit: str | None = None, pub: bool = False
) -> Volunteer:
    phone = "139" + vid[1:].rjust(8, "0")
    return Volunteer(
        id=vid, name_zh="张三", role=Role.VOLUNTEER, phone=phone, group_id=group, unit_id=unit,
        publicity=pub,
    )  # fmt: skip


def radio(rid: str, holder: str, tg: str, tg_id: str | None) -> Radio:
    n = rid[1:].rjust(3, "0")
    return Radio(
        id=rid, poc_id=f"860100{n}", sms_number=f"14400000{n}", talk_group=tg, holder=holder,
        talk_group_id=tg_id,
    )  # fmt: skip


def registry() -> Registry:
    placed = [
        KeyZone(id="KZ1", name_zh="防区一", location=HERE, linked_units=("U1",)),
        KeyZone(id="KZ2", name_zh="防区二", location=FAR, linked_units=("U2",)),
        WatchGroup(id="WG1", name_zh="守望一", location=HERE, linked_units=("U1",)),
        Unit(id="U1", name_zh="商店一", location=HERE, unit_type=UnitType.SHOP),
        Unit(id="U2", name_zh="商店二", location=FAR, unit_type=UnitType.SHOP),
        Observer(id="OB1", name_zh="骑手一", location=FAR, holder="V20", vehicle=Vehicle.E_BIKE),
    ]
    volunteers = [
        # KZ1: three members with handsets in one talk group, V01 also guards U1
        vol("V01", "KZ1", "U1"), vol("V02", "KZ1"), vol("V03", "KZ1"),
        # KZ2: two members, handsets in a talk group shared with a watch-group member
        vol("V04", "KZ2"), vol("V05", "KZ2"),
        # WG1: V06 (handset in KZ2's talk group), V07 also in the publicity vanguard
        vol("V06", "WG1"), vol("V07", "WG1", pub=True),
        # the publicity vanguard: no group, no unit, no place
        vol("V10", pub=True), vol("V11", pub=True),
        vol("V20", "OB1"),
        vol("V21", unit="U2"),
    ]  # fmt: skip
    radios = [
        radio("R1", "V01", "TG-KZ1", "860200001"),
        radio("R2", "V02", "TG-KZ1", "860200001"),
        radio("R3", "V03", "TG-KZ1", "860200001"),
        radio("R4", "V04", "TG-KZ2", "860200002"),
        radio("R5", "V06", "TG-KZ2", "860200002"),
        radio("R6", "V05", "TG-SOLO", "860200003"),
        radio("R7", "V20", "TG-NOID", None),
    ]
    return Registry.build("town", placed, volunteers, radios)


REG = registry()


def people(targets: list[Target], **kw: object) -> list[str]:
    return [r.volunteer_id for r in expand([REG], targets, **kw).recipients]  # type: ignore[arg-type]


def test_each_person_once_whatever_groups_they_are_in() -> None:
    found = expand([REG], [Target.KEY_ZONES, Target.UNITS, Target.WATCH_GROUPS, Target.PUBLICITY])
    ids = [r.volunteer_id for r in found.recipients]
    assert len(ids) == len(set(ids))
    assert set(ids) == {"V01", "V02", "V03", "V04", "V05", "V06", "V07", "V10", "V11", "V21"}
    v01 = next(r for r in found.recipients if r.volunteer_id == "V01")
    assert v01.groups == ("key_zones", "units")
    v07 = next(r for r in found.recipients if r.volunteer_id == "V07")
    assert v07.groups == ("watch_groups", "publicity")
    # one message per person (or per group call), never two for one person
    reached = [p for m in found.messages for p in m.people]
    assert sorted(reached) == sorted(ids)


def test_targets_name_who_they_should() -> None:
    assert people([Target.PUBLICITY]) == ["V07", "V10", "V11"]
    assert people([Target.WATCH_GROUPS]) == ["V06", "V07"]
    assert people([Target.UNITS]) == ["V01", "V21"]
    assert people([Target.OBSERVERS]) == ["V20"]


def test_circle_keeps_people_whose_place_is_inside() -> None:
    near = Circle(HERE.lat, HERE.lon, 500.0)
    assert people([Target.KEY_ZONES], circle=near) == ["V01", "V02", "V03"]
    assert people([Target.UNITS], circle=near) == ["V01"]
    # the publicity vanguard has no place: left out of a circle and counted
    found = expand([REG], [Target.PUBLICITY, Target.WATCH_GROUPS], circle=near)
    assert [r.volunteer_id for r in found.recipients] == ["V06", "V07"]
    assert found.unlocated == 2  # V10, V11 (V07 is placed through its watch group)


def test_observers_are_found_where_they_are_now() -> None:
    near = Circle(HERE.lat, HERE.lon, 500.0)
    assert people([Target.OBSERVERS], circle=near) == []  # registered far away
    moved = {"OB1": (HERE.lat + 0.001, HERE.lon)}  # its live fix: 111 m from here
    assert people([Target.OBSERVERS], circle=near, positions=moved) == ["V20"]


def test_one_poc_group_call_per_talk_group_instead_of_texts() -> None:
    found = expand([REG], [Target.KEY_ZONES], circle=Circle(HERE.lat, HERE.lon, 500.0))
    [call] = [m for m in found.messages if m.channel is MessageChannel.POC_GROUP]
    assert call.recipient == "tg:860200001"
    assert call.people == ("V01", "V02", "V03")
    assert call.talk_group == "TG-KZ1"
    assert found.poc_groups == 1 and found.sms == 0


def test_no_group_call_when_someone_outside_the_target_would_hear_it() -> None:
    # KZ2's talk group also holds V06's handset (a watch-group member, not a key zone)
    found = expand([REG], [Target.KEY_ZONES])
    calls = {m.recipient for m in found.messages if m.channel is MessageChannel.POC_GROUP}
    assert calls == {"tg:860200001"}
    texts = {m.recipient: m.people for m in found.messages if m.channel is MessageChannel.SMS}
    assert texts["R4"] == ("V04",)  # on the handset, one text
    assert texts["R6"] == ("V05",)  # a talk group of one: a text is cheaper than a call
    # with the watch groups named too, KZ2's talk group is wholly in: one call
    both = expand([REG], [Target.KEY_ZONES, Target.WATCH_GROUPS])
    calls = {m.recipient for m in both.messages if m.channel is MessageChannel.POC_GROUP}
    assert calls == {"tg:860200001", "tg:860200002"}


def test_sms_to_the_phone_of_people_without_a_handset_and_no_call_without_vendor_id() -> None:
    found = expand([REG], [Target.PUBLICITY, Target.OBSERVERS])
    assert {m.recipient for m in found.messages} == {"sms:V07", "sms:V10", "sms:V11", "R7"}
    assert all(m.channel is MessageChannel.SMS for m in found.messages)
    one_handset_groups = expand([REG], [Target.KEY_ZONES], min_group=1)
    assert one_handset_groups.poc_groups == 2  # TG-KZ1 and the solo TG-SOLO


def test_plan_keys_are_per_broadcast_and_recipient() -> None:
    now = datetime(2026, 12, 1, 3, 0, tzinfo=UTC)  # 11:00 in Tangxia
    request = BroadcastIn(text="台风预警", to=[Target.KEY_ZONES], idempotency_key="k1")
    planned = plan_broadcast(request, [REG], actor="li", now=now)
    keys = [m.idempotency_key for m in planned.messages]
    assert len(keys) == len(set(keys))
    bid = planned.notice.broadcast_id
    assert f"bc/{bid}/tg:860200001" in keys and f"bc/{bid}/R4" in keys
    again = plan_broadcast(request, [REG], actor="li", now=now)
    assert again.notice.broadcast_id == bid  # a retry names the same broadcast
    assert planned.notice.messages == len(planned.messages) == 3  # 1 call, 2 texts
    assert planned.messages[0].text.startswith("[塘厦义警·通知]台风预警")


def test_plan_refusals() -> None:
    now = datetime(2026, 12, 1, 3, 0, tzinfo=UTC)
    with pytest.raises(BroadcastRefused, match="unknown dispatch area"):
        plan_broadcast(BroadcastIn(text="x", to=[Target.UNITS], area="elsewhere"), [REG],
                       actor="a", now=now)  # fmt: skip
    far_away = BroadcastIn(
        text="x", to=[Target.PUBLICITY], near={"lat": 23.5, "lon": 113.0}, radius_m=100
    )
    with pytest.raises(BroadcastRefused, match="nobody to reach"):
        plan_broadcast(far_away, [REG], actor="a", now=now)
    with pytest.raises(BroadcastRefused, match="SMS parts"):
        plan_broadcast(BroadcastIn(text="长" * 200, text_en="x" * 300, to=[Target.UNITS]),
                       [REG], actor="a", now=now, max_parts=4)  # fmt: skip


@pytest.mark.parametrize(
    "body",
    [
        {"text": "", "to": ["publicity"]},
        {"text": "   ", "to": ["publicity"]},
        {"text": "x", "to": []},
        {"text": "x", "to": ["everyone"]},
        {"text": "x", "to": ["units", "units"]},
        {"text": "x", "to": ["units"], "near": {"lat": 22.8, "lon": 114.0}},
        {"text": "x", "to": ["units"], "radius_m": 100},
        {"text": "x", "to": ["units"], "priority": "P1"},
        {"text": "x", "to": ["units"], "expires_in_s": 10},
        {"text": "x", "to": ["units"], "sender": "someone"},
        {"text": "x\x00", "to": ["units"]},
    ],
)
def test_bad_requests_are_refused(body: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        BroadcastIn.model_validate(body)


# -- quiet hours ---------------------------------------------------------------------------

QUIET = QuietHours.parse("22:00-07:00", "Asia/Shanghai", ["info"])


def local(hour: int, minute: int = 0) -> datetime:
    """A Tangxia wall-clock time on 1 December 2026, as UTC (Asia/Shanghai is UTC+8)."""
    return datetime(2026, 12, 1, hour, minute, tzinfo=UTC) - timedelta(hours=8)


@pytest.mark.parametrize(
    ("hour", "minute", "held"),
    [(21, 59, False), (22, 0, True), (23, 30, True), (3, 0, True), (6, 59, True), (7, 0, False)],
)
def test_no_info_broadcast_in_quiet_hours(hour: int, minute: int, held: bool) -> None:
    assert QUIET is not None
    assert QUIET.holds(BroadcastPriority.INFO, local(hour, minute)) is held
    assert not QUIET.holds(BroadcastPriority.URGENT, local(hour, minute))
    assert not QUIET.holds(BroadcastPriority.WARNING, local(hour, minute))


def test_quiet_hours_refuse_info_but_not_urgent_and_cap_the_expiry() -> None:
    request = BroadcastIn(text="防诈骗提醒", to=[Target.PUBLICITY])
    with pytest.raises(BroadcastRefused) as refused:
        plan_broadcast(request, [REG], actor="a", now=local(23, 0), quiet=QUIET)
    assert refused.value.status == 409 and "quiet hours" in refused.value.reason
    urgent = request.model_copy(update={"priority": BroadcastPriority.URGENT})
    assert plan_broadcast(urgent, [REG], actor="a", now=local(23, 0), quiet=QUIET)
    # accepted at 21:00 for 12 h, an info broadcast still expires when quiet hours begin
    expires = check_and_expiry(BroadcastPriority.INFO, local(21, 0), 12 * 3600, QUIET)
    assert expires == local(22, 0)
    assert check_and_expiry(BroadcastPriority.URGENT, local(21, 0), 3600, QUIET) == local(22, 0)
    assert QuietHours.parse("") is None
    never_urgent = QuietHours.parse("22:00-07:00", held=["info", "urgent"])
    assert never_urgent is not None and BroadcastPriority.URGENT not in never_urgent.held


# -- progress ------------------------------------------------------------------------------


def _notice(bid: str, messages: int) -> dict[str, object]:
    return {
        "kind": "notice", "broadcast_id": bid, "messages": messages, "recipients": messages,
        "poc_groups": 0, "sms": messages, "expires_at": "2099-01-01T00:00:00+00:00",
    }  # fmt: skip


def _report(bid: str, n: int, status: str, t: float) -> dict[str, object]:
    at = datetime.fromtimestamp(t, UTC).isoformat()
    return {"kind": "report", "broadcast_id": bid, "idempotency_key": f"bc/{bid}/sms:V{n}",
            "status": status, "at": at}  # fmt: skip


def test_progress_counts_each_message_once_and_estimates_the_time_left() -> None:
    book = BroadcastBook()
    book.apply(_notice("BC-1", 10))
    p = book.get("BC-1")
    assert p is not None and p.state(0.0) == "queued"
    assert p.eta_s(0.0) == 20.0  # nominal 2 s a message before anything was sent
    for n in range(5):
        book.apply(_report("BC-1", n, "sent", 1000.0 + 2 * n))
    book.apply(_report("BC-1", 0, "sent", 1000.0))  # read twice (a restart): counted once
    book.apply(_report("BC-1", 1, "delivered", 1003.0))
    s = p.summary(1008.0)
    assert (s["sent"], s["delivered"], s["left"], s["state"]) == (5, 1, 5, "sending")
    assert s["eta_s"] == pytest.approx(10.0)  # 0.5 messages a second, 5 left
    book.apply({"kind": "reply", "broadcast_id": "BC-1", "radio_id": "sms:V1", "text": "收到"})
    assert p.summary(1008.0)["replies"] == 1
    for n in range(5, 10):
        book.apply(_report("BC-1", n, "sent", 1010.0 + n))
    assert p.state(1030.0) == "done" and p.frozen is not None
    assert not p.sent  # finished: counts only, the keys are let go
    book.apply(_report("BC-1", 7, "delivered", 1031.0))  # the network's late word counts
    assert (p.summary(1031.0)["sent"], p.summary(1031.0)["delivered"]) == (10, 2)


def test_cancel_drops_the_rest_and_ends_cancelled() -> None:
    book = BroadcastBook()
    book.apply(_notice("BC-2", 4))
    book.apply(_report("BC-2", 0, "sent", 1.0))
    book.apply({"kind": "cancel", "broadcast_id": "BC-2", "actor": "li"})
    p = book.get("BC-2")
    assert p is not None and p.state(2.0) == "cancelling" and p.eta_s(2.0) == 0.0
    for n in (1, 2, 3):
        book.apply(_report("BC-2", n, "cancelled", 2.0))
    s = p.summary(3.0)
    assert (s["state"], s["sent"], s["cancelled"], s["left"]) == ("cancelled", 1, 3, 0)


def test_hostile_records_are_counted_not_fatal() -> None:
    book = BroadcastBook(max_broadcasts=2)
    for value in (b"\xff", b"[]", b'{"kind": "notice"}', b'{"kind": "x", "broadcast_id": "B"}'):
        book.apply_bytes(value)
    assert book.bad_records == 3  # the last names no broadcast this book knows: ignored
    for i in range(3):
        book.apply(_notice(f"BC-{i}", 1))
    assert list(book.broadcasts) == ["BC-1", "BC-2"]  # bounded: the oldest went
    book.apply({**_report("BC-2", 1, "bogus", 1.0)})
    assert book.bad_records == 4


def test_eta_without_pace_and_when_done() -> None:
    assert eta_s(10, 0, None, None, 0.0) == 20.0
    assert eta_s(0, 10, 0.0, 5.0, 6.0) == 0.0
    assert eta_s(10, 5, 0.0, 4.0, 4.0, done=True) == 0.0
