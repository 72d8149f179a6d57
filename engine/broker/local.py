"""Start, stop and inspect the local single-node KRaft broker.

Layout under ``<data_dir>/broker/``: ``server.properties``, ``log4j2.properties``,
``kraft-logs/`` (the storage), ``logs/server.log``, ``broker.pid``.

``start`` returns only once the broker answers a metadata request; it is idempotent.
``stop`` sends SIGTERM and waits for the controlled shutdown to finish.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from engine.broker.jars import BrokerJars, resolve_jars
from engine.broker.secure import (
    ADMIN,
    MECHANISM,
    ROLES,
    SecureFiles,
    acl_rules,
    ensure_acls,
    private_write,
    scram_arguments,
    server_lines,
)
from engine.config import Settings
from engine.errors import BrokerError, KafkaUnavailable
from engine.kafka.connection import BrokerInfo, probe

HOST = "127.0.0.1"
START_TIMEOUT_S = 90.0
STOP_TIMEOUT_S = 45.0


@dataclass(frozen=True, slots=True)
class BrokerStatus:
    running: bool
    pid: int | None
    bootstrap: str
    data_dir: Path
    version: str | None
    answers: bool


class LocalBroker:
    def __init__(self, settings: Settings, *, secure: bool = False) -> None:
        self.settings = settings
        self.home = settings.data_dir.resolve() / "broker"
        self.files = SecureFiles(self.home / "secure")
        # --secure, or storage formatted secure earlier (status, stop, a plain `start`)
        self.secure = secure or self._secure_marker.is_file()
        self.pid_file = self.home / "broker.pid"
        self.log_dir = self.home / "logs"
        self.storage = self.home / "kraft-logs"
        self.bootstrap = f"{HOST}:{settings.broker_port}"
        # Set when this object started the broker: it is then our child to reap.
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def _secure_marker(self) -> Path:
        return self.home / "secure" / "formatted-secure"

    # --- files ----------------------------------------------------------------------
    def server_properties(self) -> str:
        s = self.settings
        if self.secure:
            listeners = server_lines(self.files, HOST, s.broker_port, s.broker_controller_port)
        else:
            listeners = [
                f"listeners=PLAINTEXT://{HOST}:{s.broker_port},"
                f"CONTROLLER://{HOST}:{s.broker_controller_port}",
                f"advertised.listeners=PLAINTEXT://{HOST}:{s.broker_port}",
                "controller.listener.names=CONTROLLER",
                "inter.broker.listener.name=PLAINTEXT",
                "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            ]
        return "\n".join(
            [
                "# written by `engine broker start`; edits are overwritten",
                "process.roles=broker,controller",
                "node.id=1",
                f"controller.quorum.bootstrap.servers={HOST}:{s.broker_controller_port}",
                *listeners,
                *single_node_lines(str(self.storage)),
                "",
            ]
        )

    def log4j2_properties(self) -> str:
        log_file = self.log_dir / "server.log"
        return "\n".join(
            [
                "status = warn",
                "appender.file.type = RollingFile",
                "appender.file.name = FILE",
                f"appender.file.fileName = {log_file}",
                f"appender.file.filePattern = {log_file}.%i",
                "appender.file.layout.type = PatternLayout",
                "appender.file.layout.pattern = [%d] %p %m (%c)%n",
                "appender.file.policies.type = Policies",
                "appender.file.policies.size.type = SizeBasedTriggeringPolicy",
                "appender.file.policies.size.size = 20MB",
                "appender.file.strategy.type = DefaultRolloverStrategy",
                "appender.file.strategy.max = 3",
                "rootLogger.level = INFO",
                "rootLogger.appenderRef.file.ref = FILE",
                "logger.kafka.name = kafka",
                "logger.kafka.level = INFO",
                "logger.state.name = state.change.logger",
                "logger.state.level = WARN",
                "",
            ]
        )

    # --- process --------------------------------------------------------------------
    def pid(self) -> int | None:
        """The broker's pid if the pid file names a live ``kafka.Kafka`` process."""
        try:
            pid = int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            return None
        if b"kafka.Kafka" not in cmdline or str(self.home).encode() not in cmdline:
            return None  # pid reused by something else
        return pid

    def status(self) -> BrokerStatus:
        pid = self.pid()
        answers = False
        if pid is not None and _port_in_use(self.settings.broker_port):
            with contextlib.suppress(KafkaUnavailable):
                asyncio.run(self._probe(timeout_s=3.0))
                answers = True
        version = None
        with contextlib.suppress(BrokerError, OSError):
            version = (self._cached_version_file()).read_text().strip() or None
        return BrokerStatus(
            running=pid is not None,
            pid=pid,
            bootstrap=self.bootstrap,
            data_dir=self.home,
            version=version,
            answers=answers,
        )

    def _cached_version_file(self) -> Path:
        return self.home / "version"

    def admin_settings(self) -> Settings:
        """Settings that reach this broker as its super user."""
        local = self.settings.model_copy(
            update={"kafka_bootstrap": self.bootstrap, "kafka_security_protocol": "PLAINTEXT"}
        )
        return self.files.client_settings(local, ADMIN) if self.secure else local

    def role_settings(self, role: str) -> Settings:
        """Settings for one role's principal (secure broker only)."""
        local = self.settings.model_copy(update={"kafka_bootstrap": self.bootstrap})
        return self.files.client_settings(local, role)

    async def _probe(self, timeout_s: float) -> BrokerInfo:
        return await probe(self.admin_settings(), timeout_s=timeout_s)

    def start(self, jars: BrokerJars | None = None) -> tuple[bool, str]:
        """Start and wait until a metadata request is answered.

        Returns (started_now, message). Already running: (False, "already running ...").
        """
        pid = self.pid()
        if pid is not None:
            return False, f"broker already running (pid {pid}) at {self.bootstrap}"
        for port in (self.settings.broker_port, self.settings.broker_controller_port):
            if _port_in_use(port):
                raise BrokerError(
                    f"port {HOST}:{port} is taken by another process; stop it or choose "
                    "other ports (ENGINE_BROKER_PORT, ENGINE_BROKER_CONTROLLER_PORT)"
                )
        formatted = (self.storage / "meta.properties").is_file()
        if self.secure and formatted and not self._secure_marker.is_file():
            raise BrokerError(
                f"{self.storage} was formatted without --secure (no SCRAM credentials); "
                "use another ENGINE_DATA_DIR or remove it"
            )
        if self.secure:
            self.files.ensure()
        jars = jars or resolve_jars(self.settings.jar_cache)
        java = _java()
        self.log_dir.mkdir(parents=True, exist_ok=True)
        props = self.home / "server.properties"
        # 0600: in secure mode it holds the broker's own SASL passwords
        private_write(props, self.server_properties().encode("utf-8"))
        log4j = self.home / "log4j2.properties"
        log4j.write_text(self.log4j2_properties(), encoding="utf-8")
        version = jars.version
        self._cached_version_file().write_text(version + "\n", encoding="utf-8")

        base = [java, "-cp", jars.classpath, f"-Dlog4j2.configurationFile={log4j}"]
        if not (self.storage / "meta.properties").is_file():
            self._format(base, props)

        stdout = (self.log_dir / "stdout.log").open("ab")
        cmd = [
            java,
            f"-Xmx{self.settings.broker_heap}",
            f"-Xms{self.settings.broker_heap}",
            "-XX:+UseG1GC",
            "-XX:MaxGCPauseMillis=20",
            "-Djava.awt.headless=true",
            f"-Dkafka.logs.dir={self.log_dir}",
            f"-Dlog4j2.configurationFile={log4j}",
            "-cp",
            jars.classpath,
            "kafka.Kafka",
            str(props),
        ]
        # Own session: Ctrl-C in the terminal that started it does not kill the broker.
        proc = subprocess.Popen(
            cmd, stdout=stdout, stderr=subprocess.STDOUT, start_new_session=True, cwd=self.home
        )
        stdout.close()
        self._proc = proc
        self.pid_file.write_text(f"{proc.pid}\n", encoding="utf-8")
        try:
            info = self._wait_ready(proc)
        except BaseException:
            self._terminate(proc.pid)
            self.pid_file.unlink(missing_ok=True)
            raise
        fetched = "fetched now" if jars.fetched_now else "cached"
        secured = ""
        if self.secure:
            self.files.write_env_files(self.bootstrap)
            try:
                count = asyncio.run(ensure_acls(self.admin_settings(), acl_rules(self.settings)))
            except BaseException:
                self.stop()
                raise
            secured = (
                f"; SASL_SSL ({MECHANISM}), {count} ACLs for roles {', '.join(ROLES)}; "
                f"client settings in {self.files.root / 'clients'}"
            )
        return True, (
            f"Apache Kafka {version} ({jars.source} jars, {fetched}) started (pid {proc.pid})"
            f" at {self.bootstrap}; wire protocol {info.protocol_generation}{secured}"
        )

    def _format(self, base: list[str], props: Path) -> None:
        scram = scram_arguments(self.files) if self.secure else []
        uuid = _run([*base, "kafka.tools.StorageTool", "random-uuid"]).strip().splitlines()[-1]
        # --standalone: this node alone is the initial KRaft voter set (needed with
        # controller.quorum.bootstrap.servers, KIP-853 dynamic quorums)
        _run(
            [
                *base,
                "kafka.tools.StorageTool",
                "format",
                "--cluster-id",
                uuid,
                "--config",
                str(props),
                "--standalone",
                "--ignore-formatted",
                *scram,
            ],
            secrets=[self.files.password(p) for p in (ADMIN, *ROLES)] if self.secure else [],
        )
        if self.secure:
            self._secure_marker.write_text("SCRAM credentials added at format\n")

    def _wait_ready(self, proc: subprocess.Popen[bytes]) -> BrokerInfo:
        deadline = time.monotonic() + START_TIMEOUT_S
        last: Exception | None = None
        while time.monotonic() < deadline:
            code = proc.poll()
            if code is not None:
                raise BrokerError(
                    f"broker exited with code {code} during start-up; last log lines:\n"
                    + self.log_tail()
                )
            if not _port_in_use(self.settings.broker_port):
                time.sleep(0.2)  # not listening yet: no point in a Kafka request
                continue
            try:
                return asyncio.run(self._probe(timeout_s=2.0))
            except KafkaUnavailable as exc:
                last = exc
                time.sleep(0.3)
        raise BrokerError(
            f"broker did not answer a metadata request within {START_TIMEOUT_S:.0f} s "
            f"({last}); last log lines:\n{self.log_tail()}"
        )

    def stop(self) -> tuple[bool, str]:
        pid = self.pid()
        if pid is None:
            self.pid_file.unlink(missing_ok=True)
            return False, "broker not running"
        clean = self._terminate(pid)
        self.pid_file.unlink(missing_ok=True)
        how = "clean shutdown" if clean else "did not stop in time: killed"
        return True, f"broker (pid {pid}) stopped: {how}"

    def _terminate(self, pid: int) -> bool:
        """SIGTERM, wait for the controlled shutdown; SIGKILL only as a last resort."""
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT_S
        while time.monotonic() < deadline:
            if not self._alive(pid):
                return True
            time.sleep(0.1)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        while self._alive(pid):
            time.sleep(0.05)
        return False

    def _alive(self, pid: int) -> bool:
        if self._proc is not None and self._proc.pid == pid:
            return self._proc.poll() is None  # our child: reap it, no zombie left
        return _alive(pid)

    def log_tail(self, lines: int = 20) -> str:
        out = []
        for name in ("stdout.log", "server.log"):
            path = self.log_dir / name
            with contextlib.suppress(OSError):
                out += path.read_text(errors="replace").splitlines()[-lines:]
        return "\n".join(out[-lines:])

    def wipe(self) -> None:
        """Delete storage and logs (broker must be stopped)."""
        if self.pid() is not None:
            raise BrokerError("stop the broker before wiping its data")
        shutil.rmtree(self.home, ignore_errors=True)


def single_node_lines(log_dirs: str) -> list[str]:
    """The storage and single-node lines of ``server.properties`` (local and compose)."""
    return [
        f"log.dirs={log_dirs}",
        "num.partitions=1",
        # one node: internal topics cannot have more replicas than that
        "offsets.topic.replication.factor=1",
        "transaction.state.log.replication.factor=1",
        "transaction.state.log.min.isr=1",
        "share.coordinator.state.topic.replication.factor=1",
        "share.coordinator.state.topic.min.isr=1",
        # consumers join at once instead of waiting 3 s for more members
        "group.initial.rebalance.delay.ms=0",
        # topics are created by `engine topics ensure` with their settings, so a
        # misspelt topic name fails loudly instead of creating a stray topic
        "auto.create.topics.enable=false",
    ]


def _alive(pid: int) -> bool:
    """True while the process exists and is not a zombie (started by another process)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _port_in_use(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((HOST, port)) == 0


def _java() -> str:
    home = os.environ.get("JAVA_HOME")
    java = str(Path(home) / "bin" / "java") if home else shutil.which("java")
    if not java or not Path(java).exists():
        raise BrokerError("no `java` found: install a JDK 17+ (or set JAVA_HOME)")
    return java


def _run(cmd: list[str], secrets: list[str] | None = None) -> str:
    result = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        message = f"{' '.join(cmd[-6:])} failed (exit {result.returncode}):\n" + "\n".join(
            (result.stdout + result.stderr).strip().splitlines()[-15:]
        )
        for secret in secrets or ():
            message = message.replace(secret, "**********")
        raise BrokerError(message)
    return result.stdout
