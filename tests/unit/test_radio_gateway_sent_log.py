"""The durable sent log: survives reopening, ignores a torn last line, drops old entries."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from engine.radio.sent_log import SentEntry, SentLog

pytestmark = pytest.mark.unit


def test_keys_survive_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "gw" / "sent.jsonl"
    log = SentLog(path)
    log.add(SentEntry("INC-1/0/R001", "INC-1", "R001", time.time()))
    log.close()
    with path.open("a") as f:
        f.write('{"key": "INC-1/0/R0')  # crashed mid-write
    again = SentLog(path)
    assert "INC-1/0/R001" in again
    assert "INC-1/0/R0" not in again
    again.add(SentEntry("INC-1/0/R002", "INC-1", "R002", time.time()))
    again.close()
    assert set(SentLog(path).entries) == {"INC-1/0/R001", "INC-1/0/R002"}


def test_entries_older_than_the_window_are_dropped(tmp_path: Path) -> None:
    path = tmp_path / "sent.jsonl"
    log = SentLog(path)
    log.add(SentEntry("old", "INC-0", "R001", time.time() - 100))
    log.add(SentEntry("new", "INC-1", "R001", time.time()))
    log.close()
    kept = SentLog(path, keep_for=50)
    assert set(kept.entries) == {"new"}
    kept.close()
    assert path.read_text().count("\n") == 1
