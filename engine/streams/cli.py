"""`engine worker` and `engine incident cancel|close`."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from datetime import UTC, datetime
from pathlib import Path

from engine.config import DEFAULT_REGISTRY, load_settings


def cmd_worker(args: argparse.Namespace) -> int:
    from engine.kafka.topics import ensure_topics
    from engine.metrics import WorkerMetrics
    from engine.streams.sources import Sources
    from engine.streams.worker import Worker

    settings = load_settings(args.config)
    sources = Sources(
        registries=[Path(p) for p in (args.registry or [DEFAULT_REGISTRY])],
        plan=Path(args.plan) if args.plan else None,
    )
    metrics = WorkerMetrics()
    worker = Worker(settings, sources, metrics)  # validates registry and plan first

    async def run() -> int:
        report = await ensure_topics(settings)
        if not report.ok:
            for name, diffs in report.mismatched.items():
                print(f"engine: error: topic {name}: {'; '.join(diffs)}", file=sys.stderr)
            return 1
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, worker.stop)
        await worker.run()
        return 0

    port = settings.metrics_port if args.metrics_port is None else args.metrics_port
    server = metrics.serve(port) if port else None
    try:
        return asyncio.run(run())
    finally:
        if server is not None:
            server.close()


def cmd_end(args: argparse.Namespace) -> int:
    from engine.kafka.produce import producer
    from engine.streams.events import AreaEvent

    settings = load_settings(args.config)
    event = AreaEvent(
        kind=args.action,
        at=datetime.now(UTC),
        area=args.area,
        incident_id=args.incident_id,
        who=args.who,
        why=args.why,
    )

    async def send() -> None:
        async with producer(settings) as p:
            topic = settings.topic("area-events")
            await p.send_and_wait(topic, event.to_bytes(), key=args.area.encode("utf-8"))

    asyncio.run(send())
    print(f"{args.action} requested for {args.incident_id}")
    return 0


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "worker", help="run the stream worker: incidents -> decisions, exactly once per batch"
    )
    p.add_argument(
        "--registry",
        action="append",
        metavar="DIR",
        help="registry directory, one per dispatch area (default: data/tangxia)",
    )
    p.add_argument("--plan", help="response plan YAML (default: the built-in Tangxia plan)")
    p.add_argument("--metrics-port", type=int, help="Prometheus port (0: off; default 9101)")
    p.set_defaults(func=cmd_worker)

    p = sub.add_parser("incident", help="operator actions on an open incident")
    p.add_argument("action", choices=["cancel", "close"])
    p.add_argument("incident_id")
    p.add_argument("--area", default="tangxia")
    p.add_argument("--who", default="operator")
    p.add_argument("--why", default=None)
    p.set_defaults(func=cmd_end)
