"""PTT drivers against the real things: Hamlib's rigctld (dummy rig), pyserial's loop://
for RTS/DTR, the PoC opcodes over a pty, espeak-ng for the voice; and the watchdog."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from engine.radio.poc import HexOpcodeDialect
from engine.radio.ptt import PocPtt, PttError, RigctldPtt, SerialLinePtt, TxTimeout, hold, keyed
from engine.radio.simulator import ModemSimulator, PtyModem
from engine.radio.transport import ModemLink
from engine.radio.voice import Voice, synthesize, wav_duration

pytestmark = pytest.mark.integration

WITHIN = 20.0
RIGCTLD = shutil.which("rigctld")
NEEDS = "needs Debian packages libhamlib-utils and espeak-ng (see the Makefile test setup)"


@pytest.fixture(autouse=True)
async def _nothing_left_behind() -> AsyncIterator[None]:
    fds = set(os.listdir("/proc/self/fd"))
    yield
    await asyncio.sleep(0)
    assert asyncio.all_tasks() == {asyncio.current_task()}
    assert set(os.listdir("/proc/self/fd")) <= fds


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture
async def rigctld() -> AsyncIterator[tuple[str, int]]:
    """The real rigctld with Hamlib's dummy rig (model 1), PTT by CAT command."""
    assert RIGCTLD is not None, NEEDS  # fail, never skip: CI must have it installed
    port = free_port()
    proc = await asyncio.create_subprocess_exec(
        RIGCTLD, "-m", "1", "-P", "RIG", "-T", "127.0.0.1", "-t", str(port),
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    try:
        async with asyncio.timeout(WITHIN):
            while True:  # until it listens
                try:
                    _, writer = await asyncio.open_connection("127.0.0.1", port)
                except OSError:
                    await asyncio.sleep(0.05)
                    continue
                writer.close()
                await writer.wait_closed()
                break
        yield "127.0.0.1", port
    finally:
        proc.terminate()
        await proc.wait()


async def eventually(check: Callable[[], Awaitable[bool]]) -> None:
    """Until ``check()`` is true: waiting on state another task changes, bounded."""
    async with asyncio.timeout(WITHIN):
        while True:
            if await check():
                return
            await asyncio.sleep(0.01)


class Recording:
    """A PTT that only remembers what it was told; ``keyed_event`` fires on key."""

    def __init__(self) -> None:
        self.name = "recording"
        self.calls: list[str] = []
        self.keyed_event = asyncio.Event()

    async def key(self) -> None:
        self.calls.append("key")
        self.keyed_event.set()

    async def unkey(self) -> None:
        await asyncio.sleep(0)  # a real release takes a round trip
        self.calls.append("unkey")


async def test_rigctld_keys_and_releases(rigctld: tuple[str, int]) -> None:
    async with asyncio.timeout(WITHIN), RigctldPtt(*rigctld) as rig:
        assert not await rig.transmitting()
        async with keyed(rig, tx_timeout=10):
            assert await rig.transmitting()
        assert not await rig.transmitting()


async def test_rigctld_watchdog_releases_a_cancelled_transmission(
    rigctld: tuple[str, int],
) -> None:
    async with asyncio.timeout(WITHIN), RigctldPtt(*rigctld) as rig:
        probe = RigctldPtt(*rigctld)  # a second client, as a technician's rigctl would be
        try:
            task = asyncio.create_task(hold(rig, 3600))
            await eventually(probe.transmitting)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            assert not await probe.transmitting()
        finally:
            await probe.close()


async def test_rigctld_tx_timeout_releases(rigctld: tuple[str, int]) -> None:
    async with asyncio.timeout(WITHIN), RigctldPtt(*rigctld) as rig:
        with pytest.raises(TxTimeout):
            await hold(rig, 3600, tx_timeout=0.2)
        assert not await rig.transmitting()


async def test_no_rigctld_is_a_ptt_error() -> None:
    with pytest.raises(PttError, match="no rigctld"):
        await RigctldPtt("127.0.0.1", free_port(), timeout=1).key()


@pytest.mark.parametrize("line", ["rts", "dtr"])
@pytest.mark.parametrize("invert", [False, True])
async def test_serial_line_ptt_over_loop(line: str, invert: bool) -> None:
    ptt = SerialLinePtt("loop://", line, invert=invert)  # type: ignore[arg-type]
    try:
        port = ptt.port
        # loop:// wires RTS back to CTS and DTR to DSR: the far end sees the line.
        seen = (lambda: port.cts) if line == "rts" else (lambda: port.dsr)
        assert seen() is invert  # released from the moment the port opened
        async with keyed(ptt, tx_timeout=5):
            assert seen() is not invert
            assert ptt.transmitting
        assert seen() is invert
        assert not ptt.transmitting
        other = "dtr" if line == "rts" else "rts"
        assert getattr(port, other) is invert  # the other line stays released
    finally:
        ptt.close()


async def test_serial_line_released_on_cancel() -> None:
    ptt = SerialLinePtt("loop://", "rts")
    try:
        task = asyncio.create_task(hold(ptt, 3600))

        async def transmitting() -> bool:
            return ptt.transmitting

        await eventually(transmitting)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert not ptt.port.cts
    finally:
        ptt.close()


async def test_cancel_during_release_still_releases() -> None:
    ptt = Recording()

    async def body() -> None:
        async with keyed(ptt, tx_timeout=5):
            pass

    task = asyncio.create_task(body())
    await ptt.keyed_event.wait()
    await asyncio.sleep(0)  # now inside the release's round trip
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    assert ptt.calls == ["key", "unkey"]


async def test_poc_opcodes_over_a_pty() -> None:
    modem = ModemSimulator()
    async with (
        asyncio.timeout(WITHIN),
        PtyModem(modem) as host,
        ModemLink(host.path) as link,
    ):
        ptt = PocPtt(link, HexOpcodeDialect())
        async with keyed(ptt, tx_timeout=5):
            assert modem.commands[-1] == "AT+POC=0B0000"
        assert modem.commands[-1] == "AT+POC=0C0000"


async def test_espeak_mandarin_voice_held_for_the_audio(tmp_path: Path) -> None:
    assert shutil.which("espeak-ng") is not None, NEEDS
    wav = tmp_path / "x.wav"
    duration = await synthesize("塘厦义警 火情 林村新围路十二号", wav)
    assert duration > 0.5
    assert wav_duration(wav) == duration
    ptt = Recording()
    held = await Voice(tail=0.05).say(ptt, "火情 回一接警")
    assert held > 0.05
    assert ptt.calls == ["key", "unkey"]
