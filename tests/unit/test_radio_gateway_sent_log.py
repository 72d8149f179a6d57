"""The durable sent log: survives reopening, ignores a torn last line, drops old entries."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from engine.radio.sent_log import SentEntry, SentLog, SentLogBusy

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


def test_torn_and_non_utf8_lines_do_not_stop_start_up(tmp_path: Path) -> None:
    path = tmp_path / "sent.jsonl"
    log = SentLog(path)
    log.add(SentEntry("INC-1/0/R001", "INC-1", "R001", time.time(), area="humen"))
    log.close()
    with path.open("ab") as f:
        f.write(b'{"key": "INC-1/0/R\xe5\x8f\n')  # a multi-byte character cut in half
        f.write(b"\xff\xfe\x00garbage\n")
        f.write(b'{"key": 1}\n')  # JSON, not an entry
        f.write(b'{"key":"INC-1/0/R003","incident_id":"INC-1","radio_id":"R003","at":')
    again = SentLog(path)
    assert set(again.entries) == {"INC-1/0/R001"}
    assert again.skipped == 4
    assert again.entries["INC-1/0/R001"].area == "humen"  # the area survives for replies
    again.add(SentEntry("INC-1/0/R002", "INC-1", "R002", time.time(), stage=1, stand_down=True))
    again.close()
    third = SentLog(path)
    assert third.skipped == 0
    assert third.entries["INC-1/0/R002"] == SentEntry(
        "INC-1/0/R002", "INC-1", "R002", third.entries["INC-1/0/R002"].at, 1, None, True
    )
    third.close()
    assert path.read_bytes().decode("utf-8").count("\n") == 2


def test_a_complete_last_line_without_newline_is_not_glued_to_the_next(tmp_path: Path) -> None:
    path = tmp_path / "sent.jsonl"
    line = SentEntry("a", "INC-1", "R001", time.time()).to_line()
    path.write_bytes(line.rstrip(b"\n"))  # the newline never reached the disk
    log = SentLog(path)
    log.add(SentEntry("b", "INC-1", "R002", time.time()))
    log.close()
    assert set(SentLog(path).entries) == {"a", "b"}


def test_one_gateway_per_sent_log(tmp_path: Path) -> None:
    path = tmp_path / "sent.jsonl"
    first = SentLog(path)
    with pytest.raises(SentLogBusy, match="in use"):
        SentLog(path)
    first.close()
    SentLog(path).close()
