"""`engine scenario run FILE` and `engine scenario check FILE`."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from engine.config import load_settings


def cmd_scenario(args: argparse.Namespace) -> int:
    from engine.errors import ConfigError
    from engine.scenario.model import load_scenario

    try:
        scenario = load_scenario(Path(args.file))
    except ConfigError as exc:
        print(f"engine: error: {exc}", file=sys.stderr)
        return 2
    if args.scenario_action == "check":
        bursts = sum(b.count for b in scenario.bursts)
        print(f"{args.file}: {len(scenario.incidents) + bursts} incidents, "
              f"{len(scenario.actions)} actions")  # fmt: skip
        return 0
    from engine.scenario.runner import run_scenario

    settings = load_settings(args.config)
    if args.config:  # every process the run starts reads the same file
        os.environ["ENGINE_DEMO_CONFIG"] = args.config
    port = settings.api_port if args.port is None else args.port
    run_scenario(
        settings,
        scenario,
        port=port,
        json_out=Path(args.json) if args.json else None,
        plot_out=Path(args.plot) if args.plot else None,
        keep=args.keep,
    )
    return 0


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("scenario", help="play a scenario against the whole system")
    ssub = p.add_subparsers(dest="scenario_action", required=True)
    run = ssub.add_parser("run", help="play it and print the summary")
    run.add_argument("file")
    run.add_argument("--json", metavar="FILE", help="write the summary as JSON")
    run.add_argument("--plot", metavar="FILE", help="write raise -> quorum as a PNG")
    run.add_argument("--port", type=int, default=None, help="API port (default api_port)")
    run.add_argument("--keep", action="store_true", help="keep the run's topics")
    check = ssub.add_parser("check", help="validate a scenario file")
    check.add_argument("file")
    p.set_defaults(func=cmd_scenario)
