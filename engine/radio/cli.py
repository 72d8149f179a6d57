"""``engine gateway``, ``engine radio send|ptt``, ``engine simulate handsets``."""

from __future__ import annotations

import argparse
import asyncio
import logging
import re
import signal
import sys
from collections.abc import Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from engine.config import load_settings
from engine.errors import UsageError

if TYPE_CHECKING:
    from engine.radio.directory import StaticDirectory
    from engine.radio.ptt import Ptt

log = logging.getLogger(__name__)

DEFAULT_REGISTRY = Path("data/tangxia")
DIALECT_ALIASES = {"at-poc": "poc-hex"}
T = TypeVar("T")


def _run(coro: Coroutine[Any, Any, T]) -> T | None:
    """``asyncio.run`` that treats SIGTERM (systemd, Kubernetes) like Ctrl-C: the main
    task is cancelled, so ports, PTT and Kafka clients are released on the way out.
    None when stopped that way."""

    async def main() -> T:
        task = asyncio.current_task()
        assert task is not None
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, task.cancel)
        try:
            return await coro
        finally:
            loop.remove_signal_handler(signal.SIGTERM)

    try:
        return asyncio.run(main())
    except (KeyboardInterrupt, asyncio.CancelledError):
        return None


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    gw = sub.add_parser("gateway", help="run the radio gateway: callouts -> SMS/PoC -> acks")
    gw.add_argument("--device", required=True, metavar="URL", help="serial device or pyserial URL")
    gw.add_argument("--baud", type=int, default=115200)
    gw.add_argument(
        "--dialect",
        choices=["at-poc", "poc-hex"],
        help="PoC dialect of the handset on --device (voice call-outs); default: SMS only",
    )
    gw.add_argument(
        "--registry",
        type=Path,
        default=DEFAULT_REGISTRY,
        metavar="DIR",
        help=f"registry directory with radios.csv (default {DEFAULT_REGISTRY})",
    )
    gw.add_argument("--radio-id", help="id under which this gateway's radio reports on unit-status")
    gw.add_argument("--group-id", default="radio-gateway", help="Kafka consumer group")
    gw.add_argument(
        "--metrics-port",
        type=int,
        help="port of /metrics (default: the configured metrics_port + 1, i.e. 9102)",
    )
    gw.add_argument("--voice", default="cmn", help="espeak-ng voice for PoC call-outs")
    gw.add_argument("--tx-timeout", type=float, default=60.0, metavar="S")
    gw.add_argument(
        "--allow",
        action="append",
        default=[],
        metavar="NUMBER",
        help="a number outside the registry call-outs may text (repeatable; also "
        "ENGINE_RADIO_ALLOW_NUMBERS and the plan's command centre)",
    )
    gw.add_argument(
        "--plan", type=Path, metavar="FILE", help="response plan (its command centre's number)"
    )
    gw.set_defaults(func=run_gateway)

    radio = sub.add_parser("radio", help="technician commands for a modem or radio")
    commands = radio.add_subparsers(dest="radio_command", required=True, metavar="COMMAND")
    send = commands.add_parser("send", help="send one SMS, print its message reference")
    send.add_argument("--device", required=True, metavar="URL")
    send.add_argument("--baud", type=int, default=115200)
    send.add_argument("--to", required=True, metavar="NUMBER")
    send.add_argument("--text", required=True)
    send.add_argument("--timeout", type=float, default=90.0, metavar="S")
    send.set_defaults(func=run_send)

    ptt = commands.add_parser("ptt", help="key a transmitter for S seconds (watchdog-guarded)")
    ptt.add_argument("--driver", required=True, choices=["rts", "dtr", "rigctld", "poc"])
    ptt.add_argument("--device", metavar="URL", help="serial port (rts, dtr, poc)")
    ptt.add_argument("--rigctld", metavar="HOST:PORT", help="rigctld address (rigctld)")
    ptt.add_argument("--invert", action="store_true", help="RTS/DTR low means transmit")
    ptt.add_argument("--seconds", type=float, default=None, metavar="S")
    ptt.add_argument("--say", metavar="TEXT", help="speak TEXT (espeak-ng) instead of --seconds")
    ptt.add_argument("--voice", default="cmn")
    ptt.add_argument("--tx-timeout", type=float, default=60.0, metavar="S")
    ptt.set_defaults(func=run_ptt)

    simulate = sub.add_parser("simulate", help="simulators for demos and tests")
    sims = simulate.add_subparsers(dest="simulate_command", required=True, metavar="WHAT")
    hs = sims.add_parser(
        "handsets", help="a cellular/PoC module with handsets on a pty (prints its path)"
    )
    hs.add_argument("--handsets", type=int, default=11, metavar="N")
    hs.add_argument(
        "--registry", type=Path, metavar="DIR", help="use the SMS numbers of these radios"
    )
    hs.add_argument(
        "--reply", default="accept", choices=["accept", "decline", "on-scene", "silent", "mixed"]
    )
    hs.add_argument("--reply-delay", type=float, default=2.0, metavar="S")
    hs.add_argument("--on-scene-after", type=float, default=30.0, metavar="S")
    hs.add_argument("--spread", type=float, default=0.0, metavar="F",
                    help="answer after --reply-delay times 1-F..1+F, each handset its own "
                    "(fixed per handset, not random)")  # fmt: skip
    hs.add_argument("--link", type=Path, metavar="PATH", help="stable symlink to the pty")
    hs.add_argument("--drop-every", type=int, metavar="N", help="drop every Nth answer")
    hs.add_argument("--garble-every", type=float, metavar="S", help="noise bytes every S s")
    hs.add_argument("--reboot-every", type=float, metavar="S", help="reboot the module")
    hs.add_argument("--unplug-every", type=float, metavar="S", help="close the port")
    hs.add_argument(
        "--unplug-for",
        type=float,
        default=2.0,
        metavar="S",
        help="how long each --unplug-every lasts (SIGUSR1 unplugs, SIGUSR2 replugs)",
    )
    hs.add_argument("--seed", type=int, help="random seed for garbled bytes")
    hs.add_argument(
        "--silent",
        action="append",
        metavar="GROUP",
        help="a key zone, unit or group whose people never answer (repeatable; needs --registry)",
    )
    hs.add_argument(
        "--decline",
        action="append",
        metavar="GROUP",
        help="a key zone, unit or group whose people always decline (repeatable)",
    )
    hs.add_argument("--offline", action="append", metavar="GROUP",
                    help="a key zone, unit or group whose handsets and phones are off: "
                    "nothing reaches them (repeatable)")  # fmt: skip
    hs.add_argument(
        "--positions-every",
        type=float,
        metavar="S",
        help="patrol members' handsets report a position every S s, walking a beat "
        "around their base (needs --registry)",
    )
    hs.add_argument(
        "--sms-delay",
        default="0",
        metavar="MIN[-MAX]",
        help="seconds the network takes per SMS before the module answers +CMGS "
        "(uniform, e.g. 1-3; default 0)",
    )
    hs.set_defaults(func=run_simulate_handsets)


# --- engine gateway ---------------------------------------------------------------------


def _directory(path: Path) -> StaticDirectory:
    from engine.radio.directory import StaticDirectory
    from engine.registry.registry import load_registry

    if not path.is_dir():
        raise UsageError(f"registry directory {path} not found (use --registry DIR)")
    return StaticDirectory.from_registry(load_registry(path))


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_") or "device"


def run_gateway(args: argparse.Namespace) -> int:
    from engine.radio.gateway import Gateway, KafkaRefused
    from engine.radio.metrics import GatewayMetrics
    from engine.radio.poc import DIALECTS
    from engine.radio.send_loop import BookkeepingFailed
    from engine.radio.sent_log import SentLog
    from engine.radio.transport import ModemLink
    from engine.radio.voice import Voice
    from engine.rules.plan import load_plan

    settings = load_settings(args.config)
    centre = load_plan(args.plan).plan.command_centre.sms_number
    allow = (*settings.radio_allow_numbers, *args.allow, *([centre] if centre else []))
    settings = settings.model_copy(update={"radio_allow_numbers": tuple(dict.fromkeys(allow))})
    directory = _directory(args.registry)
    radio_id = args.radio_id or f"gateway-{_slug(Path(args.device).name)}"
    dialect = None
    if args.dialect:
        dialect = DIALECTS[DIALECT_ALIASES.get(args.dialect, args.dialect)]()
    metrics = GatewayMetrics()
    port = args.metrics_port if args.metrics_port is not None else settings.metrics_port + 1
    metrics.serve(port)
    log_path = settings.data_dir / "radio-gateway" / f"sent-{_slug(radio_id)}.jsonl"

    async def main() -> None:
        sent = SentLog(log_path)
        try:
            async with ModemLink(args.device, baudrate=args.baud) as link:
                gateway = Gateway(
                    settings,
                    link,
                    directory,
                    sent,
                    radio_id=radio_id,
                    dialect=dialect,
                    voice=Voice(voice=args.voice, tx_timeout=args.tx_timeout),
                    metrics=metrics,
                    group_id=args.group_id,
                )
                print(
                    f"gateway {radio_id}: {args.device}, {len(directory)} radios, "
                    f"metrics on :{port}/metrics, sent log {log_path}",
                    file=sys.stderr,
                )
                await gateway.run()
        finally:
            sent.close()

    try:
        _run(main())
    except ExceptionGroup as group:
        # Never swallowed: the page's offset stays uncommitted, so the restart (systemd,
        # Kubernetes) finishes it from the sent log without paging again.
        fatal, _ = group.split((BookkeepingFailed, KafkaRefused))
        if fatal is None:
            raise
        for exc in _leaves(fatal):
            print(f"engine gateway: {exc}", file=sys.stderr)
        return EXIT_BOOKKEEPING
    return 0


def _leaves(group: BaseExceptionGroup[BaseException]) -> list[BaseException]:
    out: list[BaseException] = []
    for exc in group.exceptions:
        out += _leaves(exc) if isinstance(exc, BaseExceptionGroup) else [exc]
    return out


EXIT_BOOKKEEPING = 75  # EX_TEMPFAIL: restart me


# --- engine radio send / ptt ------------------------------------------------------------


def run_send(args: argparse.Namespace) -> int:
    from engine.radio.errors import PortUnavailable
    from engine.radio.transport import ModemLink

    async def main() -> list[int]:
        async with ModemLink(args.device, baudrate=args.baud, backoff_max=1.0) as link:
            try:
                async with asyncio.timeout(10):
                    await link.wait_connected()
            except TimeoutError:
                raise PortUnavailable(f"cannot open {args.device}") from None
            try:
                async with asyncio.timeout(args.timeout):
                    return await link.send_sms(args.to, args.text)
            except TimeoutError:
                raise PortUnavailable(f"no answer from {args.device} in {args.timeout}s") from None

    try:
        refs = asyncio.run(main())
    except ValueError as exc:  # not a number, text too long for its parts
        raise UsageError(str(exc)) from exc
    print(" ".join(str(r) for r in refs))
    return 0


def _rigctld_address(text: str | None) -> tuple[str, int]:
    host, _, port = (text or "").rpartition(":")
    if not host or not port.isdigit():
        raise UsageError("--driver rigctld needs --rigctld HOST:PORT (e.g. 127.0.0.1:4532)")
    return host, int(port)


def run_ptt(args: argparse.Namespace) -> int:
    from engine.radio.poc import HexOpcodeDialect
    from engine.radio.ptt import PocPtt, RigctldPtt, SerialLinePtt, hold
    from engine.radio.transport import ModemLink
    from engine.radio.voice import Voice

    if (args.seconds is None) == (args.say is None):
        raise UsageError("give exactly one of --seconds S and --say TEXT")
    if args.driver != "rigctld" and not args.device:
        raise UsageError(f"--driver {args.driver} needs --device URL")

    async def key(ptt: Ptt) -> None:
        if args.say is not None:
            held = await Voice(voice=args.voice, tx_timeout=args.tx_timeout).say(ptt, args.say)
            print(f"PTT held {held:.2f}s on {ptt.name}")
        else:
            await hold(ptt, args.seconds, tx_timeout=args.tx_timeout)
            print(f"PTT held {args.seconds:.2f}s on {ptt.name}")

    async def main() -> None:
        if args.driver in ("rts", "dtr"):
            line = SerialLinePtt(args.device, args.driver, invert=args.invert)
            try:
                await key(line)
            finally:
                line.close()
        elif args.driver == "rigctld":
            async with RigctldPtt(*_rigctld_address(args.rigctld)) as rig:
                await key(rig)
        else:
            async with ModemLink(args.device) as link:
                await key(PocPtt(link, HexOpcodeDialect()))

    _run(main())
    return 0


# --- engine simulate handsets -------------------------------------------------------------


def run_simulate_handsets(args: argparse.Namespace) -> int:
    from engine.radio.handset_sim import (
        Faults,
        numbers,
        numbers_of_groups,
        parse_delay,
        patrol_tracks,
        run_handsets,
    )

    try:
        sms_delay = parse_delay(args.sms_delay)
    except ValueError as exc:
        raise UsageError(f"--sms-delay: {exc}") from exc

    groups: dict[str, frozenset[str]] = {}  # --silent/--decline/--offline: their numbers
    for option in ("silent", "decline", "offline"):
        named = getattr(args, option)
        if named and args.registry is None:
            raise UsageError(f"--{option} needs --registry")
        try:
            groups[option] = numbers_of_groups(args.registry, named) if named else frozenset()
        except ValueError as exc:
            raise UsageError(f"--{option}: {exc}") from exc
    if args.registry is not None:
        phones = [e.sms_number for e in _directory(args.registry).entries()]
    else:
        phones = numbers(args.handsets)
    faults = Faults(
        drop_every=args.drop_every,
        garble_every=args.garble_every,
        reboot_every=args.reboot_every,
        unplug_every=args.unplug_every,
        unplug_for=args.unplug_for,
    )

    def announce(path: str) -> None:
        print(path, flush=True)

    print(
        f"{len(phones)} handsets ({args.reply}, replies after {args.reply_delay}s, "
        f"{args.sms_delay}s per SMS), "
        f"e.g. {', '.join(phones[:3])}; Ctrl-C stops",
        file=sys.stderr,
    )
    _run(
        run_handsets(
            phones,
            behaviour=args.reply,
            reply_delay=args.reply_delay,
            on_scene_after=args.on_scene_after,
            link=args.link,
            faults=faults,
            announce=announce,
            seed=args.seed,
            tracks=patrol_tracks(args.registry)
            if args.positions_every and args.registry is not None
            else None,
            positions_every=args.positions_every,
            silent=groups["silent"],
            declining=groups["decline"],
            offline=groups["offline"],
            spread=min(max(args.spread, 0.0), 0.95),
            sms_delay=sms_delay,
        )
    )
    return 0
