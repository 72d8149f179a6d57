"""Structured logs: one JSON object per line with the incident id as a field; plain
text on a terminal."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import Iterator

import pytest

from engine.logging_setup import configure_logging, incident_context

pytestmark = pytest.mark.unit


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture(autouse=True)
def _restore_root_logger() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    aiokafka = logging.getLogger("aiokafka").level
    yield
    for h in list(root.handlers):
        root.removeHandler(h)
    for h in handlers:
        root.addHandler(h)
    root.setLevel(level)
    logging.getLogger("aiokafka").setLevel(aiokafka)


def _lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_json_one_event_per_line_with_incident_id_and_extras(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("ENGINE_LOG_FORMAT", raising=False)
    out = io.StringIO()  # not a TTY: JSON by default
    configure_logging(1, stream=out)
    log = logging.getLogger("engine.streams")
    log.info("decided", extra={"incident_id": "INC-1", "stage": 0, "zones": ("Z1", "Z2")})
    with incident_context("INC-2"):
        log.warning("多行\n地址 塘厦镇林村新围路12号")
    log.debug("hidden at -v")
    try:
        raise ValueError("bad")
    except ValueError:
        log.exception("failed")
    first, second, third = _lines(out)
    assert first["msg"] == "decided" and first["incident_id"] == "INC-1"
    assert first["level"] == "info" and first["logger"] == "engine.streams"
    assert first["stage"] == 0 and first["zones"] == ["Z1", "Z2"]
    assert str(first["ts"]).endswith("Z")
    assert second["incident_id"] == "INC-2" and "塘厦镇" in str(second["msg"])
    assert "incident_id" not in third and "ValueError: bad" in str(third["exc"])
    assert len(out.getvalue().splitlines()) == 3  # the newline in a message stays escaped


async def test_incident_context_follows_asyncio_tasks() -> None:
    out = io.StringIO()
    configure_logging(0, json=True, stream=out)
    log = logging.getLogger("engine.test")

    async def agent(incident_id: str) -> None:
        with incident_context(incident_id):
            await asyncio.sleep(0)
            log.warning("step")

    await asyncio.gather(agent("INC-A"), agent("INC-B"))
    log.warning("outside")
    ids = [line.get("incident_id") for line in _lines(out)]
    assert sorted(ids[:2], key=str) == ["INC-A", "INC-B"] and ids[2] is None


def test_text_on_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ENGINE_LOG_FORMAT", raising=False)
    tty = _Tty()
    configure_logging(0, stream=tty)
    logging.getLogger("engine.radio").warning("link down", extra={"incident_id": "INC-9"})
    text = tty.getvalue()
    assert "WARNING engine.radio [INC-9] link down" in text
    assert not text.startswith("{")


def test_environment_and_verbosity(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENGINE_LOG_FORMAT", "json")
    tty = _Tty()
    configure_logging(2, stream=tty)
    logging.getLogger("engine").debug("dbg")
    assert _lines(tty)[0]["level"] == "debug"
    configure_logging(0, json=False, stream=tty)  # explicit argument wins
    assert logging.getLogger().level == logging.WARNING
    assert logging.getLogger("aiokafka").level == logging.CRITICAL
    assert len(logging.getLogger().handlers) == 1
