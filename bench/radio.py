"""Benchmark: decision to last byte of a 1+10 SMS fan-out, against the serial wire limit.

    .venv/bin/python bench/radio.py [--baud 115200] [--runs 5] [--out FILE]

Eleven call-outs (a zone team and its ten linked units, each a full-length Chinese
call-out text) are handed to the gateway's send path (priority queue, send window,
Pager, ModemLink, the sans-IO AT engine) at the "decision" instant. The simulator runs
on a real pty, but both directions of the line are paced at ``--baud`` (10 bits a byte,
8N1) so the pty behaves like the UART the target is about; the simulated network adds
no delay. "Last byte" is the moment the 11th message's Ctrl-Z has crossed the wire to
the modem. The wire limit is (bytes to the modem + bytes from it up to that moment)
x 10 / baud, counted from the same bytes. Target: elapsed <= 1.2 x limit.

Kafka is not in this path (its consume latency is the worker's and the broker's
business, measured by ``engine_decision_to_callout_seconds`` in production).
Prints a table and writes JSON (default bench/results/radio.json).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.models import CallOut, Channel, IncidentType, Priority
from engine.radio.callout_text import format_callout
from engine.radio.directory import StaticDirectory
from engine.radio.errors import RadioError
from engine.radio.gateway_queue import Pending
from engine.radio.pager import Paged, Pager
from engine.radio.replies import incident_code
from engine.radio.send_loop import SendLoop
from engine.radio.simulator import ModemSimulator, PtyModem
from engine.radio.transport import ModemLink

TARGET_RATIO = 1.2
FAN_OUT = 11
CHUNK = 16  # bytes delivered per wake-up: 1.4 ms at 115200 baud
SPIN = 0.002
INCIDENT = "INC-20261129-XYK7Q2"


class WireClock:
    """One direction of a UART: when each byte has finished crossing it."""

    def __init__(self, baud: int) -> None:
        self.byte_time = 10.0 / baud
        self.free_at = 0.0

    def arrival(self, now: float, n: int) -> float:
        self.free_at = max(now, self.free_at) + n * self.byte_time
        return self.free_at


async def until(at: float) -> None:
    """Sleep to the loop time ``at``. epoll counts in whole milliseconds, so a plain
    sleep can wake up to 1 ms late, more than a 16-byte chunk takes at 115200 baud: the
    last stretch yields to the loop in a spin instead (other tasks keep running)."""
    loop = asyncio.get_running_loop()
    if at - loop.time() > SPIN:
        await asyncio.sleep(at - loop.time() - SPIN)
    while True:
        if loop.time() >= at:
            return
        await asyncio.sleep(0)


class PacedPtyModem(PtyModem):
    """The simulator behind a pty whose two directions run at ``baud``."""

    def __init__(self, modem: ModemSimulator, baud: int) -> None:
        super().__init__(modem)
        self.rx = WireClock(baud)
        self.tx = WireClock(baud)
        self.bytes_in = 0
        self.bytes_out = 0
        self.done_at: float | None = None
        self.bytes_at_done = 0
        self.expect = 0
        self._inbound: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()
        self._rx_task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> PacedPtyModem:
        await super().__aenter__()
        self._rx_task = asyncio.create_task(self._deliver())
        return self

    async def __aexit__(self, *exc: Any) -> None:
        if self._rx_task is not None:
            self._rx_task.cancel()
            await asyncio.gather(self._rx_task, return_exceptions=True)
        await super().__aexit__(*exc)

    async def _deliver(self) -> None:
        while True:
            at, piece = await self._inbound.get()
            await until(at)
            self._arrived(piece)

    def reset_counts(self, expect: int) -> None:
        self.bytes_in = self.bytes_out = 0
        self.done_at = None
        self.expect = expect

    def _feed(self, data: bytes) -> None:
        loop = asyncio.get_running_loop()
        for i in range(0, len(data), CHUNK):
            piece = data[i : i + CHUNK]
            self._inbound.put_nowait((self.rx.arrival(loop.time(), len(piece)), piece))

    def _arrived(self, piece: bytes) -> None:
        self.bytes_in += len(piece)
        PtyModem._feed(self, piece)
        if self.done_at is None and self.expect and len(self.modem.received) >= self.expect:
            self.done_at = asyncio.get_running_loop().time()
            self.bytes_at_done = self.bytes_in + self.bytes_out

    async def _write(self, data: bytes) -> None:
        loop = asyncio.get_running_loop()
        for i in range(0, len(data), CHUNK):
            piece = data[i : i + CHUNK]
            at = self.tx.arrival(loop.time(), len(piece))
            await until(at)
            await PtyModem._write(self, piece)
            self.bytes_out += len(piece)


@dataclass(frozen=True)
class Run:
    elapsed_s: float
    limit_s: float
    wire_bytes: int

    @property
    def ratio(self) -> float:
        return self.elapsed_s / self.limit_s


def fan_out() -> tuple[list[CallOut], dict[str, str]]:
    numbers = {f"R{i:03d}": f"1380013{i:04d}" for i in range(FAN_OUT)}
    [text] = format_callout(
        priority=Priority.P1,
        incident_type=IncidentType.FIRE,
        code=incident_code(INCIDENT),
        address="塘厦镇林村新围路12号三楼",
        distance_m=340,
    )
    callouts = [
        CallOut(
            idempotency_key=CallOut.key_for(INCIDENT, 0, r),
            incident_id=INCIDENT,
            stage=0,
            radio_id=r,
            channel=Channel.SMS,
            text=text,
            priority=Priority.P1,
        )
        for r in numbers
    ]
    return callouts, numbers


async def one_run(baud: int) -> Run:
    callouts, numbers = fan_out()
    modem = ModemSimulator()
    async with PacedPtyModem(modem, baud) as host, ModemLink(host.path, baudrate=baud) as link:
        await link.send_sms("13800000000", "预热")  # init done, line idle
        host.reset_counts(expect=len(modem.received) + FAN_OUT)
        sent = asyncio.Event()
        count = 0

        async def on_sent(_item: Pending, _paged: Paged) -> None:
            nonlocal count
            count += 1
            if count == FAN_OUT:
                sent.set()

        async def on_failed(_item: Pending, error: RadioError) -> None:
            raise error

        loop = SendLoop(
            Pager(link, StaticDirectory.from_mapping(numbers)),
            on_sent=on_sent,
            on_failed=on_failed,
        )
        runner = asyncio.create_task(loop.run())
        try:
            decided = asyncio.get_running_loop().time()
            for offset, c in enumerate(callouts):
                loop.put(Pending(c, 0, offset))
            await asyncio.wait_for(sent.wait(), 30)
        finally:
            runner.cancel()
            await asyncio.gather(runner, return_exceptions=True)
        assert host.done_at is not None
        limit = host.bytes_at_done * 10 / baud
        return Run(host.done_at - decided, limit, host.bytes_at_done)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baud", type=int, default=115200)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument(
        "--out", type=Path, default=Path(__file__).parent / "results" / "radio.json"
    )
    args = parser.parse_args()
    runs = [asyncio.run(one_run(args.baud)) for _ in range(args.runs)]
    print(f"1+10 SMS fan-out at {args.baud} baud, {args.runs} runs")
    print(f"{'run':>3} {'bytes':>6} {'wire limit ms':>14} {'elapsed ms':>11} {'ratio':>6}")
    for i, r in enumerate(runs, 1):
        print(
            f"{i:>3} {r.wire_bytes:>6} {r.limit_s * 1000:>14.1f} "
            f"{r.elapsed_s * 1000:>11.1f} {r.ratio:>6.3f}"
        )
    median = statistics.median(r.ratio for r in runs)
    worst = max(r.ratio for r in runs)
    ok = median <= TARGET_RATIO
    print(f"median ratio {median:.3f}, worst {worst:.3f}; target <= {TARGET_RATIO}: "
          f"{'met' if ok else 'MISSED'}")  # fmt: skip
    doc: dict[str, Any] = {
        "benchmark": "radio fan-out: decision to last byte vs wire time",
        "baud": args.baud,
        "fan_out": FAN_OUT,
        "target_ratio": TARGET_RATIO,
        "median_ratio": round(median, 4),
        "worst_ratio": round(worst, 4),
        "met": ok,
        "runs": [
            {
                "wire_bytes": r.wire_bytes,
                "wire_limit_ms": round(r.limit_s * 1000, 2),
                "elapsed_ms": round(r.elapsed_s * 1000, 2),
                "ratio": round(r.ratio, 4),
            }
            for r in runs
        ],
        "python": sys.version.split()[0],
        "platform": platform.platform(),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
