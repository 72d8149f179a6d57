"""The radio commands as a technician runs them: simulator, one SMS, PTT, the gateway."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.config import Settings
from engine.kafka.produce import producer
from engine.kafka.tail import tail
from engine.models import CallOut, Channel, Priority

pytestmark = pytest.mark.e2e

REGISTRY = Path(__file__).resolve().parents[2] / "data" / "tangxia"
INCIDENT = "INC-20261129-XYK7Q2"


def _env(settings: Settings | None) -> dict[str, str]:
    env = dict(os.environ)
    if settings is not None:
        env["ENGINE_KAFKA_BOOTSTRAP"] = settings.kafka_bootstrap
        env["ENGINE_TOPIC_PREFIX"] = settings.topic_prefix
        env["ENGINE_DATA_DIR"] = str(settings.data_dir)
    return env


def _engine(*args: str, settings: Settings | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "engine.cli", *args],
        env=_env(settings), capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


def _start(*args: str, settings: Settings | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "engine.cli", *args],
        env=_env(settings), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def _stop(proc: subprocess.Popen[str]) -> tuple[int, str]:
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    return proc.returncode, err


@pytest.fixture
def handsets(tmp_path: Path) -> Iterator[Path]:
    link = tmp_path / "ttyUSB0"
    sim = _start(
        "simulate", "handsets", "--registry", str(REGISTRY), "--reply-delay", "0.1",
        "--link", str(link),
    )  # fmt: skip
    try:
        assert sim.stdout is not None
        assert sim.stdout.readline().strip() == str(link)  # printed once the pty is open
        yield link
    finally:
        code, err = _stop(sim)
        assert code == 0, err
        assert not link.exists()


def test_radio_send_and_ptt(handsets: Path) -> None:
    sent = _engine("radio", "send", "--device", str(handsets), "--to", "14400000001",
                   "--text", "[塘厦义警]P1 火情 #K7Q2 回1接警 2不能 3到场")  # fmt: skip
    assert sent.returncode == 0, sent.stderr
    assert sent.stdout.strip() == "1"
    keyed = _engine("radio", "ptt", "--driver", "dtr", "--device", "loop://", "--seconds", "0.1")
    assert keyed.returncode == 0, keyed.stderr
    bad = _engine("radio", "ptt", "--driver", "rigctld", "--seconds", "1")
    assert bad.returncode == 2
    assert "--rigctld HOST:PORT" in bad.stderr


def test_gateway_command_pages_and_acks(handsets: Path, kafka_settings: Settings) -> None:
    gateway = _start(
        "gateway", "--device", str(handsets), "--registry", str(REGISTRY), "--metrics-port", "0",
        settings=kafka_settings,
    )  # fmt: skip
    try:
        callout = CallOut(
            idempotency_key=CallOut.key_for(INCIDENT, 0, "R001"),
            incident_id=INCIDENT,
            stage=0,
            radio_id="R001",
            channel=Channel.SMS,
            text="[塘厦义警]P1 火情 #K7Q2 林村xx路12号 340米 回1接警 2不能 3到场",
            priority=Priority.P1,
        )

        async def exchange() -> list[str]:
            async with producer(kafka_settings) as p:
                await p.send_and_wait(
                    kafka_settings.topic("callouts"), callout.to_json_bytes(), key=b"R001"
                )
            topic = kafka_settings.topic("acks")
            return [
                r["value"]["kind"]
                async for r in tail(
                    kafka_settings, topic, from_beginning=True, max_records=3, idle_timeout_s=60
                )
            ]

        # the module took it, the handset's status report, the volunteer's reply
        kinds = asyncio.run(exchange())
        assert kinds[0] == "sent" and sorted(kinds[1:]) == ["accept", "delivered"]
    finally:
        code, err = _stop(gateway)
    assert code == 0, err
    assert (kafka_settings.data_dir / "radio-gateway").is_dir()
