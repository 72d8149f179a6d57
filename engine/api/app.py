"""`engine api`: the operators' HTTP API and the web console (FastAPI).

Writes go to Kafka and are answered from Kafka: a raise is 201 only once the broker
acknowledged the record (acks=all); a command is 200 or 409 only once the worker's
outcome for it is read back from ``audit`` (the worker applied it in order with the
area's other events). Reads come from the read model (:mod:`engine.api.readmodel`).

Every request but ``/healthz``, ``/readyz``, ``/metrics`` and the console's static files
needs a bearer token (:mod:`engine.api.tokens`): ``viewer`` reads, ``operator`` raises
and commands, ``admin`` manages units. The actor of every record is the token's name.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any, Literal

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from fastapi import Depends, FastAPI, HTTPException, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, StreamingResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from engine import clock as engine_clock
from engine.api.metrics import ApiMetrics
from engine.api.readmodel import Follower, ReadModel
from engine.api.tokens import Role, Token, TokenError, TokenStore
from engine.broadcast.model import BroadcastIn, Cancel, new_broadcast_id
from engine.broadcast.plan import BroadcastRefused, plan_broadcast
from engine.broadcast.policy import QuietHours
from engine.broadcast.progress import TERMINAL
from engine.broadcast.publish import write_broadcast, write_cancel
from engine.config import Settings
from engine.errors import EngineError
from engine.geo.areas import area_by_id, area_geojson
from engine.kafka.connection import probe, producer_kwargs
from engine.models import (
    COMMAND_ACTIONS,
    Command,
    Incident,
    IncidentType,
    Location,
    Priority,
    UnitStatus,
)
from engine.rules.intake import OutOfArea, with_area
from engine.rules.world import World

log = logging.getLogger(__name__)

CONSOLE = Path(__file__).parent / "console"
MAX_BODY = 16 * 1024
SSE_HEARTBEAT_S = 15.0
PROBE_EVERY_S = 5.0


# --- request bodies (bounded; unknown fields refused) ---------------------------------------
class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class IncidentIn(_Body):
    type: IncidentType
    priority: Priority
    location: Location
    area: str | None = Field(default=None, max_length=64)
    address: str | None = Field(default=None, max_length=200)
    description: str | None = Field(default=None, max_length=2000)


class CommandIn(_Body):
    reason: str | None = Field(default=None, max_length=500)
    zone_id: str | None = Field(default=None, max_length=64)
    priority: Priority | None = None
    type: IncidentType | None = None
    location: Location | None = None
    address: str | None = Field(default=None, max_length=200)


class CancelIn(_Body):
    reason: str | None = Field(default=None, max_length=500)


class UnitPatch(_Body):
    available: bool
    reason: str = Field(min_length=1, max_length=200)


_NEEDS: dict[str, tuple[str, ...]] = {
    "reassign": ("zone_id",),
    "note": ("reason",),
    "move": ("location",),
}


class RateLimit:
    """A token bucket per token: ``per_minute`` raises, refilled continuously."""

    def __init__(self, per_minute: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = per_minute / 60.0
        self.burst = float(per_minute)
        self.clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}

    def take(self, key: str) -> float:
        """0 if allowed, else the seconds to wait."""
        now = self.clock()
        level, then = self._buckets.get(key, (self.burst, now))
        level = min(self.burst, level + (now - then) * self.rate)
        if level < 1.0:
            self._buckets[key] = (level, now)
            return (1.0 - level) / self.rate
        self._buckets[key] = (level - 1.0, now)
        return 0.0


class Api:
    """What the routes share: settings, registries, Kafka clients, the read model."""

    def __init__(self, settings: Settings, worlds: dict[str, World], tokens: TokenStore) -> None:
        self.settings = settings
        self.worlds = worlds
        self.areas = [w.registry.outline for w in worlds.values() if w.registry.outline]
        self.tokens = tokens
        self.model = ReadModel()
        self.follower = Follower(settings, self.model)
        self.metrics = ApiMetrics()
        self.limit = RateLimit(settings.api_raise_per_minute)
        self.producer: AIOKafkaProducer | None = None
        self.kafka_ok = False
        self.quiet = QuietHours.parse(
            settings.broadcast_quiet_hours,
            settings.broadcast_timezone,
            settings.broadcast_quiet_priorities,
        )
        self.broadcast_lock = asyncio.Lock()  # one broadcast written at a time
        self.written: OrderedDict[str, dict[str, Any]] = OrderedDict()
        """broadcasts this process wrote (the read model may not have them yet): a retry
        with the same idempotency key is answered from here"""
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self.follower.run(), name="read-model"),
            asyncio.create_task(self._probe(), name="kafka-probe"),
        ]

    async def stop(self) -> None:
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        for q in list(self.model.subscribers):
            with contextlib.suppress(asyncio.QueueFull):
                q.put_nowait(None)
        if self.producer is not None:
            await self.producer.stop()

    async def _probe(self) -> None:
        while True:
            try:
                await probe(self.settings, timeout_s=3.0)
                self.kafka_ok = True
            except Exception:  # any failure means: not reachable now
                self.kafka_ok = False
            await asyncio.sleep(PROBE_EVERY_S)

    async def send(self, logical: str, key: str, value: bytes) -> None:
        """Produce and wait for the broker's acknowledgement (acks=all)."""
        if self.producer is None:
            producer = AIOKafkaProducer(**producer_kwargs(self.settings), request_timeout_ms=10_000)
            try:
                await producer.start()
            except (KafkaError, OSError) as exc:
                with contextlib.suppress(Exception):
                    await producer.stop()
                raise HTTPException(503, f"Kafka unavailable: {exc}") from exc
            self.producer = producer
        try:
            await asyncio.wait_for(
                self.producer.send_and_wait(
                    self.settings.topic(logical), value, key=key.encode("utf-8")
                ),
                timeout=15.0,
            )
        except (KafkaError, TimeoutError) as exc:
            raise HTTPException(503, f"Kafka did not acknowledge the write: {exc!r}") from exc

    def actor(self, token: Token) -> str:
        return token.name

    def map_geojson(self) -> dict[str, Any]:
        features: list[dict[str, Any]] = []
        for area_id, world in self.worlds.items():
            reg = world.registry
            if reg.outline is not None:
                outline = json.loads(area_geojson(reg.outline))
                for f in outline.get("features", [outline]):
                    f.setdefault("properties", {})["layer"] = "area"
                    features.append(f)
            for kind, group in (("key_zone", reg.key_zones), ("unit", reg.units)):
                for e in group.values():
                    features.append(
                        {
                            "type": "Feature",
                            "geometry": {
                                "type": "Point",
                                "coordinates": [e.location.lon, e.location.lat],
                            },
                            "properties": {
                                "layer": kind,
                                "id": e.id,
                                "name_zh": e.name_zh,
                                "area": area_id,
                            },
                        }
                    )
        return {"type": "FeatureCollection", "features": features}

    def units(self) -> list[dict[str, Any]]:
        out = []
        for area_id, world in self.worlds.items():
            reg = world.registry
            for kind, group in (("key_zone", reg.key_zones), ("unit", reg.units)):
                for e in group.values():
                    status = self.model.units.get(e.id, {})
                    out.append(
                        {
                            "id": e.id,
                            "kind": kind,
                            "name_zh": e.name_zh,
                            "area": area_id,
                            "location": {"lat": e.location.lat, "lon": e.location.lon},
                            "available": status.get("available", True),
                            "radio_online": status.get("radio_online"),
                            "reason": status.get("reason"),
                            "updated_at": status.get("at"),
                        }
                    )
        return out

    def positions(self) -> dict[str, tuple[float, float]]:
        """Live positions of observers (and anything else that reports one)."""
        out = {}
        for unit_id, status in self.model.units.items():
            loc = status.get("location")
            if isinstance(loc, dict):
                lat, lon = loc.get("lat"), loc.get("lon")
                if isinstance(lat, int | float) and isinstance(lon, int | float):
                    out[unit_id] = (float(lat), float(lon))
        return out

    def known_unit(self, unit_id: str) -> bool:
        return any(
            unit_id in w.registry.key_zones or unit_id in w.registry.units
            for w in self.worlds.values()
        )


def _accepted(summary: dict[str, Any]) -> dict[str, Any]:
    keys = ("broadcast_id", "recipients", "messages", "poc_groups", "sms", "state",
            "priority", "expires_at", "unlocated", "poc_group_people")  # fmt: skip
    return {k: summary.get(k) for k in keys}


def _token_of(api: Api, request: Request) -> Token | None:
    header = request.headers.get("authorization", "")
    scheme, _, presented = header.partition(" ")
    if scheme.lower() != "bearer":
        return None
    try:
        return api.tokens.check(presented.strip())
    except TokenError as exc:
        log.error("token file unusable: %s", exc)
        raise HTTPException(503, "token store unusable; see the API's log") from exc


def require(role: Role) -> Callable[[Request], Awaitable[Token]]:
    """A dependency: the request's bearer token, if it may act as ``role``. (Async: a
    plain function would run in a worker thread for nothing.)"""

    async def check(request: Request) -> Token:
        # the middleware checked it already (every /v1/ request); hashed once per request
        token: Token | None = getattr(request.state, "token", None)
        if token is None:
            token = _token_of(request.app.state.api, request)
        if token is None:
            raise HTTPException(
                401, "a valid bearer token is needed", {"WWW-Authenticate": "Bearer"}
            )
        if not token.may(role):
            raise HTTPException(403, f"this needs the {role} role; the token is {token.role}")
        return token

    return check


Viewer = Annotated[Token, Depends(require("viewer"))]
Operator = Annotated[Token, Depends(require("operator"))]
Admin = Annotated[Token, Depends(require("admin"))]


def create_app(settings: Settings, worlds: dict[str, World], tokens: TokenStore) -> FastAPI:
    api = Api(settings, worlds, tokens)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await api.start()
        try:
            yield
        finally:
            await api.stop()

    app = FastAPI(
        title="Tangxia emergency engine",
        version="1",
        lifespan=lifespan,
        description="Operators' API: raise incidents, watch them, command them.",
    )
    app.state.api = api

    @app.middleware("http")
    async def bounded_and_timed(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        if request.url.path.startswith("/v1/"):
            try:
                request.state.token = _token_of(api, request)
            except HTTPException as exc:
                return JSONResponse({"detail": exc.detail}, status_code=exc.status_code)
        if request.url.path.startswith("/v1/") and request.state.token is None:
            # before anything reads the body: strangers learn nothing about it
            return JSONResponse(
                {"detail": "a valid bearer token is needed"},
                status_code=401,
                headers={"WWW-Authenticate": "Bearer"},
            )
        length = request.headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > MAX_BODY):
            return JSONResponse({"detail": f"body over {MAX_BODY} bytes"}, status_code=413)
        if request.method in ("POST", "PATCH", "PUT") and length is None:
            body = b""
            async for chunk in request.stream():
                body += chunk
                if len(body) > MAX_BODY:
                    return JSONResponse({"detail": f"body over {MAX_BODY} bytes"}, 413)
            request._body = body  # read once, bounded; the route reads it from here
        started = time.perf_counter()
        response = await call_next(request)
        route = request.scope.get("route")
        path = getattr(route, "path", "unmatched")
        api.metrics.requests.labels(request.method, path, str(response.status_code)).observe(
            time.perf_counter() - started
        )
        return response

    # --- health ---------------------------------------------------------------------
    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", include_in_schema=False)
    async def readyz() -> JSONResponse:
        caught_up = api.follower.caught_up.is_set()
        ready = caught_up and api.kafka_ok
        body = {"ready": ready, "kafka": api.kafka_ok, "read_model_caught_up": caught_up}
        return JSONResponse(body, status_code=200 if ready else 503)

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        api.metrics.sse_clients.set(len(api.model.subscribers))
        now = engine_clock.time_s()
        api.metrics.broadcast_messages_left.set(
            sum(
                max(0, p.messages - p.finished)
                for p in api.model.broadcasts.broadcasts.values()
                if p.notice is not None and p.state(now) not in TERMINAL
            )
        )
        body, content_type = api.metrics.exposition()
        return Response(body, media_type=content_type)

    # --- incidents ------------------------------------------------------------------
    @app.post("/v1/incidents", status_code=201)
    async def raise_incident(
        body: IncidentIn, token: Operator, response: Response
    ) -> dict[str, str]:
        wait = api.limit.take(token.id)
        if wait:
            response.headers["Retry-After"] = str(int(wait) + 1)
            raise HTTPException(429, f"raise rate limit: retry in {wait:.0f} s", response.headers)
        incident = Incident(
            type=body.type,
            priority=body.priority,
            location=body.location,
            area=body.area,
            address=body.address,
            description=body.description,
            reporter=api.actor(token),
        )
        try:
            incident = with_area(incident, api.areas)
        except OutOfArea as exc:
            raise HTTPException(422, str(exc)) from exc
        outline = area_by_id(incident.area or "", api.areas)
        if outline is not None and not outline.contains(body.location.lat, body.location.lon):
            raise HTTPException(422, f"location is outside dispatch area {incident.area}")
        assert incident.area is not None
        await api.send("incidents", incident.area, incident.to_json_bytes())
        api.metrics.raised.inc()
        return {"id": incident.id}

    @app.get("/v1/incidents")
    async def list_incidents(
        _: Viewer,
        status: Literal["open", "all"] = "open",
        since: Annotated[str | None, Query(max_length=40)] = None,
    ) -> dict[str, Any]:
        return {"incidents": api.model.listing(status, since)}

    @app.get("/v1/incidents/{incident_id}")
    async def get_incident(incident_id: str, _: Viewer) -> dict[str, Any]:
        view = api.model.view(incident_id[:64])
        if view is None or view.state is None:
            raise HTTPException(404, f"no incident {incident_id[:64]!r}")
        return view.detail()

    @app.post("/v1/incidents/{incident_id}/{action}")
    async def command(
        incident_id: str, action: str, token: Operator, body: CommandIn | None = None
    ) -> dict[str, Any]:
        if action not in COMMAND_ACTIONS:
            raise HTTPException(
                404, f"no command {action[:20]!r}; one of {', '.join(COMMAND_ACTIONS)}"
            )
        body = body or CommandIn()
        missing = [f for f in _NEEDS.get(action, ()) if getattr(body, f) in (None, "")]
        if action == "priority" and body.priority is None and body.type is None:
            missing.append("priority or type")
        if missing:
            raise HTTPException(422, f"{action} needs {', '.join(missing)}")
        view = api.model.view(incident_id[:64])
        if view is None or view.state is None:
            raise HTTPException(404, f"no incident {incident_id[:64]!r}")
        area = str((view.state.get("incident") or {}).get("area") or "")
        cmd = Command(
            command_id=uuid.uuid4().hex,
            action=action,
            incident_id=view.id,
            area=area,
            actor=api.actor(token),
            role=token.role,
            at=engine_clock.now(),
            **body.model_dump(exclude_none=True),
        )
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[dict[str, Any]] = loop.create_future()
        api.model.command_waiters[cmd.command_id] = waiter
        try:
            await api.send("commands", area, cmd.to_json_bytes())
            result = await asyncio.wait_for(waiter, settings.api_command_timeout_s)
        except TimeoutError as exc:
            api.metrics.commands.labels(action, "timeout").inc()
            raise HTTPException(
                504,
                f"command {cmd.command_id} sent; no outcome from the worker within "
                f"{settings.api_command_timeout_s:.0f} s (see /v1/audit)",
            ) from exc
        finally:
            api.model.command_waiters.pop(cmd.command_id, None)
        api.metrics.commands.labels(action, result["result"]).inc()
        if result["result"] != "applied":
            raise HTTPException(409, result["reason"])
        return {
            "command_id": cmd.command_id,
            "result": "applied",
            "reason": result["reason"],
            "stage": result.get("stage"),
        }

    # --- broadcasts (issue 17) ----------------------------------------------------------
    @app.post("/v1/broadcasts", status_code=202)
    async def create_broadcast(
        body: BroadcastIn, token: Operator, response: Response
    ) -> dict[str, Any]:
        wait = api.limit.take(f"broadcast:{token.id}")  # a bucket of its own
        if wait:
            response.headers["Retry-After"] = str(int(wait) + 1)
            raise HTTPException(429, f"rate limit: retry in {wait:.0f} s", response.headers)
        now = engine_clock.now()
        actor = api.actor(token)
        async with api.broadcast_lock:
            if body.idempotency_key is not None:  # a retried request: the same broadcast
                bid = new_broadcast_id(now, actor, body.idempotency_key)
                known = api.model.broadcasts.get(bid)
                if known is not None and known.notice is not None:
                    return _accepted(known.summary(engine_clock.time_s()))
                if bid in api.written:
                    return _accepted(api.written[bid])
            registries = [w.registry for w in api.worlds.values()]
            try:
                planned = await asyncio.to_thread(
                    plan_broadcast,
                    body,
                    registries,
                    actor=actor,
                    role=token.role,
                    now=now,
                    quiet=api.quiet,
                    positions=api.positions(),
                    min_group=settings.broadcast_min_group,
                    max_parts=settings.radio_max_sms_parts,
                )
            except BroadcastRefused as exc:
                result = "quiet_hours" if exc.status == 409 else "refused"
                api.metrics.broadcasts.labels("create", result).inc()
                raise HTTPException(exc.status, exc.reason) from exc
            try:
                await write_broadcast(settings, planned)
            except EngineError as exc:
                raise HTTPException(503, f"Kafka did not take the broadcast: {exc}") from exc
            api.written[planned.notice.broadcast_id] = planned.summary()
            while len(api.written) > 1000:
                api.written.popitem(last=False)
        api.metrics.broadcasts.labels("create", "accepted").inc()
        return _accepted(planned.summary())

    @app.get("/v1/broadcasts")
    async def list_broadcasts(_: Viewer) -> dict[str, Any]:
        return {"broadcasts": api.model.broadcasts.listing(engine_clock.time_s())}

    @app.get("/v1/broadcasts/{broadcast_id}")
    async def get_broadcast(broadcast_id: str, _: Viewer) -> dict[str, Any]:
        progress = api.model.broadcasts.get(broadcast_id[:64])
        if progress is None or progress.notice is None:
            raise HTTPException(404, f"no broadcast {broadcast_id[:64]!r}")
        return {**progress.summary(engine_clock.time_s()), "reply_texts": progress.replies[-50:]}

    @app.post("/v1/broadcasts/{broadcast_id}/cancel", status_code=202)
    async def cancel_broadcast(
        broadcast_id: str, token: Operator, body: CancelIn | None = None
    ) -> dict[str, Any]:
        progress = api.model.broadcasts.get(broadcast_id[:64])
        if progress is None or progress.notice is None:
            api.metrics.broadcasts.labels("cancel", "unknown").inc()
            raise HTTPException(404, f"no broadcast {broadcast_id[:64]!r}")
        state = progress.state(engine_clock.time_s())
        if state in TERMINAL:
            api.metrics.broadcasts.labels("cancel", "refused").inc()
            raise HTTPException(409, f"broadcast {progress.broadcast_id} is already {state}")
        cancel = Cancel(
            broadcast_id=progress.broadcast_id,
            at=engine_clock.now(),
            actor=api.actor(token),
            role=token.role,
            reason=(body or CancelIn()).reason,
        )
        try:
            await write_cancel(settings, cancel)
        except EngineError as exc:
            raise HTTPException(503, f"Kafka did not take the cancel: {exc}") from exc
        api.metrics.broadcasts.labels("cancel", "accepted").inc()
        return {
            "broadcast_id": progress.broadcast_id,
            "state": "cancelling",
            "left": max(0, progress.messages - progress.finished),
        }

    # --- units, map, audit ----------------------------------------------------------
    @app.get("/v1/units")
    async def list_units(_: Viewer) -> dict[str, Any]:
        return {"units": api.units()}

    @app.patch("/v1/units/{unit_id}")
    async def patch_unit(unit_id: str, body: UnitPatch, token: Admin) -> dict[str, Any]:
        if not api.known_unit(unit_id):
            raise HTTPException(404, f"no key zone or unit {unit_id[:64]!r}")
        status = UnitStatus(
            unit_id=unit_id,
            available=body.available,
            reason=body.reason,
            source=f"operator:{api.actor(token)}",
        )
        await api.send("unit-status", unit_id, status.to_json_bytes())
        return {"unit_id": unit_id, "available": body.available, "reason": body.reason}

    @app.get("/v1/map")
    async def map_layers(_: Viewer) -> dict[str, Any]:
        return api.map_geojson()

    @app.get("/v1/audit")
    async def audit(
        _: Viewer,
        actor: Annotated[str | None, Query(max_length=100)] = None,
        incident: Annotated[str | None, Query(max_length=64)] = None,
        since: Annotated[str | None, Query(max_length=40)] = None,
        limit: Annotated[int, Query(ge=1, le=5000)] = 500,
    ) -> dict[str, Any]:
        return {"entries": api.model.audit_entries(actor, incident, since, limit)}

    @app.get("/v1/whoami")
    async def whoami(token: Viewer) -> dict[str, str]:
        return {"name": token.name, "role": token.role}

    # --- live events ----------------------------------------------------------------
    @app.get("/v1/events")
    async def events(request: Request, _: Viewer) -> StreamingResponse:
        queue = api.model.subscribe()

        async def stream() -> AsyncIterator[bytes]:
            try:
                yield b"retry: 2000\n\n"
                while True:
                    try:
                        event = await asyncio.wait_for(queue.get(), SSE_HEARTBEAT_S)
                    except TimeoutError:
                        if await request.is_disconnected():
                            return
                        yield b": heartbeat\n\n"
                        continue
                    if event is None:  # dropped (too slow) or shutting down
                        return
                    data = json.dumps(event, ensure_ascii=False, separators=(",", ":"))
                    yield f"event: {event['type']}\ndata: {data}\n\n".encode()
            finally:
                api.model.unsubscribe(queue)

        return StreamingResponse(
            stream(),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    # --- the console ----------------------------------------------------------------
    @app.get("/", include_in_schema=False)
    async def root() -> RedirectResponse:
        return RedirectResponse("/console/")

    app.mount("/console", StaticFiles(directory=CONSOLE, html=True), name="console")

    @app.exception_handler(ValidationError)
    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: ValidationError | RequestValidationError) -> JSONResponse:
        # Where and why, never the input echoed back: it may not even be JSON (NaN).
        errors = [
            {"loc": [str(p) for p in e.get("loc", ())], "msg": str(e.get("msg", "")),
             "type": str(e.get("type", ""))}
            for e in exc.errors()
        ]  # fmt: skip
        return JSONResponse({"detail": errors}, status_code=422)

    return app
