"""The operator API as a real process over the real broker, with a real worker applying
its commands: every endpoint, every role, 401/403/404/409/413/422/429, 201 after the
broker's ack, SSE."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from engine.config import Settings
from engine.kafka.topics import ensure_topics
from tests.api_process import ApiProcess
from tests.kafka_broker import SessionBroker
from tests.worker_process import WorkerProcess, read_until, write_plan

pytestmark = pytest.mark.integration

SCENE = {"lat": 22.8031, "lon": 114.0842}


@pytest.fixture(scope="module")
def stack(
    kafka: SessionBroker, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Settings, ApiProcess]]:
    """One worker (acks time out after 10 minutes: stages move by command only) and one
    API on this module's own topics."""
    tmp = tmp_path_factory.mktemp("api")
    settings = Settings(
        kafka_bootstrap=kafka.bootstrap,
        topic_prefix=f"t-{uuid.uuid4().hex[:10]}-",
        partitions=2,
        data_dir=tmp,
    )
    assert asyncio.run(ensure_topics(settings)).ok
    worker = WorkerProcess(settings, tmp / "worker.log", plan=write_plan(tmp, 600))
    # quiet hours around now (Tangxia time), so an `info` broadcast is refused with 409
    here = datetime.now(ZoneInfo("Asia/Shanghai"))
    quiet = f"{here - timedelta(hours=1):%H:%M}-{here + timedelta(hours=1):%H:%M}"
    api = ApiProcess(
        settings, tmp / "api.log", ENGINE_API_RAISE_PER_MINUTE="20",
        ENGINE_BROADCAST_QUIET_HOURS=quiet,
    )  # fmt: skip
    worker.start()
    try:
        api.start()
        yield settings, api
    finally:
        api.stop()
        worker.stop()


def _raise(api: ApiProcess, role: str = "operator", **kw: Any) -> httpx.Response:
    body = {"type": "fight", "priority": "P2", "location": SCENE, "address": "塘厦大道 1 号", **kw}
    with api.client(role) as c:
        return c.post("/v1/incidents", json=body)


def _decided(api: ApiProcess, incident_id: str) -> dict[str, Any]:
    return api.wait_for(f"/v1/incidents/{incident_id}", lambda b: b["decisions"])  # type: ignore[no-any-return]


def _command(api: ApiProcess, incident_id: str, action: str, **body: Any) -> httpx.Response:
    with api.client("operator") as c:
        return c.post(f"/v1/incidents/{incident_id}/{action}", json=body or None)


def test_health_openapi_and_metrics(stack: tuple[Settings, ApiProcess]) -> None:
    _, api = stack
    with api.client(None) as c:
        assert c.get("/healthz").json() == {"status": "ok"}
        ready = c.get("/readyz")
        assert ready.status_code == 200 and ready.json()["read_model_caught_up"] is True
        paths = c.get("/openapi.json").json()["paths"]
        assert {"/v1/incidents", "/v1/incidents/{incident_id}/{action}", "/v1/events"} <= set(paths)
        assert c.get("/console/").status_code == 200
        metrics = c.get("/metrics").text
    assert "engine_api_request_seconds_bucket" in metrics
    assert 'route="/readyz"' in metrics
    assert "engine_api_sse_clients" in metrics


def test_tokens_and_roles(stack: tuple[Settings, ApiProcess]) -> None:
    settings, api = stack
    with api.client(None) as c:
        assert c.get("/v1/incidents").status_code == 401
        assert c.get("/v1/incidents").headers["www-authenticate"] == "Bearer"
    with api.client(token="txe_not-a-token") as c:
        assert c.get("/v1/incidents").status_code == 401
    with api.client("viewer") as c:
        assert c.get("/v1/incidents").status_code == 200
        assert c.get("/v1/whoami").json() == {"name": "test-viewer", "role": "viewer"}
        assert c.post("/v1/incidents", json={}).status_code == 403
        assert c.post("/v1/incidents/X/note", json={"reason": "x"}).status_code == 403
        assert (
            c.patch("/v1/units/KZ001", json={"available": False, "reason": "x"}).status_code == 403
        )
    with api.client("operator") as c:
        r = c.patch("/v1/units/KZ001", json={"available": False, "reason": "x"})
        assert r.status_code == 403 and "admin" in r.json()["detail"]
    # revoked: refused at once, without a restart
    secret = api.token("viewer", "soon-revoked")
    with api.client(token=secret) as c:
        assert c.get("/v1/units").status_code == 200
        out = subprocess.run(
            [sys.executable, "-m", "engine.cli", "token", "revoke", "soon-revoked"],
            env={"ENGINE_DATA_DIR": str(settings.data_dir), "PATH": "/usr/bin:/bin"},
            capture_output=True,
            text=True,
            check=True,
        )
        assert "revoked" in out.stdout
        assert c.get("/v1/units").status_code == 401
    stored = Path(settings.tokens_path).read_text()
    assert secret not in stored and api.tokens["operator"] not in stored  # hashes only


def test_raise_is_201_after_the_broker_has_it_and_the_worker_decides(
    stack: tuple[Settings, ApiProcess],
) -> None:
    settings, api = stack
    r = _raise(api, description="two men fighting")
    assert r.status_code == 201, r.text
    incident_id = r.json()["id"]
    # acknowledged means written: the record is on the topic already
    records = read_until(settings, "incidents", lambda rs: True, timeout=5)
    mine = [x["value"] for x in records if x["value"].get("id") == incident_id]
    assert mine and mine[0]["reporter"] == "test-operator"  # the actor from the token
    view = _decided(api, incident_id)
    assert view["state"] == "dispatched" and view["zone_id"]
    assert view["decisions"][0]["reasons"]
    assert view["timeline"][0]["what"] == "incident raised"
    assert view["timeline"][0]["who"] == "test-operator"
    assert len(view["callouts"]) >= 11 and view["grid"][0]["kind"] == "key_zone"
    listed = api.wait_for("/v1/incidents?status=open", lambda b: b["incidents"])
    assert incident_id in [i["id"] for i in listed["incidents"]]


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"priority": "P9"}, "priority"),
        ({"location": {"lat": 23.5, "lon": 113.0}}, "outside every dispatch area"),
        ({"location": {"lat": 22.8031, "lon": 114.0842}, "area": "nowhere"}, "unknown dispatch"),
        ({"reporter": "someone else"}, "extra"),
        ({"description": "x" * 2001}, "description"),
    ],
)
def test_bad_raises_are_422_with_the_reason(
    stack: tuple[Settings, ApiProcess], body: dict[str, Any], fragment: str
) -> None:
    _, api = stack
    r = _raise(api, **body)
    assert r.status_code == 422, r.text
    assert fragment in r.text


def test_oversized_body_is_413_and_raise_rate_is_limited(
    stack: tuple[Settings, ApiProcess],
) -> None:
    _, api = stack
    with api.client("operator") as c:
        r = c.post("/v1/incidents", content=b"{" + b" " * 20_000 + b"}")
        assert r.status_code == 413
    secret = api.token("operator", "fast-fingers")
    codes = []
    with api.client(token=secret) as c:
        for _ in range(22):  # the API under test allows 20 a minute per token
            # outside the town: counted, then refused (no incident for the worker)
            body = {"type": "other", "priority": "P4", "location": {"lat": 23.5, "lon": 113.0}}
            codes.append(c.post("/v1/incidents", json=body).status_code)
    assert codes[:20] == [422] * 20 and codes[20:] == [429, 429]
    assert _raise(api).status_code == 201  # another token is not limited


def test_every_command_is_applied_or_refused_by_the_worker(
    stack: tuple[Settings, ApiProcess],
) -> None:
    _, api = stack
    incident_id = _raise(api, type="theft", priority="P3").json()["id"]
    view = _decided(api, incident_id)
    first_zone = view["zone_id"]

    r = _command(api, incident_id, "note", reason="caller says the thief ran north")
    assert r.status_code == 200 and r.json()["reason"] == "note added"
    r = _command(api, incident_id, "repage")
    assert r.status_code == 200 and "paged again" in r.json()["reason"]
    r = _command(api, incident_id, "escalate", reason="crowd")
    assert r.status_code == 200 and r.json()["stage"] == 1
    with api.client("viewer") as c:
        units = {u["id"]: u for u in c.get("/v1/units").json()["units"]}
    assert first_zone in units
    r = _command(api, incident_id, "priority", priority="P1")
    assert r.status_code == 200 and "priority P3 -> P1" in r.json()["reason"]
    r = _command(api, incident_id, "move", location={"lat": 22.805, "lon": 114.086})
    assert r.status_code == 200
    r = _command(api, incident_id, "move", location={"lat": 23.5, "lon": 113.0})
    assert r.status_code == 409 and "outside dispatch area" in r.json()["detail"]
    r = _command(api, incident_id, "reassign", zone_id="KZ-NOPE")
    assert r.status_code == 409 and "not a key zone" in r.json()["detail"]
    r = _command(api, incident_id, "close", reason="resolved")
    assert r.status_code == 200
    for action in ("close", "escalate", "cancel"):
        r = _command(api, incident_id, action)
        assert r.status_code == 409 and "closed" in r.json()["detail"], action
    r = _command(api, incident_id, "reopen", reason="back again")
    assert r.status_code == 200
    r = _command(api, incident_id, "cancel", reason="false alarm")
    assert r.status_code == 200

    view = api.wait_for(f"/v1/incidents/{incident_id}", lambda b: b["state"] == "cancelled")
    commands = [e for e in view["timeline"] if e.get("command")]
    assert [e["command"] for e in commands] == [
        "note", "repage", "escalate", "priority", "move", "close", "reopen", "cancel"
    ]  # fmt: skip
    assert {e["who"] for e in commands} == {"test-operator"}
    with api.client("viewer") as c:
        audit = c.get(f"/v1/audit?incident={incident_id}&actor=test-operator").json()
    results = [(e["action"], e["result"]) for e in audit["entries"] if e["kind"] == "command"]
    assert ("reassign", "refused") in results and ("cancel", "applied") in results
    assert len(results) == 13


def test_reassign_to_the_operators_zone(stack: tuple[Settings, ApiProcess]) -> None:
    _, api = stack
    incident_id = _raise(
        api, type="fire", priority="P2", location={"lat": 22.79, "lon": 114.1}
    ).json()["id"]
    view = _decided(api, incident_id)
    with api.client("viewer") as c:
        zones = [u for u in c.get("/v1/units").json()["units"] if u["kind"] == "key_zone"]
    lat, lon = 22.79, 114.1
    zones.sort(key=lambda z: (z["location"]["lat"] - lat) ** 2 + (z["location"]["lon"] - lon) ** 2)
    target = next(z["id"] for z in zones if z["id"] != view["zone_id"])
    r = _command(api, incident_id, "reassign", zone_id=target, reason="closer by road")
    assert r.status_code == 200, r.text
    view = api.wait_for(f"/v1/incidents/{incident_id}", lambda b: b["zone_id"] == target)
    assert view["decisions"][-1]["reasons"][0].startswith(f"reassigned to {target}")


def test_command_errors_before_the_worker(stack: tuple[Settings, ApiProcess]) -> None:
    _, api = stack
    assert _command(api, "INC-NOPE", "escalate").status_code == 404
    incident_id = _raise(api).json()["id"]
    _decided(api, incident_id)
    assert _command(api, incident_id, "dance").status_code == 404
    assert _command(api, incident_id, "reassign").status_code == 422
    assert _command(api, incident_id, "note").status_code == 422
    assert _command(api, incident_id, "priority").status_code == 422
    assert _command(api, incident_id, "note", reason="x", actor="mallory").status_code == 422


def test_units_patch_reaches_the_board_and_the_audit(stack: tuple[Settings, ApiProcess]) -> None:
    _, api = stack
    with api.client("admin") as c:
        assert (
            c.patch("/v1/units/NOPE", json={"available": False, "reason": "x"}).status_code == 404
        )
        r = c.patch("/v1/units/KZ099", json={"available": False, "reason": "team at training"})
        assert r.status_code == 200
    units = api.wait_for(
        "/v1/units",
        lambda b: any(u["id"] == "KZ099" and u["available"] is False for u in b["units"]),
    )
    assert units
    audit = api.wait_for("/v1/audit?actor=test-admin", lambda b: b["entries"])
    assert "KZ099" in audit["entries"][0]["what"]
    with api.client("viewer") as c:
        layers = c.get("/v1/map").json()
    kinds = {f["properties"]["layer"] for f in layers["features"]}
    assert {"area", "key_zone", "unit"} <= kinds


def test_sse_streams_the_decision_of_a_new_incident(stack: tuple[Settings, ApiProcess]) -> None:
    _, api = stack
    seen: list[dict[str, Any]] = []
    connected = threading.Event()

    def listen() -> None:
        with (
            api.client("viewer") as c,
            c.stream("GET", "/v1/events", timeout=httpx.Timeout(30, read=30)) as r,
        ):
            assert r.headers["content-type"].startswith("text/event-stream")
            connected.set()
            for line in r.iter_lines():
                if line.startswith("data: "):
                    event = json.loads(line[6:])
                    seen.append(event)
                    inc = event.get("incident") or {}
                    if inc.get("id") == wanted.get("id") and inc.get("state") == "dispatched":
                        return

    wanted: dict[str, Any] = {}
    thread = threading.Thread(target=listen, daemon=True)
    thread.start()
    assert connected.wait(10)
    time.sleep(0.3)
    wanted["id"] = _raise(api).json()["id"]
    thread.join(30)
    assert not thread.is_alive()
    mine = [e for e in seen if (e.get("incident") or {}).get("id") == wanted["id"]]
    assert mine[-1]["incident"]["zone_id"]


def test_cli_incident_commands_use_the_same_path(stack: tuple[Settings, ApiProcess]) -> None:
    settings, api = stack
    incident_id = _raise(api).json()["id"]
    _decided(api, incident_id)
    env = {
        "ENGINE_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
        "ENGINE_TOPIC_PREFIX": settings.topic_prefix,
        "ENGINE_PARTITIONS": str(settings.partitions),
        "PATH": "/usr/bin:/bin",
    }

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "engine.cli", "incident", *args],
            env=env, capture_output=True, text=True, timeout=60,
        )  # fmt: skip

    done = cli("close", incident_id, "--who", "officer-wang", "--why", "handled")
    assert done.returncode == 0 and f"close {incident_id}: applied" in done.stdout
    again = cli("close", incident_id, "--who", "officer-wang")
    assert again.returncode == 1 and "refused: incident is already closed" in again.stdout
    view = api.wait_for(f"/v1/incidents/{incident_id}", lambda b: b["state"] == "closed")
    assert view["timeline"][-1]["who"] == "officer-wang"


def test_broadcasts_accepted_followed_and_cancelled(stack: tuple[Settings, ApiProcess]) -> None:
    """No gateway runs here: the broadcast stays queued until it is cancelled."""
    _, api = stack
    body = {
        "text": "台风“海葵”今晚登陆，请转告邻里关好门窗。",
        "text_en": "Typhoon tonight: close windows.",
        "to": ["watch_groups", "key_zones"],
        "near": SCENE,
        "radius_m": 1500,
        "priority": "warning",
        "expires_in_s": 3600,
        "idempotency_key": f"typhoon-{uuid.uuid4().hex[:6]}",
    }
    with api.client("viewer") as c:
        assert c.post("/v1/broadcasts", json=body).status_code == 403
    with api.client("operator") as c:
        r = c.post("/v1/broadcasts", json=body)
        assert r.status_code == 202, r.text
        made = r.json()
        bid = made["broadcast_id"]
        assert made["recipients"] > 0 and made["sms"] + made["poc_groups"] >= 1
        assert made["state"] == "queued"
        assert set(made) >= {"broadcast_id", "recipients", "poc_groups", "sms", "state"}
        progress = api.wait_for(f"/v1/broadcasts/{bid}", lambda b: b["state"] == "queued")
        assert progress["messages"] == made["messages"] and progress["sent"] == 0
        assert progress["eta_s"] > 0
        # the same idempotency key: the same broadcast, not a second one
        again = c.post("/v1/broadcasts", json=body)
        assert again.status_code == 202 and again.json()["broadcast_id"] == bid
        listed = c.get("/v1/broadcasts").json()["broadcasts"]
        assert [b["broadcast_id"] for b in listed].count(bid) == 1

        assert c.post("/v1/broadcasts", json={**body, "to": ["everyone"]}).status_code == 422
        assert c.post("/v1/broadcasts", json={**body, "sender": "x"}).status_code == 422
        assert c.post("/v1/broadcasts", json={**body, "radius_m": None}).status_code == 422
        quiet = c.post("/v1/broadcasts", json={**body, "priority": "info",
                                               "idempotency_key": None})  # fmt: skip
        assert quiet.status_code == 409 and "quiet hours" in quiet.json()["detail"]

        r = c.post(f"/v1/broadcasts/{bid}/cancel", json={"reason": "wrong text"})
        assert r.status_code == 202 and r.json()["state"] == "cancelling"
        assert c.post("/v1/broadcasts/BC-NONE/cancel").status_code == 404
    cancelled = api.wait_for(f"/v1/broadcasts/{bid}", lambda b: b["cancel"] is not None)
    assert cancelled["cancel"]["actor"] == "test-operator"
    with api.client(None) as c:
        metrics = c.get("/metrics").text
    assert 'engine_api_broadcasts_total{action="create",result="accepted"} 1.0' in metrics
    assert 'engine_api_broadcasts_total{action="create",result="quiet_hours"} 1.0' in metrics
    assert 'engine_api_broadcasts_total{action="cancel",result="accepted"} 1.0' in metrics
