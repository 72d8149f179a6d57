"""Feeds the modem from the priority queue, a small window ahead (no Kafka here).

With ``window`` call-outs handed to the link at once, the next ``AT+CMGS`` is already
queued in the AT engine when the previous ``+CMGS`` arrives, so the serial line never
idles while Python or Kafka catches up; priority decides the order of everything still
waiting. What happens after the modem accepted (log, ack, commit) runs in its own task
and does not hold a window slot.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterable

from engine.radio.errors import LinkClosed, RadioError
from engine.radio.gateway_queue import CalloutQueue, Pending
from engine.radio.metrics import GatewayMetrics
from engine.radio.pager import Paged, Pager

log = logging.getLogger(__name__)

OnSent = Callable[[Pending, Paged], Awaitable[None]]
OnFailed = Callable[[Pending, RadioError], Awaitable[None]]
OnPaged = Callable[[Pending, Paged], None]


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
    ) -> None:
        if window < 1:
            raise ValueError("window must be at least 1")
        self.pager = pager
        self.queue = CalloutQueue()
        self._on_sent = on_sent
        self._on_failed = on_failed
        self._on_paged = on_paged
        self._slots = asyncio.Semaphore(window)
        self._ready = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self._metrics = metrics

    def put(self, item: Pending) -> None:
        self.queue.push(item)
        self._depth()
        self._ready.set()

    def drop_partitions(self, partitions: Iterable[int]) -> list[Pending]:
        dropped = self.queue.drop_partitions(partitions)
        self._depth()
        return dropped

    def _depth(self) -> None:
        if self._metrics is not None:
            self._metrics.queue_depth.set(len(self.queue))

    async def run(self) -> None:
        """Until cancelled; deliveries still running are cancelled with it."""
        try:
            while True:
                await self._slots.acquire()
                item = self.queue.pop()
                while item is None:
                    self._ready.clear()
                    await self._ready.wait()
                    item = self.queue.pop()
                self._depth()
                task = asyncio.create_task(self._deliver(item), name=f"page {item.offset}")
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
        finally:
            tasks = list(self._tasks)
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    async def _deliver(self, item: Pending) -> None:
        released = False
        try:
            try:
                paged = await self.pager.page(item.callout)
            except LinkClosed:
                raise
            except RadioError as exc:
                self._slots.release()
                released = True
                log.error("call-out %s not sent: %s", item.callout.idempotency_key, exc)
                await self._on_failed(item, exc)
                return
            if self._on_paged is not None:
                self._on_paged(item, paged)  # synchronous: nothing may interleave
            self._slots.release()
            released = True
            await self._on_sent(item, paged)
        except Exception:
            # Left unfinished, so never committed: a restart picks it up again.
            log.exception("call-out %s: bookkeeping failed", item.callout.idempotency_key)
        finally:
            if not released:
                self._slots.release()
