"""Platform commands: config, local broker, topics, raise, tail, schemas."""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import sys
from pathlib import Path

from pydantic import ValidationError

from engine.config import DEFAULT_REGISTRY, Settings, load_settings
from engine.errors import ConfigError, UsageError
from engine.models import Incident, IncidentType, Priority


def _settings(args: argparse.Namespace) -> Settings:
    return load_settings(args.config)


# --- config ---------------------------------------------------------------------------
def cmd_config_show(args: argparse.Namespace) -> int:
    print(json.dumps(_settings(args).redacted(), indent=2, ensure_ascii=False))
    return 0


# --- broker ---------------------------------------------------------------------------
def cmd_broker(args: argparse.Namespace) -> int:
    from engine.broker.local import LocalBroker

    if args.action == "secure-files":
        return _broker_secure_files(args)
    if args.action == "acls":
        return _broker_acls(args)
    broker = LocalBroker(_settings(args), secure=args.secure)
    if args.action == "start":
        _, message = broker.start()
        print(message)
        return 0
    if args.action == "stop":
        _, message = broker.stop()
        print(message)
        return 0
    st = broker.status()
    print(f"running:   {'yes' if st.running else 'no'}")
    print(f"answers:   {'yes' if st.answers else 'no'}")
    print(f"version:   Apache Kafka {st.version or 'unknown (never started)'}")
    print(f"bootstrap: {st.bootstrap}")
    print(f"pid:       {st.pid if st.pid is not None else '-'}")
    print(f"data dir:  {st.data_dir}")
    return 0 if st.running else 3  # 3: not running, like `systemctl status`


def _broker_secure_files(args: argparse.Namespace) -> int:
    from engine.broker.compose import write_compose_secrets

    if not args.out:
        raise UsageError("broker secure-files needs --out DIR (e.g. deploy/secrets)")
    made = write_compose_secrets(Path(args.out))
    for name in made.made:
        print(f"made       {name}")
    for name in made.kept:
        print(f"kept       {name}")
    for name in made.written:
        print(f"written    {name}")
    return 0


def _broker_acls(args: argparse.Namespace) -> int:
    from engine.broker.secure import ROLES, acl_rules, ensure_acls

    settings = _settings(args)
    count = asyncio.run(ensure_acls(settings, acl_rules(settings)))
    print(
        f"{count} ACLs for roles {', '.join(ROLES)} at {settings.kafka_bootstrap} "
        f"(topic prefix {settings.topic_prefix!r})"
    )
    return 0


# --- topics ---------------------------------------------------------------------------
def cmd_topics_ensure(args: argparse.Namespace) -> int:
    from engine.kafka.topics import ensure_topics

    settings = _settings(args)
    report = asyncio.run(ensure_topics(settings))
    for name in report.created:
        print(f"created    {name}")
    for name in report.unchanged:
        print(f"ok         {name}")
    for name, diffs in report.mismatched.items():
        for diff in diffs:
            print(f"MISMATCH   {name}: {diff}")
    if not report.ok:
        print(
            "engine: error: existing topics differ from the configuration; change the "
            "configuration or the topics (nothing was altered)",
            file=sys.stderr,
        )
        return 1
    return 0


# --- raise ----------------------------------------------------------------------------
def _finite(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"not a finite number: {text!r}")
    return value


def cmd_raise(args: argparse.Namespace) -> int:
    from engine.geo.areas import AREA_FILE, load_area
    from engine.kafka.produce import produce_incidents
    from engine.rules.intake import with_area

    fields = {
        "type": args.type,
        "priority": args.priority,
        "location": {"lat": args.lat, "lon": args.lon},
        "address": args.address,
        "description": args.description,
        "reporter": args.reporter,
        "area": args.area,
    }
    if args.id:
        fields["id"] = args.id
    try:
        incident = Incident.model_validate(fields)
    except ValidationError as exc:
        lines = [f"--{'.'.join(str(p) for p in e['loc'][-1:])}: {e['msg']}" for e in exc.errors()]
        raise UsageError("invalid incident:\n  " + "\n  ".join(lines)) from exc
    try:
        areas = [load_area(Path(d) / AREA_FILE) for d in (args.registry or [DEFAULT_REGISTRY])]
    except ConfigError as exc:
        raise UsageError(str(exc)) from exc
    incident = with_area(incident, areas)
    settings = _settings(args)  # after validation: bad arguments never reach Kafka
    [meta] = asyncio.run(produce_incidents(settings, [incident]))
    print(incident.id)
    print(
        f"raised {incident.type} {incident.priority} in {incident.area} -> "
        f"{meta.topic}[{meta.partition}]@{meta.offset}",
        file=sys.stderr,
    )
    return 0


# --- tail -----------------------------------------------------------------------------
def cmd_tail(args: argparse.Namespace) -> int:
    from engine.config import ALL_TOPICS
    from engine.kafka.tail import bare_value, tail

    settings = _settings(args)
    topic = settings.topic(args.topic) if args.topic in ALL_TOPICS else args.topic

    async def run() -> None:
        async for record in tail(
            settings,
            topic,
            from_beginning=args.from_beginning,
            max_records=args.max,
            idle_timeout_s=args.idle_timeout,
        ):
            shown = bare_value(record) if args.bare else record
            print(json.dumps(shown, ensure_ascii=False), flush=True)

    asyncio.run(run())
    return 0


# --- schemas --------------------------------------------------------------------------
def cmd_schemas(args: argparse.Namespace) -> int:
    from engine import schemas

    out = Path(args.out)
    if args.check:
        problems = schemas.stale(out)
        for p in problems:
            print(p, file=sys.stderr)
        if problems:
            print("run `engine schemas export` and commit the result", file=sys.stderr)
        return 1 if problems else 0
    for path in schemas.export(out):
        print(path)
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from engine.demo import run_demo

    if args.config:  # every process the demo starts reads the same file
        os.environ["ENGINE_DEMO_CONFIG"] = args.config
    return run_demo(
        _settings(args), once=args.once, scenario=Path(args.scenario) if args.scenario else None
    )


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "demo", help="the default scenario end to end, then the console until Ctrl-C"
    )
    p.add_argument("--once", action="store_true", help="stop after the summary")
    p.add_argument("--scenario", metavar="FILE", help="another scenario to play")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("config", help="show the effective configuration (secrets masked)")
    p_sub = p.add_subparsers(dest="action", required=True)
    p_sub.add_parser("show").set_defaults(func=cmd_config_show)

    p = sub.add_parser(
        "broker",
        help="the local single-node Kafka broker (KRaft); the secured compose broker's "
        "files (secure-files) and the ACLs per role on any cluster (acls, as its admin)",
    )
    p.add_argument("action", choices=["start", "stop", "status", "secure-files", "acls"])
    p.add_argument(
        "--out",
        metavar="DIR",
        help="secure-files: where to make deploy/compose.yaml's secrets (deploy/secrets)",
    )
    p.add_argument(
        "--secure",
        action="store_true",
        help="SASL_SSL (SCRAM-SHA-512) with a CA of its own and ACLs per role (worker, "
        "gateway, api, viewer); client settings in <data dir>/broker/secure/clients/",
    )
    p.set_defaults(func=cmd_broker)

    p = sub.add_parser("topics", help="create the engine's topics with their settings")
    p_sub = p.add_subparsers(dest="action", required=True)
    p_sub.add_parser("ensure").set_defaults(func=cmd_topics_ensure)

    p = sub.add_parser("raise", help="raise an incident (produce it to `incidents`)")
    p.add_argument("--type", required=True, choices=[t.value for t in IncidentType])
    p.add_argument("--priority", required=True, choices=[p.value for p in Priority])
    p.add_argument("--lat", required=True, type=_finite, help="WGS84 degrees, e.g. 22.80")
    p.add_argument("--lon", required=True, type=_finite, help="WGS84 degrees, e.g. 114.08")
    p.add_argument("--address", help="address text (Chinese welcome)")
    p.add_argument("--description")
    p.add_argument("--reporter")
    p.add_argument("--area", help="dispatch area id (default: derived from the location)")
    p.add_argument("--id", help="incident id (default: assigned)")
    p.add_argument(
        "--registry",
        action="append",
        metavar="DIR",
        help="registry whose area.geojson outlines a dispatch area (repeat for several; "
        "default: data/tangxia)",
    )
    p.set_defaults(func=cmd_raise)

    p = sub.add_parser("tail", help="print a topic's records as JSON lines")
    p.add_argument("topic", help="logical name (incidents, decisions, ...) or a real topic")
    p.add_argument("--from-beginning", action="store_true")
    p.add_argument("--max", type=int, metavar="N", help="stop after N records")
    p.add_argument(
        "--idle-timeout", type=float, metavar="S", help="stop after S seconds without records"
    )
    p.add_argument(
        "--bare",
        action="store_true",
        help="values only, one JSON line each (what `engine decide` and `plan compare` read)",
    )
    p.set_defaults(func=cmd_tail)

    p = sub.add_parser("schemas", help="export the topics' JSON Schemas")
    p_sub = p.add_subparsers(dest="action", required=True)
    e = p_sub.add_parser("export")
    e.add_argument("--out", default="schemas")
    e.add_argument("--check", action="store_true", help="exit 1 if the files are stale")
    e.set_defaults(func=cmd_schemas)
