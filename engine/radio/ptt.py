"""Push-to-talk keying for voice call-outs, and the TX-timeout watchdog.

Drivers: a serial control line (RTS or DTR, either inverted), Hamlib's ``rigctld``
network protocol (``T 1`` / ``T 0``, answered ``RPRT 0``), and the PoC dialect's PTT
opcodes over the modem link. Whatever happens to the task holding the key (its body
overruns, raises, or is cancelled), :func:`keyed` releases PTT before it returns: a
stuck transmitter blocks the whole channel for everyone.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Literal, Protocol

import serial

from engine.radio.errors import RadioError
from engine.radio.poc import PocDialect
from engine.radio.transport import ModemLink

log = logging.getLogger(__name__)

DEFAULT_TX_TIMEOUT = 60.0
Line = Literal["rts", "dtr"]


class PttError(RadioError):
    """PTT could not be keyed or released."""


class TxTimeout(PttError):
    """The transmission ran past its TX timeout; PTT was released by the watchdog."""


class Ptt(Protocol):
    name: str

    async def key(self) -> None: ...
    async def unkey(self) -> None: ...


@contextlib.asynccontextmanager
async def keyed(ptt: Ptt, tx_timeout: float = DEFAULT_TX_TIMEOUT) -> AsyncIterator[None]:
    """Hold PTT for the body, at most ``tx_timeout`` seconds; always release it.

    Overrunning raises :class:`TxTimeout` (after releasing). A cancellation that lands
    while releasing waits for the release to finish before it propagates.
    """
    if tx_timeout <= 0:
        raise ValueError("tx_timeout must be positive")
    try:
        await ptt.key()
    except BaseException:
        await _release(ptt)  # "T 1" may have reached the rig before the failure
        raise
    try:
        try:
            async with asyncio.timeout(tx_timeout):
                yield
        except TimeoutError:
            log.error("PTT %s: TX timeout after %.1fs; releasing", ptt.name, tx_timeout)
            raise TxTimeout(f"{ptt.name}: transmission exceeded {tx_timeout:.1f}s") from None
    finally:
        await _release(ptt)


async def _release(ptt: Ptt) -> None:
    release = asyncio.ensure_future(ptt.unkey())
    try:
        await asyncio.shield(release)
    except asyncio.CancelledError:
        with contextlib.suppress(Exception):
            await release  # let the release finish, then let the cancellation through
        raise


async def hold(ptt: Ptt, seconds: float, *, tx_timeout: float = DEFAULT_TX_TIMEOUT) -> None:
    """Key for ``seconds`` (a technician's test carrier)."""
    async with keyed(ptt, tx_timeout):
        await asyncio.sleep(seconds)


class SerialLinePtt:
    """PTT on a serial control line, e.g. a USB-serial adapter wired to the radio's PTT.

    ``invert`` for interfaces that transmit when the line is low. The line is put in its
    released level *before* the port opens: pyserial would otherwise raise RTS and DTR on
    open and key a non-inverted transmitter.
    """

    def __init__(self, url: str, line: Line = "rts", *, invert: bool = False) -> None:
        if line not in ("rts", "dtr"):
            raise ValueError(f"PTT line must be rts or dtr, not {line!r}")
        self.name = f"{line}{' inverted' if invert else ''} on {url}"
        self.line: Line = line
        self.invert = invert
        try:
            port = serial.serial_for_url(url, do_not_open=True)
            port.rts = self._level(False)
            port.dtr = self._level(False)
            port.open()
        except (serial.SerialException, OSError, ValueError) as exc:
            raise PttError(f"cannot open PTT port {url}: {exc}") from exc
        self.port = port

    def _level(self, transmit: bool) -> bool:
        return transmit != self.invert

    def _set(self, transmit: bool) -> None:
        try:
            setattr(self.port, self.line, self._level(transmit))
        except (serial.SerialException, OSError) as exc:
            raise PttError(f"PTT {self.name}: {exc}") from exc

    @property
    def transmitting(self) -> bool:
        level: bool = getattr(self.port, self.line)
        return level != self.invert

    async def key(self) -> None:
        self._set(True)

    async def unkey(self) -> None:
        self._set(False)

    def close(self) -> None:
        with contextlib.suppress(serial.SerialException, OSError, PttError):
            self._set(False)
        self.port.close()


class RigctldPtt:
    """Hamlib ``rigctld`` over TCP (default port 4532): ``T 1`` / ``T 0``, ``t`` to read."""

    def __init__(self, host: str = "127.0.0.1", port: int = 4532, *, timeout: float = 3.0):
        self.name = f"rigctld {host}:{port}"
        self._addr = (host, port)
        self._timeout = timeout
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._lock = asyncio.Lock()

    async def __aenter__(self) -> RigctldPtt:
        await self.connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def connect(self) -> None:
        try:
            async with asyncio.timeout(self._timeout):
                self._reader, self._writer = await asyncio.open_connection(*self._addr)
        except (OSError, TimeoutError) as exc:
            raise PttError(f"no rigctld at {self._addr[0]}:{self._addr[1]}: {exc}") from exc

    async def close(self) -> None:
        writer, self._writer, self._reader = self._writer, None, None
        if writer is not None:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    async def _ask(self, line: str) -> str:
        async with self._lock:
            if self._writer is None or self._reader is None:
                await self.connect()
            assert self._writer is not None
            assert self._reader is not None
            try:
                async with asyncio.timeout(self._timeout):
                    self._writer.write(line.encode("ascii") + b"\n")
                    await self._writer.drain()
                    answer = await self._reader.readline()
            except (OSError, TimeoutError) as exc:
                await self.close()  # a half-read answer would poison the next one
                raise PttError(f"{self.name}: {line!r} failed: {exc!r}") from exc
            if not answer:
                await self.close()
                raise PttError(f"{self.name}: connection closed on {line!r}")
            return answer.decode("ascii", "replace").strip()

    async def _set(self, on: bool) -> None:
        answer = await self._ask(f"T {int(on)}")
        if answer != "RPRT 0":
            raise PttError(f"{self.name}: T {int(on)} answered {answer!r}")

    async def key(self) -> None:
        await self._set(True)

    async def unkey(self) -> None:
        await self._set(False)

    async def transmitting(self) -> bool:
        answer = await self._ask("t")
        if answer not in ("0", "1"):
            raise PttError(f"{self.name}: t answered {answer!r}")
        return answer == "1"


class PocPtt:
    """The PoC handset's own PTT opcodes (``AT+POC=0B0000`` / ``0C0000``)."""

    def __init__(self, link: ModemLink, dialect: PocDialect) -> None:
        self.name = f"poc {dialect.name} on {link.url}"
        self._link = link
        self._dialect = dialect

    async def key(self) -> None:
        await self._link.execute(self._dialect.ptt_press())

    async def unkey(self) -> None:
        await self._link.execute(self._dialect.ptt_release())
