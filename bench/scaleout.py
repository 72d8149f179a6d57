"""Scale-out over dispatch areas: eight generated towns drained by one worker, then by
two workers in one consumer group, on the real broker in one run (issue 11).

    .venv/bin/python bench/scaleout.py [--towns 8] [--incidents 8000] [--out FILE]

Uses ENGINE_KAFKA_BOOTSTRAP if set, else starts the local broker on free ports. The
towns are generated (`engine registry generate`, full Tangxia-sized towns, synthetic
outlines); their ids are chosen so that each hashes to a partition of its own of an
8-partition ``incidents`` (Kafka's murmur2 of the key), so two workers get four towns
each. Each run: the incidents (spread over every town, keyed by area, each closed five
later) are produced first; then the worker(s) start; reported: incidents decided per
second, first to last decision seen by a read-committed consumer.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer  # noqa: E402

from bench.kafka_bench import bench_broker, machine  # noqa: E402
from engine.config import Settings  # noqa: E402
from engine.geo.areas import AREA_FILE, Area, load_area  # noqa: E402
from engine.kafka.connection import consumer_kwargs  # noqa: E402
from engine.kafka.topics import ensure_topics  # noqa: E402
from engine.models import Incident  # noqa: E402
from engine.registry.generate import generate, write_registry  # noqa: E402
from engine.streams.events import AreaEvent  # noqa: E402
from engine.streams.tasks import area_partition  # noqa: E402
from tests.worker_process import WorkerProcess, write_plan  # noqa: E402


def town_ids(n: int) -> list[str]:
    """n town ids, each on a partition of its own among n."""
    chosen: dict[int, str] = {}
    k = 0
    while len(chosen) < n:
        name = f"town{k:02d}"
        chosen.setdefault(area_partition(name, n), name)
        k += 1
    return [chosen[p] for p in sorted(chosen)]


def make_towns(root: Path, n: int) -> list[Path]:
    dirs = []
    for i, town in enumerate(town_ids(n)):
        out = root / town
        write_registry(out, generate(town, 300 + i))
        dirs.append(out)
    return dirs


def spread(areas: list[Area], n: int) -> list[Incident]:
    out = []
    for k in range(n):
        area = areas[k % len(areas)]
        min_lat, min_lon, max_lat, max_lon = area.bbox()
        i = k // len(areas)
        while True:
            lat = min_lat + (max_lat - min_lat) * ((i * 37) % 101) / 101
            lon = min_lon + (max_lon - min_lon) * ((i * 61) % 103) / 103
            i += 7
            if area.contains(lat, lon):
                break
        out.append(Incident.model_validate({
            "id": f"INC-S-{k:06d}", "type": ("fire", "theft", "fight", "medical")[k % 4],
            "priority": ("P1", "P2", "P3")[k % 3], "location": {"lat": lat, "lon": lon},
            "area": area.id, "raised_at": datetime.now(UTC),
        }))  # fmt: skip
    return out


async def produce(settings: Settings, items: list[Incident]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, linger_ms=5)
    await producer.start()
    try:
        per_area: dict[str, list[Incident]] = {}
        for incident in items:
            assert incident.area is not None
            key = incident.area.encode()
            await producer.send(settings.topic("incidents"), incident.to_json_bytes(), key=key)
            earlier = per_area.setdefault(incident.area, [])
            earlier.append(incident)
            if len(earlier) > 5:
                close = AreaEvent(kind="close", at=datetime.now(UTC), area=incident.area,
                                  incident_id=earlier[-6].id, who="bench")  # fmt: skip
                await producer.send(settings.topic("area-events"), close.to_bytes(), key=key)
        await producer.flush()
    finally:
        await producer.stop()


async def drained(settings: Settings, ids: set[str], within_s: float) -> list[float]:
    """Wall times at which a read-committed reader saw each stage-0 decision."""
    consumer = AIOKafkaConsumer(settings.topic("decisions"), group_id=None,
                                **consumer_kwargs(settings))  # fmt: skip
    await consumer.start()
    seen: dict[str, float] = {}
    try:
        deadline = time.monotonic() + within_s
        while len(seen) < len(ids) and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=200)
            now = time.time()
            for records in batch.values():
                for r in records:
                    value = json.loads(r.value)
                    if value["stage"] == 0:
                        seen.setdefault(value["incident_id"], now)
    finally:
        await consumer.stop()
    return sorted(seen.values())


def run(bootstrap: str, root: Path, registries: list[Path], items: list[Incident],
        workers: int) -> dict[str, Any]:  # fmt: skip
    workdir = Path(tempfile.mkdtemp(dir=root))
    settings = Settings(kafka_bootstrap=bootstrap, topic_prefix=f"s-{uuid.uuid4().hex[:8]}-",
                        partitions=len(registries), data_dir=workdir)  # fmt: skip
    assert asyncio.run(ensure_topics(settings)).ok
    asyncio.run(produce(settings, items))
    plan = write_plan(workdir, 3600)
    procs = [WorkerProcess(settings, workdir / f"w{n}.log", plan=plan, registries=registries)
             for n in range(workers)]  # fmt: skip

    async def go() -> list[float]:
        task = asyncio.create_task(drained(settings, {i.id for i in items}, 900))
        await asyncio.sleep(0.5)
        for p in procs:  # started together: one rebalance, then each its own towns
            p.launch()
        for p in procs:
            await asyncio.to_thread(p.wait_ready, 300)
        return await task

    try:
        times = asyncio.run(go())
    finally:
        for p in procs:
            if p.proc is not None and p.proc.poll() is None:
                p.stop()
    span = times[-1] - times[0]
    return {"workers": workers, "towns": len(registries), "incidents": len(items),
            "decided": len(times), "per_second": round((len(times) - 1) / span, 1)}  # fmt: skip


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--towns", type=int, default=8)
    ap.add_argument("--incidents", type=int, default=8000)
    ap.add_argument("--out", default=str(REPO / "bench" / "results" / "scaleout.json"))
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="bench-scaleout-"))
    registries = make_towns(root, args.towns)
    items = spread([load_area(r / AREA_FILE) for r in registries], args.incidents)
    result: dict[str, Any] = {"machine": machine(), "runs": []}
    with bench_broker(root) as bootstrap:
        for workers in (1, 2):
            row = run(bootstrap, root, registries, items, workers)
            result["runs"].append(row)
            print(json.dumps(row), flush=True)
    one, two = (r["per_second"] for r in result["runs"])
    result["ratio_two_to_one"] = round(two / one, 2)
    print(f"\n{args.towns} towns: one worker {one}/s, two workers {two}/s: "
          f"{result['ratio_two_to_one']}x (target >= 1.6x)")  # fmt: skip
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
