"""`engine worker` and `engine incident ACTION ID` (operator commands)."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from pathlib import Path

from engine import clock as engine_clock
from engine.config import DEFAULT_REGISTRY, load_settings
from engine.models import COMMAND_ACTIONS, Command


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


def cmd_incident(args: argparse.Namespace) -> int:
    """An operator command through the same path as the API's: the ``commands`` topic,
    applied or refused by the worker, its outcome read back from ``audit``."""
    import uuid

    from pydantic import ValidationError

    from engine.kafka.commands import run

    settings = load_settings(args.config)
    fields: dict[str, object] = {
        "command_id": uuid.uuid4().hex,
        "action": args.action,
        "incident_id": args.incident_id,
        "area": args.area or settings.default_area,
        "actor": args.who,
        "at": engine_clock.now(),
        "reason": args.why,
        "zone_id": args.zone,
        "priority": args.priority,
        "type": args.type,
        "address": args.address,
    }
    if args.lat is not None or args.lon is not None:
        fields["location"] = {"lat": args.lat, "lon": args.lon}
    try:
        command = Command.model_validate({k: v for k, v in fields.items() if v is not None})
    except ValidationError as exc:
        print(f"engine: error: {exc}", file=sys.stderr)
        return 2
    try:
        outcome = run(settings, command, args.timeout)
    except TimeoutError as exc:
        print(f"engine: error: {exc} (is the worker running?)", file=sys.stderr)
        return 3
    print(f"{args.action} {args.incident_id}: {outcome['result']}: {outcome['reason']}")
    return 0 if outcome["result"] == "applied" else 1


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

    p = sub.add_parser(
        "incident",
        help="an operator command on an incident (applied or refused by the worker)",
        description="Exit 0: applied; 1: refused (the reason is printed); 3: no answer.",
    )
    p.add_argument("action", choices=COMMAND_ACTIONS)
    p.add_argument("incident_id")
    p.add_argument("--area", default=None, help="its dispatch area (default: default_area)")
    p.add_argument("--who", default="operator", help="the operator's name (the actor)")
    p.add_argument("--why", default=None, help="the reason, or a note's text")
    p.add_argument("--zone", default=None, help="reassign: the key zone id")
    p.add_argument("--priority", choices=["P1", "P2", "P3", "P4"], default=None)
    p.add_argument("--type", default=None, help="priority: a new incident type")
    p.add_argument("--lat", type=float, default=None, help="move: corrected latitude")
    p.add_argument("--lon", type=float, default=None, help="move: corrected longitude")
    p.add_argument("--address", default=None)
    p.add_argument("--timeout", type=float, default=15.0, help="seconds to wait (15)")
    p.set_defaults(func=cmd_incident)
