"""``engine broadcast``: send a notice to many, follow it, cancel it.

``engine broadcast --to publicity --text ...`` (the same as ``engine broadcast send``),
``engine broadcast status ID [--follow]``, ``engine broadcast cancel ID``, ``engine
broadcast list``. Exit codes: 0 done, 1 refused (quiet hours, nobody to reach, already
finished), 2 bad arguments, 3 not found.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from engine import clock as engine_clock
from engine.config import DEFAULT_REGISTRY, load_settings
from engine.errors import UsageError

SUBCOMMANDS = ("send", "status", "cancel", "list")
EXIT_REFUSED = 1
EXIT_NOT_FOUND = 3


def normalise_argv(argv: Sequence[str]) -> list[str]:
    """``engine broadcast --to ...`` means ``engine broadcast send --to ...``."""
    out = list(argv)
    for i, word in enumerate(out):
        if word == "broadcast":
            rest = out[i + 1 :]
            if rest and rest[0] not in (*SUBCOMMANDS, "-h", "--help"):
                out.insert(i + 1, "send")
            break
        if not word.startswith("-") and word not in ("--config",):
            if i > 0 and out[i - 1] == "--config":
                continue
            break
    return out


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    bc = sub.add_parser(
        "broadcast",
        help="notices to many (publicity vanguard, watch groups, ...), below every call-out",
    )
    cmds = bc.add_subparsers(dest="broadcast_command", required=True, metavar="COMMAND")
    send = cmds.add_parser("send", help="send a notice (the default: engine broadcast --to ...)")
    send.add_argument("--text", required=True, help="the notice in Chinese")
    send.add_argument("--text-en", help="the notice in English (sent after the Chinese)")
    send.add_argument(
        "--to",
        required=True,
        action="append",
        metavar="TARGET",
        help="publicity, watch_groups, observers, key_zones or units (repeatable, or a "
        "comma-separated list)",
    )
    send.add_argument("--area", help="dispatch area (default: every registry given)")
    send.add_argument("--near", metavar="LAT,LON", help="only people within --radius of here")
    send.add_argument("--radius", type=float, metavar="M", help="metres, with --near")
    send.add_argument("--priority", default="info", choices=["info", "warning", "urgent"])
    send.add_argument("--expires-in", type=int, metavar="S", help="seconds (default 12 h)")
    send.add_argument("--idempotency-key", metavar="KEY", help="a retry names the same broadcast")
    send.add_argument(
        "--registry",
        type=Path,
        action="append",
        metavar="DIR",
        help=f"registry directory (repeatable; default {DEFAULT_REGISTRY})",
    )
    send.add_argument("--as", dest="actor", default="cli", help="who sends it (recorded)")
    send.add_argument("--dry-run", action="store_true", help="expand and print, write nothing")
    send.set_defaults(func=run_send)

    status = cmds.add_parser("status", help="a broadcast's progress and time left")
    status.add_argument("broadcast_id")
    status.add_argument("--follow", action="store_true", help="until it is finished")
    status.add_argument("--every", type=float, default=2.0, metavar="S")
    status.set_defaults(func=run_status)

    cancel = cmds.add_parser("cancel", help="stop a broadcast: unsent messages are dropped")
    cancel.add_argument("broadcast_id")
    cancel.add_argument("--reason")
    cancel.add_argument("--as", dest="actor", default="cli")
    cancel.set_defaults(func=run_cancel)

    listing = cmds.add_parser("list", help="every broadcast, newest first")
    listing.set_defaults(func=run_list)


def _request(args: argparse.Namespace) -> Any:
    from pydantic import ValidationError

    from engine.broadcast.model import BroadcastIn

    targets = [t.strip() for item in args.to for t in item.split(",") if t.strip()]
    near = None
    if args.near is not None:
        lat, sep, lon = args.near.partition(",")
        try:
            near = {"lat": float(lat), "lon": float(lon)} if sep else None
        except ValueError:
            near = None
        if near is None:
            raise UsageError(f"--near wants LAT,LON, not {args.near!r}")
    try:
        return BroadcastIn.model_validate(
            {
                "text": args.text,
                "text_en": args.text_en,
                "to": targets,
                "area": args.area,
                "near": near,
                "radius_m": args.radius,
                "priority": args.priority,
                "expires_in_s": args.expires_in,
                "idempotency_key": args.idempotency_key,
            }
        )
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'request'}: {e['msg']}" for e in exc.errors()
        )
        raise UsageError(problems) from exc


def run_send(args: argparse.Namespace) -> int:
    from engine.broadcast.plan import BroadcastRefused, plan_broadcast
    from engine.broadcast.policy import QuietHours
    from engine.broadcast.publish import write_broadcast
    from engine.registry.registry import load_registry

    settings = load_settings(args.config)
    request = _request(args)
    registries = [load_registry(p) for p in (args.registry or [DEFAULT_REGISTRY])]
    quiet = QuietHours.parse(
        settings.broadcast_quiet_hours,
        settings.broadcast_timezone,
        settings.broadcast_quiet_priorities,
    )
    try:
        planned = plan_broadcast(
            request,
            registries,
            actor=args.actor,
            role="cli",
            now=engine_clock.now(),
            quiet=quiet,
            min_group=settings.broadcast_min_group,
            max_parts=settings.radio_max_sms_parts,
        )
    except BroadcastRefused as exc:
        print(f"engine broadcast: refused: {exc.reason}", file=sys.stderr)
        return EXIT_REFUSED
    summary = planned.summary()
    if args.dry_run:
        summary["state"] = "dry-run"
    else:
        asyncio.run(write_broadcast(settings, planned))
    print(json.dumps(summary, ensure_ascii=False))
    return 0


def _print_status(summary: dict[str, Any]) -> None:
    print(
        f"{summary['broadcast_id']} {summary['state']}: {summary['messages']} messages to "
        f"{summary['recipients']} people ({summary['poc_groups']} PoC group calls, "
        f"{summary['sms']} SMS); sent {summary['sent']}, delivered {summary['delivered']}, "
        f"failed {summary['failed']}, cancelled {summary['cancelled']}, expired "
        f"{summary['expired']}, left {summary['left']}, about {summary['eta_s']:.0f} s to go; "
        f"{summary['replies']} replies",
        flush=True,
    )


def run_status(args: argparse.Namespace) -> int:
    from engine.broadcast.progress import TERMINAL
    from engine.broadcast.publish import read_book

    settings = load_settings(args.config)
    while True:
        book = asyncio.run(read_book(settings))
        progress = book.get(args.broadcast_id)
        if progress is None or progress.notice is None:
            print(f"engine broadcast: no broadcast {args.broadcast_id!r}", file=sys.stderr)
            return EXIT_NOT_FOUND
        summary = progress.summary(engine_clock.time_s())
        if not args.follow:
            print(json.dumps(summary, ensure_ascii=False))
            return 0
        _print_status(summary)
        if summary["state"] in TERMINAL:
            return 0
        time.sleep(max(0.2, args.every))


def run_cancel(args: argparse.Namespace) -> int:
    from engine.broadcast.model import Cancel
    from engine.broadcast.progress import TERMINAL
    from engine.broadcast.publish import read_book, write_cancel

    settings = load_settings(args.config)
    book = asyncio.run(read_book(settings))
    progress = book.get(args.broadcast_id)
    if progress is None or progress.notice is None:
        print(f"engine broadcast: no broadcast {args.broadcast_id!r}", file=sys.stderr)
        return EXIT_NOT_FOUND
    state = progress.state(engine_clock.time_s())
    if state in TERMINAL:
        print(f"engine broadcast: {args.broadcast_id} is already {state}", file=sys.stderr)
        return EXIT_REFUSED
    cancel = Cancel(
        broadcast_id=progress.broadcast_id,
        actor=args.actor,
        role="cli",
        reason=args.reason,
        at=engine_clock.now(),
    )
    asyncio.run(write_cancel(settings, cancel))
    left = max(0, progress.messages - progress.finished)
    print(f"{progress.broadcast_id} cancelling: up to {left} unsent messages will be dropped")
    return 0


def run_list(args: argparse.Namespace) -> int:
    from engine.broadcast.publish import read_book

    settings = load_settings(args.config)
    for summary in asyncio.run(read_book(settings)).listing(engine_clock.time_s()):
        print(json.dumps(summary, ensure_ascii=False))
    return 0
