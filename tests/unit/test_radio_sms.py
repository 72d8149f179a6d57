"""UCS2 hex, AT+CMGS building, +CMGS/+CMT parsing, splitting, call-out text, replies."""

from __future__ import annotations

import unicodedata
from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.models import AckKind, IncidentType, Priority
from engine.radio import ucs2
from engine.radio.at_events import Urc
from engine.radio.callout_text import REPLY_HINT, format_callout
from engine.radio.errors import MessageFormatError
from engine.radio.replies import CODE_ALPHABET, Rejected, RejectReason, Reply, parse_reply
from engine.radio.sms import (
    SINGLE_SMS_UNITS,
    parse_incoming,
    parse_message_reference,
    send_command,
    split_text,
)

pytestmark = pytest.mark.unit


def test_ucs2_known_values_and_surrogate_pairs() -> None:
    assert ucs2.encode("塘厦") == "585853A6"
    assert ucs2.encode("😀") == "D83DDE00"
    assert ucs2.units("😀a") == 3
    assert ucs2.decode("D83DDE00") == "😀"


@pytest.mark.parametrize("bad", ["ABC", "ZZZZ", "D83D"])
def test_ucs2_rejects_malformed_hex(bad: str) -> None:
    with pytest.raises(MessageFormatError):
        ucs2.decode(bad)


@given(st.text())
def test_ucs2_round_trip(text: str) -> None:
    hex_text = ucs2.encode(text)
    assert ucs2.decode(hex_text) == text
    assert len(hex_text) == 4 * ucs2.units(text)


def test_send_command_puts_number_and_text_in_ucs2() -> None:
    cmd = send_command("13800138000", "塘厦")
    assert cmd.line == 'AT+CMGS="00310033003800300030003100330038003000300030"'
    assert cmd.payload == b"585853A6\x1a"
    assert cmd.info_prefix == "+CMGS:"
    with pytest.raises(ValueError, match="split_text"):
        send_command("10086", "字" * 71)
    with pytest.raises(ValueError, match="phone number"):
        send_command("not-a-number", "x")


def test_message_reference_is_parsed_or_refused() -> None:
    assert parse_message_reference(("+CMGS: 42",)) == 42
    with pytest.raises(MessageFormatError):
        parse_message_reference(("+CMGS: x",))


def test_incoming_ucs2_sms_is_decoded() -> None:
    urc = Urc(
        "+CMT",
        '+CMT: "002B0038003600310033003800300030003100330038003000300030",,"25/11/29,20:41:05+32"',
        ucs2.encode("１　ｋ７ｑ２"),
    )
    sms = parse_incoming(urc)
    assert sms.sender == "+8613800138000"
    assert sms.text == "１　ｋ７ｑ２"
    assert sms.sent_at is not None
    assert sms.sent_at.utcoffset() == timedelta(hours=8)
    assert (sms.sent_at.year, sms.sent_at.hour) == (2025, 20)


def test_incoming_plain_text_sms_and_bad_headers() -> None:
    sms = parse_incoming(Urc("+CMT", '+CMT: "+8610086","Alice","bad time"', "3 K7Q2"))
    assert (sms.sender, sms.text, sms.sent_at) == ("+8610086", "3 K7Q2", None)
    with pytest.raises(MessageFormatError):
        parse_incoming(Urc("+CMT", '+CMT: "",,"25/11/29,20:41:05+32"', "x"))
    with pytest.raises(MessageFormatError):
        parse_incoming(Urc("+CMTI", '+CMTI: "SM",1'))


@given(st.text(min_size=1, max_size=400), st.integers(20, 80))
def test_split_parts_fit_and_rejoin(text: str, limit: int) -> None:
    parts = split_text(text, limit)
    assert all(ucs2.units(p) <= limit for p in parts)
    if ucs2.units(text) <= limit:
        assert parts == [text]
        return
    n = len(parts)
    bodies = []
    for i, part in enumerate(parts, 1):
        prefix = f"({i}/{n})"
        assert part.startswith(prefix)
        bodies.append(part[len(prefix) :])
    assert "".join(bodies) == text


def test_split_keeps_words_whole_where_it_can() -> None:
    text = " ".join(["word"] * 30)
    parts = split_text(text, 40)
    assert all(p.endswith("word ") or p.endswith("word") for p in parts)


def test_callout_example_fits_one_message() -> None:
    (text,) = format_callout(
        priority=Priority.P1,
        incident_type=IncidentType.FIRE,
        code="K7Q2",
        address="林村xx路12号",
        distance_m=340,
    )
    assert text == "[塘厦义警]P1 火情 #K7Q2 林村xx路12号 340米 回1接警 2不能 3到场"


def test_long_address_is_shortened_not_split() -> None:
    (text,) = format_callout(
        priority=Priority.P2,
        incident_type=IncidentType.MEDICAL,
        code="AB23",
        address="塘厦镇林村社区" * 8,
        distance_m=1250,
    )
    assert ucs2.units(text) == SINGLE_SMS_UNITS
    assert "…" in text
    assert "#AB23" in text
    assert text.endswith(REPLY_HINT)
    assert "1.2公里" in text


def test_text_that_cannot_fit_is_split_into_numbered_parts() -> None:
    parts = format_callout(
        priority=Priority.P1,
        incident_type=IncidentType.FIGHT,
        code="K7Q2",
        address="林村xx路12号",
        distance_m=80,
        extra="最近盾牌钢叉: 塘厦派出所门岗旁边的器材柜, 距离约120米, 请带上盾牌和钢叉前往现场",
    )
    assert len(parts) == 2
    assert parts[0].startswith("(1/2)")
    assert all(ucs2.units(p) <= SINGLE_SMS_UNITS for p in parts)
    assert "#K7Q2" in parts[0]


@given(address=st.text(max_size=120), extra=st.none() | st.text(max_size=80))
def test_callout_parts_always_fit(address: str, extra: str | None) -> None:
    parts = format_callout(
        priority=Priority.P3,
        incident_type=IncidentType.SUSPICIOUS,
        code="K7Q2",
        address=address,
        distance_m=12,
        extra=extra,
    )
    assert all(ucs2.units(p) <= SINGLE_SMS_UNITS for p in parts)
    assert "#K7Q2" in "".join(parts)


# -- replies -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1 K7Q2", Reply(AckKind.ACCEPT, "K7Q2")),
        ("2 K7Q2", Reply(AckKind.DECLINE, "K7Q2")),
        ("3 K7Q2", Reply(AckKind.ON_SCENE, "K7Q2")),
        ("１　Ｋ７Ｑ２", Reply(AckKind.ACCEPT, "K7Q2")),
        ("3k7q2", Reply(AckKind.ON_SCENE, "K7Q2")),
        (" 1 #K7Q2 马上到", Reply(AckKind.ACCEPT, "K7Q2", "马上到")),
        ("K7Q2 2", Reply(AckKind.DECLINE, "K7Q2")),
        ("", Rejected(RejectReason.EMPTY, "")),
        ("好的", Rejected(RejectReason.NO_ACTION, "好的")),
        ("5 K7Q2", Rejected(RejectReason.UNKNOWN_ACTION, "5 K7Q2")),
        ("1", Rejected(RejectReason.NO_CODE, "1")),
        ("1 K7Q", Rejected(RejectReason.BAD_CODE, "1 K7Q")),
        ("1 K7Q2X", Rejected(RejectReason.BAD_CODE, "1 K7Q2X")),
        ("1 K0Q2", Rejected(RejectReason.BAD_CODE, "1 K0Q2")),  # 0 is not in the alphabet
    ],
)
def test_reply_parser(text: str, expected: Reply | Rejected) -> None:
    assert parse_reply(text) == expected


@given(
    action=st.sampled_from("123"),
    code=st.text(alphabet=sorted(CODE_ALPHABET), min_size=4, max_size=4),
    gap=st.sampled_from([" ", "", "  ", "\u3000", " #"]),
    wide=st.booleans(),
    lower=st.booleans(),
)
def test_reply_parser_tolerates_keypad_variants(
    action: str, code: str, gap: str, wide: bool, lower: bool
) -> None:
    text = f"{action}{gap}{code.lower() if lower else code}"
    if wide:  # full-width forms, as a Chinese IME types them
        text = "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in text)
    assert unicodedata.normalize("NFKC", text) != "" or not text
    result = parse_reply(text)
    assert isinstance(result, Reply)
    assert result.code == code
    assert result.kind == {"1": AckKind.ACCEPT, "2": AckKind.DECLINE, "3": AckKind.ON_SCENE}[action]


@given(st.text())
def test_reply_parser_never_raises(text: str) -> None:
    assert isinstance(parse_reply(text), Reply | Rejected)
