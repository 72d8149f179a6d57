"""The AT engine against the simulator, both sans-IO, wired back to back with a fake clock."""

from __future__ import annotations

import pytest

from engine.models import AckKind
from engine.radio import sms
from engine.radio.at_commands import Command
from engine.radio.at_connection import AtConnection
from engine.radio.at_events import (
    AtEvent,
    CommandCompleted,
    CommandTimedOut,
    ModemRestarted,
    Urc,
)
from engine.radio.replies import Reply, parse_reply
from engine.radio.simulator import HandsetScript, ModemSimulator

pytestmark = pytest.mark.unit

PHONE = "13800138000"


def pump(conn: AtConnection, modem: ModemSimulator, now: float) -> list[AtEvent]:
    """Move bytes both ways until both sides are quiet (a null modem cable)."""
    events: list[AtEvent] = []
    modem.tick(now)
    events += conn.tick(now)
    while True:
        out = conn.data_to_send()
        if out:
            modem.feed(out, now)
        back = modem.data_to_send()
        if back:
            events += conn.feed(back, now)
        if not out and not back:
            return events


def completed(events: list[AtEvent]) -> list[CommandCompleted]:
    return [e for e in events if isinstance(e, CommandCompleted)]


def start(modem: ModemSimulator) -> tuple[AtConnection, list[AtEvent]]:
    conn = AtConnection(init=sms.init_commands())
    conn.connection_made(0.0)
    events = pump(conn, modem, 0.0)
    assert [c.ok for c in completed(events)] == [True] * len(sms.SMS_INIT_LINES)
    return conn, events


def test_init_sms_and_handset_reply_round_trip() -> None:
    modem = ModemSimulator(
        handsets={PHONE: HandsetScript(((5.0, "1"), (60.0, "3")))}, delivery_reports=True
    )
    conn, _ = start(modem)
    assert not modem.echo
    assert modem.charset == "UCS2"
    text = "[塘厦义警]P1 火情 #K7Q2 林村xx路12号 340米 回1接警 2不能 3到场"
    conn.submit(sms.send_command(PHONE, text), 1.0)
    (done,) = completed(pump(conn, modem, 1.0))
    assert sms.parse_message_reference(done.lines) == 1
    assert [(r.number, r.text) for r in modem.received] == [(PHONE, text)]
    # the handset has it: the network's status report (AT+CSMP=49 asked for one)
    (cds,) = pump(conn, modem, 1.1)
    assert isinstance(cds, Urc)
    report = sms.parse_status_report(cds)
    assert (report.reference, report.delivered, report.recipient) == (1, True, PHONE)
    assert pump(conn, modem, 5.9) == []
    replies = []
    for now in (6.0, 61.0):
        (urc,) = pump(conn, modem, now)  # +CMTI: "SM",<index>: kept on the module
        assert isinstance(urc, Urc) and urc.name == "+CMTI"
        index = int(urc.line.rsplit(",", 1)[1])
        conn.submit(sms.read_command(index), now)
        (read,) = completed(pump(conn, modem, now))
        stored = sms.parse_read(index, read.lines)
        assert stored.sender == PHONE
        replies.append(parse_reply(stored.text))
        assert index in modem.storage  # read is not deleted
        conn.submit(sms.delete_command(index), now)
        pump(conn, modem, now)
        assert index not in modem.storage
    assert replies == [Reply(AckKind.ACCEPT, "K7Q2"), Reply(AckKind.ON_SCENE, "K7Q2")]


def test_an_offline_handset_gets_no_status_report_and_sends_nothing() -> None:
    modem = ModemSimulator(handsets={PHONE: HandsetScript.accept(1.0)}, delivery_reports=True)
    conn, _ = start(modem)
    modem.set_presence(860100001, PHONE, online=False)
    assert modem.data_to_send() == b"\r\n+POC:98334415A100\r\n"
    conn.submit(sms.send_command(PHONE, "1 K7Q2"), 1.0)
    assert len(completed(pump(conn, modem, 1.0))) == 1
    assert pump(conn, modem, 10.0) == []  # no +CDS, no reply


def test_reboot_is_detected_and_init_replayed() -> None:
    modem = ModemSimulator(boot_time=1.0)
    conn, _ = start(modem)
    modem.reboot(2.0)
    assert modem.charset == "GSM"
    events = pump(conn, modem, 3.0)
    assert ModemRestarted("boot banner 'RDY'") in events
    assert sum(c.ok for c in completed(events)) == len(sms.SMS_INIT_LINES)
    assert modem.charset == "UCS2"
    assert modem.delivers_sms


def test_silent_reboot_is_found_by_the_resync_probe() -> None:
    modem = ModemSimulator(boot_time=3.0)
    conn, _ = start(modem)
    modem.reboot(1.0, banner=False)
    cmd = Command("AT+CSQ", timeout=1.0)
    conn.submit(cmd, 1.0)
    assert pump(conn, modem, 1.0) == []
    assert pump(conn, modem, 2.0) == [CommandTimedOut(cmd, ())]
    # The first probe (at 2.0) goes unanswered: the module is deaf until 4.0.
    events = pump(conn, modem, 4.0) + pump(conn, modem, 6.0)
    assert ModemRestarted("answered after silence") in events
    assert modem.charset == "UCS2"


def test_dropped_response_times_out_and_the_link_recovers() -> None:
    modem = ModemSimulator()
    conn, _ = start(modem)
    modem.drop_responses(1)
    lost, after = Command("AT+CSQ", timeout=2.0), Command("AT+CPIN?")
    conn.submit(lost, 1.0)
    conn.submit(after, 1.0)
    assert pump(conn, modem, 1.0) == []
    # The information line came; the final result never did.
    assert pump(conn, modem, 3.0) == [CommandTimedOut(lost, ("+CSQ: 23,0",))]
    (done,) = completed(pump(conn, modem, 4.0))
    assert done.command is after
    assert done.lines == ("+CPIN: READY",)


def test_replies_wait_in_the_module_until_cnmi_is_set() -> None:
    modem = ModemSimulator()
    modem.inject_sms(PHONE, "2 K7Q2")
    assert modem.data_to_send() == b""
    conn, events = start(modem)
    urcs = [e for e in events if isinstance(e, Urc)]
    assert [u.line for u in urcs] == ['+CMTI: "SM",1']
    conn.submit(sms.list_command(), 1.0)
    (listed,) = completed(pump(conn, modem, 1.0))
    [stored] = sms.parse_list(listed.lines)
    assert (stored.index, stored.sender, stored.text) == (1, PHONE, "2 K7Q2")


def test_unknown_commands_and_sms_before_text_mode_are_refused() -> None:
    modem = ModemSimulator(echo=False)
    conn = AtConnection()
    conn.connection_made(0.0)
    conn.submit(Command("AT+BOGUS"), 0.0)
    conn.submit(sms.send_command(PHONE, "x"), 0.0)
    first, second = completed(pump(conn, modem, 0.0))
    assert str(first.result) == "ERROR"
    assert second.result.code == 302
    assert modem.received == []


def test_noise_and_echo_from_the_module_do_not_disturb_results() -> None:
    modem = ModemSimulator(echo=True)
    conn = AtConnection()
    conn.connection_made(0.0)
    modem.inject_noise(b"\xff\x00garbage\x13")
    conn.submit(Command("ATI"), 0.0)
    events = pump(conn, modem, 0.0)
    (done,) = completed(events)
    assert done.lines[-2:] == ("SIM800 simulator", "Revision:engine.radio.simulator")


def test_silent_groups_are_their_members_phones_and_radios() -> None:
    from engine.config import DEFAULT_REGISTRY
    from engine.radio.handset_sim import numbers_of_groups, script_for
    from engine.registry.registry import load_registry

    registry = load_registry(DEFAULT_REGISTRY)
    silent = numbers_of_groups(DEFAULT_REGISTRY, ["KZ118"])
    members = [v for v in registry.volunteers.values() if "KZ118" in (v.group_id, v.unit_id)]
    assert members and {v.phone for v in members} <= silent
    radios = {r.sms_number for r in registry.radios.values() if r.holder in {v.id for v in members}}
    assert radios and radios <= silent
    assert script_for("silent", 0, 1.0, 5.0).replies == ()
    with pytest.raises(ValueError, match="not in the registry: NOPE"):
        numbers_of_groups(DEFAULT_REGISTRY, ["NOPE"])
