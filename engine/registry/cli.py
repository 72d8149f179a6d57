"""``engine registry check DIR`` and ``engine registry generate --town T --seed N --out DIR``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from engine.errors import ConfigError, UsageError
from engine.registry.generate import generate, write_registry


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    registry = sub.add_parser("registry", help="check or generate a responders registry")
    commands = registry.add_subparsers(dest="registry_command", required=True, metavar="COMMAND")

    check = commands.add_parser(
        "check",
        help="validate a registry directory (exit 1 on errors; warnings do not fail)",
    )
    check.add_argument("dir", metavar="DIR", type=Path, help="registry directory")
    check.add_argument(
        "--encoding",
        metavar="ENC",
        help="encoding of the CSV files (default: detect UTF-8, UTF-8 with BOM, GB18030)",
    )
    check.set_defaults(func=run_check)

    gen = commands.add_parser(
        "generate", help="write a deterministic synthetic registry (same seed, same bytes)"
    )
    gen.add_argument(
        "--town",
        required=True,
        help="dispatch area id: tangxia (its shipped outline) or any other id (a synthetic "
        "town, outline included)",
    )
    gen.add_argument("--name", help="the town's name for a synthetic town (default: its id)")
    gen.add_argument("--seed", required=True, type=int, help="random seed, e.g. 2026")
    gen.add_argument("--out", required=True, type=Path, metavar="DIR", help="output directory")
    gen.set_defaults(func=run_generate)


def run_check(args: argparse.Namespace) -> int:
    # Imported here: it pulls in scipy, which `engine --help` should not wait for.
    from engine.registry.registry import check_registry

    path: Path = args.dir
    if not path.is_dir():
        raise UsageError(f"registry {path}: not a directory")
    try:
        result = check_registry(path, args.encoding)
    except ConfigError as exc:
        raise UsageError(str(exc)) from exc
    for problem in result.problems:
        print(problem, file=sys.stderr)
    n_err, n_warn = len(result.errors), len(result.warnings)
    if result.registry is None:
        print(f"registry {path}: {n_err} error(s), {n_warn} warning(s)", file=sys.stderr)
        return 1
    counts = ", ".join(f"{v} {k}" for k, v in result.registry.counts().items())
    print(f"registry {path}: ok ({counts}); {n_warn} warning(s)")
    return 0


def run_generate(args: argparse.Namespace) -> int:
    out: Path = args.out
    files = generate(args.town, args.seed, args.name)
    write_registry(out, files)
    size = sum(len(b) for b in files.values())
    print(f"wrote {len(files)} files ({size / 1e6:.1f} MB) to {out}")
    return 0
