"""The ``engine`` command: one sub-command per job, each in the module that owns it.

Each command module exposes ``add_commands(sub)`` which adds its parsers and sets
``func`` (args -> exit code). Argument errors exit 2 (argparse's convention) before
anything touches Kafka or the disk.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from engine.errors import EngineError
from engine.logging_setup import configure_logging


def build_parser() -> argparse.ArgumentParser:
    # Imported here, not at module level, so `engine --help` stays fast and one broken
    # optional piece does not take the whole command down.
    from engine import cli_platform
    from engine.api import cli as api_cli
    from engine.broadcast import cli as broadcast_cli
    from engine.planning import cli as planning_cli
    from engine.radio import cli as radio_cli
    from engine.registry import cli as registry_cli
    from engine.rules import cli as rules_cli
    from engine.scenario import cli as scenario_cli
    from engine.streams import cli as streams_cli

    parser = argparse.ArgumentParser(
        prog="engine",
        description="Tangxia volunteer-police emergency-response engine (东莞义警 塘厦)",
    )
    parser.add_argument(
        "--config",
        metavar="FILE",
        help="TOML or YAML config file; ENGINE_* environment variables override it",
    )
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    cli_platform.add_commands(sub)
    registry_cli.add_commands(sub)
    radio_cli.add_commands(sub)
    rules_cli.add_commands(sub)
    streams_cli.add_commands(sub)
    api_cli.add_commands(sub)
    scenario_cli.add_commands(sub)
    broadcast_cli.add_commands(sub)
    planning_cli.register(sub)  # after rules_cli: adds `plan compare` to its `plan`
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from engine.broadcast.cli import normalise_argv

    parser = build_parser()
    args = parser.parse_args(normalise_argv(sys.argv[1:] if argv is None else argv))
    # JSON lines (one event per line, incident id as a field) unless stderr is a
    # terminal; aiokafka's retry noise stays quiet without -v.
    configure_logging(args.verbose)
    try:
        code: int = args.func(args)
    except EngineError as exc:
        print(f"engine: error: {_explained(args, exc)}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        from engine.kafka.connection import AUTHORIZATION_ERRORS, not_authorised

        if not isinstance(exc, AUTHORIZATION_ERRORS):
            raise
        from engine.config import load_settings

        print(f"engine: error: {not_authorised(load_settings(args.config), exc)}", file=sys.stderr)
        return 1
    except BrokenPipeError:  # `engine tail ... | head`
        sys.stderr.close()
        return 0
    return code


def _explained(args: argparse.Namespace, exc: EngineError) -> str:
    """A Kafka that does not answer may be a secured one refusing us: say which."""
    from engine.errors import KafkaUnavailable

    if not isinstance(exc, KafkaUnavailable):
        return str(exc)
    import asyncio

    from engine.config import load_settings
    from engine.kafka.connection import diagnose

    try:
        refused = asyncio.run(diagnose(load_settings(args.config)))
    except EngineError:
        return str(exc)
    return refused or str(exc)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
