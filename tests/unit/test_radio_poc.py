"""The AT+POC= hex-opcode dialect: commands out, +POC: reports in."""

from __future__ import annotations

import pytest

from engine.radio.at_connection import AtConnection
from engine.radio.at_events import CommandCompleted, Urc
from engine.radio.poc import (
    DIALECTS,
    HexOpcodeDialect,
    LoggedIn,
    NetworkDown,
    NetworkUp,
    PocDialect,
    TalkDenied,
    TalkGranted,
    UnknownPocReport,
)

pytestmark = pytest.mark.unit


def test_commands_match_the_opcode_table() -> None:
    d: PocDialect = HexOpcodeDialect()
    assert d.open().line == "AT+POC=005200"
    assert d.login().line == "AT+POC=030000"
    assert d.join_group(0x1234).line == "AT+POC=09220000001234"
    assert d.single_call(7).line == "AT+POC=0A000000000007"
    assert d.ptt_press().line == "AT+POC=0B0000"
    assert d.ptt_release().line == "AT+POC=0C0000"
    with pytest.raises(ValueError, match="32-bit"):
        d.join_group(-1)
    assert DIALECTS["poc-hex"] is HexOpcodeDialect


@pytest.mark.parametrize(
    ("line", "event"),
    [
        ("+POC:0b000000", TalkGranted()),
        ("+POC: 0B000000", TalkGranted()),
        ("+POC:0b000001", TalkDenied("0b000001")),
        ("+POC:8202", LoggedIn()),
        ("+POC:970001", NetworkUp()),
        ("+POC:970000", NetworkDown()),
        ("+POC:ab12", UnknownPocReport("ab12")),
        ("+CMTI: 1", None),
    ],
)
def test_reports_parse_to_typed_events(line: str, event: object) -> None:
    assert HexOpcodeDialect().parse_report(line) == event


def test_poc_report_during_a_poc_command_stays_a_urc() -> None:
    d = HexOpcodeDialect()
    conn = AtConnection()
    conn.connection_made(0.0)
    press = d.ptt_press()
    conn.submit(press, 0.0)
    events = conn.feed(b"\r\n+POC:0b000000\r\n\r\nOK\r\n", 0.0)
    assert isinstance(events[0], Urc)
    assert d.parse_report(events[0].line) == TalkGranted()
    assert isinstance(events[1], CommandCompleted)
    assert events[1].lines == ()
