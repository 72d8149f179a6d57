"""aiokafka client arguments from :class:`engine.config.Settings`, and a broker probe.

aiokafka and OS errors are mapped to :class:`engine.errors.KafkaUnavailable` here so
commands report one clear message ("no Kafka at 127.0.0.1:9092 ...").
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaClient
from aiokafka.conn import create_conn
from aiokafka.errors import (
    ClusterAuthorizationFailedError,
    GroupAuthorizationFailedError,
    KafkaError,
    SaslAuthenticationFailed,
    TopicAuthorizationFailedError,
    TransactionalIdAuthorizationFailed,
)
from aiokafka.helpers import create_ssl_context
from aiokafka.protocol.admin import ApiVersionRequest

from engine.config import Settings
from engine.errors import KafkaUnavailable

FETCH_API_KEY = 1


def client_kwargs(settings: Settings) -> dict[str, Any]:
    """Connection and security arguments shared by producers, consumers and admin."""
    kw: dict[str, Any] = {
        "bootstrap_servers": settings.kafka_bootstrap,
        "client_id": settings.kafka_client_id,
        "security_protocol": settings.kafka_security_protocol,
    }
    if settings.kafka_security_protocol in ("SSL", "SASL_SSL"):
        cafile = str(settings.kafka_ca_file) if settings.kafka_ca_file else None
        kw["ssl_context"] = create_ssl_context(cafile=cafile)
    if settings.kafka_security_protocol.startswith("SASL"):
        kw["sasl_mechanism"] = settings.kafka_sasl_mechanism
        kw["sasl_plain_username"] = settings.kafka_sasl_username
        password = settings.kafka_sasl_password
        kw["sasl_plain_password"] = password.get_secret_value() if password else None
    return kw


def producer_kwargs(settings: Settings) -> dict[str, Any]:
    """At-least-once with no duplicates from retries: acks=all plus idempotence."""
    return {
        **client_kwargs(settings),
        "acks": "all",
        "enable_idempotence": True,
        # no lingering: a call-out waiting 5 ms for company is 5 ms late
        "linger_ms": 0,
    }


def consumer_kwargs(settings: Settings) -> dict[str, Any]:
    """Every reader of the worker's outputs reads committed records only: a transaction
    the worker aborted (a crash, a fenced zombie) is never seen."""
    return {
        **client_kwargs(settings),
        "isolation_level": "read_committed",
        "enable_auto_commit": False,
        "auto_offset_reset": "earliest",
    }


def transactional_producer_kwargs(settings: Settings, transactional_id: str) -> dict[str, Any]:
    """The worker's producers: one transactional id per input partition, so that the
    next owner of a partition fences the previous one (KIP-98)."""
    return {
        **producer_kwargs(settings),
        "transactional_id": transactional_id,
        "retry_backoff_ms": 10,  # back-to-back transactions: the markers clear in ms
        "request_timeout_ms": 15_000,
        # aiokafka's send() waits once a partition's batch holds this much until the
        # batch is acknowledged: at the 16 KB default a busy batch (a decision, a dozen
        # call-outs, the state and its changelog per incident) waited a round trip every
        # few incidents and the worker fell behind at 500 incidents/s (bench/worker.py)
        "max_batch_size": 512 * 1024,
    }


@dataclass(frozen=True, slots=True)
class BrokerInfo:
    """What a cluster told us about itself over the wire."""

    brokers: tuple[str, ...]
    api_versions: dict[int, tuple[int, int]]

    @property
    def protocol_generation(self) -> str:
        """'4.x' when the broker has dropped Fetch v0-v3 (KIP-896, Apache Kafka 4.0),
        else 'pre-4'. The wire carries no release number; this is the observable mark.
        (Produce v0-v2 were kept in 4.0 for old librdkafka clients, so Fetch it is.)"""
        min_fetch = self.api_versions.get(FETCH_API_KEY, (0, 0))[0]
        return "4.x" if min_fetch >= 4 else "pre-4"


async def probe(settings: Settings, timeout_s: float = 5.0) -> BrokerInfo:
    """A metadata request and an ApiVersions request: proof a broker really answers."""
    client = AIOKafkaClient(**client_kwargs(settings), request_timeout_ms=int(timeout_s * 1000))
    try:
        async with asyncio.timeout(timeout_s):
            await client.bootstrap()
            brokers = client.cluster.brokers()
            if not brokers:
                raise KafkaUnavailable(f"Kafka at {settings.kafka_bootstrap} lists no brokers")
            node = min(b.nodeId for b in brokers)
            response = await client.send(node, ApiVersionRequest())
    except (KafkaError, OSError, TimeoutError) as exc:
        refused = await diagnose(settings)
        if refused is not None:
            raise KafkaUnavailable(refused) from None  # the cause may quote the handshake
        raise KafkaUnavailable(
            f"no Kafka answers at {settings.kafka_bootstrap}: {exc or type(exc).__name__} "
            "(start one with `engine broker start`, or set ENGINE_KAFKA_BOOTSTRAP)"
        ) from exc
    finally:
        with contextlib.suppress(Exception):
            await client.close()
    versions = {k: (lo, hi) for k, lo, hi in response.api_versions}
    names = tuple(sorted(f"{b.host}:{b.port}" for b in brokers))
    return BrokerInfo(brokers=names, api_versions=versions)


async def diagnose(settings: Settings, timeout_s: float = 5.0) -> str | None:
    """Why a secured broker that answers refuses us, in words (never the password):
    wrong credentials, or a certificate we do not trust. None when it is not that."""
    if settings.kafka_security_protocol == "PLAINTEXT":
        return None
    host, _, port = settings.kafka_bootstrap.split(",")[0].strip().rpartition(":")
    kw = client_kwargs(settings)
    kw.pop("bootstrap_servers")
    kw.pop("client_id")
    try:
        async with asyncio.timeout(timeout_s):
            conn = await create_conn(host, int(port), **kw)
        conn.close()
    except SaslAuthenticationFailed:
        return (
            f"Kafka at {settings.kafka_bootstrap} refused the credentials of user "
            f"{settings.kafka_sasl_username!r} ({settings.kafka_sasl_mechanism}): wrong "
            "password or unknown user (ENGINE_KAFKA_SASL_USERNAME / ENGINE_KAFKA_SASL_PASSWORD)"
        )
    except ssl.SSLCertVerificationError as exc:
        return (
            f"the certificate of Kafka at {settings.kafka_bootstrap} is not trusted: "
            f"{exc.verify_message} (ENGINE_KAFKA_CA_FILE={settings.kafka_ca_file})"
        )
    except (KafkaError, OSError, TimeoutError, ValueError):
        return None
    return None


AUTHORIZATION_ERRORS = (
    TopicAuthorizationFailedError,
    GroupAuthorizationFailedError,
    TransactionalIdAuthorizationFailed,
    ClusterAuthorizationFailedError,
)


def not_authorised(settings: Settings, exc: KafkaError) -> str:
    """A missing ACL, in words: which principal, which refusal."""
    who = settings.kafka_sasl_username or "the anonymous principal"
    what = str(exc).split(":", 1)[-1].strip() or type(exc).__name__
    return (
        f"Kafka at {settings.kafka_bootstrap} does not allow {who!r} this "
        f"({type(exc).__name__}: {what}): a missing ACL, or the wrong principal for this job"
    )


async def partitions_of(settings: Settings, topic: str) -> set[int]:
    """Partition ids of ``topic`` (empty when it does not exist)."""
    return (await topic_partitions(settings, [topic])).get(topic, set())


async def topic_partitions(settings: Settings, topics: list[str]) -> dict[str, set[int]]:
    """Partition ids of each of ``topics`` (empty for one that does not exist)."""
    client = AIOKafkaClient(**client_kwargs(settings))
    try:
        await client.bootstrap()
        cluster = await client.fetch_all_metadata()
    except (KafkaError, OSError) as exc:
        raise KafkaUnavailable(f"no Kafka answers at {settings.kafka_bootstrap}: {exc}") from exc
    finally:
        with contextlib.suppress(Exception):
            await client.close()
    return {t: set(cluster.partitions_for_topic(t) or ()) for t in topics}
