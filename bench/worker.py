"""The stream worker beside its floor, on the real broker, in one run (issue 11).

    .venv/bin/python bench/worker.py [--rates 100,500,1000] [--seconds 60] [--drain 20000]
                                     [--out bench/results/worker.json]

Uses ENGINE_KAFKA_BOOTSTRAP if set, else starts the project's local broker on free
ports. Two subjects, each a process of its own, each run on topics of its own (one
partition, as Tangxia's incidents all live on one):

- ``relay``: bench/relay.py, a bare aiokafka read-process-write relay (the floor);
- ``worker``: ``engine worker`` on the Tangxia registry.

1. Latency at a steady rate R for S seconds, after a warm-up of 200: Tangxia incidents
   (a mix of types and priorities), each closed by the operator five incidents later
   (so zone teams are freed, as in a steady state; the relay ignores the closes).
   Reported: p50/p95/p99 of
   (moment a read-committed consumer of ``decisions`` receives the incident's decision
   - moment the bench sent the incident), and the p99 of the first and last fifth of the
   run (growing lag shows as a growing p99).
2. Backlog drain: N incidents (and closes) produced before the subject starts; reported:
   incidents decided per second, first to last decision received.
3. Worker RSS (VmHWM, peak) after the drain.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition  # noqa: E402

from bench.kafka_bench import bench_broker, machine  # noqa: E402
from engine.config import Settings  # noqa: E402
from engine.kafka.connection import consumer_kwargs  # noqa: E402
from engine.kafka.topics import ensure_topics  # noqa: E402
from engine.models import Incident  # noqa: E402
from engine.streams.events import AreaEvent  # noqa: E402
from tests.areas import TANGXIA  # noqa: E402
from tests.worker_process import WorkerProcess, write_plan  # noqa: E402

WARM_UP = 200
"""Incidents sent (at 100/s) and decided before the timed run: first-use caches in the
rules and the first transactions are not what a steady rate costs."""
KINDS = ("fire", "theft", "fight", "medical", "traffic", "other", "suspicious")


def incidents(n: int, tag: str) -> list[Incident]:
    min_lat, min_lon, max_lat, max_lon = TANGXIA.bbox()
    out: list[Incident] = []
    i = 0
    while len(out) < n:
        lat = min_lat + (max_lat - min_lat) * ((i * 37) % 101) / 101
        lon = min_lon + (max_lon - min_lon) * ((i * 61) % 103) / 103
        i += 1
        if TANGXIA.contains(lat, lon):
            out.append(Incident.model_validate({
                "id": f"INC-{tag}-{len(out):06d}", "type": KINDS[len(out) % len(KINDS)],
                "priority": ("P1", "P2", "P3")[len(out) % 3],
                "location": {"lat": lat, "lon": lon}, "area": "tangxia",
            }))  # fmt: skip
    return out


async def produce(
    settings: Settings, items: list[Incident], rate: float | None
) -> dict[str, float]:
    """Send the incidents (and a close five behind each); id -> wall time of the send."""
    sent: dict[str, float] = {}
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, linger_ms=1)
    await producer.start()
    try:
        start = time.monotonic()
        for n, incident in enumerate(items):
            if rate is not None:
                await asyncio.sleep(max(0.0, start + n / rate - time.monotonic()))
            value = incident.model_copy(update={"raised_at": datetime.now(UTC)}).to_json_bytes()
            sent[incident.id] = time.time()
            await producer.send(settings.topic("incidents"), value, key=b"tangxia")
            if n >= 5:
                close = AreaEvent(kind="close", at=datetime.now(UTC), area="tangxia",
                                  incident_id=items[n - 5].id, who="bench")  # fmt: skip
                await producer.send(settings.topic("area-events"), close.to_bytes(), key=b"tangxia")
        await producer.flush()
    finally:
        await producer.stop()
    return sent


class Collector:
    """A read-committed consumer of ``decisions``: incident id -> wall time received."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.received: dict[str, float] = {}
        self._task: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()

    async def __aenter__(self) -> Collector:
        self._task = asyncio.create_task(self._run())
        await self._ready.wait()
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    async def _run(self) -> None:
        consumer = AIOKafkaConsumer(group_id=None, **consumer_kwargs(self.settings))
        await consumer.start()
        try:
            tp = TopicPartition(self.settings.topic("decisions"), 0)
            consumer.assign([tp])
            await consumer.seek_to_beginning(tp)
            self._ready.set()
            while True:
                batch = await consumer.getmany(timeout_ms=100)
                now = time.time()
                for records in batch.values():
                    for r in records:
                        iid = json.loads(r.value)["incident_id"]
                        if json.loads(r.value).get("stage", 0) == 0:
                            self.received.setdefault(iid, now)
        finally:
            await consumer.stop()

    async def wait_for(self, ids: set[str], within_s: float) -> None:
        deadline = time.monotonic() + within_s
        while time.monotonic() < deadline:  # polls a dict the consumer task fills
            if ids <= set(self.received):
                return
            await asyncio.sleep(0.2)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


class Subject:
    def __init__(self, kind: str, settings: Settings, workdir: Path) -> None:
        self.kind, self.settings, self.workdir = kind, settings, workdir
        self.worker: WorkerProcess | None = None
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        if self.kind == "worker":
            plan = write_plan(self.workdir, 3600)
            self.worker = WorkerProcess(self.settings, self.workdir / "worker.log", plan=plan)
            self.worker.start(timeout=180)
            return
        env = {**os.environ, "ENGINE_KAFKA_BOOTSTRAP": self.settings.kafka_bootstrap,
               "ENGINE_TOPIC_PREFIX": self.settings.topic_prefix}  # fmt: skip
        log = (self.workdir / "relay.log").open("wb")
        self.proc = subprocess.Popen([sys.executable, str(REPO / "bench" / "relay.py")],
                                     env=env, stdout=log, stderr=subprocess.STDOUT)  # fmt: skip
        while "relay ready" not in (self.workdir / "relay.log").read_text(errors="replace"):
            if self.proc.poll() is not None:
                raise RuntimeError((self.workdir / "relay.log").read_text())
            time.sleep(0.1)

    @property
    def pid(self) -> int:
        proc = self.worker.proc if self.worker else self.proc
        assert proc is not None
        return proc.pid

    def peak_rss_mb(self) -> float:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def stop(self) -> None:
        if self.worker is not None:
            self.worker.stop()
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=30)


def namespace(bootstrap: str, workdir: Path) -> Settings:
    settings = Settings(kafka_bootstrap=bootstrap, topic_prefix=f"b-{uuid.uuid4().hex[:8]}-",
                        partitions=1, data_dir=workdir)  # fmt: skip
    report = asyncio.run(ensure_topics(settings))
    assert report.ok, report.mismatched
    return settings


def latency_run(
    kind: str, bootstrap: str, root: Path, rate: float, seconds: float
) -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(dir=root))
    settings = namespace(bootstrap, workdir)
    subject = Subject(kind, settings, workdir)
    subject.start()
    items = incidents(int(rate * seconds), f"{kind[0].upper()}{int(rate)}")

    async def go() -> dict[str, Any]:
        async with Collector(settings) as collector:
            warm = incidents(WARM_UP, f"W{kind[0].upper()}{int(rate)}")
            await collector.wait_for(set(await produce(settings, warm, 100)), within_s=120)
            sent = await produce(settings, items, rate)
            await collector.wait_for(set(sent), within_s=120)
        lat = [collector.received[i] - t for i, t in sent.items() if i in collector.received]
        fifth = max(1, len(items) // 5)
        ordered = [
            collector.received[i.id] - sent[i.id] for i in items if i.id in collector.received
        ]
        return {
            "subject": kind, "rate": rate, "seconds": seconds, "incidents": len(items),
            "decided": len(lat),
            "p50_ms": round(pct(lat, 0.50) * 1000, 1), "p95_ms": round(pct(lat, 0.95) * 1000, 1),
            "p99_ms": round(pct(lat, 0.99) * 1000, 1), "max_ms": round(max(lat) * 1000, 1),
            "p99_first_fifth_ms": round(pct(ordered[:fifth], 0.99) * 1000, 1),
            "p99_last_fifth_ms": round(pct(ordered[-fifth:], 0.99) * 1000, 1),
        }  # fmt: skip

    try:
        return asyncio.run(go())
    finally:
        subject.stop()


def drain_run(kind: str, bootstrap: str, root: Path, n: int) -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(dir=root))
    settings = namespace(bootstrap, workdir)
    items = incidents(n, f"D{kind[0].upper()}")
    asyncio.run(produce(settings, items, None))
    subject = Subject(kind, settings, workdir)

    async def go() -> dict[str, Any]:
        async with Collector(settings) as collector:
            subject.start()
            await collector.wait_for({i.id for i in items}, within_s=600)
        times = sorted(collector.received.values())
        span = times[-1] - times[0] if len(times) > 1 else float("nan")
        return {"subject": kind, "incidents": n, "decided": len(times),
                "per_second": round((len(times) - 1) / span, 1) if span > 0 else None,
                "peak_rss_mb": round(subject.peak_rss_mb(), 1)}  # fmt: skip

    try:
        return asyncio.run(go())
    finally:
        subject.stop()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--rates", default="100,500,1000")
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--drain", type=int, default=20_000)
    ap.add_argument("--out", default=str(REPO / "bench" / "results" / "worker.json"))
    args = ap.parse_args()
    rates = [float(r) for r in args.rates.split(",") if r]
    root = Path(tempfile.mkdtemp(prefix="bench-worker-"))
    result: dict[str, Any] = {"machine": machine(), "latency": [], "drain": []}
    with bench_broker(root) as bootstrap:
        for rate in rates:
            for kind in ("relay", "worker"):
                row = latency_run(kind, bootstrap, root, rate, args.seconds)
                result["latency"].append(row)
                print(json.dumps(row), flush=True)
        if args.drain:
            for kind in ("relay", "worker"):
                row = drain_run(kind, bootstrap, root, args.drain)
                result["drain"].append(row)
                print(json.dumps(row), flush=True)
    print(f"\n{'rate/s':>7} {'subject':>7} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} "
          f"{'ratio p99':>9} {'p99 1st/5th':>11} {'p99 last/5th':>12}")  # fmt: skip
    floor = {r["rate"]: r for r in result["latency"] if r["subject"] == "relay"}
    for r in result["latency"]:
        ratio = r["p99_ms"] / floor[r["rate"]]["p99_ms"] if r["rate"] in floor else float("nan")
        r["ratio_p99_to_floor"] = round(ratio, 2)
        print(f"{r['rate']:>7.0f} {r['subject']:>7} {r['p50_ms']:>8} {r['p95_ms']:>8} "
              f"{r['p99_ms']:>8} {ratio:>9.2f} {r['p99_first_fifth_ms']:>11} "
              f"{r['p99_last_fifth_ms']:>12}")  # fmt: skip
    for r in result["drain"]:
        print(f"drain {r['subject']:>7}: {r['per_second']}/s over {r['decided']} incidents, "
              f"peak RSS {r['peak_rss_mb']} MB")  # fmt: skip
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
