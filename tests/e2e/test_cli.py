"""`engine raise` and `engine tail` as a user runs them, against the real broker."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from engine.config import Settings

pytestmark = pytest.mark.e2e


def _engine(
    settings: Settings, *args: str, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "ENGINE_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
        "ENGINE_TOPIC_PREFIX": settings.topic_prefix,
    }
    return subprocess.run(
        [sys.executable, "-m", "engine.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_raise_then_tail(kafka_settings: Settings) -> None:
    raised = _engine(
        kafka_settings,
        "raise", "--type", "fire", "--priority", "P1", "--lat", "22.8031",
        "--lon", "114.0842", "--address", "林村新围路12号",
    )  # fmt: skip
    assert raised.returncode == 0, raised.stderr
    incident_id = raised.stdout.strip()
    assert incident_id.startswith("INC-")

    tailed = _engine(kafka_settings, "tail", "incidents", "--from-beginning", "--max", "1")
    assert tailed.returncode == 0, tailed.stderr
    [line] = tailed.stdout.splitlines()
    record = json.loads(line)
    assert record["key"] == "tangxia"
    assert record["value"]["id"] == incident_id
    assert record["value"]["address"] == "林村新围路12号"
    assert record["value"]["area"] == "tangxia"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--type", "arson", "--priority", "P1", "--lat", "22.8", "--lon", "114.08"], "--type"),
        (["--type", "fire", "--priority", "P9", "--lat", "22.8", "--lon", "114.08"], "--priority"),
        (["--type", "fire", "--priority", "P1", "--lat", "abc", "--lon", "114.08"], "not a number"),
        (["--type", "fire", "--priority", "P1", "--lat", "114.08", "--lon", "22.8"], "--lat"),
        (["--type", "fire", "--priority", "P1", "--lat", "23.02", "--lon", "113.75"], "outside"),
        (["--type", "fire", "--priority", "P1", "--lon", "114.08"], "--lat"),
    ],
)
def test_bad_arguments_exit_2_and_produce_nothing(
    kafka_settings: Settings, args: list[str], message: str
) -> None:
    result = _engine(kafka_settings, "raise", *args)
    assert result.returncode == 2
    assert message in result.stderr
    assert result.stdout == ""
    tailed = _engine(kafka_settings, "tail", "incidents", "--from-beginning", "--idle-timeout", "2")
    assert tailed.returncode == 0, tailed.stderr
    assert tailed.stdout == ""


def test_tail_of_a_missing_topic_is_a_clear_error(kafka_settings: Settings) -> None:
    result = _engine(kafka_settings, "tail", "no-such-topic", "--idle-timeout", "1")
    assert result.returncode == 2
    assert "does not exist" in result.stderr


def test_unreachable_kafka_is_one_clear_line(kafka_settings: Settings) -> None:
    dead = kafka_settings.model_copy(update={"kafka_bootstrap": "127.0.0.1:9"})
    result = _engine(
        dead, "raise", "--type", "fire", "--priority", "P1", "--lat", "22.8", "--lon", "114.08"
    )
    assert result.returncode == 1
    assert "no Kafka answers at 127.0.0.1:9" in result.stderr
    assert "Traceback" not in result.stderr
