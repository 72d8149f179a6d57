"""Benchmark: decision to last byte of a 1+10 fan-out, against the serial wire limit.

    .venv/bin/python bench/radio.py [--baud 115200] [--runs 5] [--out FILE]

Two fan-outs: all SMS (below), and the Tangxia plan's channels (issue 13): the zone
team's talk group called by voice (``AT+POC`` join, PTT, espeak-ng's Mandarin audio, PTT
release) with its written record by SMS, and the ten linked units by SMS: one PoC group
call and eleven texts. The voice holds the air channel, not the serial line, so the
texts go out while it speaks; the limit of that fan-out is the larger of the serial
wire time and the time PTT must be held (audio plus tail, as the Voice reports it),
and "last" is whichever ends later: the 11th Ctrl-Z or the PTT release.

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
from engine.radio.directory import RadioEntry, StaticDirectory
from engine.radio.errors import RadioError
from engine.radio.gateway_queue import Pending
from engine.radio.pager import Paged, Pager
from engine.radio.poc import HexOpcodeDialect
from engine.radio.replies import incident_code
from engine.radio.send_loop import SendLoop
from engine.radio.simulator import ModemSimulator, PtyModem
from engine.radio.transport import ModemLink
from engine.radio.voice import Voice

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
    voice_s: float = 0.0
    texts_s: float | None = None
    """PoC fan-out: when the 11th text had crossed the wire (the voice did not hold it)"""

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


async def one_run_poc(baud: int) -> Run:
    """The plan's 1+10: the zone team's talk group by voice plus its SMS record, ten
    linked units by SMS."""
    callouts, numbers = fan_out()
    zone = callouts[0]
    group = zone.model_copy(
        update={"channel": Channel.POC_GROUP, "idempotency_key": zone.idempotency_key + "/poc"}
    )
    entries = [
        RadioEntry(r, n, poc_id=860100000 + i, talk_group=f"TG-{r}", talk_group_id=860200000 + i)
        for i, (r, n) in enumerate(numbers.items())
    ]
    modem = ModemSimulator()
    async with PacedPtyModem(modem, baud) as host, ModemLink(host.path, baudrate=baud) as link:
        await link.send_sms("13800000000", "预热")
        dialect = HexOpcodeDialect()
        for command in (dialect.open(), dialect.login()):
            await link.execute(command)
        host.reset_counts(expect=len(modem.received) + FAN_OUT)
        sent = asyncio.Event()
        count = 0
        voice_s = 0.0

        async def on_sent(_item: Pending, paged: Paged) -> None:
            nonlocal count, voice_s
            count += 1
            voice_s += paged.voice_seconds or 0.0
            if count == FAN_OUT + 1:
                sent.set()

        async def on_failed(_item: Pending, error: RadioError) -> None:
            raise error

        pager = Pager(link, StaticDirectory(entries), dialect=dialect, voice=Voice(tail=0.5))
        loop = SendLoop(pager, on_sent=on_sent, on_failed=on_failed)
        runner = asyncio.create_task(loop.run())
        try:
            decided = asyncio.get_running_loop().time()
            loop.put(Pending(group, 0, 0))
            for offset, c in enumerate(callouts, 1):
                loop.put(Pending(c, 0, offset))
            await asyncio.wait_for(sent.wait(), 120)
        finally:
            runner.cancel()
            await asyncio.gather(runner, return_exceptions=True)
        assert host.done_at is not None
        released = max(t for what, t in modem.ptt if what == "release")
        end = max(host.done_at, released)
        serial = host.bytes_at_done * 10 / baud
        return Run(
            end - decided,
            max(serial, voice_s),
            host.bytes_at_done,
            voice_s,
            host.done_at - decided,
        )


def _report(title: str, runs: list[Run]) -> dict[str, Any]:
    print(title)
    print(f"{'run':>3} {'bytes':>6} {'voice s':>8} {'limit ms':>9} {'elapsed ms':>11} {'ratio':>6}")
    for i, r in enumerate(runs, 1):
        print(
            f"{i:>3} {r.wire_bytes:>6} {r.voice_s:>8.2f} {r.limit_s * 1000:>9.1f} "
            f"{r.elapsed_s * 1000:>11.1f} {r.ratio:>6.3f}"
        )
    median = statistics.median(r.ratio for r in runs)
    worst = max(r.ratio for r in runs)
    ok = median <= TARGET_RATIO
    print(f"median ratio {median:.3f}, worst {worst:.3f}; target <= {TARGET_RATIO}: "
          f"{'met' if ok else 'MISSED'}")  # fmt: skip
    texts = [r.texts_s for r in runs if r.texts_s is not None]
    if texts:
        print(f"the 11 texts were through after {statistics.median(texts) * 1000:.0f} ms "
              "(median), while the group call was still being spoken")  # fmt: skip
    return {
        "median_ratio": round(median, 4),
        "worst_ratio": round(worst, 4),
        "met": ok,
        "runs": [
            {
                "wire_bytes": r.wire_bytes,
                "voice_s": round(r.voice_s, 3),
                "limit_ms": round(r.limit_s * 1000, 2),
                "elapsed_ms": round(r.elapsed_s * 1000, 2),
                "ratio": round(r.ratio, 4),
                "texts_done_ms": None if r.texts_s is None else round(r.texts_s * 1000, 2),
            }
            for r in runs
        ],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baud", type=int, default=115200)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument(
        "--out", type=Path, default=Path(__file__).parent / "results" / "radio.json"
    )
    args = parser.parse_args()
    poc_runs = [asyncio.run(one_run_poc(args.baud)) for _ in range(args.runs)]
    poc = _report(
        f"1+10 over PoC and SMS (1 group call + 11 texts) at {args.baud} baud, {args.runs} runs",
        poc_runs,
    )
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
        "poc_and_sms": {
            "fan_out": "1 PoC group call (espeak-ng, PTT) + 11 SMS",
            "limit": "max(serial wire time, PTT held: audio + tail)",
            **poc,
        },
        "python": sys.version.split()[0],
        "platform": platform.platform(),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n")
    return 0 if ok and poc["met"] else 1


if __name__ == "__main__":
    sys.exit(main())
