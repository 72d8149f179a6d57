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
    from engine.geo.areas import area_by_id
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
    area = area_by_id(registry.area) if registry.area else None
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
    del plan_sub


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


__all__ = ["Any", "add_commands", "register"]
