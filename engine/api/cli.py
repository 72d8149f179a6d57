"""`engine api` (the operators' HTTP API and console) and `engine token create|list|revoke`."""

from __future__ import annotations

import argparse
import contextlib
import sys
from pathlib import Path

from engine.config import DEFAULT_REGISTRY, load_settings

READY = "api ready"
"""Logged once the server listens (tests and the demo wait for it)."""


def cmd_api(args: argparse.Namespace) -> int:
    import logging

    import uvicorn

    from engine.api.app import create_app
    from engine.api.tokens import TokenStore
    from engine.streams.sources import load_worlds

    settings = load_settings(args.config)
    worlds = load_worlds([Path(p) for p in (args.registry or [DEFAULT_REGISTRY])])
    tokens = TokenStore(settings.tokens_path)
    tokens.tokens()  # a bad token file stops the API before it listens
    port = settings.api_port if args.port is None else args.port
    app = create_app(settings, worlds, tokens)
    config = uvicorn.Config(
        app, host=args.host, port=port, log_level="warning", access_log=False, lifespan="on"
    )
    server = uvicorn.Server(config)
    log = logging.getLogger("engine.api")

    async def serve() -> None:
        task = asyncio.create_task(server.serve())
        while not server.started and not task.done():  # noqa: ASYNC110 (uvicorn has no event)
            await asyncio.sleep(0.05)
        if server.started:
            log.warning("%s: http://%s:%d/console/ (tokens: %s)", READY, args.host, port,
                        settings.tokens_path)  # fmt: skip
        await task

    import asyncio

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve())
    return 0


def cmd_token(args: argparse.Namespace) -> int:
    from engine.api.tokens import TokenError, TokenStore

    settings = load_settings(args.config)
    store = TokenStore(settings.tokens_path)
    try:
        if args.token_action == "create":
            token, secret = store.create(args.role, args.name)
            print(f"token {token.id} for {token.name} ({token.role}), shown once: {secret}")
        elif args.token_action == "revoke":
            token = store.revoke(args.ident)
            print(f"revoked token {token.id} of {token.name}")
        else:
            for t in store.tokens():
                state = f"revoked {t.revoked_at}" if t.revoked_at else "live"
                print(f"{t.id}  {t.name:24s} {t.role:8s} created {t.created_at}  {state}")
    except TokenError as exc:
        print(f"engine: error: {exc}", file=sys.stderr)
        return 2
    return 0


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("api", help="serve the operators' HTTP API and web console")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (127.0.0.1)")
    p.add_argument("--port", type=int, default=None, help="port (default: api_port, 8080)")
    p.add_argument(
        "--registry", action="append", metavar="DIR", help="registry directory, one per area"
    )
    p.set_defaults(func=cmd_api)

    p = sub.add_parser("token", help="bearer tokens of the API: create, list, revoke")
    tsub = p.add_subparsers(dest="token_action", required=True)
    c = tsub.add_parser("create", help="a new token, printed once (its last word)")
    c.add_argument("--role", required=True, choices=["viewer", "operator", "admin"])
    c.add_argument("--name", required=True, help="the person or system: the recorded actor")
    tsub.add_parser("list", help="tokens (never their secrets)")
    r = tsub.add_parser("revoke", help="revoke a token by id or name")
    r.add_argument("ident")
    p.set_defaults(func=cmd_token)
