"""Reply validation: unknown numbers, codes that are not open, radios not called (pure)."""

from __future__ import annotations

import pytest

from engine.models import AckKind
from engine.radio.directory import RadioEntry, StaticDirectory, normalise_number
from engine.radio.reply_check import AcceptedReply, CalledBook, RejectedReply, ReplyRejection

pytestmark = pytest.mark.unit

FIRE = "INC-20261129-AAK7Q2"  # reply code K7Q2
FIGHT = "INC-20261129-BBM4N8"  # reply code M4N8
DIRECTORY = StaticDirectory.from_mapping({"R001": "13800138001", "R002": "13800138002"})


@pytest.fixture
def book() -> CalledBook:
    b = CalledBook(open_for=3600)
    b.called(FIRE, "R001", at=1000.0)
    b.called(FIGHT, "R002", at=1000.0)
    return b


def test_accepts_a_reply_from_a_called_radio(book: CalledBook) -> None:
    assert book.check("13800138001", "1 K7Q2", DIRECTORY, 1010.0) == AcceptedReply(
        FIRE, "R001", AckKind.ACCEPT
    )
    assert book.check("+86 138-0013-8001", "３＃k7q2 到了", DIRECTORY, 1010.0) == AcceptedReply(
        FIRE, "R001", AckKind.ON_SCENE, "到了"
    )


@pytest.mark.parametrize(
    ("sender", "text", "reason"),
    [
        ("13900000000", "1 K7Q2", ReplyRejection.UNKNOWN_NUMBER),
        ("13800138001", "1 ZZZZ", ReplyRejection.UNKNOWN_CODE),
        ("13800138001", "1 M4N8", ReplyRejection.NOT_CALLED),  # R001 was not called for FIGHT
        ("13800138001", "9 K7Q2", ReplyRejection.UNKNOWN_ACTION),
        ("13800138001", "好的", ReplyRejection.NO_ACTION),
        ("13800138001", "1", ReplyRejection.NO_CODE),
        ("13800138001", "1 K7", ReplyRejection.BAD_CODE),
        ("13800138001", "   ", ReplyRejection.EMPTY),
    ],
)
def test_rejections(book: CalledBook, sender: str, text: str, reason: ReplyRejection) -> None:
    result = book.check(sender, text, DIRECTORY, 1010.0)
    assert isinstance(result, RejectedReply)
    assert result.reason is reason


def test_an_incident_stops_taking_replies_when_it_expires_or_closes(book: CalledBook) -> None:
    late = book.check("13800138001", "1 K7Q2", DIRECTORY, 1000.0 + 3601)
    assert isinstance(late, RejectedReply)
    assert late.reason is ReplyRejection.UNKNOWN_CODE
    book.called(FIRE, "R001", at=5000.0)
    book.close(FIRE)
    closed = book.check("13800138001", "1 K7Q2", DIRECTORY, 5001.0)
    assert isinstance(closed, RejectedReply)


def test_two_open_incidents_with_one_code_go_to_the_radios_own() -> None:
    other_fire = "INC-20261130-ZZK7Q2"
    b = CalledBook()
    b.called(FIRE, "R001", at=1.0)
    b.called(other_fire, "R002", at=2.0)
    assert b.check("13800138002", "2 K7Q2", DIRECTORY, 3.0) == AcceptedReply(
        other_fire, "R002", AckKind.DECLINE
    )
    assert b.check("13800138001", "2 K7Q2", DIRECTORY, 3.0) == AcceptedReply(
        FIRE, "R001", AckKind.DECLINE
    )


def test_directory_refuses_one_number_for_two_radios() -> None:
    with pytest.raises(ValueError, match="belongs to"):
        StaticDirectory([RadioEntry("A", "13800000000"), RadioEntry("B", "+8613800000000")])
    assert normalise_number("0086 13800000000") == "13800000000"


def test_directory_from_the_registry() -> None:
    from pathlib import Path

    from engine.registry.registry import load_registry

    data = Path(__file__).resolve().parents[2] / "data" / "tangxia"
    registry = load_registry(data)
    directory = StaticDirectory.from_registry(registry)
    radio = next(iter(registry.radios.values()))
    entry = directory.entry(radio.id)
    assert entry is not None
    assert entry.sms_number == radio.sms_number
    assert entry.poc_id == int(radio.poc_id)
    assert directory.radio_of_number(radio.sms_number) == radio.id
