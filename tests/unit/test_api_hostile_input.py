"""Every API endpoint fed generated hostile input (Hypothesis): bodies of any JSON shape
and of raw bytes, odd paths, headers and query strings. No 5xx but a 503 for Kafka
(nobody listens at the configured bootstrap here), every refusal with a reason, and
the tokens: hashes only, compared in constant time, revocation and rate limit."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.api.app import RateLimit, create_app
from engine.api.tokens import TokenError, TokenStore
from engine.config import Settings
from engine.rules.world import World

pytestmark = pytest.mark.unit

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=40),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=12), children, max_size=6)
    ),
    max_leaves=20,
)
FIELDS = ["type", "priority", "location", "address", "description", "area", "reason",
          "zone_id", "available", "lat", "lon",
          # broadcasts (issue 17)
          "text", "text_en", "to", "near", "radius_m", "expires_in_s",
          "idempotency_key"]  # fmt: skip
plausible = st.dictionaries(st.sampled_from(FIELDS), json_values, max_size=6)
TARGETS = ["publicity", "watch_groups", "observers", "key_zones", "units", "everyone", ""]
broadcasts = st.fixed_dictionaries(
    {"text": st.text(max_size=250), "to": st.lists(st.sampled_from(TARGETS), max_size=6)},
    optional={
        "text_en": st.none() | st.text(max_size=320),
        "priority": st.sampled_from(["info", "warning", "urgent", "P1", ""]),
        "near": st.none() | st.fixed_dictionaries({"lat": st.floats(), "lon": st.floats()}),
        "radius_m": st.none() | st.floats(),
        "expires_in_s": st.none() | st.integers(),
        "area": st.none() | st.sampled_from(["tangxia", "nowhere", ""]),
        "idempotency_key": st.none() | st.text(max_size=120),
    },
)
ENDPOINTS = [
    ("POST", "/v1/incidents"),
    ("POST", "/v1/incidents/INC-X/escalate"),
    ("POST", "/v1/incidents/INC-X/reassign"),
    ("POST", "/v1/incidents/INC-X/move"),
    ("POST", "/v1/incidents/%00%ff/note"),
    ("PATCH", "/v1/units/KZ001"),
    ("PATCH", "/v1/units/..%2f..%2fetc"),
    ("GET", "/v1/incidents"),
    ("GET", "/v1/incidents/INC-X"),
    ("GET", "/v1/audit"),
    ("GET", "/v1/units"),
    ("POST", "/v1/broadcasts"),
    ("GET", "/v1/broadcasts"),
    ("GET", "/v1/broadcasts/BC-X"),
    ("POST", "/v1/broadcasts/BC-X/cancel"),
    ("POST", "/v1/broadcasts/%00%ff/cancel"),
]
REFUSALS = {400, 401, 403, 404, 405, 409, 413, 422, 429, 503}


@pytest.fixture(scope="module")
def app_and_tokens(
    tangxia_world: World, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Any, dict[str, str]]:
    tmp = tmp_path_factory.mktemp("api")
    cfg = Settings(kafka_bootstrap="127.0.0.1:9", data_dir=tmp, api_raise_per_minute=10_000)
    store = TokenStore(cfg.tokens_path)
    tokens = {role: store.create(role, f"fuzz-{role}")[1] for role in ("viewer", "admin")}
    return create_app(cfg, {"tangxia": tangxia_world}, store), tokens


def _call(app: Any, method: str, path: str, **kw: Any) -> httpx.Response:
    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as c:
            return await c.request(method, path, **kw)

    return asyncio.run(go())


def _refused_with_reason(r: httpx.Response) -> None:
    assert r.status_code in REFUSALS | {200, 201, 202}, (r.status_code, r.text)
    if r.status_code >= 400:
        assert r.json()["detail"], r.text


@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(endpoint=st.sampled_from(ENDPOINTS), body=plausible | json_values)
def test_generated_json_bodies(
    app_and_tokens: tuple[Any, dict[str, str]], endpoint: tuple[str, str], body: Any
) -> None:
    app, tokens = app_and_tokens
    method, path = endpoint
    kw: dict[str, Any] = {"headers": {"Authorization": f"Bearer {tokens['admin']}"}}
    if method != "GET":
        kw["content"] = json.dumps(body).encode()
        kw["headers"]["Content-Type"] = "application/json"
    _refused_with_reason(_call(app, method, path, **kw))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=broadcasts)
def test_generated_broadcasts(app_and_tokens: tuple[Any, dict[str, str]], body: Any) -> None:
    """Nearly valid broadcasts: refused with a reason (422, 409 in quiet hours), or 503
    (no Kafka here); never a 5xx of our own, never 202 without Kafka."""
    app, tokens = app_and_tokens
    headers = {"Authorization": f"Bearer {tokens['admin']}", "Content-Type": "application/json"}
    r = _call(app, "POST", "/v1/broadcasts", content=json.dumps(body).encode(), headers=headers)
    _refused_with_reason(r)
    assert r.status_code != 202


def test_a_valid_broadcast_without_kafka_is_503_and_a_viewer_may_not_send(
    app_and_tokens: tuple[Any, dict[str, str]],
) -> None:
    app, tokens = app_and_tokens
    body = {"text": "台风预警：今晚请关好门窗", "to": ["watch_groups"], "priority": "urgent"}
    r = _call(app, "POST", "/v1/broadcasts", json=body,
              headers={"Authorization": f"Bearer {tokens['admin']}"})  # fmt: skip
    assert r.status_code == 503 and "Kafka" in r.json()["detail"]
    r = _call(app, "POST", "/v1/broadcasts", json=body,
              headers={"Authorization": f"Bearer {tokens['viewer']}"})  # fmt: skip
    assert r.status_code == 403
    r = _call(app, "GET", "/v1/broadcasts/BC-NONE",
              headers={"Authorization": f"Bearer {tokens['viewer']}"})  # fmt: skip
    assert r.status_code == 404


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    endpoint=st.sampled_from(ENDPOINTS),
    raw=st.binary(max_size=300),
    auth=st.sampled_from(["", "Bearer ", "Basic x", "Bearer txe_\x00", "bearer  "])
    | st.text(max_size=30),
    query=st.text(max_size=30),
)
def test_generated_bytes_headers_and_queries(
    app_and_tokens: tuple[Any, dict[str, str]],
    endpoint: tuple[str, str],
    raw: bytes,
    auth: str,
    query: str,
) -> None:
    app, _ = app_and_tokens
    method, path = endpoint
    headers = {"Content-Type": "application/json"}
    if auth.isascii() and "\n" not in auth and "\r" not in auth:
        headers["Authorization"] = auth
    r = _call(app, method, path, content=raw, headers=headers, params={"since": query, "x": query})
    _refused_with_reason(r)
    assert r.status_code in (401, 404, 405)  # nobody gets past the token check


def test_a_valid_raise_without_kafka_is_503_not_201(
    app_and_tokens: tuple[Any, dict[str, str]],
) -> None:
    app, tokens = app_and_tokens
    body = {"type": "fire", "priority": "P1", "location": {"lat": 22.8031, "lon": 114.0842}}
    r = _call(app, "POST", "/v1/incidents", json=body,
              headers={"Authorization": f"Bearer {tokens['admin']}"})  # fmt: skip
    assert r.status_code == 503 and "Kafka" in r.json()["detail"]


def test_big_and_chunked_bodies_are_413(app_and_tokens: tuple[Any, dict[str, str]]) -> None:
    app, tokens = app_and_tokens
    auth = {"Authorization": f"Bearer {tokens['admin']}"}

    async def chunks() -> Any:
        for _ in range(40):
            yield b"x" * 1024

    r = _call(app, "POST", "/v1/incidents", content=chunks(), headers=auth)
    assert r.status_code == 413
    r = _call(app, "POST", "/v1/incidents", content=b" " * 20_000, headers=auth)
    assert r.status_code == 413


def test_token_store_keeps_hashes_and_refuses_bad_files(tmp_path: Path) -> None:
    store = TokenStore(tmp_path / "tokens.json")
    token, secret = store.create("operator", "officer-li")
    text = (tmp_path / "tokens.json").read_text()
    assert secret not in text and token.sha256 in text
    assert (tmp_path / "tokens.json").stat().st_mode & 0o777 == 0o600
    assert store.check(secret) == token
    assert store.check(secret + "x") is None and store.check("") is None
    with pytest.raises(TokenError, match="live token named"):
        store.create("viewer", "officer-li")
    with pytest.raises(TokenError, match="role must be"):
        store.create("root", "x")
    with pytest.raises(TokenError, match="name"):
        store.create("viewer", "bad name; rm -rf")
    store.revoke("officer-li")
    assert store.check(secret) is None
    (tmp_path / "tokens.json").write_text('{"tokens": [{"id": 1}]}')
    with pytest.raises(TokenError, match=r"tokens\[0\]"):
        TokenStore(tmp_path / "tokens.json").tokens()


def test_rate_limit_refills() -> None:
    now = [0.0]
    limit = RateLimit(6, clock=lambda: now[0])
    assert [limit.take("a") for _ in range(6)] == [0.0] * 6
    assert limit.take("a") == pytest.approx(10.0)
    assert limit.take("b") == 0.0
    now[0] = 10.0
    assert limit.take("a") == 0.0


def test_not_ready_until_the_read_model_caught_up(
    app_and_tokens: tuple[Any, dict[str, str]],
) -> None:
    app, _ = app_and_tokens
    r = _call(app, "GET", "/readyz")
    assert r.status_code == 503
    assert r.json() == {"ready": False, "kafka": False, "read_model_caught_up": False}
    assert _call(app, "GET", "/healthz").status_code == 200
