"""A cellular/PoC module with handsets behind it, speaking the real AT bytes.

:class:`ModemSimulator` is sans-IO like the engine it tests: ``feed(data, now)``,
``tick(now)``, ``data_to_send()``. :class:`PtyModem` serves it on a pseudo-terminal (a
stable symlink stands in for ``/dev/ttyUSB0`` across unplug/replug) and
:class:`TcpModem` on a TCP port for pyserial ``socket://`` URLs. Faults are injected
through the host: noise, split writes, delayed or dropped responses, reboots, unplugging.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import heapq
import itertools
import os
import random
import re
import tty
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Self

from engine.radio import poc, ucs2

BOOT_BANNER = b"\r\nRDY\r\n\r\n+CFUN: 1\r\n\r\n+CPIN: READY\r\n\r\nCall Ready\r\n\r\nSMS Ready\r\n"
SCTS = "25/11/29,20:41:05+32"  # fixed service-centre time stamp: tests stay deterministic


@dataclass(frozen=True)
class ReceivedSms:
    number: str
    text: str
    reference: int
    at: float = 0.0  # the simulator's clock when the text was written (Ctrl-Z)


@dataclass(frozen=True)
class HandsetScript:
    """How a handset answers a call-out: (delay in seconds, reply digit) pairs.

    ``HandsetScript(((2.0, "1"), (60.0, "3")))`` accepts after 2 s and reports on
    scene a minute later; an empty script stays silent.
    """

    replies: tuple[tuple[float, str], ...] = ()

    @classmethod
    def accept(cls, delay: float = 0.0) -> HandsetScript:
        return cls(((delay, "1"),))

    @classmethod
    def decline(cls, delay: float = 0.0) -> HandsetScript:
        return cls(((delay, "2"),))

    @classmethod
    def on_scene(cls, delay: float = 0.0) -> HandsetScript:
        return cls(((delay, "3"),))


@dataclass
class _Settings:
    """What a module forgets when it restarts."""

    echo: bool = True
    text_mode: bool = False
    charset: str = "GSM"
    cnmi_direct: bool = False
    cnmi_store: bool = False  # AT+CNMI=x,1: new SMS stored, announced by +CMTI
    status_reports: bool = False  # AT+CNMI=...,ds=1: +CDS routed to the TE
    srr: bool = False  # AT+CSMP=<fo> with TP-SRR (0x20): a status report per SMS


@dataclass(order=True)
class _Due:
    at: float
    seq: int
    action: Callable[[float], None] = field(compare=False)
    handset: bool = field(default=False, compare=False)  # outside the module: survives reboots


_CODE = re.compile(r"#([0-9A-Z]{4})")


class ModemSimulator:
    def __init__(
        self,
        *,
        echo: bool = True,
        handsets: Mapping[str, HandsetScript] | None = None,
        response_delay: float = 0.0,
        boot_time: float = 0.2,
        delivery_reports: bool = False,
        sms_delay: tuple[float, float] = (0.0, 0.0),
        seed: int | None = None,
    ) -> None:
        """``delivery_reports``: the network answers a status-report request (TP-SRR)
        with ``+CDS`` once the handset has the text (off: a network that never does).

        ``sms_delay`` (min, max seconds): the network's time to take each text, drawn
        uniformly per message. A real module answers ``AT+CMGS`` with ``+CMGS: <mr>``
        only once the SMS centre accepted the message (one to a few seconds); until then
        the command is in flight and the serial line carries nothing else."""
        if not 0.0 <= sms_delay[0] <= sms_delay[1]:
            raise ValueError(f"sms_delay must be 0 <= min <= max, not {sms_delay}")
        self.handsets: dict[str, HandsetScript] = dict(handsets or {})
        self.response_delay = response_delay
        self.sms_delay = sms_delay
        self.network_seconds = 0.0
        """the sum of the network delays drawn so far (benchmarks scale it)"""
        self._rng = random.Random(seed)
        self.boot_time = boot_time
        self.received: list[ReceivedSms] = []
        self.commands: list[str] = []
        self._settings = _Settings(echo=echo)
        self._inbuf = bytearray()
        self._text_for: str | None = None  # number while in AT+CMGS text entry
        self._booting_until: float | None = None
        self._drop = 0
        self._mr = itertools.count(1)
        self._seq = itertools.count()
        self._due: list[_Due] = []
        self._held_sms: list[tuple[str, str]] = []
        self._outbox = bytearray()
        # SIM message storage: survives reboots and the gateway (index -> sender, text,
        # service-centre time stamp, read already)
        self.storage: dict[int, tuple[str, str, str, bool]] = {}
        self._index = itertools.count(1)
        self.offline: set[str] = set()
        """numbers of handsets that are off the network: no SMS reaches them (no status
        report, no reply), a PoC single call to them fails"""
        self.poc_users: dict[int, str] = {}
        """PoC user id -> the handset's SMS number (for presence and call results)"""
        self.delivery_delay = 0.05
        self.delivery_reports = delivery_reports
        self.ptt: list[tuple[str, float]] = []
        """("press" | "release", time) of every PTT opcode: a keyed transmitter"""
        self.talk_group: int | None = None

    # -- sans-IO surface ------------------------------------------------------------

    @property
    def echo(self) -> bool:
        return self._settings.echo

    @property
    def booting(self) -> bool:
        return self._booting_until is not None

    def data_to_send(self) -> bytes:
        out = bytes(self._outbox)
        self._outbox.clear()
        return out

    def next_deadline(self) -> float | None:
        return self._due[0].at if self._due else None

    def tick(self, now: float) -> None:
        while self._due and self._due[0].at <= now:
            heapq.heappop(self._due).action(now)

    def feed(self, data: bytes, now: float) -> None:
        self.tick(now)
        if self.booting:
            return  # a booting module hears nothing
        self._inbuf += data
        while self._inbuf:
            if self._text_for is not None:
                if not self._text_entry(now):
                    return
            else:
                end = self._inbuf.find(b"\r")
                if end < 0:
                    return
                raw = bytes(self._inbuf[:end])
                del self._inbuf[: end + 1]
                # ESC / Ctrl-Z outside text entry are ignored, as a module does
                line = raw.decode("ascii", "replace").strip().lstrip("\n\x1b\x1a").strip()
                if self._settings.echo:
                    self._outbox += raw + b"\r"
                if line:
                    self.commands.append(line)
                    self._command(line, now)

    # -- fault injection and handset traffic -------------------------------------------

    def drop_responses(self, count: int = 1) -> None:
        """Swallow the final result of the next ``count`` commands (they still take effect)."""
        self._drop += count

    def inject_noise(self, data: bytes) -> None:
        self._outbox += data

    @property
    def charset(self) -> str:
        return self._settings.charset

    @property
    def delivers_sms(self) -> bool:
        """AT+CNMI routes new SMS to the TE: straight to the serial line (2,2) or
        stored and announced (2,1)."""
        return self._settings.cnmi_direct or self._settings.cnmi_store

    def reset(self) -> None:
        """Power lost: settings, half-typed input and pending output are gone."""
        self._settings = _Settings()
        self._inbuf.clear()
        self._outbox.clear()
        self._text_for = None
        self._drop = 0
        self._due = [d for d in self._due if d.handset]
        heapq.heapify(self._due)

    def reboot(self, now: float, *, banner: bool = True) -> None:
        """Restart: settings forgotten, deaf for ``boot_time``, then ``RDY`` (if ``banner``)."""
        self.reset()
        self._booting_until = now + self.boot_time

        def booted(_now: float) -> None:
            self._booting_until = None
            if banner:
                self._outbox += BOOT_BANNER

        self._after(now + self.boot_time, booted)

    def inject_sms(self, sender: str, text: str) -> None:
        """A handset texts the module: ``+CMT`` now (AT+CNMI=2,2), stored and announced
        by ``+CMTI`` (AT+CNMI=2,1), or held until AT+CNMI is set."""
        if self._settings.cnmi_direct and not self.booting:
            self._outbox += self._cmt(sender, text)
        elif self._settings.cnmi_store:
            self._store(sender, text)
        else:
            self._held_sms.append((sender, text))

    def _cmt(self, sender: str, text: str) -> bytes:
        head, body = self._enc(sender), self._enc(text)
        return f'\r\n+CMT: "{head}",,"{SCTS}"\r\n{body}\r\n'.encode("utf-8", "replace")

    def _enc(self, text: str) -> str:
        return ucs2.encode(text) if self._settings.charset == "UCS2" else text

    def _store(self, sender: str, text: str) -> None:
        index = next(self._index)
        self.storage[index] = (sender, text, SCTS, False)
        if not self.booting:
            self._outbox += f'\r\n+CMTI: "SM",{index}\r\n'.encode("ascii")

    def report_position(self, poc_id: int, lat: float, lon: float) -> None:
        """A handset's GPS fix, relayed by the PoC platform (``+POC:99...``)."""
        self.inject_poc(poc.position_report(poc_id, lat, lon))

    def set_presence(self, poc_id: int, number: str, online: bool) -> None:
        """A handset logs on or drops off the PoC network: the module reports it."""
        self.poc_users[poc_id] = number
        if online:
            self.offline.discard(number)
        else:
            self.offline.add(number)
        self.inject_poc(f"98{poc_id:08X}{1 if online else 0:02X}")

    def inject_poc(self, report: str) -> None:
        self._outbox += f"\r\n+POC:{report}\r\n".encode("ascii")

    # -- internals ---------------------------------------------------------------------

    def _after(self, at: float, action: Callable[[float], None], *, handset: bool = False) -> None:
        heapq.heappush(self._due, _Due(at, next(self._seq), action, handset))

    def _respond(self, now: float, info: Sequence[str], final: str = "OK") -> None:
        drop = self._drop > 0
        if drop:
            self._drop -= 1
        payload = b"".join(f"\r\n{line}\r\n".encode("ascii") for line in info)
        if not drop:
            payload += f"\r\n{final}\r\n".encode("ascii")
        if not self.response_delay:
            self._outbox += payload
            return

        def later(_now: float) -> None:
            self._outbox += payload

        self._after(now + self.response_delay, later)

    def _command(self, line: str, now: float) -> None:
        upper = line.upper()
        s = self._settings
        if upper == "AT" or upper.startswith(("AT+CMEE=", "AT+CREG=")):
            self._respond(now, ())
        elif upper in ("ATE0", "ATE1"):
            s.echo = upper == "ATE1"
            self._respond(now, ())
        elif upper == "ATI":
            self._respond(now, ("SIM800 simulator", "Revision:engine.radio.simulator"))
        elif upper.startswith("AT+CMGF="):
            s.text_mode = upper.endswith("=1")
            self._respond(now, ())
        elif m := re.fullmatch(r'AT\+CSCS="(\w+)"', line, re.I):
            s.charset = m.group(1).upper()
            self._respond(now, ())
        elif upper.startswith("AT+CSMP="):
            first = upper[len("AT+CSMP=") :].split(",")[0].strip()
            s.srr = first.isdigit() and bool(int(first) & 0x20)
            self._respond(now, ())
        elif upper.startswith("AT+CNMI="):
            params = [p.strip() for p in upper[len("AT+CNMI=") :].split(",")]
            mt = params[1] if len(params) > 1 else "0"
            s.cnmi_direct = mt == "2"
            s.cnmi_store = mt == "1"
            s.status_reports = len(params) > 3 and params[3] == "1"
            self._respond(now, ())
            held, self._held_sms = self._held_sms, []
            for sender, text in held:
                self.inject_sms(sender, text)
        elif m := re.fullmatch(r"AT\+CMGR=(\d+)", upper):
            self._read(int(m.group(1)), now)
        elif m := re.fullmatch(r"AT\+CMGD=(\d+)(?:,\d+)?", upper):
            self.storage.pop(int(m.group(1)), None)
            self._respond(now, ())
        elif m := re.fullmatch(r'AT\+CMGL(?:="([^"]*)")?', line, re.I):
            self._list(now)
        elif upper == "AT+CPIN?":
            self._respond(now, ("+CPIN: READY",))
        elif upper == "AT+CSQ":
            self._respond(now, ("+CSQ: 23,0",))
        elif m := re.fullmatch(r'AT\+CMGS="([^"]*)"(?:,\d+)?', line, re.I):
            if not s.text_mode:
                self._respond(now, (), "+CMS ERROR: 302")
                return
            number = m.group(1)
            if s.charset == "UCS2" and ucs2.looks_like_ucs2(number):
                number = ucs2.decode(number)
            self._text_for = number
            self._outbox += b"\r\n> "
        elif m := re.fullmatch(r"AT\+POC=([0-9A-F]+)", line, re.I):
            self._poc(m.group(1).upper(), now)
        else:
            self._respond(now, (), "ERROR")

    def _text_entry(self, now: float) -> bool:
        """Consume SMS text up to Ctrl-Z (send) or ESC (cancel); False if incomplete."""
        ends = [i for i in (self._inbuf.find(b"\x1a"), self._inbuf.find(b"\x1b")) if i >= 0]
        if not ends:
            return False
        end = min(ends)
        raw = bytes(self._inbuf[:end])
        cancelled = self._inbuf[end] == 0x1B
        del self._inbuf[: end + 1]
        number, self._text_for = self._text_for, None
        assert number is not None
        if self._settings.echo:
            self._outbox += raw
        if cancelled:
            return True
        text = raw.decode("ascii", "replace")
        if self._settings.charset == "UCS2":
            try:
                text = ucs2.decode(text)
            except ValueError:
                self._respond(now, (), "+CMS ERROR: 304")
                return True
        reference = next(self._mr) % 256
        self.received.append(ReceivedSms(number, text, reference, now))
        low, high = self.sms_delay
        network = self._rng.uniform(low, high) if high > 0 else 0.0
        self.network_seconds += network
        if network > 0:
            self._after(now + network, lambda t: self._respond(t, (f"+CMGS: {reference}",)))
        else:
            self._respond(now, (f"+CMGS: {reference}",))
        now += network
        if number not in self.offline:  # an offline handset gets nothing, says nothing
            self._schedule_replies(number, text, now)
            if self.delivery_reports and self._settings.srr and self._settings.status_reports:
                self._after(now + self.delivery_delay, self._report(number, reference))
        return True

    def _report(self, number: str, reference: int) -> Callable[[float], None]:
        def report(_now: float) -> None:
            if self._settings.status_reports and not self.booting:
                ra = self._enc(number)
                self._outbox += (
                    f'\r\n+CDS: 6,{reference},"{ra}",129,"{SCTS}","{SCTS}",0\r\n'.encode("ascii")
                )

        return report

    def _read(self, index: int, now: float) -> None:
        found = self.storage.get(index)
        if found is None:
            self._respond(now, (), "+CMS ERROR: 321")  # invalid memory index
            return
        sender, text, scts, seen = found
        self.storage[index] = (sender, text, scts, True)
        stat = "REC READ" if seen else "REC UNREAD"
        head = f'+CMGR: "{self._enc(stat)}","{self._enc(sender)}",,"{scts}"'
        self._respond(now, (head, self._enc(text)))

    def _list(self, now: float) -> None:
        lines = []
        for index, (sender, text, scts, seen) in sorted(self.storage.items()):
            stat = "REC READ" if seen else "REC UNREAD"
            lines.append(f'+CMGL: {index},"{self._enc(stat)}","{self._enc(sender)}",,"{scts}"')
            lines.append(self._enc(text))
            self.storage[index] = (sender, text, scts, True)
        self._respond(now, tuple(lines))

    def _schedule_replies(self, number: str, text: str, now: float) -> None:
        script = self.handsets.get(number)
        code = _CODE.search(text)
        if script is None or code is None:
            return
        for delay, digit in script.replies:
            message = f"{digit} {code.group(1)}"

            def reply(_now: float, message: str = message) -> None:
                self.inject_sms(number, message)

            self._after(now + delay, reply, handset=True)

    def _poc(self, params: str, now: float) -> None:
        self._respond(now, ())
        if params == "0B0000":
            self.ptt.append(("press", now))
        elif params == "0C0000":
            self.ptt.append(("release", now))
        elif params.startswith("092200") and len(params) == 14:
            self.talk_group = int(params[6:], 16)
        elif params.startswith("0A0000") and len(params) == 14:
            uid = int(params[6:], 16)
            number = self.poc_users.get(uid)
            reached = number is None or number not in self.offline
            self.inject_poc(f"0a{0 if reached else 1:02x}{uid:08X}")  # call result
        report = {"030000": "8202", "0B0000": "0b000000"}.get(params)
        if report is not None:
            self.inject_poc(report)


# -- hosts: the same simulator behind a pty or a TCP port ---------------------------------


class _Host:
    """Runs a ModemSimulator on the event loop: input in, due actions, output out."""

    def __init__(self, modem: ModemSimulator, *, split_writes: int | None = None) -> None:
        self.modem = modem
        self.split_writes = split_writes  # write output in chunks of this many bytes
        self._wake = asyncio.Event()
        self._changed = asyncio.Event()
        self._pump_task: asyncio.Task[None] | None = None
        # Called with each command line as it arrives, before any answer is written:
        # lets a test pull the plug at an exact point of a conversation.
        self.on_command: Callable[[str], None] | None = None

    @property
    def _loop(self) -> asyncio.AbstractEventLoop:
        return asyncio.get_running_loop()

    async def __aenter__(self) -> Self:
        self._open()
        self._pump_task = asyncio.create_task(self._pump(), name=f"{type(self).__name__} pump")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._pump_task is not None:
            self._pump_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._pump_task
        await self._close()

    def _feed(self, data: bytes) -> None:
        seen = len(self.modem.commands)
        self.modem.feed(data, self._loop.time())
        hook = self.on_command
        if hook is not None:
            for line in self.modem.commands[seen:]:
                hook(line)
        self._poke()

    def _poke(self) -> None:
        self._wake.set()
        self._changed.set()

    # Fault injection, stamped with the loop's clock.

    def inject_sms(self, sender: str, text: str) -> None:
        self.modem.inject_sms(sender, text)
        self._poke()

    def inject_noise(self, data: bytes) -> None:
        self.modem.inject_noise(data)
        self._poke()

    def inject_poc(self, report: str) -> None:
        self.modem.inject_poc(report)
        self._poke()

    def reboot(self, *, banner: bool = True) -> None:
        self.modem.reboot(self._loop.time(), banner=banner)
        self._poke()

    async def wait_for(self, predicate: Callable[[], bool], within: float = 5.0) -> None:
        """Until ``predicate()`` holds after some input; TimeoutError otherwise."""
        async with asyncio.timeout(within):
            while not predicate():
                self._changed.clear()
                await self._changed.wait()

    async def _pump(self) -> None:
        loop = self._loop
        while True:
            self.modem.tick(loop.time())
            out = self.modem.data_to_send()
            if out:
                await self._write_split(out)
                self._changed.set()
                continue
            self._wake.clear()
            deadline = self.modem.next_deadline()
            timeout = None if deadline is None else max(0.0, deadline - loop.time())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)

    async def _write_split(self, data: bytes) -> None:
        step = self.split_writes or len(data)
        for i in range(0, len(data), step):
            await self._write(data[i : i + step])
            if self.split_writes:
                await asyncio.sleep(0.002)  # let the reader see each piece on its own

    def _open(self) -> None:
        raise NotImplementedError

    async def _close(self) -> None:
        raise NotImplementedError

    async def _write(self, data: bytes) -> None:
        raise NotImplementedError


class PtyModem(_Host):
    """The simulator on a pseudo-terminal; ``path`` is what a client opens.

    With ``link`` set, ``path`` is that symlink, re-pointed at each replug, the way udev
    keeps ``/dev/serial/by-id/...`` stable while the pts number changes.
    """

    def __init__(
        self,
        modem: ModemSimulator,
        *,
        link: Path | None = None,
        split_writes: int | None = None,
    ) -> None:
        super().__init__(modem, split_writes=split_writes)
        self._link = link
        self._master: int | None = None
        self._slave: int | None = None
        self._slave_name = ""

    @property
    def path(self) -> str:
        return str(self._link) if self._link is not None else self._slave_name

    @property
    def plugged(self) -> bool:
        return self._master is not None

    def unplug(self) -> None:
        """The device vanishes (and loses power): reads fail, the path disappears."""
        self.modem.reset()
        self._close_pty()
        self._poke()

    def replug(self) -> None:
        if self._master is None:
            self._open()

    def _open(self) -> None:
        master, slave = os.openpty()
        tty.setraw(slave)  # no line discipline: bytes pass as a UART would pass them
        os.set_blocking(master, False)
        self._master, self._slave = master, slave
        self._slave_name = os.ttyname(slave)
        if self._link is not None:
            tmp = self._link.with_name(self._link.name + ".new")
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
            tmp.symlink_to(self._slave_name)
            tmp.replace(self._link)
        self._loop.add_reader(master, self._readable)

    def _readable(self) -> None:
        if self._master is None:
            return
        try:
            data = os.read(self._master, 4096)
        except BlockingIOError:
            return
        except OSError as exc:  # EIO: nobody has the slave open; not an error for a modem
            if exc.errno != errno.EIO:
                raise
            return
        if data:
            self._feed(data)

    async def _write(self, data: bytes) -> None:
        view = memoryview(data)
        while view and self._master is not None:
            try:
                n = os.write(self._master, view)
            except BlockingIOError:
                await asyncio.sleep(0.001)
                continue
            view = view[n:]

    def _close_pty(self) -> None:
        if self._master is not None:
            self._loop.remove_reader(self._master)
            os.close(self._master)
            self._master = None
        if self._slave is not None:
            os.close(self._slave)
            self._slave = None
        if self._link is not None:
            with contextlib.suppress(FileNotFoundError):
                self._link.unlink()

    async def _close(self) -> None:
        self._close_pty()


class _ServerSide(asyncio.Protocol):
    def __init__(self, host: TcpModem) -> None:
        self._host = host
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self._host._client_connected(self)

    def data_received(self, data: bytes) -> None:
        self._host._feed(data)

    def connection_lost(self, exc: Exception | None) -> None:
        self._host._client_gone(self)


class TcpModem(_Host):
    """The simulator on 127.0.0.1; one client at a time (a newer one replaces it)."""

    def __init__(
        self, modem: ModemSimulator, *, port: int = 0, split_writes: int | None = None
    ) -> None:
        super().__init__(modem, split_writes=split_writes)
        self._port = port
        self._server: asyncio.Server | None = None
        self._client: _ServerSide | None = None
        self._clients_gone = asyncio.Event()

    @property
    def port(self) -> int:
        return self._port

    @property
    def url(self) -> str:
        return f"socket://127.0.0.1:{self._port}"

    @property
    def connected(self) -> bool:
        return self._client is not None

    async def __aenter__(self) -> Self:
        await self._listen()
        return await super().__aenter__()

    def _open(self) -> None:
        pass  # listening is async; done in __aenter__ / replug

    async def _listen(self) -> None:
        self._server = await self._loop.create_server(
            lambda: _ServerSide(self), "127.0.0.1", self._port
        )
        self._port = self._server.sockets[0].getsockname()[1]

    async def unplug(self) -> None:
        """Stop listening and drop the client: the port is gone until :meth:`replug`."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        await self.drop_client()

    async def replug(self) -> None:
        if self._server is None:
            await self._listen()

    async def drop_client(self) -> None:
        client = self._client
        if client is not None and client.transport is not None:
            self._clients_gone.clear()
            client.transport.abort()
            await self._clients_gone.wait()

    def _client_connected(self, client: _ServerSide) -> None:
        old, self._client = self._client, client
        if old is not None and old.transport is not None:
            old.transport.abort()
        self._poke()

    def _client_gone(self, client: _ServerSide) -> None:
        if self._client is client:
            self._client = None
            self._clients_gone.set()
        self._poke()

    async def _write(self, data: bytes) -> None:
        if self._client is not None and self._client.transport is not None:
            self._client.transport.write(data)

    async def _close(self) -> None:
        await self.unplug()
