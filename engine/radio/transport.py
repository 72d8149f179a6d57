"""The asyncio driver: one serial URL, one AtConnection, nothing clever.

It opens the port with ``serial_asyncio_fast`` (any pyserial URL: ``/dev/ttyUSB0``,
``socket://host:port``, ``rfc2217://...``), feeds what it reads into the engine, writes
what the engine wants written, and calls ``tick`` at the engine's deadline using the
loop's clock. A vanished port is reopened with exponential backoff; queued commands
wait, the one in flight fails with :class:`~engine.radio.errors.CommandAborted`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from types import TracebackType
from typing import Self

import serial
from serial_asyncio_fast import create_serial_connection

from engine.radio import at_events as ev
from engine.radio import sms
from engine.radio.at_commands import Command
from engine.radio.at_connection import AtConnection
from engine.radio.errors import CommandAborted, CommandError, CommandTimeout, LinkClosed

log = logging.getLogger(__name__)


class _SerialProtocol(asyncio.Protocol):
    def __init__(self, link: ModemLink) -> None:
        self._link = link

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._link._connected(transport)

    def data_received(self, data: bytes) -> None:
        self._link._received(data)

    def connection_lost(self, exc: Exception | None) -> None:
        self._link._lost(exc)


class ModemLink:
    """Async facade over a modem: ``await execute(cmd)``, ``await send_sms(...)``.

    Unsolicited codes, restarts and link state arrive on :attr:`events`.
    """

    def __init__(
        self,
        url: str,
        *,
        init: Sequence[Command] | None = None,
        baudrate: int = 115200,
        backoff_initial: float = 0.05,
        backoff_max: float = 5.0,
        connection: AtConnection | None = None,
        exclusive: bool = True,
    ) -> None:
        self.url = url
        # flock(LOCK_EX) on the device: a second gateway (or a technician's `engine
        # radio send`) on the same modem would interleave AT commands with ours.
        self.exclusive = exclusive
        self.baudrate = baudrate
        self.conn = connection or AtConnection(init=sms.init_commands() if init is None else init)
        self.events: asyncio.Queue[ev.AtEvent] = asyncio.Queue()
        self.connects = 0  # how many times the port was (re)opened
        self._backoff = (backoff_initial, backoff_max)
        self._transport: asyncio.BaseTransport | None = None
        self._lost_future: asyncio.Future[None] | None = None
        self._up = asyncio.Event()
        self._down = asyncio.Event()
        self._down.set()
        self._timer: asyncio.TimerHandle | None = None
        self._pending: dict[Command, asyncio.Future[ev.CommandCompleted]] = {}
        self._supervisor: asyncio.Task[None] | None = None
        self._closed = False

    async def __aenter__(self) -> Self:
        self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    @property
    def is_connected(self) -> bool:
        return self._transport is not None

    def start(self) -> None:
        if self._supervisor is None:
            self._supervisor = asyncio.create_task(self._supervise(), name=f"modem {self.url}")

    async def wait_connected(self) -> None:
        await self._up.wait()

    async def wait_disconnected(self) -> None:
        await self._down.wait()

    async def execute(self, command: Command) -> ev.CommandCompleted:
        """Queue ``command`` and wait for its final result; raises unless it is OK."""
        if self._closed:
            raise LinkClosed(f"{self.url} is closed")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[ev.CommandCompleted] = loop.create_future()
        self._pending[command] = future
        self.conn.submit(command, loop.time())
        self._flush()
        try:
            return await future
        finally:
            self._pending.pop(command, None)

    async def send_sms(self, number: str, text: str) -> list[int]:
        """Send ``text`` (split if needed); the message reference of every part."""
        refs = []
        for part in sms.split_text(text):
            done = await self.execute(sms.send_command(number, part))
            refs.append(sms.parse_message_reference(done.lines))
        return refs

    async def close(self) -> None:
        self._closed = True
        if self._supervisor is not None:
            self._supervisor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._supervisor
            self._supervisor = None
        await self._drop_transport()
        for future in self._pending.values():
            if not future.done():
                future.set_exception(LinkClosed(f"{self.url} closed"))
        self._pending.clear()

    # -- supervision ----------------------------------------------------------------

    async def _supervise(self) -> None:
        loop = asyncio.get_running_loop()
        delay = self._backoff[0]
        while True:
            self._lost_future = loop.create_future()
            try:
                await create_serial_connection(
                    loop,
                    lambda: _SerialProtocol(self),
                    self.url,
                    baudrate=self.baudrate,
                    exclusive=self.exclusive,
                )
            except (serial.SerialException, OSError) as exc:
                busy = "exclusively lock" in str(exc)
                (log.error if busy else log.warning)(
                    "cannot open %s: %s; retrying in %.2fs",
                    self.url,
                    "in use by another process" if busy else exc,
                    delay,
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, self._backoff[1])
                continue
            delay = self._backoff[0]
            # Shielded: close() cancels this task but still waits for the loss itself.
            await asyncio.shield(self._lost_future)

    async def _drop_transport(self) -> None:
        transport, lost = self._transport, self._lost_future
        if transport is not None:
            transport.close()
            if lost is not None:
                # serial_asyncio_fast closes the device in an executor: wait for it so no
                # descriptor outlives the link.
                await lost

    # -- protocol callbacks -------------------------------------------------------------

    def _connected(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport
        self.connects += 1
        self._up.set()
        self._down.clear()
        log.info("modem %s connected", self.url)
        self.conn.connection_made(asyncio.get_running_loop().time())
        self._flush()

    def _received(self, data: bytes) -> None:
        self._dispatch(self.conn.feed(data, asyncio.get_running_loop().time()))
        self._flush()

    def _lost(self, exc: Exception | None) -> None:
        # Closed by its owner is routine; anything else is the device going away.
        (log.info if self._closed else log.warning)("modem %s lost: %s", self.url, exc)
        self._transport = None
        self._up.clear()
        self._down.set()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._dispatch(self.conn.connection_lost())
        if self._lost_future is not None and not self._lost_future.done():
            self._lost_future.set_result(None)

    def _on_timer(self) -> None:
        self._timer = None
        self._dispatch(self.conn.tick(asyncio.get_running_loop().time()))
        self._flush()

    def _flush(self) -> None:
        transport = self._transport
        if transport is None:
            return
        out = self.conn.data_to_send()
        if out:
            assert isinstance(transport, asyncio.WriteTransport)
            transport.write(out)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        deadline = self.conn.next_deadline()
        if deadline is not None:
            self._timer = asyncio.get_running_loop().call_at(deadline, self._on_timer)

    def _dispatch(self, events: list[ev.AtEvent]) -> None:
        for event in events:
            if isinstance(event, ev.CommandCompleted | ev.CommandTimedOut | ev.CommandAborted):
                self._settle(event)
            else:
                if isinstance(event, ev.ModemRestarted):
                    log.warning("modem %s restarted (%s); replaying init", self.url, event.reason)
                self.events.put_nowait(event)

    def _settle(self, event: ev.CommandCompleted | ev.CommandTimedOut | ev.CommandAborted) -> None:
        future = self._pending.get(event.command)
        if future is None or future.done():
            if not isinstance(event, ev.CommandCompleted) or not event.ok:
                log.warning("modem %s: %s", self.url, event)  # init commands have no waiter
            return
        command = event.command.label or event.command.line
        if isinstance(event, ev.CommandTimedOut):
            future.set_exception(CommandTimeout(f"{command}: no answer from {self.url}"))
        elif isinstance(event, ev.CommandAborted):
            future.set_exception(CommandAborted(f"{command}: {event.reason}"))
        elif not event.ok:
            future.set_exception(CommandError(command, str(event.result), event.result.code))
        else:
            future.set_result(event)
