"""`engine broker start --secure` for real: SASL_SSL + SCRAM-SHA-512 + StandardAuthorizer.

Each role's principal may do what its job needs and is refused the rest; a wrong
password and a missing ACL fail fast with a message that names the problem and never
the secret; and the whole pipeline (raise -> decision -> SMS -> reply -> quorum) runs
over SASL_SSL, every process as its own principal.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import (
    GroupAuthorizationFailedError,
    KafkaError,
    TopicAuthorizationFailedError,
)
from pydantic import SecretStr

from engine.api.tokens import TokenStore
from engine.broker.local import LocalBroker
from engine.broker.secure import ADMIN, ROLES
from engine.config import Settings
from engine.errors import KafkaUnavailable
from engine.kafka.connection import client_kwargs, probe
from engine.kafka.tail import tail
from engine.kafka.topics import ensure_topics
from tests.kafka_broker import free_port

REPO = Path(__file__).resolve().parents[2]
REGISTRY = REPO / "data" / "tangxia"


@pytest.fixture(scope="module")
def secure(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalBroker]:
    settings = Settings(
        data_dir=tmp_path_factory.mktemp("secure"),
        broker_port=free_port(),
        broker_controller_port=free_port(),
    )
    broker = LocalBroker(settings, secure=True)
    started, message = broker.start()
    assert started, message
    try:
        admin = broker.admin_settings()
        report = asyncio.run(ensure_topics(admin))
        assert report.ok, report.mismatched
        for logical in ("callouts", "incidents", "decisions", "incident-state", "audit"):
            asyncio.run(produce(admin, logical, partition=0))  # something to read
        yield broker
    finally:
        broker.stop()


async def produce(settings: Settings, logical: str, partition: int | None = None) -> None:
    producer = AIOKafkaProducer(**client_kwargs(settings), request_timeout_ms=10_000)
    await producer.start()
    try:
        await producer.send_and_wait(settings.topic(logical), b"{}", key=b"k", partition=partition)
    finally:
        await producer.stop()


async def consume(settings: Settings, logical: str, group: str | None) -> str:
    """Read the record the fixture put on partition 0 (in ``group``, committing there)."""
    consumer = AIOKafkaConsumer(
        **client_kwargs(settings), group_id=group, enable_auto_commit=False,
        request_timeout_ms=10_000,
    )  # fmt: skip
    await consumer.start()
    try:
        tp = TopicPartition(settings.topic(logical), 0)
        consumer.assign([tp])
        await consumer.seek_to_beginning(tp)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if (await consumer.getmany(tp, timeout_ms=500)).get(tp):
                if group is not None:
                    await consumer.commit()
                return "allowed"
            if tp.topic in consumer._client.cluster.unauthorized_topics:
                return "refused"  # aiokafka logs it and reads nothing
        return "nothing read"
    finally:
        await consumer.stop()


async def outcome(action: Any) -> str:
    try:
        async with asyncio.timeout(30):
            result = await action
    except (TopicAuthorizationFailedError, GroupAuthorizationFailedError):
        return "refused"
    except KafkaError as exc:
        return f"error {exc!r}"
    return result if isinstance(result, str) else "allowed"


# (role, action, topic, group): what each job needs, and what it must not do
MATRIX = [
    ("gateway", "write", "acks", None, "allowed"),
    ("gateway", "write", "unit-status", None, "allowed"),
    ("gateway", "write", "audit", None, "allowed"),
    ("gateway", "read", "callouts", "radio-gateway", "allowed"),
    ("gateway", "write", "decisions", None, "refused"),
    ("gateway", "write", "callouts", None, "refused"),
    ("gateway", "write", "incidents", None, "refused"),
    ("gateway", "read", "callouts", "someone-else", "refused"),
    ("worker", "write", "decisions", None, "allowed"),
    ("worker", "write", "callouts", None, "allowed"),
    ("worker", "write", "incident-state", None, "allowed"),
    ("worker", "write", "area-events", None, "allowed"),
    ("worker", "read", "incidents", "tangxia-engine-worker", "allowed"),
    ("worker", "write", "acks", None, "refused"),
    ("worker", "write", "unit-status", None, "refused"),
    ("worker", "write", "incidents", None, "refused"),
    ("api", "write", "incidents", None, "allowed"),
    ("api", "read", "incident-state", None, "allowed"),
    ("api", "write", "acks", None, "refused"),  # an operator's token cannot ack
    ("api", "write", "decisions", None, "refused"),
    ("api", "read", "callouts", None, "allowed"),  # the console's read model
    ("api", "write", "commands", None, "allowed"),
    ("api", "write", "audit", None, "refused"),  # outcomes come from the worker only
    ("worker", "write", "audit", None, "allowed"),
    ("worker", "write", "commands", None, "refused"),
    ("gateway", "write", "commands", None, "refused"),
    ("viewer", "write", "commands", None, "refused"),
    ("viewer", "read", "decisions", None, "allowed"),
    ("viewer", "read", "incident-state", None, "allowed"),
    ("viewer", "read", "audit", None, "refused"),
    ("viewer", "write", "incidents", None, "refused"),
    ("viewer", "write", "acks", None, "refused"),
]


@pytest.mark.integration
async def test_each_principal_is_allowed_what_it_needs_and_refused_the_rest(
    secure: LocalBroker,
) -> None:
    seen = []
    for role, action, logical, group, _ in MATRIX:
        settings = secure.role_settings(role)
        if action == "write":
            result = await outcome(produce(settings, logical))
        else:
            result = await outcome(consume(settings, logical, group))
        seen.append((role, action, logical, group, result))
    assert seen == MATRIX


@pytest.mark.integration
async def test_plaintext_and_wrong_passwords_are_refused_without_leaking_secrets(
    secure: LocalBroker, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    gateway = secure.role_settings("gateway")
    wrong = gateway.model_copy(update={"kafka_sasl_password": SecretStr("not-the-password")})
    with pytest.raises(KafkaUnavailable, match="refused the credentials of user 'gateway'"):
        await probe(wrong, timeout_s=10)
    plain = gateway.model_copy(update={"kafka_security_protocol": "PLAINTEXT"})
    with pytest.raises(KafkaUnavailable):
        await probe(plain, timeout_s=5)
    assert (await probe(gateway)).brokers
    passwords = [secure.files.password(p) for p in (ADMIN, *ROLES)]
    dumped = [repr(gateway), str(gateway), str(gateway.redacted()), caplog.text]
    log_dir = secure.log_dir
    dumped += [p.read_text(errors="replace") for p in log_dir.glob("*.log")]
    for secret in passwords:
        assert not any(secret in text for text in dumped)
    for path in secure.files.root.rglob("*"):
        if path.is_file() and path.name != "formatted-secure":
            assert path.stat().st_mode & 0o077 == 0, path  # secrets: owner only
    assert (secure.home / "server.properties").stat().st_mode & 0o077 == 0


@pytest.mark.integration
def test_the_cli_fails_fast_and_says_why(secure: LocalBroker, tmp_path: Path) -> None:
    def run(role: str, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "engine.cli", *args],
            env={**_env_of(secure, role, _made(tmp_path / role)), **env},
            capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip

    raised = ["raise", "--type", "fire", "--priority", "P1", "--lat", "22.80", "--lon", "114.08"]
    started = time.monotonic()
    denied = run("gateway", *raised)
    assert denied.returncode == 1
    assert "does not allow 'gateway'" in denied.stderr and "Traceback" not in denied.stderr
    wrong = run("api", *raised, ENGINE_KAFKA_SASL_PASSWORD="wrong-password-123")
    assert wrong.returncode != 0
    assert "refused the credentials of user 'api'" in wrong.stderr
    assert "wrong-password-123" not in wrong.stderr + wrong.stdout
    assert time.monotonic() - started < 100  # fast, not after minutes of retries
    assert run("api", *raised).returncode == 0
    shown = run("api", "config", "show")
    assert "**********" in shown.stdout
    password = secure.files.password("api")
    assert password not in shown.stdout + shown.stderr


def _env_of(secure: LocalBroker, role: str, data_dir: Path) -> dict[str, str]:
    settings = secure.role_settings(role)
    password = settings.kafka_sasl_password
    assert password is not None
    return {
        **os.environ,
        "ENGINE_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
        "ENGINE_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
        "ENGINE_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
        "ENGINE_KAFKA_SASL_USERNAME": role,
        "ENGINE_KAFKA_SASL_PASSWORD": password.get_secret_value(),
        "ENGINE_KAFKA_CA_FILE": str(secure.files.ca),
        "ENGINE_DATA_DIR": str(data_dir),
    }


def _made(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.mark.e2e
def test_the_whole_pipeline_over_sasl_ssl(secure: LocalBroker, tmp_path: Path) -> None:
    """raise (API over HTTP, principal api) -> decision, call-outs (worker) -> SMS (gateway,
    pty) -> replies -> acks (gateway) -> quorum (worker) -> incident-state; then a close
    command through the API, applied by the worker: each process its own principal."""
    link = tmp_path / "ttyUSB0"
    procs: list[subprocess.Popen[bytes]] = []

    def start(role: str, name: str, *args: str) -> subprocess.Popen[bytes]:
        with (tmp_path / f"{name}.log").open("ab") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "engine.cli", "-v", *args],
                env=_env_of(secure, role, _made(tmp_path / name)), stdout=log,
                stderr=subprocess.STDOUT,
            )  # fmt: skip
        procs.append(proc)
        return proc

    try:
        start(
            "viewer", "handsets", "simulate", "handsets", "--registry", str(REGISTRY),
            "--reply", "accept", "--reply-delay", "0.2", "--on-scene-after", "1",
            "--link", str(link),
        )  # fmt: skip
        deadline = time.monotonic() + 30
        while not link.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        start("gateway", "gateway", "gateway", "--device", str(link), "--registry",
              str(REGISTRY), "--metrics-port", "0")  # fmt: skip
        start("worker", "worker", "worker", "--metrics-port", "0")
        # the operators' API as principal `api`: raise over HTTP, close by command
        token = TokenStore(_made(tmp_path / "api") / "api-tokens.json").create("operator", "li")[1]
        port = free_port()
        start("api", "api", "api", "--port", str(port))
        url, auth = f"http://127.0.0.1:{port}", {"Authorization": f"Bearer {token}"}
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                    break
            time.sleep(0.5)
        body = {"type": "fire", "priority": "P1", "location": {"lat": 22.8031, "lon": 114.0842},
                "address": "林村新围路12号"}  # fmt: skip
        raised = httpx.post(f"{url}/v1/incidents", json=body, headers=auth, timeout=60)
        assert raised.status_code == 201, (raised.text, _logs(tmp_path))
        incident_id = raised.json()["id"]
        viewer = secure.role_settings("viewer")
        states = asyncio.run(_states_until_on_scene(viewer, incident_id, procs, within=240.0))
        closed = httpx.post(f"{url}/v1/incidents/{incident_id}/close", json={"reason": "done"},
                            headers=auth, timeout=60)  # fmt: skip
        assert closed.status_code == 200, (closed.text, _logs(tmp_path))
        for proc in procs:
            assert proc.poll() is None, _logs(tmp_path)
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    assert "acknowledged" in states, (states, _logs(tmp_path))
    assert states[-1] == "on_scene", (states, _logs(tmp_path))


async def _states_until_on_scene(
    settings: Settings, incident_id: str, procs: list[subprocess.Popen[bytes]], within: float
) -> list[str]:
    states: list[str] = []
    deadline = time.monotonic() + within
    while time.monotonic() < deadline and all(p.poll() is None for p in procs):
        states = [
            r["value"]["state"]
            async for r in tail(
                settings, settings.topic("incident-state"), from_beginning=True,
                idle_timeout_s=1.0,
            )
            if isinstance(r["value"], dict) and r["value"].get("incident_id") == incident_id
        ]  # fmt: skip
        if states and states[-1] == "on_scene":
            return states
        await asyncio.sleep(1.0)
    return states


def _logs(tmp_path: Path) -> str:
    return "\n".join(
        f"--- {p.name}\n" + "\n".join(p.read_text(errors="replace").splitlines()[-25:])
        for p in sorted(tmp_path.glob("*.log"))
    )
