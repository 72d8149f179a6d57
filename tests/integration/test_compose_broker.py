"""deploy/compose.yaml's Kafka for real, without Docker: the files `engine broker
secure-files` makes, laid out as the kafka service mounts them (compose.yaml's own
secrets and targets), started by deploy/kafka/compose-start.sh itself on the local
broker's jars (Apache Kafka 4.1.1, the image's version). Only the container's paths and
ports are moved: ``/run/secrets``, the data volume, 9092/29092/9093.

Then, as the compose services do: `engine broker acls` and `engine topics ensure` as
admin (kafka-setup, topics), and each principal with its own kafka-<principal>.toml:
allowed what its job needs, refused the rest; no PLAINTEXT, no wrong password; every
principal's SCRAM credential present (Kafka's own ConfigCommand with the health check's
client properties); and a restart on the formatted storage.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import socket
import ssl
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.errors import TopicAuthorizationFailedError
from pydantic import SecretStr

from engine.broker.jars import resolve_jars
from engine.broker.local import LocalBroker
from engine.config import Settings, load_settings
from engine.errors import KafkaUnavailable
from engine.kafka.connection import client_kwargs, probe
from tests.kafka_broker import free_port

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
ENGINE = REPO / ".venv" / "bin" / "engine"
PORTS = (9092, 29092, 9093)  # client (compose network), host, controller
START_TIMEOUT_S = 120.0


@dataclass
class ComposeKafka:
    secrets: Path  # what secure-files made (deploy/secrets)
    run_secrets: Path  # /run/secrets as the kafka container sees it
    ports: dict[int, int]  # container port -> this test's port
    jars_classpath: str
    start: Any  # () -> Popen: deploy/kafka/compose-start.sh, as the container runs it
    log: Path
    proc: subprocess.Popen[bytes] | None = None

    def run(self) -> None:
        self.proc = self.start()
        _wait_until_up(self.proc, self.settings("admin"), self.log)

    def stop(self) -> None:
        if self.proc is not None:
            _stop(self.proc)

    @property
    def host_bootstrap(self) -> str:
        return f"localhost:{self.ports[29092]}"

    def settings(self, principal: str) -> Settings:
        """A principal's settings from its kafka-<principal>.toml, at this test's port."""
        return load_settings(
            self.secrets / f"kafka-{principal}.toml", kafka_bootstrap=self.host_bootstrap
        )


def _localize(text: str, run_secrets: Path, data: Path, ports: dict[int, int]) -> str:
    text = text.replace("/run/secrets/", f"{run_secrets}/")
    text = text.replace("/var/lib/kafka/data", str(data))
    return re.sub(r":(9092|29092|9093)\b", lambda m: f":{ports[int(m.group(1))]}", text)


def _wait_until_up(proc: subprocess.Popen[bytes], admin: Settings, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"compose-start.sh exited {proc.returncode}:\n{_tail(log)}")
        try:
            asyncio.run(probe(admin, timeout_s=3.0))
            return
        except KafkaUnavailable:
            time.sleep(0.5)
    pytest.fail(f"the compose broker did not answer in {START_TIMEOUT_S:.0f} s:\n{_tail(log)}")


def _tail(log: Path) -> str:
    with contextlib.suppress(OSError):
        return "\n".join(log.read_text(errors="replace").splitlines()[-30:])
    return ""


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@pytest.fixture(scope="module")
def compose_kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ComposeKafka]:
    root = tmp_path_factory.mktemp("compose-kafka")
    secrets = root / "secrets"
    made = subprocess.run(
        [str(ENGINE), "broker", "secure-files", "--out", str(secrets)],
        capture_output=True, text=True, check=False, timeout=120,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr

    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    kafka = compose["services"]["kafka"]
    run_secrets, data = root / "run-secrets", root / "data"
    run_secrets.mkdir()
    ports = {port: free_port() for port in PORTS}
    for entry in kafka["secrets"]:  # as compose mounts them: source file -> target
        source = entry if isinstance(entry, str) else entry["source"]
        target = source if isinstance(entry, str) else entry.get("target", source)
        host_file = secrets / Path(compose["secrets"][source]["file"]).name
        (run_secrets / target).write_text(
            _localize(host_file.read_text(), run_secrets, data, ports)
        )
    # The image's /opt/kafka/bin scripts, as thin wrappers over the same jars.
    jars = resolve_jars()
    log4j = root / "log4j2.properties"
    log4j.write_text(LocalBroker(Settings(data_dir=root / "logs")).log4j2_properties())
    (root / "logs" / "broker" / "logs").mkdir(parents=True)
    bin_dir = root / "bin"
    bin_dir.mkdir()
    java = f'exec java -cp "{jars.classpath}" -Dlog4j2.configurationFile={log4j}'
    scripts = {
        "kafka-storage.sh": f'{java} kafka.tools.StorageTool "$@"\n',
        "kafka-server-start.sh": f'{java} -Xmx384m -Xms384m kafka.Kafka "$@"\n',
    }
    for name, body in scripts.items():
        (bin_dir / name).write_text("#!/bin/sh\n" + body)
        (bin_dir / name).chmod(0o755)
    log = root / "compose-start.log"

    def start() -> subprocess.Popen[bytes]:
        with log.open("ab") as out:
            return subprocess.Popen(
                ["/bin/sh", str(DEPLOY / "kafka" / "compose-start.sh")],
                env={"PATH": os.environ["PATH"], "KAFKA_BIN": str(bin_dir),
                     "ENGINE_SECRETS_DIR": str(run_secrets), "KAFKA_DATA_DIR": str(data)},
                stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip

    broker = ComposeKafka(secrets, run_secrets, ports, jars.classpath, start, log)
    try:
        broker.run()
        yield broker
    finally:
        broker.stop()
    text = log.read_text(errors="replace")
    for principal in ("admin", "controller", "worker", "gateway", "api", "viewer"):
        password = (secrets / "kafka" / "secrets" / f"{principal}.password").read_text()
        assert password.strip() not in text, f"{principal}'s password in the broker's log"


def _engine(broker: ComposeKafka, principal: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ENGINE_")}
    env["ENGINE_KAFKA_BOOTSTRAP"] = broker.host_bootstrap  # 29092, moved
    config = str(broker.secrets / f"kafka-{principal}.toml")
    return subprocess.run(
        [str(ENGINE), "--config", config, *args],
        capture_output=True, text=True, check=False, timeout=180, env=env,
    )  # fmt: skip


async def _produce(settings: Settings, logical: str) -> str:
    producer = AIOKafkaProducer(**client_kwargs(settings), request_timeout_ms=10_000)
    await producer.start()
    try:
        await producer.send_and_wait(settings.topic(logical), b'{"probe": true}', key=b"k")
        return "allowed"
    except TopicAuthorizationFailedError:
        return "refused"
    finally:
        await producer.stop()


async def _read_one(settings: Settings, logical: str, group: str) -> bytes | None:
    consumer = AIOKafkaConsumer(
        settings.topic(logical), **client_kwargs(settings), group_id=group,
        auto_offset_reset="earliest", enable_auto_commit=False, request_timeout_ms=10_000,
    )  # fmt: skip
    await consumer.start()
    try:
        batch = await consumer.getmany(timeout_ms=15_000, max_records=1)
        records = [r for rs in batch.values() for r in rs]
        return records[0].value if records else None
    finally:
        await consumer.stop()


def test_the_compose_broker_runs_secured_with_acls_per_principal(
    compose_kafka: ComposeKafka,
) -> None:
    # kafka-setup, then topics: as admin, from the admin's file
    acls = _engine(compose_kafka, "admin", "broker", "acls")
    assert acls.returncode == 0, acls.stderr
    assert re.match(r"\d+ ACLs for roles worker, gateway, api, viewer", acls.stdout), acls.stdout
    topics = _engine(compose_kafka, "admin", "topics", "ensure")
    assert topics.returncode == 0, topics.stdout + topics.stderr
    assert "created    incidents" in topics.stdout

    # each principal from its own file: what the compose services use
    s = compose_kafka.settings
    assert asyncio.run(_produce(s("api"), "incidents")) == "allowed"
    assert asyncio.run(_produce(s("gateway"), "decisions")) == "refused"
    assert asyncio.run(_produce(s("worker"), "incidents")) == "refused"
    assert asyncio.run(_produce(s("viewer"), "incidents")) == "refused"
    assert asyncio.run(_produce(s("gateway"), "acks")) == "allowed"
    assert asyncio.run(_produce(s("api"), "acks")) == "refused"
    assert asyncio.run(_read_one(s("viewer"), "incidents", "viewer-compose")) == (
        b'{"probe": true}'
    )
    # the compose `cli` service's principal (the API's): raises incidents, cannot read the
    # worker's changelog
    raised = _engine(
        compose_kafka, "api", "raise", "--type", "fire", "--priority", "P1",
        "--lat", "22.8031", "--lon", "114.0842",
    )  # fmt: skip
    assert raised.returncode == 0, raised.stderr
    refused = _engine(
        compose_kafka, "api", "tail", "area-state", "--max", "1", "--idle-timeout", "5"
    )
    assert refused.returncode != 0 and "area-state" in refused.stderr
    api_password = s("api").kafka_sasl_password
    assert api_password is not None
    assert api_password.get_secret_value() not in refused.stdout + refused.stderr


def test_no_plaintext_and_no_wrong_password(compose_kafka: ComposeKafka) -> None:
    for port in (9092, 29092):  # the compose network's listener and the host's
        plain = Settings(kafka_bootstrap=f"127.0.0.1:{compose_kafka.ports[port]}")
        with pytest.raises(KafkaUnavailable):
            asyncio.run(probe(plain, timeout_s=5.0))
    wrong = compose_kafka.settings("worker").model_copy(
        update={"kafka_sasl_password": SecretStr("not-the-password")}
    )
    with pytest.raises(KafkaUnavailable, match="refused the credentials of user 'worker'"):
        asyncio.run(probe(wrong, timeout_s=5.0))


def test_the_certificate_is_for_the_compose_host_name(compose_kafka: ComposeKafka) -> None:
    """Clients in compose connect to kafka:9092 and check the name against the CA."""
    context = ssl.create_default_context(cafile=str(compose_kafka.secrets / "kafka-ca.pem"))
    for port, name in ((9092, "kafka"), (29092, "localhost")):
        address = ("127.0.0.1", compose_kafka.ports[port])
        with (
            socket.create_connection(address, timeout=5) as raw,
            context.wrap_socket(raw, server_hostname=name) as tls,
        ):
            assert tls.version() in ("TLSv1.2", "TLSv1.3")
    address = ("127.0.0.1", compose_kafka.ports[9092])
    with (
        socket.create_connection(address, timeout=5) as raw,
        pytest.raises(ssl.SSLCertVerificationError),
    ):
        context.wrap_socket(raw, server_hostname="kafka.example.org")


def test_every_principal_has_its_scram_credential(compose_kafka: ComposeKafka) -> None:
    """Kafka's own ConfigCommand, with the health check's client properties as mounted."""
    proc = subprocess.run(
        ["java", "-cp", compose_kafka.jars_classpath, "kafka.admin.ConfigCommand",
         "--bootstrap-server", compose_kafka.host_bootstrap,
         "--command-config", str(compose_kafka.run_secrets / "kafka_admin_client"),
         "--describe", "--entity-type", "users"],
        capture_output=True, text=True, check=False, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for principal in ("admin", "worker", "gateway", "api", "viewer"):
        assert re.search(
            rf"user-principal '{principal}' are SCRAM-SHA-512=iterations=\d+", proc.stdout
        ), proc.stdout
    assert "'controller'" not in proc.stdout  # PLAIN, on the loopback controller only


def test_a_restart_keeps_the_formatted_storage(compose_kafka: ComposeKafka) -> None:
    """compose restarts the service on the same volume: no second format, the same
    credentials and ACLs (they live in the metadata)."""
    acls = _engine(compose_kafka, "admin", "broker", "acls")
    assert acls.returncode == 0, acls.stderr
    compose_kafka.stop()
    compose_kafka.run()
    assert compose_kafka.log.read_text(errors="replace").count("Formatting ") == 1
    s = compose_kafka.settings
    assert asyncio.run(_produce(s("gateway"), "unit-status")) == "allowed"
    assert asyncio.run(_produce(s("gateway"), "callouts")) == "refused"
