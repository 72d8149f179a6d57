"""The secured local broker (``engine broker start --secure``): TLS, SCRAM, ACLs.

Made once under ``<data_dir>/broker/secure/`` (every file 0600):

- ``ca.pem`` / ``ca.key``: a CA of this broker's own; ``broker.pem``: the broker's key
  and certificate (for 127.0.0.1 and localhost), signed by it. Clients trust ``ca.pem``.
- ``secrets/<principal>.password``: a random password per principal: ``admin`` (the
  broker itself and `engine topics ensure`; super user), ``worker``, ``gateway``, ``api``,
  ``viewer``; ``controller`` for the loopback controller listener (SASL PLAIN: KRaft
  controllers cannot use SCRAM, whose credentials live in the metadata they serve).
- ``clients/<principal>.env``: the ``ENGINE_KAFKA_*`` settings of that principal.

The client listener is SASL_SSL with SCRAM-SHA-512 (credentials added when the storage
is formatted); KRaft's StandardAuthorizer denies whatever no ACL allows. The ACLs per
role (:func:`acl_rules`) follow issue 14: only the gateway writes ``acks``; the gateway
and the API (an operator's availability change) write ``unit-status``; the gateway
(refused replies) and the worker (command outcomes) write ``audit``; only the worker
writes ``decisions``, ``callouts``, ``incident-state`` and its internal topics; only the
API writes ``incidents`` and ``commands``; viewers read (not ``audit``). Passwords
never reach a log, a config dump or a traceback: they are ``SecretStr`` in settings
and only ever written to these 0600 files.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import ipaddress
import os
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaClient
from aiokafka.errors import KafkaError
from aiokafka.protocol.admin import CreateAclsRequest, CreateAclsRequestStruct

from engine.config import Settings
from engine.errors import BrokerError

ROLES = ("worker", "gateway", "api", "viewer")
ADMIN = "admin"
CONTROLLER = "controller"
MECHANISM = "SCRAM-SHA-512"
LOCAL_HOSTS = ("localhost", "127.0.0.1")
"""The names in the local broker's certificate."""
ROLE_GROUPS = {
    "worker": "tangxia-engine-worker",  # faust's app id and its routers' group
    "gateway": "radio-gateway",
    "api": "api",
    "viewer": "viewer",
}
BROADCAST_TXN_PREFIX = "engine-broadcast-"
"""Transactional ids of the API's and CLI's broadcast writes (one per broadcast)."""


class Resource(IntEnum):
    TOPIC = 2
    GROUP = 3
    CLUSTER = 4
    TRANSACTIONAL_ID = 5


class Op(IntEnum):
    ALL = 2
    READ = 3
    WRITE = 4
    CREATE = 5
    DESCRIBE = 8
    DESCRIBE_CONFIGS = 10
    IDEMPOTENT_WRITE = 12


LITERAL, PREFIXED = 3, 4
ALLOW = 3


@dataclass(frozen=True, slots=True)
class Acl:
    principal: str
    resource: Resource
    name: str
    op: Op
    prefixed: bool = False


def acl_rules(settings: Settings) -> list[Acl]:
    """Every ACL of the four roles, for ``settings``' topic names (prefix included)."""
    t = settings.topic
    prefix = settings.topic_prefix
    rules: list[Acl] = []

    def topics(principal: str, op: Op, logical: Iterable[str]) -> None:
        for name in logical:
            rules.append(Acl(f"User:{principal}", Resource.TOPIC, t(name), op))
            if op is not Op.DESCRIBE:
                rules.append(Acl(f"User:{principal}", Resource.TOPIC, t(name), Op.DESCRIBE))

    # worker: reads its inputs and its changelog, writes its outputs, its internal topics
    # and its changelog; its group and transactional ids are named after the group id
    topics("worker", Op.READ, ["incidents", "unit-status", "acks", "commands", "area-events",
                               "area-state"])  # fmt: skip
    topics("worker", Op.WRITE, ["decisions", "callouts", "incident-state", "deadletter",
                                "audit", "area-events", "area-state"])  # fmt: skip
    # the worker checks every topic's settings at start (`ensure_topics`): it may see them
    from engine.config import ALL_TOPICS

    for logical in ALL_TOPICS:
        rules.append(Acl("User:worker", Resource.TOPIC, t(logical), Op.DESCRIBE))
        rules.append(Acl("User:worker", Resource.TOPIC, t(logical), Op.DESCRIBE_CONFIGS))
    app = f"{prefix}{ROLE_GROUPS['worker']}"
    rules += [
        Acl("User:worker", Resource.TOPIC, app, Op.ALL, prefixed=True),
        Acl("User:worker", Resource.GROUP, app, Op.READ, prefixed=True),
        Acl("User:worker", Resource.TRANSACTIONAL_ID, app, Op.ALL, prefixed=True),
        Acl("User:worker", Resource.CLUSTER, "kafka-cluster", Op.IDEMPOTENT_WRITE),
    ]
    # gateway: call-outs in, acks (also read back at start), unit status, audit out
    # and broadcast messages in, their reports and replies out (read back at start)
    topics("gateway", Op.READ, ["callouts", "acks", "broadcast-messages", "broadcasts"])
    topics("gateway", Op.WRITE, ["acks", "unit-status", "deadletter", "audit", "broadcasts"])
    rules.append(Acl("User:gateway", Resource.GROUP, ROLE_GROUPS["gateway"], Op.READ, True))
    # api: raises incidents, sends operator commands and unit availability, reads the
    # live board and the audit trail (its read model)
    topics("api", Op.WRITE, ["incidents", "commands", "unit-status", "broadcasts",
                             "broadcast-messages"])  # fmt: skip
    topics("api", Op.READ, ["incident-state", "decisions", "callouts", "acks", "unit-status",
                            "audit", "broadcasts"])  # fmt: skip
    rules.append(Acl("User:api", Resource.GROUP, ROLE_GROUPS["api"], Op.READ, True))
    # a broadcast's notice and its messages are written in one transaction
    rules.append(
        Acl("User:api", Resource.TRANSACTIONAL_ID, f"{prefix}{BROADCAST_TXN_PREFIX}", Op.ALL, True)
    )
    rules.append(Acl("User:api", Resource.CLUSTER, "kafka-cluster", Op.IDEMPOTENT_WRITE))
    # viewer: reads everything but the audit trail of refused replies
    topics("viewer", Op.READ, [x for x in ALL_TOPICS if x != "audit"])
    rules.append(Acl("User:viewer", Resource.GROUP, ROLE_GROUPS["viewer"], Op.READ, True))
    return rules


# --- files -----------------------------------------------------------------------------


@dataclass(frozen=True)
class SecureFiles:
    root: Path
    hosts: tuple[str, ...] = LOCAL_HOSTS  # the names in the broker's certificate

    @property
    def ca(self) -> Path:
        return self.root / "ca.pem"

    @property
    def broker_pem(self) -> Path:
        return self.root / "broker.pem"

    def password_file(self, principal: str) -> Path:
        return self.root / "secrets" / f"{principal}.password"

    def password(self, principal: str) -> str:
        try:
            return self.password_file(principal).read_text(encoding="ascii").strip()
        except OSError as exc:
            raise BrokerError(
                f"no password for {principal!r} in {self.root} (start the broker with "
                "--secure first)"
            ) from exc

    def env_file(self, principal: str) -> Path:
        return self.root / "clients" / f"{principal}.env"

    def ensure(self) -> bool:
        """Make what is missing; True when anything was made."""
        made = False
        if not self.ca.is_file() or not self.broker_pem.is_file():
            _make_certificates(self.root, self.hosts)
            made = True
        for principal in (ADMIN, CONTROLLER, *ROLES):
            path = self.password_file(principal)
            if not path.is_file():
                private_write(path, secrets.token_urlsafe(24).encode("ascii"))
                made = True
        return made

    def client_settings(self, settings: Settings, principal: str) -> Settings:
        """``settings`` as ``principal`` over SASL_SSL."""
        return settings.model_copy(
            update={
                "kafka_security_protocol": "SASL_SSL",
                "kafka_sasl_mechanism": MECHANISM,
                "kafka_sasl_username": principal,
                "kafka_sasl_password": _secret(self.password(principal)),
                "kafka_ca_file": self.ca,
            }
        )

    def write_env_files(self, bootstrap: str) -> None:
        for principal in (ADMIN, *ROLES):
            lines = [
                f"ENGINE_KAFKA_BOOTSTRAP={bootstrap}",
                "ENGINE_KAFKA_SECURITY_PROTOCOL=SASL_SSL",
                f"ENGINE_KAFKA_SASL_MECHANISM={MECHANISM}",
                f"ENGINE_KAFKA_SASL_USERNAME={principal}",
                f"ENGINE_KAFKA_SASL_PASSWORD={self.password(principal)}",
                f"ENGINE_KAFKA_CA_FILE={self.ca}",
                "",
            ]
            private_write(self.env_file(principal), "\n".join(lines).encode("ascii"))


def _secret(value: str) -> object:
    from pydantic import SecretStr

    return SecretStr(value)


def private_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    tmp.replace(path)


def _make_certificates(root: Path, hosts: Sequence[str] = LOCAL_HOSTS) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "tangxia-engine local CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=825))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=825))
        .add_extension(
            x509.SubjectAlternativeName([_general_name(host) for host in hosts]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    pkcs8 = serialization.PrivateFormat.PKCS8
    plain = serialization.NoEncryption()
    private_write(root / "ca.key", ca_key.private_bytes(pem, pkcs8, plain))
    private_write(root / "ca.pem", ca.public_bytes(pem))
    private_write(
        root / "broker.pem",
        key.private_bytes(pem, pkcs8, plain) + cert.public_bytes(pem) + ca.public_bytes(pem),
    )


def _general_name(host: str) -> Any:
    from cryptography import x509

    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        return x509.DNSName(host)


# --- broker configuration ---------------------------------------------------------------


def server_lines(files: SecureFiles, host: str, port: int, controller_port: int) -> list[str]:
    return secured_lines(
        files,
        listeners=[("SASL_SSL", f"{host}:{port}", f"{host}:{port}")],
        controller=f"{host}:{controller_port}",
        keystore=str(files.broker_pem),
        truststore=str(files.ca),
    )


def secured_lines(
    files: SecureFiles,
    *,
    listeners: Sequence[tuple[str, str, str]],
    controller: str,
    keystore: str,
    truststore: str,
) -> list[str]:
    """The listener and security lines of a secured broker's ``server.properties``.

    ``listeners``: (name, bind host:port, advertised host:port), each SASL_SSL with
    SCRAM-SHA-512; the first is the inter-broker listener. ``controller``: where the
    controller listener (SASL PLAIN) binds. ``keystore``, ``truststore``: PEM files as
    the broker sees them (the compose file mounts them elsewhere than the local broker).
    """
    admin = files.password(ADMIN)
    ctl = files.password(CONTROLLER)
    scram = "org.apache.kafka.common.security.scram.ScramLoginModule"
    plain = "org.apache.kafka.common.security.plain.PlainLoginModule"
    names = [name for name, _, _ in listeners]
    lines = [
        "listeners="
        + ",".join(f"{n}://{bind}" for n, bind, _ in listeners)
        + f",CONTROLLER://{controller}",
        "advertised.listeners=" + ",".join(f"{n}://{adv}" for n, _, adv in listeners),
        "controller.listener.names=CONTROLLER",
        f"inter.broker.listener.name={names[0]}",
        "listener.security.protocol.map=CONTROLLER:SASL_PLAINTEXT,"
        + ",".join(f"{n}:SASL_SSL" for n in names),
        f"sasl.mechanism.inter.broker.protocol={MECHANISM}",
        "sasl.mechanism.controller.protocol=PLAIN",
    ]
    for name in names:
        lines += [
            f"listener.name.{name.lower()}.sasl.enabled.mechanisms={MECHANISM}",
            f"listener.name.{name.lower()}.scram-sha-512.sasl.jaas.config={scram} required "
            f'username="{ADMIN}" password="{admin}";',
        ]
    return [
        *lines,
        "listener.name.controller.sasl.enabled.mechanisms=PLAIN",
        f"listener.name.controller.plain.sasl.jaas.config={plain} required "
        f'username="{CONTROLLER}" password="{ctl}" user_{CONTROLLER}="{ctl}";',
        "ssl.keystore.type=PEM",
        f"ssl.keystore.location={keystore}",
        "ssl.truststore.type=PEM",
        f"ssl.truststore.location={truststore}",
        "ssl.client.auth=none",
        "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer",
        f"super.users=User:{ADMIN};User:{CONTROLLER}",
        "allow.everyone.if.no.acl.found=false",
    ]


def scram_arguments(files: SecureFiles) -> list[str]:
    """``--add-scram`` arguments of the storage format: every principal's credential."""
    out = []
    for principal in (ADMIN, *ROLES):
        secret = files.password(principal)
        out += ["--add-scram", f"{MECHANISM}=[name={principal},password={secret}]"]
    return out


# --- ACLs --------------------------------------------------------------------------------


class _CreateAcls(CreateAclsRequest):  # type: ignore[misc]
    """Many ACLs in one CreateAcls request (aiokafka's wrapper sends one)."""

    def __init__(self, rules: list[Acl]) -> None:
        self._rules = rules

    def build(self, struct: type[CreateAclsRequestStruct]) -> CreateAclsRequestStruct:
        if struct.API_VERSION < 1:
            raise BrokerError("the broker does not speak CreateAcls v1 (prefixed patterns)")
        return struct(
            [
                (int(r.resource), r.name, PREFIXED if r.prefixed else LITERAL, r.principal,
                 "*", int(r.op), ALLOW)
                for r in self._rules
            ]
        )  # fmt: skip


async def ensure_acls(admin: Settings, rules: list[Acl], timeout_s: float = 30.0) -> int:
    """Create ``rules`` (creating an existing ACL again changes nothing); how many."""
    from engine.kafka.connection import client_kwargs

    client = AIOKafkaClient(**client_kwargs(admin))
    try:
        async with asyncio.timeout(timeout_s):
            await client.bootstrap()
            node = min(b.nodeId for b in client.cluster.brokers())
            response = await client.send(node, _CreateAcls(rules))
    except (KafkaError, OSError, TimeoutError) as exc:
        raise BrokerError(f"creating ACLs at {admin.kafka_bootstrap} failed: {exc!r}") from exc
    finally:
        with contextlib.suppress(Exception):
            await client.close()
    errors = [(code, msg) for code, msg in response.creation_responses if code]
    if errors:
        raise BrokerError(f"the broker refused {len(errors)} ACLs, e.g. {errors[0]}")
    return len(rules)
