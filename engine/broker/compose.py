"""The secrets of ``deploy/compose.yaml`` (``engine broker secure-files --out DIR``).

The one-time step before the first ``docker compose up``. It makes what is missing and
keeps what exists: the broker's storage is formatted once with these passwords, so they
must not change under it (to rotate one, see docs/operations.md). In ``DIR``:

- ``kafka/``: a CA (its key too) and the broker's certificate for the names ``kafka``
  (the compose network), ``localhost`` and ``127.0.0.1`` (the host's port 29092), and a
  random password per principal (:class:`engine.broker.secure.SecureFiles`, all 0600;
  never mounted into a container);
- what the services mount as compose secrets, each 0444 in a 0700 directory: compose
  (outside swarm) bind-mounts a secret file with its host owner and mode, and the
  containers run as other users (Kafka 1000, the engine 10001, Grafana 472), so the
  directory is what keeps other users of the host out:

  ============================== ============================================= ==========
  file                           what                                          mounted by
  ============================== ============================================= ==========
  kafka-ca.pem                   the CA clients trust                          every one
  kafka-broker.pem               the broker's key and certificate (PEM)        kafka
  kafka-server.properties        the broker's configuration, with its own      kafka
                                 SASL passwords
  kafka-scram-users              every principal's SCRAM-SHA-512 credential,   kafka
                                 added when the storage is formatted
  kafka-admin-client.properties  the health check's client settings (admin)    kafka
  kafka-<principal>.toml         that principal's ``engine --config`` file      its service
  grafana-admin-password         Grafana's admin password                      grafana
  radio-reply-key                the key of the per-recipient reply codes      gateway
  ============================== ============================================= ==========

A ``kafka-<principal>.toml`` holds the settings to reach Kafka as that principal from
the host (port 29092); inside compose the service's ``ENGINE_KAFKA_*`` variables, which
win over a config file, point it at ``kafka:9092`` and the mounted CA, so only its
password comes from the file. The ACLs are not made here: the ``kafka-setup`` service runs
``engine broker acls`` (:func:`engine.broker.secure.acl_rules`) once the broker is up.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from engine.broker.local import single_node_lines
from engine.broker.secure import (
    ADMIN,
    MECHANISM,
    ROLES,
    SecureFiles,
    private_write,
    secured_lines,
)

CONTAINER_SECRETS = "/run/secrets"
"""Where compose mounts the secrets (each under its secret's name)."""
KAFKA_DATA = "/var/lib/kafka/data"
"""The apache/kafka image's data directory (the ``kafka-data`` volume)."""
BROKER_HOST = "kafka"
CLIENT_PORT = 9092  # SASL_SSL for the compose network
HOST_PORT = 29092  # SASL_SSL for tools on the host (published on 127.0.0.1 only)
CONTROLLER_PORT = 9093  # SASL PLAIN, bound to the container's loopback
HOST_NAMES = (BROKER_HOST, "localhost", "127.0.0.1")

PRINCIPALS = (ADMIN, *ROLES)

SECRET_FILES = {
    # compose secret name (= file name under /run/secrets) -> file made here
    "kafka_ca": "kafka-ca.pem",
    "kafka_broker_pem": "kafka-broker.pem",
    "kafka_server_properties": "kafka-server.properties",
    "kafka_scram_users": "kafka-scram-users",
    "kafka_admin_client": "kafka-admin-client.properties",
    **{f"kafka_{p}": f"kafka-{p}.toml" for p in PRINCIPALS},
    "grafana_admin_password": "grafana-admin-password",
    "radio_reply_key": "radio-reply-key",
}
"""Every compose secret this command makes; ``deploy/compose.yaml`` names the same files
(tests/unit/test_deploy_files.py checks). ``api_tokens`` is not among them: it is
written by ``engine token create``."""


def in_container(secret: str) -> str:
    return f"{CONTAINER_SECRETS}/{secret}"


@dataclass(frozen=True, slots=True)
class Made:
    made: list[str]  # files made now (secrets that did not exist)
    kept: list[str]  # secrets that existed and were kept
    written: list[str]  # files derived from them, written again


def server_properties(files: SecureFiles) -> str:
    """The compose broker's ``server.properties``: paths as the container sees them."""
    lines = secured_lines(
        files,
        listeners=[
            ("SASL_SSL", f":{CLIENT_PORT}", f"{BROKER_HOST}:{CLIENT_PORT}"),
            ("HOST", f":{HOST_PORT}", f"localhost:{HOST_PORT}"),
        ],
        controller=f"127.0.0.1:{CONTROLLER_PORT}",
        keystore=in_container("kafka_broker_pem"),
        truststore=in_container("kafka_ca"),
    )
    return "\n".join(
        [
            "# written by `engine broker secure-files` for deploy/compose.yaml: it holds the",
            "# broker's own passwords (a compose secret, never an environment variable)",
            "process.roles=broker,controller",
            "node.id=1",
            f"controller.quorum.bootstrap.servers=127.0.0.1:{CONTROLLER_PORT}",
            *lines,
            *single_node_lines(KAFKA_DATA),
            "",
        ]
    )


def scram_users(files: SecureFiles) -> str:
    """One ``--add-scram`` value per line (deploy/kafka/compose-start.sh reads them)."""
    return "".join(f"{MECHANISM}=[name={p},password={files.password(p)}]\n" for p in PRINCIPALS)


def admin_client_properties(files: SecureFiles) -> str:
    scram = "org.apache.kafka.common.security.scram.ScramLoginModule"
    return "\n".join(
        [
            "# the kafka service's health check (kafka-broker-api-versions.sh) as admin",
            "security.protocol=SASL_SSL",
            f"sasl.mechanism={MECHANISM}",
            f'sasl.jaas.config={scram} required username="{ADMIN}" '
            f'password="{files.password(ADMIN)}";',
            "ssl.truststore.type=PEM",
            f"ssl.truststore.location={in_container('kafka_ca')}",
            "",
        ]
    )


def client_toml(files: SecureFiles, principal: str, ca_on_host: Path) -> str:
    return "\n".join(
        [
            f"# Kafka as {principal!r} (engine broker secure-files). From the host:",
            f"#   engine --config {ca_on_host.parent / f'kafka-{principal}.toml'} COMMAND",
            "# In compose, ENGINE_KAFKA_* variables win over this file: only the password",
            "# comes from it there.",
            "[kafka]",
            f'bootstrap = "localhost:{HOST_PORT}"',
            'security_protocol = "SASL_SSL"',
            f'sasl_mechanism = "{MECHANISM}"',
            f'sasl_username = "{principal}"',
            f'sasl_password = "{files.password(principal)}"',
            f'ca_file = "{ca_on_host}"',
            "",
        ]
    )


def write_compose_secrets(out: Path) -> Made:
    """Make or refresh every file of :data:`SECRET_FILES` under ``out``."""
    out = out.resolve()
    out.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(out, 0o700)
    files = SecureFiles(out / "kafka", hosts=HOST_NAMES)
    had = files.ca.is_file() and all(files.password_file(p).is_file() for p in PRINCIPALS)
    files.ensure()
    made: list[str] = [] if had else ["kafka/"]
    kept: list[str] = ["kafka/"] if had else []
    for name in ("grafana-admin-password", "radio-reply-key"):
        path = out / name
        if path.is_file():
            kept.append(name)
            continue
        _shared_write(path, secrets.token_urlsafe(32).encode("ascii"))
        made.append(name)
    ca = out / SECRET_FILES["kafka_ca"]
    derived = {
        "kafka-ca.pem": files.ca.read_bytes(),
        "kafka-broker.pem": files.broker_pem.read_bytes(),
        "kafka-server.properties": server_properties(files).encode("utf-8"),
        "kafka-scram-users": scram_users(files).encode("ascii"),
        "kafka-admin-client.properties": admin_client_properties(files).encode("utf-8"),
        **{f"kafka-{p}.toml": client_toml(files, p, ca).encode("utf-8") for p in PRINCIPALS},
    }
    for name, data in derived.items():
        _shared_write(out / name, data)
    return Made(made=made, kept=kept, written=sorted(derived))


def _shared_write(path: Path, data: bytes) -> None:
    """0444: readable by the container's user through compose's bind mount; the 0700
    directory keeps the host's other users out."""
    private_write(path, data)
    os.chmod(path, 0o444)
