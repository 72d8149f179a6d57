"""`engine decide` (offline replay / shadow mode) and `engine plan check|schema`."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime
from pathlib import Path
from typing import TextIO

from engine.errors import ConfigError, UsageError

# The rules, pydantic and numpy/scipy (under the spatial index) are imported by the
# commands that use them: `engine` builds this parser for every command it runs.


def _at(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO time: {text!r}") from None
    if value.tzinfo is None:
        raise argparse.ArgumentTypeError("--at needs a UTC offset, e.g. 2026-11-30T16:30+08:00")
    return value


def cmd_decide(args: argparse.Namespace) -> int:
    from engine.registry.registry import load_registry
    from engine.rules.plan import load_plan
    from engine.rules.world import World

    plan = load_plan(args.plan)
    world = World.build(load_registry(args.registry))
    return replay(
        sys.stdin, sys.stdout, sys.stderr, world, plan, at=args.at, independent=args.independent
    )


def replay(
    lines: TextIO,
    out: TextIO,
    err: TextIO,
    world: object,
    plan: object,
    *,
    at: datetime | None,
    independent: bool,
) -> int:
    """Decision JSON lines for incident JSON lines, in order. Bad lines are reported with
    their number and skipped; the result is 1 if any line was bad."""
    from pydantic import ValidationError

    from engine.models import Incident
    from engine.rules.availability import Availability
    from engine.rules.decide import decide
    from engine.rules.intake import OutOfArea, with_area
    from engine.rules.plan import LoadedPlan
    from engine.rules.world import World

    assert isinstance(world, World) and isinstance(plan, LoadedPlan)
    availability = Availability()
    areas = [world.registry.outline] if world.registry.outline is not None else []
    bad = 0
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            raw = json.loads(line)
            if isinstance(raw, dict) and "id" not in raw:
                raw["id"] = f"INC-REPLAY-{number:06d}"  # deterministic, unlike live intake
            incident = with_area(Incident.model_validate(raw), areas)
        except json.JSONDecodeError as exc:
            bad += 1
            print(f"line {number}: not JSON: {exc}", file=err)
            continue
        except ValidationError as exc:
            bad += 1
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "(record)"
            print(f"line {number}: {where}: {first['msg']}", file=err)
            continue
        except OutOfArea as exc:
            bad += 1
            print(f"line {number}: {exc}", file=err)
            continue
        decision = decide(incident, world, availability, plan, at or incident.raised_at)
        out.write(decision.to_json() + "\n")
        if not independent:
            committed = [z.id for z in decision.zones]
            availability = availability.commit(committed, incident.id, incident.priority)
    out.flush()
    return 1 if bad else 0


def cmd_plan_check(args: argparse.Namespace) -> int:
    from engine.rules.plan import load_plan

    try:
        loaded = load_plan(args.file)
    except ConfigError as exc:
        print(f"engine: {exc}", file=sys.stderr)
        return 1
    plan = loaded.plan
    print(f"{args.file}: OK, plan {plan.name!r} version {loaded.version}")
    for r in plan.responses:
        types = ",".join(t.value for t in r.types)
        prios = ",".join(p.value for p in r.priorities)
        print(f"  {r.name}: {types} / {prios}: {len(r.stages)} stage(s)")
    return 0


def cmd_plan_schema(args: argparse.Namespace) -> int:
    from engine.rules.plan import plan_json_schema

    text = json.dumps(plan_json_schema(), ensure_ascii=False, indent=2, sort_keys=True) + "\n"
    if args.out == "-":
        sys.stdout.write(text)
    else:
        Path(args.out).write_text(text, encoding="utf-8")
        print(args.out)
    return 0


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "decide",
        help="decide incidents offline: Incident JSON lines on stdin, Decisions on stdout",
    )
    p.add_argument("--registry", required=True, help="registry directory, e.g. data/tangxia")
    p.add_argument("--plan", help="response plan YAML (default: the built-in Tangxia plan)")
    p.add_argument(
        "--at", type=_at, help="decide every incident at this time (default: its raised_at)"
    )
    p.add_argument(
        "--independent",
        action="store_true",
        help="decisions do not see each other (zones committed by earlier lines stay free)",
    )
    p.set_defaults(func=cmd_decide)

    p = sub.add_parser("plan", help="response plans")
    p_sub = p.add_subparsers(dest="action", required=True)
    c = p_sub.add_parser("check", help="validate a plan file (exit 1 with line and field)")
    c.add_argument("file")
    c.set_defaults(func=cmd_plan_check)
    c = p_sub.add_parser("schema", help="print or write the plan's JSON Schema")
    c.add_argument("--out", default="-")
    c.set_defaults(func=cmd_plan_schema)


__all__ = ["UsageError", "add_commands", "replay"]
