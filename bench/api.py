"""The operator API end to end, on the real broker, beside the worker's own figure
(issue 12).

    .venv/bin/python bench/api.py [--incidents 200] [--rate 5] [--out bench/results/api.json]

Starts (on a broker of its own unless ENGINE_KAFKA_BOOTSTRAP is set) ``engine worker``
on the Tangxia registry and ``engine api``, and a live-board client on ``/v1/events``.
Raises N Tangxia incidents through ``POST /v1/incidents`` at R per second, each closed
through ``POST /v1/incidents/{id}/close`` five incidents later (zone teams are freed,
as in a steady state). Reported, p50/p95/p99/max:

- ``api_to_sse``: the moment the bench sent the POST -> the moment the live board
  received the incident's decision (an ``incident`` event in state ``dispatched``);
- ``worker_raise_to_decision``: the decision's ``decided_at`` - the incident's
  ``raised_at`` (both stamped on this machine: the API when it made the incident, the
  worker when it decided), i.e. the worker's own share;
- ``decided_to_sse``: ``decided_at`` -> the live board received it (the worker's
  transaction commit, the read model's fetch, the SSE write);
- ``post_201``: the raise request's latency (the broker's ack included);
- ``close_200``: a close command's round trip (worker applied it, outcome read back).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import httpx  # noqa: E402

from bench.kafka_bench import bench_broker, machine  # noqa: E402
from bench.worker import incidents, pct  # noqa: E402
from engine.config import Settings  # noqa: E402
from engine.kafka.topics import ensure_topics  # noqa: E402
from tests.api_process import ApiProcess  # noqa: E402
from tests.worker_process import WorkerProcess, write_plan  # noqa: E402


def figures(values: list[float]) -> dict[str, float]:
    return {
        "n": len(values),
        "p50_ms": round(pct(values, 0.50) * 1000, 1),
        "p95_ms": round(pct(values, 0.95) * 1000, 1),
        "p99_ms": round(pct(values, 0.99) * 1000, 1),
        "max_ms": round(max(values) * 1000, 1) if values else float("nan"),
    }


async def run(api: ApiProcess, n: int, rate: float) -> dict[str, Any]:
    items = incidents(n, "API")
    headers = {"Authorization": f"Bearer {api.tokens['operator']}"}
    sent: dict[str, float] = {}
    seen: dict[str, float] = {}
    seen_wall: dict[str, float] = {}
    post_s: list[float] = []
    close_s: list[float] = []
    ready = asyncio.Event()

    async def listen() -> None:
        async with (
            httpx.AsyncClient(base_url=api.url, headers=headers, timeout=None) as c,
            c.stream("GET", "/v1/events") as r,
        ):
            ready.set()
            async for line in r.aiter_lines():
                if line.startswith("data: "):
                    inc = json.loads(line[6:]).get("incident") or {}
                    if inc.get("state") == "dispatched" and inc.get("id") not in seen:
                        seen[inc["id"]] = time.monotonic()
                        seen_wall[inc["id"]] = time.time()

    async def close(c: httpx.AsyncClient, incident_id: str) -> None:
        t0 = time.monotonic()
        r = await c.post(f"/v1/incidents/{incident_id}/close", json={"reason": "bench"})
        if r.status_code == 200:
            close_s.append(time.monotonic() - t0)

    listener = asyncio.create_task(listen())
    await asyncio.wait_for(ready.wait(), 30)
    ids: list[str] = []
    closes: list[asyncio.Task[None]] = []
    async with httpx.AsyncClient(base_url=api.url, headers=headers, timeout=60) as c:
        start = time.monotonic()
        for k, item in enumerate(items):
            await asyncio.sleep(max(0.0, start + k / rate - time.monotonic()))
            body = {"type": item.type.value, "priority": item.priority.value,
                    "location": item.location.model_dump(), "address": f"bench {k}"}  # fmt: skip
            t0 = time.monotonic()
            r = await c.post("/v1/incidents", json=body)
            post_s.append(time.monotonic() - t0)
            assert r.status_code == 201, r.text
            ids.append(r.json()["id"])
            sent[ids[-1]] = t0
            if k >= 5:
                closes.append(asyncio.create_task(close(c, ids[k - 5])))
        deadline = time.monotonic() + 60
        while len(seen.keys() & set(ids)) < len(ids) and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.2)
        await asyncio.gather(*closes)
        worker_s, to_board = [], []
        for incident_id in ids:
            view = (await c.get(f"/v1/incidents/{incident_id}")).json()
            raised = datetime.fromisoformat(view["incident"]["raised_at"])
            decided = datetime.fromisoformat(view["decisions"][0]["decided_at"])
            worker_s.append((decided - raised).total_seconds())
            if incident_id in seen_wall:
                to_board.append(seen_wall[incident_id] - decided.timestamp())
    listener.cancel()
    api_to_sse = [seen[i] - sent[i] for i in ids if i in seen]
    return {
        "incidents": n,
        "rate_per_s": rate,
        "decisions_seen_on_sse": len(api_to_sse),
        "api_to_sse": figures(api_to_sse),
        "worker_raise_to_decision": figures(worker_s),
        "decided_to_sse": figures(to_board),
        "post_201": figures(post_s),
        "close_200": figures(close_s),
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--incidents", type=int, default=200)
    p.add_argument("--rate", type=float, default=5.0)
    p.add_argument("--out", default=str(REPO / "bench" / "results" / "api.json"))
    args = p.parse_args()
    root = Path(tempfile.mkdtemp(prefix="bench-api-"))
    with bench_broker(root) as bootstrap:
        settings = Settings(kafka_bootstrap=bootstrap, topic_prefix=f"b-{uuid.uuid4().hex[:8]}-",
                            partitions=1, data_dir=root)  # fmt: skip
        assert asyncio.run(ensure_topics(settings)).ok
        worker = WorkerProcess(settings, root / "worker.log", plan=write_plan(root, 3600))
        api = ApiProcess(settings, root / "api.log", ENGINE_API_RAISE_PER_MINUTE="100000")
        worker.start(timeout=180)
        try:
            api.start()
            result = asyncio.run(run(api, args.incidents, args.rate))
        finally:
            api.stop()
            worker.stop()
    result = {"when": datetime.now().astimezone().isoformat(timespec="seconds"),
              "machine": machine(), **result}  # fmt: skip
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    print(f"{'figure':<26} {'n':>4} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'max ms':>8}")
    names = ("api_to_sse", "worker_raise_to_decision", "decided_to_sse", "post_201", "close_200")
    for name in names:
        f = result[name]
        print(f"{name:<26} {f['n']:>4} {f['p50_ms']:>8} {f['p95_ms']:>8} {f['p99_ms']:>8} "
              f"{f['max_ms']:>8}")  # fmt: skip
    print(f"written to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
