"""ModemLink (asyncio + serial_asyncio_fast) against the simulator on a real pty and TCP."""

from __future__ import annotations

import asyncio
import os
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from engine.models import AckKind
from engine.radio import sms
from engine.radio.at_commands import Command
from engine.radio.at_events import ModemRestarted, Urc
from engine.radio.errors import CommandAborted, CommandTimeout
from engine.radio.replies import Reply, parse_reply
from engine.radio.simulator import HandsetScript, ModemSimulator, PtyModem, TcpModem
from engine.radio.testing import next_event
from engine.radio.transport import ModemLink

pytestmark = pytest.mark.integration

PHONE = "13800138000"
TEXT = "[塘厦义警]P1 火情 #K7Q2 林村xx路12号 340米 回1接警 2不能 3到场"
WITHIN = 10.0  # generous bound for a loaded CI box; never a timing assertion


@pytest.fixture(autouse=True)
async def _nothing_left_behind() -> AsyncIterator[None]:
    """Every pty, socket and task a test opens is closed by the end of it."""
    fds = set(os.listdir("/proc/self/fd"))
    yield
    await asyncio.sleep(0)  # let transports finish their close callbacks
    assert asyncio.all_tasks() == {asyncio.current_task()}
    assert set(os.listdir("/proc/self/fd")) <= fds


@pytest.fixture
def modem() -> ModemSimulator:
    return ModemSimulator(handsets={PHONE: HandsetScript.accept(0.05)}, boot_time=0.1)


@pytest.fixture
async def pty_modem(modem: ModemSimulator, tmp_path: Path) -> AsyncIterator[PtyModem]:
    async with PtyModem(modem, link=tmp_path / "ttyUSB0") as host:
        yield host


@pytest.fixture
async def tcp_modem(modem: ModemSimulator) -> AsyncIterator[TcpModem]:
    async with TcpModem(modem, split_writes=3) as host:
        yield host


async def reply_from(link: ModemLink) -> Reply:
    """The next reply: kept on the module (``+CMTI``), read and deleted as the gateway
    does; or straight off the line (``+CMT``) from a module left in that mode."""
    urc = await next_event(link, Urc, lambda u: u.name in ("+CMT", "+CMTI"))
    if urc.name == "+CMTI":
        index = int(urc.line.rsplit(",", 1)[1])
        done = await link.execute(sms.read_command(index))
        text = sms.parse_read(index, done.lines).text
        await link.execute(sms.delete_command(index))
    else:
        text = sms.parse_incoming(urc).text
    reply = parse_reply(text)
    assert isinstance(reply, Reply)
    return reply


async def test_sms_call_out_and_reply_over_a_pty(pty_modem: PtyModem) -> None:
    async with asyncio.timeout(WITHIN), ModemLink(pty_modem.path) as link:
        assert await link.send_sms(PHONE, TEXT) == [1]
        assert await reply_from(link) == Reply(AckKind.ACCEPT, "K7Q2")
    assert [(r.number, r.text) for r in pty_modem.modem.received] == [(PHONE, TEXT)]


async def test_split_writes_and_noise_over_tcp(tcp_modem: TcpModem) -> None:
    long_text = "请注意:" + "林村社区" * 40 + " #K7Q2"
    async with asyncio.timeout(WITHIN), ModemLink(tcp_modem.url) as link:
        await link.wait_connected()
        tcp_modem.inject_noise(b"\x00\xff\xfe\x80")
        refs = await link.send_sms(PHONE, long_text)
        assert refs == [1, 2, 3]
        assert await reply_from(link) == Reply(AckKind.ACCEPT, "K7Q2")
    texts = [r.text for r in tcp_modem.modem.received]
    assert [t[:5] for t in texts] == ["(1/3)", "(2/3)", "(3/3)"]
    assert "".join(t[5:] for t in texts) == long_text


async def test_echo_left_on(modem: ModemSimulator) -> None:
    init = [c for c in sms.init_commands() if c.line != "ATE0"]
    async with asyncio.timeout(WITHIN), TcpModem(modem) as host:
        async with ModemLink(host.url, init=init) as link:
            done = await link.execute(Command("ATI"))
            assert "SIM800 simulator" in done.lines
            assert await link.send_sms(PHONE, TEXT) == [1]
        assert modem.echo


async def test_dropped_response_times_out_then_link_recovers(tcp_modem: TcpModem) -> None:
    async with asyncio.timeout(WITHIN), ModemLink(tcp_modem.url) as link:
        await link.execute(Command("AT"))
        tcp_modem.modem.drop_responses(1)
        with pytest.raises(CommandTimeout):
            await link.execute(Command("AT+CSQ", timeout=0.3))
        done = await link.execute(Command("AT+CPIN?"))
        assert done.lines == ("+CPIN: READY",)


async def test_modem_reboot_replays_init(tcp_modem: TcpModem) -> None:
    modem = tcp_modem.modem
    async with asyncio.timeout(WITHIN), ModemLink(tcp_modem.url) as link:
        await link.execute(Command("AT"))
        assert modem.charset == "UCS2"
        tcp_modem.reboot()
        assert modem.charset == "GSM"
        restarted = await next_event(link, ModemRestarted)
        assert "RDY" in restarted.reason
        # Init goes out ahead of this command, so SMS settings are back before it runs.
        await link.execute(Command("AT"))
        assert modem.charset == "UCS2"
        assert modem.delivers_sms
        assert await link.send_sms(PHONE, TEXT) == [1]
        assert await reply_from(link) == Reply(AckKind.ACCEPT, "K7Q2")


async def test_tcp_connection_drop_reconnects(tcp_modem: TcpModem) -> None:
    async with asyncio.timeout(WITHIN), ModemLink(tcp_modem.url) as link:
        await link.execute(Command("AT"))
        await tcp_modem.unplug()
        await link.wait_disconnected()
        sending = asyncio.create_task(link.execute(Command("AT+CSQ")))
        await tcp_modem.replug()
        done = await sending
        assert done.lines == ("+CSQ: 23,0",)
        assert link.connects == 2


async def test_unplug_mid_fan_out_delivers_each_sms_once(pty_modem: PtyModem) -> None:
    """Eleven SMS (1+10); the port vanishes as the 4th AT+CMGS arrives, before any prompt."""
    numbers = [f"1380013{i:04d}" for i in range(11)]
    cmgs_seen = 0

    def pull_plug(line: str) -> None:
        nonlocal cmgs_seen
        if line.startswith("AT+CMGS"):
            cmgs_seen += 1
            if cmgs_seen == 4:
                pty_modem.unplug()

    pty_modem.on_command = pull_plug

    async def send(link: ModemLink, number: str) -> list[int]:
        while True:
            try:
                return await link.send_sms(number, TEXT)
            except CommandAborted:
                continue  # the gateway's retry: this one never reached the handset

    async with asyncio.timeout(WITHIN), ModemLink(pty_modem.path) as link:
        fan_out = asyncio.gather(*(send(link, n) for n in numbers))
        await pty_modem.wait_for(lambda: not pty_modem.plugged, within=WITHIN)
        assert len(pty_modem.modem.received) == 3
        pty_modem.replug()
        refs = await fan_out
    assert all(len(r) == 1 for r in refs)
    assert link.connects == 2
    assert Counter(r.number for r in pty_modem.modem.received) == Counter(numbers)


async def test_the_port_is_opened_exclusively(pty_modem: PtyModem) -> None:
    """A second link on the same device waits (logging why) until the first lets go."""
    async with ModemLink(pty_modem.path, backoff_max=0.1) as first:
        await asyncio.wait_for(first.wait_connected(), WITHIN)
        async with ModemLink(pty_modem.path, backoff_max=0.1) as second:
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(second.wait_connected(), 1.0)
            assert second.connects == 0
            await first.close()
            await asyncio.wait_for(second.wait_connected(), WITHIN)
            assert (await second.execute(Command("AT"))).ok


async def test_a_modem_left_at_the_text_prompt_is_freed_on_connect(
    modem: ModemSimulator, pty_modem: PtyModem
) -> None:
    """The last owner died at the ``> `` prompt: our init must not become message text."""
    modem.feed(b'AT+CMGF=1\rAT+CMGS="13800138000"\r', 0.0)
    modem.data_to_send()
    async with ModemLink(pty_modem.path) as link:
        await asyncio.wait_for(link.wait_connected(), WITHIN)
        assert (await asyncio.wait_for(link.execute(Command("ATI")), WITHIN)).ok
    assert modem.received == []  # nothing was sent as an SMS
