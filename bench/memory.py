"""Worker memory (issue 11): resident set of the worker's process with the Tangxia
registry, and of the worker's in-memory part with a generated 100k-zone, 1M-unit town.

    .venv/bin/python bench/memory.py [--out bench/results/memory.json]

1. ``engine worker`` on data/tangxia against the broker (ENGINE_KAFKA_BOOTSTRAP, else
   the local broker on free ports): VmRSS once ready and idle.
2. A 100k-zone town (bench/rules.py's ``synthetic_registry``: 100k zones with 10 linked
   units each, 100k door-front points, 5k schools, 10k patrol bases, 2k equipment
   points, 5k observers) built into a World and an AreaCore in a fresh process, as the
   worker holds them, without Kafka clients (which add what the relay in bench/worker.py
   shows, about 45 MB): VmRSS and VmHWM after a garbage collection. No registry
   directory that size exists to start a real worker with; the registry is built
   in memory instead of read from files.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.kafka_bench import bench_broker, machine  # noqa: E402
from bench.worker import namespace  # noqa: E402
from tests.worker_process import WorkerProcess  # noqa: E402


def status_mb(pid: int) -> dict[str, float]:
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = round(int(value.split()[0]) / 1024, 1)
    return out


def tangxia_worker(bootstrap: str, root: Path) -> dict[str, Any]:
    workdir = root / uuid.uuid4().hex[:8]
    workdir.mkdir()
    settings = namespace(bootstrap, workdir)
    worker = WorkerProcess(settings, workdir / "worker.log")
    worker.start(timeout=180)
    try:
        assert worker.proc is not None
        return {"what": "engine worker, data/tangxia, ready and idle", **status_mb(worker.proc.pid)}
    finally:
        worker.stop()


BIG = """
import gc, json, random, sys
sys.path.insert(0, sys.argv[1])
from bench.rules import synthetic_registry
from engine.rules.plan import load_plan
from engine.rules.world import World
from engine.streams.core import AreaCore
world = World.build(synthetic_registry(random.Random(7), 100_000))
core = AreaCore({"bench": world}, load_plan(), {})
gc.collect()
counts = {"placed": len(world.registry.placed), "volunteers": len(world.registry.volunteers)}
status = {}
for line in open("/proc/self/status"):
    key, _, value = line.partition(":")
    if key in ("VmRSS", "VmHWM"):
        status[key] = round(int(value.split()[0]) / 1024, 1)
print(json.dumps({**counts, **status}))
"""


def big_town() -> dict[str, Any]:
    out = subprocess.run([sys.executable, "-c", BIG, str(REPO)], capture_output=True,
                         text=True, check=True, timeout=1800)  # fmt: skip
    return {"what": "World + AreaCore, 100k zones, 1M units (in memory)",
            **json.loads(out.stdout.strip().splitlines()[-1])}  # fmt: skip


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--out", default=str(REPO / "bench" / "results" / "memory.json"))
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="bench-memory-"))
    with bench_broker(root) as bootstrap:
        rows = [tangxia_worker(bootstrap, root)]
    rows.append(big_town())
    for row in rows:
        print(json.dumps(row), flush=True)
    result = {"machine": machine(), "rows": rows, "target_mb": 300}
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
