"""The gateway's broadcast lane (no Kafka, no modem): one broadcast message at a time,
never ahead of a call-out, and a cancelled broadcast's messages are dropped unsent."""

from __future__ import annotations

import asyncio
from typing import Any, cast

import pytest

from engine.models import CallOut, Channel, Priority
from engine.radio.gateway_queue import Pending
from engine.radio.metrics import GatewayMetrics
from engine.radio.pager import Paged, Pager
from engine.radio.send_loop import SendLoop

pytestmark = pytest.mark.unit


class SlowModem:
    """A pager whose every page takes ``seconds`` (the AT+CMGS round trip) and which
    records what it was given, in order, and how many pages overlapped."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.started: list[str] = []
        self.busy = 0
        self.most_busy = 0
        self.fifth = asyncio.Event()

    async def page(self, callout: CallOut) -> Paged:
        self.started.append(callout.idempotency_key)
        if len(self.started) == 5:
            self.fifth.set()
        self.busy += 1
        self.most_busy = max(self.most_busy, self.busy)
        try:
            await asyncio.sleep(self.seconds)
        finally:
            self.busy -= 1
        return Paged((1,))


def item(key: str, *, broadcast: bool, offset: int, priority: Priority = Priority.P1) -> Pending:
    c = CallOut(
        idempotency_key=key, incident_id=key.split("/")[1] if broadcast else "INC-1", stage=0,
        radio_id="R1", channel=Channel.SMS, text="x", priority=priority,
    )  # fmt: skip
    return Pending(c, 0, offset, None, broadcast=broadcast, rank=2 if broadcast else 0)


async def run_until(loop: SendLoop, done: asyncio.Event) -> None:
    task = asyncio.create_task(loop.run())
    try:
        async with asyncio.timeout(10):
            await done.wait()
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def test_a_callout_goes_right_after_the_broadcast_message_in_flight() -> None:
    modem = SlowModem(0.05)
    sent: list[str] = []
    done = asyncio.Event()
    metrics = GatewayMetrics()

    async def on_sent(p: Pending, _: Paged) -> None:
        sent.append(p.callout.idempotency_key)
        if len(sent) == 21:
            done.set()

    async def on_failed(p: Pending, e: Any) -> None:
        raise AssertionError(e)

    loop = SendLoop(cast(Pager, modem), on_sent=on_sent, on_failed=on_failed, window=2,
                    metrics=metrics)  # fmt: skip
    for n in range(20):
        loop.put(item(f"bc/BC-1/sms:V{n:02d}", broadcast=True, offset=n))

    async def fire_in_the_middle() -> None:
        await modem.fifth.wait()
        await asyncio.sleep(0.02)  # the 5th broadcast message is in flight
        loop.put(item("INC-1/0/R9", broadcast=False, offset=100))

    fire = asyncio.create_task(fire_in_the_middle())
    await run_until(loop, done)
    await fire
    p1 = modem.started.index("INC-1/0/R9")
    assert p1 == 5  # after the message in flight, before the next one
    # never two broadcast messages handed to the link at once
    assert modem.most_busy <= 2
    behind = metrics.registry.get_sample_value(
        "engine_radio_callout_behind_broadcast_seconds_count"
    )
    assert behind == 1


async def test_broadcast_messages_wait_for_every_callout_and_go_one_at_a_time() -> None:
    modem = SlowModem(0.01)
    sent: list[str] = []
    done = asyncio.Event()

    async def on_sent(p: Pending, _: Paged) -> None:
        sent.append(p.callout.idempotency_key)
        if len(sent) == 8:
            done.set()

    async def on_failed(p: Pending, e: Any) -> None:
        raise AssertionError(e)

    loop = SendLoop(cast(Pager, modem), on_sent=on_sent, on_failed=on_failed, window=3)
    for n in range(4):
        loop.put(item(f"bc/BC-1/sms:V{n}", broadcast=True, offset=n))
    for n in range(4):
        loop.put(item(f"INC-1/0/R{n}", broadcast=False, offset=10 + n, priority=Priority.P3))
    await run_until(loop, done)
    assert [k.startswith("INC") for k in modem.started] == [True] * 4 + [False] * 4
    # call-outs use the window; broadcast messages never overlap anything
    assert modem.most_busy == 3


async def test_a_cancelled_broadcast_is_dropped_unsent() -> None:
    modem = SlowModem(0.01)
    cancelled: set[str] = set()
    outcomes: list[tuple[str, str]] = []
    done = asyncio.Event()

    def skip(p: Pending) -> str | None:
        return "cancelled" if p.broadcast and p.callout.incident_id in cancelled else None

    async def on_skipped(p: Pending, reason: str) -> None:
        outcomes.append((p.callout.idempotency_key, reason))
        if len(outcomes) == 10:
            done.set()

    async def on_sent(p: Pending, _: Paged) -> None:
        outcomes.append((p.callout.idempotency_key, "sent"))
        if len(outcomes) == 3:
            cancelled.add("BC-7")  # the operator cancels after three
        if len(outcomes) == 10:
            done.set()

    async def on_failed(p: Pending, e: Any) -> None:
        raise AssertionError(e)

    loop = SendLoop(cast(Pager, modem), on_sent=on_sent, on_failed=on_failed, skip=skip,
                    on_skipped=on_skipped)  # fmt: skip
    for n in range(10):
        loop.put(item(f"bc/BC-7/sms:V{n}", broadcast=True, offset=n))
    await run_until(loop, done)
    reasons = [r for _, r in outcomes]
    assert reasons.count("sent") in (3, 4)  # at most the one in flight when it came
    assert reasons.count("sent") + reasons.count("cancelled") == 10
    assert len(modem.started) == reasons.count("sent")
