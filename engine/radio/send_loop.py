"""Feeds the modem from the priority queue, a small window ahead (no Kafka here).

With ``window`` call-outs handed to the link at once, the next ``AT+CMGS`` is already
queued in the AT engine when the previous ``+CMGS`` arrives, so the serial line never
idles while Python or Kafka catches up; priority decides the order of everything still
waiting. What happens after the modem accepted (log, ack, commit) runs in its own task
and does not hold a window slot.

Broadcast messages (issue 17) wait in a lane of their own below every call-out, and one
goes to the link only when no call-out waits and nothing else is in flight: never more
than one broadcast message is queued in the AT engine, and never ahead of a call-out. A
call-out that arrives meanwhile goes to the modem right after that one message.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable

from engine.radio.errors import LinkClosed, RadioError
from engine.radio.gateway_queue import CalloutQueue, Pending
from engine.radio.metrics import GatewayMetrics
from engine.radio.pager import Paged, Pager, PageRefused

log = logging.getLogger(__name__)

OnSent = Callable[[Pending, Paged], Awaitable[None]]
OnFailed = Callable[[Pending, RadioError], Awaitable[None]]
OnPaged = Callable[[Pending, Paged], None]
Skip = Callable[[Pending], str | None]
OnSkipped = Callable[[Pending, str], Awaitable[None]]


class SendLoop:
    def __init__(
        self,
        pager: Pager,
        *,
        on_sent: OnSent,
        on_failed: OnFailed,
        on_paged: OnPaged | None = None,
        window: int = 2,
        metrics: GatewayMetrics | None = None,
        ttl: float | None = None,
        clock: Callable[[], float] = time.time,
        skip: Skip | None = None,
        on_skipped: OnSkipped | None = None,
    ) -> None:
        if window < 1:
            raise ValueError("window must be at least 1")
        self.pager = pager
        self.queue = CalloutQueue()
        self.broadcasts = CalloutQueue()
        """broadcast messages: served only when ``queue`` is empty and nothing is in flight"""
        self.in_flight = 0
        """items handed to the pager and not yet accepted or refused by the modem"""
        self._skip = skip
        self._broadcast_in_flight = False
        self._behind: list[float] = []  # when each call-out behind the broadcast arrived
        self._on_skipped = on_skipped
        self._on_sent = on_sent
        self._on_failed = on_failed
        self._on_paged = on_paged
        self._slots = asyncio.Semaphore(window)
        self._ready = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self._metrics = metrics
        self._ttl = ttl
        self._clock = clock

    def stale(self, item: Pending) -> Stale | None:
        """A call-out decided longer than the TTL ago: paging it now helps nobody and
        could send a volunteer to an incident long over."""
        if self._ttl is None or item.decided_at is None:
            return None
        age = self._clock() - item.decided_at
        if age <= self._ttl:
            return None
        return Stale(f"call-out is {age:.0f} s old, the TTL is {self._ttl:.0f} s")

    def put(self, item: Pending) -> None:
        if not item.broadcast and self._broadcast_in_flight:
            self._behind.append(time.monotonic())
        (self.broadcasts if item.broadcast else self.queue).push(item)
        self._depth()
        self._ready.set()

    def drop_partitions(
        self, partitions: Iterable[int], *, broadcast: bool = False
    ) -> list[Pending]:
        dropped = (self.broadcasts if broadcast else self.queue).drop_partitions(partitions)
        self._depth()
        return dropped

    def _depth(self) -> None:
        if self._metrics is not None:
            self._metrics.queue_depth.set(len(self.queue))
            self._metrics.broadcast_queue_depth.set(len(self.broadcasts))

    def _next(self) -> Pending | None:
        """A call-out if one waits; else a broadcast message if the line is free."""
        item = self.queue.pop()
        if item is None and self.in_flight == 0:
            item = self.broadcasts.pop()
        return item

    def _release(self, item: Pending) -> None:
        if item.broadcast:
            self._broadcast_in_flight = False
            now = time.monotonic()
            for since in self._behind:  # call-outs that waited for this message
                if self._metrics is not None:
                    self._metrics.callout_behind_broadcast.observe(now - since)
            self._behind.clear()
        self.in_flight -= 1
        self._slots.release()
        if self.in_flight == 0 and len(self.broadcasts):
            self._ready.set()  # the line is free: a broadcast message may go

    async def run(self) -> None:
        """Until cancelled (deliveries still running are cancelled with it), or until a
        delivery's bookkeeping fails: then :class:`BookkeepingFailed` is raised (in an
        ExceptionGroup) and the gateway exits; the restart finishes that call-out from
        the sent log without paging it again."""
        async with asyncio.TaskGroup() as deliveries:
            while True:
                await self._slots.acquire()
                item = self._next()
                while item is None:
                    self._ready.clear()
                    await self._ready.wait()
                    item = self._next()
                self.in_flight += 1
                if item.broadcast:
                    self._broadcast_in_flight = True
                self._depth()
                deliveries.create_task(self._deliver(item), name=f"page {item.offset}")

    async def _deliver(self, item: Pending) -> None:
        released = False
        key = item.callout.idempotency_key
        try:
            skip = self._skip(item) if self._skip is not None else None
            if skip is not None:  # cancelled, expired, sent by another gateway meanwhile
                self._release(item)
                released = True
                if self._on_skipped is not None:
                    await self._guard(key, self._on_skipped(item, skip))
                return
            try:
                stale = self.stale(item)
                if stale is not None:
                    raise stale
                paged = await self.pager.page(item.callout)
            except LinkClosed:
                raise
            except RadioError as exc:
                self._release(item)
                released = True
                log.error("call-out %s not sent: %s", key, exc)
                await self._guard(key, self._on_failed(item, exc))
                return
            try:
                if self._on_paged is not None:
                    self._on_paged(item, paged)  # synchronous: nothing may interleave
            except Exception as exc:
                raise self._failed(key, exc) from exc
            self._release(item)
            released = True
            await self._guard(key, self._on_sent(item, paged))
        finally:
            if not released:
                self._release(item)

    async def _guard(self, key: str, bookkeeping: Awaitable[None]) -> None:
        try:
            await bookkeeping
        except Exception as exc:
            raise self._failed(key, exc) from exc

    def _failed(self, key: str, exc: Exception) -> BookkeepingFailed:
        # Never swallowed: left unfinished, the offset is not committed and the restart
        # reads the call-out again; the sent log knows whether it left.
        if self._metrics is not None:
            self._metrics.bookkeeping_failures.inc()
        log.critical("call-out %s: bookkeeping failed (%s); the gateway stops", key, exc)
        return BookkeepingFailed(f"call-out {key}: bookkeeping failed: {exc}")


class Stale(PageRefused):
    """Older than the TTL: dead-lettered as ``stale``, not paged."""

    def __init__(self, message: str) -> None:
        super().__init__(message, "stale")


class BookkeepingFailed(RadioError):
    """A page left (or was refused) but its log, ack or commit failed: stop the gateway."""
