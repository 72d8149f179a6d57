"""Stream worker throughput and raise-to-decision latency on the real broker (issue 5).

    .venv/bin/python bench/worker.py [--incidents N] [--rate R] [--seconds S] [--out FILE]

Uses ENGINE_KAFKA_BOOTSTRAP if set, else starts the project's local broker on free
ports for the run. One `engine worker` process, one partition, its own topic prefix.

1. Throughput: N incidents are produced up front (spread over Tangxia, a mix of
   types), with operator "close" events for each incident five places behind it, so
   zone teams are freed as in a steady state; reported: incidents decided per second,
   first to last decision record.
2. Latency: incidents at a steady R per second for S seconds; reported: p50/p90/p99/max
   of (decision record timestamp - incident record timestamp), i.e. Kafka in, worker,
   Kafka out, as a consumer of `decisions` sees it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from aiokafka import AIOKafkaProducer  # noqa: E402

from engine.broker.local import LocalBroker  # noqa: E402
from engine.config import Settings  # noqa: E402
from engine.geo.areas import TANGXIA  # noqa: E402
from engine.kafka.tail import tail  # noqa: E402
from engine.kafka.topics import ensure_topics  # noqa: E402
from engine.models import Incident  # noqa: E402
from engine.streams.events import AreaEvent  # noqa: E402
from tests.kafka_broker import free_port  # noqa: E402
from tests.worker_process import WorkerProcess  # noqa: E402

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
            out.append(
                Incident.model_validate(
                    {
                        "id": f"INC-{tag}-{len(out):06d}",
                        "type": KINDS[len(out) % len(KINDS)],
                        "priority": ("P1", "P2", "P3")[len(out) % 3],
                        "location": {"lat": lat, "lon": lon},
                        "area": "tangxia",
                    }
                )
            )
    return out


async def produce(settings: Settings, items: list[Incident], rate: float | None) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, linger_ms=2)
    await producer.start()
    try:
        start = time.monotonic()
        for n, incident in enumerate(items):
            if rate is not None:
                await asyncio.sleep(max(0.0, start + n / rate - time.monotonic()))
            await producer.send(
                settings.topic("incidents"), incident.to_json_bytes(), key=b"tangxia"
            )
            if n >= 5:  # the operator closes an incident five places behind
                close = AreaEvent(kind="close", at=datetime.now(UTC), area="tangxia",
                                  incident_id=items[n - 5].id, who="bench")  # fmt: skip
                await producer.send(settings.topic("area-events"), close.to_bytes(), key=b"tangxia")
        await producer.flush()
    finally:
        await producer.stop()


async def decisions(settings: Settings, want: int, idle_s: float) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    async for r in tail(settings, settings.topic("decisions"), from_beginning=True,
                        max_records=want, idle_timeout_s=idle_s):  # fmt: skip
        out.append(r)
    return out


async def incident_times(settings: Settings, want: int) -> dict[str, float]:
    times = {}
    async for r in tail(settings, settings.topic("incidents"), from_beginning=True,
                        max_records=want, idle_timeout_s=10):  # fmt: skip
        times[r["value"]["id"]] = datetime.fromisoformat(r["timestamp"]).timestamp()
    return times


def run(settings: Settings, workdir: Path, n: int, rate: float, seconds: float) -> dict[str, Any]:
    asyncio.run(ensure_topics(settings))
    worker = WorkerProcess(settings, workdir / "worker.log", metrics_port=0)
    worker.start()
    try:
        batch = incidents(n, "T")
        asyncio.run(produce(settings, batch, rate=None))
        got = asyncio.run(decisions(settings, n, idle_s=60))
        stamps = sorted(datetime.fromisoformat(r["timestamp"]).timestamp() for r in got)
        throughput = (len(stamps) - 1) / (stamps[-1] - stamps[0]) if len(stamps) > 1 else 0.0

        paced = incidents(int(rate * seconds), "L")
        asyncio.run(produce(settings, paced, rate=rate))
        got = asyncio.run(decisions(settings, n + len(paced), idle_s=30))
        raised = asyncio.run(incident_times(settings, n + len(paced)))
        lat = sorted(
            datetime.fromisoformat(r["timestamp"]).timestamp() - raised[r["value"]["incident_id"]]
            for r in got
            if r["value"]["incident_id"].startswith("INC-L-") and r["value"]["stage"] == 0
        )
    finally:
        worker.stop()
    q = statistics.quantiles(lat, n=100, method="inclusive")
    return {
        "throughput_incidents_per_s": throughput,
        "throughput_incidents": n,
        "latency_rate_per_s": rate,
        "latency_samples": len(lat),
        "latency_ms": {
            "p50": q[49] * 1e3,
            "p90": q[89] * 1e3,
            "p99": q[98] * 1e3,
            "max": lat[-1] * 1e3,
        },
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--incidents", type=int, default=2000)
    ap.add_argument("--rate", type=float, default=20.0)
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--out", default=str(REPO / "bench" / "results" / "worker.json"))
    args = ap.parse_args()
    import os

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        bootstrap = os.environ.get("ENGINE_KAFKA_BOOTSTRAP")
        broker = None
        if not bootstrap:
            broker = LocalBroker(Settings(data_dir=work / "kafka", broker_port=free_port(),
                                          broker_controller_port=free_port()))  # fmt: skip
            broker.start()
            bootstrap = broker.bootstrap
        settings = Settings(
            kafka_bootstrap=bootstrap,
            topic_prefix=f"bench-{uuid.uuid4().hex[:8]}-",
            partitions=1,
            data_dir=work,
        )
        try:
            result = run(settings, work, args.incidents, args.rate, args.seconds)
        finally:
            if broker is not None:
                broker.stop()
    lat = result["latency_ms"]
    print(f"throughput: {result['throughput_incidents_per_s']:.0f} incidents/s "
          f"({result['throughput_incidents']} incidents, one worker, one partition)")  # fmt: skip
    print(f"latency at {result['latency_rate_per_s']:.0f}/s ({result['latency_samples']} "
          f"incidents): p50 {lat['p50']:.1f} ms, p90 {lat['p90']:.1f} ms, "
          f"p99 {lat['p99']:.1f} ms, max {lat['max']:.1f} ms")  # fmt: skip
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    meta = {"python": sys.version.split()[0], "machine": platform.machine()}
    out.write_text(json.dumps({"meta": meta, **result}, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
