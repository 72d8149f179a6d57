"""Gateway chaos: faults against a real `engine gateway` process, a real broker and the
handset simulator on a real pty; every call-out must be delivered exactly once.

    .venv/bin/python bench/chaos.py [--kills 10] [--unplugs 10] [--reboots 3] [--out FILE]

Faults, in this order, each during an 11-recipient fan-out (a "1+10" call-out):

- SIGKILL between "modem accepted" and "offset committed": the sent log is watched;
  when it grows, the gateway is frozen (SIGSTOP) and, if no SMS is half-way through
  the modem (the one window no gateway can close: the module sent it and died before
  ``+CMGS`` came back), killed (SIGKILL). That the kill landed before the commit is
  checked afterwards against the group's committed offsets; kills that did not land
  are repeated. The gateway is restarted after each kill.
- unplug: the pty vanishes when the modem receives the n-th ``AT+CMGS``, for 0.3 s.
- module reboot: the module restarts (settings lost, deaf while booting) mid fan-out.
- garbled bytes: random noise from the module every 0.2 s throughout, and bad records
  on ``callouts`` (not JSON, not a CallOut, too long, unknown radio, stale): each must
  be dead-lettered with a reason, none may crash the gateway.

Counts: call-outs published; delivered (distinct ``sent`` Acks: the module took it);
duplicates (SMS received more than once for one call-out); lost (never received); crashes (gateway
exits nobody asked for). Prints a table and writes JSON (default
bench/results/chaos.json). Uses ``ENGINE_KAFKA_BOOTSTRAP`` if set, else starts the
local broker on free ports in a temporary directory (and stops it).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from engine.broker.local import LocalBroker
from engine.config import Settings
from engine.kafka.connection import client_kwargs
from engine.kafka.produce import producer
from engine.kafka.tail import tail
from engine.kafka.topics import ensure_topics
from engine.models import CallOut, Channel, Priority
from engine.radio.reply_codes import reply_code, with_code
from engine.radio.simulator import ModemSimulator, PtyModem

REPO = Path(__file__).resolve().parents[1]
REGISTRY = REPO / "data" / "tangxia"
FAN_OUT = 11
KEY = "chaos-reply-key-0123456789"
GROUP = "radio-gateway"
RADIO_ID = "CHAOS"
TEXT = "[塘厦义警]P1 火情 #{code} 塘厦镇林村新围路12号 478米 回1接警 2不能 3到场"
# Line noise, not forged answers: a well-formed "OK" or "+CMT:" header from the module
# is no longer garbage but a protocol the module speaks wrongly.
NOISE = [b"\xff\xfe\x00", b"\r\nRING\r\n", b"\x00\x00\x00", b"\x1a\x1b", b"\r\n\x80\x81"]
WITHIN = float(os.environ.get("CHAOS_WITHIN", "300"))


@dataclass
class Report:
    faults: Counter[str] = field(default_factory=Counter)
    kills_tried: int = 0
    callouts: int = 0
    delivered: int = 0
    duplicates: int = 0
    lost: int = 0
    bad_inputs: int = 0
    bad_records: int = 0
    bad_refused: int = 0
    crashes: int = 0
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return (
            self.duplicates == 0
            and self.lost == 0
            and self.crashes == 0
            and self.delivered == self.callouts
            and self.bad_refused == self.bad_records
        )

    def table(self) -> str:
        faults = ", ".join(f"{n} {k}" for k, n in self.faults.items())
        rows = [
            ("faults injected", f"{sum(self.faults.values())} ({faults})"),
            ("call-outs", str(self.callouts)),
            ("delivered", str(self.delivered)),
            ("duplicates", str(self.duplicates)),
            ("lost", str(self.lost)),
            (
                "bad inputs tried",
                f"{self.bad_inputs} ({self.bad_refused} Kafka records "
                "dead-lettered, the rest serial noise)",
            ),
            ("crashes", str(self.crashes)),
        ]
        width = max(len(k) for k, _ in rows)
        return "\n".join(f"| {k.ljust(width)} | {v} |" for k, v in rows)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextlib.contextmanager
def broker(tmp: Path) -> Iterator[str]:
    external = os.environ.get("ENGINE_KAFKA_BOOTSTRAP")
    if external:
        yield external
        return
    settings = Settings(data_dir=tmp, broker_port=free_port(), broker_controller_port=free_port())
    local = LocalBroker(settings)
    local.start()
    try:
        yield local.bootstrap
    finally:
        local.stop()


def radios(n: int) -> list[tuple[str, str]]:
    with (REGISTRY / "radios.csv").open(encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    return [(r["id"], r["sms_number"]) for r in rows[:n]]


class GatewayProcess:
    """`engine gateway` as a real process; its exits are recorded."""

    def __init__(self, settings: Settings, device: str, log: Path) -> None:
        self.settings = settings
        self.device = device
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None
        self.unexpected_exits: list[int] = []
        self.sent_log = settings.data_dir / "radio-gateway" / f"sent-{RADIO_ID}.jsonl"
        self._size = -1
        self._lines = 0

    def start(self) -> None:
        env = {
            **os.environ,
            "ENGINE_KAFKA_BOOTSTRAP": self.settings.kafka_bootstrap,
            "ENGINE_TOPIC_PREFIX": self.settings.topic_prefix,
            "ENGINE_PARTITIONS": str(self.settings.partitions),
            "ENGINE_DATA_DIR": str(self.settings.data_dir),
            "ENGINE_RADIO_REPLY_KEY": KEY,
        }
        args = [
            *(sys.executable, "-m", "engine.cli", "gateway", "--device", self.device),
            *("--registry", str(REGISTRY), "--radio-id", RADIO_ID, "--metrics-port", "0"),
        ]
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(args, env=env, stdout=out, stderr=subprocess.STDOUT)

    def check(self) -> None:
        """Record an exit nobody asked for, and restart."""
        if self.proc is not None and self.proc.poll() is not None:
            self.unexpected_exits.append(self.proc.returncode)
            self.start()

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait()
        self.proc = None

    def stop(self) -> None:
        if self.proc is None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def lines(self) -> int:
        """Lines in the sent log, cheaply: re-counted only when its size changed."""
        try:
            size = self.sent_log.stat().st_size
        except FileNotFoundError:
            return 0
        if size != self._size:
            self._size = size
            self._lines = self.sent_log.read_bytes().count(b"\n")
        return self._lines

    def sent_keys(self) -> list[str]:
        try:
            raw = self.sent_log.read_bytes()
        except FileNotFoundError:
            return []
        keys = []
        for line in raw.splitlines():
            with contextlib.suppress(ValueError, KeyError, TypeError):
                keys.append(json.loads(line)["key"])
        return keys


class Chaos:
    def __init__(self, settings: Settings, tmp: Path, seed: int) -> None:
        self.settings = settings
        self.tmp = tmp
        self.rng = random.Random(seed)
        self.modem = ModemSimulator()
        self.report = Report()
        self.radios = radios(FAN_OUT)
        self.expected: dict[tuple[str, str], str] = {}  # (number, text) -> key
        self.offsets: dict[str, tuple[int, int]] = {}  # key -> (partition, offset)
        self.incidents = 0

    # -- inputs --------------------------------------------------------------------------

    def incident(self) -> str:
        self.incidents += 1
        return "INC-20261201-" + f"{self.incidents:06d}".translate(str.maketrans("01", "XY"))

    def fan_out(self) -> list[CallOut]:
        incident = self.incident()
        out = []
        for radio_id, number in self.radios:
            key = CallOut.key_for(incident, 0, radio_id)
            text = TEXT.format(code=incident[-4:])
            code = reply_code(KEY.encode(), incident, 0, radio_id)
            self.expected[(number, with_code(text, incident, code))] = key
            out.append(
                CallOut(
                    idempotency_key=key, incident_id=incident, stage=0, radio_id=radio_id,
                    channel=Channel.SMS, text=text, priority=Priority.P1,
                )
            )  # fmt: skip
        return out

    async def publish(self, callouts: list[CallOut]) -> None:
        async with producer(self.settings) as p:
            for c in callouts:
                meta = await p.send_and_wait(
                    self.settings.topic("callouts"), c.to_json_bytes(), key=c.radio_id.encode()
                )
                self.offsets[c.idempotency_key] = (meta.partition, meta.offset)
        self.report.callouts += len(callouts)

    async def publish_bad(self) -> None:
        radio_id = self.radios[0][0]
        incident = self.incident()
        base = CallOut(
            idempotency_key=f"{incident}/0/{radio_id}", incident_id=incident, stage=0,
            radio_id=radio_id, channel=Channel.SMS, text="#XXXX", priority=Priority.P1,
        ).model_dump(mode="json")  # fmt: skip
        old = (datetime.now(UTC) - timedelta(hours=3)).isoformat()
        bad: list[bytes] = [
            b"\xff\xfe not json",
            b"{}",
            json.dumps({**base, "priority": "P9"}).encode(),
            json.dumps({**base, "text": "长" * 2000}).encode(),
            json.dumps(
                {**base, "radio_id": "R-NOBODY", "idempotency_key": "x/0/R-NOBODY"}
            ).encode(),
            json.dumps(
                {**base, "radio_id": "sms:X", "idempotency_key": "x/0/sms:X", "to": "13700000000"}
            ).encode(),
            json.dumps({**base, "idempotency_key": "x/0/stale", "decided_at": old}).encode(),
        ]
        async with producer(self.settings) as p:
            for value in bad:
                await p.send_and_wait(self.settings.topic("callouts"), value, key=b"bad")
        self.report.bad_inputs += len(bad)
        self.report.bad_records = len(bad)

    # -- faults --------------------------------------------------------------------------

    async def garble(self, host: PtyModem) -> None:
        while True:
            await asyncio.sleep(0.2)
            if host.plugged:
                junk = self.rng.choice(NOISE) + self.rng.randbytes(self.rng.randint(1, 8))
                host.inject_noise(junk.replace(b"OK", b"KO"))
                self.report.bad_inputs += 1
                self.report.faults["garbled bursts"] += 1

    async def committed(self) -> dict[int, int]:
        topic = self.settings.topic("callouts")
        consumer = AIOKafkaConsumer(**client_kwargs(self.settings), group_id=GROUP)
        await consumer.start()
        try:
            out = {}
            for p in range(self.settings.partitions):
                out[p] = await consumer.committed(TopicPartition(topic, p)) or 0
            return out
        finally:
            await consumer.stop()

    async def kill_in_window(self, gw: GatewayProcess, wanted: int) -> None:
        """SIGKILL right after a page was logged and before its offset was committed."""
        landed = 0
        while landed < wanted:
            await self.publish(self.fan_out())
            gw.check()
            target = gw.lines() + self.rng.randint(1, FAN_OUT - 1)
            killed = False
            async with asyncio.timeout(WITHIN):
                while not killed:
                    if gw.lines() < target:
                        await asyncio.sleep(0.0005)
                        gw.check()
                        continue
                    gw.signal(signal.SIGSTOP)
                    await asyncio.sleep(0.1)  # let the module take whatever is on the line
                    logged = set(gw.sent_keys())
                    received = {(r.number, r.text) for r in self.modem.received}
                    in_flight = [
                        k for nt, k in self.expected.items() if k not in logged and nt in received
                    ]
                    if in_flight:
                        gw.signal(signal.SIGCONT)  # the window nobody can close: not this one
                        target += 1
                        await asyncio.sleep(0)
                        continue
                    gw.kill()
                    killed = True
            self.report.kills_tried += 1
            committed = await self.committed()
            if any(self.offsets[k][1] >= committed[self.offsets[k][0]] for k in logged
                   if k in self.offsets):  # fmt: skip
                landed += 1
                self.report.faults["SIGKILL after modem accepted, before commit"] += 1
            gw.start()

    async def during_fan_out(
        self, gw: GatewayProcess, host: PtyModem, fault: str, times: int
    ) -> None:
        """``fault`` ("unplug" or "reboot") when the modem receives the n-th AT+CMGS of a
        fan-out (n random); then every call-out must still arrive, once."""
        for _ in range(times):
            seen = 0
            nth = self.rng.randint(2, FAN_OUT - 1)
            done = asyncio.Event()

            def strike(line: str, nth: int = nth, done: asyncio.Event = done) -> None:
                nonlocal seen
                if line.upper().startswith("AT+CMGS"):
                    seen += 1
                    if seen == nth:
                        host.unplug() if fault == "unplug" else host.reboot()
                        done.set()

            host.on_command = strike
            await self.publish(self.fan_out())
            async with asyncio.timeout(WITHIN):
                while not done.is_set():
                    gw.check()
                    await asyncio.sleep(0.05)
            host.on_command = None
            if fault == "unplug":
                self.report.faults["unplugged during a fan-out"] += 1
                await asyncio.sleep(0.3)
                host.replug()
            else:
                self.report.faults["module rebooted during a fan-out"] += 1
            await self.all_received(gw)

    async def all_received(self, gw: GatewayProcess) -> None:
        async with asyncio.timeout(WITHIN):
            while True:
                gw.check()
                got = {(r.number, r.text) for r in self.modem.received}
                if all(k in got for k in self.expected):
                    return
                await asyncio.sleep(0.1)

    async def delivered_keys(self, n: int) -> set[str]:
        keys: set[str] = set()
        async for record in tail(
            self.settings, self.settings.topic("acks"), from_beginning=True, idle_timeout_s=5.0
        ):
            value = record["value"]
            if isinstance(value, dict) and value.get("kind") in ("sent", "delivered"):
                keys.add(str(value.get("idempotency_key")))
            if len(keys) >= n:
                break
        return keys

    async def dead_letters(self) -> int:
        """Distinct call-outs dead-lettered (a kill before the commit may write one twice:
        its offset is read again; the letter names the same partition and offset)."""
        seen: set[tuple[object, object]] = set()
        async for record in tail(
            self.settings, self.settings.topic("deadletter"), from_beginning=True,
            idle_timeout_s=5.0,
        ):  # fmt: skip
            value = record["value"]
            if isinstance(value, dict):
                seen.add((value.get("partition"), value.get("offset")))
        return len(seen)

    # -- the run -------------------------------------------------------------------------

    async def run(self, kills: int, unplugs: int, reboots: int) -> Report:
        started = time.monotonic()
        link = self.tmp / "ttyUSB0"
        async with PtyModem(self.modem, link=link) as host:
            gw = GatewayProcess(self.settings, str(link), self.tmp / "gateway.log")
            gw.start()
            noise = asyncio.create_task(self.garble(host))
            try:
                await self.publish_bad()
                await self.kill_in_window(gw, kills)
                await self.all_received(gw)
                await self.during_fan_out(gw, host, "unplug", unplugs)
                await self.during_fan_out(gw, host, "reboot", reboots)
                await self.all_received(gw)
                keys = set(self.expected.values())
                delivered = await self.delivered_keys(len(keys))
                self.report.bad_refused = await self.dead_letters()
            finally:
                noise.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await noise
                if gw.proc is not None:
                    gw.check()
                gw.stop()
        received = Counter((r.number, r.text) for r in self.modem.received)
        r = self.report
        r.callouts = len(self.expected)
        r.delivered = len(delivered & keys)
        r.duplicates = sum(max(0, received[k] - 1) for k in self.expected)
        r.lost = sum(1 for k in self.expected if received[k] == 0)
        r.crashes = len(gw.unexpected_exits)
        r.seconds = round(time.monotonic() - started, 1)
        return r


async def amain(args: argparse.Namespace, bootstrap: str, tmp: Path) -> Report:
    settings = Settings(
        kafka_bootstrap=bootstrap,
        topic_prefix=f"chaos-{uuid.uuid4().hex[:8]}-",
        partitions=2,
        data_dir=tmp / "data",
    )
    topics = await ensure_topics(settings)
    assert topics.ok, topics.mismatched
    chaos = Chaos(settings, tmp, args.seed)
    try:
        return await chaos.run(args.kills, args.unplugs, args.reboots)
    except BaseException:
        log = tmp / "gateway.log"
        if log.exists():
            print(log.read_text(errors="replace")[-4000:], file=sys.stderr)
        raise


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=10)
    parser.add_argument("--unplugs", type=int, default=10)
    parser.add_argument("--reboots", type=int, default=3)
    parser.add_argument("--seed", type=int, default=14)
    parser.add_argument("--workdir", type=Path, help="keep logs and data here (default: temp)")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "chaos.json")
    args = parser.parse_args()
    with contextlib.ExitStack() as stack:
        temp = tempfile.TemporaryDirectory(prefix="chaos-")
        tmp = args.workdir or Path(stack.enter_context(temp))
        tmp.mkdir(parents=True, exist_ok=True)
        bootstrap = stack.enter_context(broker(tmp))
        report = asyncio.run(amain(args, bootstrap, tmp))
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    print(f"gateway chaos, {stamp}, {report.seconds} s (kills tried: {report.kills_tried})")
    print(report.table())
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        data: dict[str, Any] = {
            **asdict(report),
            "faults": dict(report.faults),
            "at": stamp,
            "args": {k: v for k, v in vars(args).items() if k not in ("out", "workdir")},
        }
        args.out.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
