"""Where the broker's jars come from: Maven Central (cached once) or ``KAFKA_HOME``.

The Maven path copies ``org.apache.kafka:kafka_2.13`` and a log4j2 SLF4J binding with
``mvn -B dependency:copy-dependencies`` into a cache directory keyed by a hash of
``deploy/kafka/pom.xml``, so a version bump fetches again and nothing else does.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import subprocess
import zipfile
from dataclasses import dataclass
from pathlib import Path

from engine.errors import BrokerError

log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[2]
POM = REPO_ROOT / "deploy" / "kafka" / "pom.xml"
_COMPLETE = ".complete"


@dataclass(frozen=True, slots=True)
class BrokerJars:
    libs: Path
    source: str  # "maven" or "KAFKA_HOME"
    fetched_now: bool

    @property
    def classpath(self) -> str:
        return str(self.libs / "*")

    @property
    def version(self) -> str:
        return kafka_version(self.libs)


def default_cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "tangxia-engine" / "kafka"


def kafka_version(libs: Path) -> str:
    """The release in ``kafka-clients-*.jar`` (``kafka/kafka-version.properties``)."""
    for jar in sorted(libs.glob("kafka-clients-*.jar")):
        with zipfile.ZipFile(jar) as zf:
            text = zf.read("kafka/kafka-version.properties").decode("utf-8")
        for line in text.splitlines():
            if line.startswith("version="):
                return line.split("=", 1)[1].strip()
    raise BrokerError(f"no kafka-clients jar in {libs}: cannot tell the Kafka version")


def resolve_jars(cache_root: Path | None = None) -> BrokerJars:
    """Jars for ``kafka.Kafka``: KAFKA_HOME if set, else the Maven cache (fetched once)."""
    home = os.environ.get("KAFKA_HOME")
    if home:
        libs = Path(home) / "libs"
        if not any(libs.glob("kafka_2.13-*.jar")):
            raise BrokerError(
                f"KAFKA_HOME={home} has no libs/kafka_2.13-*.jar; point it at an unpacked "
                "Apache Kafka release (kafka_2.13-4.x.tgz) or unset it to use Maven"
            )
        return BrokerJars(libs=libs, source="KAFKA_HOME", fetched_now=False)

    if not POM.is_file():
        raise BrokerError(f"{POM} is missing; run from a checkout of the engine repository")
    digest = hashlib.sha256(POM.read_bytes()).hexdigest()[:16]
    target = (cache_root or default_cache_root()) / digest
    libs = target / "libs"
    if (target / _COMPLETE).is_file():
        log.info("reusing cached Kafka jars in %s", libs)
        return BrokerJars(libs=libs, source="maven", fetched_now=False)

    mvn = shutil.which("mvn")
    if mvn is None:
        raise BrokerError(
            "cannot get the Kafka broker: neither Maven (`mvn`, e.g. `apt-get install maven`"
            " with a JDK 17+) nor KAFKA_HOME (an unpacked Apache Kafka 4.x release) is "
            "available"
        )
    if libs.exists():
        shutil.rmtree(libs)  # a half-finished earlier copy
    libs.mkdir(parents=True, exist_ok=True)
    print(f"fetching Apache Kafka jars from Maven Central into {libs} ...", flush=True)
    cmd = [
        mvn,
        "-B",
        "-q",
        "-f",
        str(POM),
        "dependency:copy-dependencies",
        f"-DoutputDirectory={libs}",
    ]
    result = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-15:])
        raise BrokerError(f"`{' '.join(cmd)}` failed (exit {result.returncode}):\n{tail}")
    (target / _COMPLETE).write_text(kafka_version(libs) + "\n", encoding="utf-8")
    return BrokerJars(libs=libs, source="maven", fetched_now=True)
