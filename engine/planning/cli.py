"""`engine coverage` and `engine plan compare` (issue 16)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import date
from pathlib import Path
from typing import Any

from engine.errors import ConfigError, UsageError
from engine.rules.cli import _at

# numpy, scipy, the rules and matplotlib are imported by the commands that use them:
# `engine` builds this parser for every command it runs.


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {text!r}") from None


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError("must be positive")
    return value


def _read_structured(path: str) -> object:
    import yaml

    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    try:
        return yaml.safe_load(text)  # JSON is YAML
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not JSON or YAML: {exc}") from exc


def cmd_coverage(args: argparse.Namespace) -> int:
    from engine.planning.coverage import Coverage, coverage_report, day_instants, worst_cells
    from engine.planning.grid import build_grid
    from engine.planning.mapimage import write_map
    from engine.planning.network import Network, parse_duty
    from engine.planning.report import coverage_table
    from engine.planning.siting import siting_report
    from engine.registry.registry import load_registry
    from engine.rules.plan import load_plan
    from engine.rules.world import World

    plan = load_plan(args.plan)
    registry = load_registry(args.registry)
    area = registry.outline
    if area is None:
        raise UsageError(
            f"registry {args.registry}: no dispatch area outline for {registry.area!r}"
        )
    world = World.build(registry)
    duty = parse_duty(_read_structured(args.duty), args.duty) if args.duty else None
    unavailable: list[str] = []
    if args.unavailable:
        raw = _read_structured(args.unavailable)
        if not isinstance(raw, list):
            raise ConfigError(f"{args.unavailable}: a list of entity ids")
        unavailable = [str(x) for x in raw]
    network = Network.from_world(world, unavailable=unavailable, duty=duty)
    started = time.perf_counter()
    grid = build_grid(area, args.grid_m)
    cov = Coverage(network, grid)
    instants = day_instants(args.day, args.at, plan.plan.timezone)
    report = coverage_report(world, network, grid, plan, instants, coverage=cov)
    report["seconds"] = round(time.perf_counter() - started, 3)
    siting = siting_report(cov, picks=args.sites)
    report["siting"] = siting
    all_zones = cov.distances(network.zones_on_duty(None))
    worst = worst_cells(grid, all_zones.cells, 10, 1000.0)
    report["worst_cells"] = [
        {
            "lat": round(float(grid.lat[i]), 6),
            "lon": round(float(grid.lon[i]), 6),
            "distance_m": round(float(all_zones.cells[i]), 1),
        }
        for i in worst
    ]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    table = coverage_table(report, siting)
    (out / "coverage.txt").write_text(table, encoding="utf-8")
    (out / "coverage.json").write_text(
        json.dumps(report, ensure_ascii=False, indent=2) + "\n", encoding="utf-8"
    )
    if not args.no_map:
        when = args.at.isoformat() if args.at else (f"{instants[0]:%Y-%m-%d}" if instants else "")
        write_map(
            out / "coverage.png",
            grid,
            network,
            all_zones.cells,
            worst,
            siting["add"],
            f"{area.id}: distance to the nearest key zone team, every zone on duty "
            f"({len(network.zones_on_duty(None))} zones, {args.grid_m:g} m grid, {when})",
        )
    sys.stdout.write(table)
    sys.stdout.flush()
    written = ", ".join(
        str(out / n)
        for n in ("coverage.txt", "coverage.json", "coverage.png")[: 2 if args.no_map else 3]
    )
    print(f"wrote {written}", file=sys.stderr)
    return 0


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "coverage",
        help="coverage of the area and its units by key zone teams, hour by hour; "
        "where a new zone would help most; a table, JSON and a map",
    )
    p.add_argument("--registry", required=True, help="registry directory, e.g. data/tangxia")
    p.add_argument("--plan", help="response plan YAML (default: the built-in Tangxia plan)")
    when = p.add_mutually_exclusive_group()
    when.add_argument("--at", type=_at, help="one instant instead of every hour of a day")
    when.add_argument("--day", type=_day, help="the day whose 24 hours are shown (default: today)")
    p.add_argument("--grid-m", type=_positive, default=50.0, help="grid cell size (default 50)")
    p.add_argument("--duty", metavar="FILE", help="zone duty roster: {zone id: [HH:MM-HH:MM]}")
    p.add_argument("--unavailable", metavar="FILE", help="JSON/YAML list of unavailable ids")
    p.add_argument("--sites", type=int, default=3, help="new zone sites to suggest (default 3)")
    p.add_argument("--out", default="coverage", help="output directory (default: coverage/)")
    p.add_argument("--no-map", action="store_true", help="skip the PNG map")
    p.set_defaults(func=cmd_coverage)


def add_plan_commands(plan_sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """`engine plan compare`, under the `plan` command engine.rules.cli owns."""
    _add_compare(plan_sub)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Adds `coverage`, and `compare` under the existing `plan` command."""
    add_commands(sub)
    plan = sub.choices.get("plan")
    if plan is None:
        return
    for action in plan._actions:
        if isinstance(action, argparse._SubParsersAction):
            add_plan_commands(action)
            return


# --- plan compare ---------------------------------------------------------------------
def _since(text: str) -> float:
    """A duration like 7d, 12h, 30m or 90s, in seconds."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    try:
        value = float(text[:-1])
        factor = units[text[-1]]
    except (ValueError, KeyError, IndexError):
        raise argparse.ArgumentTypeError(f"not a duration (e.g. 7d, 12h, 30m): {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError("must be positive")
    return value * factor


def _values(lines: list[str], origin: str) -> list[tuple[int, Any]]:
    """JSON lines as (line number, value); `engine tail` records are unwrapped to their
    value, so both `engine tail` and `engine tail --bare` output can be read."""
    out = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            raw = json.loads(line)
        except json.JSONDecodeError as exc:
            raise UsageError(f"{origin}:{number}: not JSON: {exc}") from exc
        if isinstance(raw, dict) and "value" in raw and "topic" in raw and "offset" in raw:
            raw = raw["value"]
        out.append((number, raw))
    return out


def _incidents(values: list[tuple[int, Any]], origin: str, areas: list[Any]) -> list[Any]:
    from pydantic import ValidationError

    from engine.models import Incident
    from engine.rules.intake import OutOfArea, with_area

    out = []
    for number, raw in values:
        if isinstance(raw, dict) and "id" not in raw:
            raw = {**raw, "id": f"INC-REPLAY-{number:06d}"}  # as `engine decide` names them
        try:
            out.append(with_area(Incident.model_validate(raw), areas))
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "(record)"
            raise UsageError(f"{origin}:{number}: {where}: {first['msg']}") from exc
        except OutOfArea as exc:
            raise UsageError(f"{origin}:{number}: {exc}") from exc
    return out


def _acks(values: list[tuple[int, Any]], origin: str) -> dict[str, list[Any]]:
    from pydantic import ValidationError

    from engine.models import Ack

    out: dict[str, list[Any]] = {}
    for number, raw in values:
        try:
            ack = Ack.model_validate(raw)
        except ValidationError as exc:
            raise UsageError(f"{origin}:{number}: not an Ack: {exc.errors()[0]['msg']}") from exc
        out.setdefault(ack.incident_id, []).append(ack)
    return out


def _read_lines(path: str) -> list[str]:
    if path == "-":
        return sys.stdin.read().splitlines()
    try:
        return Path(path).read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise UsageError(f"{path}: cannot read: {exc.strerror or exc}") from exc


def _from_topics(args: argparse.Namespace) -> tuple[list[tuple[int, Any]], list[tuple[int, Any]]]:
    import asyncio

    from engine.config import load_settings
    from engine.kafka.tail import read_since

    settings = load_settings(args.config)
    since_ms = int((time.time() - args.since) * 1000)

    async def read() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        incidents = await read_since(settings, settings.topic("incidents"), since_ms)
        acks = await read_since(settings, settings.topic("acks"), since_ms)
        return incidents, acks

    incidents, acks = asyncio.run(read())
    return (
        [(n, r["value"]) for n, r in enumerate(incidents, start=1)],
        [(n, r["value"]) for n, r in enumerate(acks, start=1)],
    )


def cmd_plan_compare(args: argparse.Namespace) -> int:
    from engine.planning.compare import ReplyModel, compare_plans
    from engine.planning.report import compare_table
    from engine.registry.registry import load_registry
    from engine.rules.plan import load_plan
    from engine.rules.world import World

    old, new = load_plan(args.old), load_plan(args.new)
    world = World.build(load_registry(args.registry))
    if args.incidents is not None:
        incident_values = _values(_read_lines(args.incidents), args.incidents)
        ack_values = _values(_read_lines(args.acks), args.acks) if args.acks else None
        where = args.incidents
    else:
        incident_values, topic_acks = _from_topics(args)
        ack_values = topic_acks if args.replies != "model" else None
        where = "topic incidents"
    outline = world.registry.outline
    incidents = _incidents(incident_values, where, [outline] if outline else [])
    incidents.sort(key=lambda i: (i.raised_at, i.id))
    use_recorded = args.replies == "recorded" or (args.replies == "auto" and bool(ack_values))
    if use_recorded and ack_values is None:
        raise UsageError("--replies recorded needs --acks FILE (or --since)")
    acks = _acks(ack_values, args.acks or "topic acks") if use_recorded and ack_values else None
    if use_recorded and acks is None:
        acks = {}
    model = ReplyModel(accept=args.accept, min_s=args.reply_min_s, max_s=args.reply_max_s)
    started = time.perf_counter()
    report = compare_plans(incidents, world, old, new, acks=acks, model=model)
    report["seconds"] = round(time.perf_counter() - started, 3)
    if args.json:
        Path(args.json).write_text(
            json.dumps(report, ensure_ascii=False, indent=2) + "\n", encoding="utf-8"
        )
    sys.stdout.write(compare_table(report, args.show))
    return 0


def _add_compare(plan_sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    c = plan_sub.add_parser(
        "compare",
        help="replay recorded incidents through two plans (lifecycle included): what changes",
    )
    c.add_argument("old", help="the plan in use (YAML)")
    c.add_argument("new", help="the proposed plan (YAML)")
    c.add_argument("--registry", required=True, help="registry directory, e.g. data/tangxia")
    src = c.add_mutually_exclusive_group(required=True)
    src.add_argument(
        "--incidents", metavar="FILE", help="Incident JSON lines (or `engine tail` output; - stdin)"
    )
    src.add_argument(
        "--since", type=_since, metavar="AGE", help="read the incidents topic from AGE ago (7d)"
    )
    c.add_argument("--acks", metavar="FILE", help="recorded Ack JSON lines (with --incidents)")
    c.add_argument(
        "--replies",
        choices=["auto", "recorded", "model"],
        default="auto",
        help="recorded acks drive escalations, or the reply model (what-if); "
        "auto: recorded when there are any (--acks, or the acks topic with --since)",
    )
    c.add_argument("--accept", type=float, default=0.6, help="model: share of groups accepting")
    c.add_argument("--reply-min-s", type=float, default=10.0, help="model: earliest reply")
    c.add_argument("--reply-max-s", type=float, default=120.0, help="model: latest reply")
    c.add_argument("--json", metavar="FILE", help="write the full report as JSON")
    c.add_argument("--show", type=int, default=20, help="changed incidents listed (default 20)")
    c.set_defaults(func=cmd_plan_compare)


__all__ = ["add_commands", "register"]
